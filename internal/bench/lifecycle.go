package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/webhook"
)

// LifecycleOptions configures RunLifecycle.
type LifecycleOptions struct {
	ServerDSN string // MySQL server; a database of its own is created and dropped
	Dir       string // scratch directory for Temporal state
	// Orders is how many orders (one payment each) every phase handles;
	// 0 means 2000.
	Orders int
	// Concurrency is how many clients run at once in each phase; 0 means 32.
	Concurrency int
	Out         io.Writer
	Logger      *slog.Logger
}

// The bench's gateway and its signing secret, known only to this process.
const (
	benchGateway       = "acme"
	benchGatewaySecret = "bench-webhook-secret-0123456789"
	ceilingTaskQueue   = "bench-ceiling"
	ceilingWorkflow    = "BenchCeiling"
	ceilingSignal      = "count"
)

// countSignals is the ceiling's workflow: it does nothing but count two
// signals (an attempt and its result) and complete.
func countSignals(ctx workflow.Context) (int, error) {
	ch := workflow.GetSignalChannel(ctx, ceilingSignal)
	n := 0
	for n < 2 {
		ch.Receive(ctx, nil)
		n++
	}
	return n, nil
}

// phaseResult is one phase's figures.
type phaseResult struct {
	name    string
	n       int
	elapsed time.Duration
	// latencies, one per payment: from sending the result (the second
	// signal, or the signed callback) to seeing it done.
	latencies []time.Duration
	// cpu is the stack's and MySQL's CPU time during the phase.
	cpu cpuSample
}

func (p phaseResult) perSecond() float64 { return float64(p.n) / p.elapsed.Seconds() }

func (p phaseResult) percentile(q float64) time.Duration {
	if len(p.latencies) == 0 {
		return 0
	}
	s := slices.Clone(p.latencies)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// RunLifecycle measures the order payment lifecycle on the embedded stack
// against the bare Temporal ceiling on the same server at the same
// concurrency, and prints payments/s for both, their ratio and the latency
// from a gateway callback to the order state being visible. It asserts no
// timing.
func RunLifecycle(ctx context.Context, o LifecycleOptions) error {
	if o.Orders <= 0 {
		o.Orders = 2000
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 32
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	out := o.Out
	s, err := StartStack(ctx, Options{
		ServerDSN: o.ServerDSN, Dir: o.Dir, Logger: o.Logger,
		ChunkRows: config.DefaultImportChunkRows, Parallelism: config.DefaultImportParallelism,
	})
	if err != nil {
		return err
	}
	defer s.Close()

	baseURL := s.BaseURL

	// The ceiling's workflow runs on its own worker and task queue, on the
	// same server and client.
	cw := worker.New(s.Deps.Temporal, ceilingTaskQueue, worker.Options{})
	cw.RegisterWorkflowWithOptions(countSignals, workflow.RegisterOptions{Name: ceilingWorkflow})
	if err := cw.Start(); err != nil {
		return fmt.Errorf("start ceiling worker: %w", err)
	}
	defer cw.Stop()

	fmt.Fprintf(out, "lifecycle bench: %d orders, one payment each, concurrency %d, database %s\n", o.Orders, o.Concurrency, s.DBName)

	before := s.sampleCPU()
	ceiling, err := runPhase(ctx, "ceiling", o.Orders, o.Concurrency, func(ctx context.Context, i int) (time.Duration, error) {
		return ceilingOne(ctx, s.Deps.Temporal, i)
	})
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	mid := s.sampleCPU()
	ceiling.cpu = mid.since(before)

	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * o.Concurrency, MaxIdleConnsPerHost: 2 * o.Concurrency},
		Timeout: 2 * time.Minute}
	fp := fullPath{http: hc, base: baseURL, token: s.Token}
	full, err := runPhase(ctx, "full path", o.Orders, o.Concurrency, fp.one)
	if err != nil {
		return fmt.Errorf("full path: %w", err)
	}
	full.cpu = s.sampleCPU().since(mid)

	// The full path's figures count only if the money is right.
	var bad int64
	if err := s.Deps.DB.GetContext(ctx, &bad, `SELECT COUNT(*) FROM orders WHERE order_status <> 'COMPLETED' OR paid_amount <> order_amount`); err != nil {
		return err
	}
	var completed int64
	if err := s.Deps.DB.GetContext(ctx, &completed, `SELECT COUNT(*) FROM orders WHERE order_status = 'COMPLETED'`); err != nil {
		return err
	}
	if bad != 0 || completed != int64(o.Orders) {
		return fmt.Errorf("full path: %d orders COMPLETED, %d with a wrong state or paid_amount", completed, bad)
	}

	fmt.Fprintf(out, "\n%-10s %9s %9s %11s %10s %10s %9s %9s %13s\n", "path", "payments", "seconds", "payments/s", "p50", "p99",
		"stack CPU-s", "MySQL CPU-s", "stack CPU-ms/payment")
	for _, p := range []phaseResult{ceiling, full} {
		fmt.Fprintf(out, "%-10s %9d %9.2f %11.1f %10s %10s %11.1f %11s %20.1f\n", p.name, p.n, p.elapsed.Seconds(), p.perSecond(),
			p.percentile(0.50).Round(100*time.Microsecond), p.percentile(0.99).Round(100*time.Microsecond),
			p.cpu.service.Seconds(), p.cpu.serverText(), float64(p.cpu.service.Milliseconds())/float64(p.n))
	}
	ratio := full.perSecond() / ceiling.perSecond()
	verdict := "meets"
	if ratio < 0.5 {
		verdict = "misses"
	}
	fmt.Fprintf(out, "\nratio full/ceiling: %.2f (%s the goal of >= 0.50)\n", ratio, verdict)
	fmt.Fprintf(out, "ceiling: per payment two signal-with-starts of a workflow that counts them, then its result; latency from the second signal to the result\n")
	fmt.Fprintf(out, "full path: per payment POST /orders, POST /orders/{id}/payments, signed POST /webhooks/%s, GET /orders/{id} until COMPLETED; latency from sending the callback to seeing COMPLETED\n", benchGateway)
	return nil
}

// runPhase runs one(i) for i in [0, n) on c goroutines and collects the
// latencies; the first error stops the phase.
func runPhase(ctx context.Context, name string, n, c int, one func(context.Context, int) (time.Duration, error)) (phaseResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				d, err := one(ctx, i)
				if err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
				lat[i] = d
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return phaseResult{}, firstErr
	}
	return phaseResult{name: name, n: n, elapsed: elapsed, latencies: lat}, nil
}

func ceilingOne(ctx context.Context, c client.Client, i int) (time.Duration, error) {
	id := fmt.Sprintf("ceiling/%d", i)
	opts := client.StartWorkflowOptions{ID: id, TaskQueue: ceilingTaskQueue}
	if _, err := c.SignalWithStartWorkflow(ctx, id, ceilingSignal, "attempt", opts, ceilingWorkflow); err != nil {
		return 0, err
	}
	sent := time.Now()
	run, err := c.SignalWithStartWorkflow(ctx, id, ceilingSignal, "result", opts, ceilingWorkflow)
	if err != nil {
		return 0, err
	}
	var n int
	if err := run.Get(ctx, &n); err != nil {
		return 0, err
	}
	if n != 2 {
		return 0, fmt.Errorf("workflow %s counted %d signals", id, n)
	}
	return time.Since(sent), nil
}

type fullPath struct {
	http  *http.Client
	base  string
	token string
}

func (f fullPath) one(ctx context.Context, i int) (time.Duration, error) {
	orderID := fmt.Sprintf("L-%07d", i)
	paymentID := orderID + "-p1"
	if _, err := f.call(ctx, "POST", "/orders", map[string]string{"order_id": orderID, "order_amount": "10.00", "currency": "USD"},
		nil, http.StatusCreated); err != nil {
		return 0, err
	}
	if _, err := f.call(ctx, "POST", "/orders/"+orderID+"/payments", map[string]string{"payment_id": paymentID, "amount": "10.00",
		"method": "CARD", "details": "4242424242424242"}, nil, http.StatusCreated); err != nil {
		return 0, err
	}
	body, _ := json.Marshal(webhook.Result{PaymentID: paymentID, Status: "SUCCESS", Amount: "10.00", GatewayRef: "gw-" + paymentID})
	sent := time.Now()
	sig := webhook.Sign([]byte(benchGatewaySecret), sent, body)
	if _, err := f.call(ctx, "POST", "/webhooks/"+benchGateway, json.RawMessage(body), map[string]string{webhook.Header: sig}, http.StatusOK); err != nil {
		return 0, err
	}
	for {
		b, err := f.call(ctx, "GET", "/orders/"+orderID, nil, nil, http.StatusOK)
		if err != nil {
			return 0, err
		}
		var o struct {
			OrderStatus string `json:"order_status"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return 0, err
		}
		if o.OrderStatus == "COMPLETED" {
			return time.Since(sent), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func (f fullPath) call(ctx context.Context, method, path string, v any, header map[string]string, want int) ([]byte, error) {
	var body io.Reader
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, f.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	return b, nil
}
