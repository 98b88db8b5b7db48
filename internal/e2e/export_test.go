package e2e_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/acme/payments/internal/export"
	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ingest"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/internal/stacktest"
)

const (
	piiToken  = "export-pii-token"
	readToken = "export-read-token"
)

// exportEnv is the whole service with small export parts, its worker
// under the test's control.
type exportEnv struct {
	t      *testing.T
	d      *service.Deps
	base   string
	worker worker.Worker
}

func newExportEnv(t *testing.T, chunkRows, parallelism int) *exportEnv {
	t.Helper()
	cfg := stacktest.Config(t, stacktest.Temporal(t))
	cfg.APITokens = piiToken + ":read+write+pii," + readToken + ":read+write"
	cfg.ExportChunkRows, cfg.ExportParallelism = chunkRows, parallelism
	cfg.ImportChunkRows = 700
	d := stacktest.Deps(t, cfg)
	e := &exportEnv{t: t, d: d, base: stacktest.API(t, d)}
	e.worker = stacktest.Worker(t, d)
	return e
}

func (e *exportEnv) request(method, path, token, contentType string, body []byte) (*http.Response, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.base+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp, b
}

func (e *exportEnv) startExport(params map[string]string, token string, want int) string {
	e.t.Helper()
	body, _ := json.Marshal(params)
	resp, b := e.request("POST", "/exports", token, "application/json", body)
	if resp.StatusCode != want {
		e.t.Fatalf("POST /exports %v: %d %s, want %d", params, resp.StatusCode, b, want)
	}
	var out struct {
		ExportID   string `json:"export_id"`
		WorkflowID string `json:"workflow_id"`
		StatusURL  string `json:"status_url"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.ExportID == "" || out.StatusURL != "/exports/"+out.ExportID {
		e.t.Fatalf("POST /exports: %s %v", b, err)
	}
	return out.ExportID
}

func (e *exportEnv) job(id string) export.Job {
	e.t.Helper()
	resp, b := e.request("GET", "/exports/"+id, piiToken, "", nil)
	var j export.Job
	if resp.StatusCode != 200 || json.Unmarshal(b, &j) != nil {
		e.t.Fatalf("GET /exports/%s: %d %s", id, resp.StatusCode, b)
	}
	return j
}

func (e *exportEnv) waitExport(id string, until func(export.Job) bool) export.Job {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		j := e.job(id)
		if until(j) {
			return j
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("export %s: %+v", id, j)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ended(j export.Job) bool { return j.State != export.StateRunning }

// importFile uploads data and waits for its import to end.
func (e *exportEnv) importFile(data []byte) importer.Job {
	e.t.Helper()
	resp, b := e.request("POST", "/upload", piiToken, "text/csv", data)
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		e.t.Fatalf("upload: %d %s", resp.StatusCode, b)
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

func (e *exportEnv) seed(orders, payments int) {
	e.t.Helper()
	var o, p bytes.Buffer
	if _, err := gen.Write(&o, gen.Options{Kind: gen.KindOrders, Count: orders, Seed: 7}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := gen.Write(&p, gen.Options{Kind: gen.KindPayments, Count: payments, Orders: orders, Seed: 7}); err != nil {
		e.t.Fatal(err)
	}
	e.importFile(o.Bytes())
	e.importFile(p.Bytes())
}

// An export writes the same file a download streams, part by part through
// its workflow; the same parameters while it runs name the same export;
// its file is for the scopes that may see it.
func TestExportWritesWhatDownloadStreams(t *testing.T) {
	e := newExportEnv(t, 97, 2)
	e.seed(1000, 1500)

	// With no worker the export stays RUNNING: the same parameters (and
	// scope) name it again, other ones do not.
	e.worker.Stop()
	params := map[string]string{"type": "payments", "format": "json"}
	id := e.startExport(params, piiToken, http.StatusAccepted)
	if again := e.startExport(params, piiToken, http.StatusOK); again != id {
		t.Fatalf("the same running export: %s then %s", id, again)
	}
	if masked := e.startExport(params, readToken, http.StatusAccepted); masked == id {
		t.Fatal("an export without pii took the running pii export")
	}
	e.worker = stacktest.Worker(t, e.d)
	j := e.waitExport(id, ended)
	if j.State != export.StateCompleted || j.RowsWritten != 1500 || j.RowsTotal == nil || *j.RowsTotal != 1500 ||
		j.ChunksTotal != 16 || j.ChunksDone != 16 || j.FileBytes == nil {
		t.Fatalf("export: %+v", j)
	}
	stacktest.SaveHistory(t, e.d.Temporal, j.WorkflowID, "", "export-completed")
	resp, file := e.request("GET", "/exports/"+id+"/file", piiToken, "", nil)
	_, streamed := e.request("GET", "/download?type=payments&format=json", piiToken, "", nil)
	if resp.StatusCode != 200 || !bytes.Equal(file, streamed) || int64(len(file)) != *j.FileBytes ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), `attachment; filename="payments-`) {
		t.Fatalf("export file (%d, %d bytes, %v) differs from the download (%d bytes)", resp.StatusCode, len(file), resp.Header, len(streamed))
	}
	var rows []map[string]string
	if err := json.Unmarshal(file, &rows); err != nil || len(rows) != 1500 {
		t.Fatalf("file: %d rows, %v", len(rows), err)
	}
	if resp, b := e.request("GET", "/exports/"+id+"/file", readToken, "", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("pii export file for a token without pii: %d %s", resp.StatusCode, b)
	}
	// Every format, and filters, against the download of the same.
	for _, q := range []map[string]string{
		{"type": "orders", "format": "csv"},
		{"type": "orders", "format": "xml", "status": "COMPLETED"},
		{"type": "payments", "format": "ndjson", "created_to": "2026-01-10"},
		{"type": "payments", "format": "csv", "status": "FAILED", "created_from": "2026-01-05T00:00:00Z"},
		{"type": "orders", "format": "json", "status": "PENDING", "created_from": "2030-01-01"}, // none
	} {
		id := e.startExport(q, readToken, http.StatusAccepted)
		if j := e.waitExport(id, ended); j.State != export.StateCompleted {
			t.Fatalf("%v: %+v", q, j)
		}
		resp, file := e.request("GET", "/exports/"+id+"/file", readToken, "", nil)
		path := "/download?type=" + q["type"] + "&format=" + q["format"]
		for _, k := range []string{"status", "created_from", "created_to"} {
			if q[k] != "" {
				path += "&" + k + "=" + q[k]
			}
		}
		_, streamed := e.request("GET", path, readToken, "", nil)
		if !bytes.Equal(file, streamed) || resp.Header.Get("X-Payments-Masked") == "" {
			t.Errorf("%v: export file (%d bytes, %v) differs from the download (%d bytes)", q, len(file), resp.Header, len(streamed))
		}
	}

	resp, b := e.request("GET", "/exports?limit=3", readToken, "", nil)
	var list struct {
		Exports    []export.Job
		NextCursor string `json:"next_cursor"`
	}
	if err := json.Unmarshal(b, &list); err != nil || resp.StatusCode != 200 || len(list.Exports) != 3 || list.NextCursor == "" {
		t.Fatalf("GET /exports: %d %s", resp.StatusCode, b)
	}
	_, b = e.request("GET", "/exports?limit=3&cursor="+list.NextCursor, readToken, "", nil)
	var next struct{ Exports []export.Job }
	if err := json.Unmarshal(b, &next); err != nil || len(next.Exports) != 3 || next.Exports[0].ExportID == list.Exports[2].ExportID {
		t.Fatalf("second page: %s", b)
	}
}

// An export whose worker stops midway finishes with another, each row once;
// a cancelled one leaves no parts behind.
func TestExportSurvivesItsWorkerAndCancels(t *testing.T) {
	e := newExportEnv(t, 40, 1)
	e.seed(2000, 10)
	id := e.startExport(map[string]string{"type": "orders", "format": "csv"}, piiToken, http.StatusAccepted)
	e.waitExport(id, func(j export.Job) bool { return j.ChunksDone >= 5 || ended(j) })
	e.worker.Stop()
	if j := e.job(id); j.State != export.StateRunning || j.ChunksDone >= j.ChunksTotal {
		t.Fatalf("stopped worker: %+v", j)
	}
	e.worker = stacktest.Worker(t, e.d)
	j := e.waitExport(id, ended)
	if j.State != export.StateCompleted || j.RowsWritten != 2000 || j.ChunksDone != 51 {
		t.Fatalf("after a new worker: %+v", j)
	}
	_, file := e.request("GET", "/exports/"+id+"/file", piiToken, "", nil)
	recs, err := csv.NewReader(bytes.NewReader(file)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range recs[1:] {
		if seen[r[0]] {
			t.Fatalf("order %s twice", r[0])
		}
		seen[r[0]] = true
	}
	if len(seen) != 2000 {
		t.Fatalf("%d orders in the file", len(seen))
	}
	stacktest.SaveHistory(t, e.d.Temporal, j.WorkflowID, "", "export-worker-restarted")
	if parts, err := e.d.Store.List(context.Background(), export.PartPrefix(id)); err != nil || len(parts) != 0 {
		t.Errorf("parts left after completing: %v %v", parts, err)
	}

	e.worker.Stop()
	cancelled := e.startExport(map[string]string{"type": "orders", "format": "xml"}, piiToken, http.StatusAccepted)
	if resp, b := e.request("POST", "/exports/"+cancelled+"/cancel", piiToken, "", nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("cancel: %d %s", resp.StatusCode, b)
	}
	e.worker = stacktest.Worker(t, e.d)
	if j := e.waitExport(cancelled, ended); j.State != export.StateCancelled {
		t.Fatalf("cancelled export: %+v", j)
	} else {
		stacktest.SaveHistory(t, e.d.Temporal, j.WorkflowID, "", "export-cancelled")
	}
	if resp, _ := e.request("GET", "/exports/"+cancelled+"/file", piiToken, "", nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("file of a cancelled export: %d", resp.StatusCode)
	}
	if resp, _ := e.request("POST", "/exports/"+cancelled+"/cancel", piiToken, "", nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("cancel of a cancelled export: %d", resp.StatusCode)
	}
	if keys, err := e.d.Store.List(context.Background(), "exports/"+cancelled+"/"); err != nil || len(keys) != 0 {
		t.Errorf("a cancelled export left %v %v", keys, err)
	}
}

// A downloaded file, uploaded again, changes nothing: every row is
// rows_unchanged, in each import format and for both kinds.
func TestDownloadedFilesImportUnchanged(t *testing.T) {
	e := newExportEnv(t, 500, 2)
	e.seed(1200, 1800)
	// Live payments too: an attempt left PENDING, and one a gateway failed
	// with a reason that needs quoting.
	ctx := context.Background()
	lc := service.NewLifecycle(e.d)
	var pending string
	if err := e.d.DB.Get(&pending, "SELECT order_id FROM orders WHERE order_status = 'PENDING' ORDER BY order_id LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"LIVE-1", "LIVE-2"} {
		if out, err := lc.Attempt(ctx, ledger.Attempt{PaymentID: id, OrderID: pending, Amount: "0.01", Method: "UPI",
			Details: `alice@upi, "primary"`}); err != nil || out.Result.Outcome != ledger.Inserted {
			t.Fatalf("attempt %s: %+v %v", id, out, err)
		}
	}
	if res, _, err := lc.GatewayResult(ctx, ledger.GatewayResult{Gateway: "acme", PaymentID: "LIVE-2", Status: ledger.StatusFailed,
		FailureReason: "DECLINED, \"insufficient\" <funds> & more"}); err != nil || res.Outcome != ledger.Settled {
		t.Fatalf("gateway result: %+v %v", res, err)
	}
	for _, kind := range []string{"orders", "payments"} {
		for _, format := range []string{"csv", "xml"} {
			resp, file := e.request("GET", "/download?type="+kind+"&format="+format, piiToken, "", nil)
			if resp.StatusCode != 200 || resp.Header.Get("X-Payments-Masked") != "" {
				t.Fatalf("download %s %s: %d %v", kind, format, resp.StatusCode, resp.Header)
			}
			job := e.importFile(file)
			want := int64(1200)
			if kind == "payments" {
				want = 1800 + 2
			}
			if job.RowsRead != want || job.RowsUnchanged != want || job.RowsWritten != 0 || job.RowsRejected != 0 {
				t.Errorf("%s %s uploaded again: %+v", kind, format, job)
			}
		}
	}
}
