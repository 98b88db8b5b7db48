package encryption

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"os"
	"strings"
	"sync"
)

// BlindIndex computes keyed HMAC-SHA256 digests of column values, stored next
// to the ciphertext so rows can be found by equality without decrypting. It
// is immutable and safe for concurrent use. Its key must differ from the
// encryption keys. Build one with [NewBlindIndex], [ParseBlindIndexKey] or
// [ReadBlindIndexFile]; the zero value is not usable.
type BlindIndex struct {
	// macs holds HMACs keyed with the blind index key, kept for reuse:
	// keying one costs more than the digest of a short value, and bulk
	// imports take one a row. The key lives only inside the pool's New
	// closure and the HMACs behind a pointer, so printing a BlindIndex
	// shows addresses, never the key.
	macs *sync.Pool
}

// NewBlindIndex returns a BlindIndex using key, which must be exactly 32
// bytes. The key is copied.
func NewBlindIndex(key []byte) (*BlindIndex, error) {
	bi, err := newBlindIndex(key)
	if err != nil {
		return nil, fmt.Errorf("encryption: %w", err)
	}
	return bi, nil
}

// ParseBlindIndexKey returns a BlindIndex for the base64 encoding of a
// 32-byte key, as found in PAYMENTS_BLIND_INDEX_KEY. Standard and URL-safe
// alphabets, padded or not, are accepted; surrounding whitespace is ignored.
func ParseBlindIndexKey(b64 string) (*BlindIndex, error) {
	bi, err := parseBlindIndexKey(b64)
	if err != nil {
		return nil, fmt.Errorf("encryption: parsing blind index key: %w", err)
	}
	return bi, nil
}

// ReadBlindIndexFile reads a blind index key file (base64 of 32 bytes, as
// written by [EnsureDevKeys]). Blank lines and lines starting with # are
// ignored.
func ReadBlindIndexFile(path string) (*BlindIndex, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("encryption: reading blind index key file: %w", err)
	}
	var b64 strings.Builder
	for _, line := range meaningfulLines(string(data)) {
		b64.WriteString(line.text)
	}
	bi, err := parseBlindIndexKey(b64.String())
	if err != nil {
		return nil, fmt.Errorf("encryption: blind index key file %s: %w", path, err)
	}
	return bi, nil
}

func newBlindIndex(key []byte) (*BlindIndex, error) {
	if len(key) != keySize {
		return nil, fmt.Errorf("blind index key is %d bytes, want %d", len(key), keySize)
	}
	k := bytes.Clone(key) // the caller may reuse or wipe its slice
	return &BlindIndex{macs: &sync.Pool{New: func() any { return hmac.New(sha256.New, k) }}}, nil
}

func parseBlindIndexKey(b64 string) (*BlindIndex, error) {
	b64 = strings.TrimSpace(b64)
	if b64 == "" {
		return nil, errors.New("blind index key is empty")
	}
	key, err := decodeKeyBase64(b64)
	if err != nil {
		return nil, fmt.Errorf("blind index key is not valid base64: %w", err)
	}
	return newBlindIndex(key)
}

// Email returns the blind index of an email address: HMAC-SHA256 over
// "email" + 0x00 + the address with surrounding spaces trimmed and lower-cased,
// so lookups are case-insensitive. It equals Sum("email", normalized).
func (b *BlindIndex) Email(email string) []byte {
	return b.Sum("email", NormalizeEmail(email))[:EmailIndexSize]
}

// NormalizeEmail is an email address as its blind index sees it: surrounding
// spaces trimmed, lower-cased. Comparing decrypted addresses the same way
// keeps look-ups and index in step.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// EmailIndexSize is how many bytes of the HMAC an email's index keeps.
// Eight bytes make look-ups practically collision-free (callers compare the
// decrypted email anyway), keep the index small enough that bulk loads do
// not stall on its random inserts, and reveal less than the full digest
// about which rows share an email.
const EmailIndexSize = 8

// Sum returns the 32-byte HMAC-SHA256 of column + 0x00 + value, without any
// normalization. Including the column keeps equal values in different columns
// from having equal indexes. column must not contain a 0x00 byte (column
// names are constants, so this is a programming rule, not input validation).
func (b *BlindIndex) Sum(column, value string) []byte {
	if b == nil || b.macs == nil {
		panic("encryption: BlindIndex used without NewBlindIndex") // programming error; no safe digest to return
	}
	mac := b.macs.Get().(hash.Hash)
	mac.Reset()
	mac.Write([]byte(column))
	mac.Write([]byte{0})
	mac.Write([]byte(value))
	sum := mac.Sum(make([]byte, 0, sha256.Size))
	b.macs.Put(mac)
	return sum
}
