package records

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// Column lists of the encoder tests: every column and derived column of the
// kind, out of Columns order, and the smallest valid list.
var (
	encOrderCols = []string{"customer_email", "order_status", "order_id", "paid_amount", "order_amount", "currency",
		"outstanding_amount", "created_at", "overpaid_amount", "customer_phone", "updated_at"}
	encPaymentCols = []string{"payment_details", "payment_id", "updated_at", "order_id", "payment_amount",
		"payment_method", "payment_status", "gateway_ref", "currency", "created_at", "failure_reason"}
	encMinOrderCols = []string{"order_amount", "order_id"}
)

// hostileValues must round-trip in both formats.
func hostileValues() []string {
	const pattern = "a\"b,c\r\nd\re<f&g>h]]>i&amp;j é中😀 \t"
	return []string{
		"", "plain", `"`, `""`, `"quoted"`, `a"b`, "a,b", ",", ",,", "a,\"b\",c",
		"\r", "\n", "\r\n", "\n\r", "line\r", "line\n", "a\rb", "a\r\nb\nc\rd", "\r\r\n\n",
		"<", ">", "&", "]]>", "]]", "<![CDATA[x]]>", "&amp;", "&lt;&gt;&#xD;&#13;", "<order_id>x</order_id>", "</payment>",
		"'", `"'"`, "é", "中文", "😀 emoji", "\u00a0nbsp\u00a0", "\u0085\u009f\u2028\ufffd\U0010ffff",
		" lead", "trail ", "\tlead tab", "trail tab\t", " ", "   ", "\t", " \t\n\r ", " a , b ",
		"\ufeff", "\ufeffbom first", "a\ufeff",
		"#comment", "=1+1", `\.`, "-",
		// Formula starts, neutralised in CSV text columns and read back.
		"=HYPERLINK(\"http://evil.example\",\"x\")", "+15550100", "-12.30", "@SUM(A1)", "\t=1", "\r=1",
		"'=1+1", "''", "'-", "'plain", "'''", "=", "+", "@",
		strings.Repeat("x", 100<<10),
		strings.Repeat(pattern, 100<<10/len(pattern)),
	}
}

// csvOnlyValues round-trip in CSV only: XML cannot carry them.
var csvOnlyValues = []string{"\x01", "a\x07b", "\x1b[31mred", "\x7f", "\x0b\x0c", "\x1f,\x1e", "\ufffe\uffff"}

func toByteValues(vals []string) [][]byte {
	b := make([][]byte, len(vals))
	for i, v := range vals {
		b[i] = []byte(v)
	}
	return b
}

// rotate makes len(values) records of len(cols) values such that every value
// appears once in every column.
func rotate(values []string, ncols int) [][]string {
	recs := make([][]string, len(values))
	for r := range recs {
		recs[r] = make([]string, ncols)
		for j := range recs[r] {
			recs[r][j] = values[(r+j)%len(values)]
		}
	}
	return recs
}

// encodeFile encodes header + records + footer, returning the file and the
// offset at which each record starts.
func encodeFile(t testing.TB, e *Encoder, recs [][]string) ([]byte, []int) {
	t.Helper()
	buf := e.AppendHeader(nil)
	var offs []int
	for i, r := range recs {
		offs = append(offs, len(buf))
		var err error
		buf, err = e.AppendRecord(buf, toByteValues(r))
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	return e.AppendFooter(buf), offs
}

// wantRec is what the reader must return for record n (1-based) holding vals
// in the encoder's columns cols, starting at line.
func wantRec(k Kind, cols, vals []string, n, line int64) rec {
	w := rec{Line: line, Number: n, Values: make([]string, len(Columns(k)))}
	for j, c := range cols {
		if i := columnIndex(k, c); i >= 0 {
			w.Values[i] = vals[j]
		}
	}
	return w
}

// checkRoundTrip encodes recs, reads the file back whole and in chunks of
// several sizes, and compares every record with what went in.
func checkRoundTrip(t *testing.T, f Format, k Kind, cols []string, recs [][]string, oneByte bool) {
	t.Helper()
	e, err := NewEncoder(f, k, cols)
	if err != nil {
		t.Fatal(err)
	}
	data, offs := encodeFile(t, e, recs)
	want := make([]rec, len(recs))
	for i, r := range recs {
		want[i] = wantRec(k, cols, r, int64(i+1), 1+int64(bytes.Count(data[:offs[i]], nl)))
	}

	// Records encoded apart, concatenated, give the same file.
	parts := e.AppendHeader(nil)
	for i, r := range recs {
		part, err := e.AppendRecord([]byte("prefix"), toByteValues(r))
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		parts = append(parts, part[len("prefix"):]...)
	}
	if parts = e.AppendFooter(parts); !bytes.Equal(parts, data) {
		t.Fatalf("records encoded apart differ from the file")
	}

	for _, rows := range []int{1, 2, 3, 7, 0} {
		p, err := PlanChunks(bytes.NewReader(data), "", rows, Limits{})
		if err != nil {
			t.Fatalf("rows %d: PlanChunks: %v", rows, err)
		}
		if p.Format != f || p.Kind != k || p.Records != int64(len(recs)) {
			t.Fatalf("rows %d: plan %s %s %d records, want %s %s %d", rows, p.Format, p.Kind, p.Records, f, k, len(recs))
		}
		got, err := readChunks(t, data, p, Limits{}, oneByte && rows == 3)
		if err != nil {
			t.Fatalf("rows %d: %v", rows, err)
		}
		if rows == 0 {
			whole, err := readWhole(t, data, p, Limits{})
			if err != nil || !reflect.DeepEqual(whole, got) {
				t.Fatalf("reading whole differs (%v)", err)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("rows %d: %d records, want %d", rows, len(got), len(want))
		}
		for i := range got {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("rows %d: record %d:\n got %.300v\nwant %.300v", rows, i, got[i], want[i])
			}
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	short := hostileValues()
	short = short[:len(short)-2] // without the long ones
	for _, f := range []Format{FormatCSV, FormatXML} {
		values := hostileValues()
		if f == FormatCSV {
			values = append(values, csvOnlyValues...)
		}
		for _, c := range []struct {
			kind Kind
			cols []string
		}{{KindOrders, encOrderCols}, {KindPayments, encPaymentCols}, {KindOrders, encMinOrderCols}} {
			t.Run(fmt.Sprintf("%s/%s/%d", f, c.kind, len(c.cols)), func(t *testing.T) {
				checkRoundTrip(t, f, c.kind, c.cols, rotate(values, len(c.cols)), false)
				checkRoundTrip(t, f, c.kind, c.cols, rotate(short, len(c.cols)), true)
				// All empty, and a file without records.
				empty := make([]string, len(c.cols))
				checkRoundTrip(t, f, c.kind, c.cols, [][]string{empty, empty, empty}, false)
				e, _ := NewEncoder(f, c.kind, c.cols)
				data := e.AppendFooter(e.AppendHeader(nil))
				p, err := PlanChunks(bytes.NewReader(data), c.kind, 1, Limits{})
				if err != nil || p.Records != 0 || p.Kind != c.kind {
					t.Fatalf("empty file: %v %+v", err, p)
				}
			})
		}
	}
}

func TestEncodeOutput(t *testing.T) {
	vals := toByteValues([]string{"A1", "1.50", "", " a\"b, c \r\n"})
	cols := []string{"order_id", "order_amount", "currency", "customer_email"}
	for f, want := range map[Format]string{
		FormatCSV: "order_id,order_amount,currency,customer_email\n" +
			"A1,1.50,,\" a\"\"b, c \r\n\"\n",
		FormatXML: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<orders>\n" +
			"<order><order_id>A1</order_id><order_amount>1.50</order_amount><currency></currency>" +
			"<customer_email> a\"b, c &#xD;\n</customer_email></order>\n</orders>\n",
	} {
		e, err := NewEncoder(f, KindOrders, cols)
		if err != nil {
			t.Fatal(err)
		}
		b := e.AppendHeader(nil)
		if b, err = e.AppendRecord(b, vals); err != nil {
			t.Fatal(err)
		}
		if got := string(e.AppendFooter(b)); got != want {
			t.Errorf("%s:\n got %q\nwant %q", f, got, want)
		}
	}
}

// CSV text values that a spreadsheet runs as a formula get a leading
// quote; amounts and times never do, and XML is left alone. The reader
// gives the values back (TestEncodeRoundTrip).
func TestEncodeNeutralizesFormulas(t *testing.T) {
	cols := []string{"order_id", "order_amount", "customer_email", "customer_phone", "created_at", "currency"}
	vals := toByteValues([]string{"=cmd|' /C calc'!A0", "-12.30", "@x@example.com", "+15550100", "-0001-01-01T00:00:00Z", "'USD"})
	e, err := NewEncoder(FormatCSV, KindOrders, cols)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.AppendRecord(nil, vals)
	if err != nil {
		t.Fatal(err)
	}
	if want := "'=cmd|' /C calc'!A0,-12.30,'@x@example.com,'+15550100,-0001-01-01T00:00:00Z,''USD\n"; string(got) != want {
		t.Errorf("CSV:\n got %q\nwant %q", got, want)
	}
	x, _ := NewEncoder(FormatXML, KindOrders, cols)
	if got, _ := x.AppendRecord(nil, vals); !strings.Contains(string(got), "<order_id>=cmd|' /C calc'!A0</order_id>") {
		t.Errorf("XML changed: %q", got)
	}
	for _, v := range []string{"", "a", "'", "''", "'a", "'=", "=", "'''=", "\t", "\r\n", "-1", "+", "@"} {
		if back := UnneutralizeFormula(NeutralizeFormula(v)); back != v {
			t.Errorf("%q: back as %q", v, back)
		}
	}
	// A quote before anything else is read as written.
	if got := UnneutralizeFormula("'plain"); got != "'plain" {
		t.Errorf("'plain read as %q", got)
	}
}

func TestNewEncoderErrors(t *testing.T) {
	cases := []struct {
		f    Format
		k    Kind
		cols []string
		want string
	}{
		{"json", KindOrders, encOrderCols, `unknown format "json"`},
		{FormatCSV, "refunds", encOrderCols, `unknown kind "refunds"`},
		{FormatCSV, KindOrders, []string{"order_id", "order_amount", "colour"}, `unknown column "colour"`},
		{FormatXML, KindOrders, []string{"order_id", "order_amount", "payment_id"}, `unknown column "payment_id"`},
		{FormatXML, KindPayments, append([]string{"order_status"}, PaymentColumns...), `unknown column "order_status"`},
		{FormatCSV, KindOrders, []string{"order_id", "order_amount", " currency"}, `unknown column " currency"`},
		{FormatCSV, KindOrders, []string{"order_id", "order_amount", "order_id"}, `repeated column "order_id"`},
		{FormatXML, KindOrders, []string{"order_id", "order_amount", "updated_at", "updated_at"}, `repeated column "updated_at"`},
		{FormatCSV, KindOrders, []string{"order_id", "currency"}, `missing required orders column(s) "order_amount"`},
		{FormatXML, KindPayments, []string{"payment_id", "order_id"}, `"payment_amount", "payment_method"`},
		{FormatCSV, KindOrders, nil, `"order_id", "order_amount"`},
	}
	for _, c := range cases {
		e, err := NewEncoder(c.f, c.k, c.cols)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s %q: %v, %v; want an error with %q", c.f, c.k, c.cols, e, err, c.want)
		}
	}
}

func TestEncodeRecordErrors(t *testing.T) {
	const secret = "4111-1111"
	cols := []string{"payment_id", "order_id", "payment_amount", "payment_method", "payment_details"}
	ok := []string{"P1", "O1", "5", "CARD", "fine"}
	check := func(f Format, vals []string, want string) {
		t.Helper()
		e, err := NewEncoder(f, KindPayments, cols)
		if err != nil {
			t.Fatal(err)
		}
		dst := []byte("before")
		got, err := e.AppendRecord(dst, toByteValues(vals))
		if err == nil || err.Error() != want {
			t.Errorf("%s %q: error %v, want %q", f, vals, err, want)
		}
		if string(got) != "before" {
			t.Errorf("%s %q: dst %q after an error", f, vals, got)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error %q holds the value", f, err)
		}
	}
	with := func(col int, v string) []string {
		vals := append([]string(nil), ok...)
		vals[col] = v
		return vals
	}
	for _, f := range []Format{FormatCSV, FormatXML} {
		check(f, ok[:4], "records: 4 values for 5 columns")
		check(f, append(ok, "x"), "records: 6 values for 5 columns")
		for _, bad := range []string{"\xff", "\xc3", secret + "\xc3(", "\xed\xa0\x80", "\xc0\x80", "\xf4\x90\x80\x80", "é\xe4\xb8"} {
			check(f, with(4, bad), "payment_details is not valid UTF-8")
		}
		check(f, with(0, "\x00"), map[Format]string{
			FormatCSV: "payment_id holds a NUL character, which an import file cannot carry",
			FormatXML: "payment_id holds a character XML 1.0 cannot carry",
		}[f])
	}
	for _, bad := range []string{"\x01", secret + "\x08", "\x0b", "\x0c", "\x1f", "a\ufffe", "\uffffb", "\x1b[0m"} {
		check(FormatXML, with(4, bad), "payment_details holds a character XML 1.0 cannot carry")
		check(FormatXML, with(1, bad), "order_id holds a character XML 1.0 cannot carry")
	}
	// The first bad column is the one named.
	check(FormatXML, []string{"P1", "\x01", "5", "CARD", "\xff"}, "order_id holds a character XML 1.0 cannot carry")
}

// TestEncodeRecordLimit checks that the encoder measures a record as the
// reader does: a record at the limit is read, one byte more is refused.
func TestEncodeRecordLimit(t *testing.T) {
	const max = 200
	cols := []string{"order_id", "order_amount"}
	lim := Limits{MaxRecordBytes: max}
	for _, f := range []Format{FormatCSV, FormatXML} {
		// filler "x" keeps the CSV record on the reader's fast path, "\r"
		// puts it on the quoted one (and takes 5 bytes in XML).
		for _, filler := range []string{"x", "\r"} {
			e, err := NewEncoder(f, KindOrders, cols)
			if err != nil {
				t.Fatal(err)
			}
			size := func(v string) int { // as the encoder measures it, line end excluded
				b, err := e.AppendRecord(nil, toByteValues([]string{v, "1"}))
				if err != nil {
					t.Fatal(err)
				}
				return len(b) - 1
			}
			v := ""
			for size(v+filler) <= max {
				v += filler
			}
			v += strings.Repeat("x", max-size(v))
			for _, over := range []bool{false, true} {
				if over {
					v += "x"
				}
				e.maxRecord = max
				rec, err := e.AppendRecord(nil, toByteValues([]string{v, "1"}))
				if over != (err != nil) || len(rec) != map[bool]int{false: max + 1, true: 0}[over] {
					t.Fatalf("%s %q over=%v: %d bytes, %v", f, filler, over, len(rec), err)
				}
				if over && !strings.Contains(err.Error(), "201 bytes encoded, longer than the 200 bytes") {
					t.Errorf("%s: %v", f, err)
				}
				// The reader agrees: the record at the limit is read, the one
				// over it is reported too long.
				e.maxRecord = DefaultMaxRecordBytes
				data, _ := encodeFile(t, e, [][]string{{v, "1"}})
				p, err := PlanChunks(bytes.NewReader(data), "", 1, lim)
				if err != nil {
					t.Fatal(err)
				}
				got, err := readChunks(t, data, p, lim, false)
				if err != nil || len(got) != 1 {
					t.Fatalf("%s: %v %v", f, got, err)
				}
				if over != strings.Contains(got[0].Err, "longer than 200") || !over && got[0].Values[0] != v {
					t.Errorf("%s %q over=%v: read %.100v", f, filler, over, got[0])
				}
			}
		}
	}
	// The default: a value whose escaping takes the record past 1 MiB.
	e, _ := NewEncoder(FormatXML, KindOrders, cols)
	if _, err := e.AppendRecord(nil, toByteValues([]string{strings.Repeat("&", 300<<10), "1"})); err == nil {
		t.Error("a record of 1.5 MiB was accepted")
	}
}

func TestEncodeAllocs(t *testing.T) {
	for _, f := range []Format{FormatCSV, FormatXML} {
		e, err := NewEncoder(f, KindPayments, encPaymentCols)
		if err != nil {
			t.Fatal(err)
		}
		vals := toByteValues(benchPaymentValues)
		dst := make([]byte, 0, 4096)
		if n := testing.AllocsPerRun(100, func() {
			if _, err := e.AppendRecord(dst[:0], vals); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per record", f, n)
		}
	}
}

// fuzzCols are the payments columns of the fuzz target, derived one included.
var fuzzCols = []string{"payment_details", "payment_id", "order_id", "payment_amount", "payment_method", "updated_at"}

// unencodable lists the documented reasons why v cannot be encoded in format
// f (as the error messages would give them for column col), checked here
// independently of the encoder.
func unencodable(f Format, col, v string) []string {
	var why []string
	if !utf8.ValidString(v) {
		why = append(why, col+" is not valid UTF-8")
	}
	for _, r := range v {
		if r == utf8.RuneError {
			continue // invalid UTF-8 (counted above) or U+FFFD (fine)
		}
		if f == FormatCSV && r == 0 {
			why = append(why, col+" holds a NUL character, which an import file cannot carry")
			break
		}
		if f == FormatXML && !(r == '\t' || r == '\n' || r == '\r' || 0x20 <= r && r <= 0xD7FF ||
			0xE000 <= r && r <= 0xFFFD || 0x10000 <= r && r <= 0x10FFFF) {
			why = append(why, col+" holds a character XML 1.0 cannot carry")
			break
		}
	}
	return why
}

func FuzzEncodeRoundTrip(f *testing.F) {
	f.Add("a\"b,c\r\n", " P1 ", "O,1", "\r", "]]>&amp;<")
	f.Add("", "", "", "", "")
	f.Add("\ufeffé中😀", "\t", "\n\r", "line\r", "\x01")
	f.Add("\xff", "\x00", "\ufffe", "\r\n\r\n", `""`)
	f.Fuzz(func(t *testing.T, a, b, c, d, x string) {
		recs := [][]string{{a, b, c, d, x, b}, {x, a, b, c, d, a}}
		for _, format := range []Format{FormatCSV, FormatXML} {
			e, err := NewEncoder(format, KindPayments, fuzzCols)
			if err != nil {
				t.Fatal(err)
			}
			// The second record encoded alone, for the position check below.
			alone, _ := e.AppendRecord(nil, toByteValues(recs[1]))
			data := e.AppendHeader(nil)
			var offs []int
			var encErr error
			var why []string
			for _, r := range recs {
				for j, v := range r {
					if why = unencodable(format, fuzzCols[j], v); why != nil {
						break
					}
				}
				offs = append(offs, len(data))
				if data, encErr = e.AppendRecord(data, toByteValues(r)); encErr != nil || why != nil {
					break
				}
			}
			switch {
			case encErr == nil && why != nil:
				t.Fatalf("%s: no error, but %q", format, why)
			case encErr != nil && why == nil:
				t.Fatalf("%s: error %q, but the values can be encoded", format, encErr)
			case encErr != nil:
				found := false
				for _, w := range why {
					found = found || encErr.Error() == w
				}
				if !found {
					t.Fatalf("%s: error %q, want one of %q", format, encErr, why)
				}
				continue
			}
			if !bytes.Equal(data[offs[1]:], alone) {
				t.Fatalf("%s: the second record's bytes depend on its position", format)
			}
			data = e.AppendFooter(data)
			want := make([]rec, len(recs))
			for i, r := range recs {
				want[i] = wantRec(KindPayments, fuzzCols, r, int64(i+1), 1+int64(bytes.Count(data[:offs[i]], nl)))
			}
			for _, rows := range []int{1, 0} {
				p, err := PlanChunks(bytes.NewReader(data), "", rows, Limits{})
				if err != nil {
					t.Fatalf("%s: PlanChunks: %v\n%q", format, err, data)
				}
				got, err := readChunks(t, data, p, Limits{}, rows == 1)
				if err != nil {
					t.Fatalf("%s: %v\n%q", format, err, data)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s rows %d:\n got %v\nwant %v\nfile %q", format, rows, got, want, data)
				}
			}
		}
	})
}

// benchPaymentValues are realistic values of encPaymentCols.
var benchPaymentValues = []string{
	`{"card":"visa","last4":"4242","3ds":true}`, "PAY-000123456", "2024-05-01 12:00:00", "ORD-00098765", "1234.56",
	"CARD", "SUCCESS", "gw_7f3a9c2e11", "EUR", "2024-05-01T12:00:00Z", "",
}

func benchEncode(b *testing.B, f Format) {
	e, err := NewEncoder(f, KindPayments, encPaymentCols)
	if err != nil {
		b.Fatal(err)
	}
	vals := toByteValues(benchPaymentValues)
	dst, _ := e.AppendRecord(nil, vals)
	b.SetBytes(int64(len(dst)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if dst, err = e.AppendRecord(dst[:0], vals); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeCSV(b *testing.B) { benchEncode(b, FormatCSV) }

func BenchmarkEncodeXML(b *testing.B) { benchEncode(b, FormatXML) }
