package importer

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanFileName(t *testing.T) {
	for in, want := range map[string]string{
		"orders.csv":                       "orders.csv",
		"/home/me/exports/orders 2026.csv": "orders 2026.csv",
		`C:\Users\me\orders.xml`:           "orders.xml",
		"  padded.csv  ":                   "padded.csv",
		"evil\r\nSet-Cookie: x.csv":        "evilSet-Cookie: x.csv",
		"bell\a\x1b[31mred\x1b[0m.csv":     "bell[31mred[0m.csv",
		"inv\u202eVSC.exe":                 "invVSC.exe", // right-to-left override
		"nul\x00byte.csv":                  "nulbyte.csv",
		"bad\xffutf8.csv":                  "badutf8.csv",
		"zażółć.csv":                       "zażółć.csv",
		"":                                 "",
		"dir/":                             "",
		"\x01\x02":                         "",
	} {
		if got := CleanFileName(in); got != want {
			t.Errorf("CleanFileName(%q) = %q, want %q", in, got, want)
		}
	}
	long := CleanFileName(strings.Repeat("é", 1000) + ".csv")
	if utf8.RuneCountInString(long) != MaxFileNameRunes || !utf8.ValidString(long) {
		t.Errorf("a long name is %d runes, want %d", utf8.RuneCountInString(long), MaxFileNameRunes)
	}
}
