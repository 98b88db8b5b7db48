package devserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/payments/internal/api"
	"github.com/acme/payments/internal/auth"
	"github.com/acme/payments/internal/encryption"
)

// apiTokens are the real API's tokens in these tests: an all-scope one the
// browser must never see, beside the UI's codec-only credential.
const (
	allScopeToken = "all-scope-token-0123456789"
	codecToken    = "codec_only_token_0123456789"
)

// startProxy runs the real HTTP API (its /codec on the test keyring) and
// the UI proxy in front of an unreachable Temporal; it returns the proxy's
// port, the login URL and the API's log of requests.
func startProxy(t *testing.T) (port int, login string, seen func() []string) {
	t.Helper()
	tokens, err := auth.ParseTokens(allScopeToken + ":read+write+pii")
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.AddCodec(codecToken); err != nil {
		t.Fatal(err)
	}
	// A fixed test key (stacktest.TestKeys; stacktest itself imports this
	// package).
	keys, err := encryption.ParseKeys("test1:" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	if err != nil {
		t.Fatal(err)
	}
	h := (&api.Server{Tokens: tokens, Keys: keys, Logger: slog.New(slog.DiscardHandler)}).Handler()
	var mu sync.Mutex
	var log []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		log = append(log, fmt.Sprintf("%s %s auth=%q cookie=%q origin=%q", r.Method, r.URL.RequestURI(),
			r.Header.Get("Authorization"), r.Header.Get("Cookie"), r.Header.Get("Origin")))
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	ports, err := FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ui, err := StartUI(ctx, UIOptions{
		Address: fmt.Sprintf("127.0.0.1:%d", ports[0]), TemporalAddress: "127.0.0.1:1", Namespace: "default",
		CodecEndpoint: srv.URL + "/codec", CodecToken: codecToken,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = ui.Stop(stopCtx)
	})
	return ports[0], ui.LoginURL(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), log...)
	}
}

// checkNoSecretCookie fails when a response sets a cookie that holds an API
// credential: the browser gets a session value and nothing else.
func checkNoSecretCookie(t *testing.T, resp *http.Response) {
	t.Helper()
	for _, sc := range resp.Header.Values("Set-Cookie") {
		if strings.Contains(sc, allScopeToken) || strings.Contains(sc, codecToken) || strings.Contains(sc, "payments_codec_token") {
			t.Fatalf("%s %s set a credential cookie: %s", resp.Request.Method, resp.Request.URL, sc)
		}
	}
}

// noRedirect is a browser that shows each answer instead of following it.
func noRedirect(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func send(t *testing.T, c *http.Client, method, url, body string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Namespace", "default")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	checkNoSecretCookie(t, resp)
	return resp, string(b)
}

var loginShape = regexp.MustCompile(`^http://127\.0\.0\.1:\d+/login\?nonce=[0-9a-f]{64}$`)

// Without the login link's session, the proxy lets nothing through: pages,
// assets, the UI's own API and the codec all answer 401 with a page that
// says what to do, and set no cookie.
func TestUIRefusesEverythingWithoutASession(t *testing.T) {
	port, login, seen := startProxy(t)
	if !loginShape.MatchString(login) {
		t.Fatalf("login URL %q", login)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	c := noRedirect(nil)
	for _, rq := range []struct{ method, path, body string }{
		{"GET", "/", ""},
		{"GET", "/namespaces/default/workflows", ""},
		{"GET", "/_app/immutable/entry/start.js", ""},
		{"GET", "/api/v1/settings", ""},
		{"GET", "/api/v1/namespaces/default/workflows", ""},
		{"GET", "/api/v1/namespaces/default/workflows/x/history", ""},
		{"POST", "/codec/decode", `{"payloads":[]}`},
		{"POST", "/codec/encode", `{"payloads":[]}`},
	} {
		resp, body := send(t, c, rq.method, base+rq.path, rq.body)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "login link") || len(resp.Cookies()) != 0 {
			t.Errorf("%s %s: %d cookies %v: %s", rq.method, rq.path, resp.StatusCode, resp.Cookies(), body)
		}
	}
	// A guessed session cookie is no session.
	req, _ := http.NewRequest("GET", base+"/api/v1/settings", nil)
	req.AddCookie(&http.Cookie{Name: fmt.Sprintf("payments_ui_session_%d", port), Value: strings.Repeat("0", 64)})
	if resp, err := c.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged session: %d", resp.StatusCode)
	}
	// The old all-scope cookie is no session either, nor a credential.
	req, _ = http.NewRequest("POST", base+"/codec/decode", strings.NewReader(`{"payloads":[]}`))
	req.AddCookie(&http.Cookie{Name: "payments_codec_token", Value: allScopeToken})
	if resp, err := c.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("old cookie: %d", resp.StatusCode)
	}
	if got := seen(); len(got) != 0 {
		t.Fatalf("unauthenticated calls reached the API: %q", got)
	}
}

// The login link works once: it sets an HttpOnly, SameSite=Strict session
// cookie (a random value, not a token) and sends the browser to the UI. A
// second visit, or a wrong nonce, is refused and sets nothing.
func TestUILoginLinkWorksOnce(t *testing.T) {
	port, login, _ := startProxy(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	u, _ := url.Parse(login)
	nonce := u.Query().Get("nonce")

	for _, wrong := range []string{"", "00", strings.Repeat("0", 64), nonce[:63], nonce + "0", strings.ToUpper(nonce)} {
		resp, body := send(t, noRedirect(nil), "GET", base+"/login?nonce="+wrong, "")
		if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 || !strings.Contains(body, "login link") {
			t.Errorf("nonce %q: %d %v %s", wrong, resp.StatusCode, resp.Cookies(), body)
		}
	}
	// A rebinding host cannot spend the nonce.
	req, _ := http.NewRequest("GET", login, nil)
	req.Host = fmt.Sprintf("rebind.example:%d", port)
	resp, err := noRedirect(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Fatalf("login through a foreign host: %d %v", resp.StatusCode, resp.Cookies())
	}

	jar, _ := cookiejar.New(nil)
	resp, _ = send(t, noRedirect(jar), "GET", login, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %d %v", resp.StatusCode, resp.Header)
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("login cookies: %v", cookies)
	}
	c := cookies[0]
	if c.Name != fmt.Sprintf("payments_ui_session_%d", port) || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode ||
		c.Path != "/" || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(c.Value) || c.Value == nonce {
		t.Fatalf("session cookie %+v", c)
	}
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("login headers %v", resp.Header)
	}
	// With the session the UI's own API answers.
	if resp, body := send(t, noRedirect(jar), "GET", base+"/api/v1/settings", ""); resp.StatusCode != http.StatusOK ||
		!strings.Contains(body, `"Endpoint":"/codec"`) {
		t.Fatalf("settings with a session: %d %s", resp.StatusCode, body)
	}
	// The logged-in browser opening the link again just goes on to the UI.
	if resp, _ := send(t, noRedirect(jar), "GET", login, ""); resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 0 {
		t.Fatalf("login again with a session: %d %v", resp.StatusCode, resp.Cookies())
	}

	// Anyone else finds the link spent.
	resp, body := send(t, noRedirect(nil), "GET", login, "")
	if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 || !strings.Contains(body, "used already") {
		t.Fatalf("spent link: %d %v %s", resp.StatusCode, resp.Cookies(), body)
	}
	if resp, _ := send(t, noRedirect(nil), "GET", base+"/api/v1/namespaces/default/workflows", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("UI API for another browser: %d", resp.StatusCode)
	}
}

// The UI's codec works whether the UI is opened as localhost or 127.0.0.1
// (each name logs in on its own, as a cookie belongs to its host): the UI
// calls /codec on its own origin, and the proxy forwards the call to the
// real API with the codec-only credential and without the browser's
// cookies. A host that could be a rebinding attacker's domain gets nothing.
func TestUICodecDecodesThroughTheProxy(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "localhost"} {
		t.Run(host, func(t *testing.T) {
			port, login, seen := startProxy(t)
			base := fmt.Sprintf("http://%s:%d", host, port)
			jar, _ := cookiejar.New(nil)
			browser := &http.Client{Jar: jar}
			resp, body := send(t, browser, "GET", strings.Replace(login, "127.0.0.1", host, 1), "")
			// Followed to the UI's page through the session.
			if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" || !strings.Contains(body, "<html") {
				t.Fatalf("login through %s: %d %s %.200s", host, resp.StatusCode, resp.Request.URL, body)
			}

			plain := `{"payloads":[{"metadata":{"encoding":"` + base64.StdEncoding.EncodeToString([]byte("json/plain")) +
				`"},"data":"` + base64.StdEncoding.EncodeToString([]byte(`"secret@example.com"`)) + `"}]}`
			resp, encoded := send(t, browser, "POST", base+"/codec/encode", plain)
			if resp.StatusCode != http.StatusOK || strings.Contains(encoded, base64.StdEncoding.EncodeToString([]byte(`"secret@example.com"`))) {
				t.Fatalf("encode: %d %s", resp.StatusCode, encoded)
			}
			resp, decoded := send(t, browser, "POST", base+"/codec/decode?preserveStorageRefs=true", encoded)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("decode: %d %s", resp.StatusCode, decoded)
			}
			var got, want any
			_ = json.Unmarshal([]byte(decoded), &got)
			_ = json.Unmarshal([]byte(plain), &want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("decoded %s, want %s", decoded, plain)
			}
			calls := seen()
			wantCall := `POST /codec/decode?preserveStorageRefs=true auth="Bearer ` + codecToken + `" cookie="" origin=""`
			if len(calls) != 2 || calls[1] != wantCall {
				t.Fatalf("the API saw %q, want %q last", calls, wantCall)
			}
			if resp, _ := send(t, browser, "GET", base+"/codec/decode", ""); resp.StatusCode != http.StatusMethodNotAllowed {
				t.Fatalf("GET codec: %d", resp.StatusCode)
			}

			// A rebinding page's host is refused, even with the session.
			for _, rq := range []struct{ method, path string }{{"GET", "/"}, {"POST", "/codec/decode"}} {
				req, _ := http.NewRequest(rq.method, fmt.Sprintf("http://127.0.0.1:%d%s", port, rq.path), strings.NewReader(`{"payloads":[]}`))
				req.Host = fmt.Sprintf("rebind.example:%d", port)
				u, _ := url.Parse(base)
				for _, c := range jar.Cookies(u) {
					req.AddCookie(c)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				checkNoSecretCookie(t, resp)
				if resp.StatusCode != http.StatusForbidden {
					t.Fatalf("%s %s for an unknown host: %d", rq.method, rq.path, resp.StatusCode)
				}
			}
			if len(seen()) != 2 {
				t.Fatalf("a refused call reached the API: %q", seen())
			}
		})
	}
}

func TestTrustedHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost:8233": true, "LOCALHOST:8233": true, "127.0.0.1:8233": true, "[::1]:8233": true,
		"10.1.2.3:8233": true, "devbox:8233": true, "devbox": true, "localhost.:8233": true,
		"evil.example:8233": false, "": false, "localhost.evil.example:8233": false,
	} {
		if got := trustedHost(host, "devbox"); got != want {
			t.Errorf("trustedHost(%q) = %v, want %v", host, got, want)
		}
	}
	if trustedHost("devbox:8233", "127.0.0.1") {
		t.Error("a name is trusted when the UI listens on an IP")
	}
}
