package devserver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/payments/internal/auth"
)

// The UI's codec works whether the UI is opened as localhost or 127.0.0.1:
// the UI calls /codec on its own origin, where the browser sends the cookie
// it got from that same host, and the proxy forwards the call to the API
// with the token as a bearer credential. A host that could be a rebinding
// attacker's domain gets neither the cookie nor the codec.
func TestUICodecWorksOnLocalhostAnd127(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s auth=%q cookie=%q origin=%q", r.Method, r.URL.RequestURI(),
			r.Header.Get("Authorization"), r.Header.Get("Cookie"), r.Header.Get("Origin")))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"payloads":[]}`)
	}))
	defer api.Close()

	ports, err := FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ui, err := StartUI(ctx, UIOptions{
		Address: fmt.Sprintf("127.0.0.1:%d", ports[0]), TemporalAddress: "127.0.0.1:1", Namespace: "default",
		CodecEndpoint: api.URL + "/codec", CodecToken: "dev_codec_token",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = ui.Stop(stopCtx)
	}()

	for _, host := range []string{"localhost", "127.0.0.1"} {
		t.Run(host, func(t *testing.T) {
			base := fmt.Sprintf("http://%s:%d", host, ports[0])
			jar, _ := cookiejar.New(nil)
			browser := &http.Client{Jar: jar}
			// Before the UI was opened there is no cookie: 401.
			if code, _ := post(t, browser, base+"/codec/decode", base); code != http.StatusUnauthorized {
				t.Fatalf("codec before opening the UI: %d", code)
			}
			resp, err := browser.Get(base + "/api/v1/settings")
			if err != nil {
				t.Fatal(err)
			}
			settings, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// The UI resolves a relative endpoint against its own origin.
			if !strings.Contains(string(settings), `"Endpoint":"/codec"`) || !strings.Contains(string(settings), `"IncludeCredentials":true`) {
				t.Fatalf("settings: %s", settings)
			}
			mu.Lock()
			seen = nil
			mu.Unlock()
			code, body := post(t, browser, base+"/codec/decode?preserveStorageRefs=true", base)
			if code != http.StatusOK || body != `{"payloads":[]}` {
				t.Fatalf("codec through %s: %d %s", host, code, body)
			}
			mu.Lock()
			defer mu.Unlock()
			want := `POST /codec/decode?preserveStorageRefs=true auth="Bearer dev_codec_token" cookie="" origin=""`
			if len(seen) != 1 || seen[0] != want {
				t.Fatalf("the API saw %q, want %q", seen, want)
			}
		})
	}

	// Another name for this machine (a DNS rebinding page) is not trusted.
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/", ports[0]), nil)
	req.Host = fmt.Sprintf("rebind.example:%d", ports[0])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == auth.CookieName {
			t.Fatal("the codec cookie went to an unknown host")
		}
	}
	req, _ = http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/codec/decode", ports[0]), strings.NewReader(`{"payloads":[]}`))
	req.Host = fmt.Sprintf("rebind.example:%d", ports[0])
	req.AddCookie(&http.Cookie{Name: auth.CookieName, Value: "dev_codec_token"})
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("codec for an unknown host: %d", resp.StatusCode)
	}
	// A wrong cookie is refused without reaching the API.
	jar, _ := cookiejar.New(nil)
	forged := &http.Client{Jar: jar}
	base := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	req, _ = http.NewRequest("POST", base+"/codec/decode", strings.NewReader(`{}`))
	req.AddCookie(&http.Cookie{Name: auth.CookieName, Value: "guess"})
	if resp, err = forged.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("codec with a wrong cookie: %d", resp.StatusCode)
	}
}

func post(t *testing.T, c *http.Client, url, origin string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(`{"payloads":[]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", "default")
	req.Header.Set("Origin", origin)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
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
