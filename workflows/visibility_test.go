package workflows

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/acme/payments/activities"
	"github.com/acme/payments/internal/export"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/records"
	"github.com/acme/payments/internal/visibility"
)

// upserts records a run's search attribute and memo upserts, in order, as
// "Name=value" for the service's keywords and the memo maps as they were
// given.
type upserts struct {
	attrs []string
	memos []map[string]any
}

func recordUpserts(env *testsuite.TestWorkflowEnvironment) *upserts {
	u := &upserts{}
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		for _, key := range []temporal.SearchAttributeKeyKeyword{visibility.ImportState, visibility.ImportType, visibility.ExportState} {
			if v, ok := sa.GetKeyword(key); ok {
				u.attrs = append(u.attrs, key.GetName()+"="+v)
			}
		}
	}).Return().Maybe()
	env.OnUpsertMemo(mock.Anything).Run(func(args mock.Arguments) {
		u.memos = append(u.memos, args.Get(0).(map[string]any))
	}).Return().Maybe()
	return u
}

func (u *upserts) wantAttrs(t *testing.T, want ...string) {
	t.Helper()
	if !slices.Equal(u.attrs, want) {
		t.Fatalf("search attribute upserts %q, want %q", u.attrs, want)
	}
}

func (u *upserts) wantMemos(t *testing.T, want ...map[string]any) {
	t.Helper()
	if !reflect.DeepEqual(u.memos, want) {
		t.Fatalf("memo upserts %v, want %v", u.memos, want)
	}
}

// noCustomerData fails if a memo value could be an order id, email or
// amount: memos hold counts and the file's type and format only.
func (u *upserts) noCustomerData(t *testing.T) {
	t.Helper()
	for _, m := range u.memos {
		for k, v := range m {
			switch v := v.(type) {
			case int, int64:
			case string:
				if v != "" && !slices.Contains([]string{"orders", "payments", "csv", "xml", "json", "ndjson"}, v) {
					t.Errorf("memo %s = %q: not a type or format", k, v)
				}
			default:
				t.Errorf("memo %s = %v (%T): memos hold counts, types and formats", k, v, v)
			}
		}
	}
}

func TestImportUpsertsItsStateTypeAndMemo(t *testing.T) {
	env := newEnv(t)
	u := recordUpserts(env)
	var a *activities.Activities
	env.OnActivity(a.PlanImport, mock.Anything, mock.Anything).Return(plan(2, 5), nil)
	env.OnActivity(a.ImportChunk, mock.Anything, mock.Anything).Return(importer.ChunkResult{RowsRead: 5, RowsWritten: 4, RowsRejected: 1}, nil)
	env.OnActivity(a.FinishImport, mock.Anything, mock.Anything).Return(nil)
	env.ExecuteWorkflow(Import, ImportInput{Params: params()}) // type detected from the file
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	u.wantAttrs(t, "ImportState=RUNNING", "ImportType=orders", "ImportState=COMPLETED")
	u.wantMemos(t,
		map[string]any{"type": "orders", "format": "csv", "rows_total": int64(10), "chunks_total": 2},
		map[string]any{"rows_written": int64(8), "rows_rejected": int64(2)},
	)
	u.noCustomerData(t)
}

// A run started with its attributes (as ingest starts it) upserts only
// what changes.
func TestImportStartedWithItsAttributesUpsertsOnlyChanges(t *testing.T) {
	env := newEnv(t)
	if err := env.SetTypedSearchAttributesOnStart(temporal.NewSearchAttributes(
		visibility.ImportState.ValueSet(importer.StateRunning), visibility.ImportType.ValueSet("orders"))); err != nil {
		t.Fatal(err)
	}
	u := recordUpserts(env)
	var a *activities.Activities
	env.OnActivity(a.PlanImport, mock.Anything, mock.Anything).Return(plan(1, 5), nil)
	env.OnActivity(a.ImportChunk, mock.Anything, mock.Anything).Return(importer.ChunkResult{RowsRead: 5, RowsWritten: 5}, nil)
	env.OnActivity(a.FinishImport, mock.Anything, mock.Anything).Return(nil)
	p := params()
	p.Kind = records.KindOrders
	env.ExecuteWorkflow(Import, ImportInput{Params: p})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	u.wantAttrs(t, "ImportState=COMPLETED")
}

func TestImportOfABadFileEndsFailedWithoutAType(t *testing.T) {
	env := newEnv(t)
	u := recordUpserts(env)
	var a *activities.Activities
	env.OnActivity(a.PlanImport, mock.Anything, mock.Anything).Return(activities.ImportPlan{},
		temporal.NewNonRetryableApplicationError("line 1: not an import file", activities.ErrTypeBadFile, nil))
	env.OnActivity(a.FinishImport, mock.Anything, mock.Anything).Return(nil)
	env.ExecuteWorkflow(Import, ImportInput{Params: params()})
	if err := env.GetWorkflowError(); err == nil {
		t.Fatal("a bad file's import succeeded")
	}
	u.wantAttrs(t, "ImportState=RUNNING", "ImportState=FAILED")
	u.noCustomerData(t)
}

func TestImportCancelledUpsertsCancelled(t *testing.T) {
	env := newEnv(t)
	u := recordUpserts(env)
	var a *activities.Activities
	env.OnActivity(a.PlanImport, mock.Anything, mock.Anything).Return(plan(3, 5), nil)
	env.OnActivity(a.ImportChunk, mock.Anything, mock.Anything).Return(importer.ChunkResult{RowsRead: 5, RowsWritten: 5}, nil).After(time.Hour)
	env.OnActivity(a.FinishImport, mock.Anything, mock.Anything).Return(nil)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)
	env.ExecuteWorkflow(Import, ImportInput{Params: params()})
	if !temporal.IsCanceledError(env.GetWorkflowError()) {
		t.Fatalf("err = %v", env.GetWorkflowError())
	}
	u.wantAttrs(t, "ImportState=RUNNING", "ImportType=orders", "ImportState=CANCELLED")
}

func TestExportUpsertsItsStateAndMemo(t *testing.T) {
	env := exportEnv()
	u := recordUpserts(env)
	var a *activities.Activities
	env.OnActivity(a.PlanExport, mock.Anything, mock.Anything).Return(ranges(3), nil)
	env.OnActivity(a.ExportChunk, mock.Anything, mock.Anything).Return(activities.ExportChunkResult{Rows: 7}, nil)
	env.OnActivity(a.JoinExport, mock.Anything, mock.Anything).Return(activities.JoinExportResult{BlobKey: "exports/exp1", Bytes: 1234, Rows: 21}, nil)
	env.OnActivity(a.FinishExport, mock.Anything, finishWith(export.StateCompleted)).Return(nil)
	env.ExecuteWorkflow(Export, exportInput())
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	u.wantAttrs(t, "ExportState=RUNNING", "ExportState=COMPLETED")
	u.wantMemos(t, map[string]any{"chunks_total": 3}, map[string]any{"rows_written": int64(21), "size_bytes": int64(1234)})
	u.noCustomerData(t)
}

func TestExportFailedUpsertsFailed(t *testing.T) {
	env := exportEnv()
	u := recordUpserts(env)
	var a *activities.Activities
	env.OnActivity(a.PlanExport, mock.Anything, mock.Anything).Return(activities.ExportPlan{},
		temporal.NewNonRetryableApplicationError("no such table", "Bad", nil))
	env.OnActivity(a.FinishExport, mock.Anything, finishWith(export.StateFailed)).Return(nil)
	env.ExecuteWorkflow(Export, exportInput())
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "no such table") {
		t.Fatalf("err = %v", err)
	}
	u.wantAttrs(t, "ExportState=RUNNING", "ExportState=FAILED")
	u.wantMemos(t)
}
