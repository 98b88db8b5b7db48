package workflows

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/payments/activities"
)

// ra names the rotation's activities for mocks.
var ra *activities.Rotation

func rotateEnv() *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(Rotate)
	env.RegisterActivity(&activities.Rotation{})
	return env
}

// fakeTables answers RotateRange as if orders had ordersSteps steps and
// payments paymentsSteps, each scanning 10 rows and rotating 4, and
// records the inputs it saw.
func fakeTables(env *testsuite.TestWorkflowEnvironment, seen *[]activities.RotateRangeInput, ordersSteps, paymentsSteps int) {
	steps := map[string]int{}
	env.OnActivity(ra.RotateRange, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RotateRangeInput) (activities.RotateRangeResult, error) {
			*seen = append(*seen, in)
			steps[in.Table]++
			n := ordersSteps
			if in.Table == "payments" {
				n = paymentsSteps
			}
			done := steps[in.Table]%n == 0
			return activities.RotateRangeResult{Table: in.Table, After: in.Table + string(rune('a'+steps[in.Table])),
				Done: done, Scanned: 10, Rotated: 4}, nil
		})
}

func TestRotateWalksOrdersThenPaymentsAndChecks(t *testing.T) {
	env := rotateEnv()
	var seen []activities.RotateRangeInput
	fakeTables(env, &seen, 3, 2)
	env.OnActivity(ra.RotationRemaining, mock.Anything, "k2").Return(activities.RotationRemainingResult{}, nil).Once()
	env.ExecuteWorkflow(Rotate, RotateInput{RotationID: "k2", KeyID: "k2", PageRows: 7, PagesPerStep: 2})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var p RotateProgress
	if err := env.GetWorkflowResult(&p); err != nil {
		t.Fatal(err)
	}
	if p.State != RotationCompleted || p.Scanned != 50 || p.Rotated != 20 || p.Remaining != 0 || p.Pass != 1 {
		t.Fatalf("progress %+v", p)
	}
	// orders first, each step starting where the last ended, then payments
	// from its start.
	want := []struct{ table, after string }{{"orders", ""}, {"orders", "ordersb"}, {"orders", "ordersc"}, {"payments", ""}, {"payments", "paymentsb"}}
	if len(seen) != len(want) {
		t.Fatalf("%d steps, want %d", len(seen), len(want))
	}
	for i, w := range want {
		if seen[i].Table != w.table || seen[i].After != w.after || seen[i].KeyID != "k2" || seen[i].PageRows != 7 || seen[i].MaxPages != 2 {
			t.Fatalf("step %d: %+v, want %s after %q", i, seen[i], w.table, w.after)
		}
	}
}

func TestRotateWalksAgainWhileValuesRemain(t *testing.T) {
	env := rotateEnv()
	var seen []activities.RotateRangeInput
	fakeTables(env, &seen, 1, 1)
	env.OnActivity(ra.RotationRemaining, mock.Anything, "k2").Return(activities.RotationRemainingResult{Total: 3}, nil).Once()
	env.OnActivity(ra.RotationRemaining, mock.Anything, "k2").Return(activities.RotationRemainingResult{}, nil).Once()
	env.ExecuteWorkflow(Rotate, RotateInput{RotationID: "k2", KeyID: "k2"})
	var p RotateProgress
	if err := env.GetWorkflowResult(&p); err != nil {
		t.Fatal(err)
	}
	if p.State != RotationCompleted || p.Pass != 2 || len(seen) != 4 {
		t.Fatalf("progress %+v after %d steps", p, len(seen))
	}
}

func TestRotateGivesUpAfterMaxPasses(t *testing.T) {
	env := rotateEnv()
	var seen []activities.RotateRangeInput
	fakeTables(env, &seen, 1, 1)
	env.OnActivity(ra.RotationRemaining, mock.Anything, "k2").Return(activities.RotationRemainingResult{Total: 3}, nil)
	env.ExecuteWorkflow(Rotate, RotateInput{RotationID: "k2", KeyID: "k2", MaxPasses: 2})
	err := env.GetWorkflowError()
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != "RotationFailed" || len(seen) != 4 {
		t.Fatalf("err %v after %d steps", err, len(seen))
	}
}

func TestRotateFailsOnAWorkerWithAnotherKey(t *testing.T) {
	env := rotateEnv()
	env.OnActivity(ra.RotateRange, mock.Anything, mock.Anything).Return(activities.RotateRangeResult{},
		temporal.NewNonRetryableApplicationError("wrong key", activities.ErrTypeRotationWrongKey, nil)).Once()
	env.ExecuteWorkflow(Rotate, RotateInput{RotationID: "k2", KeyID: "k2"})
	var app *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &app) || app.Message() != "wrong key" {
		t.Fatalf("err %v", err)
	}
}

func TestRotateContinuesAsNewWithItsCursor(t *testing.T) {
	env := rotateEnv()
	var seen []activities.RotateRangeInput
	fakeTables(env, &seen, 100, 1)
	env.OnActivity(ra.RotationRemaining, mock.Anything, mock.Anything).Return(activities.RotationRemainingResult{}, nil).Maybe()
	steps := 0
	env.SetOnActivityCompletedListener(func(*activity.Info, converter.EncodedValue, error) {
		if steps++; steps == 5 {
			env.SetContinueAsNewSuggested(true)
		}
	})
	env.ExecuteWorkflow(Rotate, RotateInput{RotationID: "k2", KeyID: "k2"})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next RotateInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	last := seen[len(seen)-1]
	if next.KeyID != "k2" || next.State == nil || next.State.Table != 0 || next.State.After != "orders"+string(rune('a'+len(seen))) ||
		next.State.Progress.Scanned != int64(len(seen))*10 || len(seen) < 5 || last.Table != "orders" {
		t.Fatalf("carried %+v after %d steps", next.State, len(seen))
	}
}
