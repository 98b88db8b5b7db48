package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/acme/payments/internal/api"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/stacktest"
)

// The OpenAPI document served at /openapi.json names every route of the
// real route table with its methods and query parameters, and nothing else.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	s := newServer(t)
	resp, body := do(t, s.Handler(), "GET", "/openapi.json", "", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("/openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	type param struct{ Name, In string }
	type operation struct {
		Parameters []param        `json:"parameters"`
		Responses  map[string]any `json:"responses"`
	}
	var doc struct {
		OpenAPI string                          `json:"openapi"`
		Paths   map[string]map[string]operation `json:"paths"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	inRoutes := map[string]bool{}
	for _, rt := range s.Routes() {
		key := rt.Method + " " + rt.Path
		inRoutes[key] = true
		op, ok := doc.Paths[rt.Path][strings.ToLower(rt.Method)]
		if !ok {
			t.Errorf("route %s is not in the OpenAPI document", key)
			continue
		}
		var query []string
		for _, p := range op.Parameters {
			switch p.In {
			case "query":
				query = append(query, p.Name)
			case "path":
				if !strings.Contains(rt.Path, "{"+p.Name+"}") {
					t.Errorf("%s: documented path parameter %s is not in the path", key, p.Name)
				}
			}
		}
		sort.Strings(query)
		want := slices.Clone(rt.Query)
		sort.Strings(want)
		if !slices.Equal(query, want) {
			t.Errorf("%s: documented query parameters %v, the route takes %v", key, query, want)
		}
		if len(op.Responses) == 0 {
			t.Errorf("%s: no responses documented", key)
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if key := strings.ToUpper(method) + " " + path; !inRoutes[key] {
				t.Errorf("the OpenAPI document has %s, the router does not", key)
			}
		}
	}
}

// A registered path with another method is a JSON 405 with Allow; an
// unknown path a JSON 404.
func TestWrongMethodIs405(t *testing.T) {
	h := newServer(t).Handler()
	for _, c := range []struct{ method, path, allow string }{
		{"DELETE", "/orders/X", "GET"},
		{"PUT", "/orders", "POST"},
		{"GET", "/upload", "POST"},
		{"POST", "/healthz", "GET"},
		{"GET", "/webhooks/acme", "POST"},
		{"GET", "/codec/decode", "POST"},
	} {
		resp, body := do(t, h, c.method, c.path, "", nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), c.allow) {
			t.Errorf("%s %s: %d Allow %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"))
		}
		var e api.ErrorBody
		if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != "method_not_allowed" {
			t.Errorf("%s %s: body %s", c.method, c.path, body)
		}
	}
	resp, body := do(t, h, "DELETE", "/no/such/thing", "", nil)
	if resp.StatusCode != 404 || !strings.Contains(body, `"not_found"`) || resp.Header.Get("Allow") != "" {
		t.Fatalf("unknown path: %d %s", resp.StatusCode, body)
	}
}

// Unknown, repeated and bad query parameters are 400s that name the
// parameter, before the handler runs (this server has no database).
func TestBadQueryIs400(t *testing.T) {
	h := newServer(t).Handler()
	for _, c := range []struct{ path, names string }{
		{"/imports?bogus=1", `"bogus"`},
		{"/imports?state=NOPE", `"state"`},
		{"/imports?limit=0", `"limit"`},
		{"/imports?limit=1001", `"limit"`},
		{"/imports?limit=ten", `"limit"`},
		{"/imports?limit=1&limit=2", `"limit"`},
		{"/imports?cursor=not-a-cursor", `"cursor"`},
		{"/exports?state=FAILED", `"state"`},
		{"/exports?cursor=", `"cursor"`},
		{"/imports/X?verbose=1", `"verbose"`},
		{"/orders/X?expand=payments", `"expand"`},
		{"/orders?customer_email=a@example.com&status=PENDING", `"status"`},
	} {
		resp, body := do(t, h, "GET", c.path, "reader-token", nil)
		var e api.ErrorBody
		if resp.StatusCode != 400 || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != "bad_request" ||
			!strings.Contains(e.Error.Message, c.names) {
			t.Errorf("%s: %d %s", c.path, resp.StatusCode, body)
		}
	}
	// Without a token the answer is still 401: the query is checked after.
	if resp, _ := do(t, h, "GET", "/imports?bogus=1", "", nil); resp.StatusCode != 401 {
		t.Errorf("no token: %d", resp.StatusCode)
	}
}

func TestVersion(t *testing.T) {
	resp, body := do(t, newServer(t).Handler(), "GET", "/version", "", nil)
	var v struct{ Module, Version, GoVersion string }
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &v) != nil || v.Module == "" || v.Version == "" {
		t.Fatalf("/version: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, newServer(t).Handler(), "GET", "/version?x=1", "", nil); resp.StatusCode != 400 {
		t.Fatalf("/version?x=1: %d", resp.StatusCode)
	}
}

// send is client.do with request headers and the response's.
func (c client) send(method, path, token string, header map[string]string, body string) (int, http.Header, []byte) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// pages follows next_cursor from path, returning every page's item count
// and all items' id field.
func (c client) pages(path, list, id string) (sizes []int, ids []string) {
	c.t.Helper()
	cursor := ""
	for range 20 {
		p := path
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		code, body := c.do("GET", p, "ro-token-1", "", nil)
		if code != 200 {
			c.t.Fatalf("GET %s: %d %s", p, code, body)
		}
		var page map[string]json.RawMessage
		if err := json.Unmarshal(body, &page); err != nil {
			c.t.Fatal(err)
		}
		var items []map[string]any
		if err := json.Unmarshal(page[list], &items); err != nil {
			c.t.Fatalf("%s: %s", p, body)
		}
		sizes = append(sizes, len(items))
		for _, it := range items {
			ids = append(ids, it[id].(string))
		}
		raw, more := page["next_cursor"]
		if !more {
			return sizes, ids
		}
		if err := json.Unmarshal(raw, &cursor); err != nil || cursor == "" {
			c.t.Fatalf("%s: next_cursor %s", p, raw)
		}
	}
	c.t.Fatalf("%s: more than 20 pages", path)
	return nil, nil
}

// Uploads that are no import file are refused at once, before any job;
// every list pages with limit and cursor; lists and look-ups refuse bad
// values with 400.
func TestUploadSniffAndPagination(t *testing.T) {
	c := apiStack(t, 1<<20, 100)
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"empty", "", 400, "empty_file"},
		{"only whitespace", " \r\n\t\n", 400, "empty_file"},
		{"png", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 415, "unsupported_media_type"},
		// In the header line: a NUL or invalid UTF-8 in a later row is that
		// row's reject (internal/ingest.Sniff).
		{"NUL bytes", "order_id,order_amount\x00\nA,1\n", 415, "unsupported_media_type"},
		{"invalid UTF-8", "order_id,\xff\xfeorder_amount\nA,1\n", 415, "unsupported_media_type"},
		{"text without a header line", "hello world\nsecond line\n", 415, "unsupported_media_type"},
	} {
		code, body := c.do("POST", "/upload", "rw-token-1", "text/csv", strings.NewReader(tc.body))
		if code != tc.status || jsonErrorCode(t, body) != tc.code {
			t.Errorf("%s: %d %s", tc.name, code, body)
		}
	}
	if sizes, _ := c.pages("/imports?limit=10", "imports", "import_id"); !slices.Equal(sizes, []int{0}) {
		t.Fatalf("refused uploads created imports: pages %v", sizes)
	}

	// XML after a BOM and blank lines, and CSV with a BOM, are taken.
	var ids []string
	for i, f := range []string{
		"\xef\xbb\xbf\n  <orders><order><order_id>X-1</order_id><order_amount>1.00</order_amount><customer_email>pager@example.com</customer_email></order></orders>",
		"\xef\xbb\xbforder_id,order_amount,customer_email\nX-2,2.00,PAGER@example.com\n",
		"order_id,order_amount,customer_email\nX-3,3.00,pager@example.com\n",
		"order_id,order_amount,customer_email\nX-4,4.00,pager@example.com\nX-5,5.00,pager@example.com\nX-6,0,pager@example.com\n",
	} {
		code, body := c.do("POST", "/upload", "rw-token-1", "application/octet-stream", strings.NewReader(f))
		if code != http.StatusAccepted {
			t.Fatalf("file %d: %d %s", i, code, body)
		}
		ids = append(ids, jsonField(t, body, "import_id"))
	}
	for _, id := range ids {
		if j := c.waitDone(id); j.State != importer.StateCompleted {
			t.Fatalf("import %+v", j)
		}
	}
	c.t.Logf("imports %v", ids)

	// Imports, newest first, in pages of 3: every import once.
	sizes, listed := c.pages("/imports?limit=3", "imports", "import_id")
	if !slices.Equal(sizes, []int{3, 1}) || len(listed) != 4 {
		t.Fatalf("import pages %v %v", sizes, listed)
	}
	slices.Sort(listed)
	slices.Sort(ids)
	if !slices.Equal(listed, ids) {
		t.Fatalf("paged imports %v, uploaded %v", listed, ids)
	}
	if sizes, _ := c.pages("/imports?limit=2&state=COMPLETED", "imports", "import_id"); !slices.Equal(sizes, []int{2, 2}) {
		t.Fatalf("COMPLETED pages %v", sizes)
	}
	if sizes, _ := c.pages("/imports?state=FAILED", "imports", "import_id"); !slices.Equal(sizes, []int{0}) {
		t.Fatalf("FAILED pages %v", sizes)
	}

	// Orders by email, oldest first, in pages of 2 (X-6 was rejected).
	sizes, orderIDs := c.pages("/orders?customer_email=pager@example.com&limit=2", "orders", "order_id")
	slices.Sort(orderIDs)
	if !slices.Equal(sizes, []int{2, 2, 1}) || !slices.Equal(orderIDs, []string{"X-1", "X-2", "X-3", "X-4", "X-5"}) {
		t.Fatalf("order pages %v %v", sizes, orderIDs)
	}
	for _, q := range []string{"customer_email=foo", "customer_email=", "customer_email=a@example.com&limit=-1"} {
		code, body := c.do("GET", "/orders?"+q, "ro-token-1", "", nil)
		if code != 400 || jsonErrorCode(t, body) != "bad_request" || strings.Contains(string(body), "foo") {
			t.Errorf("GET /orders?%s: %d %s", q, code, body)
		}
	}

	// Exports page the same way.
	if sizes, _ := c.pages("/exports?limit=5", "exports", "export_id"); !slices.Equal(sizes, []int{0}) {
		t.Fatalf("export pages %v", sizes)
	}
	for _, f := range []string{"csv", "xml", "json"} {
		if code, body := c.do("POST", "/exports?type=orders&format="+f, "rw-token-1", "", nil); code != http.StatusAccepted {
			t.Fatalf("export %s: %d %s", f, code, body)
		}
	}
	if sizes, _ := c.pages("/exports?limit=2", "exports", "export_id"); !slices.Equal(sizes, []int{2, 1}) {
		t.Fatalf("export pages %v", sizes)
	}
}

// Idempotency-Key replays the first answer, refuses the key with another
// request, and is scoped per token.
func TestIdempotencyKey(t *testing.T) {
	cfg := stacktest.Config(t, stacktest.Temporal(t))
	cfg.APITokens = "rw-token-1:read+write,rw-token-2:read+write,ro-token-1:read"
	d := stacktest.Deps(t, cfg)
	stacktest.Worker(t, d)
	c := client{t: t, base: stacktest.API(t, d)}
	order := `{"order_id":"I-1","order_amount":"10.00","currency":"USD","customer_email":"idem@example.com"}`
	key := map[string]string{"Idempotency-Key": "order-I-1-attempt"}
	code, h, first := c.send("POST", "/orders", "rw-token-1", key, order)
	if code != http.StatusCreated || h.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d %s", code, first)
	}
	// The same request, spaced and ordered differently: the first answer.
	respaced := `{ "currency":"USD", "order_amount":"10.00", "order_id":"I-1", "customer_email":"idem@example.com" }`
	code, h, again := c.send("POST", "/orders", "rw-token-1", key, respaced)
	if code != http.StatusCreated || !bytes.Equal(again, first) || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s, first %s", code, again, first)
	}
	// Without the key the same body is the usual 200.
	if code, _, _ := c.send("POST", "/orders", "rw-token-1", nil, order); code != http.StatusOK {
		t.Fatalf("no key: %d", code)
	}
	// The same key with another request: refused, nothing stored.
	other := `{"order_id":"I-2","order_amount":"10.00","currency":"USD"}`
	code, _, body := c.send("POST", "/orders", "rw-token-1", key, other)
	if code != http.StatusUnprocessableEntity || jsonErrorCode(t, body) != "idempotency_key_reused" {
		t.Fatalf("reused key: %d %s", code, body)
	}
	if code, _ := c.do("GET", "/orders/I-2", "ro-token-1", "", nil); code != 404 {
		t.Fatalf("I-2 was created: %d", code)
	}
	// A bad key is a 400.
	if code, _, body := c.send("POST", "/orders", "rw-token-1", map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, other); code != 400 {
		t.Fatalf("long key: %d %s", code, body)
	}

	// Payments, with the canonical field names.
	pay := `{"payment_id":"I-1-p1","payment_amount":"4.00","payment_method":"CARD","payment_details":"4242424242424242"}`
	pkey := map[string]string{"Idempotency-Key": "pay-1"}
	code, _, first = c.send("POST", "/orders/I-1/payments", "rw-token-1", pkey, pay)
	if code != http.StatusCreated || jsonField(t, first, "payment_amount") != "4.00" || jsonField(t, first, "payment_method") != "CARD" {
		t.Fatalf("payment: %d %s", code, first)
	}
	code, h, again = c.send("POST", "/orders/I-1/payments", "rw-token-1", pkey, pay)
	if code != http.StatusCreated || !bytes.Equal(again, first) || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("payment replay: %d %s", code, again)
	}
	// The same key on another order's path is another request.
	if code, _, body := c.send("POST", "/orders/I-9/payments", "rw-token-1", pkey, pay); code != http.StatusUnprocessableEntity {
		t.Fatalf("key on another path: %d %s", code, body)
	}
	changed := strings.Replace(pay, "4.00", "5.00", 1)
	if code, _, body := c.send("POST", "/orders/I-1/payments", "rw-token-1", pkey, changed); code != http.StatusUnprocessableEntity {
		t.Fatalf("key with another amount: %d %s", code, body)
	}
	// Keys are per token: another caller's same key is its own request.
	if code, h, body := c.send("POST", "/orders/I-1/payments", "rw-token-2", pkey, changed); code == http.StatusUnprocessableEntity || h.Get("Idempotent-Replayed") != "" {
		t.Fatalf("another token's key: %d %s", code, body)
	}

	// The deprecated names still work, and both names must agree.
	old := `{"payment_id":"I-1-p2","amount":"1.00","method":"UPI","details":"alice@upi"}`
	if code, _, body := c.send("POST", "/orders/I-1/payments", "rw-token-1", nil, old); code != http.StatusCreated ||
		jsonField(t, body, "payment_amount") != "1.00" || jsonField(t, body, "payment_method") != "UPI" {
		t.Fatalf("deprecated names: %d %s", code, body)
	}
	both := `{"payment_id":"I-1-p3","payment_amount":"1.00","amount":"2.00","payment_method":"UPI"}`
	if code, _, body := c.send("POST", "/orders/I-1/payments", "rw-token-1", nil, both); code != 400 || !strings.Contains(string(body), "payment_amount") {
		t.Fatalf("disagreeing names: %d %s", code, body)
	}
}
