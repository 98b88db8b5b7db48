// Package config reads the service's configuration from flags and their
// PAYMENTS_… / TEMPORAL_… environment variables (SPEC section 6).
package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/acme/payments/internal/auth"
	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/encryption"
)

// Config is everything a service process needs to know.
type Config struct {
	MySQLDSN          string
	TemporalAddress   string
	TemporalNamespace string
	// TemporalTLS holds the TEMPORAL_TLS_* files for a TLS or mTLS
	// frontend; empty means a plaintext connection.
	TemporalTLS TLSFiles
	// TemporalAPIKey authenticates to Temporal Cloud (or any frontend that
	// takes a bearer API key); it turns TLS on unless files say otherwise.
	TemporalAPIKey string
	HTTPAddr       string
	UIAddr         string
	BlobURL        string
	DataDir        string
	Keys           string
	KeysFile       string
	BlindIndexKey  string
	// BlindIndexKeyFile, read when BlindIndexKey is empty, is set by
	// service.UseDevKeysIfPresent to the development key file.
	BlindIndexKeyFile string
	APITokens         string
	// CodecToken (PAYMENTS_CODEC_TOKEN) is a codec-only credential: /codec
	// accepts it and every other route refuses it. A Web UI's proxy holds
	// it; `starter dev` and `starter cluster` mint one at each start.
	CodecToken        string
	WebhookSecrets    string
	CodecCORSOrigins  []string
	MaxUploadBytes    int64
	ImportChunkRows   int
	ImportParallelism int
	ExportChunkRows   int
	ExportParallelism int
	// StagingRetention is how long staged uploads are kept; zero keeps
	// them.
	StagingRetention time.Duration
	// MetricsAddr is where a worker serves its Prometheus metrics
	// (PAYMENTS_METRICS_ADDR); empty serves none. The API serves them on
	// its own address at /metrics.
	MetricsAddr string
	// AttemptTimeout fails a payment attempt its gateway never answers.
	AttemptTimeout time.Duration
	LogLevel       string
}

// Defaults of SPEC section 6.
const (
	DefaultTemporalAddress   = "127.0.0.1:7233"
	DefaultTemporalNamespace = "default"
	DefaultHTTPAddr          = "127.0.0.1:8080"
	DefaultUIAddr            = "127.0.0.1:8233"
	DefaultDataDir           = ".data"
	DefaultMaxUploadBytes    = 2 << 30
	DefaultImportChunkRows   = 25000
	DefaultImportParallelism = 4
	DefaultExportChunkRows   = 100_000
	DefaultExportParallelism = 2
	DefaultStagingRetention  = 7 * 24 * time.Hour
)

// Flags are the flags shared by every command that runs part of the service;
// each also reads its environment variable.
func Flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "mysql-dsn", EnvVars: []string{"PAYMENTS_MYSQL_DSN"}, Value: database.DefaultDSN, Usage: "MySQL DSN (go-sql-driver format)"},
		&cli.StringFlag{Name: "temporal-address", EnvVars: []string{"TEMPORAL_ADDRESS"}, Value: DefaultTemporalAddress, Usage: "Temporal frontend host:port"},
		&cli.StringFlag{Name: "temporal-namespace", EnvVars: []string{"TEMPORAL_NAMESPACE"}, Value: DefaultTemporalNamespace, Usage: "Temporal namespace"},
		&cli.StringFlag{Name: "temporal-tls-ca", EnvVars: []string{"TEMPORAL_TLS_CA"}, Usage: "PEM file of the CA that signed the Temporal frontend's certificate"},
		&cli.StringFlag{Name: "temporal-tls-cert", EnvVars: []string{"TEMPORAL_TLS_CERT"}, Usage: "PEM client certificate for mTLS to Temporal"},
		&cli.StringFlag{Name: "temporal-tls-key", EnvVars: []string{"TEMPORAL_TLS_KEY"}, Usage: "PEM private key of TEMPORAL_TLS_CERT"},
		&cli.StringFlag{Name: "temporal-tls-server-name", EnvVars: []string{"TEMPORAL_TLS_SERVER_NAME"}, Usage: "server name to verify in the Temporal frontend's certificate"},
		&cli.StringFlag{Name: "temporal-api-key", EnvVars: []string{"TEMPORAL_API_KEY"}, Usage: "Temporal API key (Temporal Cloud); implies TLS"},
		&cli.StringFlag{Name: "http-addr", EnvVars: []string{"PAYMENTS_HTTP_ADDR"}, Value: DefaultHTTPAddr, Usage: "HTTP API listen address"},
		&cli.StringFlag{Name: "ui-addr", EnvVars: []string{"PAYMENTS_UI_ADDR"}, Value: DefaultUIAddr, Usage: "embedded Temporal Web UI address (dev only)"},
		&cli.StringFlag{Name: "metrics-addr", EnvVars: []string{"PAYMENTS_METRICS_ADDR"}, Usage: "worker: serve Prometheus metrics at /metrics on this address (empty: off)"},
		&cli.StringFlag{Name: "blob-url", EnvVars: []string{"PAYMENTS_BLOB_URL"}, Usage: "staging store URL (default file:// under the data dir)"},
		&cli.StringFlag{Name: "data-dir", EnvVars: []string{"PAYMENTS_DATA_DIR"}, Value: DefaultDataDir, Usage: "local state: dev Temporal database, blobs, dev keys"},
		&cli.StringFlag{Name: "keys", EnvVars: []string{"PAYMENTS_KEYS"}, Usage: "encryption keys id:base64,… (first is primary)"},
		&cli.StringFlag{Name: "keys-file", EnvVars: []string{"PAYMENTS_KEYS_FILE"}, Usage: "file holding the encryption keys"},
		&cli.StringFlag{Name: "blind-index-key", EnvVars: []string{"PAYMENTS_BLIND_INDEX_KEY"}, Usage: "base64 of the 32-byte blind-index key"},
		&cli.StringFlag{Name: "api-tokens", EnvVars: []string{"PAYMENTS_API_TOKENS"}, Usage: "API tokens token:scope+scope,… (scopes read, write, pii; codec alone)"},
		&cli.StringFlag{Name: "codec-token", EnvVars: []string{"PAYMENTS_CODEC_TOKEN"}, Usage: "codec-only token, accepted by /codec alone (the Web UI proxy's credential)"},
		&cli.StringFlag{Name: "webhook-secrets", EnvVars: []string{"PAYMENTS_WEBHOOK_SECRETS"}, Usage: "gateway webhook secrets gateway:secret,…"},
		&cli.StringFlag{Name: "codec-cors-origins", EnvVars: []string{"PAYMENTS_CODEC_CORS_ORIGINS"}, Usage: "exact origins (scheme://host[:port]) allowed to call /codec from a browser (default: the UI address)"},
		&cli.Int64Flag{Name: "max-upload-bytes", EnvVars: []string{"PAYMENTS_MAX_UPLOAD_BYTES"}, Value: DefaultMaxUploadBytes, Usage: "largest accepted upload"},
		&cli.IntFlag{Name: "import-chunk-rows", EnvVars: []string{"PAYMENTS_IMPORT_CHUNK_ROWS"}, Value: DefaultImportChunkRows, Usage: "rows per import chunk"},
		&cli.IntFlag{Name: "import-parallelism", EnvVars: []string{"PAYMENTS_IMPORT_PARALLELISM"}, Value: DefaultImportParallelism, Usage: "import chunks in flight"},
		&cli.IntFlag{Name: "export-chunk-rows", EnvVars: []string{"PAYMENTS_EXPORT_CHUNK_ROWS"}, Value: DefaultExportChunkRows, Usage: "rows per export part"},
		&cli.IntFlag{Name: "export-parallelism", EnvVars: []string{"PAYMENTS_EXPORT_PARALLELISM"}, Value: DefaultExportParallelism, Usage: "export parts written at once"},
		&cli.DurationFlag{Name: "staging-retention", EnvVars: []string{"PAYMENTS_STAGING_RETENTION"}, Value: DefaultStagingRetention, Usage: "delete staged uploads this long after they were written (0: keep them)"},
		&cli.DurationFlag{Name: "attempt-timeout", EnvVars: []string{"PAYMENTS_ATTEMPT_TIMEOUT"}, Value: 15 * time.Minute, Usage: "fail a payment attempt its gateway never answers after this long (reason TIMEOUT)"},
		&cli.StringFlag{Name: "log-level", EnvVars: []string{"PAYMENTS_LOG_LEVEL"}, Value: "info", Usage: "debug, info, warn or error"},
	}
}

// FromCLI reads the flags of Flags and validates them.
func FromCLI(c *cli.Context) (Config, error) {
	cfg := Config{
		MySQLDSN:          c.String("mysql-dsn"),
		TemporalAddress:   c.String("temporal-address"),
		TemporalNamespace: c.String("temporal-namespace"),
		TemporalTLS: TLSFiles{
			CA: c.String("temporal-tls-ca"), Cert: c.String("temporal-tls-cert"),
			Key: c.String("temporal-tls-key"), ServerName: c.String("temporal-tls-server-name"),
		},
		TemporalAPIKey:    c.String("temporal-api-key"),
		HTTPAddr:          c.String("http-addr"),
		UIAddr:            c.String("ui-addr"),
		MetricsAddr:       c.String("metrics-addr"),
		BlobURL:           c.String("blob-url"),
		DataDir:           c.String("data-dir"),
		Keys:              c.String("keys"),
		KeysFile:          c.String("keys-file"),
		BlindIndexKey:     c.String("blind-index-key"),
		APITokens:         c.String("api-tokens"),
		CodecToken:        c.String("codec-token"),
		WebhookSecrets:    c.String("webhook-secrets"),
		CodecCORSOrigins:  splitList(c.String("codec-cors-origins")),
		MaxUploadBytes:    c.Int64("max-upload-bytes"),
		ImportChunkRows:   c.Int("import-chunk-rows"),
		ImportParallelism: c.Int("import-parallelism"),
		ExportChunkRows:   c.Int("export-chunk-rows"),
		ExportParallelism: c.Int("export-parallelism"),
		StagingRetention:  c.Duration("staging-retention"),
		AttemptTimeout:    c.Duration("attempt-timeout"),
		LogLevel:          c.String("log-level"),
	}
	return cfg, cfg.Validate()
}

// Validate checks the values that cannot be right, with an error naming the
// variable.
func (c *Config) Validate() error {
	switch {
	case c.MySQLDSN == "":
		return fmt.Errorf("PAYMENTS_MYSQL_DSN is empty")
	case c.TemporalAddress == "":
		return fmt.Errorf("TEMPORAL_ADDRESS is empty")
	case c.TemporalNamespace == "":
		return fmt.Errorf("TEMPORAL_NAMESPACE is empty")
	case c.MaxUploadBytes <= 0:
		return fmt.Errorf("PAYMENTS_MAX_UPLOAD_BYTES must be positive, got %d", c.MaxUploadBytes)
	case c.ImportChunkRows < 1 || c.ImportChunkRows > 1_000_000:
		return fmt.Errorf("PAYMENTS_IMPORT_CHUNK_ROWS must be 1..1000000, got %d", c.ImportChunkRows)
	case c.ImportParallelism < 1 || c.ImportParallelism > 256:
		return fmt.Errorf("PAYMENTS_IMPORT_PARALLELISM must be 1..256, got %d", c.ImportParallelism)
	case c.ExportChunkRows < 1 || c.ExportChunkRows > 10_000_000:
		return fmt.Errorf("PAYMENTS_EXPORT_CHUNK_ROWS must be 1..10000000, got %d", c.ExportChunkRows)
	case c.StagingRetention < 0:
		return fmt.Errorf("PAYMENTS_STAGING_RETENTION must not be negative, got %s", c.StagingRetention)
	case c.ExportParallelism < 1 || c.ExportParallelism > 64:
		return fmt.Errorf("PAYMENTS_EXPORT_PARALLELISM must be 1..64, got %d", c.ExportParallelism)
	}
	if err := c.TemporalTLS.Validate(); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("PAYMENTS_LOG_LEVEL must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if _, err := c.Tokens(); err != nil {
		return err
	}
	for _, o := range c.CodecCORSOrigins {
		if err := checkOrigin(o); err != nil {
			return fmt.Errorf("PAYMENTS_CODEC_CORS_ORIGINS: %w", err)
		}
	}
	if _, err := ParseWebhookSecrets(c.WebhookSecrets); err != nil {
		return err
	}
	return nil
}

// BlobDir is where the default file:// staging store keeps files.
func (c *Config) BlobDir() string { return filepath.Join(c.DataDir, "blobs") }

// StagingURL is PAYMENTS_BLOB_URL, or a file:// store under the data dir.
// That store writes no metadata sidecars: they would only hold an MD5 that
// costs a second hash pass over every upload, which is hashed (SHA-256)
// already.
func (c *Config) StagingURL() (string, error) {
	if c.BlobURL != "" {
		return c.BlobURL, nil
	}
	abs, err := filepath.Abs(c.BlobDir())
	if err != nil {
		return "", fmt.Errorf("staging dir: %w", err)
	}
	return "file://" + filepath.ToSlash(abs) + "?create_dir=true&metadata=skip", nil
}

// DevKeysDir is where `starter dev` keeps development keys.
func (c *Config) DevKeysDir() string { return filepath.Join(c.DataDir, "keys") }

// Keyring loads the field-encryption keys.
func (c *Config) Keyring() (*encryption.Keyring, error) {
	return encryption.LoadKeyring(c.Keys, c.KeysFile)
}

// BlindIndex loads the blind-index key.
func (c *Config) BlindIndex() (*encryption.BlindIndex, error) {
	if c.BlindIndexKey == "" && c.BlindIndexKeyFile != "" {
		return encryption.ReadBlindIndexFile(c.BlindIndexKeyFile)
	}
	if c.BlindIndexKey == "" {
		return nil, fmt.Errorf("PAYMENTS_BLIND_INDEX_KEY is not set")
	}
	bi, err := encryption.ParseBlindIndexKey(c.BlindIndexKey)
	if err != nil {
		return nil, fmt.Errorf("PAYMENTS_BLIND_INDEX_KEY: %w", err)
	}
	return bi, nil
}

// Tokens parses PAYMENTS_API_TOKENS and adds PAYMENTS_CODEC_TOKEN, when
// set, as a codec-only credential.
func (c *Config) Tokens() (*auth.Tokens, error) {
	t, err := auth.ParseTokens(c.APITokens)
	if err != nil {
		return nil, err
	}
	if c.CodecToken != "" {
		if err := t.AddCodec(c.CodecToken); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// checkOrigin accepts an exact browser origin, scheme://host[:port] as a
// browser sends it in Origin: no wildcard, path, query or user.
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.Contains(u.Host, "*") ||
		u.String() != o {
		return fmt.Errorf("%q is not an exact origin (want scheme://host[:port], no wildcard or path)", o)
	}
	return nil
}

// ParseWebhookSecrets reads PAYMENTS_WEBHOOK_SECRETS: "gateway:secret,…".
// Errors name the entry, never the secret.
func ParseWebhookSecrets(spec string) (map[string][]byte, error) {
	out := map[string][]byte{}
	if strings.TrimSpace(spec) == "" {
		return out, nil
	}
	for i, item := range strings.Split(spec, ",") {
		gw, secret, ok := strings.Cut(strings.TrimSpace(item), ":")
		if !ok || gw == "" || secret == "" {
			return nil, fmt.Errorf("PAYMENTS_WEBHOOK_SECRETS entry %d: want gateway:secret", i+1)
		}
		if _, dup := out[gw]; dup {
			return nil, fmt.Errorf("PAYMENTS_WEBHOOK_SECRETS entry %d: gateway %q repeated", i+1, gw)
		}
		if len(secret) < 16 {
			return nil, fmt.Errorf("PAYMENTS_WEBHOOK_SECRETS entry %d (gateway %q): secret shorter than 16 characters", i+1, gw)
		}
		out[gw] = []byte(secret)
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// TLSFiles names the PEM files of a TLS connection to Temporal.
type TLSFiles struct {
	CA, Cert, Key, ServerName string
}

// Enabled reports whether any TLS setting is given.
func (t TLSFiles) Enabled() bool {
	return t.CA != "" || t.Cert != "" || t.Key != "" || t.ServerName != ""
}

// Validate checks that a client certificate comes with its key.
func (t TLSFiles) Validate() error {
	if (t.Cert == "") != (t.Key == "") {
		return fmt.Errorf("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together")
	}
	return nil
}
