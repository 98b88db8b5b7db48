package importer

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/acme/payments/internal/ident"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/mask"
	"github.com/acme/payments/internal/money"
	"github.com/acme/payments/internal/orders"
)

// Reject is a row the import refused, with where it was and why.
type Reject struct {
	Line, Record int64
	Code         string // a reason code of SPEC section 5
	Message      string // never holds sensitive field values
}

// Column positions in records.OrderColumns / records.PaymentColumns.
const (
	oID, oAmount, oCurrency, oCreated, oEmail, oPhone = 0, 1, 2, 3, 4, 5

	pID, pOrderID, pAmount, pMethod, pStatus, pDetails, pGatewayRef, pCurrency, pCreated, pFailure = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
)

// FieldError is why a row was refused: a reason code and a message that
// names the field and the rule, and shows the value only when mask.Safe
// says it cannot be sensitive (SPEC section 4).
type FieldError struct{ Code, Message string }

func (e *FieldError) Error() string { return e.Code + ": " + e.Message }

func bad(code, format string, args ...any) *FieldError {
	return &FieldError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ParseOrder validates an orders record's values (aligned with
// records.OrderColumns). A zero CreatedAt means the file gave none.
func ParseOrder(v []string) (orders.NewOrder, *FieldError) {
	var o orders.NewOrder
	var fe *FieldError
	if o.OrderID, fe = parseID("order_id", v[oID]); fe != nil {
		return o, fe
	}
	if o.Currency, fe = parseCurrency(v[oCurrency], orders.DefaultCurrency); fe != nil {
		return o, fe
	}
	if o.Amount, fe = parseAmount("order_amount", v[oAmount], o.Currency); fe != nil {
		return o, fe
	}
	if o.CreatedAt, fe = parseDate(v[oCreated]); fe != nil {
		return o, fe
	}
	o.CustomerEmail = strings.TrimSpace(v[oEmail])
	o.CustomerPhone = strings.TrimSpace(v[oPhone])
	if msg := orders.CheckContact(o.CustomerEmail, o.CustomerPhone); msg != "" {
		return o, bad(ledger.CodeMalformed, "%s", msg)
	}
	return o, nil
}

// ParsePayment validates a payments record's values (aligned with
// records.PaymentColumns). An empty currency means the order's.
func ParsePayment(v []string) (ledger.Payment, *FieldError) {
	var p ledger.Payment
	var fe *FieldError
	if p.PaymentID, fe = parseID("payment_id", v[pID]); fe != nil {
		return p, fe
	}
	if p.OrderID, fe = parseID("order_id", v[pOrderID]); fe != nil {
		return p, fe
	}
	cur := strings.TrimSpace(v[pCurrency])
	if cur != "" {
		if _, ok := money.Lookup(cur); !ok {
			return p, bad(ledger.CodeBadCurrency, "currency is not an active ISO 4217 code (got %s)", mask.Show(cur))
		}
	}
	p.Currency = cur
	amountCur := cur
	if amountCur == "" {
		amountCur = orders.DefaultCurrency
	}
	if p.Amount, fe = parseAmount("payment_amount", v[pAmount], amountCur); fe != nil {
		return p, fe
	}
	method := strings.TrimSpace(v[pMethod])
	switch method {
	case "":
		return p, bad(ledger.CodeMissingField, "payment_method is empty")
	case "CARD", "UPI", "NETBANKING", "WALLET", "BANK_TRANSFER", "CASH", "VOUCHER":
		p.Method = method
	default:
		return p, bad(ledger.CodeBadMethod, "payment_method is not one of CARD, UPI, NETBANKING, WALLET, BANK_TRANSFER, CASH, VOUCHER (got %s)", mask.Show(method))
	}
	switch status := strings.TrimSpace(v[pStatus]); status {
	case "":
		p.Status = ledger.StatusPending
	case "PENDING", "SUCCESS", "FAILED":
		p.Status = ledger.Status(status)
	default:
		return p, bad(ledger.CodeBadStatus, "payment_status is not PENDING, SUCCESS or FAILED (got %s)", mask.Show(status))
	}
	p.Details = v[pDetails]
	p.GatewayRef = strings.TrimSpace(v[pGatewayRef])
	p.FailureReason = strings.TrimSpace(v[pFailure])
	if p.CreatedAt, fe = parseDate(v[pCreated]); fe != nil {
		return p, fe
	}
	return p, nil
}

func parseID(name, s string) (string, *FieldError) {
	switch {
	case s == "":
		return "", bad(ledger.CodeMissingField, "%s is empty", name)
	case ident.Check(s) != "":
		// ident.Check's own message repeats the id; this one says only
		// which part of the rule it breaks.
		rule := "holds white space or control characters"
		if len(s) > ident.MaxLen {
			rule = fmt.Sprintf("is longer than %d bytes", ident.MaxLen)
		} else if !utf8.ValidString(s) {
			rule = "is not valid UTF-8"
		}
		return "", bad(ledger.CodeMalformed, "%s %s", name, rule)
	}
	return s, nil
}

// parseCurrency: an empty value takes def; codes are case-sensitive (ISO
// codes are upper-case; "usd" is a mistake worth reporting).
func parseCurrency(s, def string) (string, *FieldError) {
	s = strings.TrimSpace(s)
	if s == "" {
		return def, nil
	}
	if _, ok := money.Lookup(s); !ok {
		return "", bad(ledger.CodeBadCurrency, "currency is not an active ISO 4217 code (got %s)", mask.Show(s))
	}
	return s, nil
}

func parseAmount(name, s, currency string) (int64, *FieldError) {
	if s == "" {
		return 0, bad(ledger.CodeMissingField, "%s is empty", name)
	}
	v, err := money.Parse(s, currency)
	if err != nil {
		return 0, bad(ledger.CodeBadAmount, "%s is not a valid amount: %s", name, amountReason(err, s))
	}
	return v, nil
}

// amountReason is money.Parse's reason for refusing s, without s: its
// errors read `bad amount "<s>": <reason>`, and the reasons name at most one
// character of s. Any other shape gives the rule instead.
func amountReason(err error, s string) string {
	if errors.Is(err, money.ErrBadCurrency) {
		return "the currency is not an active ISO 4217 code"
	}
	msg := err.Error()
	reason, ok := strings.CutPrefix(msg, fmt.Sprintf("%v %q: ", money.ErrBadAmount, s))
	if !ok || (len(s) > 1 && strings.Contains(reason, s)) {
		return "an amount is DIGITS or DIGITS.DIGITS, with no sign, grouping or exponent"
	}
	return reason
}

// Dates are UTC: RFC 3339 (any offset, converted) or "YYYY-MM-DD HH:MM:SS".
func parseDate(s string) (time.Time, *FieldError) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	// The separator tells the layout, so one parse is enough.
	layout := time.RFC3339Nano
	if len(s) > 10 && s[10] == ' ' {
		layout = time.DateTime
	}
	t, err := time.ParseInLocation(layout, s, time.UTC)
	if err != nil {
		return time.Time{}, bad(ledger.CodeBadDate, "created_at is not RFC 3339 or YYYY-MM-DD HH:MM:SS (got %s)", mask.Show(s))
	}
	if y := t.UTC().Year(); y < 1970 || y > 9999 {
		return time.Time{}, bad(ledger.CodeBadDate, "created_at is out of range (years 1970 to 9999)")
	}
	return t.UTC().Truncate(time.Microsecond), nil
}
