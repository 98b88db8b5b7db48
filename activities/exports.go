package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/acme/payments/internal/export"
)

// ErrTypeExportEnded is the application error type of a part whose export
// has ended (see export.ErrJobEnded); it is not retried.
const ErrTypeExportEnded = "ExportEnded"

// ExportParams are an export's parameters as its workflow carries them:
// no customer data, only what selects and formats rows.
type ExportParams struct {
	ExportID    string        `json:"export_id"`
	Params      export.Params `json:"params"`
	ChunkRows   int           `json:"chunk_rows"`
	Parallelism int           `json:"parallelism"`
}

// ExportPlan is an export's key ranges, one part each.
type ExportPlan struct {
	Ranges []export.Range `json:"ranges"`
}

// PlanExport cuts the export's table into key ranges of at most ChunkRows
// rows and records how many parts (and, without filters, rows) it has.
func (a *Activities) PlanExport(ctx context.Context, in ExportParams) (ExportPlan, error) {
	stop := heartbeatEvery(ctx, 10*time.Second)
	defer stop()
	ranges, rows, err := export.PlanRanges(ctx, a.DB, in.Params.Kind, in.ChunkRows)
	if err != nil {
		return ExportPlan{}, fmt.Errorf("export %s: %w", in.ExportID, err)
	}
	var total *int64
	if p := in.Params; p.Status == "" && p.CreatedFrom.IsZero() && p.CreatedTo.IsZero() {
		total = &rows
	}
	if err := export.SetPlan(ctx, a.DB, in.ExportID, len(ranges), total); err != nil {
		return ExportPlan{}, err
	}
	return ExportPlan{Ranges: ranges}, nil
}

// ExportChunkInput names one part of an export.
type ExportChunkInput struct {
	ExportID string        `json:"export_id"`
	Params   export.Params `json:"params"`
	Chunk    int           `json:"chunk"`
	Range    export.Range  `json:"range"`
}

// ExportChunkResult is what a part holds.
type ExportChunkResult struct {
	Chunk    int   `json:"chunk"`
	Rows     int64 `json:"rows"`
	Replayed bool  `json:"replayed"`
}

// ExportChunk writes the records of one key range as a part of the export
// in the staging store, then commits the part with its chunk-ledger row: a
// chunk committed before (a retried or replayed activity) writes nothing,
// and a part written but not committed (its worker died) is written again
// over itself.
func (a *Activities) ExportChunk(ctx context.Context, in ExportChunkInput) (ExportChunkResult, error) {
	if p, done, err := export.CommittedPart(ctx, a.DB, in.ExportID, in.Chunk); err != nil || done {
		return ExportChunkResult{Chunk: in.Chunk, Rows: p.Rows, Replayed: done}, err
	}
	key := export.PartKey(in.ExportID, in.Chunk)
	w, err := a.Store.Create(ctx, key)
	if err != nil {
		return ExportChunkResult{}, fmt.Errorf("export %s chunk %d: %w", in.ExportID, in.Chunk, err)
	}
	defer w.Abort() // nothing once Close succeeded
	stop := heartbeatEvery(ctx, 5*time.Second)
	defer stop()
	written, err := a.Exporter.WriteRecords(ctx, w, in.Params, in.Range)
	if err != nil {
		return ExportChunkResult{}, fmt.Errorf("export %s chunk %d: %w", in.ExportID, in.Chunk, err)
	}
	if err := w.Close(); err != nil {
		return ExportChunkResult{}, fmt.Errorf("export %s chunk %d: %w", in.ExportID, in.Chunk, err)
	}
	stored, done, err := export.CommitPart(ctx, a.DB, in.ExportID, export.Part{Chunk: in.Chunk, Rows: written.Rows,
		PartKey: key, FirstKey: written.FirstKey, LastKey: written.LastKey})
	if errors.Is(err, export.ErrJobEnded) {
		_ = a.Store.Delete(context.WithoutCancel(ctx), key)
		return ExportChunkResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeExportEnded, nil)
	}
	if err != nil {
		return ExportChunkResult{}, err
	}
	if !done {
		a.Metrics.ExportRows(string(in.Params.Kind), string(in.Params.Format), stored.Rows)
	}
	return ExportChunkResult{Chunk: in.Chunk, Rows: stored.Rows, Replayed: done}, nil
}

// JoinExportResult is an export's file.
type JoinExportResult struct {
	BlobKey string `json:"blob_key"`
	Bytes   int64  `json:"bytes"`
	Rows    int64  `json:"rows"`
}

// JoinExport joins the export's committed parts, in chunk order, between
// the format's header and footer into its file. Run again it writes the
// same file again.
func (a *Activities) JoinExport(ctx context.Context, in ExportParams) (JoinExportResult, error) {
	parts, err := export.Parts(ctx, a.DB, in.ExportID)
	if err != nil {
		return JoinExportResult{}, err
	}
	key := export.FileKey(in.ExportID, in.Params.Kind, in.Params.Format)
	w, err := a.Store.Create(ctx, key)
	if err != nil {
		return JoinExportResult{}, fmt.Errorf("export %s: %w", in.ExportID, err)
	}
	defer w.Abort()
	stop := heartbeatEvery(ctx, 5*time.Second)
	defer stop()
	out := &countingWriter{w: w}
	rows, err := export.JoinParts(out, in.Params, parts, func(key string) (io.ReadCloser, error) { return a.Store.Open(ctx, key) })
	if err != nil {
		return JoinExportResult{}, fmt.Errorf("export %s: %w", in.ExportID, err)
	}
	if err := w.Close(); err != nil {
		return JoinExportResult{}, fmt.Errorf("export %s: %w", in.ExportID, err)
	}
	return JoinExportResult{BlobKey: key, Bytes: out.n, Rows: rows}, nil
}

// FinishExportInput is an export's final state.
type FinishExportInput struct {
	ExportID string           `json:"export_id"`
	State    string           `json:"state"`
	File     JoinExportResult `json:"file"`
	Error    string           `json:"error"`
}

// FinishExport records the final state on the job row and removes the
// parts, and the file of an export that did not complete.
func (a *Activities) FinishExport(ctx context.Context, in FinishExportInput) error {
	if err := export.Finish(ctx, a.DB, in.ExportID, in.State, in.File.BlobKey, in.File.Bytes, in.Error); err != nil {
		return err
	}
	keys, err := a.Store.List(ctx, export.PartPrefix(in.ExportID))
	if err != nil {
		return fmt.Errorf("export %s: %w", in.ExportID, err)
	}
	if in.State != export.StateCompleted {
		keys, err = a.Store.List(ctx, "exports/"+in.ExportID+"/")
		if err != nil {
			return fmt.Errorf("export %s: %w", in.ExportID, err)
		}
	}
	for _, k := range keys {
		if err := a.Store.Delete(ctx, k); err != nil {
			return fmt.Errorf("export %s: %w", in.ExportID, err)
		}
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
