package export

import (
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
const DefaultPageRows = 5000

// Range is a primary-key range (After, UpTo]; an empty bound is open.
type Range struct {
	After, UpTo string
}

// Exporter reads rows of one kind and writes them formatted. It is safe
// for concurrent use.
type Exporter struct {
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
// order, without a header or footer (see Format). Each JSON record starts
// with a comma (see Encoding). Rows are read a page at a time, each page a
// query of its own that starts after the last key seen, so no query holds
// a long snapshot and nothing is read twice or skipped. A read or write
// error stops it; ctx's end stops the current query.
func (x *Exporter) WriteRecords(ctx context.Context, w io.Writer, p Params, r Range) (Written, error) {
	enc, err := NewEncoding(p)
	if err != nil {
		return Written{}, err
	}
	pageRows := x.PageRows
	if pageRows <= 0 {
		pageRows = DefaultPageRows
	}
	var out Written
	rw := rowWriter{enc: enc, p: p, keys: x.Keys}
	after := r.After
	for {
		n, last, err := x.page(ctx, &rw, p, Range{After: after, UpTo: r.UpTo}, pageRows)
		if err != nil {
			return out, err
		}
		if n > 0 {
			if out.Rows == 0 {
				out.FirstKey = rw.firstKey
			}
			out.Rows += n
			out.LastKey = last
		}
		if len(rw.buf) > 0 {
			if _, err := w.Write(rw.buf); err != nil {
				return out, fmt.Errorf("export: write: %w", err)
			}
			rw.buf = rw.buf[:0]
		}
		if n < int64(pageRows) {
			return out, nil
		}
		after = last
	}
}

// page formats one keyset page into rw.buf and returns its row count and
// last key.
func (x *Exporter) page(ctx context.Context, rw *rowWriter, p Params, r Range, limit int) (int64, string, error) {
	q, args := pageQuery(p, r, limit)
	rows, err := x.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, "", fmt.Errorf("export %s: read rows after %q: %w", p.Kind, r.After, err)
	}
	defer rows.Close()
	var n int64
	rw.firstKey = ""
	for rows.Next() {
		if err := rw.scan(rows); err != nil {
			return n, "", fmt.Errorf("export %s: read rows after %q: %w", p.Kind, r.After, err)
		}
		if err := rw.write(); err != nil {
			return n, "", err
		}
		if n == 0 {
			rw.firstKey = string(rw.key())
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, "", fmt.Errorf("export %s: read rows after %q: %w", p.Kind, r.After, err)
	}
	if n == 0 {
		return 0, "", nil
	}
	return n, string(rw.key()), nil
}

// pageQuery selects the next page of p's rows in r. FORCE INDEX keeps the
// plan a range over the primary key whatever the filters.
func pageQuery(p Params, r Range, limit int) (string, []any) {
	table, key, cols, status := "orders", "order_id", orderSelect, "order_status"
	if p.Kind == records.KindPayments {
		table, key, cols, status = "payments", "payment_id", paymentSelect, "payment_status"
	}
	var q strings.Builder
	q.WriteString("SELECT " + cols + " FROM " + table + " FORCE INDEX (PRIMARY) WHERE " + key + " > ?")
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

const (
	orderSelect   = "order_id, order_amount, currency, order_status, paid_amount, customer_email, customer_phone, created_at, updated_at"
	paymentSelect = "payment_id, order_id, payment_amount, currency, payment_status, payment_method, payment_details, gateway_ref, failure_reason, created_at, updated_at"
)

// rowWriter scans rows as raw bytes and formats them into buf, reusing
// every buffer from row to row.
type rowWriter struct {
	enc      *Encoding
	p        Params
	keys     *encryption.Keyring
	buf      []byte
	firstKey string

	raw              [9]sql.RawBytes // the text columns of orderSelect / paymentSelect
	created, updated time.Time
	opened           orders.Opened
	details, aad     []byte
	scratch          []byte // formatted amounts and times, back to back
	values           [11][]byte
}

func (rw *rowWriter) key() []byte { return rw.raw[0] }

func (rw *rowWriter) scan(rows *sql.Rows) error {
	r := &rw.raw
	if rw.p.Kind == records.KindOrders {
		return rows.Scan(&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6], &rw.created, &rw.updated)
	}
	return rows.Scan(&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6], &r[7], &r[8], &rw.created, &rw.updated)
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
	s = appendTime(s, rw.created)
	a5 := mark()
	s = appendTime(s, rw.updated)
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
	s = appendTime(s, rw.created)
	a2 := len(s)
	s = appendTime(s, rw.updated)
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

// appendTime appends t in UTC as RFC 3339 with as many fraction digits as
// it has, as the API shows times (time.RFC3339Nano), by hand: time.Format
// costs more than the rest of a row's formatting.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 1000 || y > 9999 {
		return t.AppendFormat(dst, time.RFC3339Nano)
	}
	h, mi, s := t.Clock()
	dst = appendDigits(dst, y, 4)
	dst = appendDigits(append(dst, '-'), int(mo), 2)
	dst = appendDigits(append(dst, '-'), d, 2)
	dst = appendDigits(append(dst, 'T'), h, 2)
	dst = appendDigits(append(dst, ':'), mi, 2)
	dst = appendDigits(append(dst, ':'), s, 2)
	if ns := t.Nanosecond(); ns != 0 {
		dst = append(dst, '.')
		width := 9
		for ns%10 == 0 {
			ns /= 10
			width--
		}
		dst = appendDigits(dst, ns, width)
	}
	return append(dst, 'Z')
}

// appendDigits appends v (>= 0) zero-padded to width digits.
func appendDigits(dst []byte, v, width int) []byte {
	n := len(dst)
	for range width {
		dst = append(dst, '0')
	}
	for i := len(dst) - 1; i >= n && v > 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
	return dst
}
