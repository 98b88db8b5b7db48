package main

import (
	"context"

	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/service"
)

// withMySQL is withDeps for commands that need only the database (they
// read jobs, rejects or orders): it never dials Temporal, so they work, and
// answer at once, whether or not Temporal is up. d.Temporal and d.Store are
// nil.
func withMySQL(ctx context.Context, cfg config.Config, run func(*service.Deps) error) error {
	if err := service.UseDevKeysIfPresent(&cfg); err != nil {
		return err
	}
	d, err := service.OpenMySQL(ctx, cfg, logger(cfg))
	if err != nil {
		return err
	}
	defer d.Close()
	return run(d)
}
