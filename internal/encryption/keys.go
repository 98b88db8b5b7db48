package encryption

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ParseKeys builds a keyring from a spec of comma-separated "id:base64key"
// entries; the first entry is the primary key. Key ids are 1-32 characters of
// [A-Za-z0-9_.-]; keys are 32 bytes in standard base64 (URL-safe and unpadded
// forms are accepted too). Errors name the entry position and, when it is
// valid, the key id, but never the key.
func ParseKeys(spec string) (*Keyring, error) {
	k, err := parseEntries(splitSpec(spec))
	if err != nil {
		return nil, fmt.Errorf("encryption: parsing key spec: %w", err)
	}
	return k, nil
}

// LoadKeyring builds the keyring from the service configuration: keys is the
// value of PAYMENTS_KEYS and keysFile the value of PAYMENTS_KEYS_FILE. Exactly
// one of them must be set. The file holds the same spec as PAYMENTS_KEYS;
// entries may also be split one per line, and blank lines and lines starting
// with # are ignored.
func LoadKeyring(keys, keysFile string) (*Keyring, error) {
	keys, keysFile = strings.TrimSpace(keys), strings.TrimSpace(keysFile)
	switch {
	case keys != "" && keysFile != "":
		return nil, errors.New("encryption: both PAYMENTS_KEYS and PAYMENTS_KEYS_FILE are set; set exactly one")
	case keys == "" && keysFile == "":
		return nil, errors.New("encryption: no encryption keys configured: set PAYMENTS_KEYS or PAYMENTS_KEYS_FILE")
	case keys != "":
		k, err := parseEntries(splitSpec(keys))
		if err != nil {
			return nil, fmt.Errorf("encryption: parsing PAYMENTS_KEYS: %w", err)
		}
		return k, nil
	}

	data, err := os.ReadFile(keysFile)
	if err != nil {
		return nil, fmt.Errorf("encryption: reading PAYMENTS_KEYS_FILE: %w", err)
	}
	var entries []specEntry
	for _, line := range meaningfulLines(string(data)) {
		parts := strings.Split(line.text, ",")
		for i, p := range parts {
			where := fmt.Sprintf("line %d", line.no)
			if len(parts) > 1 {
				where = fmt.Sprintf("line %d entry %d", line.no, i+1)
			}
			entries = append(entries, specEntry{where: where, text: p})
		}
	}
	k, err := parseEntries(entries)
	if err != nil {
		return nil, fmt.Errorf("encryption: PAYMENTS_KEYS_FILE %s: %w", keysFile, err)
	}
	return k, nil
}

// GenerateKeySpec returns a new "id:base64key" entry with 32 random bytes,
// for operators' rotation tooling: prepend it to the existing spec to make it
// the primary key.
func GenerateKeySpec(id string) (string, error) {
	if err := validateKeyID(id); err != nil {
		return "", fmt.Errorf("encryption: generating key: %w", err)
	}
	key, err := randomKey()
	if err != nil {
		return "", err
	}
	return id + ":" + base64.StdEncoding.EncodeToString(key), nil
}

// specEntry is one "id:key" entry and where it came from, for error messages.
type specEntry struct {
	where string // "entry 2", "line 5", ...
	text  string
}

// splitSpec splits a comma-separated key spec into entries.
func splitSpec(spec string) []specEntry {
	if strings.TrimSpace(spec) == "" {
		return nil
	}
	var entries []specEntry
	for i, e := range strings.Split(spec, ",") {
		entries = append(entries, specEntry{where: fmt.Sprintf("entry %d", i+1), text: e})
	}
	return entries
}

// parseEntries validates entries and builds the keyring. Error messages carry
// the entry position and, once validated, the key id; never the key text.
func parseEntries(entries []specEntry) (*Keyring, error) {
	if len(entries) == 0 {
		return nil, errors.New("no keys given")
	}
	ids := make([]string, 0, len(entries))
	keys := make([][]byte, 0, len(entries))
	seen := make(map[string]string, len(entries)) // id -> where
	for _, e := range entries {
		text := strings.TrimSpace(e.text)
		if text == "" {
			return nil, fmt.Errorf("%s is empty", e.where)
		}
		id, b64, ok := strings.Cut(text, ":")
		if !ok {
			return nil, fmt.Errorf("%s: missing ':' between key id and key (want id:base64key)", e.where)
		}
		id, b64 = strings.TrimSpace(id), strings.TrimSpace(b64)
		// The id is only quoted once valid: a malformed entry (say, key and id
		// swapped) could otherwise put the key into the message.
		if err := validateKeyID(id); err != nil {
			return nil, fmt.Errorf("%s: %w", e.where, err)
		}
		if prev, dup := seen[id]; dup {
			return nil, fmt.Errorf("%s: duplicate key id %q (also at %s)", e.where, id, prev)
		}
		seen[id] = e.where
		if b64 == "" {
			return nil, fmt.Errorf("%s (key id %q): key is empty", e.where, id)
		}
		key, err := decodeKeyBase64(b64)
		if err != nil {
			return nil, fmt.Errorf("%s (key id %q): key is not valid base64: %w", e.where, id, err)
		}
		if len(key) != keySize {
			return nil, fmt.Errorf("%s (key id %q): key is %d bytes, want %d (AES-256)", e.where, id, len(key), keySize)
		}
		ids = append(ids, id)
		keys = append(keys, key)
	}
	return newKeyring(ids, keys)
}

// validateKeyID checks the key id syntax. Its errors never quote the id.
func validateKeyID(id string) error {
	if id == "" {
		return errors.New("key id is empty")
	}
	if len(id) > maxKeyIDLen {
		return fmt.Errorf("key id is %d characters, want at most %d", len(id), maxKeyIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("key id has an invalid character at position %d (allowed: A-Z a-z 0-9 _ . -)", i+1)
		}
	}
	return nil
}

// decodeKeyBase64 decodes standard or URL-safe base64, padded or not.
// Operators copy keys from many tools, and the alphabets are told apart by
// their two differing characters. Strict mode rejects non-canonical trailing
// bits so each key has a single text form.
func decodeKeyBase64(s string) ([]byte, error) {
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	if strings.HasSuffix(s, "=") {
		enc = enc.WithPadding(base64.StdPadding)
	}
	return enc.Strict().DecodeString(s)
}

// randomKey returns 32 bytes from crypto/rand.
func randomKey() ([]byte, error) {
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("encryption: generating random key: %w", err)
	}
	return key, nil
}

// line is a non-blank, non-comment line of a key file, trimmed.
type line struct {
	no   int // 1-based
	text string
}

// meaningfulLines splits a key file into trimmed lines, dropping blank lines
// and # comments.
func meaningfulLines(data string) []line {
	var out []line
	for i, l := range strings.Split(data, "\n") {
		l = strings.TrimSpace(l) // also drops \r from CRLF files
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, line{no: i + 1, text: l})
	}
	return out
}
