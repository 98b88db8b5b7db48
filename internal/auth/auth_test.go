package auth

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseTokens(t *testing.T) {
	toks, err := ParseTokens("t0k3n-abc:read+write+pii, reader-xyz:read")
	if err != nil {
		t.Fatal(err)
	}
	if toks.Len() != 2 {
		t.Fatalf("len %d", toks.Len())
	}
	s, ok := toks.Lookup("t0k3n-abc")
	if !ok || !s.Has(Read) || !s.Has(Write) || !s.Has(PII) {
		t.Fatalf("scopes %v %v", s, ok)
	}
	s, ok = toks.Lookup("reader-xyz")
	if !ok || !s.Has(Read) || s.Has(Write) || s.Has(PII) {
		t.Fatalf("scopes %v", s)
	}
	if _, ok := toks.Lookup("nope-nope"); ok {
		t.Fatal("unknown token accepted")
	}
	if _, ok := toks.Lookup(""); ok {
		t.Fatal("empty token accepted")
	}
}

func TestParseTokensErrorsNeverEchoTheToken(t *testing.T) {
	for _, spec := range []string{
		"secret-token-1",                           // no scopes
		"secret-token-1:admin",                     // unknown scope
		"secret-token-1:read,secret-token-1:write", // repeated
		"tiny7:read",                               // too short
		":read",
	} {
		_, err := ParseTokens(spec)
		if err == nil {
			t.Errorf("%q: accepted", spec)
			continue
		}
		token, _, _ := strings.Cut(spec, ":")
		if token != "" && strings.Contains(err.Error(), token) {
			t.Errorf("%q: error echoes the token: %v", spec, err)
		}
	}
	if toks, err := ParseTokens("  "); err != nil || toks.Len() != 0 {
		t.Fatalf("empty spec: %v", err)
	}
}

func TestFromRequest(t *testing.T) {
	toks, _ := ParseTokens("good-token-1:read")
	cases := []struct {
		header, cookie string
		allowCookie    bool
		wantErr        error
	}{
		{"Bearer good-token-1", "", false, nil},
		{"bearer good-token-1", "", false, nil},
		{"", "", false, ErrNoToken},
		{"Bearer wrong-token", "", false, ErrBadToken},
		{"Basic Z29vZA==", "", false, ErrBadToken},
		{"", "good-token-1", false, ErrNoToken},
		{"", "good-token-1", true, nil},
		{"", "bad-cookie-1", true, ErrBadToken},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		if c.cookie != "" {
			r.Header.Set("Cookie", CookieName+"="+c.cookie)
		}
		_, err := toks.FromRequest(r, c.allowCookie)
		if err != c.wantErr {
			t.Errorf("%+v: got %v", c, err)
		}
	}
}

func TestNewDevToken(t *testing.T) {
	a, _ := NewDevToken()
	b, _ := NewDevToken()
	if a == b || len(a) < 40 {
		t.Fatalf("tokens %q %q", a, b)
	}
}

func TestTokenWithScopeReadsTheSpecAsParseTokensDoes(t *testing.T) {
	spec := " reader-token-1:read , pii-token-22: read + pii ,writer-token-3:write+pii"
	if _, err := ParseTokens(spec); err != nil {
		t.Fatal(err)
	}
	if got := TokenWithScope(spec, PII); got != "pii-token-22" {
		t.Errorf("pii token %q, want pii-token-22", got)
	}
	if got := TokenWithScope("reader-token-1:read", PII); got != "" {
		t.Errorf("no pii token, got %q", got)
	}
}
