package orders

import (
	"fmt"
	"time"

	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/mask"
	"github.com/acme/payments/internal/money"
)

// Row is an orders row as stored, its sensitive fields still sealed: what
// the order store, the importer and exports read. Select it with
// RowColumns.
type Row struct {
	OrderID    string    `db:"order_id"`
	Amount     int64     `db:"order_amount"`
	Currency   string    `db:"currency"`
	Status     string    `db:"order_status"`
	PaidAmount int64     `db:"paid_amount"`
	Email      []byte    `db:"customer_email"` // nil: none given
	Phone      []byte    `db:"customer_phone"` // nil: none given
	CreatedAt  time.Time `db:"created_at"`
	UpdatedAt  time.Time `db:"updated_at"`
}

// RowColumns is the select list of a Row.
const RowColumns = `order_id, order_amount, currency, order_status, paid_amount,
	customer_email, customer_phone, created_at, updated_at`

// Sealer is the one codec of an order's sensitive fields, used by every
// path that writes or reads orders rows (the API's store, bulk imports,
// exports): customer_email and customer_phone are AES-GCM ciphertexts bound
// to (orders, column, order_id), NULL when empty, and customer_email_bidx
// is the blind index of the normalised email, NULL without one. Orders
// created by either path are therefore interchangeable, and a repeat of
// one through the other is recognised (Matches). Open and Matches need
// only Keys.
type Sealer struct {
	Keys       *encryption.Keyring
	BlindIndex *encryption.BlindIndex
}

// Sealed holds an order's sealed fields, nil for NULL. Seal reuses its
// buffers, so a bulk writer sealing row after row allocates next to
// nothing; the values are valid until the next Seal into it.
type Sealed struct {
	Email, Phone, EmailIndex []byte
	aad, email, phone        []byte
}

// Seal encrypts o's customer fields and computes the email's blind index
// into dst. o must be normalised (see NewOrder).
func (s Sealer) Seal(dst *Sealed, o NewOrder) error {
	dst.Email, dst.Phone, dst.EmailIndex = nil, nil, nil
	var err error
	if o.CustomerEmail != "" {
		dst.aad = encryption.AppendAAD(dst.aad[:0], encryption.TableOrders, encryption.ColumnCustomerEmail, o.OrderID)
		if dst.email, err = s.Keys.AppendEncrypt(dst.email[:0], []byte(o.CustomerEmail), dst.aad); err != nil {
			return fmt.Errorf("order %s: encrypt %s: %w", o.OrderID, encryption.ColumnCustomerEmail, err)
		}
		dst.Email = dst.email
		dst.EmailIndex = s.BlindIndex.Email(o.CustomerEmail)
	}
	if o.CustomerPhone != "" {
		dst.aad = encryption.AppendAAD(dst.aad[:0], encryption.TableOrders, encryption.ColumnCustomerPhone, o.OrderID)
		if dst.phone, err = s.Keys.AppendEncrypt(dst.phone[:0], []byte(o.CustomerPhone), dst.aad); err != nil {
			return fmt.Errorf("order %s: encrypt %s: %w", o.OrderID, encryption.ColumnCustomerPhone, err)
		}
		dst.Phone = dst.phone
	}
	return nil
}

// Open returns a stored row with its customer fields decrypted. The error
// names the row and column, never a value.
func (s Sealer) Open(r Row) (Order, error) {
	// Every writer validates the currency; one we cannot format would make
	// every amount shown wrong, so refuse it loudly.
	if _, ok := money.Lookup(r.Currency); !ok {
		return Order{}, fmt.Errorf("order %s: stored currency %q is unknown", r.OrderID, mask.Clip(r.Currency))
	}
	email, phone, err := s.open(r)
	if err != nil {
		return Order{}, err
	}
	return Order{
		OrderID: r.OrderID, Amount: r.Amount, Currency: r.Currency, Status: r.Status, PaidAmount: r.PaidAmount,
		CustomerEmail: email, CustomerPhone: phone, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}, nil
}

// Matches reports whether a stored row is the order o by the rule of Same,
// comparing email and phone as plaintext (every encryption draws a fresh
// nonce, so ciphertexts never compare equal). o must be normalised. A
// stored value that does not decrypt is an error, never a match; a zero
// Row (no stored order) matches nothing.
func (s Sealer) Matches(stored Row, o NewOrder) (bool, error) {
	if stored.OrderID == "" {
		return false, nil
	}
	email, phone, err := s.open(stored)
	if err != nil {
		return false, err
	}
	first := NewOrder{OrderID: stored.OrderID, Amount: stored.Amount, Currency: stored.Currency,
		CustomerEmail: email, CustomerPhone: phone, CreatedAt: stored.CreatedAt}
	return Same(first, o), nil
}

// Opened holds an order's decrypted customer fields, nil when none was
// stored. OpenInto reuses its buffers; the values are valid until the next
// OpenInto into it.
type Opened struct {
	Email, Phone      []byte
	aad, email, phone []byte
}

// OpenInto decrypts a stored row's customer fields into dst, for bulk
// readers that scan rows as raw bytes. The error names the row and
// column, never a value.
func (s Sealer) OpenInto(dst *Opened, orderID, email, phone []byte) error {
	dst.Email, dst.Phone = nil, nil
	var err error
	if len(email) > 0 {
		dst.aad = encryption.AppendAAD(dst.aad[:0], encryption.TableOrders, encryption.ColumnCustomerEmail, orderID)
		if dst.email, err = s.Keys.AppendDecrypt(dst.email[:0], email, dst.aad); err != nil {
			return fmt.Errorf("%s %s: decrypt %s: %w", encryption.TableOrders, orderID, encryption.ColumnCustomerEmail, err)
		}
		dst.Email = dst.email
	}
	if len(phone) > 0 {
		dst.aad = encryption.AppendAAD(dst.aad[:0], encryption.TableOrders, encryption.ColumnCustomerPhone, orderID)
		if dst.phone, err = s.Keys.AppendDecrypt(dst.phone[:0], phone, dst.aad); err != nil {
			return fmt.Errorf("%s %s: decrypt %s: %w", encryption.TableOrders, orderID, encryption.ColumnCustomerPhone, err)
		}
		dst.Phone = dst.phone
	}
	return nil
}

func (s Sealer) open(r Row) (email, phone string, err error) {
	if email, err = openField(s.Keys, encryption.TableOrders, encryption.ColumnCustomerEmail, r.OrderID, r.Email); err != nil {
		return "", "", err
	}
	if phone, err = openField(s.Keys, encryption.TableOrders, encryption.ColumnCustomerPhone, r.OrderID, r.Phone); err != nil {
		return "", "", err
	}
	return email, phone, nil
}

// openField returns the plaintext of an encrypted column, "" for NULL. The
// error names the row and column, never the value.
func openField(keys *encryption.Keyring, table, column, pk string, ct []byte) (string, error) {
	if len(ct) == 0 {
		return "", nil
	}
	plain, err := keys.Decrypt(ct, encryption.AAD(table, column, pk))
	if err != nil {
		return "", fmt.Errorf("%s %s: decrypt %s: %w", table, pk, column, err)
	}
	return string(plain), nil
}

// Same reports whether o repeats order first: the same id, amount,
// currency, email and phone, and the same created_at when o sets one (a row
// without one accepts whatever first was stored with). Within one file and
// against stored rows alike, a repeat is judged by this one rule.
func Same(first, o NewOrder) bool {
	return first.OrderID == o.OrderID && first.Amount == o.Amount && first.Currency == o.Currency &&
		first.CustomerEmail == o.CustomerEmail && first.CustomerPhone == o.CustomerPhone &&
		(o.CreatedAt.IsZero() || first.CreatedAt.Equal(o.CreatedAt))
}
