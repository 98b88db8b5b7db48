package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/acme/payments/internal/devserver"
	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/importer"
)

// RunDownload measures GET /download?type=orders&format=csv of o.Orders
// imported orders with a pii token (two fields decrypted a row), served by
// `starter serve` (o.ServeBinary) in a process of its own, against the
// mariadb client's dump of the same columns from a plaintext copy of the
// table; then the export workflow of the same file; then the serve
// process's peak RSS after downloading o.Orders rows and, from a fresh
// process, o.RSSOrders rows. It prints figures and asserts no timing.
func RunDownload(ctx context.Context, o Options) error {
	if o.ServeBinary == "" {
		return errors.New("download bench: no serve program given")
	}
	out := o.Out
	csvPath := filepath.Join(o.Dir, "orders.csv")
	fmt.Fprintf(out, "generating %d orders in %s\n", o.Orders, o.Dir)
	if _, err := WriteFile(csvPath, gen.Options{Kind: "orders", Count: o.Orders, Seed: 1}); err != nil {
		return err
	}
	s, err := StartStack(ctx, o)
	if err != nil {
		return err
	}
	defer s.Close()
	where := "in this process"
	if s.worker != nil {
		where = "process " + o.WorkerBinary
	}
	fmt.Fprintf(out, "stack up: database %s, worker %s, export chunk rows %d, parallelism %d\n",
		s.DBName, where, s.Config.ExportChunkRows, s.Config.ExportParallelism)
	if err := s.importOrders(ctx, out, csvPath, o.Orders); err != nil {
		return err
	}
	loaded, err := s.plainCopy(ctx, csvPath, plainOrders, o.Orders)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "plain copy %s: %d rows (LOAD DATA LOCAL INFILE %.2fs)\n", plainOrders, o.Orders, loaded.Seconds())

	dump, err := s.dump(ctx, plainOrders, filepath.Join(o.Dir, "dump.tsv"))
	if err != nil {
		return err
	}
	if err := checkRows("dump", dump, o.Orders); err != nil {
		return err
	}
	srv, err := s.startServe(ctx, o.ServeBinary)
	if err != nil {
		return err
	}
	defer func() { srv.stop() }()
	fmt.Fprintf(out, "serve process: %s serve (pid %s) at %s\n\n", o.ServeBinary, srv.proc.pid(), srv.url)
	downloadPath := filepath.Join(o.Dir, "download.csv")
	dl, err := s.download(ctx, srv, downloadPath, o.Orders)
	if err != nil {
		return err
	}
	readyRSS := srv.readyRSS
	rss, err := peakRSSOf(srv.proc.pid())
	if err != nil {
		return err
	}
	printTransfers(out, dump, dl)
	if err := s.measureExport(ctx, out, srv, downloadPath, dump, o.Orders); err != nil {
		return err
	}
	if o.RSSOrders <= 0 {
		fmt.Fprintf(out, "\npeak RSS of the serve process (VmHWM):\n")
		printRSS(out, o.Orders, readyRSS, rss, dl)
		return nil
	}
	if o.RSSOrders <= o.Orders {
		return fmt.Errorf("download bench: --rss-orders %d must be above --orders %d (or 0)", o.RSSOrders, o.Orders)
	}
	big, bigRSS, err := s.growAndDownload(ctx, o, &srv)
	if err != nil {
		return err
	}
	bigReady := srv.readyRSS
	fmt.Fprintf(out, "\npeak RSS of the serve process (VmHWM; a fresh process for each size):\n")
	printRSS(out, o.Orders, readyRSS, rss, dl)
	printRSS(out, o.RSSOrders, bigReady, bigRSS, big)
	return nil
}

// importOrders imports the orders file at path through the stack and
// checks every one of its want rows was written.
func (s *Stack) importOrders(ctx context.Context, out io.Writer, path string, want int) error {
	job, took, err := s.Import(ctx, path, "")
	if err != nil {
		return err
	}
	if job.State != importer.StateCompleted || job.RowsWritten != int64(want) {
		return fmt.Errorf("import %s: state %s, %d rows written of %d (rejected %d)", filepath.Base(path), job.State, job.RowsWritten, want, job.RowsRejected)
	}
	fmt.Fprintf(out, "imported %s: %d rows in %.1fs (%.0f rows/s)\n", filepath.Base(path), job.RowsWritten, took.Seconds(), float64(job.RowsWritten)/took.Seconds())
	return nil
}

// growAndDownload imports orders up to o.RSSOrders rows, restarts the
// serve process (so its VmHWM starts afresh) and downloads them all again.
func (s *Stack) growAndDownload(ctx context.Context, o Options, srv **server) (transfer, int64, error) {
	more := filepath.Join(o.Dir, "more-orders.csv")
	if _, err := WriteFile(more, gen.Options{Kind: "orders", Count: o.RSSOrders - o.Orders, Seed: 2, OrderIDPrefix: "ORE-"}); err != nil {
		return transfer{}, 0, err
	}
	fmt.Fprintf(o.Out, "\ngrowing orders to %d rows\n", o.RSSOrders)
	if err := s.importOrders(ctx, o.Out, more, o.RSSOrders-o.Orders); err != nil {
		return transfer{}, 0, err
	}
	_ = os.Remove(more)
	for _, name := range []string{"dump.tsv", "download.csv", "export.csv"} {
		_ = os.Remove(filepath.Join(o.Dir, name))
	}
	(*srv).stop()
	next, err := s.startServe(ctx, o.ServeBinary)
	if err != nil {
		return transfer{}, 0, err
	}
	*srv = next
	big, err := s.download(ctx, next, filepath.Join(o.Dir, "download-big.csv"), o.RSSOrders)
	if err != nil {
		return transfer{}, 0, err
	}
	rss, err := peakRSSOf(next.proc.pid())
	return big, rss, err
}

// printRSS prints one line of the serve process's peak RSS: when it was
// ready, and after downloading rows rows.
func printRSS(out io.Writer, rows int, ready, after int64, dl transfer) {
	fmt.Fprintf(out, "%9d rows   %5d MiB after the download (%d MiB when ready)   download %.2fs, %.0f rows/s\n",
		rows, after>>20, ready>>20, dl.took.Seconds(), float64(dl.rows)/dl.took.Seconds())
}

// checkRows fails when a transfer's file does not hold want data rows.
func checkRows(name string, t transfer, want int) error {
	if t.rows != int64(want) {
		return fmt.Errorf("%s: %d data rows in the file, want %d", name, t.rows, want)
	}
	return nil
}

// printTransfers prints the dump's and the download's lines and their CPU.
func printTransfers(out io.Writer, dump, dl transfer) {
	fmt.Fprintf(out, "%-24s %9s %10s %11s %9s %8s\n", "read of all orders", "rows", "seconds", "rows/s", "MiB", "ratio")
	fmt.Fprintf(out, "%-24s %9d %9.2fs %11.0f %9.1f\n", "mariadb --batch --raw", dump.rows, dump.took.Seconds(),
		float64(dump.rows)/dump.took.Seconds(), float64(dump.bytes)/(1<<20))
	fmt.Fprintf(out, "%-24s %9d %9.2fs %11.0f %9.1f %7.2fx\n", "GET /download csv (pii)", dl.rows, dl.took.Seconds(),
		float64(dl.rows)/dl.took.Seconds(), float64(dl.bytes)/(1<<20), dl.took.Seconds()/dump.took.Seconds())
	fmt.Fprintf(out, "%-24s cpu seconds: dump client %.1f + mysql %s; download serve %.1f + mysql %s + client %.1f (this process, stack idle)\n",
		"", dump.client.Seconds(), cpuText(dump.mysql, dump.mysqlSeen), dl.serve.Seconds(), cpuText(dl.mysql, dl.mysqlSeen), dl.client.Seconds())
}

// cpuText is CPU seconds, or n/a when the process was not seen.
func cpuText(d time.Duration, seen bool) string {
	if !seen {
		return "n/a"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64)
}

// server is `starter serve` running as a process of its own against the
// stack.
type server struct {
	proc *workerProcess
	url  string
	http *http.Client
	// readyRSS is the process's peak RSS when it first answered /readyz.
	readyRSS int64
}

// startServe runs bin as `serve` on a free port, configured through the
// environment like the worker plus the API's address and tokens, and
// waits until its /readyz answers 200.
func (s *Stack) startServe(ctx context.Context, bin string) (*server, error) {
	ports, err := devserver.FreePorts(1)
	if err != nil {
		return nil, err
	}
	env, err := serviceEnv(s.Config)
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	env = append(env, "PAYMENTS_HTTP_ADDR="+addr, "PAYMENTS_API_TOKENS="+s.Config.APITokens,
		"PAYMENTS_WEBHOOK_SECRETS="+s.Config.WebhookSecrets,
		"PAYMENTS_MAX_UPLOAD_BYTES="+strconv.FormatInt(s.Config.MaxUploadBytes, 10))
	p, err := startProgram("serve", bin, []string{"serve"}, env)
	if err != nil {
		return nil, err
	}
	// No transparent gzip: the download is measured as plain bytes.
	srv := &server{proc: p, url: "http://" + addr, http: &http.Client{Transport: &http.Transport{DisableCompression: true}}}
	deadline := time.Now().Add(time.Minute)
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", srv.url+"/readyz", nil)
		if err != nil {
			srv.stop()
			return nil, err
		}
		if resp, err := srv.http.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				srv.readyRSS, err = peakRSSOf(p.pid())
				return srv, err
			}
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("serve process %s exited before it was ready: %v", bin, p.err)
		case <-ctx.Done():
			srv.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			srv.stop()
			return nil, fmt.Errorf("serve process %s: /readyz not 200 within a minute", bin)
		}
	}
}

func (srv *server) stop() { srv.proc.stop() }

// get sends GET path with the stack's token and streams a 200 answer into
// the file out; any other status is an error with its body.
func (s *Stack) get(ctx context.Context, srv *server, path, out string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", srv.url+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := srv.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET %s: status %d: %s", path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	// A broken transfer (the server aborting mid-stream) is an error here.
	_, err = io.CopyBuffer(struct{ io.Writer }{f}, resp.Body, make([]byte, 1<<20))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// download measures GET /download?type=orders&format=csv into the file
// out and checks it holds want rows after its header.
func (s *Stack) download(ctx context.Context, srv *server, out string, want int) (transfer, error) {
	self0, serve0 := selfCPU(), srv.cpu()
	m0, seen0 := s.mysqlCPU()
	start := time.Now()
	if err := s.get(ctx, srv, "/download?type=orders&format=csv", out); err != nil {
		return transfer{}, err
	}
	t := transfer{took: time.Since(start), client: selfCPU() - self0, serve: srv.cpu() - serve0}
	m1, seen1 := s.mysqlCPU()
	t.mysql, t.mysqlSeen = m1-m0, seen0 && seen1
	if err := t.count(out); err != nil {
		return t, err
	}
	return t, checkRows("download", t, want)
}

// cpu is the serve process's CPU time so far.
func (srv *server) cpu() time.Duration {
	d, _ := procCPU(srv.proc.pid())
	return d
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
