// Package loaddata streams rows into MySQL with LOAD DATA LOCAL INFILE, the
// server's fastest way in, through go-sql-driver/mysql's reader handlers:
// tab-separated fields, binary values backslash-escaped (never hex), \N
// for NULL. Bulk imports and the ledger's bulk path both write this way.
package loaddata

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
)

// DateTime is the layout of DATETIME(6) values.
const DateTime = "2006-01-02 15:04:05.000000"

// AppendDateTime appends t (already in UTC) as a DATETIME(6) value,
// without the fraction when it is zero, as most file timestamps are.
// Written by hand: time.Format's general layout machinery costs more than
// encrypting a field, and bulk imports format one value a row.
func AppendDateTime(dst []byte, t time.Time) []byte {
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(dst, DateTime) // MySQL refuses it; let it say so
	}
	h, mi, s := t.Clock()
	dst = appendDigits(dst, y, 4)
	dst = appendDigits(append(dst, '-'), int(mo), 2)
	dst = appendDigits(append(dst, '-'), d, 2)
	dst = appendDigits(append(dst, ' '), h, 2)
	dst = appendDigits(append(dst, ':'), mi, 2)
	dst = appendDigits(append(dst, ':'), s, 2)
	if us := t.Nanosecond() / 1000; us != 0 {
		dst = appendDigits(append(dst, '.'), us, 6)
	}
	return dst
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

// special marks the bytes Field escapes.
var special = [256]bool{'\\': true, '\t': true, '\n': true, '\r': true, 0: true}

// Field writes one field and its terminator ('\t' between fields, '\n'
// after the last): bytes as they are, with backslash, tab, newline,
// carriage return and NUL escaped.
func Field(buf *bytes.Buffer, b []byte, term byte) {
	// Most values need no escaping: copy runs between special bytes whole.
	start := 0
	for i, c := range b {
		if !special[c] {
			continue
		}
		buf.Write(b[start:i])
		start = i + 1
		switch c {
		case '\\':
			buf.WriteString(`\\`)
		case '\t':
			buf.WriteString(`\t`)
		case '\n':
			buf.WriteString(`\n`)
		case '\r':
			buf.WriteString(`\r`)
		case 0:
			buf.WriteString(`\0`)
		}
	}
	buf.Write(b[start:])
	buf.WriteByte(term)
}

// NullableField writes \N when null, else the field.
func NullableField(buf *bytes.Buffer, b []byte, null bool, term byte) {
	if null {
		buf.WriteString(`\N`)
		buf.WriteByte(term)
		return
	}
	Field(buf, b, term)
}

// Load runs LOAD DATA LOCAL INFILE of data (lines written with Field) into
// table's columns ("(a, b, c)", optionally followed by a SET clause of
// trusted SQL for columns the rows leave out) inside tx, through a reader handler
// registered for this call only. It returns the rows stored and the
// statement's warning count: LOAD DATA LOCAL skips rows whose key exists
// (with a warning) instead of failing, so callers compare.
func Load(ctx context.Context, tx *sqlx.Tx, data []byte, table, columns string) (rows, warnings int64, err error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	name := "payments-load-" + hex.EncodeToString(rnd[:])
	mysql.RegisterReaderHandler(name, func() io.Reader { return bytes.NewReader(data) })
	defer mysql.DeregisterReaderHandler(name)
	res, err := tx.ExecContext(ctx, "LOAD DATA LOCAL INFILE 'Reader::"+name+"' INTO TABLE "+table+
		` CHARACTER SET binary FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n' `+columns)
	if err != nil {
		return 0, 0, err
	}
	if rows, err = res.RowsAffected(); err != nil {
		return 0, 0, err
	}
	if err := tx.QueryRowContext(ctx, "SELECT @@warning_count").Scan(&warnings); err != nil {
		return 0, 0, err
	}
	return rows, warnings, nil
}
