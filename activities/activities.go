// Package activities holds the service's Temporal activities: the steps of
// its workflows that touch MySQL, the staging store or the keys. Activities
// is a struct of dependencies so a worker wires them once.
package activities

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/staging"
)

// Activities are registered on every worker.
type Activities struct {
	DB       *sqlx.DB
	Ledger   *ledger.Ledger
	Importer *importer.Importer
	Store    *staging.Store
	// WakeOrder tells an order's open payment workflow that its payments
	// changed (wired to a signal by the worker).
	WakeOrder func(ctx context.Context, orderID string) error
}

// RecordPaymentsInput is a batch of payments for the ledger. Its payment
// details are plaintext inside the worker only: the payload codec encrypts
// them before they reach the Temporal server.
type RecordPaymentsInput struct {
	Source    ledger.Source
	Reference string
	Payments  []ledger.Payment
}

// RecordPayments records payments through the ledger. It is idempotent: a
// retried attempt finds its rows and changes nothing.
func (a *Activities) RecordPayments(ctx context.Context, in RecordPaymentsInput) ([]ledger.Result, error) {
	res, err := a.Ledger.Record(ctx, in.Source, in.Reference, in.Payments)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("record %d payments (%s %s): %w", len(in.Payments), in.Source, in.Reference, err)
	}
	return res, nil
}
