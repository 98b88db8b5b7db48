package orders_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/orders"
)

// The fixed test keys of internal/stacktest (TestKeys, TestBlindIndexKey),
// repeated here: stacktest pulls in the whole service and an embedded
// Temporal server, which a database-only test should not depend on.
const (
	testKeys          = "test1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	testBlindIndexKey = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
)

func newStore(t *testing.T) *orders.Store {
	t.Helper()
	keys, err := encryption.ParseKeys(testKeys)
	if err != nil {
		t.Fatal(err)
	}
	bi, err := encryption.ParseBlindIndexKey(testBlindIndexKey)
	if err != nil {
		t.Fatal(err)
	}
	return &orders.Store{DB: dbtest.New(t), Keys: keys, BlindIndex: bi}
}

func mustCreate(t *testing.T, s *orders.Store, o orders.NewOrder) {
	t.Helper()
	created, err := s.Create(context.Background(), o)
	if err != nil || !created {
		t.Fatalf("Create(%s) = %v, %v; want true, nil", o.OrderID, created, err)
	}
}

type rawOrder struct {
	Email     []byte    `db:"customer_email"`
	Phone     []byte    `db:"customer_phone"`
	Bidx      []byte    `db:"customer_email_bidx"`
	Status    string    `db:"order_status"`
	Paid      int64     `db:"paid_amount"`
	CreatedAt time.Time `db:"created_at"`
	UpdatedAt time.Time `db:"updated_at"`
}

func raw(t *testing.T, db *sqlx.DB, id string) rawOrder {
	t.Helper()
	var r rawOrder
	if err := db.Get(&r, `SELECT customer_email, customer_phone, customer_email_bidx, order_status, paid_amount,
		created_at, updated_at FROM orders WHERE order_id = ?`, id); err != nil {
		t.Fatalf("read order %s: %v", id, err)
	}
	return r
}

func TestCreate(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	base := orders.NewOrder{OrderID: "ORD-1", Amount: 12_30, Currency: "USD",
		CustomerEmail: "Jane@Example.com", CustomerPhone: "+15550100"}
	before := time.Now().UTC().Add(-time.Second)
	mustCreate(t, s, base)

	// Stored like the importer stores it.
	r := raw(t, s.DB, "ORD-1")
	if bytes.Contains(r.Email, []byte("Jane")) || bytes.Contains(r.Phone, []byte("5550100")) {
		t.Fatal("customer fields stored in plaintext")
	}
	if pt, err := s.Keys.Decrypt(r.Email, encryption.AAD("orders", "customer_email", "ORD-1")); err != nil || string(pt) != "Jane@Example.com" {
		t.Errorf("customer_email decrypts to %q, %v", pt, err)
	}
	if pt, err := s.Keys.Decrypt(r.Phone, encryption.AAD("orders", "customer_phone", "ORD-1")); err != nil || string(pt) != "+15550100" {
		t.Errorf("customer_phone decrypts to %q, %v", pt, err)
	}
	if !bytes.Equal(r.Bidx, s.BlindIndex.Email("jane@example.com")) {
		t.Error("customer_email_bidx is not the blind index of the normalised email")
	}
	if r.Status != "PENDING" || r.Paid != 0 || r.CreatedAt.Before(before) || r.CreatedAt.After(time.Now().Add(time.Second)) || !r.UpdatedAt.Equal(r.CreatedAt) {
		t.Errorf("stored %+v", r)
	}

	// Identical again: 200. Surrounding spaces are trimmed as on import.
	for _, o := range []orders.NewOrder{base, {OrderID: "ORD-1", Amount: 12_30, Currency: "USD",
		CustomerEmail: " Jane@Example.com\t", CustomerPhone: " +15550100 "}} {
		created, err := s.Create(ctx, o)
		if err != nil || created {
			t.Errorf("identical Create = %v, %v; want false, nil", created, err)
		}
	}

	// Same id, other content: 409.
	with := func(f func(*orders.NewOrder)) orders.NewOrder { o := base; f(&o); return o }
	for name, o := range map[string]orders.NewOrder{
		"amount":       with(func(o *orders.NewOrder) { o.Amount++ }),
		"currency":     with(func(o *orders.NewOrder) { o.Currency = "EUR" }),
		"email case":   with(func(o *orders.NewOrder) { o.CustomerEmail = "jane@example.com" }),
		"no email":     with(func(o *orders.NewOrder) { o.CustomerEmail = "" }),
		"phone":        with(func(o *orders.NewOrder) { o.CustomerPhone = "+15550101" }),
		"no phone":     with(func(o *orders.NewOrder) { o.CustomerPhone = "" }),
		"created_at":   with(func(o *orders.NewOrder) { o.CreatedAt = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC) }),
		"default USD?": with(func(o *orders.NewOrder) { o.Currency = "" }), // same: "" means USD
	} {
		created, err := s.Create(ctx, o)
		if name == "default USD?" {
			if err != nil || created {
				t.Errorf("%s: Create = %v, %v; want false, nil", name, created, err)
			}
			continue
		}
		if created || !errors.Is(err, orders.ErrConflict) {
			t.Errorf("%s: Create = %v, %v; want ErrConflict", name, created, err)
		}
		if err != nil && (strings.Contains(err.Error(), "jane") || strings.Contains(err.Error(), "5550")) {
			t.Errorf("%s: error %q leaks customer data", name, err)
		}
	}

	// Without email or phone: NULL columns, no blind index.
	mustCreate(t, s, orders.NewOrder{OrderID: "ORD-2", Amount: 1, Currency: "JPY"})
	if r := raw(t, s.DB, "ORD-2"); r.Email != nil || r.Phone != nil || r.Bidx != nil {
		t.Errorf("empty customer fields stored as %+v, want NULLs", r)
	}
	if created, err := s.Create(ctx, orders.NewOrder{OrderID: "ORD-2", Amount: 1, Currency: "JPY"}); err != nil || created {
		t.Errorf("identical order without customer fields: %v, %v", created, err)
	}
	// Ids are case-sensitive (binary collation).
	mustCreate(t, s, orders.NewOrder{OrderID: "ord-1", Amount: 5, Currency: "USD"})

	// An explicit created_at is kept and is part of the identity.
	at := time.Date(2025, 6, 1, 10, 0, 0, 123456000, time.FixedZone("CEST", 2*3600))
	mustCreate(t, s, orders.NewOrder{OrderID: "ORD-3", Amount: 5, CreatedAt: at})
	if r := raw(t, s.DB, "ORD-3"); !r.CreatedAt.Equal(at) {
		t.Errorf("created_at = %v, want %v", r.CreatedAt, at)
	}
	if created, err := s.Create(ctx, orders.NewOrder{OrderID: "ORD-3", Amount: 5, CreatedAt: at.UTC()}); err != nil || created {
		t.Errorf("same created_at: %v, %v", created, err)
	}
	if created, err := s.Create(ctx, orders.NewOrder{OrderID: "ORD-3", Amount: 5}); err != nil || created {
		t.Errorf("created_at not given: %v, %v", created, err)
	}
}

// TestMatchesImportedRow: a row in the importer's format (written with
// plain SQL here) is recognised as identical.
func TestMatchesImportedRow(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	email, _ := s.Keys.Encrypt([]byte("a@b.example"), encryption.AAD("orders", "customer_email", "IMP-1"))
	at := time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC)
	s.DB.MustExec(`INSERT INTO orders (order_id, order_amount, currency, order_status, paid_amount, customer_email,
		customer_phone, customer_email_bidx, created_at, updated_at) VALUES ('IMP-1', 500, 'KWD', 'PENDING', 0, ?, NULL, ?, ?, ?)`,
		email, s.BlindIndex.Email("a@b.example"), at, at)
	if created, err := s.Create(ctx, orders.NewOrder{OrderID: "IMP-1", Amount: 500, Currency: "KWD", CustomerEmail: "a@b.example"}); err != nil || created {
		t.Fatalf("Create over an imported row = %v, %v; want false, nil", created, err)
	}
	var st orders.Row
	if err := s.DB.Get(&st, "SELECT "+orders.RowColumns+" FROM orders WHERE order_id = 'IMP-1'"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		o    orders.NewOrder
		want bool
	}{
		{orders.NewOrder{OrderID: "IMP-1", Amount: 500, Currency: "KWD", CustomerEmail: "a@b.example", CreatedAt: at}, true},
		{orders.NewOrder{OrderID: "IMP-1", Amount: 500, Currency: "KWD", CustomerEmail: "a@b.example", CreatedAt: at.Add(time.Microsecond)}, false},
		{orders.NewOrder{OrderID: "IMP-1", Amount: 500, Currency: "KWD", CustomerEmail: "a@b.example", CustomerPhone: "1"}, false},
		{orders.NewOrder{OrderID: "IMP-2", Amount: 500, Currency: "KWD", CustomerEmail: "a@b.example"}, false},
	} {
		if got, err := (orders.Sealer{Keys: s.Keys}).Matches(st, tc.o); err != nil || got != tc.want {
			t.Errorf("Matches(%+v) = %v, %v; want %v", tc.o, got, err, tc.want)
		}
	}
	// A ciphertext moved from another row fails to decrypt: an error, not a match.
	st.OrderID = "IMP-2"
	if _, err := (orders.Sealer{Keys: s.Keys}).Matches(st, orders.NewOrder{OrderID: "IMP-2", Amount: 500, Currency: "KWD", CustomerEmail: "a@b.example"}); !errors.Is(err, encryption.ErrDecrypt) {
		t.Errorf("moved ciphertext: err = %v, want ErrDecrypt", err)
	}
}

func TestCreateInvalid(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	ok := orders.NewOrder{OrderID: "OK-1", Amount: 100, Currency: "USD", CustomerEmail: "jane@example.com", CustomerPhone: "+15550100"}
	with := func(f func(*orders.NewOrder)) orders.NewOrder { o := ok; f(&o); return o }
	for _, tc := range []struct {
		name, field string
		o           orders.NewOrder
	}{
		{"empty id", "order_id", with(func(o *orders.NewOrder) { o.OrderID = "" })},
		{"long id", "order_id", with(func(o *orders.NewOrder) { o.OrderID = strings.Repeat("x", 65) })},
		{"long multibyte id", "order_id", with(func(o *orders.NewOrder) { o.OrderID = strings.Repeat("é", 33) })},
		{"space in id", "order_id", with(func(o *orders.NewOrder) { o.OrderID = "A 1" })},
		{"trailing space", "order_id", with(func(o *orders.NewOrder) { o.OrderID = "A1 " })},
		{"nbsp in id", "order_id", with(func(o *orders.NewOrder) { o.OrderID = "A\u00a01" })},
		{"control in id", "order_id", with(func(o *orders.NewOrder) { o.OrderID = "A\x001" })},
		{"invalid utf-8 id", "order_id", with(func(o *orders.NewOrder) { o.OrderID = "A\xff" })},
		{"zero amount", "order_amount", with(func(o *orders.NewOrder) { o.Amount = 0 })},
		{"negative amount", "order_amount", with(func(o *orders.NewOrder) { o.Amount = -5 })},
		{"lower-case currency", "currency", with(func(o *orders.NewOrder) { o.Currency = "usd" })},
		{"unknown currency", "currency", with(func(o *orders.NewOrder) { o.Currency = "XXX" })},
		{"email without @", "customer_email", with(func(o *orders.NewOrder) { o.CustomerEmail = "jane.example.com" })},
		{"long email", "customer_email", with(func(o *orders.NewOrder) { o.CustomerEmail = strings.Repeat("j", 250) + "@example.com" })},
		{"invalid utf-8 email", "customer_email", with(func(o *orders.NewOrder) { o.CustomerEmail = "jane\xff@example.com" })},
		{"long phone", "customer_phone", with(func(o *orders.NewOrder) { o.CustomerPhone = strings.Repeat("5", 33) })},
		// What a downloaded file could not carry back.
		{"control in phone", "customer_phone", with(func(o *orders.NewOrder) { o.CustomerPhone = "12\x013" })},
		{"NUL in email", "customer_email", with(func(o *orders.NewOrder) { o.CustomerEmail = "ja\x00ne@example.com" })},
		// Control characters XML and CSV could carry, refused all the
		// same: an email reaches mail headers.
		{"CRLF header injection in email", "customer_email", with(func(o *orders.NewOrder) { o.CustomerEmail = "jane@example.com\r\nBcc: x@evil.example" })},
		{"LF in email", "customer_email", with(func(o *orders.NewOrder) { o.CustomerEmail = "ja\nne@example.com" })},
		{"tab in email", "customer_email", with(func(o *orders.NewOrder) { o.CustomerEmail = "ja\tne@example.com" })},
		{"DEL in email", "customer_email", with(func(o *orders.NewOrder) { o.CustomerEmail = "ja\x7fne@example.com" })},
		{"C1 control in email", "customer_email", with(func(o *orders.NewOrder) { o.CustomerEmail = "ja\u0085ne@example.com" })},
		{"line separator in email", "customer_email", with(func(o *orders.NewOrder) { o.CustomerEmail = "ja\u2028ne@example.com" })},
		{"CR in phone", "customer_phone", with(func(o *orders.NewOrder) { o.CustomerPhone = "+1555\r0100" })},
		{"tab in phone", "customer_phone", with(func(o *orders.NewOrder) { o.CustomerPhone = "+1555\t0100" })},
	} {
		created, err := s.Create(ctx, tc.o)
		if created || !errors.Is(err, orders.ErrInvalid) {
			t.Errorf("%s: Create = %v, %v; want ErrInvalid", tc.name, created, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %q does not name %s", tc.name, err, tc.field)
		}
		if strings.Contains(err.Error(), "jane") || strings.Contains(err.Error(), "5555") || strings.Contains(err.Error(), "5550100") {
			t.Errorf("%s: error %q leaks customer data", tc.name, err)
		}
	}
	var n int
	if err := s.DB.Get(&n, "SELECT COUNT(*) FROM orders"); err != nil || n != 0 {
		t.Errorf("%d orders stored (%v), want 0", n, err)
	}
	// The limits themselves are fine.
	mustCreate(t, s, with(func(o *orders.NewOrder) {
		o.OrderID = strings.Repeat("é", 32)
		o.CustomerEmail = strings.Repeat("j", 242) + "@example.com"
		o.CustomerPhone = strings.Repeat("5", 32)
	}))
}

func record(t *testing.T, s *orders.Store, ps ...ledger.Payment) {
	t.Helper()
	l := ledger.Ledger{DB: s.DB, Keys: s.Keys}
	res, err := l.Record(context.Background(), ledger.SourceAPI, "test", ps)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Outcome != ledger.Inserted {
			t.Fatalf("payment %s: %v %s %s", r.PaymentID, r.Outcome, r.Code, r.Message)
		}
	}
}

func TestGetWithPayments(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mustCreate(t, s, orders.NewOrder{OrderID: "O1", Amount: 100_00, Currency: "USD", CustomerEmail: "jane@example.com", CustomerPhone: "+15550100"})
	t0 := time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC)
	record(t, s,
		ledger.Payment{PaymentID: "P-c", OrderID: "O1", Amount: 30_00, Status: ledger.StatusSuccess, Method: "CARD",
			Details: "4242 4242 4242 4242", GatewayRef: "G-1", CreatedAt: t0.Add(2 * time.Second)},
		ledger.Payment{PaymentID: "P-b", OrderID: "O1", Amount: 50_00, Status: ledger.StatusFailed, Method: "UPI",
			Details: "jane@okaxis", FailureReason: "declined", CreatedAt: t0.Add(time.Second)},
		ledger.Payment{PaymentID: "P-a", OrderID: "O1", Amount: 20_00, Method: "CASH", CreatedAt: t0.Add(2 * time.Second)},
	)
	o, err := s.Get(ctx, "O1")
	if err != nil {
		t.Fatal(err)
	}
	if o.OrderID != "O1" || o.Amount != 100_00 || o.Currency != "USD" || o.Status != "PENDING" || o.PaidAmount != 30_00 ||
		o.Outstanding() != 70_00 || o.Overpaid() != 0 || o.CustomerEmail != "jane@example.com" || o.CustomerPhone != "+15550100" {
		t.Errorf("Get = %+v", o)
	}
	var ids []string
	for _, p := range o.Payments {
		ids = append(ids, p.PaymentID)
	}
	if got := strings.Join(ids, ","); got != "P-b,P-a,P-c" {
		t.Errorf("payments in order %s, want P-b,P-a,P-c (created_at, then payment_id)", got)
	}
	if len(o.Payments) == 3 {
		pb, pc := o.Payments[0], o.Payments[2]
		if pb.Details != "jane@okaxis" || pb.Status != "FAILED" || pb.FailureReason != "declined" || pb.Method != "UPI" ||
			pb.Amount != 50_00 || pb.Currency != "USD" || pb.OrderID != "O1" || !pb.CreatedAt.Equal(t0.Add(time.Second)) {
			t.Errorf("payment P-b = %+v", pb)
		}
		if pc.Details != "4242 4242 4242 4242" || pc.GatewayRef != "G-1" || pc.Status != "SUCCESS" {
			t.Errorf("payment P-c = %+v", pc)
		}
		if o.Payments[1].Details != "" || o.Payments[1].Status != "PENDING" {
			t.Errorf("payment P-a = %+v", o.Payments[1])
		}
	}

	// Overpaid: completed, nothing outstanding.
	record(t, s, ledger.Payment{PaymentID: "P-d", OrderID: "O1", Amount: 80_00, Status: ledger.StatusSuccess, Method: "WALLET", Details: "wallet-778899"})
	o, err = s.Get(ctx, "O1")
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != "COMPLETED" || o.PaidAmount != 110_00 || o.Outstanding() != 0 || o.Overpaid() != 10_00 || len(o.Payments) != 4 {
		t.Errorf("after overpayment: %+v", o)
	}
	j := o.JSON(true)
	if j.OrderStatus != "COMPLETED" || j.PaidAmount != "110.00" || j.OutstandingAmount != "0.00" || j.OverpaidAmount != "10.00" {
		t.Errorf("JSON = %+v", j)
	}

	// An order without payments lists none, as [].
	mustCreate(t, s, orders.NewOrder{OrderID: "O2", Amount: 1, Currency: "USD"})
	o2, err := s.Get(ctx, "O2")
	if err != nil {
		t.Fatal(err)
	}
	if o2.Payments == nil || len(o2.Payments) != 0 || o2.Outstanding() != 1 {
		t.Errorf("order without payments: %+v", o2)
	}
	b, _ := json.Marshal(o2.JSON(false))
	if !strings.Contains(string(b), `"payments":[]`) || !strings.Contains(string(b), `"customer_email":""`) {
		t.Errorf("JSON of an order without payments: %s", b)
	}

	if _, err := s.Get(ctx, "missing"); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("Get(missing): err = %v, want ErrNotFound", err)
	}

	// Payment reads one payment as Get lists it.
	if len(o.Payments) == 3 {
		if pc, err := s.Payment(ctx, "P-c"); err != nil || pc != o.Payments[2] {
			t.Errorf("Payment(P-c) = %+v, %v; Get listed %+v", pc, err, o.Payments[2])
		}
	}
	if _, err := s.Payment(ctx, "P-zz"); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("Payment(unknown): err = %v, want ErrNotFound", err)
	}
}

func TestFindByEmail(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	mustCreate(t, s, orders.NewOrder{OrderID: "F-3", Amount: 1, CustomerEmail: "Jane@Example.com", CreatedAt: t0.Add(time.Hour)})
	mustCreate(t, s, orders.NewOrder{OrderID: "F-1", Amount: 2, CustomerEmail: "jane@example.com", CreatedAt: t0.Add(2 * time.Hour)})
	mustCreate(t, s, orders.NewOrder{OrderID: "F-2", Amount: 3, CustomerEmail: " JANE@EXAMPLE.COM ", CreatedAt: t0.Add(time.Hour)})
	mustCreate(t, s, orders.NewOrder{OrderID: "F-4", Amount: 4, CustomerEmail: "john@example.com", CreatedAt: t0})
	mustCreate(t, s, orders.NewOrder{OrderID: "F-5", Amount: 5, CreatedAt: t0})
	record(t, s, ledger.Payment{PaymentID: "FP-1", OrderID: "F-1", Amount: 1, Method: "CASH"})

	// A false positive: a row whose blind index says jane but whose
	// (validly encrypted) email is someone else's, as after an HMAC
	// collision or an index copied between rows.
	mustCreate(t, s, orders.NewOrder{OrderID: "F-6", Amount: 6, CustomerEmail: "mallory@example.com", CreatedAt: t0})
	s.DB.MustExec("UPDATE orders SET customer_email_bidx = ? WHERE order_id = 'F-6'", s.BlindIndex.Email("jane@example.com"))

	for _, q := range []string{"jane@example.com", "  JANE@example.COM\t", "Jane@Example.com"} {
		got, err := s.FindByEmail(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, o := range got {
			ids = append(ids, o.OrderID)
			if o.Payments != nil {
				t.Errorf("%s: payments loaded", o.OrderID)
			}
		}
		// F-2 and F-3 share created_at: order_id breaks the tie.
		if strings.Join(ids, ",") != "F-2,F-3,F-1" {
			t.Errorf("FindByEmail(%q) = %v, want F-2,F-3,F-1", q, ids)
		}
		if len(got) == 3 && (got[0].CustomerEmail != "JANE@EXAMPLE.COM" || got[2].Amount != 2) {
			t.Errorf("FindByEmail(%q)[0] = %+v", q, got[0])
		}
		if len(got) > 0 {
			b, _ := json.Marshal(got[0].JSON(false))
			if strings.Contains(string(b), `"payments"`) {
				t.Errorf("JSON of a found order has payments: %s", b)
			}
		}
	}
	if got, err := s.FindByEmail(ctx, "nobody@example.com"); err != nil || len(got) != 0 {
		t.Errorf("FindByEmail(nobody) = %v, %v; want none", got, err)
	}
	if got, err := s.FindByEmail(ctx, "mallory@example.com"); err != nil || len(got) != 0 {
		t.Errorf("FindByEmail(mallory) = %v, %v; want none (its index was overwritten)", got, err)
	}
	// What no stored email can be is refused, control characters too.
	for _, q := range []string{"", "   ", "jane", "jane@example.com\r\nBcc: x@example.com", "ja\x00ne@example.com", "ja\xffne@example.com"} {
		if _, err := s.FindByEmail(ctx, q); !errors.Is(err, orders.ErrInvalid) {
			t.Errorf("FindByEmail(%q): err = %v, want ErrInvalid", q, err)
		}
		if _, _, err := s.FindByEmailPage(ctx, q, 10, nil); !errors.Is(err, orders.ErrInvalid) {
			t.Errorf("FindByEmailPage(%q): err = %v, want ErrInvalid", q, err)
		}
	}
}

func TestJSONMasking(t *testing.T) {
	at := time.Date(2026, 4, 5, 6, 7, 8, 900000000, time.FixedZone("X", 3600))
	o := orders.Order{
		OrderID: "M-1", Amount: 100_00, Currency: "USD", Status: "PENDING", PaidAmount: 25_50,
		CustomerEmail: "jane@example.com", CustomerPhone: "+15550100", CreatedAt: at, UpdatedAt: at,
		Payments: []orders.Payment{
			{PaymentID: "MP-1", OrderID: "M-1", Amount: 25_50, Currency: "USD", Status: "SUCCESS", Method: "CARD",
				Details: "4242 4242 4242 4242", GatewayRef: "G-9", CreatedAt: at, UpdatedAt: at},
			{PaymentID: "MP-2", OrderID: "M-1", Amount: 1_00, Currency: "USD", Status: "FAILED", Method: "UPI",
				Details: "jane@okaxis", FailureReason: "TIMEOUT", CreatedAt: at, UpdatedAt: at},
		},
	}
	masked, err := json.Marshal(o.JSON(false))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"order_id":"M-1","order_amount":"100.00","currency":"USD","order_status":"PENDING","paid_amount":"25.50",` +
		`"outstanding_amount":"74.50","overpaid_amount":"0.00","customer_email":"j***@example.com","customer_phone":"*****0100",` +
		`"created_at":"2026-04-05T05:07:08.9Z","updated_at":"2026-04-05T05:07:08.9Z","payments":[` +
		`{"payment_id":"MP-1","order_id":"M-1","payment_amount":"25.50","currency":"USD","payment_status":"SUCCESS",` +
		`"payment_method":"CARD","payment_details":"**** **** **** 4242","gateway_ref":"G-9","failure_reason":"",` +
		`"created_at":"2026-04-05T05:07:08.9Z","updated_at":"2026-04-05T05:07:08.9Z"},` +
		`{"payment_id":"MP-2","order_id":"M-1","payment_amount":"1.00","currency":"USD","payment_status":"FAILED",` +
		`"payment_method":"UPI","payment_details":"j***@okaxis","gateway_ref":"","failure_reason":"TIMEOUT",` +
		`"created_at":"2026-04-05T05:07:08.9Z","updated_at":"2026-04-05T05:07:08.9Z"}]}`
	if string(masked) != want {
		t.Errorf("JSON(false) =\n%s\nwant\n%s", masked, want)
	}
	for _, secret := range []string{"jane@example.com", "5550100", "4242 4242 4242 4242", "jane@okaxis"} {
		if strings.Contains(string(masked), secret) {
			t.Errorf("JSON(false) contains %q", secret)
		}
	}
	full, _ := json.Marshal(o.JSON(true))
	for _, v := range []string{`"customer_email":"jane@example.com"`, `"customer_phone":"+15550100"`,
		`"payment_details":"4242 4242 4242 4242"`, `"payment_details":"jane@okaxis"`} {
		if !strings.Contains(string(full), v) {
			t.Errorf("JSON(true) lacks %s: %s", v, full)
		}
	}
	if p := o.Payments[0].JSON(false); p.PaymentDetails != "**** **** **** 4242" {
		t.Errorf("Payment.JSON(false).PaymentDetails = %q", p.PaymentDetails)
	}
}

func TestAmountsFormattedExactly(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mustCreate(t, s, orders.NewOrder{OrderID: "JPY-1", Amount: 1500, Currency: "JPY"})
	mustCreate(t, s, orders.NewOrder{OrderID: "KWD-1", Amount: 12_345, Currency: "KWD"})
	mustCreate(t, s, orders.NewOrder{OrderID: "USD-1", Amount: 9_007_199_254_740_993, Currency: "USD"}) // beyond float64
	record(t, s,
		ledger.Payment{PaymentID: "JP-1", OrderID: "JPY-1", Amount: 1501, Status: ledger.StatusSuccess, Method: "CARD"},
		ledger.Payment{PaymentID: "KP-1", OrderID: "KWD-1", Amount: 1, Status: ledger.StatusSuccess, Method: "CARD"},
	)
	for _, tc := range []struct {
		id                                  string
		amount, paid, outstanding, overpaid string
		payment                             string
	}{
		{"JPY-1", "1500", "1501", "0", "1", "1501"},
		{"KWD-1", "12.345", "0.001", "12.344", "0.000", "0.001"},
		{"USD-1", "90071992547409.93", "0.00", "90071992547409.93", "0.00", ""},
	} {
		o, err := s.Get(ctx, tc.id)
		if err != nil {
			t.Fatal(err)
		}
		j := o.JSON(false)
		if j.OrderAmount != tc.amount || j.PaidAmount != tc.paid || j.OutstandingAmount != tc.outstanding || j.OverpaidAmount != tc.overpaid {
			t.Errorf("%s: amounts %s/%s/%s/%s, want %s/%s/%s/%s", tc.id, j.OrderAmount, j.PaidAmount, j.OutstandingAmount,
				j.OverpaidAmount, tc.amount, tc.paid, tc.outstanding, tc.overpaid)
		}
		if tc.payment != "" && (len(j.Payments) != 1 || j.Payments[0].PaymentAmount != tc.payment) {
			t.Errorf("%s: payments %+v, want amount %s", tc.id, j.Payments, tc.payment)
		}
	}
}

// TestConcurrentCreate: 8 goroutines create the same id at once, half with
// one content and half with another. Exactly one creates it; the others
// get "identical" (same content as the winner) or ErrConflict, nothing else.
func TestConcurrentCreate(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	const workers, rounds = 8, 25
	for round := range rounds {
		id := fmt.Sprintf("RACE-%02d", round)
		variant := func(w int) orders.NewOrder {
			o := orders.NewOrder{OrderID: id, Amount: 100, Currency: "USD", CustomerEmail: "race@example.com"}
			if w%2 == 1 {
				o.CustomerPhone = "+15550199"
			}
			return o
		}
		created := make([]bool, workers)
		errs := make([]error, workers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := range workers {
			wg.Go(func() {
				<-start
				created[w], errs[w] = s.Create(ctx, variant(w))
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for w := range workers {
			if created[w] {
				if winner >= 0 {
					t.Fatalf("%s: created by workers %d and %d", id, winner, w)
				}
				winner = w
			}
		}
		if winner < 0 {
			t.Fatalf("%s: created by nobody; errors %v", id, errs)
		}
		for w := range workers {
			switch {
			case w == winner:
				if errs[w] != nil {
					t.Errorf("%s: winner %d: %v", id, w, errs[w])
				}
			case w%2 == winner%2:
				if errs[w] != nil {
					t.Errorf("%s: worker %d (same content as the winner): %v", id, w, errs[w])
				}
			default:
				if !errors.Is(errs[w], orders.ErrConflict) {
					t.Errorf("%s: worker %d (other content): err = %v, want ErrConflict", id, w, errs[w])
				}
			}
		}
		o, err := s.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := variant(winner).CustomerPhone; o.CustomerPhone != want {
			t.Errorf("%s: stored phone %q, want the winner's %q", id, o.CustomerPhone, want)
		}
	}
}

func TestSameJudgesARepeatByTheLaterRowsDate(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	first := orders.NewOrder{OrderID: "A", Amount: 100, Currency: "USD", CustomerEmail: "a@example.com"}
	dated := first
	dated.CreatedAt = at
	for _, c := range []struct {
		name      string
		first, o  orders.NewOrder
		wantEqual bool
	}{
		{"identical", first, first, true},
		{"later without a date takes the first's", dated, first, true},
		{"later with a date the first did not give", first, dated, false},
		{"same date", dated, dated, true},
		{"other amount", first, orders.NewOrder{OrderID: "A", Amount: 101, Currency: "USD", CustomerEmail: "a@example.com"}, false},
		{"other phone", first, orders.NewOrder{OrderID: "A", Amount: 100, Currency: "USD", CustomerEmail: "a@example.com", CustomerPhone: "+1555"}, false},
	} {
		if got := orders.Same(c.first, c.o); got != c.wantEqual {
			t.Errorf("%s: Same = %v, want %v", c.name, got, c.wantEqual)
		}
	}
}

// What Seal writes, OpenInto reads back, reusing its buffers; a ciphertext
// moved to another order does not open.
func TestSealAndOpenInto(t *testing.T) {
	store := newStore(t)
	s := orders.Sealer{Keys: store.Keys, BlindIndex: store.BlindIndex}
	var sealed orders.Sealed
	var opened orders.Opened
	for _, o := range []orders.NewOrder{
		{OrderID: "S-1", CustomerEmail: "jane@example.com", CustomerPhone: "+15550100"},
		{OrderID: "S-2", CustomerEmail: "ü@example.com"},
		{OrderID: "S-3"},
	} {
		if err := s.Seal(&sealed, o); err != nil {
			t.Fatal(err)
		}
		if err := s.OpenInto(&opened, []byte(o.OrderID), sealed.Email, sealed.Phone); err != nil {
			t.Fatal(err)
		}
		if string(opened.Email) != o.CustomerEmail || string(opened.Phone) != o.CustomerPhone {
			t.Errorf("%s: opened %q %q", o.OrderID, opened.Email, opened.Phone)
		}
		if (sealed.EmailIndex == nil) != (o.CustomerEmail == "") {
			t.Errorf("%s: email index %x", o.OrderID, sealed.EmailIndex)
		}
	}
	if err := s.Seal(&sealed, orders.NewOrder{OrderID: "S-4", CustomerEmail: "a@b.example"}); err != nil {
		t.Fatal(err)
	}
	if err := s.OpenInto(&opened, []byte("S-5"), sealed.Email, nil); !errors.Is(err, encryption.ErrDecrypt) {
		t.Errorf("moved ciphertext: %v, want ErrDecrypt", err)
	}
}
