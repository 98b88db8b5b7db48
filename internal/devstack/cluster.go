package devstack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/acme/payments/internal/cluster"
	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/s3server"
	"github.com/acme/payments/internal/temporalserver"
)

// ClusterDatabase is the PostgreSQL database `starter cluster` keeps
// Temporal's state in (and its _visibility sibling); it survives restarts.
const ClusterDatabase = "payments_temporal"

// Cluster runs the scale-out topology on this machine until ctx ends: the
// Temporal server built from the pinned module as its own process on
// PostgreSQL, its Web UI decoding through the API's /codec, an S3-compatible
// staging store, workers worker processes and one `starter serve`. The
// database is migrated and the search attributes registered first.
func Cluster(ctx context.Context, cfg config.Config, pg temporalserver.Postgres, workers int, logger *slog.Logger, out io.Writer) error {
	if err := checkPorts(cfg, "the Temporal server's frontend (TEMPORAL_ADDRESS)"); err != nil {
		return err
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	cfg.DataDir = dataDir
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
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
	dir := filepath.Join(dataDir, "cluster")
	fmt.Fprintln(out, "Building the Temporal server, starter and worker…")
	tbins, err := temporalserver.Build(ctx, filepath.Join(dir, "bin"))
	if err != nil {
		return err
	}
	sbins, err := cluster.BuildService(ctx, filepath.Join(dir, "bin"))
	if err != nil {
		return err
	}
	s3, err := s3server.Start("127.0.0.1:0", "staging")
	if err != nil {
		return err
	}
	defer s3.Close()

	env := append([]string{
		"PAYMENTS_MYSQL_DSN=" + cfg.MySQLDSN,
		"PAYMENTS_DATA_DIR=" + dataDir,
		"PAYMENTS_BLOB_URL=" + s3.BlobURL(),
		"PAYMENTS_API_TOKENS=" + cfg.APITokens,
		// The UI proxy's codec-only credential, for the API's /codec.
		"PAYMENTS_CODEC_TOKEN=" + cfg.CodecToken,
		"PAYMENTS_WEBHOOK_SECRETS=" + cfg.WebhookSecrets,
		"PAYMENTS_LOG_LEVEL=" + cfg.LogLevel,
		"PAYMENTS_UI_ADDR=" + cfg.UIAddr,
		"PAYMENTS_CODEC_CORS_ORIGINS=" + strings.Join(cfg.CodecCORSOrigins, ","),
	}, s3server.Env()...)
	// Configured keys go to the processes; development keys they find
	// under the data dir themselves.
	if cfg.BlindIndexKeyFile == "" {
		env = append(env, "PAYMENTS_KEYS="+cfg.Keys, "PAYMENTS_KEYS_FILE="+cfg.KeysFile, "PAYMENTS_BLIND_INDEX_KEY="+cfg.BlindIndexKey)
	}
	pg.Database = ClusterDatabase
	c, err := cluster.Start(ctx, cluster.Options{
		Dir: dir, Service: sbins, Temporal: tbins, Postgres: pg, Env: env, Workers: workers,
		HTTPAddr: cfg.HTTPAddr, FrontendAddress: cfg.TemporalAddress,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := c.Stop(); err != nil {
			logger.Warn("cluster stop", "error", err.Error())
		}
	}()
	stopUI, login, err := startUI(ctx, cfg, c.Temporal.Address(), c.APIURL()+"/codec")
	if err != nil {
		return err
	}
	defer stopUI()
	fmt.Fprintf(out, "Temporal server: %s (PostgreSQL databases %s, %s; log %s)\n",
		c.Temporal.Address(), pg.Database, pg.VisibilityDatabase(), c.Temporal.LogFile())
	for _, w := range c.Workers() {
		fmt.Fprintf(out, "%s:        pid %d, log %s\n", w.Name, w.Pid(), w.LogFile)
	}
	// The CLI stages files itself (starter import): it must use the
	// cluster's store and server, not its file:// default.
	envFile := filepath.Join(dir, "cli.env")
	cliEnv := append([]string{"PAYMENTS_BLOB_URL=" + s3.BlobURL(), "TEMPORAL_ADDRESS=" + c.Temporal.Address(),
		"PAYMENTS_HTTP_ADDR=" + cfg.HTTPAddr, "PAYMENTS_DATA_DIR=" + dataDir}, s3server.Env()...)
	var lines strings.Builder
	for _, kv := range cliEnv {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&lines, "%s='%s'\n", k, v)
	}
	if err := os.WriteFile(envFile, []byte(lines.String()), 0o600); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	fmt.Fprintf(out, "HTTP API:        %s (pid %d, log %s)\nStaging (S3):    %s, bucket staging (in memory)\n%s",
		c.APIURL(), c.API().Pid(), c.API().LogFile, s3.Endpoint(), uiAnnouncement(login))
	fmt.Fprintf(out, "For the CLI (starter import, export, pay…) in another shell: set -a; . %s; set +a\nCtrl-C stops everything.\n", envFile)
	<-ctx.Done()
	fmt.Fprintln(out, "Stopping the cluster…")
	return nil
}
