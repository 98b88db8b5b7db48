package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/acme/payments/internal/api"
	"github.com/acme/payments/internal/auth"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/metrics"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/internal/stacktest"
)

func newServer(t *testing.T) *api.Server {
	t.Helper()
	tokens, err := auth.ParseTokens("reader-token:read,pii-token-1:read+pii,all-token-1:read+write+pii")
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.AddCodec(codecToken); err != nil {
		t.Fatal(err)
	}
	keys, err := encryption.ParseKeys(stacktest.TestKeys)
	if err != nil {
		t.Fatal(err)
	}
	return &api.Server{Tokens: tokens, Keys: keys, Metrics: metrics.New(),
		Logger: stacktest.Logger(t, 0), CodecOrigins: []string{"http://127.0.0.1:8233"}}
}

// codecToken is the codec-only credential (PAYMENTS_CODEC_TOKEN) of newServer.
const codecToken = "codec-only-token-0123456789"

func do(t *testing.T, h http.Handler, method, path, token string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(`{"payloads":[]}`))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Result(), string(b)
}

func TestAuthAndErrorFormat(t *testing.T) {
	h := newServer(t).Handler()
	cases := []struct {
		name, token string
		status      int
		code        string
	}{
		{"no token", "", 401, "unauthorized"},
		{"unknown token", "who-knows-1", 401, "unauthorized"},
		{"missing scope", "reader-token", 403, "forbidden"},
		{"pii scope", "pii-token-1", 200, ""},
	}
	for _, c := range cases {
		resp, body := do(t, h, "POST", "/codec/encode", c.token, nil)
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d body %s", c.name, resp.StatusCode, body)
			continue
		}
		if c.code == "" {
			continue
		}
		var e api.ErrorBody
		if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != c.code || e.Error.Message == "" {
			t.Errorf("%s: error body %s", c.name, body)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: content type %q", c.name, ct)
		}
	}
	resp, body := do(t, h, "GET", "/no/such/thing", "", nil)
	if resp.StatusCode != 404 || !strings.Contains(body, `"not_found"`) {
		t.Fatalf("404: %d %s", resp.StatusCode, body)
	}
}

func TestCodecCORS(t *testing.T) {
	h := newServer(t).Handler()
	resp, _ := do(t, h, "OPTIONS", "/codec/decode", "", map[string]string{"Origin": "http://127.0.0.1:8233", "Access-Control-Request-Method": "POST"})
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1:8233" ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = do(t, h, "OPTIONS", "/codec/decode", "", map[string]string{"Origin": "http://evil.example"})
	if resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = do(t, h, "POST", "/codec/decode", "pii-token-1", map[string]string{"Origin": "http://evil.example"})
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS granted to a foreign origin")
	}
}

// The codec-only credential opens /codec and nothing else: every other
// route that needs a token answers 403, including the GET ones a read
// token may call. No route takes a token from a cookie.
func TestCodecCredentialOpensOnlyTheCodec(t *testing.T) {
	s := newServer(t)
	h := s.Handler()
	for _, path := range []string{"/codec/decode", "/codec/encode"} {
		if resp, body := do(t, h, "POST", path, codecToken, nil); resp.StatusCode != 200 || !strings.HasPrefix(body, "{") {
			t.Errorf("codec token on %s: %d %s", path, resp.StatusCode, body)
		}
	}
	for _, rt := range s.Routes() {
		if rt.Scope == "" {
			continue
		}
		path := strings.NewReplacer("{id}", "X", "{gateway}", "devpay").Replace(rt.Path)
		resp, body := do(t, h, rt.Method, path, codecToken, nil)
		if resp.StatusCode != 403 || !strings.Contains(body, `"forbidden"`) {
			t.Errorf("codec token on %s %s: %d %s", rt.Method, path, resp.StatusCode, body)
		}
	}
	for _, path := range []string{"/orders/X", "/imports"} {
		if resp, _ := do(t, h, "GET", path, codecToken, nil); resp.StatusCode != 403 {
			t.Errorf("codec token on GET %s: %d", path, resp.StatusCode)
		}
	}
	// The old development cookie, and any other, is no credential.
	for _, name := range []string{"payments_codec_token", "token"} {
		cookie := map[string]string{"Cookie": name + "=all-token-1"}
		if resp, _ := do(t, h, "POST", "/codec/decode", "", cookie); resp.StatusCode != 401 {
			t.Errorf("cookie %s accepted on /codec: %d", name, resp.StatusCode)
		}
		if resp, _ := do(t, h, "GET", "/imports", "", cookie); resp.StatusCode != 401 {
			t.Errorf("cookie %s accepted on /imports: %d", name, resp.StatusCode)
		}
	}
}

// CORS names exact origins only: a "*" or "null" entry matches nothing,
// and no other origin is echoed.
func TestCodecCORSIsExact(t *testing.T) {
	s := newServer(t)
	s.CodecOrigins = []string{"http://127.0.0.1:8233", "*", "null"}
	h := s.Handler()
	for _, origin := range []string{"http://evil.example", "*", "null", "http://127.0.0.1:8233/", "http://127.0.0.1:82331", "https://127.0.0.1:8233"} {
		resp, _ := do(t, h, "OPTIONS", "/codec/decode", "", map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST"})
		if resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from %q: %d %v", origin, resp.StatusCode, resp.Header)
		}
		resp, _ = do(t, h, "POST", "/codec/decode", codecToken, map[string]string{"Origin": origin})
		if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Vary") != "Origin" {
			t.Errorf("POST from %q: %v", origin, resp.Header)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	// Not ready without its dependencies.
	h := newServer(t).Handler()
	if resp, _ := do(t, h, "GET", "/healthz", "", nil); resp.StatusCode != 200 {
		t.Fatal("healthz")
	}
	if resp, body := do(t, h, "GET", "/readyz", "", nil); resp.StatusCode != 503 || !strings.Contains(body, "mysql") {
		t.Fatalf("readyz without deps: %d %s", resp.StatusCode, body)
	}

	// Ready against the real MySQL and an in-process Temporal server.
	d := stacktest.Deps(t, stacktest.Config(t, stacktest.Temporal(t)))
	s, err := service.APIServer(d)
	if err != nil {
		t.Fatal(err)
	}
	h = s.Handler()
	if resp, body := do(t, h, "GET", "/readyz", "", nil); resp.StatusCode != 200 {
		t.Fatalf("readyz: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, h, "GET", "/metrics", "", nil); resp.StatusCode != 200 || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "payments_ledger_retries_total 0") {
		t.Fatalf("metrics: %d", resp.StatusCode)
	}
	// MySQL gone: not ready.
	d.DB.Close()
	if resp, body := do(t, h, "GET", "/readyz", "", nil); resp.StatusCode != 503 || !strings.Contains(body, `"mysql":"unreachable"`) {
		t.Fatalf("readyz with MySQL closed: %d %s", resp.StatusCode, body)
	}
}
