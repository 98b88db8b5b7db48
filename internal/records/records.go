// Package records reads the bulk-import files (orders or payments, as CSV or
// XML) structurally: it finds the records, the line each starts on and the
// value of each column, and it plans record-aligned byte ranges ("chunks") so
// that parallel workers can each read their own part of a large file.
//
// It knows nothing of the meaning of the values (amounts, dates, statuses):
// that is the caller's validation. It works in constant memory (bounded by
// Limits.MaxRecordBytes) whatever the size of the file.
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

// Format is the syntax of an import file.
type Format string

// The supported file formats.
const (
	// FormatCSV is RFC 4180 CSV with a header row.
	FormatCSV Format = "csv"
	// FormatXML is <orders><order>…</order></orders> or <payments><payment>…</payment></payments>.
	FormatXML Format = "xml"
)

// Kind says what an import file holds.
type Kind string

// The kinds of import file.
const (
	// KindOrders is a file of orders.
	KindOrders Kind = "orders"
	// KindPayments is a file of payments.
	KindPayments Kind = "payments"
)

// ParseKind reads a type parameter: "orders", "payments", or "" for none
// (the file tells). Anything else is an error saying what is allowed.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case "", KindOrders, KindPayments:
		return k, nil
	}
	return "", fmt.Errorf("unknown type %s (want %q or %q)", mask.Show(s), KindOrders, KindPayments)
}

// OrderColumns are the columns of an orders file, in the order of Record.Values.
var OrderColumns = []string{"order_id", "order_amount", "currency", "created_at", "customer_email", "customer_phone"}

// PaymentColumns are the columns of a payments file, in the order of Record.Values.
var PaymentColumns = []string{"payment_id", "order_id", "payment_amount", "payment_method", "payment_status", "payment_details", "gateway_ref", "currency", "created_at", "failure_reason"}

// orderDerived and paymentDerived are columns present in downloaded files that
// are accepted on import and ignored.
var (
	orderDerived   = []string{"order_status", "paid_amount", "outstanding_amount", "overpaid_amount", "updated_at"}
	paymentDerived = []string{"updated_at"}
	orderRequired  = []string{"order_id", "order_amount"}
	paymentReqd    = []string{"payment_id", "order_id", "payment_amount", "payment_method"}
)

// Columns returns the columns of a kind of file, in the order of
// Record.Values (OrderColumns or PaymentColumns); nil for an unknown kind.
// The returned slice must not be modified.
func Columns(k Kind) []string {
	switch k {
	case KindOrders:
		return OrderColumns
	case KindPayments:
		return PaymentColumns
	}
	return nil
}

func derivedColumns(k Kind) []string {
	if k == KindOrders {
		return orderDerived
	}
	return paymentDerived
}

func requiredColumns(k Kind) []string {
	if k == KindOrders {
		return orderRequired
	}
	return paymentReqd
}

// recordElement is the XML element of one record of a kind.
func recordElement(k Kind) string {
	if k == KindOrders {
		return "order"
	}
	return "payment"
}

// columnIndex returns the position of name in Columns(k), -2 when name is a
// derived (ignored) column of k, and -1 when k has no such column.
func columnIndex(k Kind, name string) int {
	for i, c := range Columns(k) {
		if c == name {
			return i
		}
	}
	for _, c := range derivedColumns(k) {
		if c == name {
			return -2
		}
	}
	return -1
}

// Limits bound the resources spent on one file. Zero fields take the defaults.
type Limits struct {
	// MaxRecordBytes is the largest record accepted (default 1 MiB); a larger
	// record is reported as malformed (Record.Err) and skipped.
	MaxRecordBytes int
	// MaxXMLDepth is the deepest element nesting accepted in XML (default 16);
	// deeper nesting fails the file.
	MaxXMLDepth int
}

// Default limits.
const (
	DefaultMaxRecordBytes = 1 << 20
	DefaultMaxXMLDepth    = 16
)

func (l Limits) norm() Limits {
	if l.MaxRecordBytes <= 0 {
		l.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if l.MaxXMLDepth <= 0 {
		l.MaxXMLDepth = DefaultMaxXMLDepth
	}
	return l
}

// Chunk is a record-aligned byte range [Start, End) of a file. Start is the
// offset of the first byte of its first record and End the offset just after
// its last record (its line terminator in CSV, its end tag in XML); bytes
// between chunks (blank lines, whitespace, comments) belong to no chunk.
type Chunk struct {
	// Index is the 0-based position of the chunk in Plan.Chunks.
	Index int `json:"index"`
	// Start and End delimit the chunk's bytes in the file.
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	// FirstRecord is the 1-based number (in the file) of the chunk's first record.
	FirstRecord int64 `json:"first_record"`
	// FirstLine is the 1-based line on which the chunk's first record starts.
	FirstLine int64 `json:"first_line"`
	// Records is the number of records in the chunk.
	Records int64 `json:"records"`
}

// Plan is the result of PlanChunks: what the file is and how it is cut.
type Plan struct {
	// Format is the file's syntax.
	Format Format
	// Kind is what the file holds.
	Kind Kind
	// Header holds, for CSV, the header's column names in file order (BOM
	// stripped, trimmed); nil for XML.
	Header []string
	// Records is the number of records in the file (malformed ones included).
	Records int64
	// Chunks cut the file's records into ranges of at most rowsPerChunk records.
	Chunks []Chunk
}

// Record is one record of a file.
type Record struct {
	// Line is the 1-based line on which the record starts; Number is its
	// 1-based position among the file's records.
	Line, Number int64
	// Values holds one value per column of the kind, aligned with
	// Columns(kind); "" when the column is absent. The slice may be reused by
	// the next call to Next: callers copy what they keep.
	Values []string
	// Err is non-nil when the record is malformed (wrong number of fields,
	// unknown or repeated child element, record too long, bare quote…): the
	// caller rejects the record with this message (which does not repeat
	// Line) and reading continues.
	Err error
}

// ErrNotRecognised is returned (wrapped) by PlanChunks for input that is
// neither CSV with a header of known columns nor XML with a known root
// element: an empty file, binary data, some other kind of text.
var ErrNotRecognised = errors.New("not a recognised orders or payments file (CSV or XML)")

// PlanChunks reads the whole file once, checks its structure and returns
// chunks of at most rowsPerChunk records each (rowsPerChunk <= 0: a single
// chunk). kindHint is "" (the kind is told by the CSV header's columns or the
// XML root element) or a Kind; a file that says otherwise is an error ("file
// holds payments, but type=orders was given"). Malformed records do not fail
// the plan: they are counted, and reported by the Reader.
func PlanChunks(r io.Reader, kindHint Kind, rowsPerChunk int, lim Limits) (*Plan, error) {
	return planChunks(r, kindHint, rowsPerChunk, lim, planXML)
}

// planChunks is PlanChunks with the XML planner given, so the differential
// tests can plan with the former encoding/xml one.
func planChunks(r io.Reader, kindHint Kind, rowsPerChunk int, lim Limits, planXML func(*source, Kind, int, Limits) (*Plan, error)) (*Plan, error) {
	lim = lim.norm()
	if _, err := ParseKind(string(kindHint)); err != nil {
		return nil, err
	}
	src := newSource(r, 0, 1, lim.MaxRecordBytes)
	format, err := sniff(src)
	if err != nil {
		return nil, err
	}
	if format == FormatXML {
		return planXML(src, kindHint, rowsPerChunk, lim)
	}
	return planCSV(src, kindHint, rowsPerChunk, lim)
}

func mismatch(file, hint Kind) error {
	return fmt.Errorf("file holds %s, but type=%s was given", file, hint)
}

// sniffBytes is how much of the file sniff looks at.
const sniffBytes = 1024

// sniff strips a UTF-8 BOM, refuses binary data and tells CSV from XML by the
// first non-space byte. What must be text is what a bad record cannot
// excuse: the first line of a CSV file (its header) and the first KiB of an
// XML file (where a NUL or invalid UTF-8 fails the whole file anyway). A
// bad CSV row after the header, even within the first KiB, is the Reader's
// malformed record, as it is further on: a bad row never fails a file.
// Binary files (images, archives, UTF-16) fail on their first line.
func sniff(s *source) (Format, error) {
	for s.w-s.r < sniffBytes && !s.eof {
		if err := s.fill(); err != nil {
			return "", err
		}
	}
	b := s.buf[s.r:s.w]
	if bytes.HasPrefix(b, []byte("\xEF\xBB\xBF")) {
		s.r += 3
		b = b[3:]
	}
	head := b
	cut := !s.eof // the sample may end inside a character
	if len(head) > sniffBytes {
		head, cut = head[:sniffBytes], true
	}
	// The header is the first non-blank line.
	t := bytes.TrimLeft(head, " \t\r\n")
	format := FormatCSV
	if len(t) > 0 && t[0] == '<' {
		format = FormatXML
	} else {
		head = t
		if i := bytes.IndexByte(t, '\n'); i >= 0 {
			head, cut = t[:i], false
		}
	}
	if why := binary(head, cut, format == FormatCSV); why != "" {
		return "", fmt.Errorf("%w: binary data (%s)", ErrNotRecognised, why)
	}
	if len(bytes.TrimLeft(b, " \t\r\n")) == 0 {
		return "", fmt.Errorf("%w: empty file", ErrNotRecognised)
	}
	return format, nil
}

// binary says why sample is not text, or "": a NUL, invalid UTF-8 (a
// character cut at the end is allowed when cut) and, when controls is set,
// a control character other than tab and CR (a CSV header holds none).
func binary(sample []byte, cut, controls bool) string {
	if bytes.IndexByte(sample, 0) >= 0 {
		return "NUL bytes"
	}
	if !utf8.Valid(sample) {
		ok := false
		for n := 1; cut && n < utf8.UTFMax && n <= len(sample); n++ {
			if utf8.Valid(sample[:len(sample)-n]) {
				ok = true
				break
			}
		}
		if !ok {
			return "not UTF-8"
		}
	}
	if controls {
		for _, c := range sample {
			if c < 0x20 && c != '\t' && c != '\r' {
				return "control characters"
			}
		}
	}
	return ""
}

// Reader reads the records of one chunk. It is not safe for concurrent use.
type Reader struct {
	csv *csvReader
	xml *xmlReader
	err error
}

// NewReader returns a reader of the records of chunk c of the file planned by
// p; r must yield exactly the bytes [c.Start, c.End) of the file. lim must be
// the limits given to PlanChunks.
func NewReader(r io.Reader, p *Plan, c Chunk, lim Limits) *Reader {
	lim = lim.norm()
	if p == nil || Columns(p.Kind) == nil {
		return &Reader{err: errors.New("records: NewReader needs a plan of a known kind")}
	}
	switch p.Format {
	case FormatCSV:
		cr, err := newCSVReader(r, p, c, lim)
		return &Reader{csv: cr, err: err}
	case FormatXML:
		return &Reader{xml: newXMLReader(r, p, c, lim)}
	}
	return &Reader{err: fmt.Errorf("records: unknown format %q", p.Format)}
}

// Next returns the chunk's next record; io.EOF after its last one. Any other
// error is a failure of the file (unreadable, or not what the plan said),
// after which Next keeps returning that error.
func (r *Reader) Next() (Record, error) {
	if r.err != nil {
		return Record{}, r.err
	}
	var rec Record
	var err error
	if r.csv != nil {
		rec, err = r.csv.next()
	} else {
		rec, err = r.xml.next()
	}
	if err != nil {
		r.err = err
	}
	return rec, err
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
