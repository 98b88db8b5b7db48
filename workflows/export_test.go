package workflows

import (
	"context"
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
	"github.com/acme/payments/internal/export"
	"github.com/acme/payments/internal/records"
)

func exportEnv() *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(Export)
	env.RegisterActivity(&activities.Activities{})
	return env
}

func exportInput() ExportInput {
	return ExportInput{Params: activities.ExportParams{ExportID: "exp1", ChunkRows: 10, Parallelism: 2,
		Params: export.Params{Kind: records.KindOrders, Format: export.FormatCSV}}}
}

func ranges(n int) activities.ExportPlan {
	var p activities.ExportPlan
	for i := range n {
		p.Ranges = append(p.Ranges, export.Range{After: fmt.Sprintf("k%03d", i*10), UpTo: fmt.Sprintf("k%03d", i*10+10)})
	}
	p.Ranges[n-1].UpTo = ""
	return p
}

func finishWith(state string) any {
	return mock.MatchedBy(func(in activities.FinishExportInput) bool { return in.State == state && in.ExportID == "exp1" })
}

func TestExportWritesEveryPartOnceWithinTheWindow(t *testing.T) {
	env := exportEnv()
	var a *activities.Activities
	env.OnActivity(a.PlanExport, mock.Anything, mock.Anything).Return(ranges(9), nil)
	var mu sync.Mutex
	seen := map[int]int{}
	inflight, peak := 0, 0
	env.OnActivity(a.ExportChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ExportChunkInput) (activities.ExportChunkResult, error) {
			mu.Lock()
			inflight++
			peak = max(peak, inflight)
			seen[in.Chunk]++
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			inflight--
			mu.Unlock()
			return activities.ExportChunkResult{Chunk: in.Chunk, Rows: 10}, nil
		})
	file := activities.JoinExportResult{BlobKey: "exports/exp1/orders.csv", Bytes: 1234, Rows: 90}
	env.OnActivity(a.JoinExport, mock.Anything, mock.Anything).Return(file, nil).Once()
	env.OnActivity(a.FinishExport, mock.Anything, activities.FinishExportInput{ExportID: "exp1", State: export.StateCompleted, File: file}).Return(nil).Once()
	env.ExecuteWorkflow(Export, exportInput())
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var p ExportProgress
	if err := env.GetWorkflowResult(&p); err != nil || p.State != export.StateCompleted || p.Rows != 90 || p.ChunksDone != 9 || p.ChunksTotal != 9 {
		t.Fatalf("progress %+v %v", p, err)
	}
	for i := range 9 {
		if seen[i] != 1 {
			t.Fatalf("part %d written %d times", i, seen[i])
		}
	}
	if peak > 2 || peak < 2 {
		t.Errorf("%d parts in flight at once, window 2", peak)
	}
	env.AssertExpectations(t)
}

// A part that fails for good fails the export; nothing is joined.
func TestExportFailsWithItsPart(t *testing.T) {
	env := exportEnv()
	var a *activities.Activities
	env.OnActivity(a.PlanExport, mock.Anything, mock.Anything).Return(ranges(5), nil)
	env.OnActivity(a.ExportChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ExportChunkInput) (activities.ExportChunkResult, error) {
			if in.Chunk == 2 {
				return activities.ExportChunkResult{}, temporal.NewNonRetryableApplicationError("export exp1 chunk 2: decrypt", "Bad", nil)
			}
			return activities.ExportChunkResult{Chunk: in.Chunk, Rows: 10}, nil
		})
	env.OnActivity(a.FinishExport, mock.Anything, finishWith(export.StateFailed)).Return(nil).Once()
	env.ExecuteWorkflow(Export, exportInput())
	var app *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &app) || app.Type() != "ExportFailed" {
		t.Fatalf("error %v", err)
	}
	env.AssertExpectations(t)
}

func TestExportCancelledWhileWriting(t *testing.T) {
	env := exportEnv()
	var a *activities.Activities
	env.OnActivity(a.PlanExport, mock.Anything, mock.Anything).Return(ranges(50), nil)
	env.OnActivity(a.ExportChunk, mock.Anything, mock.Anything).After(time.Second).Return(
		func(_ context.Context, in activities.ExportChunkInput) (activities.ExportChunkResult, error) {
			return activities.ExportChunkResult{Chunk: in.Chunk, Rows: 10}, nil
		})
	env.OnActivity(a.FinishExport, mock.Anything, finishWith(export.StateCancelled)).Return(nil).Once()
	env.RegisterDelayedCallback(env.CancelWorkflow, 3500*time.Millisecond)
	env.ExecuteWorkflow(Export, exportInput())
	if !temporal.IsCanceledError(env.GetWorkflowError()) {
		t.Fatalf("error %v", env.GetWorkflowError())
	}
	env.AssertExpectations(t)
}

func TestExportContinuesAsNewWithItsPlan(t *testing.T) {
	env := exportEnv()
	var a *activities.Activities
	env.OnActivity(a.PlanExport, mock.Anything, mock.Anything).Return(ranges(30), nil).Once()
	done := 0
	env.OnActivity(a.ExportChunk, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ExportChunkInput) (activities.ExportChunkResult, error) {
			if done++; done == 6 {
				env.SetContinueAsNewSuggested(true)
			}
			return activities.ExportChunkResult{Chunk: in.Chunk, Rows: 10}, nil
		})
	env.ExecuteWorkflow(Export, exportInput())
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next ExportInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.State == nil || next.State.Plan == nil || len(next.State.Plan.Ranges) != 30 || next.State.Next < 6 ||
		next.State.Progress.ChunksDone != next.State.Next || next.State.Progress.Rows != int64(next.State.Next)*10 {
		t.Fatalf("carried %+v", next.State)
	}
}
