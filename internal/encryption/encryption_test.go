package encryption

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// testKey returns a distinctive 32-byte key: seed, seed+1, ...
func testKey(seed byte) []byte {
	k := make([]byte, keySize)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

func keyEntry(id string, key []byte) string {
	return id + ":" + base64.StdEncoding.EncodeToString(key)
}

func mustRing(tb testing.TB, spec string) *Keyring {
	tb.Helper()
	k, err := ParseKeys(spec)
	if err != nil {
		tb.Fatalf("ParseKeys: %v", err)
	}
	return k
}

var (
	key1 = testKey(1)
	key2 = testKey(100)
)

func TestRoundTrip(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	aad := AAD("payments", "customer_email", "42")
	for _, pt := range []string{
		"",
		"a",
		"alice@example.com",
		"Zoë Åström — 日本語 🎉",
		"\x00\xff binary \x00",
		strings.Repeat("x", 10000),
	} {
		ct, err := k.Encrypt([]byte(pt), aad)
		if err != nil {
			t.Fatalf("Encrypt(%q): %v", pt, err)
		}
		if want := 2 + len("k1") + nonceSize + len(pt) + tagSize; len(ct) != want {
			t.Errorf("len(ciphertext) = %d, want %d", len(ct), want)
		}
		if len(pt) > 3 && bytes.Contains(ct, []byte(pt)) {
			t.Errorf("ciphertext contains the plaintext %q", pt)
		}
		got, err := k.Decrypt(ct, aad)
		if err != nil {
			t.Fatalf("Decrypt(Encrypt(%q)): %v", pt, err)
		}
		if got == nil || string(got) != pt {
			t.Errorf("round trip = %q, want %q", got, pt)
		}
	}
}

func TestNilAADEqualsEmptyAAD(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	ct, err := k.Encrypt([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Decrypt(ct, []byte{}); err != nil {
		t.Errorf("Decrypt with empty AAD after nil AAD: %v", err)
	}
}

// sealFixed builds a ciphertext in the documented format independently of
// Encrypt, with a caller-chosen nonce: header || nonce || GCM(plaintext) with
// header || aad as GCM additional data.
func sealFixed(tb testing.TB, key []byte, id string, nonce, plaintext, aad []byte) []byte {
	tb.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		tb.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		tb.Fatal(err)
	}
	hdr := append([]byte{0x01, byte(len(id))}, id...)
	out := append(bytes.Clone(hdr), nonce...)
	return gcm.Seal(out, nonce, plaintext, append(bytes.Clone(hdr), aad...))
}

func TestKnownFormat(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	aad := AAD("payments", "customer_email", "42")
	ct := sealFixed(t, key1, "k1", make([]byte, nonceSize), []byte("alice@example.com"), aad)
	got, err := k.Decrypt(ct, aad)
	if err != nil || string(got) != "alice@example.com" {
		t.Fatalf("Decrypt of an independently built ciphertext = %q, %v", got, err)
	}
	// The header is authenticated: sealing without it in the AAD must fail.
	block, _ := aes.NewCipher(key1)
	gcm, _ := cipher.NewGCM(block)
	unbound := append([]byte{0x01, 2, 'k', '1'}, make([]byte, nonceSize)...)
	unbound = gcm.Seal(unbound, make([]byte, nonceSize), []byte("x"), aad)
	if _, err := k.Decrypt(unbound, aad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("ciphertext without header authentication: err = %v, want ErrDecrypt", err)
	}
}

func TestCiphertextsDiffer(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	seen := map[string]bool{}
	for range 100 {
		ct, err := k.Encrypt([]byte("same plaintext"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if seen[string(ct)] {
			t.Fatal("two encryptions of the same plaintext gave the same ciphertext")
		}
		seen[string(ct)] = true
	}
}

func TestHeaderFormat(t *testing.T) {
	k := mustRing(t, keyEntry("key-2024.01_a", key1))
	ct, err := k.Encrypt([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	id := "key-2024.01_a"
	if ct[0] != 0x01 || int(ct[1]) != len(id) || string(ct[2:2+len(id)]) != id {
		t.Errorf("header = % x, want 01 %02x %q", ct[:2+len(id)], len(id), id)
	}
}

func TestTamperingFails(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1)+","+keyEntry("k2", key2))
	aad := AAD("payments", "payment_details", "7")
	ct, err := k.Encrypt([]byte(`{"card":"4111111111111111"}`), aad)
	if err != nil {
		t.Fatal(err)
	}
	hdr := 2 + len("k1")
	regions := []struct {
		name       string
		start, end int
	}{
		{"version", 0, 1},
		{"key id length", 1, 2},
		{"key id", 2, hdr},
		{"nonce", hdr, hdr + nonceSize},
		{"body", hdr + nonceSize, len(ct) - tagSize},
		{"tag", len(ct) - tagSize, len(ct)},
	}
	for _, r := range regions {
		t.Run(r.name, func(t *testing.T) {
			if r.end <= r.start {
				t.Fatalf("empty region %d..%d", r.start, r.end)
			}
			// Every bit of every byte in the region.
			for i := r.start; i < r.end; i++ {
				for bit := range 8 {
					bad := bytes.Clone(ct)
					bad[i] ^= 1 << bit
					pt, err := k.Decrypt(bad, aad)
					if !errors.Is(err, ErrDecrypt) {
						t.Fatalf("byte %d bit %d flipped: err = %v, want ErrDecrypt", i, bit, err)
					}
					if pt != nil {
						t.Fatalf("byte %d bit %d flipped: got plaintext with error", i, bit)
					}
				}
			}
		})
	}
	// Sanity: the untouched ciphertext still decrypts.
	if _, err := k.Decrypt(ct, aad); err != nil {
		t.Fatalf("untampered: %v", err)
	}
}

func TestAppendedBytesFail(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	ct, _ := k.Encrypt([]byte("x"), nil)
	if _, err := k.Decrypt(append(bytes.Clone(ct), 0), nil); !errors.Is(err, ErrDecrypt) {
		t.Errorf("appended byte: err = %v, want ErrDecrypt", err)
	}
}

func TestWrongAADFails(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	ct, err := k.Encrypt([]byte("+15551234567"), AAD("payments", "customer_phone", "42"))
	if err != nil {
		t.Fatal(err)
	}
	for _, aad := range [][]byte{
		AAD("refunds", "customer_phone", "42"),
		AAD("payments", "customer_email", "42"),
		AAD("payments", "customer_phone", "43"),
		AAD("payments", "customer_phone", "042"),
		nil,
	} {
		if _, err := k.Decrypt(ct, aad); !errors.Is(err, ErrDecrypt) {
			t.Errorf("Decrypt with AAD %q: err = %v, want ErrDecrypt", aad, err)
		}
	}
}

func TestTruncatedFails(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	aad := AAD("t", "c", "1")
	for _, pt := range []string{"", "hello"} {
		ct, err := k.Encrypt([]byte(pt), aad)
		if err != nil {
			t.Fatal(err)
		}
		for n := range len(ct) {
			if _, err := k.Decrypt(ct[:n], aad); !errors.Is(err, ErrDecrypt) {
				t.Errorf("plaintext %q truncated to %d of %d bytes: err = %v, want ErrDecrypt", pt, n, len(ct), err)
			}
			// Also cut from the front, which shifts the header.
			if _, err := k.Decrypt(ct[n+1:], aad); !errors.Is(err, ErrDecrypt) {
				t.Errorf("plaintext %q with first %d bytes removed: err = %v, want ErrDecrypt", pt, n+1, err)
			}
		}
	}
}

func TestMalformedHeaders(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	body := make([]byte, nonceSize+tagSize+4)
	for name, ct := range map[string][]byte{
		"nil":             nil,
		"version 0":       append([]byte{0x00, 2, 'k', '1'}, body...),
		"version 2":       append([]byte{0x02, 2, 'k', '1'}, body...),
		"zero id length":  append([]byte{0x01, 0}, body...),
		"id length 33":    append(append([]byte{0x01, 33}, bytes.Repeat([]byte{'a'}, 33)...), body...),
		"id length 255":   append([]byte{0x01, 255}, body...),
		"id with slash":   append([]byte{0x01, 2, 'k', '/'}, body...),
		"id with NUL":     append([]byte{0x01, 2, 'k', 0}, body...),
		"id longer than ": {0x01, 10, 'k', '1'},
	} {
		if _, err := k.Decrypt(ct, nil); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: Decrypt err = %v, want ErrDecrypt", name, err)
		}
		if _, err := k.KeyID(ct); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: KeyID err = %v, want ErrDecrypt", name, err)
		}
	}
}

func TestUnknownKey(t *testing.T) {
	a := mustRing(t, keyEntry("k1", key1))
	b := mustRing(t, keyEntry("k2", key2))
	ct, err := a.Encrypt([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Decrypt(ct, nil)
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v, want ErrUnknownKey", err)
	}
	if !errors.Is(err, ErrDecrypt) {
		t.Errorf("err = %v, want it to match ErrDecrypt too", err)
	}
	if !strings.Contains(err.Error(), `"k1"`) {
		t.Errorf("error %q should name the missing key id", err)
	}
}

func TestSameIDDifferentKeyFails(t *testing.T) {
	a := mustRing(t, keyEntry("k1", key1))
	b := mustRing(t, keyEntry("k1", key2))
	ct, _ := a.Encrypt([]byte("x"), nil)
	_, err := b.Decrypt(ct, nil)
	if !errors.Is(err, ErrDecrypt) || errors.Is(err, ErrUnknownKey) {
		t.Errorf("err = %v, want ErrDecrypt (not ErrUnknownKey)", err)
	}
}

func TestKeyRotation(t *testing.T) {
	a := mustRing(t, keyEntry("k1", key1))
	b := mustRing(t, keyEntry("k2", key2)+","+keyEntry("k1", key1))
	aad := AAD("payments", "customer_email", "1")

	old, err := a.Encrypt([]byte("old@example.com"), aad)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := b.Encrypt([]byte("new@example.com"), aad)
	if err != nil {
		t.Fatal(err)
	}

	if got := b.PrimaryID(); got != "k2" {
		t.Errorf("PrimaryID = %q, want k2", got)
	}
	if got := b.KeyIDs(); fmt.Sprint(got) != "[k2 k1]" {
		t.Errorf("KeyIDs = %v, want [k2 k1]", got)
	}
	for ct, want := range map[string]string{string(old): "k1", string(fresh): "k2"} {
		id, err := b.KeyID([]byte(ct))
		if err != nil || id != want {
			t.Errorf("KeyID = %q, %v; want %q", id, err, want)
		}
		// KeyID works even when the key is not in the ring.
		if id, err := a.KeyID([]byte(ct)); err != nil || id != want {
			t.Errorf("KeyID via old ring = %q, %v; want %q", id, err, want)
		}
	}
	if got, err := b.Decrypt(old, aad); err != nil || string(got) != "old@example.com" {
		t.Errorf("new ring decrypting old ciphertext = %q, %v", got, err)
	}
	if got, err := b.Decrypt(fresh, aad); err != nil || string(got) != "new@example.com" {
		t.Errorf("new ring decrypting new ciphertext = %q, %v", got, err)
	}
	// The old ring has not been given k2 yet.
	if _, err := a.Decrypt(fresh, aad); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("old ring decrypting new ciphertext: err = %v, want ErrUnknownKey", err)
	}
	// Rotation job: re-encrypt what is not under the primary.
	if id, _ := b.KeyID(old); id != b.PrimaryID() {
		pt, err := b.Decrypt(old, aad)
		if err != nil {
			t.Fatal(err)
		}
		re, err := b.Encrypt(pt, aad)
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := b.KeyID(re); id != "k2" {
			t.Errorf("re-encrypted under %q, want k2", id)
		}
	}
}

func TestKeyIDsIsACopy(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1)+","+keyEntry("k2", key2))
	ids := k.KeyIDs()
	ids[0] = "changed"
	if k.KeyIDs()[0] != "k1" || k.PrimaryID() != "k1" {
		t.Error("modifying KeyIDs' result changed the keyring")
	}
}

func TestSealOpen(t *testing.T) {
	k := mustRing(t, keyEntry("k2", key2)+","+keyEntry("k1", key1))
	aad := []byte("temporal-payload")
	for _, pt := range []string{"", "payload ✓"} {
		id, sealed, err := k.Seal([]byte(pt), aad)
		if err != nil {
			t.Fatal(err)
		}
		if id != "k2" {
			t.Errorf("Seal key id = %q, want primary k2", id)
		}
		if want := nonceSize + len(pt) + tagSize; len(sealed) != want {
			t.Errorf("len(sealed) = %d, want %d", len(sealed), want)
		}
		got, err := k.Open(id, sealed, aad)
		if err != nil || string(got) != pt {
			t.Fatalf("Open = %q, %v; want %q", got, err, pt)
		}
		// header||sealed is an Encrypt-format ciphertext.
		if got, err := k.Decrypt(append(header(id), sealed...), aad); err != nil || string(got) != pt {
			t.Errorf("Decrypt(header||sealed) = %q, %v", got, err)
		}

		if _, err := k.Open("k1", sealed, aad); !errors.Is(err, ErrDecrypt) || errors.Is(err, ErrUnknownKey) {
			t.Errorf("Open with the other key id: err = %v, want ErrDecrypt", err)
		}
		if _, err := k.Open("k9", sealed, aad); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("Open with unknown key id: err = %v, want ErrUnknownKey", err)
		}
		if _, err := k.Open("bad id!", sealed, aad); !errors.Is(err, ErrUnknownKey) || strings.Contains(err.Error(), "bad id!") {
			t.Errorf("Open with malformed key id: err = %v, want ErrUnknownKey without echoing the id", err)
		}
		if _, err := k.Open(id, sealed, []byte("other")); !errors.Is(err, ErrDecrypt) {
			t.Errorf("Open with wrong AAD: err = %v, want ErrDecrypt", err)
		}
		for n := range len(sealed) {
			if _, err := k.Open(id, sealed[:n], aad); !errors.Is(err, ErrDecrypt) {
				t.Errorf("Open truncated to %d: err = %v, want ErrDecrypt", n, err)
			}
		}
	}
}

func TestAADUnambiguous(t *testing.T) {
	cases := [][3]string{
		{"a", "bc", "d"},
		{"ab", "c", "d"},
		{"a", "b", "cd"},
		{"abc", "", "d"},
		{"", "abc", "d"},
		{"", "", "abcd"},
		{"abcd", "", ""},
		{"a\x00", "b", "c"},
		{"a", "\x00b", "c"},
		{"\x01a", "b", "c"},
	}
	seen := map[string][3]string{}
	for _, c := range cases {
		got := string(AAD(c[0], c[1], c[2]))
		if prev, dup := seen[got]; dup {
			t.Errorf("AAD%q == AAD%q", c, prev)
		}
		seen[got] = c
		if again := string(AAD(c[0], c[1], c[2])); again != got {
			t.Errorf("AAD%q is not deterministic", c)
		}
	}
}

func TestZeroKeyringErrors(t *testing.T) {
	for name, k := range map[string]*Keyring{"nil": nil, "zero": {}} {
		if _, err := k.Encrypt([]byte("x"), nil); err == nil {
			t.Errorf("%s keyring: Encrypt succeeded", name)
		}
		if _, _, err := k.Seal([]byte("x"), nil); err == nil {
			t.Errorf("%s keyring: Seal succeeded", name)
		}
		if _, err := k.Decrypt(append(header("k1"), make([]byte, 40)...), nil); err == nil {
			t.Errorf("%s keyring: Decrypt succeeded", name)
		}
		if k.PrimaryID() != "" || len(k.KeyIDs()) != 0 {
			t.Errorf("%s keyring reports keys", name)
		}
	}
}

// Run with -race to check that a Keyring is safe for concurrent use.
func TestConcurrentUse(t *testing.T) {
	k := mustRing(t, keyEntry("k2", key2)+","+keyEntry("k1", key1))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				pt := fmt.Sprintf("goroutine %d value %d", g, i)
				aad := AAD("t", "c", fmt.Sprint(i))
				ct, err := k.Encrypt([]byte(pt), aad)
				if err != nil {
					errs <- err
					return
				}
				got, err := k.Decrypt(ct, aad)
				if err != nil || string(got) != pt {
					errs <- fmt.Errorf("round trip %q: got %q, %v", pt, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestFormattingDoesNotLeakKeys(t *testing.T) {
	key := testKey(200) // bytes 200, 201, ...: easy to spot in any rendering
	k := mustRing(t, keyEntry("k1", key))
	bi, err := NewBlindIndex(key)
	if err != nil {
		t.Fatal(err)
	}
	leaks := []string{
		base64.StdEncoding.EncodeToString(key),
		"200 201 202",
		"c8c9ca",
		"0xc8, 0xc9",
		"\xc8\xc9\xca",
	}
	for _, v := range []any{k, *k, bi, *bi} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
			out := fmt.Sprintf(verb, v)
			for _, leak := range leaks {
				if strings.Contains(out, leak) {
					t.Errorf("fmt %s of %T leaks key material: %s", verb, v, out)
				}
			}
		}
	}
}

func BenchmarkEncrypt(b *testing.B) {
	k := mustRing(b, keyEntry("k1", key1))
	field := []byte("alice.smith@example.com!") // 24 bytes
	aad := AAD("payments", "customer_email", "123456789")
	b.SetBytes(int64(len(field)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Encrypt(field, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAppendEncryptKeepsThePrefix(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	aad := AppendAAD([]byte("junk"), "orders", "customer_phone", "A-1")[4:]
	if !bytes.Equal(aad, AAD("orders", "customer_phone", "A-1")) {
		t.Fatalf("AppendAAD = %x, AAD = %x", aad, AAD("orders", "customer_phone", "A-1"))
	}
	buf := []byte("prefix\t")
	for i, pt := range []string{"+15550100", "", "second value"} {
		start := len(buf)
		var err error
		if buf, err = k.AppendEncrypt(buf, []byte(pt), aad); err != nil {
			t.Fatal(err)
		}
		got, err := k.Decrypt(buf[start:], aad)
		if err != nil || string(got) != pt {
			t.Fatalf("value %d: %q, %v", i, got, err)
		}
	}
	if !bytes.HasPrefix(buf, []byte("prefix\t")) {
		t.Fatalf("prefix overwritten: %q", buf[:7])
	}
}

// AppendDecrypt appends what Decrypt returns, leaves dst as it was on
// error, and needs no allocation once its buffers have grown.
func TestAppendDecrypt(t *testing.T) {
	k := mustRing(t, keyEntry("k1", testKey(1)))
	aad := AAD("orders", "customer_email", "O1")
	ct, err := k.Encrypt([]byte("jane@example.com"), aad)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.AppendDecrypt([]byte("x="), ct, aad)
	if err != nil || string(got) != "x=jane@example.com" {
		t.Fatalf("AppendDecrypt = %q, %v", got, err)
	}
	got, err = k.AppendDecrypt([]byte("x="), ct, AAD("orders", "customer_email", "O2"))
	if !errors.Is(err, ErrDecrypt) || string(got) != "x=" {
		t.Fatalf("wrong AAD: %q, %v", got, err)
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(200, func() { buf, _ = k.AppendDecrypt(buf[:0], ct, aad) }); n != 0 {
		t.Errorf("AppendDecrypt allocates %v times a call", n)
	}
}
