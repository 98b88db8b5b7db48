package e2e_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/acme/payments/internal/codec"
	"github.com/acme/payments/internal/devserver"
	"github.com/acme/payments/internal/export"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ingest"
	"github.com/acme/payments/internal/leakscan"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/internal/stacktest"
	"github.com/acme/payments/internal/testlog"
	"github.com/acme/payments/internal/webhook"
	"github.com/acme/payments/workflows"
)

// Sentinels: values no store, log or metric may hold in plain text. Each
// is searched for in several spellings (see leakNeedles).
const (
	sentinelEmail = "zq.sentinel.leak@example.com"
	sentinelPhone = "+14155550987"
	sentinelCard  = "4000 0566 5566 5556"
	leakToken     = "leak-scan-token-7f3a9c"
	leakSecret    = "leak-scan-webhook-secret-41d2"
)

// leakNeedles are the values whose presence anywhere is a leak, in the
// spellings a leak would take.
func leakNeedles(keys ...string) map[string]string {
	n := map[string]string{
		"email":          sentinelEmail,
		"email local":    "zq.sentinel.leak",
		"phone":          "4155550987",
		"card":           sentinelCard,
		"card digits":    strings.ReplaceAll(sentinelCard, " ", ""),
		"card middle":    "0566 5566",
		"api token":      leakToken,
		"webhook secret": leakSecret,
	}
	for i, k := range keys {
		n["key "+strconv.Itoa(i)] = k
	}
	return n
}

// The leak scan (issue 12): imports with good and bad rows, a file that
// fails, live payments and callbacks, downloads, an export and the
// rejects report, all carrying known sentinel values, and then four places
// searched for them: the logs of every part at debug level, the Temporal
// server's database, every MySQL column, and /metrics (plus the staging
// store's files). There must be no hit.
func TestLeakScan(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole stack")
	}
	logs := &testlog.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	ports, err := devserver.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	temporalDir := t.TempDir()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	srv, err := devserver.StartTemporal(context.Background(), devserver.TemporalOptions{
		DatabaseFile: filepath.Join(temporalDir, "temporal.db"), FrontendAddress: addr, Namespace: "default",
		DynamicConfig: devserver.DefaultDynamicConfig(), Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })

	cfg := stacktest.Config(t, addr)
	cfg.APITokens = leakToken + ":read+write+pii,leak-read-only:read"
	cfg.WebhookSecrets = gateway + ":" + leakSecret
	cfg.ImportChunkRows = 20
	cfg.LogLevel = "debug"
	d, err := service.Open(context.Background(), cfg, logger, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	w1 := service.NewWorker(d)
	if err := w1.Start(); err != nil {
		t.Fatal(err)
	}
	stopW1 := sync.OnceFunc(w1.Stop)
	t.Cleanup(stopW1)
	e := &env{t: t, d: d, base: stacktest.API(t, d)}
	ctx := context.Background()
	t.Cleanup(func() {
		if t.Failed() {
			b := logs.Bytes()
			t.Logf("logs (tail):\n%s", b[max(len(b)-6000, 0):])
		}
	})

	// Bulk: orders with the sentinels in good rows and in every kind of bad
	// row, then payments carrying the card in their details and, wrongly,
	// in the method column.
	var orders strings.Builder
	orders.WriteString("order_id,order_amount,currency,created_at,customer_email,customer_phone\n")
	for i := range 40 {
		fmt.Fprintf(&orders, "LK-%03d,10.00,USD,2026-01-02 03:04:05,%s,%s\n", i, sentinelEmail, sentinelPhone)
	}
	fmt.Fprintf(&orders, "LK-BAD1,10.00,USD,2026-01-02 03:04:05,%s@@,%s\n", sentinelEmail, sentinelPhone) // an odd email: stored, encrypted
	fmt.Fprintf(&orders, "LK-BAD2,10.00,USD,2026-01-02 03:04:05,%s,%s\n", sentinelEmail, sentinelCard)    // a card as a phone: stored, encrypted
	fmt.Fprintf(&orders, "LK-BAD3,%s,USD,2026-01-02 03:04:05,%s,\n", sentinelCard, sentinelEmail)         // card as an amount
	fmt.Fprintf(&orders, "LK-BAD4,10.00,%s,2026-01-02 03:04:05,%s,\n", sentinelEmail, sentinelEmail)      // email as a currency
	fmt.Fprintf(&orders, "LK-BAD5,10.00,USD,%s,%s,\n", sentinelPhone, sentinelEmail)                      // phone as a date
	fmt.Fprintf(&orders, "LK-000,11.00,USD,2026-01-02 03:04:05,%s,%s\n", sentinelEmail, sentinelPhone)    // conflicting repeat
	ordersJob := leakUpload(t, e, "orders.csv", orders.String(), leakToken)
	ordersJob = leakWait(t, d, ordersJob.ImportID)
	if ordersJob.State != importer.StateCompleted || ordersJob.RowsWritten != 42 || ordersJob.RowsRejected != 4 {
		var msgs []string
		_ = d.DB.Select(&msgs, "SELECT CONCAT(line_no, ' ', code) FROM import_rejects WHERE import_id = ?", ordersJob.ImportID)
		t.Fatalf("orders import: %d written, %d rejected: %v", ordersJob.RowsWritten, ordersJob.RowsRejected, msgs)
	}

	var payments strings.Builder
	payments.WriteString("payment_id,order_id,payment_amount,payment_method,payment_status,payment_details\n")
	for i := range 30 {
		fmt.Fprintf(&payments, "LKP-%03d,LK-%03d,10.00,CARD,SUCCESS,%s\n", i, i, sentinelCard)
	}
	fmt.Fprintf(&payments, "LKP-BAD1,LK-030,1.00,%s,SUCCESS,%s\n", sentinelCard, sentinelCard)  // card as a method
	fmt.Fprintf(&payments, "LKP-BAD2,LK-031,1.00,CARD,%s,%s\n", sentinelEmail, sentinelCard)    // email as a status
	fmt.Fprintf(&payments, "LKP-BAD3,%s,1.00,CARD,SUCCESS,%s\n", sentinelEmail, sentinelCard)   // email as an order id
	fmt.Fprintf(&payments, "LKP-BAD4,LK-032,%s,CARD,SUCCESS,%s\n", sentinelPhone, sentinelCard) // phone as an amount
	paymentsJob := leakWait(t, d, leakUpload(t, e, "payments.csv", payments.String(), leakToken).ImportID)
	if paymentsJob.State != importer.StateCompleted || paymentsJob.RowsWritten != 30 || paymentsJob.RowsRejected != 4 {
		t.Fatalf("payments import: %+v", paymentsJob)
	}

	// Files that fail whole: no header (its first row read as one), and a
	// header naming a column that is a sentinel.
	for name, body := range map[string]string{
		"noheader.csv": fmt.Sprintf("LK-900,10.00,USD,2026-01-02 03:04:05,%s,%s\n", sentinelEmail, sentinelPhone),
		"header.csv":   fmt.Sprintf("order_id,order_amount,%s\nLK-901,10.00,%s\n", sentinelCard, sentinelCard),
	} {
		job := leakWait(t, d, leakUpload(t, e, name, body, leakToken).ImportID)
		if job.State != importer.StateFailed || job.Error == nil {
			t.Fatalf("%s: %+v", name, job)
		}
		t.Logf("%s failed with: %s", name, *job.Error)
	}

	// Live: an order with the sentinels, a card attempt, a bad and a good
	// callback, a look-up by email.
	authz := map[string]string{"Authorization": "Bearer " + leakToken, "Content-Type": "application/json"}
	body, _ := json.Marshal(map[string]string{"order_id": "LK-LIVE", "order_amount": "25.00", "currency": "USD",
		"customer_email": sentinelEmail, "customer_phone": sentinelPhone})
	if code, b, err := e.send("POST", "/orders", authz, body); err != nil || code != http.StatusCreated {
		t.Fatalf("POST /orders: %d %s %v", code, b, err)
	}
	body, _ = json.Marshal(attempt{PaymentID: "LKL-1", Amount: "25.00", Method: "CARD", Details: sentinelCard})
	if code, b, err := e.send("POST", "/orders/LK-LIVE/payments", authz, body); err != nil || code != http.StatusCreated {
		t.Fatalf("attempt: %d %s %v", code, b, err)
	}
	result := callbackBody(webhook.Result{PaymentID: "LKL-1", Status: "SUCCESS", Amount: "25.00", GatewayRef: "gw-lk-1"})
	if code, _, _ := e.rawCallback(gateway, result, webhook.Sign([]byte("wrong secret"), time.Now(), result)); code != http.StatusUnauthorized {
		t.Fatalf("forged callback: %d", code)
	}
	if code, b, err := e.rawCallback(gateway, result, webhook.Sign([]byte(leakSecret), time.Now(), result)); err != nil || (code != http.StatusOK && code != http.StatusAccepted) {
		t.Fatalf("callback: %d %s %v", code, b, err)
	}
	// A bad attempt whose details and method carry the card.
	body, _ = json.Marshal(attempt{PaymentID: "LKL-2", Amount: "1.00", Method: sentinelCard, Details: sentinelCard})
	if code, _, _ := e.send("POST", "/orders/LK-001/payments", authz, body); code < 400 {
		t.Fatalf("attempt with a card as its method: %d", code)
	}
	if code, b, _ := e.send("GET", "/orders?customer_email="+sentinelEmail, authz, nil); code != http.StatusOK || !bytes.Contains(b, []byte("LK-LIVE")) {
		t.Fatalf("look-up by email: %d %.200s", code, b)
	}
	e.waitWorkflowDone("LK-LIVE")

	// Downloads, an export and the rejects report, read as a user would.
	for _, path := range []string{"/download?type=orders&format=csv", "/download?type=payments&format=json",
		"/imports/" + ordersJob.ImportID + "/rejects", "/imports/" + paymentsJob.ImportID + "/rejects"} {
		if code, b, _ := e.send("GET", path, authz, nil); code != http.StatusOK || len(b) == 0 {
			t.Fatalf("GET %s: %d", path, code)
		}
	}
	code, b, _ := e.send("POST", "/exports", authz, []byte(`{"type":"orders","format":"xml"}`))
	if code != http.StatusAccepted && code != http.StatusOK {
		t.Fatalf("POST /exports: %d %s", code, b)
	}
	var ex struct {
		ExportID string `json:"export_id"`
	}
	_ = json.Unmarshal(b, &ex)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		j, err := export.GetJob(ctx, d.DB, ex.ExportID)
		if err == nil && j.State == export.StateCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("export %s: %+v %v", ex.ExportID, j, err)
		}
	}
	if code, b, _ := e.send("GET", "/exports/"+ex.ExportID+"/file", authz, nil); code != http.StatusOK || !bytes.Contains(b, []byte(sentinelEmail)) {
		t.Fatalf("export file: %d (the pii token reads the sentinel back: %v)", code, bytes.Contains(b, []byte(sentinelEmail)))
	}

	// A rotation to a new primary key, run by a worker that holds it.
	stopW1()
	newKey := base64.StdEncoding.EncodeToString([]byte("leak-scan-rotation-key-32-bytes!"))
	cfg2 := cfg
	cfg2.Keys = "leaknew:" + newKey + "," + cfg.Keys
	d2, err := service.Open(ctx, cfg2, logger, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d2.Close)
	stacktest.Worker(t, d2)
	run, err := d2.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.RotateWorkflowID("leak"), TaskQueue: workflows.TaskQueue},
		workflows.Rotate, workflows.RotateInput{RotationID: "leak", KeyID: "leaknew", PageRows: 25})
	if err != nil {
		t.Fatal(err)
	}
	var rotated workflows.RotateProgress
	if err := run.Get(ctx, &rotated); err != nil || rotated.State != workflows.RotationCompleted || rotated.Rotated < 70 || rotated.Remaining != 0 {
		t.Fatalf("rotation: %+v %v", rotated, err)
	}

	// The four places, plus the staging store's files.
	code, metricsBody, _ := e.send("GET", "/metrics", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	keyB64 := strings.SplitN(stacktest.TestKeys, ":", 2)[1]
	keyRaw, _ := base64.StdEncoding.DecodeString(keyB64)
	sc := leakscan.New(leakNeedles(keyB64, stacktest.TestBlindIndexKey, string(keyRaw), newKey, "leak-scan-rotation-key-32-bytes!"))
	sc.Scan("/metrics", metricsBody)
	sc.Scan("the logs", logs.Bytes())
	for _, dir := range []string{temporalDir, cfg.BlobDir()} {
		if n, err := sc.Dir(dir); err != nil || n == 0 {
			t.Fatalf("scan %s: %d files, %v", dir, n, err)
		}
	}
	if n, err := sc.MySQL(ctx, d.DB); err != nil || n < 100 {
		t.Fatalf("scan MySQL: %d rows, %v", n, err)
	}
	// Encrypted is not enough (SPEC section 4): decoded, no workflow's
	// input, result, signal, update, memo or search attribute carries a
	// card number, email or phone either.
	if n := scanDecodedHistories(t, d2, sc); n < 7 { // four imports, an order, an export, a rotation
		t.Fatalf("only %d workflow runs' histories decoded", n)
	}
	for _, h := range sc.Hits {
		t.Error(h)
	}
	if len(logs.Bytes()) < 1000 {
		t.Fatalf("only %d bytes of logs were captured: the scan would prove nothing", len(logs.Bytes()))
	}
	t.Logf("scanned %d bytes in %d items (logs, /metrics, the Temporal database, the staging store, MySQL rows): %d hits", sc.Bytes, sc.Items, len(sc.Hits))
}

// leakUpload posts body to /upload as a multipart file.
func leakUpload(t *testing.T, e *env, name, body, tok string) importer.Job {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	fw, _ := mw.CreateFormFile("file", name)
	_, _ = io.WriteString(fw, body)
	_ = mw.Close()
	code, resp, err := e.send("POST", "/upload", map[string]string{"Authorization": "Bearer " + tok, "Content-Type": mw.FormDataContentType()}, b.Bytes())
	if err != nil || (code != http.StatusAccepted && code != http.StatusOK) {
		t.Fatalf("upload %s: %d %s %v", name, code, resp, err)
	}
	var job importer.Job
	if err := json.Unmarshal(resp, &job); err != nil {
		t.Fatal(err)
	}
	return job
}

func leakWait(t *testing.T, d *service.Deps, id string) importer.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	job, err := ingest.Follow(ctx, d.DB, d.Temporal, id, 100*time.Millisecond, nil)
	if err != nil {
		t.Fatalf("import %s: %v", id, err)
	}
	return job
}

// scanDecodedHistories decodes every payload of every workflow run's
// history with the service's codec and scans the plaintext; it returns how
// many runs it read.
func scanDecodedHistories(t *testing.T, d *service.Deps, sc *leakscan.Scanner) int {
	t.Helper()
	ctx := context.Background()
	c := &codec.Codec{Keys: d.Keys}
	runs := 0
	var next []byte
	for {
		page, err := d.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", NextPageToken: next})
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range page.GetExecutions() {
			wid, rid := ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId()
			it := d.Temporal.GetWorkflowHistory(ctx, wid, rid, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					t.Fatal(err)
				}
				err = proxy.VisitPayloads(ctx, ev, proxy.VisitPayloadsOptions{
					Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
						plain, err := c.Decode(ps)
						if err != nil {
							return nil, err
						}
						for _, p := range plain {
							sc.Scan("workflow "+wid+" event "+ev.GetEventType().String(), p.GetData())
						}
						return ps, nil
					},
				})
				if err != nil {
					t.Fatalf("decode %s: %v", wid, err)
				}
			}
			sc.Scan("workflow id", []byte(wid))
			runs++
		}
		if next = page.GetNextPageToken(); len(next) == 0 {
			return runs
		}
	}
}
