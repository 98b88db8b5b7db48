package ledger_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/ledger"
)

func testKeys(t testing.TB) *encryption.Keyring {
	t.Helper()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*7 + 3)
	}
	k, err := encryption.ParseKeys("k1:" + base64.StdEncoding.EncodeToString(key))
	if err != nil {
		t.Fatalf("ParseKeys: %v", err)
	}
	return k
}

// newLedger returns a ledger on a fresh database whose clock advances one
// millisecond per call, so an unintended write shows in updated_at.
func newLedger(t testing.TB) (*ledger.Ledger, *sqlx.DB) {
	t.Helper()
	db := dbtest.New(t)
	var tick atomic.Int64
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return &ledger.Ledger{
		DB:   db,
		Keys: testKeys(t),
		Now:  func() time.Time { return base.Add(time.Duration(tick.Add(1)) * time.Millisecond) },
	}, db
}

func insertOrder(t testing.TB, db *sqlx.DB, id string, amount int64, currency string) {
	t.Helper()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err := db.Exec("INSERT INTO orders (order_id, order_amount, currency, created_at, updated_at) VALUES (?,?,?,?,?)",
		id, amount, currency, now, now)
	if err != nil {
		t.Fatalf("insert order %s: %v", id, err)
	}
}

// pay builds a CARD payment in USD with details derived from the id.
func pay(id, order string, amount int64, status ledger.Status) ledger.Payment {
	return ledger.Payment{PaymentID: id, OrderID: order, Amount: amount, Currency: "USD", Status: status,
		Method: "CARD", Details: "4111 1111 1111 " + id}
}

func with(p ledger.Payment, f func(*ledger.Payment)) ledger.Payment {
	f(&p)
	return p
}

// res is an expected result: an outcome, for Rejected also the code.
type res struct {
	outcome ledger.Outcome
	code    string
}

var (
	ins = res{outcome: ledger.Inserted}
	unc = res{outcome: ledger.Unchanged}
	stl = res{outcome: ledger.Settled}
)

func rej(code string) res { return res{outcome: ledger.Rejected, code: code} }

type orderWant struct {
	paid   int64
	status ledger.OrderStatus
}

type step struct {
	record []ledger.Payment
	settle *ledger.Settlement
	want   []res
	orders map[string]orderWant // checked after the step
}

// TestRules runs the payment/order rules of SPEC sections 3 and 5. Each case
// uses its own ids (prefixed with the case number) in one shared database.
func TestRules(t *testing.T) { runRules(t) }

// TestRulesBulkPath runs the same cases with every batch written through
// LOAD DATA, the path of large import chunks.
func TestRulesBulkPath(t *testing.T) {
	defer ledger.SetBulkMinRows(1)()
	runRules(t)
}

func runRules(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	P, S, F := ledger.StatusPending, ledger.StatusSuccess, ledger.StatusFailed

	cases := []struct {
		name   string
		orders map[string]int64 // USD unless the id starts with "EUR"
		steps  []step
		// final state
		payments map[string]ledger.Status
		// by payment, then in order: "P1:->PENDING", "P1:PENDING->SUCCESS";
		// refused ones end in "!"
		events []string
	}{
		{
			name:   "new pending payment",
			orders: map[string]int64{"O1": 1000},
			steps: []step{{
				record: []ledger.Payment{pay("P1", "O1", 500, P)},
				want:   []res{ins},
				orders: map[string]orderWant{"O1": {0, ledger.OrderPending}},
			}},
			payments: map[string]ledger.Status{"P1": P},
			events:   []string{"P1:->PENDING"},
		},
		{
			name:   "identical repeat is unchanged",
			orders: map[string]int64{"O1": 1000},
			steps: []step{
				{record: []ledger.Payment{pay("P1", "O1", 500, P), pay("P1", "O1", 500, P)}, want: []res{ins, unc}},
				{record: []ledger.Payment{pay("P1", "O1", 500, P)}, want: []res{unc}},
				{record: []ledger.Payment{with(pay("P1", "O1", 500, P), func(p *ledger.Payment) { p.Currency = "" })}, want: []res{unc}},
			},
			payments: map[string]ledger.Status{"P1": P},
			events:   []string{"P1:->PENDING"},
		},
		{
			name:   "settlement completes a covered order",
			orders: map[string]int64{"O1": 1000},
			steps: []step{
				{record: []ledger.Payment{pay("P1", "O1", 1000, P)}, want: []res{ins}, orders: map[string]orderWant{"O1": {0, ledger.OrderPending}}},
				{record: []ledger.Payment{with(pay("P1", "O1", 1000, S), func(p *ledger.Payment) { p.GatewayRef = "GW1" })}, want: []res{stl},
					orders: map[string]orderWant{"O1": {1000, ledger.OrderCompleted}}},
				{record: []ledger.Payment{pay("P1", "O1", 1000, S)}, want: []res{unc}}, // gateway_ref omitted: still a repeat
			},
			payments: map[string]ledger.Status{"P1": S},
			events:   []string{"P1:->PENDING", "P1:PENDING->SUCCESS"},
		},
		{
			name:   "partial payments stay pending until covered",
			orders: map[string]int64{"O1": 1000},
			steps: []step{
				{record: []ledger.Payment{pay("P1", "O1", 400, S)}, want: []res{ins}, orders: map[string]orderWant{"O1": {400, ledger.OrderPending}}},
				{record: []ledger.Payment{pay("P2", "O1", 300, S), pay("P3", "O1", 300, P)}, want: []res{ins, ins},
					orders: map[string]orderWant{"O1": {700, ledger.OrderPending}}},
				{settle: &ledger.Settlement{PaymentID: "P3", Status: S, Amount: 300}, want: []res{stl},
					orders: map[string]orderWant{"O1": {1000, ledger.OrderCompleted}}},
			},
			payments: map[string]ledger.Status{"P1": S, "P2": S, "P3": S},
			events:   []string{"P1:->SUCCESS", "P2:->SUCCESS", "P3:->PENDING", "P3:PENDING->SUCCESS"},
		},
		{
			name:   "overpayment completes with paid above amount",
			orders: map[string]int64{"O1": 1000},
			steps: []step{{
				record: []ledger.Payment{pay("P1", "O1", 800, S), pay("P2", "O1", 700, S)},
				want:   []res{ins, ins},
				orders: map[string]orderWant{"O1": {1500, ledger.OrderCompleted}},
			}},
			payments: map[string]ledger.Status{"P1": S, "P2": S},
			events:   []string{"P1:->SUCCESS", "P2:->SUCCESS"},
		},
		{
			name:   "failed payments do not count",
			orders: map[string]int64{"O1": 1000},
			steps: []step{
				{record: []ledger.Payment{pay("P1", "O1", 1000, F), pay("P2", "O1", 1000, P)}, want: []res{ins, ins},
					orders: map[string]orderWant{"O1": {0, ledger.OrderPending}}},
				{settle: &ledger.Settlement{PaymentID: "P2", Status: F, FailureReason: "TIMEOUT"}, want: []res{stl},
					orders: map[string]orderWant{"O1": {0, ledger.OrderPending}}},
				{settle: &ledger.Settlement{PaymentID: "P2", Status: F}, want: []res{unc}},
				{record: []ledger.Payment{pay("P3", "O1", 1000, S)}, want: []res{ins}, orders: map[string]orderWant{"O1": {1000, ledger.OrderCompleted}}},
			},
			payments: map[string]ledger.Status{"P1": F, "P2": F, "P3": S},
			events:   []string{"P1:->FAILED", "P2:->PENDING", "P2:PENDING->FAILED", "P3:->SUCCESS"},
		},
		{
			name:   "out of a terminal status is a refused transition",
			orders: map[string]int64{"O1": 1000},
			steps: []step{
				{record: []ledger.Payment{with(pay("P1", "O1", 1000, S), func(p *ledger.Payment) { p.GatewayRef = "G" })}, want: []res{ins},
					orders: map[string]orderWant{"O1": {1000, ledger.OrderCompleted}}},
				{record: []ledger.Payment{pay("P1", "O1", 1000, F)}, want: []res{rej(ledger.CodeBadTransition)}},
				{settle: &ledger.Settlement{PaymentID: "P1", Status: F, FailureReason: "DECLINED"}, want: []res{rej(ledger.CodeBadTransition)}},
				{record: []ledger.Payment{pay("P1", "O1", 1000, P)}, want: []res{rej(ledger.CodeBadTransition)}},
				{record: []ledger.Payment{pay("P2", "O1", 5, F), pay("P2", "O1", 5, S)}, want: []res{ins, rej(ledger.CodeBadTransition)},
					orders: map[string]orderWant{"O1": {1000, ledger.OrderCompleted}}},
			},
			payments: map[string]ledger.Status{"P1": S, "P2": F},
			events:   []string{"P1:->SUCCESS", "P1:SUCCESS->FAILED!", "P1:SUCCESS->FAILED!", "P1:SUCCESS->PENDING!", "P2:->FAILED", "P2:FAILED->SUCCESS!"},
		},
		{
			name:   "other differences are duplicate conflicts",
			orders: map[string]int64{"O1": 1000, "O2": 1000},
			steps: []step{
				{record: []ledger.Payment{pay("P1", "O1", 500, P)}, want: []res{ins}},
				{record: []ledger.Payment{
					pay("P1", "O1", 600, P), // amount
					pay("P1", "O1", 600, S), // amount, with a settlement
					pay("P1", "O2", 500, P), // order
					with(pay("P1", "O1", 500, P), func(p *ledger.Payment) { p.Method = "UPI" }),
					with(pay("P1", "O1", 500, P), func(p *ledger.Payment) { p.Details = "other" }),
					with(pay("P1", "O1", 500, P), func(p *ledger.Payment) { p.Details = "" }),
					with(pay("P1", "O1", 500, P), func(p *ledger.Payment) { p.Currency = "EUR" }),
					with(pay("P1", "O1", 500, P), func(p *ledger.Payment) { p.GatewayRef = "NEW" }),
				}, want: []res{
					rej(ledger.CodeDuplicateConflict), rej(ledger.CodeDuplicateConflict), rej(ledger.CodeDuplicateConflict),
					rej(ledger.CodeDuplicateConflict), rej(ledger.CodeDuplicateConflict), rej(ledger.CodeDuplicateConflict),
					rej(ledger.CodeDuplicateConflict), rej(ledger.CodeDuplicateConflict),
				}},
				{record: []ledger.Payment{pay("P2", "O1", 500, P), pay("P2", "O1", 501, P), pay("P2", "O1", 500, S)},
					want: []res{ins, rej(ledger.CodeDuplicateConflict), stl}},
				// A settlement for another amount is refused on record.
				{settle: &ledger.Settlement{PaymentID: "P1", Status: S, Amount: 499}, want: []res{rej(ledger.CodeDuplicateConflict)}},
			},
			payments: map[string]ledger.Status{"P1": P, "P2": S},
			events:   []string{"P1:->PENDING", "P1:PENDING->SUCCESS!", "P2:->PENDING", "P2:PENDING->SUCCESS"},
		},
		{
			name:   "order must exist",
			orders: map[string]int64{"O1": 1000},
			steps: []step{
				{record: []ledger.Payment{pay("P1", "NOPE", 500, S), pay("P2", "O1", 500, S)}, want: []res{rej(ledger.CodeOrderNotFound), ins},
					orders: map[string]orderWant{"O1": {500, ledger.OrderPending}}},
				{settle: &ledger.Settlement{PaymentID: "P9", Status: S}, want: []res{rej(ledger.CodePaymentNotFound)}},
			},
			payments: map[string]ledger.Status{"P2": S},
			events:   []string{"P2:->SUCCESS"},
		},
		{
			name:   "currency must match the order",
			orders: map[string]int64{"EUR1": 1000},
			steps: []step{
				{record: []ledger.Payment{
					pay("P1", "EUR1", 1000, S),
					with(pay("P2", "EUR1", 400, S), func(p *ledger.Payment) { p.Currency = "EUR" }),
					with(pay("P3", "EUR1", 600, S), func(p *ledger.Payment) { p.Currency = "" }),
				}, want: []res{rej(ledger.CodeCurrencyMismatch), ins, ins},
					orders: map[string]orderWant{"EUR1": {1000, ledger.OrderCompleted}}},
			},
			payments: map[string]ledger.Status{"P2": S, "P3": S},
			events:   []string{"P2:->SUCCESS", "P3:->SUCCESS"},
		},
		{
			name:   "gateway_ref is unique",
			orders: map[string]int64{"O1": 1000},
			steps: []step{
				{record: []ledger.Payment{with(pay("P1", "O1", 100, S), func(p *ledger.Payment) { p.GatewayRef = "G1" }), pay("P3", "O1", 100, P)},
					want: []res{ins, ins}},
				{record: []ledger.Payment{
					with(pay("P2", "O1", 100, S), func(p *ledger.Payment) { p.GatewayRef = "G1" }),
					with(pay("P1", "O1", 100, S), func(p *ledger.Payment) { p.GatewayRef = "G1" }),
					with(pay("P4", "O1", 100, S), func(p *ledger.Payment) { p.GatewayRef = "G4" }),
					with(pay("P5", "O1", 100, S), func(p *ledger.Payment) { p.GatewayRef = "G4" }),
				}, want: []res{rej(ledger.CodeDuplicateConflict), unc, ins, rej(ledger.CodeDuplicateConflict)}},
				{settle: &ledger.Settlement{PaymentID: "P3", Status: S, GatewayRef: "G1"}, want: []res{rej(ledger.CodeDuplicateConflict)}},
				{settle: &ledger.Settlement{PaymentID: "P3", Status: S, GatewayRef: "G3"}, want: []res{stl},
					orders: map[string]orderWant{"O1": {300, ledger.OrderPending}}},
			},
			payments: map[string]ledger.Status{"P1": S, "P3": S, "P4": S},
			events:   []string{"P1:->SUCCESS", "P3:->PENDING", "P3:PENDING->SUCCESS", "P4:->SUCCESS"},
		},
		{
			name:   "invalid fields are rejected one by one",
			orders: map[string]int64{"O1": 1000},
			steps: []step{{
				record: []ledger.Payment{
					pay("P1", "O1", 0, S),
					pay("", "O1", 10, S),
					pay("P3 ", "O1", 10, S),
					pay("P4", "", 10, S),
					pay("P5", "O1", 10, "DONE"),
					with(pay("P6", "O1", 10, S), func(p *ledger.Payment) { p.Method = "CHEQUE" }),
					with(pay("P7", "O1", 10, S), func(p *ledger.Payment) { p.Method = "" }),
					with(pay("P8", "O1", 10, S), func(p *ledger.Payment) { p.Currency = "usd" }),
					with(pay("P9", "O1", 10, S), func(p *ledger.Payment) { p.Details = strings.Repeat("x", 451) }),
					with(pay("P10", "O1", 10, S), func(p *ledger.Payment) { p.GatewayRef = strings.Repeat("g", 129) }),
					with(pay("P11", "O1", 10, ""), func(p *ledger.Payment) { p.Details = strings.Repeat("x", 450) }),
					// The id rule of files and the API: no inner white space,
					// at most 64 bytes.
					pay("P 12", "O1", 10, S),
					pay("P\u00a013", "O1", 10, S),
					pay(strings.Repeat("é", 33), "O1", 10, S),
					// Text a downloaded file could not carry back.
					with(pay("P15", "O1", 10, S), func(p *ledger.Payment) { p.Details = "41\x0111" }),
					with(pay("P16", "O1", 10, ledger.StatusFailed), func(p *ledger.Payment) { p.FailureReason = "no\x00" }),
					with(pay("P17", "O1", 10, S), func(p *ledger.Payment) { p.GatewayRef = "g\uffff" }),
				},
				want: []res{
					rej(ledger.CodeBadAmount), rej(ledger.CodeMissingField), rej(ledger.CodeMalformed), rej(ledger.CodeMissingField),
					rej(ledger.CodeBadStatus), rej(ledger.CodeBadMethod), rej(ledger.CodeMissingField), rej(ledger.CodeBadCurrency),
					rej(ledger.CodeMalformed), rej(ledger.CodeMalformed), ins,
					rej(ledger.CodeMalformed), rej(ledger.CodeMalformed), rej(ledger.CodeMalformed),
					rej(ledger.CodeMalformed), rej(ledger.CodeMalformed), rej(ledger.CodeMalformed),
				},
			}, {
				settle: &ledger.Settlement{PaymentID: "P11", Status: P}, want: []res{rej(ledger.CodeBadStatus)},
			}},
			payments: map[string]ledger.Status{"P11": P},
			events:   []string{"P11:->PENDING"},
		},
		{
			name:   "insert and settle in one batch",
			orders: map[string]int64{"O1": 1000, "O2": 50},
			steps: []step{{
				record: []ledger.Payment{pay("P1", "O1", 1000, P), pay("P2", "O2", 50, P), pay("P1", "O1", 1000, S), pay("P1", "O1", 1000, S), pay("P2", "O2", 50, F)},
				want:   []res{ins, ins, stl, unc, stl},
				orders: map[string]orderWant{"O1": {1000, ledger.OrderCompleted}, "O2": {0, ledger.OrderPending}},
			}},
			payments: map[string]ledger.Status{"P1": S, "P2": F},
			events:   []string{"P1:->PENDING", "P1:PENDING->SUCCESS", "P2:->PENDING", "P2:PENDING->FAILED"},
		},
	}

	for ci, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prefix := fmt.Sprintf("c%02d-", ci)
			pre := func(s string) string {
				if s == "" || s == "NOPE" {
					return s
				}
				return prefix + s
			}
			for id, amount := range tc.orders {
				cur := "USD"
				if strings.HasPrefix(id, "EUR") {
					cur = "EUR"
				}
				insertOrder(t, db, pre(id), amount, cur)
			}
			for si, st := range tc.steps {
				before := snapshot(t, db, prefix)
				var got []ledger.Result
				if st.settle != nil {
					s := *st.settle
					s.PaymentID = pre(s.PaymentID)
					s.GatewayRef = pre(s.GatewayRef)
					r, err := l.Settle(ctx, ledger.SourceGateway, fmt.Sprintf("cb-%d", si), s)
					if err != nil {
						t.Fatalf("step %d: Settle: %v", si, err)
					}
					got = []ledger.Result{r}
				} else {
					batch := make([]ledger.Payment, len(st.record))
					for i, p := range st.record {
						p.PaymentID, p.OrderID, p.GatewayRef = pre(p.PaymentID), pre(p.OrderID), pre(p.GatewayRef)
						batch[i] = p
					}
					var err error
					got, err = l.Record(ctx, ledger.SourceImport, fmt.Sprintf("file#%d", si), batch)
					if err != nil {
						t.Fatalf("step %d: Record: %v", si, err)
					}
				}
				if len(got) != len(st.want) {
					t.Fatalf("step %d: %d results, want %d", si, len(got), len(st.want))
				}
				changed := false
				for i, w := range st.want {
					if got[i].Outcome != w.outcome || got[i].Code != w.code {
						t.Errorf("step %d entry %d (%s): got %v %s (%s), want %v %s", si, i, got[i].PaymentID,
							got[i].Outcome, got[i].Code, got[i].Message, w.outcome, w.code)
					}
					if got[i].Outcome == ledger.Rejected && got[i].Message == "" {
						t.Errorf("step %d entry %d: rejected without a message", si, i)
					}
					if strings.Contains(got[i].Message, "4111") {
						t.Errorf("step %d entry %d: message leaks payment details: %s", si, i, got[i].Message)
					}
					changed = changed || w.outcome == ledger.Inserted || w.outcome == ledger.Settled
				}
				if after := snapshot(t, db, prefix); !changed && after != before {
					t.Errorf("step %d changed nothing but the payments/orders rows differ:\nbefore %s\nafter  %s", si, before, after)
				}
				for id, w := range st.orders {
					checkOrder(t, l, pre(id), w.paid, w.status)
				}
			}

			// Final payments.
			var rows []struct {
				ID     string `db:"payment_id"`
				Status string `db:"payment_status"`
			}
			if err := db.Select(&rows, "SELECT payment_id, payment_status FROM payments WHERE payment_id LIKE ? ORDER BY payment_id", prefix+"%"); err != nil {
				t.Fatal(err)
			}
			gotPay := map[string]ledger.Status{}
			for _, r := range rows {
				gotPay[strings.TrimPrefix(r.ID, prefix)] = ledger.Status(r.Status)
			}
			if fmt.Sprint(gotPay) != fmt.Sprint(tc.payments) {
				t.Errorf("payments = %v, want %v", gotPay, tc.payments)
			}

			// The audit trail: one applied event per applied change, one
			// refused event per BAD_TRANSITION, in order.
			if got := events(t, db, prefix); strings.Join(got, " ") != strings.Join(tc.events, " ") {
				t.Errorf("events:\n got %v\nwant %v", got, tc.events)
			}
		})
	}
}

// snapshot renders every payments and orders row of a case, so a step that
// should write nothing can be checked for exactly that.
func snapshot(t *testing.T, db *sqlx.DB, prefix string) string {
	t.Helper()
	var sb strings.Builder
	for _, q := range []string{
		"SELECT CONCAT_WS('|', payment_id, order_id, payment_amount, currency, payment_status, payment_method, HEX(payment_details), " +
			"IFNULL(gateway_ref,'-'), IFNULL(failure_reason,'-'), created_at, updated_at) FROM payments WHERE payment_id LIKE ? ORDER BY payment_id",
		"SELECT CONCAT_WS('|', order_id, order_amount, order_status, paid_amount, updated_at) FROM orders WHERE order_id LIKE ? ORDER BY order_id",
	} {
		var lines []string
		if err := db.Select(&lines, q, prefix+"%"); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		sb.WriteString(strings.Join(lines, "; "))
		sb.WriteString(" // ")
	}
	return sb.String()
}

func events(t *testing.T, db *sqlx.DB, prefix string) []string {
	t.Helper()
	var rows []struct {
		PaymentID string  `db:"payment_id"`
		From      *string `db:"from_status"`
		To        string  `db:"to_status"`
		Applied   bool    `db:"applied"`
	}
	err := db.Select(&rows, "SELECT payment_id, from_status, to_status, applied FROM payment_events WHERE payment_id LIKE ? ORDER BY payment_id, event_id", prefix+"%")
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, r := range rows {
		from := ""
		if r.From != nil {
			from = *r.From
		}
		s := fmt.Sprintf("%s:%s->%s", strings.TrimPrefix(r.PaymentID, prefix), from, r.To)
		if !r.Applied {
			s += "!"
		}
		out = append(out, s)
	}
	return out
}

func checkOrder(t *testing.T, l *ledger.Ledger, id string, paid int64, status ledger.OrderStatus) {
	t.Helper()
	st, err := l.OrderState(context.Background(), id)
	if err != nil {
		t.Fatalf("OrderState(%s): %v", id, err)
	}
	if st.PaidAmount != paid || st.Status != status {
		t.Errorf("order %s: paid %d %s, want %d %s", id, st.PaidAmount, st.Status, paid, status)
	}
}

func TestDetailsEncrypted(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	insertOrder(t, db, "O1", 1000, "USD")
	const secret = "4242424242424242"
	p := pay("P1", "O1", 1000, ledger.StatusPending)
	p.Details = secret
	q := pay("P2", "O1", 1000, ledger.StatusPending)
	q.Details = ""
	if _, err := l.Record(ctx, ledger.SourceAPI, "", []ledger.Payment{p, q}); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := db.Get(&raw, "SELECT payment_details FROM payments WHERE payment_id = 'P1'"); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte("4242")) {
		t.Fatalf("payment_details holds plaintext: %q", raw)
	}
	pt, err := l.Keys.Decrypt(raw, encryption.AAD("payments", "payment_details", "P1"))
	if err != nil || string(pt) != secret {
		t.Fatalf("decrypt with the row's AAD: %q, %v", pt, err)
	}
	if _, err := l.Keys.Decrypt(raw, encryption.AAD("payments", "payment_details", "P2")); !errors.Is(err, encryption.ErrDecrypt) {
		t.Fatalf("decrypt with another row's AAD: err = %v, want ErrDecrypt", err)
	}
	var null []byte
	if err := db.Get(&null, "SELECT payment_details FROM payments WHERE payment_id = 'P2'"); err != nil || null != nil {
		t.Fatalf("empty details stored as %q (%v), want NULL", null, err)
	}
	// A repeat compares plaintexts, not ciphertexts (their nonces differ).
	r, err := l.Record(ctx, ledger.SourceAPI, "", []ledger.Payment{p, q})
	if err != nil || r[0].Outcome != ledger.Unchanged || r[1].Outcome != ledger.Unchanged {
		t.Fatalf("repeat: %+v, %v", r, err)
	}
}

// TestRecordTxRollback: RecordTx inside a caller's transaction that rolls
// back leaves no payment, event or order change behind.
func TestRecordTxRollback(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	insertOrder(t, db, "O1", 1000, "USD")
	tx, err := db.BeginTxx(ctx, ledger.TxOptions())
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.RecordTx(ctx, tx, ledger.SourceImport, "imp/1#0", []ledger.Payment{pay("P1", "O1", 1000, ledger.StatusSuccess)})
	if err != nil || res[0].Outcome != ledger.Inserted {
		t.Fatalf("RecordTx: %+v, %v", res, err)
	}
	var inTx int64
	if err := tx.Get(&inTx, "SELECT paid_amount FROM orders WHERE order_id = 'O1'"); err != nil || inTx != 1000 {
		t.Fatalf("inside the transaction paid_amount = %d (%v), want 1000", inTx, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.Get(&n, "SELECT (SELECT COUNT(*) FROM payments) + (SELECT COUNT(*) FROM payment_events)"); err != nil || n != 0 {
		t.Fatalf("%d payments+events left after rollback (%v)", n, err)
	}
	checkOrder(t, l, "O1", 0, ledger.OrderPending)

	// The same call committed does land.
	tx, err = db.BeginTxx(ctx, ledger.TxOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.RecordTx(ctx, tx, ledger.SourceImport, "imp/1#0", []ledger.Payment{pay("P1", "O1", 1000, ledger.StatusSuccess)}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	checkOrder(t, l, "O1", 1000, ledger.OrderCompleted)
}

// TestLargeBatch crosses every statement-batching boundary (IN lists,
// multi-row inserts and CASE updates) in one call.
func TestLargeBatch(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	const nOrders, nPayments = 1201, 2503
	tx := db.MustBegin()
	for i := range nOrders {
		now := time.Now().UTC()
		tx.MustExec("INSERT INTO orders (order_id, order_amount, currency, created_at, updated_at) VALUES (?,?,?,?,?)",
			fmt.Sprintf("O%05d", i), 100, "USD", now, now)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	batch := make([]ledger.Payment, nPayments)
	for i := range batch {
		batch[i] = pay(fmt.Sprintf("P%05d", i), fmt.Sprintf("O%05d", i%nOrders), 50, ledger.StatusPending)
		batch[i].GatewayRef = fmt.Sprintf("G%05d", i)
	}
	start := time.Now()
	res, err := l.Record(ctx, ledger.SourceImport, "big", batch)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Outcome != ledger.Inserted {
			t.Fatalf("%s: %v %s", r.PaymentID, r.Outcome, r.Message)
		}
	}
	for i := range batch {
		batch[i].Status = ledger.StatusSuccess
	}
	res, err = l.Record(ctx, ledger.SourceImport, "big-settle", batch)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Outcome != ledger.Settled {
			t.Fatalf("%s: %v %s", r.PaymentID, r.Outcome, r.Message)
		}
	}
	t.Logf("2 x %d payments over %d orders in %v", nPayments, nOrders, time.Since(start))
	var bad int
	if err := db.Get(&bad, `SELECT COUNT(*) FROM orders o WHERE paid_amount <> (SELECT COALESCE(SUM(payment_amount),0) FROM payments p
		WHERE p.order_id = o.order_id AND payment_status = 'SUCCESS') OR order_status <> IF(paid_amount >= order_amount, 'COMPLETED', 'PENDING')`); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Fatalf("%d orders inconsistent", bad)
	}
	var events int
	if err := db.Get(&events, "SELECT COUNT(*) FROM payment_events WHERE applied"); err != nil || events != 2*nPayments {
		t.Fatalf("%d applied events (%v), want %d", events, err, 2*nPayments)
	}
	checkOrder(t, l, "O00000", 150, ledger.OrderCompleted) // P00000, P01201, P02402
	checkOrder(t, l, "O01200", 100, ledger.OrderCompleted) // P01200, P02401
}

// TestConcurrentRecording: 16 goroutines record 200 payments against the
// same 10 orders at once, every payment submitted by at least two of them
// (PENDING first and settled by Settle or by a second Record, or final
// straight away), in batches of 1..20. Afterwards the orders, payments and
// audit trail must be exactly what the known final statuses imply.
func TestConcurrentRecording(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	var retries atomic.Int64
	l.OnRetry = func(int, error) { retries.Add(1) }
	const nOrders, nPayments, nWorkers = 10, 200, 16
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	type plan struct {
		id, order string
		amount    int64
		final     ledger.Status
	}
	plans := make([]plan, nPayments)
	successSum := make([]int64, nOrders)
	for i := range plans {
		p := plan{id: fmt.Sprintf("P%03d", i), order: fmt.Sprintf("O%02d", i%nOrders), amount: 100 + rng.Int64N(900)}
		switch x := rng.IntN(10); {
		case x < 4:
			p.final = ledger.StatusSuccess
			successSum[i%nOrders] += p.amount
		case x < 7:
			p.final = ledger.StatusFailed
		default:
			p.final = ledger.StatusPending
		}
		plans[i] = p
	}
	// Exactly covered, one short, and overpaid orders.
	orderAmount := make([]int64, nOrders)
	for o := range nOrders {
		switch {
		case successSum[o] == 0:
			orderAmount[o] = 1000
		case o%3 == 0:
			orderAmount[o] = successSum[o]
		case o%3 == 1:
			orderAmount[o] = successSum[o] + 1
		default:
			orderAmount[o] = max(successSum[o]-150, 1)
		}
		insertOrder(t, db, fmt.Sprintf("O%02d", o), orderAmount[o], "USD")
	}
	row := func(pi int, status ledger.Status) ledger.Payment {
		p := plans[pi]
		out := pay(p.id, p.order, p.amount, status)
		if status.Terminal() {
			out.GatewayRef = "GW-" + p.id
		}
		if status == ledger.StatusFailed {
			out.FailureReason = "DECLINED"
		}
		return out
	}

	// Hand out the submissions.
	type item struct {
		pi     int
		status ledger.Status
		settle bool // call Settle once this PENDING record is done
	}
	work := make([][]item, nWorkers)
	for pi, p := range plans {
		w := rng.Perm(nWorkers)
		P, F := ledger.StatusPending, p.final
		if F == P {
			for _, wi := range w[:2+rng.IntN(2)] {
				work[wi] = append(work[wi], item{pi: pi, status: P})
			}
			continue
		}
		switch rng.IntN(4) {
		case 0: // PENDING, then the final row from another source
			work[w[0]] = append(work[w[0]], item{pi: pi, status: P})
			work[w[1]] = append(work[w[1]], item{pi: pi, status: F})
		case 1: // PENDING then a gateway callback, plus a repeat
			work[w[0]] = append(work[w[0]], item{pi: pi, status: P, settle: true})
			work[w[1]] = append(work[w[1]], item{pi: pi, status: P})
			if rng.IntN(2) == 0 {
				work[w[2]] = append(work[w[2]], item{pi: pi, status: F})
			}
		case 2: // final straight away, twice
			work[w[0]] = append(work[w[0]], item{pi: pi, status: F})
			work[w[1]] = append(work[w[1]], item{pi: pi, status: F})
		case 3: // one goroutine sends both rows, another settles
			work[w[0]] = append(work[w[0]], item{pi: pi, status: P}, item{pi: pi, status: F})
			work[w[1]] = append(work[w[1]], item{pi: pi, status: P, settle: true})
		}
	}

	type tally struct {
		inserted, settled, badTransition int
		insertedAs                       ledger.Status
	}
	var mu sync.Mutex
	tallies := make([]tally, nPayments)
	var calls atomic.Int64
	note := func(pi int, submitted ledger.Status, r ledger.Result, viaSettle bool) {
		p := plans[pi]
		ok := false
		switch {
		case viaSettle:
			ok = (r.Outcome == ledger.Settled || r.Outcome == ledger.Unchanged) && r.Status == p.final
		case submitted == ledger.StatusPending:
			ok = (r.Outcome == ledger.Inserted && r.Status == submitted) ||
				(r.Outcome == ledger.Unchanged && r.Status == submitted) ||
				(r.Outcome == ledger.Rejected && r.Code == ledger.CodeBadTransition && p.final.Terminal() && r.Status == p.final)
		default:
			ok = (r.Outcome == ledger.Inserted || r.Outcome == ledger.Settled || r.Outcome == ledger.Unchanged) && r.Status == p.final
		}
		if !ok {
			t.Errorf("%s (final %s) submitted %s (settle=%v): unexpected %v %s %s: %s",
				p.id, p.final, submitted, viaSettle, r.Outcome, r.Status, r.Code, r.Message)
		}
		mu.Lock()
		defer mu.Unlock()
		tl := &tallies[pi]
		switch {
		case r.Outcome == ledger.Inserted:
			tl.inserted++
			tl.insertedAs = r.Status
		case r.Outcome == ledger.Settled:
			tl.settled++
		case r.Code == ledger.CodeBadTransition:
			tl.badTransition++
		}
	}

	start := time.Now()
	var wg sync.WaitGroup
	for wi := range nWorkers {
		items := work[wi]
		wrng := rand.New(rand.NewPCG(seed, uint64(wi)+100))
		wrng.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
		src := []ledger.Source{ledger.SourceImport, ledger.SourceAPI}[wi%2]
		wg.Go(func() {
			for b := 0; len(items) > 0; b++ {
				n := min(1+wrng.IntN(20), len(items))
				batch := items[:n]
				items = items[n:]
				payments := make([]ledger.Payment, n)
				for i, it := range batch {
					payments[i] = row(it.pi, it.status)
				}
				calls.Add(1)
				res, err := l.Record(ctx, src, fmt.Sprintf("w%d#%d", wi, b), payments)
				if err != nil {
					t.Errorf("worker %d: Record: %v", wi, err)
					return
				}
				for i, it := range batch {
					note(it.pi, it.status, res[i], false)
				}
				for _, it := range batch {
					if !it.settle {
						continue
					}
					final := row(it.pi, plans[it.pi].final)
					calls.Add(1)
					r, err := l.Settle(ctx, ledger.SourceGateway, "cb-"+final.PaymentID, ledger.Settlement{
						PaymentID: final.PaymentID, Status: final.Status, Amount: final.Amount,
						GatewayRef: final.GatewayRef, FailureReason: final.FailureReason,
					})
					if err != nil {
						t.Errorf("worker %d: Settle: %v", wi, err)
						return
					}
					note(it.pi, final.Status, r, true)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d calls by %d goroutines in %v, %d transaction retries", calls.Load(), nWorkers, time.Since(start), retries.Load())

	// Orders: exact sums and statuses.
	for o := range nOrders {
		status := ledger.OrderPending
		if successSum[o] >= orderAmount[o] {
			status = ledger.OrderCompleted
		}
		checkOrder(t, l, fmt.Sprintf("O%02d", o), successSum[o], status)
	}

	// Payments: each once, with its final status.
	var rows []struct {
		ID     string `db:"payment_id"`
		Order  string `db:"order_id"`
		Amount int64  `db:"payment_amount"`
		Status string `db:"payment_status"`
	}
	if err := db.Select(&rows, "SELECT payment_id, order_id, payment_amount, payment_status FROM payments ORDER BY payment_id"); err != nil {
		t.Fatal(err)
	}
	if len(rows) != nPayments {
		t.Fatalf("%d payment rows, want %d", len(rows), nPayments)
	}
	for i, r := range rows {
		p := plans[i]
		if r.ID != p.id || r.Order != p.order || r.Amount != p.amount || ledger.Status(r.Status) != p.final {
			t.Errorf("payment row %+v, want %+v", r, p)
		}
	}

	// Results and the audit trail: one insert per payment, one settlement
	// exactly when it was inserted PENDING and ended terminal, one applied
	// event per applied change and one refused event per BAD_TRANSITION.
	var evs []struct {
		ID      string `db:"payment_id"`
		Applied int    `db:"applied"`
		Refused int    `db:"refused"`
	}
	if err := db.Select(&evs, "SELECT payment_id, SUM(applied) AS applied, SUM(NOT applied) AS refused FROM payment_events GROUP BY payment_id ORDER BY payment_id"); err != nil {
		t.Fatal(err)
	}
	if len(evs) != nPayments {
		t.Fatalf("events for %d payments, want %d", len(evs), nPayments)
	}
	var applied, refused int
	for i, tl := range tallies {
		p := plans[i]
		wantSettled := 0
		if tl.insertedAs == ledger.StatusPending && p.final.Terminal() {
			wantSettled = 1
		}
		if tl.inserted != 1 || tl.settled != wantSettled {
			t.Errorf("%s: inserted %d times (as %s), settled %d times, want 1 and %d", p.id, tl.inserted, tl.insertedAs, tl.settled, wantSettled)
		}
		if e := evs[i]; e.ID != p.id || e.Applied != tl.inserted+tl.settled || e.Refused != tl.badTransition {
			t.Errorf("%s: events %+v, want applied %d refused %d", p.id, e, tl.inserted+tl.settled, tl.badTransition)
		}
		applied += tl.inserted + tl.settled
		refused += tl.badTransition
	}
	var total struct {
		Applied int `db:"applied"`
		Refused int `db:"refused"`
	}
	if err := db.Get(&total, "SELECT COALESCE(SUM(applied),0) AS applied, COALESCE(SUM(NOT applied),0) AS refused FROM payment_events"); err != nil {
		t.Fatal(err)
	}
	if total.Applied != applied || total.Refused != refused {
		t.Errorf("events applied %d refused %d, want %d and %d", total.Applied, total.Refused, applied, refused)
	}
	t.Logf("applied transitions %d, refused %d", applied, refused)
}

// TestConcurrentSameIDOtherOrders: goroutines that each hold a different
// order insert the same payment ids and gateway refs at once. Their order
// locks do not serialize them, so the losers hit duplicate keys (1062) or
// deadlocks, retry, and then see the winner's row: every id and ref is
// stored exactly once and every other submission is a DUPLICATE_CONFLICT.
func TestConcurrentSameIDOtherOrders(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	var retries atomic.Int64
	l.OnRetry = func(int, error) { retries.Add(1) }
	const nWorkers, nIDs = 8, 60
	for w := range nWorkers {
		insertOrder(t, db, fmt.Sprintf("O%d", w), 1_000_000, "USD")
	}
	var mu sync.Mutex
	inserted := map[string]int{}
	var wg sync.WaitGroup
	for w := range nWorkers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			ids := rng.Perm(nIDs)
			for len(ids) > 0 {
				n := min(1+rng.IntN(10), len(ids))
				var batch []ledger.Payment
				for _, i := range ids[:n] {
					p := pay(fmt.Sprintf("P%02d", i), fmt.Sprintf("O%d", w), 100, ledger.StatusSuccess)
					if i%2 == 0 {
						// Even: a payment id of its own per worker, but a
						// shared gateway ref.
						p.PaymentID = fmt.Sprintf("P%02d-w%d", i, w)
						p.GatewayRef = fmt.Sprintf("G%02d", i)
					}
					batch = append(batch, p)
				}
				ids = ids[n:]
				res, err := l.Record(ctx, ledger.SourceAPI, "", batch)
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
				mu.Lock()
				for i, r := range res {
					key := batch[i].PaymentID
					if batch[i].GatewayRef != "" {
						key = batch[i].GatewayRef
					}
					switch {
					case r.Outcome == ledger.Inserted:
						inserted[key]++
					case r.Outcome == ledger.Rejected && r.Code == ledger.CodeDuplicateConflict:
					default:
						t.Errorf("%s: unexpected %v %s %s", r.PaymentID, r.Outcome, r.Code, r.Message)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d transaction retries", retries.Load())
	if len(inserted) != nIDs {
		t.Errorf("%d ids/refs inserted, want %d", len(inserted), nIDs)
	}
	for k, n := range inserted {
		if n != 1 {
			t.Errorf("%s inserted %d times", k, n)
		}
	}
	var n int
	if err := db.Get(&n, "SELECT COUNT(*) FROM payments"); err != nil || n != nIDs {
		t.Fatalf("%d payment rows (%v), want %d", n, err, nIDs)
	}
	var sum int64
	for w := range nWorkers {
		st, err := l.OrderState(ctx, fmt.Sprintf("O%d", w))
		if err != nil {
			t.Fatal(err)
		}
		var want int64
		if err := db.Get(&want, "SELECT COALESCE(SUM(payment_amount),0) FROM payments WHERE order_id = ?", st.OrderID); err != nil {
			t.Fatal(err)
		}
		if st.PaidAmount != want {
			t.Errorf("order %s paid %d, payments sum %d", st.OrderID, st.PaidAmount, want)
		}
		sum += st.PaidAmount
	}
	if sum != 100*nIDs {
		t.Errorf("total paid %d, want %d", sum, 100*nIDs)
	}
}

// An IfPending settlement (an attempt timing out) changes a PENDING payment
// and leaves a settled one as it is, with no refused-transition event.
func TestSettleIfPending(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	insertOrder(t, db, "IP-O", 1000, "USD")
	if _, err := l.Record(ctx, ledger.SourceAPI, "test", []ledger.Payment{
		pay("IP-1", "IP-O", 100, ledger.StatusPending), pay("IP-2", "IP-O", 100, ledger.StatusSuccess)}); err != nil {
		t.Fatal(err)
	}
	before := events(t, db, "IP-")
	timeout := func(id string) ledger.Result {
		r, err := l.Settle(ctx, ledger.SourceAPI, "timeout", ledger.Settlement{PaymentID: id, Status: ledger.StatusFailed, FailureReason: "TIMEOUT", IfPending: true})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := timeout("IP-2"); r.Outcome != ledger.Unchanged || r.Status != ledger.StatusSuccess {
		t.Fatalf("timeout of a settled payment: %+v", r)
	}
	if got := events(t, db, "IP-"); strings.Join(got, ",") != strings.Join(before, ",") {
		t.Fatalf("events %v, want unchanged %v", got, before)
	}
	if r := timeout("IP-1"); r.Outcome != ledger.Settled || r.Status != ledger.StatusFailed {
		t.Fatalf("timeout of a pending payment: %+v", r)
	}
}
