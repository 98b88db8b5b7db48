// Command worker runs the service's Temporal worker on the payments task
// queue against TEMPORAL_ADDRESS and PAYMENTS_MYSQL_DSN. Run as many as the
// load needs, on any machines.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/acme/payments/internal/buildinfo"
	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/service"
)

func main() {
	app := &cli.App{
		Name:  "worker",
		Usage: "Temporal worker of the Payment Management Service",
		Flags: config.Flags(),
		Action: func(c *cli.Context) error {
			cfg, err := config.FromCLI(c)
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			// Next to `starter dev`, the development keys it created.
			if err := service.UseDevKeysIfPresent(&cfg); err != nil {
				return cli.Exit(err.Error(), 1)
			}
			return service.RunWorker(c.Context, cfg, service.NewLogger(os.Stderr, cfg.LogLevel))
		},
		// --version: the module version and VCS revision of this build.
		Version: buildinfo.Read().String(),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.RunContext(ctx, os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "worker: %v\n", err)
		os.Exit(1)
	}
}
