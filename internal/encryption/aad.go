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
	b := make([]byte, 0, 3*binary.MaxVarintLen64+len(table)+len(column)+len(primaryKey))
	for _, part := range [...]string{table, column, primaryKey} {
		b = binary.AppendUvarint(b, uint64(len(part)))
		b = append(b, part...)
	}
	return b
}
