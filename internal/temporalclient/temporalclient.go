// Package temporalclient dials Temporal the one way the service does it:
// payloads encrypted by the codec, slog logging and SDK metrics.
package temporalclient

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/acme/payments/internal/codec"
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
	co := client.Options{
		HostPort:       opts.Address,
		Namespace:      opts.Namespace,
		DataConverter:  codec.DataConverter(opts.Keys),
		Logger:         sdklog.NewStructuredLogger(logger.With("component", "temporal-sdk")),
		MetricsHandler: opts.Metrics,
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
