package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ingest"
	"github.com/acme/payments/internal/service"
)

func rejectsCommand() *cli.Command {
	return &cli.Command{
		Name:      "rejects",
		Usage:     "write an import's rejected rows as CSV (line, record, code, message), as GET /imports/{id}/rejects",
		ArgsUsage: "IMPORT_ID",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "file to write (default stdout)"},
			&cli.BoolFlag{Name: "json", Usage: "write a JSON array of {line, record, code, message} instead of CSV"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Len() != 1 {
				return usageError{errors.New("rejects takes one IMPORT_ID")}
			}
			cfg, err := config.FromCLI(c)
			if err != nil {
				return usageError{err}
			}
			id := c.Args().First()
			return withMySQL(c.Context, cfg, func(d *service.Deps) error {
				job, err := importer.GetJob(c.Context, d.DB, id)
				if err != nil {
					return err
				}
				write := func(w io.Writer) error { return importer.WriteRejectsCSV(c.Context, d.DB, id, w) }
				if c.Bool("json") {
					write = func(w io.Writer) error { return writeRejectsJSON(c.Context, d, id, w) }
				}
				path := c.String("output")
				if path == "" || path == "-" {
					return write(os.Stdout)
				}
				// Whole or not at all: written beside the target, then renamed.
				tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
				if err != nil {
					return err
				}
				defer os.Remove(tmp.Name())
				if err := write(tmp); err != nil {
					tmp.Close()
					return err
				}
				if err := tmp.Close(); err != nil {
					return err
				}
				if err := os.Rename(tmp.Name(), path); err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "wrote the %d rejected rows of import %s (%s) to %s\n", job.RowsRejected, id, job.State, path)
				return nil
			})
		},
	}
}

// writeRejectsJSON streams an import's rejects as one JSON array, an
// element per line, so a large report is never held in memory.
func writeRejectsJSON(ctx context.Context, d *service.Deps, id string, w io.Writer) error {
	bw := bufio.NewWriter(w)
	sep := "[\n"
	err := importer.EachReject(ctx, d.DB, id, func(r importer.Reject) error {
		b, err := json.Marshal(struct {
			Line    int64  `json:"line"`
			Record  int64  `json:"record"`
			Code    string `json:"code"`
			Message string `json:"message"`
		}{r.Line, r.Record, r.Code, r.Message})
		if err != nil {
			return err
		}
		bw.WriteString(sep)
		bw.Write(b)
		sep = ",\n"
		return nil
	})
	if err != nil {
		return err
	}
	if sep == "[\n" {
		bw.WriteString("[")
	}
	bw.WriteString("\n]\n")
	return bw.Flush()
}

// retryImport is `starter import --retry ID`: it runs a FAILED or
// CANCELLED import again from its staged file (see ingest.Intake.Retry),
// with --max-rejects when given.
func retryImport(c *cli.Context) error {
	id := c.String("retry")
	if id == "" || c.Args().Len() > 0 {
		return usageError{errors.New("import --retry takes an IMPORT_ID and no FILE (the import's staged file is read again)")}
	}
	for _, f := range []string{"type", "name"} {
		if c.IsSet(f) {
			return usageError{fmt.Errorf("import --retry keeps the import's --%s", f)}
		}
	}
	cfg, err := config.FromCLI(c)
	if err != nil {
		return usageError{err}
	}
	var opts ingest.RetryOptions
	if c.IsSet("max-rejects") {
		n := c.Int64("max-rejects")
		opts.MaxRejects = &n
	}
	return withDeps(c.Context, cfg, func(d *service.Deps) error {
		job, how, err := service.NewIntake(d).Retry(c.Context, id, opts)
		if errors.Is(err, ingest.ErrBadOption) {
			return usageError{err}
		}
		if err != nil {
			return err
		}
		switch how {
		case ingest.RetryRestarted:
			fmt.Fprintf(os.Stderr, "import %s runs again (workflow %s): its committed chunks stay as they are, the rest is imported\n", job.ImportID, job.WorkflowID)
		case ingest.RetryStarted:
			fmt.Fprintf(os.Stderr, "import %s started (workflow %s): the file of import %s again, with max_rejects %d; rows that import stored count as unchanged\n",
				job.ImportID, job.WorkflowID, id, job.MaxRejects)
		default:
			fmt.Fprintf(os.Stderr, "import %s of the file of import %s with max_rejects %d exists already (%s)\n", job.ImportID, id, job.MaxRejects, job.State)
		}
		return awaitImport(c, d, job)
	})
}

// retryHint tells how to see why an import ended and how to run it again.
func retryHint(j importer.Job) string {
	if j.State != importer.StateFailed && j.State != importer.StateCancelled {
		return ""
	}
	return fmt.Sprintf(" (reasons: starter rejects %s; run it again: starter import --retry %s [--max-rejects N])", j.ImportID, j.ImportID)
}
