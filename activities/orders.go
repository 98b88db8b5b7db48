package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/money"
)

// The order payment workflow's steps. Each is one call of the ledger,
// which decides under the order's lock and answers with the order's state;
// they run as local activities.

// AttemptInput is UpdateAttempt's attempt (see workflows.UpdateAttempt).
type AttemptInput struct {
	OrderID string         `json:"order_id"`
	Payment ledger.Payment `json:"payment"`
}

// TimeoutInput names an attempt its gateway never answered.
type TimeoutInput struct {
	OrderID   string `json:"order_id"`
	PaymentID string `json:"payment_id"`
}

// RefreshInput asks for an order's state and which of the given pending
// attempts are settled now.
type RefreshInput struct {
	OrderID string   `json:"order_id"`
	Pending []string `json:"pending"`
}

// OpenOrderWorkflow notes that the order's payment workflow is open, so
// bulk imports that change the order wake it, and reads the order.
func (a *Activities) OpenOrderWorkflow(ctx context.Context, orderID string) (ledger.AttemptResult, error) {
	if _, err := a.DB.ExecContext(ctx, `INSERT IGNORE INTO order_workflows (order_id, opened_at) VALUES (?, ?)`,
		orderID, time.Now().UTC()); err != nil {
		return ledger.AttemptResult{}, fmt.Errorf("open order workflow %s: %w", orderID, err)
	}
	return a.Ledger.Refresh(ctx, orderID, nil)
}

// CloseOrderWorkflow notes that the order's payment workflow ended.
func (a *Activities) CloseOrderWorkflow(ctx context.Context, orderID string) (ledger.AttemptResult, error) {
	if _, err := a.DB.ExecContext(ctx, `DELETE FROM order_workflows WHERE order_id = ?`, orderID); err != nil {
		return ledger.AttemptResult{}, fmt.Errorf("close order workflow %s: %w", orderID, err)
	}
	return a.Ledger.Refresh(ctx, orderID, nil)
}

// RecordAttempt records an attempt that reached the workflow as an update
// (see workflows.UpdateAttempt) through the ledger, as attempts are
// recorded now. Such attempts always carried their currency.
func (a *Activities) RecordAttempt(ctx context.Context, in AttemptInput) (ledger.AttemptResult, error) {
	p := in.Payment
	amount, err := money.Format(p.Amount, p.Currency)
	if err != nil {
		amount = "" // refused by the ledger
	}
	return a.Ledger.Attempt(ctx, ledger.Attempt{PaymentID: p.PaymentID, OrderID: in.OrderID, Amount: amount,
		Currency: p.Currency, Method: p.Method, Details: p.Details})
}

// ApplyGatewayResult settles an attempt. A repeat is a no-op; a
// contradiction changes nothing and is kept as an audit event.
func (a *Activities) ApplyGatewayResult(ctx context.Context, g ledger.GatewayResult) (ledger.AttemptResult, error) {
	return a.Ledger.ApplyGatewayResult(ctx, g)
}

// TimeoutAttempt fails an attempt still PENDING with reason TIMEOUT.
func (a *Activities) TimeoutAttempt(ctx context.Context, in TimeoutInput) (ledger.AttemptResult, error) {
	return a.Ledger.TimeOut(ctx, in.OrderID, in.PaymentID)
}

// RefreshOrder re-reads an order after a change the workflow did not make.
func (a *Activities) RefreshOrder(ctx context.Context, in RefreshInput) (ledger.AttemptResult, error) {
	return a.Ledger.Refresh(ctx, in.OrderID, in.Pending)
}
