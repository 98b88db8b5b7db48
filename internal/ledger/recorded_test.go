package ledger_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/acme/payments/internal/ledger"
)

// recorder collects what OnRecorded reports, as "source status" → count.
type recorder struct {
	mu  sync.Mutex
	got map[string]int
}

func (r *recorder) hook(src ledger.Source, status ledger.Status, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[fmt.Sprintf("%s %s", src, status)] += n
}

// take returns what was reported since the last take, sorted.
func (r *recorder) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for k, n := range r.got {
		out = append(out, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(out)
	r.got = map[string]int{}
	return fmt.Sprint(out)
}

// OnRecorded hears of every payment inserted or settled, by source and the
// status it left, once its transaction committed; rejects, repeats and
// refused transitions are not counted.
func TestOnRecorded(t *testing.T) {
	l, db := newLedger(t)
	rec := &recorder{got: map[string]int{}}
	l.OnRecorded = rec.hook
	ctx := context.Background()
	insertOrder(t, db, "O1", 100000, "USD")

	// An import batch: new SUCCESS and PENDING payments, the PENDING one
	// settled later in the same call, an unknown order and a repeat.
	res, err := l.Record(ctx, ledger.SourceImport, "import/x", []ledger.Payment{
		pay("P1", "O1", 100, ledger.StatusSuccess),
		pay("P2", "O1", 100, ledger.StatusPending),
		pay("P2", "O1", 100, ledger.StatusFailed),
		pay("P3", "NOPE", 100, ledger.StatusSuccess),
		pay("P1", "O1", 100, ledger.StatusSuccess),
	})
	if err != nil || res[3].Outcome != ledger.Rejected || res[4].Outcome != ledger.Unchanged {
		t.Fatalf("record: %+v %v", res, err)
	}
	if got := rec.take(); got != "[import FAILED=1 import PENDING=1 import SUCCESS=1]" {
		t.Errorf("Record reported %s", got)
	}

	// RecordTx reports nothing itself; its caller hands the results over
	// once committed.
	tx, err := db.BeginTxx(ctx, ledger.TxOptions())
	if err != nil {
		t.Fatal(err)
	}
	res, err = l.RecordTx(ctx, tx, ledger.SourceImport, "import/y", []ledger.Payment{pay("P4", "O1", 100, ledger.StatusSuccess)})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); got != "[]" {
		t.Errorf("RecordTx reported %s", got)
	}
	l.Recorded(ledger.SourceImport, res)
	if got := rec.take(); got != "[import SUCCESS=1]" {
		t.Errorf("Recorded reported %s", got)
	}

	// A live attempt whose gateway result was queued: the attempt (api)
	// and its settlement (gateway) in one transaction.
	if _, queued, err := l.RouteGatewayResult(ctx, ledger.GatewayResult{Gateway: "acme", PaymentID: "A1",
		Status: ledger.StatusSuccess, Amount: "1.00"}); err != nil || !queued {
		t.Fatalf("queue: %v %v", queued, err)
	}
	mustAttempt(t, l, attempt("A1", "O1", "1.00"))
	if got := rec.take(); got != "[api PENDING=1 gateway SUCCESS=1]" {
		t.Errorf("attempt draining the inbox reported %s", got)
	}
	mustAttempt(t, l, attempt("A1", "O1", "1.00"))
	mustAttempt(t, l, attempt("A9", "NOPE", "1.00"))
	if got := rec.take(); got != "[]" {
		t.Errorf("a repeated and a refused attempt reported %s", got)
	}

	// Gateway results: a settlement, its repeat, a contradiction.
	mustAttempt(t, l, attempt("A2", "O1", "1.00"))
	g := ledger.GatewayResult{OrderID: "O1", Gateway: "acme", PaymentID: "A2", Status: ledger.StatusFailed}
	for _, st := range []ledger.Status{ledger.StatusFailed, ledger.StatusFailed, ledger.StatusSuccess} {
		g.Status = st
		if _, err := l.ApplyGatewayResult(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	if got := rec.take(); got != "[api PENDING=1 gateway FAILED=1]" {
		t.Errorf("gateway results reported %s", got)
	}

	// A timeout fails a PENDING attempt (api), and leaves a settled one.
	mustAttempt(t, l, attempt("A3", "O1", "1.00"))
	for _, id := range []string{"A3", "A3", "A2"} {
		if _, err := l.TimeOut(ctx, "O1", id); err != nil {
			t.Fatal(err)
		}
	}
	if got := rec.take(); got != "[api FAILED=1 api PENDING=1]" {
		t.Errorf("timeouts reported %s", got)
	}
}
