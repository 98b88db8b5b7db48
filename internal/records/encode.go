package records

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// The encoder writes what the reader (csv.go, xml.go) reads back byte for
// byte, whole or cut into chunks. What it relies on in the reader:
//
// CSV: values are not trimmed (only header names are), a record ends at the
// first LF outside quotes and loses one CR before it, blank lines are skipped,
// a '"' inside an unquoted field is an error, and a NUL in the first KiB or
// invalid UTF-8 anywhere refuses the file or the record. So a field is quoted
// when it holds ',', '"', CR or LF (leading or trailing blanks need no quotes),
// quotes are doubled, lines end with LF, and NUL and invalid UTF-8 are errors.
// A record never makes a blank line: there are always at least two columns
// (the required ones), hence a comma. A value starting with U+FEFF needs no
// quotes: only a BOM at offset 0 is stripped, and offset 0 is the header.
//
// XML: element text is kept as is (blanks, tabs and LFs included), empty
// elements read as "", the five entities and character references are
// decoded, a literal CR or CRLF becomes LF, and any character outside XML's
// Char production fails the whole file. So '&', '<' and '>' are escaped (the
// last so that "]]>" never appears), CR is written "&#xD;", and characters XML
// 1.0 cannot carry, even as references, are errors.

// Encoder formats records of one kind in one format with a fixed column list.
// It holds no per-record state, so one Encoder may be used by several
// goroutines at once.
type Encoder struct {
	format    Format
	cols      []string
	header    []byte
	footer    []byte
	recOpen   []byte   // XML: "<payment>"
	recClose  []byte   // XML: "</payment>"
	openTag   [][]byte // XML: "<column>" per column
	closeTag  [][]byte // XML: "</column>" per column
	maxRecord int      // the reader's default limit, which imports use
	formula   []bool   // CSV: the column's values are neutralised (FormulaColumn)
}

// NewEncoder returns an encoder for format f (FormatCSV or FormatXML) of kind k
// whose records have the given columns, in that order. Each column must be a
// column of the kind (Columns(k)) or one of its derived columns (which the
// reader accepts and ignores); a repeated or unknown column, or an unknown
// format or kind, is an error naming it. The columns must include the kind's
// required ones, because the reader refuses a CSV header without them: a
// downloaded file must be importable.
func NewEncoder(f Format, k Kind, columns []string) (*Encoder, error) {
	if f != FormatCSV && f != FormatXML {
		return nil, fmt.Errorf("records: unknown format %q (want %q or %q)", f, FormatCSV, FormatXML)
	}
	if Columns(k) == nil {
		return nil, fmt.Errorf("records: unknown kind %q (want %q or %q)", k, KindOrders, KindPayments)
	}
	for i, c := range columns {
		if columnIndex(k, c) == -1 {
			return nil, fmt.Errorf("records: unknown column %q for %s (columns are: %s; derived: %s)",
				c, k, strings.Join(Columns(k), ", "), strings.Join(derivedColumns(k), ", "))
		}
		for _, d := range columns[:i] {
			if d == c {
				return nil, fmt.Errorf("records: repeated column %q", c)
			}
		}
	}
	var missing []string
	for _, req := range requiredColumns(k) {
		found := false
		for _, c := range columns {
			found = found || c == req
		}
		if !found {
			missing = append(missing, req)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("records: missing required %s column(s) %s", k, quoteList(missing))
	}
	e := &Encoder{
		format:    f,
		cols:      append([]string(nil), columns...),
		maxRecord: DefaultMaxRecordBytes,
	}
	if f == FormatCSV {
		e.header = append([]byte(strings.Join(columns, ",")), '\n')
		for _, c := range columns {
			e.formula = append(e.formula, FormulaColumn(c))
		}
		return e, nil
	}
	e.header = []byte(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<" + string(k) + ">\n")
	e.footer = []byte("</" + string(k) + ">\n")
	e.recOpen = []byte("<" + recordElement(k) + ">")
	e.recClose = []byte("</" + recordElement(k) + ">")
	for _, c := range columns {
		e.openTag = append(e.openTag, []byte("<"+c+">"))
		e.closeTag = append(e.closeTag, []byte("</"+c+">"))
	}
	return e, nil
}

// AppendHeader appends what precedes the first record: for CSV the header
// line, for XML the XML declaration and the root start tag.
func (e *Encoder) AppendHeader(dst []byte) []byte { return append(dst, e.header...) }

// AppendFooter appends what follows the last record: for XML the root end
// tag, for CSV nothing.
func (e *Encoder) AppendFooter(dst []byte) []byte { return append(dst, e.footer...) }

// AppendRecord appends one record, ending with a newline; values align with
// the encoder's columns (len must match). It does not retain values. The
// bytes of a record do not depend on what precedes it, so records encoded
// apart can be concatenated between one header and one footer.
//
// A CSV text value that a spreadsheet would run as a formula is written
// with a leading single quote (NeutralizeFormula), which the reader drops.
//
// It fails, naming the column and never quoting the value, when a value is
// not valid UTF-8, when a CSV value holds a NUL byte, or when an XML value
// holds a character XML 1.0 cannot carry (C0 controls other than TAB, LF and
// CR; U+FFFE; U+FFFF); it also fails when the encoded record is longer than
// the DefaultMaxRecordBytes an import accepts. On error dst is returned with
// its length on entry: nothing of the record is kept.
func (e *Encoder) AppendRecord(dst []byte, values [][]byte) ([]byte, error) {
	if len(values) != len(e.cols) {
		return dst, fmt.Errorf("records: %d values for %d columns", len(values), len(e.cols))
	}
	start := len(dst)
	var err error
	if e.format == FormatCSV {
		for i, v := range values {
			if i > 0 {
				dst = append(dst, ',')
			}
			if e.formula[i] && NeedsFormulaQuote(v) {
				v = append([]byte{'\''}, v...)
			}
			if dst, err = e.appendCSV(dst, v, i); err != nil {
				return dst[:start], err
			}
		}
	} else {
		dst = append(dst, e.recOpen...)
		for i, v := range values {
			dst = append(dst, e.openTag[i]...)
			if dst, err = e.appendXML(dst, v, i); err != nil {
				return dst[:start], err
			}
			dst = append(dst, e.closeTag[i]...)
		}
		dst = append(dst, e.recClose...)
	}
	// The reader's measure: CSV without the line end, XML start to end tag.
	if n := len(dst) - start; n > e.maxRecord {
		return dst[:start], fmt.Errorf("the record is %d bytes encoded, longer than the %d bytes an import accepts", n, e.maxRecord)
	}
	return append(dst, '\n'), nil
}

// Byte classes for the encoders; bytes >= 0x80 are all bMulti (decoded then).
const (
	bPlain = iota // copied as is
	bMark         // CSV: needs quotes; XML: needs escaping
	bBad          // CSV: NUL; XML: a C0 control XML cannot carry
	bMulti        // start (or junk) of a multi-byte sequence
)

var csvClass, xmlClass [256]uint8

func init() {
	for i := 0x80; i < 256; i++ {
		csvClass[i], xmlClass[i] = bMulti, bMulti
	}
	for _, c := range []byte{',', '"', '\r', '\n'} {
		csvClass[c] = bMark
	}
	csvClass[0] = bBad
	for c := 0; c < 0x20; c++ {
		if c != '\t' && c != '\n' && c != '\r' {
			xmlClass[c] = bBad
		}
	}
	for _, c := range []byte{'&', '<', '>', '\r'} {
		xmlClass[c] = bMark
	}
}

func (e *Encoder) errUTF8(col int) error {
	return fmt.Errorf("%s is not valid UTF-8", e.cols[col])
}

// appendCSV appends value v of column col, quoted only when the reader needs it.
func (e *Encoder) appendCSV(dst, v []byte, col int) ([]byte, error) {
	quote := false
	for i := 0; ; {
		for i < len(v) && csvClass[v[i]] == bPlain {
			i++
		}
		if i == len(v) {
			break
		}
		switch csvClass[v[i]] {
		case bMark:
			quote = true
			i++
		case bBad:
			// The reader refuses a file with a NUL in its first KiB, and a
			// record's bytes must not depend on where it lands.
			return dst, fmt.Errorf("%s holds a NUL character, which an import file cannot carry", e.cols[col])
		default:
			r, n := utf8.DecodeRune(v[i:])
			if r == utf8.RuneError && n == 1 {
				return dst, e.errUTF8(col)
			}
			i += n
		}
	}
	if !quote {
		return append(dst, v...), nil
	}
	dst = append(dst, '"')
	for {
		j := bytes.IndexByte(v, '"')
		if j < 0 {
			break
		}
		dst = append(dst, v[:j+1]...)
		dst = append(dst, '"')
		v = v[j+1:]
	}
	dst = append(dst, v...)
	return append(dst, '"'), nil
}

// appendXML appends value v of column col as element text.
func (e *Encoder) appendXML(dst, v []byte, col int) ([]byte, error) {
	run := 0 // start of the bytes not yet copied
	for i := 0; ; {
		for i < len(v) && xmlClass[v[i]] == bPlain {
			i++
		}
		if i == len(v) {
			break
		}
		switch xmlClass[v[i]] {
		case bMark:
			dst = append(dst, v[run:i]...)
			switch v[i] {
			case '&':
				dst = append(dst, "&amp;"...)
			case '<':
				dst = append(dst, "&lt;"...)
			case '>':
				dst = append(dst, "&gt;"...)
			default: // a literal CR would be read as LF
				dst = append(dst, "&#xD;"...)
			}
			i++
			run = i
		case bBad:
			return dst, e.errXMLChar(col)
		default:
			r, n := utf8.DecodeRune(v[i:])
			if r == utf8.RuneError && n == 1 {
				return dst, e.errUTF8(col)
			}
			if !isInCharacterRange(r) {
				return dst, e.errXMLChar(col)
			}
			i += n
		}
	}
	return append(dst, v[run:]...), nil
}

func (e *Encoder) errXMLChar(col int) error {
	return fmt.Errorf("%s holds a character XML 1.0 cannot carry", e.cols[col])
}

// CheckText returns what keeps s from being a value of both import formats,
// or "": invalid UTF-8, or a character XML 1.0 cannot carry (a control
// character other than TAB, LF and CR, which includes the NUL CSV cannot
// carry, or U+FFFE and U+FFFF). Entry points check the free-text fields
// they store with it, so every stored row can be downloaded as a file that
// imports again.
func CheckText(s string) string {
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			if !utf8.ValidString(s) {
				return "is not valid UTF-8"
			}
		case !isInCharacterRange(r):
			return "holds a control character an import file cannot carry"
		}
	}
	return ""
}
