package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/money"
)

// downloadColumns are the columns GET /download?type=orders reads, in its
// order; the dump selects the same ones from the plaintext copy.
const downloadColumns = "order_id, order_amount, currency, order_status, paid_amount, customer_email, customer_phone, created_at, updated_at"

// plainOrders is the plaintext copy of the orders table the dump reads.
const plainOrders = "bench_plain_orders"

// plainCopy loads the generated orders CSV at path into table: the orders
// table's download columns with the customer fields in plaintext, amounts
// in minor units and times as DATETIME(6), keyed by order_id like orders.
// It checks the table holds want rows and returns the load's time.
func (s *Stack) plainCopy(ctx context.Context, path, table string, want int) (time.Duration, error) {
	db := s.Deps.DB
	cur, _ := money.Lookup("USD") // gen's default currency
	scale := "1" + strings.Repeat("0", cur.Exponent)
	create := "CREATE TABLE " + table + ` (
		order_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
		order_amount BIGINT NOT NULL,
		currency CHAR(3) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
		order_status ENUM('PENDING', 'COMPLETED') NOT NULL,
		paid_amount BIGINT NOT NULL,
		customer_email VARCHAR(255) NULL,
		customer_phone VARCHAR(64) NULL,
		created_at DATETIME(6) NOT NULL,
		updated_at DATETIME(6) NOT NULL,
		PRIMARY KEY (order_id)
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`
	for _, q := range []string{"DROP TABLE IF EXISTS " + table, create} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return 0, fmt.Errorf("plain copy: %w", err)
		}
	}
	vars := make([]string, 0, 6)
	for _, c := range gen.Columns("orders") {
		vars = append(vars, "@"+c)
	}
	mysql.RegisterLocalFile(path)
	defer mysql.DeregisterLocalFile(path)
	q := "LOAD DATA LOCAL INFILE '" + path + "' INTO TABLE " + table +
		" FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n' IGNORE 1 LINES (" +
		strings.Join(vars, ", ") + ") SET order_id = @order_id," +
		" order_amount = CAST(CAST(@order_amount AS DECIMAL(30," + fmt.Sprint(cur.Exponent) + ")) * " + scale + " AS SIGNED)," +
		" currency = @currency, order_status = 'PENDING', paid_amount = 0," +
		" customer_email = NULLIF(@customer_email, ''), customer_phone = NULLIF(@customer_phone, '')," +
		" created_at = CAST(REPLACE(REPLACE(@created_at, 'T', ' '), 'Z', '') AS DATETIME(6)), updated_at = NOW(6)"
	start := time.Now()
	if _, err := db.ExecContext(ctx, q); err != nil {
		return 0, fmt.Errorf("plain copy of %s: %w", path, err)
	}
	took := time.Since(start)
	var n int
	if err := db.GetContext(ctx, &n, "SELECT COUNT(*) FROM "+table); err != nil {
		return 0, fmt.Errorf("plain copy: count: %w", err)
	}
	if n != want {
		return 0, fmt.Errorf("plain copy %s holds %d rows, want %d", table, n, want)
	}
	return took, nil
}

// transfer is one measured read of the whole table into a file.
type transfer struct {
	took  time.Duration
	bytes int64
	rows  int64 // lines after the header
	// CPU seconds: the reading client, the process serving it (the API;
	// none for the dump) and the MySQL server.
	client, serve, mysql time.Duration
	mysqlSeen            bool
}

// dump runs the mariadb (or mysql) client over table into the file out:
// `--batch --raw -e "SELECT <download columns> … ORDER BY order_id"`, with
// host, port, user and database from the stack's DSN and its password, if
// any, in MYSQL_PWD. The client's CPU is its rusage.
func (s *Stack) dump(ctx context.Context, table, out string) (transfer, error) {
	cfg, err := database.Config(s.Config.MySQLDSN)
	if err != nil {
		return transfer{}, err
	}
	bin, err := exec.LookPath("mariadb")
	if err != nil {
		if bin, err = exec.LookPath("mysql"); err != nil {
			return transfer{}, errors.New("dump: neither mariadb nor mysql client on PATH")
		}
	}
	args := []string{"--batch", "--raw"}
	if cfg.Net == "unix" {
		args = append(args, "--socket="+cfg.Addr)
	} else {
		host, port, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			return transfer{}, fmt.Errorf("dump: MySQL address: %w", err)
		}
		args = append(args, "--host="+host, "--port="+port, "--protocol=TCP")
	}
	if cfg.User != "" {
		args = append(args, "--user="+cfg.User)
	}
	args = append(args, "-e", "SELECT "+downloadColumns+" FROM "+table+" ORDER BY order_id", s.DBName)
	f, err := os.Create(out)
	if err != nil {
		return transfer{}, err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = os.Environ()
	if cfg.Passwd != "" {
		cmd.Env = append(cmd.Env, "MYSQL_PWD="+cfg.Passwd)
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = f, &stderr
	m0, seen0 := s.mysqlCPU()
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return transfer{}, fmt.Errorf("dump %s: %w: %s", table, err, bytes.TrimSpace(stderr.Bytes()))
	}
	t := transfer{took: time.Since(start), client: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	m1, seen1 := s.mysqlCPU()
	t.mysql, t.mysqlSeen = m1-m0, seen0 && seen1
	return t, t.count(out)
}

// mysqlCPU is the local MySQL server's CPU time so far.
func (s *Stack) mysqlCPU() (time.Duration, bool) {
	if s.serverPID == "" {
		return 0, false
	}
	return procCPU(s.serverPID)
}

// count sets t's bytes and rows from the file at path, which must end
// with a newline (a complete last line).
func (t *transfer) count(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	buf := make([]byte, 1<<20)
	var lines, size int64
	var last byte
	for {
		n, err := r.Read(buf)
		if n > 0 {
			lines += int64(bytes.Count(buf[:n], []byte{'\n'}))
			size += int64(n)
			last = buf[n-1]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("count %s: %w", path, err)
		}
	}
	if size > 0 && last != '\n' {
		return fmt.Errorf("%s does not end with a newline: a short file", path)
	}
	t.bytes, t.rows = size, max(lines-1, 0)
	return nil
}

// sameFile reports whether the files at a and b hold the same bytes, and
// where they first differ when not.
func sameFile(a, b string) (bool, int64, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, 0, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, 0, err
	}
	defer fb.Close()
	ra, rb := bufio.NewReaderSize(fa, 1<<20), bufio.NewReaderSize(fb, 1<<20)
	bufA, bufB := make([]byte, 1<<20), make([]byte, 1<<20)
	var off int64
	for {
		na, errA := io.ReadFull(ra, bufA)
		nb, errB := io.ReadFull(rb, bufB)
		if errA != nil && errA != io.EOF && errA != io.ErrUnexpectedEOF {
			return false, 0, errA
		}
		if errB != nil && errB != io.EOF && errB != io.ErrUnexpectedEOF {
			return false, 0, errB
		}
		if i := firstDiff(bufA[:na], bufB[:nb]); i >= 0 {
			return false, off + int64(i), nil
		}
		if na < len(bufA) || nb < len(bufB) {
			return true, 0, nil
		}
		off += int64(na)
	}
}

// firstDiff is the index of the first byte where a and b differ (the
// shorter one's length when one is a prefix of the other), or -1.
func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	if bytes.Equal(a[:n], b[:n]) {
		if len(a) == len(b) {
			return -1
		}
		return n
	}
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
