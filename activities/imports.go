package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/metrics"
	"github.com/acme/payments/internal/records"
)

// ErrTypeBadFile is the application error type of a file that cannot be
// imported as it is; retrying does not help.
const ErrTypeBadFile = "BadFile"

// ErrTypeImportEnded is the application error type of a chunk whose import
// has ended (see importer.ErrJobEnded); it is not retried.
const ErrTypeImportEnded = "ImportEnded"

// PlanImportInput names the staged file to plan.
type PlanImportInput struct {
	ImportID  string       `json:"import_id"`
	BlobKey   string       `json:"blob_key"`
	Kind      records.Kind `json:"kind"` // "" detects from the file
	ChunkRows int          `json:"chunk_rows"`
}

// ImportPlan is a planned file: byte offsets and first record numbers of
// its chunks, never its rows.
type ImportPlan struct {
	Kind    records.Kind    `json:"kind"`
	Format  records.Format  `json:"format"`
	Header  []string        `json:"header"`
	Records int64           `json:"records"`
	Chunks  []records.Chunk `json:"chunks"`
}

// PlanImport reads the staged file once, checks its structure and cuts it
// into record-aligned chunks. A file that is not a valid import file fails
// with ErrTypeBadFile and nothing is written.
func (a *Activities) PlanImport(ctx context.Context, in PlanImportInput) (ImportPlan, error) {
	stop := heartbeatEvery(ctx, 10*time.Second)
	defer stop()
	r, err := a.Store.Open(ctx, in.BlobKey)
	if err != nil {
		return ImportPlan{}, stagedFileError(in.ImportID, fmt.Errorf("import %s: %w", in.ImportID, err))
	}
	defer r.Close()
	src := &errReader{r: r}
	plan, err := records.PlanChunks(src, in.Kind, in.ChunkRows, records.Limits{})
	if err != nil {
		if src.err != nil || ctx.Err() != nil {
			if unreadable := stagedFileError(in.ImportID, src.err); unreadable != src.err {
				return ImportPlan{}, unreadable
			}
			return ImportPlan{}, fmt.Errorf("import %s: read staged file: %w", in.ImportID, err)
		}
		return ImportPlan{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadFile, nil)
	}
	if plan.Records == 0 {
		return ImportPlan{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("the file holds no records (a %s %s file with only its header)", plan.Format, plan.Kind), ErrTypeBadFile, nil)
	}
	out := ImportPlan{Kind: plan.Kind, Format: plan.Format, Header: plan.Header, Records: plan.Records, Chunks: plan.Chunks}
	if err := importer.SetPlan(ctx, a.DB, in.ImportID, string(plan.Kind), string(plan.Format), len(plan.Chunks)); err != nil {
		return ImportPlan{}, err
	}
	return out, nil
}

// ImportChunkInput names one chunk of a planned file.
type ImportChunkInput struct {
	ImportID string         `json:"import_id"`
	BlobKey  string         `json:"blob_key"`
	Kind     records.Kind   `json:"kind"`
	Format   records.Format `json:"format"`
	Header   []string       `json:"header"`
	Chunk    records.Chunk  `json:"chunk"`
}

// ImportChunk imports one chunk in one MySQL transaction (see
// importer.Importer.ImportChunk); a chunk already committed writes nothing.
func (a *Activities) ImportChunk(ctx context.Context, in ImportChunkInput) (importer.ChunkResult, error) {
	start := time.Now()
	r, err := a.Store.OpenRange(ctx, in.BlobKey, in.Chunk.Start, in.Chunk.End-in.Chunk.Start)
	if err != nil {
		return importer.ChunkResult{}, stagedFileError(in.ImportID, fmt.Errorf("import %s chunk %d: %w", in.ImportID, in.Chunk.Index, err))
	}
	defer r.Close()
	res, err := a.Importer.ImportChunk(ctx, importer.ChunkSpec{
		ImportID: in.ImportID, Kind: in.Kind, Format: in.Format, Header: in.Header, Chunk: in.Chunk,
	}, r, func() { activity.RecordHeartbeat(ctx, in.Chunk.Index) })
	if errors.Is(err, importer.ErrFile) {
		return res, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadFile, nil)
	}
	if errors.Is(err, importer.ErrJobEnded) {
		return res, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeImportEnded, nil)
	}
	if err != nil {
		return res, stagedFileError(in.ImportID, err)
	}
	if !res.Replayed {
		// Counted by the attempt that committed the chunk only, so retries
		// and replays do not count its rows again.
		a.Metrics.ObserveImportChunk(metrics.ImportChunk{Type: string(in.Kind), Written: res.RowsWritten,
			Unchanged: res.RowsUnchanged, Rejected: res.RowsRejected, Rejects: res.RejectCodes, Duration: time.Since(start)})
	}
	// Wake the open payment workflows of orders this chunk paid into, so
	// one whose order is now covered can complete. Best effort: a workflow
	// that closed meanwhile needs no signal.
	for _, orderID := range res.OpenOrders {
		if a.WakeOrder == nil {
			break
		}
		if err := a.WakeOrder(ctx, orderID); err != nil {
			activity.GetLogger(ctx).Debug("wake order workflow", "order_id", orderID, "error", err)
		}
	}
	return res, nil
}

// FinishImportInput is an import's final state.
type FinishImportInput struct {
	ImportID string `json:"import_id"`
	State    string `json:"state"`
	Error    string `json:"error"`
}

// FinishImport records the final state on the job row.
func (a *Activities) FinishImport(ctx context.Context, in FinishImportInput) error {
	return importer.Finish(ctx, a.DB, in.ImportID, in.State, in.Error)
}

// heartbeatEvery heartbeats from a goroutine for activities whose work is
// one long call.
func heartbeatEvery(ctx context.Context, d time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}

// errReader remembers a read error so a storage failure (retry) is told
// apart from a bad file (fail).
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}
