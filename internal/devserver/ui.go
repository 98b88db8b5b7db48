package devserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	"github.com/temporalio/ui-server/v2/server/server_options"
)

// UIOptions configures the embedded Temporal Web UI.
type UIOptions struct {
	// Address is where operators open the UI, e.g. 127.0.0.1:8233.
	Address         string
	TemporalAddress string
	Namespace       string
	// CodecEndpoint is the HTTP API's /codec URL. The browser never calls
	// it: the UI calls /codec on its own origin, and the proxy forwards
	// those calls here (see codecProxy).
	CodecEndpoint string
	// CodecToken is the codec-only credential (auth.Codec scope) the proxy
	// sends to CodecEndpoint as its bearer token. It never leaves the
	// proxy: the browser holds only a session cookie.
	CodecToken string
}

// UI is the running Web UI.
type UI struct {
	ui       *uiserver.Server
	proxy    *http.Server
	done     chan error
	loginURL string
}

// StartUI runs the Temporal UI server on a private port behind a small
// proxy on opts.Address. The proxy lets in only browsers that opened the
// one-time login link (LoginURL), the way Jupyter does: without it anyone
// who reaches the port could read every workflow and decode its payloads.
// It also serves /codec on the UI's own origin; the UI server itself is
// unchanged.
//
// The codec is on the UI's origin because a cookie belongs to the host the
// page was loaded from: a UI opened as http://localhost:8233 holds its
// cookie for localhost, which the browser never sends to an API named
// 127.0.0.1 (nor the other way round). On one origin the session cookie
// goes with every codec call, and the proxy adds the codec credential.
func StartUI(ctx context.Context, opts UIOptions) (*UI, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return nil, fmt.Errorf("temporal ui: %w", err)
	}
	cfg := &uiconfig.Config{
		TemporalGRPCAddress: opts.TemporalAddress,
		Host:                "127.0.0.1",
		Port:                ports[0],
		EnableUI:            true,
		DefaultNamespace:    opts.Namespace,
		HideLogs:            true,
		DisableNewsFetch:    true,
		CORS:                uiconfig.CORS{CookieInsecure: true},
	}
	if opts.CodecEndpoint != "" {
		// Relative: the browser resolves it against the UI's own origin.
		cfg.Codec = uiconfig.Codec{Endpoint: codecPath, IncludeCredentials: true}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("temporal ui: %w", err)
	}
	codec, err := codecProxy(opts)
	if err != nil {
		return nil, fmt.Errorf("temporal ui: %w", err)
	}
	ln, err := net.Listen("tcp", opts.Address)
	if err != nil {
		return nil, fmt.Errorf("temporal ui: listen on %s: %w", opts.Address, err)
	}
	gate, err := newLoginGate(ln.Addr().(*net.TCPAddr).Port)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("temporal ui: %w", err)
	}

	ui := uiserver.NewServer(server_options.WithConfigProvider(cfg))
	inner := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	go func() { _ = ui.Start() }()
	if err := waitForPort(ctx, inner, 20*time.Second); err != nil {
		ui.Stop()
		ln.Close()
		return nil, fmt.Errorf("temporal ui: %w", err)
	}
	target := &url.URL{Scheme: "http", Host: inner}
	rp := httputil.NewSingleHostReverseProxy(target)
	director := rp.Director
	rp.Director = func(r *http.Request) {
		director(r)
		gate.stripCookie(r)
	}

	ownHost, _, _ := net.SplitHostPort(opts.Address)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A page on another domain that resolves here (DNS rebinding)
		// gets nothing, not even the login page.
		if !trustedHost(r.Host, ownHost) {
			plain(w, http.StatusForbidden, "Temporal Web UI: unknown host name.\n")
			return
		}
		if r.URL.Path == loginPath {
			gate.login(w, r)
			return
		}
		if !gate.loggedIn(r) {
			plain(w, http.StatusUnauthorized, notLoggedIn)
			return
		}
		if codec != nil && (r.URL.Path == codecPath || strings.HasPrefix(r.URL.Path, codecPath+"/")) {
			codec.ServeHTTP(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	u := &UI{ui: ui, proxy: srv, done: make(chan error, 1), loginURL: loginURL(opts.Address, ln.Addr(), gate.nonce)}
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		u.done <- err
	}()
	return u, nil
}

// LoginURL is the one-time link that lets one browser in. It holds a
// secret: print it for the developer, never log it.
func (u *UI) LoginURL() string { return u.loginURL }

// Stop shuts the proxy and the UI server down and reports the proxy's own
// serving error, if it stopped on one.
func (u *UI) Stop(ctx context.Context) error {
	err := u.proxy.Shutdown(ctx)
	u.ui.Stop()
	return errors.Join(err, <-u.done)
}

// codecPath is where the proxy serves the codec on the UI's origin.
const codecPath = "/codec"

// codecProxy forwards the UI's POST /codec/… calls to opts.CodecEndpoint,
// with the codec credential as the bearer token and without the browser's
// cookies and origin, so the API sees the same credential whichever name the
// UI was opened by. The caller has checked the session. nil when there is no
// codec.
func codecProxy(opts UIOptions) (http.Handler, error) {
	if opts.CodecEndpoint == "" {
		return nil, nil
	}
	upstream, err := url.Parse(opts.CodecEndpoint)
	if err != nil || (upstream.Scheme != "http" && upstream.Scheme != "https") || upstream.Host == "" {
		return nil, fmt.Errorf("codec endpoint %q is not an http(s) URL", opts.CodecEndpoint)
	}
	if opts.CodecToken == "" {
		return nil, errors.New("a codec endpoint needs a codec token")
	}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.Out.URL.Scheme, pr.Out.URL.Host = upstream.Scheme, upstream.Host
		pr.Out.URL.Path = strings.TrimSuffix(upstream.Path, "/") + strings.TrimPrefix(pr.In.URL.Path, codecPath)
		pr.Out.URL.RawPath = ""
		pr.Out.Host = upstream.Host
		pr.Out.Header.Del("Cookie")
		pr.Out.Header.Del("Origin")
		pr.Out.Header.Set("Authorization", "Bearer "+opts.CodecToken)
	}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "codec: POST only", http.StatusMethodNotAllowed)
			return
		}
		rp.ServeHTTP(w, r)
	}), nil
}

// trustedHost reports whether a request's Host names this proxy in a way a
// hostile page cannot: an IP literal, localhost, or the configured host. A
// page on another domain that resolves to this machine (DNS rebinding) gets
// neither the login nor anything behind it.
func trustedHost(hostport, own string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	switch {
	case host == "":
		return false
	case net.ParseIP(host) != nil, strings.EqualFold(host, "localhost"):
		return true
	}
	return own != "" && net.ParseIP(own) == nil && strings.EqualFold(host, own)
}
