package importer

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/records"
)

func orderRow(kv map[string]string) []string {
	v := make([]string, len(records.OrderColumns))
	for i, c := range records.OrderColumns {
		v[i] = kv[c]
	}
	return v
}

func paymentRow(kv map[string]string) []string {
	v := make([]string, len(records.PaymentColumns))
	for i, c := range records.PaymentColumns {
		v[i] = kv[c]
	}
	return v
}

func TestParseOrder(t *testing.T) {
	good := map[string]string{"order_id": "O-1", "order_amount": "12.30", "currency": "USD",
		"created_at": "2026-03-01 10:00:00", "customer_email": "jane@example.com", "customer_phone": "+15550001"}
	o, fe := ParseOrder(orderRow(good))
	if fe != nil || o.Amount != 1230 || o.Currency != "USD" || !o.CreatedAt.Equal(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("%+v %v", o, fe)
	}
	o, fe = ParseOrder(orderRow(map[string]string{"order_id": "O-2", "order_amount": "5"}))
	if fe != nil || o.Currency != "USD" || o.Amount != 500 || !o.CreatedAt.IsZero() {
		t.Fatalf("defaults: %+v %v", o, fe)
	}
	o, fe = ParseOrder(orderRow(map[string]string{"order_id": "O-3", "order_amount": "500", "currency": "JPY", "created_at": "2026-03-01T10:00:00+02:00"}))
	if fe != nil || o.Amount != 500 || o.CreatedAt.Hour() != 8 {
		t.Fatalf("JPY/offset: %+v %v", o, fe)
	}
	cases := []struct {
		name string
		set  map[string]string
		code string
		in   string // the message names this
	}{
		{"missing id", map[string]string{"order_id": ""}, ledger.CodeMissingField, "order_id"},
		{"missing amount", map[string]string{"order_amount": ""}, ledger.CodeMissingField, "order_amount"},
		{"three decimals", map[string]string{"order_amount": "12.345"}, ledger.CodeBadAmount, "order_amount"},
		{"negative", map[string]string{"order_amount": "-1.00"}, ledger.CodeBadAmount, "order_amount"},
		{"exponent", map[string]string{"order_amount": "1e3"}, ledger.CodeBadAmount, "order_amount"},
		{"thousands", map[string]string{"order_amount": "1,000.00"}, ledger.CodeBadAmount, "order_amount"},
		{"zero", map[string]string{"order_amount": "0.00"}, ledger.CodeBadAmount, "order_amount"},
		{"JPY fraction", map[string]string{"order_amount": "1.5", "currency": "JPY"}, ledger.CodeBadAmount, "JPY"},
		{"unknown currency", map[string]string{"currency": "XXX"}, ledger.CodeBadCurrency, "XXX"},
		{"lower-case currency", map[string]string{"currency": "usd"}, ledger.CodeBadCurrency, "usd"},
		{"bad date", map[string]string{"created_at": "2026-13-45"}, ledger.CodeBadDate, "created_at"},
		{"words for a date", map[string]string{"created_at": "yesterday"}, ledger.CodeBadDate, "created_at"},
		{"id with space", map[string]string{"order_id": "O 1"}, ledger.CodeMalformed, "order_id"},
		{"id too long", map[string]string{"order_id": strings.Repeat("x", 65)}, ledger.CodeMalformed, "order_id"},
		{"not an email", map[string]string{"customer_email": "jane"}, ledger.CodeMalformed, "customer_email"},
	}
	for _, c := range cases {
		row := maps.Clone(good)
		maps.Copy(row, c.set)
		_, fe := ParseOrder(orderRow(row))
		if fe == nil || fe.Code != c.code || !strings.Contains(fe.Message, c.in) {
			t.Errorf("%s: got %v, want %s naming %q", c.name, fe, c.code, c.in)
		}
		if fe != nil && strings.Contains(fe.Message, "jane@example.com") {
			t.Errorf("%s: message echoes the email", c.name)
		}
	}
}

func TestParsePayment(t *testing.T) {
	good := map[string]string{"payment_id": "P-1", "order_id": "O-1", "payment_amount": "10.00", "payment_method": "CARD",
		"payment_status": "SUCCESS", "payment_details": "4111 1111 1111 1111", "gateway_ref": "gw_1", "currency": "USD"}
	p, fe := ParsePayment(paymentRow(good))
	if fe != nil || p.Amount != 1000 || p.Status != ledger.StatusSuccess || p.Method != "CARD" || p.Details != "4111 1111 1111 1111" {
		t.Fatalf("%+v %v", p, fe)
	}
	p, fe = ParsePayment(paymentRow(map[string]string{"payment_id": "P-2", "order_id": "O-1", "payment_amount": "1", "payment_method": "UPI"}))
	if fe != nil || p.Status != ledger.StatusPending || p.Currency != "" {
		t.Fatalf("defaults: %+v %v", p, fe)
	}
	cases := []struct {
		name string
		set  map[string]string
		code string
		in   string
	}{
		{"missing payment_id", map[string]string{"payment_id": ""}, ledger.CodeMissingField, "payment_id"},
		{"missing order_id", map[string]string{"order_id": ""}, ledger.CodeMissingField, "order_id"},
		{"missing amount", map[string]string{"payment_amount": ""}, ledger.CodeMissingField, "payment_amount"},
		{"missing method", map[string]string{"payment_method": ""}, ledger.CodeMissingField, "payment_method"},
		{"bad amount", map[string]string{"payment_amount": "ten"}, ledger.CodeBadAmount, "payment_amount"},
		{"bad currency", map[string]string{"currency": "US$"}, ledger.CodeBadCurrency, "currency is not an active ISO 4217 code (got a 3-character value)"},
		{"bad method", map[string]string{"payment_method": "CHEQUE"}, ledger.CodeBadMethod, "CHEQUE"},
		{"bad status", map[string]string{"payment_status": "DONE"}, ledger.CodeBadStatus, "DONE"},
		{"bad date", map[string]string{"created_at": "31/12/2026"}, ledger.CodeBadDate, "created_at"},
	}
	for _, c := range cases {
		row := maps.Clone(good)
		maps.Copy(row, c.set)
		_, fe := ParsePayment(paymentRow(row))
		if fe == nil || fe.Code != c.code || !strings.Contains(fe.Message, c.in) {
			t.Errorf("%s: got %v, want %s naming %q", c.name, fe, c.code, c.in)
		}
		if fe != nil && strings.Contains(fe.Message, "4111") {
			t.Errorf("%s: message echoes payment details", c.name)
		}
	}
}

// Sentinels of the leak tests: a card number, an email and a phone, in the
// spellings a file may give them.
var sentinels = []string{"4000056655665556", "4000 0566 5566 5556", "victim.leak@example.com", "+14155550123"}

// leaks returns the sentinel, or recognisable part of one, that msg repeats.
func leaks(msg string) string {
	for _, s := range append(sentinels, "victim.leak", "14155550123", "5566") {
		if strings.Contains(msg, s) {
			return s
		}
	}
	return ""
}

// TestRejectMessagesNeverRepeatValues: every reject message of row
// validation names the field and the rule, never the value (SPEC section 4).
func TestRejectMessagesNeverRepeatValues(t *testing.T) {
	goodOrder := map[string]string{"order_id": "O-1", "order_amount": "12.30", "currency": "USD"}
	goodPayment := map[string]string{"payment_id": "P-1", "order_id": "O-1", "payment_amount": "10.00", "payment_method": "CARD", "currency": "USD"}
	type tc struct {
		field, value, code, rule string
	}
	var orderCases, paymentCases []tc
	for _, v := range sentinels {
		orderCases = append(orderCases,
			tc{"order_id", v + " x", ledger.CodeMalformed, "order_id holds white space or control characters"},
			tc{"order_amount", v + "x", ledger.CodeBadAmount, "order_amount is not a valid amount"},
			tc{"order_amount", v + ".123", ledger.CodeBadAmount, "order_amount is not a valid amount"},
			tc{"currency", v, ledger.CodeBadCurrency, "currency is not an active ISO 4217 code"},
			tc{"created_at", v, ledger.CodeBadDate, "created_at is not RFC 3339 or YYYY-MM-DD HH:MM:SS"},
			tc{"customer_email", v + "\x00", ledger.CodeMalformed, "customer_email is not an email address"},
			tc{"customer_phone", v + "\x01", ledger.CodeMalformed, "customer_phone must be at most"},
		)
		paymentCases = append(paymentCases,
			tc{"payment_id", v + "\t", ledger.CodeMalformed, "payment_id holds white space or control characters"},
			tc{"order_id", "\x01" + v, ledger.CodeMalformed, "order_id holds white space or control characters"},
			tc{"payment_amount", v + "e3", ledger.CodeBadAmount, "payment_amount is not a valid amount"},
			tc{"currency", v, ledger.CodeBadCurrency, "currency is not an active ISO 4217 code"},
			tc{"payment_method", v, ledger.CodeBadMethod, "payment_method is not one of CARD, UPI"},
			tc{"payment_status", v, ledger.CodeBadStatus, "payment_status is not PENDING, SUCCESS or FAILED"},
			tc{"created_at", v, ledger.CodeBadDate, "created_at is not RFC 3339"},
		)
	}
	check := func(kind string, c tc, fe *FieldError) {
		t.Helper()
		if fe == nil || fe.Code != c.code || !strings.Contains(fe.Message, c.rule) {
			t.Errorf("%s %s=%q: got %v, want %s %q", kind, c.field, c.value, fe, c.code, c.rule)
			return
		}
		if s := leaks(fe.Message); s != "" {
			t.Errorf("%s %s=%q: message %q repeats %q", kind, c.field, c.value, fe.Message, s)
		}
	}
	for _, c := range orderCases {
		row := maps.Clone(goodOrder)
		row[c.field] = c.value
		_, fe := ParseOrder(orderRow(row))
		check("order", c, fe)
	}
	for _, c := range paymentCases {
		row := maps.Clone(goodPayment)
		row[c.field] = c.value
		_, fe := ParsePayment(paymentRow(row))
		check("payment", c, fe)
	}
	// A value that cannot be sensitive is shown, so the row is easy to fix.
	_, fe := ParsePayment(paymentRow(map[string]string{"payment_id": "P-1", "order_id": "O-1", "payment_amount": "1", "payment_method": "cash"}))
	if fe == nil || !strings.HasSuffix(fe.Message, `(got "cash")`) {
		t.Errorf("safe value not shown: %v", fe)
	}
	_, fe = ParseOrder(orderRow(map[string]string{"order_id": "O-1", "order_amount": "-1"}))
	if fe == nil || fe.Message != `order_amount is not a valid amount: sign '-' not allowed (amounts are unsigned)` {
		t.Errorf("amount reason: %v", fe)
	}
}

func TestImportIDDependsOnContentTypeAndOptions(t *testing.T) {
	a := ImportID("abc", "orders", 1000)
	if a != ImportID("abc", "orders", 1000) || len(a) != 32 {
		t.Fatal("not stable")
	}
	for _, b := range []string{ImportID("abd", "orders", 1000), ImportID("abc", "", 1000), ImportID("abc", "orders", 999)} {
		if a == b {
			t.Fatal("different import, same id")
		}
	}
}
