package importer

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/loaddata"
	"github.com/acme/payments/internal/mask"
	"github.com/acme/payments/internal/orders"
	"github.com/acme/payments/internal/records"
)

// Importer writes import chunks. It is safe for concurrent use.
type Importer struct {
	// Logger receives one debug line per chunk with its phase timings.
	Logger     *slog.Logger
	DB         *sqlx.DB
	Keys       *encryption.Keyring
	BlindIndex *encryption.BlindIndex
	Ledger     *ledger.Ledger
	// OnRetry, if set, is called before a chunk's transaction is re-run
	// after a transient MySQL conflict (ledger.IsRetryable).
	OnRetry func(attempt int, err error)
}

// A chunk's transaction that fails on a transient conflict (a deadlock or
// lock wait timeout, e.g. with live payments on the same orders) is re-run
// here, logged at WARN with its reason, rather than failing the activity:
// an activity failure is an ERROR in the worker's log and a retried
// attempt in the workflow's history.
const (
	chunkAttempts    = 6
	chunkBaseBackoff = 20 * time.Millisecond
)

// ChunkSpec names one chunk of a staged, planned file.
type ChunkSpec struct {
	ImportID string
	Kind     records.Kind
	Format   records.Format
	Header   []string
	Chunk    records.Chunk
}

// ChunkResult is what a chunk did. A chunk committed earlier reports its
// stored figures with Replayed set.
type ChunkResult struct {
	Index         int   `json:"index"`
	RowsRead      int64 `json:"rows_read"`
	RowsWritten   int64 `json:"rows_written"`
	RowsUnchanged int64 `json:"rows_unchanged"`
	RowsRejected  int64 `json:"rows_rejected"`
	Replayed      bool  `json:"replayed"`
	// OpenOrders are orders this chunk paid into whose payment workflow is
	// open; the caller wakes them. Not part of the activity's result.
	OpenOrders []string `json:"-"`
	// RejectCodes counts the rows this call rejected by reject code, for
	// metrics; empty for a replayed chunk. Not part of the activity's
	// result.
	RejectCodes map[string]int64 `json:"-"`
}

// ErrFile marks a chunk whose bytes do not parse as the plan said: the
// staged file changed or is corrupt, and retrying will not help.
var ErrFile = errors.New("staged file does not match its plan")

// ErrJobEnded marks a chunk of an import that has already ended (cancelled,
// failed or completed): its rows are not written, as the user was told no
// more would be.
var ErrJobEnded = errors.New("import is no longer running")

// ImportChunk reads the chunk's records from r (exactly its byte range),
// validates them and, in one transaction, writes the good rows, the rejects,
// the chunk-ledger row and the job's counters. A chunk already committed
// (a retried or replayed activity) writes nothing and reports its figures,
// and for payments the open order workflows to wake again: the run that
// committed it may have stopped before waking them.
func (im *Importer) ImportChunk(ctx context.Context, spec ChunkSpec, r io.Reader, heartbeat func()) (ChunkResult, error) {
	prior, done, err := im.committed(ctx, spec)
	if err != nil || (done && spec.Kind != records.KindPayments) {
		return prior, err
	}
	t0 := time.Now()
	rows, err := parseChunk(spec, r)
	if err != nil {
		return ChunkResult{Index: spec.Chunk.Index}, err
	}
	if done {
		return im.replayed(ctx, spec, prior, rows)
	}
	heartbeat()
	tParsed := time.Now()
	res, prior, done, err := im.commitChunkRetrying(ctx, spec, rows, heartbeat)
	if err != nil {
		return res, fmt.Errorf("import %s chunk %d: %w", spec.ImportID, spec.Chunk.Index, err)
	}
	if done {
		return im.replayed(ctx, spec, prior, rows)
	}
	if spec.Kind == records.KindPayments {
		if res.OpenOrders, err = im.openOrders(ctx, rows.payments); err != nil {
			return res, err
		}
	}
	if im.Logger != nil {
		im.Logger.Debug("import chunk committed", "import_id", spec.ImportID, "chunk", spec.Chunk.Index,
			"rows", res.RowsRead, "parse_ms", tParsed.Sub(t0).Milliseconds(), "write_ms", time.Since(tParsed).Milliseconds())
	}
	return res, nil
}

// chunkRows are a chunk's records, validated: the good rows of its kind,
// each with where it was in the file, and the rejects.
type chunkRows struct {
	read     int64
	orders   []orders.NewOrder
	payments []ledger.Payment
	recs     []records.Record // aligned with orders or payments
	rejects  []Reject
}

// parseChunk reads and validates a chunk's records. An error means the
// bytes do not parse as the plan said (ErrFile).
func parseChunk(spec ChunkSpec, r io.Reader) (*chunkRows, error) {
	plan := &records.Plan{Format: spec.Format, Kind: spec.Kind, Header: spec.Header}
	rd := records.NewReader(r, plan, spec.Chunk, records.Limits{})
	// Sized from the plan: growing by doubling copied each chunk's rows
	// several times over.
	n := int(min(spec.Chunk.Records, 1<<20))
	rows := &chunkRows{recs: make([]records.Record, 0, n)}
	switch spec.Kind {
	case records.KindOrders:
		rows.orders = make([]orders.NewOrder, 0, n)
	case records.KindPayments:
		rows.payments = make([]ledger.Payment, 0, n)
	default:
		return nil, fmt.Errorf("import %s: unknown type %q", spec.ImportID, spec.Kind)
	}
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("import %s chunk %d: %w: %v", spec.ImportID, spec.Chunk.Index, ErrFile, err)
		}
		rows.read++
		if rec.Err != nil {
			rows.reject(rec, ledger.CodeMalformed, rec.Err.Error())
			continue
		}
		var fe *FieldError
		if spec.Kind == records.KindOrders {
			var o orders.NewOrder
			if o, fe = ParseOrder(rec.Values); fe == nil {
				rows.orders = append(rows.orders, o)
			}
		} else {
			var p ledger.Payment
			if p, fe = ParsePayment(rec.Values); fe == nil {
				rows.payments = append(rows.payments, p)
			}
		}
		if fe != nil {
			rows.reject(rec, fe.Code, fe.Message)
			continue
		}
		rows.recs = append(rows.recs, records.Record{Line: rec.Line, Number: rec.Number})
	}
	if rows.read != spec.Chunk.Records {
		return nil, fmt.Errorf("import %s chunk %d: %w: read %d records, planned %d", spec.ImportID, spec.Chunk.Index, ErrFile, rows.read, spec.Chunk.Records)
	}
	return rows, nil
}

func (c *chunkRows) reject(rec records.Record, code, msg string) {
	c.rejects = append(c.rejects, Reject{Line: rec.Line, Record: rec.Number, Code: code, Message: msg})
}

// replayed answers for a chunk committed before: its stored figures and,
// for payments, the open workflows of its orders to wake again.
func (im *Importer) replayed(ctx context.Context, spec ChunkSpec, prior ChunkResult, rows *chunkRows) (ChunkResult, error) {
	var err error
	if spec.Kind == records.KindPayments {
		prior.OpenOrders, err = im.openOrders(ctx, rows.payments)
	}
	return prior, err
}

// commitChunkRetrying runs commitChunk, re-running its transaction (which
// rolled back whole) after a transient conflict, up to chunkAttempts times.
func (im *Importer) commitChunkRetrying(ctx context.Context, spec ChunkSpec, rows *chunkRows, heartbeat func()) (ChunkResult, ChunkResult, bool, error) {
	backoff := chunkBaseBackoff
	for attempt := 1; ; attempt++ {
		res, prior, done, err := im.commitChunk(ctx, spec, rows, heartbeat)
		if err == nil || !ledger.IsRetryable(err) || attempt >= chunkAttempts || ctx.Err() != nil {
			return res, prior, done, err
		}
		if im.Logger != nil {
			im.Logger.Warn("import chunk retried after a transient MySQL conflict", "import_id", spec.ImportID,
				"chunk", spec.Chunk.Index, "attempt", attempt, "reason", err.Error())
		}
		if im.OnRetry != nil {
			im.OnRetry(attempt, err)
		}
		// Jittered, so two chunks that just collided do not meet again.
		d := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return res, prior, done, fmt.Errorf("%w (while retrying after: %v)", ctx.Err(), err)
		case <-time.After(d):
		}
		heartbeat()
		backoff = min(backoff*2, time.Second)
	}
}

// commitChunk writes a parsed chunk in one transaction: it claims the
// chunk, writes its rows by kind, and accounts for them. When another
// attempt of the chunk committed first it returns that one's figures with
// done set, having written nothing.
func (im *Importer) commitChunk(ctx context.Context, spec ChunkSpec, rows *chunkRows, heartbeat func()) (res ChunkResult, prior ChunkResult, done bool, err error) {
	res = ChunkResult{Index: spec.Chunk.Index, RowsRead: rows.read}
	tx, err := im.DB.BeginTxx(ctx, ledger.TxOptions())
	if err != nil {
		return res, prior, false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if claimed, err := im.claim(ctx, tx, spec); err != nil || !claimed {
		tx.Rollback()
		if err == nil {
			prior, done, err = im.committed(ctx, spec)
			if err == nil && !done {
				err = errors.New("claim: the chunk is claimed but not committed")
			}
		}
		return res, prior, done, err
	}
	rejects := rows.rejects
	var recorded []ledger.Result
	switch spec.Kind {
	case records.KindOrders:
		var rej []Reject
		res.RowsWritten, res.RowsUnchanged, rej, err = im.writeOrders(ctx, tx, rows.orders, rows.recs)
		rejects = append(rejects, rej...)
	case records.KindPayments:
		var rej []Reject
		res.RowsWritten, res.RowsUnchanged, rej, recorded, err = im.writePayments(ctx, tx, spec, rows.payments, rows.recs)
		rejects = append(rejects, rej...)
	}
	if err != nil {
		return res, prior, false, err
	}
	heartbeat()
	res.RowsRejected = int64(len(rejects))
	if err := im.account(ctx, tx, spec, res, rejects); err != nil {
		return res, prior, false, err
	}
	if err := tx.Commit(); err != nil {
		return res, prior, false, fmt.Errorf("commit: %w", err)
	}
	im.Ledger.Recorded(ledger.SourceImport, recorded)
	if len(rejects) > 0 {
		res.RejectCodes = make(map[string]int64)
		for _, r := range rejects {
			res.RejectCodes[r.Code]++
		}
	}
	return res, prior, false, nil
}

// claim inserts the chunk's ledger row first, so a concurrent attempt of
// the same chunk waits here and then finds it committed. It reports false
// when the chunk is claimed already.
func (im *Importer) claim(ctx context.Context, tx *sqlx.Tx, spec ChunkSpec) (bool, error) {
	_, err := tx.ExecContext(ctx, `INSERT INTO import_chunks (import_id, chunk_no, first_record, start_offset,
		end_offset, rows_read, rows_written, rows_unchanged, rows_rejected, committed_at) VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0, ?)`,
		spec.ImportID, spec.Chunk.Index, spec.Chunk.FirstRecord, spec.Chunk.Start, spec.Chunk.End, time.Now().UTC())
	if database.IsDuplicateKey(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim: %w", err)
	}
	return true, nil
}

// writePayments records a chunk's payments through the ledger and sorts
// its answers into the chunk's figures and rejects; results are the
// ledger's answers, to report once the chunk commits.
func (im *Importer) writePayments(ctx context.Context, tx *sqlx.Tx, spec ChunkSpec, payments []ledger.Payment, recs []records.Record) (written, unchanged int64, rejects []Reject, results []ledger.Result, err error) {
	results, err = im.Ledger.RecordTx(ctx, tx, ledger.SourceImport, "import/"+spec.ImportID, payments)
	if err != nil {
		return 0, 0, nil, nil, err
	}
	for i, r := range results {
		switch r.Outcome {
		case ledger.Inserted, ledger.Settled:
			written++
		case ledger.Unchanged:
			unchanged++
		default:
			rejects = append(rejects, Reject{Line: recs[i].Line, Record: recs[i].Number, Code: r.Code, Message: r.Message})
		}
	}
	return written, unchanged, rejects, results, nil
}

// account writes the chunk's rejects, its figures on its ledger row and
// the job's counters. Counting into the job row only while it runs makes
// the chunk and the job's state one decision: a chunk still in flight
// when the import was cancelled or failed (or of a run started in a race
// with that) rolls back with ErrJobEnded instead of adding rows to an
// ended import.
func (im *Importer) account(ctx context.Context, tx *sqlx.Tx, spec ChunkSpec, res ChunkResult, rejects []Reject) error {
	if err := insertRejects(ctx, tx, spec.ImportID, rejects); err != nil {
		return err
	}
	now := time.Now().UTC()
	if _, err := tx.ExecContext(ctx, `UPDATE import_chunks SET rows_read = ?, rows_written = ?, rows_unchanged = ?,
		rows_rejected = ?, committed_at = ? WHERE import_id = ? AND chunk_no = ?`,
		res.RowsRead, res.RowsWritten, res.RowsUnchanged, res.RowsRejected, now, spec.ImportID, spec.Chunk.Index); err != nil {
		return fmt.Errorf("record chunk: %w", err)
	}
	upd, err := tx.ExecContext(ctx, `UPDATE import_jobs SET rows_read = rows_read + ?, rows_written = rows_written + ?,
		rows_unchanged = rows_unchanged + ?, rows_rejected = rows_rejected + ?, chunks_done = chunks_done + 1, updated_at = ?
		WHERE import_id = ? AND state = ?`, res.RowsRead, res.RowsWritten, res.RowsUnchanged, res.RowsRejected, now,
		spec.ImportID, StateRunning)
	if err != nil {
		return fmt.Errorf("update job: %w", err)
	}
	if n, err := upd.RowsAffected(); err != nil {
		return fmt.Errorf("update job: %w", err)
	} else if n != 1 {
		return ErrJobEnded
	}
	return nil
}

// openOrders returns the orders of payments whose payment workflow is open.
// Few orders have one, so it reads order_workflows by ranges of the sorted
// ids (runs of openRun, many runs a statement) and keeps the rows that are
// ours: a range read costs the rows it finds, where an IN list of every id
// cost the server a look-up per id.
func (im *Importer) openOrders(ctx context.Context, payments []ledger.Payment) ([]string, error) {
	ours := make(map[string]bool, len(payments))
	ids := make([]string, 0, len(payments))
	for _, p := range payments {
		if !ours[p.OrderID] {
			ours[p.OrderID] = true
			ids = append(ids, p.OrderID)
		}
	}
	slices.Sort(ids)
	const openRun, runsPerQuery = 1000, 100
	var open []string
	for start := 0; start < len(ids); start += openRun * runsPerQuery {
		var q strings.Builder
		var args []any
		for lo := start; lo < min(start+openRun*runsPerQuery, len(ids)); lo += openRun {
			if lo > start {
				q.WriteString(" UNION ALL ")
			}
			q.WriteString("(SELECT order_id FROM order_workflows WHERE order_id BETWEEN ? AND ?)")
			args = append(args, ids[lo], ids[min(lo+openRun, len(ids))-1])
		}
		var found []string
		if err := im.DB.SelectContext(ctx, &found, q.String(), args...); err != nil {
			return nil, fmt.Errorf("read open order workflows: %w", err)
		}
		for _, id := range found {
			if ours[id] {
				open = append(open, id)
			}
		}
	}
	return open, nil
}

// committed reports the figures of a chunk already in the chunk ledger.
func (im *Importer) committed(ctx context.Context, spec ChunkSpec) (ChunkResult, bool, error) {
	res := ChunkResult{Index: spec.Chunk.Index, Replayed: true}
	err := im.DB.QueryRowContext(ctx, `SELECT rows_read, rows_written, rows_unchanged, rows_rejected FROM import_chunks
		WHERE import_id = ? AND chunk_no = ?`, spec.ImportID, spec.Chunk.Index).
		Scan(&res.RowsRead, &res.RowsWritten, &res.RowsUnchanged, &res.RowsRejected)
	if errors.Is(err, sql.ErrNoRows) {
		return ChunkResult{}, false, nil
	}
	if err != nil {
		return ChunkResult{}, false, fmt.Errorf("import %s chunk %d: read chunk ledger: %w", spec.ImportID, spec.Chunk.Index, err)
	}
	return res, true, nil
}

func insertRejects(ctx context.Context, tx *sqlx.Tx, importID string, rejects []Reject) error {
	const batch = 500
	for start := 0; start < len(rejects); start += batch {
		end := min(start+batch, len(rejects))
		var q strings.Builder
		q.WriteString("INSERT INTO import_rejects (import_id, record_no, line_no, code, message) VALUES ")
		args := make([]any, 0, 5*(end-start))
		for i, r := range rejects[start:end] {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?,?,?,?,?)")
			msg := r.Message
			if len(msg) > 500 {
				msg = msg[:500]
			}
			args = append(args, importID, r.Record, r.Line, r.Code, msg)
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("write rejects: %w", err)
		}
	}
	return nil
}

// writeOrders stores the new orders of a chunk and judges the rest: a row
// identical to the stored one is unchanged, another is DUPLICATE_CONFLICT.
// New rows stream into MySQL with LOAD DATA LOCAL INFILE, the fastest path
// the server has.
func (im *Importer) writeOrders(ctx context.Context, tx *sqlx.Tx, rows []orders.NewOrder, recs []records.Record) (written, unchanged int64, rejects []Reject, err error) {
	// Within the chunk: the first row of an id wins. Ids in ascending
	// order (files exported by id, the common case) cannot repeat, and
	// checking that is cheaper than a map of every id.
	toInsert := make([]int, 0, len(rows))
	if ascendingIDs(rows) {
		for i := range rows {
			toInsert = append(toInsert, i)
		}
	} else {
		first := make(map[string]int, len(rows))
		for i, o := range rows {
			if j, ok := first[o.OrderID]; ok {
				if orders.Same(rows[j], o) {
					unchanged++
				} else {
					rejects = append(rejects, conflict(recs[i], o.OrderID))
				}
				continue
			}
			first[o.OrderID] = i
			toInsert = append(toInsert, i)
		}
	}
	// Insert first and judge only what LOAD DATA skipped: a fresh import
	// (the common case) then costs no look-ups at all.
	if len(toInsert) == 0 {
		return 0, unchanged, rejects, nil
	}
	// Rows go in in ascending id order, so concurrent chunks lock the
	// primary key in one order and cannot deadlock. An id in two chunks
	// (a file's DUPLICATE_CONFLICT rows) makes the second inserter wait
	// for the first one's row; in file order, two chunks that each held
	// an id the other was about to insert waited on each other (error
	// 1213, several times per import of a file with duplicates).
	sortByID(rows, toInsert)

	now := []byte(time.Now().UTC().Format(loaddata.DateTime))
	var buf bytes.Buffer
	buf.Grow(len(toInsert) * 256)
	var sealed orders.Sealed
	var scratch rowScratch
	for _, i := range toInsert {
		if err := im.appendOrderRow(&buf, rows[i], now, &sealed, &scratch); err != nil {
			return 0, 0, nil, err
		}
	}
	// Status and paid amount take their column defaults and updated_at is
	// set once for the statement: every byte per row costs the server time
	// to parse.
	n, _, err := loaddata.Load(ctx, tx, buf.Bytes(), "orders", `(order_id, order_amount, currency,
		customer_email, customer_phone, customer_email_bidx, created_at) SET updated_at = '`+string(now)+`'`)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("load orders: %w", err)
	}
	written = n
	if missed := int64(len(toInsert)) - n; missed > 0 {
		// Some ids were stored already, by an earlier import or another
		// chunk of this file (LOAD DATA LOCAL skips duplicate keys). The
		// rows we inserted match ours; judge the rest by content.
		ids := make([]string, len(toInsert))
		for k, i := range toInsert {
			ids[k] = rows[i].OrderID
		}
		stored, err := im.loadOrders(ctx, tx, ids)
		if err != nil {
			return 0, 0, nil, err
		}
		var conflicts int64
		for _, i := range toInsert {
			same, err := im.sealer().Matches(stored[rows[i].OrderID], rows[i])
			if err != nil {
				return 0, 0, nil, err
			}
			if !same {
				conflicts++
				rejects = append(rejects, conflict(recs[i], rows[i].OrderID))
			}
		}
		unchanged += missed - conflicts
	}
	return written, unchanged, rejects, nil
}

// sortByID sorts the indices of rows by their order ids, bytewise as the
// orders table's utf8mb4_bin key compares them. Ids in ascending order
// already (the common case) cost one pass.
func sortByID(rows []orders.NewOrder, idx []int) {
	if slices.IsSortedFunc(idx, func(a, b int) int { return strings.Compare(rows[a].OrderID, rows[b].OrderID) }) {
		return
	}
	slices.SortFunc(idx, func(a, b int) int { return strings.Compare(rows[a].OrderID, rows[b].OrderID) })
}

// ascendingIDs reports whether every order id is greater than the one
// before it.
func ascendingIDs(rows []orders.NewOrder) bool {
	for i := 1; i < len(rows); i++ {
		if rows[i-1].OrderID >= rows[i].OrderID {
			return false
		}
	}
	return true
}

func conflict(rec records.Record, id string) Reject {
	return Reject{Line: rec.Line, Record: rec.Number, Code: ledger.CodeDuplicateConflict,
		Message: fmt.Sprintf("order_id %s already exists with different content", mask.ID(id))}
}

func (im *Importer) loadOrders(ctx context.Context, tx *sqlx.Tx, ids []string) (map[string]orders.Row, error) {
	out := make(map[string]orders.Row)
	// Below MariaDB's in_predicate_conversion_threshold (1000), where an
	// IN list stops being a range over its keys (see package ledger).
	const batch = 500
	for start := 0; start < len(ids); start += batch {
		end := min(start+batch, len(ids))
		q, args, err := sqlx.In(`SELECT `+orders.RowColumns+` FROM orders WHERE order_id IN (?)`, ids[start:end])
		if err != nil {
			return nil, err
		}
		var rows []orders.Row
		if err := tx.SelectContext(ctx, &rows, q, args...); err != nil {
			return nil, fmt.Errorf("read existing orders: %w", err)
		}
		for _, r := range rows {
			out[r.OrderID] = r
		}
	}
	return out, nil
}

// appendOrderRow writes one LOAD DATA line (see package loaddata), sealing
// the order's fields into sealed's reused buffers. now is the chunk's
// timestamp, already formatted; num and created are scratch.
func (im *Importer) appendOrderRow(buf *bytes.Buffer, o orders.NewOrder, now []byte, sealed *orders.Sealed, scratch *rowScratch) error {
	created := now
	if !o.CreatedAt.IsZero() {
		scratch.created = loaddata.AppendDateTime(scratch.created[:0], o.CreatedAt)
		created = scratch.created
	}
	if err := im.sealer().Seal(sealed, o); err != nil {
		return err
	}
	scratch.num = strconv.AppendInt(scratch.num[:0], o.Amount, 10)
	loaddata.Field(buf, []byte(o.OrderID), '\t')
	loaddata.Field(buf, scratch.num, '\t')
	loaddata.Field(buf, []byte(o.Currency), '\t')
	loaddata.NullableField(buf, sealed.Email, sealed.Email == nil, '\t')
	loaddata.NullableField(buf, sealed.Phone, sealed.Phone == nil, '\t')
	loaddata.NullableField(buf, sealed.EmailIndex, sealed.EmailIndex == nil, '\t')
	loaddata.Field(buf, created, '\n')
	return nil
}

// rowScratch holds the buffers of a row's other formatted values.
type rowScratch struct{ num, created []byte }

// sealer seals and matches orders with the importer's keys.
func (im *Importer) sealer() orders.Sealer {
	return orders.Sealer{Keys: im.Keys, BlindIndex: im.BlindIndex}
}
