package mask

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEmail(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"jane@example.com", "j***@example.com"},
		{"Jane.Doe+tag@Example.COM", "J***@Example.COM"},
		{"j@example.com", "***@example.com"},
		{"@example.com", "***@example.com"},
		{`"a@b"@example.com`, `"***@example.com`},
		{"élodie@example.fr", "é***@example.fr"},
		{"", ""},
		{"not-an-email", "***"},
		{"jane@", "j***@"},
		{"\xffjane@example.com", "***@example.com"},
	} {
		if got := Email(tc.in); got != tc.want {
			t.Errorf("Email(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPhone(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"+15550100", "*****0100"},
		{"+1 555 010 0100", "***********0100"},
		{"+1-555-01-00", "*******01-00"},
		{"5550100", "***0100"},
		{"0100", "****"},
		{"12", "****"},
		{"no digits", "****"},
		{"", ""},
	} {
		if got := Phone(tc.in); got != tc.want {
			t.Errorf("Phone(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDetails(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"4242 4242 4242 4242", "**** **** **** 4242"},
		{"4242424242424242", "**** **** **** 4242"},
		{"4242-4242-4242-4242", "**** **** **** 4242"},
		{"378282246310005", "**** **** **** 0005"},        // 15-digit Amex
		{"4222222222222", "**** **** **** 2222"},          // 13 digits
		{"6011000990139424123", "**** **** **** 4123"},    // 19 digits
		{"  4242 4242 4242 4242 ", "**** **** **** 4242"}, // surrounding spaces
		{"jane@okaxis", "j***@okaxis"},
		{"123456789012", "****9012"},                // 12 digits: an account, not a card
		{"42424242424242424242", "****4242"},        // 20 digits
		{"DE89 3704 0044 0532 0130 00", "****3000"}, // IBAN
		{"wallet:ab-cd-ef-gh", "****efgh"},
		{"ACC-12345678", "****5678"},
		{"abcd", "****"},
		{"a-b-c", "****"},
		{"", ""},
	} {
		if got := Details(tc.in); got != tc.want {
			t.Errorf("Details(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestNeverRevealsAll: short values are masked completely rather than shown.
func TestNeverRevealsAll(t *testing.T) {
	for _, in := range []string{"1", "12", "123", "1234", "ab", "x@y"} {
		for name, f := range map[string]func(string) string{"Email": Email, "Phone": Phone, "Details": Details} {
			got := f(in)
			if got == in || (len(in) > 1 && strings.Contains(got, in)) {
				t.Errorf("%s(%q) = %q reveals the value", name, in, got)
			}
		}
	}
}

func TestClipKeepsMessagesValidUTF8(t *testing.T) {
	if got := Clip("short-id"); got != "short-id" {
		t.Errorf("Clip(short) = %q", got)
	}
	long := strings.Repeat("a", 39) + "é" + strings.Repeat("b", 10) // é spans bytes 39-40
	got := Clip(long)
	if !utf8.ValidString(got) || got != strings.Repeat("a", 39)+"…" {
		t.Errorf("Clip cut inside a rune: %q", got)
	}
}

// The sentinels of the leak tests: none may pass Safe, in any usual spelling.
var sensitive = []string{
	"4000056655665556", "4000 0566 5566 5556", "4000-0566-5566-5556", "4000.0566.5566.5556",
	"400-005-665-566-5556", "40-00-05-66-55-66-55-56", "378282246310005",
	"victim.leak@example.com", "jane@okaxis", "+14155550123", "415-555-0123", "4155550123", "555-0123",
	"(415) 555 0123", "DE89370400440532013000", "DE89 3704 0044 0532 0130 00", "ACC-12345678",
	"2024-01-02", "ORD-000123", strings.Repeat("a", 33), "a b", "a:b", "a\x00b", "\xff", "",
}

func TestSafe(t *testing.T) {
	for _, s := range sensitive {
		if Safe(s) {
			t.Errorf("Safe(%q) = true", s)
		}
	}
	for _, s := range []string{"order_id", "colour", "CARD", "cash", "USD", "usd", "PENDING", "ORD-X1", "A1", "v1.2.3", "abc-123", "x_12.34", strings.Repeat("a", 32)} {
		if !Safe(s) {
			t.Errorf("Safe(%q) = false", s)
		}
	}
}

func TestShowNeverRepeatsSensitive(t *testing.T) {
	for _, s := range sensitive {
		got := Show(s)
		if s != "" && strings.Contains(got, s) {
			t.Errorf("Show(%q) = %q repeats it", s, got)
		}
		if !utf8.ValidString(got) {
			t.Errorf("Show(%q) = %q is not UTF-8", s, got)
		}
	}
	for in, want := range map[string]string{
		"colour":                  `"colour"`,
		"4000 0566 5566 5556":     "a 19-character value",
		"victim.leak@example.com": "a 23-character value",
		"élodie@example.fr":       "a 17-character value",
		"a\xffb":                  "a 3-byte value",
		"":                        "an empty value",
	} {
		if got := Show(in); got != want {
			t.Errorf("Show(%q) = %q, want %q", in, got, want)
		}
	}
}

// ID shows ordinary ids and describes the ones that look like an email,
// a phone or a card put in an id column.
func TestID(t *testing.T) {
	for in, want := range map[string]string{
		"ORD-00000002":                 `"ORD-00000002"`,
		"LK-001":                       `"LK-001"`,
		"zq.sentinel.leak@example.com": "a 28-character value",
		"+14155550987":                 "a 12-character value",
		"4000056655665556":             "a 16-character value",
		"4000 0566 5566 5556":          "a 19-character value",
		"":                             "an empty value",
	} {
		if got := ID(in); got != want {
			t.Errorf("ID(%q) = %s, want %s", in, got, want)
		}
	}
}
