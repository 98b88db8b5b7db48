package temporalserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
)

// TestServerOnPostgres sets up a fresh pair of databases with the module's
// SQL tool, starts the server process, kills it with SIGKILL and starts it
// again on the same databases: the namespace registered by the first run
// is there in the second.
func TestServerOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Temporal server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bins, err := Build(ctx, filepath.Join(os.TempDir(), "payments-temporal-bin"))
	if err != nil {
		t.Fatal(err)
	}
	pg := Postgres{Database: fmt.Sprintf("temporal_test_%d", time.Now().UnixNano())}
	if err := bins.SetupSchema(ctx, pg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bins.DropDatabases(context.Background(), pg); err != nil {
			t.Error(err)
		}
	})
	// A second set-up of the same databases only checks the version.
	if err := bins.SetupSchema(ctx, pg); err != nil {
		t.Fatalf("SetupSchema again: %v", err)
	}
	srv, err := New(Options{Binaries: bins, Postgres: pg, Dir: t.TempDir(), Namespace: "drill"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatalf("restart on the same databases: %v", err)
	}
	defer srv.Stop()
	c, err := srv.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ns, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "drill"})
	if err != nil {
		t.Fatal(err)
	}
	if got := ns.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration(); got != 24*time.Hour {
		t.Errorf("retention = %s, want 24h", got)
	}
}
