package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/payments/activities"
	"github.com/acme/payments/internal/rotation"
)

// RotateWorkflowID is the id of key rotation rotationID.
func RotateWorkflowID(rotationID string) string { return "rotate/" + rotationID }

// States of a key rotation.
const (
	RotationRunning   = "RUNNING"
	RotationCompleted = "COMPLETED"
	RotationFailed    = "FAILED"
	RotationCancelled = "CANCELLED"
)

// Defaults of a rotation's paging.
const (
	DefaultRotatePageRows     = 500
	DefaultRotatePagesPerStep = 20
	DefaultRotateMaxPasses    = 3
)

// RotateInput starts or continues a key rotation: State is nil on the
// first run and carries the cursor and totals across continue-as-new. It
// holds ids and counts only, never a key or a value.
type RotateInput struct {
	RotationID string `json:"rotation_id"`
	// KeyID is the primary key every value is re-encrypted under, the
	// primary of the keyring that started the rotation.
	KeyID string `json:"key_id"`
	// PageRows rows a transaction, PagesPerStep pages an activity.
	PageRows     int `json:"page_rows,omitempty"`
	PagesPerStep int `json:"pages_per_step,omitempty"`
	// MaxPasses bounds the walks over every table: a pass that ends with
	// values still under another key (written behind the cursor by a
	// process with an old PAYMENTS_KEYS) is followed by another.
	MaxPasses int `json:"max_passes,omitempty"`
	// HistoryLimit overrides DefaultHistoryLimit (tests use small values).
	HistoryLimit int          `json:"history_limit,omitempty"`
	State        *RotateState `json:"state,omitempty"`
}

// RotateState is where a rotation is.
type RotateState struct {
	Table    int            `json:"table"` // index in rotation.Tables of the table being walked
	After    string         `json:"after"` // primary key the next step starts after
	Progress RotateProgress `json:"progress"`
}

// RotateProgress answers a rotation's ProgressQuery and is its result.
type RotateProgress struct {
	State string `json:"state"`
	KeyID string `json:"key_id"`
	Pass  int    `json:"pass"`
	// Table is the table being walked ("" once every table is done).
	Table   string `json:"table"`
	Scanned int64  `json:"rows_scanned"`
	Rotated int64  `json:"rows_rotated"`
	// Remaining is how many values the last check found under other keys
	// (-1 before the first check).
	Remaining int64  `json:"values_remaining"`
	Error     string `json:"error,omitempty"`
}

// rotateActivities names the rotation's activities; the worker's instance
// runs them.
var rotateActivities *activities.Rotation

// Rotate re-encrypts every encrypted column of orders and payments under
// KeyID: it walks each table's primary key in steps of a few pages (each
// page its own short transaction, each step heartbeating its cursor), then
// counts the values still under other keys and walks again while any are
// left, up to MaxPasses. It continues as new before its history grows
// long and answers ProgressQuery.
func Rotate(ctx workflow.Context, in RotateInput) (RotateProgress, error) {
	st := in.State
	if st == nil {
		st = &RotateState{Progress: RotateProgress{State: RotationRunning, KeyID: in.KeyID, Pass: 1, Remaining: -1}}
	}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (RotateProgress, error) { return st.Progress, nil }); err != nil {
		return st.Progress, err
	}
	actCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrTypeRotationWrongKey, activities.ErrTypeRotationBadValue},
		},
	})
	limit := in.HistoryLimit
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	rows, pages, passes := in.PageRows, in.PagesPerStep, in.MaxPasses
	if rows <= 0 {
		rows = DefaultRotatePageRows
	}
	if pages <= 0 {
		pages = DefaultRotatePagesPerStep
	}
	if passes <= 0 {
		passes = DefaultRotateMaxPasses
	}
	for {
		for st.Table < len(rotation.Tables) {
			if historyFull(ctx, limit) {
				next := in
				next.State = st
				return st.Progress, workflow.NewContinueAsNewError(ctx, Rotate, next)
			}
			table := string(rotation.Tables[st.Table])
			st.Progress.Table = table
			var res activities.RotateRangeResult
			err := workflow.ExecuteActivity(actCtx, rotateActivities.RotateRange, activities.RotateRangeInput{
				RotationID: in.RotationID, KeyID: in.KeyID, Table: table, After: st.After, PageRows: rows, MaxPages: pages,
			}).Get(ctx, &res)
			if err != nil {
				return endRotation(ctx, st, err)
			}
			st.Progress.Scanned += res.Scanned
			st.Progress.Rotated += res.Rotated
			st.After = res.After
			if res.Done {
				st.Table++
				st.After = ""
			}
		}
		st.Progress.Table = ""
		var left activities.RotationRemainingResult
		if err := workflow.ExecuteActivity(actCtx, rotateActivities.RotationRemaining, in.KeyID).Get(ctx, &left); err != nil {
			return endRotation(ctx, st, err)
		}
		st.Progress.Remaining = left.Total
		if left.Total == 0 {
			st.Progress.State = RotationCompleted
			return st.Progress, nil
		}
		if st.Progress.Pass >= passes {
			return endRotation(ctx, st, fmt.Errorf("%d values are still under other keys than %q after %d passes: "+
				"is a process still running with an old PAYMENTS_KEYS?", left.Total, in.KeyID, st.Progress.Pass))
		}
		st.Progress.Pass++
		st.Table, st.After = 0, ""
	}
}

// endRotation ends a rotation that failed or was cancelled.
func endRotation(ctx workflow.Context, st *RotateState, err error) (RotateProgress, error) {
	if temporal.IsCanceledError(err) || ctx.Err() != nil {
		st.Progress.State, st.Progress.Error = RotationCancelled, "cancelled"
		return st.Progress, temporal.NewCanceledError("cancelled")
	}
	st.Progress.State, st.Progress.Error = RotationFailed, failureMessage(err)
	return st.Progress, temporal.NewNonRetryableApplicationError(st.Progress.Error, "RotationFailed", nil)
}
