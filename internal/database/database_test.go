package database_test

import (
	"context"
	"strings"
	"testing"

	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/dbtest"
)

func TestMigrateCreatesSchemaAndIsIdempotent(t *testing.T) {
	dsn := dbtest.DSN(t)
	ctx := context.Background()
	if _, err := database.Open(ctx, dsn); err == nil {
		t.Fatal("Open of a database that does not exist yet succeeded; only Create makes it")
	}
	if err := database.Create(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	db, err := database.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v1, err := database.Migrate(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := database.Migrate(ctx, db, nil)
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if v1 != v2 || v1 < 2 {
		t.Fatalf("schema versions %d then %d", v1, v2)
	}
	for _, table := range []string{"orders", "payments", "payment_events", "import_jobs", "import_chunks", "import_rejects", "export_jobs", "export_chunks"} {
		var n int
		if err := db.Get(&n, "SELECT COUNT(*) FROM "+table); err != nil {
			t.Errorf("table %s: %v", table, err)
		}
	}
	// The schema itself refuses what the rules forbid.
	_, err = db.Exec(`INSERT INTO orders (order_id, order_amount, currency, created_at, updated_at) VALUES ('o1', 0, 'USD', NOW(6), NOW(6))`)
	if err == nil {
		t.Fatal("a zero order_amount was stored")
	}
	_, err = db.Exec(`INSERT INTO payments (payment_id, order_id, payment_amount, currency, payment_status, payment_method, created_at, updated_at) VALUES ('p1', 'missing', 100, 'USD', 'PENDING', 'CARD', NOW(6), NOW(6))`)
	if err == nil {
		t.Fatal("a payment for a missing order was stored")
	}
}

func TestOpenReportsUnreachableServerWithoutPassword(t *testing.T) {
	_, err := database.Open(context.Background(), "root:s3cretpw@tcp(127.0.0.1:1)/x?timeout=1s")
	if err == nil {
		t.Fatal("expected an error")
	}
	if strings.Contains(err.Error(), "s3cretpw") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func TestQuoteIdent(t *testing.T) {
	if got := database.QuoteIdent("a`b"); got != "`a``b`" {
		t.Fatalf("got %s", got)
	}
}
