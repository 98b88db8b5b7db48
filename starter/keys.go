package main

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/rotation"
	"github.com/acme/payments/internal/service"
)

func keysCommand() *cli.Command {
	return &cli.Command{
		Name:  "keys",
		Usage: "encryption keys",
		Subcommands: []*cli.Command{{
			Name:  "status",
			Usage: "how many stored values each key id protects, per encrypted column (reads MySQL only)",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "json", Usage: "print the status as JSON"},
			},
			Action: withConfig(func(ctx context.Context, c *cli.Context, cfg config.Config) error {
				return withMySQL(ctx, cfg, func(d *service.Deps) error {
					usage, err := rotation.Status(ctx, d.DB)
					if err != nil {
						return err
					}
					st := newKeysStatus(d.Keys, usage)
					if c.Bool("json") {
						return printJSON(st)
					}
					printKeyStatus(st)
					return nil
				})
			}),
		}},
	}
}

// keysStatus is `starter keys status`: every key id that is configured or
// still used by a stored value.
type keysStatus struct {
	Primary string      `json:"primary"`
	Keys    []keyStatus `json:"keys"`
}

// keyStatus is one key id: whether the keyring has it, and the values it
// protects per "table.column" (every column listed, 0 when none).
type keyStatus struct {
	KeyID      string           `json:"key_id"`
	Primary    bool             `json:"primary"`
	Configured bool             `json:"configured"`
	Rows       map[string]int64 `json:"rows"`
	Total      int64            `json:"total"`
}

func newKeysStatus(keys *encryption.Keyring, usage []rotation.Usage) keysStatus {
	ids := keys.KeyIDs()
	for _, u := range usage {
		if !slices.Contains(ids, u.KeyID) {
			ids = append(ids, u.KeyID)
		}
	}
	st := keysStatus{Primary: keys.PrimaryID()}
	for _, id := range ids {
		k := keyStatus{KeyID: id, Primary: id == keys.PrimaryID(), Configured: slices.Contains(keys.KeyIDs(), id), Rows: map[string]int64{}}
		for _, c := range rotation.Columns {
			k.Rows[c.String()] = 0
		}
		for _, u := range usage {
			if u.KeyID == id {
				k.Rows[u.Table+"."+u.Column] += u.Rows
				k.Total += u.Rows
			}
		}
		st.Keys = append(st.Keys, k)
	}
	return st
}

func printKeyStatus(st keysStatus) {
	fmt.Printf("%-16s  %-14s", "KEY", "STATE")
	for _, c := range rotation.Columns {
		fmt.Printf("  %24s", c.String())
	}
	fmt.Printf("  %10s\n", "TOTAL")
	for _, k := range st.Keys {
		state := "configured"
		switch {
		case k.Primary:
			state = "primary"
		case !k.Configured:
			state = "NOT CONFIGURED"
		}
		fmt.Printf("%-16s  %-14s", k.KeyID, state)
		for _, c := range rotation.Columns {
			fmt.Printf("  %24d", k.Rows[c.String()])
		}
		fmt.Printf("  %10d\n", k.Total)
	}
	for _, k := range st.Keys {
		switch {
		case !k.Primary && k.Configured && k.Total == 0:
			fmt.Fprintf(os.Stderr, "key %q protects no stored value: it may be removed from PAYMENTS_KEYS (keep it while Temporal histories sealed under it are retained)\n", k.KeyID)
		case !k.Primary && k.Total > 0:
			fmt.Fprintf(os.Stderr, "key %q still protects %d values: run `starter rotate-keys` before removing it\n", k.KeyID, k.Total)
		}
	}
}
