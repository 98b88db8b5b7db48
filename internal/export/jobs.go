package export

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/records"
)

// Job states, as an import's.
const (
	StateRunning   = "RUNNING"
	StateCompleted = "COMPLETED"
	StateFailed    = "FAILED"
	StateCancelled = "CANCELLED"
)

// Job is an export's row in export_jobs, shaped as GET /exports/{id}.
type Job struct {
	ExportID    string  `db:"export_id" json:"export_id"`
	WorkflowID  string  `db:"workflow_id" json:"workflow_id"`
	Type        string  `db:"type" json:"type"`
	Format      string  `db:"format" json:"format"`
	Filters     string  `db:"filters" json:"-"`
	ParamsKey   string  `db:"params_key" json:"-"`
	PII         bool    `db:"pii" json:"pii"`
	State       string  `db:"state" json:"state"`
	BlobKey     *string `db:"blob_key" json:"-"`
	FileBytes   *int64  `db:"file_bytes" json:"file_bytes"`
	RowsWritten int64   `db:"rows_written" json:"rows_written"`
	// RowsTotal is known ahead only for an export without filters.
	RowsTotal   *int64    `db:"rows_total" json:"rows_total"`
	ChunksDone  int       `db:"chunks_done" json:"chunks_done"`
	ChunksTotal int       `db:"chunks_total" json:"chunks_total"`
	Error       *string   `db:"error" json:"error"`
	CreatedAt   time.Time `db:"created_at" json:"created_at"`
	UpdatedAt   time.Time `db:"updated_at" json:"updated_at"`
}

// Params returns the parameters the job was made with.
func (j Job) Params() (Params, error) {
	v, err := url.ParseQuery(j.Filters)
	if err != nil {
		return Params{}, fmt.Errorf("export %s: stored parameters: %w", j.ExportID, err)
	}
	return ParseParams(v, j.PII)
}

// Filename is the name of the job's file.
func (j Job) Filename() string {
	p, err := j.Params()
	if err != nil {
		return j.ExportID
	}
	return p.Filename(j.CreatedAt)
}

// MarshalJSON adds the job's parameters to its fields.
func (j Job) MarshalJSON() ([]byte, error) {
	type plain Job
	params := map[string]string{}
	if v, err := url.ParseQuery(j.Filters); err == nil {
		for k := range v {
			params[k] = v.Get(k)
		}
	}
	return json.Marshal(struct {
		plain
		Params map[string]string `json:"params"`
	}{plain(j), params})
}

// ErrJobNotFound is returned for an unknown export id.
var ErrJobNotFound = errors.New("export not found")

// ErrJobEnded marks a part of an export that has ended (cancelled or
// failed): it is not counted.
var ErrJobEnded = errors.New("export is no longer running")

const jobColumns = `export_id, workflow_id, type, format, filters, params_key, pii, state, blob_key, file_bytes,
	rows_written, rows_total, chunks_done, chunks_total, error, created_at, updated_at`

// CreateJob records a RUNNING export of p under exportID. While an export
// of the same parameters runs it returns that one and created = false.
func CreateJob(ctx context.Context, db *sqlx.DB, exportID, workflowID string, p Params) (Job, bool, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	key := p.Key()
	_, err := db.ExecContext(ctx, `INSERT INTO export_jobs (export_id, workflow_id, type, format, filters, params_key,
		active_key, pii, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		exportID, workflowID, string(p.Kind), string(p.Format), p.Values().Encode(), key, key, p.PII, StateRunning, now, now)
	if database.IsDuplicateKey(err) {
		var j Job
		err := db.GetContext(ctx, &j, "SELECT "+jobColumns+" FROM export_jobs WHERE active_key = ?", key)
		if errors.Is(err, sql.ErrNoRows) {
			// It ended between our insert and this read: start anew.
			return CreateJob(ctx, db, exportID, workflowID, p)
		}
		if err != nil {
			return Job{}, false, fmt.Errorf("read running export: %w", err)
		}
		return j, false, nil
	}
	if err != nil {
		return Job{}, false, fmt.Errorf("create export %s: %w", exportID, err)
	}
	j, err := GetJob(ctx, db, exportID)
	return j, true, err
}

// GetJob reads one export.
func GetJob(ctx context.Context, db sqlx.QueryerContext, exportID string) (Job, error) {
	var j Job
	err := sqlx.GetContext(ctx, db, &j, "SELECT "+jobColumns+" FROM export_jobs WHERE export_id = ?", exportID)
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("export %s: %w", exportID, ErrJobNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("read export %s: %w", exportID, err)
	}
	return j, nil
}

// ListJobs returns up to limit exports, newest first, starting after the
// export cursor names ("" for the first page), and the cursor of the next
// page ("" after the last).
func ListJobs(ctx context.Context, db *sqlx.DB, limit int, cursor string) ([]Job, string, error) {
	q := "SELECT " + jobColumns + " FROM export_jobs"
	var args []any
	if cursor != "" {
		created, id, err := parseCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		q += " WHERE (created_at, export_id) < (?, ?)"
		args = append(args, created, id)
	}
	q += " ORDER BY created_at DESC, export_id DESC LIMIT ?"
	args = append(args, limit+1)
	var jobs []Job
	if err := db.SelectContext(ctx, &jobs, q, args...); err != nil {
		return nil, "", fmt.Errorf("list exports: %w", err)
	}
	next := ""
	if len(jobs) > limit {
		jobs = jobs[:limit]
		last := jobs[limit-1]
		next = last.CreatedAt.UTC().Format(time.RFC3339Nano) + "~" + last.ExportID
	}
	return jobs, next, nil
}

// ErrBadCursor is returned for a cursor ListJobs did not make.
var ErrBadCursor = errors.New("bad cursor")

func parseCursor(c string) (time.Time, string, error) {
	ts, id, ok := strings.Cut(c, "~")
	t, err := time.Parse(time.RFC3339Nano, ts)
	if !ok || err != nil || id == "" {
		return time.Time{}, "", ErrBadCursor
	}
	return t, id, nil
}

// SetPlan records how many parts an export has and, when known, its rows.
func SetPlan(ctx context.Context, db *sqlx.DB, exportID string, chunks int, rowsTotal *int64) error {
	if _, err := db.ExecContext(ctx, `UPDATE export_jobs SET chunks_total = ?, rows_total = ?, updated_at = ?
		WHERE export_id = ?`, chunks, rowsTotal, time.Now().UTC(), exportID); err != nil {
		return fmt.Errorf("export %s: record plan: %w", exportID, err)
	}
	return nil
}

// Part is a committed part of an export: one chunk's records.
type Part struct {
	Chunk    int    `db:"chunk_no"`
	Rows     int64  `db:"rows_written"`
	PartKey  string `db:"part_key"`
	FirstKey string `db:"first_key"`
	LastKey  string `db:"last_key"`
}

// CommittedPart returns the part of chunk, if it was committed.
func CommittedPart(ctx context.Context, db sqlx.QueryerContext, exportID string, chunk int) (Part, bool, error) {
	var p Part
	err := sqlx.GetContext(ctx, db, &p, `SELECT chunk_no, rows_written, part_key, COALESCE(first_key, '') AS first_key,
		COALESCE(last_key, '') AS last_key FROM export_chunks WHERE export_id = ? AND chunk_no = ?`, exportID, chunk)
	if errors.Is(err, sql.ErrNoRows) {
		return Part{}, false, nil
	}
	if err != nil {
		return Part{}, false, fmt.Errorf("export %s chunk %d: read chunk ledger: %w", exportID, chunk, err)
	}
	return p, true, nil
}

// CommitPart records a written part and counts it into its running
// export, in one transaction: a retried chunk finds it and writes
// nothing. A part of an export that has ended is not counted (ErrJobEnded);
// one committed meanwhile by another attempt of the chunk is returned with
// done set.
func CommitPart(ctx context.Context, db *sqlx.DB, exportID string, p Part) (stored Part, done bool, err error) {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return Part{}, false, fmt.Errorf("export %s chunk %d: begin: %w", exportID, p.Chunk, err)
	}
	defer tx.Rollback()
	now := time.Now().UTC()
	_, err = tx.ExecContext(ctx, `INSERT INTO export_chunks (export_id, chunk_no, first_key, last_key, rows_written,
		part_key, committed_at) VALUES (?, ?, NULLIF(?, ''), NULLIF(?, ''), ?, ?, ?)`,
		exportID, p.Chunk, p.FirstKey, p.LastKey, p.Rows, p.PartKey, now)
	if database.IsDuplicateKey(err) {
		tx.Rollback()
		stored, ok, err := CommittedPart(ctx, db, exportID, p.Chunk)
		if err == nil && !ok {
			err = fmt.Errorf("export %s chunk %d: claimed but not committed", exportID, p.Chunk)
		}
		return stored, ok, err
	}
	if err != nil {
		return Part{}, false, fmt.Errorf("export %s chunk %d: record part: %w", exportID, p.Chunk, err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE export_jobs SET rows_written = rows_written + ?, chunks_done = chunks_done + 1,
		updated_at = ? WHERE export_id = ? AND state = ?`, p.Rows, now, exportID, StateRunning)
	if err != nil {
		return Part{}, false, fmt.Errorf("export %s chunk %d: count part: %w", exportID, p.Chunk, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return Part{}, false, fmt.Errorf("export %s chunk %d: count part: %w", exportID, p.Chunk, err)
	} else if n != 1 {
		return Part{}, false, fmt.Errorf("export %s chunk %d: %w", exportID, p.Chunk, ErrJobEnded)
	}
	if err := tx.Commit(); err != nil {
		return Part{}, false, fmt.Errorf("export %s chunk %d: commit: %w", exportID, p.Chunk, err)
	}
	return p, false, nil
}

// Parts returns an export's committed parts in chunk order.
func Parts(ctx context.Context, db *sqlx.DB, exportID string) ([]Part, error) {
	var parts []Part
	err := db.SelectContext(ctx, &parts, `SELECT chunk_no, rows_written, part_key, COALESCE(first_key, '') AS first_key,
		COALESCE(last_key, '') AS last_key FROM export_chunks WHERE export_id = ? ORDER BY chunk_no`, exportID)
	if err != nil {
		return nil, fmt.Errorf("export %s: read parts: %w", exportID, err)
	}
	return parts, nil
}

// Finish records an export's final state; a COMPLETED one with its file.
// Only a RUNNING export changes, and it frees its parameters for a new
// export.
func Finish(ctx context.Context, db *sqlx.DB, exportID, state, blobKey string, fileBytes int64, message string) error {
	var key, msg any
	var size any
	if blobKey != "" {
		key, size = blobKey, fileBytes
	}
	if message != "" {
		msg = message
	}
	_, err := db.ExecContext(ctx, `UPDATE export_jobs SET state = ?, blob_key = ?, file_bytes = ?, error = ?,
		active_key = NULL, updated_at = ? WHERE export_id = ? AND state = ?`,
		state, key, size, msg, time.Now().UTC(), exportID, StateRunning)
	if err != nil {
		return fmt.Errorf("export %s: finish: %w", exportID, err)
	}
	return nil
}

// PartKey names the staged object of an export's part; FileKey its file.
func PartKey(exportID string, chunk int) string {
	return fmt.Sprintf("%s%06d", PartPrefix(exportID), chunk)
}

// PartPrefix is the prefix of every part of an export.
func PartPrefix(exportID string) string { return "exports/" + exportID + "/part-" }

// FileKey names the staged file of an export.
func FileKey(exportID string, kind records.Kind, format Format) string {
	return "exports/" + exportID + "/" + string(kind) + "." + string(format)
}

// PlanRanges cuts a kind's primary keys into ranges of at most chunkRows
// rows, walking the key from boundary to boundary (no filter is looked at:
// a range holds at most chunkRows of the export's rows). The last range is
// open, so rows stored after planning at the end of the key order are
// exported too. It also returns the rows the table held.
func PlanRanges(ctx context.Context, db sqlx.QueryerContext, kind records.Kind, chunkRows int) ([]Range, int64, error) {
	table, key := "orders", "order_id"
	if kind == records.KindPayments {
		table, key = "payments", "payment_id"
	}
	var ranges []Range
	var rows int64
	after := ""
	for {
		var bound string
		err := sqlx.GetContext(ctx, db, &bound, "SELECT "+key+" FROM "+table+" FORCE INDEX (PRIMARY) WHERE "+key+
			" > ? ORDER BY "+key+" LIMIT 1 OFFSET ?", after, chunkRows-1)
		if errors.Is(err, sql.ErrNoRows) {
			var rest int64
			if err := sqlx.GetContext(ctx, db, &rest, "SELECT COUNT(*) FROM "+table+" WHERE "+key+" > ?", after); err != nil {
				return nil, 0, fmt.Errorf("plan export of %s: %w", kind, err)
			}
			return append(ranges, Range{After: after}), rows + rest, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("plan export of %s: %w", kind, err)
		}
		ranges = append(ranges, Range{After: after, UpTo: bound})
		rows += int64(chunkRows)
		after = bound
	}
}
