package rotation_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ingest"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/rotation"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/internal/stacktest"
	"github.com/acme/payments/workflows"
)

// TestRotationUnderLoad rotates while an orders import and live payments
// run, and kills the worker mid-rotation: afterwards every value decrypts
// without the old key, none is left under it, every import row and live
// payment is stored once, and every order's paid_amount is the sum of its
// SUCCESS payments. PAYMENTS_ROTATION_LOAD_ROWS sets the import's size
// (default 20000; the figure is 300000) and
// PAYMENTS_ROTATION_LOAD_SEEDED the orders stored under the old key, two
// payments each (default 3000).
func TestRotationUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a stack under load")
	}
	importRows := 20000
	if s := os.Getenv("PAYMENTS_ROTATION_LOAD_ROWS"); s != "" {
		importRows, _ = strconv.Atoi(s)
	}
	seeded := 3000
	if s := os.Getenv("PAYMENTS_ROTATION_LOAD_SEEDED"); s != "" {
		seeded, _ = strconv.Atoi(s)
	}
	addr := stacktest.Temporal(t)
	cfg := stacktest.Config(t, addr)
	cfg.ImportChunkRows = 2000
	oldSpec, _ := encryption.GenerateKeySpec("old")
	oldKeys, _ := encryption.ParseKeys(oldSpec)
	// Migrate (Deps with the old key alone), then seed under it.
	oldCfg := cfg
	oldCfg.Keys = oldSpec
	stacktest.Deps(t, oldCfg)
	seedOld(t, cfg.MySQLDSN, oldKeys, seeded)

	cfg.Keys = stacktest.TestKeys + "," + oldSpec
	d := stacktest.Deps(t, cfg)
	w1 := service.NewWorker(d)
	if err := w1.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// The import, under the new primary.
	var file bytes.Buffer
	if _, err := gen.Write(&file, gen.Options{Kind: "orders", Count: importRows, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	job, _, err := service.NewIntake(d).Start(ctx, bytes.NewReader(file.Bytes()), ingest.Options{})
	if err != nil {
		t.Fatal(err)
	}

	// Live payments on the seeded (old-key) orders, through the ledger as
	// the API records them, until the rotation ends.
	stop := make(chan struct{})
	var live atomic.Int64
	var wg sync.WaitGroup
	var liveErr atomic.Value
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := g*1_000_000 + i
				p := ledger.Payment{PaymentID: fmt.Sprintf("LIVE-%d", n), OrderID: fmt.Sprintf("SEED-%07d", (n*7919)%seeded),
					Amount: 100, Method: "CARD", Status: ledger.StatusSuccess, Details: "4242424242424242"}
				res, err := d.Ledger.Record(ctx, ledger.SourceAPI, "load", []ledger.Payment{p})
				if err != nil {
					liveErr.Store(err.Error())
					return
				}
				if res[0].Outcome == ledger.Inserted {
					live.Add(1)
				}
			}
		}()
	}

	wid := workflows.RotateWorkflowID("load")
	run, err := d.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: wid, TaskQueue: workflows.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING},
		workflows.Rotate, workflows.RotateInput{RotationID: "load", KeyID: d.Keys.PrimaryID(), PageRows: 200, PagesPerStep: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Kill the worker once the rotation is under way; a second one (its
	// own connections, as another process) finishes it.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		v, err := d.Temporal.QueryWorkflow(ctx, wid, "", workflows.ProgressQuery)
		var p workflows.RotateProgress
		if err == nil && v.Get(&p) == nil && p.Rotated > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rotation made no progress")
		}
		time.Sleep(50 * time.Millisecond)
	}
	w1.Stop()
	d2 := stacktest.Deps(t, cfg)
	stacktest.Worker(t, d2)

	var p workflows.RotateProgress
	if err := run.Get(ctx, &p); err != nil {
		t.Fatal(err)
	}
	if during, err := importer.GetJob(ctx, d2.DB, job.ImportID); err == nil {
		t.Logf("when the rotation ended the import was %s with %d of %d rows written", during.State, during.RowsWritten, importRows)
	}
	close(stop)
	wg.Wait()
	if e := liveErr.Load(); e != nil {
		t.Fatalf("live payment: %v", e)
	}
	if p.State != workflows.RotationCompleted || p.Remaining != 0 {
		t.Fatalf("rotation %+v", p)
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	final, err := ingest.Follow(fctx, d2.DB, d2.Temporal, job.ImportID, 200*time.Millisecond, nil)
	if err != nil || final.State != importer.StateCompleted || final.RowsWritten != int64(importRows) {
		t.Fatalf("import %+v: %v", final, err)
	}
	t.Logf("rotation: %d rows scanned, %d rotated in %d passes, while %d import rows and %d live payments were written",
		p.Scanned, p.Rotated, p.Pass, final.RowsWritten, live.Load())
	if live.Load() == 0 {
		t.Fatal("no live payment ran during the rotation")
	}

	// Nothing left under the old key; the old key may go.
	usage, err := rotation.Status(ctx, d2.DB)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range usage {
		if u.KeyID != d.Keys.PrimaryID() {
			t.Fatalf("left under %q: %+v", u.KeyID, u)
		}
	}
	newOnly, _ := encryption.ParseKeys(stacktest.TestKeys)
	if err := rotation.CheckConfigured(ctx, d2.DB, newOnly, "PAYMENTS_KEYS"); err != nil {
		t.Fatal(err)
	}
	// Every value decrypts with the new key alone, bound to its row.
	for _, c := range rotation.Columns {
		pk := "order_id"
		if c.Table == rotation.Payments {
			pk = "payment_id"
		}
		rows, err := d2.DB.Query(fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s IS NOT NULL", pk, c.Name, c.Table, c.Name))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var id string
			var ct []byte
			if err := rows.Scan(&id, &ct); err != nil {
				t.Fatal(err)
			}
			if _, err := newOnly.Decrypt(ct, encryption.AAD(string(c.Table), c.Name, id)); err != nil {
				t.Fatalf("%s %s: %v", c, id, err)
			}
			n++
		}
		rows.Close()
		if n == 0 {
			t.Fatalf("%s: no values", c)
		}
	}
	// Nothing lost or counted twice.
	var payments, orders, wrong int64
	_ = d2.DB.Get(&payments, "SELECT COUNT(*) FROM payments")
	_ = d2.DB.Get(&orders, "SELECT COUNT(*) FROM orders")
	if payments != int64(2*seeded)+live.Load() || orders != int64(seeded+importRows) {
		t.Fatalf("%d payments (want %d), %d orders (want %d)", payments, int64(2*seeded)+live.Load(), orders, seeded+importRows)
	}
	if err := d2.DB.Get(&wrong, `SELECT COUNT(*) FROM orders o WHERE o.paid_amount <> (SELECT COALESCE(SUM(payment_amount), 0)
		FROM payments p WHERE p.order_id = o.order_id AND p.payment_status = 'SUCCESS')`); err != nil || wrong != 0 {
		t.Fatalf("%d orders whose paid_amount is not their SUCCESS payments' sum (%v)", wrong, err)
	}
}
