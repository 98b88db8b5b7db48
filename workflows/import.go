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
	"github.com/acme/payments/internal/visibility"
)

// ProgressQuery answers an import's Progress.
const ProgressQuery = "progress"

// DefaultHistoryLimit is the history length at which an import continues
// as new, well before Temporal's limits make histories slow.
const DefaultHistoryLimit = 2000

// ImportParams are an import's fixed options.
type ImportParams struct {
	ImportID    string       `json:"import_id"`
	BlobKey     string       `json:"blob_key"`
	Kind        records.Kind `json:"kind"` // "" detects from the file
	MaxRejects  int64        `json:"max_rejects"`
	ChunkRows   int          `json:"chunk_rows"`
	Parallelism int          `json:"parallelism"`
	// HistoryLimit overrides DefaultHistoryLimit (tests use small values).
	HistoryLimit int `json:"history_limit"`
	// HeartbeatTimeout is how long a silent chunk attempt (its worker
	// died) waits before it is retried elsewhere; default 30s.
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout"`
}

// ImportInput starts or continues an import: State is nil on the first run
// and carries the plan and totals across continue-as-new.
type ImportInput struct {
	Params ImportParams `json:"params"`
	State  *ImportState `json:"state"`
}

// ImportState is what an import has done so far.
type ImportState struct {
	Plan     *activities.ImportPlan `json:"plan"`
	Next     int                    `json:"next"` // next chunk to start; every chunk before it is committed
	Progress Progress               `json:"progress"`
}

// Progress is the answer to ProgressQuery and the workflow's result.
type Progress struct {
	State         string `json:"state"` // RUNNING, COMPLETED, FAILED, CANCELLED
	Type          string `json:"type"`
	Format        string `json:"format"`
	RowsTotal     int64  `json:"rows_total"`
	RowsRead      int64  `json:"rows_read"`
	RowsWritten   int64  `json:"rows_written"`
	RowsUnchanged int64  `json:"rows_unchanged"`
	RowsRejected  int64  `json:"rows_rejected"`
	ChunksDone    int    `json:"chunks_done"`
	ChunksTotal   int    `json:"chunks_total"`
	Error         string `json:"error"`
}

// importActivities names the import's activities; the worker's instance
// runs them.
var importActivities *activities.Activities

// Import plans the staged file into record-aligned chunks, then imports
// the chunks through a window of at most Parallelism activities. Each chunk
// commits with its chunk-ledger row, so a retried or replayed chunk writes
// nothing twice. It stops at max_rejects, can be cancelled, and continues
// as new before its history grows long.
func Import(ctx workflow.Context, in ImportInput) (Progress, error) {
	st := in.State
	if st == nil {
		st = &ImportState{Progress: Progress{State: importer.StateRunning}}
	}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Progress, error) { return st.Progress, nil }); err != nil {
		return st.Progress, err
	}
	p := in.Params
	vis := keepsVisibility(ctx)
	if vis {
		setKeyword(ctx, visibility.ImportState, st.Progress.State)
		setKeyword(ctx, visibility.ImportType, string(p.Kind))
	}
	if st.Plan == nil {
		if err := planImport(ctx, p, st); err != nil {
			if temporal.IsCanceledError(err) || ctx.Err() != nil {
				return finish(ctx, vis, p.ImportID, st, importer.StateCancelled, "cancelled")
			}
			return finish(ctx, vis, p.ImportID, st, importer.StateFailed, failureMessage(err))
		}
		if vis {
			setKeyword(ctx, visibility.ImportType, st.Progress.Type)
			setMemo(ctx, map[string]any{
				visibility.MemoType: st.Progress.Type, visibility.MemoFormat: st.Progress.Format,
				visibility.MemoRowsTotal: st.Progress.RowsTotal, visibility.MemoChunksTotal: st.Progress.ChunksTotal,
			})
		}
	}
	w := &importChunks{p: p, st: st, window: window{parallel: max(p.Parallelism, 1)}, limit: p.HistoryLimit}
	if w.limit <= 0 {
		w.limit = DefaultHistoryLimit
	}
	w.run(ctx)
	switch {
	case w.cancelled:
		return finish(ctx, vis, p.ImportID, st, importer.StateCancelled, "cancelled")
	case w.failure != "" && w.failure == w.rejectsFailure:
		// Said once the chunks in flight have committed, so the message
		// counts what the job row (and the progress bar) show.
		return finish(ctx, vis, p.ImportID, st, importer.StateFailed, maxRejectsMessage(st.Progress, p.MaxRejects))
	case w.failure != "":
		return finish(ctx, vis, p.ImportID, st, importer.StateFailed, w.failure)
	case st.Next < len(st.Plan.Chunks):
		workflow.GetLogger(ctx).Info("import continues as new", "import_id", p.ImportID, "next_chunk", st.Next)
		return st.Progress, workflow.NewContinueAsNewError(ctx, Import, ImportInput{Params: p, State: st})
	}
	return finish(ctx, vis, p.ImportID, st, importer.StateCompleted, "")
}

// planImport reads the staged file once and cuts it into chunks.
func planImport(ctx workflow.Context, p ImportParams, st *ImportState) error {
	planCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Hour,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrTypeBadFile},
		},
	})
	var plan activities.ImportPlan
	err := workflow.ExecuteActivity(planCtx, importActivities.PlanImport, activities.PlanImportInput{
		ImportID: p.ImportID, BlobKey: p.BlobKey, Kind: p.Kind, ChunkRows: p.ChunkRows,
	}).Get(ctx, &plan)
	if err != nil {
		return err
	}
	st.Plan = &plan
	st.Progress.Type, st.Progress.Format = string(plan.Kind), string(plan.Format)
	st.Progress.RowsTotal, st.Progress.ChunksTotal = plan.Records, len(plan.Chunks)
	return nil
}

// importChunks runs an import's chunks through a window, until they are
// done, one fails, rejects pass the limit, the import is cancelled, or the
// history is long enough to continue as new.
type importChunks struct {
	window
	p     ImportParams
	st    *ImportState
	limit int
	// rejectsFailure is the failure set when rejects passed the limit.
	rejectsFailure string
}

func (w *importChunks) run(ctx workflow.Context) {
	heartbeat := w.p.HeartbeatTimeout
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
	more := func() bool { return w.st.Next < len(w.st.Plan.Chunks) }
	w.window.run(ctx, more, func(sel workflow.Selector) { w.start(ctx, chunkCtx, sel) }, func() {
		switch {
		case w.p.MaxRejects >= 0 && w.st.Progress.RowsRejected > w.p.MaxRejects:
			if w.failure == "" {
				w.rejectsFailure = maxRejectsMessage(w.st.Progress, w.p.MaxRejects)
			}
			w.drain(w.rejectsFailure)
		case historyFull(ctx, w.limit) && more():
			w.drain("")
		}
	})
}

// start runs the next chunk and counts its figures when it commits.
func (w *importChunks) start(ctx, chunkCtx workflow.Context, sel workflow.Selector) {
	chunk := w.st.Plan.Chunks[w.st.Next]
	w.st.Next++
	f := workflow.ExecuteActivity(chunkCtx, importActivities.ImportChunk, activities.ImportChunkInput{
		ImportID: w.p.ImportID, BlobKey: w.p.BlobKey, Kind: w.st.Plan.Kind, Format: w.st.Plan.Format,
		Header: w.st.Plan.Header, Chunk: chunk,
	})
	w.add(sel, f, func(f workflow.Future) string {
		var res importer.ChunkResult
		if err := f.Get(ctx, &res); err != nil {
			return fmt.Sprintf("chunk %d: %s", chunk.Index, failureMessage(err))
		}
		pr := &w.st.Progress
		pr.RowsRead += res.RowsRead
		pr.RowsWritten += res.RowsWritten
		pr.RowsUnchanged += res.RowsUnchanged
		pr.RowsRejected += res.RowsRejected
		pr.ChunksDone++
		return ""
	})
}

// maxRejectsMessage is the failure of an import whose rejects passed its
// limit, with the figures of p: the rows rejected, and how many chunks
// were imported before the import stopped starting more.
func maxRejectsMessage(p Progress, limit int64) string {
	msg := fmt.Sprintf("max_rejects exceeded: %d rows rejected, the limit is %d", p.RowsRejected, limit)
	if p.ChunksDone < p.ChunksTotal {
		msg += fmt.Sprintf("; stopped after %d of %d chunks (%d of %d rows read)", p.ChunksDone, p.ChunksTotal, p.RowsRead, p.RowsTotal)
	}
	return msg
}

// finish records the final state on the job row, even when the workflow is
// being cancelled, and (vis) in the run's ImportState and memo.
func finish(ctx workflow.Context, vis bool, importID string, st *ImportState, state, message string) (Progress, error) {
	st.Progress.State, st.Progress.Error = state, message
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	if vis {
		setKeyword(dctx, visibility.ImportState, state)
		setMemo(dctx, map[string]any{
			visibility.MemoRowsWritten: st.Progress.RowsWritten, visibility.MemoRowsRejected: st.Progress.RowsRejected,
		})
	}
	dctx = workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
	})
	if err := workflow.ExecuteActivity(dctx, importActivities.FinishImport, activities.FinishImportInput{
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
