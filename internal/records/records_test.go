package records

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// rec is a Record with its values copied and its error as text.
type rec struct {
	Line, Number int64
	Values       []string
	Err          string
}

func (r rec) String() string {
	return fmt.Sprintf("{line %d #%d %q err=%q}", r.Line, r.Number, r.Values, r.Err)
}

func readChunk(t testing.TB, data []byte, p *Plan, c Chunk, lim Limits, oneByte bool) ([]rec, error) {
	t.Helper()
	return collect(NewReader(chunkInput(data, c, oneByte), p, c, lim).Next)
}

// chunkInput is chunk c of data, served one byte a read when oneByte is set.
func chunkInput(data []byte, c Chunk, oneByte bool) io.Reader {
	var in io.Reader = bytes.NewReader(data[c.Start:c.End])
	if oneByte {
		in = iotest.OneByteReader(in)
	}
	return in
}

// collect reads records from next until io.EOF.
func collect(next func() (Record, error)) ([]rec, error) {
	var out []rec
	for {
		x, err := next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		got := rec{Line: x.Line, Number: x.Number, Values: append([]string(nil), x.Values...)}
		if x.Err != nil {
			got.Err = x.Err.Error()
		}
		out = append(out, got)
	}
}

// readChunks reads every chunk of the plan.
func readChunks(t testing.TB, data []byte, p *Plan, lim Limits, oneByte bool) ([]rec, error) {
	t.Helper()
	var all []rec
	for _, c := range p.Chunks {
		rs, err := readChunk(t, data, p, c, lim, oneByte)
		if err != nil {
			return all, fmt.Errorf("chunk %d: %w", c.Index, err)
		}
		if int64(len(rs)) != c.Records {
			return all, fmt.Errorf("chunk %d: %d records, plan says %d", c.Index, len(rs), c.Records)
		}
		all = append(all, rs...)
	}
	return all, nil
}

// readWhole reads the file as one big chunk.
func readWhole(t testing.TB, data []byte, p *Plan, lim Limits) ([]rec, error) {
	t.Helper()
	if len(p.Chunks) == 0 {
		return nil, nil
	}
	first, last := p.Chunks[0], p.Chunks[len(p.Chunks)-1]
	c := Chunk{Start: first.Start, End: last.End, FirstRecord: 1, FirstLine: first.FirstLine, Records: p.Records}
	return readChunk(t, data, p, c, lim, false)
}

func plan(t *testing.T, in string, hint Kind, rows int, lim Limits) *Plan {
	t.Helper()
	p, err := PlanChunks(strings.NewReader(in), hint, rows, lim)
	if err != nil {
		t.Fatalf("PlanChunks: %v", err)
	}
	return p
}

// readAll plans a file and reads it in chunks of 2, checking that a
// one-byte-at-a-time input gives the same plan and records.
func readAll(t *testing.T, in string, lim Limits) (*Plan, []rec) {
	t.Helper()
	p := plan(t, in, "", 2, lim)
	p1, err := PlanChunks(iotest.OneByteReader(strings.NewReader(in)), "", 2, lim)
	if err != nil {
		t.Fatalf("PlanChunks one byte at a time: %v", err)
	}
	if !reflect.DeepEqual(p, p1) {
		t.Fatalf("plans differ:\n%+v\n%+v", p, p1)
	}
	got, err := readChunks(t, []byte(in), p, lim, false)
	if err != nil {
		t.Fatal(err)
	}
	got1, err := readChunks(t, []byte(in), p, lim, true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, got1) {
		t.Fatalf("one byte at a time:\n%v\n%v", got, got1)
	}
	return p, got
}

func o(id, amount, cur, created, email, phone string) []string {
	return []string{id, amount, cur, created, email, phone}
}

func checkRecs(t *testing.T, got, want []rec) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d:\n%v", len(got), len(want), got)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Line != w.Line || g.Number != w.Number || !reflect.DeepEqual(g.Values, w.Values) ||
			(w.Err == "") != (g.Err == "") || !strings.Contains(g.Err, w.Err) {
			t.Errorf("record %d:\n got %v\nwant %v", i, g, w)
		}
	}
}

func TestCSVBasics(t *testing.T) {
	in := "\xEF\xBB\xBF customer_email ,order_amount,order_id,order_status,currency\r\n" +
		"a@x.com,12.30,A1,PENDING,USD\r\n" +
		"\"b,@x.com\",\"1\"\"2\",A2,COMPLETED,EUR\r\n" +
		"\"multi\r\nline\nemail\",3,A3,,\r\n" +
		"c@x.com,4,A4,PENDING,JPY"
	p, got := readAll(t, in, Limits{})
	if p.Format != FormatCSV || p.Kind != KindOrders || p.Records != 4 {
		t.Fatalf("plan %+v", p)
	}
	if want := []string{"customer_email", "order_amount", "order_id", "order_status", "currency"}; !reflect.DeepEqual(p.Header, want) {
		t.Fatalf("header %q", p.Header)
	}
	checkRecs(t, got, []rec{
		{2, 1, o("A1", "12.30", "USD", "", "a@x.com", ""), ""},
		{3, 2, o("A2", "1\"2", "EUR", "", "b,@x.com", ""), ""},
		{4, 3, o("A3", "3", "", "", "multi\r\nline\nemail", ""), ""},
		{7, 4, o("A4", "4", "JPY", "", "c@x.com", ""), ""},
	})
}

func TestCSVPayments(t *testing.T) {
	in := "payment_method,payment_amount,order_id,payment_id,updated_at\nCARD,5,O1,P1,2024-01-01\n"
	p, got := readAll(t, in, Limits{})
	if p.Kind != KindPayments {
		t.Fatalf("kind %s", p.Kind)
	}
	checkRecs(t, got, []rec{{2, 1, []string{"P1", "O1", "5", "CARD", "", "", "", "", "", ""}, ""}})
	if len(Columns(KindPayments)) != 10 || len(Columns(KindOrders)) != 6 || Columns("x") != nil {
		t.Fatal("Columns")
	}
}

func TestCSVRecordErrors(t *testing.T) {
	long := strings.Repeat("x", 300)
	in := "order_id,order_amount\n" +
		"A1,1,extra\n" + // 2: too many fields
		"A2\n" + // 3: too few
		"A3,1\n" + // 4: fine
		"A\"4,1\n" + // 5: bare quote
		"\"A5\"x,1\n" + // 6: text after closing quote
		"A6," + long + "\n" + // 7: too long
		"\"A7\n" + long + "\n" + long + "\",1\n" + // 8-10: too long, quoted newlines
		"\n\r\n" + // 11-12 blank
		"A8,8\n" + // 13
		"\"\",\"\"\n" // 14: empty quoted fields
	lim := Limits{MaxRecordBytes: 100}
	_, got := readAll(t, in, lim)
	checkRecs(t, got, []rec{
		{2, 1, o("A1", "1", "", "", "", ""), "record has 3 fields, the header has 2"},
		{3, 2, o("A2", "", "", "", "", ""), "record has 1 fields"},
		{4, 3, o("A3", "1", "", "", "", ""), ""},
		{5, 4, o("A\"4", "1", "", "", "", ""), "bare \""},
		{6, 5, o("A5x", "1", "", "", "", ""), "text after the closing quote"},
		{7, 6, o("", "", "", "", "", ""), "longer than 100 bytes"},
		{8, 7, o("", "", "", "", "", ""), "longer than 100 bytes"},
		{13, 8, o("A8", "8", "", "", "", ""), ""},
		{14, 9, o("", "", "", "", "", ""), ""},
	})
	// Invalid UTF-8 past the 1 KiB sniffed at the start: a malformed record.
	in = "order_id,order_amount\n" + strings.Repeat("A,1\n", 300) + "A9,\xff\n"
	_, got = readAll(t, in, lim)
	if r := got[len(got)-1]; r.Line != 302 || !strings.Contains(r.Err, "not valid UTF-8") {
		t.Errorf("got %v", r)
	}
}

func TestCSVHugeRecordDefaultLimit(t *testing.T) {
	// A record bigger than the buffer and than the default limit, quoted
	// newlines inside, then a fine record: skipped in constant memory.
	var b strings.Builder
	b.WriteString("order_id,order_amount\n\"")
	for b.Len() < 3<<20 {
		b.WriteString("0123456789abcdef\n")
	}
	b.WriteString("\",1\nA2,2\n")
	p, got := readAll(t, b.String(), Limits{})
	if p.Records != 2 {
		t.Fatalf("records %d", p.Records)
	}
	lines := int64(strings.Count(b.String(), "\n"))
	checkRecs(t, got, []rec{
		{2, 1, o("", "", "", "", "", ""), "longer than 1048576 bytes"},
		{lines, 2, o("A2", "2", "", "", "", ""), ""},
	})
}

func TestCSVHeaderOnly(t *testing.T) {
	for _, in := range []string{"order_id,order_amount", "order_id,order_amount\r\n", "\n\norder_id,order_amount\n\n\n"} {
		p := plan(t, in, "", 10, Limits{})
		if p.Records != 0 || len(p.Chunks) != 0 || p.Kind != KindOrders {
			t.Errorf("%q: %+v", in, p)
		}
	}
}

func planErr(t *testing.T, in string, hint Kind, lim Limits) error {
	t.Helper()
	p, err := PlanChunks(strings.NewReader(in), hint, 10, lim)
	if err == nil {
		t.Fatalf("%.60q: no error, plan %+v", in, p)
	}
	return err
}

func TestCSVFileErrors(t *testing.T) {
	cases := []struct {
		in, hint, want string
		notRecognised  bool
	}{
		{"", "", "empty file", true},
		{"\xEF\xBB\xBF \r\n\n", "", "empty file", true},
		{"order_id,order_amount,foo\n1,2,3\n", "", `line 1: column 3 of the header ("foo") is not a known orders column (orders columns are: order_id, order_amount`, false},
		{"order_id,order_amount,order_id\n", "", `line 1: column 3 of the header ("order_id") repeats column 1`, false},
		{"order_id,currency,customer_email\n", "", `line 1: missing column "order_amount"`, false},
		{"payment_id,order_id\n", "", `line 1: missing columns "payment_amount", "payment_method"`, false},
		{"order_id,currency\n", "", "cannot tell orders from payments by the header's columns (order_id, currency)", true},
		{"order_id,currency\n", "orders", `missing column "order_amount"`, false},
		{"name,age\nbob,3\n", "", "the header's 2 columns name no orders or payments column", true},
		{"order_id,order_amount\n1,2\n\"3,4\n5,6\n", "", "line 3: file ends inside a quoted field (truncated?)", false},
		{"order_id,order_amount\n", "payments", "file holds orders, but type=payments was given", false},
		{"payment_id,order_id,payment_amount,payment_method\n", "orders", "file holds payments, but type=orders was given", false},
		{"a\"b,order_id\n", "", `line 1: header: field 1: bare "`, false},
		{"order_id,order_amount\n", "refunds", `unknown type "refunds"`, false},
	}
	for _, c := range cases {
		err := planErr(t, c.in, Kind(c.hint), Limits{})
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %q, want %q", c.in, err, c.want)
		}
		if errors.Is(err, ErrNotRecognised) != c.notRecognised {
			t.Errorf("%q: error %q: errors.Is(ErrNotRecognised) = %v", c.in, err, !c.notRecognised)
		}
	}
	// Header longer than the limit.
	err := planErr(t, "order_id,order_amount,"+strings.Repeat("x", 200)+"\n", "", Limits{MaxRecordBytes: 100})
	if !strings.Contains(err.Error(), "line 1: header longer than 100 bytes") {
		t.Error(err)
	}
}

func TestBinaryJunk(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	junk := make([]byte, 5000)
	rnd.Read(junk)
	for _, in := range []string{
		string(junk),
		"\x89PNG\r\n\x1a\n\x00\x00",
		"PK\x03\x04\x14\x00\x00\x00\x08\x00",
		"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03order_id,order_amount\n", // gzip
		"\xff\xfeo\x00r\x00d\x00", // UTF-16
		"\xef\xbb\xbf\x00order_id,order_amount\n",
		"\n\n order_id\x01,order_amount\n1,2\n",                        // a control character in the header
		"order_id,order_amount" + strings.Repeat("x", 2000) + "\xff\n", // a first line longer than the sample
		"<orders><order><order_id>A\x00</order_id></order></orders>",
		"<orders>\n<order><order_id>A\xff</order_id></order></orders>",
	} {
		err := planErr(t, in, "", Limits{})
		if !errors.Is(err, ErrNotRecognised) {
			t.Errorf("%.20q: %v, want ErrNotRecognised", in, err)
		}
	}
	// A multi-byte character cut by the 1 KiB sample is fine.
	in := "order_id,order_amount\n" + strings.Repeat("é,1\n", 400)
	if p := plan(t, in, "", 10, Limits{}); p.Records != 400 {
		t.Errorf("records %d", p.Records)
	}
}

const ordersXML = `<?xml version="1.0" encoding="UTF-8"?>
<!-- exported -->
<orders xmlns="urn:x">
  <order>
    <order_id>A1</order_id>
    <order_amount>12.30</order_amount>
    <order_status>PENDING</order_status>
    <customer_email>a&amp;b@x.com &#x41;&#66;</customer_email>
  </order>
  <!-- between -->
  <order><order_id>A2</order_id><order_amount>1</order_amount><currency/><customer_phone><![CDATA[<+1> 555]]></customer_phone></order>
  <order>
    <order_id>A3</order_id><order_amount>x</order_amount><bogus>1</bogus>
  </order>
  <order><order_id>A4</order_id><order_id>A4b</order_id></order>
  <order><order_id>A5<b>x</b></order_id></order>
  <order><order_id>A6</order_id>stray</order>
  <order><order_id>multi
line</order_id></order>
  <order/>
</orders>
`

func TestXMLOrders(t *testing.T) {
	p, got := readAll(t, "\xEF\xBB\xBF"+ordersXML, Limits{})
	if p.Format != FormatXML || p.Kind != KindOrders || p.Header != nil || p.Records != 8 {
		t.Fatalf("plan %+v", p)
	}
	checkRecs(t, got, []rec{
		{4, 1, o("A1", "12.30", "", "", "a&b@x.com AB", ""), ""},
		{11, 2, o("A2", "1", "", "", "", "<+1> 555"), ""},
		{12, 3, o("A3", "x", "", "", "", ""), "unknown element <bogus> in <order>"},
		{15, 4, o("A4", "", "", "", "", ""), "repeated element <order_id>"},
		{16, 5, o("A5", "", "", "", "", ""), "element <b> inside <order_id>"},
		{17, 6, o("A6", "", "", "", "", ""), "text directly in <order>"},
		{18, 7, o("multi\nline", "", "", "", "", ""), ""},
		{20, 8, o("", "", "", "", "", ""), ""},
	})
}

func TestXMLPayments(t *testing.T) {
	in := "<payments><payment><payment_id>P1</payment_id><order_id>O1</order_id><payment_amount>5</payment_amount>" +
		"<payment_method>CARD</payment_method><failure_reason>x</failure_reason><updated_at>t</updated_at></payment></payments>"
	p, got := readAll(t, in, Limits{})
	if p.Kind != KindPayments {
		t.Fatal(p.Kind)
	}
	checkRecs(t, got, []rec{{1, 1, []string{"P1", "O1", "5", "CARD", "", "", "", "", "", "x"}, ""}})
	err := planErr(t, in, KindOrders, Limits{})
	if err.Error() != "file holds payments, but type=orders was given" {
		t.Error(err)
	}
}

func TestXMLRecordTooLarge(t *testing.T) {
	in := "<orders><order><order_id>" + strings.Repeat("x", 200) + "</order_id></order>\n<order><order_id>B</order_id></order></orders>"
	_, got := readAll(t, in, Limits{MaxRecordBytes: 100})
	checkRecs(t, got, []rec{
		{1, 1, o(strings.Repeat("x", 200), "", "", "", "", ""), "longer than 100"},
		{2, 2, o("B", "", "", "", "", ""), ""},
	})
	// A single text far beyond the limit fails the file (it cannot be skipped).
	in = "<orders><order><order_id>" + strings.Repeat("x", 1<<20) + "</order_id></order></orders>"
	err := planErr(t, in, "", Limits{MaxRecordBytes: 100})
	if !strings.Contains(err.Error(), "longer than") {
		t.Error(err)
	}
}

func TestXMLFileErrors(t *testing.T) {
	laughs := `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<orders><order><order_id>&lol9;</order_id></order></orders>`
	deep := "<orders><order><order_id>" + strings.Repeat("<a>", 10000) + strings.Repeat("</a>", 10000) + "</order_id></order></orders>"
	cases := []struct {
		in, want      string
		notRecognised bool
	}{
		{laughs, "line 2: DTDs are not allowed", false},
		{`<!DOCTYPE orders [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><orders><order><order_id>&xxe;</order_id></order></orders>`, "line 1: DTDs are not allowed", false},
		{"<orders>\n<order><order_id>&xxe;</order_id></order></orders>", "line 2: malformed XML: invalid character entity &xxe;", false},
		{"<orders>\n<order><order_id>A1</order_id></order>\n<order><order_id>A2</ord", "line 3: malformed XML: unexpected EOF", false},
		{"<orders>\n<order><order_id>A1</order_id></order>\n<order><order_id>A2</order_id>", "line 3: file ends inside <order> (truncated?)", false},
		{"<orders>\n<order><order_id>A1</order_id></order>\n", "line 3: file ends inside <orders> (truncated?)", false},
		{"<customers><customer/></customers>", "unknown root element <customers>", true},
		{"<?xml version=\"1.0\"?><!-- only -->", "no root element", true},
		{"<orders><payment/></orders>", "line 1: unexpected element <payment> in <orders> (want <order>)", false},
		{"<orders>\n text <order/></orders>", "line 1: text directly in <orders>", false},
		{"<orders><order></orders>", "element <order> closed by </orders>", false},
		{"<orders></orders><orders></orders>", "element <orders> after the end of <orders>", false},
		{"<orders></orders>junk", "text after the end of <orders>", false},
		{deep, "elements nested deeper than 16", false},
		{`<?xml version="1.0" encoding="ISO-8859-1"?><orders/>`, "xml: encoding a 10-character value declared", false},
		{`<?xml version="1.0" encoding="latin1"?><orders/>`, `xml: encoding "latin1" declared`, false},
		{"<!--" + strings.Repeat(" ", 2000) + "-->\n<orders><order><order_id>\xff</order_id></order></orders>", "line 2: malformed XML: invalid UTF-8", false},
	}
	for _, c := range cases {
		err := planErr(t, c.in, "", Limits{})
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%.60q: error %q, want %q", c.in, err, c.want)
		}
		if errors.Is(err, ErrNotRecognised) != c.notRecognised {
			t.Errorf("%.60q: error %q: errors.Is(ErrNotRecognised) = %v", c.in, err, !c.notRecognised)
		}
	}
	// Empty orders file: no records.
	p := plan(t, "<orders>\n</orders>\n", KindOrders, 5, Limits{})
	if p.Records != 0 || len(p.Chunks) != 0 {
		t.Fatalf("%+v", p)
	}
}

// trickyCSV has records with quoted newlines, blank lines, errors and a
// long record, so that chunk borders fall in awkward places.
func trickyCSV() string {
	var b strings.Builder
	b.WriteString("\xEF\xBB\xBForder_id,\"order_amount\",customer_email,paid_amount\r\n")
	for i := 0; i < 40; i++ {
		switch i % 8 {
		case 0:
			fmt.Fprintf(&b, "O%d,%d,\"line one\nline two\r\nline, three\",\n", i, i)
		case 1:
			fmt.Fprintf(&b, "\"O%d\",\"%d\",\"\"\"quoted\"\"\",1\r\n\r\n\n", i, i)
		case 2:
			fmt.Fprintf(&b, "O%d,%d\n", i, i)
		case 3:
			fmt.Fprintf(&b, "O%d,%d,\"%s\",2\n", i, i, strings.Repeat("long\n", 40))
		case 4:
			fmt.Fprintf(&b, "O%d,%d,bad\"quote\n,x\n", i, i)
		case 5:
			fmt.Fprintf(&b, "\"O%d\"junk,%d,\"\n\",\n", i, i)
		case 6:
			fmt.Fprintf(&b, "O%d,%d,\"\",\"\"\n", i, i)
		default:
			fmt.Fprintf(&b, "O%d,%d,é€😀,3", i, i)
			if i != 39 {
				b.WriteString("\n")
			}
		}
	}
	return b.String()
}

func trickyXML() string {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\"?>\n<!-- x -->\n<payments>\n")
	for i := 0; i < 40; i++ {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "<payment>\n <payment_id>P%d</payment_id>\n <payment_details>a\nb &lt;c&gt;</payment_details>\n</payment>\n", i)
		case 1:
			fmt.Fprintf(&b, "<payment><payment_id>P%d</payment_id><x>1</x></payment><!-- c\n\n --><payment><payment_id>Q%d</payment_id></payment>\n", i, i)
		case 2:
			fmt.Fprintf(&b, "  <payment><payment_id><![CDATA[P%d\n]]></payment_id><gateway_ref>%s</gateway_ref></payment>\n\n", i, strings.Repeat("g\n", 30))
		case 3:
			fmt.Fprintf(&b, "<payment/>\n<payment></payment>")
		default:
			fmt.Fprintf(&b, "<payment><payment_id>P%d</payment_id><payment_id>x</payment_id></payment>\n", i)
		}
	}
	b.WriteString("</payments>")
	return b.String()
}

func TestChunksEqualWhole(t *testing.T) {
	lim := Limits{MaxRecordBytes: 150}
	for name, in := range map[string]string{"csv": trickyCSV(), "xml": trickyXML()} {
		data := []byte(in)
		p := plan(t, in, "", 1000000, lim)
		whole, err := readWhole(t, data, p, lim)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if int64(len(whole)) != p.Records || p.Records < 40 {
			t.Fatalf("%s: %d records, plan says %d", name, len(whole), p.Records)
		}
		nerr := 0
		for i, r := range whole {
			if r.Number != int64(i+1) {
				t.Fatalf("%s: record %d numbered %d", name, i, r.Number)
			}
			if r.Err != "" {
				nerr++
			}
		}
		if nerr == 0 || nerr == len(whole) {
			t.Fatalf("%s: %d malformed of %d", name, nerr, len(whole))
		}
		for _, rows := range []int{1, 2, 3, 7, 1000} {
			t.Run(fmt.Sprintf("%s/%d", name, rows), func(t *testing.T) {
				p := plan(t, in, "", rows, lim)
				wantChunks := (int(p.Records) + rows - 1) / rows
				if len(p.Chunks) != wantChunks {
					t.Fatalf("%d chunks, want %d", len(p.Chunks), wantChunks)
				}
				for i, c := range p.Chunks {
					if c.Index != i || c.Start >= c.End || (i > 0 && c.Start < p.Chunks[i-1].End) {
						t.Fatalf("bad chunk %+v", c)
					}
				}
				got, err := readChunks(t, data, p, lim, false)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, whole) {
					for i := range got {
						if i < len(whole) && !reflect.DeepEqual(got[i], whole[i]) {
							t.Fatalf("record %d:\n got %v\nwant %v", i, got[i], whole[i])
						}
					}
					t.Fatalf("got %d records, want %d", len(got), len(whole))
				}
				got1, err := readChunks(t, data, p, lim, true)
				if err != nil || !reflect.DeepEqual(got1, whole) {
					t.Fatalf("one byte at a time differs (%v)", err)
				}
			})
		}
	}
}

func TestCSVLineNumbers(t *testing.T) {
	in := trickyCSV()
	p := plan(t, in, "", 3, Limits{MaxRecordBytes: 150})
	got, err := readChunks(t, []byte(in), p, Limits{MaxRecordBytes: 150}, false)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(in, "\n")
	for _, r := range got {
		l := lines[r.Line-1]
		if r.Err == "" && !strings.HasPrefix(strings.Trim(l, "\""), r.Values[0]) {
			t.Errorf("record %v: line %d is %q", r, r.Line, l)
		}
	}
}

func TestReaderDetectsChangedFile(t *testing.T) {
	in := "order_id,order_amount\n1,2\n3,4\n"
	p := plan(t, in, "", 10, Limits{})
	c := p.Chunks[0]
	r := NewReader(strings.NewReader("1,2\n"), p, c, Limits{})
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err == nil || err == io.EOF {
		t.Fatalf("want an error, got %v", err)
	}
}

func FuzzCSV(f *testing.F) {
	f.Add([]byte(trickyCSV()[:300]))
	f.Add([]byte("order_id,order_amount\n1,2\n\"a\nb\",3\n\n4,5"))
	f.Add([]byte("payment_id,order_id,payment_amount,payment_method\r\n\"1\"x,2,3\r\n\"\r\n"))
	for _, s := range []string{
		"",
		"order_id,order_amount\n",
		"\xef\xbb\xbforder_id,order_amount\r\nA,1.00\r\n",
		"order_id,order_amount\nA,1.00",                               // no final newline
		"order_id,order_amount\n\"A,1.00\n",                           // truncated inside quotes
		"order_id,order_amount\nA\"B,1\n",                             // bare quote
		"order_id,order_amount\n\"A\"\"B\",1\n\"C\r\nD\",2\n",         // escaped quote, CRLF in quotes
		"order_id,order_amount\nA,1,extra\nB\n",                       // too many, too few fields
		"order_id,order_amount\nA\x00,1\n",                            // NUL
		"order_id,order_amount\n\xff\xfe,1\n",                         // invalid UTF-8
		"order_id,order_amount\n" + strings.Repeat("x", 100) + ",1\n", // over MaxRecordBytes
		"order_id,order_id\nA,B\n",                                    // repeated column
		"\n\norder_id,order_amount\n\n\nA,1\n\n",
		"order_id,order_amount\rA,1\r", // bare CR
		"payment_id,order_id,payment_amount,payment_method,payment_details\nP,O,1,4000 0566 5566 5556,\"a,b\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzOne(t, data)
	})
}

func FuzzXML(f *testing.F) {
	f.Add([]byte(trickyXML()[:400]))
	f.Add([]byte(ordersXML[:300]))
	f.Add([]byte("<orders><order><order_id>1</order_id></order></orders>"))
	for _, s := range []string{
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<payments><payment><payment_id>P</payment_id></payment></payments>",
		"\xef\xbb\xbf<orders/>",
		"<orders><order><order_id><![CDATA[a<b]]></order_id><!-- c --></order></orders>",
		"<!DOCTYPE orders [<!ENTITY x \"y\">]><orders><order><order_id>&x;</order_id></order></orders>",
		"<orders><order><order_id>&amp;&#65;&#x42;&bogus;</order_id></order></orders>",
		"<orders><order><a><b><c><d><e><f>deep</f></e></d></c></b></a></order></orders>",
		"<orders><order><order_id a=\"1\">x</order_id></order></orders>",
		"<p:orders xmlns:p=\"urn:x\"><p:order/></p:orders>",
		"<orders><order><order_id>1</order_id>", // truncated
		"<orders><order>text<order_id>1</order_id></order></orders>",
		"<orders><order><order_id>\xff</order_id></order></orders>",
		"<orders><order><order_id>" + strings.Repeat("x", 100) + "</order_id></order></orders>",
		"<orders></orders><orders/>",
		"<?pi x?><orders>\r\n<order/>\r\n</orders>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzOne(t, data)
	})
}

func fuzzOne(t *testing.T, data []byte) {
	lim := Limits{MaxRecordBytes: 64, MaxXMLDepth: 6}
	big, err := PlanChunks(bytes.NewReader(data), "", 0, lim)
	p2, err2 := PlanChunks(bytes.NewReader(data), "", 2, lim)
	if (err == nil) != (err2 == nil) {
		t.Fatalf("plan errors differ: %v / %v", err, err2)
	}
	if err != nil {
		return
	}
	if big.Records != p2.Records || len(big.Chunks) > 1 {
		t.Fatalf("plans differ: %+v / %+v", big, p2)
	}
	whole, err := readChunks(t, data, big, lim, false)
	if err != nil {
		t.Fatalf("reading one chunk: %v", err)
	}
	got, err := readChunks(t, data, p2, lim, false)
	if err != nil {
		t.Fatalf("reading chunks of 2: %v", err)
	}
	if !reflect.DeepEqual(got, whole) {
		t.Fatalf("chunked reading differs:\n%v\n%v", got, whole)
	}
	for i, r := range whole {
		if r.Number != int64(i+1) || r.Line < 1 {
			t.Fatalf("record %d: %v", i, r)
		}
	}
}

// genOrders makes an orders file of n records.
func genOrders(n int, xmlFormat bool) []byte {
	var b bytes.Buffer
	if xmlFormat {
		b.WriteString("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<orders>\n")
	} else {
		b.WriteString("order_id,order_amount,currency,created_at,customer_email,customer_phone\n")
	}
	for i := 0; i < n; i++ {
		if xmlFormat {
			fmt.Fprintf(&b, "  <order><order_id>ORD-%08d</order_id><order_amount>%d.%02d</order_amount><currency>USD</currency>"+
				"<created_at>2024-05-01T12:00:00Z</created_at><customer_email>user%d@example.com</customer_email>"+
				"<customer_phone>+1 555 %07d</customer_phone></order>\n", i, i%10000, i%100, i, i)
		} else {
			fmt.Fprintf(&b, "ORD-%08d,%d.%02d,USD,2024-05-01T12:00:00Z,user%d@example.com,+1 555 %07d\n", i, i%10000, i%100, i, i)
		}
	}
	if xmlFormat {
		b.WriteString("</orders>\n")
	}
	return b.Bytes()
}

const benchRows = 100000

func benchPlan(b *testing.B, xmlFormat bool) {
	data := genOrders(benchRows, xmlFormat)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := PlanChunks(bytes.NewReader(data), "", 10000, Limits{})
		if err != nil || p.Records != benchRows {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkPlanCSV(b *testing.B) { benchPlan(b, false) }

func BenchmarkPlanXML(b *testing.B) { benchPlan(b, true) }

func benchRead(b *testing.B, xmlFormat bool) {
	data := genOrders(benchRows, xmlFormat)
	p, err := PlanChunks(bytes.NewReader(data), "", 0, Limits{})
	if err != nil || p.Records != benchRows {
		b.Fatal(err)
	}
	c := p.Chunks[0]
	b.SetBytes(c.End - c.Start)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := NewReader(bytes.NewReader(data[c.Start:c.End]), p, c, Limits{})
		n := 0
		for {
			rec, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil || rec.Err != nil {
				b.Fatal(err, rec.Err)
			}
			n++
		}
		if n != benchRows {
			b.Fatal(n)
		}
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkReadCSV(b *testing.B) { benchRead(b, false) }

func BenchmarkReadXML(b *testing.B) { benchRead(b, true) }
