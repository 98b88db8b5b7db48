package devserver

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
)

// loginPath is where the one-time login link points.
const loginPath = "/login"

// notLoggedIn is the whole answer to a request without a session.
const notLoggedIn = "Temporal Web UI: not logged in.\n" +
	"Open the one-time login link that `starter dev` (or `starter cluster`) printed when it started,\n" +
	"in this browser and by the same host name. Restart it for a new link.\n"

// loginGate lets in the browser that opens the login link once, Jupyter
// style: the nonce is spent by its first use and buys one session cookie, a
// random value the proxy keeps in memory (never an API token). A restart
// forgets every session and mints a new nonce.
type loginGate struct {
	// cookie is the session cookie's name. It carries the port because a
	// browser sends a host's cookies to each of its ports: two UIs on one
	// host must not overwrite each other's session.
	cookie string
	nonce  string

	mu       sync.Mutex
	spent    bool
	sessions map[[32]byte]struct{}
}

func newLoginGate(port int) (*loginGate, error) {
	nonce, err := randomHex(32)
	if err != nil {
		return nil, fmt.Errorf("login nonce: %w", err)
	}
	return &loginGate{
		cookie:   "payments_ui_session_" + strconv.Itoa(port),
		nonce:    nonce,
		sessions: map[[32]byte]struct{}{},
	}, nil
}

// login spends the nonce of GET /login?nonce=… for a session cookie and
// sends the browser to the UI. A wrong or spent nonce is refused; a browser
// that is already logged in just goes on to the UI.
func (g *loginGate) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	// The link's nonce must not travel on in a Referer.
	w.Header().Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		plain(w, http.StatusMethodNotAllowed, "Temporal Web UI: open the login link with GET.\n")
		return
	}
	if g.loggedIn(r) {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	nonce := r.URL.Query().Get("nonce")
	session, err := randomHex(32)
	if err != nil {
		plain(w, http.StatusInternalServerError, "Temporal Web UI: cannot make a session.\n")
		return
	}
	g.mu.Lock()
	ok := !g.spent && subtle.ConstantTimeCompare([]byte(nonce), []byte(g.nonce)) == 1
	if ok {
		g.spent = true
		g.sessions[sha256.Sum256([]byte(session))] = struct{}{}
	}
	g.mu.Unlock()
	if !ok {
		plain(w, http.StatusForbidden, "Temporal Web UI: this login link is wrong or was used already.\n"+
			"Each link works once; restart `starter dev` (or `starter cluster`) for a new one.\n")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: g.cookie, Value: session, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// loggedIn reports whether r carries a live session cookie.
func (g *loginGate) loggedIn(r *http.Request) bool {
	c, err := r.Cookie(g.cookie)
	if err != nil || c.Value == "" {
		return false
	}
	// Looked up by digest, so the map's timing says nothing about the
	// value.
	d := sha256.Sum256([]byte(c.Value))
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.sessions[d]
	return ok
}

// stripCookie removes the session cookie from a request going on to the UI
// server, which has no use for it, and keeps the UI's own cookies.
func (g *loginGate) stripCookie(r *http.Request) {
	cookies := r.Cookies()
	r.Header.Del("Cookie")
	for _, c := range cookies {
		if c.Name != g.cookie {
			r.AddCookie(c)
		}
	}
}

// loginURL is the link for the UI configured at addr and listening on ln:
// its host as configured (127.0.0.1 for an unspecified one) and the port it
// really got.
func loginURL(addr string, ln net.Addr, nonce string) string {
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	port := "0"
	if tcp, ok := ln.(*net.TCPAddr); ok {
		port = strconv.Itoa(tcp.Port)
	}
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: loginPath,
		RawQuery: url.Values{"nonce": {nonce}}.Encode()}
	return u.String()
}

// plain answers a short text page.
func plain(w http.ResponseWriter, status int, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text))
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
