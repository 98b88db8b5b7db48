package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ingest"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/workflows"
)

// An import that failed on max_rejects is retried with a higher limit
// without its file: the retry is the import an upload with that limit
// would start, writes only the rows the failed one did not (the others are
// unchanged), and rejects every bad row; the same limit again is refused.
func TestRetryWithAHigherMaxRejects(t *testing.T) {
	s, _ := newStack(t, 500, 2)
	ctx := context.Background()
	data, st := genFile(t, gen.Options{Kind: "orders", Count: 6000, BadRate: 0.1, Seed: 21})
	if st.Bad != 600 {
		t.Fatalf("%d bad rows", st.Bad)
	}
	job, _, err := s.in.Start(ctx, bytes.NewReader(data), ingest.Options{MaxRejects: 100})
	if err != nil {
		t.Fatal(err)
	}
	failed := s.wait(t, job.ImportID)
	if failed.State != importer.StateFailed || failed.ChunksDone >= failed.ChunksTotal || failed.RowsWritten == 0 {
		t.Fatalf("first import: %+v", failed)
	}
	// Its message counts what the job counts.
	if !strings.Contains(*failed.Error, " "+itoa(failed.RowsRejected)+" rows rejected") || !strings.Contains(*failed.Error, "stopped after "+itoa(int64(failed.ChunksDone))+" of 12 chunks") {
		t.Fatalf("message %q, job %+v", *failed.Error, failed)
	}

	if _, _, err := s.in.Retry(ctx, failed.ImportID, ingest.RetryOptions{}); !errors.Is(err, ingest.ErrStillOverLimit) {
		t.Fatalf("retry with the same limit: %v", err)
	}
	limit := int64(1000)
	retry, how, err := s.in.Retry(ctx, failed.ImportID, ingest.RetryOptions{MaxRejects: &limit})
	if err != nil || how != ingest.RetryStarted || retry.ImportID == failed.ImportID || retry.MaxRejects != 1000 {
		t.Fatalf("retry: %v %s %+v", err, how, retry)
	}
	done := s.wait(t, retry.ImportID)
	if done.State != importer.StateCompleted || done.RowsRead != 6000 || done.RowsRejected != 600 ||
		done.RowsUnchanged != failed.RowsWritten || done.RowsWritten != 5400-failed.RowsWritten {
		t.Fatalf("retried import %+v after %+v", done, failed)
	}
	if n := s.count(t, "SELECT COUNT(*) FROM orders"); n != 5400 {
		t.Fatalf("%d orders", n)
	}
	if n := s.count(t, "SELECT COUNT(*) FROM import_rejects WHERE import_id = ?", done.ImportID); n != 600 {
		t.Fatalf("%d rejects recorded", n)
	}
	// The failed import stays as it was.
	if again, _ := importer.GetJob(ctx, s.d.DB, failed.ImportID); again.State != importer.StateFailed || again.RowsWritten != failed.RowsWritten {
		t.Fatalf("the failed import changed: %+v", again)
	}
	// The same file uploaded with that limit is that import; retrying it
	// again only finds it.
	up, created, err := s.in.Start(ctx, bytes.NewReader(data), ingest.Options{MaxRejects: 1000})
	if err != nil || created || up.ImportID != done.ImportID {
		t.Fatalf("upload with the retry's options: %v created=%v %s (retry %s)", err, created, up.ImportID, done.ImportID)
	}
	if j, how, err := s.in.Retry(ctx, failed.ImportID, ingest.RetryOptions{MaxRejects: &limit}); err != nil || how != ingest.RetryExists || j.ImportID != done.ImportID {
		t.Fatalf("retry again: %v %s %+v", err, how, j)
	}
	if _, _, err := s.in.Retry(ctx, done.ImportID, ingest.RetryOptions{}); !errors.Is(err, importer.ErrNotRetryable) {
		t.Fatalf("retry of a completed import: %v", err)
	}
	if _, _, err := s.in.Retry(ctx, "no-such-import", ingest.RetryOptions{}); !errors.Is(err, importer.ErrJobNotFound) {
		t.Fatalf("retry of an unknown import: %v", err)
	}
}

// A cancelled import retried with its own options is the same import run
// again: the chunks it committed are found in the chunk ledger and neither
// written nor counted again.
func TestRetryOfACancelledImportSkipsItsCommittedChunks(t *testing.T) {
	s, w1 := newStack(t, 200, 2)
	ctx := context.Background()
	data, _ := genFile(t, gen.Options{Kind: "orders", Count: 6000, Seed: 22})
	job, _, err := s.in.Start(ctx, bytes.NewReader(data), ingest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
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
	}
	// No worker while the cancel is asked, so the import cannot finish first.
	w1.Stop()
	if err := ingest.Cancel(ctx, s.d.Temporal, job.ImportID); err != nil {
		t.Fatal(err)
	}
	w2 := service.NewWorker(s.d)
	if err := w2.Start(); err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	cancelled := s.wait(t, job.ImportID)
	if cancelled.State != importer.StateCancelled || cancelled.ChunksDone >= 30 {
		t.Fatalf("cancelled import: %+v", cancelled)
	}
	committed := s.count(t, "SELECT COUNT(*) FROM import_chunks WHERE import_id = ?", job.ImportID)
	if committed != int64(cancelled.ChunksDone) || s.count(t, "SELECT COUNT(*) FROM orders") != cancelled.RowsWritten {
		t.Fatalf("%d chunks in the ledger for %+v", committed, cancelled)
	}

	again, how, err := s.in.Retry(ctx, job.ImportID, ingest.RetryOptions{})
	if err != nil || how != ingest.RetryRestarted || again.ImportID != job.ImportID || again.State != importer.StateRunning {
		t.Fatalf("retry: %v %s %+v", err, how, again)
	}
	final := s.wait(t, job.ImportID)
	if final.State != importer.StateCompleted || final.Error != nil || final.RowsRead != 6000 || final.RowsWritten != 6000 ||
		final.RowsUnchanged != 0 || final.ChunksDone != 30 {
		t.Fatalf("after the retry (cancelled at %d chunks): %+v", cancelled.ChunksDone, final)
	}
	if n := s.count(t, "SELECT COUNT(*) FROM orders"); n != 6000 {
		t.Fatalf("%d orders", n)
	}
	if n := s.count(t, "SELECT COUNT(*) FROM import_chunks WHERE import_id = ?", job.ImportID); n != 30 {
		t.Fatalf("%d chunk-ledger rows", n)
	}
	// The new run counted the committed chunks from the ledger, once.
	var p workflows.Progress
	if err := s.d.Temporal.GetWorkflow(ctx, job.WorkflowID, "").Get(ctx, &p); err != nil {
		t.Fatal(err)
	}
	if p.State != importer.StateCompleted || p.RowsRead != 6000 || p.RowsWritten != 6000 || p.ChunksDone != 30 {
		t.Fatalf("the new run's result: %+v", p)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
