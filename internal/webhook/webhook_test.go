package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	secret = []byte("whsec_test_0123456789")
	body   = []byte(`{"payment_id":"P1","status":"SUCCESS","amount":"12.30","gateway_ref":"G1","failure_reason":""}`)
	now    = time.Unix(1_760_000_000, 0)
)

// hexMAC is the reference signature, computed independently of the package.
func hexMAC(key []byte, ts string, b []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts + "."))
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

func TestSignFormat(t *testing.T) {
	got := Sign(secret, now, body)
	want := "t=1760000000,v1=" + hexMAC(secret, "1760000000", body)
	if got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestVerifyGood(t *testing.T) {
	if err := Verify(secret, Sign(secret, now, body), body, now); err != nil {
		t.Fatalf("Verify of a fresh signature: %v", err)
	}
	// Empty bodies are signed like any other.
	if err := Verify(secret, Sign(secret, now, nil), []byte{}, now); err != nil {
		t.Fatalf("Verify of an empty body: %v", err)
	}
}

func TestVerifyTamperedBody(t *testing.T) {
	h := Sign(secret, now, body)
	tampered := []byte(strings.Replace(string(body), "12.30", "99.30", 1))
	if err := Verify(secret, h, tampered, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered body: err = %v, want ErrBadSignature", err)
	}
	if err := Verify(secret, h, append(body, ' '), now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("extended body: err = %v, want ErrBadSignature", err)
	}
}

func TestVerifyWrongSecret(t *testing.T) {
	h := Sign([]byte("another secret"), now, body)
	if err := Verify(secret, h, body, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong secret: err = %v, want ErrBadSignature", err)
	}
	if err := Verify(nil, Sign(nil, now, body), body, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("empty secret: err = %v, want ErrBadSignature", err)
	}
}

func TestVerifyMissing(t *testing.T) {
	if err := Verify(secret, "", body, now); !errors.Is(err, ErrMissingSignature) {
		t.Fatalf("missing header: err = %v, want ErrMissingSignature", err)
	}
}

func TestVerifyMalformed(t *testing.T) {
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := hexMAC(secret, ts, body)
	for name, h := range map[string]string{
		"garbage":              "garbage",
		"no t":                 "v1=" + sig,
		"no v1":                "t=" + ts,
		"empty t":              "t=,v1=" + sig,
		"non-numeric t":        "t=abc,v1=" + sig,
		"negative t":           "t=-" + ts + ",v1=" + sig,
		"plus t":               "t=+" + ts + ",v1=" + sig,
		"fractional t":         "t=" + ts + ".5,v1=" + sig,
		"huge t":               "t=99999999999999999999,v1=" + sig,
		"two t":                "t=" + ts + ",t=" + ts + ",v1=" + sig,
		"short hex":            "t=" + ts + ",v1=" + sig[:62],
		"long hex":             "t=" + ts + ",v1=" + sig + "00",
		"odd hex":              "t=" + ts + ",v1=" + sig[:63],
		"non-hex":              "t=" + ts + ",v1=" + strings.Repeat("zz", 32),
		"empty v1":             "t=" + ts + ",v1=",
		"spaces":               "t=" + ts + ", v1=" + sig,
		"space in value":       "t= " + ts + ",v1=" + sig,
		"trailing comma":       "t=" + ts + ",v1=" + sig + ",",
		"leading comma":        ",t=" + ts + ",v1=" + sig,
		"entry without =":      "t=" + ts + ",v1=" + sig + ",junk",
		"empty key":            "t=" + ts + ",=x,v1=" + sig,
		"semicolons":           "t=" + ts + ";v1=" + sig,
		"only other schemes":   "t=" + ts + ",v0=" + sig,
		"too many signatures":  "t=" + ts + strings.Repeat(",v1="+strings.Repeat("0", 64), maxSignatures) + ",v1=" + sig,
		"base64 not hex":       "t=" + ts + ",v1=" + "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJ",
		"signature of another": "t=" + ts + ",v1=" + hexMAC(secret, ts, []byte("other")),
	} {
		err := Verify(secret, h, body, now)
		if !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: err = %v, want ErrBadSignature", name, err)
		}
		if err != nil && strings.Contains(err.Error(), sig) {
			t.Errorf("%s: error %q echoes the signature", name, err)
		}
	}
}

func TestVerifyIgnoresOtherSchemes(t *testing.T) {
	h := Sign(secret, now, body) + ",v2=whatever"
	if err := Verify(secret, h, body, now); err != nil {
		t.Fatalf("extra v2 entry: %v", err)
	}
	// Upper-case hex is still hex.
	h = Sign(secret, now, body)
	i := strings.Index(h, "v1=") + 3
	if err := Verify(secret, h[:i]+strings.ToUpper(h[i:]), body, now); err != nil {
		t.Fatalf("upper-case hex: %v", err)
	}
}

func TestVerifyTolerance(t *testing.T) {
	h := Sign(secret, now, body)
	for _, tc := range []struct {
		name string
		at   time.Time
		want error
	}{
		{"same second", now, nil},
		{"exactly tolerance later", now.Add(Tolerance), nil},
		{"exactly tolerance earlier", now.Add(-Tolerance), nil},
		{"tolerance later plus fraction", now.Add(Tolerance + 999*time.Millisecond), nil}, // whole seconds
		{"one second past tolerance", now.Add(Tolerance + time.Second), ErrStale},
		{"stale by an hour", now.Add(time.Hour), ErrStale},
		{"one second before tolerance", now.Add(-Tolerance - time.Second), ErrStale},
		{"from the future", now.Add(-time.Hour), ErrStale},
	} {
		err := Verify(secret, h, body, tc.at)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	// A forged signature is a bad signature, stale or not.
	forged := "t=1,v1=" + strings.Repeat("ab", 32)
	if err := Verify(secret, forged, body, now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("forged stale header: err = %v, want ErrBadSignature", err)
	}
}

func TestVerifyKeyRotation(t *testing.T) {
	oldSecret, newSecret := []byte("old secret"), []byte("new secret")
	sigOld := strings.TrimPrefix(Sign(oldSecret, now, body), "t=1760000000,")
	sigNew := strings.TrimPrefix(Sign(newSecret, now, body), "t=1760000000,")
	h := "t=1760000000," + sigOld + "," + sigNew
	for _, s := range [][]byte{oldSecret, newSecret} {
		if err := Verify(s, h, body, now); err != nil {
			t.Errorf("Verify(%q): %v", s, err)
		}
	}
	// Order does not matter, nor does t coming last.
	if err := Verify(oldSecret, sigNew+","+sigOld+",t=1760000000", body, now); err != nil {
		t.Errorf("reordered: %v", err)
	}
	if err := Verify([]byte("third secret"), h, body, now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("neither secret: err = %v, want ErrBadSignature", err)
	}
}

func TestParseResult(t *testing.T) {
	r, err := ParseResult(body)
	if err != nil {
		t.Fatal(err)
	}
	want := Result{PaymentID: "P1", Status: "SUCCESS", Amount: "12.30", GatewayRef: "G1"}
	if r != want {
		t.Fatalf("ParseResult = %+v, want %+v", r, want)
	}
	r, err = ParseResult([]byte(` {"payment_id":"P2","status":"FAILED","failure_reason":"card declined"}` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != "FAILED" || r.FailureReason != "card declined" || r.Amount != "" {
		t.Fatalf("ParseResult = %+v", r)
	}

	for name, in := range map[string]string{
		"empty":            ``,
		"not JSON":         `payment_id=P1`,
		"array":            `[{"payment_id":"P1","status":"SUCCESS"}]`,
		"null":             `null`,
		"unknown field":    `{"payment_id":"P1","status":"SUCCESS","card":"4242424242424242"}`,
		"missing id":       `{"status":"SUCCESS"}`,
		"empty id":         `{"payment_id":"","status":"SUCCESS"}`,
		"missing status":   `{"payment_id":"P1"}`,
		"pending":          `{"payment_id":"P1","status":"PENDING"}`,
		"lower-case":       `{"payment_id":"P1","status":"success"}`,
		"numeric amount":   `{"payment_id":"P1","status":"SUCCESS","amount":12.30}`,
		"negative amount":  `{"payment_id":"P1","status":"SUCCESS","amount":"-12.30"}`,
		"exponent amount":  `{"payment_id":"P1","status":"SUCCESS","amount":"1e3"}`,
		"grouped amount":   `{"payment_id":"P1","status":"SUCCESS","amount":"1,000.00"}`,
		"bare dot amount":  `{"payment_id":"P1","status":"SUCCESS","amount":"12."}`,
		"spaced amount":    `{"payment_id":"P1","status":"SUCCESS","amount":" 12.30"}`,
		"trailing object":  `{"payment_id":"P1","status":"SUCCESS"}{}`,
		"trailing garbage": `{"payment_id":"P1","status":"SUCCESS"} x`,
		"truncated":        `{"payment_id":"P1","status":"SUC`,
		"id not a string":  `{"payment_id":1,"status":"SUCCESS"}`,
		"too large":        `{"payment_id":"P1","status":"SUCCESS","failure_reason":"` + strings.Repeat("x", MaxBodyBytes) + `"}`,
	} {
		_, err := ParseResult([]byte(in))
		if !errors.Is(err, ErrInvalidResult) {
			t.Errorf("%s: err = %v, want ErrInvalidResult", name, err)
			continue
		}
		if strings.Contains(err.Error(), "4242424242424242") {
			t.Errorf("%s: error %q echoes body content", name, err)
		}
	}
}

// FuzzVerify: Verify never panics, and never accepts a header unless one
// of its v1 entries is the HMAC of its own t text and the body under the
// secret, with t within Tolerance of now.
func FuzzVerify(f *testing.F) {
	key := []byte("fuzz secret")
	good := Sign(key, now, body)
	f.Add(good, body, now.Unix())
	f.Add(good, body, now.Unix()+301)
	f.Add(good+",v1="+strings.Repeat("0", 64), body, now.Unix())
	f.Add("t=1760000000,v1="+strings.Repeat("0", 64), body, now.Unix())
	f.Add(Sign(key, now, nil), []byte(nil), now.Unix())
	f.Add("t=,v1=", []byte("x"), int64(0))
	f.Add("t=1,t=2,v1=zz", []byte{}, int64(-1))
	f.Add(strings.Replace(good, "t=", "t=0", 1), body, now.Unix())
	f.Fuzz(func(t *testing.T, header string, b []byte, nowUnix int64) {
		at := time.Unix(nowUnix, 0)
		err := Verify(key, header, b, at)
		if err == nil {
			var ts string
			var sigs []string
			for _, e := range strings.Split(header, ",") {
				k, v, _ := strings.Cut(e, "=")
				switch k {
				case "t":
					ts = v
				case "v1":
					sigs = append(sigs, strings.ToLower(v))
				}
			}
			want := hexMAC(key, ts, b)
			found := false
			for _, s := range sigs {
				found = found || s == want
			}
			if !found {
				t.Fatalf("accepted header %q without a matching signature", header)
			}
			// big.Int: the oracle must not overflow where Verify must not.
			sec, ok := new(big.Int).SetString(ts, 10)
			skew := new(big.Int).Sub(big.NewInt(nowUnix), sec)
			if !ok || skew.CmpAbs(big.NewInt(300)) > 0 {
				t.Fatalf("accepted header %q at %d outside tolerance", header, nowUnix)
			}
			return
		}
		if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrStale) && !errors.Is(err, ErrMissingSignature) {
			t.Fatalf("error %v wraps none of the package errors", err)
		}
	})
}

func TestWithinTolerance(t *testing.T) {
	const maxInt, minInt = int64(^uint64(0) >> 1), -int64(^uint64(0)>>1) - 1
	for _, tc := range []struct {
		sec, now int64
		want     bool
	}{
		{1000, 1000, true}, {1000, 1300, true}, {1000, 1301, false}, {1300, 1000, true}, {1301, 1000, false},
		{0, -300, true}, {0, -301, false}, {999999999999999999, minInt, false}, {0, maxInt, false},
		{999999999999999999, maxInt, false}, {300, 0, true},
	} {
		if got := withinTolerance(tc.sec, tc.now); got != tc.want {
			t.Errorf("withinTolerance(%d, %d) = %v, want %v", tc.sec, tc.now, got, tc.want)
		}
	}
}
