package records

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// refPlanChunks is PlanChunks with the former, encoding/xml-based XML planner.
func refPlanChunks(r io.Reader, kindHint Kind, rowsPerChunk int, lim Limits) (*Plan, error) {
	return planChunks(r, kindHint, rowsPerChunk, lim, refPlanXML)
}

// readXMLChunkWith reads chunk c with the new reader (ref false) or the
// former one (ref true).
func readXMLChunkWith(data []byte, p *Plan, c Chunk, lim Limits, oneByte, ref bool) ([]rec, error) {
	in := chunkInput(data, c, oneByte)
	lim = lim.norm()
	if ref {
		return collect(newRefXMLReader(in, p, c, lim).next)
	}
	return collect(NewReader(in, p, c, lim).Next)
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// knownDeviation reports whether err is the new scanner's refusal of a
// character reference to a surrogate, which encoding/xml silently turns into
// U+FFFD (see xml.go): encoding/xml then accepts the input, or refuses it
// for another reason found later.
func knownDeviation(data []byte, err error) bool {
	return err != nil && strings.Contains(err.Error(), "illegal character code U+D") && bytes.Contains(data, []byte("&#"))
}

func xmlDiffSeeds() []string {
	return []string{
		ordersXML,
		trickyXML(),
		"<orders><order><order_id>1</order_id></order></orders>",
		"<payments><payment><payment_id>P1</payment_id><order_id>O1</order_id></payment></payments>",
		`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><orders/>`,
		`<!DOCTYPE orders [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><orders><order><order_id>&xxe;</order_id></order></orders>`,
		"<orders>\n<order><order_id>&xxe;</order_id></order></orders>",
		"<orders>\n<order><order_id>A1</order_id></order>\n<order><order_id>A2</ord",
		"<orders>\n<order><order_id>A1</order_id></order>\n<order><order_id>A2</order_id>",
		"<customers><customer/></customers>",
		"<?xml version=\"1.0\"?><!-- only -->",
		"<orders><payment/></orders>",
		"<orders>\n text <order/></orders>",
		"<orders><order></orders>",
		"<orders></orders><orders></orders>",
		"<orders></orders>junk",
		"<orders><order><order_id><a><a><a><a><a><a><a></a></a></a></a></a></a></a></order_id></order></orders>",
		`<?xml version="1.0" encoding="ISO-8859-1"?><orders/>`,
		`<?xml version='1.1'?><orders/>`,
		`<?xml encoding="utf-8" ?><orders/><?pi x?>`,
		"<orders>\r\n<order a='1' b=\"&lt;&#x41;&#66;\" c:d='>'><order_id>\r\n&#13;&#10;&#9;&#x20;</order_id></order>\r</orders>",
		"<orders>&#32;&#x9;\n<order/>&#10;</orders>",
		"<orders><order><order_id>&#0;</order_id></order></orders>",
		"<orders><order><order_id>&#xD800;</order_id></order></orders>",
		"<orders><order><order_id>&#x110000;&amp</order_id></order></orders>",
		"<orders><order><order_id>&#X41;</order_id></order></orders>",
		"<orders><order><order_id>&#;&;&#x;</order_id></order></orders>",
		"<orders><order><order_id>a]]>b</order_id></order></orders>",
		"<orders><order><order_id><![CDATA[a]]]]><![CDATA[>b\r\n]]></order_id></order></orders>",
		"<orders><order><order_id><![CDAT[x]]></order_id></order></orders>",
		"<orders><!- x --><order/></orders>",
		"<orders><!-- a -- b --><order/></orders>",
		"<orders><!x <!-- > --> '>' \"<\" <y> ><order/></orders>",
		"<! DOCTYPE x><orders/>",
		"<a:orders/>",
		"<orders><x:order/></orders>",
		"<orders><order><x:order_id>1</x:order_id><a:b:c/></order></orders>",
		"<orders><order></order ></orders\n>",
		"<orders><order></order x></orders>",
		"<orders><order a=1/></orders>",
		"<orders><order a/></orders>",
		"<orders><order a='<'/></orders>",
		"<orders><order a=\"]]>\"b='x'/></orders>",
		"<orders><order/ ></orders>",
		"<orders><1order/></orders>",
		"<orders><ordér><order_id>é€😀\u00a0</order_id></ordér></orders>",
		"<orders><order><order_id>\x01</order_id></order></orders>",
		"<orders><order><order_id>\uFFFE</order_id></order></orders>",
		"<orders><order><order_id>" + strings.Repeat("x", 100) + "</order_id></order>\n<order/></orders>",
		"<orders>\n<order>\n<order_id>1</order_id>\n<currency>x</currency>\n<currency/>\n</order>\n</orders>",
		"<?xml?><?xml version=\"1.0\"?>\n<orders><?target data?><order><?x?><order_id>1<?y?>2</order_id></order></orders>",
		"<? x?><orders/>",
		"<?xml",
		"<orders><order><order_id>a&#x41",
		"<orders><order><order_id>a&amp",
		"<orders><order><order_id a='x",
		"<orders><order><order_id><![CDATA[x",
		"<orders><!-- x",
		"<orders><!DOCTYPE",
		"<",
		"<orders>\n\n<order/>\n\n<order/>\n\n\n<order/><order/></orders>\n\n",
		"\xEF\xBB\xBF<orders/>",
		"<orders><order><order_id>&\xff;</order_id></order></orders>",
		"<orders></order>",
		"</orders>",
		"<orders><order><order_id></currency></order></orders>",
	}
}

// FuzzXMLDifferential checks the XML scanner against the former
// encoding/xml-based implementation (xml_ref_test.go): same decision and
// error, same plan, same records.
func FuzzXMLDifferential(f *testing.F) {
	for _, s := range xmlDiffSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		xmlDiffOne(t, data)
	})
}

func TestXMLDifferentialSeeds(t *testing.T) {
	for _, s := range xmlDiffSeeds() {
		xmlDiffOne(t, []byte(s))
	}
}

func xmlDiffOne(t *testing.T, data []byte) {
	t.Helper()
	lim := Limits{MaxRecordBytes: 64, MaxXMLDepth: 6}
	for _, rows := range []int{1, 3} {
		p, err := PlanChunks(bytes.NewReader(data), "", rows, lim)
		rp, rerr := refPlanChunks(bytes.NewReader(data), "", rows, lim)
		if knownDeviation(data, err) {
			return // refused for a surrogate reference, which encoding/xml accepts or meets after another error
		}
		if errString(err) != errString(rerr) {
			t.Fatalf("%q rows %d: plan error\n got %v\nwant %v", data, rows, err, rerr)
		}
		// One byte at a time (the refill paths), for small inputs only: it is slow.
		oneByte := len(data) <= 512
		p1, err1 := p, err
		if oneByte {
			p1, err1 = PlanChunks(iotest.OneByteReader(bytes.NewReader(data)), "", rows, lim)
		}
		if errString(err1) != errString(rerr) {
			t.Fatalf("%q rows %d: plan error one byte at a time\n got %v\nwant %v", data, rows, err1, rerr)
		}
		if err != nil {
			continue
		}
		if !reflect.DeepEqual(p, rp) || !reflect.DeepEqual(p1, rp) {
			t.Fatalf("%q rows %d: plans differ\n got %+v\n one byte %+v\nwant %+v", data, rows, p, p1, rp)
		}
		if p.Format != FormatXML || rows != 3 {
			continue // records are read once, in chunks of 3
		}
		for _, c := range p.Chunks {
			want, werr := readXMLChunkWith(data, p, c, lim, false, true)
			for _, oneByte := range []bool{false, oneByte} {
				got, gerr := readXMLChunkWith(data, p, c, lim, oneByte, false)
				if errString(gerr) != errString(werr) {
					t.Fatalf("%q rows %d chunk %d (one byte %v): read error\n got %v\nwant %v", data, rows, c.Index, oneByte, gerr, werr)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%q rows %d chunk %d (one byte %v): records\n got %v\nwant %v", data, rows, c.Index, oneByte, got, want)
				}
			}
		}
	}
}
