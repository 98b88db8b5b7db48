package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/importer"
)

// Run measures orders CSV, payments CSV and orders XML imports against
// their floor (see floor.go) and, for continuity, their plain LOAD DATA
// baselines, all in one run, and prints one line a file and a summary.
func Run(ctx context.Context, o Options) error {
	if o.RSSBytes > 0 {
		return runRSS(ctx, o)
	}
	if o.PaymentOrders > o.Orders {
		return fmt.Errorf("bench: payments over %d orders need at least as many orders, got %d", o.PaymentOrders, o.Orders)
	}
	out := o.Out
	ordersCSV := filepath.Join(o.Dir, "orders.csv")
	ordersXML := filepath.Join(o.Dir, "orders.xml")
	paymentsCSV := filepath.Join(o.Dir, "payments.csv")
	fmt.Fprintf(out, "generating %d orders (CSV and XML) and %d payments over %d orders in %s\n", o.Orders, o.Payments, o.PaymentOrders, o.Dir)
	for _, f := range []struct {
		path string
		opts gen.Options
	}{
		{ordersCSV, gen.Options{Kind: "orders", Count: o.Orders, Seed: 1}},
		{ordersXML, gen.Options{Kind: "orders", Format: "xml", Count: o.Orders, Seed: 1}},
		{paymentsCSV, gen.Options{Kind: "payments", Count: o.Payments, Orders: o.PaymentOrders, Seed: 1}},
	} {
		if _, err := WriteFile(f.path, f.opts); err != nil {
			return err
		}
	}
	s, err := StartStack(ctx, o)
	if err != nil {
		return err
	}
	defer s.Close()
	db := s.Deps.DB
	defer func() { _ = dropAllFloorTables(context.WithoutCancel(ctx), db) }()
	fmt.Fprintf(out, "stack up: database %s, chunk rows %d, parallelism %d; floor streams %v (the faster counts)\n",
		s.DBName, o.ChunkRows, o.Parallelism, FloorStreams)
	sh, err := shapeOf(s.Deps.Keys, s.Deps.BlindIndex)
	if err != nil {
		return err
	}
	now := floorNow()
	ordersFloorFile, err := buildOrdersFloor(ordersCSV, filepath.Join(o.Dir, "floor-orders.tsv"), o.ChunkRows, sh, now)
	if err != nil {
		return err
	}
	payFloor, err := buildPaymentsFloor(paymentsCSV, ordersCSV, o.Dir, o.ChunkRows, sh, now)
	if err != nil {
		return err
	}
	// What the idle stack (the embedded Temporal server's timers and
	// queues, the worker's long polls) burns: part of every import's
	// stack CPU that no row causes.
	c0 := s.sampleCPU()
	const idle = 3 * time.Second
	time.Sleep(idle)
	idleCPU := s.sampleCPU().since(c0)
	fmt.Fprintf(out, "idle stack: %.3f CPU-s a second (mysql %s CPU-s in %s)\n\n", idleCPU.service.Seconds()/idle.Seconds(), idleCPU.serverText(), idle)

	var results []*fileResult
	// orders.csv
	r := &fileResult{name: "orders.csv"}
	results = append(results, r)
	if r.base, r.baseCPU, err = s.baseline(ctx, ordersCSV, "baseline_orders", gen.Columns("orders")); err != nil {
		return err
	}
	if err := s.measure(ctx, r, ordersCSV); err != nil {
		return err
	}
	if err := s.ordersFloor(ctx, r, ordersFloorFile, now); err != nil {
		return err
	}
	r.print(out)
	ordersFloor := *r

	// payments.csv, over the orders just imported; its floor over the
	// orders floor's copy.
	r = &fileResult{name: "payments.csv"}
	results = append(results, r)
	if r.base, r.baseCPU, err = s.baseline(ctx, paymentsCSV, "baseline_payments", gen.Columns("payments")); err != nil {
		return err
	}
	if err := s.measure(ctx, r, paymentsCSV); err != nil {
		return err
	}
	if err := s.paymentsFloor(ctx, r, payFloor, now); err != nil {
		return err
	}
	r.print(out)
	if err := dropAllFloorTables(ctx, db); err != nil {
		return err
	}

	// orders.xml into empty tables again: the same rows as orders.csv, so
	// the same floor and baseline. One connection: FOREIGN_KEY_CHECKS is a
	// session setting.
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	for _, q := range []string{"SET FOREIGN_KEY_CHECKS = 0", "TRUNCATE payment_events", "TRUNCATE payments", "TRUNCATE orders", "SET FOREIGN_KEY_CHECKS = 1"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			conn.Close()
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	conn.Close()
	r = &fileResult{name: "orders.xml", base: ordersFloor.base, baseCPU: ordersFloor.baseCPU,
		floor: ordersFloor.floor, floorCPU: ordersFloor.floorCPU, floorNote: "orders.csv's: the same rows"}
	results = append(results, r)
	if err := s.measure(ctx, r, ordersXML); err != nil {
		return err
	}
	r.print(out)

	printSummary(out, results)
	rss, _ := PeakRSS()
	fmt.Fprintf(out, "\npeak RSS of this process (stack + benchmark): %d MiB\n", rss>>20)
	return nil
}

func runRSS(ctx context.Context, o Options) error {
	path := filepath.Join(o.Dir, "big-orders.csv")
	// About 95 bytes a row.
	rows := int(o.RSSBytes / 95)
	if _, err := WriteFile(path, gen.Options{Kind: "orders", Count: rows, Seed: 2}); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	s, err := StartStack(ctx, o)
	if err != nil {
		return err
	}
	defer s.Close()
	job, took, err := s.Import(ctx, path, "")
	if err != nil {
		return err
	}
	rss, err := PeakRSS()
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "imported %s (%d MiB, %d rows) in %.1fs (%.0f rows/s), state %s\n",
		filepath.Base(path), fi.Size()>>20, job.RowsRead, took.Seconds(), float64(job.RowsRead)/took.Seconds(), job.State)
	if s.worker != nil {
		wrss, err := peakRSSOf(s.worker.pid())
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "peak RSS: worker process %d MiB; this process (Temporal server, HTTP API, upload client) %d MiB\n", wrss>>20, rss>>20)
	} else {
		fmt.Fprintf(o.Out, "peak RSS of this process (Temporal server, worker, HTTP API, upload client): %d MiB\n", rss>>20)
	}
	if job.State != importer.StateCompleted {
		return fmt.Errorf("import %s", job.State)
	}
	return nil
}

// baseline runs Baseline for a CSV file, with the CPU it took.
func (s *Stack) baseline(ctx context.Context, path, table string, columns []string) (time.Duration, cpuSample, error) {
	c0 := s.sampleCPU()
	took, err := Baseline(ctx, s.Deps.DB, path, table, columns)
	return took, s.sampleCPU().since(c0), err
}

// fileResult is one file's figures.
type fileResult struct {
	name string
	job  importer.Job
	// imp is the import's wall time, upload to COMPLETED, and impCPU
	// what the stack and MySQL spent meanwhile.
	imp    time.Duration
	impCPU cpuSample
	// upload is the upload's share (received, hashed and staged, up to
	// the job's row); ph the workflow's phases, unless phErr.
	upload time.Duration
	start  time.Time
	ph     phases
	phErr  error
	// base is the plain LOAD DATA baseline.
	base    time.Duration
	baseCPU cpuSample
	// floor is the floor's time (its fastest streams), floorCPU what it
	// cost the benchmark process and MySQL.
	floor     time.Duration
	floorCPU  cpuSample
	floorNote string
}

// measure imports path into r.
func (s *Stack) measure(ctx context.Context, r *fileResult, path string) error {
	c0 := s.sampleCPU()
	r.start = time.Now()
	job, took, err := s.Import(ctx, path, "")
	if err != nil {
		return err
	}
	if job.State != importer.StateCompleted {
		return fmt.Errorf("%s import %s: %+v", r.name, job.State, job)
	}
	r.impCPU = s.sampleCPU().since(c0)
	r.imp, r.job = took, job
	r.upload = job.CreatedAt.Sub(r.start)
	r.ph, r.phErr = importPhases(ctx, s.Deps.Temporal, job.WorkflowID)
	return nil
}

// ordersFloor measures the orders floor with each of FloorStreams; the
// last one's table stays, as the payments floor's orders.
func (s *Stack) ordersFloor(ctx context.Context, r *fileResult, ff *floorFile, now string) error {
	var runs []string
	for _, n := range FloorStreams {
		c0 := s.sampleCPU()
		took, err := loadOrdersFloor(ctx, s.Deps.DB, ff, n, now)
		if err != nil {
			return err
		}
		cpu := s.sampleCPU().since(c0)
		runs = append(runs, fmt.Sprintf("%d streams %.2fs", n, took.Seconds()))
		if r.floor == 0 || took < r.floor {
			r.floor, r.floorCPU = took, cpu
		}
	}
	r.floorNote = fmt.Sprintf("%d rows: %s", ff.rows, strings.Join(runs, ", "))
	return nil
}

// paymentsFloor measures the payments floor: payments and events with
// each of FloorStreams (the faster counts), then the orders' figures.
func (s *Stack) paymentsFloor(ctx context.Context, r *fileResult, pf *paymentsFloor, now string) error {
	var runs []string
	var best time.Duration
	var bestCPU cpuSample
	for _, n := range FloorStreams {
		c0 := s.sampleCPU()
		took, err := loadPaymentsFloor(ctx, s.Deps.DB, pf, n, now)
		if err != nil {
			return err
		}
		cpu := s.sampleCPU().since(c0)
		runs = append(runs, fmt.Sprintf("%d streams %.2fs", n, took.Seconds()))
		if best == 0 || took < best {
			best, bestCPU = took, cpu
		}
	}
	c0 := s.sampleCPU()
	upd, err := updateOrdersFloor(ctx, s.Deps.DB, pf, now)
	if err != nil {
		return err
	}
	updCPU := s.sampleCPU().since(c0)
	r.floor = best + upd
	r.floorCPU = cpuSample{service: bestCPU.service + updCPU.service, server: bestCPU.server + updCPU.server,
		serverSeen: bestCPU.serverSeen && updCPU.serverSeen}
	r.floorNote = fmt.Sprintf("%d payments + %d events: %s; then %d orders' figures staged and UPDATEd %.2fs",
		pf.payments.rows, pf.events.rows, strings.Join(runs, ", "), pf.figures.rows, upd.Seconds())
	return nil
}

// before is the wall time from the upload's start to the first chunk's;
// after from the last chunk's end to the import seen COMPLETED.
func (r *fileResult) before() time.Duration { return r.ph.firstChunk.Sub(r.start) }
func (r *fileResult) after() time.Duration  { return r.start.Add(r.imp).Sub(r.ph.lastChunk) }

// perMillion is CPU seconds per million of the import's rows.
func (r *fileResult) perMillion(d time.Duration) float64 {
	return d.Seconds() / float64(max(r.job.RowsRead, 1)) * 1e6
}

func (r *fileResult) serverPerMillion(c cpuSample) string {
	if !c.serverSeen {
		return "n/a"
	}
	return strconv.FormatFloat(r.perMillion(c.server), 'f', 1, 64)
}

func (r *fileResult) print(out io.Writer) {
	j := r.job
	fmt.Fprintf(out, "%-13s import %.2fs, %d rows (%.0f rows/s; written %d, unchanged %d, rejected %d, chunks %d)\n",
		r.name, r.imp.Seconds(), j.RowsRead, float64(j.RowsRead)/r.imp.Seconds(), j.RowsWritten, j.RowsUnchanged, j.RowsRejected, j.ChunksTotal)
	fmt.Fprintf(out, "%-13s floor %.2fs (%s): import/floor %.2fx; plain baseline %.2fs: import/baseline %.2fx\n",
		"", r.floor.Seconds(), r.floorNote, r.imp.Seconds()/r.floor.Seconds(), r.base.Seconds(), r.imp.Seconds()/r.base.Seconds())
	fmt.Fprintf(out, "%-13s CPU-s: import stack %.1f + mysql %s; floor client %.1f + mysql %s; baseline client %.1f + mysql %s\n",
		"", r.impCPU.service.Seconds(), r.impCPU.serverText(), r.floorCPU.service.Seconds(), r.floorCPU.serverText(),
		r.baseCPU.service.Seconds(), r.baseCPU.serverText())
	if r.phErr != nil {
		fmt.Fprintf(out, "%-13s phases: %v\n", "", r.phErr)
	} else {
		fmt.Fprintf(out, "%-13s outside the chunks' window: %.2fs before the first (upload %.2fs, plan %.2fs, rest %.2fs), %.2fs after the last\n",
			"", r.before().Seconds(), r.upload.Seconds(), r.ph.planEnd.Sub(r.ph.planStart).Seconds(),
			(r.before() - r.upload - r.ph.planEnd.Sub(r.ph.planStart)).Seconds(), r.after().Seconds())
	}
	fmt.Fprintln(out)
}

// printSummary prints the goals' figures, one line a file.
func printSummary(out io.Writer, results []*fileResult) {
	fmt.Fprintf(out, "%-13s %9s %8s %8s %7s %8s %8s %8s %8s %8s %8s\n", "file", "rows", "import", "floor",
		"/floor", "/base", "stack/M", "mysql/M", "floor/M", "before", "after")
	for _, r := range results {
		before, after := "n/a", "n/a"
		if r.phErr == nil {
			before = fmt.Sprintf("%.2fs", r.before().Seconds())
			after = fmt.Sprintf("%.2fs", r.after().Seconds())
		}
		fmt.Fprintf(out, "%-13s %9d %7.2fs %7.2fs %6.2fx %7.2fx %8.1f %8s %8s %8s %8s\n", r.name, r.job.RowsRead,
			r.imp.Seconds(), r.floor.Seconds(), r.imp.Seconds()/r.floor.Seconds(), r.imp.Seconds()/r.base.Seconds(),
			r.perMillion(r.impCPU.service), r.serverPerMillion(r.impCPU), r.serverPerMillion(r.floorCPU), before, after)
	}
	fmt.Fprintln(out, "(/floor, /base: import time over the floor's and the plain baseline's; stack/M, mysql/M: the import's CPU-s per")
	fmt.Fprintln(out, " million rows, floor/M MySQL's for the floor; before, after: wall time before the first chunk starts and after")
	fmt.Fprintln(out, " the last one ends. Other processes on the machine make every figure noisy.)")
}
