package activities

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/money"
)

// CodeOrderCompleted rejects a new attempt on an order already paid.
const CodeOrderCompleted = "ORDER_COMPLETED"

// AttemptInput is a live payment attempt for an order.
type AttemptInput struct {
	OrderID string
	Payment ledger.Payment
}

// GatewayInput is a verified gateway result.
type GatewayInput struct {
	// OrderID is set by the order's workflow, which callers reach through
	// the payment's order.
	OrderID    string
	Gateway    string
	Settlement ledger.Settlement
}

// TimeoutInput names an attempt its gateway never answered.
type TimeoutInput struct {
	OrderID, PaymentID string
}

// RefreshInput asks for an order's state and which of the given pending
// attempts are settled now.
type RefreshInput struct {
	OrderID string
	Pending []string
}

// AttemptResult is what an order-payment activity did and the order's
// state after it.
type AttemptResult struct {
	Result ledger.Result
	Order  ledger.OrderState
	// Settled lists attempts that are no longer PENDING.
	Settled []string
}

// OpenOrderWorkflow notes that the order's payment workflow is open, so
// bulk imports that change the order wake it.
func (a *Activities) OpenOrderWorkflow(ctx context.Context, orderID string) (AttemptResult, error) {
	if _, err := a.DB.ExecContext(ctx, `INSERT IGNORE INTO order_workflows (order_id, opened_at) VALUES (?, ?)`,
		orderID, time.Now().UTC()); err != nil {
		return AttemptResult{}, fmt.Errorf("open order workflow %s: %w", orderID, err)
	}
	return a.state(ctx, orderID, ledger.Result{})
}

// CloseOrderWorkflow notes that the order's payment workflow ended.
func (a *Activities) CloseOrderWorkflow(ctx context.Context, orderID string) (AttemptResult, error) {
	if _, err := a.DB.ExecContext(ctx, `DELETE FROM order_workflows WHERE order_id = ?`, orderID); err != nil {
		return AttemptResult{}, fmt.Errorf("close order workflow %s: %w", orderID, err)
	}
	return a.state(ctx, orderID, ledger.Result{})
}

// RecordAttempt records a PENDING attempt through the ledger. A new attempt
// on a COMPLETED order is refused; the same attempt again is a no-op. A
// gateway result that arrived before the attempt is applied right after.
func (a *Activities) RecordAttempt(ctx context.Context, in AttemptInput) (AttemptResult, error) {
	st, err := a.Ledger.OrderState(ctx, in.OrderID)
	if errors.Is(err, ledger.ErrOrderNotFound) {
		return AttemptResult{Result: ledger.Result{PaymentID: in.Payment.PaymentID, Outcome: ledger.Rejected,
			Code: ledger.CodeOrderNotFound, Message: "order " + in.OrderID + " does not exist"}}, nil
	}
	if err != nil {
		return AttemptResult{}, err
	}
	statuses, err := a.paymentStatuses(ctx, []string{in.Payment.PaymentID})
	if err != nil {
		return AttemptResult{}, err
	}
	stored, known := statuses[in.Payment.PaymentID]
	if st.Status == ledger.OrderCompleted && !known {
		return AttemptResult{Order: st, Result: ledger.Result{PaymentID: in.Payment.PaymentID, Outcome: ledger.Rejected,
			Code: CodeOrderCompleted, Message: "order " + in.OrderID + " is already COMPLETED"}}, nil
	}
	p := in.Payment
	p.Status = ledger.StatusPending
	if known {
		// A repeat of an attempt settled since is judged on its content,
		// not on its status.
		p.Status = stored
	}
	res, err := a.Ledger.Record(ctx, ledger.SourceAPI, "api", []ledger.Payment{p})
	if err != nil {
		return AttemptResult{}, err
	}
	out := AttemptResult{Result: res[0]}
	// Inserted, or Unchanged when a retry of this activity finds its own
	// row: either way a queued gateway result is applied now.
	if res[0].Outcome != ledger.Rejected && res[0].Status == ledger.StatusPending {
		early, ok, err := a.peekInbox(ctx, p.PaymentID)
		if err != nil {
			return AttemptResult{}, err
		}
		if ok && early.amountText != "" {
			cur := p.Currency
			if cur == "" {
				cur = st.Currency
			}
			v, err := money.Parse(early.amountText, cur)
			if err != nil {
				// Not an amount of this currency, so not this payment's:
				// leave the attempt PENDING for its gateway or timeout.
				v = 0
				ok = false
				if _, err := a.DB.ExecContext(ctx, `DELETE FROM gateway_inbox WHERE payment_id = ?`, p.PaymentID); err != nil {
					return AttemptResult{}, fmt.Errorf("clear gateway inbox: %w", err)
				}
			}
			early.s.Amount = v
		}
		if ok {
			// Settle first, then clear: a retry after a crash settles again,
			// which the ledger treats as a repeat.
			r, err := a.Ledger.Settle(ctx, ledger.SourceGateway, "gateway:"+early.gateway, early.s)
			if err != nil {
				return AttemptResult{}, err
			}
			if _, err := a.DB.ExecContext(ctx, `DELETE FROM gateway_inbox WHERE payment_id = ?`, p.PaymentID); err != nil {
				return AttemptResult{}, fmt.Errorf("clear gateway inbox: %w", err)
			}
			if r.Status.Terminal() {
				out.Settled = []string{p.PaymentID}
				out.Result.Status = r.Status
			}
		}
	}
	return a.state(ctx, in.OrderID, out.Result, out.Settled...)
}

// ApplyGatewayResult settles an attempt. A repeat is a no-op; a
// contradiction changes nothing and is kept as an audit event.
func (a *Activities) ApplyGatewayResult(ctx context.Context, in GatewayInput) (AttemptResult, error) {
	r, err := a.Ledger.Settle(ctx, ledger.SourceGateway, "gateway:"+in.Gateway, in.Settlement)
	if err != nil {
		return AttemptResult{}, err
	}
	var settled []string
	if r.Status.Terminal() {
		settled = []string{in.Settlement.PaymentID}
	}
	return a.state(ctx, in.OrderID, r, settled...)
}

// TimeoutAttempt fails an attempt still PENDING with reason TIMEOUT.
func (a *Activities) TimeoutAttempt(ctx context.Context, in TimeoutInput) (AttemptResult, error) {
	r, err := a.Ledger.Settle(ctx, ledger.SourceAPI, "timeout", ledger.Settlement{
		PaymentID: in.PaymentID, Status: ledger.StatusFailed, FailureReason: "TIMEOUT", IfPending: true})
	if err != nil {
		return AttemptResult{}, err
	}
	return a.state(ctx, in.OrderID, r, in.PaymentID)
}

// RefreshOrder re-reads an order after a change the workflow did not make.
func (a *Activities) RefreshOrder(ctx context.Context, in RefreshInput) (AttemptResult, error) {
	statuses, err := a.paymentStatuses(ctx, in.Pending)
	if err != nil {
		return AttemptResult{}, err
	}
	var settled []string
	for _, id := range in.Pending {
		if s, ok := statuses[id]; !ok || s != ledger.StatusPending {
			settled = append(settled, id)
		}
	}
	return a.state(ctx, in.OrderID, ledger.Result{}, settled...)
}

func (a *Activities) state(ctx context.Context, orderID string, r ledger.Result, settled ...string) (AttemptResult, error) {
	st, err := a.Ledger.OrderState(ctx, orderID)
	if err != nil && !errors.Is(err, ledger.ErrOrderNotFound) {
		return AttemptResult{}, err
	}
	return AttemptResult{Result: r, Order: st, Settled: settled}, nil
}

func (a *Activities) paymentStatuses(ctx context.Context, ids []string) (map[string]ledger.Status, error) {
	out := map[string]ledger.Status{}
	if len(ids) == 0 {
		return out, nil
	}
	q, args, err := sqlx.In(`SELECT payment_id, payment_status FROM payments WHERE payment_id IN (?)`, ids)
	if err != nil {
		return nil, err
	}
	rows, err := a.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read payment status: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var s ledger.Status
		if err := rows.Scan(&id, &s); err != nil {
			return nil, err
		}
		out[id] = s
	}
	return out, rows.Err()
}

type inboxEntry struct {
	gateway    string
	s          ledger.Settlement
	amountText string // the gateway's amount, in the payment's currency
}

// peekInbox returns a gateway result that arrived before its attempt.
func (a *Activities) peekInbox(ctx context.Context, paymentID string) (inboxEntry, bool, error) {
	var e inboxEntry
	var ref, reason, amountText sql.NullString
	var status string
	err := a.DB.QueryRowContext(ctx, `SELECT gateway, status, amount_text, gateway_ref, failure_reason FROM gateway_inbox WHERE payment_id = ?`, paymentID).
		Scan(&e.gateway, &status, &amountText, &ref, &reason)
	if errors.Is(err, sql.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("read gateway inbox: %w", err)
	}
	e.s = ledger.Settlement{PaymentID: paymentID, Status: ledger.Status(status), GatewayRef: ref.String, FailureReason: reason.String}
	e.amountText = amountText.String
	return e, true, nil
}
