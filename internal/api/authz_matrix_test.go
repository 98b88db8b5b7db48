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
	"time"

	"github.com/acme/payments/internal/api"
	"github.com/acme/payments/internal/auth"
	"github.com/acme/payments/internal/mask"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/internal/stacktest"
	"github.com/acme/payments/internal/webhook"
)

// publicRoutes are the routes SPEC section 6 lets anyone call, and why. A
// route is public only by being named here.
var publicRoutes = map[string]string{
	"GET /healthz":             "liveness probe",
	"GET /readyz":              "readiness probe",
	"GET /metrics":             "Prometheus scrape",
	"GET /version":             "build information",
	"GET /openapi.json":        "the API's own description",
	"POST /webhooks/{gateway}": "gateways authenticate by signature, not token",
	"OPTIONS /codec/encode":    "CORS preflight: browsers send no credentials on it",
	"OPTIONS /codec/decode":    "CORS preflight: browsers send no credentials on it",
}

// requiredScope is SPEC sections 4 and 6 as a rule on a route's method and
// path: the payload codec takes pii or the UI's codec-only credential, GET
// endpoints need read, and uploads, orders, payments, exports and cancels
// write. A call is allowed with any one of scopes. ok is false for a route
// the rule does not classify, which fails the test: a new route needs a
// decision.
func requiredScope(method, path string) (scopes auth.Scopes, public, ok bool) {
	if _, pub := publicRoutes[method+" "+path]; pub {
		return nil, true, true
	}
	switch {
	case method == http.MethodPost && strings.HasPrefix(path, "/codec/"):
		return auth.Scopes{auth.PII, auth.Codec}, false, true
	case method == http.MethodGet:
		return auth.Scopes{auth.Read}, false, true
	case method == http.MethodPost && (path == "/upload" || path == "/orders" || path == "/exports" ||
		strings.HasPrefix(path, "/orders/") && strings.HasSuffix(path, "/payments") ||
		strings.HasSuffix(path, "/cancel")):
		return auth.Scopes{auth.Write}, false, true
	}
	return nil, false, false
}

// credential is one way of calling the API in the matrix.
type credential struct {
	name   string
	token  string // "" sends no Authorization header
	known  bool   // the token is configured
	scopes auth.Scopes
}

// Tokens of the matrix, one per scope combination.
const (
	tokRead    = "authz-read-token"
	tokWrite   = "authz-write-token"
	tokPII     = "authz-pii-token"
	tokReadPII = "authz-readpii-token"
	tokAll     = "authz-all-token"
	tokCodec   = "authz-codec-token"
	matrixUI   = "http://127.0.0.1:8233"
	matrixGW   = "authz-gw"
)

var matrixSecret = []byte("authz-webhook-secret")

// matrixCredentials returns the credentials and the PAYMENTS_API_TOKENS
// spec that configures them.
func matrixCredentials() ([]credential, string) {
	creds := []credential{
		{name: "no token"},
		{name: "unknown token", token: "authz-unknown-token"},
		{name: "read", token: tokRead, known: true, scopes: auth.Scopes{auth.Read}},
		{name: "write", token: tokWrite, known: true, scopes: auth.Scopes{auth.Write}},
		{name: "pii", token: tokPII, known: true, scopes: auth.Scopes{auth.PII}},
		{name: "read+pii", token: tokReadPII, known: true, scopes: auth.Scopes{auth.Read, auth.PII}},
		{name: "all scopes", token: tokAll, known: true, scopes: auth.Scopes{auth.Read, auth.Write, auth.PII}},
		{name: "codec only", token: tokCodec, known: true, scopes: auth.Scopes{auth.Codec}},
	}
	var spec []string
	for _, c := range creds {
		if c.known {
			spec = append(spec, c.token+":"+c.scopes.String())
		}
	}
	return creds, strings.Join(spec, ",")
}

type matrixStack struct {
	client
	routes []api.Route
}

func newMatrixStack(t *testing.T, tokens string) matrixStack {
	t.Helper()
	cfg := stacktest.Config(t, stacktest.Temporal(t))
	cfg.APITokens = tokens
	cfg.WebhookSecrets = matrixGW + ":" + string(matrixSecret)
	cfg.CodecCORSOrigins = []string{matrixUI}
	d := stacktest.Deps(t, cfg)
	stacktest.Worker(t, d)
	s, err := service.APIServer(d)
	if err != nil {
		t.Fatal(err)
	}
	return matrixStack{client: client{t: t, base: stacktest.API(t, d)}, routes: s.Routes()}
}

// call sends one request with cred and returns status, headers and body.
func (m matrixStack) call(method, path string, cred credential, header map[string]string, body []byte) (int, http.Header, []byte) {
	m.t.Helper()
	req, err := http.NewRequest(method, m.base+path, bytes.NewReader(body))
	if err != nil {
		m.t.Fatal(err)
	}
	if cred.token != "" {
		req.Header.Set("Authorization", "Bearer "+cred.token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		m.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		m.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, b
}

// probe is a harmless request on rt: ids that match nothing and bodies
// its handler refuses (or the codec's empty list), so that an allowed call
// answers 2xx or 4xx from the handler and changes nothing.
func probe(rt api.Route) (path string, header map[string]string, body []byte) {
	path = strings.NewReplacer("{id}", "authz-missing", "{gateway}", matrixGW).Replace(rt.Path)
	header = map[string]string{"Content-Type": "application/json"}
	body = []byte(`{}`)
	switch {
	case rt.Method == http.MethodOptions:
		header = map[string]string{"Origin": matrixUI, "Access-Control-Request-Method": "POST"}
		body = nil
	case strings.HasPrefix(rt.Path, "/codec/"):
		body = []byte(`{"payloads":[]}`)
	case strings.HasPrefix(rt.Path, "/webhooks/"):
		// Signed, so the call passes the signature check and meets the
		// handler's own validation.
		header["X-Signature"] = webhook.Sign(matrixSecret, time.Now(), body)
	case rt.Method == http.MethodGet:
		body = nil
	}
	return path, header, body
}

// Every route of the router's own table, called with every credential,
// answers as SPEC section 6 says: public routes the same whoever calls,
// 401 without a configured token, 403 without the scope, and otherwise the
// handler's own answer. Then every response carrying a sensitive field is
// masked without pii and plaintext with it.
func TestAuthorizationMatrix(t *testing.T) {
	creds, spec := matrixCredentials()
	m := newMatrixStack(t, spec)

	inTable := map[string]bool{}
	for _, rt := range m.routes {
		inTable[rt.Method+" "+rt.Path] = true
	}
	for key := range publicRoutes {
		if !inTable[key] {
			t.Errorf("publicRoutes names %s, which the route table does not have", key)
		}
	}

	t.Run("matrix", func(t *testing.T) {
		m := m
		m.t = t
		for _, rt := range m.routes {
			key := rt.Method + " " + rt.Path
			scopes, public, ok := requiredScope(rt.Method, rt.Path)
			if !ok {
				t.Errorf("route %s is not classified by requiredScope: decide its scope (SPEC section 6)", key)
				continue
			}
			// The table's Scope is what the mux enforces; the codec wraps
			// its own check, which the calls below exercise.
			if !strings.HasPrefix(rt.Path, "/codec/") && (rt.Scope != "" || len(scopes) > 0) && !slices.Equal(auth.Scopes{rt.Scope}, scopes) {
				t.Errorf("%s: the route table says scope %q, SPEC section 6 %q", key, rt.Scope, scopes)
			}
			path, header, body := probe(rt)
			publicStatus := 0
			for _, c := range creds {
				code, h, got := m.call(rt.Method, path, c, header, body)
				where := key + " as " + c.name
				if code >= 500 {
					t.Errorf("%s: %d %s", where, code, got)
					continue
				}
				switch want := expect(scopes, public, c); want {
				case http.StatusUnauthorized:
					if code != want || jsonErrorCode(t, got) != "unauthorized" || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
						t.Errorf("%s: %d %q %s, want 401 with a Bearer challenge", where, code, h.Get("WWW-Authenticate"), got)
					}
				case http.StatusForbidden:
					if code != want || jsonErrorCode(t, got) != "forbidden" {
						t.Errorf("%s: %d %s, want 403 forbidden", where, code, got)
					}
				default: // allowed: the handler answered
					if code == http.StatusUnauthorized && h.Get("WWW-Authenticate") != "" || code == http.StatusForbidden {
						t.Errorf("%s: %d %s, want the handler's answer", where, code, got)
					}
					if public {
						if publicStatus == 0 {
							publicStatus = code
						} else if code != publicStatus {
							t.Errorf("%s: %d, %d with no token: a public route must not depend on the caller", where, code, publicStatus)
						}
					}
				}
			}
		}
	})

	t.Run("masking", func(t *testing.T) {
		m := m
		m.t = t
		testMasking(t, m, creds)
	})
}

// expect is the status class a call must get: 401, 403, or 0 for allowed.
func expect(scopes auth.Scopes, public bool, c credential) int {
	switch {
	case public:
		return 0
	case !c.known:
		return http.StatusUnauthorized
	case !c.scopes.HasAny(scopes...):
		return http.StatusForbidden
	}
	return 0
}

// sensitive is one customer or payment value the masking test stores.
type sensitive struct {
	name   string
	plain  string
	masked string
	// leaks are parts of plain that a masked response must not hold.
	leaks []string
}

const (
	mOrderID  = "AZ-1"
	mPayID    = "AZ-1-p1"
	mEmail    = "matrix.jane@example.com"
	mPhone    = "+15550104477"
	mCard     = "4000056655665556"
	mRejEmail = "leak.rejected@example.com"
)

var (
	sEmail = sensitive{"customer_email", mEmail, mask.Email(mEmail), []string{mEmail, "matrix.jane"}}
	sPhone = sensitive{"customer_phone", mPhone, mask.Phone(mPhone), []string{mPhone, "1555010"}}
	sCard  = sensitive{"payment_details", mCard, mask.Details(mCard), []string{mCard, "40000566", "55665556"}}
)

// checkShown fails unless body shows every value masked (pii false) or in
// plaintext (pii true).
func checkShown(t *testing.T, what string, body []byte, pii bool, values ...sensitive) {
	t.Helper()
	for _, v := range values {
		if pii {
			if !bytes.Contains(body, []byte(v.plain)) {
				t.Errorf("%s with pii: %s %q is not shown:\n%s", what, v.name, v.plain, clip(body))
			}
			continue
		}
		for _, l := range v.leaks {
			if bytes.Contains(body, []byte(l)) {
				t.Errorf("%s without pii: %s leaks %q:\n%s", what, v.name, l, clip(body))
			}
		}
		if !bytes.Contains(body, []byte(v.masked)) {
			t.Errorf("%s without pii: %s masked as %q is not shown:\n%s", what, v.name, v.masked, clip(body))
		}
	}
}

// checkNoLeak fails if body holds any part of any sensitive value.
func checkNoLeak(t *testing.T, what string, body []byte) {
	t.Helper()
	for _, v := range []sensitive{sEmail, sPhone, sCard} {
		for _, l := range v.leaks {
			if bytes.Contains(body, []byte(l)) {
				t.Errorf("%s: leaks %s %q:\n%s", what, v.name, l, clip(body))
			}
		}
	}
	if bytes.Contains(body, []byte(mRejEmail)) || bytes.Contains(body, []byte("leak.rejected")) {
		t.Errorf("%s: leaks the rejected row's email:\n%s", what, clip(body))
	}
}

func clip(b []byte) []byte {
	if len(b) > 2000 {
		return append(b[:2000:2000], "…"...)
	}
	return b
}

func testMasking(t *testing.T, m matrixStack, creds []credential) {
	byName := map[string]credential{}
	for _, c := range creds {
		byName[c.name] = c
	}
	read, write, readPII, all := byName["read"], byName["write"], byName["read+pii"], byName["all scopes"]
	jsonCT := map[string]string{"Content-Type": "application/json"}

	// Data through the API: a write-only caller's answers are masked, the
	// same request again from an all-scope caller shows plaintext.
	order := []byte(`{"order_id":"` + mOrderID + `","order_amount":"50.00","currency":"USD","customer_email":"` + mEmail + `","customer_phone":"` + mPhone + `"}`)
	code, _, body := m.call("POST", "/orders", write, jsonCT, order)
	if code != http.StatusCreated {
		t.Fatalf("create order: %d %s", code, body)
	}
	checkShown(t, "POST /orders (write)", body, false, sEmail, sPhone)
	code, _, body = m.call("POST", "/orders", all, jsonCT, order)
	if code != http.StatusOK {
		t.Fatalf("create order again: %d %s", code, body)
	}
	checkShown(t, "POST /orders again (all scopes)", body, true, sEmail, sPhone)

	pay := []byte(`{"payment_id":"` + mPayID + `","payment_amount":"20.00","payment_method":"CARD","payment_details":"` + mCard + `"}`)
	code, _, body = m.call("POST", "/orders/"+mOrderID+"/payments", write, jsonCT, pay)
	if code != http.StatusCreated {
		t.Fatalf("create payment: %d %s", code, body)
	}
	checkShown(t, "POST /orders/{id}/payments (write)", body, false, sCard)
	code, _, body = m.call("POST", "/orders/"+mOrderID+"/payments", all, jsonCT, pay)
	if code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("create payment again: %d %s", code, body)
	}
	checkShown(t, "POST /orders/{id}/payments again (all scopes)", body, true, sCard)

	// An import whose bad rows hold sensitive values where they do not
	// belong: a card number as the payment method, an email next to a bad
	// amount. Rejects name the field and the rule, never the value.
	file := "payment_id,order_id,payment_amount,payment_method,payment_details\n" +
		"AZ-R1," + mOrderID + ",1.00," + mCard + ",\n" +
		"AZ-R2," + mOrderID + "," + mRejEmail + ",CARD," + mCard + "\n"
	code, _, body = m.call("POST", "/upload", write, map[string]string{"Content-Type": "text/csv"}, []byte(file))
	if code != http.StatusAccepted {
		t.Fatalf("upload: %d %s", code, body)
	}
	importID := jsonField(t, body, "import_id")
	m.waitState(read, "/imports/"+importID)
	// Both rows are rejects, or the rejects checks below check nothing.
	if _, _, body := m.call("GET", "/imports/"+importID, read, nil, nil); !bytes.Contains(body, []byte(`"rows_rejected":2`)) {
		t.Fatalf("import of two bad rows: %s", body)
	}
	if _, _, body := m.call("GET", "/imports/"+importID+"/rejects", read, nil, nil); bytes.Count(body, []byte("\n")) != 3 {
		t.Fatalf("rejects of two bad rows:\n%s", body)
	}

	// Exports: a write-only caller's is masked, an all-scope caller's not.
	exports := map[bool]map[string]string{false: {}, true: {}}
	for _, pii := range []bool{false, true} {
		caller := write
		if pii {
			caller = all
		}
		for _, q := range []string{"type=orders&format=json", "type=payments&format=csv"} {
			code, _, body := m.call("POST", "/exports?"+q, caller, nil, nil)
			if code != http.StatusAccepted {
				t.Fatalf("export %s (pii %v): %d %s", q, pii, code, body)
			}
			exports[pii][q] = jsonField(t, body, "export_id")
		}
	}
	for _, byQuery := range exports {
		for _, id := range byQuery {
			if state := m.waitState(read, "/exports/"+id); state != "COMPLETED" {
				t.Fatalf("export %s: %s", id, state)
			}
		}
	}

	// Every GET route of the table, as a caller without pii, with real
	// ids: nothing sensitive in the clear. A new GET route is swept too,
	// or fails here for want of a sample request.
	samples := map[string][]string{
		"/orders/{id}":          {"/orders/" + mOrderID},
		"/orders":               {"/orders?customer_email=" + url.QueryEscape(mEmail)},
		"/imports":              {"/imports"},
		"/imports/{id}":         {"/imports/" + importID},
		"/imports/{id}/rejects": {"/imports/" + importID + "/rejects"},
		"/exports":              {"/exports"},
		"/exports/{id}":         {"/exports/" + exports[false]["type=orders&format=json"], "/exports/" + exports[true]["type=orders&format=json"]},
		"/download":             nil,
		"/healthz":              {"/healthz"},
		"/readyz":               {"/readyz"},
		"/metrics":              {"/metrics"},
		"/version":              {"/version"},
		"/openapi.json":         {"/openapi.json"},
		"/exports/{id}/file": {
			"/exports/" + exports[false]["type=orders&format=json"] + "/file",
			"/exports/" + exports[false]["type=payments&format=csv"] + "/file",
		},
	}
	for _, typ := range []string{"orders", "payments"} {
		for _, f := range []string{"csv", "xml", "json", "ndjson"} {
			samples["/download"] = append(samples["/download"], "/download?type="+typ+"&format="+f)
		}
	}
	var swept []string
	for _, rt := range m.routes {
		if rt.Method != http.MethodGet {
			continue
		}
		paths, ok := samples[rt.Path]
		if !ok {
			t.Errorf("GET %s has no sample request in the masking sweep: add one", rt.Path)
			continue
		}
		for _, p := range paths {
			code, _, body := m.call("GET", p, read, nil, nil)
			if code != http.StatusOK {
				t.Errorf("GET %s (read): %d %s", p, code, clip(body))
			}
			checkNoLeak(t, "GET "+p+" (read)", body)
			swept = append(swept, p)
		}
	}
	sort.Strings(swept)
	t.Logf("swept %d GET responses without pii: %v", len(swept), swept)

	// And the responses that carry the values show them masked or not by
	// the caller's scope.
	for _, c := range []credential{read, readPII, all} {
		pii := c.scopes.Has(auth.PII)
		_, _, body := m.call("GET", "/orders/"+mOrderID, c, nil, nil)
		checkShown(t, "GET /orders/{id} as "+c.name, body, pii, sEmail, sPhone, sCard)
		_, _, body = m.call("GET", "/orders?customer_email="+url.QueryEscape(mEmail), c, nil, nil)
		checkShown(t, "GET /orders?customer_email as "+c.name, body, pii, sEmail, sPhone)
		for _, f := range []string{"csv", "xml", "json", "ndjson"} {
			_, _, body = m.call("GET", "/download?type=orders&format="+f, c, nil, nil)
			checkShown(t, "download orders "+f+" as "+c.name, body, pii, sEmail, sPhone)
			_, _, body = m.call("GET", "/download?type=payments&format="+f, c, nil, nil)
			checkShown(t, "download payments "+f+" as "+c.name, body, pii, sCard)
		}
		for _, path := range []string{"/imports/" + importID, "/imports/" + importID + "/rejects", "/imports"} {
			code, _, body = m.call("GET", path, c, nil, nil)
			if code != http.StatusOK {
				t.Errorf("GET %s as %s: %d", path, c.name, code)
			}
			checkNoLeak(t, "GET "+path+" as "+c.name, body)
		}
		// A masked export's file is masked for everyone; an unmasked one
		// is for pii callers only.
		for q, want := range map[string][]sensitive{"type=orders&format=json": {sEmail, sPhone}, "type=payments&format=csv": {sCard}} {
			_, _, body = m.call("GET", "/exports/"+exports[false][q]+"/file", c, nil, nil)
			checkShown(t, "masked export "+q+" as "+c.name, body, false, want...)
			code, _, body = m.call("GET", "/exports/"+exports[true][q]+"/file", c, nil, nil)
			if !pii {
				if code != http.StatusForbidden {
					t.Errorf("unmasked export %s as %s: %d, want 403", q, c.name, code)
				}
				checkNoLeak(t, "unmasked export "+q+" refused to "+c.name, body)
				continue
			}
			if code != http.StatusOK {
				t.Errorf("unmasked export %s as %s: %d %s", q, c.name, code, body)
			}
			checkShown(t, "unmasked export "+q+" as "+c.name, body, true, want...)
		}
	}
}

// waitState polls a job (import or export) until it leaves RUNNING and
// returns its state.
func (m matrixStack) waitState(cred credential, path string) string {
	m.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		code, _, body := m.call("GET", path, cred, nil, nil)
		if code != http.StatusOK {
			m.t.Fatalf("GET %s: %d %s", path, code, body)
		}
		var job struct{ State string }
		if err := json.Unmarshal(body, &job); err != nil {
			m.t.Fatalf("GET %s: %v", path, err)
		}
		if job.State != "RUNNING" && job.State != "PENDING" {
			return job.State
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.t.Fatalf("%s did not finish", path)
	return ""
}
