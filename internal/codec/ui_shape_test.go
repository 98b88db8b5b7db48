package codec_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"

	"github.com/acme/payments/internal/codec"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/internal/stacktest"
	"github.com/acme/payments/workflows"
)

// What the Web UI shows of an order payment run, decoded through the
// codec endpoint as the UI calls it, reads like the business: snake_case
// names, durations as strings, outcomes by name and no zero times. (The
// SDK's own marker data is the SDK's, and left out.)
func TestUIShowsDecodedPayloadsInSnakeCase(t *testing.T) {
	addr := stacktest.Temporal(t)
	d := stacktest.Deps(t, stacktest.Config(t, addr))
	stacktest.Worker(t, d)
	ctx := context.Background()
	if _, err := d.DB.Exec(`INSERT INTO orders (order_id, order_amount, currency, created_at, updated_at)
		VALUES ('ord-ui', 5000, 'USD', NOW(6), NOW(6))`); err != nil {
		t.Fatal(err)
	}
	lc := service.NewLifecycle(d)
	if _, err := lc.Attempt(ctx, ledger.Attempt{PaymentID: "pay-ui", OrderID: "ord-ui", Amount: "50.00", Method: "CARD", Details: "4111 1111 1111 1111"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := lc.GatewayResult(ctx, ledger.GatewayResult{Gateway: "acme", PaymentID: "pay-ui", Status: ledger.StatusSuccess, GatewayRef: "ref-ui"}); err != nil {
		t.Fatal(err)
	}
	id := workflows.OrderPaymentWorkflowID("ord-ui")
	if err := d.Temporal.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		t.Fatalf("order workflow: %v", err)
	}

	srv := httptest.NewServer(codec.Handler(d.Keys))
	defer srv.Close()
	ui := converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{Endpoint: srv.URL})

	var shown []*commonpb.Payload
	iter := d.Temporal.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		shown = append(shown, ourPayloads(t, ev)...)
	}
	plain, err := ui.Decode(shown)
	if err != nil {
		t.Fatalf("decode through the codec endpoint: %v", err)
	}
	if len(plain) < 6 {
		t.Fatalf("only %d payloads", len(plain))
	}
	var sawOutcome, sawTimeout bool
	for _, p := range plain {
		b := p.GetData()
		sawOutcome = sawOutcome || strings.Contains(string(b), `"outcome":"Settled"`) || strings.Contains(string(b), `"outcome":"Inserted"`)
		sawTimeout = sawTimeout || strings.Contains(string(b), `"attempt_timeout":"`)
		assertBusinessShape(t, b)
	}
	if !sawOutcome || !sawTimeout {
		t.Errorf("no outcome name (%v) or attempt_timeout string (%v) among the payloads", sawOutcome, sawTimeout)
	}
}

// ourPayloads are ev's payloads that the service's types wrote: all but a
// marker's SDK data (the local activity's bookkeeping, the version).
func ourPayloads(t *testing.T, ev *historypb.HistoryEvent) []*commonpb.Payload {
	if m := ev.GetMarkerRecordedEventAttributes(); m != nil {
		if m.GetMarkerName() != "LocalActivity" {
			return nil
		}
		return m.GetDetails()["result"].GetPayloads()
	}
	var out []*commonpb.Payload
	assertPayloadsEncrypted(t, ev, func(p *commonpb.Payload) { out = append(out, p) })
	return out
}

var snakeKey = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

func assertBusinessShape(t *testing.T, b []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if !snakeKey.MatchString(k) {
					t.Errorf("key %q is not snake_case: %s", k, b)
				}
				if strings.HasSuffix(k, "_timeout") {
					if s, ok := e.(string); !ok {
						t.Errorf("%s is not a duration string: %s", k, b)
					} else if _, err := time.ParseDuration(s); err != nil {
						t.Errorf("%s: %v", k, err)
					}
				}
				if _, ok := e.(string); k == "outcome" && !ok {
					t.Errorf("outcome is not a name: %s", b)
				}
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		case string:
			if strings.HasPrefix(v, "0001-01-01") {
				t.Errorf("a zero time: %s", b)
			}
		}
	}
	walk(v)
}
