// Package ingest starts imports: it stages an uploaded file in the staging
// store while hashing it, records the import job and starts its workflow.
// The HTTP API's /upload and `starter import` both use it, so the same
// content and options always map to the same import.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/records"
	"github.com/acme/payments/internal/staging"
	"github.com/acme/payments/internal/visibility"
	"github.com/acme/payments/workflows"
)

// Intake takes files in: it stages each, records its import job and starts
// the job's workflow.
type Intake struct {
	DB          *sqlx.DB
	Store       *staging.Store
	Temporal    client.Client
	Logger      *slog.Logger
	MaxBytes    int64
	ChunkRows   int
	Parallelism int
	// HistoryLimit overrides when an import continues as new (tests).
	HistoryLimit int
}

// Options are the caller's import options.
type Options struct {
	Kind       records.Kind // "" detects from the file
	MaxRejects int64
	// FileName is the uploaded file's name, as the user gave it; it is
	// cleaned (importer.CleanFileName) and kept in the job and the
	// workflow's memo, but is no part of the import's identity.
	FileName string
}

// uploadsPrefix is where uploads are staged.
const uploadsPrefix = "uploads/"

// ErrBadOption is returned for options that cannot be right.
var ErrBadOption = errors.New("bad import option")

// Start stages r and starts its import. When the same content with the
// same options was imported before, it returns that import with
// created = false and discards the new copy.
func (in *Intake) Start(ctx context.Context, r io.Reader, opts Options) (importer.Job, bool, error) {
	if _, err := records.ParseKind(string(opts.Kind)); err != nil {
		return importer.Job{}, false, fmt.Errorf("%w: %v", ErrBadOption, err)
	}
	if opts.MaxRejects < 0 {
		return importer.Job{}, false, fmt.Errorf("%w: max_rejects must be 0 or more", ErrBadOption)
	}
	obj, err := in.Store.Put(ctx, uploadsPrefix, r, in.MaxBytes)
	if err != nil {
		return importer.Job{}, false, err
	}
	id := importer.ImportID(obj.SHA256, string(opts.Kind), opts.MaxRejects)
	var fileName *string
	if n := importer.CleanFileName(opts.FileName); n != "" {
		fileName = &n
	}
	job, created, err := importer.CreateJob(ctx, in.DB, importer.Job{
		ImportID: id, WorkflowID: workflows.ImportWorkflowID(id), Type: string(opts.Kind), FileName: fileName,
		BlobKey: obj.Key, ContentSHA256: obj.SHA256, SizeBytes: obj.Size, MaxRejects: opts.MaxRejects,
	})
	if err != nil {
		_ = in.Store.Delete(context.WithoutCancel(ctx), obj.Key)
		return importer.Job{}, false, err
	}
	if !created {
		_ = in.Store.Delete(context.WithoutCancel(ctx), obj.Key)
	}
	// Start (or find) the workflow of a job still running, new or not: a
	// crash between recording the job and starting its workflow must not
	// strand the import.
	if job.State == importer.StateRunning {
		if err := in.startWorkflow(ctx, job); err != nil {
			return job, created, err
		}
	}
	if created {
		in.Logger.Info("import started", "import_id", id, "bytes", obj.Size, "type", string(opts.Kind))
	}
	return job, created, nil
}

func (in *Intake) startWorkflow(ctx context.Context, job importer.Job) error {
	memo := map[string]any{visibility.MemoSizeBytes: job.SizeBytes}
	if job.FileName != nil {
		// Shown next to the run; never in its id or search attributes.
		memo[visibility.MemoFileName] = *job.FileName
	}
	_, err := in.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        job.WorkflowID,
		TaskQueue: workflows.TaskQueue,
		// The job row decides: a running job whose workflow has closed
		// (Temporal's state kept, the database restored) gets a new run,
		// which finds its committed chunks in the chunk ledger; an open
		// run is joined. (An open run that has just finished an earlier
		// incarnation of the job, in the instant between its last
		// activity and its close, is joined too, and the new row waits
		// for the next upload: a restore lands in that instant only by
		// chance.)
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		// Filterable from the start; the workflow keeps them current.
		TypedSearchAttributes: importAttributes(job),
		Memo:                  memo,
	}, workflows.Import, workflows.ImportInput{Params: workflows.ImportParams{
		ImportID: job.ImportID, BlobKey: job.BlobKey, Kind: records.Kind(job.Type),
		MaxRejects: job.MaxRejects, ChunkRows: in.ChunkRows, Parallelism: in.Parallelism,
		HistoryLimit: in.HistoryLimit,
	}})
	if err != nil {
		return fmt.Errorf("start import workflow %s: %w", job.WorkflowID, visibility.Explain(err))
	}
	return nil
}

// importAttributes are a starting import's search attributes: RUNNING, and
// its type when the caller gave it (else the workflow sets it once the file
// is planned).
func importAttributes(job importer.Job) temporal.SearchAttributes {
	set := []temporal.SearchAttributeUpdate{visibility.ImportState.ValueSet(importer.StateRunning)}
	if job.Type != "" {
		set = append(set, visibility.ImportType.ValueSet(job.Type))
	}
	return temporal.NewSearchAttributes(set...)
}

// Progress asks a running import's workflow for its progress.
func Progress(ctx context.Context, c client.Client, importID string) (workflows.Progress, error) {
	var p workflows.Progress
	v, err := c.QueryWorkflow(ctx, workflows.ImportWorkflowID(importID), "", workflows.ProgressQuery)
	if err != nil {
		return p, fmt.Errorf("query import %s: %w", importID, err)
	}
	if err := v.Get(&p); err != nil {
		return p, fmt.Errorf("query import %s: %w", importID, err)
	}
	return p, nil
}

// Cancel asks an import's workflow to stop; committed chunks stay.
func Cancel(ctx context.Context, c client.Client, importID string) error {
	if err := c.CancelWorkflow(ctx, workflows.ImportWorkflowID(importID), ""); err != nil {
		return fmt.Errorf("cancel import %s: %w", importID, err)
	}
	return nil
}

// Follow polls an import until it ends, calling update with the job row
// (kept current by the chunks) and, while the workflow runs, its progress
// query. With a nil update it only waits, reading the job row alone. It
// returns the final job.
func Follow(ctx context.Context, db *sqlx.DB, c client.Client, importID string, every time.Duration, update func(importer.Job, *workflows.Progress)) (importer.Job, error) {
	for {
		job, err := importer.GetJob(ctx, db, importID)
		if err != nil {
			return job, err
		}
		if update != nil {
			var p *workflows.Progress
			if job.State == importer.StateRunning {
				if q, err := Progress(ctx, c, importID); err == nil {
					p = &q
				}
			}
			update(job, p)
		}
		if job.State != importer.StateRunning {
			return job, nil
		}
		select {
		case <-ctx.Done():
			return job, ctx.Err()
		case <-time.After(every):
		}
	}
}

// SweepUploads deletes the staged uploads last written before before,
// except those of imports still running, which read them, and returns how
// many it deleted (SPEC 4: staged files hold customer data; they are kept
// only PAYMENTS_STAGING_RETENTION).
func (in *Intake) SweepUploads(ctx context.Context, before time.Time) (int, error) {
	var running []string
	if err := in.DB.SelectContext(ctx, &running, "SELECT blob_key FROM import_jobs WHERE state = ?", importer.StateRunning); err != nil {
		return 0, fmt.Errorf("sweep uploads: %w", err)
	}
	keep := make(map[string]bool, len(running))
	for _, k := range running {
		keep[k] = true
	}
	n, err := in.Store.DeleteOlderThan(ctx, uploadsPrefix, before, func(key string) bool { return keep[key] })
	if err != nil {
		return n, fmt.Errorf("sweep uploads: %w", err)
	}
	return n, nil
}
