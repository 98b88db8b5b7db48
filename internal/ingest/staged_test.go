package ingest_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ingest"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/internal/stacktest"
	"github.com/acme/payments/internal/staging"
)

// An import whose staged file is gone (deleted by hand, or by the retention
// sweep) or was sealed under a key this process does not hold cannot
// succeed by retrying: it fails at once with an error that says what is
// wrong and what to do, instead of retrying its activity forever.
func TestUnreadableStagedFileFailsTheImport(t *testing.T) {
	cfg := stacktest.Config(t, stacktest.Temporal(t))
	cfg.ImportChunkRows = 50
	d := stacktest.Deps(t, cfg)
	in := service.NewIntake(d)
	ctx := context.Background()

	body, _ := genFile(t, gen.Options{Kind: "orders", Count: 200, Seed: 3})
	gone, _, err := in.Start(ctx, strings.NewReader(string(body)), ingest.Options{MaxRejects: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Store.Delete(ctx, gone.BlobKey); err != nil {
		t.Fatal(err)
	}

	// The same kind of file, staged, then replaced by one sealed under
	// another keyring.
	body2, _ := genFile(t, gen.Options{Kind: "orders", Count: 200, Seed: 4})
	foreign, _, err := in.Start(ctx, strings.NewReader(string(body2)), ingest.Options{MaxRejects: 10})
	if err != nil {
		t.Fatal(err)
	}
	otherKeys, err := encryption.ParseKeys("other:" + base64.StdEncoding.EncodeToString([]byte("ffffffffffffffffffffffffffffffff")))
	if err != nil {
		t.Fatal(err)
	}
	url, err := cfg.StagingURL()
	if err != nil {
		t.Fatal(err)
	}
	other, err := staging.Open(ctx, url, otherKeys)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	w, err := other.Create(ctx, foreign.BlobKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(body2); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	stacktest.Worker(t, d) // only now: the workflows' first attempts find the files as they are
	s := &stack{d: d, in: in}
	for id, want := range map[string]string{gone.ImportID: "staged file is gone", foreign.ImportID: "cannot be decrypted"} {
		job := s.wait(t, id)
		if job.State != importer.StateFailed || job.Error == nil || !strings.Contains(*job.Error, want) || !strings.Contains(*job.Error, "upload") {
			t.Errorf("import %s: state %s error %v (want FAILED saying %q and to upload again)", id, job.State, deref(job.Error), want)
		}
		if job.RowsWritten != 0 {
			t.Errorf("import %s wrote %d rows", id, job.RowsWritten)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
