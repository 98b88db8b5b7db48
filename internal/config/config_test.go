package config

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// parse runs the real flag set over args and environment.
func parse(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var cfg Config
	var err error
	app := &cli.App{Flags: Flags(), Action: func(c *cli.Context) error {
		cfg, err = FromCLI(c)
		return nil
	}}
	if runErr := app.Run(append([]string{"x"}, args...)); runErr != nil {
		t.Fatal(runErr)
	}
	return cfg, err
}

func TestDefaults(t *testing.T) {
	cfg, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MySQLDSN != "root@tcp(127.0.0.1:3306)/payments" || cfg.TemporalAddress != "127.0.0.1:7233" ||
		cfg.TemporalNamespace != "default" || cfg.HTTPAddr != "127.0.0.1:8080" || cfg.DataDir != ".data" ||
		cfg.MaxUploadBytes != 2<<30 {
		t.Fatalf("defaults: %+v", cfg)
	}
	u, err := cfg.StagingURL()
	if err != nil || !strings.HasPrefix(u, "file:///") || !strings.Contains(u, ".data/blobs") {
		t.Fatalf("staging url %q %v", u, err)
	}
}

func TestEnvironmentAndFlags(t *testing.T) {
	cfg, err := parse(t, map[string]string{
		"PAYMENTS_HTTP_ADDR":          "127.0.0.1:9999",
		"PAYMENTS_IMPORT_CHUNK_ROWS":  "5000",
		"PAYMENTS_API_TOKENS":         "abcdefgh1:read",
		"PAYMENTS_WEBHOOK_SECRETS":    "stripe:0123456789abcdef,adyen:fedcba9876543210",
		"PAYMENTS_CODEC_CORS_ORIGINS": "http://a:1, http://b:2",
	}, "--import-parallelism", "7")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:9999" || cfg.ImportChunkRows != 5000 || cfg.ImportParallelism != 7 {
		t.Fatalf("%+v", cfg)
	}
	if len(cfg.CodecCORSOrigins) != 2 || cfg.CodecCORSOrigins[1] != "http://b:2" {
		t.Fatalf("origins %q", cfg.CodecCORSOrigins)
	}
	secrets, err := ParseWebhookSecrets(cfg.WebhookSecrets)
	if err != nil || string(secrets["adyen"]) != "fedcba9876543210" {
		t.Fatalf("secrets %v", err)
	}
}

func TestValidationErrorsNameTheVariable(t *testing.T) {
	cases := map[string]map[string]string{
		"PAYMENTS_IMPORT_CHUNK_ROWS":  {"PAYMENTS_IMPORT_CHUNK_ROWS": "0"},
		"PAYMENTS_IMPORT_PARALLELISM": {"PAYMENTS_IMPORT_PARALLELISM": "-1"},
		"PAYMENTS_MAX_UPLOAD_BYTES":   {"PAYMENTS_MAX_UPLOAD_BYTES": "0"},
		"PAYMENTS_API_TOKENS":         {"PAYMENTS_API_TOKENS": "abcdefgh1:root"},
		"PAYMENTS_WEBHOOK_SECRETS":    {"PAYMENTS_WEBHOOK_SECRETS": "stripe:short"},
		"PAYMENTS_LOG_LEVEL":          {"PAYMENTS_LOG_LEVEL": "loud"},
	}
	for name, env := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parse(t, env)
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("got %v", err)
			}
			if strings.Contains(err.Error(), "short") && name == "PAYMENTS_WEBHOOK_SECRETS" && strings.Contains(err.Error(), ":short") {
				t.Fatalf("error echoes the secret: %v", err)
			}
		})
	}
}

func TestKeysAndBlindIndex(t *testing.T) {
	cfg := Config{Keys: "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
	kr, err := cfg.Keyring()
	if err != nil || kr.PrimaryID() != "k1" {
		t.Fatalf("keyring %v", err)
	}
	if _, err := (&Config{}).Keyring(); err == nil {
		t.Fatal("no keys accepted")
	}
	if _, err := (&Config{}).BlindIndex(); err == nil || !strings.Contains(err.Error(), "PAYMENTS_BLIND_INDEX_KEY") {
		t.Fatalf("blind index: %v", err)
	}
	cfg.BlindIndexKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	if _, err := cfg.BlindIndex(); err != nil {
		t.Fatal(err)
	}
}
