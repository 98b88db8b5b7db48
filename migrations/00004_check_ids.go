package migrations

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/pressly/goose/v3"

	"github.com/acme/payments/internal/ident"
	"github.com/acme/payments/internal/mask"
)

// Go returns the migrations written in Go, to be applied with the SQL ones
// of FS in version order.
func Go() []*goose.Migration {
	return []*goose.Migration{
		// Version 4 changes no table: it refuses to go on while a stored id
		// breaks the id rule of package ident, which the ledger follows
		// since this version (it used to allow inner spaces and count
		// characters, not bytes), so an operator renames such ids first
		// instead of meeting them as rejects and failed look-ups.
		goose.NewGoMigration(4, &goose.GoFunc{RunTx: CheckIDs}, &goose.GoFunc{RunTx: func(context.Context, *sql.Tx) error { return nil }}),
	}
}

// CheckIDs returns an error naming the stored order and payment ids that
// break ident.Check, at most a few of each, or nil when there are none.
func CheckIDs(ctx context.Context, tx *sql.Tx) error {
	var problems []string
	for _, c := range []struct{ table, column string }{{"orders", "order_id"}, {"payments", "payment_id"}} {
		bad, n, err := badIDs(ctx, tx, c.table, c.column)
		if err != nil {
			return err
		}
		if n > 0 {
			problems = append(problems, fmt.Sprintf("%d %s.%s values (%s)", n, c.table, c.column, strings.Join(bad, ", ")))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("stored ids break the id rule (1-%d bytes of UTF-8 without white space or control characters): %s; rename them, then migrate again",
			ident.MaxLen, strings.Join(problems, "; "))
	}
	return nil
}

// badIDs reads the column's values that hold anything but printable ASCII
// (every id that can break the rule does) and checks those exactly.
func badIDs(ctx context.Context, tx *sql.Tx, table, column string) (examples []string, n int, err error) {
	// Both MariaDB's and MySQL 8's REGEXP read this class the same way.
	rows, err := tx.QueryContext(ctx, "SELECT "+column+" FROM "+table+" WHERE "+column+" REGEXP '[^!-~]'")
	if err != nil {
		return nil, 0, fmt.Errorf("check %s.%s: %w", table, column, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, 0, fmt.Errorf("check %s.%s: %w", table, column, err)
		}
		if ident.Check(id) == "" {
			continue
		}
		if n++; len(examples) < 5 {
			examples = append(examples, fmt.Sprintf("%q", mask.Clip(id)))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("check %s.%s: %w", table, column, err)
	}
	return examples, n, nil
}
