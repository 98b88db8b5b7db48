package records

import "github.com/acme/payments/internal/payload"

// Payload types of the service's workflows have snake_case JSON names (see
// package payload); UnmarshalJSON also reads the legacy shape (Go field
// names) of histories recorded before, so those runs replay.

// UnmarshalJSON reads Chunk in either shape.
func (c *Chunk) UnmarshalJSON(b []byte) error {
	type plain Chunk
	return payload.Unmarshal(b, (*plain)(c))
}
