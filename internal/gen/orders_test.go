package gen

import (
	"bytes"
	"strings"
	"testing"

	"github.com/acme/payments/internal/money"
)

// The share of bad rows is exact, so a user knows how many rejects an
// import of the file will have before running it.
func TestBadRateIsExact(t *testing.T) {
	for _, c := range []struct {
		count int
		rate  float64
		want  int
	}{{20000, 0.01, 200}, {10000, 0.005, 50}, {999, 0.01, 10}, {7, 0.5, 4}, {50, 0, 0}, {40, 1, 40}} {
		for _, kind := range []string{KindOrders, KindPayments} {
			for seed := int64(1); seed <= 2; seed++ {
				_, st := mustWrite(t, Options{Kind: kind, Count: c.count, BadRate: c.rate, Seed: seed})
				if st.Bad != c.want || st.Rows != c.count {
					t.Errorf("%s count %d rate %v seed %d: %d bad of %d, want %d", kind, c.count, c.rate, seed, st.Bad, st.Rows, c.want)
				}
			}
		}
	}
	// Spread over the file, not bunched at one end.
	data, _ := mustWrite(t, Options{Kind: KindOrders, Count: 10000, BadRate: 0.1, Seed: 4})
	_, rows := readCSV(t, data)
	firstHalf := classify(t, KindOrders, rows[:5000], Options{Kind: KindOrders, Count: 10000})
	n := 0
	for _, v := range firstHalf {
		n += v
	}
	if n < 350 || n > 650 {
		t.Errorf("%d of 1000 bad rows in the first half", n)
	}
}

func TestStatsReasons(t *testing.T) {
	st := Stats{BadByReason: map[string]int{ReasonBadDate: 3, ReasonBadAmount: 12}}
	if got := st.Reasons(); got != "BAD_AMOUNT 12, BAD_DATE 3" {
		t.Errorf("Reasons() = %q", got)
	}
	if got := (Stats{BadByReason: map[string]int{}}).Reasons(); got != "" {
		t.Errorf("no reasons: %q", got)
	}
}

// Payments generated from an orders file refer only to the orders its
// import stores, in their currencies, and split their amounts; the file's
// bad rows and conflicting duplicates are left out.
func TestPaymentsOfAnOrdersFile(t *testing.T) {
	ordersCSV, ost := mustWrite(t, Options{Kind: KindOrders, Count: 2000, BadRate: 0.05, Seed: 8, Currency: "JPY"})
	of, err := ReadOrders(bytes.NewReader(ordersCSV), int64(len(ordersCSV)))
	if err != nil {
		t.Fatal(err)
	}
	dups := ost.BadByReason[ReasonDuplicateConflict]
	// Each conflicting duplicate takes its original out too.
	if of.Records != 2000 || int(of.Skipped) != ost.Bad+dups || len(of.Orders) != 2000-ost.Bad-dups {
		t.Fatalf("read %d records, %d orders, %d skipped; the file has %d bad rows (%d duplicates)", of.Records, len(of.Orders), of.Skipped, ost.Bad, dups)
	}
	good := map[string]Order{}
	for _, o := range of.Orders {
		if o.Currency != "JPY" || o.Amount <= 0 || o.CreatedAt.IsZero() {
			t.Fatalf("order %+v", o)
		}
		good[o.ID] = o
	}

	o := Options{Kind: KindPayments, Count: 2 * len(of.Orders), BadRate: 0.01, Seed: 8, OrderList: of.Orders}
	data, st := mustWrite(t, o)
	if st.Bad != int(float64(o.Count)*0.01+0.5) {
		t.Errorf("%d bad payments of %d", st.Bad, o.Count)
	}
	_, rows := readCSV(t, data)
	sum := map[string]int64{}
	notFound := 0
	for _, row := range rows {
		ord, ok := good[row["order_id"]]
		if !ok {
			if row["order_id"] != "" {
				notFound++
			}
			continue
		}
		if row["currency"] != ord.Currency && len(row["currency"]) == 3 && strings.ToUpper(row["currency"]) == row["currency"] && row["currency"] != "XXX" && row["currency"] != "ZZZ" {
			t.Errorf("payment %s in %s for an order in %s", row["payment_id"], row["currency"], ord.Currency)
		}
		if v, err := money.Parse(row["payment_amount"], ord.Currency); err == nil {
			sum[ord.ID] += v
		}
		if pt, ok := parseDate(row["created_at"]); ok && pt.Before(ord.CreatedAt) {
			t.Errorf("payment %s before its order", row["payment_id"])
		}
	}
	if notFound != st.BadByReason[ReasonOrderNotFound] {
		t.Errorf("%d payments of unknown orders, %d ORDER_NOT_FOUND rows generated", notFound, st.BadByReason[ReasonOrderNotFound])
	}
	if len(sum) < len(of.Orders)*9/10 {
		t.Errorf("payments cover %d of %d orders", len(sum), len(of.Orders))
	}

	// Without bad rows every order gets exactly its amount in two payments.
	o.BadRate = 0
	data, _ = mustWrite(t, o)
	_, rows = readCSV(t, data)
	sum = map[string]int64{}
	for _, row := range rows {
		ord, ok := good[row["order_id"]]
		if !ok || row["currency"] != "JPY" {
			t.Fatalf("payment %v of an order not in the list", row)
		}
		v, _ := money.Parse(row["payment_amount"], "JPY")
		sum[ord.ID] += v
	}
	for id, ord := range good {
		if sum[id] != ord.Amount {
			t.Errorf("%s: payments sum to %d, order %d", id, sum[id], ord.Amount)
		}
	}

	if _, err := Write(&bytes.Buffer{}, Options{Kind: KindOrders, Count: 1, OrderList: of.Orders}); err == nil {
		t.Error("an order list for orders")
	}
	if _, err := Write(&bytes.Buffer{}, Options{Kind: KindPayments, Count: 1, OrderList: []Order{{ID: "A", Amount: 1, Currency: "NOPE"}}}); err == nil {
		t.Error("an order list entry in an unknown currency")
	}
}

func TestReadOrdersXMLAndErrors(t *testing.T) {
	data, st := mustWrite(t, Options{Kind: KindOrders, Format: FormatXML, Count: 300, BadRate: 0.1, Seed: 2})
	of, err := ReadOrders(bytes.NewReader(data), int64(len(data)))
	if err != nil || of.Records != 300 || len(of.Orders) < 300-2*st.Bad {
		t.Fatalf("xml: %v %d records %d orders (%d bad)", err, of.Records, len(of.Orders), st.Bad)
	}
	pays, _ := mustWrite(t, Options{Kind: KindPayments, Count: 10, Seed: 2})
	if _, err := ReadOrders(bytes.NewReader(pays), int64(len(pays))); err == nil || !strings.Contains(err.Error(), "payments") {
		t.Errorf("a payments file as orders: %v", err)
	}
}
