package encryption

import "encoding/binary"

// AAD returns additional authenticated data that binds a column value to its
// table, column and row, so a ciphertext copied into another row or column
// fails to decrypt. Each part is length-prefixed (uvarint), which makes the
// encoding unambiguous: ("a","bc","d") and ("ab","c","d") differ.
//
// primaryKey must be formatted the same way on write and read (for example
// strconv.FormatInt for integer ids).
func AAD(table, column, primaryKey string) []byte {
	return AppendAAD(make([]byte, 0, 3*binary.MaxVarintLen64+len(table)+len(column)+len(primaryKey)), table, column, primaryKey)
}

// AppendAAD is [AAD] appending to dst; the primary key may be given as
// bytes, as bulk readers scan it.
func AppendAAD[K ~string | ~[]byte](dst []byte, table, column string, primaryKey K) []byte {
	for _, part := range [...]string{table, column} {
		dst = binary.AppendUvarint(dst, uint64(len(part)))
		dst = append(dst, part...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(primaryKey)))
	return append(dst, primaryKey...)
}

// The encrypted columns. Their table and column names are part of every
// ciphertext's AAD, so a misspelling would make values undecryptable: they
// are spelled once, here.
const (
	TableOrders          = "orders"
	TablePayments        = "payments"
	ColumnCustomerEmail  = "customer_email"
	ColumnCustomerPhone  = "customer_phone"
	ColumnPaymentDetails = "payment_details"
)
