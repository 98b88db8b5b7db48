package service_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acme/payments/internal/devserver"
	"github.com/acme/payments/internal/metrics/metricstest"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/internal/stacktest"
)

// A worker with PAYMENTS_METRICS_ADDR serves its registry there (the
// service's metrics and the SDK's) until its context ends.
func TestWorkerServesMetrics(t *testing.T) {
	cfg := stacktest.Config(t, stacktest.Temporal(t))
	stacktest.Deps(t, cfg) // creates and migrates the database
	ports, err := devserver.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MetricsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- service.RunWorker(ctx, cfg, stacktest.Logger(t, slog.LevelWarn)) }()

	// Scrape until the SDK's worker metrics have been flushed in too (it
	// reports every second); the deadline only keeps a broken worker from
	// hanging the test.
	url := "http://" + cfg.MetricsAddr + "/metrics"
	deadline := time.Now().Add(2 * time.Minute)
	var ss metricstest.Samples
	for {
		select {
		case err := <-done:
			t.Fatalf("worker ended: %v", err)
		default:
		}
		ss, err = metricstest.Scrape(url)
		if err == nil && hasPrefix(ss, "temporal_") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no worker metrics at %s: %v %v", url, err, ss.Names())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, name := range []string{"payments_ledger_retries_total", "payments_import_rows_total",
		"payments_payments_recorded_total", "payments_import_chunk_duration_seconds_count", "go_goroutines"} {
		if !ss.Has(name) {
			t.Errorf("no %s at %s", name, url)
		}
	}
	if v, ok := ss.Get("payments_import_rows_total", "type", "payments", "outcome", "written"); !ok || v != 0 {
		t.Errorf("payments written %v %v, want 0", v, ok)
	}
	resp, err := http.Get("http://" + cfg.MetricsAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET / on the metrics listener: %d, want 404", resp.StatusCode)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("worker: %v", err)
	}
	if _, err := http.Get(url); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("metrics after the worker stopped: %v, want connection refused", err)
	}
}

// A taken metrics address fails the worker at once with one line naming
// the variable, before it connects to anything.
func TestWorkerMetricsAddressTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Nothing else in cfg is needed: the listener comes first.
	cfg := stacktest.Config(t, "127.0.0.1:1")
	cfg.MetricsAddr = ln.Addr().String()
	err = service.RunWorker(context.Background(), cfg, stacktest.Logger(t, slog.LevelWarn))
	if err == nil {
		t.Fatal("worker ran on a taken metrics address")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "PAYMENTS_METRICS_ADDR: ") || !strings.Contains(msg, ln.Addr().String()) ||
		!errors.Is(err, syscall.EADDRINUSE) || strings.Contains(msg, "\n") {
		t.Fatalf("error %q, want one line naming PAYMENTS_METRICS_ADDR and the address in use", msg)
	}
}

func hasPrefix(ss metricstest.Samples, prefix string) bool {
	for _, n := range ss.Names() {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}
