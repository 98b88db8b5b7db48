package bench

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// phases are when an import's serial steps ran, from its workflow's
// history (every run of it, across continue-as-new): the chunks' window
// is what overlaps with MySQL; planning before it and finishing after it
// do not.
type phases struct {
	planStart, planEnd time.Time
	firstChunk         time.Time // the earliest ImportChunk attempt's start
	lastChunk          time.Time // the latest ImportChunk completion
	chunks             int
}

// importPhases reads the phases of workflow id's runs. An activity's
// started event carries the time it started even when Temporal writes it
// only at completion (activities with a retry policy).
func importPhases(ctx context.Context, c client.Client, id string) (phases, error) {
	var ph phases
	runID := ""
	for range 10_000 { // a run per few thousand events; this bounds a broken chain
		prev, err := runPhases(ctx, c, id, runID, &ph)
		if err != nil {
			return ph, err
		}
		if prev == "" {
			break
		}
		runID = prev
	}
	if ph.chunks == 0 || ph.planEnd.IsZero() {
		return ph, fmt.Errorf("workflow %s: no plan or chunk activities in its history", id)
	}
	return ph, nil
}

// runPhases adds one run's activities to ph and returns the run it
// continued ("" for the first).
func runPhases(ctx context.Context, c client.Client, id, runID string, ph *phases) (string, error) {
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	names := map[int64]string{}
	prev := ""
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return "", fmt.Errorf("workflow %s history: %w", id, err)
		}
		at := ev.GetEventTime().AsTime()
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			prev = ev.GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			names[ev.GetEventId()] = ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			switch names[ev.GetActivityTaskStartedEventAttributes().GetScheduledEventId()] {
			case "PlanImport":
				ph.planStart = at
			case "ImportChunk":
				if ph.firstChunk.IsZero() || at.Before(ph.firstChunk) {
					ph.firstChunk = at
				}
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			switch names[ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()] {
			case "PlanImport":
				ph.planEnd = at
			case "ImportChunk":
				ph.chunks++
				if at.After(ph.lastChunk) {
					ph.lastChunk = at
				}
			}
		}
	}
	return prev, nil
}
