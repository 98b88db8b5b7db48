package bench

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/importer"
)

// The floor stores exactly what a real import stores: the same rows, ids
// and values, ciphertexts and blind indexes of the same lengths, the same
// audit events and the same order figures after the payments. Several
// chunks and streams, so chunk cutting and stream hand-out are covered.
func TestFloorStoresWhatTheImportStores(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded stack")
	}
	ctx := context.Background()
	dir := t.TempDir()
	o := Options{ServerDSN: dbtest.ServerDSN(), Dir: dir, ChunkRows: 700, Parallelism: 2, Logger: slog.New(slog.DiscardHandler)}
	ordersCSV := filepath.Join(dir, "orders.csv")
	paymentsCSV := filepath.Join(dir, "payments.csv")
	if _, err := WriteFile(ordersCSV, gen.Options{Kind: "orders", Count: 3000, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteFile(paymentsCSV, gen.Options{Kind: "payments", Count: 4000, Orders: 2000, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	s, err := StartStack(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db := s.Deps.DB
	var ordersJob importer.Job
	for _, path := range []string{ordersCSV, paymentsCSV} {
		job, _, err := s.Import(ctx, path, "")
		if err != nil {
			t.Fatal(err)
		}
		if job.State != importer.StateCompleted || job.RowsRejected != 0 {
			t.Fatalf("%s: %+v", path, job)
		}
		if path == ordersCSV {
			ordersJob = job
		}
	}

	sh, err := shapeOf(s.Deps.Keys, s.Deps.BlindIndex)
	if err != nil {
		t.Fatal(err)
	}
	now := floorNow()
	of, err := buildOrdersFloor(ordersCSV, filepath.Join(dir, "floor-orders.tsv"), o.ChunkRows, sh, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(of.spans) != ordersJob.ChunksTotal {
		t.Fatalf("orders floor in %d chunks, the import had %d", len(of.spans), ordersJob.ChunksTotal)
	}
	pf, err := buildPaymentsFloor(paymentsCSV, ordersCSV, dir, o.ChunkRows, sh, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrdersFloor(ctx, db, of, 2, now); err != nil {
		t.Fatal(err)
	}
	if _, err := loadPaymentsFloor(ctx, db, pf, 4, now); err != nil {
		t.Fatal(err)
	}
	if _, err := updateOrdersFloor(ctx, db, pf, now); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := dropAllFloorTables(ctx, db); err != nil {
			t.Error(err)
		}
	}()

	for _, c := range []struct{ real, floor, query string }{
		{"orders", floorOrders, `SELECT order_id, order_amount, currency, order_status, paid_amount, LENGTH(customer_email),
			LENGTH(customer_phone), LENGTH(customer_email_bidx), created_at, customer_email_kid, customer_phone_kid
			FROM %s ORDER BY order_id`},
		{"payments", floorPayments, `SELECT payment_id, order_id, payment_amount, currency, payment_status, payment_method,
			LENGTH(payment_details), gateway_ref, failure_reason, created_at, payment_details_kid FROM %s ORDER BY payment_id`},
		{"payment_events", floorEvents, `SELECT payment_id, order_id, from_status, to_status, source, LENGTH(reference),
			applied, note FROM %s ORDER BY payment_id, event_id`},
	} {
		want := rowsOf(t, db, fmt.Sprintf(c.query, c.real))
		got := rowsOf(t, db, fmt.Sprintf(c.query, c.floor))
		if len(want) == 0 {
			t.Fatalf("the import stored no %s", c.real)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: the floor stored %d rows, the import %d", c.real, len(got), len(want))
		}
		for i := range want {
			if !slices.Equal(got[i], want[i]) {
				t.Fatalf("%s row %d: floor %q, import %q", c.real, i, got[i], want[i])
			}
		}
	}
	// Not a vacuous comparison: the payments completed some orders and
	// left others partly paid.
	var completed, partly int
	if err := db.QueryRow(`SELECT SUM(order_status = 'COMPLETED'), SUM(order_status = 'PENDING' AND paid_amount > 0) FROM orders`).
		Scan(&completed, &partly); err != nil {
		t.Fatal(err)
	}
	if completed == 0 || partly == 0 {
		t.Fatalf("the import completed %d orders and partly paid %d; the test needs both", completed, partly)
	}

	ph, err := importPhases(ctx, s.Deps.Temporal, ordersJob.WorkflowID)
	if err != nil {
		t.Fatal(err)
	}
	if ph.chunks != ordersJob.ChunksTotal || ph.planStart.IsZero() || ph.firstChunk.Before(ph.planEnd) || ph.lastChunk.Before(ph.firstChunk) {
		t.Fatalf("phases %+v of an import of %d chunks", ph, ordersJob.ChunksTotal)
	}
}

// rowsOf reads every row of q as text, NULL as "<NULL>".
func rowsOf(t *testing.T, db *sqlx.DB, q string) [][]string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = "<NULL>"
			if v.Valid {
				row[i] = v.String
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
