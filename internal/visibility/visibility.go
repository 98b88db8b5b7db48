// Package visibility is what Temporal's visibility shows about the
// service's workflows beyond their ids: the custom search attributes an
// operator filters on in the Web UI or with a List query (ImportState,
// ImportType, ExportState) and the memo fields shown next to a run. It
// also registers the attributes on a namespace, which Temporal requires
// before any workflow sets them: the embedded development server does it at
// start, `starter setup-temporal` on any other cluster.
//
// Nothing here may carry customer data: no order id, email or amount goes
// into a search attribute or memo, only states, types and sizes, and an
// import's file name (chosen by the uploader, cleaned and capped, shown in
// the memo only). Order payment workflows carry none of these attributes.
package visibility

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// The service's custom search attributes, all of type Keyword. Their
// values are the job tables' states (RUNNING, COMPLETED, FAILED,
// CANCELLED) and record kinds (orders, payments).
var (
	// ImportState is an import workflow's state, as its import_jobs row.
	ImportState = temporal.NewSearchAttributeKeyKeyword("ImportState")
	// ImportType is what an import's file holds: orders or payments. It is
	// set once known: at start when the caller gave it, else once the file
	// is planned.
	ImportType = temporal.NewSearchAttributeKeyKeyword("ImportType")
	// ExportState is an export workflow's state, as its export_jobs row.
	ExportState = temporal.NewSearchAttributeKeyKeyword("ExportState")
)

// Memo fields: non-sensitive summaries of a run, shown by the UI and
// `temporal workflow describe`, named in snake_case like the workflows'
// payloads (runs recorded before carry Go-style names; nothing reads a
// memo back, so they need no translation).
const (
	MemoSizeBytes    = "size_bytes"    // bytes of the uploaded file (imports) or the written file (exports)
	MemoType         = "type"          // orders or payments
	MemoFormat       = "format"        // csv, xml, json, ndjson
	MemoChunksTotal  = "chunks_total"  // chunks (imports) or parts (exports) planned
	MemoRowsTotal    = "rows_total"    // records in an import's file
	MemoRowsWritten  = "rows_written"  // rows an import wrote, or an export's rows
	MemoRowsRejected = "rows_rejected" // rows an import rejected
	MemoFileName     = "file_name"     // an import's uploaded file name, as cleaned by importer.CleanFileName
)

// Attributes are the service's custom search attributes with their types,
// as a namespace must have them.
func Attributes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		ImportState.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		ImportType.GetName():  enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		ExportState.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	}
}

// Register makes sure namespace has every one of Attributes with its type.
// It is idempotent: attributes already there with the right type are left
// alone (and when all are, nothing is changed), so running it on every
// deploy is safe. An attribute registered with another type is an error
// naming it, since only an operator can decide to remove it. It returns the
// names it added.
func Register(ctx context.Context, ops operatorservice.OperatorServiceClient, namespace string) ([]string, error) {
	return register(ctx, ops, namespace, Attributes())
}

func register(ctx context.Context, ops operatorservice.OperatorServiceClient, namespace string, want map[string]enumspb.IndexedValueType) ([]string, error) {
	missing, err := check(ctx, ops, namespace, want)
	if err != nil || len(missing) == 0 {
		return nil, err
	}
	add := make(map[string]enumspb.IndexedValueType, len(missing))
	for _, name := range missing {
		add[name] = want[name]
	}
	_, addErr := ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: add})
	if addErr != nil {
		// Another setup may have added them in the meantime (the server
		// then reports them as existing, or a race): what counts is
		// whether they are there now.
		if still, err := check(ctx, ops, namespace, want); err == nil && len(still) == 0 {
			return missing, nil
		}
		return nil, fmt.Errorf("add search attributes %s to namespace %s: %w%s", strings.Join(missing, ", "), namespace, addErr, refusedHint(addErr))
	}
	return missing, nil
}

// check returns the names of want missing on namespace, sorted, or an error
// when one exists with another type.
func check(ctx context.Context, ops operatorservice.OperatorServiceClient, namespace string, want map[string]enumspb.IndexedValueType) ([]string, error) {
	resp, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("list search attributes of namespace %s: %w%s", namespace, err, refusedHint(err))
	}
	var missing, wrong []string
	for name, typ := range want {
		have, ok := resp.GetCustomAttributes()[name]
		if !ok {
			have, ok = resp.GetSystemAttributes()[name]
		}
		switch {
		case !ok:
			missing = append(missing, name)
		case have != typ:
			wrong = append(wrong, fmt.Sprintf("%s is %s, the service needs %s", name, have, typ))
		}
	}
	sort.Strings(missing)
	sort.Strings(wrong)
	if len(wrong) > 0 {
		return nil, fmt.Errorf("search attributes of namespace %s have the wrong type: %s (remove them, e.g. `temporal operator search-attribute remove --name NAME`, then run setup-temporal again)",
			namespace, strings.Join(wrong, "; "))
	}
	return missing, nil
}

// refusedHint explains a refusal to manage search attributes, as Temporal
// Cloud or a cluster with authorization gives to a namespace-scoped caller.
func refusedHint(err error) string {
	var denied *serviceerror.PermissionDenied
	var unimplemented *serviceerror.Unimplemented
	if errors.As(err, &denied) || errors.As(err, &unimplemented) {
		return fmt.Sprintf(" (this credential may not manage search attributes: have an admin add %s as Keyword, e.g. in the Temporal Cloud UI or with tcld)", names())
	}
	return ""
}

func names() string {
	var n []string
	for name := range Attributes() {
		n = append(n, name)
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

// Explain adds to an error of starting or running a workflow the likely
// cause when the server rejected a search attribute: the namespace was not
// set up. Other errors come back unchanged.
func Explain(err error) error {
	var bad *serviceerror.InvalidArgument
	if errors.As(err, &bad) && strings.Contains(strings.ToLower(bad.Error()), "search attribute") {
		return fmt.Errorf("%w (register the service's search attributes with `starter setup-temporal`)", err)
	}
	return err
}

// AwaitQueryable waits until the frontend accepts a query on every
// attribute. A server learns of newly registered attributes when its cache
// refreshes, and until then it refuses to start a workflow that sets them.
func AwaitQueryable(ctx context.Context, c client.Client, namespace string, limit time.Duration) error {
	terms := make([]string, 0, len(Attributes()))
	for name := range Attributes() {
		terms = append(terms, name+` = "RUNNING"`)
	}
	req := &workflowservice.CountWorkflowExecutionsRequest{Namespace: namespace, Query: strings.Join(terms, " OR ")}
	deadline := time.Now().Add(limit)
	for {
		_, err := c.CountWorkflow(ctx, req)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("search attributes registered but not yet queryable: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
