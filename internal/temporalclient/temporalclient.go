// Package temporalclient dials Temporal the one way the service does it:
// payloads encrypted by the codec, slog logging and SDK metrics.
package temporalclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/acme/payments/internal/codec"
	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/encryption"
)

// Options configures Dial.
type Options struct {
	Address   string
	Namespace string
	// Keys encrypt every payload the client sends; required.
	Keys    *encryption.Keyring
	Logger  *slog.Logger
	Metrics client.MetricsHandler
	// TLS, when Enabled, secures the connection (mTLS with a client
	// certificate).
	TLS config.TLSFiles
	// APIKey is sent as a bearer credential on every call; the SDK then
	// uses TLS with the system roots unless TLS says otherwise.
	APIKey string
}

// TLSConfig builds the client TLS configuration of files, or nil when no
// TLS setting is given.
func TLSConfig(files config.TLSFiles) (*tls.Config, error) {
	if !files.Enabled() {
		return nil, nil
	}
	if err := files.Validate(); err != nil {
		return nil, err
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: files.ServerName}
	if files.CA != "" {
		pem, err := os.ReadFile(files.CA)
		if err != nil {
			return nil, fmt.Errorf("TEMPORAL_TLS_CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TEMPORAL_TLS_CA %s: no PEM certificate in it", files.CA)
		}
		tc.RootCAs = pool
	}
	if files.Cert != "" {
		cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
		if err != nil {
			return nil, fmt.Errorf("TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Dial connects and checks the frontend answers, retrying for up to a
// minute so a worker can start before its server does.
func Dial(ctx context.Context, opts Options) (client.Client, error) {
	if opts.Keys == nil {
		return nil, fmt.Errorf("temporal client: no keyring: payloads must be encrypted")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tlsConfig, err := TLSConfig(opts.TLS)
	if err != nil {
		return nil, fmt.Errorf("temporal client: %w", err)
	}
	co := client.Options{
		HostPort:          opts.Address,
		Namespace:         opts.Namespace,
		DataConverter:     codec.DataConverter(opts.Keys),
		Logger:            sdklog.NewStructuredLogger(logger.With("component", "temporal-sdk")),
		MetricsHandler:    opts.Metrics,
		ConnectionOptions: client.ConnectionOptions{TLS: tlsConfig},
	}
	if opts.APIKey != "" {
		co.Credentials = client.NewAPIKeyStaticCredentials(opts.APIKey)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := client.DialContext(ctx, co)
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("dial Temporal at %s (namespace %s): %w", opts.Address, opts.Namespace, err)
		}
		logger.Warn("temporal not reachable yet, retrying", "address", opts.Address, "error", err.Error())
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
