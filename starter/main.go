// Command starter is the service's command line: it runs the development
// stack, the HTTP API and migrations. Logic lives in internal packages; this
// file parses flags and wires them.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/acme/payments/internal/buildinfo"
	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/devstack"
	"github.com/acme/payments/internal/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, newApp(), os.Args, os.Stderr) // see contract.go
	stop()
	os.Exit(code)
}

func newApp() *cli.App {
	return contract(&cli.App{
		Name:  "starter",
		Usage: "Payment Management Service",
		Flags: config.Flags(),
		Commands: []*cli.Command{
			{
				Name:  "dev",
				Usage: "run everything in one process: embedded Temporal + UI, worker, HTTP API",
				Action: withConfig(func(ctx context.Context, c *cli.Context, cfg config.Config) error {
					return devstack.Dev(ctx, cfg, logger(cfg), os.Stdout)
				}),
			},
			{
				Name:  "serve",
				Usage: "run the HTTP API against TEMPORAL_ADDRESS and PAYMENTS_MYSQL_DSN",
				Action: withConfig(func(ctx context.Context, c *cli.Context, cfg config.Config) error {
					if err := service.UseDevKeysIfPresent(&cfg); err != nil {
						return err
					}
					return service.Serve(ctx, cfg, logger(cfg))
				}),
			},
			clusterCommand(),
			importCommand(),
			importsCommand(),
			rejectsCommand(),
			exportCommand(),
			genCommand(),
			benchCommand(),
			orderCommand(),
			payCommand(),
			setupTemporalCommand(),
			gatewayCommand(),
			rotateKeysCommand(),
			keysCommand(),
			completionCommand(),
			{
				Name:  "migrate",
				Usage: "apply pending database migrations",
				Action: withConfig(func(ctx context.Context, c *cli.Context, cfg config.Config) error {
					if err := database.Create(ctx, cfg.MySQLDSN); err != nil {
						return err
					}
					db, err := database.Open(ctx, cfg.MySQLDSN)
					if err != nil {
						return err
					}
					defer db.Close()
					v, err := database.Migrate(ctx, db, logger(cfg))
					if err != nil {
						return err
					}
					fmt.Fprintf(os.Stderr, "database schema at version %d\n", v)
					return nil
				}),
			},
		},
		// --version: the module version and VCS revision of this build.
		Version: buildinfo.Read().String(),
	})
}

func withConfig(run func(context.Context, *cli.Context, config.Config) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.Args().Len() > 0 {
			return usageError{fmt.Errorf("%s takes no arguments, got %q", c.Command.Name, c.Args().First())}
		}
		cfg, err := config.FromCLI(c)
		if err != nil {
			return usageError{err}
		}
		return run(c.Context, c, cfg)
	}
}

func logger(cfg config.Config) *slog.Logger { return service.NewLogger(os.Stderr, cfg.LogLevel) }
