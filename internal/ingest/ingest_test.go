package ingest_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ingest"
	"github.com/acme/payments/internal/records"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/internal/stacktest"
	"github.com/acme/payments/workflows"
)

type stack struct {
	d  *service.Deps
	in *ingest.Intake
}

// newStack runs the real parts: MariaDB, an in-process Temporal server and
// the service's worker.
func newStack(t *testing.T, chunkRows, parallelism int) (*stack, worker.Worker) {
	t.Helper()
	cfg := stacktest.Config(t, stacktest.Temporal(t))
	cfg.ImportChunkRows, cfg.ImportParallelism = chunkRows, parallelism
	d := stacktest.Deps(t, cfg)
	w := stacktest.Worker(t, d)
	return &stack{d: d, in: service.NewIntake(d)}, w
}

func (s *stack) wait(t *testing.T, id string) importer.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	job, err := ingest.Follow(ctx, s.d.DB, s.d.Temporal, id, 100*time.Millisecond, nil)
	if err != nil {
		t.Fatalf("import %s: %v (last %+v)", id, err, job)
	}
	return job
}

func (s *stack) count(t *testing.T, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := s.d.DB.Get(&n, q, args...); err != nil {
		t.Fatal(err)
	}
	return n
}

func genFile(t *testing.T, o gen.Options) ([]byte, gen.Stats) {
	t.Helper()
	var b bytes.Buffer
	st, err := gen.Write(&b, o)
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), st
}

func TestOrdersImportWithRejectsAndReupload(t *testing.T) {
	s, _ := newStack(t, 37, 3)
	ctx := context.Background()
	data, st := genFile(t, gen.Options{Kind: "orders", Count: 500, BadRate: 0.1, Seed: 7})
	job, created, err := s.in.Start(ctx, bytes.NewReader(data), ingest.Options{MaxRejects: 1000})
	if err != nil || !created {
		t.Fatalf("start: %v %v", err, created)
	}
	job = s.wait(t, job.ImportID)
	if job.State != importer.StateCompleted {
		t.Fatalf("job %+v", job)
	}
	stacktest.SaveHistory(t, s.d.Temporal, job.WorkflowID, "", "import-orders-completed")
	if job.RowsRead != 500 || job.RowsRejected != int64(st.Bad) || job.RowsWritten != int64(500-st.Bad) || job.RowsUnchanged != 0 {
		t.Fatalf("counts %+v, gen made %d bad %v", job, st.Bad, st.BadByReason)
	}
	if job.ChunksDone != job.ChunksTotal || job.ChunksTotal != (500+36)/37 || job.Type != "orders" || job.Format != "csv" {
		t.Fatalf("chunks/type %+v", job)
	}
	if n := s.count(t, "SELECT COUNT(*) FROM orders"); n != job.RowsWritten {
		t.Fatalf("%d orders stored, job says %d", n, job.RowsWritten)
	}
	if n := s.count(t, "SELECT COUNT(*) FROM orders WHERE customer_email IS NOT NULL AND customer_email_bidx IS NULL"); n != 0 {
		t.Fatalf("%d orders lack a blind index", n)
	}
	// Every reject names its line, record and code, as gen made them.
	var rejects bytes.Buffer
	if err := importer.WriteRejectsCSV(ctx, s.d.DB, job.ImportID, &rejects); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&rejects).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	byCode := map[string]int{}
	for _, r := range rows[1:] {
		byCode[r[2]]++
		if r[0] == "0" || r[1] == "0" || r[3] == "" {
			t.Fatalf("reject without place or message: %v", r)
		}
	}
	for code, n := range st.BadByReason {
		if byCode[code] != n {
			t.Errorf("%s: %d rejects, gen made %d (all: %v)", code, byCode[code], n, byCode)
		}
	}

	// The same content and options again: the same import, nothing new.
	again, created, err := s.in.Start(ctx, bytes.NewReader(data), ingest.Options{MaxRejects: 1000})
	if err != nil || created || again.ImportID != job.ImportID {
		t.Fatalf("re-upload: %v created=%v id=%s", err, created, again.ImportID)
	}
	// Other options: a new import of the same rows, all unchanged.
	other, created, err := s.in.Start(ctx, bytes.NewReader(data), ingest.Options{MaxRejects: 999})
	if err != nil || !created {
		t.Fatal(err)
	}
	other = s.wait(t, other.ImportID)
	if other.State != importer.StateCompleted || other.RowsWritten != 0 || other.RowsUnchanged+other.RowsRejected != 500 {
		t.Fatalf("second import %+v", other)
	}
	if n := s.count(t, "SELECT COUNT(*) FROM orders"); n != job.RowsWritten {
		t.Fatalf("re-import changed the orders: %d", n)
	}
}

func TestPaymentsChunksOnSameOrdersGiveExactSums(t *testing.T) {
	s, _ := newStack(t, 25, 4)
	ctx := context.Background()
	orders, _ := genFile(t, gen.Options{Kind: "orders", Count: 40, Seed: 3})
	oj, _, err := s.in.Start(ctx, bytes.NewReader(orders), ingest.Options{MaxRejects: 0})
	if err != nil {
		t.Fatal(err)
	}
	if oj = s.wait(t, oj.ImportID); oj.State != importer.StateCompleted || oj.RowsWritten != 40 {
		t.Fatalf("orders %+v", oj)
	}
	// 400 payments over 40 orders: every chunk of 25 touches orders that
	// the chunks running beside it touch too.
	pays, _ := genFile(t, gen.Options{Kind: "payments", Count: 400, Orders: 40, Seed: 3, Format: "xml"})
	pj, _, err := s.in.Start(ctx, bytes.NewReader(pays), ingest.Options{Kind: records.KindPayments})
	if err != nil {
		t.Fatal(err)
	}
	pj = s.wait(t, pj.ImportID)
	if pj.State != importer.StateCompleted || pj.RowsRead != 400 || pj.RowsWritten != 400 || pj.Format != "xml" {
		t.Fatalf("payments %+v", pj)
	}
	stacktest.SaveHistory(t, s.d.Temporal, pj.WorkflowID, "", "import-payments-xml")
	var bad int64
	if err := s.d.DB.Get(&bad, `SELECT COUNT(*) FROM orders o WHERE o.paid_amount <>
		(SELECT COALESCE(SUM(p.payment_amount), 0) FROM payments p WHERE p.order_id = o.order_id AND p.payment_status = 'SUCCESS')
		OR o.order_status <> IF(o.paid_amount >= o.order_amount, 'COMPLETED', 'PENDING')`); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Fatalf("%d orders with a wrong paid_amount or status", bad)
	}
	if n := s.count(t, "SELECT COUNT(*) FROM payment_events WHERE source = 'import'"); n != 400 {
		t.Fatalf("%d payment events, want 400", n)
	}
}

func TestHostileFilesFailClearlyWithNoRows(t *testing.T) {
	s, _ := newStack(t, 10, 2)
	ctx := context.Background()
	cases := map[string]struct {
		body, typ, want string
	}{
		"binary":           {"\x00\x01\x02\xff\xfe garbage \x00", "", "not"},
		"empty":            {"", "", ""},
		"header only":      {"order_id,order_amount\n", "", "no records"},
		"unknown header":   {"order_id,order_amount,shoe_size\nA1,1.00,42\n", "", "shoe_size"},
		"truncated xml":    {"<orders><order><order_id>A1</order_id><order_amount>1.00</order_amount></order><order><order_id>A2", "", "line 1"},
		"entity expansion": {`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><orders><order><order_id>&lol2;</order_id><order_amount>1.00</order_amount></order></orders>`, "", "DTD"},
		"truncated quote":  {"order_id,order_amount\nA1,\"1.00\n", "", "quoted"},
		"type mismatch":    {"order_id,order_amount\nA1,1.00\n", "payments", "payments"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			job, _, err := s.in.Start(ctx, strings.NewReader(c.body), ingest.Options{Kind: records.Kind(c.typ), MaxRejects: 10})
			if err != nil {
				t.Fatal(err)
			}
			job = s.wait(t, job.ImportID)
			if job.State != importer.StateFailed || job.Error == nil || !strings.Contains(strings.ToLower(*job.Error), strings.ToLower(c.want)) {
				msg := "<nil>"
				if job.Error != nil {
					msg = *job.Error
				}
				t.Fatalf("state %s error %q (want FAILED mentioning %q)", job.State, msg, c.want)
			}
			if job.RowsWritten != 0 {
				t.Fatalf("rows written: %d", job.RowsWritten)
			}
			if name == "truncated quote" {
				stacktest.SaveHistory(t, s.d.Temporal, job.WorkflowID, "", "import-bad-file")
			}
		})
	}
	if n := s.count(t, "SELECT COUNT(*) FROM orders"); n != 0 {
		t.Fatalf("hostile files stored %d orders", n)
	}
}

func TestMaxRejectsFailsTheImportAndKeepsCommittedChunks(t *testing.T) {
	s, _ := newStack(t, 50, 1)
	var b strings.Builder
	b.WriteString("order_id,order_amount\n")
	for i := range 300 {
		amount := "10.00"
		if i >= 100 {
			amount = "ten"
		}
		fmt.Fprintf(&b, "M-%d,%s\n", i, amount)
	}
	job, _, err := s.in.Start(context.Background(), strings.NewReader(b.String()), ingest.Options{MaxRejects: 20})
	if err != nil {
		t.Fatal(err)
	}
	job = s.wait(t, job.ImportID)
	if job.State != importer.StateFailed || job.Error == nil || !strings.Contains(*job.Error, "max_rejects") {
		t.Fatalf("job %+v", job)
	}
	if n := s.count(t, "SELECT COUNT(*) FROM orders"); n != 100 || job.RowsWritten != 100 {
		t.Fatalf("committed rows %d, job %+v", n, job)
	}
	if job.ChunksDone >= job.ChunksTotal {
		t.Fatalf("import went on past the limit: %+v", job)
	}
	stacktest.SaveHistory(t, s.d.Temporal, job.WorkflowID, "", "import-max-rejects")
}

// A worker stopped in the middle of an import and a new one started: every
// row lands exactly once.
func TestWorkerStoppedMidImportFinishesExactlyOnce(t *testing.T) {
	s, w1 := newStack(t, 200, 2)
	ctx := context.Background()
	data, _ := genFile(t, gen.Options{Kind: "orders", Count: 6000, Seed: 11})
	job, _, err := s.in.Start(ctx, bytes.NewReader(data), ingest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		j, err := importer.GetJob(ctx, s.d.DB, job.ImportID)
		if err != nil {
			t.Fatal(err)
		}
		if j.ChunksDone >= 3 {
			break
		}
		if time.Now().After(deadline) || j.State != importer.StateRunning {
			t.Fatalf("import did not get going: %+v", j)
		}
		time.Sleep(20 * time.Millisecond)
	}
	w1.Stop()
	mid, _ := importer.GetJob(ctx, s.d.DB, job.ImportID)
	w2 := service.NewWorker(s.d)
	if err := w2.Start(); err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	final := s.wait(t, job.ImportID)
	if final.State != importer.StateCompleted || final.RowsWritten != 6000 || final.RowsRead != 6000 || final.ChunksDone != 30 {
		t.Fatalf("after the worker swap (stopped at %d chunks): %+v", mid.ChunksDone, final)
	}
	if n := s.count(t, "SELECT COUNT(*) FROM orders"); n != 6000 {
		t.Fatalf("%d orders", n)
	}
	if n := s.count(t, "SELECT COUNT(*) FROM import_chunks WHERE import_id = ?", job.ImportID); n != 30 {
		t.Fatalf("%d chunk-ledger rows", n)
	}
}

// A long import continues as new on the real server and loses nothing.
func TestContinueAsNewOnTheServer(t *testing.T) {
	s, _ := newStack(t, 10, 2)
	s.in.HistoryLimit = 60
	ctx := context.Background()
	data, _ := genFile(t, gen.Options{Kind: "orders", Count: 400, Seed: 5})
	job, _, err := s.in.Start(ctx, bytes.NewReader(data), ingest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	job = s.wait(t, job.ImportID)
	if job.State != importer.StateCompleted || job.RowsWritten != 400 || job.ChunksDone != 40 {
		t.Fatalf("job %+v", job)
	}
	desc, err := s.d.Temporal.DescribeWorkflowExecution(ctx, job.WorkflowID, "")
	if err != nil {
		t.Fatal(err)
	}
	first := desc.GetWorkflowExecutionInfo().GetFirstRunId()
	last := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	if first == "" || first == last {
		t.Fatalf("the import never continued as new (first run %q, last %q)", first, last)
	}
	var p workflows.Progress
	if err := s.d.Temporal.GetWorkflow(ctx, job.WorkflowID, "").Get(ctx, &p); err != nil {
		t.Fatal(err)
	}
	if p.RowsWritten != 400 || p.ChunksDone != 40 || p.State != importer.StateCompleted {
		t.Fatalf("result after continue-as-new: %+v", p)
	}
	stacktest.SaveHistory(t, s.d.Temporal, job.WorkflowID, first, "import-continued-as-new")
}

// The job row decides whether an import runs: after the database is put
// back to before an import whose workflow Temporal still remembers as
// closed, the same upload runs it again instead of waiting on that run.
func TestUploadAfterDatabaseRestoreRunsTheImportAgain(t *testing.T) {
	s, _ := newStack(t, 40, 2)
	ctx := context.Background()
	data, _ := genFile(t, gen.Options{Kind: "orders", Count: 100, Seed: 11})
	job, _, err := s.in.Start(ctx, bytes.NewReader(data), ingest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if job = s.wait(t, job.ImportID); job.State != importer.StateCompleted || job.RowsWritten != 100 {
		t.Fatalf("first import %+v", job)
	}
	// The job row turns COMPLETED just before its run closes; a restore
	// comes later, once Temporal holds the run as closed.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.d.Temporal.GetWorkflow(wctx, job.WorkflowID, "").Get(wctx, nil); err != nil {
		t.Fatalf("first run: %v", err)
	}
	for _, q := range []string{"DELETE FROM import_rejects", "DELETE FROM import_chunks", "DELETE FROM import_jobs", "DELETE FROM orders"} {
		if _, err := s.d.DB.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	again, created, err := s.in.Start(ctx, bytes.NewReader(data), ingest.Options{})
	if err != nil || !created || again.ImportID != job.ImportID {
		t.Fatalf("upload after restore: %v created=%v id=%s", err, created, again.ImportID)
	}
	if again = s.wait(t, again.ImportID); again.State != importer.StateCompleted || again.RowsWritten != 100 {
		t.Fatalf("import after restore %+v", again)
	}
	if n := s.count(t, "SELECT COUNT(*) FROM orders"); n != 100 {
		t.Fatalf("%d orders after the second run, want 100", n)
	}
}

// The retention sweep deletes old uploads, but not those of imports still
// running, nor new ones.
func TestSweepUploadsKeepsRunningImports(t *testing.T) {
	s, w := newStack(t, 1000, 1)
	ctx := context.Background()
	done, _, err := s.in.Start(ctx, strings.NewReader("order_id,order_amount\nS-1,1.00\n"), ingest.Options{MaxRejects: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.wait(t, done.ImportID)
	w.Stop() // the next import stays RUNNING
	running, _, err := s.in.Start(ctx, strings.NewReader("order_id,order_amount\nS-2,1.00\n"), ingest.Options{MaxRejects: 1})
	if err != nil {
		t.Fatal(err)
	}
	fresh, _, err := s.in.Start(ctx, strings.NewReader("order_id,order_amount\nS-3,1.00\n"), ingest.Options{MaxRejects: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Age the first two uploads on disk.
	old := time.Now().Add(-30 * 24 * time.Hour)
	for _, key := range []string{done.BlobKey, running.BlobKey} {
		if err := os.Chtimes(filepath.Join(s.d.Config.BlobDir(), key), old, old); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.in.SweepUploads(ctx, time.Now().Add(-7*24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("swept %d, %v; want 1", n, err)
	}
	for key, want := range map[string]bool{done.BlobKey: false, running.BlobKey: true, fresh.BlobKey: true} {
		if _, err := s.d.Store.Size(ctx, key); (err == nil) != want {
			t.Errorf("%s kept = %v, want %v (%v)", key, err == nil, want, err)
		}
	}
}
