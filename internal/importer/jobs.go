// Package importer is the bulk import of orders and payments: validation of
// rows, the chunk step that writes a chunk's rows, rejects and chunk-ledger
// row in one MySQL transaction, and the import job records. Reading files is
// package records' job; payments go through package ledger.
package importer

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/records"
)

// Job states.
const (
	StateRunning   = "RUNNING"
	StateCompleted = "COMPLETED"
	StateFailed    = "FAILED"
	StateCancelled = "CANCELLED"
)

// DefaultMaxRejects is the rejects limit when an upload names none.
const DefaultMaxRejects = 1000

// Job is an import's row in import_jobs, shaped as GET /imports/{id}.
type Job struct {
	ImportID      string    `db:"import_id" json:"import_id"`
	WorkflowID    string    `db:"workflow_id" json:"workflow_id"`
	Type          string    `db:"type" json:"type"`
	Format        string    `db:"format" json:"format"`
	FileName      *string   `db:"file_name" json:"file_name"` // the upload's name (CleanFileName); nil if it had none
	State         string    `db:"state" json:"state"`
	RowsRead      int64     `db:"rows_read" json:"rows_read"`
	RowsWritten   int64     `db:"rows_written" json:"rows_written"`
	RowsUnchanged int64     `db:"rows_unchanged" json:"rows_unchanged"`
	RowsRejected  int64     `db:"rows_rejected" json:"rows_rejected"`
	ChunksDone    int       `db:"chunks_done" json:"chunks_done"`
	ChunksTotal   int       `db:"chunks_total" json:"chunks_total"`
	Error         *string   `db:"error" json:"error"`
	MaxRejects    int64     `db:"max_rejects" json:"max_rejects"`
	SizeBytes     int64     `db:"size_bytes" json:"size_bytes"`
	BlobKey       string    `db:"blob_key" json:"-"`
	ContentSHA256 string    `db:"content_sha256" json:"-"`
	CreatedAt     time.Time `db:"created_at" json:"created_at"`
	UpdatedAt     time.Time `db:"updated_at" json:"updated_at"`
}

// ImportID derives an import's id from what makes it the same import: the
// content, the requested type and the options. The same upload again maps
// to the same id and so to the existing import.
func ImportID(contentSHA256, typ string, maxRejects int64) string {
	h := sha256.Sum256([]byte(contentSHA256 + "|" + typ + "|" + strconv.FormatInt(maxRejects, 10)))
	return hex.EncodeToString(h[:16])
}

// ErrJobNotFound is returned for an unknown import id.
var ErrJobNotFound = errors.New("import not found")

const jobColumns = `import_id, workflow_id, type, format, file_name, state, rows_read, rows_written, rows_unchanged,
	rows_rejected, chunks_done, chunks_total, error, max_rejects, size_bytes, blob_key, content_sha256, created_at, updated_at`

// CreateJob inserts j as RUNNING. When an import with the same id exists it
// returns that one and created = false.
func CreateJob(ctx context.Context, db *sqlx.DB, j Job) (Job, bool, error) {
	now := time.Now().UTC()
	j.State, j.CreatedAt, j.UpdatedAt = StateRunning, now, now
	_, err := db.NamedExecContext(ctx, `INSERT INTO import_jobs (import_id, workflow_id, type, format, file_name, state,
		blob_key, content_sha256, size_bytes, max_rejects, created_at, updated_at)
		VALUES (:import_id, :workflow_id, :type, :format, :file_name, :state, :blob_key, :content_sha256, :size_bytes,
		:max_rejects, :created_at, :updated_at)`, j)
	if err != nil {
		if database.IsDuplicateKey(err) {
			existing, gerr := GetJob(ctx, db, j.ImportID)
			return existing, false, gerr
		}
		return Job{}, false, fmt.Errorf("create import %s: %w", j.ImportID, err)
	}
	return j, true, nil
}

// GetJob reads one import.
func GetJob(ctx context.Context, db *sqlx.DB, importID string) (Job, error) {
	var j Job
	err := db.GetContext(ctx, &j, `SELECT `+jobColumns+` FROM import_jobs WHERE import_id = ?`, importID)
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("%s: %w", importID, ErrJobNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("read import %s: %w", importID, err)
	}
	return j, nil
}

// ListJobs returns the newest imports first.
func ListJobs(ctx context.Context, db *sqlx.DB, limit int) ([]Job, error) {
	return ListJobsInState(ctx, db, "", limit)
}

// ListJobsInState returns the newest imports in state (RUNNING, COMPLETED,
// FAILED or CANCELLED; "" for any) first.
func ListJobsInState(ctx context.Context, db *sqlx.DB, state string, limit int) ([]Job, error) {
	jobs := []Job{}
	var err error
	if state == "" {
		err = db.SelectContext(ctx, &jobs, `SELECT `+jobColumns+` FROM import_jobs ORDER BY created_at DESC, import_id LIMIT ?`, limit)
	} else {
		err = db.SelectContext(ctx, &jobs, `SELECT `+jobColumns+` FROM import_jobs WHERE state = ? ORDER BY created_at DESC, import_id LIMIT ?`, state, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list imports: %w", err)
	}
	return jobs, nil
}

// States are the states an import can be in.
func States() []string { return []string{StateRunning, StateCompleted, StateFailed, StateCancelled} }

// SetPlan records what planning found: the type, format and chunk count.
func SetPlan(ctx context.Context, db *sqlx.DB, importID, typ, format string, chunks int) error {
	_, err := db.ExecContext(ctx, `UPDATE import_jobs SET type = ?, format = ?, chunks_total = ?, updated_at = ?
		WHERE import_id = ?`, typ, format, chunks, time.Now().UTC(), importID)
	if err != nil {
		return fmt.Errorf("import %s: record plan: %w", importID, err)
	}
	return nil
}

// Finish moves a RUNNING import to its final state. A finished import is
// left as it is, so a replayed finish changes nothing.
func Finish(ctx context.Context, db *sqlx.DB, importID, state, message string) error {
	var msg *string
	if message != "" {
		msg = &message
	}
	_, err := db.ExecContext(ctx, `UPDATE import_jobs SET state = ?, error = ?, updated_at = ?
		WHERE import_id = ? AND state = ?`, state, msg, time.Now().UTC(), importID, StateRunning)
	if err != nil {
		return fmt.Errorf("import %s: finish %s: %w", importID, state, err)
	}
	return nil
}

// WriteRejectsCSV streams an import's rejects as CSV (line, record, code,
// message) in record order, text cells neutralised against spreadsheet
// formulas as exported files are (records.NeutralizeFormula).
func WriteRejectsCSV(ctx context.Context, db *sqlx.DB, importID string, w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"line", "record", "code", "message"}); err != nil {
		return err
	}
	err := EachReject(ctx, db, importID, func(r Reject) error {
		// A message may quote a field name or value from the file: no
		// cell may start a spreadsheet formula.
		return cw.Write([]string{strconv.FormatInt(r.Line, 10), strconv.FormatInt(r.Record, 10),
			records.NeutralizeFormula(r.Code), records.NeutralizeFormula(r.Message)})
	})
	if err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// EachReject calls fn with each rejected row of an import, in file order,
// streaming: an import may reject millions of rows.
func EachReject(ctx context.Context, db *sqlx.DB, importID string, fn func(Reject) error) error {
	rows, err := db.QueryContext(ctx, `SELECT line_no, record_no, code, message FROM import_rejects
		WHERE import_id = ? ORDER BY record_no`, importID)
	if err != nil {
		return fmt.Errorf("import %s: read rejects: %w", importID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r Reject
		if err := rows.Scan(&r.Line, &r.Record, &r.Code, &r.Message); err != nil {
			return fmt.Errorf("import %s: read rejects: %w", importID, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ErrNotRetryable is returned by Restart for an import that is not FAILED
// or CANCELLED.
var ErrNotRetryable = errors.New("only a FAILED or CANCELLED import can be retried")

// Restart moves a FAILED or CANCELLED import back to RUNNING, clearing its
// error, for a new run of its workflow. Its counters stay: they count the
// chunks in its chunk ledger, which the new run finds committed and does
// not write or count again.
func Restart(ctx context.Context, db *sqlx.DB, importID string) error {
	res, err := db.ExecContext(ctx, `UPDATE import_jobs SET state = ?, error = NULL, updated_at = ?
		WHERE import_id = ? AND state IN (?, ?)`, StateRunning, time.Now().UTC(), importID, StateFailed, StateCancelled)
	if err != nil {
		return fmt.Errorf("import %s: restart: %w", importID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("import %s: restart: %w", importID, err)
	} else if n != 1 {
		j, err := GetJob(ctx, db, importID)
		if err != nil {
			return err
		}
		return fmt.Errorf("import %s is %s: %w", importID, j.State, ErrNotRetryable)
	}
	return nil
}
