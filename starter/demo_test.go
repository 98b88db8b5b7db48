package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/devserver"
	"github.com/acme/payments/internal/gen"
)

// The README's demo (Quick start and Commands), command by command, as the
// built starter against `starter dev` on free ports, a fresh database and a
// fresh data dir: gen, import --follow, gen payments --orders-file, import,
// imports, rejects, order, pay, export. The counts are the README's over
// ten with its bad rates, and chunks of 1000 rows so the files have several.
// Then an import that fails on its max_rejects is retried with a higher one.
func TestREADMEDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	bin := buildStarter(t)
	ports, err := devserver.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PAYMENTS_DATA_DIR=" + t.TempDir(),
		"PAYMENTS_MYSQL_DSN=" + dbtest.DSN(t),
		fmt.Sprintf("TEMPORAL_ADDRESS=127.0.0.1:%d", ports[0]),
		fmt.Sprintf("PAYMENTS_HTTP_ADDR=127.0.0.1:%d", ports[1]),
		fmt.Sprintf("PAYMENTS_UI_ADDR=127.0.0.1:%d", ports[2]),
		"PAYMENTS_KEYS=", "PAYMENTS_KEYS_FILE=", "PAYMENTS_BLIND_INDEX_KEY=", "PAYMENTS_API_TOKENS=",
		"PAYMENTS_IMPORT_CHUNK_ROWS=1000",
	}
	p := startDev(t, bin, env)
	waitReady(t, p, fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1]))

	dir := t.TempDir()
	run := func(want int, args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Dir = dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != want {
			t.Fatalf("starter %s: exit %d, want %d\nstdout %.2000s\nstderr %.2000s", strings.Join(args, " "), code, want, stdout.String(), stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	job := func(stdout string) map[string]any {
		t.Helper()
		var j map[string]any
		if err := json.Unmarshal([]byte(stdout), &j); err != nil {
			t.Fatalf("stdout is not one JSON job: %v\n%s", err, stdout)
		}
		return j
	}
	expect := func(j map[string]any, field string, want any) {
		t.Helper()
		if fmt.Sprint(j[field]) != fmt.Sprint(want) {
			t.Fatalf("%s = %v, want %v (job %v)", field, j[field], want, j)
		}
	}

	// gen orders: exactly the bad rows asked for, said in words.
	_, stderr := run(0, "gen", "orders", "--count", "10000", "--bad-rate", "0.005", "-o", "orders.csv")
	if !strings.Contains(stderr, "wrote 10000 orders rows to orders.csv") || !strings.Contains(stderr, "50 of them deliberately bad") || strings.Contains(stderr, "map[") {
		t.Fatalf("gen orders: %s", stderr)
	}
	stdout, stderr := run(0, "import", "orders.csv", "--follow")
	orders := job(stdout)
	expect(orders, "state", "COMPLETED")
	expect(orders, "rows_rejected", 50)
	expect(orders, "rows_written", 9950)
	expect(orders, "chunks_done", 10)
	if !strings.Contains(stderr, "import "+orders["import_id"].(string)+" started") {
		t.Fatalf("import stderr: %s", stderr)
	}

	// gen payments for the orders file: every payment has its order.
	_, stderr = run(0, "gen", "payments", "--count", "20000", "--orders-file", "orders.csv", "--bad-rate", "0.002", "-o", "payments.csv")
	if !regexp.MustCompile(`they pay the 99\d\d orders of orders.csv an import stores`).MatchString(stderr) || !strings.Contains(stderr, "40 of them deliberately bad") {
		t.Fatalf("gen payments: %s", stderr)
	}
	of, err := gen.ReadOrdersFile(filepath.Join(dir, "orders.csv"))
	if err != nil {
		t.Fatal(err)
	}
	first := of.Orders[0].ID
	// A live payment on an imported order, before its bulk payments.
	stdout, _ = run(0, "order", first)
	if !strings.Contains(stdout, `"order_status": "PENDING"`) {
		t.Fatalf("order %s: %s", first, stdout)
	}
	stdout, _ = run(0, "pay", first, "--amount", "1.00", "--method", "CARD", "--payment-id", "DEMO-1")
	if strings.TrimSpace(stdout) != "payment DEMO-1 for order "+first+": PENDING" {
		t.Fatalf("pay: %q", stdout)
	}

	stdout, _ = run(0, "import", "payments.csv", "--follow")
	payments := job(stdout)
	expect(payments, "state", "COMPLETED")
	expect(payments, "rows_rejected", 40)
	expect(payments, "rows_written", 19960)

	stdout, _ = run(0, "imports")
	if strings.Count(stdout, "COMPLETED") != 2 || !strings.Contains(stdout, orders["import_id"].(string)) {
		t.Fatalf("imports: %s", stdout)
	}
	run(0, "imports", payments["import_id"].(string))

	// rejects: the reasons, on stdout or into a file.
	stdout, _ = run(0, "rejects", orders["import_id"].(string))
	recs, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	if err != nil || len(recs) != 51 || strings.Join(recs[0], ",") != "line,record,code,message" {
		t.Fatalf("rejects: %v %d rows\n%.500s", err, len(recs), stdout)
	}
	codes := map[string]bool{}
	for _, r := range recs[1:] {
		codes[r[2]] = true
	}
	for _, c := range []string{"MISSING_FIELD", "BAD_AMOUNT", "BAD_CURRENCY", "BAD_DATE", "DUPLICATE_CONFLICT"} {
		if !codes[c] {
			t.Errorf("no %s among the rejects: %v", c, codes)
		}
	}
	_, stderr = run(0, "rejects", payments["import_id"].(string), "-o", "payment-rejects.csv")
	if b, err := os.ReadFile(filepath.Join(dir, "payment-rejects.csv")); err != nil || bytes.Count(b, []byte("\n")) != 41 || !strings.Contains(stderr, "wrote the 40 rejected rows") {
		t.Fatalf("rejects -o: %v %q %s", err, b, stderr)
	}
	if strings.Contains(string(stdout), "ORDER_NOT_FOUND") {
		t.Fatal("orders rejects hold ORDER_NOT_FOUND")
	}
	run(2, "rejects")
	run(1, "rejects", "no-such-import")

	// The README's exports.
	_, stderr = run(0, "export", "--type", "orders", "--format", "csv", "--pii", "-o", "orders-export.csv")
	if fi, err := os.Stat(filepath.Join(dir, "orders-export.csv")); err != nil || fi.Size() == 0 {
		t.Fatalf("export: %v %s", err, stderr)
	}
	run(0, "export", "--type", "payments", "--format", "json", "--status", "FAILED", "--from", "2026-01-01", "--to", "2026-01-31", "-o", "failed.json")

	// An import that fails on its limit says how to go on, and is retried
	// with a higher one without its file. The XML of the same orders:
	// every good row is unchanged, the bad ones rejected again.
	run(0, "gen", "orders", "--count", "10000", "--bad-rate", "0.005", "--format", "xml", "-o", "orders.xml")
	stdout, stderr = run(1, "import", "orders.xml", "--max-rejects", "10", "--wait")
	failed := job(stdout)
	id := failed["import_id"].(string)
	expect(failed, "state", "FAILED")
	msg := regexp.MustCompile(`max_rejects exceeded: (\d+) rows rejected, the limit is 10; stopped after (\d+) of 10 chunks`).FindStringSubmatch(fmt.Sprint(failed["error"]))
	if msg == nil || msg[1] != fmt.Sprint(failed["rows_rejected"]) || msg[2] != fmt.Sprint(failed["chunks_done"]) {
		t.Fatalf("the failure's message does not count what its job counts: %v", failed)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, "starter rejects "+id) || !strings.Contains(last, "starter import --retry "+id) {
		t.Fatalf("failed import's stderr: %s", stderr)
	}
	_, stderr = run(0, "import", "orders.xml", "--max-rejects", "10")
	if !strings.Contains(stderr, "already exists (FAILED)") || !strings.Contains(stderr, "--retry "+id) {
		t.Fatalf("the same import again: %s", stderr)
	}
	run(0, "rejects", id)
	_, stderr = run(1, "import", "--retry", id, "--wait")
	if !strings.Contains(stderr, "higher max_rejects") {
		t.Fatalf("retry with the same limit: %s", stderr)
	}
	run(2, "import", "--retry", id, "orders.xml")
	stdout, stderr = run(0, "import", "--retry", id, "--max-rejects", "1000", "--follow")
	retried := job(stdout)
	expect(retried, "state", "COMPLETED")
	expect(retried, "rows_written", 0)
	expect(retried, "rows_unchanged", 9950)
	expect(retried, "rows_rejected", 50)
	if retried["import_id"] == id || !strings.Contains(stderr, "the file of import "+id+" again, with max_rejects 1000") {
		t.Fatalf("retry: %v\n%s", retried, stderr)
	}
	stdout, _ = run(0, "imports", "--state", "FAILED")
	if !strings.Contains(stdout, id) || strings.Contains(stdout, "COMPLETED") {
		t.Fatalf("imports --state FAILED: %s", stdout)
	}
	p.stop(t)
}
