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
