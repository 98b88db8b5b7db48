package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/orders"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/internal/stacktest"
)

type downloadStack struct {
	client
	d  *service.Deps
	rt *dbtest.RoundTrips // the API's exchanges with MySQL
}

func newDownloadStack(t *testing.T) downloadStack {
	t.Helper()
	cfg := stacktest.Config(t, stacktest.Temporal(t))
	cfg.APITokens = "ro-token-1:read,pii-token-1:read+pii"
	dsn, rt, err := dbtest.CountRoundTrips(cfg.MySQLDSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MySQLDSN = dsn
	d := stacktest.Deps(t, cfg)
	return downloadStack{client: client{t: t, base: stacktest.API(t, d)}, d: d, rt: rt}
}

// bulkOrders stores n orders O-00000… without customer fields, fast.
func (s downloadStack) bulkOrders(n int) {
	s.t.Helper()
	for start := 0; start < n; start += 1000 {
		var q strings.Builder
		q.WriteString("INSERT INTO orders (order_id, order_amount, currency, created_at, updated_at) VALUES ")
		for i := start; i < min(start+1000, n); i++ {
			if i > start {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, "('O-%05d', %d, 'USD', '2026-02-01 00:00:00', '2026-02-01 00:00:00')", i, 100+i)
		}
		if _, err := s.d.DB.Exec(q.String()); err != nil {
			s.t.Fatal(err)
		}
	}
}

func (s downloadStack) get(path, token string, header map[string]string) *http.Response {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	// No transparent decompression: the test reads Content-Encoding itself.
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp
}

func TestDownloadScopesHeadersAndCompression(t *testing.T) {
	s := newDownloadStack(t)
	ctx := context.Background()
	store := &orders.Store{DB: s.d.DB, Keys: s.d.Keys, BlindIndex: s.d.BlindIndex}
	for i, email := range []string{"jane@example.com", `"odd, one"@example.com`} {
		if _, err := store.Create(ctx, orders.NewOrder{OrderID: fmt.Sprintf("D-%d", i), Amount: 1230, Currency: "USD",
			CustomerEmail: email, CustomerPhone: "+15550100"}); err != nil {
			t.Fatal(err)
		}
	}

	resp := s.get("/download?type=orders&format=csv", "ro-token-1", nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	today := time.Now().UTC().Format("2006-01-02")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="orders-`+today+`.csv"` ||
		resp.Header.Get("X-Payments-Masked") != "customer_email,customer_phone" {
		t.Fatalf("masked download: %d %v", resp.StatusCode, resp.Header)
	}
	if bytes.Contains(body, []byte("jane@example.com")) || !bytes.Contains(body, []byte("j***@example.com")) {
		t.Errorf("read-only token sees:\n%s", body)
	}

	resp = s.get("/download?type=orders&format=csv&status=PENDING", "pii-token-1", map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("X-Payments-Masked") != "" ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), `orders-`+today+`-pending.csv`) {
		t.Fatalf("pii gzip download: %d %v", resp.StatusCode, resp.Header)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	resp.Body.Close()
	if err != nil || !bytes.Contains(plain, []byte(`"""odd, one""@example.com"`)) || !bytes.Contains(plain, []byte("jane@example.com")) {
		t.Errorf("pii download: %v\n%s", err, plain)
	}

	// An empty result is still a whole file of its format.
	for format, want := range map[string]string{
		"json":   "[\n]\n",
		"ndjson": "",
		"xml":    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<orders>\n</orders>\n",
	} {
		resp := s.get("/download?type=orders&status=COMPLETED&format="+format, "pii-token-1", nil)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != want {
			t.Errorf("empty %s: %d %q, want %q", format, resp.StatusCode, b, want)
		}
		if format == "json" {
			var v []any
			if err := json.Unmarshal(b, &v); err != nil || len(v) != 0 {
				t.Errorf("empty json: %v %v", v, err)
			}
		}
	}
}

// Bad parameters are refused with the JSON error before anything is sent.
func TestDownloadRefusesBadParameters(t *testing.T) {
	s := newDownloadStack(t)
	for _, q := range []string{
		"", "?type=orders", "?type=refunds&format=csv", "?type=orders&format=pdf", "?type=orders&format=csv&status=SUCCESS",
		"?type=orders&format=csv&created_from=last-week", "?type=orders&format=csv&created_to=2026-02-30",
		"?type=orders&format=csv&created_from=2026-03-02&created_to=2026-03-01", "?type=orders&format=csv&page=2",
	} {
		resp := s.get("/download"+q, "ro-token-1", nil)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || jsonErrorCode(t, b) != "bad_request" || resp.Header.Get("Content-Disposition") != "" {
			t.Errorf("%q: %d %s", q, resp.StatusCode, b)
		}
	}
	resp := s.get("/download?type=orders&format=csv", "no-such-token", nil)
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("unknown token: %d", resp.StatusCode)
	}
}

// A row that fails in the middle of a download breaks the transfer: a real
// HTTP client sees an error, never a clean end of a short file.
func TestDownloadFailingMidwayIsBroken(t *testing.T) {
	s := newDownloadStack(t)
	s.bulkOrders(12_000)
	// A ciphertext that cannot be decrypted, far past the first page.
	if _, err := s.d.DB.Exec("UPDATE orders SET customer_email = 'garbage' WHERE order_id = 'O-11000'"); err != nil {
		t.Fatal(err)
	}
	for _, enc := range []string{"", "gzip"} {
		resp := s.get("/download?type=orders&format=csv", "pii-token-1", map[string]string{"Accept-Encoding": enc})
		var r io.Reader = resp.Body
		if enc == "gzip" {
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		}
		b, err := io.ReadAll(r)
		resp.Body.Close()
		if resp.StatusCode != 200 || err == nil {
			t.Errorf("%q: %d, read %d bytes and %v; want a broken transfer", enc, resp.StatusCode, len(b), err)
		}
		if !bytes.Contains(b, []byte("O-05000,")) || bytes.Contains(b, []byte("O-11000")) {
			t.Errorf("%q: %d bytes arrived before the break", enc, len(b))
		}
	}
	// Before any row was sent, the same failure is a plain 500.
	if _, err := s.d.DB.Exec("UPDATE orders SET customer_email = 'garbage' WHERE order_id = 'O-00000'"); err != nil {
		t.Fatal(err)
	}
	resp := s.get("/download?type=orders&format=csv", "pii-token-1", nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || jsonErrorCode(t, b) != "internal" || bytes.Contains(b, []byte("garbage")) {
		t.Errorf("failure on the first page: %d %s", resp.StatusCode, b)
	}
}

// A client that goes away stops the download: no page is read after it.
func TestDownloadStopsWhenTheClientGoes(t *testing.T) {
	s := newDownloadStack(t)
	const rows, pageRows = 200_000, 5000
	s.bulkOrders(rows)
	before := s.rt.Load()
	resp := s.get("/download?type=orders&format=json", "pii-token-1", nil)
	if _, err := io.ReadFull(resp.Body, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Wait until the API stops talking to MySQL.
	last := s.rt.Load()
	for quiet := 0; quiet < 10; {
		time.Sleep(50 * time.Millisecond)
		if n := s.rt.Load(); n != last {
			last, quiet = n, 0
		} else {
			quiet++
		}
	}
	// Each page is one query; a download read to its end makes rows/pageRows.
	if pages := last - before; pages >= rows/pageRows/2 {
		t.Errorf("the download read %d pages after its client left (a whole one reads %d)", pages, rows/pageRows)
	}
	// The server keeps serving.
	resp = s.get("/download?type=orders&format=csv&status=COMPLETED", "pii-token-1", nil)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after a client left: %d", resp.StatusCode)
	}
}
