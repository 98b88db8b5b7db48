package workflows

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// searchAttributesChange versions the imports' and exports' search
// attributes and memo (package visibility): runs recorded before it set
// none, and replay them without.
const searchAttributesChange = "search-attributes"

// keepsVisibility reports whether this run keeps its search attributes and
// memo current. Call it once, at the start of a run.
func keepsVisibility(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, searchAttributesChange, workflow.DefaultVersion, 1) >= 1
}

// setKeyword upserts a keyword search attribute unless the run already
// carries that value (set at start by the caller, or carried across
// continue-as-new), which saves a command. A failed upsert is logged: the
// attributes are for operators, the job row is the record.
func setKeyword(ctx workflow.Context, key temporal.SearchAttributeKeyKeyword, value string) {
	if value == "" {
		return
	}
	if have, ok := workflow.GetTypedSearchAttributes(ctx).GetKeyword(key); ok && have == value {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, key.ValueSet(value)); err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attribute", "name", key.GetName(), "error", err.Error())
	}
}

// setMemo upserts memo fields, logging a failure as setKeyword does.
func setMemo(ctx workflow.Context, fields map[string]any) {
	if err := workflow.UpsertMemo(ctx, fields); err != nil {
		workflow.GetLogger(ctx).Warn("upsert memo", "error", err.Error())
	}
}
