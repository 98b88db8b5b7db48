// Package cluster runs the service the way it is deployed past one machine,
// all on this one: the real Temporal server process on PostgreSQL, several
// `worker` processes and a `starter serve`, sharing MySQL and a staging
// store. `starter cluster` (make cluster) and the drills start it.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/acme/payments/internal/temporalserver"
	"github.com/acme/payments/internal/visibility"
	"github.com/acme/payments/workflows"
)

// Binaries are the service's own programs.
type Binaries struct {
	Starter, Worker string
}

// BuildService compiles starter and worker into dir.
func BuildService(ctx context.Context, dir string) (Binaries, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Binaries{}, err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(os.PathSeparator),
		"github.com/acme/payments/starter", "github.com/acme/payments/worker")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return Binaries{}, fmt.Errorf("build starter and worker: %w\n%s", err, out.String())
	}
	return Binaries{Starter: filepath.Join(dir, "starter"), Worker: filepath.Join(dir, "worker")}, nil
}

// Options configures a topology.
type Options struct {
	// Dir receives each process's log and the Temporal server's files.
	Dir      string
	Service  Binaries
	Temporal temporalserver.Binaries
	Postgres temporalserver.Postgres
	// TemporalTLS, when set, runs the frontend with mutual TLS and gives
	// every service process the client side through TEMPORAL_TLS_*.
	TemporalTLS *temporalserver.TLS
	// Env is the service processes' configuration (PAYMENTS_MYSQL_DSN,
	// keys, tokens, PAYMENTS_BLOB_URL…); TEMPORAL_* are added.
	Env []string
	// Workers is how many worker processes start with the topology.
	Workers int
	// HTTPAddr is the API's listen address; empty picks a free port.
	HTTPAddr string
	// FrontendAddress is the Temporal frontend's; empty picks a free port.
	FrontendAddress string
	// DynamicConfig tunes the Temporal server.
	DynamicConfig map[string]any
}

// Cluster is a running topology.
type Cluster struct {
	opts     Options
	Temporal *temporalserver.Server
	httpAddr string

	mu       sync.Mutex
	workers  []*Process
	api      *Process
	nWorkers int
	nAPI     int
}

// Start sets up the Temporal databases, starts the server, migrates MySQL,
// registers the search attributes, and starts the workers and the API.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	if err := opts.Temporal.SetupSchema(ctx, opts.Postgres); err != nil {
		return nil, err
	}
	srv, err := temporalserver.New(temporalserver.Options{
		Binaries: opts.Temporal, Postgres: opts.Postgres, Dir: filepath.Join(opts.Dir, "temporal"),
		Namespace: "default", DynamicConfig: opts.DynamicConfig, TLS: opts.TemporalTLS,
		FrontendAddress: opts.FrontendAddress,
	})
	if err != nil {
		return nil, err
	}
	if err := srv.Start(ctx); err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, Temporal: srv, httpAddr: opts.HTTPAddr}
	if c.httpAddr == "" {
		ports, err := temporalserver.FreePorts(1)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.httpAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	}
	if err := c.Run(ctx, "migrate"); err != nil {
		c.Stop()
		return nil, err
	}
	// The attributes are registered once the namespace has reached every
	// service; then `starter setup-temporal`, as an operator runs it on
	// every deploy, must find them in place.
	if err := c.registerSearchAttributes(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	if err := c.Run(ctx, "setup-temporal"); err != nil {
		c.Stop()
		return nil, err
	}
	for range opts.Workers {
		if _, err := c.StartWorker(ctx); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.StartAPI(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Env is the environment every service process gets.
func (c *Cluster) Env(extra ...string) []string {
	env := append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, c.opts.Env...)
	env = append(env, "TEMPORAL_ADDRESS="+c.Temporal.Address(), "TEMPORAL_NAMESPACE=default",
		"PAYMENTS_HTTP_ADDR="+c.httpAddr)
	if t := c.opts.TemporalTLS; t != nil {
		env = append(env, "TEMPORAL_TLS_CA="+t.CAFile, "TEMPORAL_TLS_CERT="+t.ClientCert,
			"TEMPORAL_TLS_KEY="+t.ClientKey, "TEMPORAL_TLS_SERVER_NAME="+t.ServerName)
	}
	return append(env, extra...)
}

// Run runs one starter command to completion (migrate, setup-temporal…).
func (c *Cluster) Run(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, c.opts.Service.Starter, args...)
	cmd.Env = c.Env()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("starter %v: %w\n%s", args, err, out.String())
	}
	return nil
}

// StartWorker starts one more worker process, with extra environment
// after the topology's (a later value wins), and waits until it polls.
func (c *Cluster) StartWorker(ctx context.Context, extra ...string) (*Process, error) {
	c.mu.Lock()
	c.nWorkers++
	name := fmt.Sprintf("worker-%d", c.nWorkers)
	c.mu.Unlock()
	p, err := startProcess(name, c.opts.Service.Worker, nil, c.Env(extra...), filepath.Join(c.opts.Dir, name+".log"))
	if err != nil {
		return nil, err
	}
	if err := c.awaitPoller(ctx, p, time.Minute); err != nil {
		p.Kill()
		return nil, err
	}
	c.mu.Lock()
	c.workers = append(c.workers, p)
	c.mu.Unlock()
	return p, nil
}

// Workers are the worker processes started so far, dead or alive.
func (c *Cluster) Workers() []*Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Process(nil), c.workers...)
}

// APIURL is the API's base URL.
func (c *Cluster) APIURL() string { return "http://" + c.httpAddr }

// API is the current API process.
func (c *Cluster) API() *Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.api
}

// StartAPI starts `starter serve` and waits until /healthz answers.
func (c *Cluster) StartAPI(ctx context.Context) error {
	c.mu.Lock()
	c.nAPI++
	name := fmt.Sprintf("api-%d", c.nAPI)
	c.mu.Unlock()
	p, err := startProcess(name, c.opts.Service.Starter, []string{"serve"}, c.Env(), filepath.Join(c.opts.Dir, name+".log"))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(c.APIURL() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if p.Exited() || time.Now().After(deadline) {
			p.Kill()
			return fmt.Errorf("%s not healthy (exited %v); log %s:\n%s", name, p.Exited(), p.LogFile, temporalserver.Tail(p.LogFile, 10))
		}
		select {
		case <-ctx.Done():
			p.Kill()
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	c.mu.Lock()
	c.api = p
	c.mu.Unlock()
	return nil
}

// Stop ends every process: the service's first, then the Temporal server.
func (c *Cluster) Stop() error {
	var errs []error
	c.mu.Lock()
	procs := append([]*Process(nil), c.workers...)
	if c.api != nil {
		procs = append(procs, c.api)
	}
	c.mu.Unlock()
	for _, p := range procs {
		if !p.Exited() {
			if err := p.Stop(20 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := c.Temporal.Stop(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Cluster) registerSearchAttributes(ctx context.Context) error {
	tc, err := c.Temporal.Dial(ctx)
	if err != nil {
		return err
	}
	defer tc.Close()
	// A namespace just registered reaches every service's cache within
	// seconds; until then the operator service does not know it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = visibility.Register(ctx, tc.OperatorService(), "default")
		if err == nil {
			return visibility.AwaitQueryable(ctx, tc, "default", 90*time.Second)
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// awaitPoller waits until worker p polls the task queue for activities:
// the SDK's default identity starts with the process id.
func (c *Cluster) awaitPoller(ctx context.Context, p *Process, limit time.Duration) error {
	tc, err := c.Temporal.Dial(ctx)
	if err != nil {
		return err
	}
	defer tc.Close()
	prefix := strconv.Itoa(p.Pid()) + "@"
	deadline := time.Now().Add(limit)
	for {
		resp, err := tc.DescribeTaskQueue(ctx, workflows.TaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
		if err == nil {
			for _, poller := range resp.GetPollers() {
				if strings.HasPrefix(poller.GetIdentity(), prefix) {
					return nil
				}
			}
		}
		if p.Exited() {
			return fmt.Errorf("%s exited (%v); log %s:\n%s", p.Name, p.err, p.LogFile, temporalserver.Tail(p.LogFile, 10))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not polling %s within %s (%v); log %s:\n%s", p.Name, workflows.TaskQueue, limit, err, p.LogFile, temporalserver.Tail(p.LogFile, 10))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
