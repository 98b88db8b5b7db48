package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/devserver"
	"github.com/acme/payments/internal/stacktest"
)

// runStarter runs the binary to its end and returns its exit code and
// stderr.
func runExit(t *testing.T, bin string, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	}
	t.Fatal(err)
	return 0, ""
}

func lines(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// A port of `starter dev` already in use — the Temporal frontend's, the
// UI's or the HTTP API's — is one line naming the address, exit 1, and
// nothing written to the data dir (no keys, no token).
func TestDevPortInUseIsOneLineAndWritesNothing(t *testing.T) {
	bin := buildStarter(t)
	for _, taken := range []string{"TEMPORAL_ADDRESS", "PAYMENTS_UI_ADDR", "PAYMENTS_HTTP_ADDR"} {
		t.Run(taken, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			ports, err := devserver.FreePorts(3)
			if err != nil {
				t.Fatal(err)
			}
			addrs := map[string]string{}
			for i, v := range []string{"TEMPORAL_ADDRESS", "PAYMENTS_UI_ADDR", "PAYMENTS_HTTP_ADDR"} {
				addrs[v] = fmt.Sprintf("127.0.0.1:%d", ports[i])
			}
			addrs[taken] = ln.Addr().String()
			dataDir := filepath.Join(t.TempDir(), "data")
			env := []string{"PAYMENTS_DATA_DIR=" + dataDir, "PAYMENTS_MYSQL_DSN=" + dbtest.DSN(t),
				"PAYMENTS_KEYS=", "PAYMENTS_KEYS_FILE=", "PAYMENTS_BLIND_INDEX_KEY=", "PAYMENTS_API_TOKENS="}
			for k, v := range addrs {
				env = append(env, k+"="+v)
			}
			code, stderr := runExit(t, bin, env, "dev")
			if code != 1 || len(lines(stderr)) != 1 || !strings.Contains(stderr, ln.Addr().String()) || !strings.Contains(stderr, taken) {
				t.Fatalf("exit %d, stderr (%d lines):\n%s\nwant exit 1 and one line naming %s and %s", code, len(lines(stderr)), stderr, ln.Addr(), taken)
			}
			if entries, err := os.ReadDir(dataDir); err == nil && len(entries) > 0 {
				t.Fatalf("data dir written before the port check: %v", entries)
			} else if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
		})
	}
}

// A Temporal that cannot be reached fails a command with one line naming
// the address (not a minute of retries and warnings); commands that need
// only MySQL do not dial it at all.
func TestUnreachableTemporal(t *testing.T) {
	bin := buildStarter(t)
	dsn := dbtest.DSN(t)
	ctx := context.Background()
	if err := database.Create(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	db, err := database.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := database.Migrate(ctx, db, nil); err != nil {
		t.Fatal(err)
	}
	// A port nothing listens on: taken, then released.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	env := []string{"PAYMENTS_MYSQL_DSN=" + dsn, "TEMPORAL_ADDRESS=" + closed, "PAYMENTS_DATA_DIR=" + dir,
		"PAYMENTS_KEYS=" + stacktest.TestKeys, "PAYMENTS_BLIND_INDEX_KEY=" + stacktest.TestBlindIndexKey, "PAYMENTS_KEYS_FILE="}
	file := filepath.Join(dir, "orders.csv")
	if err := os.WriteFile(file, []byte("order_id,order_amount,customer_email\nU1,1.00,u@example.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, args := range [][]string{{"import", file}, {"pay", "U1", "--amount", "1.00", "--method", "CARD"}} {
		code, stderr := runExit(t, bin, env, args...)
		if code != 1 || len(lines(stderr)) != 1 || !strings.Contains(stderr, closed) || !strings.Contains(stderr, "Temporal") {
			t.Errorf("%v: exit %d, stderr (%d lines):\n%s\nwant exit 1 and one line naming Temporal at %s", args, code, len(lines(stderr)), stderr, closed)
		}
	}
	// MySQL only: they answer as if Temporal were up.
	if code, stderr := runExit(t, bin, env, "imports"); code != 0 || stderr != "" {
		t.Errorf("imports: exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	if code, stderr := runExit(t, bin, env, "rejects", "NOPE"); code != 1 || strings.Contains(stderr, "Temporal") || strings.Contains(stderr, closed) {
		t.Errorf("rejects NOPE: exit %d, stderr %q; want 1 for a missing import, not a Temporal error", code, stderr)
	}
	if code, stderr := runExit(t, bin, env, "order", "NOPE"); code != 1 || strings.Contains(stderr, "Temporal") || strings.Contains(stderr, closed) {
		t.Errorf("order NOPE: exit %d, stderr %q; want 1 for a missing order, not a Temporal error", code, stderr)
	}
}

// Ctrl-C stops `starter dev` cleanly: exit 0 and not one WARN or ERROR
// line (the embedded server's complaints while it shuts down are muted).
func TestDevInterruptIsQuiet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	bin := buildStarter(t)
	ports, err := devserver.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	env := []string{
		"PAYMENTS_DATA_DIR=" + t.TempDir(), "PAYMENTS_MYSQL_DSN=" + dbtest.DSN(t),
		fmt.Sprintf("TEMPORAL_ADDRESS=127.0.0.1:%d", ports[0]), "PAYMENTS_HTTP_ADDR=" + httpAddr,
		fmt.Sprintf("PAYMENTS_UI_ADDR=127.0.0.1:%d", ports[2]),
		"PAYMENTS_KEYS=", "PAYMENTS_KEYS_FILE=", "PAYMENTS_BLIND_INDEX_KEY=", "PAYMENTS_API_TOKENS=",
	}
	p := startDev(t, bin, env)
	waitReady(t, p, "http://"+httpAddr+"/readyz")
	p.mu.Lock()
	before := p.stderr.Len()
	p.mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := <-p.done; err != nil {
		t.Fatalf("starter dev after SIGINT: %v", err)
	}
	p.mu.Lock()
	after := p.stderr.String()[before:]
	p.mu.Unlock()
	for _, l := range lines(after) {
		if strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) || strings.HasPrefix(l, "starter:") {
			t.Errorf("after SIGINT: %s", l)
		}
	}
}
