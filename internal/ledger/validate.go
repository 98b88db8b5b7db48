package ledger

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/acme/payments/internal/ident"
	"github.com/acme/payments/internal/mask"
	"github.com/acme/payments/internal/money"
	"github.com/acme/payments/internal/records"
)

// Column limits of migrations/00001_core.sql. Checking them here turns what
// would be a strict-mode error failing the whole batch into one rejected
// row.
const (
	maxGatewayRefLen    = 128 // VARCHAR(128)
	maxFailureReasonLen = 255 // VARCHAR(255)
	maxReferenceLen     = 191 // payment_events.reference VARCHAR(191)
	maxNoteLen          = 255 // payment_events.note VARCHAR(255)
	maxDetailsColumn    = 512 // payment_details VARBINARY(512)
	// Ciphertext overhead: version, key-id length, key id (at most 32),
	// nonce (12) and GCM tag (16).
	maxDetailsLen = maxDetailsColumn - (2 + 32 + 12 + 16)
)

// validate checks one payment's fields and returns a reject code and
// message, or "" when it is acceptable. p.Status must already be defaulted.
func validate(p *Payment) (code, msg string) {
	if code, msg := checkID("payment_id", p.PaymentID); code != "" {
		return code, msg
	}
	if code, msg := checkID("order_id", p.OrderID); code != "" {
		return code, msg
	}
	if p.Amount <= 0 {
		return CodeBadAmount, fmt.Sprintf("payment_amount must be positive, got %d", p.Amount)
	}
	if p.Currency != "" {
		if _, ok := money.Lookup(p.Currency); !ok {
			return CodeBadCurrency, fmt.Sprintf("currency %s is not an active ISO 4217 code", mask.Show(p.Currency))
		}
	}
	if !p.Status.valid() {
		return CodeBadStatus, fmt.Sprintf("payment_status %s is not PENDING, SUCCESS or FAILED", mask.Show(string(p.Status)))
	}
	if p.Method == "" {
		return CodeMissingField, "payment_method is empty"
	}
	if !methods[p.Method] {
		return CodeBadMethod, fmt.Sprintf("payment_method %s is not one of CARD, UPI, NETBANKING, WALLET, BANK_TRANSFER, CASH, VOUCHER", mask.Show(p.Method))
	}
	if len(p.Details) > maxDetailsLen {
		// Never echo the details themselves.
		return CodeMalformed, fmt.Sprintf("payment_details is %d bytes, at most %d allowed", len(p.Details), maxDetailsLen)
	}
	if m := records.CheckText(p.Details); m != "" {
		return CodeMalformed, "payment_details " + m
	}
	if !p.CreatedAt.IsZero() {
		if y := p.CreatedAt.UTC().Year(); y < 1000 || y > 9999 {
			return CodeBadDate, fmt.Sprintf("created_at year %d is outside 1000..9999", y)
		}
	}
	return checkSettlementFields(p)
}

// validateSettlement checks the fields a Settlement carries.
func validateSettlement(p *Payment) (code, msg string) {
	if code, msg := checkID("payment_id", p.PaymentID); code != "" {
		return code, msg
	}
	if !p.Status.Terminal() {
		return CodeBadStatus, fmt.Sprintf("settlement status %s is not SUCCESS or FAILED", mask.Show(string(p.Status)))
	}
	return checkSettlementFields(p)
}

func checkSettlementFields(p *Payment) (code, msg string) {
	// Trimmed as an import file's value is, so a stored reason reads back
	// the same from a downloaded file.
	p.FailureReason = strings.TrimSpace(p.FailureReason)
	if p.GatewayRef != "" {
		if m := checkToken(p.GatewayRef, maxGatewayRefLen); m != "" {
			return CodeMalformed, "gateway_ref " + m
		}
		if m := records.CheckText(p.GatewayRef); m != "" {
			return CodeMalformed, "gateway_ref " + m
		}
	}
	// Free text stored as it came, so it must be text a downloaded file
	// can carry back.
	if m := records.CheckText(p.FailureReason); m != "" {
		return CodeMalformed, "failure_reason " + m
	}
	if n := utf8.RuneCountInString(p.FailureReason); n > maxFailureReasonLen {
		return CodeMalformed, fmt.Sprintf("failure_reason is %d characters, at most %d allowed", n, maxFailureReasonLen)
	}
	return "", ""
}

// checkID applies the one id rule of package ident.
func checkID(field, id string) (code, msg string) {
	if id == "" {
		return CodeMissingField, field + " is empty"
	}
	if m := ident.Check(id); m != "" {
		return CodeMalformed, field + " " + m
	}
	return "", ""
}

// checkToken vets a gateway reference. Surrounding spaces are refused
// rather than trimmed: the columns' PAD SPACE collation would treat "A1"
// and "A1 " as the same key while Go does not, turning them into an
// endless duplicate-key conflict.
func checkToken(s string, maxLen int) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	if n := utf8.RuneCountInString(s); n > maxLen {
		return fmt.Sprintf("is %d characters, at most %d allowed", n, maxLen)
	}
	if strings.TrimSpace(s) != s {
		return "has leading or trailing spaces"
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "contains control characters"
	}
	return ""
}
