// Package mask hides sensitive customer and payment values for responses
// and downloads made without the pii scope (SPEC section 4), keeping just
// enough for a person to recognise the value: "j***@example.com",
// "**** **** **** 4242". Safe and Show decide what an error message may
// repeat of a value it refuses.
//
// Masking is one-way and keeps only a short suffix or prefix; the output
// never has more revealing characters than described per function, whatever
// the input looks like.
package mask

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// visible is how many trailing characters Phone and Details keep.
const visible = 4

// Email masks an email address to its first character, "***" and the
// domain: "jane@example.com" → "j***@example.com". The local part is hidden
// entirely when it is a single character (showing it would reveal all of
// it). "" stays "", and a value without "@" becomes "***".
func Email(s string) string {
	if s == "" {
		return ""
	}
	// The last "@" separates the domain: a quoted local part may hold one.
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "***"
	}
	local, domain := s[:at], s[at:]
	r, size := utf8.DecodeRuneInString(local)
	if size == len(local) || r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r) {
		return "***" + domain
	}
	return string(r) + "***" + domain
}

// Phone masks a phone number to its last 4 digits, every earlier character
// becoming "*": "+15550100" → "*****0100". Separators among the last 4
// digits are kept ("+1 555 010-0100" → "***********0100"). A number with 4 or
// fewer digits is masked entirely as "****"; "" stays "".
func Phone(s string) string {
	if s == "" {
		return ""
	}
	start := tailStart(s, visible, isDigit)
	if start < 0 {
		return "****"
	}
	return strings.Repeat("*", utf8.RuneCountInString(s[:start])) + s[start:]
}

// Details masks payment details (card number, UPI id, account or wallet id):
//
//   - a card number, 13 to 19 digits with optional spaces or dashes, becomes
//     "**** **** **** " and its last 4 digits (the length is not revealed);
//   - a value with "@" (a UPI id such as "jane@okaxis") is masked like Email;
//   - anything else becomes "****" and its last 4 letters or digits, or just
//     "****" when it has 4 or fewer.
//
// "" stays "".
func Details(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if digits, ok := cardDigits(s); ok {
		return "**** **** **** " + digits[len(digits)-visible:]
	}
	if strings.Contains(s, "@") {
		return Email(s)
	}
	if countFunc(s, isAlnum) <= visible {
		return "****"
	}
	// Keep only the alphanumerics of the tail so a separator-heavy value
	// cannot stretch the visible part.
	tail := make([]rune, visible)
	for i, n := len(s), visible; n > 0; {
		r, size := utf8.DecodeLastRuneInString(s[:i])
		i -= size
		if isAlnum(r) {
			n--
			tail[n] = r
		}
	}
	return "****" + string(tail)
}

// cardDigits returns the digits of s when s looks like a card number: only
// ASCII digits, spaces and dashes, with 13 to 19 digits.
func cardDigits(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == ' ' || c == '-':
		default:
			return "", false
		}
	}
	if n := b.Len(); n < 13 || n > 19 {
		return "", false
	}
	return b.String(), true
}

// tailStart returns the byte offset in s of the n-th rune matching keep,
// counted from the end, or -1 when s has n or fewer such runes (keeping
// them would reveal the whole value).
func tailStart(s string, n int, keep func(rune) bool) int {
	if countFunc(s, keep) <= n {
		return -1
	}
	found := 0
	for i := len(s); i > 0; {
		r, size := utf8.DecodeLastRuneInString(s[:i])
		i -= size
		if keep(r) {
			found++
			if found == n {
				return i
			}
		}
	}
	return -1
}

func countFunc(s string, f func(rune) bool) int {
	n := 0
	for _, r := range s {
		if f(r) {
			n++
		}
	}
	return n
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

func isAlnum(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// Clip shortens a value echoed in an error message (an id, a field name)
// to its first 40 bytes, cut on a rune boundary so the message stays valid
// UTF-8, marking the cut with "…". Use it on identifiers, not on sensitive
// values: those are never echoed.
func Clip(s string) string {
	if len(s) <= 40 {
		return s
	}
	i := 40
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// maxShown is the longest value Safe lets an error message repeat.
const maxShown = 32

// Safe reports whether a value read from a file or a request may be repeated
// in an error message, a rejects report or a log (SPEC section 4). The rule
// is deliberately narrow, so that no card number, account, email or phone
// passes it, however it is written: 1 to 32 bytes, only ASCII letters,
// digits and "_", ".", "-" (so no "@", "+", space or ":"), no run of 4 or
// more digits and at most 6 digits in all (a card or phone number split
// into short groups still has more). Column names, statuses, methods,
// currency codes and short tokens pass; dates, most ids with long numbers,
// and everything else are described by Show instead.
func Safe(s string) bool {
	if s == "" || len(s) > maxShown {
		return false
	}
	run, digits := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			run++
			digits++
			if run >= 4 || digits > 6 {
				return false
			}
			continue
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == '.', c == '-':
		default:
			return false
		}
		run = 0
	}
	return true
}

// Show renders a value for an error message: quoted when Safe, otherwise
// only its length, as "a 19-character value" (bytes when it is not valid
// UTF-8), so the message never repeats what may be sensitive. "" is
// "an empty value". Messages name the field and the rule around it.
func Show(s string) string {
	switch {
	case s == "":
		return "an empty value"
	case Safe(s):
		return strconv.Quote(s)
	case !utf8.ValidString(s):
		return fmt.Sprintf("a %d-byte value", len(s))
	}
	return fmt.Sprintf("a %d-character value", utf8.RuneCountInString(s))
}

// ID renders an order or payment id for a message. Ids are the client's
// own references and say which row is meant, so they are shown quoted,
// unless one looks like a value that must not be repeated: an email, a
// phone or a card number put in an id column (an "@" or "+", white space,
// ten or more digits, or more than 64 bytes). That one is described as
// Show describes it.
func ID(s string) string {
	digits := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '@', c == '+', c <= ' ', c == 0x7f, c >= 0x80:
			return Show(s)
		}
	}
	if s == "" || digits >= 10 || len(s) > 64 {
		return Show(s)
	}
	return strconv.Quote(s)
}
