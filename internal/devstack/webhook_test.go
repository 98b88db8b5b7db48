package devstack

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/payments/internal/config"
)

// The development webhook secret is created once under the data dir (mode
// 0600), reused on restart, printed, and valid for the service's parser.
func TestDevWebhookSecretIsCreatedOnceAndReused(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Config{DataDir: dir}
	var out bytes.Buffer
	if err := devWebhookSecret(&cfg, &out); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, devWebhookSecretFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", fi, err)
	}
	secrets, err := config.ParseWebhookSecrets(cfg.WebhookSecrets)
	if err != nil || len(secrets) != 1 || len(secrets[DevGateway]) < 32 {
		t.Fatalf("PAYMENTS_WEBHOOK_SECRETS %v, %v", secrets, err)
	}
	secret := string(secrets[DevGateway])
	if !strings.Contains(out.String(), "Development webhook secret (gateway devpay): "+secret) {
		t.Fatalf("not printed: %q", out.String())
	}
	if got, err := ReadDevWebhookSecret(dir); err != nil || got != secret {
		t.Fatalf("ReadDevWebhookSecret: %q %v", got, err)
	}

	again := config.Config{DataDir: dir}
	if err := devWebhookSecret(&again, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if again.WebhookSecrets != cfg.WebhookSecrets {
		t.Fatal("a restart made a new secret")
	}
}

// Configured secrets win: no development secret is made or printed.
func TestNoDevWebhookSecretWhenSecretsAreConfigured(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Config{DataDir: dir, WebhookSecrets: "stripe:0123456789abcdef"}
	var out bytes.Buffer
	if err := devWebhookSecret(&cfg, &out); err != nil {
		t.Fatal(err)
	}
	if cfg.WebhookSecrets != "stripe:0123456789abcdef" || out.Len() != 0 {
		t.Fatalf("secrets %q, printed %q", cfg.WebhookSecrets, out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, devWebhookSecretFile)); !os.IsNotExist(err) {
		t.Fatalf("a secret file was written: %v", err)
	}
}
