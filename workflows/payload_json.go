package workflows

import (
	"encoding/json"
	"time"

	"github.com/acme/payments/internal/payload"
	"github.com/acme/payments/internal/records"
)

// The workflows' payloads in JSON (see package payload): snake_case names,
// durations as strings. Each UnmarshalJSON also reads the legacy shape (Go
// field names, durations in nanoseconds) of histories recorded before, so
// those runs replay and their results decode.

// MarshalJSON writes p with HeartbeatTimeout as a duration string.
func (p ImportParams) MarshalJSON() ([]byte, error) {
	type plain ImportParams
	return json.Marshal(struct {
		plain
		HeartbeatTimeout payload.Duration `json:"heartbeat_timeout"`
	}{plain(p), payload.Duration(p.HeartbeatTimeout)})
}

// UnmarshalJSON reads ImportParams in either shape, taking Kind from
// "Type" as runs started before the field's rename carry it.
func (p *ImportParams) UnmarshalJSON(b []byte) error {
	type plain ImportParams
	v := struct {
		*plain
		HeartbeatTimeout payload.Duration `json:"heartbeat_timeout"`
		Type             records.Kind     `json:"type"`
	}{plain: (*plain)(p), HeartbeatTimeout: payload.Duration(p.HeartbeatTimeout)}
	if err := payload.Unmarshal(b, &v); err != nil {
		return err
	}
	p.HeartbeatTimeout = time.Duration(v.HeartbeatTimeout)
	if p.Kind == "" {
		p.Kind = v.Type
	}
	return nil
}

// UnmarshalJSON reads ImportInput in either shape.
func (in *ImportInput) UnmarshalJSON(b []byte) error {
	type plain ImportInput
	return payload.Unmarshal(b, (*plain)(in))
}

// UnmarshalJSON reads ImportState in either shape.
func (st *ImportState) UnmarshalJSON(b []byte) error {
	type plain ImportState
	return payload.Unmarshal(b, (*plain)(st))
}

// UnmarshalJSON reads Progress in either shape.
func (p *Progress) UnmarshalJSON(b []byte) error {
	type plain Progress
	return payload.Unmarshal(b, (*plain)(p))
}

// MarshalJSON writes in with HeartbeatTimeout as a duration string.
func (in ExportInput) MarshalJSON() ([]byte, error) {
	type plain ExportInput
	return json.Marshal(struct {
		plain
		HeartbeatTimeout payload.Duration `json:"heartbeat_timeout"`
	}{plain(in), payload.Duration(in.HeartbeatTimeout)})
}

// UnmarshalJSON reads ExportInput in either shape.
func (in *ExportInput) UnmarshalJSON(b []byte) error {
	type plain ExportInput
	v := struct {
		*plain
		HeartbeatTimeout payload.Duration `json:"heartbeat_timeout"`
	}{plain: (*plain)(in), HeartbeatTimeout: payload.Duration(in.HeartbeatTimeout)}
	if err := payload.Unmarshal(b, &v); err != nil {
		return err
	}
	in.HeartbeatTimeout = time.Duration(v.HeartbeatTimeout)
	return nil
}

// UnmarshalJSON reads ExportState in either shape.
func (st *ExportState) UnmarshalJSON(b []byte) error {
	type plain ExportState
	return payload.Unmarshal(b, (*plain)(st))
}

// UnmarshalJSON reads ExportProgress in either shape.
func (p *ExportProgress) UnmarshalJSON(b []byte) error {
	type plain ExportProgress
	return payload.Unmarshal(b, (*plain)(p))
}

// UnmarshalJSON reads AttemptRecorded in either shape.
func (a *AttemptRecorded) UnmarshalJSON(b []byte) error {
	type plain AttemptRecorded
	return payload.Unmarshal(b, (*plain)(a))
}

// MarshalJSON writes in with AttemptTimeout as a duration string.
func (in OrderPaymentInput) MarshalJSON() ([]byte, error) {
	type plain OrderPaymentInput
	return json.Marshal(struct {
		plain
		AttemptTimeout payload.Duration `json:"attempt_timeout"`
	}{plain(in), payload.Duration(in.AttemptTimeout)})
}

// UnmarshalJSON reads OrderPaymentInput in either shape.
func (in *OrderPaymentInput) UnmarshalJSON(b []byte) error {
	type plain OrderPaymentInput
	v := struct {
		*plain
		AttemptTimeout payload.Duration `json:"attempt_timeout"`
	}{plain: (*plain)(in), AttemptTimeout: payload.Duration(in.AttemptTimeout)}
	if err := payload.Unmarshal(b, &v); err != nil {
		return err
	}
	in.AttemptTimeout = time.Duration(v.AttemptTimeout)
	return nil
}

// UnmarshalJSON reads PendingAttempt in either shape.
func (p *PendingAttempt) UnmarshalJSON(b []byte) error {
	type plain PendingAttempt
	return payload.Unmarshal(b, (*plain)(p))
}

// UnmarshalJSON reads OrderPaymentState in either shape.
func (st *OrderPaymentState) UnmarshalJSON(b []byte) error {
	type plain OrderPaymentState
	return payload.Unmarshal(b, (*plain)(st))
}
