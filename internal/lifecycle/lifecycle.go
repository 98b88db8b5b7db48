// Package lifecycle talks to orders' payment workflows: it starts one on
// demand and hands it an attempt or a gateway result in one call
// (update-with-start), returning the ledger's answer. The HTTP API and the
// CLI both use it.
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

	"github.com/acme/payments/activities"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/workflows"
)

// Lifecycle sends work to order payment workflows.
type Lifecycle struct {
	Temporal client.Client
	// AttemptTimeout is how long attempts wait for their gateway;
	// zero means workflows.DefaultAttemptTimeout.
	AttemptTimeout time.Duration
}

// Attempt records a payment attempt for orderID through its workflow.
func (l *Lifecycle) Attempt(ctx context.Context, orderID string, p ledger.Payment) (ledger.Result, error) {
	p.OrderID = orderID
	return l.update(ctx, orderID, workflows.UpdateAttempt, p)
}

// GatewayResult applies a verified gateway result to the payment's order.
func (l *Lifecycle) GatewayResult(ctx context.Context, orderID, gateway string, s ledger.Settlement) (ledger.Result, error) {
	return l.update(ctx, orderID, workflows.UpdateGatewayResult, activities.GatewayInput{Gateway: gateway, Settlement: s})
}

func (l *Lifecycle) update(ctx context.Context, orderID, name string, arg any) (ledger.Result, error) {
	for try := 1; ; try++ {
		r, err := l.updateOnce(ctx, orderID, name, arg)
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

func (l *Lifecycle) updateOnce(ctx context.Context, orderID, name string, arg any) (ledger.Result, error) {
	start := l.Temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       workflows.OrderPaymentWorkflowID(orderID),
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, workflows.OrderPayment, workflows.OrderPaymentInput{OrderID: orderID, AttemptTimeout: l.AttemptTimeout})
	h, err := l.Temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
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
