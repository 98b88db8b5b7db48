package ledger_test

import (
	"encoding/json"
	"testing"

	"github.com/acme/payments/internal/ledger"
)

// An Outcome is written by name and read by name (any case) or, as
// histories recorded before names carry it, by number.
func TestOutcomeJSON(t *testing.T) {
	for o, name := range map[ledger.Outcome]string{ledger.Inserted: `"Inserted"`, ledger.Unchanged: `"Unchanged"`,
		ledger.Settled: `"Settled"`, ledger.Rejected: `"Rejected"`, 0: `""`} {
		b, err := json.Marshal(o)
		if err != nil || string(b) != name {
			t.Errorf("marshal %d: %s %v, want %s", int(o), b, err, name)
		}
		for _, in := range []string{name, string(b), `"` + name[1:len(name)-1] + `"`} {
			var got ledger.Outcome
			if err := json.Unmarshal([]byte(in), &got); err != nil || got != o {
				t.Errorf("unmarshal %s: %v %v, want %v", in, got, err, o)
			}
		}
	}
	var got ledger.Outcome
	if err := json.Unmarshal([]byte(`4`), &got); err != nil || got != ledger.Rejected {
		t.Errorf("legacy number 4: %v %v", got, err)
	}
	if err := json.Unmarshal([]byte(`"inserted"`), &got); err != nil || got != ledger.Inserted {
		t.Errorf(`"inserted": %v %v`, got, err)
	}
	for _, bad := range []string{`"Maybe"`, `1.5`, `true`} {
		if err := json.Unmarshal([]byte(bad), &got); err == nil {
			t.Errorf("unmarshal %s: no error", bad)
		}
	}
	if _, err := json.Marshal(ledger.Outcome(9)); err == nil {
		t.Error("marshal Outcome(9): no error")
	}
}

// A step's result, as the order payment workflow records it, in the new
// shape and in the legacy one.
func TestAttemptResultJSONShapes(t *testing.T) {
	want := ledger.AttemptResult{
		Result:  ledger.Result{PaymentID: "P1", Outcome: ledger.Settled, Status: ledger.StatusSuccess},
		Order:   ledger.OrderState{OrderID: "O1", Amount: 5000, Currency: "USD", PaidAmount: 5000, Status: ledger.OrderCompleted},
		Settled: []string{"P1"},
	}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	const shape = `{"result":{"payment_id":"P1","outcome":"Settled","status":"SUCCESS","code":"","message":""},` +
		`"order":{"order_id":"O1","amount":5000,"currency":"USD","paid_amount":5000,"status":"COMPLETED"},"settled":["P1"]}`
	if string(b) != shape {
		t.Errorf("marshal:\n got %s\nwant %s", b, shape)
	}
	legacy := `{"Result":{"PaymentID":"P1","Outcome":3,"Status":"SUCCESS","Code":"","Message":""},` +
		`"Order":{"OrderID":"O1","Amount":5000,"Currency":"USD","PaidAmount":5000,"Status":"COMPLETED"},"Settled":["P1"]}`
	for _, in := range []string{shape, legacy} {
		var got ledger.AttemptResult
		if err := json.Unmarshal([]byte(in), &got); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got.Result != want.Result || got.Order != want.Order || len(got.Settled) != 1 || got.Settled[0] != "P1" {
			t.Errorf("%s read as %+v", in, got)
		}
	}
}

// A gateway result in the new shape, the legacy one and the oldest
// (Settlement) one.
func TestGatewayResultJSONShapes(t *testing.T) {
	want := ledger.GatewayResult{OrderID: "O1", Gateway: "acme", PaymentID: "P1", Status: ledger.StatusFailed,
		Amount: "12.30", GatewayRef: "r1", FailureReason: "declined"}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	const shape = `{"order_id":"O1","gateway":"acme","payment_id":"P1","status":"FAILED","amount":"12.30","gateway_ref":"r1","failure_reason":"declined"}`
	if string(b) != shape {
		t.Errorf("marshal:\n got %s\nwant %s", b, shape)
	}
	legacy := `{"OrderID":"O1","Gateway":"acme","PaymentID":"P1","Status":"FAILED","Amount":"12.30","GatewayRef":"r1","FailureReason":"declined"}`
	for _, in := range []string{shape, legacy} {
		var got ledger.GatewayResult
		if err := json.Unmarshal([]byte(in), &got); err != nil || got != want {
			t.Errorf("%s read as %+v %v", in, got, err)
		}
	}
	oldest := `{"OrderID":"O1","Gateway":"acme","Settlement":{"PaymentID":"P1","Status":"FAILED","Amount":1230,"GatewayRef":"r1","FailureReason":"declined"}}`
	var got ledger.GatewayResult
	want.Amount = ""
	if err := json.Unmarshal([]byte(oldest), &got); err != nil || got != want {
		t.Errorf("oldest shape read as %+v %v", got, err)
	}
}

// A legacy payment's zero CreatedAt is left out when written again.
func TestPaymentOmitsZeroTime(t *testing.T) {
	var p ledger.Payment
	legacy := `{"PaymentID":"P1","OrderID":"O1","Amount":100,"Currency":"USD","Status":"","Method":"CARD","Details":"",` +
		`"GatewayRef":"","FailureReason":"","CreatedAt":"0001-01-01T00:00:00Z"}`
	if err := json.Unmarshal([]byte(legacy), &p); err != nil || p.PaymentID != "P1" || p.Amount != 100 || p.Method != "CARD" {
		t.Fatalf("legacy payment read as %+v %v", p, err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"payment_id":"P1","order_id":"O1","amount":100,"currency":"USD","status":"","method":"CARD","details":"","gateway_ref":"","failure_reason":""}`
	if string(b) != want {
		t.Errorf("marshal:\n got %s\nwant %s", b, want)
	}
}
