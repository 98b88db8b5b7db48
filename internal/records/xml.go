package records

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/acme/payments/internal/mask"
)

// The XML scanner below reads exactly the subset of XML that the importer
// accepts, with the rules (and the error messages) of the encoding/xml
// decoder in strict mode that it replaces (xml_ref_test.go keeps that
// implementation as the reference of FuzzXMLDifferential), but without
// allocating per token: tokens are read in place in the source's buffer.
//
// What it accepts, as encoding/xml did: processing instructions anywhere
// (ignored; those of target "xml" are checked for version 1.0 and a UTF-8 or
// no encoding), comments, CDATA sections, the five predefined entities and
// numeric character references, attributes (checked, then ignored), names
// with one ':' or none. It refuses directives (<!DOCTYPE…>, <!ENTITY…>…),
// other entities, characters outside XML's Char production and invalid UTF-8
// in names, text and attribute values. Like encoding/xml, it does not check
// the contents of comments and processing instructions.
//
// Deviations from encoding/xml (documented, and excluded narrowly in the
// fuzz target):
//   - A character reference to a surrogate (&#xD800;…&#xDFFF;) is refused
//     ("illegal character code U+D800"); encoding/xml turned it into U+FFFD.
//   - A token longer than the guard is reported on the line where it starts,
//     and a read error on the line of the token being read.

// tokenGuard is the most bytes one XML token (text, comment…) may take
// before the file is refused: tokens are held in memory while scanned.
func tokenGuard(lim Limits) int64 { return 4*int64(lim.MaxRecordBytes) + 64<<10 }

// errTooBig: one token is longer than the guard.
var errTooBig = errors.New("token too large")

func directiveError(dir []byte, line int64) error {
	if bytes.HasPrefix(bytes.TrimSpace(dir), []byte("DOCTYPE")) {
		return fmt.Errorf("line %d: DTDs are not allowed", line)
	}
	return fmt.Errorf("line %d: XML directives (<!…>) are not allowed", line)
}

// showName renders an element name (or any name-like token) of the file for
// an error message: as it is when mask.Safe allows, otherwise by its length
// only, "(a 17-character name)": names are file content too, and a file
// can put a card number or an email where a name goes.
func showName[T ~string | ~[]byte](name T) string {
	if s := string(name); s == "" || mask.Safe(s) {
		return s
	}
	if !utf8.Valid([]byte(name)) {
		return fmt.Sprintf("(a %d-byte name)", len(name))
	}
	return fmt.Sprintf("(a %d-character name)", utf8.RuneCount([]byte(name)))
}

// entityError is the message for an unknown entity or bad character
// reference ent ("&name;", or without the semicolon), its name shown only
// when safe.
func entityError(ent []byte) string {
	name, semi := bytes.CutSuffix(bytes.TrimPrefix(ent, []byte("&")), []byte(";"))
	msg := "invalid character entity &" + showName(name)
	if semi {
		return msg + ";"
	}
	return msg + " (no semicolon)"
}

// xtok is the kind of an XML token.
type xtok uint8

const (
	xEOF       xtok = iota
	xStart          // start tag (a self-closing tag gives xStart then xEnd)
	xEnd            // end tag
	xText           // character data or CDATA section
	xIgnored        // comment or processing instruction
	xDirective      // <!…> other than a comment or CDATA
)

// Character classes of text bytes.
const (
	cPlain   = 0 // ordinary character, not white space
	cSpace   = 1 // ' ', '\t', '\n'
	cSpecial = 2 // needs a closer look
)

var (
	textClass  [256]uint8 // character data
	cdataClass [256]uint8 // CDATA section
	attrClass  [256]uint8 // attribute value
	nameByte   [256]bool  // ASCII bytes of names (bytes >= 0x80 are taken too, then checked)

	sepPI      = []byte("?>")
	sepComment = []byte("--")
)

func init() {
	for i := 0; i < 256; i++ {
		c := byte(i)
		k := uint8(cPlain)
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			k = cSpace
		case c < 0x20 || c >= utf8.RuneSelf || c == '>':
			k = cSpecial
		}
		textClass[i], cdataClass[i], attrClass[i] = k, k, k
		if c == ']' { // counted apart: the "]]" of "]]>" is not data
			cdataClass[i] = cSpecial
		}
		if c == '<' || c == '&' {
			textClass[i], attrClass[i] = cSpecial, cSpecial
		}
		if c == '"' || c == '\'' {
			attrClass[i] = cSpecial
		}
		nameByte[i] = 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '_' || c == ':' || c == '.' || c == '-'
	}
}

// isInCharacterRange reports whether r is allowed in XML (the Char production).
func isInCharacterRange(r rune) bool {
	return r == 0x09 ||
		r == 0x0A ||
		r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// localName is the part of a name after its prefix (encoding/xml's Name.Local).
func localName(name []byte) []byte {
	if i := bytes.IndexByte(name, ':'); i > 0 && i < len(name)-1 {
		return name[i+1:]
	}
	return name
}

// xmlScanner splits XML into tokens. The current token is s.buf[s.r:s.r+p]
// (p grows as it is scanned); the next call to next moves s.r past it.
type xmlScanner struct {
	s      *source
	p      int   // bytes of the current token scanned (from s.r)
	tokOff int64 // file offset of the current token
	guard  int64
	ioErr  error // read error or errTooBig (sticky)

	// Lines are counted lazily: ln is the line at file offset lnOff.
	ln, lnOff int64

	// The current token.
	kind     xtok
	nameOff  int  // xStart, xEnd: the name is s.buf[s.r+nameOff : s.r+nameEnd]
	nameEnd  int  //
	nonSpace bool // xText: holds characters other than ' ', '\t', '\r', '\n'
	dir      []byte
	// out, when not nil, receives the decoded character data of xText tokens.
	out *[]byte

	// openName, set by the caller, is the name of the innermost open element
	// (or empty): its end tag is then read faster.
	openName []byte

	needClose bool   // the last start tag was self-closing: the end tag comes next
	closeName []byte // its name
	closing   bool   // the current xEnd token is such an implicit end tag
}

func newXMLScanner(src *source, lim Limits, line int64) *xmlScanner {
	off := src.bufOff + int64(src.r)
	return &xmlScanner{s: src, guard: tokenGuard(lim), ln: line, lnOff: off, tokOff: off}
}

// name is the name of the current xStart or xEnd token; valid until next.
func (x *xmlScanner) name() []byte {
	if x.closing {
		return x.closeName
	}
	return x.s.buf[x.s.r+x.nameOff : x.s.r+x.nameEnd]
}

// end is the file offset just after the current token.
func (x *xmlScanner) end() int64 { return x.tokOff + int64(x.p) }

// lineAt returns the line of file offset off, which must not be before an
// offset asked for earlier nor before the current token.
func (x *xmlScanner) lineAt(off int64) int64 {
	if off > x.lnOff {
		s := x.s
		x.ln += int64(bytes.Count(s.buf[x.lnOff-s.bufOff:off-s.bufOff], []byte{'\n'}))
		x.lnOff = off
	}
	return x.ln
}

// tokLine is the line on which the current token starts.
func (x *xmlScanner) tokLine() int64 { return x.lineAt(x.tokOff) }

// synErr is a syntax error at the current position.
func (x *xmlScanner) synErr(msg string) error {
	line := x.lineAt(x.end())
	if strings.Contains(msg, "unexpected EOF") {
		return fmt.Errorf("line %d: malformed XML: %s (truncated?)", line, msg)
	}
	return fmt.Errorf("line %d: malformed XML: %s", line, msg)
}

// fileErr reports err (a read error, errTooBig…) on the token's line.
func (x *xmlScanner) fileErr(err error) error {
	if errors.Is(err, errTooBig) {
		return fmt.Errorf("line %d: XML text, comment or tag longer than %d bytes", x.tokLine(), x.guard)
	}
	return fmt.Errorf("line %d: %w", x.tokLine(), err)
}

// eofErr is the error when the input ends (or fails) inside a token.
func (x *xmlScanner) eofErr() error {
	if x.ioErr != nil {
		return x.fileErr(x.ioErr)
	}
	return x.synErr("unexpected EOF")
}

// more makes at least one byte after the cursor available; false at EOF or
// on an error (x.ioErr).
func (x *xmlScanner) more() bool {
	s := x.s
	for s.r+x.p >= s.w {
		if s.eof || x.ioErr != nil {
			return false
		}
		if int64(x.p) > x.guard {
			x.ioErr = errTooBig
			return false
		}
		x.lineAt(x.tokOff) // fill drops the bytes before the token
		if err := s.fill(); err != nil {
			x.ioErr = err
			return false
		}
	}
	return true
}

// fillFor tries to make n bytes after the cursor available; it reports
// whether it read anything.
func (x *xmlScanner) fillFor(n int) bool {
	s := x.s
	if s.w-s.r-x.p >= n || s.eof || x.ioErr != nil {
		return false
	}
	if int64(s.w-s.r) > x.guard {
		x.ioErr = errTooBig
		return false
	}
	x.lineAt(x.tokOff)
	w := s.w - s.r
	if err := s.fill(); err != nil {
		x.ioErr = err
		return false
	}
	return s.w-s.r > w
}

func (x *xmlScanner) getc() (byte, bool) {
	s := x.s
	if j := s.r + x.p; j < s.w {
		x.p++
		return s.buf[j], true
	}
	if !x.more() {
		return 0, false
	}
	x.p++
	return s.buf[s.r+x.p-1], true
}

// space skips white space.
func (x *xmlScanner) space() {
	for {
		b, ok := x.getc()
		if !ok {
			return
		}
		if b != ' ' && b != '\r' && b != '\n' && b != '\t' {
			x.p--
			return
		}
	}
}

// find moves the cursor to the first sep at or after it and reports whether
// there is one (at EOF the cursor is at the end of the input).
func (x *xmlScanner) find(sep []byte) bool {
	s := x.s
	from := x.p
	for {
		buf := s.buf[s.r:s.w]
		if k := bytes.Index(buf[from:], sep); k >= 0 {
			x.p = from + k
			return true
		}
		if n := len(buf) - len(sep) + 1; n > from {
			from = n
		}
		x.p = len(buf)
		if !x.more() {
			return false
		}
	}
}

// readName reads the bytes of a name (ASCII name bytes and any byte >= 0x80)
// at the cursor; ok is false (and nothing is read) when there is none.
func (x *xmlScanner) readName() (start, end int, ok bool, err error) {
	s := x.s
	start = x.p
	b, ok := x.getc()
	if !ok {
		return 0, 0, false, x.eofErr()
	}
	if b < utf8.RuneSelf && !nameByte[b] {
		x.p--
		return start, start, false, nil
	}
	for {
		if j := s.r + x.p; j < s.w {
			if c := s.buf[j]; c < utf8.RuneSelf && !nameByte[c] {
				return start, x.p, true, nil
			}
			x.p++
			continue
		}
		if !x.more() {
			return 0, 0, false, x.eofErr()
		}
	}
}

// readXMLName reads a name, reporting missing when there is none; nsname
// also refuses names with more than one ':'.
func (x *xmlScanner) readXMLName(missing string, nsname bool) (start, end int, err error) {
	start, end, ok, err := x.readName()
	if err != nil {
		return 0, 0, err
	}
	if !ok {
		return 0, 0, x.synErr(missing)
	}
	name := x.s.buf[x.s.r+start : x.s.r+end]
	if !isXMLName(name) {
		return 0, 0, x.synErr("invalid XML name: " + showName(name))
	}
	if nsname && bytes.Count(name, []byte{':'}) > 1 {
		return 0, 0, x.synErr(missing)
	}
	return start, end, nil
}

// next reads the next token.
func (x *xmlScanner) next() error {
	s := x.s
	s.r += x.p
	x.p = 0
	x.tokOff = s.bufOff + int64(s.r)
	x.closing = false
	if x.needClose {
		x.needClose = false
		x.closing = true
		x.kind = xEnd
		return nil
	}
	b, ok := x.getc()
	if !ok {
		if x.ioErr != nil {
			return x.fileErr(x.ioErr)
		}
		x.kind = xEOF
		return nil
	}
	if b != '<' {
		x.p--
		x.kind = xText
		return x.text(-1, false, x.out)
	}
	if x.fastTag() {
		return nil
	}
	if b, ok = x.getc(); !ok {
		return x.eofErr()
	}
	switch b {
	case '/':
		return x.endTag()
	case '?':
		return x.procInst()
	case '!':
		return x.bang()
	}
	x.p--
	return x.startTag()
}

// fastTag reads, when it is wholly buffered, a tag of the common forms
// <name>, </name> and <name/> with an ASCII name; the cursor is after '<'.
// It reports false (and reads nothing) for anything else, which the general
// code then reads.
func (x *xmlScanner) fastTag() bool {
	s := x.s
	buf := s.buf[s.r:s.w]
	i, kind := 1, xStart
	if len(buf) > 1 && buf[1] == '/' {
		i, kind = 2, xEnd
		// The end tag of the open element (a valid name, so no scan needed).
		if n := len(x.openName); n > 0 && len(buf) > n+2 && buf[n+2] == '>' && string(buf[2:n+2]) == string(x.openName) {
			x.p = n + 3
			x.kind, x.nameOff, x.nameEnd = xEnd, 2, n+2
			return true
		}
	}
	start := i
	colons := 0
	for i < len(buf) && nameByte[buf[i]] {
		if buf[i] == ':' {
			colons++
		}
		i++
	}
	if i == start || i >= len(buf) || colons > 1 {
		return false
	}
	if c := buf[start]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == ':') {
		return false
	}
	switch {
	case buf[i] == '>':
		x.p = i + 1
	case kind == xStart && buf[i] == '/' && i+1 < len(buf) && buf[i+1] == '>':
		x.p = i + 2
		x.needClose = true
		x.closeName = append(x.closeName[:0], buf[start:i]...)
	default:
		return false
	}
	x.kind, x.nameOff, x.nameEnd = kind, start, i
	return true
}

func (x *xmlScanner) startTag() error {
	start, end, err := x.readXMLName("expected element name after <", true)
	if err != nil {
		return err
	}
	for {
		x.space()
		b, ok := x.getc()
		if !ok {
			return x.eofErr()
		}
		if b == '/' {
			if b, ok = x.getc(); !ok {
				return x.eofErr()
			}
			if b != '>' {
				return x.synErr("expected /> in element")
			}
			x.needClose = true
			x.closeName = append(x.closeName[:0], x.s.buf[x.s.r+start:x.s.r+end]...)
			break
		}
		if b == '>' {
			break
		}
		x.p--
		if _, _, err := x.readXMLName("expected attribute name in element", true); err != nil {
			return err
		}
		x.space()
		if b, ok = x.getc(); !ok {
			return x.eofErr()
		}
		if b != '=' {
			return x.synErr("attribute name without = in element")
		}
		x.space()
		if b, ok = x.getc(); !ok {
			return x.eofErr()
		}
		if b != '"' && b != '\'' {
			return x.synErr("unquoted or missing attribute value in element")
		}
		if err := x.text(int(b), false, nil); err != nil {
			return err
		}
	}
	x.kind, x.nameOff, x.nameEnd = xStart, start, end
	return nil
}

func (x *xmlScanner) endTag() error {
	start, end, err := x.readXMLName("expected element name after </", true)
	if err != nil {
		return err
	}
	x.space()
	b, ok := x.getc()
	if !ok {
		return x.eofErr()
	}
	if b != '>' {
		return x.synErr("invalid characters between </" + showName(localName(x.s.buf[x.s.r+start:x.s.r+end])) + " and >")
	}
	x.kind, x.nameOff, x.nameEnd = xEnd, start, end
	return nil
}

func (x *xmlScanner) procInst() error {
	start, end, err := x.readXMLName("expected target name after <?", false)
	if err != nil {
		return err
	}
	x.space()
	from := x.p
	if !x.find(sepPI) {
		return x.eofErr()
	}
	to := x.p
	x.p += len(sepPI)
	buf := x.s.buf[x.s.r:]
	if string(buf[start:end]) == "xml" {
		content := string(buf[from:to])
		if ver := procInst("version", content); ver != "" && ver != "1.0" {
			return x.fileErr(fmt.Errorf("xml: unsupported version %s; only version 1.0 is supported", mask.Show(ver)))
		}
		if enc := procInst("encoding", content); enc != "" && !strings.EqualFold(enc, "utf-8") {
			return x.fileErr(fmt.Errorf("xml: encoding %s declared but Decoder.CharsetReader is nil", mask.Show(enc)))
		}
	}
	x.kind = xIgnored
	return nil
}

// procInst returns the value of param in the content of an <?xml …?>
// declaration (encoding/xml's parsing, quirks included).
func procInst(param, s string) string {
	param = param + "="
	lenp := len(param)
	i := 0
	var sep byte
	for i < len(s) {
		sub := s[i:]
		k := strings.Index(sub, param)
		if k < 0 || lenp+k >= len(sub) {
			return ""
		}
		i += lenp + k + 1
		if c := sub[lenp+k]; c == '\'' || c == '"' {
			sep = c
			break
		}
	}
	if sep == 0 {
		return ""
	}
	j := strings.IndexByte(s[i:], sep)
	if j < 0 {
		return ""
	}
	return s[i : i+j]
}

// bang reads a token starting with "<!".
func (x *xmlScanner) bang() error {
	b, ok := x.getc()
	if !ok {
		return x.eofErr()
	}
	switch b {
	case '-': // comment
		if b, ok = x.getc(); !ok {
			return x.eofErr()
		}
		if b != '-' {
			return x.synErr("invalid sequence <!- not part of <!--")
		}
		if !x.find(sepComment) {
			return x.eofErr()
		}
		x.p += len(sepComment)
		if b, ok = x.getc(); !ok {
			return x.eofErr()
		}
		if b != '>' {
			return x.synErr(`invalid sequence "--" not allowed in comments`)
		}
		x.kind = xIgnored
		return nil
	case '[': // CDATA section
		for i := 0; i < 6; i++ {
			if b, ok = x.getc(); !ok {
				return x.eofErr()
			}
			if b != "CDATA["[i] {
				return x.synErr("invalid <![ sequence")
			}
		}
		x.kind = xText
		return x.text(-1, true, x.out)
	}
	// A directive (refused by the callers): read it as encoding/xml does,
	// so that it ends (or is found truncated) at the same place.
	dir := append(x.dir[:0], b)
	var inquote byte
	depth := 0
	for {
		if b, ok = x.getc(); !ok {
			return x.eofErr()
		}
		if inquote == 0 && b == '>' && depth == 0 {
			break
		}
	handleB:
		dir = append(dir, b)
		switch {
		case b == inquote:
			inquote = 0
		case inquote != 0:
		case b == '\'' || b == '"':
			inquote = b
		case b == '>' && inquote == 0:
			depth--
		case b == '<' && inquote == 0:
			const s = "!--"
			for i := 0; i < len(s); i++ {
				if b, ok = x.getc(); !ok {
					return x.eofErr()
				}
				if b != s[i] {
					dir = append(dir, s[:i]...)
					depth++
					goto handleB
				}
			}
			dir = dir[:len(dir)-1]
			var b0, b1 byte
			for {
				if b, ok = x.getc(); !ok {
					return x.eofErr()
				}
				if b0 == '-' && b1 == '-' && b == '>' {
					break
				}
				b0, b1 = b1, b
			}
			dir = append(dir, ' ')
		}
	}
	x.dir = dir
	x.kind = xDirective
	return nil
}

// text reads character data: up to '<' or EOF (quote < 0, !cdata), an
// attribute value up to quote, or a CDATA section up to "]]>". It decodes
// entities and line ends into *out (when out is not nil), sets x.nonSpace,
// and checks the characters. As in encoding/xml, an invalid character is
// reported at the end of the text, unless a malformed entity comes first.
func (x *xmlScanner) text(quote int, cdata bool, out *[]byte) error {
	s := x.s
	cls := &textClass
	if cdata {
		cls = &cdataClass
	} else if quote >= 0 {
		cls = &attrClass
	}
	reset := x.p // "]]>" counts only bytes from here (encoding/xml's b0, b1)
	var pending string
	ns := false
	brackets := 0 // ']' in a CDATA section
	for {
		buf := s.buf[s.r:s.w]
		i := x.p
		start := i
		for i < len(buf) {
			k := cls[buf[i]]
			if k > cSpace {
				break
			}
			if k == cPlain {
				ns = true
			}
			i++
		}
		if out != nil && i > start {
			*out = append(*out, buf[start:i]...)
		}
		x.p = i
		if i == len(buf) {
			if x.more() {
				continue
			}
			if x.ioErr != nil {
				return x.fileErr(x.ioErr)
			}
			if cdata {
				return x.synErr("unexpected EOF in CDATA section")
			}
			break
		}
		c := buf[i]
		if c == '<' && !cdata {
			if quote >= 0 {
				x.p++
				return x.synErr("unescaped < inside quoted string")
			}
			break
		}
		if quote >= 0 && int(c) == quote {
			x.p++
			break
		}
		switch {
		case c == '>':
			x.p++
			if quote < 0 && i-2 >= reset && buf[i-2] == ']' && buf[i-1] == ']' {
				if !cdata {
					return x.synErr("unescaped ]]> not in CDATA section")
				}
				if out != nil {
					*out = (*out)[:len(*out)-2]
				}
				x.nonSpace = ns || brackets > 2
				if pending != "" {
					return x.synErr(pending)
				}
				return nil
			}
			ns = true
			if out != nil {
				*out = append(*out, c)
			}
		case c == ']': // in a CDATA section
			x.p++
			brackets++
			if out != nil {
				*out = append(*out, c)
			}
		case c == '&' || c == '"' || c == '\'':
			if c != '&' || cdata { // the other quote in an attribute value
				x.p++
				ns = true
				break
			}
			x.p++
			if err := x.entity(out, &ns, &pending); err != nil {
				return err
			}
			reset = x.p
		case c == '\r':
			x.p++
			if out != nil {
				*out = append(*out, '\n')
			}
			if b, ok := x.getc(); ok && b != '\n' {
				x.p--
			}
		case c < 0x20:
			x.p++
			ns = true
			if pending == "" {
				pending = fmt.Sprintf("illegal character code %U", rune(c))
			}
		default: // c >= 0x80
			if !utf8.FullRune(buf[i:]) && x.fillFor(utf8.UTFMax) {
				continue
			}
			r, size := utf8.DecodeRune(buf[i:])
			x.p += size
			ns = true
			if pending == "" {
				if r == utf8.RuneError && size == 1 {
					pending = "invalid UTF-8"
				} else if !isInCharacterRange(r) {
					pending = fmt.Sprintf("illegal character code %U", r)
				}
			}
			if out != nil {
				*out = append(*out, buf[i:i+size]...)
			}
		}
	}
	x.nonSpace = ns
	if pending != "" {
		return x.synErr(pending)
	}
	return nil
}

// entity reads an entity or character reference; the cursor is after its '&'.
func (x *xmlScanner) entity(out *[]byte, ns *bool, pending *string) error {
	start := x.p - 1
	b, ok := x.getc()
	if !ok {
		return x.eofErr()
	}
	r := rune(-1)
	if b == '#' {
		if b, ok = x.getc(); !ok {
			return x.eofErr()
		}
		base := uint64(10)
		if b == 'x' {
			base = 16
			if b, ok = x.getc(); !ok {
				return x.eofErr()
			}
		}
		var n uint64
		digits, big := false, false
		for {
			var d uint64
			switch {
			case '0' <= b && b <= '9':
				d = uint64(b - '0')
			case base == 16 && 'a' <= b && b <= 'f':
				d = uint64(b-'a') + 10
			case base == 16 && 'A' <= b && b <= 'F':
				d = uint64(b-'A') + 10
			default:
				d = 99
			}
			if d == 99 {
				break
			}
			digits = true
			if !big {
				n = n*base + d
				if n > utf8.MaxRune {
					big = true
				}
			}
			if b, ok = x.getc(); !ok {
				return x.eofErr()
			}
		}
		if b != ';' {
			x.p--
		} else if digits && !big {
			r = rune(n)
		}
	} else {
		x.p--
		nameStart, nameEnd, _, err := x.readName()
		if err != nil {
			return err
		}
		if b, ok = x.getc(); !ok {
			return x.eofErr()
		}
		if b != ';' {
			x.p--
		} else {
			switch string(x.s.buf[x.s.r+nameStart : x.s.r+nameEnd]) {
			case "lt":
				r = '<'
			case "gt":
				r = '>'
			case "amp":
				r = '&'
			case "apos":
				r = '\''
			case "quot":
				r = '"'
			}
		}
	}
	if r < 0 {
		return x.synErr(entityError(x.s.buf[x.s.r+start : x.s.r+x.p]))
	}
	if out != nil {
		*out = utf8.AppendRune(*out, r)
	}
	if r != ' ' && r != '\t' && r != '\r' && r != '\n' {
		*ns = true
	}
	if !isInCharacterRange(r) && *pending == "" {
		*pending = fmt.Sprintf("illegal character code %U", r)
	}
	return nil
}

// nameStack is a stack of element names kept in one buffer.
type nameStack struct {
	buf  []byte
	ends []int
}

func (st *nameStack) depth() int { return len(st.ends) }

func (st *nameStack) push(name []byte) {
	st.buf = append(st.buf, name...)
	st.ends = append(st.ends, len(st.buf))
}

func (st *nameStack) top() []byte {
	n := len(st.ends)
	start := 0
	if n > 1 {
		start = st.ends[n-2]
	}
	return st.buf[start:st.ends[n-1]]
}

func (st *nameStack) pop() {
	n := len(st.ends)
	st.ends = st.ends[:n-1]
	if n > 1 {
		st.buf = st.buf[:st.ends[n-2]]
	} else {
		st.buf = st.buf[:0]
	}
}

func (st *nameStack) reset() {
	st.buf, st.ends = st.buf[:0], st.ends[:0]
}

func planXML(src *source, hint Kind, rows int, lim Limits) (*Plan, error) {
	x := newXMLScanner(src, lim, 1)
	var (
		stack   nameStack
		kind    Kind
		recName string
		phase   int // 0 before the root, 1 inside it, 2 after it
		ch      = chunker{rows: rows}
	)
loop:
	for {
		x.openName = nil
		if stack.depth() > 0 {
			x.openName = stack.top()
		}
		if err := x.next(); err != nil {
			return nil, err
		}
		switch x.kind {
		case xEOF:
			switch phase {
			case 0:
				return nil, fmt.Errorf("%w: no root element", ErrNotRecognised)
			case 1:
				return nil, fmt.Errorf("line %d: file ends inside <%s> (truncated?)", x.tokLine(), showName(stack.top()))
			}
			break loop
		case xStart:
			name := x.name()
			switch {
			case phase == 2:
				return nil, fmt.Errorf("line %d: element <%s> after the end of <%s>", x.tokLine(), showName(name), kind)
			case phase == 0:
				switch string(name) {
				case string(KindOrders):
					kind = KindOrders
				case string(KindPayments):
					kind = KindPayments
				default:
					return nil, fmt.Errorf("%w: line %d: unknown root element <%s> (want <orders> or <payments>)", ErrNotRecognised, x.tokLine(), showName(name))
				}
				if hint != "" && hint != kind {
					return nil, mismatch(kind, hint)
				}
				recName = recordElement(kind)
				phase = 1
			default:
				if stack.depth()+1 > lim.MaxXMLDepth {
					return nil, fmt.Errorf("line %d: elements nested deeper than %d", x.tokLine(), lim.MaxXMLDepth)
				}
				if stack.depth() == 1 {
					if string(name) != recName {
						return nil, fmt.Errorf("line %d: unexpected element <%s> in <%s> (want <%s>)", x.tokLine(), showName(name), kind, recName)
					}
					ch.start(x.tokOff, x.tokLine())
				}
			}
			stack.push(name)
		case xEnd:
			name := x.name()
			if stack.depth() == 0 {
				return nil, fmt.Errorf("line %d: unexpected end tag </%s>", x.tokLine(), showName(name))
			}
			if top := stack.top(); !bytes.Equal(top, name) {
				return nil, fmt.Errorf("line %d: element <%s> closed by </%s>", x.tokLine(), showName(top), showName(name))
			}
			stack.pop()
			switch stack.depth() {
			case 1:
				ch.end(x.end())
			case 0:
				phase = 2
			}
		case xText:
			if stack.depth() <= 1 && x.nonSpace {
				switch phase {
				case 1:
					return nil, fmt.Errorf("line %d: text directly in <%s> (only <%s> elements belong there)", x.tokLine(), kind, recName)
				case 0:
					return nil, fmt.Errorf("%w: line %d: text before the root element", ErrNotRecognised, x.tokLine())
				default:
					return nil, fmt.Errorf("line %d: text after the end of <%s>", x.tokLine(), kind)
				}
			}
		case xDirective:
			return nil, directiveError(x.dir, x.tokLine())
		}
	}
	return &Plan{Format: FormatXML, Kind: kind, Records: ch.n, Chunks: ch.chunks}, nil
}

// xmlReader reads the records of one XML chunk: a run of record elements
// (with whitespace and comments between them) and no root.
type xmlReader struct {
	x       *xmlScanner
	lim     Limits
	kind    Kind
	recName string
	cols    []string
	vals    []string
	vbuf    []byte
	vstart  []int
	vend    []int
	stack   nameStack
	chunk   int
	first   int64
	want    int64
	read    int64
}

func newXMLReader(r io.Reader, p *Plan, c Chunk, lim Limits) *xmlReader {
	size := int64(initialBuffer)
	if n := c.End - c.Start + 1; n < size {
		size = max(n, 4<<10) // a small chunk: a small buffer
	}
	src := &source{rd: r, buf: make([]byte, size), bufOff: c.Start, line: c.FirstLine, max: lim.MaxRecordBytes}
	n := len(Columns(p.Kind))
	return &xmlReader{
		x:       newXMLScanner(src, lim, c.FirstLine),
		lim:     lim,
		kind:    p.Kind,
		recName: recordElement(p.Kind),
		cols:    Columns(p.Kind),
		vals:    make([]string, n),
		vstart:  make([]int, n),
		vend:    make([]int, n),
		chunk:   c.Index,
		first:   c.FirstRecord,
		want:    c.Records,
	}
}

func (r *xmlReader) next() (Record, error) {
	x := r.x
	for {
		x.out, x.openName = nil, nil
		if err := x.next(); err != nil {
			return Record{}, err
		}
		switch x.kind {
		case xEOF:
			if r.read != r.want {
				return Record{}, fmt.Errorf("chunk %d: %d records read, the plan says %d (has the file changed?)", r.chunk, r.read, r.want)
			}
			return Record{}, io.EOF
		case xStart:
			if name := x.name(); string(name) != r.recName {
				return Record{}, fmt.Errorf("line %d: unexpected element <%s> (want <%s>)", x.tokLine(), showName(localName(name)), r.recName)
			}
			return r.record(x.tokOff, x.tokLine())
		case xEnd:
			return Record{}, fmt.Errorf("line %d: unexpected end tag </%s>", x.tokLine(), showName(localName(x.name())))
		case xText:
			if x.nonSpace {
				return Record{}, fmt.Errorf("line %d: text between <%s> records", x.tokLine(), r.recName)
			}
		case xDirective:
			return Record{}, directiveError(x.dir, x.tokLine())
		}
	}
}

// columnIndexBytes is columnIndex for a name in bytes.
func columnIndexBytes(k Kind, name []byte) int {
	for i, c := range Columns(k) {
		if c == string(name) {
			return i
		}
	}
	for _, c := range derivedColumns(k) {
		if c == string(name) {
			return -2
		}
	}
	return -1
}

func (r *xmlReader) record(startOff, startLine int64) (Record, error) {
	x := r.x
	r.read++
	if r.read > r.want {
		return Record{}, fmt.Errorf("line %d: chunk %d holds more records than the plan's %d (has the file changed?)", startLine, r.chunk, r.want)
	}
	rec := Record{Line: startLine, Number: r.first + r.read - 1, Values: r.vals}
	var seen uint64
	r.vbuf = r.vbuf[:0]
	r.stack.reset()
	r.stack.push([]byte(r.recName))
	cur := -1 // column of the child being read; -1 none or ignored
	for {
		x.out = nil
		if r.stack.depth() == 2 && cur >= 0 {
			x.out = &r.vbuf
		}
		x.openName = r.stack.top()
		if err := x.next(); err != nil {
			return Record{}, err
		}
		switch x.kind {
		case xEOF:
			return Record{}, fmt.Errorf("line %d: file ends inside <%s> (truncated?)", x.tokLine(), showName(r.stack.top()))
		case xStart:
			name := x.name()
			if r.stack.depth()+2 > r.lim.MaxXMLDepth {
				return Record{}, fmt.Errorf("line %d: elements nested deeper than %d", x.tokLine(), r.lim.MaxXMLDepth)
			}
			if r.stack.depth() == 1 {
				idx := columnIndexBytes(r.kind, name)
				cur = -1
				switch {
				case idx == -1:
					if rec.Err == nil {
						rec.Err = fmt.Errorf("unknown element <%s> in <%s> (%s columns are: %s)", showName(name), r.recName, r.kind, strings.Join(r.cols, ", "))
					}
				case idx == -2: // derived column: ignored
				case seen&(1<<idx) != 0:
					if rec.Err == nil {
						rec.Err = fmt.Errorf("repeated element <%s> in <%s>", showName(name), r.recName)
					}
				default:
					seen |= 1 << idx
					cur = idx
					r.vstart[idx] = len(r.vbuf)
				}
			} else if rec.Err == nil {
				rec.Err = fmt.Errorf("element <%s> inside <%s> (a column holds text only)", showName(name), showName(r.stack.top()))
			}
			r.stack.push(name)
		case xEnd:
			name := x.name()
			if top := r.stack.top(); !bytes.Equal(top, name) {
				return Record{}, fmt.Errorf("line %d: element <%s> closed by </%s>", x.tokLine(), showName(top), showName(name))
			}
			r.stack.pop()
			switch r.stack.depth() {
			case 1:
				if cur >= 0 {
					r.vend[cur] = len(r.vbuf)
				}
				cur = -1
			case 0:
				return r.finish(rec, seen, startOff)
			}
		case xText:
			if r.stack.depth() == 1 && x.nonSpace && rec.Err == nil {
				rec.Err = fmt.Errorf("text directly in <%s> (outside a column element)", r.recName)
			}
		case xDirective:
			return Record{}, directiveError(x.dir, x.tokLine())
		}
	}
}

func (r *xmlReader) finish(rec Record, seen uint64, startOff int64) (Record, error) {
	if size := r.x.end() - startOff; size > int64(r.lim.MaxRecordBytes) {
		rec.Err = fmt.Errorf("record is %d bytes, longer than %d", size, r.lim.MaxRecordBytes)
	}
	s := string(r.vbuf)
	for i := range r.vals {
		if seen&(1<<i) != 0 {
			r.vals[i] = s[r.vstart[i]:r.vend[i]]
		} else {
			r.vals[i] = ""
		}
	}
	return rec, nil
}
