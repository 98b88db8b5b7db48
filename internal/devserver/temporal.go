// Package devserver runs the development stack's Temporal pieces in-process:
// a real Temporal server persisted to a SQLite file and the Temporal Web UI.
// Production runs against a Temporal cluster instead; nothing else in the
// service depends on this package.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"

	"github.com/acme/payments/internal/visibility"
)

// TemporalOptions configures an embedded Temporal server.
type TemporalOptions struct {
	// DatabaseFile is the SQLite file holding all Temporal state. It is
	// created (with its schema) on first start and reused afterwards, so
	// open workflows survive a restart.
	DatabaseFile string
	// FrontendAddress is the gRPC address clients dial, e.g. 127.0.0.1:7233.
	FrontendAddress string
	// Namespace is registered on start when missing.
	Namespace string
	// DynamicConfig overrides server defaults by key.
	DynamicConfig map[string]any
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// Temporal is a running embedded Temporal server.
type Temporal struct {
	server    temporal.Server
	address   string
	mute      func()
	stopWatch func()
}

// DefaultDynamicConfig is tuned for a single-process development server whose
// workloads are bulk imports: the defaults throttle how fast the history
// service hands tasks to matching, which caps activity dispatch.
func DefaultDynamicConfig() map[string]any {
	return map[string]any{
		"history.transferProcessorMaxPollRPS":            2000,
		"history.timerProcessorMaxPollRPS":               2000,
		"history.outboundProcessorMaxPollRPS":            2000,
		"matching.numTaskqueueReadPartitions":            1,
		"matching.numTaskqueueWritePartitions":           1,
		"system.forceSearchAttributesCacheRefreshOnRead": true,
		"frontend.namespaceRPS":                          100000,
		"frontend.rps":                                   100000,
		"history.rps":                                    100000,
		"matching.rps":                                   100000,
		"frontend.persistenceMaxQPS":                     100000,
		"history.persistenceMaxQPS":                      100000,
		"matching.persistenceMaxQPS":                     100000,
		"frontend.enableUpdateWorkflowExecution":         true,
		"frontend.enableExecuteMultiOperation":           true,
	}
}

// StartTemporal creates (or reopens) the SQLite database and starts all
// Temporal services in this process, with the namespace and the service's
// search attributes (package visibility) registered. Stop it with Stop.
func StartTemporal(ctx context.Context, opts TemporalOptions) (*Temporal, error) {
	if opts.DatabaseFile == "" || opts.FrontendAddress == "" || opts.Namespace == "" {
		return nil, errors.New("embedded temporal: database file, frontend address and namespace are required")
	}
	host, portText, err := net.SplitHostPort(opts.FrontendAddress)
	if err != nil {
		return nil, fmt.Errorf("embedded temporal: frontend address %q: %w", opts.FrontendAddress, err)
	}
	frontendPort, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("embedded temporal: frontend port %q: %w", portText, err)
	}
	if err := CheckPorts(Port{Name: "the embedded Temporal frontend", Address: opts.FrontendAddress}); err != nil {
		return nil, fmt.Errorf("embedded temporal: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(opts.DatabaseFile), 0o700); err != nil {
		return nil, fmt.Errorf("embedded temporal: %w", err)
	}

	sqlCfg := sqliteConfig(opts.DatabaseFile)
	if _, err := os.Stat(opts.DatabaseFile); errors.Is(err, os.ErrNotExist) {
		if err := sqlite.SetupSchema(sqlCfg); err != nil {
			return nil, fmt.Errorf("embedded temporal: create schema in %s: %w", opts.DatabaseFile, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("embedded temporal: %w", err)
	}

	cfg, err := serverConfig(sqlCfg, host, frontendPort)
	if err != nil {
		return nil, err
	}
	ns, err := sqlite.NewNamespaceConfig(cfg.ClusterMetadata.CurrentClusterName, opts.Namespace, false, nil)
	if err != nil {
		return nil, fmt.Errorf("embedded temporal: namespace %s: %w", opts.Namespace, err)
	}
	if err := sqlite.CreateNamespaces(sqlCfg, ns); err != nil {
		return nil, fmt.Errorf("embedded temporal: register namespace %s: %w", opts.Namespace, err)
	}

	dyn := dynamicconfig.StaticClient{}
	for k, v := range opts.DynamicConfig {
		dyn[dynamicconfig.MakeKey(k)] = []dynamicconfig.ConstrainedValue{{Value: v}}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	quiet := newMuteHandler(logger.Handler())
	logger = slog.New(quiet)
	authorizer, err := authorization.GetAuthorizerFromConfig(&cfg.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("embedded temporal: %w", err)
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(newServerLogger(logger)),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper {
			return authorization.NewNoopClaimMapper()
		}),
		temporal.WithDynamicConfigClient(dyn),
	)
	if err != nil {
		return nil, fmt.Errorf("embedded temporal: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("embedded temporal: start: %w", err)
	}
	t := &Temporal{server: srv, address: opts.FrontendAddress, mute: quiet.mute}
	// Asked to stop (Ctrl-C) is stopping: from here on the server's
	// complaints about its peers going away are noise.
	stopWatch := context.AfterFunc(ctx, quiet.mute)
	t.stopWatch = func() { stopWatch() }
	if err := waitForPort(ctx, opts.FrontendAddress, 30*time.Second); err != nil {
		_ = srv.Stop()
		return nil, fmt.Errorf("embedded temporal: %w", err)
	}
	if err := registerSearchAttributes(ctx, opts.FrontendAddress, opts.Namespace, logger); err != nil {
		_ = srv.Stop()
		return nil, fmt.Errorf("embedded temporal: %w", err)
	}
	return t, nil
}

// registerSearchAttributes registers the service's search attributes on
// the namespace, as `starter setup-temporal` does on a cluster (a no-op
// when a reused database has them), and waits until queries on them are
// accepted: the frontend learns of new attributes when its namespace cache
// refreshes, and a workflow started before then could not set them.
func registerSearchAttributes(ctx context.Context, address, namespace string, logger *slog.Logger) error {
	c, err := client.DialContext(ctx, client.Options{
		HostPort:  address,
		Namespace: namespace,
		Logger:    sdklog.NewStructuredLogger(logger.With("component", "temporal-sdk")),
	})
	if err != nil {
		return fmt.Errorf("dial to register search attributes: %w", err)
	}
	defer c.Close()
	if _, err := visibility.Register(ctx, c.OperatorService(), namespace); err != nil {
		return err
	}
	return visibility.AwaitQueryable(ctx, c, namespace, 30*time.Second)
}

// Address is the frontend's gRPC host:port.
func (t *Temporal) Address() string { return t.address }

// Stop shuts every service down; the SQLite file keeps the state.
// Its logs end here: services shutting down complain of each other.
func (t *Temporal) Stop() error {
	t.stopWatch()
	t.mute()
	return t.server.Stop()
}

// sqliteConfig is the embedded server's store. The plugin (modernc.org/sqlite)
// passes every attribute but a few URI parameters on as a PRAGMA of that
// very name, and SQLite ignores pragmas it does not know: the mattn-style
// "_journal_mode" and "_synchronous" once given here left the file with a
// rollback journal and synchronous=FULL: several fsyncs per commit, and
// `bench --lifecycle` (300 payments, 32 clients) at 19.5 payments/s and 40
// CPU-ms a payment against 35/s and 25-27 ms in WAL mode. In WAL mode
// synchronous=NORMAL loses no committed transaction when the process
// crashes; only an OS crash or power loss can lose the last ones since a
// checkpoint. FULL would fsync every commit: 8-30% fewer payments/s over
// 1000 payments. busy_timeout makes
// another handle on the file (the schema set-up, a sqlite3 shell) wait
// instead of failing. One connection: four measured no faster, and the
// plugin begins its transactions deferred, which WAL may refuse with
// SQLITE_BUSY when they upgrade to writes.
func sqliteConfig(file string) *config.SQL {
	return &config.SQL{
		PluginName:   sqliteplugin.PluginName,
		DatabaseName: file,
		ConnectAttributes: map[string]string{
			"mode": "rwc", "journal_mode": "wal", "synchronous": "normal", "busy_timeout": "10000",
		},
		MaxConns:     1,
		MaxIdleConns: 1,
	}
}

func serverConfig(sqlCfg *config.SQL, host string, frontendPort int) (*config.Config, error) {
	ports, err := FreePorts(7)
	if err != nil {
		return nil, fmt.Errorf("embedded temporal: %w", err)
	}
	service := func(grpcPort, membershipPort int) config.Service {
		return config.Service{RPC: config.RPC{
			GRPCPort:       grpcPort,
			MembershipPort: membershipPort,
			BindOnIP:       host,
		}}
	}
	const cluster0 = "active"
	return &config.Config{
		Global: config.Global{
			Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: host},
		},
		Persistence: config.Persistence{
			DefaultStore:     sqliteplugin.PluginName,
			VisibilityStore:  sqliteplugin.PluginName,
			NumHistoryShards: 1,
			DataStores:       map[string]config.DataStore{sqliteplugin.PluginName: {SQL: sqlCfg}},
		},
		ClusterMetadata: &cluster.Config{
			EnableGlobalNamespace:    false,
			FailoverVersionIncrement: 10,
			MasterClusterName:        cluster0,
			CurrentClusterName:       cluster0,
			ClusterInformation: map[string]cluster.ClusterInformation{
				cluster0: {Enabled: true, InitialFailoverVersion: 1, RPCAddress: net.JoinHostPort(host, strconv.Itoa(frontendPort))},
			},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services: map[string]config.Service{
			"frontend": service(frontendPort, ports[0]),
			"history":  service(ports[1], ports[2]),
			"matching": service(ports[3], ports[4]),
			"worker":   service(ports[5], ports[6]),
		},
		Archival: config.Archival{
			History:    config.HistoryArchival{State: "disabled"},
			Visibility: config.VisibilityArchival{State: "disabled"},
		},
		NamespaceDefaults: config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
			History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
			Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
		}},
		PublicClient: config.PublicClient{HostPort: net.JoinHostPort(host, strconv.Itoa(frontendPort))},
	}, nil
}

// FreePorts asks the kernel for n distinct free TCP ports on 127.0.0.1.
func FreePorts(n int) ([]int, error) {
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func waitForPort(ctx context.Context, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept connections within %s: %w", addr, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
