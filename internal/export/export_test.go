package export_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/export"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/orders"
	"github.com/acme/payments/internal/records"
	"github.com/acme/payments/internal/stacktest"
)

// fixture is a database of orders and payments whose values are hard to
// carry: quotes, commas, line breaks, markup characters, non-ASCII, and
// currencies of every exponent.
type fixture struct {
	db    *sqlx.DB
	store *orders.Store
	l     *ledger.Ledger
	x     *export.Exporter
}

var hostile = []string{
	`plain`, `with "quotes"`, `comma, inside`, "line\nbreak", "crlf\r\nend", "lone\rcr", `<tag attr="1"> & more`,
	`&amp; literal`, `]]>`, `ünïcödé 中文 😀`, "\ttabbed\t", " spaced ", `back\slash`, `'single'`, "",
	// Formula starts: neutralised in CSV, read back as they were.
	`=HYPERLINK("http://evil.example","x")`, "+15550100", "-5", "@SUM(A1)", "'=quoted", "''",
}

// contact is v without the control characters an email or phone refuses.
func contact(v string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, v)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, text := dbtest.NewWithText(t)
	keys, err := encryption.ParseKeys(stacktest.TestKeys)
	if err != nil {
		t.Fatal(err)
	}
	bi, err := encryption.ParseBlindIndexKey(stacktest.TestBlindIndexKey)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, store: &orders.Store{DB: db, Keys: keys, BlindIndex: bi},
		l: &ledger.Ledger{DB: db, Keys: keys}, x: &export.Exporter{DB: text, Keys: keys, PageRows: 3}}
	ctx := context.Background()
	currencies := []string{"USD", "JPY", "BHD", "KWD", "EUR", "CLF"}
	amounts := map[string]int64{"USD": 12_30, "JPY": 5000, "BHD": 1_234, "KWD": 9_001, "EUR": 100_00, "CLF": 12_3456}
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i, v := range hostile {
		cur := currencies[i%len(currencies)]
		o := orders.NewOrder{OrderID: fmt.Sprintf("O-%02d-%s", i, []string{"a", "ü", "Z", "~"}[i%4]), Amount: amounts[cur], Currency: cur,
			CustomerEmail: strings.TrimSpace(contact(v)) + "@example.com", CustomerPhone: clip32(contact(v)),
			CreatedAt: at.Add(time.Duration(i) * 36 * time.Hour).Add(time.Duration(i*123457) * time.Microsecond)}
		if _, err := f.store.Create(ctx, o); err != nil {
			t.Fatalf("order %d: %v", i, err)
		}
		status := []ledger.Status{ledger.StatusPending, ledger.StatusSuccess, ledger.StatusFailed}[i%3]
		amount := o.Amount / 2
		if status == ledger.StatusSuccess {
			amount = o.Amount // completes the order
		}
		p := ledger.Payment{PaymentID: fmt.Sprintf("P-%02d", i), OrderID: o.OrderID, Amount: amount, Currency: cur,
			Status: status, Method: "CARD", Details: v, CreatedAt: o.CreatedAt.Add(time.Minute)}
		if status != ledger.StatusPending {
			p.GatewayRef = fmt.Sprintf("ref-%02d,\"q\"<&>", i)
		}
		if status == ledger.StatusFailed {
			p.FailureReason = strings.TrimSpace(v) + " declined"
		}
		if res, err := f.l.Record(ctx, ledger.SourceImport, "fixture", []ledger.Payment{p}); err != nil || res[0].Outcome != ledger.Inserted {
			t.Fatalf("payment %d: %+v %v", i, res, err)
		}
	}
	return f
}

// clip32 keeps a phone under its 32-byte limit.
func clip32(s string) string {
	s = strings.TrimSpace(s)
	for len(s) > 32 {
		s = s[:len(s)-1]
	}
	return s
}

func (f *fixture) export(t *testing.T, p export.Params, r export.Range) ([]byte, export.Written) {
	t.Helper()
	enc, err := export.NewEncoding(p)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	w, err := f.x.WriteRecords(context.Background(), &body, p, r)
	if err != nil {
		t.Fatal(err)
	}
	file := enc.AppendHeader(nil)
	file = append(file, body.Bytes()[min(enc.SkipFirst(), body.Len()):]...)
	return enc.AppendFooter(file), w
}

// readFile reads an exported CSV or XML file back as an import would.
func readFile(t *testing.T, data []byte, kind records.Kind) [][]string {
	t.Helper()
	plan, err := records.PlanChunks(bytes.NewReader(data), kind, 4, records.Limits{})
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, data)
	}
	var out [][]string
	for _, c := range plan.Chunks {
		rd := records.NewReader(bytes.NewReader(data[c.Start:c.End]), plan, c, records.Limits{})
		for {
			rec, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil || rec.Err != nil {
				t.Fatalf("read: %v %v", err, rec.Err)
			}
			out = append(out, slices.Clone(rec.Values))
		}
	}
	return out
}

// Every field of every order and payment survives each format exactly.
func TestEveryFieldRoundTrips(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var stored []orders.Order
	var payments []orders.Payment
	for i := range hostile {
		o, err := f.store.Get(ctx, fmt.Sprintf("O-%02d-%s", i, []string{"a", "ü", "Z", "~"}[i%4]))
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, o)
		payments = append(payments, o.Payments...)
	}
	slices.SortFunc(stored, func(a, b orders.Order) int { return strings.Compare(a.OrderID, b.OrderID) })
	slices.SortFunc(payments, func(a, b orders.Payment) int { return strings.Compare(a.PaymentID, b.PaymentID) })

	for _, format := range []export.Format{export.FormatCSV, export.FormatXML} {
		t.Run(string(format), func(t *testing.T) {
			data, w := f.export(t, export.Params{Kind: records.KindOrders, Format: format, PII: true}, export.Range{})
			rows := readFile(t, data, records.KindOrders)
			if len(rows) != len(stored) || w.Rows != int64(len(stored)) {
				t.Fatalf("%d rows read, %d written, %d stored", len(rows), w.Rows, len(stored))
			}
			for i, v := range rows {
				got, fe := importer.ParseOrder(v)
				want := stored[i]
				if fe != nil || got.OrderID != want.OrderID || got.Amount != want.Amount || got.Currency != want.Currency ||
					got.CustomerEmail != want.CustomerEmail || got.CustomerPhone != want.CustomerPhone || !got.CreatedAt.Equal(want.CreatedAt) {
					t.Errorf("order %d: read %+v (%v), stored %+v", i, got, fe, want)
				}
			}
			data, _ = f.export(t, export.Params{Kind: records.KindPayments, Format: format, PII: true}, export.Range{})
			if format == export.FormatCSV {
				// No cell starts a formula; the quote is the file's only.
				for _, cell := range []string{`"'=HYPERLINK(""http`, ",'+15550100,", ",'-5,", ",'@SUM(A1),", ",''=quoted,", ",''',"} {
					if !bytes.Contains(data, []byte(cell)) {
						t.Errorf("the payments CSV has no %s", cell)
					}
				}
				if bytes.Contains(data, []byte(",+15550100")) || bytes.Contains(data, []byte(`,"=HYPERLINK`)) {
					t.Error("a formula cell is not neutralised")
				}
			}
			rows = readFile(t, data, records.KindPayments)
			if len(rows) != len(payments) {
				t.Fatalf("%d payments read, %d stored", len(rows), len(payments))
			}
			for i, v := range rows {
				got, fe := importer.ParsePayment(v)
				want := payments[i]
				if fe != nil || got.PaymentID != want.PaymentID || got.OrderID != want.OrderID || got.Amount != want.Amount ||
					got.Currency != want.Currency || string(got.Status) != want.Status || got.Method != want.Method ||
					got.Details != want.Details || got.GatewayRef != want.GatewayRef || got.FailureReason != want.FailureReason ||
					!got.CreatedAt.Equal(want.CreatedAt) {
					t.Errorf("payment %d: read %+v (%v), stored %+v", i, got, fe, want)
				}
			}
		})
	}
	for _, format := range []export.Format{export.FormatJSON, export.FormatNDJSON} {
		t.Run(string(format), func(t *testing.T) {
			data, _ := f.export(t, export.Params{Kind: records.KindOrders, Format: format, PII: true}, export.Range{})
			var got []orders.OrderJSON
			decodeJSON(t, data, format, &got)
			var want []orders.OrderJSON
			for _, o := range stored {
				j := o.JSON(true)
				j.Payments = nil
				want = append(want, j)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("orders:\n got %+v\nwant %+v", got, want)
			}
			data, _ = f.export(t, export.Params{Kind: records.KindPayments, Format: format, PII: true}, export.Range{})
			var gotP, wantP []orders.PaymentJSON
			decodeJSON(t, data, format, &gotP)
			for _, p := range payments {
				wantP = append(wantP, p.JSON(true))
			}
			if !slices.Equal(gotP, wantP) {
				t.Errorf("payments:\n got %+v\nwant %+v", gotP, wantP)
			}
		})
	}
}

func decodeJSON[T any](t *testing.T, data []byte, format export.Format, out *[]T) {
	t.Helper()
	if format == export.FormatJSON {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("not one JSON array: %v\n%s", err, data)
		}
		return
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	for lines := bytes.Count(data, []byte("\n")); len(*out) < lines; {
		var v T
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("line %d: %v", len(*out)+1, err)
		}
		*out = append(*out, v)
	}
	if dec.More() {
		t.Fatal("more values than lines")
	}
}

// Filters keep exactly the rows they name; ranges split the rows between
// them with none twice; without pii the sensitive fields are masked.
func TestFiltersRangesAndMasking(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	count := func(p export.Params, r export.Range) int64 {
		t.Helper()
		_, w := f.export(t, p, r)
		return w.Rows
	}
	csvOrders := export.Params{Kind: records.KindOrders, Format: export.FormatCSV, PII: true}
	var all []string
	if err := f.db.Select(&all, "SELECT order_id FROM orders ORDER BY order_id"); err != nil {
		t.Fatal(err)
	}
	if n := count(csvOrders, export.Range{}); n != int64(len(all)) {
		t.Fatalf("%d of %d orders", n, len(all))
	}
	// Ranges (After, UpTo] cover every row once.
	mid := all[len(all)/2]
	a, b := count(csvOrders, export.Range{UpTo: mid}), count(csvOrders, export.Range{After: mid})
	if a+b != int64(len(all)) || a != int64(len(all)/2+1) {
		t.Errorf("ranges split %d rows into %d + %d", len(all), a, b)
	}
	for _, tc := range []struct {
		q    string
		kind records.Kind
		sql  string
	}{
		{"status=PENDING", records.KindPayments, "SELECT COUNT(*) FROM payments WHERE payment_status = 'PENDING'"},
		{"status=FAILED", records.KindPayments, "SELECT COUNT(*) FROM payments WHERE payment_status = 'FAILED'"},
		{"status=COMPLETED", records.KindOrders, "SELECT COUNT(*) FROM orders WHERE order_status = 'COMPLETED'"},
		{"created_from=2026-03-05", records.KindOrders, "SELECT COUNT(*) FROM orders WHERE created_at >= '2026-03-05'"},
		{"created_to=2026-03-05", records.KindOrders, "SELECT COUNT(*) FROM orders WHERE created_at < '2026-03-06'"},
		{"created_from=2026-03-02T22:00:00.123457Z&created_to=2026-03-08T10:00:00.000001Z", records.KindOrders,
			"SELECT COUNT(*) FROM orders WHERE created_at >= '2026-03-02 22:00:00.123457' AND created_at <= '2026-03-08 10:00:00.000001'"},
		{"created_from=2026-03-03T00:00:00%2B02:00", records.KindPayments, "SELECT COUNT(*) FROM payments WHERE created_at >= '2026-03-02 22:00:00'"},
	} {
		v, err := url.ParseQuery("type=" + string(tc.kind) + "&format=ndjson&" + tc.q)
		if err != nil {
			t.Fatal(err)
		}
		p, err := export.ParseParams(v, true)
		if err != nil {
			t.Fatalf("%s: %v", tc.q, err)
		}
		var want int64
		if err := f.db.Get(&want, tc.sql); err != nil {
			t.Fatal(err)
		}
		if got := count(p, export.Range{}); got != want || want == 0 {
			t.Errorf("%s: %d rows, want %d", tc.q, got, want)
		}
	}

	data, _ := f.export(t, export.Params{Kind: records.KindOrders, Format: export.FormatCSV}, export.Range{})
	if bytes.Contains(data, []byte("plain@example.com")) || !bytes.Contains(data, []byte("p***@example.com")) {
		t.Errorf("orders without pii are not masked:\n%s", data)
	}
	data, _ = f.export(t, export.Params{Kind: records.KindPayments, Format: export.FormatJSON}, export.Range{})
	if bytes.Contains(data, []byte("ünïcödé")) {
		t.Errorf("payment details without pii are not masked:\n%s", data)
	}
	_ = ctx
}

func TestParseParamsRefusesBadValues(t *testing.T) {
	for _, q := range []string{
		"", "type=orders", "format=csv", "type=refunds&format=csv", "type=orders&format=xlsx",
		"type=orders&format=csv&status=SUCCESS", "type=payments&format=csv&status=COMPLETED",
		"type=orders&format=csv&created_from=yesterday", "type=orders&format=csv&created_to=2026-13-01",
		"type=orders&format=csv&created_from=2026-03-05&created_to=2026-03-04", "type=orders&format=csv&limit=5",
		"type=orders&type=payments&format=csv", "type=orders&format=csv&created_from=0001-01-01",
	} {
		v, _ := url.ParseQuery(q)
		if _, err := export.ParseParams(v, false); err == nil {
			t.Errorf("%q accepted", q)
		}
	}
}
