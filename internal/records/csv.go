package records

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/acme/payments/internal/mask"
)

// span is one CSV record located by source.nextCSV.
type span struct {
	data    []byte // the record without its line terminator; valid until the next call; nil when tooLong
	off     int64  // file offset of its first byte
	end     int64  // file offset just after its line terminator
	line    int64  // line it starts on
	quoted  bool   // data contains a '"' (needs the full parser)
	tooLong bool   // longer than MaxRecordBytes: skipped
}

// CSV scanner states (the one rule set shared by planner and reader).
const (
	stFieldStart = iota // at the start of a field: '"' opens a quoted field
	stUnquoted          // inside an unquoted field: '"' is a bare quote (an error), ',' and '\n' end it
	stQuoted            // inside a quoted field: only '"' matters
	stQuoteSeen         // just after a '"' in a quoted field: '"' is an escaped quote, ',' or '\n' end the field, anything else is an error (then unquoted)
)

// nextCSV finds the next record, skipping blank lines. A record ends at the
// first '\n' outside a quoted field, or at EOF. It returns false at the end
// of the input.
func (s *source) nextCSV(sp *span) (bool, error) {
	for {
		if s.r == s.w {
			if s.eof {
				return false, nil
			}
			if err := s.fill(); err != nil {
				return false, err
			}
			continue
		}
		b := s.buf[s.r:s.w]
		nl := bytes.IndexByte(b, '\n')
		var ln []byte
		adv := 0
		switch {
		case nl >= 0:
			ln, adv = b[:nl], nl+1
		case s.eof:
			ln, adv = b, len(b)
		case len(b) <= s.max+1:
			if err := s.fill(); err != nil {
				return false, err
			}
			continue
		default:
			return s.slowCSV(sp)
		}
		if bytes.IndexByte(ln, '"') >= 0 {
			return s.slowCSV(sp)
		}
		off := s.bufOff + int64(s.r)
		line := s.line
		s.r += adv
		if nl >= 0 {
			s.line++
		}
		if n := len(ln); n > 0 && ln[n-1] == '\r' {
			ln = ln[:n-1]
		}
		if len(ln) == 0 {
			continue // blank line
		}
		*sp = span{data: ln, off: off, end: off + int64(adv), line: line}
		if len(ln) > s.max {
			sp.tooLong, sp.data = true, nil
		}
		return true, nil
	}
}

// slowCSV scans a record that holds quotes or does not fit in the buffer,
// byte by byte with the quote rules. A record longer than s.max is skipped
// without being kept in memory.
func (s *source) slowCSV(sp *span) (bool, error) {
	st := stFieldStart
	startOff := s.bufOff + int64(s.r)
	startLine := s.line
	var lines int64
	skipping := false
	var prev byte // last byte discarded while skipping
	// finish ends the record: its content runs to buffer index contentEnd
	// (a trailing \r dropped), the next record starts at next.
	finish := func(contentEnd, next int, lineAfter int64) {
		last := prev
		if contentEnd > s.r {
			last = s.buf[contentEnd-1]
		}
		n := s.bufOff + int64(contentEnd) - startOff
		if n > 0 && last == '\r' {
			n--
		}
		*sp = span{off: startOff, end: s.bufOff + int64(next), line: startLine, quoted: true}
		if skipping || n > int64(s.max) {
			sp.tooLong = true
		} else {
			sp.data = s.buf[s.r : s.r+int(n)]
		}
		s.r = next
		s.line = lineAfter
	}
	i := s.r
	for {
		if i >= s.w {
			if s.eof {
				if st == stQuoted {
					return false, fmt.Errorf("line %d: file ends inside a quoted field (truncated?)", startLine)
				}
				finish(i, i, startLine+lines)
				return true, nil
			}
			if !skipping && s.bufOff+int64(i)-startOff > int64(s.max)+1 {
				skipping = true
			}
			if skipping {
				if s.w > 0 {
					prev = s.buf[s.w-1]
				}
				s.discard()
				i = 0
			}
			rel := i - s.r
			if err := s.fill(); err != nil {
				return false, err
			}
			i = s.r + rel
			continue
		}
		if st == stQuoted {
			j := bytes.IndexByte(s.buf[i:s.w], '"')
			if j < 0 {
				lines += int64(bytes.Count(s.buf[i:s.w], nl))
				i = s.w
				continue
			}
			lines += int64(bytes.Count(s.buf[i:i+j], nl))
			i += j + 1
			st = stQuoteSeen
			continue
		}
		c := s.buf[i]
		i++
		switch c {
		case '\n':
			// end of record (st is not stQuoted here)
			finish(i-1, i, startLine+lines+1)
			return true, nil
		case '"':
			switch st {
			case stFieldStart:
				st = stQuoted
			case stQuoteSeen:
				st = stQuoted
			}
		case ',':
			st = stFieldStart
		default:
			if st == stFieldStart || st == stQuoteSeen {
				st = stUnquoted
			}
		}
	}
}

var nl = []byte{'\n'}

// fieldParser splits CSV records into fields.
type fieldParser struct {
	fields []string
	buf    []byte
	ends   []int
}

// parse splits one record (without its line terminator) into fields. The
// returned slice is reused by the next call; its strings are not. err is the
// first quoting error (the fields are still returned, best effort).
func (p *fieldParser) parse(rec []byte, quoted bool) ([]string, error) {
	p.fields = p.fields[:0]
	if !quoted {
		s := string(rec)
		for {
			j := strings.IndexByte(s, ',')
			if j < 0 {
				p.fields = append(p.fields, s)
				return p.fields, nil
			}
			p.fields = append(p.fields, s[:j])
			s = s[j+1:]
		}
	}
	p.buf = p.buf[:0]
	p.ends = p.ends[:0]
	var err error
	i := 0
	for field := 1; ; field++ {
		if i < len(rec) && rec[i] == '"' {
			i++
			for {
				j := bytes.IndexByte(rec[i:], '"')
				if j < 0 { // cannot happen in a complete record
					p.buf = append(p.buf, rec[i:]...)
					i = len(rec)
					if err == nil {
						err = fmt.Errorf("field %d: unterminated quoted field", field)
					}
					break
				}
				p.buf = append(p.buf, rec[i:i+j]...)
				i += j + 1
				if i < len(rec) && rec[i] == '"' {
					p.buf = append(p.buf, '"')
					i++
					continue
				}
				break
			}
			if i < len(rec) && rec[i] != ',' {
				if err == nil {
					err = fmt.Errorf("field %d: text after the closing quote", field)
				}
				j := bytes.IndexByte(rec[i:], ',')
				if j < 0 {
					j = len(rec) - i
				}
				p.buf = append(p.buf, rec[i:i+j]...)
				i += j
			}
		} else {
			j := bytes.IndexByte(rec[i:], ',')
			if j < 0 {
				j = len(rec) - i
			}
			f := rec[i : i+j]
			if err == nil && bytes.IndexByte(f, '"') >= 0 {
				err = fmt.Errorf("field %d: bare \" in an unquoted field (quote the field and double the quote)", field)
			}
			p.buf = append(p.buf, f...)
			i += j
		}
		p.ends = append(p.ends, len(p.buf))
		if i >= len(rec) {
			break
		}
		i++ // the comma
	}
	s := string(p.buf)
	start := 0
	for _, e := range p.ends {
		p.fields = append(p.fields, s[start:e])
		start = e
	}
	return p.fields, err
}

// chunker cuts records into chunks as the planner finds them.
type chunker struct {
	rows   int
	n      int64
	chunks []Chunk
}

func (c *chunker) start(off, line int64) {
	c.n++
	k := len(c.chunks)
	if k == 0 || (c.rows > 0 && c.chunks[k-1].Records >= int64(c.rows)) {
		c.chunks = append(c.chunks, Chunk{Index: k, Start: off, FirstRecord: c.n, FirstLine: line})
		k++
	}
	c.chunks[k-1].Records++
}

func (c *chunker) end(off int64) { c.chunks[len(c.chunks)-1].End = off }

func planCSV(src *source, hint Kind, rows int, lim Limits) (*Plan, error) {
	var sp span
	ok, err := src.nextCSV(&sp)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: empty file", ErrNotRecognised)
	}
	if sp.tooLong {
		return nil, fmt.Errorf("line %d: header longer than %d bytes", sp.line, lim.MaxRecordBytes)
	}
	if !utf8.Valid(sp.data) {
		return nil, fmt.Errorf("%w: line %d: header is not UTF-8", ErrNotRecognised, sp.line)
	}
	var fp fieldParser
	fields, err := fp.parse(sp.data, sp.quoted)
	if err != nil {
		return nil, fmt.Errorf("line %d: header: %v", sp.line, err)
	}
	header := make([]string, len(fields))
	for i, f := range fields {
		header[i] = strings.TrimSpace(f)
	}
	kind, err := headerKind(header, hint, sp.line)
	if err != nil {
		return nil, err
	}
	ch := chunker{rows: rows}
	for {
		ok, err := src.nextCSV(&sp)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		ch.start(sp.off, sp.line)
		ch.end(sp.end)
	}
	return &Plan{Format: FormatCSV, Kind: kind, Header: header, Records: ch.n, Chunks: ch.chunks}, nil
}

// headerKind decides the kind of a CSV file by its header and checks the header.
func headerKind(header []string, hint Kind, line int64) (Kind, error) {
	var known, only [2]int // orders, payments
	for _, h := range header {
		o := columnIndex(KindOrders, h) != -1
		p := columnIndex(KindPayments, h) != -1
		if o {
			known[0]++
		}
		if p {
			known[1]++
		}
		if o && !p {
			only[0]++
		}
		if p && !o {
			only[1]++
		}
	}
	var file Kind
	switch {
	case only[0] > 0 && only[1] == 0:
		file = KindOrders
	case only[1] > 0 && only[0] == 0:
		file = KindPayments
	case only[0] > 0 && only[1] > 0 && known[0] > known[1]:
		file = KindOrders
	case only[0] > 0 && only[1] > 0 && known[1] > known[0]:
		file = KindPayments
	}
	kind := hint
	switch {
	case hint != "" && file != "" && file != hint:
		return "", mismatch(file, hint)
	case hint == "" && file == "":
		if known[0] == 0 && known[1] == 0 {
			return "", fmt.Errorf("%w: line %d: the header's %d columns name no orders or payments column", ErrNotRecognised, line, len(header))
		}
		return "", fmt.Errorf("%w: line %d: cannot tell orders from payments by the header's columns (%s); give the type", ErrNotRecognised, line, strings.Join(knownOf(header), ", "))
	case hint == "":
		kind = file
	}
	// Header cells are file content: a file without a header has a data row
	// there. The messages name the cell by position, and show it only when
	// mask.Safe allows.
	for i, h := range header {
		for j, g := range header[:i] {
			if g == h {
				return "", fmt.Errorf("line %d: %s repeats column %d", line, headerCell(i, h), j+1)
			}
		}
	}
	for i, h := range header {
		if columnIndex(kind, h) == -1 {
			return "", fmt.Errorf("line %d: %s is not a known %s column (%s columns are: %s)", line, headerCell(i, h), kind, kind, strings.Join(Columns(kind), ", "))
		}
	}
	var missing []string
	for _, req := range requiredColumns(kind) {
		found := false
		for _, h := range header {
			if h == req {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, req)
		}
	}
	switch len(missing) {
	case 0:
	case 1:
		return "", fmt.Errorf("line %d: missing column %q (required for %s)", line, missing[0], kind)
	default:
		return "", fmt.Errorf("line %d: missing columns %s (required for %s)", line, quoteList(missing), kind)
	}
	return kind, nil
}

// headerCell names the header's cell i (0-based) for an error message:
// `column 3 of the header ("colour")`, its value shown only when mask.Safe.
func headerCell(i int, h string) string {
	return fmt.Sprintf("column %d of the header (%s)", i+1, mask.Show(h))
}

// knownOf returns the header's cells that are orders or payments columns.
func knownOf(header []string) []string {
	var known []string
	for _, h := range header {
		if columnIndex(KindOrders, h) != -1 || columnIndex(KindPayments, h) != -1 {
			known = append(known, h)
		}
	}
	return known
}

// csvReader reads the records of one CSV chunk.
type csvReader struct {
	src     *source
	sp      span
	fp      fieldParser
	colIdx  []int // header position -> index in Values, or -1 (ignored)
	vals    []string
	chunk   int
	first   int64
	want    int64
	read    int64
	max     int
	nHeader int
	formula []bool // by index in Values: FormulaColumn
}

func newCSVReader(r io.Reader, p *Plan, c Chunk, lim Limits) (*csvReader, error) {
	cr := &csvReader{
		src:     newSource(r, c.Start, c.FirstLine, lim.MaxRecordBytes),
		vals:    make([]string, len(Columns(p.Kind))),
		chunk:   c.Index,
		first:   c.FirstRecord,
		want:    c.Records,
		max:     lim.MaxRecordBytes,
		nHeader: len(p.Header),
	}
	if len(p.Header) == 0 {
		return nil, fmt.Errorf("records: CSV plan without a header")
	}
	for _, c := range Columns(p.Kind) {
		cr.formula = append(cr.formula, FormulaColumn(c))
	}
	cr.colIdx = make([]int, len(p.Header))
	for i, h := range p.Header {
		cr.colIdx[i] = columnIndex(p.Kind, h)
		if cr.colIdx[i] < 0 {
			cr.colIdx[i] = -1
		}
	}
	return cr, nil
}

func (cr *csvReader) next() (Record, error) {
	sp := &cr.sp
	ok, err := cr.src.nextCSV(sp)
	if err != nil {
		return Record{}, err
	}
	if !ok {
		if cr.read != cr.want {
			return Record{}, fmt.Errorf("chunk %d: %d records read, the plan says %d (has the file changed?)", cr.chunk, cr.read, cr.want)
		}
		return Record{}, io.EOF
	}
	cr.read++
	if cr.read > cr.want {
		return Record{}, fmt.Errorf("line %d: chunk %d holds more records than the plan's %d (has the file changed?)", sp.line, cr.chunk, cr.want)
	}
	for i := range cr.vals {
		cr.vals[i] = ""
	}
	rec := Record{Line: sp.line, Number: cr.first + cr.read - 1, Values: cr.vals}
	if sp.tooLong {
		rec.Err = fmt.Errorf("record longer than %d bytes", cr.max)
		return rec, nil
	}
	if !utf8.Valid(sp.data) {
		rec.Err = fmt.Errorf("record is not valid UTF-8")
	} else if bytes.IndexByte(sp.data, 0) >= 0 {
		rec.Err = fmt.Errorf("record holds a NUL character")
	}
	fields, perr := cr.fp.parse(sp.data, sp.quoted)
	n := len(fields)
	if n > cr.nHeader {
		n = cr.nHeader
	}
	for i, f := range fields[:n] {
		if j := cr.colIdx[i]; j >= 0 {
			if cr.formula[j] {
				f = UnneutralizeFormula(f)
			}
			cr.vals[j] = f
		}
	}
	if rec.Err == nil {
		if perr != nil {
			rec.Err = perr
		} else if len(fields) != cr.nHeader {
			rec.Err = fmt.Errorf("record has %d fields, the header has %d", len(fields), cr.nHeader)
		}
	}
	return rec, nil
}
