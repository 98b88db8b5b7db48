package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/acme/payments/internal/codec"
	"github.com/acme/payments/internal/export"
	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ingest"
	"github.com/acme/payments/internal/stacktest"
	"github.com/acme/payments/internal/visibility"
)

// uploadAndWait uploads data and waits for its import to end, whatever its
// state.
func (e *exportEnv) uploadAndWait(data []byte) importer.Job {
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
	if err != nil {
		e.t.Fatalf("import %s: %v", up.ImportID, err)
	}
	return job
}

// listed polls a visibility query until it lists every one of want
// (workflow ids) and returns what it listed: visibility is eventually
// consistent, so only the deadline is fixed.
func (e *exportEnv) listed(query string, want ...string) []string {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := e.d.Temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			e.t.Fatalf("list %s: %v", query, err)
		}
		var ids []string
		for _, ex := range resp.GetExecutions() {
			ids = append(ids, ex.GetExecution().GetWorkflowId())
		}
		all := true
		for _, w := range want {
			all = all && slices.Contains(ids, w)
		}
		if all {
			return ids
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s lists %v, want %v among them", query, ids, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// memo reads a workflow's memo fields.
func (e *exportEnv) memo(workflowID string) map[string]any {
	e.t.Helper()
	resp, err := e.d.Temporal.DescribeWorkflowExecution(context.Background(), workflowID, "")
	if err != nil {
		e.t.Fatal(err)
	}
	dc := codec.DataConverter(e.d.Keys)
	out := map[string]any{}
	for k, p := range resp.GetWorkflowExecutionInfo().GetMemo().GetFields() {
		var v any
		if err := dc.FromPayload(p, &v); err != nil {
			e.t.Fatalf("memo %s of %s: %v", k, workflowID, err)
		}
		out[k] = v
	}
	return out
}

// Imports and exports are found by their search attributes on the real
// server, which the embedded server registered at start, and carry a memo
// of counts.
func TestImportsAndExportsAreFoundByTheirSearchAttributes(t *testing.T) {
	e := newExportEnv(t, 50, 2)
	var orders bytes.Buffer
	if _, err := gen.Write(&orders, gen.Options{Kind: gen.KindOrders, Count: 120, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	good := e.uploadAndWait(orders.Bytes())
	if good.State != importer.StateCompleted {
		t.Fatalf("import: %+v", good)
	}
	bad := e.uploadAndWait([]byte("this is not,an import\nfile\n"))
	if bad.State != importer.StateFailed {
		t.Fatalf("bad import: %+v", bad)
	}
	exp := e.startExport(map[string]string{"type": "orders", "format": "csv"}, readToken, http.StatusAccepted)
	ej := e.waitExport(exp, ended)
	if ej.State != export.StateCompleted {
		t.Fatalf("export: %+v", ej)
	}

	failed := e.listed(`ImportState = "FAILED"`, bad.WorkflowID)
	if slices.Contains(failed, good.WorkflowID) {
		t.Errorf(`ImportState = "FAILED" lists the completed import: %v`, failed)
	}
	e.listed(`ImportState = "COMPLETED" AND ImportType = "orders"`, good.WorkflowID)
	ordersImports := e.listed(`ImportType = "orders"`, good.WorkflowID)
	if slices.Contains(ordersImports, bad.WorkflowID) {
		t.Errorf("a file that is neither orders nor payments got ImportType orders: %v", ordersImports)
	}
	e.listed(`ExportState = "COMPLETED"`, ej.WorkflowID)
	if ids := e.listed(`ExportState = "FAILED" OR ImportState = "RUNNING"`); len(ids) != 0 {
		t.Errorf("nothing failed or runs, listed %v", ids)
	}

	m := e.memo(good.WorkflowID)
	want := map[string]any{
		visibility.MemoSizeBytes: float64(good.SizeBytes), visibility.MemoType: "orders", visibility.MemoFormat: "csv",
		visibility.MemoRowsTotal: float64(120), visibility.MemoChunksTotal: float64(good.ChunksTotal),
		visibility.MemoRowsWritten: float64(good.RowsWritten), visibility.MemoRowsRejected: float64(good.RowsRejected),
	}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Errorf("import memo %v, want %v", m, want)
	}
	m = e.memo(ej.WorkflowID)
	want = map[string]any{
		visibility.MemoType: "orders", visibility.MemoFormat: "csv", visibility.MemoChunksTotal: float64(ej.ChunksTotal),
		visibility.MemoRowsWritten: float64(ej.RowsWritten), visibility.MemoSizeBytes: float64(*ej.FileBytes),
	}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Errorf("export memo %v, want %v", m, want)
	}
	stacktest.SaveHistory(t, e.d.Temporal, good.WorkflowID, "", "import-orders-search-attributes")
	stacktest.SaveHistory(t, e.d.Temporal, bad.WorkflowID, "", "import-bad-file-search-attributes")
	stacktest.SaveHistory(t, e.d.Temporal, ej.WorkflowID, "", "export-search-attributes")
}
