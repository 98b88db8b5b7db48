package orders

import (
	"time"

	"github.com/acme/payments/internal/mask"
	"github.com/acme/payments/internal/money"
)

// OrderJSON is an order as the API returns it (SPEC section 6): the
// orders file columns, amounts as exact decimal strings in the major unit,
// plus the derived order_status, paid_amount, outstanding_amount,
// overpaid_amount and payments.
type OrderJSON struct {
	OrderID           string `json:"order_id"`
	OrderAmount       string `json:"order_amount"`
	Currency          string `json:"currency"`
	OrderStatus       string `json:"order_status"`
	PaidAmount        string `json:"paid_amount"`
	OutstandingAmount string `json:"outstanding_amount"`
	OverpaidAmount    string `json:"overpaid_amount"`
	CustomerEmail     string `json:"customer_email"`
	CustomerPhone     string `json:"customer_phone"`
	CreatedAt         string `json:"created_at"` // RFC 3339, UTC
	UpdatedAt         string `json:"updated_at"` // RFC 3339, UTC
	// Payments is omitted when the order's payments were not loaded
	// (FindByEmail) and [] for a loaded order without payments: omitzero
	// omits only a nil slice.
	Payments []PaymentJSON `json:"payments,omitzero"`
}

// PaymentJSON is a payment as the API returns it: the payments file
// columns, the amount as an exact decimal string in the major unit.
type PaymentJSON struct {
	PaymentID      string `json:"payment_id"`
	OrderID        string `json:"order_id"`
	PaymentAmount  string `json:"payment_amount"`
	Currency       string `json:"currency"`
	PaymentStatus  string `json:"payment_status"`
	PaymentMethod  string `json:"payment_method"`
	PaymentDetails string `json:"payment_details"`
	GatewayRef     string `json:"gateway_ref"`
	FailureReason  string `json:"failure_reason"`
	CreatedAt      string `json:"created_at"` // RFC 3339, UTC
	UpdatedAt      string `json:"updated_at"` // RFC 3339, UTC
}

// JSON returns the order's API view. Unless pii is set (the caller's token
// has the pii scope), customer_email, customer_phone and every
// payment_details are masked with package mask.
func (o Order) JSON(pii bool) OrderJSON {
	j := OrderJSON{
		OrderID:           o.OrderID,
		OrderAmount:       formatAmount(o.Amount, o.Currency),
		Currency:          o.Currency,
		OrderStatus:       o.Status,
		PaidAmount:        formatAmount(o.PaidAmount, o.Currency),
		OutstandingAmount: formatAmount(o.Outstanding(), o.Currency),
		OverpaidAmount:    formatAmount(o.Overpaid(), o.Currency),
		CustomerEmail:     o.CustomerEmail,
		CustomerPhone:     o.CustomerPhone,
		CreatedAt:         formatTime(o.CreatedAt),
		UpdatedAt:         formatTime(o.UpdatedAt),
	}
	if !pii {
		j.CustomerEmail = mask.Email(o.CustomerEmail)
		j.CustomerPhone = mask.Phone(o.CustomerPhone)
	}
	if o.Payments != nil {
		j.Payments = make([]PaymentJSON, len(o.Payments))
		for i, p := range o.Payments {
			j.Payments[i] = p.JSON(pii)
		}
	}
	return j
}

// JSON returns the payment's API view; payment_details is masked unless
// pii is set.
func (p Payment) JSON(pii bool) PaymentJSON {
	details := p.Details
	if !pii {
		details = mask.Details(details)
	}
	return PaymentJSON{
		PaymentID:      p.PaymentID,
		OrderID:        p.OrderID,
		PaymentAmount:  formatAmount(p.Amount, p.Currency),
		Currency:       p.Currency,
		PaymentStatus:  p.Status,
		PaymentMethod:  p.Method,
		PaymentDetails: details,
		GatewayRef:     p.GatewayRef,
		FailureReason:  p.FailureReason,
		CreatedAt:      formatTime(p.CreatedAt),
		UpdatedAt:      formatTime(p.UpdatedAt),
	}
}

// formatAmount renders minor units in the currency's major unit. Orders
// read by Store always have a known currency; for a hand-built value with
// an unknown one it returns "" rather than a number off by a power of ten.
func formatAmount(minor int64, currency string) string {
	s, err := money.Format(minor, currency)
	if err != nil {
		return ""
	}
	return s
}

// formatTime renders t in UTC as RFC 3339 with as many fraction digits as
// it has (at most microseconds from DATETIME(6)), the form import files
// accept, so values round-trip exactly.
func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}
