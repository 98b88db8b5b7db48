package service_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/internal/stacktest"
	"github.com/acme/payments/internal/staging"
	"github.com/acme/payments/workflows"
)

// The staging retention is a Temporal schedule: created by the first
// worker, it sweeps at once and hourly, deleting staged uploads past the
// retention; a new retention updates it, zero deletes it.
func TestStagingRetentionSchedule(t *testing.T) {
	cfg := stacktest.Config(t, stacktest.Temporal(t))
	cfg.StagingRetention = time.Second
	d := stacktest.Deps(t, cfg)
	stacktest.Worker(t, d)
	ctx := context.Background()

	old, err := d.Store.Put(ctx, "uploads/", strings.NewReader("order_id,order_amount\nA1,1.00\n"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // older than the retention
	if err := service.EnsureStagingRetention(ctx, d); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if _, err := d.Store.Size(ctx, old.Key); errors.Is(err, staging.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the schedule's first sweep did not delete the expired upload")
		}
	}
	h := d.Temporal.ScheduleClient().GetHandle(ctx, workflows.StagingRetentionScheduleID)
	desc, err := h.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(desc.Info.RecentActions); n < 1 {
		t.Fatalf("the schedule ran %d actions", n)
	}
	run := desc.Info.RecentActions[0].StartWorkflowResult
	var res workflows.StagingRetentionResult
	if err := d.Temporal.GetWorkflow(ctx, run.WorkflowID, run.FirstExecutionRunID).Get(ctx, &res); err != nil || res.Deleted != 1 {
		t.Fatalf("sweep %s: %+v %v", run.WorkflowID, res, err)
	}
	stacktest.SaveHistory(t, d.Temporal, run.WorkflowID, run.FirstExecutionRunID, "staging-retention-swept")

	// Another worker with the same or another retention: no error, one
	// schedule, its retention updated.
	d.Config.StagingRetention = 48 * time.Hour
	if err := service.EnsureStagingRetention(ctx, d); err != nil {
		t.Fatal(err)
	}
	fresh, err := d.Store.Put(ctx, "uploads/", strings.NewReader("order_id,order_amount\nA2,1.00\n"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if desc, err = h.Describe(ctx); err == nil && len(desc.Info.RecentActions) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the triggered sweep did not start: %v", err)
		}
	}
	run = desc.Info.RecentActions[len(desc.Info.RecentActions)-1].StartWorkflowResult
	if err := d.Temporal.GetWorkflow(ctx, run.WorkflowID, run.FirstExecutionRunID).Get(ctx, &res); err != nil || res.Deleted != 0 {
		t.Fatalf("sweep under the new retention: %+v %v", res, err)
	}
	if _, err := d.Store.Size(ctx, fresh.Key); err != nil {
		t.Fatalf("an upload within the new retention was swept: %v", err)
	}

	// Zero keeps staged files forever: no schedule.
	d.Config.StagingRetention = 0
	if err := service.EnsureStagingRetention(ctx, d); err != nil {
		t.Fatal(err)
	}
	var nf *serviceerror.NotFound
	if _, err := h.Describe(ctx); !errors.As(err, &nf) {
		t.Fatalf("after retention 0 the schedule is still there: %v", err)
	}
	if err := service.EnsureStagingRetention(ctx, d); err != nil {
		t.Fatalf("a second retention 0: %v", err)
	}
}
