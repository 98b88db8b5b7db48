// Package service assembles the service's processes from its packages: the
// HTTP API (`starter serve`), the Temporal worker (`worker`), and the whole
// development stack in one process (`starter dev`).
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/acme/payments/activities"
	"github.com/acme/payments/internal/api"
	"github.com/acme/payments/internal/codec"
	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/egress"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/export"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ingest"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/lifecycle"
	"github.com/acme/payments/internal/metrics"
	"github.com/acme/payments/internal/orders"
	"github.com/acme/payments/internal/payload"
	"github.com/acme/payments/internal/rotation"
	"github.com/acme/payments/internal/staging"
	"github.com/acme/payments/internal/temporalclient"
	"github.com/acme/payments/workflows"
)

// NewLogger returns the service's logger: JSON, one line per event.
func NewLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// Deps are a process's open connections.
type Deps struct {
	Config config.Config
	DB     *sqlx.DB
	// TextDB reads rows for exports (database.OpenText).
	TextDB     *sqlx.DB
	Keys       *encryption.Keyring
	BlindIndex *encryption.BlindIndex
	Store      *staging.Store
	Temporal   client.Client
	Metrics    *metrics.Metrics
	// Ledger is the process's one ledger; its retries and the payments it
	// records are counted in Metrics.
	Ledger *ledger.Ledger
	Logger *slog.Logger
}

// Open connects to MySQL (migrating it when migrate is set), the staging
// store and Temporal. A Temporal that cannot be reached fails it in
// seconds with one line naming the address (temporalclient.Dial).
func Open(ctx context.Context, cfg config.Config, logger *slog.Logger, migrate bool) (*Deps, error) {
	return open(ctx, cfg, logger, migrate, false)
}

// OpenMySQL opens what commands that only read or write the database need
// (`starter imports`, `starter order`): the keys and MySQL. It never dials
// Temporal nor opens the staging store; Temporal, Store and TextDB are
// nil.
func OpenMySQL(ctx context.Context, cfg config.Config, logger *slog.Logger) (*Deps, error) {
	keys, err := cfg.Keyring()
	if err != nil {
		return nil, fmt.Errorf("encryption keys: %w", err)
	}
	bidx, err := cfg.BlindIndex()
	if err != nil {
		return nil, err
	}
	db, err := database.Open(ctx, cfg.MySQLDSN)
	if err != nil {
		return nil, err
	}
	m := metrics.New()
	l := &ledger.Ledger{DB: db, Keys: keys, OnRetry: m.LedgerRetry, OnRecorded: countRecorded(m)}
	return &Deps{Config: cfg, DB: db, Keys: keys, BlindIndex: bidx, Metrics: m, Ledger: l, Logger: logger}, nil
}

// open is Open; with waitTemporal it waits for Temporal until ctx ends, as
// the long-running worker and HTTP API do, so they may start before it.
func open(ctx context.Context, cfg config.Config, logger *slog.Logger, migrate, waitTemporal bool) (*Deps, error) {
	keys, err := cfg.Keyring()
	if err != nil {
		return nil, fmt.Errorf("encryption keys: %w", err)
	}
	bidx, err := cfg.BlindIndex()
	if err != nil {
		return nil, err
	}
	stagingURL, err := cfg.StagingURL()
	if err != nil {
		return nil, err
	}
	store, err := staging.Open(ctx, stagingURL, keys)
	if err != nil {
		return nil, err
	}
	if migrate {
		if err := database.Create(ctx, cfg.MySQLDSN); err != nil {
			store.Close()
			return nil, err
		}
	}
	db, err := database.Open(ctx, cfg.MySQLDSN)
	if err != nil {
		store.Close()
		return nil, err
	}
	if migrate {
		v, err := database.Migrate(ctx, db, logger)
		if err != nil {
			db.Close()
			store.Close()
			return nil, err
		}
		logger.Info("database schema ready", "version", v)
	}
	if err := checkKeysInUse(ctx, db, keys, cfg, logger); err != nil {
		db.Close()
		store.Close()
		return nil, err
	}
	textDB, err := database.OpenText(ctx, cfg.MySQLDSN)
	if err != nil {
		db.Close()
		store.Close()
		return nil, err
	}
	m := metrics.New()
	tc, err := temporalclient.Dial(ctx, temporalclient.Options{
		Address: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace,
		Keys: keys, Logger: logger, Metrics: m.Temporal,
		TLS: cfg.TemporalTLS, APIKey: cfg.TemporalAPIKey, Wait: waitTemporal,
	})
	if err != nil {
		db.Close()
		textDB.Close()
		store.Close()
		m.Close()
		return nil, err
	}
	l := &ledger.Ledger{DB: db, Keys: keys, OnRetry: m.LedgerRetry, OnRecorded: countRecorded(m)}
	return &Deps{Config: cfg, DB: db, TextDB: textDB, Keys: keys, BlindIndex: bidx, Store: store, Temporal: tc, Metrics: m, Ledger: l, Logger: logger}, nil
}

// checkKeysInUse refuses a keyring that lacks a key stored rows still use
// (rotation.CheckConfigured: a loose scan of the key-id indexes, cheap at
// any table size), so a key dropped from PAYMENTS_KEYS too early stops the
// worker and the API at start-up, in one line, instead of failing reads.
// A schema from before migration 00008 has no key-id columns: the check
// is skipped with a warning until it is migrated.
func checkKeysInUse(ctx context.Context, db *sqlx.DB, keys *encryption.Keyring, cfg config.Config, logger *slog.Logger) error {
	source := "PAYMENTS_KEYS"
	if cfg.Keys == "" && cfg.KeysFile != "" {
		source = "PAYMENTS_KEYS_FILE"
	}
	err := rotation.CheckConfigured(ctx, db, keys, source)
	var me *mysql.MySQLError
	if errors.As(err, &me) && (me.Number == 1054 || me.Number == 1176) { // unknown column / key
		logger.Warn("encryption key check skipped: the database is not migrated (run `starter migrate`)")
		return nil
	}
	return err
}

// countRecorded counts the payments a ledger records in m
// (payments_payments_recorded_total).
func countRecorded(m *metrics.Metrics) func(ledger.Source, ledger.Status, int) {
	return func(src ledger.Source, status ledger.Status, n int) {
		m.PaymentsRecorded(string(src), string(status), n)
	}
}

// Close releases everything Open or OpenMySQL opened.
func (d *Deps) Close() {
	if d.Temporal != nil {
		d.Temporal.Close()
	}
	d.DB.Close()
	if d.TextDB != nil {
		d.TextDB.Close()
	}
	if d.Store != nil {
		d.Store.Close()
	}
	d.Metrics.Close()
}

// NewWorker creates the worker for the payments task queue with every
// workflow and activity registered.
func NewWorker(d *Deps) worker.Worker {
	w := worker.New(d.Temporal, workflows.TaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize: 64,
	})
	w.RegisterWorkflow(workflows.Import)
	w.RegisterWorkflow(workflows.OrderPayment)
	w.RegisterWorkflow(workflows.Export)
	w.RegisterWorkflow(workflows.Rotate)
	w.RegisterWorkflow(workflows.StagingRetention)
	w.RegisterActivity(&activities.Rotation{Rotator: &rotation.Rotator{DB: d.DB, Keys: d.Keys}})
	w.RegisterActivity(&activities.Activities{
		DB:        d.DB,
		Ledger:    d.Ledger,
		Store:     d.Store,
		WakeOrder: NewLifecycle(d).Wake,
		SweepUploads: func(ctx context.Context, before time.Time) (int, error) {
			return NewIntake(d).SweepUploads(ctx, before)
		},
		Importer: &importer.Importer{Logger: d.Logger, DB: d.DB, Keys: d.Keys, BlindIndex: d.BlindIndex, Ledger: d.Ledger,
			OnRetry: d.Metrics.LedgerRetry},
		Exporter: &export.Exporter{DB: d.TextDB, Keys: d.Keys},
		Metrics:  d.Metrics,
	})
	return w
}

// APIServer builds the HTTP API over d.
func APIServer(d *Deps) (*api.Server, error) {
	tokens, err := d.Config.Tokens()
	if err != nil {
		return nil, err
	}
	secrets, err := config.ParseWebhookSecrets(d.Config.WebhookSecrets)
	if err != nil {
		return nil, err
	}
	if tokens.Len() == 0 {
		d.Logger.Warn("PAYMENTS_API_TOKENS is empty: every authenticated endpoint will answer 401")
	}
	return &api.Server{
		DB: d.DB, Temporal: d.Temporal, Tokens: tokens, Keys: d.Keys,
		Metrics: d.Metrics, Logger: d.Logger, CodecOrigins: codecOrigins(d.Config),
		Intake:         NewIntake(d),
		Exporter:       &export.Exporter{DB: d.TextDB, Keys: d.Keys},
		Exports:        NewExports(d),
		Orders:         &orders.Store{DB: d.DB, Keys: d.Keys, BlindIndex: d.BlindIndex},
		Lifecycle:      NewLifecycle(d),
		WebhookSecrets: secrets,
	}, nil
}

// NewLifecycle hands live payments to the ledger and order workflows with
// d's connections.
func NewLifecycle(d *Deps) *lifecycle.Client {
	return &lifecycle.Client{Temporal: d.Temporal, Ledger: d.Ledger, AttemptTimeout: d.Config.AttemptTimeout}
}

// NewExports starts and serves exports with d's connections and export
// settings.
func NewExports(d *Deps) *egress.Exports {
	return &egress.Exports{DB: d.DB, Store: d.Store, Temporal: d.Temporal, Logger: d.Logger,
		ChunkRows: d.Config.ExportChunkRows, Parallelism: d.Config.ExportParallelism}
}

// NewIntake takes in files for import with d's connections and import settings.
func NewIntake(d *Deps) *ingest.Intake {
	return &ingest.Intake{
		DB: d.DB, Store: d.Store, Temporal: d.Temporal, Logger: d.Logger,
		MaxBytes: d.Config.MaxUploadBytes, ChunkRows: d.Config.ImportChunkRows, Parallelism: d.Config.ImportParallelism,
	}
}

func codecOrigins(cfg config.Config) []string {
	if len(cfg.CodecCORSOrigins) > 0 {
		return cfg.CodecCORSOrigins
	}
	out := []string{"http://" + cfg.UIAddr}
	if host, port, err := net.SplitHostPort(cfg.UIAddr); err == nil && (host == "127.0.0.1" || host == "localhost") {
		out = append(out, "http://localhost:"+port, "http://127.0.0.1:"+port)
	}
	return out
}

// Serve runs the HTTP API until ctx ends.
func Serve(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	d, err := open(ctx, cfg, logger, false, true)
	if err != nil {
		return stoppedEarly(ctx, err, logger)
	}
	defer d.Close()
	s, err := APIServer(d)
	if err != nil {
		return err
	}
	return ListenAndServe(ctx, cfg.HTTPAddr, s.Handler(), logger)
}

// RunWorker runs the Temporal worker until ctx ends, and serves its
// metrics on PAYMENTS_METRICS_ADDR when that is set.
func RunWorker(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	// Listen first: a taken port fails at once, before any connection.
	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		var err error
		if metricsLn, err = ListenMetrics(cfg.MetricsAddr); err != nil {
			return err
		}
	}
	d, err := open(ctx, cfg, logger, false, true)
	if err != nil {
		if metricsLn != nil {
			metricsLn.Close()
		}
		return stoppedEarly(ctx, err, logger)
	}
	defer d.Close()
	if metricsLn != nil {
		stop := ServeMetrics(metricsLn, d.Metrics, logger)
		defer stop()
	}
	w := NewWorker(d)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	logger.Info("worker started", "task_queue", workflows.TaskQueue, "temporal", cfg.TemporalAddress)
	if err := EnsureStagingRetention(ctx, d); err != nil {
		logger.Warn("staged uploads are not swept until a worker starts with Temporal reachable", "error", err.Error())
	}
	<-ctx.Done()
	w.Stop()
	logger.Info("worker stopped")
	return nil
}

// stoppedEarly is the outcome of a process asked to stop (Ctrl-C) while
// still starting: a clean stop, not an error, when ctx ended.
func stoppedEarly(ctx context.Context, err error, logger *slog.Logger) error {
	if ctx.Err() != nil {
		logger.Info("stopped before start-up finished")
		return nil
	}
	return err
}

// ListenMetrics opens the metrics listener of PAYMENTS_METRICS_ADDR; its
// error is one line naming the variable and the address.
func ListenMetrics(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("PAYMENTS_METRICS_ADDR: %w", err)
	}
	return ln, nil
}

// ServeMetrics serves m's registry at /metrics on ln until stop is called,
// which waits for requests in flight (a few seconds at most) and closes ln.
func ServeMetrics(ln net.Listener, m *metrics.Metrics, logger *slog.Logger) (stop func()) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics listener", "addr", ln.Addr().String(), "error", err.Error())
		}
	}()
	logger.Info("metrics listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}
}

// EnsureStagingRetention keeps the Temporal schedule that deletes staged
// uploads past PAYMENTS_STAGING_RETENTION (workflows.StagingRetention,
// hourly and once at once) in step with d's configuration: created if
// missing, its retention updated if it differs, deleted when retention is
// zero (keep staged files forever). Every worker calls it at start; they
// agree, so racing calls converge.
func EnsureStagingRetention(ctx context.Context, d *Deps) error {
	sc := d.Temporal.ScheduleClient()
	id := workflows.StagingRetentionScheduleID
	if d.Config.StagingRetention <= 0 {
		err := sc.GetHandle(ctx, id).Delete(ctx)
		var nf *serviceerror.NotFound
		if err != nil && !errors.As(err, &nf) {
			return fmt.Errorf("staging retention schedule: delete: %w", err)
		}
		return nil
	}
	action := &client.ScheduleWorkflowAction{
		ID: id, Workflow: workflows.StagingRetention, TaskQueue: workflows.TaskQueue,
		Args: []any{workflows.StagingRetentionInput{Retention: payload.Duration(d.Config.StagingRetention)}},
	}
	_, err := sc.Create(ctx, client.ScheduleOptions{
		ID:                 id,
		Spec:               client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: workflows.StagingRetentionEvery}}},
		Action:             action,
		Overlap:            enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		TriggerImmediately: true,
	})
	if err == nil {
		return nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("staging retention schedule: create: %w", err)
	}
	// Most starts find it as they would make it: only a new retention is
	// worth an update (which waits on the schedule's own workflow).
	h := sc.GetHandle(ctx, id)
	if desc, err := h.Describe(ctx); err == nil && retentionOf(desc, d.Keys) == d.Config.StagingRetention {
		return nil
	}
	err = h.Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			in.Description.Schedule.Action = action
			return &client.ScheduleUpdate{Schedule: &in.Description.Schedule}, nil
		},
	})
	if err != nil {
		return fmt.Errorf("staging retention schedule: update: %w", err)
	}
	return nil
}

// retentionOf is the retention a described staging retention schedule
// sweeps with; zero when it cannot tell.
func retentionOf(desc *client.ScheduleDescription, keys *encryption.Keyring) time.Duration {
	action, ok := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || len(action.Args) != 1 {
		return 0
	}
	p, ok := action.Args[0].(*commonpb.Payload)
	var in workflows.StagingRetentionInput
	if !ok || codec.DataConverter(keys).FromPayload(p, &in) != nil {
		return 0
	}
	return time.Duration(in.Retention)
}

// ListenAndServe serves h on addr until ctx ends, then drains requests.
func ListenAndServe(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := api.NewHTTPServer(addr, h)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("http api listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("http api: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http api shutdown: %w", err)
	}
	logger.Info("http api stopped")
	return nil
}
