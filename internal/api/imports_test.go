package api_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/stacktest"
)

type client struct {
	t    *testing.T
	base string
}

func (c client) do(method, path, token, contentType string, body io.Reader) (int, []byte) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c client) job(id string) importer.Job {
	c.t.Helper()
	code, body := c.do("GET", "/imports/"+id, "rw-token-1", "", nil)
	if code != 200 {
		c.t.Fatalf("GET /imports/%s: %d %s", id, code, body)
	}
	var j importer.Job
	if err := json.Unmarshal(body, &j); err != nil {
		c.t.Fatal(err)
	}
	return j
}

func (c client) waitDone(id string) importer.Job {
	c.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if j := c.job(id); j.State != importer.StateRunning {
			return j
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("import %s did not end", id)
	return importer.Job{}
}

func apiStack(t *testing.T, maxUpload int64, chunkRows int) client {
	t.Helper()
	cfg := stacktest.Config(t, stacktest.Temporal(t))
	cfg.APITokens = "rw-token-1:read+write,ro-token-1:read"
	cfg.MaxUploadBytes = maxUpload
	cfg.ImportChunkRows = chunkRows
	d := stacktest.Deps(t, cfg)
	stacktest.Worker(t, d)
	return client{t: t, base: stacktest.API(t, d)}
}

const ordersCSV = "order_id,order_amount,currency,customer_email\r\n" +
	"A-1,10.00,USD,a@example.com\r\n" +
	"A-2,12.5,USD,\"b,quoted\"\"@example.com\"\r\n" +
	"A-3,1.234,USD,c@example.com\r\n" +
	"A-4,100,JPY,d@example.com\r\n" +
	"A-5,-1,USD,e@example.com\r\n"

func TestUploadRawAndMultipart(t *testing.T) {
	c := apiStack(t, 1<<20, 3)

	code, body := c.do("POST", "/upload", "rw-token-1", "text/csv", strings.NewReader(ordersCSV))
	if code != http.StatusAccepted {
		t.Fatalf("upload: %d %s", code, body)
	}
	var up struct{ ImportID, WorkflowID, StatusURL string }
	up.ImportID = jsonField(t, body, "import_id")
	up.WorkflowID = jsonField(t, body, "workflow_id")
	up.StatusURL = jsonField(t, body, "status_url")
	if up.WorkflowID != "import/"+up.ImportID || up.StatusURL != "/imports/"+up.ImportID {
		t.Fatalf("upload answer %s", body)
	}
	j := c.waitDone(up.ImportID)
	if j.State != importer.StateCompleted || j.RowsRead != 5 || j.RowsWritten != 3 || j.RowsRejected != 2 || j.Type != "orders" {
		t.Fatalf("job %+v", j)
	}

	// Same content and options: the same import, 200.
	code, body = c.do("POST", "/upload", "rw-token-1", "text/csv", strings.NewReader(ordersCSV))
	if code != http.StatusOK || jsonField(t, body, "import_id") != up.ImportID {
		t.Fatalf("repeat upload: %d %s", code, body)
	}

	// Multipart with options before the file: another import.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("type", "orders")
	_ = mw.WriteField("max_rejects", "5")
	fw, _ := mw.CreateFormFile("file", "orders.csv")
	_, _ = fw.Write([]byte(ordersCSV))
	_ = mw.Close()
	code, body = c.do("POST", "/upload", "rw-token-1", mw.FormDataContentType(), &mp)
	if code != http.StatusAccepted || jsonField(t, body, "import_id") == up.ImportID {
		t.Fatalf("multipart upload: %d %s", code, body)
	}
	j2 := c.waitDone(jsonField(t, body, "import_id"))
	if j2.MaxRejects != 5 || j2.RowsUnchanged != 3 || j2.RowsWritten != 0 {
		t.Fatalf("multipart job %+v", j2)
	}

	// Rejects as CSV with line, record, code and message.
	code, body = c.do("GET", "/imports/"+up.ImportID+"/rejects", "ro-token-1", "", nil)
	if code != 200 {
		t.Fatalf("rejects: %d", code)
	}
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"line", "record", "code", "message"}, {"4", "3", "BAD_AMOUNT"}, {"6", "5", "BAD_AMOUNT"}}
	if len(rows) != 3 {
		t.Fatalf("rejects %v", rows)
	}
	for i, w := range want {
		for k := range w {
			if rows[i][k] != w[k] {
				t.Fatalf("reject row %d: %v, want %v", i, rows[i], w)
			}
		}
	}

	code, body = c.do("GET", "/imports", "ro-token-1", "", nil)
	if code != 200 || strings.Count(string(body), `"import_id"`) != 2 {
		t.Fatalf("list: %d %s", code, body)
	}
}

func TestUploadErrors(t *testing.T) {
	c := apiStack(t, 64, 3)
	cases := []struct {
		name, token, query, body string
		status                   int
		code                     string
	}{
		{"no token", "", "", ordersCSV, 401, "unauthorized"},
		{"read-only token", "ro-token-1", "", ordersCSV, 403, "forbidden"},
		{"too large", "rw-token-1", "", "a,b\n" + strings.Repeat("x", 1000), 413, "too_large"},
		{"bad type", "rw-token-1", "?type=refunds", "a", 400, "bad_request"},
		{"bad max_rejects", "rw-token-1", "?max_rejects=-3", "a", 400, "bad_request"},
	}
	for _, tc := range cases {
		code, body := c.do("POST", "/upload"+tc.query, tc.token, "text/csv", strings.NewReader(tc.body))
		if code != tc.status || jsonErrorCode(t, body) != tc.code {
			t.Errorf("%s: %d %s", tc.name, code, body)
		}
	}
	if code, body := c.do("GET", "/imports/nope", "ro-token-1", "", nil); code != 404 || jsonErrorCode(t, body) != "not_found" {
		t.Errorf("unknown import: %d %s", code, body)
	}
	if code, _ := c.do("POST", "/imports/nope/cancel", "rw-token-1", "", nil); code != 404 {
		t.Errorf("cancel unknown import: %d", code)
	}
}

func TestCancelImport(t *testing.T) {
	c := apiStack(t, 64<<20, 50)
	var b strings.Builder
	b.WriteString("order_id,order_amount\n")
	for i := range 3000 {
		fmt.Fprintf(&b, "C-%05d,1.00\n", i)
	}
	code, body := c.do("POST", "/upload", "rw-token-1", "text/csv", strings.NewReader(b.String()))
	if code != 202 {
		t.Fatalf("upload %d %s", code, body)
	}
	id := jsonField(t, body, "import_id")
	code, body = c.do("POST", "/imports/"+id+"/cancel", "rw-token-1", "", nil)
	if code != 202 {
		t.Fatalf("cancel: %d %s", code, body)
	}
	j := c.waitDone(id)
	if j.State != importer.StateCancelled {
		t.Fatalf("after cancel: %+v", j)
	}
	if j.RowsWritten >= 3000 {
		t.Fatalf("cancel came too late to stop anything: %+v", j)
	}
	if code, _ := c.do("POST", "/imports/"+id+"/cancel", "rw-token-1", "", nil); code != 409 {
		t.Fatalf("cancelling a finished import: %d", code)
	}
}

func jsonField(t *testing.T, body []byte, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	s, _ := m[field].(string)
	return s
}

func jsonErrorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Code
}
