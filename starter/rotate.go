package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/urfave/cli/v2"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/workflows"
)

func rotateKeysCommand() *cli.Command {
	return &cli.Command{
		Name:  "rotate-keys",
		Usage: "re-encrypt every encrypted column under the primary key of PAYMENTS_KEYS, as a resumable workflow (joins one already running)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "id", Usage: "the rotation's `ID`, workflow rotate/ID (default: the primary key's id)"},
			&cli.IntFlag{Name: "page-rows", Value: workflows.DefaultRotatePageRows, Usage: "rows re-encrypted per transaction"},
			&cli.BoolFlag{Name: "wait", Usage: "wait until the rotation ends"},
			&cli.BoolFlag{Name: "follow", Usage: "draw a progress bar until the rotation ends"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return usageError{fmt.Errorf("rotate-keys takes no arguments, got %q", c.Args().First())}
			}
			cfg, err := config.FromCLI(c)
			if err != nil {
				return usageError{err}
			}
			if n := c.Int("page-rows"); n < 1 || n > 5000 {
				return usageError{fmt.Errorf("--page-rows %d: want 1 to 5000", n)}
			}
			if id := c.String("id"); id != "" {
				if !rotationIDPattern.MatchString(id) {
					return usageError{fmt.Errorf("--id %q: want 1 to 64 of A-Z a-z 0-9 _ . -", id)}
				}
			}
			return withDeps(c.Context, cfg, func(d *service.Deps) error { return runRotation(c, d) })
		},
	}
}

// rotationIDPattern is what a rotation id may be: it is part of a workflow
// id, so it names a key or a date, never data.
var rotationIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// rotationStart is what rotate-keys prints without --wait or --follow.
type rotationStart struct {
	RotationID string `json:"rotation_id"`
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	KeyID      string `json:"key_id"`
	Joined     bool   `json:"joined"`
}

// runRotation starts the rotation (or joins the one running under its
// id), then prints it, or with --wait or --follow its end.
func runRotation(c *cli.Context, d *service.Deps) error {
	ctx := c.Context
	keyID := d.Keys.PrimaryID()
	id := c.String("id")
	if id == "" {
		id = keyID
	}
	wid := workflows.RotateWorkflowID(id)
	joined := false
	if desc, err := d.Temporal.DescribeWorkflowExecution(ctx, wid, ""); err == nil &&
		desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		joined = true
	} else if err != nil && !isNotFound(err) {
		return fmt.Errorf("rotation %s: %w", id, err)
	}
	// The id is chosen here, not in workflow code: the same command again
	// joins the running rotation (USE_EXISTING); after one ended it starts
	// a new run, which finds only what is left to do.
	run, err := d.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: wid, TaskQueue: workflows.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, workflows.Rotate, workflows.RotateInput{RotationID: id, KeyID: keyID, PageRows: c.Int("page-rows")})
	if err != nil {
		return fmt.Errorf("rotation %s: start: %w", id, err)
	}
	if joined {
		fmt.Fprintf(os.Stderr, "rotation %s already running (workflow %s): joined it\n", id, wid)
	} else {
		fmt.Fprintf(os.Stderr, "rotation %s started: re-encrypting under key %q (workflow %s)\n", id, keyID, wid)
	}
	if !c.Bool("wait") && !c.Bool("follow") {
		return printJSON(rotationStart{RotationID: id, WorkflowID: wid, RunID: run.GetRunID(), KeyID: keyID, Joined: joined})
	}
	var stop func()
	if c.Bool("follow") {
		stop = followRotation(ctx, d, id, wid)
	}
	var final workflows.RotateProgress
	err = run.Get(ctx, &final)
	if stop != nil {
		stop()
	}
	if err != nil {
		var app *temporal.ApplicationError
		if errors.As(err, &app) {
			return fmt.Errorf("rotation %s failed: %s", id, app.Message())
		}
		if ctx.Err() != nil {
			return fmt.Errorf("rotation %s: stopped waiting; it goes on in workflow %s", id, wid)
		}
		return fmt.Errorf("rotation %s: %w", id, err)
	}
	if err := printJSON(final); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "rotation %s completed: %d rows scanned, %d re-encrypted; no value is left under another key than %q\n",
		id, final.Scanned, final.Rotated, final.KeyID)
	return nil
}

// followRotation draws the rotation's progress (its query) until stop is
// called. The bar's total is the rows of both tables, one pass.
func followRotation(ctx context.Context, d *service.Deps, id, wid string) (stop func()) {
	var total int64
	for _, q := range []string{"SELECT COUNT(*) FROM orders", "SELECT COUNT(*) FROM payments"} {
		var n int64
		if err := d.DB.GetContext(ctx, &n, q); err == nil {
			total += n
		}
	}
	view := newProgressView("rotate " + id)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var last workflows.RotateProgress
	go func() {
		defer close(done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := d.Temporal.QueryWorkflow(ctx, wid, "", workflows.ProgressQuery); err == nil {
				var p workflows.RotateProgress
				if v.Get(&p) == nil {
					last = p
					view.update(progressSnap{Rows: p.Scanned - int64(p.Pass-1)*total, Total: total, State: p.State})
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		cancel()
		<-done
		view.finish(progressSnap{Rows: last.Scanned, Total: total, State: last.State})
	}
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}
