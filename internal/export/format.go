package export

import (
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/acme/payments/internal/records"
)

// Encoding writes the records of one export's format. A file is its header,
// its records and its footer; records written apart (the parts of an
// export) join into a file by concatenation, except that a JSON record
// starts with a comma, which the first record of a file drops (see
// JoinRecords).
type Encoding struct {
	format Format
	rec    *records.Encoder // CSV and XML
	keys   [][]byte         // JSON: `"name":` per column
}

// NewEncoding returns the encoding of p's format and kind.
func NewEncoding(p Params) (*Encoding, error) {
	cols := Columns(p.Kind)
	e := &Encoding{format: p.Format}
	switch p.Format {
	case FormatCSV:
		rec, err := records.NewEncoder(records.FormatCSV, p.Kind, cols)
		if err != nil {
			return nil, err
		}
		e.rec = rec
	case FormatXML:
		rec, err := records.NewEncoder(records.FormatXML, p.Kind, cols)
		if err != nil {
			return nil, err
		}
		e.rec = rec
	case FormatJSON, FormatNDJSON:
		for _, c := range cols {
			e.keys = append(e.keys, appendJSONString(nil, []byte(c)))
		}
	default:
		return nil, fmt.Errorf("export: unknown format %q", p.Format)
	}
	return e, nil
}

// AppendHeader appends what precedes the first record.
func (e *Encoding) AppendHeader(dst []byte) []byte {
	switch e.format {
	case FormatJSON:
		return append(dst, '[')
	case FormatNDJSON:
		return dst
	}
	return e.rec.AppendHeader(dst)
}

// AppendFooter appends what follows the last record.
func (e *Encoding) AppendFooter(dst []byte) []byte {
	switch e.format {
	case FormatJSON:
		return append(dst, "\n]\n"...)
	case FormatNDJSON:
		return dst
	}
	return e.rec.AppendFooter(dst)
}

// SkipFirst is how many bytes the first record of a file drops: the comma
// a JSON record starts with.
func (e *Encoding) SkipFirst() int {
	if e.format == FormatJSON {
		return 1
	}
	return 0
}

// AppendRecord appends one record of values aligned with Columns(kind).
func (e *Encoding) AppendRecord(dst []byte, values [][]byte) ([]byte, error) {
	if e.rec != nil {
		return e.rec.AppendRecord(dst, values)
	}
	if len(values) != len(e.keys) {
		return dst, fmt.Errorf("export: %d values for %d columns", len(values), len(e.keys))
	}
	start := len(dst)
	if e.format == FormatJSON {
		dst = append(dst, ",\n{"...)
	} else {
		dst = append(dst, '{')
	}
	for i, v := range values {
		if !utf8.Valid(v) {
			return dst[:start], fmt.Errorf("%s is not valid UTF-8", e.keys[i][1:len(e.keys[i])-1])
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(append(dst, e.keys[i]...), ':')
		dst = appendJSONString(dst, v)
	}
	dst = append(dst, '}')
	if e.format == FormatNDJSON {
		dst = append(dst, '\n')
	}
	return dst, nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s (valid UTF-8) as a JSON string, escaping as
// encoding/json does: quotes, backslashes, control characters, and U+2028
// and U+2029, which break JavaScript parsers.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// JoinParts writes a file of p's format: the header, the records of parts
// in order (each opened with open), the footer. A JSON file's first record
// drops its leading comma. It returns the rows of the parts.
func JoinParts(w io.Writer, p Params, parts []Part, open func(key string) (io.ReadCloser, error)) (int64, error) {
	enc, err := NewEncoding(p)
	if err != nil {
		return 0, err
	}
	if _, err := w.Write(enc.AppendHeader(nil)); err != nil {
		return 0, fmt.Errorf("write file: %w", err)
	}
	var rows int64
	skip := enc.SkipFirst()
	for _, part := range parts {
		if part.Rows == 0 {
			continue
		}
		r, err := open(part.PartKey)
		if err != nil {
			return rows, fmt.Errorf("part %d: %w", part.Chunk, err)
		}
		if skip > 0 {
			_, err = io.CopyN(io.Discard, r, int64(skip))
			skip = 0
		}
		if err == nil {
			_, err = io.Copy(w, r)
		}
		r.Close()
		if err != nil {
			return rows, fmt.Errorf("part %d: %w", part.Chunk, err)
		}
		rows += part.Rows
	}
	if _, err := w.Write(enc.AppendFooter(nil)); err != nil {
		return rows, fmt.Errorf("write file: %w", err)
	}
	return rows, nil
}
