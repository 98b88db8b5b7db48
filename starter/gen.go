package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/importer"
)

func genCommand() *cli.Command {
	return &cli.Command{
		Name:      "gen",
		Usage:     "write a realistic sample orders or payments file, with a share of bad rows",
		ArgsUsage: "orders|payments",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "count", Value: 1000, Usage: "rows to write"},
			&cli.Float64Flag{Name: "bad-rate", Usage: "share of deliberately bad rows, 0..1 (exactly round(count × rate) rows, each rejected once on import)"},
			&cli.StringFlag{Name: "format", Value: "csv", Usage: "csv or xml"},
			&cli.IntFlag{Name: "orders", Usage: "payments: number of orders ORD-00000001… they refer to (default count/2)"},
			&cli.StringFlag{Name: "orders-file", Usage: "payments: refer to the orders this orders file stores when imported (its bad rows left out)"},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "same seed, same file"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "file to write (default stdout)"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Len() != 1 {
				return usageError{errors.New("gen takes orders or payments")}
			}
			opts := gen.Options{
				Kind: c.Args().First(), Format: c.String("format"), Count: c.Int("count"),
				BadRate: c.Float64("bad-rate"), Seed: c.Int64("seed"), Orders: c.Int("orders"),
			}
			var from string
			if path := c.String("orders-file"); path != "" {
				if opts.Kind != gen.KindPayments {
					return usageError{errors.New("--orders-file is for gen payments")}
				}
				if c.IsSet("orders") {
					return usageError{errors.New("give --orders or --orders-file, not both")}
				}
				of, err := gen.ReadOrdersFile(path)
				if err != nil {
					return fmt.Errorf("--orders-file %s: %w", path, err)
				}
				if len(of.Orders) == 0 {
					return fmt.Errorf("--orders-file %s: none of its %d rows would be imported", path, of.Records)
				}
				opts.OrderList = of.Orders
				from = fmt.Sprintf("; they pay the %d orders of %s an import stores", len(of.Orders), path)
				if of.Skipped > 0 {
					from += fmt.Sprintf(" (%d of its rows left out: rejected on import, or conflicting)", of.Skipped)
				}
			}
			out := os.Stdout
			name := "stdout"
			if path := c.String("output"); path != "" && path != "-" {
				f, err := os.Create(path)
				if err != nil {
					return err
				}
				defer f.Close()
				out, name = f, path
			}
			w := bufio.NewWriterSize(out, 1<<20)
			stats, err := gen.Write(w, opts)
			if err != nil {
				return usageError{err}
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if out != os.Stdout {
				if err := out.Close(); err != nil {
					return err
				}
			}
			fmt.Fprintf(os.Stderr, "wrote %d %s rows to %s%s\n", stats.Rows, opts.Kind, name, from)
			if stats.Bad == 0 {
				return nil
			}
			fmt.Fprintf(os.Stderr, "%d of them deliberately bad, each rejected once on import: %s\n", stats.Bad, stats.Reasons())
			if stats.Bad > importer.DefaultMaxRejects {
				fmt.Fprintf(os.Stderr, "that is past import's default --max-rejects of %d: import with --max-rejects %d or more\n", importer.DefaultMaxRejects, stats.Bad)
			}
			return nil
		},
	}
}
