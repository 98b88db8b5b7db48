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
		wantErr        error
	}{
		{"Bearer good-token-1", "", nil},
		{"bearer good-token-1", "", nil},
		{"", "", ErrNoToken},
		{"Bearer wrong-token", "", ErrBadToken},
		{"Basic Z29vZA==", "", ErrBadToken},
		{"Bearer ", "", ErrBadToken},
		// A token in a cookie is never a credential, whatever its name.
		{"", "payments_codec_token=good-token-1", ErrNoToken},
		{"", "token=good-token-1", ErrNoToken},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		if c.cookie != "" {
			r.Header.Set("Cookie", c.cookie)
		}
		_, err := toks.FromRequest(r)
		if err != c.wantErr {
			t.Errorf("%+v: got %v", c, err)
		}
	}
}

// The codec scope is a credential of its own: it stands alone in
// PAYMENTS_API_TOKENS, PAYMENTS_CODEC_TOKEN adds one, and it grants no
// other scope.
func TestCodecScopeStandsAlone(t *testing.T) {
	toks, err := ParseTokens("all-token-1:read+write+pii,codec-token-1:codec")
	if err != nil {
		t.Fatal(err)
	}
	s, ok := toks.Lookup("codec-token-1")
	if !ok || !s.Has(Codec) || s.HasAny(Read, Write, PII) {
		t.Fatalf("codec token scopes %v %v", s, ok)
	}
	if s, _ := toks.Lookup("all-token-1"); s.Has(Codec) {
		t.Fatal("an all-scope token carries codec")
	}
	for _, spec := range []string{"mixed-token-1:read+codec", "mixed-token-1:codec+pii"} {
		if _, err := ParseTokens(spec); err == nil || strings.Contains(err.Error(), "mixed-token-1") {
			t.Errorf("%q: %v", spec, err)
		}
	}

	minted, err := NewCodecToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := toks.AddCodec(minted); err != nil {
		t.Fatal(err)
	}
	if s, ok := toks.Lookup(minted); !ok || len(s) != 1 || s[0] != Codec {
		t.Fatalf("PAYMENTS_CODEC_TOKEN scopes %v %v", s, ok)
	}
	for _, bad := range []string{"short-codec", minted} {
		if err := toks.AddCodec(bad); err == nil || strings.Contains(err.Error(), bad) {
			t.Errorf("AddCodec(%q): %v", bad, err)
		}
	}
	// The codec credential is never also an API token.
	api, _ := ParseTokens("api-token-0123456789:read")
	if err := api.AddCodec("api-token-0123456789"); err == nil {
		t.Error("an API token registered as the codec token")
	}
	if other, _ := NewCodecToken(); other == minted || !strings.HasPrefix(other, "codec_") || len(other) < 64 {
		t.Fatalf("codec tokens %q %q", minted, other)
	}
}

func TestNewDevToken(t *testing.T) {
	a, _ := NewDevToken()
	b, _ := NewDevToken()
	if a == b || len(a) < 40 {
		t.Fatalf("tokens %q %q", a, b)
	}
}
