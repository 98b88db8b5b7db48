package records

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// Sentinels of the leak tests: a card number, an email and a phone, each of
// which must never come back in an error or a record's message.
var sentinels = []string{"4000056655665556", "victim.leak@example.com", "+14155550123"}

// checkNoSentinel fails when msg repeats a sentinel, or a recognisable part of
// one (the email's local part, the phone's digits).
func checkNoSentinel(t *testing.T, what, msg string) {
	t.Helper()
	for _, s := range append(sentinels, "victim.leak", "14155550123", "0566") {
		if strings.Contains(msg, s) {
			t.Errorf("%s: %q repeats %q", what, msg, s)
		}
	}
}

// TestFileErrorsNeverRepeatValues: the errors that fail a whole file name
// the header cell or element by position and the rule, never its value
// (SPEC section 4). A file without a header has a data row in its place.
func TestFileErrorsNeverRepeatValues(t *testing.T) {
	row := "ORD-X1,42.00,USD,2024-01-01,victim.leak@example.com,+14155550123\n"
	for _, c := range []struct {
		in, hint string
		want     []string // in the message
	}{
		{row + row, "", []string{"line 1", "the header's 6 columns name no orders or payments column"}},
		{row, "orders", []string{"column 1 of the header", `("ORD-X1")`, "is not a known orders column", "order_id, order_amount"}},
		{"4000056655665556,+14155550123\n", "payments", []string{"column 1 of the header (a 16-character value) is not a known payments column"}},
		{"order_id,order_amount,victim.leak@example.com\nA,1,x\n", "", []string{"column 3 of the header (a 23-character value) is not a known orders column"}},
		{"order_id,+14155550123,+14155550123\n", "orders", []string{"column 3 of the header (a 12-character value) repeats column 2"}},
		{"order_id,currency,4000056655665556\n", "", []string{"cannot tell orders from payments", "(order_id, currency)"}},
		{"order_id,order_amount\n", "victim.leak@example.com", []string{"unknown type a 23-character value"}},
		{"<x4000056655665556/>", "", []string{"unknown root element <(a 17-character name)>"}},
		{"<orders><x4000056655665556/></orders>", "", []string{"unexpected element <(a 17-character name)> in <orders>"}},
		{"<orders></orders><x4000056655665556/>", "", []string{"element <(a 17-character name)> after the end of <orders>"}},
		{"<orders><order></x4000056655665556></order></orders>", "", []string{"element <order> closed by </(a 17-character name)>"}},
		{"<orders><order><4000056655665556/></order></orders>", "", []string{"malformed XML"}},
		{"<orders><order><order_id>&x4000056655665556;</order_id></order></orders>", "", []string{"invalid character entity &(a 17-character name);"}},
		{"<orders><order><order_id>&#4000056655665556;</order_id></order></orders>", "", []string{"invalid character entity &(a 17-character name);"}},
		{"<orders><order></order></orders x4000056655665556>", "", []string{"invalid characters between </orders and >"}},
		{"<orders><order></order></x4000056655665556 y>", "", []string{"malformed XML"}},
		{`<?xml version="4000056655665556"?><orders/>`, "", []string{"xml: unsupported version a 16-character value"}},
		{`<?xml version="1.0" encoding="victim.leak@example.com"?><orders/>`, "", []string{"xml: encoding a 23-character value declared"}},
		{"<orders><order><x4000056655665556>", "", []string{"file ends inside <(a 17-character name)> (truncated?)"}},
	} {
		_, err := PlanChunks(strings.NewReader(c.in), Kind(c.hint), 10, Limits{})
		if err == nil {
			t.Errorf("%.50q: no error", c.in)
			continue
		}
		checkNoSentinel(t, c.in, err.Error())
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%.50q: error %q, want %q", c.in, err, w)
			}
		}
	}
}

// TestRecordErrorsNeverRepeatValues: malformed records (rejected, not
// failing the file) name the element, never a value.
func TestRecordErrorsNeverRepeatValues(t *testing.T) {
	in := "<orders>\n" +
		"<order><order_id>A1</order_id><order_amount>1</order_amount><x4000056655665556>v</x4000056655665556></order>\n" +
		"<order><order_id>A2</order_id><order_amount>1</order_amount><order_id>4000056655665556</order_id></order>\n" +
		"<order><order_id>A3<x4000056655665556/></order_id><order_amount>1</order_amount></order>\n" +
		"</orders>\n"
	_, got := readAll(t, in, Limits{})
	want := []string{
		"unknown element <(a 17-character name)> in <order>",
		"repeated element <order_id> in <order>",
		"element <(a 17-character name)> inside <order_id>",
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i, r := range got {
		checkNoSentinel(t, r.String(), r.Err)
		if !strings.Contains(r.Err, want[i]) {
			t.Errorf("record %d: %q, want %q", i+1, r.Err, want[i])
		}
	}
	// CSV: the record's own messages hold no values either.
	in = "order_id,order_amount\n" +
		"A1,4000056655665556,victim.leak@example.com\n" +
		"A2,\"4000056655665556\"+14155550123\n" +
		"A3,4000\"056655665556\n"
	_, got = readAll(t, in, Limits{})
	if len(got) != 3 {
		t.Fatalf("got %v", got)
	}
	for _, r := range got {
		if r.Err == "" {
			t.Errorf("%v: not malformed", r)
		}
		checkNoSentinel(t, r.String(), r.Err)
	}
}

// TestBadRowInFirstKiB: a NUL or invalid UTF-8 in a CSV row is that row's
// reject wherever it is, in the first KiB too; the good rows are read. A
// binary file still fails (TestBinaryJunk).
func TestBadRowInFirstKiB(t *testing.T) {
	for _, bad := range []string{"A2,\x00\x01\x02", "A2,\xff\xfe1", "A2,1\x00"} {
		in := "order_id,order_amount\nA1,1\n" + bad + "\nA3,3\n"
		_, got := readAll(t, in, Limits{})
		if len(got) != 3 || got[0].Err != "" || got[2].Err != "" || got[2].Values[0] != "A3" {
			t.Fatalf("%q: %v", bad, got)
		}
		if e := got[1].Err; e != "record holds a NUL character" && e != "record is not valid UTF-8" {
			t.Errorf("%q: record 2: %q", bad, e)
		}
	}
	// The same row far from the start gives the same reject.
	far := "order_id,order_amount\n" + strings.Repeat("A,1\n", 400) + "A2,1\x00\n"
	_, got := readAll(t, far, Limits{})
	if r := got[len(got)-1]; r.Err != "record holds a NUL character" {
		t.Errorf("far: %v", r)
	}
}

// xReader yields n bytes of 'x', then tail: a line of n bytes with no
// newline, generated rather than held in memory.
type xReader struct {
	n    int64
	tail io.Reader
}

func (r *xReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return r.tail.Read(p)
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	n := 0
	for n < len(p) {
		n += copy(p[n:], xs[:])
	}
	r.n -= int64(n)
	return n, nil
}

var xs = [4096]byte(bytes.Repeat([]byte{'x'}, 4096))

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHugeLineBoundedMemory: a 200 MB CSV line (no newline, unquoted or
// inside quotes) is a MALFORMED record, and planning and reading it allocate
// a few times MaxRecordBytes, not the line.
func TestHugeLineBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 200 MB four times")
	}
	const huge = 200 << 20
	const budget = 16 * DefaultMaxRecordBytes
	header := "order_id,order_amount\n"
	for name, c := range map[string]struct{ open, close string }{
		"unquoted":    {"A1,", ""},
		"quoted":      {"A1,\"", "\""},
		"no newline":  {"A1,", ""}, // the file ends in the huge line
		"quoted only": {"\"", "\""},
	} {
		tail := c.close + "\nA2,2\n"
		wantRecs := int64(2)
		if name == "no newline" {
			tail, wantRecs = "", 1
		}
		input := func() io.Reader {
			return io.MultiReader(strings.NewReader(header+c.open), &xReader{n: huge, tail: strings.NewReader(tail)})
		}
		var p *Plan
		var err error
		n := allocated(func() { p, err = PlanChunks(input(), "", 0, Limits{}) })
		if err != nil {
			t.Fatalf("%s: plan: %v", name, err)
		}
		if p.Records != wantRecs {
			t.Fatalf("%s: %d records, want %d", name, p.Records, wantRecs)
		}
		if n > budget {
			t.Errorf("%s: planning allocated %d bytes, budget %d", name, n, budget)
		}
		var recs []Record
		n = allocated(func() {
			in := input()
			if _, err := io.CopyN(io.Discard, in, p.Chunks[0].Start); err != nil {
				t.Fatal(err)
			}
			rd := NewReader(in, p, p.Chunks[0], Limits{})
			for {
				r, err := rd.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if r.Err != nil {
					r.Values = nil
				} else {
					r.Values = append([]string(nil), r.Values...)
				}
				recs = append(recs, r)
			}
		})
		if n > budget {
			t.Errorf("%s: reading allocated %d bytes, budget %d", name, n, budget)
		}
		t.Logf("%s: %d bytes allocated to read a %d-byte line", name, n, huge)
		if int64(len(recs)) != wantRecs || recs[0].Err == nil || !strings.Contains(recs[0].Err.Error(), "longer than 1048576 bytes") {
			t.Fatalf("%s: records %+v", name, recs)
		}
		if wantRecs == 2 && (recs[1].Err != nil || recs[1].Values[0] != "A2") {
			t.Errorf("%s: record after the huge one: %+v", name, recs[1])
		}
	}
}
