// Package payload holds the JSON conventions of the service's Temporal
// payloads (workflow inputs and results, activity inputs and results,
// updates, signals and queries), which the Web UI shows decoded: field names
// in snake_case, durations as strings ("15m0s"), enums by name and zero
// times left out. Histories recorded before these conventions hold the Go
// field names (PascalCase) and durations in nanoseconds; Unmarshal and
// Duration read both shapes, so such runs still replay and their results
// still decode.
package payload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// SnakeCase is the JSON name of a payload field named name in Go:
// ImportID → import_id, RowsTotal → rows_total, PII → pii, UpTo → up_to.
// A name already in snake_case is returned as it is.
func SnakeCase(name string) string {
	rs := []rune(name)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) {
			// A word starts at an upper-case letter after a lower-case one
			// or digit (RowsTotal), or at the last capital of an acronym
			// followed by a lower-case letter (HTTPServer → http_server).
			prevLower := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			acronymEnd := i > 0 && unicode.IsUpper(rs[i-1]) && i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if (prevLower || acronymEnd) && b.Len() > 0 && !strings.HasSuffix(b.String(), "_") {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Unmarshal decodes the JSON object b into v, a pointer to a method-less
// alias of a payload type (so that calling it from the type's UnmarshalJSON
// does not recurse), after renaming the object's top-level keys written in
// the legacy shape (Go field names) to their snake_case names. Nested
// payload types rename their own keys in their own UnmarshalJSON. When a
// key is present in both shapes, the snake_case one wins. JSON null leaves
// v as it is, as encoding/json does for structs.
func Unmarshal(b []byte, v any) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("payload %T: %w", v, err)
	}
	legacy := false
	for k := range obj {
		if SnakeCase(k) != k {
			legacy = true
			break
		}
	}
	if legacy {
		renamed := make(map[string]json.RawMessage, len(obj))
		for k, val := range obj {
			if s := SnakeCase(k); s == k {
				renamed[k] = val
			} else if _, both := obj[s]; !both {
				renamed[s] = val
			}
		}
		var err error
		if b, err = json.Marshal(renamed); err != nil {
			return fmt.Errorf("payload %T: %w", v, err)
		}
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("payload %T: %w", v, err)
	}
	return nil
}

// Duration is a time.Duration as a payload carries it: a string such as
// "15m0s" (time.Duration.String), read back with time.ParseDuration. It
// also reads a JSON number of nanoseconds, the legacy shape. Payload types
// keep time.Duration fields, so that workflow code is unchanged, and
// marshal them through a Duration shadow field.
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string or a legacy number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("duration: %w", err)
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration: %w", err)
		}
		*d = Duration(v)
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("duration %s: want a string such as \"15m0s\" or a number of nanoseconds", b)
	}
	*d = Duration(n)
	return nil
}
