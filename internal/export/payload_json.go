package export

import "github.com/acme/payments/internal/payload"

// Payload types of the service's workflows have snake_case JSON names (see
// package payload); UnmarshalJSON also reads the legacy shape (Go field
// names) of histories recorded before, so those runs replay.

// UnmarshalJSON reads Params in either shape.
func (p *Params) UnmarshalJSON(b []byte) error {
	type plain Params
	return payload.Unmarshal(b, (*plain)(p))
}

// UnmarshalJSON reads Range in either shape.
func (r *Range) UnmarshalJSON(b []byte) error {
	type plain Range
	return payload.Unmarshal(b, (*plain)(r))
}
