package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/acme/payments/internal/api"
	"github.com/acme/payments/internal/stacktest"
	"github.com/acme/payments/internal/webhook"
	"github.com/acme/payments/workflows"
)

// errorCode is the code of a standard JSON error body, or "".
func errorCode(body []byte) string {
	var e api.ErrorBody
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

// An early callback for another amount fails its attempt at once, with
// reason AMOUNT_MISMATCH and an audit event, instead of leaving it PENDING
// until its timeout; the attempt's answer already says so. The attempt,
// naming no gateway, went to the only one configured.
func TestEarlyCallbackForAnotherAmountFailsTheAttempt(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.createOrder("M-1", "10.00")
	e.mustCallback(webhook.Result{PaymentID: "M-1-p1", Status: "SUCCESS", Amount: "3.00", GatewayRef: "m1-ref"}, http.StatusAccepted, "queued")
	p := e.mustAttempt("M-1", attempt{PaymentID: "M-1-p1", Amount: "10.00", Method: "CARD", Details: "4111111111111111"}, http.StatusCreated)
	if p.PaymentStatus != "FAILED" || p.FailureReason != "AMOUNT_MISMATCH" {
		t.Fatalf("attempt after an early result for 3.00: %+v", p)
	}
	if o := e.order("M-1"); o.OrderStatus != "PENDING" || o.PaidAmount != "0.00" {
		t.Fatalf("order: %+v", o)
	}
	if n := e.count(`SELECT COUNT(*) FROM payment_events WHERE payment_id = 'M-1-p1' AND applied AND to_status = 'FAILED'
		AND source = 'gateway' AND note LIKE 'AMOUNT_MISMATCH:%' AND note NOT LIKE '%3.00%' AND note NOT LIKE '%4111%'`); n != 1 {
		t.Errorf("%d AMOUNT_MISMATCH events", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM gateway_inbox`); n != 0 {
		t.Errorf("%d results left in the inbox", n)
	}
	// Nothing is left to wait for: no workflow holds the attempt.
	if n := e.count(`SELECT COUNT(*) FROM order_workflows`); n != 0 {
		t.Errorf("%d order workflows open", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM payments WHERE payment_id = 'M-1-p1' AND gateway = 'acme'`); n != 1 {
		t.Errorf("the attempt was not tied to the only configured gateway")
	}
}

// A callback answered 202 whose attempt is then refused for good leaves no
// row behind in the inbox, only an audit event.
func TestRefusedAttemptLeavesNoInboxRow(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.createOrder("R-1", "10.00")
	e.mustAttempt("R-1", attempt{PaymentID: "R-1-p1", Amount: "10.00", Method: "CARD"}, http.StatusCreated)
	e.mustCallback(webhook.Result{PaymentID: "R-1-p1", Status: "SUCCESS", Amount: "10.00", GatewayRef: "r1-ref"}, http.StatusOK, "accepted")
	e.mustCallback(webhook.Result{PaymentID: "R-1-p2", Status: "SUCCESS", Amount: "1.00", GatewayRef: "r2-ref"}, http.StatusAccepted, "queued")
	if code, body, err := e.attempt("R-1", attempt{PaymentID: "R-1-p2", Amount: "1.00", Method: "CARD"}); err != nil || code != http.StatusConflict {
		t.Fatalf("attempt on a COMPLETED order: %d %s %v", code, body, err)
	}
	if n := e.count(`SELECT COUNT(*) FROM gateway_inbox`); n != 0 {
		t.Errorf("%d orphan results in the inbox", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM payment_events WHERE payment_id = 'R-1-p2' AND NOT applied`); n != 1 {
		t.Errorf("%d audit events for the dropped result", n)
	}
}

// With two gateways configured an attempt names its gateway, and the other
// gateway's callback for it is refused with a JSON 409 that records
// nothing; its own gateway's settles it.
func TestCallbackFromAnotherGatewayIsRefused(t *testing.T) {
	const rivalSecret = "rival-secret-0123456789"
	cfg := stacktest.Config(t, stacktest.Temporal(t))
	cfg.APITokens = token + ":read+write+pii"
	cfg.WebhookSecrets = gateway + ":" + secret + ",rival:" + rivalSecret
	d := stacktest.Deps(t, cfg)
	stacktest.Worker(t, d)
	e := &env{t: t, d: d, base: stacktest.API(t, d)}
	e.createOrder("W-1", "10.00")

	type gwAttempt struct {
		attempt
		Gateway string `json:"gateway,omitempty"`
	}
	for _, c := range []struct {
		gw   string
		want int
	}{{"", http.StatusBadRequest}, {"nope", http.StatusBadRequest}, {gateway, http.StatusCreated}} {
		a := gwAttempt{attempt{PaymentID: "W-1-p1", Amount: "10.00", Method: "CARD", Details: "4111111111111111"}, c.gw}
		if code, body, err := e.api("POST", "/orders/W-1/payments", a); err != nil || code != c.want {
			t.Fatalf("attempt with gateway %q: %d %s %v, want %d", c.gw, code, body, err, c.want)
		}
	}
	events := e.count(`SELECT COUNT(*) FROM payment_events`)
	body := callbackBody(webhook.Result{PaymentID: "W-1-p1", Status: "SUCCESS", Amount: "10.00", GatewayRef: "w1-rival"})
	code, reply, err := e.rawCallback("rival", body, webhook.Sign([]byte(rivalSecret), time.Now(), body))
	if err != nil || code != http.StatusConflict || errorCode(reply) != "wrong_gateway" {
		t.Fatalf("the rival's callback: %d %s %v, want 409 wrong_gateway", code, reply, err)
	}
	if strings.Contains(string(reply), "4111") {
		t.Errorf("refusal holds payment details: %s", reply)
	}
	if n := e.count(`SELECT COUNT(*) FROM payment_events`); n != events {
		t.Errorf("the rival's callback added %d events", n-events)
	}
	if n := e.count(`SELECT COUNT(*) FROM gateway_inbox`); n != 0 {
		t.Errorf("the rival's callback was queued")
	}
	if p, _ := paymentOf(e.order("W-1"), "W-1-p1"); p.PaymentStatus != "PENDING" || p.GatewayRef != "" {
		t.Fatalf("after the rival's callback: %+v", p)
	}
	e.mustCallback(webhook.Result{PaymentID: "W-1-p1", Status: "SUCCESS", Amount: "10.00", GatewayRef: "w1-acme"}, http.StatusOK, "accepted")
	if o := e.order("W-1"); o.OrderStatus != "COMPLETED" {
		t.Fatalf("after its own gateway's callback: %+v", o)
	}
}

// A SUCCESS that would take an order's paid_amount past int64 is refused
// at once with a JSON 422, and its workflow goes on serving the order.
func TestPaidAmountOverflowIsRefusedAtOnce(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.createOrder("V-1", "92233720368547758.07") // the largest amount stored
	const half = "50000000000000000.00"
	e.mustAttempt("V-1", attempt{PaymentID: "V-1-p1", Amount: half, Method: "CARD"}, http.StatusCreated)
	e.mustAttempt("V-1", attempt{PaymentID: "V-1-p2", Amount: half, Method: "CARD"}, http.StatusCreated)
	e.mustCallback(webhook.Result{PaymentID: "V-1-p1", Status: "SUCCESS", Amount: half, GatewayRef: "v1"}, http.StatusOK, "accepted")
	body := callbackBody(webhook.Result{PaymentID: "V-1-p2", Status: "SUCCESS", Amount: half, GatewayRef: "v2"})
	code, reply, err := e.rawCallback(gateway, body, webhook.Sign([]byte(secret), time.Now(), body))
	if err != nil || code != http.StatusUnprocessableEntity || errorCode(reply) != "amount_overflow" {
		t.Fatalf("overflowing callback: %d %s %v, want 422 amount_overflow", code, reply, err)
	}
	// Refused as a business answer, not an error retried in the workflow:
	// no workflow task of the order failed or timed out.
	it := e.d.Temporal.GetWorkflowHistory(context.Background(), workflows.OrderPaymentWorkflowID("V-1"), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ty := ev.GetEventType(); ty == enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED || ty == enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT {
			t.Fatalf("the order's workflow had a %s", ty)
		}
	}
	o := e.order("V-1")
	if p, _ := paymentOf(o, "V-1-p2"); p.PaymentStatus != "PENDING" || o.PaidAmount != half || o.OrderStatus != "PENDING" {
		t.Fatalf("after the refused callback: %+v", o)
	}
	if s := e.workflowStatus("V-1"); s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Errorf("workflow after the refusal: %s", s)
	}
	// The workflow is not stuck retrying: its next step answers at once.
	e.mustCallback(webhook.Result{PaymentID: "V-1-p2", Status: "FAILED", Amount: half, FailureReason: "DECLINED"}, http.StatusOK, "accepted")
}
