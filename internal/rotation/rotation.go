// Package rotation re-encrypts the service's encrypted columns under the
// keyring's primary key, page by page, while imports and live payments go
// on; reports which key ids the stored rows use; and refuses a keyring that
// lacks a key the rows still need.
//
// # Finding key ids
//
// Migration 00008 gives every encrypted column a VIRTUAL generated column
// holding the key id of its ciphertext header (`customer_email_kid`, …),
// with an index. The database computes it from the stored bytes, so it
// cannot drift from the rows the way a summary kept by writers could, and
// the distinct ids of a column are read with a loose index scan: a few
// index dives however many rows there are, cheap enough for every start-up.
//
// # Locking
//
// A page is a keyset page of the table's primary key. Its key ids are read
// with a plain read (no locks); only the rows under another key than the
// primary are then locked and rewritten, in one short READ COMMITTED
// transaction, in the ledger's order: orders by ascending order_id, and for
// payments first their orders (ascending order_id) and then the payments
// (ascending payment_id), because the ledger writes a payment only while it
// holds its order's lock and relies on that (package ledger). Rotation
// therefore never waits in a cycle with the ledger, the importer or the
// API, and rows it does not rewrite are never locked.
//
// A rewrite decrypts the value with its old key and encrypts it under the
// primary with the same AAD (table, column, primary key), so the binding
// of a value to its row survives. updated_at is left alone: the row's data
// did not change.
package rotation

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/encryption"
)

// Table is a table with encrypted columns, in the order rotation walks
// them (orders first, as the ledger locks them first).
type Table string

// The tables rotation walks.
const (
	Orders   Table = encryption.TableOrders
	Payments Table = encryption.TablePayments
)

// Tables lists the tables rotation walks, in order.
var Tables = []Table{Orders, Payments}

// Column is an encrypted column and the generated column holding its key
// id.
type Column struct {
	Table Table
	Name  string
	// KeyIDColumn is the generated column of migration 00008.
	KeyIDColumn string
}

// Columns lists every encrypted column.
var Columns = []Column{
	{Orders, encryption.ColumnCustomerEmail, "customer_email_kid"},
	{Orders, encryption.ColumnCustomerPhone, "customer_phone_kid"},
	{Payments, encryption.ColumnPaymentDetails, "payment_details_kid"},
}

// String is "table.column".
func (c Column) String() string { return string(c.Table) + "." + c.Name }

// ParseTable checks a table name.
func ParseTable(s string) (Table, error) {
	for _, t := range Tables {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("rotation: unknown table %q", s)
}

// pk is the primary key column of t.
func (t Table) pk() string {
	if t == Payments {
		return "payment_id"
	}
	return "order_id"
}

// columns are t's encrypted columns.
func (t Table) columns() []Column {
	var out []Column
	for _, c := range Columns {
		if c.Table == t {
			out = append(out, c)
		}
	}
	return out
}

// Usage is how many rows of a column a key id protects.
type Usage struct {
	Table  string `json:"table"`
	Column string `json:"column"`
	KeyID  string `json:"key_id"`
	Rows   int64  `json:"rows"`
}

// Status counts, for every encrypted column, the rows under each key id
// (NULL values are not counted). It reads the key-id indexes only, never
// the rows. Results are ordered by table, column and key id.
func Status(ctx context.Context, db sqlx.QueryerContext) ([]Usage, error) {
	var out []Usage
	for _, c := range Columns {
		q := fmt.Sprintf("SELECT %[1]s, COUNT(*) FROM %[2]s FORCE INDEX (idx_%[3]s) WHERE %[1]s IS NOT NULL GROUP BY %[1]s ORDER BY %[1]s",
			c.KeyIDColumn, c.Table, indexSuffix(c))
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("rotation: count key ids of %s: %w", c, err)
		}
		for rows.Next() {
			u := Usage{Table: string(c.Table), Column: c.Name}
			if err := rows.Scan(&u.KeyID, &u.Rows); err != nil {
				rows.Close()
				return nil, fmt.Errorf("rotation: count key ids of %s: %w", c, err)
			}
			out = append(out, u)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("rotation: count key ids of %s: %w", c, err)
		}
	}
	return out, nil
}

// indexSuffix names the key-id index of c after its "idx_" prefix.
func indexSuffix(c Column) string {
	switch c.KeyIDColumn {
	case "customer_email_kid":
		return "orders_email_kid"
	case "customer_phone_kid":
		return "orders_phone_kid"
	default:
		return "payments_details_kid"
	}
}

// KeyIDsInUse returns the distinct key ids of column c by skipping through
// its key-id index: one index dive per distinct id, whatever the row count
// and whatever the optimizer's statistics (a SELECT DISTINCT gets a loose
// index scan only while they are fresh: right after a bulk load it read
// the whole index, seconds on a million rows).
func KeyIDsInUse(ctx context.Context, db sqlx.QueryerContext, c Column) ([]string, error) {
	q := fmt.Sprintf("SELECT %[1]s FROM %[2]s FORCE INDEX (idx_%[3]s) WHERE %[1]s > ? ORDER BY %[1]s LIMIT 1",
		c.KeyIDColumn, c.Table, indexSuffix(c))
	var ids []string
	for last := ""; ; {
		var id string
		err := sqlx.GetContext(ctx, db, &id, q, last)
		if errors.Is(err, sql.ErrNoRows) {
			return ids, nil
		}
		if err != nil {
			return nil, fmt.Errorf("rotation: key ids of %s: %w", c, err)
		}
		if len(ids) >= 1000 {
			return nil, fmt.Errorf("rotation: key ids of %s: more than 1000 distinct ids", c)
		}
		ids = append(ids, id)
		last = id
	}
}

// countKeyID counts the rows of c under key id (an index range).
func countKeyID(ctx context.Context, db sqlx.QueryerContext, c Column, id string) (int64, error) {
	var n int64
	q := fmt.Sprintf("SELECT COUNT(*) FROM %s FORCE INDEX (idx_%s) WHERE %s = ?", c.Table, indexSuffix(c), c.KeyIDColumn)
	if err := sqlx.GetContext(ctx, db, &n, q, id); err != nil {
		return 0, fmt.Errorf("rotation: count rows of %s under a key: %w", c, err)
	}
	return n, nil
}

// ErrUnconfiguredKey reports stored rows under a key id the keyring lacks.
var ErrUnconfiguredKey = errors.New("stored rows use an encryption key that is not configured")

// CheckConfigured returns an error wrapping ErrUnconfiguredKey when a
// stored value names a key id that keys does not hold, in one line naming
// each such key and its row counts; source names where the keys come from
// ("PAYMENTS_KEYS"). Its cost is a few index dives per column (see
// KeyIDsInUse), plus an index range count per column for a missing key.
func CheckConfigured(ctx context.Context, db sqlx.QueryerContext, keys *encryption.Keyring, source string) error {
	configured := keys.KeyIDs()
	missing := map[string][]string{} // key id -> "N rows in table.column"
	var order []string
	for _, c := range Columns {
		ids, err := KeyIDsInUse(ctx, db, c)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if slices.Contains(configured, id) {
				continue
			}
			n, err := countKeyID(ctx, db, c, id)
			if err != nil {
				return err
			}
			if _, seen := missing[id]; !seen {
				order = append(order, id)
			}
			missing[id] = append(missing[id], fmt.Sprintf("%d rows in %s", n, c))
		}
	}
	if len(order) == 0 {
		return nil
	}
	parts := make([]string, 0, len(order))
	for _, id := range order {
		parts = append(parts, fmt.Sprintf("encryption key %q (%s)", id, strings.Join(missing[id], ", ")))
	}
	return unconfiguredKeyError(fmt.Sprintf("stored rows use %s which %s does not configure; put the key back (after the primary) until `starter keys status` shows no rows under it",
		strings.Join(parts, " and "), source))
}

// unconfiguredKeyError is CheckConfigured's error: its one line, matching
// ErrUnconfiguredKey with errors.Is.
type unconfiguredKeyError string

func (e unconfiguredKeyError) Error() string        { return string(e) }
func (e unconfiguredKeyError) Is(target error) bool { return target == ErrUnconfiguredKey }

// Remaining counts the values of each column under another key than
// keyID, for a rotation's last check.
func Remaining(ctx context.Context, db sqlx.QueryerContext, keyID string) (map[string]int64, int64, error) {
	usage, err := Status(ctx, db)
	if err != nil {
		return nil, 0, err
	}
	out := map[string]int64{}
	var total int64
	for _, u := range usage {
		if u.KeyID != keyID {
			out[u.Table+"."+u.Column] += u.Rows
			total += u.Rows
		}
	}
	return out, total, nil
}

// Rotator re-encrypts pages of rows under its keyring's primary key.
type Rotator struct {
	DB   *sqlx.DB
	Keys *encryption.Keyring
}

// PageResult is what one page did.
type PageResult struct {
	// Last is the greatest primary key the page read; the next page starts
	// after it. Empty when the page read no row.
	Last string
	// Scanned is how many rows the page read, Rotated how many it
	// rewrote (a row counts once however many of its columns changed).
	Scanned, Rotated int
	// Done: the page reached the end of the table.
	Done bool
}

// ErrBadValue marks a stored value rotation cannot re-encrypt (it does not
// decrypt: its key is missing or it was altered); retrying will not help.
var ErrBadValue = errors.New("stored value cannot be re-encrypted")

// Page rotates the rows of t after primary key after (all rows when it is
// empty), at most n of them.
func (r *Rotator) Page(ctx context.Context, t Table, after string, n int) (PageResult, error) {
	if n <= 0 {
		return PageResult{}, errors.New("rotation: page size must be positive")
	}
	res, stale, err := r.scan(ctx, t, after, n)
	if err != nil || len(stale) == 0 {
		return res, err
	}
	// A lock wait or deadlock (with a writer outside the ledger's order,
	// or a timeout under heavy load) rolls the page back; run it again.
	for attempt := 1; ; attempt++ {
		var rotated int
		rotated, err = r.rewrite(ctx, t, stale)
		if err == nil {
			res.Rotated = rotated
			return res, nil
		}
		if attempt >= 8 || !retryable(err) || ctx.Err() != nil {
			return PageResult{}, err
		}
		select {
		case <-ctx.Done():
			return PageResult{}, ctx.Err()
		case <-time.After(time.Duration(attempt*attempt) * 10 * time.Millisecond):
		}
	}
}

// staleRow is a row of a page with a value under another key.
type staleRow struct{ pk, orderID string }

// scan reads a page's primary keys and key ids with a plain read and
// returns the rows holding a value under another key than the primary.
func (r *Rotator) scan(ctx context.Context, t Table, after string, n int) (PageResult, []staleRow, error) {
	cols := t.columns()
	sel := []string{t.pk()}
	if t == Payments {
		sel = append(sel, "order_id")
	}
	var cond []string
	for _, c := range cols {
		cond = append(cond, fmt.Sprintf("(%[1]s IS NOT NULL AND %[1]s <> ?) OR (%[2]s IS NOT NULL AND %[1]s IS NULL)", c.KeyIDColumn, c.Name))
	}
	// The condition is computed, not filtered on: the page must advance
	// over the rows it skips too.
	q := fmt.Sprintf("SELECT %s, %s FROM %s FORCE INDEX (PRIMARY) WHERE %s > ? ORDER BY %s LIMIT ?",
		strings.Join(sel, ", "), strings.Join(cond, " OR "), t, t.pk(), t.pk())
	args := []any{}
	for range cols {
		args = append(args, r.Keys.PrimaryID())
	}
	args = append(args, after, n)
	rows, err := r.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return PageResult{}, nil, fmt.Errorf("rotation: read %s page: %w", t, err)
	}
	defer rows.Close()
	var res PageResult
	var stale []staleRow
	for rows.Next() {
		var s staleRow
		var needs bool
		dst := []any{&s.pk}
		if t == Payments {
			dst = append(dst, &s.orderID)
		}
		if err := rows.Scan(append(dst, &needs)...); err != nil {
			return PageResult{}, nil, fmt.Errorf("rotation: read %s page: %w", t, err)
		}
		res.Scanned++
		res.Last = s.pk
		if needs {
			stale = append(stale, s)
		}
	}
	if err := rows.Err(); err != nil {
		return PageResult{}, nil, fmt.Errorf("rotation: read %s page: %w", t, err)
	}
	res.Done = res.Scanned < n
	return res, stale, nil
}

// rewrite re-encrypts the stale rows' values in one transaction that
// locks them in the ledger's order, and returns how many rows it changed.
func (r *Rotator) rewrite(ctx context.Context, t Table, stale []staleRow) (int, error) {
	tx, err := r.DB.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, fmt.Errorf("rotation: begin %s page: %w", t, err)
	}
	defer tx.Rollback()
	pks := make([]string, len(stale))
	for i, s := range stale {
		pks[i] = s.pk
	}
	slices.Sort(pks)
	if t == Payments {
		orderIDs := make([]string, len(stale))
		for i, s := range stale {
			orderIDs[i] = s.orderID
		}
		slices.Sort(orderIDs)
		orderIDs = slices.Compact(orderIDs)
		if err := inChunks(orderIDs, func(chunk []string) error {
			var locked []string
			return tx.SelectContext(ctx, &locked, "SELECT order_id FROM orders FORCE INDEX (PRIMARY) WHERE order_id IN ("+
				placeholders(len(chunk))+") ORDER BY order_id FOR UPDATE", anySlice(chunk)...)
		}); err != nil {
			return 0, fmt.Errorf("rotation: lock orders of a payments page: %w", err)
		}
	}
	cols := t.columns()
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	changed := 0
	err = inChunks(pks, func(chunk []string) error {
		// Read again under the lock: a value may have changed since the scan.
		q := fmt.Sprintf("SELECT %s, %s FROM %s FORCE INDEX (PRIMARY) WHERE %s IN (%s) ORDER BY %s FOR UPDATE",
			t.pk(), strings.Join(names, ", "), t, t.pk(), placeholders(len(chunk)), t.pk())
		rows, err := tx.QueryContext(ctx, q, anySlice(chunk)...)
		if err != nil {
			return fmt.Errorf("lock %s: %w", t, err)
		}
		type update struct {
			pk     string
			values [][]byte // per column; nil: unchanged
		}
		var updates []update
		for rows.Next() {
			var pk string
			vals := make([][]byte, len(cols))
			dst := []any{&pk}
			for i := range vals {
				dst = append(dst, &vals[i])
			}
			if err := rows.Scan(dst...); err != nil {
				rows.Close()
				return fmt.Errorf("lock %s: %w", t, err)
			}
			u := update{pk: pk, values: make([][]byte, len(cols))}
			dirty := false
			for i, c := range cols {
				nv, err := r.reencrypt(c, pk, vals[i])
				if err != nil {
					rows.Close()
					return err
				}
				if nv != nil {
					u.values[i], dirty = nv, true
				}
			}
			if dirty {
				updates = append(updates, u)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("lock %s: %w", t, err)
		}
		if len(updates) == 0 {
			return nil
		}
		// One CASE UPDATE per chunk: a statement per few hundred rows.
		var set []string
		var args []any
		for i, c := range cols {
			var sb strings.Builder
			fmt.Fprintf(&sb, "%s = CASE %s", c.Name, t.pk())
			whens := 0
			for _, u := range updates {
				if u.values[i] != nil {
					sb.WriteString(" WHEN ? THEN ?")
					args = append(args, u.pk, u.values[i])
					whens++
				}
			}
			if whens == 0 {
				continue // a CASE needs a WHEN; the column keeps its values
			}
			fmt.Fprintf(&sb, " ELSE %s END", c.Name)
			set = append(set, sb.String())
		}
		ids := make([]string, len(updates))
		for i, u := range updates {
			ids[i] = u.pk
		}
		args = append(args, anySlice(ids)...)
		uq := fmt.Sprintf("UPDATE %s FORCE INDEX (PRIMARY) SET %s WHERE %s IN (%s)", t, strings.Join(set, ", "), t.pk(), placeholders(len(ids)))
		if _, err := tx.ExecContext(ctx, uq, args...); err != nil {
			return fmt.Errorf("update %s: %w", t, err)
		}
		changed += len(updates)
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrBadValue) {
			return 0, err
		}
		return 0, fmt.Errorf("rotation: %s page: %w", t, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("rotation: commit %s page: %w", t, err)
	}
	return changed, nil
}

// reencrypt returns value re-encrypted under the primary key with the
// same AAD, or nil when it is NULL or already under the primary. Its error
// names the row and column, never the value.
func (r *Rotator) reencrypt(c Column, pk string, value []byte) ([]byte, error) {
	if len(value) == 0 {
		return nil, nil
	}
	if id, err := r.Keys.KeyID(value); err == nil && id == r.Keys.PrimaryID() {
		return nil, nil
	}
	aad := encryption.AAD(string(c.Table), c.Name, pk)
	plain, err := r.Keys.Decrypt(value, aad)
	if err != nil {
		return nil, fmt.Errorf("rotation: %w: %s %s: decrypt %s: %w", ErrBadValue, c.Table, pk, c.Name, err)
	}
	out, err := r.Keys.Encrypt(plain, aad)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("rotation: %s %s: encrypt %s: %w", c.Table, pk, c.Name, err)
	}
	return out, nil
}

// retryable reports a transient conflict after which the page may be run
// again: deadlock (1213) or lock wait timeout (1205).
func retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

// inBatch bounds IN lists below MariaDB's in_predicate_conversion_threshold
// (1000), as the ledger's, so each statement reads exactly the keys it
// lists.
const inBatch = 500

func inChunks(items []string, fn func([]string) error) error {
	for len(items) > 0 {
		n := min(inBatch, len(items))
		if err := fn(items[:n]); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
