package importer

import "github.com/acme/payments/internal/payload"

// Payload types of the service's workflows have snake_case JSON names (see
// package payload); UnmarshalJSON also reads the legacy shape (Go field
// names) of histories recorded before, so those runs replay.

// UnmarshalJSON reads ChunkResult in either shape.
func (c *ChunkResult) UnmarshalJSON(b []byte) error {
	type plain ChunkResult
	return payload.Unmarshal(b, (*plain)(c))
}
