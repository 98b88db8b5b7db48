package activities_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/acme/payments/activities"
	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/rotation"
)

// TestRotateRangeResumesFromItsHeartbeat kills a RotateRange in the middle
// of a page (its transaction waits on a row lock when its context ends)
// and runs it again with the heartbeat the first attempt left: the second
// attempt starts after the last committed page, so the pages before it are
// neither read nor rewritten again, and the page that was cut is done
// whole.
func TestRotateRangeResumesFromItsHeartbeat(t *testing.T) {
	db := dbtest.New(t)
	k1spec, _ := encryption.GenerateKeySpec("k1")
	k2spec, _ := encryption.GenerateKeySpec("k2")
	k1, _ := encryption.ParseKeys(k1spec)
	keys, err := encryption.ParseKeys(k2spec + "," + k1spec)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i := range 100 {
		id := fmt.Sprintf("O-%05d", i)
		email, _ := k1.Encrypt([]byte(id+"@example.com"), encryption.AAD("orders", "customer_email", id))
		if _, err := db.Exec(`INSERT INTO orders (order_id, order_amount, currency, customer_email, created_at, updated_at)
			VALUES (?, 100, 'USD', ?, ?, ?)`, id, email, now, now); err != nil {
			t.Fatal(err)
		}
	}
	keyIDs := func() map[string]string {
		rows, err := db.Query("SELECT order_id, customer_email_kid FROM orders")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var id, kid string
			if err := rows.Scan(&id, &kid); err != nil {
				t.Fatal(err)
			}
			out[id] = kid
		}
		return out
	}
	snapshot := func() map[string]string {
		var rows []struct {
			ID string `db:"order_id"`
			CT []byte `db:"customer_email"`
		}
		if err := db.Select(&rows, "SELECT order_id, customer_email FROM orders"); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, r := range rows {
			out[r.ID] = string(r.CT)
		}
		return out
	}

	// Another transaction holds order 55: the sixth page of ten rows
	// blocks on it after locking 50..54.
	blocker, err := db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback()
	if _, err := blocker.Exec("SELECT order_id FROM orders WHERE order_id = 'O-00055' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}

	acts := &activities.Rotation{Rotator: &rotation.Rotator{DB: db, Keys: keys}}
	in := activities.RotateRangeInput{RotationID: "k2", KeyID: "k2", Table: "orders", PageRows: 10, MaxPages: 100}
	killCtx, kill := context.WithCancel(context.Background())
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	// Every heartbeat reaches the listener, as the last one before a kill
	// reaches the server.
	env.SetWorkerOptions(worker.Options{BackgroundActivityContext: killCtx,
		MaxHeartbeatThrottleInterval: time.Nanosecond, DefaultHeartbeatThrottleInterval: time.Nanosecond})
	var last activities.RotateCursor
	beats := make(chan struct{}, 1000)
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, d converter.EncodedValues) {
		if err := d.Get(&last); err != nil {
			t.Error(err)
		}
		beats <- struct{}{}
	})
	errc := make(chan error, 1)
	go func() {
		_, err := env.ExecuteActivity(acts.RotateRange, in)
		errc <- err
	}()
	// Wait for the attempt to block on the lock (in this test's database:
	// the server is shared), then kill it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		// The process list, not INNODB_TRX: MariaDB 10.11's INNODB_TRX was
		// seen to go stale (listing a finished transaction, not the waiting
		// one). A locking read of ten rows still running after a second
		// is waiting on the held row.
		if err := db.Get(&waiting, `SELECT COUNT(*) FROM information_schema.PROCESSLIST
			WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND COMMAND = 'Query' AND TIME >= 1
			AND INFO LIKE 'SELECT%FOR UPDATE'`); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rotation never waited on the held row")
		}
		time.Sleep(20 * time.Millisecond)
	}
	kill()
	if err := <-errc; err == nil {
		t.Fatal("the killed attempt succeeded")
	}
	if last.After != "O-00049" || last.Pages != 5 || last.Scanned != 50 || last.Rotated != 50 {
		t.Fatalf("last heartbeat %+v, want after O-00049 with 5 pages", last)
	}
	if err := blocker.Rollback(); err != nil {
		t.Fatal(err)
	}
	// The cut page committed nothing: 50..59 are still under k1.
	kids := keyIDs()
	for i := range 100 {
		id := fmt.Sprintf("O-%05d", i)
		if want := map[bool]string{true: "k2", false: "k1"}[i < 50]; kids[id] != want {
			t.Fatalf("%s under %q after the kill, want %q", id, kids[id], want)
		}
	}
	before := snapshot()

	env2 := s.NewTestActivityEnvironment()
	env2.RegisterActivity(acts)
	env2.SetHeartbeatDetails(last)
	v, err := env2.ExecuteActivity(acts.RotateRange, in)
	if err != nil {
		t.Fatal(err)
	}
	var res activities.RotateRangeResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	// Totals include the first attempt's 5 pages; this one read 50 rows
	// (and one empty page to find the end).
	if !res.Resumed || !res.Done || res.Scanned != 100 || res.Rotated != 100 || res.Pages != 11 || res.After != "O-00099" {
		t.Fatalf("resumed result %+v", res)
	}
	after := snapshot()
	for i := range 100 {
		id := fmt.Sprintf("O-%05d", i)
		if changed := before[id] != after[id]; changed != (i >= 50) {
			t.Fatalf("%s rewritten by the second attempt: %v", id, changed)
		}
	}
	for id, kid := range keyIDs() {
		if kid != "k2" {
			t.Fatalf("%s still under %q", id, kid)
		}
	}
}

// TestRotateRangeRefusesAWorkerWithAnotherPrimary: a worker whose
// PAYMENTS_KEYS were not updated must not "rotate" rows back to its key.
func TestRotateRangeRefusesAWorkerWithAnotherPrimary(t *testing.T) {
	spec, _ := encryption.GenerateKeySpec("k1")
	keys, _ := encryption.ParseKeys(spec)
	acts := &activities.Rotation{Rotator: &rotation.Rotator{Keys: keys}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	_, err := env.ExecuteActivity(acts.RotateRange, activities.RotateRangeInput{RotationID: "k2", KeyID: "k2", Table: "orders", PageRows: 10})
	if err == nil || !strings.Contains(err.Error(), `targets key "k2" but this worker's primary key is "k1"`) {
		t.Fatalf("err = %v", err)
	}
}
