package orders

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/acme/payments/internal/encryption"
)

// PageKey is where a page of FindByEmailPage ends: the last candidate's
// created_at and order_id.
type PageKey struct {
	CreatedAt time.Time
	OrderID   string
}

// FindByEmailPage is FindByEmail one page at a time: up to limit orders
// after the key of the previous page (nil for the first), sorted by
// created_at then order_id, and the key of the next page (nil on the last
// one). A keyset query on the blind index.
func (s *Store) FindByEmailPage(ctx context.Context, email string, limit int, after *PageKey) ([]Order, *PageKey, error) {
	want := encryption.NormalizeEmail(email)
	if want == "" || CheckContact(strings.TrimSpace(email), "") != "" {
		return nil, nil, fmt.Errorf("%w: customer_email is not an email address", ErrInvalid)
	}
	q := "SELECT " + RowColumns + " FROM orders WHERE customer_email_bidx = ?"
	args := []any{s.BlindIndex.Email(want)}
	if after != nil {
		q += " AND (created_at > ? OR (created_at = ? AND order_id > ?))"
		args = append(args, after.CreatedAt, after.CreatedAt, after.OrderID)
	}
	q += " ORDER BY created_at, order_id LIMIT ?"
	args = append(args, limit+1)
	var rows []Row
	if err := s.DB.SelectContext(ctx, &rows, q, args...); err != nil {
		// The look-up value is customer data: name neither it nor its index.
		return nil, nil, fmt.Errorf("find orders by customer_email: %w", err)
	}
	var next *PageKey
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[limit-1]
		next = &PageKey{CreatedAt: last.CreatedAt, OrderID: last.OrderID}
	}
	out := make([]Order, 0, len(rows))
	for _, r := range rows {
		o, err := s.sealer().Open(r)
		if err != nil {
			return nil, nil, err
		}
		// Drops HMAC collisions and index values copied between rows.
		if encryption.NormalizeEmail(o.CustomerEmail) == want {
			out = append(out, o)
		}
	}
	return out, next, nil
}
