package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/acme/payments/internal/payload"
)

// The ledger's types that travel as Temporal payloads (the order payment
// workflow's updates and local activity results) in JSON: snake_case names
// and Outcome by name (see package payload). Each UnmarshalJSON also reads
// the legacy shape (Go field names, Outcome as a number) of histories
// recorded before, so those runs replay and their results decode.

// MarshalJSON writes the outcome's name ("Inserted"); the zero Outcome,
// which no step answers, is "".
func (o Outcome) MarshalJSON() ([]byte, error) {
	if o == 0 {
		return []byte(`""`), nil
	}
	if _, ok := parseOutcome(o.String()); !ok {
		return nil, fmt.Errorf("marshal outcome %d: not an outcome", int(o))
	}
	return json.Marshal(o.String())
}

// UnmarshalJSON reads an outcome's name, or its number as histories
// recorded before names carry it.
func (o *Outcome) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("outcome: %w", err)
		}
		v, ok := parseOutcome(s)
		if !ok {
			return fmt.Errorf("outcome %q: want Inserted, Unchanged, Settled or Rejected", s)
		}
		*o = v
		return nil
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return fmt.Errorf("outcome %s: want a name or a number", b)
	}
	*o = Outcome(n)
	return nil
}

// parseOutcome reads an outcome's name, in any case; "" is the zero
// Outcome.
func parseOutcome(s string) (Outcome, bool) {
	if s == "" {
		return 0, true
	}
	for _, o := range []Outcome{Inserted, Unchanged, Settled, Rejected} {
		if strings.EqualFold(s, o.String()) {
			return o, true
		}
	}
	return 0, false
}

// UnmarshalJSON reads Payment in either shape.
func (p *Payment) UnmarshalJSON(b []byte) error {
	type plain Payment
	return payload.Unmarshal(b, (*plain)(p))
}

// UnmarshalJSON reads Result in either shape.
func (r *Result) UnmarshalJSON(b []byte) error {
	type plain Result
	return payload.Unmarshal(b, (*plain)(r))
}

// UnmarshalJSON reads OrderState in either shape.
func (s *OrderState) UnmarshalJSON(b []byte) error {
	type plain OrderState
	return payload.Unmarshal(b, (*plain)(s))
}

// UnmarshalJSON reads AttemptResult in either shape.
func (r *AttemptResult) UnmarshalJSON(b []byte) error {
	type plain AttemptResult
	return payload.Unmarshal(b, (*plain)(r))
}

// UnmarshalJSON reads a GatewayResult in either shape, and also the update
// argument of workflow runs from before this type (activities.GatewayInput:
// {"OrderID","Gateway","Settlement":{"PaymentID","Status","Amount",…}},
// with the amount in minor units), so that such an update replayed or
// retried after a deploy still names its payment.
func (g *GatewayResult) UnmarshalJSON(b []byte) error {
	type plain GatewayResult
	v := struct {
		*plain
		// Only the oldest runs carry it, with Go field names.
		Settlement *struct {
			PaymentID     string
			Status        Status
			GatewayRef    string
			FailureReason string
		} `json:"settlement"`
	}{plain: (*plain)(g)}
	if err := payload.Unmarshal(b, &v); err != nil {
		return err
	}
	if s := v.Settlement; s != nil && g.PaymentID == "" {
		// The old amount was already checked against the currency, and
		// minor units would be misread as text: leave it out.
		g.PaymentID, g.Status, g.GatewayRef, g.FailureReason = s.PaymentID, s.Status, s.GatewayRef, s.FailureReason
		g.Amount = ""
	}
	return nil
}
