package encryption

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustBlindIndex(t *testing.T, key []byte) *BlindIndex {
	t.Helper()
	b, err := NewBlindIndex(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBlindIndexEmail(t *testing.T) {
	b := mustBlindIndex(t, key1)
	want := b.Email("alice@example.com")
	if len(want) != EmailIndexSize {
		t.Fatalf("len = %d, want %d", len(want), EmailIndexSize)
	}
	for _, variant := range []string{"alice@example.com", "Alice@Example.COM", "  ALICE@EXAMPLE.COM\t\n", " alice@example.com "} {
		if got := b.Email(variant); !bytes.Equal(got, want) {
			t.Errorf("Email(%q) differs from Email(%q)", variant, "alice@example.com")
		}
	}
	if bytes.Equal(b.Email("bob@example.com"), want) {
		t.Error("different emails give the same index")
	}
	if bytes.Equal(b.Email("alice@example.co"), want) {
		t.Error("different emails give the same index")
	}

	// The construction is exactly the first EmailIndexSize bytes of
	// HMAC-SHA256(key, "email\x00" + normalized).
	mac := hmac.New(sha256.New, key1)
	mac.Write([]byte("email\x00alice@example.com"))
	if !bytes.Equal(want, mac.Sum(nil)[:EmailIndexSize]) {
		t.Error(`Email is not HMAC-SHA256(key, "email\x00" + normalized email), truncated`)
	}
	if !bytes.Equal(want, b.Sum("email", "alice@example.com")[:EmailIndexSize]) {
		t.Error(`Email(x) != Sum("email", normalized x)`)
	}
}

func TestBlindIndexSum(t *testing.T) {
	b := mustBlindIndex(t, key1)
	other := mustBlindIndex(t, key2)
	s := b.Sum("customer_phone", "+15551234567")
	if len(s) != 32 {
		t.Fatalf("len = %d, want 32", len(s))
	}
	if !bytes.Equal(s, b.Sum("customer_phone", "+15551234567")) {
		t.Error("Sum is not deterministic")
	}
	mac := hmac.New(sha256.New, key1)
	mac.Write([]byte("customer_phone\x00+15551234567"))
	if !bytes.Equal(s, mac.Sum(nil)) {
		t.Error("Sum is not HMAC-SHA256(key, column + 0x00 + value)")
	}
	if bytes.Equal(s, other.Sum("customer_phone", "+15551234567")) {
		t.Error("different keys give the same index")
	}
	if bytes.Equal(s, b.Sum("customer_email", "+15551234567")) {
		t.Error("different columns give the same index")
	}
	if bytes.Equal(b.Email("a@b.c"), b.Sum("customer_email", "a@b.c")) {
		t.Error("Email index collides with another column's index")
	}
	if bytes.Equal(b.Sum("c", "Value"), b.Sum("c", "value")) || bytes.Equal(b.Sum("c", " v"), b.Sum("c", "v")) {
		t.Error("Sum normalizes its input")
	}
	if bytes.Equal(b.Sum("ab", "c"), b.Sum("a", "bc")) {
		t.Error("column/value boundary is ambiguous")
	}
}

func TestNewBlindIndexCopiesKey(t *testing.T) {
	key := testKey(7)
	b := mustBlindIndex(t, key)
	before := b.Sum("c", "v")
	key[0] ^= 0xff
	if !bytes.Equal(before, b.Sum("c", "v")) {
		t.Error("modifying the caller's key slice changed the index")
	}
}

func TestBlindIndexKeyErrors(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := NewBlindIndex(make([]byte, n)); err == nil {
			t.Errorf("NewBlindIndex with %d-byte key: no error", n)
		}
	}
	short := base64.StdEncoding.EncodeToString(key1[:16])
	for name, in := range map[string]string{
		"empty":       "",
		"blank":       " \n",
		"bad base64":  "not*base64*at*all",
		"16 bytes":    short,
		"not decoded": base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 40))),
	} {
		_, err := ParseBlindIndexKey(in)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if strings.TrimSpace(in) != "" && strings.Contains(err.Error(), strings.TrimSpace(in)) {
			t.Errorf("%s: error %q leaks the key", name, err)
		}
	}
}

func TestParseBlindIndexKey(t *testing.T) {
	want := mustBlindIndex(t, key2).Sum("c", "v")
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := ParseBlindIndexKey(" " + enc.EncodeToString(key2) + "\n")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Sum("c", "v"), want) {
			t.Error("parsed a different key")
		}
	}
}

func TestReadBlindIndexFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bi.key")
	if err := os.WriteFile(path, []byte("# blind index\n"+base64.StdEncoding.EncodeToString(key2)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := ReadBlindIndexFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Sum("c", "v"), mustBlindIndex(t, key2).Sum("c", "v")) {
		t.Error("file parsed to a different key")
	}

	short := base64.StdEncoding.EncodeToString(key1[:16])
	if err := os.WriteFile(path, []byte(short+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBlindIndexFile(path); err == nil || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), short) {
		t.Errorf("short key file: err = %v, want one naming the path without the key", err)
	}
	if _, err := ReadBlindIndexFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: no error")
	}
}
