package records

// The former XML implementation, built on encoding/xml, kept as the reference
// of FuzzXMLDifferential (see xml_diff_test.go).

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/acme/payments/internal/mask"
)

// errRefTooBig is returned by refSource.ReadByte when the XML decoder has read
// more than refSource.guard bytes since refSource.mark: one token is too large
// to be held in memory.
var errRefTooBig = errors.New("token too large")

// refSource serves the encoding/xml decoder byte by byte.
type refSource struct {
	*source
	// ReadByte fails with errRefTooBig once more than guard bytes were read
	// since offset mark (checked when the buffer is refilled).
	mark, guard int64
}

// ReadByte implements io.ByteReader for the XML decoder.
func (s *refSource) ReadByte() (byte, error) {
	if s.r < s.w {
		b := s.buf[s.r]
		s.r++
		return b, nil
	}
	return s.readByteSlow()
}

func (s *refSource) readByteSlow() (byte, error) {
	for s.r >= s.w {
		if s.eof {
			return 0, io.EOF
		}
		if s.guard > 0 && s.bufOff+int64(s.w)-s.mark > s.guard {
			return 0, errRefTooBig
		}
		s.discard()
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	b := s.buf[s.r]
	s.r++
	return b, nil
}

// Read implements io.Reader (required by xml.NewDecoder; the decoder uses ReadByte).
func (s *refSource) Read(p []byte) (int, error) {
	if s.r >= s.w {
		if s.eof {
			return 0, io.EOF
		}
		s.discard()
		if err := s.fill(); err != nil {
			return 0, err
		}
		if s.r >= s.w {
			return 0, io.EOF
		}
	}
	n := copy(p, s.buf[s.r:s.w])
	s.r += n
	return n, nil
}

func refNewDecoder(src *refSource) *xml.Decoder {
	d := xml.NewDecoder(src)
	d.Strict = true
	// Entity map nil: only the predefined and numeric references;
	// CharsetReader nil: declared encodings other than UTF-8 fail.
	return d
}

// xmlError turns a decoder error into a file-level error naming the line.
// lineBase is added to the decoder's lines; line is the line where the
// failing token started.
func refXMLError(err error, lineBase, line int64, lim Limits) error {
	if errors.Is(err, errRefTooBig) {
		return fmt.Errorf("line %d: XML text, comment or tag longer than %d bytes", line, tokenGuard(lim))
	}
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		msg := refScrub(se.Msg)
		if strings.Contains(msg, "unexpected EOF") {
			return fmt.Errorf("line %d: malformed XML: %s (truncated?)", int64(se.Line)+lineBase, msg)
		}
		return fmt.Errorf("line %d: malformed XML: %s", int64(se.Line)+lineBase, msg)
	}
	if msg := refScrub(err.Error()); msg != err.Error() {
		return fmt.Errorf("line %d: %s", line, msg)
	}
	return fmt.Errorf("line %d: %w", line, err)
}

// refScrubs rewrite encoding/xml's messages that repeat file content the
// way the scanner words them: names through showName, values through
// mask.Show.
var refScrubs = []struct {
	re  *regexp.Regexp
	fix func(m []string) string
}{
	{regexp.MustCompile(`^invalid XML name: (.*)$`), func(m []string) string { return "invalid XML name: " + showName(m[1]) }},
	{regexp.MustCompile(`^invalid characters between </(.*) and >$`), func(m []string) string {
		return "invalid characters between </" + showName(m[1]) + " and >"
	}},
	{regexp.MustCompile(`(?s)^invalid character entity (.*)$`), func(m []string) string {
		if e, ok := strings.CutSuffix(m[1], " (no semicolon)"); ok {
			return entityError([]byte(e))
		}
		return entityError([]byte(m[1]))
	}},
	{regexp.MustCompile(`(?s)^xml: unsupported version "(.*)"; only version 1.0 is supported$`), func(m []string) string {
		return "xml: unsupported version " + mask.Show(refUnquote(m[0], "version")) + "; only version 1.0 is supported"
	}},
	{regexp.MustCompile(`(?s)^xml: encoding "(.*)" declared but Decoder.CharsetReader is nil$`), func(m []string) string {
		return "xml: encoding " + mask.Show(refUnquote(m[0], "encoding")) + " declared but Decoder.CharsetReader is nil"
	}},
}

// refUnquote reads back the %q-quoted value after "<word> " in msg.
func refUnquote(msg, word string) string {
	i := strings.Index(msg, word+" ")
	q, err := strconv.QuotedPrefix(msg[i+len(word)+1:])
	if err != nil {
		return msg
	}
	v, _ := strconv.Unquote(q)
	return v
}

func refScrub(msg string) string {
	for _, r := range refScrubs {
		if m := r.re.FindStringSubmatch(msg); m != nil {
			return r.fix(m)
		}
	}
	return msg
}

func refPlanXML(s *source, hint Kind, rows int, lim Limits) (*Plan, error) {
	src := &refSource{source: s}
	base := src.bufOff + int64(src.r) // after a BOM
	src.guard = tokenGuard(lim)
	d := refNewDecoder(src)
	var (
		stack   []string
		kind    Kind
		recName string
		phase   int // 0 before the root, 1 inside it, 2 after it
		ch      = chunker{rows: rows}
	)
loop:
	for {
		off := d.InputOffset()
		l, _ := d.InputPos()
		line := int64(l)
		src.mark = base + off
		tok, err := d.RawToken()
		if err == io.EOF {
			switch phase {
			case 0:
				return nil, fmt.Errorf("%w: no root element", ErrNotRecognised)
			case 1:
				return nil, fmt.Errorf("line %d: file ends inside <%s> (truncated?)", line, showName(stack[len(stack)-1]))
			}
			break loop
		}
		if err != nil {
			return nil, refXMLError(err, 0, line, lim)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := t.Name.Local
			if t.Name.Space != "" {
				name = t.Name.Space + ":" + name
			}
			switch {
			case phase == 2:
				return nil, fmt.Errorf("line %d: element <%s> after the end of <%s>", line, showName(name), kind)
			case phase == 0:
				switch name {
				case string(KindOrders), string(KindPayments):
					kind = Kind(name)
				default:
					return nil, fmt.Errorf("%w: line %d: unknown root element <%s> (want <orders> or <payments>)", ErrNotRecognised, line, showName(name))
				}
				if hint != "" && hint != kind {
					return nil, mismatch(kind, hint)
				}
				recName = recordElement(kind)
				phase = 1
			default:
				if len(stack)+1 > lim.MaxXMLDepth {
					return nil, fmt.Errorf("line %d: elements nested deeper than %d", line, lim.MaxXMLDepth)
				}
				if len(stack) == 1 {
					if name != recName {
						return nil, fmt.Errorf("line %d: unexpected element <%s> in <%s> (want <%s>)", line, showName(name), kind, recName)
					}
					ch.start(base+off, line)
				}
			}
			stack = append(stack, name)
		case xml.EndElement:
			name := t.Name.Local
			if t.Name.Space != "" {
				name = t.Name.Space + ":" + name
			}
			if len(stack) == 0 {
				return nil, fmt.Errorf("line %d: unexpected end tag </%s>", line, showName(name))
			}
			if top := stack[len(stack)-1]; top != name {
				return nil, fmt.Errorf("line %d: element <%s> closed by </%s>", line, showName(top), showName(name))
			}
			stack = stack[:len(stack)-1]
			switch len(stack) {
			case 1:
				ch.end(base + d.InputOffset())
			case 0:
				phase = 2
			}
		case xml.CharData:
			if len(stack) <= 1 && !isSpace(t) {
				switch phase {
				case 1:
					return nil, fmt.Errorf("line %d: text directly in <%s> (only <%s> elements belong there)", line, kind, recName)
				case 0:
					return nil, fmt.Errorf("%w: line %d: text before the root element", ErrNotRecognised, line)
				default:
					return nil, fmt.Errorf("line %d: text after the end of <%s>", line, kind)
				}
			}
		case xml.Directive:
			return nil, directiveError(t, line)
		}
	}
	return &Plan{Format: FormatXML, Kind: kind, Records: ch.n, Chunks: ch.chunks}, nil
}

// refXMLReader reads the records of one XML chunk: a run of record elements
// (with whitespace and comments between them) and no root.
type refXMLReader struct {
	d          *xml.Decoder
	src        *refSource
	lim        Limits
	lineBase   int64
	kind       Kind
	recName    string
	cols       []string
	vals       []string
	vbuf       []byte
	vstart     []int
	vend       []int
	stack      []string
	chunk      int
	chunkStart int64
	first      int64
	want       int64
	read       int64
}

func newRefXMLReader(r io.Reader, p *Plan, c Chunk, lim Limits) *refXMLReader {
	src := &refSource{source: newSource(r, c.Start, c.FirstLine, lim.MaxRecordBytes)}
	if n := c.End - c.Start + 1; n < int64(len(src.buf)) {
		src.buf = make([]byte, max(n, 4<<10)) // a small chunk (the fuzz target): a small buffer
	}
	src.guard = tokenGuard(lim)
	n := len(Columns(p.Kind))
	return &refXMLReader{
		d:          refNewDecoder(src),
		src:        src,
		lim:        lim,
		lineBase:   c.FirstLine - 1,
		kind:       p.Kind,
		recName:    recordElement(p.Kind),
		cols:       Columns(p.Kind),
		vals:       make([]string, n),
		vstart:     make([]int, n),
		vend:       make([]int, n),
		chunk:      c.Index,
		chunkStart: c.Start,
		first:      c.FirstRecord,
		want:       c.Records,
	}
}

// token reads the next raw token, noting where it starts.
func (x *refXMLReader) token() (xml.Token, int64, int64, error) {
	off := x.d.InputOffset()
	l, _ := x.d.InputPos()
	line := int64(l) + x.lineBase
	x.src.mark = x.chunkStart + off
	tok, err := x.d.RawToken()
	if err != nil && err != io.EOF {
		err = refXMLError(err, x.lineBase, line, x.lim)
	}
	return tok, off, line, err
}

func (x *refXMLReader) next() (Record, error) {
	for {
		tok, off, line, err := x.token()
		if err == io.EOF {
			if x.read != x.want {
				return Record{}, fmt.Errorf("chunk %d: %d records read, the plan says %d (has the file changed?)", x.chunk, x.read, x.want)
			}
			return Record{}, io.EOF
		}
		if err != nil {
			return Record{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space != "" || t.Name.Local != x.recName {
				return Record{}, fmt.Errorf("line %d: unexpected element <%s> (want <%s>)", line, showName(t.Name.Local), x.recName)
			}
			return x.record(off, line)
		case xml.EndElement:
			return Record{}, fmt.Errorf("line %d: unexpected end tag </%s>", line, showName(t.Name.Local))
		case xml.CharData:
			if !isSpace(t) {
				return Record{}, fmt.Errorf("line %d: text between <%s> records", line, x.recName)
			}
		case xml.Directive:
			return Record{}, directiveError(t, line)
		}
	}
}

func (x *refXMLReader) record(startOff, startLine int64) (Record, error) {
	x.read++
	if x.read > x.want {
		return Record{}, fmt.Errorf("line %d: chunk %d holds more records than the plan's %d (has the file changed?)", startLine, x.chunk, x.want)
	}
	rec := Record{Line: startLine, Number: x.first + x.read - 1, Values: x.vals}
	var seen uint64
	x.vbuf = x.vbuf[:0]
	x.stack = append(x.stack[:0], x.recName)
	cur := -1 // column of the child being read; -1 none or ignored
	for {
		tok, _, line, err := x.token()
		if err == io.EOF {
			return Record{}, fmt.Errorf("line %d: file ends inside <%s> (truncated?)", line, showName(x.stack[len(x.stack)-1]))
		}
		if err != nil {
			return Record{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := t.Name.Local
			if t.Name.Space != "" {
				name = t.Name.Space + ":" + name
			}
			if len(x.stack)+2 > x.lim.MaxXMLDepth {
				return Record{}, fmt.Errorf("line %d: elements nested deeper than %d", line, x.lim.MaxXMLDepth)
			}
			if len(x.stack) == 1 {
				idx := -1
				if t.Name.Space == "" {
					idx = columnIndex(x.kind, name)
				}
				cur = -1
				switch {
				case idx == -1:
					if rec.Err == nil {
						rec.Err = fmt.Errorf("unknown element <%s> in <%s> (%s columns are: %s)", showName(name), x.recName, x.kind, strings.Join(x.cols, ", "))
					}
				case idx == -2: // derived column: ignored
				case seen&(1<<idx) != 0:
					if rec.Err == nil {
						rec.Err = fmt.Errorf("repeated element <%s> in <%s>", showName(name), x.recName)
					}
				default:
					seen |= 1 << idx
					cur = idx
					x.vstart[idx] = len(x.vbuf)
				}
			} else if rec.Err == nil {
				rec.Err = fmt.Errorf("element <%s> inside <%s> (a column holds text only)", showName(name), showName(x.stack[len(x.stack)-1]))
			}
			x.stack = append(x.stack, name)
		case xml.EndElement:
			name := t.Name.Local
			if t.Name.Space != "" {
				name = t.Name.Space + ":" + name
			}
			if top := x.stack[len(x.stack)-1]; top != name {
				return Record{}, fmt.Errorf("line %d: element <%s> closed by </%s>", line, showName(top), showName(name))
			}
			x.stack = x.stack[:len(x.stack)-1]
			switch len(x.stack) {
			case 1:
				if cur >= 0 {
					x.vend[cur] = len(x.vbuf)
				}
				cur = -1
			case 0:
				return x.finish(rec, seen, startOff)
			}
		case xml.CharData:
			switch {
			case len(x.stack) == 2 && cur >= 0:
				x.vbuf = append(x.vbuf, t...)
			case len(x.stack) == 1 && !isSpace(t) && rec.Err == nil:
				rec.Err = fmt.Errorf("text directly in <%s> (outside a column element)", x.recName)
			}
		case xml.Directive:
			return Record{}, directiveError(t, line)
		}
	}
}

func (x *refXMLReader) finish(rec Record, seen uint64, startOff int64) (Record, error) {
	if size := x.d.InputOffset() - startOff; size > int64(x.lim.MaxRecordBytes) {
		rec.Err = fmt.Errorf("record is %d bytes, longer than %d", size, x.lim.MaxRecordBytes)
	}
	s := string(x.vbuf)
	for i := range x.vals {
		if seen&(1<<i) != 0 {
			x.vals[i] = s[x.vstart[i]:x.vend[i]]
		} else {
			x.vals[i] = ""
		}
	}
	return rec, nil
}

// isSpace reports whether b is XML white space only.
func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}
