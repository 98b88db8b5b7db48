package encryption

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecrypt checks that Decrypt never panics on arbitrary input, never
// accepts anything but a genuine ciphertext, and rejects a genuine ciphertext
// with any single byte changed.
func FuzzDecrypt(f *testing.F) {
	// Two keys, so that changing "k1" to "k2" in a header reaches a real key.
	k := mustRing(f, keyEntry("k1", key1)+","+keyEntry("k2", key2))
	aad := AAD("payments", "customer_email", "42")
	// Fixed nonces: the fuzzing engine re-runs this setup in each worker
	// process, and seed inputs must be the same ciphertexts everywhere.
	valid := sealFixed(f, key1, "k1", bytes.Repeat([]byte{7}, nonceSize), []byte("alice@example.com"), aad)
	empty := sealFixed(f, key2, "k2", bytes.Repeat([]byte{9}, nonceSize), nil, aad)
	genuine := [][]byte{valid, empty}

	f.Add(valid, uint(0), byte(1))
	f.Add(empty, uint(3), byte('1'^'2'))
	f.Add([]byte{}, uint(20), byte(0x80))
	f.Add([]byte{0x01}, uint(1), byte(0xff))
	f.Add([]byte{0x01, 0x02, 'k', '1'}, uint(30), byte(0x01))
	f.Add([]byte{0x01, 0xff, 'k'}, uint(40), byte(0x10))

	f.Fuzz(func(t *testing.T, data []byte, pos uint, delta byte) {
		// Arbitrary bytes: no panic, and no success unless unmodified.
		pt, err := k.Decrypt(data, aad)
		if err == nil {
			isGenuine := false
			for _, g := range genuine {
				isGenuine = isGenuine || bytes.Equal(data, g)
			}
			if !isGenuine {
				t.Fatalf("Decrypt accepted a forged ciphertext (% x) -> %q", data, pt)
			}
		} else if !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Decrypt error %v does not wrap ErrDecrypt", err)
		}
		_, _ = k.KeyID(data)
		_, _ = k.Open("k1", data, aad)

		// A genuine ciphertext with one byte changed must fail.
		if delta == 0 {
			delta = 1
		}
		for _, g := range genuine {
			bad := bytes.Clone(g)
			bad[pos%uint(len(bad))] ^= delta
			if _, err := k.Decrypt(bad, aad); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("byte %d changed by ^%#02x: err = %v, want ErrDecrypt", pos%uint(len(bad)), delta, err)
			}
		}

		// And the fuzz input as plaintext round-trips.
		ct, err := k.Encrypt(data, aad)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := k.Decrypt(ct, aad); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round trip of % x: got % x, %v", data, got, err)
		}
	})
}
