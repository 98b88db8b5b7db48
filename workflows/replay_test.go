package workflows_test

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"

	"github.com/acme/payments/internal/codec"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/stacktest"
	"github.com/acme/payments/workflows"
)

// Histories recorded from real runs on the embedded server (see
// stacktest.SaveHistory; record with PAYMENTS_RECORD_HISTORIES=$PWD/workflows/testdata
// go test ./internal/ingest ./internal/e2e). Replaying them against today's
// workflow code fails on any change that breaks determinism for workflows
// in flight. The histories of earlier versions stay (order-payment-v1-*:
// attempts as updates), since runs of those versions may still be open
// when a new version deploys; new recordings take the current version's
// names.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no recorded histories in testdata/")
	}
	// The recordings' payloads are encrypted under the test keys.
	keys, err := encryption.ParseKeys(stacktest.TestKeys)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{DataConverter: codec.DataConverter(keys)})
			if err != nil {
				t.Fatal(err)
			}
			r.RegisterWorkflow(workflows.Import)
			r.RegisterWorkflow(workflows.OrderPayment)
			r.RegisterWorkflow(workflows.Export)
			r.RegisterWorkflow(workflows.Rotate)
			r.RegisterWorkflow(workflows.StagingRetention)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}
