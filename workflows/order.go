package workflows

import (
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
	// UpdateAttempt records a payment attempt; its result is the ledger's.
	UpdateAttempt = "attempt"
	// UpdateGatewayResult applies a gateway's SUCCESS or FAILED.
	UpdateGatewayResult = "gateway-result"
	// SignalLedgerChanged tells the workflow that something else (a bulk
	// import) changed the order's payments, so it re-reads the order.
	SignalLedgerChanged = "ledger-changed"
	// OrderStateQuery answers the workflow's OrderPaymentState.
	OrderStateQuery = "state"
)

// DefaultAttemptTimeout is how long an attempt waits for its gateway before
// it fails with reason TIMEOUT.
const DefaultAttemptTimeout = 15 * time.Minute

// OrderPaymentInput starts or continues an order's payment workflow.
type OrderPaymentInput struct {
	OrderID        string
	AttemptTimeout time.Duration
	HistoryLimit   int
	State          *OrderPaymentState
}

// PendingAttempt is an attempt waiting for its gateway.
type PendingAttempt struct {
	PaymentID string
	Deadline  time.Time
}

// OrderPaymentState is what the workflow knows of its order.
type OrderPaymentState struct {
	OrderStatus string
	Amount      int64
	PaidAmount  int64
	Currency    string
	// Pending is kept sorted by payment id, never a map, so every replay
	// walks it in the same order.
	Pending    []PendingAttempt
	Registered bool
}

// OrderPayment is an order's payment lifecycle: it records attempts through
// the ledger, applies gateway results, fails attempts the gateway never
// answers (TIMEOUT), and completes once the order is COMPLETED and no attempt
// is left waiting. It continues as new before its history grows long.
func OrderPayment(ctx workflow.Context, in OrderPaymentInput) (OrderPaymentState, error) {
	st := in.State
	if st == nil {
		st = &OrderPaymentState{OrderStatus: string(ledger.OrderPending)}
	}
	timeout := in.AttemptTimeout
	if timeout <= 0 {
		timeout = DefaultAttemptTimeout
	}
	limit := in.HistoryLimit
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	var a *activities.Activities
	// One ledger call at a time: results apply to st in the order they ran.
	mu := workflow.NewMutex(ctx)
	changed := false

	apply := func(r activities.AttemptResult) {
		st.OrderStatus, st.Amount, st.PaidAmount, st.Currency = string(r.Order.Status), r.Order.Amount, r.Order.PaidAmount, r.Order.Currency
		for _, id := range r.Settled {
			st.Pending = slices.DeleteFunc(st.Pending, func(p PendingAttempt) bool { return p.PaymentID == id })
		}
		if r.Result.Status == ledger.StatusPending && r.Result.Outcome != ledger.Rejected {
			addPending(st, r.Result.PaymentID, workflow.Now(ctx).Add(timeout))
		}
		changed = true
	}
	// run executes one ledger activity; ctx is the calling coroutine's
	// (update handlers run in their own).
	run := func(ctx workflow.Context, fn any, arg any) (activities.AttemptResult, error) {
		if err := mu.Lock(ctx); err != nil {
			return activities.AttemptResult{}, err
		}
		defer mu.Unlock()
		var r activities.AttemptResult
		if err := workflow.ExecuteLocalActivity(withActivityOptions(ctx), fn, arg).Get(ctx, &r); err != nil {
			return r, err
		}
		apply(r)
		return r, nil
	}

	if err := workflow.SetQueryHandler(ctx, OrderStateQuery, func() (OrderPaymentState, error) { return *st, nil }); err != nil {
		return *st, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateAttempt,
		func(ctx workflow.Context, p ledger.Payment) (ledger.Result, error) {
			r, err := run(ctx, a.RecordAttempt, activities.AttemptInput{OrderID: in.OrderID, Payment: p})
			return r.Result, err
		},
		workflow.UpdateHandlerOptions{Validator: func(p ledger.Payment) error {
			if p.PaymentID == "" || p.OrderID != in.OrderID {
				return errors.New("attempt needs a payment_id for this order")
			}
			return nil
		}}); err != nil {
		return *st, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateGatewayResult,
		func(ctx workflow.Context, s activities.GatewayInput) (ledger.Result, error) {
			s.OrderID = in.OrderID // this workflow's order, whatever the caller sent
			r, err := run(ctx, a.ApplyGatewayResult, s)
			return r.Result, err
		},
		workflow.UpdateHandlerOptions{Validator: func(s activities.GatewayInput) error {
			if s.Settlement.PaymentID == "" || !s.Settlement.Status.Terminal() {
				return errors.New("gateway result needs a payment_id and SUCCESS or FAILED")
			}
			return nil
		}}); err != nil {
		return *st, err
	}
	ledgerChanged := workflow.GetSignalChannel(ctx, SignalLedgerChanged)
	// Handlers are registered before the first blocking call: an update
	// that started this workflow is delivered in its first task.
	if !st.Registered {
		if _, err := run(ctx, a.OpenOrderWorkflow, in.OrderID); err != nil {
			return *st, err
		}
		st.Registered = true
	}

	refresh := func() error {
		for ledgerChanged.ReceiveAsync(nil) {
		}
		_, err := run(ctx, a.RefreshOrder, activities.RefreshInput{OrderID: in.OrderID, Pending: pendingIDs(st)})
		return err
	}
	for !(st.OrderStatus == string(ledger.OrderCompleted) && len(st.Pending) == 0) &&
		workflow.GetInfo(ctx).GetCurrentHistoryLength() <= limit {
		changed = false
		woken := func() bool { return changed || ledgerChanged.Len() > 0 }
		if len(st.Pending) > 0 {
			wait := max(earliest(st.Pending).Sub(workflow.Now(ctx)), time.Millisecond)
			if _, err := workflow.AwaitWithTimeout(ctx, wait, woken); err != nil {
				return *st, err
			}
		} else if err := workflow.Await(ctx, woken); err != nil {
			return *st, err
		}
		if ledgerChanged.Len() > 0 {
			if err := refresh(); err != nil {
				return *st, err
			}
		}
		now := workflow.Now(ctx)
		for _, p := range slices.Clone(st.Pending) {
			if !p.Deadline.After(now) {
				if _, err := run(ctx, a.TimeoutAttempt, activities.TimeoutInput{OrderID: in.OrderID, PaymentID: p.PaymentID}); err != nil {
					return *st, err
				}
			}
		}
	}

	// Let running updates finish and answer before this run ends, and take
	// in signals that came meanwhile: none is lost to continue-as-new.
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return *st, err
	}
	if ledgerChanged.Len() > 0 {
		if err := refresh(); err != nil {
			return *st, err
		}
	}
	if st.OrderStatus != string(ledger.OrderCompleted) || len(st.Pending) > 0 {
		return *st, workflow.NewContinueAsNewError(ctx, OrderPayment, OrderPaymentInput{
			OrderID: in.OrderID, AttemptTimeout: in.AttemptTimeout, HistoryLimit: in.HistoryLimit, State: st,
		})
	}
	if _, err := run(ctx, a.CloseOrderWorkflow, in.OrderID); err != nil {
		return *st, err
	}
	return *st, nil
}

// Ledger steps are short database calls: local activities run them in the
// worker that holds the workflow, without a round trip through a task queue.
func withActivityOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second},
	})
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
