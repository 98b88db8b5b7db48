// Package lifecycle hands live payments to the ledger and to their orders'
// payment workflows. An attempt is recorded by the ledger first, so card
// details never reach Temporal, and its workflow (started on demand) is
// told only its id; a gateway result goes to the workflow, which applies it
// through the ledger, or waits in the ledger's inbox when its attempt has
// not arrived. The HTTP API and the CLI both use it.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/workflows"
)

// Client sends live payments on their way. It is safe for concurrent use.
type Client struct {
	Temporal client.Client
	Ledger   *ledger.Ledger
	// AttemptTimeout is how long attempts wait for their gateway; zero
	// means workflows.DefaultAttemptTimeout.
	AttemptTimeout time.Duration
}

// Attempt records a live attempt through the ledger and then, while it is
// PENDING, signals its order's workflow (starting it if none runs) so the
// attempt fails with TIMEOUT if its gateway never answers. A refused
// attempt reaches no workflow. An error after the ledger's answer leaves
// the attempt recorded: the same attempt again is Unchanged and signals
// again.
func (c *Client) Attempt(ctx context.Context, a ledger.Attempt) (ledger.AttemptResult, error) {
	out, err := c.Ledger.Attempt(ctx, a)
	if err != nil || out.Result.Outcome == ledger.Rejected {
		return out, err
	}
	if out.Result.Status != ledger.StatusPending {
		// Settled at once by a result queued before it: nothing to wait
		// for, but an open workflow may now be able to complete.
		return out, c.Wake(ctx, a.OrderID)
	}
	_, err = c.Temporal.SignalWithStartWorkflow(ctx, workflows.OrderPaymentWorkflowID(a.OrderID),
		workflows.SignalAttemptRecorded, workflows.AttemptRecorded{PaymentID: a.PaymentID},
		client.StartWorkflowOptions{
			ID:                    workflows.OrderPaymentWorkflowID(a.OrderID),
			TaskQueue:             workflows.TaskQueue,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		}, workflows.OrderPayment, workflows.OrderPaymentInput{OrderID: a.OrderID, AttemptTimeout: c.AttemptTimeout})
	if err != nil {
		return out, fmt.Errorf("order %s: signal attempt %s: %w", a.OrderID, a.PaymentID, err)
	}
	return out, nil
}

// GatewayResult hands a verified gateway result to its payment's order
// workflow and returns the ledger's answer. A result for a payment not
// recorded yet is queued instead (queued is true) and applied when the
// attempt arrives. A result from a gateway other than the one its payment
// was sent to reaches no workflow: the error wraps ledger.ErrWrongGateway.
// g must pass ledger's GatewayResult.Check.
func (c *Client) GatewayResult(ctx context.Context, g ledger.GatewayResult) (res ledger.Result, queued bool, err error) {
	orderID, queued, err := c.Ledger.RouteGatewayResult(ctx, g)
	if err != nil || queued {
		return ledger.Result{PaymentID: g.PaymentID}, queued, err
	}
	g.OrderID = orderID
	res, err = c.update(ctx, orderID, workflows.UpdateGatewayResult, g)
	return res, false, err
}

// Wake tells an order's open payment workflow that its payments changed
// behind its back; an order without one needs no word.
func (c *Client) Wake(ctx context.Context, orderID string) error {
	err := c.Temporal.SignalWorkflow(ctx, workflows.OrderPaymentWorkflowID(orderID), "", workflows.SignalLedgerChanged, nil)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("order %s: wake its workflow: %w", orderID, err)
	}
	return nil
}

func (c *Client) update(ctx context.Context, orderID, name string, arg any) (ledger.Result, error) {
	for try := 1; ; try++ {
		r, err := c.updateOnce(ctx, orderID, name, arg)
		if err == nil || try == 5 || !closedUnderUpdate(err) {
			return r, err
		}
	}
}

// closedUnderUpdate reports whether an update failed only because the run
// it reached completed (or continued as new) before the update finished;
// sent again it reaches a new run, and every update is idempotent.
func closedUnderUpdate(err error) bool {
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.Type() == "AcceptedUpdateCompletedWorkflow" {
		return true
	}
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

func (c *Client) updateOnce(ctx context.Context, orderID, name string, arg any) (ledger.Result, error) {
	start := c.Temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       workflows.OrderPaymentWorkflowID(orderID),
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, workflows.OrderPayment, workflows.OrderPaymentInput{OrderID: orderID, AttemptTimeout: c.AttemptTimeout})
	h, err := c.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName:   name,
			Args:         []any{arg},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return ledger.Result{}, fmt.Errorf("order %s: %s: %w", orderID, name, err)
	}
	var r ledger.Result
	if err := h.Get(ctx, &r); err != nil {
		return ledger.Result{}, fmt.Errorf("order %s: %s: %w", orderID, name, err)
	}
	return r, nil
}
