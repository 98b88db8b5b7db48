package codec_test

import (
	"bytes"
	"context"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/acme/payments/internal/codec"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/internal/stacktest"
	"github.com/acme/payments/workflows"
)

// An order's payment workflow run through the codec leaves only ciphertext
// in the history the server stores (its input, the attempt's signal, the
// gateway update, the ledger steps' results), the card details never reach
// it even encrypted (the ledger records the attempt before Temporal hears
// of it), and the ledger stores them encrypted.
func TestHistoryHoldsOnlyEncryptedPayloads(t *testing.T) {
	addr := stacktest.Temporal(t)
	d := stacktest.Deps(t, stacktest.Config(t, addr))
	stacktest.Worker(t, d)
	ctx := context.Background()

	if _, err := d.DB.Exec(`INSERT INTO orders (order_id, order_amount, currency, created_at, updated_at)
		VALUES ('ord-1', 5000, 'USD', NOW(6), NOW(6))`); err != nil {
		t.Fatal(err)
	}
	const card = "4111 1111 1111 1111"
	lc := service.NewLifecycle(d)
	out, err := lc.Attempt(ctx, ledger.Attempt{PaymentID: "pay-1", OrderID: "ord-1", Amount: "50.00", Method: "CARD", Details: card})
	if err != nil || out.Result.Outcome != ledger.Inserted {
		t.Fatalf("attempt: %+v %v", out, err)
	}
	res, queued, err := lc.GatewayResult(ctx, ledger.GatewayResult{Gateway: "acme", PaymentID: "pay-1", Status: ledger.StatusSuccess, GatewayRef: "ref-9"})
	if err != nil || queued || res.Status != ledger.StatusSuccess {
		t.Fatalf("gateway result: %+v %v %v", res, queued, err)
	}
	id := workflows.OrderPaymentWorkflowID("ord-1")
	if err := d.Temporal.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		t.Fatalf("order workflow: %v", err)
	}

	// Read the history back with a client that has no codec: what the
	// server holds.
	raw, err := client.Dial(client.Options{HostPort: addr, Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	iter := raw.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var history bytes.Buffer
	payloads := 0
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
		payloads += assertPayloadsEncrypted(t, ev, func(p *commonpb.Payload) {
			// Decrypted, no payload holds the card either.
			plain, err := (&codec.Codec{Keys: d.Keys}).Decode([]*commonpb.Payload{p})
			if err != nil {
				t.Fatalf("decode a payload: %v", err)
			}
			if data := plain[0].GetData(); bytes.Contains(data, []byte(card)) || bytes.Contains(data, []byte("4111")) {
				t.Fatalf("event %d (%s) carries the card details (encrypted): %s", ev.GetEventId(), ev.GetEventType(), data)
			}
		})
	}
	if payloads < 4 {
		t.Fatalf("only %d payloads in the history", payloads)
	}
	for _, plain := range []string{card, "4111", "json/plain"} {
		if bytes.Contains(history.Bytes(), []byte(plain)) {
			t.Fatalf("history holds %q in plaintext", plain)
		}
	}

	var stored []byte
	if err := d.DB.Get(&stored, `SELECT payment_details FROM payments WHERE payment_id = 'pay-1'`); err != nil {
		t.Fatal(err)
	}
	if len(stored) == 0 || bytes.Contains(stored, []byte(card)) {
		t.Fatalf("payment_details not encrypted at rest: %q", stored)
	}
	st, err := d.Ledger.OrderState(ctx, "ord-1")
	if err != nil || st.Status != ledger.OrderCompleted || st.PaidAmount != 5000 {
		t.Fatalf("order %+v %v", st, err)
	}
}

// assertPayloadsEncrypted checks every payload anywhere in ev (inputs,
// results, signal and update arguments, update outcomes, marker details),
// hands each to also, and returns how many it found.
func assertPayloadsEncrypted(t *testing.T, ev *historypb.HistoryEvent, also func(*commonpb.Payload)) int {
	t.Helper()
	n := 0
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if p, ok := m.Interface().(*commonpb.Payload); ok {
			n++
			if enc := string(p.GetMetadata()["encoding"]); enc != "binary/encrypted" {
				t.Fatalf("event %d (%s): payload encoding %q", ev.GetEventId(), ev.GetEventType(), enc)
			}
			also(p)
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
				return true
			}
			switch {
			case fd.IsList():
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
			case fd.IsMap():
				if fd.MapValue().Kind() == protoreflect.MessageKind {
					v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
						walk(mv.Message())
						return true
					})
				}
			default:
				walk(v.Message())
			}
			return true
		})
	}
	walk(ev.ProtoReflect())
	return n
}
