package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/ledger"
)

func attempt(id, order, amount string) ledger.Attempt {
	return ledger.Attempt{PaymentID: id, OrderID: order, Amount: amount, Method: "CARD", Details: "4111 1111 1111 " + id}
}

func mustAttempt(t *testing.T, l *ledger.Ledger, a ledger.Attempt) ledger.AttemptResult {
	t.Helper()
	out, err := l.Attempt(context.Background(), a)
	if err != nil {
		t.Fatalf("attempt %s: %v", a.PaymentID, err)
	}
	return out
}

func count(t *testing.T, db *sqlx.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Get(&n, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// An attempt is judged under its order's lock, its amount read in the
// order's currency, and answered with the order as it left it.
func TestAttempt(t *testing.T) {
	l, db := newLedger(t)
	insertOrder(t, db, "O1", 1000, "USD")
	insertOrder(t, db, "J1", 500, "JPY")

	for _, tc := range []struct {
		name string
		a    ledger.Attempt
		want res
	}{
		{"new", attempt("P1", "O1", "4.00"), res{outcome: ledger.Inserted}},
		{"repeat", attempt("P1", "O1", "4.00"), res{outcome: ledger.Unchanged}},
		{"same id, other amount", attempt("P1", "O1", "4.01"), rej(ledger.CodeDuplicateConflict)},
		{"unknown order", attempt("P2", "NOPE", "1.00"), rej(ledger.CodeOrderNotFound)},
		{"too many fraction digits", attempt("P3", "O1", "1.001"), rej(ledger.CodeBadAmount)},
		{"yen has no minor unit", attempt("P4", "J1", "1.5"), rej(ledger.CodeBadAmount)},
		{"empty amount", attempt("P5", "O1", ""), rej(ledger.CodeBadAmount)},
		{"other currency", with2(attempt("P6", "O1", "1.00"), func(a *ledger.Attempt) { a.Currency = "EUR" }), rej(ledger.CodeCurrencyMismatch)},
		{"unknown currency", with2(attempt("P7", "O1", "1.00"), func(a *ledger.Attempt) { a.Currency = "XXY" }), rej(ledger.CodeBadCurrency)},
		{"bad method", with2(attempt("P8", "O1", "1.00"), func(a *ledger.Attempt) { a.Method = "CHEQUE" }), rej(ledger.CodeBadMethod)},
		{"id with a space", attempt("P 9", "O1", "1.00"), rej(ledger.CodeMalformed)},
		{"yen", attempt("P10", "J1", "120"), res{outcome: ledger.Inserted}},
	} {
		out := mustAttempt(t, l, tc.a)
		if out.Result.Outcome != tc.want.outcome || out.Result.Code != tc.want.code {
			t.Errorf("%s: %+v, want %+v", tc.name, out.Result, tc.want)
		}
		if tc.want.outcome == ledger.Inserted && (out.Result.Status != ledger.StatusPending || out.Order.OrderID != tc.a.OrderID) {
			t.Errorf("%s: %+v", tc.name, out)
		}
	}
	if n := count(t, db, "SELECT COUNT(*) FROM payments"); n != 2 {
		t.Errorf("%d payments stored, want 2", n)
	}
	if n := count(t, db, "SELECT payment_amount FROM payments WHERE payment_id = 'P10'"); n != 120 {
		t.Errorf("yen attempt stored as %d minor units", n)
	}

	// Settled since, the same attempt is still a repeat; a new one on the
	// COMPLETED order is refused.
	if r, err := l.Settle(context.Background(), ledger.SourceGateway, "gateway:acme", ledger.Settlement{PaymentID: "P1", Status: ledger.StatusSuccess}); err != nil || r.Outcome != ledger.Settled {
		t.Fatalf("settle: %+v %v", r, err)
	}
	if out := mustAttempt(t, l, attempt("P11", "O1", "6.00")); out.Result.Outcome != ledger.Inserted {
		t.Fatalf("completing attempt: %+v", out)
	}
	out, err := l.ApplyGatewayResult(context.Background(), ledger.GatewayResult{OrderID: "O1", Gateway: "acme", PaymentID: "P11", Status: ledger.StatusSuccess, Amount: "6.00"})
	if err != nil || out.Result.Outcome != ledger.Settled || out.Order.Status != ledger.OrderCompleted || out.Order.PaidAmount != 1000 {
		t.Fatalf("completing result: %+v %v", out, err)
	}
	if out := mustAttempt(t, l, attempt("P1", "O1", "4.00")); out.Result.Outcome != ledger.Unchanged || out.Result.Status != ledger.StatusSuccess {
		t.Errorf("repeat after settling: %+v", out)
	}
	if out := mustAttempt(t, l, attempt("P12", "O1", "1.00")); out.Result.Code != ledger.CodeOrderCompleted || out.Order.Status != ledger.OrderCompleted {
		t.Errorf("new attempt on a COMPLETED order: %+v", out)
	}
}

func with2(a ledger.Attempt, f func(*ledger.Attempt)) ledger.Attempt {
	f(&a)
	return a
}

// A gateway's amount is read in the payment's own currency; one that is
// not an amount of it, or differs from the stored one, settles nothing.
func TestApplyGatewayResult(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	insertOrder(t, db, "K1", 10_000, "KWD")
	mustAttempt(t, l, attempt("P1", "K1", "1.250"))
	for _, tc := range []struct {
		g    ledger.GatewayResult
		want res
	}{
		{ledger.GatewayResult{Amount: "1.2500"}, rej(ledger.CodeBadAmount)},
		{ledger.GatewayResult{Amount: "1.25x"}, rej(ledger.CodeBadAmount)},
		{ledger.GatewayResult{Amount: "1.251"}, rej(ledger.CodeDuplicateConflict)},
		{ledger.GatewayResult{Amount: "1.25", GatewayRef: "r1"}, res{outcome: ledger.Settled}},
		{ledger.GatewayResult{}, res{outcome: ledger.Unchanged}},
		{ledger.GatewayResult{Status: ledger.StatusFailed}, rej(ledger.CodeBadTransition)},
		{ledger.GatewayResult{PaymentID: "NOPE"}, rej(ledger.CodePaymentNotFound)},
	} {
		g := tc.g
		g.OrderID, g.Gateway = "K1", "acme"
		if g.PaymentID == "" {
			g.PaymentID = "P1"
		}
		if g.Status == "" {
			g.Status = ledger.StatusSuccess
		}
		out, err := l.ApplyGatewayResult(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		if out.Result.Outcome != tc.want.outcome || out.Result.Code != tc.want.code {
			t.Errorf("%+v: %+v, want %+v", g, out.Result, tc.want)
		}
	}
	checkOrder(t, l, "K1", 1250, ledger.OrderPending)
	// Amounts that are not amounts of the currency leave no audit event
	// (answered 400, the gateway may send them again); the other amount
	// and the contradiction leave one each.
	var got []string
	if err := db.Select(&got, `SELECT CONCAT_WS(' ', from_status, to_status, note) FROM payment_events
		WHERE payment_id = 'P1' AND NOT applied ORDER BY event_id`); err != nil {
		t.Fatal(err)
	}
	want := "[PENDING SUCCESS refused: AMOUNT_MISMATCH, the gateway's amount differs from the payment's SUCCESS FAILED refused: payment is already SUCCESS]"
	if fmt.Sprint(got) != want {
		t.Errorf("refused events %q, want %q", got, want)
	}
}

// A gateway result that came before its attempt is applied by the
// attempt's own transaction and cleared; one whose amount is not the
// payment's fails the attempt with AMOUNT_MISMATCH (its gateway, answered
// 202, will not send another), on record.
func TestAttemptDrainsTheInbox(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	insertOrder(t, db, "O1", 1000, "USD")
	queue := func(g ledger.GatewayResult) {
		t.Helper()
		g.Gateway = "acme"
		orderID, queued, err := l.RouteGatewayResult(ctx, g)
		if err != nil || !queued || orderID != "" {
			t.Fatalf("route %+v: %q %v %v", g, orderID, queued, err)
		}
	}
	queue(ledger.GatewayResult{PaymentID: "E1", Status: ledger.StatusSuccess, Amount: "4.00", GatewayRef: "g-e1"})
	queue(ledger.GatewayResult{PaymentID: "E1", Status: ledger.StatusFailed}) // a repeat keeps the first
	queue(ledger.GatewayResult{PaymentID: "E2", Status: ledger.StatusSuccess, Amount: "3.00"})
	queue(ledger.GatewayResult{PaymentID: "E3", Status: ledger.StatusSuccess, Amount: "1.001"})
	queue(ledger.GatewayResult{PaymentID: "E4", Status: ledger.StatusFailed, FailureReason: "DECLINED"})
	if n := count(t, db, "SELECT COUNT(*) FROM gateway_inbox"); n != 4 {
		t.Fatalf("%d queued results, want 4", n)
	}

	out := mustAttempt(t, l, attempt("E1", "O1", "4.00"))
	if out.Result.Outcome != ledger.Inserted || out.Result.Status != ledger.StatusSuccess || len(out.Settled) != 1 ||
		out.Order.PaidAmount != 400 || out.Order.Status != ledger.OrderPending {
		t.Errorf("attempt with a queued SUCCESS: %+v", out)
	}
	for _, id := range []string{"E2", "E3"} {
		if out := mustAttempt(t, l, attempt(id, "O1", "10.00")); out.Result.Status != ledger.StatusFailed || fmt.Sprint(out.Settled) != "["+id+"]" {
			t.Errorf("attempt %s with a queued result for another amount: %+v", id, out)
		}
		var reason string
		if err := db.Get(&reason, "SELECT failure_reason FROM payments WHERE payment_id = ?", id); err != nil || reason != ledger.CodeAmountMismatch {
			t.Errorf("%s failure_reason %q %v", id, reason, err)
		}
	}
	if out := mustAttempt(t, l, attempt("E4", "O1", "1.00")); out.Result.Status != ledger.StatusFailed {
		t.Errorf("attempt with a queued FAILED: %+v", out)
	}
	checkOrder(t, l, "O1", 400, ledger.OrderPending)
	if n := count(t, db, "SELECT COUNT(*) FROM gateway_inbox"); n != 0 {
		t.Errorf("%d results left in the inbox", n)
	}
	var got []string
	if err := db.Select(&got, `SELECT CONCAT_WS(' ', COALESCE(from_status, '-'), to_status, source, reference, applied)
		FROM payment_events WHERE payment_id = 'E1' ORDER BY event_id`); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[- PENDING api api 1 PENDING SUCCESS gateway gateway:acme 1]" {
		t.Errorf("E1 events: %q", got)
	}
	var ref string
	if err := db.Get(&ref, "SELECT gateway_ref FROM payments WHERE payment_id = 'E1'"); err != nil || ref != "g-e1" {
		t.Errorf("E1 gateway_ref %q %v", ref, err)
	}
}

// An attempt and the early result of its gateway racing each other: the
// result is either queued and applied by the attempt, or routed to the
// payment's order and applied there, never left behind by both.
func TestInboxRaceLosesNoResult(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	const n = 60
	for i := range n {
		insertOrder(t, db, fmt.Sprintf("R%02d", i), 1000, "USD")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		order, id := fmt.Sprintf("R%02d", i), fmt.Sprintf("RP%02d", i)
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := l.Attempt(ctx, attempt(id, order, "10.00")); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			g := ledger.GatewayResult{Gateway: "acme", PaymentID: id, Status: ledger.StatusSuccess, Amount: "10.00"}
			orderID, queued, err := l.RouteGatewayResult(ctx, g)
			if err != nil {
				errs <- err
				return
			}
			if !queued {
				g.OrderID = orderID
				if _, err := l.ApplyGatewayResult(ctx, g); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := count(t, db, "SELECT COUNT(*) FROM payments WHERE payment_status = 'SUCCESS'"); got != n {
		t.Errorf("%d of %d payments settled", got, n)
	}
	if got := count(t, db, "SELECT COUNT(*) FROM orders WHERE order_status = 'COMPLETED' AND paid_amount = 1000"); got != n {
		t.Errorf("%d of %d orders completed", got, n)
	}
	if got := count(t, db, "SELECT COUNT(*) FROM gateway_inbox"); got != 0 {
		t.Errorf("%d results left in the inbox", got)
	}
}

// A timeout fails only an attempt still PENDING and reports it settled
// either way; Refresh reports attempts settled behind the workflow's back.
func TestTimeOutAndRefresh(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	insertOrder(t, db, "O1", 1000, "USD")
	mustAttempt(t, l, attempt("T1", "O1", "4.00"))
	mustAttempt(t, l, attempt("T2", "O1", "6.00"))
	mustAttempt(t, l, attempt("T3", "O1", "1.00"))
	if _, err := l.ApplyGatewayResult(ctx, ledger.GatewayResult{OrderID: "O1", Gateway: "acme", PaymentID: "T2", Status: ledger.StatusSuccess}); err != nil {
		t.Fatal(err)
	}
	out, err := l.Refresh(ctx, "O1", []string{"T1", "T2", "T3", "GONE"})
	if err != nil || fmt.Sprint(out.Settled) != "[T2 GONE]" || out.Order.PaidAmount != 600 {
		t.Fatalf("refresh: %+v %v", out, err)
	}
	out, err = l.TimeOut(ctx, "O1", "T1")
	if err != nil || out.Result.Outcome != ledger.Settled || out.Result.Status != ledger.StatusFailed || fmt.Sprint(out.Settled) != "[T1]" {
		t.Fatalf("timeout of a PENDING attempt: %+v %v", out, err)
	}
	out, err = l.TimeOut(ctx, "O1", "T2")
	if err != nil || out.Result.Outcome != ledger.Unchanged || out.Result.Status != ledger.StatusSuccess || fmt.Sprint(out.Settled) != "[T2]" {
		t.Fatalf("timeout of a settled attempt: %+v %v", out, err)
	}
	var reason string
	if err := db.Get(&reason, "SELECT failure_reason FROM payments WHERE payment_id = 'T1'"); err != nil || reason != "TIMEOUT" {
		t.Errorf("T1 failure_reason %q %v", reason, err)
	}
	if out, err := l.Refresh(ctx, "NOPE", nil); err != nil || out.Order.OrderID != "" {
		t.Errorf("refresh of an unknown order: %+v %v", out, err)
	}
	if id, err := l.PaymentOrder(ctx, "T2"); err != nil || id != "O1" {
		t.Errorf("PaymentOrder(T2) = %q, %v", id, err)
	}
	if _, err := l.PaymentOrder(ctx, "NOPE"); !errors.Is(err, ledger.ErrPaymentNotFound) {
		t.Errorf("PaymentOrder(unknown): %v, want ErrPaymentNotFound", err)
	}
}

// The narrow case of the race above, held open: the attempt has written
// its payment and found the inbox empty, and the early result is queued
// before the attempt commits. The callback's second look must wait for the
// commit and route the result to the order instead of leaving it queued.
func TestInboxRaceHeldOpen(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	insertOrder(t, db, "O1", 1000, "USD")
	peeked, release := make(chan struct{}), make(chan struct{})
	defer ledger.SetAfterInboxPeek(func() {
		close(peeked)
		<-release
	})()
	attemptDone := make(chan error, 1)
	go func() {
		_, err := l.Attempt(ctx, attempt("H1", "O1", "10.00"))
		attemptDone <- err
	}()
	<-peeked
	type routed struct {
		orderID string
		queued  bool
		err     error
	}
	routeDone := make(chan routed, 1)
	go func() {
		orderID, queued, err := l.RouteGatewayResult(ctx, ledger.GatewayResult{Gateway: "acme", PaymentID: "H1", Status: ledger.StatusSuccess})
		routeDone <- routed{orderID, queued, err}
	}()
	// Once the result is queued, give its second look time to run (or to
	// block on the attempt's uncommitted payment), then let the attempt
	// commit.
	for count(t, db, "SELECT COUNT(*) FROM gateway_inbox") == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	close(release)
	if err := <-attemptDone; err != nil {
		t.Fatal(err)
	}
	r := <-routeDone
	if r.err != nil || r.queued || r.orderID != "O1" {
		t.Fatalf("route: %+v, want the order O1 to apply the result to", r)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM gateway_inbox"); n != 0 {
		t.Errorf("%d results left in the inbox", n)
	}
}

// The gateway-result update of runs from before GatewayResult still names
// its payment when it is decoded after a deploy.
func TestGatewayResultReadsTheFormerUpdate(t *testing.T) {
	var g ledger.GatewayResult
	old := `{"OrderID":"O1","Gateway":"acme","Settlement":{"PaymentID":"P1","Status":"SUCCESS","Amount":1230,"GatewayRef":"r1","FailureReason":"","IfPending":false}}`
	if err := json.Unmarshal([]byte(old), &g); err != nil {
		t.Fatal(err)
	}
	want := ledger.GatewayResult{OrderID: "O1", Gateway: "acme", PaymentID: "P1", Status: ledger.StatusSuccess, GatewayRef: "r1"}
	if g != want {
		t.Errorf("old update read as %+v, want %+v", g, want)
	}
	b, _ := json.Marshal(want)
	var again ledger.GatewayResult
	if err := json.Unmarshal(b, &again); err != nil || again != want {
		t.Errorf("round trip: %+v %v", again, err)
	}
}
