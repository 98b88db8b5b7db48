package devstack

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/acme/payments/internal/config"
)

// DevGateway is the gateway name of the development webhook secret:
// callbacks to POST /webhooks/devpay are signed with it.
const DevGateway = "devpay"

// devWebhookSecretFile is the file under the data dir that holds the
// development webhook secret (hex, one line, mode 0600).
const devWebhookSecretFile = "dev-webhook-secret"

// devWebhookSecret gives `starter dev` a webhook secret for DevGateway
// unless PAYMENTS_WEBHOOK_SECRETS is set, so live payments can be finished
// with `starter gateway callback` without a restart or openssl. Like the
// development token it is created on first start under the data dir, kept
// there across restarts, and printed to out, never logged.
func devWebhookSecret(cfg *config.Config, out io.Writer) error {
	if strings.TrimSpace(cfg.WebhookSecrets) != "" {
		return nil
	}
	path := filepath.Join(cfg.DataDir, devWebhookSecretFile)
	secret, err := ReadDevWebhookSecret(cfg.DataDir)
	if err != nil {
		return err
	}
	if secret == "" {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("development webhook secret: %w", err)
		}
		secret = hex.EncodeToString(b[:])
		if err := writePrivate(path, secret+"\n"); err != nil {
			return fmt.Errorf("development webhook secret: %w", err)
		}
	}
	cfg.WebhookSecrets = DevGateway + ":" + secret
	fmt.Fprintf(out, "Development webhook secret (gateway %s): %s\n  finish a payment with: starter gateway callback PAYMENT_ID --status SUCCESS\n",
		DevGateway, secret)
	return nil
}

// ReadDevWebhookSecret returns the development webhook secret `starter dev`
// keeps under dataDir, or "" when there is none yet.
func ReadDevWebhookSecret(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, devWebhookSecretFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("development webhook secret: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// writePrivate writes content to a new or truncated file of mode 0600.
func writePrivate(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := io.WriteString(f, content)
	return errors.Join(werr, f.Close())
}
