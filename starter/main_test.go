package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/devserver"
	"github.com/acme/payments/internal/testlog"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

// buildStarter compiles this command once per test binary run; the
// binary is removed by TestMain.
func buildStarter(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "starter-test-"); buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "starter")
		cmd := exec.Command("go", "build", "-o", builtBin, ".")
		cmd.Stderr = os.Stderr
		buildErr = cmd.Run()
	})
	if buildErr != nil {
		t.Fatalf("build starter: %v", buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

type devProcess struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan error
}

func (p *devProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

func startDev(t *testing.T, bin string, env []string) *devProcess {
	t.Helper()
	p := &devProcess{cmd: exec.Command(bin, "dev"), done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	outPipe, _ := p.cmd.StdoutPipe()
	errPipe, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	copyTo := func(r io.Reader, b *bytes.Buffer) {
		defer wg.Done()
		s := bufio.NewScanner(r)
		s.Buffer(make([]byte, 1<<20), 1<<20)
		for s.Scan() {
			p.mu.Lock()
			b.WriteString(s.Text() + "\n")
			p.mu.Unlock()
		}
	}
	wg.Add(2)
	go copyTo(outPipe, &p.stdout)
	go copyTo(errPipe, &p.stderr)
	go func() { wg.Wait(); p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("starter dev stdout:\n%s\nstderr (tail):\n%s", p.output(), tail(p.stderr.String(), 4000))
		}
	})
	return p
}

func (p *devProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("starter dev exited with %v after SIGTERM", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("starter dev did not stop within 60s of SIGTERM")
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func waitReady(t *testing.T, p *devProcess, url string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			t.Fatalf("starter dev exited early: %v", err)
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s did not answer 200 within 90s", url)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var tokenLine = regexp.MustCompile(`Development API token \(read\+write\+pii\): (\S+)`)

var loginLine = regexp.MustCompile(`Temporal Web UI: (http://\S+/login\?nonce=[0-9a-f]{64})\n`)

// uiLogin checks that the Web UI at uiAddr lets nothing through without a
// session, logs in with the one-time link p printed, checks the UI is
// served and configured with the codec and that the link is then spent,
// and returns the link. No answer sets a cookie that holds the development
// API token.
func uiLogin(t *testing.T, p *devProcess, uiAddr string) string {
	t.Helper()
	m := tokenLine.FindStringSubmatch(p.output())
	if m == nil {
		t.Fatalf("no development token printed:\n%s", p.output())
	}
	token := m[1]
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	fetch := func(url string) (*http.Response, string) {
		resp, err := browser.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, sc := range resp.Header.Values("Set-Cookie") {
			if strings.Contains(sc, token) {
				t.Fatalf("GET %s set a cookie with the API token", url)
			}
		}
		return resp, string(b)
	}
	if resp, body := fetch("http://" + uiAddr + "/"); resp.StatusCode != 401 || len(resp.Cookies()) != 0 || !strings.Contains(body, "login link") {
		t.Fatalf("UI page without logging in: %d %v %.200s", resp.StatusCode, resp.Cookies(), body)
	}
	lm := loginLine.FindStringSubmatch(p.output())
	if lm == nil || !strings.Contains(lm[1], "//"+uiAddr+"/") {
		t.Fatalf("no login link for %s printed:\n%s", uiAddr, p.output())
	}
	if strings.Contains(p.stderr.String(), strings.TrimPrefix(lm[1], "http://"+uiAddr+"/login?nonce=")) {
		t.Fatal("the login nonce appears in the logs")
	}
	if resp, _ := fetch(lm[1]); resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("login: %d %v", resp.StatusCode, resp.Cookies())
	}
	if resp, body := fetch("http://" + uiAddr + "/"); resp.StatusCode != 200 || !strings.Contains(body, "<html") {
		t.Fatalf("UI page: %d %.200s", resp.StatusCode, body)
	}
	if resp, body := fetch("http://" + uiAddr + "/api/v1/settings"); resp.StatusCode != 200 || !strings.Contains(body, `"Endpoint":"/codec"`) {
		t.Fatalf("UI is not configured with the codec: %d %.300s", resp.StatusCode, body)
	}
	if code, _ := get(t, lm[1]); code != http.StatusForbidden {
		t.Fatalf("the login link worked twice: %d", code)
	}
	return lm[1]
}

// starter dev, started as a process on free ports, answers /readyz, serves
// the UI, and after SIGTERM and a restart still has its Temporal state, keys
// and token.
func TestDevStartsServesUIAndSurvivesRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	bin := buildStarter(t)
	ports, err := devserver.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	temporalAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	httpAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	uiAddr := fmt.Sprintf("127.0.0.1:%d", ports[2])
	dataDir := t.TempDir()
	env := []string{
		"PAYMENTS_DATA_DIR=" + dataDir,
		"PAYMENTS_MYSQL_DSN=" + dbtest.DSN(t),
		"TEMPORAL_ADDRESS=" + temporalAddr,
		"PAYMENTS_HTTP_ADDR=" + httpAddr,
		"PAYMENTS_UI_ADDR=" + uiAddr,
		"PAYMENTS_KEYS=", "PAYMENTS_KEYS_FILE=", "PAYMENTS_BLIND_INDEX_KEY=", "PAYMENTS_API_TOKENS=",
	}

	p := startDev(t, bin, env)
	waitReady(t, p, "http://"+httpAddr+"/readyz")
	login := uiLogin(t, p, uiAddr)
	if code, body := get(t, "http://"+httpAddr+"/metrics"); code != 200 || !strings.Contains(body, "temporal_") {
		t.Fatalf("metrics lack the SDK's: %d", code)
	}
	m := tokenLine.FindStringSubmatch(p.output())
	if m == nil {
		t.Fatalf("no development token printed:\n%s", p.output())
	}
	token := m[1]
	if !strings.Contains(p.output(), "Created development encryption keys") {
		t.Fatalf("first start did not announce the keys:\n%s", p.output())
	}
	for _, f := range []string{"keys/keys.txt", "keys/blind-index.key", "dev-token"} {
		fi, err := os.Stat(filepath.Join(dataDir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, err, fi)
		}
	}
	if strings.Contains(p.stderr.String(), token) {
		t.Fatal("the token appears in the logs")
	}
	codecCall := func(tok string) int {
		req, _ := http.NewRequest("POST", "http://"+httpAddr+"/codec/encode", strings.NewReader(`{"payloads":[]}`))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := codecCall(token); c != 200 {
		t.Fatalf("codec with token: %d", c)
	}
	if c := codecCall(""); c != 401 {
		t.Fatalf("codec without token: %d", c)
	}

	// A workflow nobody completes stays open across the restart.
	ctx := context.Background()
	tc, err := client.Dial(client.Options{HostPort: temporalAddr, Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "restart-probe", TaskQueue: "restart-probe"}, "RestartProbe")
	if err != nil {
		t.Fatal(err)
	}

	p.stop(t)
	if _, err := http.Get("http://" + httpAddr + "/healthz"); err == nil {
		t.Fatal("HTTP API still answers after shutdown")
	}

	p2 := startDev(t, bin, env)
	waitReady(t, p2, "http://"+httpAddr+"/readyz")
	if !strings.Contains(p2.output(), "Using development encryption keys") || strings.Contains(p2.output(), "Created development") {
		t.Fatalf("restart did not reuse the keys:\n%s", p2.output())
	}
	if m2 := tokenLine.FindStringSubmatch(p2.output()); m2 == nil || m2[1] != token {
		t.Fatalf("restart changed the development token")
	}
	// A restart forgets the sessions and prints a fresh login link.
	if login2 := uiLogin(t, p2, uiAddr); login2 == login {
		t.Fatal("restart printed the same login link")
	}
	desc, err := tc.DescribeWorkflowExecution(ctx, "restart-probe", "")
	if err != nil {
		t.Fatalf("workflow lost across restart: %v", err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || info.GetExecution().GetRunId() != run.GetRunID() {
		t.Fatalf("after restart: status %s run %s (want RUNNING %s)", info.GetStatus(), info.GetExecution().GetRunId(), run.GetRunID())
	}
	if c := codecCall(token); c != 200 {
		t.Fatalf("codec with the same token after restart: %d", c)
	}
	p2.stop(t)
}

func TestUsageErrorsExitTwoWithOneLine(t *testing.T) {
	bin := buildStarter(t)
	for _, args := range [][]string{
		{"no-such-command"},
		{"--import-chunk-rows", "0", "migrate"},
		{"migrate", "extra-arg"},
		{"pay", "ORD-1", "--method", "CARD"},
		{"export", "--type", "orders"},
		{"--export-parallelism", "0", "export", "--type", "orders", "--format", "csv"},
	} {
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%v: exit %v, want 2", args, err)
		}
		if lines := strings.Count(strings.TrimSpace(stderr.String()), "\n"); lines != 0 || stderr.Len() == 0 {
			t.Errorf("%v: stderr not one line: %q", args, stderr.String())
		}
	}
}

func TestMigrateAgainstUnreachableDatabaseExitsOne(t *testing.T) {
	bin := buildStarter(t)
	cmd := exec.Command(bin, "migrate")
	cmd.Env = append(os.Environ(), "PAYMENTS_MYSQL_DSN=root:hunter2pw@tcp(127.0.0.1:1)/x?timeout=1s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1", err)
	}
	if strings.Contains(stderr.String(), "hunter2pw") || !strings.Contains(stderr.String(), "127.0.0.1:1") {
		t.Fatalf("stderr: %q", stderr.String())
	}
}

// The CLI against a running `starter dev`: gen writes a file, import
// --follow draws progress and exits 0 when the import completes, 1 when it
// fails; imports lists it.
func TestGenImportFollowAndImports(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	bin := buildStarter(t)
	ports, err := devserver.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	env := []string{
		"PAYMENTS_DATA_DIR=" + dataDir,
		"PAYMENTS_MYSQL_DSN=" + dbtest.DSN(t),
		fmt.Sprintf("TEMPORAL_ADDRESS=127.0.0.1:%d", ports[0]),
		fmt.Sprintf("PAYMENTS_HTTP_ADDR=127.0.0.1:%d", ports[1]),
		fmt.Sprintf("PAYMENTS_UI_ADDR=127.0.0.1:%d", ports[2]),
		"PAYMENTS_KEYS=", "PAYMENTS_KEYS_FILE=", "PAYMENTS_BLIND_INDEX_KEY=", "PAYMENTS_API_TOKENS=",
		"PAYMENTS_IMPORT_CHUNK_ROWS=50",
	}
	p := startDev(t, bin, env)
	waitReady(t, p, fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1]))

	cli := func(args ...string) (int, string, string) { return cliRun(t, env, args...) }

	file := filepath.Join(t.TempDir(), "orders.csv")
	code, _, stderr := cli("gen", "orders", "--count", "300", "--bad-rate", "0.1", "-o", file)
	if code != 0 || !strings.Contains(stderr, "wrote 300 orders rows") {
		t.Fatalf("gen: %d %s", code, stderr)
	}
	code, stdout, stderr := cli("import", file, "--follow")
	if code != 0 || !strings.Contains(stdout, `"state": "COMPLETED"`) || !strings.Contains(stderr, "rows/s") || !strings.Contains(stderr, "100%") {
		t.Fatalf("import --follow: %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	// Redirected: no escape codes, no log lines, and stdout is the job alone.
	if strings.Contains(stderr, "\x1b") || strings.Contains(stderr, `{"time"`) || !isOneJSON(stdout) {
		t.Fatalf("import --follow, redirected:\nstdout %q\nstderr %q", stdout, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.xml")
	_ = os.WriteFile(bad, []byte("<orders><order><order_id>A1"), 0o644)
	code, stdout, stderr = cli("import", bad, "--wait")
	if code != 1 || !strings.Contains(stderr, "FAILED") {
		t.Fatalf("import of a truncated file: %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if !isOneJSON(stdout) {
		t.Fatalf("import --wait: stdout is not one JSON document: %q", stdout)
	}
	var listed []map[string]any
	if code, stdout, _ = cli("imports", "--json"); code != 0 || json.Unmarshal([]byte(stdout), &listed) != nil || len(listed) != 2 {
		t.Fatalf("imports --json: %d %s", code, stdout)
	}
	code, stdout, _ = cli("imports")
	if code != 0 || strings.Count(stdout, "\n") != 3 || !strings.Contains(stdout, "COMPLETED") || !strings.Contains(stdout, "FAILED") {
		t.Fatalf("imports: %d %s", code, stdout)
	}
	if code, _, _ := cli("import"); code != 2 {
		t.Fatalf("import without a file: exit %d", code)
	}

	// order and pay on an imported order.
	code, stdout, stderr = cli("order", "ORD-00000002")
	if code != 0 || !strings.Contains(stdout, `"order_status": "PENDING"`) || !strings.Contains(stdout, "***@") {
		t.Fatalf("order: %d %s %s", code, stdout, stderr)
	}
	code, stdout, stderr = cli("pay", "ORD-00000002", "--amount", "1.00", "--method", "CARD", "--payment-id", "CLI-1", "--details", "4242 4242 4242 4242")
	if code != 0 || !strings.Contains(stdout, "payment CLI-1 for order ORD-00000002: PENDING") {
		t.Fatalf("pay: %d %s %s", code, stdout, stderr)
	}
	code, stdout, _ = cli("order", "ORD-00000002")
	if code != 0 || !strings.Contains(stdout, `"payment_details": "**** **** **** 4242"`) {
		t.Fatalf("order after pay: %d %s", code, stdout)
	}
	if code, _, stderr := cli("pay", "ORD-00000002", "--amount", "1.001", "--method", "CARD"); code != 2 || !strings.Contains(stderr, "amount") {
		t.Fatalf("pay with a bad amount: %d %s", code, stderr)
	}
	if code, _, _ := cli("order", "NO-SUCH-ORDER"); code != 1 {
		t.Fatalf("order of an unknown id: %d", code)
	}

	// export writes the file of an export workflow; the file imports again
	// unchanged.
	out := filepath.Join(t.TempDir(), "orders-export.csv")
	code, _, stderr = cli("export", "--type", "orders", "--format", "csv", "--pii", "-o", out)
	if code != 0 || !strings.Contains(stderr, "wrote ") {
		t.Fatalf("export: %d %s", code, stderr)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v %v", fi, err)
	}
	code, stdout, stderr = cli("import", out, "--wait")
	if code != 0 || !strings.Contains(stdout, `"rows_written": 0`) || !strings.Contains(stdout, `"rows_rejected": 0`) {
		t.Fatalf("import of the exported file: %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	code, stdout, _ = cli("export", "--type", "orders", "--format", "ndjson", "-o", "-")
	if code != 0 || !strings.Contains(stdout, `***@`) || strings.Count(stdout, "\n") < 200 {
		t.Fatalf("export to stdout: %d %.300s", code, stdout)
	}
	for _, args := range [][]string{{"export", "--type", "orders", "--format", "pdf"}, {"export", "--format", "csv"},
		{"export", "--type", "orders", "--format", "csv", "--from", "soon"}} {
		if code, _, stderr := cli(args...); code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
	// In a terminal it draws the import's progress bar.
	tty := exec.Command("script", "-qec", bin+" export --type payments --format json -o /dev/null", "/dev/null")
	tty.Env = append(os.Environ(), env...)
	drawn, err := tty.CombinedOutput()
	if err != nil || !strings.Contains(string(drawn), "rows/s") || !strings.Contains(string(drawn), "COMPLETED") {
		t.Errorf("export in a terminal: %v\n%s", err, drawn)
	}

	// rejects --json is the CSV report as one JSON array.
	var rejected []struct {
		Line, Record  int64
		Code, Message string
	}
	var completed map[string]any
	for _, j := range listed {
		if j["state"] == "COMPLETED" {
			completed = j
		}
	}
	code, stdout, stderr = cli("rejects", completed["import_id"].(string), "--json")
	if code != 0 || json.Unmarshal([]byte(stdout), &rejected) != nil || len(rejected) == 0 ||
		float64(len(rejected)) != completed["rows_rejected"] || rejected[0].Code == "" || rejected[0].Line < 2 {
		t.Fatalf("rejects --json: %d %.300s %s", code, stdout, stderr)
	}

	// Ctrl-C while following stops the watching, not the import: one line
	// that says so, exit 0, and the import goes on to COMPLETED.
	big := filepath.Join(t.TempDir(), "big.csv")
	if code, _, stderr := cli("gen", "orders", "--count", "20000", "--seed", "7", "-o", big); code != 0 {
		t.Fatalf("gen: %s", stderr)
	}
	follow := exec.Command(bin, "import", big, "--follow")
	follow.Env = append(os.Environ(), env...)
	var fout, ferr testlog.Buffer
	follow.Stdout, follow.Stderr = &fout, &ferr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(ferr.String(), " started (workflow "); {
		if time.Now().After(deadline) {
			t.Fatalf("import --follow never said it started: %s", ferr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = follow.Process.Signal(syscall.SIGINT)
	err = follow.Wait()
	bigID := strings.Fields(ferr.String())[1]
	if err != nil || !strings.Contains(ferr.String(), "stopped watching import "+bigID+"; it goes on") || fout.String() != "" {
		t.Fatalf("import --follow after Ctrl-C: %v\nstdout %q\nstderr %q", err, fout.String(), ferr.String())
	}
	for deadline := time.Now().Add(2 * time.Minute); ; {
		code, stdout, _ = cli("imports", bigID, "--json")
		if code == 0 && strings.Contains(stdout, `"COMPLETED"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the interrupted import did not complete: %s", stdout)
		}
		time.Sleep(time.Second)
	}
	p.stop(t)
}

// isOneJSON reports whether s holds exactly one JSON document.
func isOneJSON(s string) bool {
	dec := json.NewDecoder(strings.NewReader(s))
	var v any
	if dec.Decode(&v) != nil {
		return false
	}
	return dec.Decode(&v) == io.EOF
}

func TestInterspersedFlags(t *testing.T) {
	app := newApp()
	cases := map[string]string{
		"starter gen orders --count 5 -o f.csv":          "starter gen --count 5 -o f.csv orders",
		"starter gen --count 5 orders":                   "starter gen --count 5 orders",
		"starter --log-level warn import x.csv --follow": "starter --log-level warn import --follow x.csv",
		"starter import x.csv --type payments --wait":    "starter import --type payments --wait x.csv",
		"starter import -- --odd-name.csv":               "starter import -- --odd-name.csv",
		"starter unknown a --b":                          "starter unknown a --b",
	}
	for in, want := range cases {
		got := strings.Join(interspersed(app, strings.Fields(in)), " ")
		if got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}
