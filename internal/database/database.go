// Package database opens the service's MySQL connection pool and applies the
// embedded schema migrations.
package database

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"

	"github.com/acme/payments/migrations"
)

// DefaultDSN is the development database: the local server, database payments.
const DefaultDSN = "root@tcp(127.0.0.1:3306)/payments"

// Config normalises a DSN for this service: UTC DATETIMEs parsed into
// time.Time, utf8mb4, and LOAD DATA LOCAL INFILE from registered readers.
func Config(dsn string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse MySQL DSN: %w", redactDSNError(err))
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	if _, ok := cfg.Params["time_zone"]; !ok {
		cfg.Params["time_zone"] = "'+00:00'"
	}
	cfg.Collation = "utf8mb4_bin"
	cfg.AllowNativePasswords = true
	cfg.InterpolateParams = true
	cfg.MultiStatements = false
	return cfg, nil
}

// redactDSNError keeps DSN parse errors from echoing the password.
func redactDSNError(err error) error {
	return fmt.Errorf("invalid DSN (%T)", err)
}

// Open connects to MySQL and checks that the server answers. The database
// must exist: Create makes it, on the path that migrates.
func Open(ctx context.Context, dsn string) (*sqlx.DB, error) {
	return open(ctx, dsn, true, 32)
}

// OpenText is Open for bulk readers (exports): a small pool whose DATETIME
// values arrive as the server's text rather than time.Time, for readers
// that write them out as text anyway. Parsing them in the driver and
// formatting them back cost more than the rest of a row, and asking the
// server to CAST them costs it as much.
func OpenText(ctx context.Context, dsn string) (*sqlx.DB, error) {
	return open(ctx, dsn, false, 8)
}

func open(ctx context.Context, dsn string, parseTime bool, conns int) (*sqlx.DB, error) {
	cfg, err := Config(dsn)
	if err != nil {
		return nil, err
	}
	cfg.ParseTime = parseTime
	db, err := sqlx.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("open MySQL: %w", err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(30 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to MySQL at %s: %w", cfg.Addr, err)
	}
	return db, nil
}

// Create creates the database named in the DSN when it is missing. Only the
// migrating paths call it: the service and worker need no CREATE privilege.
func Create(ctx context.Context, dsn string) error {
	cfg, err := Config(dsn)
	if err != nil {
		return err
	}
	if cfg.DBName == "" {
		return nil
	}
	server := cfg.Clone()
	server.DBName = ""
	db, err := sql.Open("mysql", server.FormatDSN())
	if err != nil {
		return fmt.Errorf("open MySQL: %w", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	q := "CREATE DATABASE IF NOT EXISTS " + QuoteIdent(cfg.DBName) + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
	if _, err := db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("create database %s at %s: %w", cfg.DBName, cfg.Addr, err)
	}
	return nil
}

// Scratch names a new database on the server of serverDSN (whose own
// database name is ignored): prefix plus random hex. It returns the DSN of
// that database, which Create makes, and a function that drops it. Tests
// and benchmarks use one each, so runs never share data.
func Scratch(serverDSN, prefix string) (dsn, name string, drop func() error, err error) {
	cfg, err := Config(serverDSN)
	if err != nil {
		return "", "", nil, err
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", nil, err
	}
	cfg.DBName = prefix + hex.EncodeToString(b[:])
	drop = func() error {
		admin := cfg.Clone()
		admin.DBName = ""
		db, err := sql.Open("mysql", admin.FormatDSN())
		if err != nil {
			return err
		}
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + QuoteIdent(cfg.DBName)); err != nil {
			return fmt.Errorf("drop database %s: %w", cfg.DBName, err)
		}
		return nil
	}
	return cfg.FormatDSN(), cfg.DBName, drop, nil
}

// IsDuplicateKey reports whether err is MySQL's duplicate-key error (1062),
// the answer to an INSERT whose key is taken.
func IsDuplicateKey(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1062
}

// NullBytes is b as a statement argument: NULL for nil, as the service
// stores absent encrypted values.
func NullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// QuoteIdent quotes a MySQL identifier.
func QuoteIdent(name string) string {
	out := []byte{'`'}
	for i := 0; i < len(name); i++ {
		if name[i] == '`' {
			out = append(out, '`')
		}
		out = append(out, name[i])
	}
	return string(append(out, '`'))
}

// Migrate applies every pending migration from the embedded schema and
// returns the schema version reached.
func Migrate(ctx context.Context, db *sqlx.DB, logger *slog.Logger) (int64, error) {
	provider, err := goose.NewProvider(goose.DialectMySQL, db.DB, migrations.FS,
		goose.WithGoMigrations(migrations.Go()...), goose.WithLogger(gooseLogger{logger}))
	if err != nil {
		return 0, fmt.Errorf("load migrations: %w", err)
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return 0, fmt.Errorf("apply migrations: %w", err)
	}
	for _, r := range results {
		if logger != nil {
			logger.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration.Round(time.Microsecond).String())
		}
	}
	version, err := provider.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return version, nil
}

// gooseLogger routes goose's printf-style logging to slog (or nowhere).
type gooseLogger struct{ l *slog.Logger }

func (g gooseLogger) Printf(format string, v ...any) {
	if g.l != nil {
		g.l.Debug(fmt.Sprintf(format, v...))
	}
}

func (g gooseLogger) Fatalf(format string, v ...any) {
	if g.l != nil {
		g.l.Error(fmt.Sprintf(format, v...))
	}
}
