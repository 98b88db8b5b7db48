package drill

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/cluster"
	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/s3server"
	"github.com/acme/payments/internal/temporalserver"
)

// Fixed credentials of the drill topology.
const (
	drillToken    = "drill-token-0123456789"
	gatewayName   = "drillpay"
	gatewaySecret = "drill-webhook-secret-0123456789"
	keysSpec      = "drill1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	blindIndexKey = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
)

// env is what the drills share: binaries built once per run, a staging
// store, a MySQL database reached through a proxy the drills can cut.
type env struct {
	dir      string
	service  cluster.Binaries
	temporal temporalserver.Binaries
	s3       *s3server.Server
	dsn      string // direct, for the checks
	db       *sqlx.DB
	proxy    *tcpProxy
	drop     func() error
}

var shared *env

func TestMain(m *testing.M) {
	if os.Getenv("PAYMENTS_DRILL") == "" {
		fmt.Println("drills skipped: run them with make drill (PAYMENTS_DRILL=1)")
		os.Exit(0)
	}
	e, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "drill setup:", err)
		os.Exit(1)
	}
	shared = e
	code := m.Run()
	e.close()
	os.Exit(code)
}

func setup() (*env, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "payments-drill-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir}
	start := time.Now()
	// One build of each per run, in a cache dir shared by later runs of
	// the same checkout's go build cache.
	binDir := filepath.Join(os.TempDir(), "payments-temporal-bin")
	if e.temporal, err = temporalserver.Build(ctx, binDir); err != nil {
		return nil, err
	}
	if e.service, err = cluster.BuildService(ctx, binDir); err != nil {
		return nil, err
	}
	fmt.Printf("drill: built the Temporal server, starter and worker in %s\n", time.Since(start).Round(time.Millisecond))
	if e.s3, err = s3server.Start("127.0.0.1:0", "staging"); err != nil {
		return nil, err
	}
	// The checks read the staging store as the workers do.
	for _, kv := range s3server.Env() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	dsn, name, drop, err := database.Scratch(dbtest.ServerDSN(), "payments_drill_")
	if err != nil {
		return nil, err
	}
	e.dsn, e.drop = dsn, drop
	if err := database.Create(ctx, dsn); err != nil {
		return nil, err
	}
	if e.db, err = database.Open(ctx, dsn); err != nil {
		return nil, err
	}
	if e.proxy, err = newTCPProxy("127.0.0.1:3306"); err != nil {
		return nil, err
	}
	fmt.Printf("drill: MySQL database %s, staging %s, logs under %s\n", name, e.s3.Endpoint(), dir)
	return e, nil
}

func (e *env) close() {
	if e.db != nil {
		e.db.Close()
	}
	if e.drop != nil {
		_ = e.drop()
	}
	if e.proxy != nil {
		e.proxy.Close()
	}
	if e.s3 != nil {
		e.s3.Close()
	}
}

// proxiedDSN is the database's DSN through the proxy.
func (e *env) proxiedDSN(t testing.TB) string {
	cfg, err := mysql.ParseDSN(e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = e.proxy.Addr()
	return cfg.FormatDSN()
}

// startCluster starts a topology with workers worker processes on fresh
// Temporal databases; it stops (and its databases go) when t ends.
func startCluster(t *testing.T, workers int, tls *temporalserver.TLS) *cluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pg := temporalserver.Postgres{Database: fmt.Sprintf("temporal_drill_%d", time.Now().UnixNano())}
	t.Cleanup(func() {
		if err := shared.temporal.DropDatabases(context.Background(), pg); err != nil {
			t.Logf("drop temporal databases: %v", err)
		}
	})
	dir := filepath.Join(shared.dir, t.Name())
	envVars := append([]string{
		"PAYMENTS_MYSQL_DSN=" + shared.proxiedDSN(t),
		"PAYMENTS_BLOB_URL=" + shared.s3.BlobURL(),
		"PAYMENTS_KEYS=" + keysSpec,
		"PAYMENTS_BLIND_INDEX_KEY=" + blindIndexKey,
		"PAYMENTS_API_TOKENS=" + drillToken + ":read+write+pii",
		"PAYMENTS_WEBHOOK_SECRETS=" + gatewayName + ":" + gatewaySecret,
		"PAYMENTS_LOG_LEVEL=warn",
		"PAYMENTS_DATA_DIR=" + dir,
	}, s3server.Env()...)
	c, err := cluster.Start(ctx, cluster.Options{
		Dir: dir, Service: shared.service, Temporal: shared.temporal, Postgres: pg,
		TemporalTLS: tls, Env: envVars, Workers: workers,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Logf("stop cluster: %v", err)
		}
	})
	clusters.Store(c, clusterInfo{pg: pg, dir: dir})
	return c
}

// clusterInfo is what startCluster chose for a cluster: its Temporal
// databases and the directory of its processes' logs.
type clusterInfo struct {
	pg  temporalserver.Postgres
	dir string
}

var clusters sync.Map // *cluster.Cluster → clusterInfo

// writeFile generates a sample file into the drill dir.
func writeFile(t testing.TB, name string, o gen.Options) (string, gen.Stats) {
	t.Helper()
	path := filepath.Join(shared.dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := gen.Write(f, o)
	if err != nil {
		t.Fatal(err)
	}
	return path, st
}

// apiClient calls the topology's API with the drill token.
type apiClient struct {
	base string
	http *http.Client
}

func newAPI(c *cluster.Cluster) *apiClient {
	return &apiClient{base: c.APIURL(), http: &http.Client{Timeout: 2 * time.Minute}}
}

func (a *apiClient) do(method, path, contentType string, body io.Reader, header http.Header) (int, []byte, error) {
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+drillToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// upload posts a file's bytes to /upload and returns the import id.
func (a *apiClient) upload(t testing.TB, path string, query string) (string, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	code, body, err := a.do("POST", "/upload"+query, "text/csv", f, nil)
	if err != nil {
		t.Fatalf("upload %s: %v", path, err)
	}
	if code != http.StatusAccepted && code != http.StatusOK {
		t.Fatalf("upload %s: %d %s", path, code, body)
	}
	var r struct {
		ImportID string `json:"import_id"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	return r.ImportID, code
}

// callback sends a signed gateway result.
func (a *apiClient) callback(paymentID, status, amount, ref string) (int, error) {
	body, _ := json.Marshal(map[string]string{"payment_id": paymentID, "status": status, "amount": amount, "gateway_ref": ref})
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(gatewaySecret))
	mac.Write([]byte(ts + "." + string(body)))
	h := http.Header{"X-Signature": {"t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))}}
	code, _, err := a.do("POST", "/webhooks/"+gatewayName, "application/json", bytes.NewReader(body), h)
	return code, err
}

// job is an import_jobs row.
type job struct {
	State         string  `db:"state"`
	RowsRead      int64   `db:"rows_read"`
	RowsWritten   int64   `db:"rows_written"`
	RowsUnchanged int64   `db:"rows_unchanged"`
	RowsRejected  int64   `db:"rows_rejected"`
	ChunksDone    int     `db:"chunks_done"`
	ChunksTotal   int     `db:"chunks_total"`
	Error         *string `db:"error"`
}

func loadJob(id string) (job, error) {
	var j job
	err := shared.db.Get(&j, `SELECT state, rows_read, rows_written, rows_unchanged, rows_rejected,
		chunks_done, chunks_total, error FROM import_jobs WHERE import_id = ?`, id)
	return j, err
}

// awaitJob polls the job (directly in MySQL) until done says so.
func awaitJob(t testing.TB, id string, limit time.Duration, done func(job) bool) job {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		j, err := loadJob(id)
		if err == nil && done(j) {
			return j
		}
		if err == nil && j.State != "RUNNING" {
			t.Fatalf("import %s ended %s (error %v) before the drill's condition", id, j.State, deref(j.Error))
		}
		if time.Now().After(deadline) {
			t.Fatalf("import %s: condition not met within %s (last %+v, err %v)", id, limit, j, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func completed(j job) bool { return j.State == "COMPLETED" }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// tcpProxy forwards to MySQL and can cut every connection, as a network
// partition would.
type tcpProxy struct {
	ln       net.Listener
	target   string
	mu       sync.Mutex
	cut      bool
	conns    map[net.Conn]struct{}
	accepted atomic.Int64
}

func newTCPProxy(target string) (*tcpProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	return p, nil
}

func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		go p.forward(c)
	}
}

func (p *tcpProxy) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.accepted.Add(1)
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// Cut drops every open connection and refuses new ones until Restore.
func (p *tcpProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Restore lets connections through again.
func (p *tcpProxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// Open is the number of client connections open through the proxy.
func (p *tcpProxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) / 2
}

func (p *tcpProxy) Close() { p.ln.Close(); p.Cut() }
