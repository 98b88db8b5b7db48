package main

import (
	"os"
	"runtime/pprof"

	"github.com/urfave/cli/v2"

	"github.com/acme/payments/internal/bench"
	"github.com/acme/payments/internal/config"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure imports end to end against LOAD DATA LOCAL INFILE of the same files (or, with --lifecycle, live payments against the bare Temporal ceiling)",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "orders", Value: 1_000_000, Usage: "orders to import (with --lifecycle: orders to pay, default 2000)"},
			&cli.BoolFlag{Name: "lifecycle", Usage: "instead: measure the order payment lifecycle (HTTP attempt + signed callback) against signal-with-start of a bare workflow"},
			&cli.IntFlag{Name: "concurrency", Value: 32, Usage: "with --lifecycle: concurrent clients"},
			&cli.IntFlag{Name: "payments", Value: 1_000_000},
			&cli.IntFlag{Name: "payment-orders", Value: 500_000},
			&cli.Int64Flag{Name: "rss-file-bytes", Usage: "instead: import one orders file of about this size and report peak RSS"},
			&cli.StringFlag{Name: "dir", Usage: "scratch directory (default: a new temporary one)"},
			&cli.StringFlag{Name: "worker-bin", Usage: "with --rss-file-bytes: run this worker program as its own process and report its peak RSS"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of this process (stack and benchmark) to this file"},
		},
		Action: func(c *cli.Context) error {
			cfg, err := config.FromCLI(c)
			if err != nil {
				return usageError{err}
			}
			if path := c.String("cpuprofile"); path != "" {
				f, err := os.Create(path)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			dir := c.String("dir")
			if dir == "" {
				if dir, err = os.MkdirTemp("", "payments-bench-"); err != nil {
					return err
				}
				defer os.RemoveAll(dir)
			}
			if c.Bool("lifecycle") {
				orders := 2000
				if c.IsSet("orders") {
					orders = c.Int("orders")
				}
				return bench.RunLifecycle(c.Context, bench.LifecycleOptions{
					ServerDSN: cfg.MySQLDSN, Dir: dir, Orders: orders, Concurrency: c.Int("concurrency"),
					Out: os.Stdout, Logger: logger(cfg),
				})
			}
			return bench.Run(c.Context, bench.Options{
				ServerDSN: cfg.MySQLDSN, Dir: dir,
				Orders: c.Int("orders"), Payments: c.Int("payments"), PaymentOrders: c.Int("payment-orders"),
				ChunkRows: cfg.ImportChunkRows, Parallelism: cfg.ImportParallelism,
				RSSBytes: c.Int64("rss-file-bytes"), WorkerBinary: c.String("worker-bin"), Out: os.Stdout, Logger: logger(cfg),
			})
		},
	}
}
