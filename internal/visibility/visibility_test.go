package visibility_test

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/acme/payments/internal/devserver"
	"github.com/acme/payments/internal/visibility"
)

func dial(t *testing.T) client.Client {
	t.Helper()
	// The embedded server registers the attributes at start, as `starter
	// dev` does; Register below runs on a namespace that has them.
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
	return c
}

func TestRegisterIsIdempotent(t *testing.T) {
	c := dial(t)
	ctx := context.Background()
	for i := range 2 {
		added, err := visibility.Register(ctx, c.OperatorService(), "default")
		if err != nil {
			t.Fatalf("register #%d: %v", i+1, err)
		}
		if len(added) != 0 {
			t.Fatalf("register #%d added %v to a namespace that has them", i+1, added)
		}
	}
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	for name, typ := range visibility.Attributes() {
		if got := resp.GetCustomAttributes()[name]; got != typ {
			t.Errorf("%s: %v, want %v", name, got, typ)
		}
	}
}

// A namespace without the attributes gets them, once: a second run adds
// nothing.
func TestRegisterAddsMissingOnce(t *testing.T) {
	c := dial(t)
	ctx := context.Background()
	want := map[string]enumspb.IndexedValueType{
		"VisibilityTestA":                enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"VisibilityTestB":                enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		visibility.ImportState.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	}
	added, err := visibility.RegisterThese(ctx, c.OperatorService(), "default", want)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(added, []string{"VisibilityTestA", "VisibilityTestB"}) {
		t.Fatalf("added %v", added)
	}
	again, err := visibility.RegisterThese(ctx, c.OperatorService(), "default", want)
	if err != nil || len(again) != 0 {
		t.Fatalf("second run: added %v, %v", again, err)
	}
}

func TestRegisterRefusesAWrongType(t *testing.T) {
	c := dial(t)
	_, err := visibility.RegisterThese(context.Background(), c.OperatorService(), "default", map[string]enumspb.IndexedValueType{
		visibility.ImportState.GetName(): enumspb.INDEXED_VALUE_TYPE_TEXT,
	})
	if err == nil || !strings.Contains(err.Error(), "ImportState is Keyword, the service needs Text") {
		t.Fatalf("err = %v", err)
	}
}

func TestExplainNamesSetupForRejectedAttributes(t *testing.T) {
	err := visibility.Explain(serviceerror.NewInvalidArgument("search attribute ImportState is not defined"))
	if !strings.Contains(err.Error(), "starter setup-temporal") {
		t.Fatalf("%v", err)
	}
	other := serviceerror.NewInvalidArgument("workflow id is too long")
	if visibility.Explain(other) != error(other) {
		t.Fatal("an unrelated error was changed")
	}
}
