package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/devserver"
)

// readmeOrder is the README's POST /orders body ("Live payments in dev").
const readmeOrder = `{"order_id":"ORD-1001","order_amount":"12.30","currency":"USD","customer_email":"jane@example.com","customer_phone":"+14155550100"}`

var webhookSecretLine = regexp.MustCompile(`Development webhook secret \(gateway devpay\): ([0-9a-f]{64})`)

// The README's live-payment walk-through, command by command, against
// `starter dev` as a process: create an order, pay it, answer as the
// gateway with the development secret, and the order is COMPLETED. Also
// `starter import --name` and the name in `starter imports`.
func TestLivePaymentWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	bin := buildStarter(t)
	ports, err := devserver.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	dataDir := t.TempDir()
	env := []string{
		"PAYMENTS_DATA_DIR=" + dataDir,
		"PAYMENTS_MYSQL_DSN=" + dbtest.DSN(t),
		fmt.Sprintf("TEMPORAL_ADDRESS=127.0.0.1:%d", ports[0]),
		"PAYMENTS_HTTP_ADDR=" + httpAddr,
		fmt.Sprintf("PAYMENTS_UI_ADDR=127.0.0.1:%d", ports[2]),
		"PAYMENTS_KEYS=", "PAYMENTS_KEYS_FILE=", "PAYMENTS_BLIND_INDEX_KEY=", "PAYMENTS_API_TOKENS=",
		"PAYMENTS_WEBHOOK_SECRETS=",
	}
	p := startDev(t, bin, env)
	waitReady(t, p, "http://"+httpAddr+"/readyz")

	m := webhookSecretLine.FindStringSubmatch(p.output())
	if m == nil {
		t.Fatalf("no development webhook secret printed:\n%s", p.output())
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "dev-webhook-secret")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dev-webhook-secret: %v %v", fi, err)
	}
	if strings.Contains(p.stderr.String(), m[1]) {
		t.Fatal("the webhook secret appears in the logs")
	}
	tm := tokenLine.FindStringSubmatch(p.output())
	if tm == nil {
		t.Fatalf("no development token printed:\n%s", p.output())
	}

	cli := func(args ...string) (int, string, string) { return cliRun(t, env, args...) }

	// 1. curl -X POST /orders with the README's body.
	req, _ := http.NewRequest("POST", "http://"+httpAddr+"/orders", strings.NewReader(readmeOrder))
	req.Header.Set("Authorization", "Bearer "+tm[1])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /orders: %d", resp.StatusCode)
	}
	// 2. starter pay.
	if code, out, errOut := cli("pay", "ORD-1001", "--amount", "12.30", "--method", "CARD", "--payment-id", "PAY-1001"); code != 0 {
		t.Fatalf("pay: %d %s %s", code, out, errOut)
	}
	// 3. starter gateway callback, the amount looked up.
	code, out, errOut := cli("gateway", "callback", "PAY-1001", "--status", "SUCCESS", "--ref", "devpay-1001")
	if code != 0 || !strings.Contains(errOut, "SUCCESS for payment PAY-1001 sent as gateway devpay") {
		t.Fatalf("gateway callback: %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	// 4. starter order: COMPLETED once the workflow has applied the result.
	deadline := time.Now().Add(time.Minute)
	for {
		code, out, errOut = cli("order", "ORD-1001")
		if code == 0 && strings.Contains(out, `"order_status": "COMPLETED"`) && strings.Contains(out, `"payment_status": "SUCCESS"`) &&
			strings.Contains(out, `"gateway_ref": "devpay-1001"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order never COMPLETED: %d\n%s%s", code, out, errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The same callback again is a no-op, and still a 2xx.
	if code, out, errOut := cli("gateway", "callback", "PAY-1001", "--status", "SUCCESS", "--amount", "12.30", "--ref", "devpay-1001"); code != 0 {
		t.Fatalf("repeated callback: %d %s %s", code, out, errOut)
	}
	// A result the service refuses is exit 1 with its reason; bad usage is 2.
	if code, _, errOut := cli("gateway", "callback", "PAY-1001", "--status", "SUCCESS", "--amount", "12.345"); code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("amount finer than the currency: exit %d %q", code, errOut)
	}
	if code, _, errOut := cli("gateway", "callback", "PAY-1001", "--status", "SUCCESS", "--gateway", "other"); code != 1 || !strings.Contains(errOut, "other") {
		t.Fatalf("unknown gateway: exit %d %q", code, errOut)
	}
	for _, args := range [][]string{
		{"gateway", "callback", "PAY-1001"},
		{"gateway", "callback", "PAY-1001", "--status", "MAYBE"},
		{"gateway", "callback", "--status", "SUCCESS"},
		{"gateway", "callback", "PAY-1001", "--status", "SUCCESS", "--amount", "12,30"},
	} {
		if code, _, errOut := cli(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%q)", args, code, errOut)
		}
	}

	// starter import --name: the name shows in starter imports.
	file := filepath.Join(t.TempDir(), "orders.csv")
	if code, _, errOut := cli("gen", "orders", "--count", "20", "-o", file); code != 0 {
		t.Fatalf("gen: %d %s", code, errOut)
	}
	if code, out, errOut := cli("import", file, "--name", "march\x1b[2J orders.csv", "--wait"); code != 0 {
		t.Fatalf("import --name: %d %s %s", code, out, errOut)
	}
	if code, out, _ := cli("imports"); code != 0 || !strings.Contains(out, "march[2J orders.csv") || strings.Contains(out, "\x1b") {
		t.Fatalf("imports: %d %q", code, out)
	}
	p.stop(t)
}
