package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/rotation"
	"github.com/acme/payments/internal/stacktest"
)

// TestRotateKeysAndKeysStatus runs the operator's procedure with the
// binary: start-up refuses a keyring without the old key, `keys status`
// counts the values under each key, `rotate-keys --wait` moves them all to
// the new primary, and afterwards the old key protects nothing.
func TestRotateKeysAndKeysStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal")
	}
	addr := stacktest.Temporal(t)
	cfg := stacktest.Config(t, addr)
	oldSpec, _ := encryption.GenerateKeySpec("old")
	oldKeys, _ := encryption.ParseKeys(oldSpec)
	env := []string{
		"PAYMENTS_MYSQL_DSN=" + cfg.MySQLDSN, "TEMPORAL_ADDRESS=" + addr, "PAYMENTS_DATA_DIR=" + cfg.DataDir,
		"PAYMENTS_KEYS=" + oldSpec, "PAYMENTS_KEYS_FILE=", "PAYMENTS_BLIND_INDEX_KEY=" + stacktest.TestBlindIndexKey,
		"PAYMENTS_API_TOKENS=", "PAYMENTS_HTTP_ADDR=127.0.0.1:0",
	}
	if code, _, stderr := cliRun(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %d %s", code, stderr)
	}
	ctx := context.Background()
	db, err := database.Open(ctx, cfg.MySQLDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UTC()
	for i := range 40 {
		id := fmt.Sprintf("ORD-%03d", i)
		email, _ := oldKeys.Encrypt([]byte(id+"@example.com"), encryption.AAD("orders", "customer_email", id))
		pid := "PAY-" + id
		details, _ := oldKeys.Encrypt([]byte("4111111111111111"), encryption.AAD("payments", "payment_details", pid))
		if _, err := db.Exec(`INSERT INTO orders (order_id, order_amount, currency, customer_email, created_at, updated_at)
			VALUES (?, 100, 'USD', ?, ?, ?)`, id, email, now, now); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO payments (payment_id, order_id, payment_amount, currency, payment_status, payment_method,
			payment_details, created_at, updated_at) VALUES (?, ?, 100, 'USD', 'PENDING', 'CARD', ?, ?, ?)`, pid, id, details, now, now); err != nil {
			t.Fatal(err)
		}
	}
	withKeys := func(spec string) []string { return append(append([]string(nil), env...), "PAYMENTS_KEYS="+spec) }
	newKeys := withKeys(stacktest.TestKeys + "," + oldSpec)

	// The new key alone: the API refuses to start, in one line.
	code, _, stderr := cliRun(t, withKeys(stacktest.TestKeys), "serve")
	want := `stored rows use encryption key "old" (40 rows in orders.customer_email, 40 rows in payments.payment_details) which PAYMENTS_KEYS does not configure`
	if code != 1 || !strings.Contains(stderr, want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("serve without the old key: %d %q", code, stderr)
	}

	status := func() map[string]int64 {
		t.Helper()
		code, stdout, stderr := cliRun(t, newKeys, "keys", "status", "--json")
		if code != 0 {
			t.Fatalf("keys status: %d %s", code, stderr)
		}
		var st keysStatus
		if err := json.Unmarshal([]byte(stdout), &st); err != nil {
			t.Fatalf("keys status --json: %v\n%s", err, stdout)
		}
		out := map[string]int64{}
		for _, k := range st.Keys {
			for col, n := range k.Rows {
				out[k.KeyID+" "+col] = n
			}
		}
		return out
	}
	if got := status(); got["old orders.customer_email"] != 40 || got["old payments.payment_details"] != 40 || got["test1 orders.customer_email"] != 0 {
		t.Fatalf("status before: %v", got)
	}

	// A worker with the new keyring, then the rotation.
	cfg.Keys = stacktest.TestKeys + "," + oldSpec
	stacktest.Worker(t, stacktest.Deps(t, cfg))
	code, stdout, stderr := cliRun(t, newKeys, "rotate-keys", "--wait")
	var p struct {
		State     string `json:"state"`
		KeyID     string `json:"key_id"`
		Rotated   int64  `json:"rows_rotated"`
		Remaining int64  `json:"values_remaining"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &p) != nil || p.State != "COMPLETED" || p.KeyID != "test1" || p.Rotated != 80 || p.Remaining != 0 {
		t.Fatalf("rotate-keys --wait: %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if got := status(); got["old orders.customer_email"] != 0 || got["old payments.payment_details"] != 0 ||
		got["test1 orders.customer_email"] != 40 || got["test1 payments.payment_details"] != 40 {
		t.Fatalf("status after: %v", got)
	}
	// Again: a new run of rotate/test1 that finds nothing to do.
	code, stdout, stderr = cliRun(t, newKeys, "rotate-keys", "--wait")
	if code != 0 || json.Unmarshal([]byte(stdout), &p) != nil || p.State != "COMPLETED" || p.Rotated != 0 {
		t.Fatalf("rotate-keys again: %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	// Bad usage exits 2.
	if code, _, stderr := cliRun(t, newKeys, "rotate-keys", "--id", "a/b"); code != 2 {
		t.Fatalf("rotate-keys --id a/b: %d %s", code, stderr)
	}
}

// keys status lists every configured key, with zero rows when it protects
// nothing (so it may go), and every stored key id the keyring lacks.
func TestKeysStatusListsConfiguredAndUnconfiguredKeys(t *testing.T) {
	keys, err := encryption.ParseKeys(stacktest.TestKeys)
	if err != nil {
		t.Fatal(err)
	}
	st := newKeysStatus(keys, []rotation.Usage{
		{Table: "orders", Column: "customer_email", KeyID: "gone", Rows: 3},
		{Table: "payments", Column: "payment_details", KeyID: "gone", Rows: 2},
	})
	if st.Primary != "test1" || len(st.Keys) != 2 {
		t.Fatalf("%+v", st)
	}
	k, g := st.Keys[0], st.Keys[1]
	if k.KeyID != "test1" || !k.Primary || !k.Configured || k.Total != 0 || len(k.Rows) != 3 {
		t.Fatalf("primary %+v", k)
	}
	if g.KeyID != "gone" || g.Configured || g.Total != 5 || g.Rows["orders.customer_email"] != 3 || g.Rows["orders.customer_phone"] != 0 {
		t.Fatalf("unconfigured %+v", g)
	}
}
