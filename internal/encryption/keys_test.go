package encryption

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKeys(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString(key1)
	k, err := ParseKeys(" k1:" + b64 + " , k2 : " + base64.StdEncoding.EncodeToString(key2) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if k.PrimaryID() != "k1" || fmt.Sprint(k.KeyIDs()) != "[k1 k2]" {
		t.Errorf("PrimaryID %q, KeyIDs %v", k.PrimaryID(), k.KeyIDs())
	}
	if _, err := ParseKeys(strings.Repeat("a", 32) + ":" + b64); err != nil {
		t.Errorf("32-character id: %v", err)
	}
	if _, err := ParseKeys("A-z_0.9:" + b64); err != nil {
		t.Errorf("id using every allowed character class: %v", err)
	}
}

func TestParseKeysBase64Variants(t *testing.T) {
	// This key encodes with '+' and '/' in standard base64, '-' and '_' in
	// URL-safe base64, and needs padding.
	key := make([]byte, keySize)
	for i := range key {
		key[i] = 0xfb ^ byte(i*7)
	}
	std := base64.StdEncoding.EncodeToString(key)
	if !strings.ContainsAny(std, "+/") || !strings.HasSuffix(std, "=") {
		t.Fatalf("test key %q does not exercise the alphabet differences", std)
	}
	ref := mustRing(t, "k1:"+std)
	ct, err := ref.Encrypt([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, enc := range map[string]*base64.Encoding{
		"std": base64.StdEncoding, "raw std": base64.RawStdEncoding,
		"url": base64.URLEncoding, "raw url": base64.RawURLEncoding,
	} {
		k, err := ParseKeys("k1:" + enc.EncodeToString(key))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, err := k.Decrypt(ct, nil); err != nil {
			t.Errorf("%s: parsed to a different key: %v", name, err)
		}
	}
}

func TestParseKeysErrors(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(key1)
	short := base64.StdEncoding.EncodeToString(key1[:16])
	long := base64.StdEncoding.EncodeToString(append(key2, 1))
	badB64 := "c2VjcmV0LWtleS1tYXRlcmlhbCEhIS0tLS0tLS0tLS0*"
	cases := []struct {
		name, spec string
		wantInErr  []string // substrings the message must contain
		secrets    []string // substrings it must not contain
	}{
		{"empty", "", []string{"no keys"}, nil},
		{"blank", "  \n ", []string{"no keys"}, nil},
		{"id only", "k1", []string{"entry 1", "missing ':'"}, nil},
		{"empty key", "k1:", []string{"entry 1", `"k1"`, "empty"}, nil},
		{"empty id", ":" + good, []string{"entry 1", "key id is empty"}, []string{good}},
		{"bad base64", "k1:" + badB64, []string{"entry 1", `"k1"`, "base64"}, []string{badB64, badB64[:20]}},
		{"mixed alphabets", "k1:ab+-" + good[4:], []string{"base64"}, []string{good[4:]}},
		{"16-byte key", "k1:" + short, []string{`"k1"`, "16 bytes", "want 32"}, []string{short}},
		{"33-byte key", "k1:" + long, []string{"33 bytes"}, []string{long}},
		{"wrong length at position 2", "k1:" + good + ",k2:" + short, []string{"entry 2", `"k2"`, "16 bytes"}, []string{good, short}},
		{"duplicate id", "k1:" + good + ",k2:" + good + ",k1:" + good, []string{"entry 3", `"k1"`, "duplicate", "entry 1"}, []string{good}},
		{"bad id char", "k 1:" + good, []string{"entry 1", "invalid character at position 2"}, []string{good}},
		{"bad id slash", "k/1:" + good, []string{"invalid character"}, []string{good}},
		{"id too long", strings.Repeat("a", 33) + ":" + good, []string{"33 characters"}, []string{good}},
		{"empty entry", "k1:" + good + ",,k2:" + good, []string{"entry 2 is empty"}, []string{good}},
		{"trailing comma", "k1:" + good + ",", []string{"entry 2 is empty"}, []string{good}},
		// Key and id swapped: the "id" is the key and must not be echoed.
		{"swapped", good + ":k1", []string{"entry 1", "key id"}, []string{good, good[:16]}},
		{"key without id", good, []string{"missing ':'"}, []string{good, good[:16]}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, err := ParseKeys(c.spec)
			if err == nil {
				t.Fatalf("ParseKeys(%q) = %v, want error", c.spec, k.KeyIDs())
			}
			msg := err.Error()
			for _, want := range c.wantInErr {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			for _, secret := range c.secrets {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q leaks key text %q", msg, secret)
				}
			}
		})
	}
}

func TestLoadKeyring(t *testing.T) {
	spec := keyEntry("k2", key2) + "," + keyEntry("k1", key1)
	dir := t.TempDir()
	file := filepath.Join(dir, "keys.txt")
	content := "# payment service keys\n\n  " + keyEntry("k2", key2) + "  \r\n# old key, drop after rotation\n" + keyEntry("k1", key1) + "\n\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	oneLine := filepath.Join(dir, "oneline.txt")
	if err := os.WriteFile(oneLine, []byte("\n"+spec+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for name, load := range map[string]func() (*Keyring, error){
		"env":           func() (*Keyring, error) { return LoadKeyring(spec, "") },
		"file per line": func() (*Keyring, error) { return LoadKeyring("", file) },
		"file one line": func() (*Keyring, error) { return LoadKeyring("", oneLine) },
	} {
		k, err := load()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := fmt.Sprint(k.KeyIDs()); got != "[k2 k1]" || k.PrimaryID() != "k2" {
			t.Errorf("%s: KeyIDs %s, primary %q; want [k2 k1], k2", name, got, k.PrimaryID())
		}
	}

	for name, args := range map[string][2]string{
		"both":    {spec, file},
		"neither": {"", ""},
		"blank":   {"  ", "\n"},
	} {
		_, err := LoadKeyring(args[0], args[1])
		if err == nil {
			t.Errorf("%s set: no error", name)
			continue
		}
		if !strings.Contains(err.Error(), "PAYMENTS_KEYS ") || !strings.Contains(err.Error(), "PAYMENTS_KEYS_FILE") {
			t.Errorf("%s set: error %q should name PAYMENTS_KEYS and PAYMENTS_KEYS_FILE", name, err)
		}
	}

	if _, err := LoadKeyring("", filepath.Join(dir, "missing.txt")); err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("missing file: err = %v, want one naming the file", err)
	}

	bad := filepath.Join(dir, "bad.txt")
	short := base64.StdEncoding.EncodeToString(key1[:16])
	if err := os.WriteFile(bad, []byte("# comment\n"+keyEntry("k1", key1)+"\n\nk2:"+short+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadKeyring("", bad)
	if err == nil || !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), `"k2"`) ||
		!strings.Contains(err.Error(), "bad.txt") || strings.Contains(err.Error(), short) {
		t.Errorf("bad file: err = %v, want one naming the file, line 4 and k2, without the key", err)
	}

	empty := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(empty, []byte("# nothing yet\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyring("", empty); err == nil || !strings.Contains(err.Error(), "no keys") {
		t.Errorf("file with only comments: err = %v, want 'no keys'", err)
	}

	if _, err := LoadKeyring("k1:"+short, ""); err == nil || !strings.Contains(err.Error(), "PAYMENTS_KEYS") || strings.Contains(err.Error(), short) {
		t.Errorf("bad env: err = %v, want one naming PAYMENTS_KEYS without the key", err)
	}
}

func TestGenerateKeySpec(t *testing.T) {
	a, err := GenerateKeySpec("k3")
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateKeySpec("k4")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a, "k3:") || a[3:] == b[3:] {
		t.Errorf("GenerateKeySpec gave %q-like output twice or without the id", "k3:...")
	}
	k := mustRing(t, a+","+b)
	if k.PrimaryID() != "k3" {
		t.Errorf("primary = %q, want k3", k.PrimaryID())
	}
	for _, id := range []string{"", "has space", strings.Repeat("x", 33), "k:1"} {
		if s, err := GenerateKeySpec(id); err == nil {
			t.Errorf("GenerateKeySpec(%q) = %q, want error", id, s)
		}
	}
}
