package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/acme/payments/internal/gen"
)

func genCommand() *cli.Command {
	return &cli.Command{
		Name:      "gen",
		Usage:     "write a realistic sample orders or payments file, with a share of bad rows",
		ArgsUsage: "orders|payments",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "count", Value: 1000, Usage: "rows to write"},
			&cli.Float64Flag{Name: "bad-rate", Usage: "share of deliberately bad rows, 0..1"},
			&cli.StringFlag{Name: "format", Value: "csv", Usage: "csv or xml"},
			&cli.IntFlag{Name: "orders", Usage: "payments: number of orders they refer to (default count/2)"},
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
			out := os.Stdout
			if path := c.String("output"); path != "" && path != "-" {
				f, err := os.Create(path)
				if err != nil {
					return err
				}
				defer f.Close()
				out = f
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
			fmt.Fprintf(os.Stderr, "wrote %d %s rows (%d deliberately bad: %v)\n", stats.Rows, opts.Kind, stats.Bad, stats.BadByReason)
			return nil
		},
	}
}
