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
	// CodecEndpoint is the HTTP API's /codec URL; the UI decodes payloads
	// through it.
	CodecEndpoint string
	// CodecToken, when set, is handed to the browser as a same-site cookie
	// so the UI's codec calls carry a token with the pii scope.
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
// token to the browser; the UI server itself is unchanged.
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
		Codec: uiconfig.Codec{
			Endpoint:           opts.CodecEndpoint,
			IncludeCredentials: true,
		},
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
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if opts.CodecToken != "" {
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
