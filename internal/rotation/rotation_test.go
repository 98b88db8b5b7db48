package rotation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/encryption"
)

// ring builds a keyring from "id" entries, each id's key derived from a
// spec cache so that the same id is the same key in every ring of a test.
func ring(t testing.TB, specs map[string]string, ids ...string) *encryption.Keyring {
	t.Helper()
	var parts []string
	for _, id := range ids {
		if specs[id] == "" {
			s, err := encryption.GenerateKeySpec(id)
			if err != nil {
				t.Fatal(err)
			}
			specs[id] = s
		}
		parts = append(parts, specs[id])
	}
	k, err := encryption.ParseKeys(strings.Join(parts, ","))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// seed stores orders and payments (two per order) with every encrypted
// value under keys' primary; every third order has no phone.
func seed(t testing.TB, db *sqlx.DB, keys *encryption.Keyring, prefix string, orders int) {
	t.Helper()
	now := time.Now().UTC()
	enc := func(table, col, pk, v string) []byte {
		ct, err := keys.Encrypt([]byte(v), encryption.AAD(table, col, pk))
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	for i := range orders {
		id := fmt.Sprintf("%s-%05d", prefix, i)
		var phone []byte
		if i%3 != 0 {
			phone = enc("orders", "customer_phone", id, fmt.Sprintf("+1555%07d", i))
		}
		if _, err := db.Exec(`INSERT INTO orders (order_id, order_amount, currency, customer_email, customer_phone, created_at, updated_at)
			VALUES (?, 1000, 'USD', ?, ?, ?, ?)`, id, enc("orders", "customer_email", id, "c"+id+"@example.com"), phone, now, now); err != nil {
			t.Fatal(err)
		}
		for j := range 2 {
			pid := fmt.Sprintf("P%s-%d", id, j)
			if _, err := db.Exec(`INSERT INTO payments (payment_id, order_id, payment_amount, currency, payment_status, payment_method,
				payment_details, created_at, updated_at) VALUES (?, ?, 100, 'USD', 'PENDING', 'CARD', ?, ?, ?)`,
				pid, id, enc("payments", "payment_details", pid, "41111111"+pid), now, now); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// rotateAll walks every table with pages of n rows and returns the rows
// rotated.
func rotateAll(t testing.TB, r *Rotator, n int) int {
	t.Helper()
	total := 0
	for _, tb := range Tables {
		after := ""
		for {
			res, err := r.Page(context.Background(), tb, after, n)
			if err != nil {
				t.Fatal(err)
			}
			total += res.Rotated
			if res.Last != "" {
				after = res.Last
			}
			if res.Done {
				break
			}
		}
	}
	return total
}

// usage is Status as "table.column key" -> rows.
func usage(t testing.TB, db *sqlx.DB) map[string]int64 {
	t.Helper()
	u, err := Status(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, x := range u {
		out[x.Table+"."+x.Column+" "+x.KeyID] = x.Rows
	}
	return out
}

// checkDecrypts decrypts every stored value with keys (which may lack the
// old key) and checks its plaintext.
func checkDecrypts(t testing.TB, db *sqlx.DB, keys *encryption.Keyring) {
	t.Helper()
	rows, err := db.Query("SELECT order_id, customer_email, customer_phone FROM orders")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var email, phone []byte
		if err := rows.Scan(&id, &email, &phone); err != nil {
			t.Fatal(err)
		}
		pt, err := keys.Decrypt(email, encryption.AAD("orders", "customer_email", id))
		if err != nil || string(pt) != "c"+id+"@example.com" {
			t.Fatalf("order %s email: %v", id, err)
		}
		if phone != nil {
			if _, err := keys.Decrypt(phone, encryption.AAD("orders", "customer_phone", id)); err != nil {
				t.Fatalf("order %s phone: %v", id, err)
			}
		}
	}
	prow, err := db.Query("SELECT payment_id, payment_details FROM payments")
	if err != nil {
		t.Fatal(err)
	}
	defer prow.Close()
	for prow.Next() {
		var id string
		var d []byte
		if err := prow.Scan(&id, &d); err != nil {
			t.Fatal(err)
		}
		pt, err := keys.Decrypt(d, encryption.AAD("payments", "payment_details", id))
		if err != nil || string(pt) != "41111111"+id {
			t.Fatalf("payment %s details: %v", id, err)
		}
	}
}

func TestRotateReencryptsEveryColumnUnderThePrimary(t *testing.T) {
	db := dbtest.New(t)
	specs := map[string]string{}
	k1 := ring(t, specs, "k1")
	seed(t, db, k1, "A", 300) // 300 orders (200 phones), 600 payments
	got := usage(t, db)
	want := map[string]int64{"orders.customer_email k1": 300, "orders.customer_phone k1": 200, "payments.payment_details k1": 600}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("status before: %v, want %v", got, want)
	}
	k2 := ring(t, specs, "k2", "k1")
	// Some rows already under k2 (written after the new key was deployed):
	// rotation must leave their bytes alone.
	seed(t, db, k2, "B", 20)
	var before []byte
	if err := db.Get(&before, "SELECT customer_email FROM orders WHERE order_id = 'B-00007'"); err != nil {
		t.Fatal(err)
	}

	r := &Rotator{DB: db, Keys: k2}
	if n := rotateAll(t, r, 64); n != 300+600 {
		t.Fatalf("rotated %d rows, want 900", n)
	}
	got = usage(t, db)
	want = map[string]int64{"orders.customer_email k2": 320, "orders.customer_phone k2": 200 + 13, "payments.payment_details k2": 640}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("status after: %v, want %v", got, want)
	}
	// Readable without k1 at all: nothing is left under it.
	checkDecrypts(t, db, ring(t, specs, "k2"))
	var after []byte
	if err := db.Get(&after, "SELECT customer_email FROM orders WHERE order_id = 'B-00007'"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("a value already under the primary was rewritten")
	}
	// AAD still binds a value to its row: moved to another row it fails.
	var email []byte
	if err := db.Get(&email, "SELECT customer_email FROM orders WHERE order_id = 'A-00001'"); err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Decrypt(email, encryption.AAD("orders", "customer_email", "A-00002")); err == nil {
		t.Fatal("a rotated value decrypted under another row's AAD")
	}
	// A second run finds nothing to do.
	if n := rotateAll(t, r, 1000); n != 0 {
		t.Fatalf("second run rotated %d rows", n)
	}
	if _, rest, err := Remaining(context.Background(), db, "k2"); err != nil || rest != 0 {
		t.Fatalf("remaining %d, %v", rest, err)
	}
}

func TestRotateRefusesAValueThatDoesNotDecrypt(t *testing.T) {
	db := dbtest.New(t)
	specs := map[string]string{}
	seed(t, db, ring(t, specs, "k1"), "A", 3)
	// A ring without k1 cannot re-encrypt k1's values: the page fails and
	// names the row and column, never the value.
	r := &Rotator{DB: db, Keys: ring(t, specs, "k2")}
	_, err := r.Page(context.Background(), Orders, "", 10)
	if !errors.Is(err, ErrBadValue) || !strings.Contains(err.Error(), "orders A-00000: decrypt customer_email") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "@example.com") {
		t.Fatal("error repeats a value")
	}
}

func TestCheckConfiguredNamesTheMissingKeyAndItsRows(t *testing.T) {
	db := dbtest.New(t)
	specs := map[string]string{}
	seed(t, db, ring(t, specs, "k1"), "A", 6) // 6 emails, 4 phones, 12 payments
	seed(t, db, ring(t, specs, "k2", "k1"), "B", 2)
	ctx := context.Background()
	if err := CheckConfigured(ctx, db, ring(t, specs, "k2", "k1"), "PAYMENTS_KEYS"); err != nil {
		t.Fatalf("both keys configured: %v", err)
	}
	err := CheckConfigured(ctx, db, ring(t, specs, "k2"), "PAYMENTS_KEYS")
	want := `stored rows use encryption key "k1" (6 rows in orders.customer_email, 4 rows in orders.customer_phone, 12 rows in payments.payment_details) which PAYMENTS_KEYS does not configure`
	if !errors.Is(err, ErrUnconfiguredKey) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v\nwant it to contain %s", err, want)
	}
	err = CheckConfigured(ctx, db, ring(t, specs, "k3"), "PAYMENTS_KEYS_FILE")
	if err == nil || !strings.Contains(err.Error(), `"k1"`) || !strings.Contains(err.Error(), `"k2" (2 rows in orders.customer_email`) {
		t.Fatalf("err = %v", err)
	}
	// After rotating to k2, k1 may go.
	if n := rotateAll(t, &Rotator{DB: db, Keys: ring(t, specs, "k2", "k1")}, 5); n != 6+12 {
		t.Fatalf("rotated %d", n)
	}
	if err := CheckConfigured(ctx, db, ring(t, specs, "k2"), "PAYMENTS_KEYS"); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
}

func TestKeyIDsInUseSkipsThroughTheIndex(t *testing.T) {
	db := dbtest.New(t)
	specs := map[string]string{}
	seed(t, db, ring(t, specs, "k1"), "A", 5)
	seed(t, db, ring(t, specs, "k3", "k1"), "B", 5)
	seed(t, db, ring(t, specs, "k2", "k1"), "C", 5)
	for _, c := range Columns {
		ids, err := KeyIDsInUse(context.Background(), db, c)
		if err != nil || fmt.Sprint(ids) != "[k1 k2 k3]" {
			t.Fatalf("%s: %v %v", c, ids, err)
		}
		// Each step is one dive into the key-id index.
		q := fmt.Sprintf("EXPLAIN SELECT %[1]s FROM %[2]s FORCE INDEX (idx_%[3]s) WHERE %[1]s > 'k1' ORDER BY %[1]s LIMIT 1", c.KeyIDColumn, c.Table, indexSuffix(c))
		rows, err := db.Queryx(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			m := map[string]any{}
			if err := rows.MapScan(m); err != nil {
				t.Fatal(err)
			}
			key, _ := m["key"].([]byte)
			extra, _ := m["Extra"].([]byte)
			if string(key) != "idx_"+indexSuffix(c) || !strings.Contains(string(extra), "Using index") || strings.Contains(string(extra), "filesort") {
				t.Fatalf("%s: plan key %s, extra %s", c, key, extra)
			}
		}
		rows.Close()
	}
}
