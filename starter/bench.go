package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/urfave/cli/v2"

	"github.com/acme/payments/internal/bench"
	"github.com/acme/payments/internal/config"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure imports end to end against their floor, LOAD DATA LOCAL INFILE of the rows they store into empty copies of the tables, and a plain LOAD DATA of the same files (or, with --lifecycle, live payments against the bare Temporal ceiling; with --download, GET /download and the export workflow against the mariadb client's dump)",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "orders", Value: 1_000_000, Usage: "orders to import (with --lifecycle: orders to pay, default 2000; with --download: orders to download)"},
			&cli.BoolFlag{Name: "lifecycle", Usage: "instead: measure the order payment lifecycle (HTTP attempt + signed callback) against signal-with-start of a bare workflow"},
			&cli.IntFlag{Name: "concurrency", Value: 32, Usage: "with --lifecycle: concurrent clients"},
			&cli.BoolFlag{Name: "download", Usage: "instead: measure GET /download?type=orders&format=csv (pii) of --orders imported orders, served by --serve-bin, against 'mariadb --batch --raw' of a plaintext copy; then the export workflow and the serve process's peak RSS"},
			&cli.StringFlag{Name: "serve-bin", Usage: "with --download: the starter program to run as 'serve' in a process of its own (default: this program)"},
			&cli.IntFlag{Name: "rss-orders", Value: 4_000_000, Usage: "with --download: grow the orders to this many, restart the serve process and download again for its peak RSS (0 skips)"},
			&cli.IntFlag{Name: "payments", Value: 1_000_000, Usage: "payments to import"},
			&cli.IntFlag{Name: "payment-orders", Value: 500_000, Usage: "orders the payments pay into, the first of --orders (at most --orders)"},
			&cli.Int64Flag{Name: "rss-file-bytes", Usage: "instead: import one orders file of about this size and report peak RSS"},
			&cli.StringFlag{Name: "dir", Usage: "scratch directory (default: a new temporary one)"},
			&cli.StringFlag{Name: "worker-bin", Usage: "run this worker program as its own process (with --rss-file-bytes: and report its peak RSS)"},
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
			} else if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
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
			if c.Bool("download") {
				return runDownloadBench(c, cfg, dir)
			}
			if c.Int64("rss-file-bytes") == 0 && (c.Int("payment-orders") < 1 || c.Int("payment-orders") > c.Int("orders")) {
				return usageError{fmt.Errorf("--payment-orders must be 1..--orders (%d), got %d", c.Int("orders"), c.Int("payment-orders"))}
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

// runDownloadBench runs `bench --download`.
func runDownloadBench(c *cli.Context, cfg config.Config, dir string) error {
	serveBin := c.String("serve-bin")
	if serveBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("--serve-bin not given and this program's path unknown: %w", err)
		}
		serveBin = exe
	}
	if c.Int("orders") < 1 || c.Int("rss-orders") < 0 || (c.Int("rss-orders") > 0 && c.Int("rss-orders") <= c.Int("orders")) {
		return usageError{fmt.Errorf("--download needs --orders >= 1 and --rss-orders 0 or above --orders, got %d and %d", c.Int("orders"), c.Int("rss-orders"))}
	}
	return bench.RunDownload(c.Context, bench.Options{
		ServerDSN: cfg.MySQLDSN, Dir: dir, Orders: c.Int("orders"), RSSOrders: c.Int("rss-orders"),
		ChunkRows: cfg.ImportChunkRows, Parallelism: cfg.ImportParallelism,
		ExportChunkRows: cfg.ExportChunkRows, ExportParallelism: cfg.ExportParallelism,
		ServeBinary: serveBin, WorkerBinary: c.String("worker-bin"), Out: os.Stdout, Logger: logger(cfg),
	})
}
