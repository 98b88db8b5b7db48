package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/payments/activities"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/records"
)

func plan(chunks int, rowsPerChunk int64) activities.ImportPlan {
	p := activities.ImportPlan{Kind: records.KindOrders, Format: records.FormatCSV, Header: records.OrderColumns}
	for i := range chunks {
		p.Chunks = append(p.Chunks, records.Chunk{Index: i, Start: int64(i) * 100, End: int64(i+1) * 100,
			FirstRecord: int64(i)*rowsPerChunk + 1, Records: rowsPerChunk})
	}
	p.Records = int64(chunks) * rowsPerChunk
	return p
}

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(Import)
	env.RegisterActivity(&activities.Activities{})
	return env
}

func params() ImportParams {
	return ImportParams{ImportID: "imp1", BlobKey: "uploads/x", MaxRejects: 1000, ChunkRows: 10, Parallelism: 3}
}

func TestImportRunsEveryChunkOnceWithinTheWindow(t *testing.T) {
	env := newEnv(t)
	var a *activities.Activities
	env.OnActivity(a.PlanImport, mock.Anything, mock.Anything).Return(plan(10, 10), nil)
	// The test environment runs activities on goroutines of their own; each
	// chunk stays in flight a moment so that overlapping ones are counted.
	var mu sync.Mutex
	seen := map[int]int{}
	inflight, peak := 0, 0
	env.OnActivity(a.ImportChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ImportChunkInput) (importer.ChunkResult, error) {
			mu.Lock()
			inflight++
			peak = max(peak, inflight)
			seen[in.Chunk.Index]++
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			inflight--
			mu.Unlock()
			return importer.ChunkResult{Index: in.Chunk.Index, RowsRead: 10, RowsWritten: 9, RowsRejected: 1}, nil
		})
	env.OnActivity(a.FinishImport, mock.Anything, activities.FinishImportInput{ImportID: "imp1", State: importer.StateCompleted}).Return(nil).Once()
	env.ExecuteWorkflow(Import, ImportInput{Params: params()})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var p Progress
	if err := env.GetWorkflowResult(&p); err != nil {
		t.Fatal(err)
	}
	if p.State != importer.StateCompleted || p.RowsRead != 100 || p.RowsWritten != 90 || p.RowsRejected != 10 || p.ChunksDone != 10 || p.ChunksTotal != 10 {
		t.Fatalf("progress %+v", p)
	}
	for i := range 10 {
		if seen[i] != 1 {
			t.Fatalf("chunk %d ran %d times", i, seen[i])
		}
	}
	if peak > params().Parallelism {
		t.Fatalf("%d chunks in flight at once, the window is %d", peak, params().Parallelism)
	}
	t.Logf("at most %d chunks in flight", peak)
	env.AssertExpectations(t)
}

func TestImportRetriesFailedChunks(t *testing.T) {
	env := newEnv(t)
	var a *activities.Activities
	env.OnActivity(a.PlanImport, mock.Anything, mock.Anything).Return(plan(3, 5), nil)
	attempts := 0
	env.OnActivity(a.ImportChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ImportChunkInput) (importer.ChunkResult, error) {
			if in.Chunk.Index == 1 {
				attempts++
				if attempts < 3 {
					return importer.ChunkResult{}, errors.New("mysql: connection refused")
				}
			}
			return importer.ChunkResult{Index: in.Chunk.Index, RowsRead: 5, RowsWritten: 5}, nil
		})
	env.OnActivity(a.FinishImport, mock.Anything, mock.Anything).Return(nil)
	env.ExecuteWorkflow(Import, ImportInput{Params: params()})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var p Progress
	_ = env.GetWorkflowResult(&p)
	if attempts != 3 || p.RowsWritten != 15 || p.State != importer.StateCompleted {
		t.Fatalf("attempts %d progress %+v", attempts, p)
	}
}

func TestImportFailsOnBadFileWithoutChunks(t *testing.T) {
	env := newEnv(t)
	var a *activities.Activities
	env.OnActivity(a.PlanImport, mock.Anything, mock.Anything).Return(activities.ImportPlan{},
		temporal.NewNonRetryableApplicationError("line 3: file ends inside a quoted field (truncated?)", activities.ErrTypeBadFile, nil)).Once()
	env.OnActivity(a.FinishImport, mock.Anything, activities.FinishImportInput{ImportID: "imp1", State: importer.StateFailed,
		Error: "line 3: file ends inside a quoted field (truncated?)"}).Return(nil).Once()
	env.ExecuteWorkflow(Import, ImportInput{Params: params()})
	err := env.GetWorkflowError()
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != "ImportFailed" {
		t.Fatalf("error %v", err)
	}
	env.AssertExpectations(t)
}

func TestImportStopsAtMaxRejects(t *testing.T) {
	env := newEnv(t)
	var a *activities.Activities
	env.OnActivity(a.PlanImport, mock.Anything, mock.Anything).Return(plan(20, 10), nil)
	ran := 0
	env.OnActivity(a.ImportChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ImportChunkInput) (importer.ChunkResult, error) {
			ran++
			return importer.ChunkResult{Index: in.Chunk.Index, RowsRead: 10, RowsWritten: 4, RowsRejected: 6}, nil
		})
	var finished activities.FinishImportInput
	env.OnActivity(a.FinishImport, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.FinishImportInput) error { finished = in; return nil })
	pr := params()
	pr.MaxRejects = 10
	env.ExecuteWorkflow(Import, ImportInput{Params: pr})
	if env.GetWorkflowError() == nil {
		t.Fatal("import past max_rejects did not fail")
	}
	if finished.State != importer.StateFailed || finished.Error == "" || ran >= 20 {
		t.Fatalf("finished %+v after %d chunks", finished, ran)
	}
	// The message counts every chunk that committed, those in flight when
	// the limit was passed too, as the job row does.
	var p Progress
	_ = env.GetWorkflowResult(&p)
	want := fmt.Sprintf("max_rejects exceeded: %d rows rejected, the limit is 10; stopped after %d of 20 chunks (%d of 200 rows read)", 6*ran, ran, 10*ran)
	if finished.Error != want {
		t.Fatalf("message %q, want %q", finished.Error, want)
	}
	if ran <= 2 {
		t.Fatalf("%d chunks ran: none was in flight when the limit was passed, so the test shows nothing", ran)
	}
}

func TestImportCancel(t *testing.T) {
	env := newEnv(t)
	var a *activities.Activities
	env.OnActivity(a.PlanImport, mock.Anything, mock.Anything).Return(plan(50, 10), nil)
	env.OnActivity(a.ImportChunk, mock.Anything, mock.Anything).After(time.Second).Return(
		func(_ context.Context, in activities.ImportChunkInput) (importer.ChunkResult, error) {
			return importer.ChunkResult{Index: in.Chunk.Index, RowsRead: 10, RowsWritten: 10}, nil
		})
	env.OnActivity(a.FinishImport, mock.Anything, mock.MatchedBy(func(in activities.FinishImportInput) bool {
		return in.State == importer.StateCancelled
	})).Return(nil).Once()
	env.RegisterDelayedCallback(env.CancelWorkflow, 3*time.Second)
	env.ExecuteWorkflow(Import, ImportInput{Params: params()})
	if !temporal.IsCanceledError(env.GetWorkflowError()) {
		t.Fatalf("error %v", env.GetWorkflowError())
	}
	env.AssertExpectations(t)
}

func TestImportContinuesAsNewAndCarriesTotals(t *testing.T) {
	for _, tc := range []struct {
		name string
		long func(env *testsuite.TestWorkflowEnvironment)
	}{
		// The test environment keeps no history; say it grew long.
		{"history limit", func(env *testsuite.TestWorkflowEnvironment) { env.SetCurrentHistoryLength(5000) }},
		{"suggested by the server", func(env *testsuite.TestWorkflowEnvironment) { env.SetContinueAsNewSuggested(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) { importContinuesAsNew(t, tc.long) })
	}
}

func importContinuesAsNew(t *testing.T, long func(env *testsuite.TestWorkflowEnvironment)) {
	env := newEnv(t)
	var a *activities.Activities
	env.OnActivity(a.PlanImport, mock.Anything, mock.Anything).Return(plan(30, 10), nil).Once()
	done := 0
	env.OnActivity(a.ImportChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ImportChunkInput) (importer.ChunkResult, error) {
			done++
			if done == 7 {
				long(env)
			}
			return importer.ChunkResult{Index: in.Chunk.Index, RowsRead: 10, RowsWritten: 10}, nil
		})
	pr := params()
	env.ExecuteWorkflow(Import, ImportInput{Params: pr})
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next ImportInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.State == nil || next.State.Plan == nil || next.State.Next <= 0 || next.State.Next >= 30 ||
		next.State.Progress.ChunksDone != next.State.Next || next.State.Progress.RowsWritten != int64(next.State.Next)*10 {
		t.Fatalf("carried state %+v", next.State)
	}
}

// Runs started before ImportParams.Type became Kind still say "Type".
func TestImportParamsReadTheFormerTypeField(t *testing.T) {
	for in, want := range map[string]records.Kind{
		`{"ImportID":"i1","Type":"payments","MaxRejects":5}`: records.KindPayments,
		`{"ImportID":"i1","Kind":"orders","MaxRejects":5}`:   records.KindOrders,
		`{"ImportID":"i1","MaxRejects":5}`:                   "",
	} {
		var p ImportParams
		if err := json.Unmarshal([]byte(in), &p); err != nil || p.Kind != want || p.ImportID != "i1" || p.MaxRejects != 5 {
			t.Errorf("%s: %+v %v, want kind %q", in, p, err, want)
		}
	}
}

func TestImportCancelledWhilePlanning(t *testing.T) {
	env := newEnv(t)
	var a *activities.Activities
	env.OnActivity(a.PlanImport, mock.Anything, mock.Anything).After(10*time.Second).Return(plan(5, 10), nil)
	env.OnActivity(a.FinishImport, mock.Anything, mock.MatchedBy(func(in activities.FinishImportInput) bool {
		return in.State == importer.StateCancelled
	})).Return(nil).Once()
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Second)
	env.ExecuteWorkflow(Import, ImportInput{Params: params()})
	if !temporal.IsCanceledError(env.GetWorkflowError()) {
		t.Fatalf("error %v", env.GetWorkflowError())
	}
	env.AssertExpectations(t)
}
