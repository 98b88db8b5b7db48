package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ingest"
	"github.com/acme/payments/internal/records"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/workflows"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "import an orders or payments file (CSV or XML)",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "type", Usage: "orders or payments (default: from the file)"},
			&cli.Int64Flag{Name: "max-rejects", Value: importer.DefaultMaxRejects, Usage: "fail the import past this many rejected rows"},
			&cli.StringFlag{Name: "name", Usage: "the file name the import shows (default: FILE's base name)"},
			&cli.BoolFlag{Name: "wait", Usage: "wait until the import ends"},
			&cli.BoolFlag{Name: "follow", Usage: "draw a progress bar until the import ends"},
			&cli.StringFlag{Name: "retry", Usage: "run the FAILED or CANCELLED import `ID` again from its staged file (no FILE), with --max-rejects to change its limit"},
		},
		Action: func(c *cli.Context) error {
			if c.IsSet("retry") {
				return retryImport(c)
			}
			if c.Args().Len() != 1 {
				return usageError{errors.New("import takes one FILE argument")}
			}
			cfg, err := config.FromCLI(c)
			if err != nil {
				return usageError{err}
			}
			if _, err := records.ParseKind(c.String("type")); err != nil {
				return usageError{fmt.Errorf("--type: %w", err)}
			}
			f, err := os.Open(c.Args().First())
			if err != nil {
				return err
			}
			defer f.Close()
			return withDeps(c.Context, cfg, func(d *service.Deps) error {
				in := service.NewIntake(d)
				job, created, err := in.Start(c.Context, f, ingest.Options{Kind: records.Kind(c.String("type")), MaxRejects: c.Int64("max-rejects"),
					FileName: importName(c.String("name"), c.Args().First())})
				if err != nil {
					return err
				}
				// Human lines on stderr; stdout carries one JSON document, the
				// job (its end with --wait or --follow).
				if created {
					fmt.Fprintf(os.Stderr, "import %s started (workflow %s)\n", job.ImportID, job.WorkflowID)
				} else {
					fmt.Fprintf(os.Stderr, "import %s already exists (%s): same content and options%s\n", job.ImportID, job.State, retryHint(job))
				}
				return awaitImport(c, d, job)
			})
		},
	}
}

// awaitImport prints job, or with --wait or --follow waits for it to end
// (drawing its progress with --follow) and prints its end: an import that
// does not complete is an error.
func awaitImport(c *cli.Context, d *service.Deps, job importer.Job) error {
	if !c.Bool("wait") && !c.Bool("follow") {
		printJob(job)
		return nil
	}
	var draw func(importer.Job, *workflows.Progress) // --wait: no bar, no progress queries
	var view *progressView
	if c.Bool("follow") {
		view, draw = followImport(c.Context, d, job.ImportID)
	}
	final, err := ingest.Follow(c.Context, d.DB, d.Temporal, job.ImportID, 500*time.Millisecond, draw)
	if err != nil {
		if errors.Is(err, context.Canceled) && c.Context.Err() != nil {
			// Ctrl-C stops the watching, not the import: say so and succeed.
			if view != nil {
				view.abandon()
			}
			fmt.Fprintf(os.Stderr, "stopped watching import %s; it goes on (see: starter imports %s)\n", job.ImportID, job.ImportID)
			return nil
		}
		return err
	}
	if view != nil {
		view.finish(importSnap(final, nil))
	}
	printJob(final)
	if final.State != importer.StateCompleted {
		msg := final.State
		if final.Error != nil {
			msg += ": " + *final.Error
		}
		return fmt.Errorf("import %s %s%s", final.ImportID, msg, retryHint(final))
	}
	return nil
}

func importsCommand() *cli.Command {
	return &cli.Command{
		Name:      "imports",
		Usage:     "list imports, or show one",
		ArgsUsage: "[ID]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state", Usage: "list only imports in this state: " + strings.Join(importer.States(), ", ")},
			&cli.BoolFlag{Name: "json", Usage: "print the list as a JSON array (one import is always JSON)"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 1 {
				return usageError{errors.New("imports takes at most one ID")}
			}
			state := strings.ToUpper(c.String("state"))
			if state != "" && !slices.Contains(importer.States(), state) {
				return usageError{fmt.Errorf("--state %q: want one of %s", c.String("state"), strings.Join(importer.States(), ", "))}
			}
			if state != "" && c.Args().Len() > 0 {
				return usageError{errors.New("imports takes an ID or --state, not both")}
			}
			cfg, err := config.FromCLI(c)
			if err != nil {
				return usageError{err}
			}
			return withMySQL(c.Context, cfg, func(d *service.Deps) error {
				if id := c.Args().First(); id != "" {
					job, err := importer.GetJob(c.Context, d.DB, id)
					if err != nil {
						return err
					}
					printJob(job)
					return nil
				}
				jobs, err := importer.ListJobsInState(c.Context, d.DB, state, 100)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(jobs)
				}
				fmt.Printf("%-32s  %-9s  %-8s  %-4s  %10s  %10s  %8s  %s\n", "IMPORT", "STATE", "TYPE", "FMT", "READ", "WRITTEN", "REJECTED", "NAME")
				for _, j := range jobs {
					fmt.Printf("%-32s  %-9s  %-8s  %-4s  %10d  %10d  %8d  %s\n", j.ImportID, j.State, j.Type, j.Format, j.RowsRead, j.RowsWritten, j.RowsRejected, shownName(j))
				}
				return nil
			})
		},
	}
}

func printJob(j importer.Job) { _ = printJSON(j) }

// withDeps opens the service's connections for one CLI command, using the
// development keys under the data dir when no keys are configured.
func withDeps(ctx context.Context, cfg config.Config, run func(*service.Deps) error) error {
	if err := service.UseDevKeysIfPresent(&cfg); err != nil {
		return err
	}
	d, err := service.Open(ctx, cfg, cliLogger(cfg), false)
	if err != nil {
		return err
	}
	defer d.Close()
	return run(d)
}

// importName is the name an import from path shows: --name, else the
// file's base name (cleaned by the intake either way).
func importName(name, path string) string {
	if name != "" || path == "-" {
		return name
	}
	return filepath.Base(path)
}

// shownName is a job's file name for the listing, "-" when it has none.
func shownName(j importer.Job) string {
	if j.FileName == nil {
		return "-"
	}
	return *j.FileName
}
