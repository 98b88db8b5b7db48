package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/payments/activities"
	"github.com/acme/payments/internal/export"
	"github.com/acme/payments/internal/visibility"
)

// ExportWorkflowID is the id of the workflow of export exportID.
func ExportWorkflowID(exportID string) string { return "export/" + exportID }

// ExportInput starts or continues an export: State is nil on the first run
// and carries the plan and totals across continue-as-new.
type ExportInput struct {
	Params activities.ExportParams `json:"params"`
	// HistoryLimit overrides DefaultHistoryLimit (tests use small values).
	HistoryLimit int `json:"history_limit"`
	// HeartbeatTimeout is how long a silent part attempt (its worker died)
	// waits before it is retried elsewhere; default 30s.
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout"`
	State            *ExportState  `json:"state"`
}

// ExportState is what an export has done so far.
type ExportState struct {
	Plan     *activities.ExportPlan `json:"plan"`
	Next     int                    `json:"next"` // next part to start; every part before it is committed
	Progress ExportProgress         `json:"progress"`
}

// ExportProgress answers an export's ProgressQuery and is its result.
type ExportProgress struct {
	State       string `json:"state"` // RUNNING, COMPLETED, FAILED, CANCELLED
	Rows        int64  `json:"rows"`
	ChunksDone  int    `json:"chunks_done"`
	ChunksTotal int    `json:"chunks_total"`
	Error       string `json:"error"`
}

// exportActivities names the export's activities; the worker's instance
// runs them.
var exportActivities *activities.Activities

// Export writes an export's file: it cuts the table's keys into ranges,
// writes a part per range through a window of at most Parallelism
// activities (each part committed with its chunk-ledger row, so a retried
// or replayed part is written once), then joins the parts into one file in
// the staging store. It can be cancelled and continues as new before its
// history grows long.
func Export(ctx workflow.Context, in ExportInput) (ExportProgress, error) {
	st := in.State
	if st == nil {
		st = &ExportState{Progress: ExportProgress{State: export.StateRunning}}
	}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (ExportProgress, error) { return st.Progress, nil }); err != nil {
		return st.Progress, err
	}
	p := in.Params
	vis := keepsVisibility(ctx)
	if vis {
		setKeyword(ctx, visibility.ExportState, st.Progress.State)
	}
	if st.Plan == nil {
		if err := planExport(ctx, p, st); err != nil {
			return finishExport(ctx, vis, p.ExportID, st, failedOrCancelled(ctx, err))
		}
		if vis {
			setMemo(ctx, map[string]any{visibility.MemoChunksTotal: st.Progress.ChunksTotal})
		}
	}
	w := &exportParts{in: in, st: st, window: window{parallel: max(p.Parallelism, 1)}}
	w.run(ctx)
	switch {
	case w.cancelled:
		return finishExport(ctx, vis, p.ExportID, st, activities.FinishExportInput{State: export.StateCancelled, Error: "cancelled"})
	case w.failure != "":
		return finishExport(ctx, vis, p.ExportID, st, activities.FinishExportInput{State: export.StateFailed, Error: w.failure})
	case st.Next < len(st.Plan.Ranges):
		return st.Progress, workflow.NewContinueAsNewError(ctx, Export, ExportInput{Params: p, HistoryLimit: in.HistoryLimit,
			HeartbeatTimeout: in.HeartbeatTimeout, State: st})
	}
	joinCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Hour,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})
	var file activities.JoinExportResult
	if err := workflow.ExecuteActivity(joinCtx, exportActivities.JoinExport, p).Get(ctx, &file); err != nil {
		return finishExport(ctx, vis, p.ExportID, st, failedOrCancelled(ctx, err))
	}
	return finishExport(ctx, vis, p.ExportID, st, activities.FinishExportInput{State: export.StateCompleted, File: file})
}

// planExport cuts the export's table into key ranges.
func planExport(ctx workflow.Context, p activities.ExportParams, st *ExportState) error {
	planCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})
	var plan activities.ExportPlan
	if err := workflow.ExecuteActivity(planCtx, exportActivities.PlanExport, p).Get(ctx, &plan); err != nil {
		return err
	}
	st.Plan = &plan
	st.Progress.ChunksTotal = len(plan.Ranges)
	return nil
}

func failedOrCancelled(ctx workflow.Context, err error) activities.FinishExportInput {
	if temporal.IsCanceledError(err) || ctx.Err() != nil {
		return activities.FinishExportInput{State: export.StateCancelled, Error: "cancelled"}
	}
	return activities.FinishExportInput{State: export.StateFailed, Error: failureMessage(err)}
}

// exportParts writes an export's parts through a window.
type exportParts struct {
	window
	in ExportInput
	st *ExportState
}

func (w *exportParts) run(ctx workflow.Context) {
	heartbeat := w.in.HeartbeatTimeout
	if heartbeat <= 0 {
		heartbeat = 30 * time.Second
	}
	partCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    heartbeat,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrTypeExportEnded},
		},
	})
	limit := w.in.HistoryLimit
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	more := func() bool { return w.st.Next < len(w.st.Plan.Ranges) }
	w.window.run(ctx, more, func(sel workflow.Selector) { w.start(ctx, partCtx, sel) }, func() {
		if historyFull(ctx, limit) && more() {
			w.drain("")
		}
	})
}

// start writes the next part and counts its rows when it commits.
func (w *exportParts) start(ctx, partCtx workflow.Context, sel workflow.Selector) {
	i := w.st.Next
	w.st.Next++
	p := w.in.Params
	f := workflow.ExecuteActivity(partCtx, exportActivities.ExportChunk, activities.ExportChunkInput{
		ExportID: p.ExportID, Params: p.Params, Chunk: i, Range: w.st.Plan.Ranges[i],
	})
	w.add(sel, f, func(f workflow.Future) string {
		var res activities.ExportChunkResult
		if err := f.Get(ctx, &res); err != nil {
			return fmt.Sprintf("part %d: %s", i, failureMessage(err))
		}
		w.st.Progress.Rows += res.Rows
		w.st.Progress.ChunksDone++
		return ""
	})
}

// finishExport records the final state on the job row, even when the
// workflow is being cancelled, and (vis) in the run's ExportState and memo.
func finishExport(ctx workflow.Context, vis bool, exportID string, st *ExportState, in activities.FinishExportInput) (ExportProgress, error) {
	in.ExportID = exportID
	st.Progress.State, st.Progress.Error = in.State, in.Error
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	if vis {
		setKeyword(dctx, visibility.ExportState, in.State)
		if in.State == export.StateCompleted {
			setMemo(dctx, map[string]any{visibility.MemoRowsWritten: in.File.Rows, visibility.MemoSizeBytes: in.File.Bytes})
		}
	}
	dctx = workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
	})
	if err := workflow.ExecuteActivity(dctx, exportActivities.FinishExport, in).Get(dctx, nil); err != nil {
		return st.Progress, err
	}
	switch in.State {
	case export.StateCancelled:
		return st.Progress, temporal.NewCanceledError(in.Error)
	case export.StateFailed:
		return st.Progress, temporal.NewNonRetryableApplicationError(in.Error, "ExportFailed", nil)
	}
	return st.Progress, nil
}
