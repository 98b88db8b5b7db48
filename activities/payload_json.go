package activities

import "github.com/acme/payments/internal/payload"

// The activities' payloads in JSON have snake_case names (see package
// payload). Each UnmarshalJSON also reads the legacy shape (Go field
// names) of histories recorded before, so those runs replay.

// UnmarshalJSON reads PlanImportInput in either shape.
func (in *PlanImportInput) UnmarshalJSON(b []byte) error {
	type plain PlanImportInput
	return payload.Unmarshal(b, (*plain)(in))
}

// UnmarshalJSON reads ImportPlan in either shape.
func (in *ImportPlan) UnmarshalJSON(b []byte) error {
	type plain ImportPlan
	return payload.Unmarshal(b, (*plain)(in))
}

// UnmarshalJSON reads ImportChunkInput in either shape.
func (in *ImportChunkInput) UnmarshalJSON(b []byte) error {
	type plain ImportChunkInput
	return payload.Unmarshal(b, (*plain)(in))
}

// UnmarshalJSON reads FinishImportInput in either shape.
func (in *FinishImportInput) UnmarshalJSON(b []byte) error {
	type plain FinishImportInput
	return payload.Unmarshal(b, (*plain)(in))
}

// UnmarshalJSON reads ExportParams in either shape.
func (in *ExportParams) UnmarshalJSON(b []byte) error {
	type plain ExportParams
	return payload.Unmarshal(b, (*plain)(in))
}

// UnmarshalJSON reads ExportPlan in either shape.
func (in *ExportPlan) UnmarshalJSON(b []byte) error {
	type plain ExportPlan
	return payload.Unmarshal(b, (*plain)(in))
}

// UnmarshalJSON reads ExportChunkInput in either shape.
func (in *ExportChunkInput) UnmarshalJSON(b []byte) error {
	type plain ExportChunkInput
	return payload.Unmarshal(b, (*plain)(in))
}

// UnmarshalJSON reads ExportChunkResult in either shape.
func (in *ExportChunkResult) UnmarshalJSON(b []byte) error {
	type plain ExportChunkResult
	return payload.Unmarshal(b, (*plain)(in))
}

// UnmarshalJSON reads JoinExportResult in either shape.
func (in *JoinExportResult) UnmarshalJSON(b []byte) error {
	type plain JoinExportResult
	return payload.Unmarshal(b, (*plain)(in))
}

// UnmarshalJSON reads FinishExportInput in either shape.
func (in *FinishExportInput) UnmarshalJSON(b []byte) error {
	type plain FinishExportInput
	return payload.Unmarshal(b, (*plain)(in))
}

// UnmarshalJSON reads AttemptInput in either shape.
func (in *AttemptInput) UnmarshalJSON(b []byte) error {
	type plain AttemptInput
	return payload.Unmarshal(b, (*plain)(in))
}

// UnmarshalJSON reads TimeoutInput in either shape.
func (in *TimeoutInput) UnmarshalJSON(b []byte) error {
	type plain TimeoutInput
	return payload.Unmarshal(b, (*plain)(in))
}

// UnmarshalJSON reads RefreshInput in either shape.
func (in *RefreshInput) UnmarshalJSON(b []byte) error {
	type plain RefreshInput
	return payload.Unmarshal(b, (*plain)(in))
}
