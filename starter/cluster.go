package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/devstack"
	"github.com/acme/payments/internal/temporalserver"
)

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "run the scale-out topology on this machine: Temporal server on PostgreSQL, its UI, workers, one API",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "workers", Value: 2, Usage: "worker processes to start"},
			&cli.StringFlag{Name: "postgres-addr", EnvVars: []string{"TEMPORAL_POSTGRES_ADDR"}, Value: "127.0.0.1:5432", Usage: "PostgreSQL host:port for Temporal's state"},
			&cli.StringFlag{Name: "postgres-user", EnvVars: []string{"TEMPORAL_POSTGRES_USER"}, Value: "postgres", Usage: "PostgreSQL user"},
			&cli.StringFlag{Name: "postgres-password", EnvVars: []string{"TEMPORAL_POSTGRES_PASSWORD"}, Usage: "PostgreSQL password"},
		},
		Action: withConfig(func(ctx context.Context, c *cli.Context, cfg config.Config) error {
			if n := c.Int("workers"); n < 1 || n > 16 {
				return usageError{fmt.Errorf("--workers must be 1..16, got %d", n)}
			}
			host, portText, err := net.SplitHostPort(c.String("postgres-addr"))
			if err != nil {
				return usageError{fmt.Errorf("--postgres-addr: %w", err)}
			}
			port, err := strconv.Atoi(portText)
			if err != nil {
				return usageError{fmt.Errorf("--postgres-addr port %q: %w", portText, err)}
			}
			pg := temporalserver.Postgres{Host: host, Port: port, User: c.String("postgres-user"), Password: c.String("postgres-password")}
			return devstack.Cluster(ctx, cfg, pg, c.Int("workers"), logger(cfg), os.Stdout)
		}),
	}
}
