package gen

import (
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"errors"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments/internal/money"
)

func mustWrite(t testing.TB, o Options) ([]byte, Stats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := Write(&buf, o)
	if err != nil {
		t.Fatalf("Write(%+v): %v", o, err)
	}
	return buf.Bytes(), st
}

func readCSV(t *testing.T, data []byte) (header []string, rows []map[string]string) {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(data))
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("csv: %v", err)
	}
	if len(recs) == 0 {
		t.Fatal("no header")
	}
	header = recs[0]
	for _, rec := range recs[1:] {
		m := make(map[string]string, len(rec))
		for i, v := range rec {
			m[header[i]] = v
		}
		rows = append(rows, m)
	}
	return header, rows
}

func TestDeterminism(t *testing.T) {
	for _, kind := range []string{KindOrders, KindPayments} {
		for _, format := range []string{FormatCSV, FormatXML} {
			o := Options{Kind: kind, Format: format, Count: 2000, BadRate: 0.2, Seed: 42}
			a, sa := mustWrite(t, o)
			b, sb := mustWrite(t, o)
			if !bytes.Equal(a, b) {
				t.Errorf("%s/%s: same seed, different bytes", kind, format)
			}
			if sa.Bad != sb.Bad {
				t.Errorf("%s/%s: same seed, different stats", kind, format)
			}
			o.Seed = 43
			c, _ := mustWrite(t, o)
			if bytes.Equal(a, c) {
				t.Errorf("%s/%s: other seed, same bytes", kind, format)
			}
		}
	}
}

var (
	methodSet = []string{"CARD", "UPI", "NETBANKING", "WALLET", "BANK_TRANSFER", "CASH", "VOUCHER"}
	statusSet = []string{"PENDING", "SUCCESS", "FAILED"}
	emailRe   = regexp.MustCompile(`^[a-z]+(\.[a-z]+)?\+[0-9]+@example\.(com|org|net)$`)
	phoneRe   = regexp.MustCompile(`^\+1555[0-9]{7}$`)
	orderRe   = regexp.MustCompile(`^ORD-[0-9]{8}$`)
	payRe     = regexp.MustCompile(`^PAY-[0-9]{9}$`)
	gwRe      = regexp.MustCompile(`^gw_[0-9a-f]{12}$`)
)

func parseDate(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, true
	}
	if t, err := time.Parse(LayoutSpace, s); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// checkGood applies the importer's basic rules to a row that must be good.
func checkGood(t *testing.T, kind string, row map[string]string, o Options) {
	t.Helper()
	cur := o.Currency
	if cur == "" {
		cur = "USD"
	}
	if row["currency"] != cur {
		t.Errorf("currency %q, want %q: %v", row["currency"], cur, row)
	}
	amountCol := "order_amount"
	if kind == KindPayments {
		amountCol = "payment_amount"
	}
	if _, err := money.Parse(row[amountCol], cur); err != nil {
		t.Errorf("amount: %v: %v", err, row)
	}
	ts, ok := parseDate(row["created_at"])
	start := o.StartTime
	if start.IsZero() {
		start = DefaultStartTime
	}
	if !ok || ts.Before(start) || !ts.Before(start.Add(Window)) {
		t.Errorf("created_at %q not a date in the window: %v", row["created_at"], row)
	}
	if !orderRe.MatchString(row["order_id"]) {
		t.Errorf("order_id %q: %v", row["order_id"], row)
	}
	switch kind {
	case KindOrders:
		if !emailRe.MatchString(row["customer_email"]) {
			t.Errorf("email %q", row["customer_email"])
		}
		if p := row["customer_phone"]; p != "" && !phoneRe.MatchString(p) {
			t.Errorf("phone %q", p)
		}
	case KindPayments:
		if !payRe.MatchString(row["payment_id"]) {
			t.Errorf("payment_id %q", row["payment_id"])
		}
		m := row["payment_method"]
		if !slices.Contains(methodSet, m) {
			t.Errorf("method %q", m)
		}
		if !slices.Contains(statusSet, row["payment_status"]) {
			t.Errorf("status %q", row["payment_status"])
		}
		gw := row["gateway_ref"]
		if m == "CASH" || m == "VOUCHER" {
			if gw != "" {
				t.Errorf("gateway_ref %q for %s", gw, m)
			}
		} else if !gwRe.MatchString(gw) {
			t.Errorf("gateway_ref %q", gw)
		}
		if m != "CASH" && row["payment_details"] == "" {
			t.Errorf("no details for %s", m)
		}
	}
}

func TestCSVGood(t *testing.T) {
	for _, kind := range []string{KindOrders, KindPayments} {
		o := Options{Kind: kind, Count: 5000, Seed: 7}
		data, st := mustWrite(t, o)
		if st.Rows != 5000 || st.Bad != 0 || len(st.BadByReason) != 0 {
			t.Errorf("%s: stats %+v", kind, st)
		}
		if bytes.Contains(data, []byte("\r")) {
			t.Errorf("%s: CR in output", kind)
		}
		header, rows := readCSV(t, data)
		if !slices.Equal(header, Columns(kind)) {
			t.Errorf("%s: header %v", kind, header)
		}
		if len(rows) != 5000 {
			t.Fatalf("%s: %d rows", kind, len(rows))
		}
		idCol := "order_id"
		if kind == KindPayments {
			idCol = "payment_id"
		}
		ids := map[string]bool{}
		gws := map[string]bool{}
		quoted := 0
		for _, row := range rows {
			checkGood(t, kind, row, o)
			if ids[row[idCol]] {
				t.Errorf("%s: duplicate id %s", kind, row[idCol])
			}
			ids[row[idCol]] = true
			if gw := row["gateway_ref"]; gw != "" {
				if gws[gw] {
					t.Errorf("duplicate gateway_ref %s", gw)
				}
				gws[gw] = true
			}
			if strings.ContainsAny(row["payment_details"], `",`) {
				quoted++
			}
		}
		if kind == KindPayments && quoted == 0 {
			t.Error("no payment_details needing CSV quoting")
		}
	}
}

func TestOrderIDsAndAmounts(t *testing.T) {
	o := Options{Kind: KindOrders, Count: 300, Seed: 3, Currency: "KWD"}
	data, _ := mustWrite(t, o)
	_, rows := readCSV(t, data)
	for i, row := range rows {
		k := i + 1
		if want := "ORD-" + pad8(k); row["order_id"] != want {
			t.Fatalf("row %d id %s, want %s", i, row["order_id"], want)
		}
		v, err := money.Parse(row["order_amount"], "KWD")
		if err != nil || v != OrderAmount(3, k, "KWD") {
			t.Fatalf("row %d amount %s (%d, %v), want %d", i, row["order_amount"], v, err, OrderAmount(3, k, "KWD"))
		}
		if v < 5_000 || v > 2_000_000 {
			t.Fatalf("amount %d KWD minor units out of 5..2000", v)
		}
	}
	if OrderAmount(1, 1, "NOPE") != 0 {
		t.Error("OrderAmount with unknown currency")
	}
}

func pad8(k int) string {
	s := strconv.Itoa(k)
	return strings.Repeat("0", 8-len(s)) + s
}

func TestPaymentsSplitOrders(t *testing.T) {
	const n = 500
	o := Options{Kind: KindPayments, Count: 2 * n, Orders: n, Seed: 9, Currency: "EUR"}
	data, _ := mustWrite(t, o)
	_, rows := readCSV(t, data)
	sum := map[string]int64{}
	count := map[string]int{}
	for _, row := range rows {
		checkGood(t, KindPayments, row, o)
		v, _ := money.Parse(row["payment_amount"], "EUR")
		sum[row["order_id"]] += v
		count[row["order_id"]]++
	}
	if len(sum) != n {
		t.Fatalf("%d orders referenced, want %d", len(sum), n)
	}
	for k := 1; k <= n; k++ {
		id := "ORD-" + pad8(k)
		if count[id] != 2 || sum[id] != OrderAmount(9, k, "EUR") {
			t.Errorf("%s: %d payments summing %d, want 2 summing %d", id, count[id], sum[id], OrderAmount(9, k, "EUR"))
		}
	}
	// third and later payments are small extras for existing orders
	o.Count = 3 * n
	data, _ = mustWrite(t, o)
	_, rows = readCSV(t, data)
	for _, row := range rows[2*n:] {
		v, _ := money.Parse(row["payment_amount"], "EUR")
		if v < 100 || v > 2000 {
			t.Errorf("extra payment %d out of 1.00..20.00", v)
		}
	}
	// payments are created after their order
	od, _ := mustWrite(t, Options{Kind: KindOrders, Count: n, Seed: 9, Currency: "EUR"})
	_, orows := readCSV(t, od)
	created := map[string]time.Time{}
	for _, r := range orows {
		created[r["order_id"]], _ = parseDate(r["created_at"])
	}
	for _, r := range rows {
		pt, _ := parseDate(r["created_at"])
		if pt.Before(created[r["order_id"]]) {
			t.Errorf("payment %s at %v before its order %v", r["payment_id"], pt, created[r["order_id"]])
		}
	}
}

func TestBadRows(t *testing.T) {
	for _, kind := range []string{KindOrders, KindPayments} {
		o := Options{Kind: kind, Count: 10000, BadRate: 0.1, Seed: 11}
		data, st := mustWrite(t, o)
		if st.Bad < 800 || st.Bad > 1200 {
			t.Errorf("%s: %d bad rows of 10000", kind, st.Bad)
		}
		total := 0
		for _, n := range st.BadByReason {
			total += n
		}
		if total != st.Bad {
			t.Errorf("%s: BadByReason sums to %d, Bad %d", kind, total, st.Bad)
		}
		want := []string{ReasonMissingField, ReasonBadAmount, ReasonBadCurrency, ReasonBadDate, ReasonDuplicateConflict}
		if kind == KindPayments {
			want = append(want, ReasonBadMethod, ReasonBadStatus, ReasonOrderNotFound)
		}
		if len(st.BadByReason) != len(want) {
			t.Errorf("%s: reasons %v, want %v", kind, st.BadByReason, want)
		}
		for _, r := range want {
			if st.BadByReason[r] == 0 {
				t.Errorf("%s: no %s rows", kind, r)
			}
		}

		_, rows := readCSV(t, data)
		if len(rows) != 10000 {
			t.Fatalf("%s: %d rows", kind, len(rows))
		}
		got := classify(t, kind, rows, o)
		for r := range got {
			if got[r] != st.BadByReason[r] {
				t.Errorf("%s: %s: found %d rows, stats say %d", kind, r, got[r], st.BadByReason[r])
			}
		}
		for r, n := range st.BadByReason {
			if got[r] != n {
				t.Errorf("%s: %s: found %d rows, stats say %d", kind, r, got[r], n)
			}
		}
	}
}

// classify re-derives each row's reject reason the way an importer would
// (one reason per row) and counts them.
func classify(t *testing.T, kind string, rows []map[string]string, o Options) map[string]int {
	t.Helper()
	got := map[string]int{}
	idCol, amountCol := "order_id", "order_amount"
	required := []string{"order_id", "order_amount"}
	if kind == KindPayments {
		idCol, amountCol = "payment_id", "payment_amount"
		required = []string{"payment_id", "order_id", "payment_amount"}
	}
	orders := o.Orders
	if orders == 0 {
		orders = max(o.Count/2, 1)
	}
	seen := map[string]string{} // id -> amount of the first good row
	for _, row := range rows {
		reason := ""
		for _, c := range required {
			if row[c] == "" {
				reason = ReasonMissingField
			}
		}
		if reason == "" {
			_, err := money.Parse(row[amountCol], row["currency"])
			switch {
			case errors.Is(err, money.ErrBadCurrency):
				reason = ReasonBadCurrency
			case err != nil:
				reason = ReasonBadAmount
			}
		}
		if _, ok := parseDate(row["created_at"]); reason == "" && !ok {
			reason = ReasonBadDate
		}
		if kind == KindPayments && reason == "" {
			switch {
			case !slices.Contains(methodSet, row["payment_method"]):
				reason = ReasonBadMethod
			case !slices.Contains(statusSet, row["payment_status"]):
				reason = ReasonBadStatus
			default:
				k, err := strconv.Atoi(strings.TrimPrefix(row["order_id"], "ORD-"))
				if err != nil || k < 1 || k > orders {
					reason = ReasonOrderNotFound
				}
			}
		}
		if reason == "" {
			id := row[idCol]
			if prev, ok := seen[id]; ok {
				if prev == row[amountCol] {
					t.Errorf("duplicate %s with the same amount", id)
				}
				reason = ReasonDuplicateConflict
			} else {
				seen[id] = row[amountCol]
			}
		}
		if reason == "" {
			checkGood(t, kind, row, o)
		} else {
			got[reason]++
		}
	}
	return got
}

type xmlOrders struct {
	XMLName xml.Name `xml:"orders"`
	Rows    []struct {
		OrderID  string `xml:"order_id"`
		Amount   string `xml:"order_amount"`
		Currency string `xml:"currency"`
		Created  string `xml:"created_at"`
		Email    string `xml:"customer_email"`
		Phone    string `xml:"customer_phone"`
	} `xml:"order"`
}

type xmlPayments struct {
	XMLName xml.Name `xml:"payments"`
	Rows    []struct {
		PaymentID string `xml:"payment_id"`
		OrderID   string `xml:"order_id"`
		Amount    string `xml:"payment_amount"`
		Method    string `xml:"payment_method"`
		Status    string `xml:"payment_status"`
		Details   string `xml:"payment_details"`
		Gateway   string `xml:"gateway_ref"`
		Currency  string `xml:"currency"`
		Created   string `xml:"created_at"`
	} `xml:"payment"`
}

func TestXML(t *testing.T) {
	o := Options{Kind: KindOrders, Format: FormatXML, Count: 3000, BadRate: 0.1, Seed: 5}
	data, _ := mustWrite(t, o)
	if !bytes.HasPrefix(data, []byte(`<?xml version="1.0" encoding="UTF-8"?>`+"\n<orders>\n  <order><order_id>")) ||
		!bytes.HasSuffix(data, []byte("</order>\n</orders>\n")) {
		t.Errorf("unexpected framing: %.120s ... %s", data, data[len(data)-40:])
	}
	var ox xmlOrders
	if err := xml.Unmarshal(data, &ox); err != nil {
		t.Fatal(err)
	}
	if len(ox.Rows) != 3000 {
		t.Errorf("%d orders", len(ox.Rows))
	}
	// same seed: the XML carries the same values as the CSV
	o.Format = FormatCSV
	csvData, _ := mustWrite(t, o)
	_, rows := readCSV(t, csvData)
	for i, r := range ox.Rows {
		if r.OrderID != rows[i]["order_id"] || r.Amount != rows[i]["order_amount"] || r.Email != rows[i]["customer_email"] || r.Created != rows[i]["created_at"] {
			t.Fatalf("row %d differs between XML %+v and CSV %v", i, r, rows[i])
		}
	}

	p := Options{Kind: KindPayments, Format: FormatXML, Count: 3000, BadRate: 0.1, Seed: 5}
	data, _ = mustWrite(t, p)
	var px xmlPayments
	if err := xml.Unmarshal(data, &px); err != nil {
		t.Fatal(err)
	}
	if len(px.Rows) != 3000 {
		t.Errorf("%d payments", len(px.Rows))
	}
	if bytes.Contains(data, []byte("<gateway_ref></gateway_ref>")) || bytes.Contains(data, []byte("<payment_details></payment_details>")) {
		t.Error("empty optional element not omitted")
	}
	vouchers := 0
	for _, r := range px.Rows {
		if r.Method == "VOUCHER" && strings.Contains(r.Details, `"`) {
			vouchers++
		}
	}
	if vouchers == 0 {
		t.Error("no escaped voucher details found")
	}
}

func TestPaymentsReferenceOrders(t *testing.T) {
	o := Options{Kind: KindPayments, Count: 1000, Orders: 300, Seed: 1}
	data, _ := mustWrite(t, o)
	_, rows := readCSV(t, data)
	for i, r := range rows {
		want := "ORD-" + pad8(i%300+1)
		if r["order_id"] != want {
			t.Fatalf("payment %d refers to %s, want %s", i, r["order_id"], want)
		}
	}
	// default Orders = Count/2, custom prefix
	o = Options{Kind: KindPayments, Count: 10, Seed: 1, OrderIDPrefix: "SHOP-"}
	data, _ = mustWrite(t, o)
	_, rows = readCSV(t, data)
	for i, r := range rows {
		if want := "SHOP-" + pad8(i%5+1); r["order_id"] != want {
			t.Errorf("payment %d refers to %s, want %s", i, r["order_id"], want)
		}
	}
}

func TestEdgeCases(t *testing.T) {
	data, st := mustWrite(t, Options{Kind: KindOrders, Count: 0})
	if string(data) != strings.Join(Columns(KindOrders), ",")+"\n" || st.Rows != 0 {
		t.Errorf("count 0: %q %+v", data, st)
	}
	data, _ = mustWrite(t, Options{Kind: KindPayments, Count: 0, Format: FormatXML})
	if string(data) != `<?xml version="1.0" encoding="UTF-8"?>`+"\n<payments>\n</payments>\n" {
		t.Errorf("empty xml: %q", data)
	}
	// all bad, one payment, JPY (no minor unit)
	for _, kind := range []string{KindOrders, KindPayments} {
		data, st = mustWrite(t, Options{Kind: kind, Count: 1000, BadRate: 1, Currency: "JPY", Seed: 2})
		if st.Bad != 1000 {
			t.Errorf("%s: bad rate 1: %d bad", kind, st.Bad)
		}
		_, rows := readCSV(t, data)
		o := Options{Kind: kind, Count: 1000, Currency: "JPY"}
		got := classify(t, kind, rows, o)
		for r, n := range st.BadByReason {
			if got[r] != n {
				t.Errorf("%s: %s: found %d, stats %d", kind, r, got[r], n)
			}
		}
	}
	if _, st := mustWrite(t, Options{Kind: KindPayments, Count: 1}); st.Rows != 1 {
		t.Error("one payment")
	}
}

func TestValidation(t *testing.T) {
	cases := []struct {
		o    Options
		want string
	}{
		{Options{Kind: "refunds", Count: 1}, "unknown kind"},
		{Options{Count: 1}, "kind is required"},
		{Options{Kind: KindOrders, Count: -1}, "count"},
		{Options{Kind: KindOrders, Count: 1, BadRate: 1.5}, "bad rate"},
		{Options{Kind: KindOrders, Count: 1, BadRate: -0.1}, "bad rate"},
		{Options{Kind: KindOrders, Count: 1, Format: "json"}, "unknown format"},
		{Options{Kind: KindOrders, Count: 1, Currency: "usd"}, "unknown currency"},
		{Options{Kind: KindOrders, Count: 1, Currency: "XXX"}, "unknown currency"},
		{Options{Kind: KindPayments, Count: 1, Orders: -3}, "orders"},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		_, err := Write(&buf, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.o, err, c.want)
		}
		if buf.Len() != 0 {
			t.Errorf("%+v: wrote %d bytes despite the error", c.o, buf.Len())
		}
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n--; f.n < 0 {
		return 0, io.ErrClosedPipe
	}
	return len(p), nil
}

func TestWriteError(t *testing.T) {
	st, err := Write(&failWriter{n: 2}, Options{Kind: KindOrders, Count: 100000})
	if !errors.Is(err, io.ErrClosedPipe) || st.Rows >= 100000 {
		t.Errorf("err %v, rows %d", err, st.Rows)
	}
}

func TestHelpers(t *testing.T) {
	for _, s := range []string{"", "a", " a", "a,b", `a"b`, "a\nb", `\.`, "x y"} {
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		_ = w.Write([]string{s})
		w.Flush()
		if got := string(appendCSVField(nil, []byte(s))) + "\n"; got != buf.String() {
			t.Errorf("appendCSVField(%q) = %q, encoding/csv %q", s, got, buf.String())
		}
	}
	// Luhn: 4111 1111 1111 1111 is valid
	if d := luhnDigit([]byte("411111111111111")); d != '1' {
		t.Errorf("luhn = %c", d)
	}
	// IBAN check digits: mod 97 of the rearranged number is 1
	s := strings.ReplaceAll(string(appendIBAN(nil, 123456789)), " ", "")
	rearranged := s[4:] + "1314" + s[2:4]
	rem := 0
	for _, c := range rearranged {
		rem = (rem*10 + int(c-'0')) % 97
	}
	if len(s) != 22 || rem != 1 {
		t.Errorf("IBAN %s invalid (rem %d)", s, rem)
	}
	if got := string(appendPadded(nil, 42, 8)); got != "00000042" {
		t.Errorf("appendPadded = %s", got)
	}
	if got := string(appendPadded(nil, 123456789, 8)); got != "123456789" {
		t.Errorf("appendPadded = %s", got)
	}
	seen := map[uint64]bool{}
	for id := 1; id <= 100000; id++ {
		x := gatewayRef(1, id)
		if seen[x] || x >= 1<<48 {
			t.Fatalf("gatewayRef collision/overflow at %d", id)
		}
		seen[x] = true
	}
}

func benchmarkWrite(b *testing.B, o Options) {
	o.Count = 100_000
	b.ReportAllocs()
	var bytesOut countWriter
	for b.Loop() {
		if _, err := Write(&bytesOut, o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(o.Count)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.SetBytes(bytesOut.n / int64(b.N))
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkWriteOrdersCSV measures orders CSV generation (rows/s).
func BenchmarkWriteOrdersCSV(b *testing.B) {
	benchmarkWrite(b, Options{Kind: KindOrders, BadRate: 0.01, Seed: 1})
}

func BenchmarkWritePaymentsCSV(b *testing.B) {
	benchmarkWrite(b, Options{Kind: KindPayments, BadRate: 0.01, Seed: 1})
}

func BenchmarkWriteOrdersXML(b *testing.B) {
	benchmarkWrite(b, Options{Kind: KindOrders, Format: FormatXML, BadRate: 0.01, Seed: 1})
}
