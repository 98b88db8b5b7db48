// Package orders is the order store behind the HTTP API: POST /orders,
// GET /orders/{id} and GET /orders?customer_email= (SPEC sections 3, 4, 6).
// Its Sealer is the one codec of an order row's sensitive fields, which
// bulk imports and exports use too, and Row the one shape of a stored
// orders row.
//
// Payments are only read here; package ledger writes them.
package orders

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/ident"
	"github.com/acme/payments/internal/mask"
	"github.com/acme/payments/internal/money"
	"github.com/acme/payments/internal/records"
)

// Errors returned (wrapped) by Store methods; test with errors.Is.
var (
	// ErrConflict: an order with this id exists with other content (409).
	ErrConflict = errors.New("order already exists with different content")
	// ErrNotFound: no such order or payment (404).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the input breaks a field rule; the error message names
	// the field but never echoes customer data (400).
	ErrInvalid = errors.New("invalid order")
)

// Field limits. The importer checks rows with CheckContact too, so an order
// accepted by one path is accepted by the other.
const (
	maxEmailLen = 254 // the longest deliverable address (RFC 5321 path)
	maxPhoneLen = 32
	// DefaultCurrency is used when NewOrder.Currency is empty, as for an
	// import file without a currency column.
	DefaultCurrency = "USD"
	// MaxFindResults bounds FindByEmail.
	MaxFindResults = 1000
)

// Store reads and creates orders. It is safe for concurrent use.
type Store struct {
	DB *sqlx.DB
	// Keys encrypts and decrypts customer_email, customer_phone and
	// payment_details.
	Keys *encryption.Keyring
	// BlindIndex computes customer_email_bidx.
	BlindIndex *encryption.BlindIndex
}

// NewOrder is an order to create. Amount is in minor units of Currency.
type NewOrder struct {
	OrderID  string
	Amount   int64
	Currency string // "" means DefaultCurrency
	// CustomerEmail and CustomerPhone are optional; surrounding spaces are
	// trimmed, as on import.
	CustomerEmail, CustomerPhone string
	// CreatedAt is optional (the API never sets it; an import row may).
	// Zero means now; when set, a repeat of the order with another time is
	// a conflict.
	CreatedAt time.Time
}

// Payment is a stored payment with its details decrypted.
type Payment struct {
	PaymentID, OrderID string
	Amount             int64 // minor units of Currency
	Currency           string
	Status             string // PENDING, SUCCESS or FAILED
	Method             string
	Details            string // plaintext; mask it unless the caller may see PII
	GatewayRef         string
	FailureReason      string
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// Order is a stored order with its customer fields decrypted.
type Order struct {
	OrderID    string
	Amount     int64 // minor units of Currency
	Currency   string
	Status     string // PENDING or COMPLETED
	PaidAmount int64  // sum of SUCCESS payments
	// CustomerEmail and CustomerPhone are plaintext ("" when not given);
	// mask them unless the caller may see PII.
	CustomerEmail, CustomerPhone string
	CreatedAt, UpdatedAt         time.Time
	// Payments is nil when not loaded (FindByEmail) and non-nil, possibly
	// empty, from Get.
	Payments []Payment
}

// Outstanding is what remains to be paid: Amount - PaidAmount, at least 0.
func (o Order) Outstanding() int64 { return max(o.Amount-o.PaidAmount, 0) }

// Overpaid is what was paid beyond the amount: PaidAmount - Amount, at
// least 0.
func (o Order) Overpaid() int64 { return max(o.PaidAmount-o.Amount, 0) }

// Create stores a new order. When the id already exists, an identical
// order (same amount, currency, email and phone, compared as plaintext;
// created_at too when o sets it) gives created=false and no error, and any
// other gives an error wrapping ErrConflict. Invalid input gives an error
// wrapping ErrInvalid that names the field.
//
// It is safe against concurrent Creates and imports of the same id: the
// INSERT decides, and only a duplicate-key failure (MySQL 1062) leads to
// reading and comparing the committed row.
func (s *Store) Create(ctx context.Context, o NewOrder) (created bool, err error) {
	o, err = normalize(o)
	if err != nil {
		return false, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	createdAt := o.CreatedAt
	if createdAt.IsZero() {
		createdAt = now
	}
	var sealed Sealed
	if err := s.sealer().Seal(&sealed, o); err != nil {
		return false, err
	}
	_, err = s.DB.ExecContext(ctx, `INSERT INTO orders (order_id, order_amount, currency, order_status, paid_amount,
		customer_email, customer_phone, customer_email_bidx, created_at, updated_at)
		VALUES (?, ?, ?, 'PENDING', 0, ?, ?, ?, ?, ?)`,
		o.OrderID, o.Amount, o.Currency, database.NullBytes(sealed.Email), database.NullBytes(sealed.Phone),
		database.NullBytes(sealed.EmailIndex), createdAt, now)
	if err == nil {
		return true, nil
	}
	if !database.IsDuplicateKey(err) {
		return false, fmt.Errorf("create order %s: %w", o.OrderID, err)
	}
	// Autocommit: this read sees the row whose commit made our INSERT fail.
	var stored Row
	err = s.DB.GetContext(ctx, &stored, "SELECT "+RowColumns+" FROM orders WHERE order_id = ?", o.OrderID)
	if err != nil {
		return false, fmt.Errorf("create order %s: read existing order: %w", o.OrderID, err)
	}
	same, err := s.sealer().Matches(stored, o)
	if err != nil {
		return false, fmt.Errorf("create order %s: %w", o.OrderID, err)
	}
	if !same {
		return false, fmt.Errorf("order %s: %w", o.OrderID, ErrConflict)
	}
	return false, nil
}

// normalize trims and defaults o like an import row and checks the field
// rules of internal/importer (ParseOrder).
func normalize(o NewOrder) (NewOrder, error) {
	invalid := func(format string, args ...any) (NewOrder, error) {
		return NewOrder{}, fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if msg := ident.Check(o.OrderID); msg != "" {
		return invalid("order_id %s", msg)
	}
	if o.Currency == "" {
		o.Currency = DefaultCurrency
	}
	if _, ok := money.Lookup(o.Currency); !ok {
		return invalid("currency %q is not an active ISO 4217 code", mask.Clip(o.Currency))
	}
	if o.Amount <= 0 {
		return invalid("order_amount must be positive")
	}
	o.CustomerEmail = strings.TrimSpace(o.CustomerEmail)
	o.CustomerPhone = strings.TrimSpace(o.CustomerPhone)
	if msg := CheckContact(o.CustomerEmail, o.CustomerPhone); msg != "" {
		return invalid("%s", msg)
	}
	if !o.CreatedAt.IsZero() {
		o.CreatedAt = o.CreatedAt.UTC().Truncate(time.Microsecond) // DATETIME(6)
		if y := o.CreatedAt.Year(); y < 1970 || y > 9999 {
			return invalid("created_at is out of range")
		}
	}
	return o, nil
}

// CheckContact checks trimmed customer contact fields (either may be
// empty) and returns what is wrong, naming the field, or "". The message
// never echoes the value. Neither field may hold a control character,
// CR and LF included: an email reaches mail headers ("a\r\nBcc: …").
func CheckContact(email, phone string) string {
	if email != "" && (len(email) > maxEmailLen || !strings.Contains(email, "@") || records.CheckText(email) != "" || hasControl(email)) {
		return "customer_email is not an email address"
	}
	if phone != "" && (len(phone) > maxPhoneLen || records.CheckText(phone) != "" || hasControl(phone)) {
		return fmt.Sprintf("customer_phone must be at most %d bytes of text without control characters", maxPhoneLen)
	}
	return ""
}

// hasControl reports whether s holds a control character (C0, DEL, C1) or
// a Unicode line or paragraph separator.
func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
	}) >= 0
}

// Get returns an order with its payments, ordered by created_at then
// payment_id. The error wraps ErrNotFound for an unknown id.
func (s *Store) Get(ctx context.Context, orderID string) (Order, error) {
	// One REPEATABLE READ snapshot for both reads, so paid_amount and the
	// payments listed always agree even while payments are being recorded.
	tx, err := s.DB.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return Order{}, fmt.Errorf("get order %s: begin: %w", orderID, err)
	}
	defer tx.Rollback() // read-only: nothing to commit

	var row Row
	err = tx.GetContext(ctx, &row, "SELECT "+RowColumns+" FROM orders WHERE order_id = ?", orderID)
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, fmt.Errorf("order %s: %w", orderID, ErrNotFound)
	}
	if err != nil {
		return Order{}, fmt.Errorf("get order %s: %w", orderID, err)
	}
	o, err := s.sealer().Open(row)
	if err != nil {
		return Order{}, err
	}

	var rows []paymentRow
	err = tx.SelectContext(ctx, &rows, "SELECT "+paymentColumns+
		" FROM payments WHERE order_id = ? ORDER BY created_at, payment_id", orderID)
	if err != nil {
		return Order{}, fmt.Errorf("get order %s: read payments: %w", orderID, err)
	}
	o.Payments = make([]Payment, 0, len(rows))
	for _, r := range rows {
		p, err := s.decodePayment(r)
		if err != nil {
			return Order{}, err
		}
		o.Payments = append(o.Payments, p)
	}
	return o, nil
}

// Payment reads one payment, decrypting only its own details.
func (s *Store) Payment(ctx context.Context, paymentID string) (Payment, error) {
	var r paymentRow
	err := s.DB.GetContext(ctx, &r, "SELECT "+paymentColumns+" FROM payments WHERE payment_id = ?", paymentID)
	if errors.Is(err, sql.ErrNoRows) {
		return Payment{}, fmt.Errorf("payment %s: %w", paymentID, ErrNotFound)
	}
	if err != nil {
		return Payment{}, fmt.Errorf("get payment %s: %w", paymentID, err)
	}
	return s.decodePayment(r)
}

const paymentColumns = `payment_id, order_id, payment_amount, currency, payment_status,
	payment_method, payment_details, gateway_ref, failure_reason, created_at, updated_at`

func (s *Store) decodePayment(r paymentRow) (Payment, error) {
	details, err := openField(s.Keys, encryption.TablePayments, encryption.ColumnPaymentDetails, r.PaymentID, r.Details)
	if err != nil {
		return Payment{}, err
	}
	return Payment{
		PaymentID: r.PaymentID, OrderID: r.OrderID, Amount: r.Amount, Currency: r.Currency,
		Status: r.Status, Method: r.Method, Details: details, GatewayRef: r.GatewayRef.String,
		FailureReason: r.FailureReason.String, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}, nil
}

// FindByEmail returns the orders of a customer email, without payments,
// sorted by created_at then order_id, at most MaxFindResults of them.
// Matching ignores case and surrounding spaces, like the blind index:
// candidates are found by customer_email_bidx and kept only when their
// decrypted email really matches, which drops HMAC collisions and index
// values copied between rows. An email CheckContact refuses is ErrInvalid.
func (s *Store) FindByEmail(ctx context.Context, email string) ([]Order, error) {
	want := encryption.NormalizeEmail(email)
	if want == "" || CheckContact(strings.TrimSpace(email), "") != "" {
		return nil, fmt.Errorf("%w: customer_email is not an email address", ErrInvalid)
	}
	var rows []Row
	err := s.DB.SelectContext(ctx, &rows, "SELECT "+RowColumns+` FROM orders
		WHERE customer_email_bidx = ? ORDER BY created_at, order_id LIMIT ?`,
		s.BlindIndex.Email(want), MaxFindResults)
	if err != nil {
		// The look-up value is customer data: name neither it nor its index.
		return nil, fmt.Errorf("find orders by customer_email: %w", err)
	}
	out := make([]Order, 0, len(rows))
	for _, r := range rows {
		o, err := s.sealer().Open(r)
		if err != nil {
			return nil, err
		}
		if encryption.NormalizeEmail(o.CustomerEmail) == want {
			out = append(out, o)
		}
	}
	return out, nil
}

type paymentRow struct {
	PaymentID     string         `db:"payment_id"`
	OrderID       string         `db:"order_id"`
	Amount        int64          `db:"payment_amount"`
	Currency      string         `db:"currency"`
	Status        string         `db:"payment_status"`
	Method        string         `db:"payment_method"`
	Details       []byte         `db:"payment_details"`
	GatewayRef    sql.NullString `db:"gateway_ref"`
	FailureReason sql.NullString `db:"failure_reason"`
	CreatedAt     time.Time      `db:"created_at"`
	UpdatedAt     time.Time      `db:"updated_at"`
}

// sealer is the Sealer of s's keys.
func (s *Store) sealer() Sealer { return Sealer{Keys: s.Keys, BlindIndex: s.BlindIndex} }
