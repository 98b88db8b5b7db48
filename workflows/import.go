package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/payments/activities"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/records"
)

// ProgressQuery answers an import's Progress.
const ProgressQuery = "progress"

// DefaultHistoryLimit is the history length at which an import continues
// as new, well before Temporal's limits make histories slow.
const DefaultHistoryLimit = 2000

// ImportParams are an import's fixed options.
type ImportParams struct {
	ImportID    string
	BlobKey     string
	Type        records.Kind // "" detects from the file
	MaxRejects  int64
	ChunkRows   int
	Parallelism int
	// HistoryLimit overrides DefaultHistoryLimit (tests use small values).
	HistoryLimit int
	// HeartbeatTimeout is how long a silent chunk attempt (its worker
	// died) waits before it is retried elsewhere; default 30s.
	HeartbeatTimeout time.Duration
}

// ImportInput starts or continues an import: State is nil on the first run
// and carries the plan and totals across continue-as-new.
type ImportInput struct {
	Params ImportParams
	State  *ImportState
}

// ImportState is what an import has done so far.
type ImportState struct {
	Plan     *activities.ImportPlan
	Next     int // next chunk to start; every chunk before it is committed
	Progress Progress
}

// Progress is the answer to ProgressQuery and the workflow's result.
type Progress struct {
	State         string // RUNNING, COMPLETED, FAILED, CANCELLED
	Type          string
	Format        string
	RowsTotal     int64
	RowsRead      int64
	RowsWritten   int64
	RowsUnchanged int64
	RowsRejected  int64
	ChunksDone    int
	ChunksTotal   int
	Error         string
}

// Import plans the staged file into record-aligned chunks, then imports
// the chunks through a window of at most Parallelism activities. Each chunk
// commits with its chunk-ledger row, so a retried or replayed chunk writes
// nothing twice. It stops at max_rejects, can be cancelled, and continues
// as new before its history grows long.
func Import(ctx workflow.Context, in ImportInput) (Progress, error) {
	p := in.Params
	st := in.State
	if st == nil {
		st = &ImportState{Progress: Progress{State: importer.StateRunning}}
	}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Progress, error) { return st.Progress, nil }); err != nil {
		return st.Progress, err
	}
	var a *activities.Activities
	logger := workflow.GetLogger(ctx)

	if st.Plan == nil {
		planCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 2 * time.Hour,
			HeartbeatTimeout:    time.Minute,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
				NonRetryableErrorTypes: []string{activities.ErrTypeBadFile},
			},
		})
		var plan activities.ImportPlan
		err := workflow.ExecuteActivity(planCtx, a.PlanImport, activities.PlanImportInput{
			ImportID: p.ImportID, BlobKey: p.BlobKey, Type: p.Type, ChunkRows: p.ChunkRows,
		}).Get(ctx, &plan)
		if err != nil {
			if temporal.IsCanceledError(err) || ctx.Err() != nil {
				return finish(ctx, p.ImportID, st, importer.StateCancelled, "cancelled")
			}
			return finish(ctx, p.ImportID, st, importer.StateFailed, failureMessage(err))
		}
		st.Plan = &plan
		st.Progress.Type, st.Progress.Format = string(plan.Kind), string(plan.Format)
		st.Progress.RowsTotal, st.Progress.ChunksTotal = plan.Records, len(plan.Chunks)
	}

	heartbeat := p.HeartbeatTimeout
	if heartbeat <= 0 {
		heartbeat = 30 * time.Second
	}
	chunkCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    heartbeat,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrTypeBadFile},
		},
	})
	limit := p.HistoryLimit
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	parallel := max(p.Parallelism, 1)

	sel := workflow.NewSelector(ctx)
	inflight := 0
	var failure string
	cancelled := false
	sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) { cancelled = true })
	draining := false // stop starting chunks: failure, cancel or continue-as-new
	for {
		for !draining && inflight < parallel && st.Next < len(st.Plan.Chunks) {
			chunk := st.Plan.Chunks[st.Next]
			st.Next++
			inflight++
			f := workflow.ExecuteActivity(chunkCtx, a.ImportChunk, activities.ImportChunkInput{
				ImportID: p.ImportID, BlobKey: p.BlobKey, Kind: st.Plan.Kind, Format: st.Plan.Format,
				Header: st.Plan.Header, Chunk: chunk,
			})
			sel.AddFuture(f, func(f workflow.Future) {
				inflight--
				var res importer.ChunkResult
				if err := f.Get(ctx, &res); err != nil {
					if failure == "" && !cancelled {
						failure = fmt.Sprintf("chunk %d: %s", chunk.Index, failureMessage(err))
					}
					return
				}
				pr := &st.Progress
				pr.RowsRead += res.RowsRead
				pr.RowsWritten += res.RowsWritten
				pr.RowsUnchanged += res.RowsUnchanged
				pr.RowsRejected += res.RowsRejected
				pr.ChunksDone++
			})
		}
		if inflight == 0 && (draining || st.Next >= len(st.Plan.Chunks)) {
			break
		}
		sel.Select(ctx)
		switch {
		case cancelled:
			draining = true
		case failure != "":
			draining = true
		case p.MaxRejects >= 0 && st.Progress.RowsRejected > p.MaxRejects:
			failure = fmt.Sprintf("max_rejects exceeded: %d rows rejected, the limit is %d", st.Progress.RowsRejected, p.MaxRejects)
			draining = true
		case workflow.GetInfo(ctx).GetCurrentHistoryLength() > limit && st.Next < len(st.Plan.Chunks):
			draining = true
		}
		if cancelled && inflight > 0 {
			// Activities were asked to stop; don't wait for them.
			break
		}
	}

	switch {
	case cancelled:
		return finish(ctx, p.ImportID, st, importer.StateCancelled, "cancelled")
	case failure != "":
		return finish(ctx, p.ImportID, st, importer.StateFailed, failure)
	case st.Next < len(st.Plan.Chunks):
		logger.Info("import continues as new", "import_id", p.ImportID, "next_chunk", st.Next)
		return st.Progress, workflow.NewContinueAsNewError(ctx, Import, ImportInput{Params: p, State: st})
	}
	return finish(ctx, p.ImportID, st, importer.StateCompleted, "")
}

// finish records the final state on the job row, even when the workflow is
// being cancelled.
func finish(ctx workflow.Context, importID string, st *ImportState, state, message string) (Progress, error) {
	st.Progress.State, st.Progress.Error = state, message
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	dctx = workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
	})
	var a *activities.Activities
	if err := workflow.ExecuteActivity(dctx, a.FinishImport, activities.FinishImportInput{
		ImportID: importID, State: state, Error: message,
	}).Get(dctx, nil); err != nil {
		return st.Progress, err
	}
	switch state {
	case importer.StateCancelled:
		return st.Progress, temporal.NewCanceledError(message)
	case importer.StateFailed:
		return st.Progress, temporal.NewNonRetryableApplicationError(message, "ImportFailed", nil)
	}
	return st.Progress, nil
}

// failureMessage unwraps an activity failure to its cause's message.
func failureMessage(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	var to *temporal.TimeoutError
	if errors.As(err, &to) {
		return "timed out: " + to.Error()
	}
	return err.Error()
}
