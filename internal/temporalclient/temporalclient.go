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
	"strings"
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
	// Wait keeps Dial retrying until ctx ends while the frontend cannot be
	// reached, with one warning in the log, so a long-running process (the
	// worker, the HTTP API) can start before its server. Without it Dial
	// tries once, for at most DialTimeout, so a command fails in seconds.
	Wait bool
}

// DialTimeout bounds one attempt to reach the frontend (its health check).
const DialTimeout = 3 * time.Second

// retryEvery is how often a waiting Dial tries again.
const retryEvery = time.Second

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

// Dial connects and checks the frontend answers: once, failing with one
// line that names the address, or until ctx ends with Options.Wait.
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
		HostPort:       opts.Address,
		Namespace:      opts.Namespace,
		DataConverter:  codec.DataConverter(opts.Keys),
		Logger:         sdklog.NewStructuredLogger(logger.With("component", "temporal-sdk")),
		MetricsHandler: opts.Metrics,
		ConnectionOptions: client.ConnectionOptions{
			TLS:                  tlsConfig,
			GetSystemInfoTimeout: DialTimeout,
		},
	}
	if opts.APIKey != "" {
		co.Credentials = client.NewAPIKeyStaticCredentials(opts.APIKey)
	}
	warned := false
	for {
		c, err := client.DialContext(ctx, co)
		if err == nil {
			if warned {
				logger.Info("temporal reachable", "address", opts.Address)
			}
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dial Temporal at %s: %w", opts.Address, ctx.Err())
		}
		if !opts.Wait {
			return nil, fmt.Errorf("cannot reach Temporal at %s (namespace %s): %s", opts.Address, opts.Namespace, reason(err))
		}
		if !warned {
			logger.Warn("temporal not reachable yet, waiting for it", "address", opts.Address, "error", reason(err))
			warned = true
		}
		select {
		case <-ctx.Done():
		case <-time.After(retryEvery):
		}
	}
}

// reason shortens the SDK's and gRPC's error chain to what a user acts on.
func reason(err error) string {
	msg := err.Error()
	// "failed reaching server: last connection error: connection error:
	// desc = "transport: Error while dialing: dial tcp ...: connect:
	// connection refused"" says it three times over.
	if i := strings.LastIndex(msg, "dial tcp "); i >= 0 {
		msg = strings.TrimSuffix(msg[i:], `"`)
	}
	return strings.ReplaceAll(msg, "\n", " ")
}
