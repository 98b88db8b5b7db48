package drill

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/acme/payments/internal/cluster"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/leakscan"
	"github.com/acme/payments/internal/staging"
)

// TestDrills runs the faults one after another on one topology of three
// workers, with live payments arriving throughout, and ends by checking
// MySQL: every row once, exact counters, exact per-order sums.
func TestDrills(t *testing.T) {
	c := startCluster(t, 3, nil)
	api := newAPI(c)
	load := startLiveLoad(api, 200, 400*time.Millisecond)

	t.Run("WorkersDie", func(t *testing.T) { drillWorkersDie(t, c, api) })
	t.Run("TemporalRestarts", func(t *testing.T) { drillTemporalRestarts(t, c, api) })
	t.Run("MySQLUnreachable", func(t *testing.T) { drillMySQLUnreachable(t, c, api) })
	t.Run("APIRestarts", func(t *testing.T) { drillAPIRestarts(t, c, api) })

	t.Run("LoadDuringFaults", func(t *testing.T) {
		start := time.Now()
		if err := load.wait(10 * time.Minute); err != nil {
			t.Fatal(err)
		}
		awaitAll(t, "live orders COMPLETED", 3*time.Minute, `SELECT COUNT(*) FROM orders WHERE order_id LIKE 'LIVE-%' AND order_status = 'COMPLETED'`, 200)
		var paid, events int
		must(t, shared.db.Get(&paid, `SELECT COUNT(*) FROM orders WHERE order_id LIKE 'LIVE-%' AND paid_amount = order_amount`))
		must(t, shared.db.Get(&events, `SELECT COUNT(*) FROM payment_events WHERE payment_id LIKE 'LPAY-%' AND to_status = 'SUCCESS' AND applied`))
		if paid != 200 || events != 200 {
			t.Errorf("live orders paid exactly = %d, SUCCESS events applied = %d; want 200 and 200", paid, events)
		}
		t.Logf("load: 200 orders, %d requests, %d retried after an error or 5xx, %d callbacks sent (each twice); finished %s after the drills",
			load.requests.Load(), load.retries.Load(), load.callbacks.Load(), time.Since(start).Round(time.Second))
	})
	checkLedger(t)
	t.Run("LeakScanPostgres", func(t *testing.T) { drillLeakScan(t, c, api) })
}

// drillLeakScan is the leak scan (see internal/e2e's TestLeakScan) on the
// cluster: a live payment carrying sentinels goes through the API, worker
// and Temporal server processes, and then the Temporal server's PostgreSQL
// databases, every process's log, MySQL and /metrics hold none of them,
// nor the token, webhook secret or keys.
func drillLeakScan(t *testing.T, c *cluster.Cluster, api *apiClient) {
	const email, phone, card = "zq.drill.leak@example.com", "+14155550987", "4000 0566 5566 5556"
	body, _ := json.Marshal(map[string]string{"order_id": "LEAK-1", "order_amount": "9.00", "currency": "USD",
		"customer_email": email, "customer_phone": phone})
	if code, resp, err := api.do("POST", "/orders", "application/json", bytes.NewReader(body), nil); err != nil || code != http.StatusCreated {
		t.Fatalf("create order: %d %s %v", code, resp, err)
	}
	body, _ = json.Marshal(map[string]string{"payment_id": "LEAKP-1", "amount": "9.00", "method": "CARD", "details": card})
	if code, resp, err := api.do("POST", "/orders/LEAK-1/payments", "application/json", bytes.NewReader(body), nil); err != nil || code != http.StatusCreated {
		t.Fatalf("attempt: %d %s %v", code, resp, err)
	}
	sendCallback(t, api, "LEAKP-1", "SUCCESS", "9.00", "gw-leak-1")
	awaitAll(t, "the sentinel order COMPLETED", 2*time.Minute, `SELECT COUNT(*) FROM orders WHERE order_id = 'LEAK-1' AND order_status = 'COMPLETED'`, 1)
	awaitWorkflowClosed(t, c, "order-payment/LEAK-1", time.Minute)

	key := strings.SplitN(keysSpec, ":", 2)[1]
	rawKey, _ := base64.StdEncoding.DecodeString(key)
	sc := leakscan.New(map[string]string{"email": email, "email local": "zq.drill.leak", "phone": "4155550987",
		"card": card, "card digits": strings.ReplaceAll(card, " ", ""), "api token": drillToken,
		"webhook secret": gatewaySecret, "key": key, "raw key": string(rawKey), "blind index key": blindIndexKey})
	info, _ := clusters.Load(c)
	ci := info.(clusterInfo)
	ctx := context.Background()
	for _, db := range []string{ci.pg.Database, ci.pg.VisibilityDatabase()} {
		if err := sc.Postgres(ctx, "127.0.0.1", 5432, "postgres", db); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := sc.Dir(ci.dir); err != nil || n == 0 {
		t.Fatalf("scan logs under %s: %d files, %v", ci.dir, n, err)
	}
	if n, err := sc.MySQL(ctx, shared.db); err != nil || n < 100 {
		t.Fatalf("scan MySQL: %d rows, %v", n, err)
	}
	code, metrics, err := api.do("GET", "/metrics", "", nil, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	sc.Scan("/metrics", metrics)
	for _, h := range sc.Hits {
		t.Error(h)
	}
	t.Logf("scanned %d bytes in %d items (PostgreSQL dumps, process logs, MySQL rows, /metrics): %d hits", sc.Bytes, sc.Items, len(sc.Hits))
}

func drillWorkersDie(t *testing.T, c *cluster.Cluster, api *apiClient) {
	orders, ost := writeFile(t, "orders-300k.csv", gen.Options{Kind: gen.KindOrders, Count: 300_000, Seed: 1})
	payments, pst := writeFile(t, "payments-100k.csv", gen.Options{Kind: gen.KindPayments, Count: 100_000, Orders: 50_000, Seed: 2})
	for _, f := range []struct {
		name, path string
		rows       int
		kind       string
	}{{"orders", orders, ost.Rows, "orders"}, {"payments", payments, pst.Rows, "payments"}} {
		start := time.Now()
		id, _ := api.upload(t, f.path, "?type="+f.kind)
		awaitJob(t, id, 5*time.Minute, func(j job) bool { return j.ChunksDone >= 1 || completed(j) })
		victim := busyWorker(t, c, "import/"+id)
		killedAt := time.Now()
		victim.Kill()
		if _, err := c.StartWorker(context.Background()); err != nil {
			t.Fatal(err)
		}
		j := awaitJob(t, id, 10*time.Minute, completed)
		checkCounters(t, f.name, j, f.rows)
		t.Logf("%s: %d rows in %s; %s killed (SIGKILL) %s in, a new worker started; completed %s after the kill; activity retries seen: %d",
			f.name, f.rows, time.Since(start).Round(time.Millisecond), victim.Name, killedAt.Sub(start).Round(time.Millisecond),
			time.Since(killedAt).Round(time.Millisecond), retriesSeen(t, c, "import/"+id))
	}
	var n int
	must(t, shared.db.Get(&n, `SELECT COUNT(*) FROM orders WHERE order_id LIKE 'ORD-%'`))
	if n != ost.Rows {
		t.Errorf("orders stored = %d, want %d", n, ost.Rows)
	}
	must(t, shared.db.Get(&n, `SELECT COUNT(*) FROM payments WHERE payment_id LIKE 'PAY-%'`))
	if n != pst.Rows {
		t.Errorf("payments stored = %d, want %d", n, pst.Rows)
	}
}

func drillTemporalRestarts(t *testing.T, c *cluster.Cluster, api *apiClient) {
	// An order with an attempt recorded before the restart.
	createOrder(t, api, "TR-LIVE-1", "50.00")
	code, body, err := api.do("POST", "/orders/TR-LIVE-1/payments", "application/json",
		strings.NewReader(`{"payment_id":"TR-PAY-1","amount":"50.00","method":"CARD","details":"4111111111111111"}`), nil)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("payment attempt: %d %s %v", code, body, err)
	}
	path, st := writeFile(t, "orders-tr.csv", gen.Options{Kind: gen.KindOrders, Count: 100_000, Seed: 3, OrderIDPrefix: "TR-"})
	start := time.Now()
	id, _ := api.upload(t, path, "?type=orders")
	awaitJob(t, id, 5*time.Minute, func(j job) bool { return j.ChunksDone >= 1 || completed(j) })
	killedAt := time.Now()
	if err := c.Temporal.Kill(); err != nil {
		t.Fatal(err)
	}
	before, _ := loadJob(id)
	time.Sleep(3 * time.Second)
	if err := c.Temporal.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	upAt := time.Now()
	// Recovery: the first chunk committed after the server is back.
	awaitJob(t, id, 5*time.Minute, func(j job) bool { return j.ChunksDone > before.ChunksDone || completed(j) })
	progressAt := time.Now()
	j := awaitJob(t, id, 10*time.Minute, completed)
	checkCounters(t, "orders after a Temporal restart", j, st.Rows)

	// The attempt made before the restart completes on a callback after it.
	sendCallback(t, api, "TR-PAY-1", "SUCCESS", "50.00", "tr-ref-1")
	awaitAll(t, "TR-LIVE-1 COMPLETED", 2*time.Minute, `SELECT COUNT(*) FROM orders WHERE order_id = 'TR-LIVE-1' AND order_status = 'COMPLETED'`, 1)
	awaitWorkflowClosed(t, c, "order-payment/TR-LIVE-1", 2*time.Minute)
	t.Logf("temporal: %d rows in %s; server SIGKILLed %s in with %d/%d chunks done, back up %s later; first chunk after restart %s after it was up; import completed %s after the kill; activity retries seen: %d",
		st.Rows, time.Since(start).Round(time.Millisecond), killedAt.Sub(start).Round(time.Millisecond), before.ChunksDone, before.ChunksTotal,
		upAt.Sub(killedAt).Round(time.Millisecond), progressAt.Sub(upAt).Round(time.Millisecond), time.Since(killedAt).Round(time.Millisecond),
		retriesSeen(t, c, "import/"+id))
}

func drillMySQLUnreachable(t *testing.T, c *cluster.Cluster, api *apiClient) {
	path, st := writeFile(t, "orders-mc.csv", gen.Options{Kind: gen.KindOrders, Count: 100_000, Seed: 4, OrderIDPrefix: "MC-"})
	openBefore := shared.proxy.Open()
	start := time.Now()
	id, _ := api.upload(t, path, "?type=orders")
	awaitJob(t, id, 5*time.Minute, func(j job) bool { return j.ChunksDone >= 1 || completed(j) })
	cutAt := time.Now()
	shared.proxy.Cut()
	downSeen := awaitReady(t, api, false, 30*time.Second)
	time.Sleep(20*time.Second - time.Since(cutAt))
	shared.proxy.Restore()
	restoredAt := time.Now()
	upSeen := awaitReady(t, api, true, time.Minute)
	j := awaitJob(t, id, 10*time.Minute, completed)
	checkCounters(t, "orders after a MySQL partition", j, st.Rows)
	// Leaks show as connections that outlive the pools' limits once the
	// load is gone; idle pools keep what they had before.
	time.Sleep(2 * time.Second)
	openAfter := shared.proxy.Open()
	const perProcessLimit = 64 // database.Open's pool plus OpenText's
	if limit := perProcessLimit * (len(c.Workers()) + 1); openAfter > limit {
		t.Errorf("connections open through the proxy after the drill = %d, more than the pools allow (%d)", openAfter, limit)
	}
	t.Logf("mysql: %d rows in %s; cut %s in for 20 s; /readyz down %s after the cut, up %s after the restore; import completed %s after the restore; connections through the proxy %d before, %d after; activity retries seen: %d",
		st.Rows, time.Since(start).Round(time.Millisecond), cutAt.Sub(start).Round(time.Millisecond), downSeen.Sub(cutAt).Round(time.Millisecond),
		upSeen.Sub(restoredAt).Round(time.Millisecond), time.Since(restoredAt).Round(time.Millisecond), openBefore, openAfter,
		retriesSeen(t, c, "import/"+id))
}

func drillAPIRestarts(t *testing.T, c *cluster.Cluster, api *apiClient) {
	path, st := writeFile(t, "orders-ar.csv", gen.Options{Kind: gen.KindOrders, Count: 50_000, Seed: 5, OrderIDPrefix: "AR-"})
	jobsBefore, blobsBefore := countJobs(t), countUploads(t)

	// An upload cut off mid-stream by the API's death.
	pr, pw := io.Pipe()
	result := make(chan error, 1)
	go func() {
		code, body, err := api.do("POST", "/upload?type=orders", "text/csv", pr, nil)
		if err == nil {
			err = fmt.Errorf("interrupted upload answered %d %s", code, body)
		}
		result <- err
	}()
	head, err := readPrefix(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pw.Write(head); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	killedAt := time.Now()
	c.API().Kill()
	pw.CloseWithError(io.ErrUnexpectedEOF)
	t.Logf("interrupted upload: %v", <-result)
	if err := c.StartAPI(context.Background()); err != nil {
		t.Fatal(err)
	}
	backAt := time.Now()
	if got := countJobs(t); got != jobsBefore {
		t.Errorf("import jobs after an interrupted upload = %d, want %d", got, jobsBefore)
	}
	if got := countUploads(t); got != blobsBefore {
		t.Errorf("staged uploads after an interrupted upload = %d, want %d", got, blobsBefore)
	}

	// The whole file, then the same file again after another restart.
	id, code := api.upload(t, path, "?type=orders")
	if code != http.StatusAccepted {
		t.Errorf("first full upload answered %d, want 202", code)
	}
	if err := c.API().Stop(20 * time.Second); err != nil {
		t.Logf("api stop: %v", err)
	}
	if err := c.StartAPI(context.Background()); err != nil {
		t.Fatal(err)
	}
	again, code := api.upload(t, path, "?type=orders")
	if again != id || code != http.StatusOK {
		t.Errorf("retried upload = %s (%d), want the same import %s (200)", again, code, id)
	}
	j := awaitJob(t, id, 10*time.Minute, completed)
	checkCounters(t, "orders uploaded across API restarts", j, st.Rows)
	t.Logf("api: killed mid-upload, healthy again %s later; %d jobs and %d staged uploads before and after; the retried upload returned the same import", backAt.Sub(killedAt).Round(time.Millisecond), jobsBefore, blobsBefore)
}

// checkCounters checks a completed import counted every row exactly once.
func checkCounters(t *testing.T, what string, j job, rows int) {
	t.Helper()
	if j.RowsRead != int64(rows) || j.RowsWritten != int64(rows) || j.RowsUnchanged != 0 || j.RowsRejected != 0 || j.ChunksDone != j.ChunksTotal {
		t.Errorf("%s: job %+v; want %d rows read and written, none unchanged or rejected, every chunk done", what, j, rows)
	}
}

// checkLedger checks every order's paid amount and status against its
// SUCCESS payments, and that no status change was applied twice.
func checkLedger(t *testing.T) {
	var bad, dup, total int
	must(t, shared.db.Get(&bad, `SELECT COUNT(*) FROM orders o
		LEFT JOIN (SELECT order_id, SUM(payment_amount) s FROM payments WHERE payment_status = 'SUCCESS' GROUP BY order_id) p
		ON p.order_id = o.order_id
		WHERE o.paid_amount <> COALESCE(p.s, 0)
		   OR o.order_status <> IF(COALESCE(p.s, 0) >= o.order_amount, 'COMPLETED', 'PENDING')`))
	must(t, shared.db.Get(&dup, `SELECT COUNT(*) FROM (SELECT payment_id, COALESCE(from_status, ''), to_status, COUNT(*) n
		FROM payment_events WHERE applied GROUP BY 1, 2, 3 HAVING n > 1) d`))
	must(t, shared.db.Get(&total, `SELECT COUNT(*) FROM orders`))
	if bad != 0 || dup != 0 {
		t.Errorf("ledger: %d of %d orders disagree with their SUCCESS payments; %d status changes applied twice", bad, total, dup)
	}
	t.Logf("ledger: %d orders, every paid_amount and status equal to its SUCCESS payments, no status change applied twice", total)
}

// busyWorker is a live worker running one of the workflow's activities
// now, so that killing it loses work in flight.
func busyWorker(t *testing.T, c *cluster.Cluster, workflowID string) *cluster.Process {
	t.Helper()
	ctx := context.Background()
	tc, err := c.Temporal.Dial(ctx)
	must(t, err)
	defer tc.Close()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		d, err := tc.DescribeWorkflowExecution(ctx, workflowID, "")
		if err == nil {
			for _, a := range d.PendingActivities {
				for _, w := range c.Workers() {
					if !w.Exited() && a.State == enumspb.PENDING_ACTIVITY_STATE_STARTED &&
						strings.HasPrefix(a.LastWorkerIdentity, fmt.Sprintf("%d@", w.Pid())) {
						return w
					}
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no worker ran an activity of %s within a minute", workflowID)
	return nil
}

// retriesSeen counts activity attempts after the first in a workflow's
// runs, as the history records them.
func retriesSeen(t *testing.T, c *cluster.Cluster, workflowID string) int {
	ctx := context.Background()
	tc, err := c.Temporal.Dial(ctx)
	if err != nil {
		t.Logf("count retries: %v", err)
		return -1
	}
	defer tc.Close()
	n := 0
	runs, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId = %q", workflowID)})
	if err != nil {
		t.Logf("count retries: %v", err)
		return -1
	}
	for _, run := range runs.Executions {
		it := tc.GetWorkflowHistory(ctx, workflowID, run.Execution.RunId, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Logf("count retries: %v", err)
				return -1
			}
			if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && a.Attempt > 1 {
				n += int(a.Attempt - 1)
			}
		}
	}
	return n
}

func awaitWorkflowClosed(t *testing.T, c *cluster.Cluster, workflowID string, limit time.Duration) {
	t.Helper()
	ctx := context.Background()
	tc, err := c.Temporal.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	deadline := time.Now().Add(limit)
	for {
		d, err := tc.DescribeWorkflowExecution(ctx, workflowID, "")
		if err == nil && d.WorkflowExecutionInfo.Status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not completed within %s (%v, %v)", workflowID, limit, d.GetWorkflowExecutionInfo().GetStatus(), err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// awaitReady polls /readyz until it reports want and returns when it did.
func awaitReady(t *testing.T, api *apiClient, want bool, limit time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		code, body, err := api.do("GET", "/readyz", "", nil, nil)
		if err == nil && (code == http.StatusOK) == want {
			t.Logf("/readyz %d %s", code, strings.TrimSpace(string(body)))
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not turn ready=%v within %s (last %d %s %v)", want, limit, code, body, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func awaitAll(t *testing.T, what string, limit time.Duration, query string, want int) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var n int
		err := shared.db.Get(&n, query)
		if err == nil && n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d, want %d within %s (%v)", what, n, want, limit, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func countJobs(t *testing.T) int {
	var n int
	must(t, shared.db.Get(&n, `SELECT COUNT(*) FROM import_jobs`))
	return n
}

// countUploads lists the shared staging store as a worker sees it.
func countUploads(t *testing.T) int {
	t.Helper()
	keys, err := encryption.ParseKeys(keysSpec)
	must(t, err)
	s, err := staging.Open(context.Background(), shared.s3.BlobURL(), keys)
	must(t, err)
	defer s.Close()
	list, err := s.List(context.Background(), "uploads/")
	must(t, err)
	return len(list)
}

func createOrder(t *testing.T, api *apiClient, id, amount string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"order_id": id, "order_amount": amount, "currency": "USD",
		"customer_email": "drill@example.com", "customer_phone": "+15550100"})
	code, resp, err := api.do("POST", "/orders", "application/json", strings.NewReader(string(body)), nil)
	if err != nil || (code != http.StatusCreated && code != http.StatusOK) {
		t.Fatalf("create order %s: %d %s %v", id, code, resp, err)
	}
}

func sendCallback(t *testing.T, api *apiClient, paymentID, status, amount, ref string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		code, err := api.callback(paymentID, status, amount, ref)
		if err == nil && code < 300 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("callback %s: %d %v", paymentID, code, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// liveLoad creates orders and pays them live, as shops and gateways would:
// each order gets one attempt for its full amount and a signed SUCCESS
// callback sent twice. Requests that fail with an error or a 5xx are
// retried, as a client or gateway would.
type liveLoad struct {
	done      chan struct{}
	mu        sync.Mutex
	err       error
	requests  counter
	retries   counter
	callbacks counter
}

type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) Add(d int) { c.mu.Lock(); c.n += d; c.mu.Unlock() }
func (c *counter) Load() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

func startLiveLoad(api *apiClient, orders int, every time.Duration) *liveLoad {
	l := &liveLoad{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for i := 1; i <= orders; i++ {
			if err := l.payOne(api, i); err != nil {
				l.mu.Lock()
				l.err = err
				l.mu.Unlock()
				return
			}
			time.Sleep(every)
		}
	}()
	return l
}

func (l *liveLoad) payOne(api *apiClient, i int) error {
	id, pay := fmt.Sprintf("LIVE-%05d", i), fmt.Sprintf("LPAY-%05d", i)
	amount := fmt.Sprintf("%d.%02d", 10+i%90, i%100)
	order, _ := json.Marshal(map[string]string{"order_id": id, "order_amount": amount, "currency": "USD",
		"customer_email": fmt.Sprintf("live%d@example.com", i), "customer_phone": "+15550100"})
	attempt, _ := json.Marshal(map[string]string{"payment_id": pay, "amount": amount, "method": "CARD", "details": "4111111111111111"})
	steps := []func() (int, error){
		func() (int, error) {
			code, _, err := api.do("POST", "/orders", "application/json", strings.NewReader(string(order)), nil)
			return code, err
		},
		func() (int, error) {
			code, _, err := api.do("POST", "/orders/"+id+"/payments", "application/json", strings.NewReader(string(attempt)), nil)
			return code, err
		},
		func() (int, error) { l.callbacks.Add(1); return api.callback(pay, "SUCCESS", amount, "live-"+pay) },
		func() (int, error) { return api.callback(pay, "SUCCESS", amount, "live-"+pay) },
	}
	for n, step := range steps {
		deadline := time.Now().Add(3 * time.Minute)
		for {
			l.requests.Add(1)
			code, err := step()
			if err == nil && code < 300 {
				break
			}
			if err == nil && code < 500 {
				return fmt.Errorf("%s step %d: answered %d", id, n+1, code)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s step %d: still failing after 3 minutes: %d %v", id, n+1, code, err)
			}
			l.retries.Add(1)
			time.Sleep(500 * time.Millisecond)
		}
	}
	return nil
}

func (l *liveLoad) wait(limit time.Duration) error {
	select {
	case <-l.done:
	case <-time.After(limit):
		return fmt.Errorf("live load not done within %s", limit)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func readPrefix(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	m, err := io.ReadFull(f, b)
	if err == io.ErrUnexpectedEOF {
		err = nil
	}
	return b[:m], err
}
