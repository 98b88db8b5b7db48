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

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
)

// DateTime is the layout of DATETIME(6) values.
const DateTime = "2006-01-02 15:04:05.000000"

// Field writes one field and its terminator ('\t' between fields, '\n'
// after the last): bytes as they are, with backslash, tab, newline,
// carriage return and NUL escaped.
func Field(buf *bytes.Buffer, b []byte, term byte) {
	// Most values need no escaping: copy runs between special bytes whole.
	start := 0
	for i, c := range b {
		if c != '\\' && c != '\t' && c != '\n' && c != '\r' && c != 0 {
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
// table's columns ("(a, b, c)") inside tx, through a reader handler
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
