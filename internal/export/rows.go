package export

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/mask"
	"github.com/acme/payments/internal/money"
	"github.com/acme/payments/internal/orders"
	"github.com/acme/payments/internal/records"
)

// Columns of exported files, in file order: the import columns of the
// kind and the derived ones an import ignores, named as the API's JSON
// fields.
var (
	OrderColumns = []string{"order_id", "order_amount", "currency", "order_status", "paid_amount", "outstanding_amount",
		"overpaid_amount", "customer_email", "customer_phone", "created_at", "updated_at"}
	PaymentColumns = []string{"payment_id", "order_id", "payment_amount", "currency", "payment_status", "payment_method",
		"payment_details", "gateway_ref", "failure_reason", "created_at", "updated_at"}
)

// Columns returns the exported columns of a kind.
func Columns(k records.Kind) []string {
	if k == records.KindOrders {
		return OrderColumns
	}
	return PaymentColumns
}

// DefaultPageRows is how many rows one keyset page reads.
const DefaultPageRows = 20000

// Range is a primary-key range (After, UpTo]; an empty bound is open.
type Range struct {
	After string `json:"after"`
	UpTo  string `json:"up_to"`
}

// Exporter reads rows of one kind and writes them formatted. It is safe
// for concurrent use.
type Exporter struct {
	// DB is a pool from database.OpenText: times are read as text.
	DB *sqlx.DB
	// Keys decrypts the sensitive fields.
	Keys *encryption.Keyring
	// PageRows is the rows of one keyset page; zero means DefaultPageRows.
	PageRows int
}

// Written is what WriteRecords wrote.
type Written struct {
	Rows int64
	// FirstKey and LastKey are the primary keys of the first and last rows
	// written; empty when none was.
	FirstKey, LastKey string
}

// WriteRecords writes the records of p's rows in r to w, in primary-key
// order, without a header or footer (see Encoding). Each JSON record starts
// with a comma. Rows are read a page at a time, each page a query of its
// own that starts after the last key seen, so no query holds a long
// snapshot and nothing is read twice or skipped. One goroutine reads pages
// while this one decrypts and formats the rows read before, through a few
// batches of raw rows that go back and forth, so memory stays the same
// whatever the row count. A read or write error stops both; ctx's end
// stops the current query.
func (x *Exporter) WriteRecords(ctx context.Context, w io.Writer, p Params, r Range) (Written, error) {
	enc, err := NewEncoding(p)
	if err != nil {
		return Written{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	free, full := make(chan *batch, batchesInFlight), make(chan *batch, batchesInFlight)
	for range batchesInFlight {
		free <- &batch{}
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(full)
		readErr <- x.read(ctx, p, r, free, full)
	}()
	rw := rowWriter{enc: enc, p: p, keys: x.Keys}
	var out Written
	for b := range full {
		for i := range b.rows {
			b.row(i, rw.raw[:])
			if err := rw.write(); err != nil {
				cancel()
				return out, err
			}
			if out.Rows == 0 {
				out.FirstKey = string(rw.raw[0])
			}
			out.Rows++
		}
		if b.rows > 0 {
			out.LastKey = string(rw.raw[0])
		}
		free <- b
		if len(rw.buf) >= flushBytes {
			if err := rw.flush(w); err != nil {
				cancel()
				return out, err
			}
		}
	}
	if err := <-readErr; err != nil {
		return out, err
	}
	return out, rw.flush(w)
}

// Sizes of WriteRecords' pipeline.
const (
	batchRows       = 1000
	batchesInFlight = 4
	flushBytes      = 256 << 10
)

// batch is raw rows read and not yet formatted: every column's bytes back
// to back in arena, ends[i] where value i ends.
type batch struct {
	arena []byte
	ends  []int
	cols  int
	rows  int
}

func (b *batch) reset(cols int) {
	b.arena, b.ends, b.cols, b.rows = b.arena[:0], b.ends[:0], cols, 0
}

func (b *batch) add(raw []sql.RawBytes) {
	for _, v := range raw {
		b.arena = append(b.arena, v...)
		b.ends = append(b.ends, len(b.arena))
	}
	b.rows++
}

// row points dst at row i's values.
func (b *batch) row(i int, dst [][]byte) {
	start := 0
	if i > 0 {
		start = b.ends[i*b.cols-1]
	}
	for c := range b.cols {
		end := b.ends[i*b.cols+c]
		dst[c] = b.arena[start:end:end]
		start = end
	}
}

// read sends p's rows in r in batches on full, taking empty batches from
// free, page after page, until the range ends or ctx does.
func (x *Exporter) read(ctx context.Context, p Params, r Range, free <-chan *batch, full chan<- *batch) error {
	pageRows := x.PageRows
	if pageRows <= 0 {
		pageRows = DefaultPageRows
	}
	cols := len(selectColumns(p.Kind))
	raw := make([]sql.RawBytes, cols)
	dest := make([]any, cols)
	for i := range raw {
		dest[i] = &raw[i]
	}
	var b *batch
	send := func() bool {
		select {
		case full <- b:
			b = nil
			return true
		case <-ctx.Done():
			return false
		}
	}
	after := r.After
	for {
		q, args := pageQuery(p, Range{After: after, UpTo: r.UpTo}, pageRows)
		rows, err := x.DB.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("export %s: read rows after %q: %w", p.Kind, after, err)
		}
		n := 0
		for rows.Next() {
			if b == nil {
				select {
				case b = <-free:
				case <-ctx.Done():
					rows.Close()
					return ctx.Err()
				}
				b.reset(cols)
			}
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return fmt.Errorf("export %s: read rows after %q: %w", p.Kind, after, err)
			}
			b.add(raw)
			if n++; n == pageRows {
				after = string(raw[0])
			}
			if b.rows == batchRows && !send() {
				rows.Close()
				return ctx.Err()
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("export %s: read rows after %q: %w", p.Kind, after, err)
		}
		if n < pageRows {
			if b != nil && !send() {
				return ctx.Err()
			}
			return nil
		}
	}
}

// pageQuery selects the next page of p's rows in r. FORCE INDEX keeps the
// plan a range over the primary key whatever the filters.
func pageQuery(p Params, r Range, limit int) (string, []any) {
	table, key, cols, status := "orders", "order_id", orderSelect, "order_status"
	if p.Kind == records.KindPayments {
		table, key, cols, status = "payments", "payment_id", paymentSelect, "payment_status"
	}
	var q strings.Builder
	q.WriteString("SELECT " + strings.Join(cols, ", ") + " FROM " + table + " FORCE INDEX (PRIMARY) WHERE " + key + " > ?")
	args := []any{r.After}
	if r.UpTo != "" {
		q.WriteString(" AND " + key + " <= ?")
		args = append(args, r.UpTo)
	}
	if p.Status != "" {
		q.WriteString(" AND " + status + " = ?")
		args = append(args, p.Status)
	}
	if !p.CreatedFrom.IsZero() {
		q.WriteString(" AND created_at >= ?")
		args = append(args, p.CreatedFrom)
	}
	if !p.CreatedTo.IsZero() {
		q.WriteString(" AND created_at < ?")
		args = append(args, p.CreatedTo)
	}
	q.WriteString(" ORDER BY " + key + " LIMIT " + strconv.Itoa(limit))
	return q.String(), args
}

// The columns a page reads. Times come as DATETIME(6) text (UTC, as every
// writer stores them; see Exporter.DB), which appendTime rewrites as RFC
// 3339.
var (
	orderSelect = []string{"order_id", "order_amount", "currency", "order_status", "paid_amount", "customer_email",
		"customer_phone", "created_at", "updated_at"}
	paymentSelect = []string{"payment_id", "order_id", "payment_amount", "currency", "payment_status", "payment_method",
		"payment_details", "gateway_ref", "failure_reason", "created_at", "updated_at"}
)

func selectColumns(k records.Kind) []string {
	if k == records.KindOrders {
		return orderSelect
	}
	return paymentSelect
}

// rowWriter formats raw rows (the columns of selectColumns) into buf,
// reusing every buffer from row to row.
type rowWriter struct {
	enc  *Encoding
	p    Params
	keys *encryption.Keyring
	buf  []byte

	raw          [11][]byte // the row's columns, as selectColumns lists them
	opened       orders.Opened
	details, aad []byte
	scratch      []byte // formatted amounts and times, back to back
	values       [11][]byte
}

func (rw *rowWriter) key() []byte { return rw.raw[0] }

func (rw *rowWriter) flush(w io.Writer) error {
	if len(rw.buf) == 0 {
		return nil
	}
	if _, err := w.Write(rw.buf); err != nil {
		return fmt.Errorf("export: write: %w", err)
	}
	rw.buf = rw.buf[:0]
	return nil
}

// write formats the scanned row as one record.
func (rw *rowWriter) write() error {
	var err error
	if rw.p.Kind == records.KindOrders {
		err = rw.orderValues()
	} else {
		err = rw.paymentValues()
	}
	if err != nil {
		return err
	}
	if rw.buf, err = rw.enc.AppendRecord(rw.buf, rw.values[:]); err != nil {
		return fmt.Errorf("export %s %s: %w", rw.p.Kind, rw.key(), err)
	}
	return nil
}

// orderValues fills values in OrderColumns order from raw (orderSelect).
func (rw *rowWriter) orderValues() error {
	r := &rw.raw
	c, ok := money.Lookup(string(r[2]))
	if !ok {
		return fmt.Errorf("export orders %s: stored currency %q is unknown", r[0], mask.Clip(string(r[2])))
	}
	amount, err1 := atoi(r[1])
	paid, err2 := atoi(r[4])
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("export orders %s: %w", r[0], err)
	}
	if err := (orders.Sealer{Keys: rw.keys}).OpenInto(&rw.opened, r[0], r[5], r[6]); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	s := rw.scratch[:0]
	mark := func() int { return len(s) }
	a0 := mark()
	s = money.AppendFormat(s, amount, c.Exponent)
	a1 := mark()
	s = money.AppendFormat(s, paid, c.Exponent)
	a2 := mark()
	s = money.AppendFormat(s, max(amount-paid, 0), c.Exponent)
	a3 := mark()
	s = money.AppendFormat(s, max(paid-amount, 0), c.Exponent)
	a4 := mark()
	s = appendTime(s, r[7])
	a5 := mark()
	s = appendTime(s, r[8])
	a6 := mark()
	rw.scratch = s
	email, phone := rw.opened.Email, rw.opened.Phone
	if !rw.p.PII {
		email, phone = []byte(mask.Email(string(email))), []byte(mask.Phone(string(phone)))
	}
	v := &rw.values
	v[0], v[1], v[2], v[3] = r[0], s[a0:a1], r[2], r[3]
	v[4], v[5], v[6] = s[a1:a2], s[a2:a3], s[a3:a4]
	v[7], v[8], v[9], v[10] = email, phone, s[a4:a5], s[a5:a6]
	return nil
}

// paymentValues fills values in PaymentColumns order from raw
// (paymentSelect).
func (rw *rowWriter) paymentValues() error {
	r := &rw.raw
	c, ok := money.Lookup(string(r[3]))
	if !ok {
		return fmt.Errorf("export payments %s: stored currency %q is unknown", r[0], mask.Clip(string(r[3])))
	}
	amount, err := atoi(r[2])
	if err != nil {
		return fmt.Errorf("export payments %s: %w", r[0], err)
	}
	details := rw.details[:0]
	if len(r[6]) > 0 {
		rw.aad = encryption.AppendAAD(rw.aad[:0], encryption.TablePayments, encryption.ColumnPaymentDetails, r[0])
		if details, err = rw.keys.AppendDecrypt(details, r[6], rw.aad); err != nil {
			return fmt.Errorf("export: payments %s: decrypt %s: %w", r[0], encryption.ColumnPaymentDetails, err)
		}
	}
	rw.details = details
	if !rw.p.PII {
		details = []byte(mask.Details(string(details)))
	}
	s := rw.scratch[:0]
	s = money.AppendFormat(s, amount, c.Exponent)
	a1 := len(s)
	s = appendTime(s, r[9])
	a2 := len(s)
	s = appendTime(s, r[10])
	rw.scratch = s
	v := &rw.values
	v[0], v[1], v[2], v[3], v[4], v[5] = r[0], r[1], s[:a1], r[3], r[4], r[5]
	v[6], v[7], v[8], v[9], v[10] = details, r[7], r[8], s[a1:a2], s[a2:]
	return nil
}

// atoi reads a BIGINT column's text.
func atoi(b []byte) (int64, error) {
	var n int64
	neg := len(b) > 0 && b[0] == '-'
	digits := b
	if neg {
		digits = b[1:]
	}
	if len(digits) == 0 || len(digits) > 18 {
		return strconv.ParseInt(string(b), 10, 64) // rare: let strconv decide
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("amount %q is not an integer", b)
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}

// appendTime appends a DATETIME(6) value's text ("2006-01-02
// 15:04:05.000000", UTC) as RFC 3339 with as many fraction digits as it
// has, the form the API shows times in (time.RFC3339Nano) and imports read.
func appendTime(dst, dt []byte) []byte {
	if len(dt) < 19 || dt[10] != ' ' {
		// Not the server's DATETIME text: let package time read it.
		t, err := time.Parse("2006-01-02 15:04:05.999999", string(dt))
		if err != nil {
			return append(dst, dt...)
		}
		return t.UTC().AppendFormat(dst, time.RFC3339Nano)
	}
	dst = append(append(dst, dt[:10]...), 'T')
	dst = append(dst, dt[11:19]...)
	if frac := bytes.TrimRight(dt[19:], "0"); len(frac) > 1 {
		dst = append(dst, frac...)
	}
	return append(dst, 'Z')
}
