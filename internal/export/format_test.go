package export

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
	"unicode/utf8"
)

// appendTime writes what time.RFC3339Nano does, for every fraction width.
func TestAppendTimeMatchesRFC3339Nano(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 100_000 {
		tm := time.Unix(rng.Int64N(253402300799), 0).UTC()
		switch i % 4 {
		case 1:
			tm = tm.Add(time.Duration(rng.IntN(1_000_000)) * time.Microsecond)
		case 2:
			tm = tm.Add(time.Duration(rng.IntN(1000)) * 100 * time.Millisecond)
		case 3:
			tm = tm.Add(time.Duration(rng.IntN(1_000_000_000)))
		}
		if got, want := string(appendTime(nil, tm)), tm.Format(time.RFC3339Nano); got != want {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
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
