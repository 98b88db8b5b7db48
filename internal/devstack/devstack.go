// Package devstack runs the whole development stack in one process: an
// embedded Temporal server and Web UI next to the service's worker and
// HTTP API. It lives apart from package service so that the worker and API
// programs do not carry a Temporal server.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acme/payments/internal/auth"
	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/devserver"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/service"
)

// Dev runs the whole development stack in this process until ctx ends: an
// embedded Temporal server persisted under the data dir, the Temporal Web
// UI, the worker and the HTTP API. The database is migrated first.
// Announcements a developer needs (where the keys are, the API token) go to
// out, never to the log.
func Dev(ctx context.Context, cfg config.Config, logger *slog.Logger, out io.Writer) error {
	// Every fixed port first: a clash is one line, and nothing (keys,
	// token) has been written yet.
	if err := checkPorts(cfg, "the embedded Temporal frontend (TEMPORAL_ADDRESS)"); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := devKeys(&cfg, out); err != nil {
		return err
	}
	if err := devToken(&cfg, out); err != nil {
		return err
	}
	if err := devCodecToken(&cfg); err != nil {
		return err
	}
	if err := devWebhookSecret(&cfg, out); err != nil {
		return err
	}

	// The server's own logging is chatty at info level; keep its warnings.
	serverLogger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tsrv, err := devserver.StartTemporal(ctx, devserver.TemporalOptions{
		DatabaseFile:    filepath.Join(cfg.DataDir, "temporal.db"),
		FrontendAddress: cfg.TemporalAddress,
		Namespace:       cfg.TemporalNamespace,
		DynamicConfig:   devserver.DefaultDynamicConfig(),
		Logger:          serverLogger,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := tsrv.Stop(); err != nil {
			logger.Warn("embedded temporal stop", "error", err.Error())
		}
		logger.Info("embedded temporal stopped")
	}()
	logger.Info("embedded temporal started", "address", tsrv.Address(), "namespace", cfg.TemporalNamespace,
		"database", filepath.Join(cfg.DataDir, "temporal.db"))

	d, err := service.Open(ctx, cfg, logger, true)
	if err != nil {
		return err
	}
	defer d.Close()

	w := service.NewWorker(d)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop()
	if err := service.EnsureStagingRetention(ctx, d); err != nil {
		logger.Warn("staging retention schedule not set; staged uploads are kept until a start sets it", "error", err.Error())
	}

	s, err := service.APIServer(d)
	if err != nil {
		return err
	}

	stopUI, login, err := startUI(ctx, cfg, cfg.TemporalAddress, "http://"+cfg.HTTPAddr+"/codec")
	if err != nil {
		return err
	}
	defer stopUI()
	// The login link holds a secret: stdout only, never the log.
	logger.Info("temporal web ui started", "url", "http://"+cfg.UIAddr)
	fmt.Fprintf(out, "%sHTTP API:        http://%s\n", uiAnnouncement(login), cfg.HTTPAddr)

	return service.ListenAndServe(ctx, cfg.HTTPAddr, s.Handler(), logger)
}

// devKeys points cfg at development keys under the data dir, creating them
// on first start, unless keys were configured.
func devKeys(cfg *config.Config, out io.Writer) error {
	if cfg.Keys != "" || cfg.KeysFile != "" {
		if cfg.BlindIndexKey == "" {
			return errors.New("PAYMENTS_KEYS is set but PAYMENTS_BLIND_INDEX_KEY is not: set both, or neither for development keys")
		}
		return nil
	}
	_, _, created, err := encryption.EnsureDevKeys(cfg.DevKeysDir())
	if err != nil {
		return fmt.Errorf("development keys: %w", err)
	}
	if created {
		fmt.Fprintf(out, "Created development encryption keys in %s (mode 0600). Never use them in production.\n", cfg.DevKeysDir())
	} else {
		fmt.Fprintf(out, "Using development encryption keys in %s.\n", cfg.DevKeysDir())
	}
	return service.UseDevKeysIfPresent(cfg)
}

// devToken creates, without configured tokens, a development token with
// every scope, kept under the data dir so it survives restarts, and prints
// it. The Web UI never gets it (see devCodecToken).
func devToken(cfg *config.Config, out io.Writer) error {
	if cfg.APITokens != "" {
		return nil
	}
	path := filepath.Join(cfg.DataDir, "dev-token")
	token := ""
	if b, err := os.ReadFile(path); err == nil {
		token = strings.TrimSpace(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("development token: %w", err)
	}
	if token == "" {
		t, err := auth.NewDevToken()
		if err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("development token: %w", err)
		}
		_, werr := fmt.Fprintln(f, t)
		if err := errors.Join(werr, f.Close()); err != nil {
			return fmt.Errorf("development token: %w", err)
		}
		token = t
	}
	cfg.APITokens = token + ":read+write+pii"
	fmt.Fprintf(out, "Development API token (read+write+pii): %s\n  export PAYMENTS_API_TOKENS=%s:read+write+pii  # to reuse it elsewhere\n", token, token)
	return nil
}

// devCodecToken gives the Web UI's proxy its codec-only credential
// (PAYMENTS_CODEC_TOKEN), minted at every start unless one is configured.
// It is kept nowhere and printed nowhere: only the proxy and the API know
// it, and it opens /codec alone.
func devCodecToken(cfg *config.Config) error {
	if cfg.CodecToken != "" {
		return nil
	}
	t, err := auth.NewCodecToken()
	if err != nil {
		return err
	}
	cfg.CodecToken = t
	return nil
}

// uiAnnouncement tells the developer how to open the Web UI: by its
// one-time login link.
func uiAnnouncement(login string) string {
	return fmt.Sprintf("Temporal Web UI: %s\n"+
		"                 (a one-time login link: it lets in the first browser that opens it; a restart prints a new one)\n", login)
}

// checkPorts checks the stack's fixed addresses before anything is written
// or started; temporal names what listens on TEMPORAL_ADDRESS.
func checkPorts(cfg config.Config, temporal string) error {
	return devserver.CheckPorts(
		devserver.Port{Name: temporal, Address: cfg.TemporalAddress},
		devserver.Port{Name: "the Temporal Web UI (PAYMENTS_UI_ADDR)", Address: cfg.UIAddr},
		devserver.Port{Name: "the HTTP API (PAYMENTS_HTTP_ADDR)", Address: cfg.HTTPAddr},
	)
}

// startUI runs the Temporal Web UI on cfg.UIAddr for the server at
// temporal, decoding through codec with cfg.CodecToken; stop shuts it down
// and login is its one-time login link.
func startUI(ctx context.Context, cfg config.Config, temporal, codec string) (stop func(), login string, err error) {
	ui, err := devserver.StartUI(ctx, devserver.UIOptions{
		Address: cfg.UIAddr, TemporalAddress: temporal, Namespace: cfg.TemporalNamespace,
		CodecEndpoint: codec, CodecToken: cfg.CodecToken,
	})
	if err != nil {
		return nil, "", err
	}
	return func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ui.Stop(stopCtx)
	}, ui.LoginURL(), nil
}
