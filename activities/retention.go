package activities

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/acme/payments/internal/payload"
)

// SweepInput is the cutoff of a staging retention sweep.
type SweepInput struct {
	Before time.Time `json:"before,omitzero"`
}

// UnmarshalJSON reads a SweepInput as every payload type does (see
// internal/payload), so the naming rule holds for it too.
func (in *SweepInput) UnmarshalJSON(b []byte) error {
	type plain SweepInput
	return payload.Unmarshal(b, (*plain)(in))
}

// SweepStagedUploads deletes the staged uploads written before in.Before
// that no running import reads (ingest.Intake.SweepUploads, wired by the
// worker as SweepUploads) and returns how many it deleted.
func (a *Activities) SweepStagedUploads(ctx context.Context, in SweepInput) (int, error) {
	if a.SweepUploads == nil {
		return 0, errors.New("staging retention: this worker has no staging store")
	}
	n, err := a.SweepUploads(ctx, in.Before)
	if n > 0 {
		activity.GetLogger(ctx).Info("staging retention sweep", "deleted_uploads", n, "before", in.Before)
	}
	return n, err
}
