// Package dbtest gives integration tests their own migrated database on the
// real MySQL server, dropped when the test ends.
package dbtest

import (
	"context"
	"os"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/database"
)

// ServerDSN is the MySQL server the tests use: PAYMENTS_TEST_MYSQL_DSN, or
// the local development server. Its database name is ignored.
func ServerDSN() string {
	if dsn := os.Getenv("PAYMENTS_TEST_MYSQL_DSN"); dsn != "" {
		return dsn
	}
	return "root@tcp(127.0.0.1:3306)/"
}

// DSN names a fresh database for t and returns its DSN; New creates it.
// The database is dropped when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	dsn, name, drop, err := database.Scratch(ServerDSN(), "payments_test_")
	if err != nil {
		t.Fatalf("dbtest: PAYMENTS_TEST_MYSQL_DSN: %v", err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("dbtest: drop %s: %v", name, err)
		}
	})
	return dsn
}

// New returns a connection pool to a fresh database with every migration
// applied. The pool is closed and the database dropped when t ends.
func New(t testing.TB) *sqlx.DB {
	t.Helper()
	db, _ := newDB(t)
	return db
}

// NewWithText is New with a second pool to the same database from
// database.OpenText, as exports read.
func NewWithText(t testing.TB) (db, text *sqlx.DB) {
	t.Helper()
	db, dsn := newDB(t)
	text, err := database.OpenText(context.Background(), dsn)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() { text.Close() })
	return db, text
}

func newDB(t testing.TB) (*sqlx.DB, string) {
	t.Helper()
	dsn := DSN(t)
	ctx := context.Background()
	if err := database.Create(ctx, dsn); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	db, err := database.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := database.Migrate(ctx, db, nil); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	return db, dsn
}
