package workflows_test

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/acme/payments/activities"
	"github.com/acme/payments/internal/payload"
	"github.com/acme/payments/workflows"
)

// A sweep deletes by the workflow's clock minus the retention, so a
// retried activity deletes by the same cutoff.
func TestStagingRetentionCutoff(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var got []time.Time
	a := &activities.Activities{SweepUploads: func(_ context.Context, before time.Time) (int, error) {
		got = append(got, before)
		return 3, nil
	}}
	env.RegisterActivity(a)
	start := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	env.SetStartTime(start)
	env.ExecuteWorkflow(workflows.StagingRetention, workflows.StagingRetentionInput{Retention: payload.Duration(7 * 24 * time.Hour)})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res workflows.StagingRetentionResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	want := start.Add(-7 * 24 * time.Hour)
	if len(got) != 1 || !got[0].Equal(want) || res.Deleted != 3 || !res.Cutoff.Equal(want) {
		t.Fatalf("swept before %v, result %+v; want one sweep before %v deleting 3", got, res, want)
	}
}
