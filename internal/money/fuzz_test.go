package money

import (
	"errors"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fuzzCurrencies covers every exponent (0, 2, 3, 4) including a fund code.
var fuzzCurrencies = []string{"USD", "JPY", "KWD", "CLF", "EUR", "BHD", "UYW", "UYI", "XOF"}

var (
	plainInt     = regexp.MustCompile(`^[0-9]+$`)
	plainDecimal = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
)

// referenceParse is an independent, deliberately naive oracle for Parse:
// regexp for the syntax and math/big for the value, so it cannot share
// Parse's overflow or padding bugs. ok is false when Parse must fail.
func referenceParse(s string, exp int) (int64, bool) {
	re := plainDecimal
	if exp == 0 {
		re = plainInt
	}
	if !re.MatchString(s) {
		return 0, false
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if len(frac) > exp {
		return 0, false
	}
	n, ok := new(big.Int).SetString(intPart+frac+strings.Repeat("0", exp-len(frac)), 10)
	if !ok || n.Sign() <= 0 || !n.IsInt64() {
		return 0, false
	}
	return n.Int64(), true
}

// canonicalForm[exp] is what Format output must match: no superfluous
// leading zeros and exactly exp fraction digits.
var canonicalForm = [...]*regexp.Regexp{
	regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`),
	regexp.MustCompile(`^-?(0|[1-9][0-9]*)\.[0-9]$`),
	regexp.MustCompile(`^-?(0|[1-9][0-9]*)\.[0-9]{2}$`),
	regexp.MustCompile(`^-?(0|[1-9][0-9]*)\.[0-9]{3}$`),
	regexp.MustCompile(`^-?(0|[1-9][0-9]*)\.[0-9]{4}$`),
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		"12.30", "12.3", "12", "0.01", "007.50", "100", "100.0", "1.5", "0.001",
		"1.2345", "", " 1", "1 ", "+1", "-1", "1e3", "1E3", "1,000", "1_000",
		"1 000", "12.345", "12.", ".5", ".", "1..2", "0", "0.00", "000",
		"9223372036854775807", "9223372036854775808", "92233720368547758.07",
		"92233720368547758.08", "9223372036854775.807", "922337203685477.5807",
		"18446744073709551616", "99999999999999999999999999", "١٢", "１２",
		"12\u00a0000", "1\xff", "NaN", "Inf", "0x10", "$12", "\x00",
	}
	for i, s := range seeds {
		f.Add(s, uint8(i))
	}
	f.Fuzz(func(t *testing.T, s string, idx uint8) {
		cur := fuzzCurrencies[int(idx)%len(fuzzCurrencies)]
		exp := exponents[cur]

		v, err := Parse(s, cur)
		want, wantOK := referenceParse(s, exp)
		if err != nil {
			if !errors.Is(err, ErrBadAmount) {
				t.Fatalf("Parse(%q, %s) error %v does not wrap ErrBadAmount", s, cur, err)
			}
			if wantOK {
				t.Fatalf("Parse(%q, %s) rejected (%v), reference accepts %d", s, cur, err, want)
			}
			return
		}
		if !wantOK || v != want {
			t.Fatalf("Parse(%q, %s) = %d, reference = %d, %v", s, cur, v, want, wantOK)
		}
		if v <= 0 {
			t.Fatalf("Parse(%q, %s) = %d, want > 0", s, cur, v)
		}

		out, err := Format(v, cur)
		if err != nil {
			t.Fatalf("Format(%d, %s): %v", v, cur, err)
		}
		if !canonicalForm[exp].MatchString(out) {
			t.Fatalf("Format(%d, %s) = %q is not canonical", v, cur, out)
		}
		v2, err := Parse(out, cur)
		if err != nil || v2 != v {
			t.Fatalf("Parse(Format(Parse(%q))) = Parse(%q) = %d, %v; want %d", s, out, v2, err, v)
		}
	})
}

func FuzzFormatParse(f *testing.F) {
	for i, v := range []int64{
		1, 5, 9, 10, 99, 100, 101, 1230, 1500, 12345, 1_000_000,
		math.MaxInt32, math.MaxInt64 / 10, math.MaxInt64 - 1, math.MaxInt64,
	} {
		f.Add(v, uint8(i))
	}
	codes := make([]string, 0, len(exponents))
	for c := range exponents {
		codes = append(codes, c)
	}
	slices.Sort(codes) // stable index -> currency mapping for the corpus

	f.Fuzz(func(t *testing.T, v int64, idx uint8) {
		if v <= 0 {
			t.Skip("Parse only yields positive amounts")
		}
		cur := codes[int(idx)%len(codes)]
		exp := exponents[cur]

		s, err := Format(v, cur)
		if err != nil {
			t.Fatalf("Format(%d, %s): %v", v, cur, err)
		}
		if !canonicalForm[exp].MatchString(s) {
			t.Fatalf("Format(%d, %s) = %q is not canonical", v, cur, s)
		}
		// The digits without the dot must be exactly v's decimal digits,
		// left-padded to at least exp+1 digits.
		digits := strings.Replace(s, ".", "", 1)
		if want := strconv.FormatInt(v, 10); strings.TrimLeft(digits, "0") != want {
			t.Fatalf("Format(%d, %s) = %q, digits do not match %s", v, cur, s, want)
		}
		got, err := Parse(s, cur)
		if err != nil || got != v {
			t.Fatalf("Parse(Format(%d, %s)) = Parse(%q) = %d, %v", v, cur, s, got, err)
		}
		// Negation is only used for derived values, but must mirror exactly.
		if neg := MustFormat(-v, cur); neg != "-"+s {
			t.Fatalf("Format(%d, %s) = %q, want %q", -v, cur, neg, "-"+s)
		}
	})
}
