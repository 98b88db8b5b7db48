package workflows

import (
	"context"
	"errors"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/payments/activities"
	"github.com/acme/payments/internal/ledger"
)

// Names of the order payment workflow's messages.
const (
	// SignalAttemptRecorded tells the workflow that the ledger recorded an
	// attempt of its order as PENDING (AttemptRecorded): the workflow
	// waits for the attempt's gateway and fails it with TIMEOUT if none
	// answers. The attempt itself, card details included, never passes
	// through Temporal.
	SignalAttemptRecorded = "attempt-recorded"
	// UpdateGatewayResult applies a gateway's SUCCESS or FAILED (a
	// ledger.GatewayResult); its result is the ledger's Result.
	UpdateGatewayResult = "gateway-result"
	// SignalLedgerChanged tells the workflow that something else (a bulk
	// import) changed the order's payments, so it re-reads the order.
	SignalLedgerChanged = "ledger-changed"
	// OrderStateQuery answers the workflow's OrderPaymentState.
	OrderStateQuery = "state"
	// UpdateAttempt recorded an attempt through the workflow, before the
	// ledger recorded attempts ahead of Temporal. Nothing sends it any
	// more; its handler stays so that runs which took it still replay,
	// until every such run has closed or continued as new.
	UpdateAttempt = "attempt"
)

// DefaultAttemptTimeout is how long an attempt waits for its gateway before
// it fails with reason TIMEOUT.
const DefaultAttemptTimeout = 15 * time.Minute

// AttemptRecorded is the payload of SignalAttemptRecorded: ids only.
type AttemptRecorded struct {
	PaymentID string `json:"payment_id"`
}

// OrderPaymentInput starts or continues an order's payment workflow.
type OrderPaymentInput struct {
	OrderID        string             `json:"order_id"`
	AttemptTimeout time.Duration      `json:"attempt_timeout"`
	HistoryLimit   int                `json:"history_limit"`
	State          *OrderPaymentState `json:"state"`
}

// PendingAttempt is an attempt waiting for its gateway.
type PendingAttempt struct {
	PaymentID string    `json:"payment_id"`
	Deadline  time.Time `json:"deadline,omitzero"`
}

// OrderPaymentState is what the workflow knows of its order.
type OrderPaymentState struct {
	OrderStatus string `json:"order_status"`
	Amount      int64  `json:"amount"`
	PaidAmount  int64  `json:"paid_amount"`
	Currency    string `json:"currency"`
	// Pending is kept sorted by payment id, never a map, so every replay
	// walks it in the same order.
	Pending    []PendingAttempt `json:"pending"`
	Registered bool             `json:"registered"`
	// Settled holds the last attempts this workflow saw settled, so that
	// an AttemptRecorded signal overtaken by its gateway's result does not
	// make the attempt pending again.
	Settled []string `json:"settled"`
}

// maxSettledKept bounds OrderPaymentState.Settled.
const maxSettledKept = 32

// OrderPayment is an order's payment lifecycle: it keeps the order's
// recorded attempts until their gateways answer, applies the gateways'
// results through the ledger, fails attempts no gateway answers (TIMEOUT),
// and completes once the order is COMPLETED and no attempt is left
// waiting. It continues as new before its history grows long.
func OrderPayment(ctx workflow.Context, in OrderPaymentInput) (OrderPaymentState, error) {
	w := &orderPayment{in: in, st: in.State, timeout: in.AttemptTimeout, limit: in.HistoryLimit}
	if w.st == nil {
		w.st = &OrderPaymentState{OrderStatus: string(ledger.OrderPending)}
	}
	if w.timeout <= 0 {
		w.timeout = DefaultAttemptTimeout
	}
	if w.limit <= 0 {
		w.limit = DefaultHistoryLimit
	}
	return w.run(ctx)
}

// orderPayment is one run of OrderPayment.
type orderPayment struct {
	in      OrderPaymentInput
	st      *OrderPaymentState
	timeout time.Duration
	limit   int
	// mu lets one ledger step run at a time, so results apply to st in
	// the order they ran.
	mu      workflow.Mutex
	changed bool // a step or a message changed st since the last wait

	recorded, ledgerChanged workflow.ReceiveChannel
}

// orderActivities names the activities; the worker's instance runs them.
var orderActivities *activities.Activities

func (w *orderPayment) run(ctx workflow.Context) (OrderPaymentState, error) {
	if err := w.register(ctx); err != nil {
		return *w.st, err
	}
	// Handlers are registered before the first blocking call: an update
	// that started this workflow is delivered in its first task.
	if !w.st.Registered {
		if _, err := step(ctx, w, orderActivities.OpenOrderWorkflow, w.in.OrderID); err != nil {
			return *w.st, err
		}
		w.st.Registered = true
	}
	for {
		if err := w.serve(ctx); err != nil {
			return *w.st, err
		}
		// Let running updates finish and answer before this run ends, and
		// take in signals that came meanwhile: none is lost to
		// continue-as-new or to the end of the run.
		if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
			return *w.st, err
		}
		if w.ledgerChanged.Len() > 0 {
			if err := w.refresh(ctx); err != nil {
				return *w.st, err
			}
		}
		if w.recorded.Len() == 0 {
			break
		}
		w.takeRecorded(ctx)
		if w.historyFull(ctx) {
			break // the next run takes them over
		}
		// The order's registration may be gone if this task follows one
		// whose completion the new signal refused; it is idempotent.
		if _, err := step(ctx, w, orderActivities.OpenOrderWorkflow, w.in.OrderID); err != nil {
			return *w.st, err
		}
	}
	if !w.done() {
		return *w.st, workflow.NewContinueAsNewError(ctx, OrderPayment, OrderPaymentInput{
			OrderID: w.in.OrderID, AttemptTimeout: w.in.AttemptTimeout, HistoryLimit: w.in.HistoryLimit, State: w.st,
		})
	}
	if _, err := step(ctx, w, orderActivities.CloseOrderWorkflow, w.in.OrderID); err != nil {
		return *w.st, err
	}
	// A message that came while the close ran must not end with this run:
	// the next run takes it, registering the order's workflow again.
	if w.recorded.Len() > 0 || w.ledgerChanged.Len() > 0 {
		w.takeRecorded(ctx)
		w.st.Registered = false
		return *w.st, workflow.NewContinueAsNewError(ctx, OrderPayment, OrderPaymentInput{
			OrderID: w.in.OrderID, AttemptTimeout: w.in.AttemptTimeout, HistoryLimit: w.in.HistoryLimit, State: w.st,
		})
	}
	return *w.st, nil
}

// register sets up the query, updates and signals.
func (w *orderPayment) register(ctx workflow.Context) error {
	w.mu = workflow.NewMutex(ctx)
	w.recorded = workflow.GetSignalChannel(ctx, SignalAttemptRecorded)
	w.ledgerChanged = workflow.GetSignalChannel(ctx, SignalLedgerChanged)
	if err := workflow.SetQueryHandler(ctx, OrderStateQuery, func() (OrderPaymentState, error) { return *w.st, nil }); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateGatewayResult, w.gatewayResult,
		workflow.UpdateHandlerOptions{Validator: func(g ledger.GatewayResult) error {
			if g.PaymentID == "" || !g.Status.Terminal() {
				return errors.New("gateway result needs a payment_id and SUCCESS or FAILED")
			}
			return nil
		}}); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdateAttempt, w.legacyAttempt,
		workflow.UpdateHandlerOptions{Validator: func(p ledger.Payment) error {
			if p.PaymentID == "" || p.OrderID != w.in.OrderID {
				return errors.New("attempt needs a payment_id for this order")
			}
			return nil
		}})
}

// serve waits for and handles attempts, results and timeouts until the
// order is COMPLETED with no attempt left waiting, or the history is long.
func (w *orderPayment) serve(ctx workflow.Context) error {
	for !w.done() && !w.historyFull(ctx) {
		w.changed = false
		woken := func() bool { return w.changed || w.ledgerChanged.Len() > 0 || w.recorded.Len() > 0 }
		if len(w.st.Pending) > 0 {
			wait := max(earliest(w.st.Pending).Sub(workflow.Now(ctx)), time.Millisecond)
			if _, err := workflow.AwaitWithTimeout(ctx, wait, woken); err != nil {
				return err
			}
		} else if err := workflow.Await(ctx, woken); err != nil {
			return err
		}
		w.takeRecorded(ctx)
		if w.ledgerChanged.Len() > 0 {
			if err := w.refresh(ctx); err != nil {
				return err
			}
		}
		if err := w.timeOutDue(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (w *orderPayment) done() bool {
	return w.st.OrderStatus == string(ledger.OrderCompleted) && len(w.st.Pending) == 0
}

func (w *orderPayment) historyFull(ctx workflow.Context) bool { return historyFull(ctx, w.limit) }

// takeRecorded makes the recorded attempts pending, each with its deadline.
func (w *orderPayment) takeRecorded(ctx workflow.Context) {
	var a AttemptRecorded
	for w.recorded.ReceiveAsync(&a) {
		if a.PaymentID != "" && !slices.Contains(w.st.Settled, a.PaymentID) {
			addPending(w.st, a.PaymentID, workflow.Now(ctx).Add(w.timeout))
		}
	}
}

// refresh re-reads the order after a change this workflow did not make.
func (w *orderPayment) refresh(ctx workflow.Context) error {
	for w.ledgerChanged.ReceiveAsync(nil) {
	}
	_, err := step(ctx, w, orderActivities.RefreshOrder, activities.RefreshInput{OrderID: w.in.OrderID, Pending: pendingIDs(w.st)})
	return err
}

// timeOutDue fails the attempts whose deadline has passed.
func (w *orderPayment) timeOutDue(ctx workflow.Context) error {
	now := workflow.Now(ctx)
	for _, p := range slices.Clone(w.st.Pending) {
		if !p.Deadline.After(now) {
			if _, err := step(ctx, w, orderActivities.TimeoutAttempt, activities.TimeoutInput{OrderID: w.in.OrderID, PaymentID: p.PaymentID}); err != nil {
				return err
			}
		}
	}
	return nil
}

// gatewayResult is UpdateGatewayResult's handler.
func (w *orderPayment) gatewayResult(ctx workflow.Context, g ledger.GatewayResult) (ledger.Result, error) {
	g.OrderID = w.in.OrderID // this workflow's order, whatever the caller sent
	r, err := step(ctx, w, orderActivities.ApplyGatewayResult, g)
	return r.Result, err
}

// legacyAttempt is UpdateAttempt's handler (see UpdateAttempt).
func (w *orderPayment) legacyAttempt(ctx workflow.Context, p ledger.Payment) (ledger.Result, error) {
	r, err := step(ctx, w, orderActivities.RecordAttempt, activities.AttemptInput{OrderID: w.in.OrderID, Payment: p})
	return r.Result, err
}

// step runs one ledger activity and applies its result to the state; ctx
// is the calling coroutine's (update handlers run in their own). Ledger
// steps are short database calls: local activities run them in the worker
// that holds the workflow, without a round trip through a task queue.
func step[In any](ctx workflow.Context, w *orderPayment, activity func(context.Context, In) (ledger.AttemptResult, error), in In) (ledger.AttemptResult, error) {
	if err := w.mu.Lock(ctx); err != nil {
		return ledger.AttemptResult{}, err
	}
	defer w.mu.Unlock()
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second},
	})
	var r ledger.AttemptResult
	if err := workflow.ExecuteLocalActivity(ctx, activity, in).Get(ctx, &r); err != nil {
		return r, err
	}
	w.apply(ctx, r)
	return r, nil
}

// apply takes a ledger step's answer into the state.
func (w *orderPayment) apply(ctx workflow.Context, r ledger.AttemptResult) {
	st := w.st
	// A step refused before it read the order answers no state: keep the
	// one known (a zero status would keep a COMPLETED order's run open).
	if r.Order.OrderID != "" || r.Order.Status != "" {
		st.OrderStatus, st.Amount, st.PaidAmount, st.Currency = string(r.Order.Status), r.Order.Amount, r.Order.PaidAmount, r.Order.Currency
	}
	for _, id := range r.Settled {
		st.Pending = slices.DeleteFunc(st.Pending, func(p PendingAttempt) bool { return p.PaymentID == id })
		if !slices.Contains(st.Settled, id) {
			st.Settled = append(st.Settled, id)
		}
	}
	if n := len(st.Settled) - maxSettledKept; n > 0 {
		st.Settled = slices.Delete(st.Settled, 0, n)
	}
	if r.Result.Status == ledger.StatusPending && r.Result.Outcome != ledger.Rejected {
		addPending(st, r.Result.PaymentID, workflow.Now(ctx).Add(w.timeout))
	}
	w.changed = true
}

func pendingIDs(st *OrderPaymentState) []string {
	ids := make([]string, len(st.Pending))
	for i, p := range st.Pending {
		ids[i] = p.PaymentID
	}
	return ids
}

func addPending(st *OrderPaymentState, id string, deadline time.Time) {
	i, found := slices.BinarySearchFunc(st.Pending, id, func(p PendingAttempt, id string) int {
		switch {
		case p.PaymentID < id:
			return -1
		case p.PaymentID > id:
			return 1
		}
		return 0
	})
	if !found {
		st.Pending = slices.Insert(st.Pending, i, PendingAttempt{PaymentID: id, Deadline: deadline})
	}
}

func earliest(ps []PendingAttempt) time.Time {
	t := ps[0].Deadline
	for _, p := range ps[1:] {
		if p.Deadline.Before(t) {
			t = p.Deadline
		}
	}
	return t
}
