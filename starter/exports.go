package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/export"
	"github.com/acme/payments/internal/service"
)

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "export orders or payments to a file (CSV, XML, JSON or NDJSON) through an export workflow",
		Flags: []cli.Flag{
			// Required, but checked by export.ParseParams: urfave's own check
			// would exit 1, not the 2 of bad usage.
			&cli.StringFlag{Name: "type", Usage: "orders or payments (required)"},
			&cli.StringFlag{Name: "format", Usage: "csv, xml, json or ndjson (required)"},
			&cli.StringFlag{Name: "status", Usage: "keep only this order_status / payment_status"},
			&cli.StringFlag{Name: "from", Usage: "keep rows created at or after this RFC 3339 time or YYYY-MM-DD date"},
			&cli.StringFlag{Name: "to", Usage: "keep rows created at or before this RFC 3339 time, or on or before this date"},
			&cli.BoolFlag{Name: "pii", Usage: "write customer and payment details unmasked (needed for a file to import again)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "file to write, - for stdout (default: the export's file name here)"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return usageError{fmt.Errorf("export takes no arguments, got %q", c.Args().First())}
			}
			cfg, err := config.FromCLI(c)
			if err != nil {
				return usageError{err}
			}
			v := url.Values{"type": {c.String("type")}, "format": {c.String("format")}}
			for flag, param := range map[string]string{"status": "status", "from": "created_from", "to": "created_to"} {
				if s := c.String(flag); s != "" {
					v.Set(param, s)
				}
			}
			p, err := export.ParseParams(v, c.Bool("pii"))
			if err != nil {
				return usageError{err}
			}
			return withDeps(c.Context, cfg, func(d *service.Deps) error {
				return runExport(c, d, p)
			})
		},
	}
}

// runExport starts (or joins) the export, follows it, and writes its file.
func runExport(c *cli.Context, d *service.Deps, p export.Params) error {
	exports := service.NewExports(d)
	job, created, err := exports.Start(c.Context, p)
	if err != nil {
		return err
	}
	verb := "started"
	if !created {
		verb = "already running with the same parameters"
	}
	fmt.Fprintf(os.Stderr, "export %s %s (workflow %s)\n", job.ExportID, verb, job.WorkflowID)
	// A bar on a terminal (progress.go); off one, only the lines above and
	// below.
	var draw func(export.Job)
	snap := func(j export.Job) progressSnap {
		s := progressSnap{Rows: j.RowsWritten, ChunksDone: j.ChunksDone, ChunksTotal: j.ChunksTotal, State: j.State}
		if j.RowsTotal != nil {
			s.Total = *j.RowsTotal
		}
		return s
	}
	view := newProgressView("export " + job.ExportID)
	if view.tty {
		draw = func(j export.Job) { view.update(snap(j)) }
	}
	final, err := exports.Follow(c.Context, job.ExportID, 300*time.Millisecond, draw)
	if err != nil {
		return err
	}
	if view.tty {
		view.finish(snap(final))
	}
	if final.State != export.StateCompleted {
		msg := final.State
		if final.Error != nil {
			msg += ": " + *final.Error
		}
		return fmt.Errorf("export %s %s", final.ExportID, msg)
	}
	f, err := exports.Open(c.Context, final)
	if err != nil {
		return err
	}
	defer f.Close()
	out := c.String("output")
	if out == "" {
		out = final.Filename()
	}
	n, err := writeOutput(out, f)
	if err != nil {
		return err
	}
	if out != "-" {
		fmt.Fprintf(os.Stderr, "wrote %d rows (%d bytes) to %s\n", final.RowsWritten, n, out)
	}
	return nil
}

// writeOutput copies r to path, or to stdout for "-". A file appears whole
// or not at all, readable by its owner only: it may hold customer data.
func writeOutput(path string, r io.Reader) (int64, error) {
	if path == "-" {
		return io.Copy(os.Stdout, r)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.partial")
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return n, fmt.Errorf("write %s: %w", path, err)
	}
	return n, nil
}
