package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/staging"
	"github.com/acme/payments/workflows"
)

// How a retry went (Retry's how).
const (
	// RetryRestarted: the same import (same options) runs again.
	RetryRestarted = "restarted"
	// RetryStarted: a new import of the same file with the new options.
	RetryStarted = "started"
	// RetryExists: the import with the new options exists, running or
	// completed; nothing was started.
	RetryExists = "exists"
)

// RetryOptions are what a retry changes; nil keeps the import's own.
type RetryOptions struct {
	MaxRejects *int64
}

// ErrStagedFileGone is returned by Retry when the import's staged file has
// been swept (PAYMENTS_STAGING_RETENTION): the file must be uploaded again.
var ErrStagedFileGone = errors.New("its staged file is gone (uploads are kept PAYMENTS_STAGING_RETENTION): import the file again")

// ErrStillOverLimit is returned by Retry for an import whose rejects passed
// its max_rejects, retried with that limit: it would fail again at once
// (and import a few more chunks on the way), so a retry needs a higher one.
var ErrStillOverLimit = errors.New("its rejects already pass the limit")

// Retry runs an ended (FAILED or CANCELLED) import again from its staged
// file, so the file need not be at hand. The import's id derives from its
// content and options, as an upload's does, so:
//
//   - With the same options it is the same import: its job goes back to
//     RUNNING and a new run of its workflow finds the chunks it committed in
//     the chunk ledger, neither writing nor counting them again, and imports
//     the rest. An import that failed on max_rejects is refused (with
//     ErrStillOverLimit) when its rejects already pass the limit.
//   - With other options (a higher max_rejects) it is the import an upload
//     of the same file with those options would start, reading the same
//     staged file: its chunks run anew, the rows the earlier import committed
//     are rows_unchanged (never written twice) and its rejects list every
//     bad row. If that import exists, it is returned as Start would (and
//     retried itself when it ended FAILED or CANCELLED).
//
// how is RetryRestarted, RetryStarted or RetryExists.
func (in *Intake) Retry(ctx context.Context, importID string, opts RetryOptions) (job importer.Job, how string, err error) {
	old, err := importer.GetJob(ctx, in.DB, importID)
	if err != nil {
		return old, "", err
	}
	maxRejects := old.MaxRejects
	if opts.MaxRejects != nil {
		maxRejects = *opts.MaxRejects
	}
	if maxRejects < 0 {
		return old, "", fmt.Errorf("%w: max_rejects must be 0 or more", ErrBadOption)
	}
	if old.State != importer.StateFailed && old.State != importer.StateCancelled {
		return old, "", fmt.Errorf("import %s is %s: %w", old.ImportID, old.State, importer.ErrNotRetryable)
	}
	// The type asked for when it was uploaded (the job row holds the type
	// found in the file once planned): the id tells which it was.
	typ := old.Type
	if importer.ImportID(old.ContentSHA256, "", old.MaxRejects) == old.ImportID {
		typ = ""
	}
	id := importer.ImportID(old.ContentSHA256, typ, maxRejects)
	if id == old.ImportID {
		return in.restart(ctx, old)
	}
	if _, err := in.Store.Size(ctx, old.BlobKey); err != nil {
		if errors.Is(err, staging.ErrNotFound) {
			return old, "", fmt.Errorf("retry import %s: %w", old.ImportID, ErrStagedFileGone)
		}
		return old, "", fmt.Errorf("retry import %s: %w", old.ImportID, err)
	}
	job, created, err := importer.CreateJob(ctx, in.DB, importer.Job{
		ImportID: id, WorkflowID: workflows.ImportWorkflowID(id), Type: typ,
		BlobKey: old.BlobKey, ContentSHA256: old.ContentSHA256, SizeBytes: old.SizeBytes, MaxRejects: maxRejects,
	})
	if err != nil {
		return job, "", err
	}
	how = RetryExists
	switch {
	case !created && (job.State == importer.StateFailed || job.State == importer.StateCancelled):
		return in.restart(ctx, job)
	case job.State == importer.StateRunning:
		// New, or recorded by a retry that crashed before its start.
		if err := in.startWorkflow(ctx, job); err != nil {
			return job, "", err
		}
	}
	if created {
		how = RetryStarted
		in.Logger.Info("import retried", "import_id", id, "retry_of", old.ImportID, "max_rejects", maxRejects)
	}
	return job, how, nil
}

// restart runs an ended import again with its own options.
func (in *Intake) restart(ctx context.Context, job importer.Job) (importer.Job, string, error) {
	if job.MaxRejects >= 0 && job.RowsRejected > job.MaxRejects {
		return job, "", fmt.Errorf("import %s has %d rows rejected, past its max_rejects of %d: %w: give a higher max_rejects",
			job.ImportID, job.RowsRejected, job.MaxRejects, ErrStillOverLimit)
	}
	if _, err := in.Store.Size(ctx, job.BlobKey); err != nil {
		if errors.Is(err, staging.ErrNotFound) {
			return job, "", fmt.Errorf("retry import %s: %w", job.ImportID, ErrStagedFileGone)
		}
		return job, "", fmt.Errorf("retry import %s: %w", job.ImportID, err)
	}
	if err := in.awaitClosed(ctx, job); err != nil {
		return job, "", err
	}
	if err := importer.Restart(ctx, in.DB, job.ImportID); err != nil {
		return job, "", err
	}
	job, err := importer.GetJob(ctx, in.DB, job.ImportID)
	if err != nil {
		return job, "", err
	}
	if err := in.startWorkflow(ctx, job); err != nil {
		return job, "", err
	}
	in.Logger.Info("import restarted", "import_id", job.ImportID)
	return job, RetryRestarted, nil
}

// closeWait bounds how long a retry waits for the run that ended an import
// to close.
const closeWait = 30 * time.Second

// awaitClosed waits until the workflow run that ended job has closed. It
// records the end on the job row just before it closes, and a run started
// in that instant would be joined to it (see startWorkflow) and end with
// it, leaving the job RUNNING with no run.
func (in *Intake) awaitClosed(ctx context.Context, job importer.Job) error {
	wctx, cancel := context.WithTimeout(ctx, closeWait)
	defer cancel()
	desc, err := in.Temporal.DescribeWorkflowExecution(wctx, job.WorkflowID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("retry import %s: %w", job.ImportID, err)
	}
	if desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return nil
	}
	_ = in.Temporal.GetWorkflow(wctx, job.WorkflowID, "").Get(wctx, nil) // its outcome is on the job row
	if wctx.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("retry import %s: its workflow %s is still open %s after the import ended; try again", job.ImportID, job.WorkflowID, closeWait)
	}
	return ctx.Err()
}
