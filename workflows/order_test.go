package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/payments/activities"
	"github.com/acme/payments/internal/ledger"
)

// fakeLedger plays the ledger's rules for one order inside the activity
// mocks, so workflow tests check the workflow, not MySQL.
type fakeLedger struct {
	amount   int64
	statuses map[string]ledger.Status
	amounts  map[string]int64
	calls    []string
}

func newFakeLedger(amount int64) *fakeLedger {
	return &fakeLedger{amount: amount, statuses: map[string]ledger.Status{}, amounts: map[string]int64{}}
}

func (f *fakeLedger) state() ledger.OrderState {
	var paid int64
	for id, s := range f.statuses {
		if s == ledger.StatusSuccess {
			paid += f.amounts[id]
		}
	}
	st := ledger.OrderState{OrderID: "o1", Amount: f.amount, Currency: "USD", PaidAmount: paid, Status: ledger.OrderPending}
	if paid >= f.amount {
		st.Status = ledger.OrderCompleted
	}
	return st
}

// record is what the ledger does for the API before the workflow hears of
// an attempt.
func (f *fakeLedger) record(id string, amount int64) ledger.Result {
	if s, ok := f.statuses[id]; ok {
		return ledger.Result{PaymentID: id, Outcome: ledger.Unchanged, Status: s}
	}
	f.statuses[id], f.amounts[id] = ledger.StatusPending, amount
	return ledger.Result{PaymentID: id, Outcome: ledger.Inserted, Status: ledger.StatusPending}
}

func (f *fakeLedger) settle(id string, s ledger.Status) ledger.Result {
	cur, ok := f.statuses[id]
	switch {
	case !ok:
		return ledger.Result{PaymentID: id, Outcome: ledger.Rejected, Code: "PAYMENT_NOT_FOUND"}
	case cur == s:
		return ledger.Result{PaymentID: id, Outcome: ledger.Unchanged, Status: s}
	case cur.Terminal():
		return ledger.Result{PaymentID: id, Outcome: ledger.Rejected, Code: ledger.CodeBadTransition, Status: cur}
	}
	f.statuses[id] = s
	return ledger.Result{PaymentID: id, Outcome: ledger.Settled, Status: s}
}

func orderEnv(t *testing.T, f *fakeLedger) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(OrderPayment)
	env.RegisterActivity(&activities.Activities{})
	var a *activities.Activities
	env.OnActivity(a.OpenOrderWorkflow, mock.Anything, mock.Anything).Return(
		func(context.Context, string) (ledger.AttemptResult, error) {
			f.calls = append(f.calls, "open")
			return ledger.AttemptResult{Order: f.state()}, nil
		})
	env.OnActivity(a.CloseOrderWorkflow, mock.Anything, mock.Anything).Return(
		func(context.Context, string) (ledger.AttemptResult, error) {
			f.calls = append(f.calls, "close")
			return ledger.AttemptResult{Order: f.state()}, nil
		})
	env.OnActivity(a.RecordAttempt, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.AttemptInput) (ledger.AttemptResult, error) {
			f.calls = append(f.calls, "attempt "+in.Payment.PaymentID)
			return ledger.AttemptResult{Result: f.record(in.Payment.PaymentID, in.Payment.Amount), Order: f.state()}, nil
		})
	env.OnActivity(a.ApplyGatewayResult, mock.Anything, mock.Anything).Return(
		func(_ context.Context, g ledger.GatewayResult) (ledger.AttemptResult, error) {
			f.calls = append(f.calls, "gateway "+g.PaymentID+" "+string(g.Status))
			if g.OrderID != "o1" {
				t.Errorf("gateway result for order %q reached the ledger", g.OrderID)
			}
			r := f.settle(g.PaymentID, g.Status)
			var settled []string
			if r.Status.Terminal() {
				settled = []string{g.PaymentID}
			}
			return ledger.AttemptResult{Result: r, Order: f.state(), Settled: settled}, nil
		})
	env.OnActivity(a.TimeoutAttempt, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.TimeoutInput) (ledger.AttemptResult, error) {
			f.calls = append(f.calls, "timeout "+in.PaymentID)
			var r ledger.Result
			if f.statuses[in.PaymentID] == ledger.StatusPending {
				r = f.settle(in.PaymentID, ledger.StatusFailed)
			}
			return ledger.AttemptResult{Result: r, Order: f.state(), Settled: []string{in.PaymentID}}, nil
		})
	env.OnActivity(a.RefreshOrder, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RefreshInput) (ledger.AttemptResult, error) {
			f.calls = append(f.calls, "refresh")
			var settled []string
			for _, id := range in.Pending {
				if f.statuses[id] != ledger.StatusPending {
					settled = append(settled, id)
				}
			}
			return ledger.AttemptResult{Order: f.state(), Settled: settled}, nil
		})
	return env
}

// attempt records an attempt in the ledger at delay d, as the API does, and
// signals the workflow.
func attempt(env *testsuite.TestWorkflowEnvironment, f *fakeLedger, d time.Duration, id string, amount int64) {
	env.RegisterDelayedCallback(func() {
		f.record(id, amount)
		env.SignalWorkflow(SignalAttemptRecorded, AttemptRecorded{PaymentID: id})
	}, d)
}

type updateResult struct {
	res ledger.Result
	err error
}

// send runs an update at delay d and stores its outcome.
func send(env *testsuite.TestWorkflowEnvironment, d time.Duration, name string, arg any, out *updateResult) {
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(name, name+"-"+d.String(), &testsuite.TestUpdateCallback{
			OnReject: func(err error) { out.err = err },
			OnAccept: func() {},
			OnComplete: func(v any, err error) {
				out.err = err
				if r, ok := v.(ledger.Result); ok {
					out.res = r
				}
			},
		}, arg)
	}, d)
}

func gw(id string, s ledger.Status) ledger.GatewayResult {
	return ledger.GatewayResult{Gateway: "acme", PaymentID: id, Status: s}
}

func TestOrderFailedPartialAndCompletingPayments(t *testing.T) {
	f := newFakeLedger(1000)
	env := orderEnv(t, f)
	var r [4]updateResult
	attempt(env, f, 1*time.Second, "p1", 1000)
	send(env, 2*time.Second, UpdateGatewayResult, gw("p1", ledger.StatusFailed), &r[0])
	attempt(env, f, 3*time.Second, "p2", 400)
	send(env, 4*time.Second, UpdateGatewayResult, gw("p2", ledger.StatusSuccess), &r[1])
	send(env, 5*time.Second, UpdateGatewayResult, gw("p2", ledger.StatusSuccess), &r[2]) // repeated callback
	attempt(env, f, 6*time.Second, "p3", 600)
	send(env, 7*time.Second, UpdateGatewayResult, gw("p3", ledger.StatusSuccess), &r[3])
	env.ExecuteWorkflow(OrderPayment, OrderPaymentInput{OrderID: "o1", AttemptTimeout: time.Hour})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var st OrderPaymentState
	_ = env.GetWorkflowResult(&st)
	if st.OrderStatus != "COMPLETED" || st.PaidAmount != 1000 || len(st.Pending) != 0 {
		t.Fatalf("final %+v", st)
	}
	if r[0].res.Outcome != ledger.Settled || r[1].res.Outcome != ledger.Settled || r[2].res.Outcome != ledger.Unchanged || r[3].res.Status != ledger.StatusSuccess {
		t.Fatalf("results %+v", r)
	}
	if f.calls[len(f.calls)-1] != "close" || containsCall(f.calls, "timeout p1") {
		t.Fatalf("calls: %v", f.calls)
	}
}

func TestAttemptTimesOutAndLateSuccessChangesNothing(t *testing.T) {
	f := newFakeLedger(500)
	env := orderEnv(t, f)
	var late, r2 updateResult
	attempt(env, f, time.Second, "p1", 500)
	// The gateway answers after the 10-minute attempt timeout.
	send(env, 20*time.Minute, UpdateGatewayResult, gw("p1", ledger.StatusSuccess), &late)
	attempt(env, f, 21*time.Minute, "p2", 500)
	send(env, 22*time.Minute, UpdateGatewayResult, gw("p2", ledger.StatusSuccess), &r2)
	env.ExecuteWorkflow(OrderPayment, OrderPaymentInput{OrderID: "o1", AttemptTimeout: 10 * time.Minute})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if f.statuses["p1"] != ledger.StatusFailed || late.res.Code != ledger.CodeBadTransition || f.statuses["p2"] != ledger.StatusSuccess {
		t.Fatalf("statuses %v late %+v calls %v", f.statuses, late.res, f.calls)
	}
	if !containsCall(f.calls, "timeout p1") || containsCall(f.calls, "timeout p2") {
		t.Fatalf("calls %v", f.calls)
	}
}

func TestRepeatedSignalAndOutOfOrderCallback(t *testing.T) {
	f := newFakeLedger(300)
	env := orderEnv(t, f)
	var early, cb updateResult
	// A callback before its attempt is refused by the ledger (the HTTP
	// layer keeps such results in the inbox instead).
	send(env, time.Second, UpdateGatewayResult, gw("p1", ledger.StatusSuccess), &early)
	attempt(env, f, 2*time.Second, "p1", 300)
	attempt(env, f, 3*time.Second, "p1", 300) // the same attempt again
	send(env, 4*time.Second, UpdateGatewayResult, gw("p1", ledger.StatusSuccess), &cb)
	env.ExecuteWorkflow(OrderPayment, OrderPaymentInput{OrderID: "o1", AttemptTimeout: time.Hour})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if early.res.Outcome != ledger.Rejected || cb.res.Outcome != ledger.Settled {
		t.Fatalf("early %+v cb %+v", early.res, cb.res)
	}
	var st OrderPaymentState
	_ = env.GetWorkflowResult(&st)
	if st.OrderStatus != "COMPLETED" || len(st.Pending) != 0 || f.state().PaidAmount != 300 {
		t.Fatalf("state %+v, paid %d", st, f.state().PaidAmount)
	}
}

// A gateway's result can overtake the signal of its own attempt: the
// attempt is settled, and the late signal must not make it wait again.
func TestSignalOvertakenByItsResult(t *testing.T) {
	f := newFakeLedger(300)
	env := orderEnv(t, f)
	var cb updateResult
	env.RegisterDelayedCallback(func() { f.record("p1", 300) }, time.Second)
	send(env, 2*time.Second, UpdateGatewayResult, gw("p1", ledger.StatusSuccess), &cb)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalAttemptRecorded, AttemptRecorded{PaymentID: "p1"})
	}, 3*time.Second)
	env.ExecuteWorkflow(OrderPayment, OrderPaymentInput{OrderID: "o1", AttemptTimeout: time.Hour})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if cb.res.Outcome != ledger.Settled || containsCall(f.calls, "timeout p1") {
		t.Fatalf("result %+v calls %v", cb.res, f.calls)
	}
	if d := env.Now().Sub(time.Time{}); d <= 0 {
		t.Fatal("no clock")
	}
}

func TestBadUpdatesAreRejectedBeforeHistory(t *testing.T) {
	f := newFakeLedger(100)
	env := orderEnv(t, f)
	var bad1, bad2, ok1 updateResult
	send(env, time.Second, UpdateAttempt, ledger.Payment{PaymentID: "x", OrderID: "other"}, &bad1)
	send(env, 2*time.Second, UpdateGatewayResult, gw("x", ledger.StatusPending), &bad2)
	attempt(env, f, 3*time.Second, "p1", 100)
	send(env, 4*time.Second, UpdateGatewayResult, gw("p1", ledger.StatusSuccess), &ok1)
	env.ExecuteWorkflow(OrderPayment, OrderPaymentInput{OrderID: "o1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if bad1.err == nil || bad2.err == nil || ok1.err != nil {
		t.Fatalf("validators: %v %v %v", bad1.err, bad2.err, ok1.err)
	}
}

// The update attempts came through before the ledger recorded them first
// still work for runs that take one.
func TestLegacyAttemptUpdate(t *testing.T) {
	f := newFakeLedger(100)
	env := orderEnv(t, f)
	var a1, cb updateResult
	send(env, time.Second, UpdateAttempt, ledger.Payment{PaymentID: "p1", OrderID: "o1", Amount: 100, Currency: "USD", Method: "CARD"}, &a1)
	send(env, 2*time.Second, UpdateGatewayResult, gw("p1", ledger.StatusSuccess), &cb)
	env.ExecuteWorkflow(OrderPayment, OrderPaymentInput{OrderID: "o1", AttemptTimeout: time.Hour})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if a1.res.Outcome != ledger.Inserted || cb.res.Outcome != ledger.Settled || !containsCall(f.calls, "attempt p1") {
		t.Fatalf("attempt %+v result %+v calls %v", a1.res, cb.res, f.calls)
	}
}

func TestLedgerChangedSignalLetsTheOrderComplete(t *testing.T) {
	f := newFakeLedger(100)
	env := orderEnv(t, f)
	attempt(env, f, time.Second, "p1", 40)
	env.RegisterDelayedCallback(func() {
		// A bulk import paid the rest and settled p1.
		f.statuses["bulk"], f.amounts["bulk"] = ledger.StatusSuccess, 60
		f.statuses["p1"] = ledger.StatusSuccess
		env.SignalWorkflow(SignalLedgerChanged, nil)
	}, 5*time.Second)
	env.ExecuteWorkflow(OrderPayment, OrderPaymentInput{OrderID: "o1", AttemptTimeout: time.Hour})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var st OrderPaymentState
	_ = env.GetWorkflowResult(&st)
	if st.OrderStatus != "COMPLETED" || len(st.Pending) != 0 || !containsCall(f.calls, "refresh") {
		t.Fatalf("state %+v calls %v", st, f.calls)
	}
}

func TestOrderContinuesAsNewWithItsPendingAttempts(t *testing.T) {
	for _, tc := range []struct {
		name string
		long func(env *testsuite.TestWorkflowEnvironment)
	}{
		{"history limit", func(env *testsuite.TestWorkflowEnvironment) { env.SetCurrentHistoryLength(10_000) }},
		{"suggested by the server", func(env *testsuite.TestWorkflowEnvironment) { env.SetContinueAsNewSuggested(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeLedger(100)
			env := orderEnv(t, f)
			attempt(env, f, time.Second, "p1", 40)
			attempt(env, f, 2*time.Second, "p2", 10)
			env.RegisterDelayedCallback(func() {
				tc.long(env)
				env.SignalWorkflow(SignalLedgerChanged, nil)
				f.record("p3", 5)
				env.SignalWorkflow(SignalAttemptRecorded, AttemptRecorded{PaymentID: "p3"})
			}, 3*time.Second)
			env.ExecuteWorkflow(OrderPayment, OrderPaymentInput{OrderID: "o1", AttemptTimeout: time.Hour})
			var can *workflow.ContinueAsNewError
			if err := env.GetWorkflowError(); !errors.As(err, &can) {
				t.Fatalf("want continue-as-new, got %v", err)
			}
			var next OrderPaymentInput
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
				t.Fatal(err)
			}
			if next.State == nil || len(next.State.Pending) != 3 || !next.State.Registered || next.AttemptTimeout != time.Hour {
				t.Fatalf("carried %+v", next.State)
			}
			if !containsCall(f.calls, "refresh") {
				t.Fatalf("the signal before continue-as-new was dropped: %v", f.calls)
			}
		})
	}
}

func containsCall(calls []string, c string) bool {
	for _, x := range calls {
		if x == c {
			return true
		}
	}
	return false
}

// An attempt recorded while the run closes is not lost with it: the run
// continues as new with the attempt pending and registers again.
func TestSignalDuringCloseContinuesAsNew(t *testing.T) {
	f := newFakeLedger(100)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(OrderPayment)
	env.RegisterActivity(&activities.Activities{})
	var a *activities.Activities
	state := func() ledger.AttemptResult { return ledger.AttemptResult{Order: f.state()} }
	env.OnActivity(a.OpenOrderWorkflow, mock.Anything, mock.Anything).Return(state(), nil)
	env.OnActivity(a.CloseOrderWorkflow, mock.Anything, mock.Anything).After(10 * time.Second).Return(
		func(context.Context, string) (ledger.AttemptResult, error) { return state(), nil })
	env.OnActivity(a.ApplyGatewayResult, mock.Anything, mock.Anything).Return(
		func(_ context.Context, g ledger.GatewayResult) (ledger.AttemptResult, error) {
			r := f.settle(g.PaymentID, g.Status)
			return ledger.AttemptResult{Result: r, Order: f.state(), Settled: []string{g.PaymentID}}, nil
		})
	attempt(env, f, time.Second, "p1", 100)
	var cb updateResult
	send(env, 2*time.Second, UpdateGatewayResult, gw("p1", ledger.StatusSuccess), &cb)
	attempt(env, f, 6*time.Second, "p2", 5) // while the close runs
	env.ExecuteWorkflow(OrderPayment, OrderPaymentInput{OrderID: "o1", AttemptTimeout: time.Hour})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next OrderPaymentInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.State == nil || next.State.Registered || len(next.State.Pending) != 1 || next.State.Pending[0].PaymentID != "p2" {
		t.Fatalf("carried %+v", next.State)
	}
}
