package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/importer"
)

// Run measures orders CSV, payments CSV and orders XML imports against
// their LOAD DATA baselines and prints one table.
func Run(ctx context.Context, o Options) error {
	if o.RSSBytes > 0 {
		return runRSS(ctx, o)
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
	fmt.Fprintf(out, "stack up: database %s, chunk rows %d, parallelism %d\n\n", s.DBName, o.ChunkRows, o.Parallelism)
	fmt.Fprintf(out, "%-22s %9s %12s %12s %12s %8s\n", "file", "rows", "baseline", "import", "import rows/s", "ratio")

	ordersBase, ordersBaseCPU, err := s.baseline(ctx, ordersCSV, "baseline_orders", gen.Columns("orders"))
	if err != nil {
		return err
	}
	if err := s.measure(ctx, out, "orders.csv", ordersCSV, ordersBase, ordersBaseCPU); err != nil {
		return err
	}
	if err := reportTableFloor(ctx, out, db, ordersBase, []string{"orders"}, "idx_orders_email_bidx"); err != nil {
		return err
	}

	base, baseCPU, err := s.baseline(ctx, paymentsCSV, "baseline_payments", gen.Columns("payments"))
	if err != nil {
		return err
	}
	if err := s.measure(ctx, out, "payments.csv", paymentsCSV, base, baseCPU); err != nil {
		return err
	}
	if err := reportTableFloor(ctx, out, db, base, []string{"payments", "payment_events"}, "uq_payments_gateway_ref"); err != nil {
		return err
	}

	// XML orders into empty tables again, against the CSV baseline. One
	// connection: FOREIGN_KEY_CHECKS is a session setting.
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
	if err := s.measure(ctx, out, "orders.xml vs csv base", ordersXML, ordersBase, ordersBaseCPU); err != nil {
		return err
	}
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

// reportTableFloor prints how long the server alone takes to store rows the
// import stored: INSERT … SELECT into an empty copy of each table (CREATE
// TABLE … LIKE: same columns and indexes, no foreign keys), with no
// parsing, network, encryption or other statements. Single-threaded, like
// the baseline. A copy without dropIndex (when set) shows that index's
// share.
func reportTableFloor(ctx context.Context, out io.Writer, db *sqlx.DB, base time.Duration, tables []string, dropIndex string) error {
	floor := func(table, drop string) (time.Duration, error) {
		stmts := []string{"DROP TABLE IF EXISTS bench_floor", "CREATE TABLE bench_floor LIKE " + table}
		if drop != "" {
			stmts = append(stmts, "ALTER TABLE bench_floor DROP INDEX "+drop)
		}
		for _, q := range stmts {
			if _, err := db.ExecContext(ctx, q); err != nil {
				return 0, fmt.Errorf("table floor: %s: %w", q, err)
			}
		}
		start := time.Now()
		if _, err := db.ExecContext(ctx, "INSERT INTO bench_floor SELECT * FROM "+table); err != nil {
			return 0, fmt.Errorf("table floor %s: %w", table, err)
		}
		took := time.Since(start)
		_, err := db.ExecContext(ctx, "DROP TABLE bench_floor")
		return took, err
	}
	var parts []string
	var total time.Duration
	for _, table := range tables {
		took, err := floor(table, "")
		if err != nil {
			return err
		}
		total += took
		parts = append(parts, fmt.Sprintf("%s %.2fs", table, took.Seconds()))
	}
	line := fmt.Sprintf("server alone storing these rows (INSERT … SELECT into empty copies): %s = %.2fx",
		strings.Join(parts, " + "), total.Seconds()/base.Seconds())
	if dropIndex != "" {
		took, err := floor(tables[0], dropIndex)
		if err != nil {
			return err
		}
		line += fmt.Sprintf("; without %s %.2fs", dropIndex, took.Seconds())
	}
	fmt.Fprintf(out, "%-22s %s\n", "", line)
	return nil
}

// baseline runs Baseline for a CSV file, with the CPU it took.
func (s *Stack) baseline(ctx context.Context, path, table string, columns []string) (time.Duration, cpuSample, error) {
	c0 := s.sampleCPU()
	took, err := Baseline(ctx, s.Deps.DB, path, table, columns)
	return took, s.sampleCPU().since(c0), err
}

// measure imports path and prints its line against the baseline's.
func (s *Stack) measure(ctx context.Context, out io.Writer, name, path string, base time.Duration, baseCPU cpuSample) error {
	c0 := s.sampleCPU()
	job, took, err := s.Import(ctx, path, "")
	if err != nil {
		return err
	}
	if job.State != importer.StateCompleted {
		return fmt.Errorf("%s import %s: %+v", name, job.State, job)
	}
	cpu := s.sampleCPU().since(c0)
	fmt.Fprintf(out, "%-22s %9d %11.2fs %11.2fs %12.0f %7.2fx   (written %d, rejected %d, chunks %d)\n"+
		"%-22s cpu seconds: baseline client %.1f + mysql %s; import stack %.1f + mysql %s\n",
		name, job.RowsRead, base.Seconds(), took.Seconds(), float64(job.RowsRead)/took.Seconds(), took.Seconds()/base.Seconds(),
		job.RowsWritten, job.RowsRejected, job.ChunksTotal,
		"", baseCPU.service.Seconds(), baseCPU.serverText(), cpu.service.Seconds(), cpu.serverText())
	return nil
}
