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
		"PAYMENTS_CODEC_TOKEN":        {"PAYMENTS_CODEC_TOKEN": "short"},
		"PAYMENTS_CODEC_CORS_ORIGINS": {"PAYMENTS_CODEC_CORS_ORIGINS": "*"},
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

// PAYMENTS_CODEC_TOKEN is a codec-only credential beside the API tokens,
// and may not be one of them.
func TestCodecToken(t *testing.T) {
	cfg, err := parse(t, map[string]string{
		"PAYMENTS_API_TOKENS":  "all-token-1:read+write+pii",
		"PAYMENTS_CODEC_TOKEN": "codec-token-0123456789",
	})
	if err != nil {
		t.Fatal(err)
	}
	toks, err := cfg.Tokens()
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := toks.Lookup("codec-token-0123456789"); !ok || len(s) != 1 || s[0] != "codec" {
		t.Fatalf("codec token scopes %v %v", s, ok)
	}
	if s, _ := toks.Lookup("all-token-1"); s.Has("codec") {
		t.Fatal("the API token got the codec scope")
	}
	_, err = parse(t, map[string]string{
		"PAYMENTS_API_TOKENS":  "same-token-0123456789:read",
		"PAYMENTS_CODEC_TOKEN": "same-token-0123456789",
	})
	if err == nil || !strings.Contains(err.Error(), "PAYMENTS_CODEC_TOKEN") || strings.Contains(err.Error(), "same-token") {
		t.Fatalf("codec token reusing an API token: %v", err)
	}
}

// Codec CORS origins are exact: what a browser sends in Origin, nothing
// that could match more.
func TestCodecCORSOriginsAreExact(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8233", "https://temporal.example.com", "http://[::1]:8233"} {
		if err := checkOrigin(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"*", "null", "http://*.example.com", "http://ui.example/", "http://ui.example/x",
		"ui.example:8233", "ftp://ui.example", "http://u@ui.example", "http://ui.example?x", "HTTP://ui.example"} {
		if err := checkOrigin(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
