package activities_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"

	"github.com/acme/payments/activities"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/internal/stacktest"
	"github.com/acme/payments/workflows"
)

// recordWorkflow hands a batch of payments to the RecordPayments activity,
// so its input, the activity's input and both results cross the server.
func recordWorkflow(ctx workflow.Context, in activities.RecordPaymentsInput) ([]ledger.Result, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var a *activities.Activities
	var out []ledger.Result
	err := workflow.ExecuteActivity(ctx, a.RecordPayments, in).Get(ctx, &out)
	return out, err
}

// A workflow run through the codec leaves only ciphertext in the history the
// server stores, and the ledger stores the payment encrypted too.
func TestHistoryHoldsOnlyEncryptedPayloads(t *testing.T) {
	addr := stacktest.Temporal(t)
	cfg := stacktest.Config(t, addr)
	d := stacktest.Deps(t, cfg)
	ctx := context.Background()

	if _, err := d.DB.Exec(`INSERT INTO orders (order_id, order_amount, currency, created_at, updated_at)
		VALUES ('ord-1', 5000, 'USD', NOW(6), NOW(6))`); err != nil {
		t.Fatal(err)
	}
	w := service.NewWorker(d)
	w.RegisterWorkflow(recordWorkflow)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	const card = "4111 1111 1111 1111"
	in := activities.RecordPaymentsInput{
		Source: ledger.SourceAPI, Reference: "test",
		Payments: []ledger.Payment{{
			PaymentID: "pay-1", OrderID: "ord-1", Amount: 5000, Currency: "USD",
			Status: ledger.StatusSuccess, Method: "CARD", Details: card,
		}},
	}
	run, err := d.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: "codec-test/ord-1", TaskQueue: workflows.TaskQueue,
	}, recordWorkflow, in)
	if err != nil {
		t.Fatal(err)
	}
	var results []ledger.Result
	if err := run.Get(ctx, &results); err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Outcome != ledger.Inserted {
		t.Fatalf("results %+v", results)
	}

	// Read the history back with a client that has no codec: what the
	// server holds.
	raw, err := client.Dial(client.Options{HostPort: addr, Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	iter := raw.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var history bytes.Buffer
	events := 0
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		history.Write(b)
		events++
		assertPayloadsEncrypted(t, ev)
	}
	if events < 5 {
		t.Fatalf("only %d events", events)
	}
	for _, plain := range []string{card, "4111", "json/plain"} {
		if bytes.Contains(history.Bytes(), []byte(plain)) {
			t.Fatalf("history holds %q in plaintext", plain)
		}
	}
	if !bytes.Contains(history.Bytes(), []byte("binary/encrypted")) {
		t.Fatal("history has no encrypted payloads at all")
	}

	var stored []byte
	if err := d.DB.Get(&stored, `SELECT payment_details FROM payments WHERE payment_id = 'pay-1'`); err != nil {
		t.Fatal(err)
	}
	if len(stored) == 0 || bytes.Contains(stored, []byte(card)) {
		t.Fatalf("payment_details not encrypted at rest: %q", stored)
	}
	st, err := (&ledger.Ledger{DB: d.DB, Keys: d.Keys}).OrderState(ctx, "ord-1")
	if err != nil || st.Status != ledger.OrderCompleted || st.PaidAmount != 5000 {
		t.Fatalf("order %+v %v", st, err)
	}
}

// assertPayloadsEncrypted checks the payloads of the events that carry
// workflow and activity data.
func assertPayloadsEncrypted(t *testing.T, ev *historypb.HistoryEvent) {
	t.Helper()
	var payloads []*commonpb.Payload
	switch {
	case ev.GetWorkflowExecutionStartedEventAttributes() != nil:
		payloads = (ev.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads())
	case ev.GetActivityTaskScheduledEventAttributes() != nil:
		payloads = (ev.GetActivityTaskScheduledEventAttributes().GetInput().GetPayloads())
	case ev.GetActivityTaskCompletedEventAttributes() != nil:
		payloads = (ev.GetActivityTaskCompletedEventAttributes().GetResult().GetPayloads())
	case ev.GetWorkflowExecutionCompletedEventAttributes() != nil:
		payloads = (ev.GetWorkflowExecutionCompletedEventAttributes().GetResult().GetPayloads())
	default:
		return
	}
	if len(payloads) == 0 {
		t.Fatalf("event %d (%s) has no payloads", ev.GetEventId(), ev.GetEventType())
	}
	for _, p := range payloads {
		if enc := string(p.GetMetadata()["encoding"]); enc != "binary/encrypted" {
			t.Fatalf("event %d (%s): payload encoding %q", ev.GetEventId(), ev.GetEventType(), enc)
		}
	}
}
