package importer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/records"
	"github.com/acme/payments/internal/stacktest"
	"github.com/acme/payments/internal/testlog"
)

func newImporter(t *testing.T) *importer.Importer {
	t.Helper()
	db := dbtest.New(t)
	keys, err := encryption.ParseKeys(stacktest.TestKeys)
	if err != nil {
		t.Fatal(err)
	}
	bidx, err := encryption.ParseBlindIndexKey(stacktest.TestBlindIndexKey)
	if err != nil {
		t.Fatal(err)
	}
	return &importer.Importer{DB: db, Keys: keys, BlindIndex: bidx, Ledger: &ledger.Ledger{DB: db, Keys: keys}}
}

// plan plans data and creates its job row.
func plan(t *testing.T, im *importer.Importer, id string, data []byte, rows int) *records.Plan {
	t.Helper()
	p, err := records.PlanChunks(bytes.NewReader(data), "", rows, records.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := importer.CreateJob(context.Background(), im.DB, importer.Job{ImportID: id, WorkflowID: "import/" + id, BlobKey: "k", ContentSHA256: "x", MaxRejects: 100}); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, im *importer.Importer, id string, data []byte, p *records.Plan, c records.Chunk) importer.ChunkResult {
	t.Helper()
	res, err := im.ImportChunk(context.Background(), importer.ChunkSpec{ImportID: id, Kind: p.Kind, Format: p.Format, Header: p.Header, Chunk: c},
		bytes.NewReader(data[c.Start:c.End]), func() {})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestReplayedChunkWritesNothingTwice(t *testing.T) {
	im := newImporter(t)
	data := []byte("order_id,order_amount,customer_email\nA,1.00,a@example.com\nB,2.00,b@example.com\nC,bad,c@example.com\n")
	p := plan(t, im, "imp1", data, 10)
	first := run(t, im, "imp1", data, p, p.Chunks[0])
	again := run(t, im, "imp1", data, p, p.Chunks[0])
	if first.Replayed || !again.Replayed || first.RowsWritten != 2 || first.RowsRejected != 1 ||
		again.RowsWritten != first.RowsWritten || again.RowsRejected != first.RowsRejected {
		t.Fatalf("first %+v again %+v", first, again)
	}
	var orders, rejects, chunks int
	_ = im.DB.Get(&orders, "SELECT COUNT(*) FROM orders")
	_ = im.DB.Get(&rejects, "SELECT COUNT(*) FROM import_rejects")
	_ = im.DB.Get(&chunks, "SELECT COUNT(*) FROM import_chunks")
	if orders != 2 || rejects != 1 || chunks != 1 {
		t.Fatalf("orders %d rejects %d chunks %d", orders, rejects, chunks)
	}
	j, _ := importer.GetJob(context.Background(), im.DB, "imp1")
	if j.RowsWritten != 2 || j.RowsRejected != 1 || j.ChunksDone != 1 {
		t.Fatalf("job counted the replay: %+v", j)
	}
}

func TestSameIDAcrossChunksOfOneFile(t *testing.T) {
	im := newImporter(t)
	// Chunks of one row each: X twice identical, Y twice different.
	data := []byte("order_id,order_amount,customer_email\nX,1.00,x@example.com\nY,1.00,y@example.com\nX,1.00,x@example.com\nY,9.00,y@example.com\n")
	p := plan(t, im, "imp2", data, 1)
	var written, unchanged, rejected int64
	for _, c := range p.Chunks {
		r := run(t, im, "imp2", data, p, c)
		written += r.RowsWritten
		unchanged += r.RowsUnchanged
		rejected += r.RowsRejected
	}
	if written != 2 || unchanged != 1 || rejected != 1 {
		t.Fatalf("written %d unchanged %d rejected %d", written, unchanged, rejected)
	}
	var code string
	var record int64
	if err := im.DB.QueryRow("SELECT code, record_no FROM import_rejects WHERE import_id = 'imp2'").Scan(&code, &record); err != nil {
		t.Fatal(err)
	}
	if code != ledger.CodeDuplicateConflict || record != 4 {
		t.Fatalf("reject %s at record %d", code, record)
	}
	var amount int64
	_ = im.DB.Get(&amount, "SELECT order_amount FROM orders WHERE order_id = 'Y'")
	if amount != 100 {
		t.Fatalf("Y holds %d: the first row must win", amount)
	}
}

func TestStoredOrdersAreEncryptedAndIndexed(t *testing.T) {
	im := newImporter(t)
	data := []byte("order_id,order_amount,customer_email,customer_phone\nE1,1.00, Jane@Example.com ,\"+1 555\\t0100\"\n")
	p := plan(t, im, "imp3", data, 10)
	run(t, im, "imp3", data, p, p.Chunks[0])
	var email, phone, bidx []byte
	if err := im.DB.QueryRow("SELECT customer_email, customer_phone, customer_email_bidx FROM orders WHERE order_id = 'E1'").Scan(&email, &phone, &bidx); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(email, []byte("Example")) || bytes.Contains(phone, []byte("555")) {
		t.Fatal("plaintext at rest")
	}
	plain, err := im.Keys.Decrypt(email, encryption.AAD("orders", "customer_email", "E1"))
	if err != nil || string(plain) != "Jane@Example.com" {
		t.Fatalf("email %q %v", plain, err)
	}
	plain, err = im.Keys.Decrypt(phone, encryption.AAD("orders", "customer_phone", "E1"))
	if err != nil || string(plain) != "+1 555\\t0100" {
		t.Fatalf("phone %q %v (binary escaping)", plain, err)
	}
	if !bytes.Equal(bidx, im.BlindIndex.Email("jane@example.com")) {
		t.Fatal("blind index does not match a normalised look-up")
	}
}

func TestChunkOfAnEndedImportWritesNothing(t *testing.T) {
	im := newImporter(t)
	data := []byte("order_id,order_amount,customer_email\nA,1.00,a@example.com\nB,2.00,b@example.com\n")
	p := plan(t, im, "imp-ended", data, 1)
	run(t, im, "imp-ended", data, p, p.Chunks[0])
	if err := importer.Finish(context.Background(), im.DB, "imp-ended", importer.StateCancelled, "cancelled by the user"); err != nil {
		t.Fatal(err)
	}
	c := p.Chunks[1]
	_, err := im.ImportChunk(context.Background(), importer.ChunkSpec{ImportID: "imp-ended", Kind: p.Kind, Format: p.Format, Header: p.Header, Chunk: c},
		bytes.NewReader(data[c.Start:c.End]), func() {})
	if !errors.Is(err, importer.ErrJobEnded) {
		t.Fatalf("chunk after cancel: %v, want ErrJobEnded", err)
	}
	var orders, chunks int
	_ = im.DB.Get(&orders, "SELECT COUNT(*) FROM orders")
	_ = im.DB.Get(&chunks, "SELECT COUNT(*) FROM import_chunks")
	if orders != 1 || chunks != 1 {
		t.Fatalf("after cancel: %d orders, %d chunk rows; want the first chunk's only", orders, chunks)
	}
	j, _ := importer.GetJob(context.Background(), im.DB, "imp-ended")
	if j.State != importer.StateCancelled || j.ChunksDone != 1 || j.RowsWritten != 1 {
		t.Fatalf("job %+v", j)
	}
}

func TestSameIDWithinOneChunk(t *testing.T) {
	im := newImporter(t)
	data := []byte("order_id,order_amount,customer_email\nB,1.00,b@example.com\nA,1.00,a@example.com\nB,1.00,b@example.com\nA,2.00,a@example.com\n")
	p := plan(t, im, "imp-dup", data, 10)
	res := run(t, im, "imp-dup", data, p, p.Chunks[0])
	if res.RowsWritten != 2 || res.RowsUnchanged != 1 || res.RowsRejected != 1 {
		t.Fatalf("%+v: want 2 written, the repeated B unchanged, the different A rejected", res)
	}
	var code string
	var line int
	if err := im.DB.QueryRow("SELECT code, line_no FROM import_rejects WHERE import_id = 'imp-dup'").Scan(&code, &line); err != nil {
		t.Fatal(err)
	}
	if code != ledger.CodeDuplicateConflict || line != 5 {
		t.Fatalf("reject %s at line %d, want %s at line 5", code, line, ledger.CodeDuplicateConflict)
	}
}

func TestPaymentsChunkFindsOnlyItsOpenOrders(t *testing.T) {
	im := newImporter(t)
	orders := []byte("order_id,order_amount,customer_email\nA,5.00,a@example.com\nB,5.00,b@example.com\nD,5.00,d@example.com\n")
	p := plan(t, im, "imp-o", orders, 10)
	run(t, im, "imp-o", orders, p, p.Chunks[0])
	// B is ours and open; C lies between our ids and Z after them, open but not ours.
	for _, id := range []string{"B", "C", "Z"} {
		if _, err := im.DB.Exec("INSERT INTO order_workflows (order_id, opened_at) VALUES (?, NOW(6))", id); err != nil {
			t.Fatal(err)
		}
	}
	pays := []byte("payment_id,order_id,payment_amount,payment_method,payment_status\nP1,A,1.00,CARD,SUCCESS\nP2,B,1.00,CARD,SUCCESS\nP3,D,1.00,CARD,PENDING\nP4,B,1.00,CARD,FAILED\n")
	pp := plan(t, im, "imp-p", pays, 10)
	res := run(t, im, "imp-p", pays, pp, pp.Chunks[0])
	if res.RowsWritten != 4 || len(res.OpenOrders) != 1 || res.OpenOrders[0] != "B" {
		t.Fatalf("%+v open %v: want 4 written and only B open", res, res.OpenOrders)
	}
	// A retry after the commit (the first run stopped before waking B)
	// writes nothing and still names B.
	again := run(t, im, "imp-p", pays, pp, pp.Chunks[0])
	if !again.Replayed || len(again.OpenOrders) != 1 || again.OpenOrders[0] != "B" {
		t.Fatalf("replayed %+v open %v: want B woken again", again, again.OpenOrders)
	}
}

// Two chunks imported at once, each ending with an id the other one holds
// (a file's duplicates that cross chunk boundaries), do not deadlock: rows
// go in in id order. In file order each chunk held the row the other
// waited for, and MariaDB killed one with error 1213.
func TestCrossingDuplicatesInParallelChunksDoNotDeadlock(t *testing.T) {
	im := newImporter(t)
	var retries atomic.Int64
	im.OnRetry = func(_ int, err error) {
		retries.Add(1)
		t.Logf("retried: %v", err)
	}
	const n = 5000
	row := func(b *bytes.Buffer, id string) { fmt.Fprintf(b, "%s,1.00,%s@example.com\n", id, id) }
	for round := range 5 {
		var data bytes.Buffer
		data.WriteString("order_id,order_amount,customer_email\n")
		for _, c := range []struct{ own, other string }{{"A", "B"}, {"B", "A"}} {
			for i := range n {
				row(&data, fmt.Sprintf("R%d-%s%05d", round, c.own, i))
			}
			row(&data, fmt.Sprintf("R%d-%s%05d", round, c.other, n/2))
		}
		id := fmt.Sprintf("cross%d", round)
		p := plan(t, im, id, data.Bytes(), n+1)
		if len(p.Chunks) != 2 {
			t.Fatalf("%d chunks, want 2", len(p.Chunks))
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		results := make([]importer.ChunkResult, 2)
		errs := make([]error, 2)
		for i, c := range p.Chunks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i], errs[i] = im.ImportChunk(context.Background(), importer.ChunkSpec{ImportID: id, Kind: p.Kind,
					Format: p.Format, Header: p.Header, Chunk: c}, bytes.NewReader(data.Bytes()[c.Start:c.End]), func() {})
			}()
		}
		close(start)
		wg.Wait()
		var written, unchanged int64
		for i := range results {
			if errs[i] != nil {
				t.Fatalf("round %d chunk %d: %v", round, i, errs[i])
			}
			written += results[i].RowsWritten
			unchanged += results[i].RowsUnchanged
		}
		if written != 2*n || unchanged != 2 {
			t.Fatalf("round %d: written %d unchanged %d, want %d and 2", round, written, unchanged, 2*n)
		}
	}
	if r := retries.Load(); r != 0 {
		t.Fatalf("%d chunk transactions retried after a conflict, want none", r)
	}
}

// A chunk whose transaction hits a transient conflict (here a lock wait
// timeout on a row another transaction holds; a deadlock takes the same
// path) is re-run in place and logged at WARN with its reason, and the
// activity does not fail.
func TestChunkRetriedAfterAConflictIsAWarning(t *testing.T) {
	ctx := context.Background()
	dsn := dbtest.DSN(t)
	if err := database.Create(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	// The importer's sessions give up waiting for a lock after a second.
	db, err := database.Open(ctx, dsn+"&innodb_lock_wait_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := database.Migrate(ctx, db, nil); err != nil {
		t.Fatal(err)
	}
	holder, err := database.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Close() })
	im := newImporter(t)
	im.DB, im.Ledger = db, &ledger.Ledger{DB: db, Keys: im.Keys}
	var logged testlog.Buffer
	im.Logger = slog.New(slog.NewJSONHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var retries atomic.Int64
	im.OnRetry = func(int, error) { retries.Add(1) }

	data := []byte("order_id,order_amount,customer_email\nL1,1.00,l@example.com\nL2,2.00,m@example.com\n")
	p := plan(t, im, "lock1", data, 10)
	tx, err := holder.BeginTxx(ctx, ledger.TxOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO orders (order_id, order_amount, currency, created_at, updated_at) VALUES ('L2', 200, 'USD', NOW(6), NOW(6))`); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		res importer.ChunkResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		c := p.Chunks[0]
		res, err := im.ImportChunk(ctx, importer.ChunkSpec{ImportID: "lock1", Kind: p.Kind, Format: p.Format, Header: p.Header, Chunk: c},
			bytes.NewReader(data[c.Start:c.End]), func() {})
		done <- outcome{res, err}
	}()
	// Hold L2 until the chunk has given up on it once, then let it in.
	for retries.Load() == 0 {
		select {
		case o := <-done:
			t.Fatalf("chunk ended while L2 was held: %+v %v", o.res, o.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	o := <-done
	if o.err != nil {
		t.Fatalf("chunk: %v\nlog:\n%s", o.err, logged.String())
	}
	if o.res.RowsWritten != 2 || o.res.RowsRejected != 0 {
		t.Fatalf("chunk %+v, want both rows written", o.res)
	}
	out := logged.String()
	if !strings.Contains(out, `"level":"WARN"`) || !strings.Contains(out, "Lock wait timeout") ||
		!strings.Contains(out, `"chunk":0`) || strings.Contains(out, `"level":"ERROR"`) {
		t.Fatalf("log, want a WARN naming the chunk and the conflict, no ERROR:\n%s", out)
	}
	j, err := importer.GetJob(ctx, db, "lock1")
	if err != nil || j.RowsWritten != 2 || j.ChunksDone != 1 {
		t.Fatalf("job %+v %v: the retry must count once", j, err)
	}
}
