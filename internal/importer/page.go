package importer

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// PageKey is where a page of ListJobsPage ends: the last job's created_at
// and import_id.
type PageKey struct {
	CreatedAt time.Time
	ImportID  string
}

// ListJobsPage returns up to limit imports in state ("" for any), newest
// first, after the key of the previous page (nil for the first page), and
// the key of the next page (nil on the last one). A keyset query: pages stay
// cheap however deep they go, and new imports never shift them.
func ListJobsPage(ctx context.Context, db *sqlx.DB, state string, limit int, after *PageKey) ([]Job, *PageKey, error) {
	q := `SELECT ` + jobColumns + ` FROM import_jobs WHERE 1=1`
	var args []any
	if state != "" {
		q += ` AND state = ?`
		args = append(args, state)
	}
	if after != nil {
		q += ` AND (created_at < ? OR (created_at = ? AND import_id < ?))`
		args = append(args, after.CreatedAt, after.CreatedAt, after.ImportID)
	}
	q += ` ORDER BY created_at DESC, import_id DESC LIMIT ?`
	args = append(args, limit+1)
	jobs := []Job{}
	if err := db.SelectContext(ctx, &jobs, q, args...); err != nil {
		return nil, nil, fmt.Errorf("list imports: %w", err)
	}
	if len(jobs) <= limit {
		return jobs, nil, nil
	}
	jobs = jobs[:limit]
	last := jobs[limit-1]
	return jobs, &PageKey{CreatedAt: last.CreatedAt, ImportID: last.ImportID}, nil
}
