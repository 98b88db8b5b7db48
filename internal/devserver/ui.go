package devserver

import (
	"context"
	"crypto/subtle"
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

	"github.com/acme/payments/internal/auth"
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
	// CodecToken, when set, is handed to the browser as a same-site cookie;
	// the proxy forwards a /codec call that carries it with the token as
	// its bearer credential (the token needs the pii scope).
	CodecToken string
}

// UI is the running Web UI.
type UI struct {
	ui    *uiserver.Server
	proxy *http.Server
	done  chan error
}

// StartUI runs the Temporal UI server on a private port behind a small
// proxy on opts.Address. The proxy exists to hand the development codec
// token to the browser and to serve /codec on the UI's own origin; the UI
// server itself is unchanged.
//
// The codec is on the UI's origin because a cookie belongs to the host the
// page was loaded from: a UI opened as http://localhost:8233 holds its
// cookie for localhost, which the browser never sends to an API named
// 127.0.0.1 (nor the other way round), so every decode was 401 unless the
// UI's host happened to match the API's. On one origin the cookie goes with
// every codec call, whichever name the UI is opened by.
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
	ui := uiserver.NewServer(server_options.WithConfigProvider(cfg))
	inner := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	go func() { _ = ui.Start() }()
	if err := waitForPort(ctx, inner, 20*time.Second); err != nil {
		ui.Stop()
		return nil, fmt.Errorf("temporal ui: %w", err)
	}

	target := &url.URL{Scheme: "http", Host: inner}
	rp := httputil.NewSingleHostReverseProxy(target)
	codec, err := codecProxy(opts)
	if err != nil {
		ui.Stop()
		return nil, fmt.Errorf("temporal ui: %w", err)
	}
	ownHost, _, _ := net.SplitHostPort(opts.Address)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trusted := trustedHost(r.Host, ownHost)
		if codec != nil && (r.URL.Path == codecPath || strings.HasPrefix(r.URL.Path, codecPath+"/")) {
			if !trusted {
				http.Error(w, "codec: unknown host", http.StatusForbidden)
				return
			}
			codec.ServeHTTP(w, r)
			return
		}
		if opts.CodecToken != "" && trusted {
			http.SetCookie(w, &http.Cookie{
				Name: auth.CookieName, Value: opts.CodecToken, Path: "/",
				HttpOnly: true, SameSite: http.SameSiteStrictMode,
			})
		}
		rp.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", opts.Address)
	if err != nil {
		ui.Stop()
		return nil, fmt.Errorf("temporal ui: listen on %s: %w", opts.Address, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	u := &UI{ui: ui, proxy: srv, done: make(chan error, 1)}
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		u.done <- err
	}()
	return u, nil
}

// Stop shuts the proxy and the UI server down and reports the proxy's own
// serving error, if it stopped on one.
func (u *UI) Stop(ctx context.Context) error {
	err := u.proxy.Shutdown(ctx)
	u.ui.Stop()
	return errors.Join(err, <-u.done)
}

// codecPath is where the proxy serves the codec on the UI's origin.
const codecPath = "/codec"

// codecProxy forwards the UI's POST /codec/… calls to opts.CodecEndpoint.
// A call must carry the cookie the proxy handed out; it goes on with the
// token as its bearer credential and without the browser's cookies, so the
// API sees the same credential whichever name the UI was opened by (and
// needs no cookie support of its own). nil when there is no codec.
func codecProxy(opts UIOptions) (http.Handler, error) {
	if opts.CodecEndpoint == "" {
		return nil, nil
	}
	upstream, err := url.Parse(opts.CodecEndpoint)
	if err != nil || (upstream.Scheme != "http" && upstream.Scheme != "https") || upstream.Host == "" {
		return nil, fmt.Errorf("codec endpoint %q is not an http(s) URL", opts.CodecEndpoint)
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
		c, err := r.Cookie(auth.CookieName)
		if opts.CodecToken == "" || err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(opts.CodecToken)) != 1 {
			http.Error(w, "codec: open the UI first to get its codec cookie", http.StatusUnauthorized)
			return
		}
		rp.ServeHTTP(w, r)
	}), nil
}

// trustedHost reports whether a request's Host names this proxy in a way a
// hostile page cannot: an IP literal, localhost, or the configured host. A
// page on another domain that resolves to this machine (DNS rebinding) gets
// neither the codec cookie nor the codec.
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
