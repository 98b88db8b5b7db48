package e2e_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/visibility"
)

// An import carries its multipart file name, cleaned, in the job (GET
// /imports/{id}) and the workflow's memo, never in its workflow id; the
// same content under another name is the same import, with its first name.
func TestImportCarriesItsUploadedFileName(t *testing.T) {
	e := newExportEnv(t, 50, 2)
	var orders bytes.Buffer
	if _, err := gen.Write(&orders, gen.Options{Kind: gen.KindOrders, Count: 30, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	upload := func(fileName string) (int, string) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		h := textproto.MIMEHeader{}
		// Quoted by hand: the name's control characters are the point.
		h.Set("Content-Disposition", `form-data; name="file"; filename="`+fileName+`"`)
		h.Set("Content-Type", "text/csv")
		part, _ := mw.CreatePart(h)
		_, _ = part.Write(orders.Bytes())
		_ = mw.Close()
		resp, b := e.request("POST", "/upload", piiToken, mw.FormDataContentType(), body.Bytes())
		var up struct {
			ImportID string `json:"import_id"`
		}
		_ = json.Unmarshal(b, &up)
		return resp.StatusCode, up.ImportID
	}
	code, id := upload("march\t" + strings.Repeat("x", 300) + "\u202e.csv")
	if code != http.StatusAccepted || id == "" {
		t.Fatalf("upload: %d", code)
	}
	want := "march" + strings.Repeat("x", importer.MaxFileNameRunes-5)
	resp, b := e.request("GET", "/imports/"+id, readToken, "", nil)
	var job importer.Job
	if err := json.Unmarshal(b, &job); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /imports/%s: %d %s", id, resp.StatusCode, b)
	}
	if job.FileName == nil || *job.FileName != want {
		t.Fatalf("file_name %v, want %q", job.FileName, want)
	}
	if strings.Contains(job.WorkflowID, "march") {
		t.Fatalf("the file name is in the workflow id %q", job.WorkflowID)
	}
	if got := e.memo(job.WorkflowID)[visibility.MemoFileName]; got != want {
		t.Fatalf("memo FileName %v, want %q", got, want)
	}
	// The same content under another name is the same import.
	if code, again := upload("other.csv"); code != http.StatusOK || again != id {
		t.Fatalf("same content again: %d %s", code, again)
	}
	if j := e.uploadAndWait(orders.Bytes()); j.ImportID == id && j.FileName == nil {
		t.Fatal("the raw re-upload lost the first upload's name")
	}
	// A raw body names no file.
	var other bytes.Buffer
	if _, err := gen.Write(&other, gen.Options{Kind: gen.KindOrders, Count: 5, Seed: 6}); err != nil {
		t.Fatal(err)
	}
	if j := e.uploadAndWait(other.Bytes()); j.FileName != nil {
		t.Fatalf("a raw upload got a file name %q", *j.FileName)
	}
}
