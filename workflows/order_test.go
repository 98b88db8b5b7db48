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
		func(context.Context, string) (activities.AttemptResult, error) {
			f.calls = append(f.calls, "open")
			return activities.AttemptResult{Order: f.state()}, nil
		})
	env.OnActivity(a.CloseOrderWorkflow, mock.Anything, mock.Anything).Return(
		func(context.Context, string) (activities.AttemptResult, error) {
			f.calls = append(f.calls, "close")
			return activities.AttemptResult{Order: f.state()}, nil
		})
	env.OnActivity(a.RecordAttempt, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.AttemptInput) (activities.AttemptResult, error) {
			f.calls = append(f.calls, "attempt "+in.Payment.PaymentID)
			id := in.Payment.PaymentID
			if _, ok := f.statuses[id]; ok {
				return activities.AttemptResult{Result: ledger.Result{PaymentID: id, Outcome: ledger.Unchanged, Status: f.statuses[id]}, Order: f.state()}, nil
			}
			f.statuses[id], f.amounts[id] = ledger.StatusPending, in.Payment.Amount
			return activities.AttemptResult{Result: ledger.Result{PaymentID: id, Outcome: ledger.Inserted, Status: ledger.StatusPending}, Order: f.state()}, nil
		})
	env.OnActivity(a.ApplyGatewayResult, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.GatewayInput) (activities.AttemptResult, error) {
			f.calls = append(f.calls, "gateway "+in.Settlement.PaymentID+" "+string(in.Settlement.Status))
			r := f.settle(in.Settlement.PaymentID, in.Settlement.Status)
			var settled []string
			if r.Status.Terminal() {
				settled = []string{in.Settlement.PaymentID}
			}
			return activities.AttemptResult{Result: r, Order: f.state(), Settled: settled}, nil
		})
	env.OnActivity(a.TimeoutAttempt, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.TimeoutInput) (activities.AttemptResult, error) {
			f.calls = append(f.calls, "timeout "+in.PaymentID)
			var r ledger.Result
			if f.statuses[in.PaymentID] == ledger.StatusPending {
				r = f.settle(in.PaymentID, ledger.StatusFailed)
			}
			return activities.AttemptResult{Result: r, Order: f.state(), Settled: []string{in.PaymentID}}, nil
		})
	env.OnActivity(a.RefreshOrder, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RefreshInput) (activities.AttemptResult, error) {
			f.calls = append(f.calls, "refresh")
			var settled []string
			for _, id := range in.Pending {
				if f.statuses[id] != ledger.StatusPending {
					settled = append(settled, id)
				}
			}
			return activities.AttemptResult{Order: f.state(), Settled: settled}, nil
		})
	return env
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

func pay(id string, amount int64) ledger.Payment {
	return ledger.Payment{PaymentID: id, OrderID: "o1", Amount: amount, Currency: "USD", Method: "CARD"}
}

func gw(id string, s ledger.Status) activities.GatewayInput {
	return activities.GatewayInput{Gateway: "acme", Settlement: ledger.Settlement{PaymentID: id, Status: s}}
}

func TestOrderFailedPartialAndCompletingPayments(t *testing.T) {
	f := &fakeLedger{amount: 1000, statuses: map[string]ledger.Status{}, amounts: map[string]int64{}}
	env := orderEnv(t, f)
	var r [7]updateResult
	send(env, 1*time.Second, UpdateAttempt, pay("p1", 1000), &r[0])
	send(env, 2*time.Second, UpdateGatewayResult, gw("p1", ledger.StatusFailed), &r[1])
	send(env, 3*time.Second, UpdateAttempt, pay("p2", 400), &r[2])
	send(env, 4*time.Second, UpdateGatewayResult, gw("p2", ledger.StatusSuccess), &r[3])
	send(env, 5*time.Second, UpdateGatewayResult, gw("p2", ledger.StatusSuccess), &r[4]) // repeated callback
	send(env, 6*time.Second, UpdateAttempt, pay("p3", 600), &r[5])
	send(env, 7*time.Second, UpdateGatewayResult, gw("p3", ledger.StatusSuccess), &r[6])
	env.ExecuteWorkflow(OrderPayment, OrderPaymentInput{OrderID: "o1", AttemptTimeout: time.Hour})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var st OrderPaymentState
	_ = env.GetWorkflowResult(&st)
	if st.OrderStatus != "COMPLETED" || st.PaidAmount != 1000 || len(st.Pending) != 0 {
		t.Fatalf("final %+v", st)
	}
	if r[1].res.Outcome != ledger.Settled || r[3].res.Outcome != ledger.Settled || r[4].res.Outcome != ledger.Unchanged || r[6].res.Status != ledger.StatusSuccess {
		t.Fatalf("results %+v", r)
	}
	if f.calls[len(f.calls)-1] != "close" {
		t.Fatalf("did not close: %v", f.calls)
	}
}

func TestAttemptTimesOutAndLateSuccessChangesNothing(t *testing.T) {
	f := &fakeLedger{amount: 500, statuses: map[string]ledger.Status{}, amounts: map[string]int64{}}
	env := orderEnv(t, f)
	var r1, late, r3, r4 updateResult
	send(env, time.Second, UpdateAttempt, pay("p1", 500), &r1)
	// The gateway answers after the 10-minute attempt timeout.
	send(env, 20*time.Minute, UpdateGatewayResult, gw("p1", ledger.StatusSuccess), &late)
	send(env, 21*time.Minute, UpdateAttempt, pay("p2", 500), &r3)
	send(env, 22*time.Minute, UpdateGatewayResult, gw("p2", ledger.StatusSuccess), &r4)
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

func TestDuplicateAttemptAndOutOfOrderCallback(t *testing.T) {
	f := &fakeLedger{amount: 300, statuses: map[string]ledger.Status{}, amounts: map[string]int64{}}
	env := orderEnv(t, f)
	var early, a1, a2, cb updateResult
	// A callback before its attempt is refused by the ledger; the gateway
	// retries it (the HTTP layer keeps it in the inbox meanwhile).
	send(env, time.Second, UpdateGatewayResult, gw("p1", ledger.StatusSuccess), &early)
	send(env, 2*time.Second, UpdateAttempt, pay("p1", 300), &a1)
	send(env, 3*time.Second, UpdateAttempt, pay("p1", 300), &a2)
	send(env, 4*time.Second, UpdateGatewayResult, gw("p1", ledger.StatusSuccess), &cb)
	env.ExecuteWorkflow(OrderPayment, OrderPaymentInput{OrderID: "o1", AttemptTimeout: time.Hour})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if early.res.Outcome != ledger.Rejected || a1.res.Outcome != ledger.Inserted || a2.res.Outcome != ledger.Unchanged || cb.res.Outcome != ledger.Settled {
		t.Fatalf("early %+v a1 %+v a2 %+v cb %+v", early.res, a1.res, a2.res, cb.res)
	}
	if f.state().PaidAmount != 300 {
		t.Fatalf("paid %d", f.state().PaidAmount)
	}
}

func TestBadUpdatesAreRejectedBeforeHistory(t *testing.T) {
	f := &fakeLedger{amount: 100, statuses: map[string]ledger.Status{}, amounts: map[string]int64{}}
	env := orderEnv(t, f)
	var bad1, bad2, ok1, ok2 updateResult
	send(env, time.Second, UpdateAttempt, ledger.Payment{PaymentID: "x", OrderID: "other"}, &bad1)
	send(env, 2*time.Second, UpdateGatewayResult, gw("x", ledger.StatusPending), &bad2)
	send(env, 3*time.Second, UpdateAttempt, pay("p1", 100), &ok1)
	send(env, 4*time.Second, UpdateGatewayResult, gw("p1", ledger.StatusSuccess), &ok2)
	env.ExecuteWorkflow(OrderPayment, OrderPaymentInput{OrderID: "o1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if bad1.err == nil || bad2.err == nil || ok1.err != nil || ok2.err != nil {
		t.Fatalf("validators: %v %v %v %v", bad1.err, bad2.err, ok1.err, ok2.err)
	}
}

func TestLedgerChangedSignalLetsTheOrderComplete(t *testing.T) {
	f := &fakeLedger{amount: 100, statuses: map[string]ledger.Status{}, amounts: map[string]int64{}}
	env := orderEnv(t, f)
	var a1 updateResult
	send(env, time.Second, UpdateAttempt, pay("p1", 40), &a1)
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
	f := &fakeLedger{amount: 100, statuses: map[string]ledger.Status{}, amounts: map[string]int64{}}
	env := orderEnv(t, f)
	var a1, a2 updateResult
	send(env, time.Second, UpdateAttempt, pay("p1", 40), &a1)
	send(env, 2*time.Second, UpdateAttempt, pay("p2", 10), &a2)
	env.RegisterDelayedCallback(func() {
		env.SetCurrentHistoryLength(10_000)
		env.SignalWorkflow(SignalLedgerChanged, nil)
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
	if next.State == nil || len(next.State.Pending) != 2 || !next.State.Registered || next.AttemptTimeout != time.Hour {
		t.Fatalf("carried %+v", next.State)
	}
	if !containsCall(f.calls, "refresh") {
		t.Fatalf("the signal before continue-as-new was dropped: %v", f.calls)
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
