package main

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/devserver"
	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/stacktest"
	"github.com/acme/payments/internal/visibility"
)

// embeddedTemporal starts an embedded Temporal server for t and returns a
// client of its default namespace.
func embeddedTemporal(t *testing.T) (string, client.Client) {
	t.Helper()
	ports, err := devserver.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := devserver.StartTemporal(context.Background(), devserver.TemporalOptions{
		DatabaseFile:    filepath.Join(t.TempDir(), "temporal.db"),
		FrontendAddress: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
		Namespace:       "default",
		DynamicConfig:   devserver.DefaultDynamicConfig(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	c, err := client.DialContext(context.Background(), client.Options{HostPort: srv.Address(), Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return srv.Address(), c
}

// runStarter is cliRun with its results in the order these tests read them.
func runStarter(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	code, stdout, stderr := cliRun(t, env, args...)
	return stdout, stderr, code
}

func starterEnv(t *testing.T, temporalAddr, dsn string) []string {
	env := []string{
		"TEMPORAL_ADDRESS=" + temporalAddr, "TEMPORAL_NAMESPACE=default", "PAYMENTS_DATA_DIR=" + t.TempDir(),
		"PAYMENTS_KEYS=" + stacktest.TestKeys, "PAYMENTS_KEYS_FILE=",
		"PAYMENTS_BLIND_INDEX_KEY=" + stacktest.TestBlindIndexKey, "PAYMENTS_LOG_LEVEL=warn",
	}
	if dsn != "" { // setup-temporal needs no database
		env = append(env, "PAYMENTS_MYSQL_DSN="+dsn)
	}
	return env
}

// setup-temporal adds the attributes a namespace lacks, and run again
// (as on every deploy) succeeds without changing anything.
func TestSetupTemporalIsIdempotent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server")
	}
	addr, c := embeddedTemporal(t)
	// The embedded server registered them at start; take them away to
	// see setup-temporal add them.
	if _, err := c.OperatorService().RemoveSearchAttributes(context.Background(), &operatorservice.RemoveSearchAttributesRequest{
		Namespace: "default", SearchAttributes: []string{"ImportState", "ImportType", "ExportState"},
	}); err != nil {
		t.Fatal(err)
	}
	env := starterEnv(t, addr, "")
	out, errOut, code := runStarter(t, env, "setup-temporal")
	if code != 0 || !strings.Contains(out, "registered the search attributes ExportState, ImportState, ImportType") {
		t.Fatalf("first run: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = runStarter(t, env, "setup-temporal")
	if code != 0 || !strings.Contains(out, "already has the search attributes") {
		t.Fatalf("second run: exit %d\n%s%s", code, out, errOut)
	}
	resp, err := c.OperatorService().ListSearchAttributes(context.Background(), &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	for name, typ := range visibility.Attributes() {
		if got := resp.GetCustomAttributes()[name]; got != typ {
			t.Errorf("%s: %v, want %v", name, got, typ)
		}
	}
}

func TestImportsListsOneState(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server")
	}
	addr, _ := embeddedTemporal(t)
	dsn := dbtest.DSN(t)
	env := starterEnv(t, addr, dsn)
	if out, errOut, code := runStarter(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %d %s%s", code, out, errOut)
	}
	ctx := context.Background()
	db, err := database.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for id, state := range map[string]string{"impfailed": importer.StateFailed, "impdone": importer.StateCompleted, "imprunning": importer.StateRunning} {
		if _, _, err := importer.CreateJob(ctx, db, importer.Job{ImportID: id, WorkflowID: "import/" + id, BlobKey: "uploads/" + id,
			ContentSHA256: strings.Repeat("0", 64), MaxRejects: 10}); err != nil {
			t.Fatal(err)
		}
		if state != importer.StateRunning {
			if err := importer.Finish(ctx, db, id, state, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	out, errOut, code := runStarter(t, env, "imports", "--state", "failed")
	if code != 0 || !strings.Contains(out, "impfailed") || strings.Contains(out, "impdone") || strings.Contains(out, "imprunning") {
		t.Fatalf("imports --state failed: exit %d\n%s%s", code, out, errOut)
	}
	out, _, code = runStarter(t, env, "imports")
	if code != 0 || !strings.Contains(out, "impfailed") || !strings.Contains(out, "impdone") || !strings.Contains(out, "imprunning") {
		t.Fatalf("imports: exit %d\n%s", code, out)
	}
	if _, errOut, code := runStarter(t, env, "imports", "--state", "DONE"); code != 2 || !strings.Contains(errOut, "want one of RUNNING, COMPLETED, FAILED, CANCELLED") {
		t.Fatalf("imports --state DONE: exit %d %s", code, errOut)
	}
}
