package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/loaddata"
	"github.com/acme/payments/internal/orders"
	"github.com/acme/payments/internal/records"
)

// The floor is MySQL storing exactly the rows an import stores and nothing
// else: LOAD DATA LOCAL INFILE of rows in the stored shape (the same
// columns, ids and values; ciphertexts of the same length, the key-id
// header then random bytes; random blind indexes) into empty CREATE TABLE
// … LIKE copies of
// the tables, cut in the import's chunks and loaded by parallel streams.
// No parsing, validation, encryption, look-ups, job accounting or
// workflow. An import's ratio to it is what the service adds.

// Floor tables, in the bench's own database.
const (
	floorOrders   = "bench_floor_orders"
	floorPayments = "bench_floor_payments"
	floorEvents   = "bench_floor_events"
	floorFigures  = "bench_floor_figures"
)

// FloorStreams are the stream counts the floor is measured with; the
// fastest counts.
var FloorStreams = []int{2, 4}

// shape is what a stored row's opaque columns look like: a ciphertext is
// the keyring's header (version, key id: the schema's generated key-id
// columns read it) and then as many bytes as the nonce, the plaintext and
// the tag, here random; a blind index is bidxLen random bytes.
type shape struct {
	header   []byte
	overhead int // a ciphertext's length less its plaintext's
	bidxLen  int
}

// shapeOf measures the keys' ciphertexts and blind index.
func shapeOf(keys *encryption.Keyring, bidx *encryption.BlindIndex) (shape, error) {
	const pt = "bench"
	ct, err := keys.Encrypt([]byte(pt), nil)
	if err != nil {
		return shape{}, fmt.Errorf("floor: measure ciphertext: %w", err)
	}
	header := append([]byte{ct[0], ct[1]}, keys.PrimaryID()...)
	if !bytes.HasPrefix(ct, header) {
		return shape{}, errors.New("floor: ciphertexts do not start with the key id header this floor writes")
	}
	return shape{header: header, overhead: len(ct) - len(pt), bidxLen: len(bidx.Email("bench@example.com"))}, nil
}

// ciphertext appends a stored-shape ciphertext of an n-byte plaintext.
func (sh shape) ciphertext(rnd *mrand.ChaCha8, dst []byte, n int) []byte {
	return randomBytes(rnd, append(dst, sh.header...), sh.overhead-len(sh.header)+n)
}

// span is one chunk's bytes in a floor file and the rows they hold.
type span struct {
	off, n int64
	rows   int64
}

// floorFile is a table's stored-shape rows as LOAD DATA lines (package
// loaddata's format), cut in the import's chunks.
type floorFile struct {
	path  string
	spans []span
	rows  int64
}

// floorWriter appends LOAD DATA lines to a file, one span per chunk.
type floorWriter struct {
	f     *os.File
	w     *bufio.Writer
	ff    *floorFile
	line  bytes.Buffer
	off   int64
	start int64
	rows  int64
	err   error
}

func newFloorWriter(path string) (*floorWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	return &floorWriter{f: f, w: bufio.NewWriterSize(f, 1<<20), ff: &floorFile{path: path}}, nil
}

// field appends a value and its terminator to the current line.
func (fw *floorWriter) field(b []byte, term byte) { loaddata.Field(&fw.line, b, term) }

// null appends \N and the terminator.
func (fw *floorWriter) null(term byte) { loaddata.NullableField(&fw.line, nil, true, term) }

// row ends the current line.
func (fw *floorWriter) row() {
	if fw.err == nil {
		_, fw.err = fw.w.Write(fw.line.Bytes())
	}
	fw.off += int64(fw.line.Len())
	fw.rows++
	fw.line.Reset()
}

// cut ends the current chunk (an empty one is dropped).
func (fw *floorWriter) cut() {
	if fw.rows > 0 {
		fw.ff.spans = append(fw.ff.spans, span{off: fw.start, n: fw.off - fw.start, rows: fw.rows})
		fw.ff.rows += fw.rows
	}
	fw.start, fw.rows = fw.off, 0
}

func (fw *floorWriter) close() (*floorFile, error) {
	fw.cut()
	err := fw.err
	if ferr := fw.w.Flush(); err == nil {
		err = ferr
	}
	if cerr := fw.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("floor: write %s: %w", fw.ff.path, err)
	}
	return fw.ff, nil
}

// eachRecord reads the file the way an import with chunkRows does: planned
// into the same chunks, each record's values handed to fn, then end after
// each chunk. Malformed records are skipped, as the import rejects them.
func eachRecord(path string, kind records.Kind, chunkRows int, fn func([]string), end func()) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	defer f.Close()
	plan, err := records.PlanChunks(bufio.NewReaderSize(f, 1<<20), kind, chunkRows, records.Limits{})
	if err != nil {
		return fmt.Errorf("floor: plan %s: %w", path, err)
	}
	for _, c := range plan.Chunks {
		rd := records.NewReader(bufio.NewReaderSize(io.NewSectionReader(f, c.Start, c.End-c.Start), 1<<20), plan, c, records.Limits{})
		for {
			rec, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("floor: read %s: %w", path, err)
			}
			if rec.Err == nil {
				fn(rec.Values)
			}
		}
		end()
	}
	return nil
}

// randomBytes fills n bytes of dst's tail with random bytes: what a
// ciphertext or blind index looks like to the server (escaping included).
func randomBytes(rnd *mrand.ChaCha8, dst []byte, n int) []byte {
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	_, _ = rnd.Read(dst[start:])
	return dst
}

func newRand() *mrand.ChaCha8 {
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	return mrand.NewChaCha8(seed)
}

// ordersFloorColumns is the import's column list for orders (see
// importer.writeOrders): status and paid amount take their defaults.
func ordersFloorColumns(now string) string {
	return `(order_id, order_amount, currency, customer_email, customer_phone, customer_email_bidx, created_at)
		SET updated_at = '` + now + `'`
}

// buildOrdersFloor writes the stored-shape rows of an orders file's valid
// rows (its first row of each id: the server skips a repeated key as the
// import does) in the import's chunks.
func buildOrdersFloor(src, dst string, chunkRows int, sh shape, now string) (*floorFile, error) {
	fw, err := newFloorWriter(dst)
	if err != nil {
		return nil, err
	}
	rnd := newRand()
	var scratch []byte
	nowB := []byte(now)
	err = eachRecord(src, records.KindOrders, chunkRows, func(v []string) {
		o, fe := importer.ParseOrder(v)
		if fe != nil {
			return
		}
		fw.field([]byte(o.OrderID), '\t')
		fw.field(strconv.AppendInt(scratch[:0], o.Amount, 10), '\t')
		fw.field([]byte(o.Currency), '\t')
		if o.CustomerEmail != "" {
			fw.field(sh.ciphertext(rnd, scratch[:0], len(o.CustomerEmail)), '\t')
		} else {
			fw.null('\t')
		}
		if o.CustomerPhone != "" {
			fw.field(sh.ciphertext(rnd, scratch[:0], len(o.CustomerPhone)), '\t')
		} else {
			fw.null('\t')
		}
		if o.CustomerEmail != "" {
			fw.field(randomBytes(rnd, scratch[:0], sh.bidxLen), '\t')
		} else {
			fw.null('\t')
		}
		if o.CreatedAt.IsZero() {
			fw.field(nowB, '\n')
		} else {
			fw.field(loaddata.AppendDateTime(scratch[:0], o.CreatedAt), '\n')
		}
		fw.row()
	}, fw.cut)
	ff, cerr := fw.close()
	if err == nil {
		err = cerr
	}
	return ff, err
}

// paymentsFloor is what a payments import writes, in stored shape: one
// payments row and one audit event per new payment (its insert, from no
// status to its own), cut in the import's chunks, and the touched orders'
// new figures.
type paymentsFloor struct {
	payments, events, figures *floorFile
	// reference is the events' reference column, as long as an import's.
	reference string
}

// buildPaymentsFloor writes the stored-shape rows of a payments file whose
// orders are in ordersPath (all of them: payments of a missing order would
// be rejected by the import and refused by the floor's foreign key). It
// assumes the file's payment ids and gateway refs are distinct, as
// generated files without bad rows are; the floor's loads fail loudly if
// the server skips a row.
func buildPaymentsFloor(paymentsPath, ordersPath, dir string, chunkRows int, sh shape, now string) (*paymentsFloor, error) {
	pw, err := newFloorWriter(dir + "/floor-payments.tsv")
	if err != nil {
		return nil, err
	}
	ew, err := newFloorWriter(dir + "/floor-events.tsv")
	if err != nil {
		pw.close()
		return nil, err
	}
	rnd := newRand()
	var scratch []byte
	nowB := []byte(now)
	gained := map[string]int64{}
	var touched []string
	err = eachRecord(paymentsPath, records.KindPayments, chunkRows, func(v []string) {
		p, fe := importer.ParsePayment(v)
		if fe != nil {
			return
		}
		currency := p.Currency
		if currency == "" {
			currency = orders.DefaultCurrency // bench files always name it
		}
		pw.field([]byte(p.PaymentID), '\t')
		pw.field([]byte(p.OrderID), '\t')
		pw.field(strconv.AppendInt(scratch[:0], p.Amount, 10), '\t')
		pw.field([]byte(currency), '\t')
		pw.field([]byte(p.Status), '\t')
		pw.field([]byte(p.Method), '\t')
		if p.Details != "" {
			pw.field(sh.ciphertext(rnd, scratch[:0], len(p.Details)), '\t')
		} else {
			pw.null('\t')
		}
		if p.GatewayRef != "" {
			pw.field([]byte(p.GatewayRef), '\t')
		} else {
			pw.null('\t')
		}
		if p.FailureReason != "" {
			pw.field([]byte(p.FailureReason), '\t')
		} else {
			pw.null('\t')
		}
		if p.CreatedAt.IsZero() {
			pw.field(nowB, '\n')
		} else {
			pw.field(loaddata.AppendDateTime(scratch[:0], p.CreatedAt), '\n')
		}
		pw.row()

		ew.field([]byte(p.PaymentID), '\t')
		ew.field([]byte(p.OrderID), '\t')
		ew.null('\t')
		ew.field([]byte(p.Status), '\t')
		ew.field([]byte("1"), '\t')
		ew.null('\n')
		ew.row()

		if p.Status == ledger.StatusSuccess {
			if _, ok := gained[p.OrderID]; !ok {
				touched = append(touched, p.OrderID)
			}
			gained[p.OrderID] += p.Amount
		}
	}, func() { pw.cut(); ew.cut() })
	pf, perr := pw.close()
	ef, eerr := ew.close()
	if err == nil {
		err = errors.Join(perr, eerr)
	}
	if err != nil {
		return nil, err
	}

	// The new figures of every order a SUCCESS payment paid into, in id
	// order as the import stages them: paid amount and status from the
	// order's amount. Orders with only PENDING or FAILED payments keep
	// their figures and are not written, by the import either.
	amounts := make(map[string]int64, len(gained))
	err = eachRecord(ordersPath, records.KindOrders, chunkRows, func(v []string) {
		o, fe := importer.ParseOrder(v)
		if fe != nil {
			return
		}
		if _, ok := gained[o.OrderID]; ok {
			if _, seen := amounts[o.OrderID]; !seen {
				amounts[o.OrderID] = o.Amount
			}
		}
	}, func() {})
	if err != nil {
		return nil, err
	}
	slices.Sort(touched)
	fgw, err := newFloorWriter(dir + "/floor-figures.tsv")
	if err != nil {
		return nil, err
	}
	for _, id := range touched {
		amount, ok := amounts[id]
		if !ok {
			fgw.close()
			return nil, fmt.Errorf("floor: payments of order %s, which %s does not hold", id, ordersPath)
		}
		status := ledger.OrderPending
		if gained[id] >= amount {
			status = ledger.OrderCompleted
		}
		fgw.field([]byte(id), '\t')
		fgw.field(strconv.AppendInt(scratch[:0], gained[id], 10), '\t')
		fgw.field([]byte(status), '\n')
		fgw.row()
	}
	ff, err := fgw.close()
	if err != nil {
		return nil, err
	}
	var ref [16]byte
	_, _ = rand.Read(ref[:])
	return &paymentsFloor{payments: pf, events: ef, figures: ff, reference: "import/" + hex.EncodeToString(ref[:])}, nil
}

// loadSpan runs one LOAD DATA of a span of ff into table inside tx and
// fails unless the server stored every row without a warning.
func loadSpan(ctx context.Context, tx *sqlx.Tx, f *os.File, buf *[]byte, sp span, table, columns string) error {
	*buf = slices.Grow((*buf)[:0], int(sp.n))[:sp.n]
	if _, err := f.ReadAt(*buf, sp.off); err != nil {
		return fmt.Errorf("floor: read %s: %w", f.Name(), err)
	}
	n, warnings, err := loaddata.Load(ctx, tx, *buf, table, columns)
	if err != nil {
		return fmt.Errorf("floor: load %s: %w", table, err)
	}
	if n != sp.rows || warnings != 0 {
		return fmt.Errorf("floor: load %s: stored %d of %d rows with %d warnings%s", table, n, sp.rows, warnings, firstWarning(ctx, tx))
	}
	return nil
}

// firstWarning is the statement's first warning, for the error.
func firstWarning(ctx context.Context, tx *sqlx.Tx) string {
	var w struct {
		Level   string `db:"Level"`
		Code    int    `db:"Code"`
		Message string `db:"Message"`
	}
	if err := tx.QueryRowxContext(ctx, "SHOW WARNINGS LIMIT 1").StructScan(&w); err != nil {
		return ""
	}
	return fmt.Sprintf(" (first: %d %s)", w.Code, w.Message)
}

// inStreams runs chunk(i) for every i < n on streams goroutines, taking
// chunks in order as the import's window does, and returns the wall time.
// Each stream has its own reused buffer.
func inStreams(ctx context.Context, streams, n int, chunk func(ctx context.Context, i int, buf *[]byte) error) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, streams)
	start := time.Now()
	for s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := chunk(ctx, i, &buf); err != nil {
					errs[s] = err
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// execAll runs statements in order.
func execAll(ctx context.Context, db sqlx.ExecerContext, stmts ...string) error {
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("floor: %s: %w", q, err)
		}
	}
	return nil
}

// loadOrdersFloor loads ff into a fresh empty copy of orders with streams
// streams and returns the time.
func loadOrdersFloor(ctx context.Context, db *sqlx.DB, ff *floorFile, streams int, now string) (time.Duration, error) {
	if err := execAll(ctx, db, dropFloorTables(floorOrders)...); err != nil {
		return 0, err
	}
	if err := execAll(ctx, db, "CREATE TABLE "+floorOrders+" LIKE orders"); err != nil {
		return 0, err
	}
	f, err := os.Open(ff.path)
	if err != nil {
		return 0, fmt.Errorf("floor: %w", err)
	}
	defer f.Close()
	cols := ordersFloorColumns(now)
	return inStreams(ctx, streams, len(ff.spans), func(ctx context.Context, i int, buf *[]byte) error {
		tx, err := db.BeginTxx(ctx, ledger.TxOptions())
		if err != nil {
			return fmt.Errorf("floor: begin: %w", err)
		}
		defer tx.Rollback()
		if err := loadSpan(ctx, tx, f, buf, ff.spans[i], floorOrders, cols); err != nil {
			return err
		}
		return tx.Commit()
	})
}

// dropFloorTables drops the named floor tables and every one that refers
// to them (payments' copy refers to orders').
func dropFloorTables(tables ...string) []string {
	stmts := []string{"DROP TABLE IF EXISTS " + floorPayments}
	for _, t := range tables {
		if t != floorPayments {
			stmts = append(stmts, "DROP TABLE IF EXISTS "+t)
		}
	}
	return stmts
}

// dropAllFloorTables removes every table the floor made.
func dropAllFloorTables(ctx context.Context, db *sqlx.DB) error {
	return execAll(ctx, db, dropFloorTables(floorPayments, floorEvents, floorFigures, floorOrders)...)
}

// loadPaymentsFloor loads the payments and their events into fresh empty
// copies of payments (with its foreign key, to the orders copy, which must
// hold the orders) and payment_events with streams streams, each chunk's
// payments and events in one transaction as the import writes them, and
// returns the time.
func loadPaymentsFloor(ctx context.Context, db *sqlx.DB, pf *paymentsFloor, streams int, now string) (time.Duration, error) {
	if err := execAll(ctx, db, "DROP TABLE IF EXISTS "+floorPayments, "DROP TABLE IF EXISTS "+floorEvents,
		"CREATE TABLE "+floorPayments+" LIKE payments",
		"ALTER TABLE "+floorPayments+" ADD CONSTRAINT fk_bench_floor_payments_order FOREIGN KEY (order_id) REFERENCES "+floorOrders+" (order_id)",
		"CREATE TABLE "+floorEvents+" LIKE payment_events"); err != nil {
		return 0, err
	}
	if len(pf.payments.spans) != len(pf.events.spans) {
		return 0, fmt.Errorf("floor: %d payments chunks but %d events chunks", len(pf.payments.spans), len(pf.events.spans))
	}
	pfile, err := os.Open(pf.payments.path)
	if err != nil {
		return 0, fmt.Errorf("floor: %w", err)
	}
	defer pfile.Close()
	efile, err := os.Open(pf.events.path)
	if err != nil {
		return 0, fmt.Errorf("floor: %w", err)
	}
	defer efile.Close()
	payCols := `(payment_id, order_id, payment_amount, currency, payment_status, payment_method, payment_details,
		gateway_ref, failure_reason, created_at) SET updated_at = '` + now + `'`
	// The reference is ours (hex), never input.
	evCols := `(payment_id, order_id, from_status, to_status, applied, note) SET source = 'import',
		reference = '` + pf.reference + `', created_at = '` + now + `'`
	return inStreams(ctx, streams, len(pf.payments.spans), func(ctx context.Context, i int, buf *[]byte) error {
		tx, err := db.BeginTxx(ctx, ledger.TxOptions())
		if err != nil {
			return fmt.Errorf("floor: begin: %w", err)
		}
		defer tx.Rollback()
		if err := loadSpan(ctx, tx, pfile, buf, pf.payments.spans[i], floorPayments, payCols); err != nil {
			return err
		}
		if err := loadSpan(ctx, tx, efile, buf, pf.events.spans[i], floorEvents, evCols); err != nil {
			return err
		}
		return tx.Commit()
	})
}

// updateOrdersFloor is the least SQL that brings the orders copy's figures
// to the import's end state: the new figures LOAD DATA'd into a staging
// table and one UPDATE joining it to the orders, in one transaction. The
// staging table is created before the clock starts.
func updateOrdersFloor(ctx context.Context, db *sqlx.DB, pf *paymentsFloor, now string) (time.Duration, error) {
	if err := execAll(ctx, db, "DROP TABLE IF EXISTS "+floorFigures,
		"CREATE TABLE "+floorFigures+" (order_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, "+
			"paid_amount BIGINT NOT NULL, order_status VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, "+
			"PRIMARY KEY (order_id)) ENGINE=InnoDB"); err != nil {
		return 0, err
	}
	f, err := os.Open(pf.figures.path)
	if err != nil {
		return 0, fmt.Errorf("floor: %w", err)
	}
	defer f.Close()
	start := time.Now()
	tx, err := db.BeginTxx(ctx, ledger.TxOptions())
	if err != nil {
		return 0, fmt.Errorf("floor: begin: %w", err)
	}
	defer tx.Rollback()
	var buf []byte
	for _, sp := range pf.figures.spans {
		if err := loadSpan(ctx, tx, f, &buf, sp, floorFigures, "(order_id, paid_amount, order_status)"); err != nil {
			return 0, err
		}
	}
	res, err := tx.ExecContext(ctx, "UPDATE "+floorFigures+" f STRAIGHT_JOIN "+floorOrders+" o FORCE INDEX (PRIMARY) ON o.order_id = f.order_id "+
		"SET o.paid_amount = f.paid_amount, o.order_status = f.order_status, o.updated_at = '"+now+"'")
	if err != nil {
		return 0, fmt.Errorf("floor: update orders: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, fmt.Errorf("floor: update orders: %w", err)
	} else if n != pf.figures.rows {
		return 0, fmt.Errorf("floor: updated %d of %d orders", n, pf.figures.rows)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("floor: commit: %w", err)
	}
	return time.Since(start), nil
}

// floorNow is the floor rows' updated_at, as the import sets it once per
// statement.
func floorNow() string {
	return string(loaddata.AppendDateTime(nil, time.Now().UTC().Truncate(time.Microsecond)))
}
