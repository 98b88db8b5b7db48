package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments/internal/export"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ingest"
	"github.com/acme/payments/internal/metrics/metricstest"
	"github.com/acme/payments/internal/webhook"
)

// upload sends a CSV file to POST /upload and waits for its import to
// end.
func (e *env) upload(csv string) importer.Job {
	e.t.Helper()
	code, b, err := e.send("POST", "/upload", map[string]string{"Authorization": "Bearer " + token, "Content-Type": "text/csv"}, []byte(csv))
	if err != nil || (code != http.StatusAccepted && code != http.StatusOK) {
		e.t.Fatalf("upload: %d %s %v", code, b, err)
	}
	var up struct {
		ImportID string `json:"import_id"`
	}
	if err := json.Unmarshal(b, &up); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	job, err := ingest.Follow(ctx, e.d.DB, e.d.Temporal, up.ImportID, 50*time.Millisecond, nil)
	if err != nil || job.State != importer.StateCompleted {
		e.t.Fatalf("import %s: %+v %v", up.ImportID, job, err)
	}
	return job
}

// The service's own metrics on the API's /metrics count exactly what
// imports, live payments, callbacks, downloads and exports did, with
// labels from fixed sets only.
func TestServiceMetricsCountWhatHappened(t *testing.T) {
	e := newEnv(t, 0)

	// Orders: three new, one repeated as it is, a bad amount and a bad
	// currency.
	job := e.upload("order_id,order_amount,currency,customer_email\n" +
		"M-2,20.00,USD,m2@example.com\n" +
		"M-1,10.00,USD,m1@example.com\n" +
		"M-3,5.00,USD,m3@example.com\n" +
		"M-1,10.00,USD,m1@example.com\n" +
		"M-4,ten,USD,m4@example.com\n" +
		"M-5,1.00,ZZZ,m5@example.com\n")
	if job.RowsWritten != 3 || job.RowsUnchanged != 1 || job.RowsRejected != 2 {
		t.Fatalf("orders import: %+v", job)
	}
	// Payments: SUCCESS, PENDING and FAILED ones, one for an unknown order
	// and one with an unknown method.
	job = e.upload("payment_id,order_id,payment_amount,currency,payment_method,payment_status,payment_details,gateway_ref\n" +
		"P-1,M-1,10.00,USD,CARD,SUCCESS,4242424242424242,ref-p1\n" +
		"P-2,M-2,5.00,USD,UPI,PENDING,m2@upi,\n" +
		"P-3,M-2,5.00,USD,UPI,FAILED,m2@upi,\n" +
		"P-4,M-404,1.00,USD,CARD,SUCCESS,,\n" +
		"P-5,M-3,1.00,USD,CHEQUE,SUCCESS,,\n")
	if job.RowsWritten != 3 || job.RowsRejected != 2 {
		t.Fatalf("payments import: %+v", job)
	}

	// A live attempt, a callback with a wrong signature, the signed one
	// twice, and one for a gateway that is not configured.
	e.createOrder("W-1", "10.00")
	e.mustAttempt("W-1", attempt{PaymentID: "W-1-p1", Amount: "10.00", Method: "CARD", Details: "4111111111111111"}, http.StatusCreated)
	result := webhook.Result{PaymentID: "W-1-p1", Status: "SUCCESS", Amount: "10.00", GatewayRef: "ref-w1"}
	body := callbackBody(result)
	if code, b, err := e.rawCallback(gateway, body, webhook.Sign([]byte("not-the-secret-0123"), time.Now(), body)); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("badly signed callback: %d %s %v", code, b, err)
	}
	if code, b, err := e.rawCallback("evil-gw", body, webhook.Sign([]byte(secret), time.Now(), body)); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("callback of an unknown gateway: %d %s %v", code, b, err)
	}
	e.mustCallback(result, http.StatusOK, "accepted")
	e.mustCallback(result, http.StatusOK, "duplicate")

	// A download of the orders and an export of the payments.
	code, b, err := e.send("GET", "/download?type=orders&format=csv", map[string]string{"Authorization": "Bearer " + token}, nil)
	if err != nil || code != http.StatusOK || strings.Count(string(b), "\n") != 5 {
		t.Fatalf("download: %d %q %v", code, b, err)
	}
	var started struct {
		ExportID string `json:"export_id"`
	}
	if err := json.Unmarshal(e.mustAPI("POST", "/exports", map[string]string{"type": "payments", "format": "ndjson"}, http.StatusAccepted), &started); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var j export.Job
		if err := json.Unmarshal(e.mustAPI("GET", "/exports/"+started.ExportID, nil, http.StatusOK), &j); err != nil {
			t.Fatal(err)
		}
		if j.State == export.StateCompleted {
			break
		}
		if j.State != export.StateRunning || time.Now().After(deadline) {
			t.Fatalf("export: %+v", j)
		}
		time.Sleep(50 * time.Millisecond)
	}

	ss, err := metricstest.Scrape(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name   string
		labels []string
		value  float64
	}{
		{"payments_import_rows_total", []string{"type", "orders", "outcome", "written"}, 3},
		{"payments_import_rows_total", []string{"type", "orders", "outcome", "unchanged"}, 1},
		{"payments_import_rows_total", []string{"type", "orders", "outcome", "rejected"}, 2},
		{"payments_import_rejects_total", []string{"type", "orders", "reason", "BAD_AMOUNT"}, 1},
		{"payments_import_rejects_total", []string{"type", "orders", "reason", "BAD_CURRENCY"}, 1},
		{"payments_import_rows_total", []string{"type", "payments", "outcome", "written"}, 3},
		{"payments_import_rows_total", []string{"type", "payments", "outcome", "unchanged"}, 0},
		{"payments_import_rows_total", []string{"type", "payments", "outcome", "rejected"}, 2},
		{"payments_import_rejects_total", []string{"type", "payments", "reason", "ORDER_NOT_FOUND"}, 1},
		{"payments_import_rejects_total", []string{"type", "payments", "reason", "BAD_METHOD"}, 1},
		// Each file is one chunk.
		{"payments_import_chunk_duration_seconds_count", []string{"type", "orders"}, 1},
		{"payments_import_chunk_duration_seconds_count", []string{"type", "payments"}, 1},
		{"payments_payments_recorded_total", []string{"status", "SUCCESS", "source", "import"}, 1},
		{"payments_payments_recorded_total", []string{"status", "PENDING", "source", "import"}, 1},
		{"payments_payments_recorded_total", []string{"status", "FAILED", "source", "import"}, 1},
		{"payments_payments_recorded_total", []string{"status", "PENDING", "source", "api"}, 1},
		{"payments_payments_recorded_total", []string{"status", "SUCCESS", "source", "api"}, 0},
		{"payments_payments_recorded_total", []string{"status", "SUCCESS", "source", "gateway"}, 1},
		{"payments_payments_recorded_total", []string{"status", "FAILED", "source", "gateway"}, 0},
		{"payments_gateway_callbacks_total", []string{"gateway", gateway, "outcome", "bad_signature"}, 1},
		{"payments_gateway_callbacks_total", []string{"gateway", gateway, "outcome", "accepted"}, 1},
		{"payments_gateway_callbacks_total", []string{"gateway", gateway, "outcome", "duplicate"}, 1},
		{"payments_gateway_callbacks_total", []string{"gateway", "unknown", "outcome", "unknown_gateway"}, 1},
		{"payments_download_rows_total", []string{"type", "orders", "format", "csv"}, 4},
		{"payments_export_rows_total", []string{"type", "payments", "format", "ndjson"}, 4},
	}
	for _, w := range want {
		if v, ok := ss.Get(w.name, w.labels...); !ok || v != w.value {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, v, ok, w.value)
		}
	}
	if v := ss.Sum("payments_import_rejects_total"); v != 4 {
		t.Errorf("import rejects in all: %v, want 4", v)
	}
	if v := ss.Sum("payments_gateway_callbacks_total"); v != 4 {
		t.Errorf("callbacks in all: %v, want 4", v)
	}
	if v := ss.Sum("payments_import_chunk_duration_seconds_sum", "type", "orders"); v <= 0 {
		t.Errorf("orders chunk duration sum %v, want the chunk's time", v)
	}
	if !ss.Has("payments_ledger_retries_total") {
		t.Error("no payments_ledger_retries_total")
	}
	// No label of ours carries an id, an email, an amount or the path's
	// gateway name.
	for _, s := range ss {
		if !strings.HasPrefix(s.Name, "payments_") {
			continue
		}
		for k, v := range s.Labels {
			if strings.ContainsAny(v, "@.-") && k != "le" || strings.Contains(v, "evil") {
				t.Errorf("%s label %s=%q", s.Name, k, v)
			}
		}
	}
}
