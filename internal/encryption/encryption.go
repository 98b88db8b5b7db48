// Package encryption is the payment service's single home for cryptography on
// data at rest: AES-256-GCM field encryption for MySQL columns
// (customer_email, customer_phone, payment_details), the sealing primitives
// used by the Temporal payload codec, and an HMAC-SHA256 blind index that
// lets encrypted columns be searched by equality.
//
// # Ciphertext format
//
// [Keyring.Encrypt] produces a self-describing value:
//
//	0x01 | len(keyID) (1 byte) | keyID | nonce (12 bytes) | GCM ciphertext || tag (16 bytes)
//
// The header (version, key-id length and key id) is authenticated together
// with the caller's AAD, so it cannot be altered without detection.
// [Keyring.Seal] returns the same bytes minus the header, with the key id
// returned separately; header||sealed is therefore a valid Encrypt output.
//
// # Keys and rotation
//
// A [Keyring] holds one primary key, used for all new encryption, and any
// number of older keys that are only used to decrypt. To rotate, put a new key
// first in PAYMENTS_KEYS, keep the old ones after it, and re-encrypt rows
// whose [Keyring.KeyID] is not [Keyring.PrimaryID]; then drop the old key.
//
// Nonces are random, so a single key must not encrypt more than about 2^32
// values; rotate well before that.
//
// Key material and plaintext never appear in error messages.
package encryption

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Errors reported by decryption. Both are meant to be tested with errors.Is.
var (
	// ErrUnknownKey reports that a ciphertext names a key id that is not in
	// the keyring (for example a key that was dropped too early after a
	// rotation). Errors matching ErrUnknownKey from Decrypt and Open also
	// match ErrDecrypt.
	ErrUnknownKey = errors.New("unknown encryption key id")

	// ErrDecrypt reports that a ciphertext could not be decrypted: it was
	// tampered with, truncated, has an unsupported version, was sealed under
	// a different key, or is being opened with different AAD.
	ErrDecrypt = errors.New("decryption failed")
)

const (
	formatVersion = 0x01
	keySize       = 32 // AES-256
	nonceSize     = 12 // standard GCM nonce
	tagSize       = 16 // standard GCM tag
	maxKeyIDLen   = 32 // fits the 1-byte length in the header with room to spare
)

// Keyring is a set of AES-256-GCM keys identified by short ids, the first of
// which is the primary key used for encryption. It is immutable after
// construction and safe for concurrent use. Build one with [ParseKeys] or
// [LoadKeyring].
type Keyring struct {
	primary string
	ids     []string // primary first, in configuration order
	// aead finds a key's AEAD. Only AEADs are kept, never raw key bytes, and
	// they are reachable only through a closure: fmt prints a func as an
	// address with every verb, so no stray %v or %s can dump key material.
	aead func(id string) (cipher.AEAD, bool)
}

// newKeyring builds a keyring from already validated ids and 32-byte keys.
func newKeyring(ids []string, keys [][]byte) (*Keyring, error) {
	aeads := make(map[string]cipher.AEAD, len(ids))
	for i, id := range ids {
		block, err := aes.NewCipher(keys[i])
		if err != nil {
			return nil, fmt.Errorf("key id %q: creating AES cipher: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key id %q: creating GCM: %w", id, err)
		}
		aeads[id] = aead
	}
	return &Keyring{
		primary: ids[0],
		ids:     ids,
		aead: func(id string) (cipher.AEAD, bool) {
			a, ok := aeads[id]
			return a, ok
		},
	}, nil
}

// PrimaryID returns the id of the key used for all new encryption.
func (k *Keyring) PrimaryID() string {
	if k == nil {
		return ""
	}
	return k.primary
}

// KeyIDs returns the ids of all keys in the ring, primary first. The slice is
// a copy and may be modified by the caller.
func (k *Keyring) KeyIDs() []string {
	if k == nil {
		return nil
	}
	return append([]string(nil), k.ids...)
}

// Encrypt encrypts plaintext under the primary key and returns a
// self-describing ciphertext (see the package documentation for the format).
// aad is authenticated but not stored: the same aad must be passed to
// Decrypt. For database columns use [AAD] so a value cannot be moved to
// another row or column.
func (k *Keyring) Encrypt(plaintext, aad []byte) ([]byte, error) {
	ct, err := k.AppendEncrypt(nil, plaintext, aad)
	if err != nil {
		return nil, err
	}
	return ct, nil
}

// AppendEncrypt is [Keyring.Encrypt] appending the ciphertext to dst, so
// bulk writers can encrypt a row's fields into one reused buffer. plaintext
// and aad must not share memory with dst's spare capacity. On error dst is
// returned unchanged.
func (k *Keyring) AppendEncrypt(dst, plaintext, aad []byte) ([]byte, error) {
	aead, err := k.primaryAEAD()
	if err != nil {
		return dst, err
	}
	start := len(dst)
	dst = slices.Grow(dst, 2+len(k.primary)+nonceSize+len(plaintext)+tagSize)
	dst = append(dst, formatVersion, byte(len(k.primary)))
	dst = append(dst, k.primary...)
	hdr := dst[start:]
	nonce := dst[len(dst) : len(dst)+nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		return dst[:start], fmt.Errorf("encryption: generating nonce: %w", err)
	}
	dst = dst[:len(dst)+nonceSize]
	ad := additionalData(hdr, aad)
	dst = aead.Seal(dst, nonce, plaintext, *ad)
	adPool.Put(ad)
	return dst, nil
}

// Decrypt decrypts a ciphertext produced by [Keyring.Encrypt] with any key in
// the ring, chosen by the key id in its header, so values written before a
// key rotation stay readable. Every failure wraps [ErrDecrypt]; a key id that
// is not in the ring additionally wraps [ErrUnknownKey].
func (k *Keyring) Decrypt(ciphertext, aad []byte) ([]byte, error) {
	id, hdrLen, err := k.parseHeader(ciphertext)
	if err != nil {
		return nil, err
	}
	return k.open(id, ciphertext[:hdrLen], ciphertext[hdrLen:], aad)
}

// AppendDecrypt is [Keyring.Decrypt] appending the plaintext to dst, so
// bulk readers can decrypt field after field into one reused buffer.
// ciphertext and aad must not share memory with dst's spare capacity. On
// error dst is returned unchanged.
func (k *Keyring) AppendDecrypt(dst, ciphertext, aad []byte) ([]byte, error) {
	id, hdrLen, err := k.parseHeader(ciphertext)
	if err != nil {
		return dst, err
	}
	return k.appendOpen(dst, id, ciphertext[:hdrLen], ciphertext[hdrLen:], aad)
}

// adPool holds additionalData's buffers.
var adPool = sync.Pool{New: func() any { b := make([]byte, 0, 128); return &b }}

// KeyID returns the key id recorded in a ciphertext's header, whether or not
// that key is in the ring. Rotation jobs compare it with [Keyring.PrimaryID]
// to find values that still need re-encrypting. A malformed header gives an
// error wrapping [ErrDecrypt]; the ciphertext is not authenticated.
func (k *Keyring) KeyID(ciphertext []byte) (string, error) {
	id, _, err := k.parseHeader(ciphertext)
	if err != nil {
		return "", err
	}
	return id, nil
}

// Seal encrypts plaintext under the primary key like [Keyring.Encrypt] but
// without the header: sealed is nonce||ciphertext||tag and the key id is
// returned separately, for containers (such as Temporal payload metadata)
// that store it on their own. Open it with [Keyring.Open].
func (k *Keyring) Seal(plaintext, aad []byte) (keyID string, sealed []byte, err error) {
	ct, err := k.Encrypt(plaintext, aad)
	if err != nil {
		return "", nil, err
	}
	// Re-slicing avoids a copy; the header prefix is simply not exposed.
	return k.primary, ct[len(header(k.primary)):], nil
}

// Open decrypts a value produced by [Keyring.Seal] with the key named keyID.
// Errors are reported as by [Keyring.Decrypt].
func (k *Keyring) Open(keyID string, sealed, aad []byte) ([]byte, error) {
	if validateKeyID(keyID) != nil {
		// Not echoed: an invalid id comes from untrusted metadata.
		return nil, fmt.Errorf("encryption: %w: %w (malformed id)", ErrDecrypt, ErrUnknownKey)
	}
	return k.open(keyID, header(keyID), sealed, aad)
}

// open authenticates and decrypts body (nonce||ciphertext||tag) whose header
// is hdr, using the key named id.
func (k *Keyring) open(id string, hdr, body, aad []byte) ([]byte, error) {
	pt, err := k.appendOpen(nil, id, hdr, body, aad)
	if err == nil && pt == nil {
		pt = []byte{} // empty plaintext round-trips as empty, not nil
	}
	return pt, err
}

// appendOpen is open appending the plaintext to dst.
func (k *Keyring) appendOpen(dst []byte, id string, hdr, body, aad []byte) ([]byte, error) {
	if k == nil || k.aead == nil {
		return dst, errors.New("encryption: keyring has no keys")
	}
	aead, ok := k.aead(id)
	if !ok {
		return dst, fmt.Errorf("encryption: %w: %w %q", ErrDecrypt, ErrUnknownKey, id)
	}
	if len(body) < nonceSize+tagSize {
		return dst, fmt.Errorf("encryption: %w: ciphertext truncated", ErrDecrypt)
	}
	ad := additionalData(hdr, aad)
	out, err := aead.Open(dst, body[:nonceSize], body[nonceSize:], *ad)
	adPool.Put(ad)
	if err != nil {
		// GCM cannot tell these causes apart, so neither can we.
		return dst, fmt.Errorf("encryption: %w: authentication failed (wrong key or AAD, or data modified)", ErrDecrypt)
	}
	return out, nil
}

// primaryAEAD returns the AEAD of the primary key, or an error for a keyring
// that was not built by ParseKeys/LoadKeyring.
func (k *Keyring) primaryAEAD() (cipher.AEAD, error) {
	if k == nil || k.aead == nil {
		return nil, errors.New("encryption: keyring has no keys")
	}
	aead, ok := k.aead(k.primary)
	if !ok {
		return nil, errors.New("encryption: keyring has no primary key")
	}
	return aead, nil
}

// header returns the ciphertext header for key id (which must be valid).
func header(id string) []byte {
	h := make([]byte, 0, 2+len(id))
	h = append(h, formatVersion, byte(len(id)))
	return append(h, id...)
}

// parseHeader validates the ciphertext header and returns the key id and the
// header length. It never reads past the end of ct.
func (k *Keyring) parseHeader(ct []byte) (id string, hdrLen int, err error) {
	if len(ct) < 2 {
		return "", 0, fmt.Errorf("encryption: %w: ciphertext truncated", ErrDecrypt)
	}
	if ct[0] != formatVersion {
		return "", 0, fmt.Errorf("encryption: %w: unsupported format version 0x%02x", ErrDecrypt, ct[0])
	}
	n := int(ct[1])
	if n == 0 || n > maxKeyIDLen {
		return "", 0, fmt.Errorf("encryption: %w: invalid key id length %d in header", ErrDecrypt, n)
	}
	if len(ct) < 2+n {
		return "", 0, fmt.Errorf("encryption: %w: ciphertext truncated", ErrDecrypt)
	}
	id, err = k.headerID(ct[2 : 2+n])
	if err != nil {
		return "", 0, err
	}
	return id, 2 + n, nil
}

// headerID returns a header's key id as a string: the primary id itself
// when it is that one, so the common case allocates nothing.
func (k *Keyring) headerID(b []byte) (string, error) {
	if k != nil && string(b) == k.primary {
		return k.primary, nil
	}
	id := string(b)
	if validateKeyID(id) != nil {
		return "", fmt.Errorf("encryption: %w: invalid key id in header", ErrDecrypt)
	}
	return id, nil
}

// additionalData is what GCM authenticates besides the plaintext: the header
// (so version and key id cannot be swapped) followed by the caller's AAD. The
// header is self-delimiting, so the concatenation is unambiguous. The buffer
// comes from adPool (bulk paths seal and open a field a row); put it back.
func additionalData(hdr, aad []byte) *[]byte {
	ad := adPool.Get().(*[]byte)
	*ad = append(append((*ad)[:0], hdr...), aad...)
	return ad
}
