package export_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/export"
	"github.com/acme/payments/internal/loaddata"
	"github.com/acme/payments/internal/orders"
	"github.com/acme/payments/internal/records"
	"github.com/acme/payments/internal/stacktest"
)

const benchRows = 200_000

// fillOrders stores n sealed orders, and the same rows in plaintext in
// plain_orders, the copy a dump of the same columns reads.
func fillOrders(b testing.TB, db *sqlx.DB, keys *encryption.Keyring, n int) {
	b.Helper()
	bi, err := encryption.ParseBlindIndexKey(stacktest.TestBlindIndexKey)
	if err != nil {
		b.Fatal(err)
	}
	s := orders.Sealer{Keys: keys, BlindIndex: bi}
	var sealed, plain bytes.Buffer
	var sl orders.Sealed
	for i := range n {
		o := orders.NewOrder{OrderID: fmt.Sprintf("ORD-%08d", i), Amount: int64(1000 + i%90000), Currency: "USD",
			CustomerEmail: fmt.Sprintf("customer.%d@example.com", i%70000), CustomerPhone: fmt.Sprintf("+1555%07d", i)}
		if err := s.Seal(&sl, o); err != nil {
			b.Fatal(err)
		}
		created := []byte("2026-01-02 03:04:05")
		for _, w := range []struct {
			buf          *bytes.Buffer
			email, phone []byte
		}{{&sealed, sl.Email, sl.Phone}, {&plain, []byte(o.CustomerEmail), []byte(o.CustomerPhone)}} {
			loaddata.Field(w.buf, []byte(o.OrderID), '\t')
			loaddata.Field(w.buf, fmt.Appendf(nil, "%d", o.Amount), '\t')
			loaddata.Field(w.buf, []byte("USD"), '\t')
			loaddata.Field(w.buf, w.email, '\t')
			loaddata.Field(w.buf, w.phone, '\t')
			loaddata.Field(w.buf, created, '\n')
		}
	}
	ctx := context.Background()
	if _, err := db.Exec(`CREATE TABLE plain_orders (order_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
		order_amount BIGINT NOT NULL, currency CHAR(3) NOT NULL, order_status ENUM('PENDING','COMPLETED') NOT NULL DEFAULT 'PENDING',
		paid_amount BIGINT NOT NULL DEFAULT 0, customer_email VARCHAR(254), customer_phone VARCHAR(32),
		created_at DATETIME(6) NOT NULL, updated_at DATETIME(6) NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	for table, data := range map[string][]byte{"orders": sealed.Bytes(), "plain_orders": plain.Bytes()} {
		rows, _, err := loaddata.Load(ctx, tx, data, table, "(order_id, order_amount, currency, customer_email, customer_phone, created_at) SET updated_at = created_at")
		if err != nil || rows != int64(n) {
			b.Fatalf("load %s: %d rows, %v", table, rows, err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDownloadOrdersCSV reads benchRows orders as a pii CSV download
// does (keyset pages, two fields decrypted a row) into io.Discard, and
// reports it against a dump of the same columns of a plaintext copy by the
// mariadb client, measured in the same run: rows/s of both and their ratio,
// and CPU seconds of this process and of the dump's client.
func BenchmarkDownloadOrdersCSV(b *testing.B) {
	db, text := dbtest.NewWithText(b)
	keys, err := encryption.ParseKeys(stacktest.TestKeys)
	if err != nil {
		b.Fatal(err)
	}
	fillOrders(b, db, keys, benchRows)
	dumpWall, dumpCPU := dump(b, db)
	p := export.Params{Kind: records.KindOrders, Format: export.FormatCSV, PII: true}
	for _, pageRows := range []int{export.DefaultPageRows / 4, export.DefaultPageRows} {
		b.Run(fmt.Sprintf("page=%d", pageRows), func(b *testing.B) {
			x := &export.Exporter{DB: text, Keys: keys, PageRows: pageRows}
			cpu0 := processCPU()
			b.ResetTimer()
			for range b.N {
				w, err := x.WriteRecords(context.Background(), io.Discard, p, export.Range{})
				if err != nil || w.Rows != benchRows {
					b.Fatalf("%d rows, %v", w.Rows, err)
				}
			}
			b.StopTimer()
			per := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(benchRows)/per.Seconds(), "rows/s")
			b.ReportMetric(float64(benchRows)/dumpWall.Seconds(), "dump-rows/s")
			b.ReportMetric(per.Seconds()/dumpWall.Seconds(), "x-dump")
			b.ReportMetric((processCPU()-cpu0).Seconds()/float64(b.N), "cpu-s")
			b.ReportMetric(dumpCPU.Seconds(), "dump-client-cpu-s")
		})
	}
}

// dump runs the mariadb client over the plaintext copy into /dev/null.
func dump(b *testing.B, db *sqlx.DB) (wall, clientCPU time.Duration) {
	b.Helper()
	var name string
	if err := db.Get(&name, "SELECT DATABASE()"); err != nil {
		b.Fatal(err)
	}
	cfg, err := database.Config(dbtest.ServerDSN())
	if err != nil {
		b.Fatal(err)
	}
	host, port := "127.0.0.1", "3306"
	if h, p, ok := cutHostPort(cfg); ok {
		host, port = h, p
	}
	cmd := exec.Command("mariadb", "--batch", "--raw", "-h", host, "-P", port, "-u", cfg.User, name, "-e",
		"SELECT order_id, order_amount, currency, order_status, paid_amount, customer_email, customer_phone, created_at, updated_at FROM plain_orders ORDER BY order_id")
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+cfg.Passwd)
	cmd.Stdout = io.Discard
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Skipf("mariadb client: %v", err)
	}
	wall = time.Since(start)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		clientCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return wall, clientCPU
}

func cutHostPort(cfg *mysql.Config) (string, string, bool) {
	for i := len(cfg.Addr) - 1; i >= 0; i-- {
		if cfg.Addr[i] == ':' {
			return cfg.Addr[:i], cfg.Addr[i+1:], true
		}
	}
	return "", "", false
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
