// Package bench measures the import end to end (HTTP upload → job
// COMPLETED, on the embedded stack) against its floor, in one run on one
// machine: LOAD DATA LOCAL INFILE of the rows the import stores, in their
// stored shape, into empty copies of the tables (floor.go); and, for
// continuity, against a plain LOAD DATA of the same file into a table of
// text columns. RunDownload measures GET /download and the export
// workflow against the mariadb client's dump of a plaintext copy of the
// table. It prints figures; nothing here asserts a timing.
package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/api"
	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/devserver"
	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ingest"
	"github.com/acme/payments/internal/service"
)

// Options configures a run.
type Options struct {
	ServerDSN     string // MySQL server (its database name is ignored); a database of its own is created and dropped
	Dir           string // scratch directory for files and Temporal state
	Orders        int
	Payments      int
	PaymentOrders int
	ChunkRows     int
	Parallelism   int
	// ExportChunkRows and ExportParallelism configure exports; zero means
	// the config defaults.
	ExportChunkRows   int
	ExportParallelism int
	// RSSBytes, when > 0, only imports one orders file of about this size
	// and reports peak RSS.
	RSSBytes int64
	// RSSOrders (RunDownload) is the row count the orders table grows to
	// for the second download's peak RSS; 0 skips it.
	RSSOrders int
	// ServeBinary (RunDownload) is the starter program, run as `serve` in
	// a process of its own to serve the downloads.
	ServeBinary string
	// WorkerBinary, when set, runs the worker as that program in a process
	// of its own (as in production, where Temporal and the API run
	// elsewhere) instead of inside this one, so its peak RSS is its own.
	WorkerBinary string
	Out          io.Writer
	Logger       *slog.Logger
}

// Stack is the embedded service under measurement.
type Stack struct {
	Config    config.Config
	Deps      *service.Deps
	BaseURL   string
	Token     string // scopes read, write and pii
	DBName    string
	worker    *workerProcess // when the worker runs as a program of its own
	serverPID string         // a local MySQL server's, for its CPU time; "" if none
	stop      []func()
}

// Close stops everything and drops the database.
func (s *Stack) Close() {
	for i := len(s.stop) - 1; i >= 0; i-- {
		s.stop[i]()
	}
}

// StartStack runs Temporal, the worker and the HTTP API in this process over
// a fresh database.
func StartStack(ctx context.Context, o Options) (*Stack, error) {
	s := &Stack{serverPID: findServer()}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	ports, err := devserver.FreePorts(2)
	if err != nil {
		return nil, err
	}
	temporalAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	tsrv, err := devserver.StartTemporal(ctx, devserver.TemporalOptions{
		DatabaseFile: filepath.Join(o.Dir, "temporal.db"), FrontendAddress: temporalAddr, Namespace: "default",
		DynamicConfig: devserver.DefaultDynamicConfig(), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, err
	}
	s.stop = append(s.stop, func() { _ = tsrv.Stop() })

	dsn, dbName, drop, err := database.Scratch(o.ServerDSN, "payments_bench_")
	if err != nil {
		return nil, err
	}
	s.DBName = dbName
	s.stop = append(s.stop, func() { _ = drop() })
	key := make([]byte, 32)
	bidx := make([]byte, 32)
	_, _ = rand.Read(key)
	_, _ = rand.Read(bidx)
	tokenBytes := make([]byte, 16)
	_, _ = rand.Read(tokenBytes)
	s.Token = "bench_" + hex.EncodeToString(tokenBytes)
	c := config.Config{
		MySQLDSN: dsn, TemporalAddress: temporalAddr, TemporalNamespace: "default",
		HTTPAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]), DataDir: o.Dir,
		Keys: "bench:" + base64.StdEncoding.EncodeToString(key), BlindIndexKey: base64.StdEncoding.EncodeToString(bidx),
		APITokens: s.Token + ":read+write+pii", MaxUploadBytes: 64 << 30,
		WebhookSecrets:  benchGateway + ":" + benchGatewaySecret,
		ImportChunkRows: o.ChunkRows, ImportParallelism: o.Parallelism, LogLevel: "warn",
		ExportChunkRows: config.DefaultExportChunkRows, ExportParallelism: config.DefaultExportParallelism,
	}
	if o.ExportChunkRows > 0 {
		c.ExportChunkRows = o.ExportChunkRows
	}
	if o.ExportParallelism > 0 {
		c.ExportParallelism = o.ExportParallelism
	}
	s.Config = c
	d, err := service.Open(ctx, c, o.Logger, true)
	if err != nil {
		return nil, err
	}
	s.Deps = d
	s.stop = append(s.stop, d.Close)
	if o.WorkerBinary == "" {
		w := service.NewWorker(d)
		if err := w.Start(); err != nil {
			return nil, err
		}
		s.stop = append(s.stop, w.Stop)
	} else {
		w, err := startWorker(o.WorkerBinary, c)
		if err != nil {
			return nil, err
		}
		s.worker = w
		s.stop = append(s.stop, w.stop)
	}
	srv, err := service.APIServer(d)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return nil, err
	}
	hs := api.NewHTTPServer(c.HTTPAddr, srv.Handler())
	go func() { _ = hs.Serve(ln) }()
	s.stop = append(s.stop, func() { _ = hs.Close() })
	s.BaseURL = "http://" + c.HTTPAddr
	ok = true
	return s, nil
}

// Import uploads path over HTTP and waits for the job to end.
func (s *Stack) Import(ctx context.Context, path, typ string) (importer.Job, time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return importer.Job{}, 0, err
	}
	defer f.Close()
	start := time.Now()
	url := s.BaseURL + "/upload?max_rejects=1000000"
	if typ != "" {
		url += "&type=" + typ
	}
	req, err := http.NewRequestWithContext(ctx, "POST", url, bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return importer.Job{}, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return importer.Job{}, 0, err
	}
	var up struct {
		ImportID string `json:"import_id"`
	}
	err = json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusAccepted {
		return importer.Job{}, 0, fmt.Errorf("upload %s: status %d: %v", path, resp.StatusCode, err)
	}
	// A separate worker that exits ends the wait with its status.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.worker != nil {
		go func() {
			select {
			case <-s.worker.exited:
				cancel()
			case <-wctx.Done():
			}
		}()
	}
	job, err := ingest.Follow(wctx, s.Deps.DB, s.Deps.Temporal, up.ImportID, 20*time.Millisecond, nil)
	if err != nil {
		if s.worker != nil && ctx.Err() == nil && wctx.Err() != nil {
			return job, 0, fmt.Errorf("import %s: the worker process exited: %v", up.ImportID, s.worker.err)
		}
		return job, 0, err
	}
	return job, time.Since(start), nil
}

// Baseline loads the CSV file path with LOAD DATA LOCAL INFILE into a plain
// table of text columns (no keys, no encryption, no validation) and returns
// the time.
func Baseline(ctx context.Context, db *sqlx.DB, path, table string, columns []string) (time.Duration, error) {
	cols := make([]string, len(columns))
	for i, c := range columns {
		cols[i] = database.QuoteIdent(c) + " VARCHAR(255)"
	}
	if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
		return 0, err
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+" ("+strings.Join(cols, ", ")+") ENGINE=InnoDB"); err != nil {
		return 0, err
	}
	mysql.RegisterLocalFile(path)
	defer mysql.DeregisterLocalFile(path)
	q := "LOAD DATA LOCAL INFILE '" + path + "' INTO TABLE " + table +
		" FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n' IGNORE 1 LINES"
	start := time.Now()
	if _, err := db.ExecContext(ctx, q); err != nil {
		return 0, fmt.Errorf("baseline %s: %w", path, err)
	}
	return time.Since(start), nil
}

// WriteFile generates a sample file.
func WriteFile(path string, o gen.Options) (gen.Stats, error) {
	f, err := os.Create(path)
	if err != nil {
		return gen.Stats{}, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	st, err := gen.Write(w, o)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return st, err
}

// PeakRSS is this process's peak resident set size (VmHWM) in bytes.
func PeakRSS() (int64, error) { return peakRSSOf("self") }

// peakRSSOf reads VmHWM of /proc/<pid>.
func peakRSSOf(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")), "%d kB", &kb); err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%s/status", pid)
}
