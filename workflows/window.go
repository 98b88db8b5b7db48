package workflows

import "go.temporal.io/sdk/workflow"

// window runs a job's tasks (import chunks, export parts) through at most
// parallel activities at a time, until every task is done, a task fails,
// the job is cancelled, or check asks it to drain: then it starts no more
// and waits for those in flight (not when cancelled: their activities were
// asked to stop).
type window struct {
	parallel  int
	inflight  int
	failure   string // the first failure; set by tasks or check
	cancelled bool
	draining  bool
}

// run starts tasks with start while there are some left (more reports
// whether there are), each adding its activity's future to sel with
// w.add, and calls check after every task that ends.
func (w *window) run(ctx workflow.Context, more func() bool, start func(sel workflow.Selector), check func()) {
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) { w.cancelled = true })
	for {
		for !w.draining && w.inflight < w.parallel && more() {
			w.inflight++
			start(sel)
		}
		if w.inflight == 0 && (w.draining || !more()) {
			return
		}
		sel.Select(ctx)
		if w.cancelled || w.failure != "" {
			w.draining = true
		} else {
			check()
		}
		if w.cancelled && w.inflight > 0 {
			return
		}
	}
}

// add waits for a task's activity on sel: done handles its outcome, and
// a failure (done returning a message) ends the window unless one came
// first or the job was cancelled.
func (w *window) add(sel workflow.Selector, f workflow.Future, done func(workflow.Future) string) {
	sel.AddFuture(f, func(f workflow.Future) {
		w.inflight--
		if msg := done(f); msg != "" && w.failure == "" && !w.cancelled {
			w.failure = msg
		}
	})
}

// drain stops starting tasks, with failure as the reason when it is set.
func (w *window) drain(failure string) {
	if failure != "" && w.failure == "" {
		w.failure = failure
	}
	w.draining = true
}

// historyFull reports whether a run's history is long enough to continue
// as new: past limit events, or when the server suggests it.
func historyFull(ctx workflow.Context, limit int) bool {
	info := workflow.GetInfo(ctx)
	return info.GetCurrentHistoryLength() > limit || info.GetContinueAsNewSuggested()
}
