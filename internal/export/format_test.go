package export

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
	"unicode/utf8"
)

// appendTime writes a DATETIME(6) text as time.RFC3339Nano writes the same
// instant, for every fraction width.
func TestAppendTimeMatchesRFC3339Nano(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 100_000 {
		tm := time.Unix(rng.Int64N(253402300799), 0).UTC() // 1970..9999
		switch i % 3 {
		case 1:
			tm = tm.Add(time.Duration(rng.IntN(1_000_000)) * time.Microsecond)
		case 2:
			tm = tm.Add(time.Duration(rng.IntN(1000)) * 100 * time.Millisecond)
		}
		text := tm.Format("2006-01-02 15:04:05.000000") // as the server sends DATETIME(6)
		if got, want := string(appendTime(nil, []byte(text))), tm.Format(time.RFC3339Nano); got != want {
			t.Fatalf("appendTime(%s) = %s, want %s", text, got, want)
		}
	}
	if got := string(appendTime(nil, []byte("2026-01-02 03:04:05"))); got != "2026-01-02T03:04:05Z" {
		t.Errorf("without a fraction: %s", got)
	}
}

// A JSON record's strings decode to exactly the bytes that went in.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `"quoted"`, "back\\slash", "\x00\x01\x1f\x7f", "line\nbreak\r\t", "\u2028\u2029", "ünï 中文 😀", "<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			t.Skip()
		}
		enc := appendJSONString(nil, []byte(s))
		var got string
		if err := json.Unmarshal(enc, &got); err != nil || got != s {
			t.Fatalf("%q encoded as %s decodes to %q, %v", s, enc, got, err)
		}
		want, _ := json.Marshal(s)
		if len(enc) > len(want) {
			t.Errorf("%q: %s is longer than encoding/json's %s", s, enc, want)
		}
	})
}
