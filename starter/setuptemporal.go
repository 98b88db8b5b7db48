package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/internal/temporalclient"
	"github.com/acme/payments/internal/visibility"
)

// setupTemporalCommand registers the service's search attributes on
// TEMPORAL_NAMESPACE of the cluster at TEMPORAL_ADDRESS. Workflows that
// set an unregistered attribute fail, so it runs once per namespace before
// the first worker (and harmlessly on every deploy after).
func setupTemporalCommand() *cli.Command {
	return &cli.Command{
		Name:  "setup-temporal",
		Usage: "register the service's search attributes (" + attributeNames() + ") on TEMPORAL_NAMESPACE; safe to run again",
		Action: withConfig(func(ctx context.Context, c *cli.Context, cfg config.Config) error {
			// The client encrypts payloads and so wants the keys, though
			// registering sends none.
			if err := service.UseDevKeysIfPresent(&cfg); err != nil {
				return err
			}
			keys, err := cfg.Keyring()
			if err != nil {
				return fmt.Errorf("encryption keys: %w", err)
			}
			tc, err := temporalclient.Dial(ctx, temporalclient.Options{
				Address: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace, Keys: keys, Logger: logger(cfg),
				TLS: cfg.TemporalTLS, APIKey: cfg.TemporalAPIKey,
			})
			if err != nil {
				return err
			}
			defer tc.Close()
			added, err := visibility.Register(ctx, tc.OperatorService(), cfg.TemporalNamespace)
			if err != nil {
				return err
			}
			if len(added) == 0 {
				fmt.Printf("namespace %s already has the search attributes %s\n", cfg.TemporalNamespace, attributeNames())
			} else {
				fmt.Printf("namespace %s: registered the search attributes %s (Keyword)\n", cfg.TemporalNamespace, strings.Join(added, ", "))
			}
			return nil
		}),
	}
}

func attributeNames() string {
	names := make([]string, 0, len(visibility.Attributes()))
	for name := range visibility.Attributes() {
		names = append(names, name)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
