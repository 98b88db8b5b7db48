package activities

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/acme/payments/internal/rotation"
)

// Application error types of a key rotation's activities that are not
// retried: another attempt would meet the same configuration or data.
const (
	// ErrTypeRotationWrongKey: the worker's primary key is not the one the
	// rotation targets (the workers' PAYMENTS_KEYS differ).
	ErrTypeRotationWrongKey = "RotationWrongKey"
	// ErrTypeRotationBadValue: a stored value does not decrypt.
	ErrTypeRotationBadValue = "RotationBadValue"
)

// Rotation holds a key rotation's activities. It is registered next to
// Activities; its method names are its own.
type Rotation struct {
	Rotator *rotation.Rotator
}

// RotateRangeInput is one stretch of a table to rotate: up to MaxPages
// keyset pages of PageRows rows, starting after primary key After.
type RotateRangeInput struct {
	RotationID string `json:"rotation_id"`
	// KeyID is the key the rotation re-encrypts under; a worker whose
	// primary key differs refuses the work.
	KeyID    string `json:"key_id"`
	Table    string `json:"table"`
	After    string `json:"after"`
	PageRows int    `json:"page_rows"`
	MaxPages int    `json:"max_pages"`
}

// RotateCursor is a RotateRange's heartbeat: where it is and what it did,
// so a retried attempt resumes after the last committed page.
type RotateCursor struct {
	After   string `json:"after"`
	Pages   int    `json:"pages"`
	Scanned int64  `json:"rows_scanned"`
	Rotated int64  `json:"rows_rotated"`
}

// RotateRangeResult is what a RotateRange did, counting the pages of any
// earlier attempt it resumed.
type RotateRangeResult struct {
	Table string `json:"table"`
	// After is the last primary key read: the next range starts after it.
	After   string `json:"after"`
	Done    bool   `json:"done"` // the table's end was reached
	Pages   int    `json:"pages"`
	Scanned int64  `json:"rows_scanned"`
	Rotated int64  `json:"rows_rotated"`
	// Resumed: this attempt started from an earlier attempt's heartbeat.
	Resumed bool `json:"resumed"`
}

// RotateRange re-encrypts the rows of a stretch of one table under the
// primary key, a short transaction per page, heartbeating its cursor after
// every committed page: a retried attempt (its worker died) starts after
// the last page its predecessor reported, and a page that was not
// committed is simply done again (it rewrote nothing).
func (a *Rotation) RotateRange(ctx context.Context, in RotateRangeInput) (RotateRangeResult, error) {
	t, err := rotation.ParseTable(in.Table)
	if err != nil {
		return RotateRangeResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "RotationBadInput", nil)
	}
	if have := a.Rotator.Keys.PrimaryID(); have != in.KeyID {
		return RotateRangeResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"rotation %s targets key %q but this worker's primary key is %q: give every worker the same PAYMENTS_KEYS, new key first, then run rotate-keys again",
			in.RotationID, in.KeyID, have), ErrTypeRotationWrongKey, nil)
	}
	rows, pages := max(in.PageRows, 1), max(in.MaxPages, 1)
	cur := RotateCursor{After: in.After}
	res := RotateRangeResult{Table: in.Table}
	if activity.HasHeartbeatDetails(ctx) {
		var prev RotateCursor
		if err := activity.GetHeartbeatDetails(ctx, &prev); err == nil {
			cur, res.Resumed = prev, true
		}
	}
	// Heartbeat from a goroutine too: a page may wait for row locks held by
	// imports or payments for longer than the heartbeat timeout.
	var mu sync.Mutex
	beat := func() {
		mu.Lock()
		c := cur
		mu.Unlock()
		activity.RecordHeartbeat(ctx, c)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				beat()
			}
		}
	}()
	for cur.Pages < pages {
		p, err := a.Rotator.Page(ctx, t, cur.After, rows)
		if errors.Is(err, rotation.ErrBadValue) {
			return RotateRangeResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeRotationBadValue, nil)
		}
		if err != nil {
			return RotateRangeResult{}, fmt.Errorf("rotation %s: %w", in.RotationID, err)
		}
		mu.Lock()
		cur.Pages++
		cur.Scanned += int64(p.Scanned)
		cur.Rotated += int64(p.Rotated)
		if p.Last != "" {
			cur.After = p.Last
		}
		mu.Unlock()
		beat()
		if p.Done {
			res.Done = true
			break
		}
	}
	res.After, res.Pages, res.Scanned, res.Rotated = cur.After, cur.Pages, cur.Scanned, cur.Rotated
	return res, nil
}

// RotationRemainingResult counts the values still under another key than
// a rotation's, per "table.column".
type RotationRemainingResult struct {
	Columns map[string]int64 `json:"columns"`
	Total   int64            `json:"total"`
}

// RotationRemaining counts, from the key-id indexes, the values under
// another key than keyID.
func (a *Rotation) RotationRemaining(ctx context.Context, keyID string) (RotationRemainingResult, error) {
	cols, total, err := rotation.Remaining(ctx, a.Rotator.DB, keyID)
	if err != nil {
		return RotationRemainingResult{}, err
	}
	return RotationRemainingResult{Columns: cols, Total: total}, nil
}
