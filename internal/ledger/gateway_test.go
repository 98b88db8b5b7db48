package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/ledger"
)

func queue(t *testing.T, l *ledger.Ledger, g ledger.GatewayResult) {
	t.Helper()
	orderID, queued, err := l.RouteGatewayResult(context.Background(), g)
	if err != nil || !queued || orderID != "" {
		t.Fatalf("route %+v: %q %v %v", g, orderID, queued, err)
	}
}

func eventLines(t *testing.T, l *ledger.Ledger, paymentID string) []string {
	t.Helper()
	var got []string
	if err := l.DB.Select(&got, `SELECT CONCAT_WS(' ', COALESCE(from_status, '-'), to_status, source, reference, applied,
		COALESCE(note, '-')) FROM payment_events WHERE payment_id = ? ORDER BY event_id`, paymentID); err != nil {
		t.Fatal(err)
	}
	return got
}

// An early result for another amount fails its attempt at once, with
// reason AMOUNT_MISMATCH and an applied event saying why, instead of
// leaving it PENDING until its timeout; no amount or detail is in the
// event.
func TestEarlyResultForAnotherAmountFailsTheAttempt(t *testing.T) {
	l, db := newLedger(t)
	insertOrder(t, db, "O1", 1000, "USD")
	queue(t, l, ledger.GatewayResult{Gateway: "acme", PaymentID: "M1", Status: ledger.StatusSuccess, Amount: "3.00", GatewayRef: "g-m1"})
	out := mustAttempt(t, l, attempt("M1", "O1", "10.00"))
	if out.Result.Outcome != ledger.Inserted || out.Result.Status != ledger.StatusFailed || fmt.Sprint(out.Settled) != "[M1]" ||
		out.Order.PaidAmount != 0 || out.Order.Status != ledger.OrderPending {
		t.Fatalf("attempt with a queued SUCCESS for 3.00: %+v", out)
	}
	var row struct {
		Status string `db:"payment_status"`
		Reason string `db:"failure_reason"`
		Ref    string `db:"gateway_ref"`
	}
	if err := db.Get(&row, "SELECT payment_status, failure_reason, gateway_ref FROM payments WHERE payment_id = 'M1'"); err != nil {
		t.Fatal(err)
	}
	if row.Status != "FAILED" || row.Reason != ledger.CodeAmountMismatch || row.Ref != "g-m1" {
		t.Errorf("payment: %+v", row)
	}
	want := "[- PENDING api api 1 - PENDING FAILED gateway gateway:acme 1 AMOUNT_MISMATCH: the gateway's early SUCCESS was for another amount]"
	if got := eventLines(t, l, "M1"); fmt.Sprint(got) != want {
		t.Errorf("events %q, want %q", got, want)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM gateway_inbox"); n != 0 {
		t.Errorf("%d results left in the inbox", n)
	}
	// The attempt again is a repeat of a settled one; the gateway's real
	// result, should it come after all, is a kept contradiction.
	if out := mustAttempt(t, l, attempt("M1", "O1", "10.00")); out.Result.Outcome != ledger.Unchanged || out.Result.Status != ledger.StatusFailed {
		t.Errorf("repeat: %+v", out)
	}
	r, err := l.ApplyGatewayResult(context.Background(), ledger.GatewayResult{OrderID: "O1", Gateway: "acme", PaymentID: "M1",
		Status: ledger.StatusSuccess, Amount: "10.00"})
	if err != nil || r.Result.Code != ledger.CodeBadTransition {
		t.Errorf("late real result: %+v %v", r, err)
	}
	checkOrder(t, l, "O1", 0, ledger.OrderPending)
}

// An attempt refused for good (its order is COMPLETED) drops the early
// result queued for it, on record; one refused for a mistake its caller
// can correct keeps it for the corrected attempt.
func TestRefusedAttemptClearsItsEarlyResult(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	insertOrder(t, db, "O1", 1000, "USD")
	mustAttempt(t, l, attempt("C0", "O1", "10.00"))
	if r, err := l.ApplyGatewayResult(ctx, ledger.GatewayResult{OrderID: "O1", Gateway: "acme", PaymentID: "C0", Status: ledger.StatusSuccess}); err != nil || r.Order.Status != ledger.OrderCompleted {
		t.Fatalf("completing result: %+v %v", r, err)
	}
	queue(t, l, ledger.GatewayResult{Gateway: "acme", PaymentID: "C1", Status: ledger.StatusSuccess, Amount: "1.00", GatewayRef: "g-c1"})
	if out := mustAttempt(t, l, attempt("C1", "O1", "1.00")); out.Result.Code != ledger.CodeOrderCompleted {
		t.Fatalf("attempt on a COMPLETED order: %+v", out)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM gateway_inbox WHERE payment_id = 'C1'"); n != 0 {
		t.Errorf("the refused attempt left %d results in the inbox", n)
	}
	want := "[- SUCCESS gateway gateway:acme 0 refused: the attempt was refused (ORDER_COMPLETED), so its early gateway result is dropped]"
	if got := eventLines(t, l, "C1"); fmt.Sprint(got) != want {
		t.Errorf("events %q, want %q", got, want)
	}

	insertOrder(t, db, "O2", 1000, "USD")
	queue(t, l, ledger.GatewayResult{Gateway: "acme", PaymentID: "C2", Status: ledger.StatusSuccess, Amount: "4.00"})
	bad := attempt("C2", "O2", "4.00")
	bad.Method = "CHEQUE"
	if out := mustAttempt(t, l, bad); out.Result.Code != ledger.CodeBadMethod {
		t.Fatalf("bad attempt: %+v", out)
	}
	if out := mustAttempt(t, l, attempt("C2", "O2", "4.00")); out.Result.Status != ledger.StatusSuccess {
		t.Errorf("corrected attempt: %+v", out)
	}
	checkOrder(t, l, "O2", 400, ledger.OrderPending)
}

// Results whose attempt never came are swept once older than the
// retention, a few by each result queued; younger ones stay.
func TestInboxSweepsExpiredResults(t *testing.T) {
	db := dbtest.New(t)
	var clock atomic.Int64
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock.Store(start.UnixNano())
	l := &ledger.Ledger{DB: db, Keys: testKeys(t), InboxRetention: time.Hour,
		Now: func() time.Time { return time.Unix(0, clock.Load()).UTC() }}
	for i := range 12 {
		queue(t, l, ledger.GatewayResult{Gateway: "acme", PaymentID: fmt.Sprintf("S%02d", i), Status: ledger.StatusFailed})
	}
	clock.Store(start.Add(59 * time.Minute).UnixNano())
	queue(t, l, ledger.GatewayResult{Gateway: "acme", PaymentID: "Y1", Status: ledger.StatusFailed})
	if n := count(t, db, "SELECT COUNT(*) FROM gateway_inbox"); n != 13 {
		t.Fatalf("%d results in the inbox before any expired, want 13", n)
	}
	clock.Store(start.Add(61 * time.Minute).UnixNano())
	queue(t, l, ledger.GatewayResult{Gateway: "acme", PaymentID: "Y2", Status: ledger.StatusFailed})
	queue(t, l, ledger.GatewayResult{Gateway: "acme", PaymentID: "Y3", Status: ledger.StatusFailed})
	var left []string
	if err := db.Select(&left, "SELECT payment_id FROM gateway_inbox ORDER BY payment_id"); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(left) != "[Y1 Y2 Y3]" {
		t.Errorf("inbox after the sweeps: %v, want the three younger than an hour", left)
	}
}

// An attempt is tied to its gateway: another configured gateway's result
// is refused at once and records nothing, early or on time another
// gateway's result never settles it, and its own does.
func TestAttemptIsTiedToItsGateway(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	insertOrder(t, db, "O1", 1000, "USD")
	a := attempt("G1", "O1", "4.00")
	a.Gateway = "acme"
	if out := mustAttempt(t, l, a); out.Result.Outcome != ledger.Inserted {
		t.Fatalf("attempt: %+v", out)
	}
	var gw string
	if err := db.Get(&gw, "SELECT gateway FROM payments WHERE payment_id = 'G1'"); err != nil || gw != "acme" {
		t.Fatalf("stored gateway %q %v", gw, err)
	}
	events0 := count(t, db, "SELECT COUNT(*) FROM payment_events")
	other := ledger.GatewayResult{Gateway: "rival", PaymentID: "G1", Status: ledger.StatusSuccess, Amount: "4.00"}
	if _, _, err := l.RouteGatewayResult(ctx, other); !errors.Is(err, ledger.ErrWrongGateway) {
		t.Fatalf("route from another gateway: %v, want ErrWrongGateway", err)
	}
	other.OrderID = "O1"
	if r, err := l.ApplyGatewayResult(ctx, other); err != nil || r.Result.Code != ledger.CodeWrongGateway || len(r.Settled) != 0 {
		t.Fatalf("apply from another gateway: %+v %v", r, err)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM payment_events"); n != events0 {
		t.Errorf("another gateway's result added %d events", n-events0)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM gateway_inbox"); n != 0 {
		t.Errorf("another gateway's result was queued")
	}
	// The same attempt again: without a gateway a repeat, with another a
	// conflict.
	same := a
	same.Gateway = ""
	if out := mustAttempt(t, l, same); out.Result.Outcome != ledger.Unchanged {
		t.Errorf("repeat naming no gateway: %+v", out)
	}
	same.Gateway = "rival"
	if out := mustAttempt(t, l, same); out.Result.Code != ledger.CodeDuplicateConflict || !strings.Contains(out.Result.Message, "gateway") {
		t.Errorf("repeat naming another gateway: %+v", out)
	}
	own := ledger.GatewayResult{Gateway: "acme", PaymentID: "G1", Status: ledger.StatusSuccess, Amount: "4.00"}
	orderID, queued, err := l.RouteGatewayResult(ctx, own)
	if err != nil || queued || orderID != "O1" {
		t.Fatalf("route from its gateway: %q %v %v", orderID, queued, err)
	}
	own.OrderID = orderID
	if r, err := l.ApplyGatewayResult(ctx, own); err != nil || r.Result.Outcome != ledger.Settled {
		t.Fatalf("apply from its gateway: %+v %v", r, err)
	}

	// Early: a rival's result queued first takes no other's place, and is
	// refused on record when the attempt comes.
	queue(t, l, ledger.GatewayResult{Gateway: "rival", PaymentID: "G2", Status: ledger.StatusFailed, Amount: "2.00"})
	queue(t, l, ledger.GatewayResult{Gateway: "acme", PaymentID: "G2", Status: ledger.StatusSuccess, Amount: "2.00"})
	if n := count(t, db, "SELECT COUNT(*) FROM gateway_inbox WHERE payment_id = 'G2'"); n != 2 {
		t.Fatalf("%d queued results for G2, want one per gateway", n)
	}
	a2 := attempt("G2", "O1", "2.00")
	a2.Gateway = "acme"
	if out := mustAttempt(t, l, a2); out.Result.Status != ledger.StatusSuccess || out.Order.PaidAmount != 600 {
		t.Fatalf("attempt with a rival's and its own early results: %+v", out)
	}
	want := "[- PENDING api api 1 - PENDING FAILED gateway gateway:rival 0 refused: WRONG_GATEWAY, the payment was sent to another gateway" +
		" PENDING SUCCESS gateway gateway:acme 1 -]"
	if got := eventLines(t, l, "G2"); fmt.Sprint(got) != want {
		t.Errorf("G2 events %q, want %q", got, want)
	}
	// Only a rival answered early: the attempt waits for its own.
	queue(t, l, ledger.GatewayResult{Gateway: "rival", PaymentID: "G3", Status: ledger.StatusSuccess, Amount: "1.00"})
	a3 := attempt("G3", "O1", "1.00")
	a3.Gateway = "acme"
	if out := mustAttempt(t, l, a3); out.Result.Status != ledger.StatusPending || len(out.Settled) != 0 {
		t.Errorf("attempt with only a rival's early result: %+v", out)
	}
	// An attempt that names no gateway (imported, or from before) is
	// settled by any.
	mustAttempt(t, l, attempt("G4", "O1", "1.00"))
	if r, err := l.ApplyGatewayResult(ctx, ledger.GatewayResult{OrderID: "O1", Gateway: "rival", PaymentID: "G4", Status: ledger.StatusSuccess}); err != nil || r.Result.Outcome != ledger.Settled {
		t.Errorf("unbound attempt: %+v %v", r, err)
	}
	checkOrder(t, l, "O1", 700, ledger.OrderPending)
	long := attempt("G5", "O1", "1.00")
	long.Gateway = strings.Repeat("g", 65)
	if out := mustAttempt(t, l, long); out.Result.Code != ledger.CodeMalformed {
		t.Errorf("attempt naming a 65-byte gateway: %+v", out)
	}
}

// A SUCCESS that would take an order's paid_amount past int64 is refused
// at once as AMOUNT_OVERFLOW, a business answer and not an error (which
// the workflow would retry), and changes nothing; the same holds for an
// import row.
func TestPaidAmountOverflowIsRefused(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	insertOrder(t, db, "BIG", math.MaxInt64, "USD")
	const half = "50000000000000000.00" // 5e18 minor units: two do not fit
	mustAttempt(t, l, attempt("V1", "BIG", half))
	mustAttempt(t, l, attempt("V2", "BIG", half))
	settle := func(id string) (ledger.AttemptResult, error) {
		return l.ApplyGatewayResult(ctx, ledger.GatewayResult{OrderID: "BIG", Gateway: "acme", PaymentID: id,
			Status: ledger.StatusSuccess, Amount: half})
	}
	if r, err := settle("V1"); err != nil || r.Result.Outcome != ledger.Settled {
		t.Fatalf("first half: %+v %v", r, err)
	}
	r, err := settle("V2")
	if err != nil {
		t.Fatalf("second half: %v, want a refusal, not an error", err)
	}
	if r.Result.Outcome != ledger.Rejected || r.Result.Code != ledger.CodeAmountOverflow || r.Result.Status != ledger.StatusPending ||
		r.Order.PaidAmount != 5e18 || len(r.Settled) != 0 {
		t.Errorf("second half: %+v", r)
	}
	checkOrder(t, l, "BIG", 5e18, ledger.OrderPending)
	if n := count(t, db, "SELECT COUNT(*) FROM payment_events WHERE payment_id = 'V2'"); n != 1 {
		t.Errorf("%d events for V2, want only its attempt's", n)
	}

	// An import batch: the row that would overflow is rejected, the rest
	// stored, on both write paths.
	for _, bulk := range []bool{false, true} {
		if bulk {
			defer ledger.SetBulkMinRows(1)()
		}
		prefix := fmt.Sprintf("I%v", bulk)
		results, err := l.Record(ctx, ledger.SourceImport, "import:test", []ledger.Payment{
			pay(prefix+"a", "BIG", 4e18, ledger.StatusSuccess),
			pay(prefix+"b", "BIG", 4e18, ledger.StatusSuccess),
			pay(prefix+"c", "BIG", 4e18, ledger.StatusPending),
		})
		if err != nil {
			t.Fatalf("bulk %v: %v", bulk, err)
		}
		got := fmt.Sprintf("%v %s %v %s %v", results[0].Outcome, results[1].Code, results[1].Outcome, results[2].Status, results[2].Outcome)
		wantA := "Inserted AMOUNT_OVERFLOW Rejected PENDING Inserted"
		if bulk {
			// The first batch's first row took the room left.
			wantA = "Rejected AMOUNT_OVERFLOW Rejected PENDING Inserted"
		}
		if got != wantA {
			t.Errorf("bulk %v: %s, want %s (%+v)", bulk, got, wantA, results)
		}
	}
	checkOrder(t, l, "BIG", 9e18, ledger.OrderPending)
}
