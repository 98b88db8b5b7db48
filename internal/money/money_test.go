package money

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		code string
		exp  int
		ok   bool
	}{
		// exponent 0
		{"JPY", 0, true}, {"KRW", 0, true}, {"VND", 0, true}, {"ISK", 0, true},
		{"CLP", 0, true}, {"PYG", 0, true}, {"UGX", 0, true}, {"XAF", 0, true},
		{"XOF", 0, true}, {"XPF", 0, true}, {"KMF", 0, true}, {"GNF", 0, true},
		{"RWF", 0, true}, {"DJF", 0, true}, {"VUV", 0, true}, {"BIF", 0, true},
		{"UYI", 0, true},
		// exponent 2
		{"USD", 2, true}, {"EUR", 2, true}, {"GBP", 2, true}, {"CHF", 2, true},
		{"VES", 2, true}, {"VED", 2, true}, {"STN", 2, true}, {"MRU", 2, true},
		{"SLE", 2, true}, {"ZWG", 2, true}, {"XCG", 2, true}, {"XAD", 2, true},
		{"BOV", 2, true}, {"CHE", 2, true}, {"CHW", 2, true}, {"COU", 2, true},
		{"MXV", 2, true}, {"USN", 2, true},
		// exponent 3
		{"KWD", 3, true}, {"BHD", 3, true}, {"JOD", 3, true}, {"OMR", 3, true},
		{"TND", 3, true}, {"LYD", 3, true}, {"IQD", 3, true},
		// exponent 4
		{"CLF", 4, true}, {"UYW", 4, true},
		// rejects: case, N.A. minor unit, withdrawn, unknown, malformed
		{"usd", 0, false}, {"Usd", 0, false}, {"", 0, false}, {"ABC", 0, false},
		{"US", 0, false}, {"USDD", 0, false}, {" USD", 0, false}, {"USD ", 0, false},
		{"XAU", 0, false}, {"XAG", 0, false}, {"XPT", 0, false}, {"XPD", 0, false},
		{"XDR", 0, false}, {"XSU", 0, false}, {"XUA", 0, false}, {"XBA", 0, false},
		{"XTS", 0, false}, {"XXX", 0, false},
		{"HRK", 0, false}, {"SLL", 0, false}, {"ZWL", 0, false}, {"ANG", 0, false},
		{"CUC", 0, false}, {"BGN", 0, false}, {"VEF", 0, false}, {"MRO", 0, false},
		{"STD", 0, false}, {"BYR", 0, false}, {"LTL", 0, false}, {"DEM", 0, false},
	}
	for _, tt := range tests {
		c, ok := Lookup(tt.code)
		if ok != tt.ok {
			t.Errorf("Lookup(%q) ok = %v, want %v", tt.code, ok, tt.ok)
			continue
		}
		want := Currency{}
		if tt.ok {
			want = Currency{Code: tt.code, Exponent: tt.exp}
		}
		if c != want {
			t.Errorf("Lookup(%q) = %+v, want %+v", tt.code, c, want)
		}
	}
}

func TestTableShape(t *testing.T) {
	if n := len(exponents); n <= 150 {
		t.Errorf("table has %d entries, want > 150 (every active ISO 4217 currency)", n)
	}
	for code, exp := range exponents {
		if len(code) != 3 || strings.Trim(code, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			t.Errorf("code %q is not 3 upper-case ASCII letters", code)
		}
		if exp < 0 || exp > 4 {
			t.Errorf("%s exponent %d outside 0..4", code, exp)
		}
	}
}

// TestTableSorted keeps currencies.go reviewable: amendments should show up
// as a one-line diff in the right place.
func TestTableSorted(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "currencies.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	ast.Inspect(f, func(n ast.Node) bool {
		kv, ok := n.(*ast.KeyValueExpr)
		if !ok {
			return true
		}
		if lit, ok := kv.Key.(*ast.BasicLit); ok {
			k, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
		return false
	})
	if len(keys) != len(exponents) {
		t.Fatalf("parsed %d keys from currencies.go, table has %d", len(keys), len(exponents))
	}
	for i := 1; i < len(keys); i++ {
		if keys[i-1] >= keys[i] {
			t.Errorf("currencies.go not sorted: %q before %q", keys[i-1], keys[i])
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in, cur string
		want    int64
	}{
		{"12.30", "USD", 1230},
		{"12.3", "USD", 1230},
		{"12", "USD", 1200},
		{"0.01", "USD", 1},
		{"007.50", "USD", 750},
		{"00000000000000000000000001", "USD", 100},
		{"100", "JPY", 100},
		{"5", "JPY", 5},
		{"0.001", "KWD", 1},
		{"1.5", "KWD", 1500},
		{"1.234", "BHD", 1234},
		{"1.2345", "CLF", 12345},
		{"1", "UYW", 10000},
		{"9223372036854775807", "JPY", math.MaxInt64},
		{"92233720368547758.07", "USD", math.MaxInt64},
		{"92233720368547758", "USD", 9223372036854775800},
		{"9223372036854775.807", "KWD", math.MaxInt64},
		{"922337203685477.5807", "CLF", math.MaxInt64},
		{"0009223372036854775807", "JPY", math.MaxInt64},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in, tt.cur)
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q, %s) = %d, %v; want %d", tt.in, tt.cur, got, err, tt.want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		in, cur string
		msg     string // substring the error message must contain
	}{
		{"", "USD", "empty"},
		{" 12.30", "USD", "leading or trailing whitespace"},
		{"12.30 ", "USD", "leading or trailing whitespace"},
		{"\t1", "USD", "leading or trailing whitespace"},
		{"1\n", "USD", "leading or trailing whitespace"},
		{"+12", "USD", "sign"},
		{"-12", "USD", "sign"},
		{"-0", "USD", "sign"},
		{"1-2", "USD", "sign"},
		{"1e3", "USD", "exponent"},
		{"1E3", "JPY", "exponent"},
		{"1.5e2", "USD", "exponent"},
		{"1,000", "USD", "grouping"},
		{"1_000", "USD", "grouping"},
		{"1 000", "USD", "grouping"},
		{"1'000", "USD", "grouping"},
		{"12.345", "USD", "USD allows at most 2 fraction digits"},
		{"1.0000", "KWD", "KWD allows at most 3 fraction digits"},
		{"1.00000", "CLF", "CLF allows at most 4 fraction digits"},
		{"12.", "USD", "missing digits after decimal point"},
		{".5", "USD", "missing digits before decimal point"},
		{".", "USD", "missing digits"},
		{"1..2", "USD", "more than one decimal point"},
		{"1.2.3", "USD", "more than one decimal point"},
		{"100.0", "JPY", "JPY has no minor unit"},
		{"100.", "JPY", "JPY has no minor unit"},
		{"1.5", "UYI", "UYI has no minor unit"},
		{"١٢", "USD", "non-ASCII"},          // Arabic-Indic digits
		{"１２", "USD", "non-ASCII"},          // full-width digits
		{"12\u00a0000", "USD", "non-ASCII"}, // no-break space grouping
		{"1\xff", "USD", "non-ASCII"},       // invalid UTF-8
		{"0", "USD", "must be positive"},
		{"0.00", "USD", "must be positive"},
		{"000", "JPY", "must be positive"},
		{"0.0", "KWD", "must be positive"},
		{"9223372036854775808", "JPY", "too large"},
		{"92233720368547758.08", "USD", "too large"},
		{"92233720368547759", "USD", "too large"},
		{"9223372036854775.808", "KWD", "too large"},
		{"99999999999999999999999999", "JPY", "too large"},
		{"18446744073709551616", "JPY", "too large"}, // 2^64 must not wrap
		{"abc", "USD", "invalid character"},
		{"0x10", "USD", "invalid character"},
		{"NaN", "USD", "invalid character"},
		{"Inf", "USD", "invalid character"},
		{"$12", "USD", "invalid character"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in, tt.cur)
		if err == nil {
			t.Errorf("Parse(%q, %s) = %d, want error", tt.in, tt.cur, got)
			continue
		}
		if !errors.Is(err, ErrBadAmount) || errors.Is(err, ErrBadCurrency) {
			t.Errorf("Parse(%q, %s) error %v does not wrap only ErrBadAmount", tt.in, tt.cur, err)
		}
		if !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Parse(%q, %s) error %q does not mention %q", tt.in, tt.cur, err, tt.msg)
		}
		if quoted := strconv.Quote(tt.in); !strings.Contains(err.Error(), quoted) {
			t.Errorf("Parse(%q, %s) error %q does not quote the input", tt.in, tt.cur, err)
		}
		if got != 0 {
			t.Errorf("Parse(%q, %s) returned %d alongside an error", tt.in, tt.cur, got)
		}
	}
}

func TestParseErrorMessage(t *testing.T) {
	_, err := Parse("12.345", "USD")
	want := `bad amount "12.345": USD allows at most 2 fraction digits`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestBadCurrency(t *testing.T) {
	for _, cur := range []string{"", "usd", "Usd", "ABC", "XAU", "XXX", "HRK", "USD "} {
		if _, err := Parse("1", cur); !errors.Is(err, ErrBadCurrency) || errors.Is(err, ErrBadAmount) {
			t.Errorf("Parse(1, %q) error = %v, want ErrBadCurrency", cur, err)
		}
		if _, err := Format(1, cur); !errors.Is(err, ErrBadCurrency) {
			t.Errorf("Format(1, %q) error = %v, want ErrBadCurrency", cur, err)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("MustFormat(1, %q) did not panic", cur)
				}
			}()
			MustFormat(1, cur)
		}()
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		minor int64
		cur   string
		want  string
	}{
		{1230, "USD", "12.30"},
		{1200, "USD", "12.00"},
		{1, "USD", "0.01"},
		{10, "USD", "0.10"},
		{0, "USD", "0.00"},
		{-1, "USD", "-0.01"},
		{-1230, "USD", "-12.30"},
		{5, "JPY", "5"},
		{0, "JPY", "0"},
		{-5, "JPY", "-5"},
		{1, "KWD", "0.001"},
		{1500, "KWD", "1.500"},
		{-1, "KWD", "-0.001"},
		{1, "CLF", "0.0001"},
		{12345, "UYW", "1.2345"},
		{math.MaxInt64, "USD", "92233720368547758.07"},
		{math.MaxInt64, "JPY", "9223372036854775807"},
		{math.MaxInt64, "CLF", "922337203685477.5807"},
		{math.MinInt64, "USD", "-92233720368547758.08"},
		{math.MinInt64, "JPY", "-9223372036854775808"},
		{math.MinInt64, "KWD", "-9223372036854775.808"},
		{math.MinInt64 + 1, "USD", "-92233720368547758.07"},
	}
	for _, tt := range tests {
		got, err := Format(tt.minor, tt.cur)
		if err != nil || got != tt.want {
			t.Errorf("Format(%d, %s) = %q, %v; want %q", tt.minor, tt.cur, got, err, tt.want)
		}
		if m := MustFormat(tt.minor, tt.cur); m != tt.want {
			t.Errorf("MustFormat(%d, %s) = %q, want %q", tt.minor, tt.cur, m, tt.want)
		}
	}
}

// TestRoundTripAllCurrencies checks Parse(Format(v)) == v at the edges for
// every currency in the table, so a wrong exponent cannot break symmetry.
func TestRoundTripAllCurrencies(t *testing.T) {
	for code := range exponents {
		for _, v := range []int64{1, 9, 10, 99, 100, 101, 123456789, math.MaxInt64 - 1, math.MaxInt64} {
			s := MustFormat(v, code)
			got, err := Parse(s, code)
			if err != nil || got != v {
				t.Errorf("%s: Parse(Format(%d)) = Parse(%q) = %d, %v", code, v, s, got, err)
			}
		}
	}
}

// AppendFormat writes what Format returns after what dst holds.
func TestAppendFormat(t *testing.T) {
	for _, tc := range []struct {
		minor int64
		exp   int
		want  string
	}{{0, 2, "0.00"}, {5, 2, "0.05"}, {1230, 2, "12.30"}, {5, 0, "5"}, {1, 3, "0.001"}, {-7, 4, "-0.0007"}, {123456, 4, "12.3456"}} {
		if got := string(AppendFormat([]byte("x="), tc.minor, tc.exp)); got != "x="+tc.want {
			t.Errorf("AppendFormat(%d, %d) = %q, want %q", tc.minor, tc.exp, got, "x="+tc.want)
		}
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = AppendFormat(buf[:0], 123456789, 2) }); n != 0 {
		t.Errorf("AppendFormat allocates %v times", n)
	}
}
