// Package temporalserver runs the real Temporal server as its own process:
// built from the go.temporal.io/server module pinned in go.mod, persisted in
// PostgreSQL, its schema set up with the module's own SQL tool and schema
// files. `starter cluster` and the drills use it; the service itself never
// does (it only dials TEMPORAL_ADDRESS).
package temporalserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/temporalclient"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Packages are the module's commands that Build compiles.
const (
	serverPackage  = "go.temporal.io/server/cmd/server"
	sqlToolPackage = "go.temporal.io/server/cmd/tools/sql"
)

// Binaries are the compiled server and SQL tool.
type Binaries struct {
	Server  string
	SQLTool string
}

// Build compiles the Temporal server and its SQL tool into dir with the
// go command, from the module version go.mod pins (go.mod lists both as
// tools). It takes about 20 s with a warm build cache.
func Build(ctx context.Context, dir string) (Binaries, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("build temporal server: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(os.PathSeparator), serverPackage, sqlToolPackage)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return Binaries{}, fmt.Errorf("build temporal server: %w\n%s", err, out.String())
	}
	return Binaries{Server: filepath.Join(dir, "server"), SQLTool: filepath.Join(dir, "sql")}, nil
}

// SchemaDir is the module's PostgreSQL schema directory
// (schema/postgresql/v12), found through the go command.
func SchemaDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "go.temporal.io/server").Output()
	if err != nil {
		return "", fmt.Errorf("locate go.temporal.io/server: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "schema", "postgresql", "v12")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("temporal schema files: %w", err)
	}
	return dir, nil
}

// Postgres is where the server keeps its state.
type Postgres struct {
	Host     string // default 127.0.0.1
	Port     int    // default 5432
	User     string // default postgres
	Password string
	// Database holds executions; Database+"_visibility" holds visibility.
	Database string
}

func (p Postgres) withDefaults() Postgres {
	if p.Host == "" {
		p.Host = "127.0.0.1"
	}
	if p.Port == 0 {
		p.Port = 5432
	}
	if p.User == "" {
		p.User = "postgres"
	}
	return p
}

// VisibilityDatabase is the visibility database's name.
func (p Postgres) VisibilityDatabase() string { return p.Database + "_visibility" }

func (b Binaries) sqlTool(ctx context.Context, pg Postgres, db string, args ...string) error {
	base := []string{"--plugin", "postgres12", "--ep", pg.Host, "-p", strconv.Itoa(pg.Port), "-u", pg.User, "--db", db}
	if pg.Password != "" {
		base = append(base, "--pw", pg.Password)
	}
	cmd := exec.CommandContext(ctx, b.SQLTool, append(base, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("temporal-sql-tool %s on %s: %w\n%s", args[0], db, err, out.String())
	}
	return nil
}

// SetupSchema creates both databases when missing and brings their schema
// to the newest version the module ships; on databases that are already
// set up it only applies what is new, so it is safe on every start.
func (b Binaries) SetupSchema(ctx context.Context, pg Postgres) error {
	pg = pg.withDefaults()
	schema, err := SchemaDir(ctx)
	if err != nil {
		return err
	}
	for _, s := range []struct{ db, dir string }{
		{pg.Database, filepath.Join(schema, "temporal", "versioned")},
		{pg.VisibilityDatabase(), filepath.Join(schema, "visibility", "versioned")},
	} {
		if err := b.sqlTool(ctx, pg, s.db, "create-database"); err != nil && !strings.Contains(err.Error(), "already exists") {
			return err
		}
		// setup-schema -v 0.0 creates the version table only; it refuses a
		// database that has one, which then needs only the update.
		_ = b.sqlTool(ctx, pg, s.db, "setup-schema", "-v", "0.0")
		if err := b.sqlTool(ctx, pg, s.db, "update-schema", "-d", s.dir); err != nil {
			return err
		}
	}
	return nil
}

// DropDatabases removes both databases.
func (b Binaries) DropDatabases(ctx context.Context, pg Postgres) error {
	pg = pg.withDefaults()
	var errs []error
	for _, db := range []string{pg.Database, pg.VisibilityDatabase()} {
		if err := b.sqlTool(ctx, pg, db, "drop-database", "-f"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// TLS turns on mutual TLS on the frontend: clients must present a
// certificate signed by ClientCA. The server's own system worker connects
// with ClientCert/ClientKey.
type TLS struct {
	CertFile, KeyFile string
	// CAFile signed both the server's and the clients' certificates.
	CAFile string
	// ServerName is a name in the server certificate.
	ServerName            string
	ClientCert, ClientKey string
}

// Options configures a server process.
type Options struct {
	Binaries Binaries
	Postgres Postgres
	// Dir receives the config files and the server's log.
	Dir string
	// FrontendAddress is 127.0.0.1:port; empty picks a free port.
	FrontendAddress string
	Namespace       string
	// DynamicConfig overrides server defaults by key.
	DynamicConfig map[string]any
	TLS           *TLS
	Logger        *slog.Logger
}

// Server is a running (or stopped) server process. Its ports are fixed at
// creation, so a restart comes back where clients expect it.
type Server struct {
	opts  Options
	ports []int
	cmd   *exec.Cmd
	done  chan error
	log   *os.File
}

// New writes the configuration for opts and picks the ports; Start runs it.
func New(opts Options) (*Server, error) {
	opts.Postgres = opts.Postgres.withDefaults()
	if opts.Namespace == "" || opts.Postgres.Database == "" || opts.Dir == "" {
		return nil, errors.New("temporal server: namespace, database and dir are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ports, err := FreePorts(8)
	if err != nil {
		return nil, err
	}
	if opts.FrontendAddress != "" {
		_, p, err := net.SplitHostPort(opts.FrontendAddress)
		if err != nil {
			return nil, fmt.Errorf("temporal server: frontend address %q: %w", opts.FrontendAddress, err)
		}
		if ports[0], err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("temporal server: frontend port %q: %w", p, err)
		}
	}
	s := &Server{opts: opts, ports: ports}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("temporal server: %w", err)
	}
	if err := s.writeConfig(); err != nil {
		return nil, err
	}
	return s, nil
}

// Address is the frontend's host:port.
func (s *Server) Address() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.ports[0])) }

// LogFile is where the server process writes its log.
func (s *Server) LogFile() string { return filepath.Join(s.opts.Dir, "server.log") }

// Start runs the server process and returns once its frontend answers and
// the namespace exists.
func (s *Server) Start(ctx context.Context) error {
	if s.cmd != nil {
		return errors.New("temporal server: already running")
	}
	// A port taken by another server would hand our clients to it.
	for _, p := range s.ports {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("temporal server: %s is already in use: stop what listens there or choose another TEMPORAL_ADDRESS", addr)
		}
		ln.Close()
	}
	log, err := os.OpenFile(s.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("temporal server: %w", err)
	}
	cmd := exec.Command(s.opts.Binaries.Server, "--config-file", s.configFile(), "--allow-no-auth", "start")
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: a SIGKILL of the server is not a SIGKILL of
	// whoever started it, and Ctrl-C in a terminal reaches it once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("temporal server: start %s: %w", s.opts.Binaries.Server, err)
	}
	s.cmd, s.log, s.done = cmd, log, make(chan error, 1)
	go func() { s.done <- cmd.Wait() }()
	if err := s.awaitReady(ctx); err != nil {
		_ = s.Kill()
		return fmt.Errorf("temporal server: %w; last lines of %s:\n%s", err, s.LogFile(), Tail(s.LogFile(), 15))
	}
	s.opts.Logger.Info("temporal server ready", "address", s.Address(), "pid", cmd.Process.Pid)
	return nil
}

// Kill ends the process with SIGKILL, as a crash would, and waits for it.
func (s *Server) Kill() error { return s.signal(syscall.SIGKILL, 0) }

// Stop asks the process to shut down and kills it after 20 s.
func (s *Server) Stop() error { return s.signal(syscall.SIGTERM, 20*time.Second) }

func (s *Server) signal(sig syscall.Signal, grace time.Duration) error {
	if s.cmd == nil {
		return nil
	}
	defer func() { s.cmd = nil; s.log.Close() }()
	_ = syscall.Kill(-s.cmd.Process.Pid, sig)
	select {
	case <-s.done:
	case <-time.After(grace):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	return nil
}

// Dial connects a plain SDK client (no codec) for administration.
func (s *Server) Dial(ctx context.Context) (client.Client, error) {
	co := client.Options{HostPort: s.Address(), Namespace: s.opts.Namespace,
		Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))}
	if t := s.opts.TLS; t != nil {
		tc, err := clientTLS(t)
		if err != nil {
			return nil, err
		}
		co.ConnectionOptions.TLS = tc
	}
	return client.DialContext(ctx, co)
}

func (s *Server) awaitReady(ctx context.Context) error {
	deadline := time.Now().Add(90 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("exited during start: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		if last = s.ensureNamespace(ctx); last == nil {
			return nil
		}
	}
	return fmt.Errorf("not ready within 90 s: %w", last)
}

// ensureNamespace registers the namespace once the frontend answers and
// reports ready when the namespace is visible to a describe.
func (s *Server) ensureNamespace(ctx context.Context) error {
	c, err := s.Dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.opts.Namespace})
	if err == nil {
		return nil
	}
	var notFound *serviceerror.NamespaceNotFound
	if !errors.As(err, &notFound) {
		return err
	}
	_, err = c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace:                        s.opts.Namespace,
		WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
	})
	var exists *serviceerror.NamespaceAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return err
	}
	return errors.New("namespace registered, waiting for the frontend to see it")
}

func (s *Server) configFile() string { return filepath.Join(s.opts.Dir, "temporal.yaml") }

func (s *Server) dynamicConfigFile() string { return filepath.Join(s.opts.Dir, "dynamicconfig.yaml") }

func (s *Server) writeConfig() error {
	var dyn bytes.Buffer
	for k, v := range s.opts.DynamicConfig {
		fmt.Fprintf(&dyn, "%s:\n  - value: %v\n", k, v)
	}
	if dyn.Len() == 0 {
		dyn.WriteString("{}\n")
	}
	if err := os.WriteFile(s.dynamicConfigFile(), dyn.Bytes(), 0o600); err != nil {
		return fmt.Errorf("temporal server: %w", err)
	}
	var cfg bytes.Buffer
	err := configTemplate.Execute(&cfg, map[string]any{
		"PG": s.opts.Postgres, "Ports": s.ports, "TLS": s.opts.TLS, "DynamicConfig": s.dynamicConfigFile(),
	})
	if err != nil {
		return fmt.Errorf("temporal server config: %w", err)
	}
	if err := os.WriteFile(s.configFile(), cfg.Bytes(), 0o600); err != nil {
		return fmt.Errorf("temporal server: %w", err)
	}
	return nil
}

// configTemplate follows the module's config/development-postgres12.yaml,
// on loopback, with ports of our own and optional frontend mTLS.
var configTemplate = template.Must(template.New("temporal.yaml").Funcs(template.FuncMap{
	"args": func(pg Postgres, db string) map[string]any { return map[string]any{"PG": pg, "DB": db} },
}).Parse(`{{ define "sql" }}      sql:
        pluginName: postgres12
        databaseName: {{ .DB }}
        connectAddr: "{{ .PG.Host }}:{{ .PG.Port }}"
        connectProtocol: tcp
        user: {{ .PG.User }}
        password: "{{ .PG.Password }}"
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h{{ end }}log:
  stdout: true
  level: warn
persistence:
  defaultStore: default
  visibilityStore: visibility
  numHistoryShards: 4
  datastores:
    default:
{{ template "sql" (args .PG .PG.Database) }}
    visibility:
{{ template "sql" (args .PG .PG.VisibilityDatabase) }}
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
{{- with .TLS }}
  tls:
    frontend:
      server:
        certFile: {{ .CertFile }}
        keyFile: {{ .KeyFile }}
        requireClientAuth: true
        clientCaFiles: [{{ .CAFile }}]
      client:
        serverName: {{ .ServerName }}
        rootCaFiles: [{{ .CAFile }}]
    systemWorker:
      certFile: {{ .ClientCert }}
      keyFile: {{ .ClientKey }}
      client:
        serverName: {{ .ServerName }}
        rootCaFiles: [{{ .CAFile }}]
{{- end }}
services:
  frontend:
    rpc: {grpcPort: {{ index .Ports 0 }}, membershipPort: {{ index .Ports 1 }}, bindOnLocalHost: true}
  history:
    rpc: {grpcPort: {{ index .Ports 2 }}, membershipPort: {{ index .Ports 3 }}, bindOnLocalHost: true}
  matching:
    rpc: {grpcPort: {{ index .Ports 4 }}, membershipPort: {{ index .Ports 5 }}, bindOnLocalHost: true}
  worker:
    rpc: {grpcPort: {{ index .Ports 6 }}, membershipPort: {{ index .Ports 7 }}, bindOnLocalHost: true}
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "127.0.0.1:{{ index .Ports 0 }}"
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: {{ .DynamicConfig }}
  pollInterval: 10s
`))

// FreePorts finds n distinct free TCP ports on 127.0.0.1 below 32768: the
// server's PostgreSQL schema keeps membership ports in a smallint, so the
// kernel's ephemeral range will not do.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for try := 0; len(ports) < n; try++ {
		if try > 1000 {
			return nil, errors.New("no free port in 20000-32767")
		}
		p := 20000 + rand.IntN(12768)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		ports = append(ports, p)
	}
	return ports, nil
}

// clientTLS is the administration client's side of the frontend's mTLS,
// built as the service's own client builds it.
func clientTLS(t *TLS) (*tls.Config, error) {
	return temporalclient.TLSConfig(config.TLSFiles{CA: t.CAFile, Cert: t.ClientCert, Key: t.ClientKey, ServerName: t.ServerName})
}

// Tail is the last n lines of a file (each cut to 400 bytes), for errors
// that must show why a process ended.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 400 {
			lines[i] = l[:400] + "…"
		}
	}
	return strings.Join(lines, "\n")
}
