package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/api"
	"github.com/acme/payments/internal/export"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/internal/stacktest"
)

// sqlMeta are values an attacker tries in ids and filters: quotes and
// comments, LIKE wildcards, escapes, statement separators, invalid UTF-8,
// control and bidi characters.
var sqlMeta = []string{
	`' OR 1=1 --`, `' OR '1'='1`, `" OR ""="`, `%`, `_`, `\`, `\'`, `;`, "1; DROP TABLE orders; --",
	"H-1' --", "H-%", "H-_", "H-1\x00", "é'\"", "\u202e'--", "\xff\xfe", "`", "x' OR 1=1 --@example.com",
}

// hostileStack is the whole service over a real listener: MariaDB,
// Temporal and a worker, with a short read deadline for bodies and a long
// one for uploads.
func hostileStack(t *testing.T) (client, *sqlx.DB) {
	t.Helper()
	cfg := stacktest.Config(t, stacktest.Temporal(t))
	cfg.APITokens = "rw-token-1:read+write+pii,ro-token-1:read"
	cfg.WebhookSecrets = "acme:hostile-webhook-secret"
	cfg.AttemptTimeout = time.Hour // nothing changes by itself while the test looks
	cfg.MaxUploadBytes = 1 << 20
	d := stacktest.Deps(t, cfg)
	stacktest.Worker(t, d)
	s, err := service.APIServer(d)
	if err != nil {
		t.Fatal(err)
	}
	s.BodyReadTimeout = 300 * time.Millisecond
	s.UploadReadTimeout = time.Minute
	// The server's own deadline as short as NewHTTPServer's is to the
	// body one: only /upload may lengthen it.
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.Config.ReadTimeout = s.BodyReadTimeout
	srv.Start()
	t.Cleanup(srv.Close)
	return client{t: t, base: srv.URL}, d.DB
}

// checksums are every table's CHECKSUM TABLE, by name.
func checksums(t *testing.T, db *sqlx.DB) map[string]int64 {
	t.Helper()
	var tables []string
	if err := db.Select(&tables, "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY table_name"); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, name := range tables {
		var row struct {
			Table    string `db:"Table"`
			Checksum *int64 `db:"Checksum"`
		}
		if err := db.Get(&row, "CHECKSUM TABLE `"+name+"`"); err != nil {
			t.Fatal(err)
		}
		if row.Checksum != nil {
			out[name] = *row.Checksum
		}
	}
	return out
}

// Every path parameter and query filter of the route table, given SQL
// metacharacters, is a 400 or 404 (401 for an unknown gateway) and leaves
// every table as it was; ids stay parameters, never SQL. POST /orders
// refuses control characters in contacts, and an upload's multipart body
// takes only its options and one file, last.
func TestHostileInputOverHTTP(t *testing.T) {
	c, db := hostileStack(t)

	// Something for a leaked OR 1=1 or LIKE wildcard to find.
	if code, body := c.do("POST", "/orders", "rw-token-1", "application/json",
		strings.NewReader(`{"order_id":"H-1","order_amount":"10.00","currency":"USD","customer_email":"h1@example.com","customer_phone":"+15550100"}`)); code != http.StatusCreated {
		t.Fatalf("order: %d %s", code, body)
	}
	if code, body := c.do("POST", "/orders/H-1/payments", "rw-token-1", "application/json",
		strings.NewReader(`{"payment_id":"H-1-p1","payment_amount":"4.00","payment_method":"CARD","payment_details":"4242424242424242"}`)); code != http.StatusCreated {
		t.Fatalf("payment: %d %s", code, body)
	}
	code, body := c.do("POST", "/upload", "rw-token-1", "text/csv", strings.NewReader("order_id,order_amount\nH-2,2.00\nH-3,-1\n"))
	if code != http.StatusAccepted {
		t.Fatalf("upload: %d %s", code, body)
	}
	importID := jsonField(t, body, "import_id")
	if j := c.waitDone(importID); j.State != importer.StateCompleted {
		t.Fatalf("import %+v", j)
	}
	code, body = c.do("POST", "/exports?type=orders&format=csv", "rw-token-1", "", nil)
	if code != http.StatusAccepted {
		t.Fatalf("export: %d %s", code, body)
	}
	exportID := jsonField(t, body, "export_id")
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		_, b := c.do("GET", "/exports/"+exportID, "ro-token-1", "", nil)
		if st := jsonField(t, b, "state"); st != export.StateRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("export did not end")
		}
	}

	t.Run("control characters in contacts", func(t *testing.T) {
		for _, tc := range []struct{ field, body string }{
			{"customer_email", `{"order_id":"H-9","order_amount":"1.00","customer_email":"a@example.com\r\nBcc: victim@example.com"}`},
			{"customer_email", `{"order_id":"H-9","order_amount":"1.00","customer_email":"a\u0000b@example.com"}`},
			{"customer_email", `{"order_id":"H-9","order_amount":"1.00","customer_email":"a\tb@example.com"}`},
			{"customer_phone", `{"order_id":"H-9","order_amount":"1.00","customer_phone":"+1555\r\n0100"}`},
			{"customer_phone", `{"order_id":"H-9","order_amount":"1.00","customer_phone":"+1555\u00000100"}`},
		} {
			code, body := c.do("POST", "/orders", "rw-token-1", "application/json", strings.NewReader(tc.body))
			if code != http.StatusBadRequest || !strings.Contains(string(body), tc.field) || strings.Contains(string(body), "victim") {
				t.Errorf("%s: %d %s", tc.body, code, body)
			}
		}
		if code, _ := c.do("GET", "/orders/H-9", "ro-token-1", "", nil); code != http.StatusNotFound {
			t.Errorf("H-9 was stored: %d", code)
		}
		// The look-up by email refuses what no stored email can be.
		for _, q := range []string{"h1@example.com\r\nBcc: victim@example.com", "h1\x00@example.com"} {
			if code, body := c.do("GET", "/orders?customer_email="+url.QueryEscape(q), "ro-token-1", "", nil); code != http.StatusBadRequest ||
				!strings.Contains(string(body), "customer_email") || strings.Contains(string(body), "victim") {
				t.Errorf("GET /orders?customer_email=%q: %d %s", q, code, body)
			}
		}
	})

	before := checksums(t, db)
	if len(before) < 5 {
		t.Fatalf("only %d tables checksummed: %v", len(before), before)
	}

	t.Run("metacharacters in every parameter", func(t *testing.T) {
		n := 0
		for _, rt := range (&api.Server{}).Routes() {
			if strings.HasPrefix(rt.Path, "/codec/") || rt.Method == "OPTIONS" {
				continue // no parameter, no SQL
			}
			body := ""
			switch rt.Path {
			case "/orders/{id}/payments":
				body = `{"payment_id":"H-meta-p","payment_amount":"1.00","payment_method":"CARD"}`
			case "/upload":
				body = "order_id,order_amount\nH-meta,1.00\n"
			}
			try := func(path, value string, allowed ...int) {
				n++
				code, b := c.do(rt.Method, path, "rw-token-1", "application/json", strings.NewReader(body))
				if slices.Contains(allowed, code) && jsonErrorCode(t, b) != "" {
					return
				}
				if code == http.StatusOK && strings.Contains(path, "customer_email=") && strings.Contains(value, "@") &&
					strings.Contains(string(b), `"orders":[]`) {
					return // a well-formed address: the look-up is a parameter and finds nothing
				}
				t.Errorf("%s %s (%q): %d %s", rt.Method, path, value, code, b)
			}
			for _, v := range sqlMeta {
				if strings.Contains(rt.Path, "{") {
					path := strings.NewReplacer("{id}", url.PathEscape(v), "{gateway}", url.PathEscape(v)).Replace(rt.Path)
					if strings.Contains(rt.Path, "{gateway}") {
						try(path, v, http.StatusUnauthorized)
					} else {
						try(path, v, http.StatusBadRequest, http.StatusNotFound)
					}
				}
				for _, name := range rt.Query {
					q := url.Values{name: {v}}
					if rt.Path == "/download" || rt.Path == "/exports" && rt.Method == "POST" {
						for _, req := range []struct{ k, v string }{{"type", "orders"}, {"format", "csv"}} {
							if name != req.k {
								q.Set(req.k, req.v)
							}
						}
					}
					if rt.Path == "/orders" && name != "customer_email" {
						q.Set("customer_email", "h1@example.com")
					}
					try(rt.Path+"?"+q.Encode(), v, http.StatusBadRequest)
				}
			}
		}
		t.Logf("%d hostile requests", n)
	})

	t.Run("multipart upload", func(t *testing.T) {
		type part struct{ name, file, value string }
		for _, tc := range []struct {
			name  string
			parts []part
			want  string
		}{
			{"unknown field", []part{{"comment", "", "hi"}, {"file", "a.csv", "order_id,order_amount\nM-1,1.00\n"}}, `\"comment\"`},
			{"repeated option", []part{{"type", "", "orders"}, {"type", "", "payments"}, {"file", "a.csv", "order_id,order_amount\nM-1,1.00\n"}}, `\"type\"`},
			{"option as a file", []part{{"type", "t.txt", "orders"}, {"file", "a.csv", "order_id,order_amount\nM-1,1.00\n"}}, `\"type\"`},
			{"long option", []part{{"max_rejects", "", strings.Repeat("9", 65)}, {"file", "a.csv", "order_id,order_amount\nM-1,1.00\n"}}, `\"max_rejects\"`},
			{"two files", []part{{"file", "a.csv", "order_id,order_amount\nM-1,1.00\n"}, {"file", "b.csv", "order_id,order_amount\nM-2,1.00\n"}}, `after \"file\"`},
			{"field after the file", []part{{"file", "a.csv", "order_id,order_amount\nM-1,1.00\n"}, {"type", "", "payments"}}, `after \"file\"`},
			{"many parts", func() []part {
				var ps []part
				for i := range 1000 {
					ps = append(ps, part{fmt.Sprintf("f%d", i), "", "x"})
				}
				return append(ps, part{"file", "a.csv", "order_id,order_amount\nM-1,1.00\n"})
			}(), `\"f0\"`},
		} {
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			for _, p := range tc.parts {
				h := textproto.MIMEHeader{}
				cd := `form-data; name="` + p.name + `"`
				if p.file != "" {
					cd += `; filename="` + p.file + `"`
				}
				h.Set("Content-Disposition", cd)
				w, _ := mw.CreatePart(h)
				_, _ = io.WriteString(w, p.value)
			}
			_ = mw.Close()
			code, body := c.do("POST", "/upload", "rw-token-1", mw.FormDataContentType(), &buf)
			if code != http.StatusBadRequest || !strings.Contains(string(body), tc.want) {
				t.Errorf("%s: %d %s", tc.name, code, body)
			}
		}
		// POST /exports reads a multipart form too, fields only.
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("type", "orders")
		fw, _ := mw.CreateFormFile("format", "f.txt")
		_, _ = io.WriteString(fw, "csv")
		_ = mw.Close()
		if code, body := c.do("POST", "/exports", "rw-token-1", mw.FormDataContentType(), &buf); code != http.StatusBadRequest || !strings.Contains(string(body), `\"format\"`) {
			t.Errorf("export with a file part: %d %s", code, body)
		}
	})

	after := checksums(t, db)
	for name, sum := range before {
		if after[name] != sum {
			t.Errorf("table %s changed", name)
		}
	}

	t.Run("slow upload keeps the long deadline", func(t *testing.T) {
		// Sent over a second, three times the body deadline: an upload
		// has its own.
		pr, pw := io.Pipe()
		go func() {
			for _, line := range []string{"order_id,order_amount\n", "S-1,1.00\n", "S-2,2.00\n", "S-3,3.00\n", "S-4,4.00\n"} {
				time.Sleep(200 * time.Millisecond)
				_, _ = io.WriteString(pw, line)
			}
			_ = pw.Close()
		}()
		code, body := c.do("POST", "/upload", "rw-token-1", "text/csv", pr)
		if code != http.StatusAccepted {
			t.Fatalf("slow upload: %d %s", code, body)
		}
		var up struct {
			ImportID string `json:"import_id"`
		}
		_ = json.Unmarshal(body, &up)
		if j := c.waitDone(up.ImportID); j.State != importer.StateCompleted || j.RowsWritten != 4 {
			t.Fatalf("slow upload's import %+v", j)
		}
	})

	t.Run("downloaded CSVs neutralise formulas", func(t *testing.T) {
		// A valid address and phone that a spreadsheet would run.
		if code, body := c.do("POST", "/orders", "rw-token-1", "application/json",
			strings.NewReader(`{"order_id":"=F-1","order_amount":"3.00","customer_email":"=HYPERLINK(x)@example.com","customer_phone":"+15550111"}`)); code != http.StatusCreated {
			t.Fatalf("order: %d %s", code, body)
		}
		code, body := c.do("GET", "/download?type=orders&format=csv", "rw-token-1", "", nil)
		if code != http.StatusOK {
			t.Fatalf("download: %d %s", code, body)
		}
		if !bytes.Contains(body, []byte("\n'=F-1,3.00,")) || !bytes.Contains(body, []byte(",'=HYPERLINK(x)@example.com,'+15550111,")) ||
			bytes.Contains(body, []byte(",=HYPERLINK")) {
			t.Errorf("download:\n%s", body)
		}
		// Amounts stay numbers.
		if !bytes.Contains(body, []byte(",10.00,")) {
			t.Errorf("amounts changed:\n%s", body)
		}
		// A rejects report whose cells would start formulas.
		if _, err := db.Exec("INSERT INTO import_rejects (import_id, record_no, line_no, code, message) VALUES (?, 99, 100, ?, ?)",
			importID, "@X", `=HYPERLINK("http://evil.example")`); err != nil {
			t.Fatal(err)
		}
		code, body = c.do("GET", "/imports/"+importID+"/rejects", "ro-token-1", "", nil)
		if code != http.StatusOK || !bytes.Contains(body, []byte(`100,99,'@X,"'=HYPERLINK(""http://evil.example"")"`)) {
			t.Errorf("rejects: %d\n%s", code, body)
		}
	})
}
