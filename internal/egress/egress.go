// Package egress starts exports and hands out their files: it records an
// export job and starts its workflow, follows it, cancels it, and opens the
// finished file from the staging store. The HTTP API's /exports and
// `starter export` both use it, so the same parameters while an export of
// them runs always name that export. It is the counterpart of package
// ingest; the rows themselves are package export's.
package egress

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/acme/payments/activities"
	"github.com/acme/payments/internal/export"
	"github.com/acme/payments/internal/staging"
	"github.com/acme/payments/internal/visibility"
	"github.com/acme/payments/workflows"
)

// Exports starts and serves exports.
type Exports struct {
	DB          *sqlx.DB
	Store       *staging.Store
	Temporal    client.Client
	Logger      *slog.Logger
	ChunkRows   int
	Parallelism int
	// HistoryLimit overrides when an export continues as new (tests).
	HistoryLimit int
}

// Start records an export of p and starts its workflow. While an export of
// the same parameters runs it returns that one with created = false (and
// makes sure its workflow runs: a crash between recording and starting
// must not strand it).
func (e *Exports) Start(ctx context.Context, p export.Params) (export.Job, bool, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return export.Job{}, false, err
	}
	id := hex.EncodeToString(b[:])
	job, created, err := export.CreateJob(ctx, e.DB, id, workflows.ExportWorkflowID(id), p)
	if err != nil {
		return export.Job{}, false, err
	}
	if err := e.startWorkflow(ctx, job); err != nil {
		if created {
			// Free the parameters: nothing runs this export.
			_ = export.Finish(context.WithoutCancel(ctx), e.DB, job.ExportID, export.StateFailed, "", 0, "could not start its workflow")
		}
		return job, created, err
	}
	if created {
		e.Logger.Info("export started", "export_id", job.ExportID, "type", job.Type, "format", job.Format)
	}
	return job, created, nil
}

func (e *Exports) startWorkflow(ctx context.Context, job export.Job) error {
	p, err := job.Params()
	if err != nil {
		return err
	}
	_, err = e.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       job.WorkflowID,
		TaskQueue:                workflows.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		// Filterable from the start; the workflow keeps it current.
		TypedSearchAttributes: temporal.NewSearchAttributes(visibility.ExportState.ValueSet(export.StateRunning)),
		Memo:                  map[string]any{visibility.MemoType: string(p.Kind), visibility.MemoFormat: string(p.Format)},
	}, workflows.Export, workflows.ExportInput{
		Params:       activities.ExportParams{ExportID: job.ExportID, Params: p, ChunkRows: e.ChunkRows, Parallelism: e.Parallelism},
		HistoryLimit: e.HistoryLimit,
	})
	if err != nil {
		return fmt.Errorf("start export workflow %s: %w", job.WorkflowID, visibility.Explain(err))
	}
	return nil
}

// Cancel asks an export's workflow to stop; its parts are removed.
func (e *Exports) Cancel(ctx context.Context, exportID string) error {
	if err := e.Temporal.CancelWorkflow(ctx, workflows.ExportWorkflowID(exportID), ""); err != nil {
		return fmt.Errorf("cancel export %s: %w", exportID, err)
	}
	return nil
}

// ErrNotReady is returned by Open for an export without a finished file.
var ErrNotReady = errors.New("the export has no file (yet)")

// Open returns the file of a COMPLETED export.
func (e *Exports) Open(ctx context.Context, job export.Job) (io.ReadCloser, error) {
	if job.State != export.StateCompleted || job.BlobKey == nil {
		return nil, fmt.Errorf("export %s is %s: %w", job.ExportID, job.State, ErrNotReady)
	}
	return e.Store.Open(ctx, *job.BlobKey)
}

// Follow polls an export until it ends, calling update (if not nil) with
// the job row each time, and returns the final job.
func (e *Exports) Follow(ctx context.Context, exportID string, every time.Duration, update func(export.Job)) (export.Job, error) {
	for {
		job, err := export.GetJob(ctx, e.DB, exportID)
		if err != nil {
			return job, err
		}
		if update != nil {
			update(job)
		}
		if job.State != export.StateRunning {
			return job, nil
		}
		select {
		case <-ctx.Done():
			return job, ctx.Err()
		case <-time.After(every):
		}
	}
}
