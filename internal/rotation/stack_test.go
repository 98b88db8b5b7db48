package rotation_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/rotation"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/internal/stacktest"
	"github.com/acme/payments/workflows"
)

// seedOld stores n orders (email and phone) with two PENDING payments
// each, every value under keys' primary, with multi-row INSERTs into a
// created and migrated database.
func seedOld(t *testing.T, dsn string, keys *encryption.Keyring, n int) {
	t.Helper()
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
	enc := func(table, col, pk, v string) []byte {
		ct, err := keys.Encrypt([]byte(v), encryption.AAD(table, col, pk))
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	now := time.Now().UTC()
	for start := 0; start < n; start += 250 {
		var ov, pv []string
		var oa, pa []any
		for i := start; i < min(n, start+250); i++ {
			id := fmt.Sprintf("SEED-%07d", i)
			ov = append(ov, "(?, 100000, 'USD', ?, ?, ?, ?)")
			oa = append(oa, id, enc("orders", "customer_email", id, "s"+id+"@example.com"), enc("orders", "customer_phone", id, "+15551234567"), now, now)
			for j := range 2 {
				pid := fmt.Sprintf("SEEDPAY-%07d-%d", i, j)
				pv = append(pv, "(?, ?, 100, 'USD', 'PENDING', 'CARD', ?, ?, ?)")
				pa = append(pa, pid, id, enc("payments", "payment_details", pid, "4000056655665556"), now, now)
			}
		}
		if _, err := db.Exec("INSERT INTO orders (order_id, order_amount, currency, customer_email, customer_phone, created_at, updated_at) VALUES "+
			strings.Join(ov, ","), oa...); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("INSERT INTO payments (payment_id, order_id, payment_amount, currency, payment_status, payment_method, payment_details, created_at, updated_at) VALUES "+
			strings.Join(pv, ","), pa...); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRotationOnTheServer runs a rotation as the worker runs it, on the
// embedded Temporal server: start-up refuses a keyring without the old
// key, the rotation continues as new on the way, and afterwards no value is
// left under the old key. Its histories are recorded for the replay test.
func TestRotationOnTheServer(t *testing.T) {
	addr := stacktest.Temporal(t)
	cfg := stacktest.Config(t, addr)
	oldSpec, _ := encryption.GenerateKeySpec("old")
	oldKeys, _ := encryption.ParseKeys(oldSpec)
	seedOld(t, cfg.MySQLDSN, oldKeys, 150)

	// The test keys alone do not hold "old": start-up refuses, in one line.
	_, err := service.Open(context.Background(), cfg, stacktest.Logger(t, slog.LevelWarn), false)
	want := `stored rows use encryption key "old" (150 rows in orders.customer_email, 150 rows in orders.customer_phone, 300 rows in payments.payment_details) which PAYMENTS_KEYS does not configure`
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("start-up without the old key: %v", err)
	}

	// The new key (the test keys, so the recorded histories replay) first,
	// the old one after it.
	cfg.Keys = stacktest.TestKeys + "," + oldSpec
	d := stacktest.Deps(t, cfg)
	stacktest.Worker(t, d)
	ctx := context.Background()
	primary := d.Keys.PrimaryID()
	wid := workflows.RotateWorkflowID("test-" + primary)
	run, err := d.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: wid, TaskQueue: workflows.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING},
		workflows.Rotate, workflows.RotateInput{RotationID: "test-" + primary, KeyID: primary, PageRows: 25, PagesPerStep: 2, HistoryLimit: 30})
	if err != nil {
		t.Fatal(err)
	}
	var p workflows.RotateProgress
	if err := run.Get(ctx, &p); err != nil {
		t.Fatal(err)
	}
	if p.State != workflows.RotationCompleted || p.Rotated != 150+300 || p.Scanned != 150+300 || p.Remaining != 0 || p.Pass != 1 {
		t.Fatalf("result %+v", p)
	}
	usage, err := rotation.Status(ctx, d.DB)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(usage) != fmt.Sprintf("[{orders customer_email %[1]s 150} {orders customer_phone %[1]s 150} {payments payment_details %[1]s 300}]", primary) {
		t.Fatalf("status %v", usage)
	}
	// Now the old key may go: start-up with the test keys alone passes.
	if err := rotation.CheckConfigured(ctx, d.DB, mustKeys(t, stacktest.TestKeys), "PAYMENTS_KEYS"); err != nil {
		t.Fatal(err)
	}
	desc, err := d.Temporal.DescribeWorkflowExecution(ctx, wid, "")
	if err != nil {
		t.Fatal(err)
	}
	first := desc.GetWorkflowExecutionInfo().GetFirstRunId()
	if last := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId(); first == "" || first == last {
		t.Fatalf("the rotation never continued as new")
	}
	stacktest.SaveHistory(t, d.Temporal, wid, first, "rotate-continued-as-new")
	stacktest.SaveHistory(t, d.Temporal, wid, "", "rotate-completed")
}

func mustKeys(t *testing.T, spec string) *encryption.Keyring {
	t.Helper()
	k, err := encryption.ParseKeys(spec)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
