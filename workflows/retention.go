package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/payments/activities"
	"github.com/acme/payments/internal/payload"
)

// StagingRetentionScheduleID is the Temporal schedule that runs
// StagingRetention, so staged uploads go after PAYMENTS_STAGING_RETENTION
// whether or not any one worker stays up, and operators see each sweep in
// the UI.
const StagingRetentionScheduleID = "staging-retention"

// StagingRetentionEvery is how often the schedule sweeps.
const StagingRetentionEvery = time.Hour

// StagingRetentionInput is a sweep's one parameter.
type StagingRetentionInput struct {
	// Retention is how long a staged upload is kept after it was written.
	Retention payload.Duration `json:"retention"`
}

// StagingRetentionResult says what a sweep deleted.
type StagingRetentionResult struct {
	Cutoff  time.Time `json:"cutoff,omitzero"`
	Deleted int       `json:"deleted"`
}

// retentionActivities names the sweep's activity; the worker's instance
// runs it.
var retentionActivities *activities.Activities

// StagingRetention deletes the staged uploads written before now minus
// Retention, except those of imports still running (their chunks read
// them). The cutoff comes from the workflow's clock, so a retried activity
// deletes by the same cutoff.
func StagingRetention(ctx workflow.Context, in StagingRetentionInput) (StagingRetentionResult, error) {
	cutoff := workflow.Now(ctx).Add(-time.Duration(in.Retention)).UTC()
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 10},
	})
	var n int
	err := workflow.ExecuteActivity(ctx, retentionActivities.SweepStagedUploads, activities.SweepInput{Before: cutoff}).Get(ctx, &n)
	return StagingRetentionResult{Cutoff: cutoff, Deleted: n}, err
}
