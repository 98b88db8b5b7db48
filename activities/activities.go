// Package activities holds the service's Temporal activities: the steps of
// its workflows that touch MySQL, the staging store or the keys. Activities
// is a struct of dependencies so a worker wires them once.
package activities

import (
	"context"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/export"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/metrics"
	"github.com/acme/payments/internal/staging"
)

// Activities are registered on every worker.
type Activities struct {
	DB       *sqlx.DB
	Ledger   *ledger.Ledger
	Importer *importer.Importer
	Exporter *export.Exporter
	Store    *staging.Store
	// WakeOrder tells an order's open payment workflow that its payments
	// changed (wired to a signal by the worker).
	WakeOrder func(ctx context.Context, orderID string) error
	// SweepUploads deletes staged uploads written before a time that no
	// running import reads (ingest.Intake.SweepUploads, which this package
	// cannot import: ingest starts workflows).
	SweepUploads func(ctx context.Context, before time.Time) (int, error)
	// Metrics counts import chunks and export parts; nil counts nothing.
	Metrics *metrics.Metrics
}
