package metrics_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/acme/payments/internal/metrics"
	"github.com/acme/payments/internal/metrics/metricstest"
)

// A nil *Metrics counts nothing and does not panic, so packages run
// without metrics need no checks.
func TestNilMetricsDoNothing(t *testing.T) {
	var m *metrics.Metrics
	m.ObserveImportChunk(metrics.ImportChunk{Type: "orders", Written: 1, Rejects: map[string]int64{"BAD_AMOUNT": 1}})
	m.PaymentsRecorded("import", "SUCCESS", 3)
	m.LedgerRetry(1, nil)
	m.GatewayCallback("acme", metrics.CallbackAccepted)
	m.ExportRows("orders", "csv", 5)
	m.DownloadRows("orders", "csv", 5)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

func scrape(t *testing.T, m *metrics.Metrics) metricstest.Samples {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	ss, err := metricstest.Scrape(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

func TestServiceMetrics(t *testing.T) {
	m := metrics.New()
	defer m.Close()

	// Before anything happened the fixed series are there at zero.
	ss := scrape(t, m)
	for _, typ := range []string{"orders", "payments"} {
		for _, o := range []string{"written", "unchanged", "rejected"} {
			if v, ok := ss.Get("payments_import_rows_total", "type", typ, "outcome", o); !ok || v != 0 {
				t.Errorf("fresh import rows %s %s: %v %v, want 0", typ, o, v, ok)
			}
		}
		if v, ok := ss.Get("payments_import_chunk_duration_seconds_count", "type", typ); !ok || v != 0 {
			t.Errorf("fresh chunk count %s: %v %v", typ, v, ok)
		}
	}
	if v, ok := ss.Get("payments_payments_recorded_total", "status", "SUCCESS", "source", "gateway"); !ok || v != 0 {
		t.Errorf("fresh payments recorded: %v %v", v, ok)
	}
	if v, ok := ss.Get("payments_ledger_retries_total"); !ok || v != 0 {
		t.Errorf("fresh ledger retries: %v %v", v, ok)
	}

	m.ObserveImportChunk(metrics.ImportChunk{Type: "orders", Written: 7, Unchanged: 2, Rejected: 4,
		Rejects: map[string]int64{"BAD_AMOUNT": 3, "order 42 is bad": 1}, Duration: 300 * time.Millisecond})
	m.ObserveImportChunk(metrics.ImportChunk{Type: "orders", Written: 1, Duration: 20 * time.Millisecond})
	m.PaymentsRecorded("import", "SUCCESS", 5)
	m.PaymentsRecorded("api", "PENDING", 1)
	m.PaymentsRecorded("api", "PENDING", 0)
	m.LedgerRetry(1, nil)
	m.GatewayCallback("acme", metrics.CallbackAccepted)
	m.GatewayCallback("acme", metrics.CallbackBadSignature)
	m.GatewayCallback("acme", metrics.CallbackBadSignature)
	m.ExportRows("payments", "ndjson", 10)
	m.DownloadRows("orders", "csv", 4)

	ss = scrape(t, m)
	want := []struct {
		name   string
		labels []string
		value  float64
	}{
		{"payments_import_rows_total", []string{"type", "orders", "outcome", "written"}, 8},
		{"payments_import_rows_total", []string{"type", "orders", "outcome", "unchanged"}, 2},
		{"payments_import_rows_total", []string{"type", "orders", "outcome", "rejected"}, 4},
		{"payments_import_rejects_total", []string{"type", "orders", "reason", "BAD_AMOUNT"}, 3},
		// A code that is not a plain code never becomes a label.
		{"payments_import_rejects_total", []string{"type", "orders", "reason", "OTHER"}, 1},
		{"payments_import_chunk_duration_seconds_count", []string{"type", "orders"}, 2},
		{"payments_import_chunk_duration_seconds_bucket", []string{"type", "orders", "le", "0.025"}, 1},
		{"payments_import_chunk_duration_seconds_bucket", []string{"type", "orders", "le", "0.5"}, 2},
		{"payments_payments_recorded_total", []string{"status", "SUCCESS", "source", "import"}, 5},
		{"payments_payments_recorded_total", []string{"status", "PENDING", "source", "api"}, 1},
		{"payments_ledger_retries_total", nil, 1},
		{"payments_gateway_callbacks_total", []string{"gateway", "acme", "outcome", "accepted"}, 1},
		{"payments_gateway_callbacks_total", []string{"gateway", "acme", "outcome", "bad_signature"}, 2},
		{"payments_export_rows_total", []string{"type", "payments", "format", "ndjson"}, 10},
		{"payments_download_rows_total", []string{"type", "orders", "format", "csv"}, 4},
	}
	for _, w := range want {
		if v, ok := ss.Get(w.name, w.labels...); !ok || v != w.value {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, v, ok, w.value)
		}
	}
	if v := ss.Sum("payments_import_rejects_total"); v != 4 {
		t.Errorf("rejects in all: %v, want 4", v)
	}
}

func TestParseEscapes(t *testing.T) {
	ss, err := metricstest.Parse("# HELP x y\nx{a=\"q\\\"u,o}te\",b=\"2\"} 3\ny 4.5\n")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := ss.Get("x", "a", `q"u,o}te`, "b", "2"); !ok || v != 3 {
		t.Fatalf("x: %v %v (%+v)", v, ok, ss)
	}
	if v, ok := ss.Get("y"); !ok || v != 4.5 {
		t.Fatalf("y: %v %v", v, ok)
	}
}
