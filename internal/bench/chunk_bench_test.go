package bench

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/records"
	"github.com/acme/payments/internal/stacktest"
)

// BenchmarkOrdersCSVChunk is one orders.csv chunk of 25,000 rows as the
// worker's chunk activity runs it (read, parse, validate, encrypt, escape,
// LOAD DATA through the driver, the chunk ledger and job counters) on the
// real server, without Temporal or the upload: the stack's CPU per row on
// the orders path. It reports this process's and MySQL's CPU per row
// (the whole server's: other clients of it count too); profile it with
// -cpuprofile to see where the stack's goes.
func BenchmarkOrdersCSVChunk(b *testing.B) {
	ctx := context.Background()
	db := dbtest.New(b)
	keys, err := encryption.ParseKeys(stacktest.TestKeys)
	if err != nil {
		b.Fatal(err)
	}
	bidx, err := encryption.ParseBlindIndexKey(stacktest.TestBlindIndexKey)
	if err != nil {
		b.Fatal(err)
	}
	im := &importer.Importer{DB: db, Keys: keys, BlindIndex: bidx, Ledger: &ledger.Ledger{DB: db, Keys: keys}}
	const rows = 25_000
	var data bytes.Buffer
	if _, err := gen.Write(&data, gen.Options{Kind: "orders", Count: rows, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	plan, err := records.PlanChunks(bytes.NewReader(data.Bytes()), "", rows, records.Limits{})
	if err != nil || len(plan.Chunks) != 1 {
		b.Fatalf("plan: %v, %d chunks", err, len(plan.Chunks))
	}
	c := plan.Chunks[0]
	server := findServer()
	var self, mysqlCPU time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		// Empty orders (payments' foreign key needs the session setting).
		conn, err := db.Conn(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := execAll(ctx, conn, "SET FOREIGN_KEY_CHECKS = 0", "TRUNCATE orders", "SET FOREIGN_KEY_CHECKS = 1"); err != nil {
			b.Fatal(err)
		}
		conn.Close()
		id := fmt.Sprintf("bench-chunk-%d", i)
		if _, _, err := importer.CreateJob(ctx, db, importer.Job{ImportID: id, WorkflowID: "import/" + id, BlobKey: "k",
			ContentSHA256: "x", MaxRejects: 100}); err != nil {
			b.Fatal(err)
		}
		s0, m0 := selfCPU(), serverCPU(server)
		b.StartTimer()
		res, err := im.ImportChunk(ctx, importer.ChunkSpec{ImportID: id, Kind: plan.Kind, Format: plan.Format, Header: plan.Header, Chunk: c},
			bytes.NewReader(data.Bytes()[c.Start:c.End]), func() {})
		b.StopTimer()
		self += selfCPU() - s0
		mysqlCPU += serverCPU(server) - m0
		if err != nil || res.RowsWritten != rows {
			b.Fatalf("chunk: %+v, %v", res, err)
		}
		b.StartTimer()
	}
	n := float64(b.N * rows)
	b.ReportMetric(float64(self.Microseconds())/n, "stack-cpu-µs/row")
	if server != "" {
		b.ReportMetric(float64(mysqlCPU.Microseconds())/n, "mysql-cpu-µs/row")
	}
}

// serverCPU is the local MySQL server's CPU time, 0 without one.
func serverCPU(pid string) time.Duration {
	if pid == "" {
		return 0
	}
	d, _ := procCPU(pid)
	return d
}
