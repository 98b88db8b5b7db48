// Package stacktest starts the real parts integration tests need: an
// in-process Temporal server (the same embedded server `starter dev` runs,
// on a fresh SQLite file and free ports) and the service's dependencies over
// a fresh MySQL database.
package stacktest

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/devserver"
	"github.com/acme/payments/internal/service"
)

// Temporal starts an embedded Temporal server for t and returns its
// frontend address. It stops when t ends.
func Temporal(t testing.TB) string {
	t.Helper()
	ports, err := devserver.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	srv, err := devserver.StartTemporal(context.Background(), devserver.TemporalOptions{
		DatabaseFile:    filepath.Join(t.TempDir(), "temporal.db"),
		FrontendAddress: addr,
		Namespace:       "default",
		DynamicConfig:   devserver.DefaultDynamicConfig(),
		Logger:          Logger(t, slog.LevelWarn),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Logf("stop temporal: %v", err)
		}
	})
	return addr
}

// TestKeys is a fixed development keyring spec for tests.
var TestKeys = "test1:" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// TestBlindIndexKey is a fixed blind-index key for tests.
var TestBlindIndexKey = base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))

// Config returns a configuration pointing at a fresh database and the
// given Temporal server.
func Config(t testing.TB, temporalAddr string) config.Config {
	t.Helper()
	return config.Config{
		MySQLDSN:          dbtest.DSN(t),
		TemporalAddress:   temporalAddr,
		TemporalNamespace: "default",
		HTTPAddr:          "127.0.0.1:0",
		DataDir:           t.TempDir(),
		Keys:              TestKeys,
		BlindIndexKey:     TestBlindIndexKey,
		MaxUploadBytes:    config.DefaultMaxUploadBytes,
		ImportChunkRows:   config.DefaultImportChunkRows,
		ImportParallelism: config.DefaultImportParallelism,
		ExportChunkRows:   config.DefaultExportChunkRows,
		ExportParallelism: config.DefaultExportParallelism,
		StagingRetention:  config.DefaultStagingRetention,
		LogLevel:          "warn",
	}
}

// Deps opens the service's dependencies (migrated database, Temporal
// client) for cfg; they close when t ends.
func Deps(t testing.TB, cfg config.Config) *service.Deps {
	t.Helper()
	d, err := service.Open(context.Background(), cfg, Logger(t, slog.LevelWarn), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// Logger writes to the test log (or stderr when verbose logging is off).
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() {
		// Logging after the test ended panics in testing; servers shutting
		// down may still log.
		if recover() != nil {
			fmt.Fprint(os.Stderr, string(p))
		}
	}()
	w.t.Log(string(p))
	return len(p), nil
}

// SaveHistory writes a workflow run's history as JSON (the format
// worker.WorkflowReplayer reads) when PAYMENTS_RECORD_HISTORIES names a
// directory; replay tests keep such recordings so a change that breaks
// determinism fails. It does nothing otherwise.
func SaveHistory(t testing.TB, c client.Client, workflowID, runID, name string) {
	t.Helper()
	dir := os.Getenv("PAYMENTS_RECORD_HISTORIES")
	if dir == "" {
		return
	}
	ctx := context.Background()
	iter := c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %d events of %s to %s", len(h.Events), workflowID, name)
}

// Worker starts the service's worker over d; it stops when t ends.
func Worker(t testing.TB, d *service.Deps) worker.Worker {
	t.Helper()
	w := service.NewWorker(d)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

// API serves the service's HTTP API over d and returns its base URL; it
// stops when t ends.
func API(t testing.TB, d *service.Deps) string {
	t.Helper()
	s, err := service.APIServer(d)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}
