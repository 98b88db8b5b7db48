// Package money converts between decimal amount strings and exact int64
// minor units (cents, fils, ...) of ISO 4217 currencies.
//
// Amounts arrive from CSV/XML/JSON as text such as "12.30". Converting them
// through float64 loses precision, so this package works on the digits
// directly and rejects anything that is not an unambiguous plain decimal.
package money

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Currency is an ISO 4217 currency: its alphabetic code and minor-unit exponent.
// Exponent is the number of fraction digits, so one major unit equals
// 10^Exponent minor units (USD 2, JPY 0, KWD 3, CLF 4).
type Currency struct {
	Code     string
	Exponent int
}

// ErrBadAmount is wrapped by every Parse error caused by the amount text, so
// callers can tell bad input data apart from configuration problems.
var ErrBadAmount = errors.New("bad amount")

// ErrBadCurrency is wrapped by every error caused by an unknown, withdrawn,
// non-monetary or wrongly cased currency code.
var ErrBadCurrency = errors.New("bad currency")

// Lookup returns the active ISO 4217 currency with exactly this code.
// Matching is case-sensitive on purpose: ISO codes are upper-case, and
// silently accepting "usd" would hide upstream data bugs.
func Lookup(code string) (Currency, bool) {
	exp, ok := exponents[code]
	if !ok {
		return Currency{}, false
	}
	return Currency{Code: code, Exponent: exp}, true
}

func lookupErr(code string) (Currency, error) {
	c, ok := Lookup(code)
	if !ok {
		return Currency{}, fmt.Errorf("%w %q: not an active ISO 4217 code with a minor unit", ErrBadCurrency, code)
	}
	return c, nil
}

// Parse converts a plain positive decimal string such as "12.30" into minor
// units of currency (1230 for USD).
//
// Only the form DIGITS or DIGITS.DIGITS is accepted, with at most
// Exponent fraction digits (fewer are padded: "12.3" USD is 1230). Signs,
// exponents, digit grouping, spaces, bare dots, non-ASCII digits, zero and
// values that do not fit in int64 are rejected rather than guessed at,
// because a misread amount is worse than a rejected one. Errors wrap
// ErrBadAmount or ErrBadCurrency.
func Parse(amount string, currency string) (int64, error) {
	c, err := lookupErr(currency)
	if err != nil {
		return 0, err
	}
	bad := func(format string, args ...any) (int64, error) {
		return 0, fmt.Errorf("%w %q: %s", ErrBadAmount, amount, fmt.Sprintf(format, args...))
	}

	if amount == "" {
		return bad("empty")
	}
	// Validate every byte first so the error names the real problem
	// (e.g. a sign) instead of a later structural symptom.
	dot := -1
	for i := 0; i < len(amount); i++ {
		b := amount[i]
		switch {
		case b >= '0' && b <= '9':
		case b == '.':
			if dot >= 0 {
				return bad("more than one decimal point")
			}
			dot = i
		case b >= utf8.RuneSelf:
			return bad("non-ASCII character at byte %d (only ASCII digits 0-9 are allowed)", i)
		case b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\v' || b == '\f':
			if i == 0 || i == len(amount)-1 {
				return bad("leading or trailing whitespace")
			}
			return bad("digit grouping separator %q not allowed", b)
		case b == '+' || b == '-':
			return bad("sign %q not allowed (amounts are unsigned)", b)
		case b == 'e' || b == 'E':
			return bad("exponent notation not allowed")
		case b == ',' || b == '_' || b == '\'':
			return bad("digit grouping separator %q not allowed", b)
		default:
			return bad("invalid character %q at byte %d", b, i)
		}
	}

	intPart, frac := amount, ""
	if dot >= 0 {
		if c.Exponent == 0 {
			return bad("%s has no minor unit, decimal point not allowed", c.Code)
		}
		intPart, frac = amount[:dot], amount[dot+1:]
		if intPart == "" {
			return bad("missing digits before decimal point")
		}
		if frac == "" {
			return bad("missing digits after decimal point")
		}
		if len(frac) > c.Exponent {
			return bad("%s allows at most %d fraction digits", c.Code, c.Exponent)
		}
	}

	// Accumulate integer digits, fraction digits, then implicit trailing
	// zeros, checking before each step so the value can never wrap.
	var v int64
	tooLarge := func() (int64, error) {
		return bad("too large for %s (max %s)", c.Code, format(math.MaxInt64, c.Exponent))
	}
	for _, s := range [2]string{intPart, frac} {
		for i := 0; i < len(s); i++ {
			d := int64(s[i] - '0')
			if v > (math.MaxInt64-d)/10 {
				return tooLarge()
			}
			v = v*10 + d
		}
	}
	for range c.Exponent - len(frac) {
		if v > math.MaxInt64/10 {
			return tooLarge()
		}
		v *= 10
	}

	if v == 0 {
		return bad("must be positive")
	}
	return v, nil
}

// Format renders minor units of currency as the canonical decimal string
// with exactly Exponent fraction digits (1230 USD -> "12.30", 5 JPY -> "5",
// 1 KWD -> "0.001"). Negative values get a leading "-" because derived
// values such as refunds or differences may be negative. The error wraps
// ErrBadCurrency.
func Format(minor int64, currency string) (string, error) {
	c, err := lookupErr(currency)
	if err != nil {
		return "", err
	}
	return format(minor, c.Exponent), nil
}

// MustFormat is Format for amounts whose currency was already validated
// (e.g. by Parse); an unknown currency there is a programming error, so it
// panics instead of forcing callers to handle an impossible error.
func MustFormat(minor int64, currency string) string {
	s, err := Format(minor, currency)
	if err != nil {
		panic(err)
	}
	return s
}

func format(minor int64, exp int) string {
	return string(AppendFormat(make([]byte, 0, 24), minor, exp))
}

// AppendFormat appends minor in the major unit of a currency of exponent
// exp, as Format writes it, for bulk writers that format amount after
// amount into one buffer.
func AppendFormat(dst []byte, minor int64, exp int) []byte {
	// Work on the magnitude as uint64: -math.MinInt64 does not fit in int64
	// but its two's-complement negation is exact in uint64.
	u := uint64(minor)
	if minor < 0 {
		u = -u
		dst = append(dst, '-')
	}
	var buf [24]byte
	digits := strconv.AppendUint(buf[:0], u, 10)
	n := len(digits) - exp // integer digits
	if n <= 0 {
		// Below one major unit: "0." and the zeros the digits lack.
		dst = append(dst, '0', '.')
		for range -n {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	dst = append(dst, digits[:n]...)
	if exp > 0 {
		dst = append(append(dst, '.'), digits[n:]...)
	}
	return dst
}
