package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"golang.org/x/term"

	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/service"
	"github.com/acme/payments/workflows"
)

// progressSnap is what a progress view shows of a job.
type progressSnap struct {
	Rows, Total, Rejected   int64
	ChunksDone, ChunksTotal int
	State                   string
}

// progressView shows a job's progress on stderr. On a terminal it draws a
// bar (github.com/schollz/progressbar) that fits the terminal's width,
// measured at every redraw; elsewhere (a file, a pipe, a CI log) it writes
// no escape codes, only a plain line at most every few seconds. Either way
// finish writes one summary line.
type progressView struct {
	w     io.Writer
	tty   bool
	cols  func() int       // the terminal's width; 0 if unknown
	now   func() time.Time // time.Now, but for tests
	every time.Duration    // off a terminal: at most one line this often
	label string           // "import 3f2a…"

	start time.Time
	bar   *progressbar.ProgressBar
	shown int64 // rows shown so far: the bar never moves back
	total int64
	last  time.Time
}

// newProgressView is a view on stderr, a bar if stderr is a terminal.
func newProgressView(label string) *progressView {
	fd := int(os.Stderr.Fd())
	tty := term.IsTerminal(fd) && os.Getenv("TERM") != "dumb"
	cols := func() int {
		w, _, err := term.GetSize(fd)
		if err != nil {
			return 0
		}
		return w
	}
	return newProgressViewOn(os.Stderr, tty, cols, time.Now, label)
}

func newProgressViewOn(w io.Writer, tty bool, cols func() int, now func() time.Time, label string) *progressView {
	start := now()
	// last = start: off a terminal the first line comes after a while, and
	// a short job writes its summary alone.
	return &progressView{w: w, tty: tty, cols: cols, now: now, every: 5 * time.Second, label: label, start: start, last: start}
}

// update shows s.
func (v *progressView) update(s progressSnap) {
	v.note(s)
	if !v.tty {
		if now := v.now(); v.total > 0 && now.Sub(v.last) >= v.every {
			v.last = now
			fmt.Fprintf(v.w, "%s: %s\n", v.label, v.stats(s, true))
		}
		return
	}
	if v.total <= 0 {
		return // not planned yet: no total to draw against
	}
	if v.bar == nil {
		v.bar = progressbar.NewOptions64(v.total,
			progressbar.OptionSetWriter(v.w),
			progressbar.OptionUseANSICodes(true),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetElapsedTime(false),
			progressbar.OptionClearOnFinish(),
		)
	} else if v.bar.GetMax64() != v.total {
		v.bar.ChangeMax64(v.total)
	}
	desc, width := v.fit(s)
	progressbar.OptionSetWidth(width)(v.bar)
	progressbar.OptionSetDescription(desc)(v.bar)
	_ = v.bar.Set64(v.shown)
}

// note takes in s's figures, keeping the rows shown from moving back.
func (v *progressView) note(s progressSnap) {
	if s.Total > 0 {
		v.total = s.Total
	}
	v.shown = max(v.shown, s.Rows)
	if v.total > 0 {
		v.shown = min(v.shown, v.total)
	}
}

// barFrame is what the bar library draws besides the bar and the
// description: "100% |" … "| " and the spaces around the description.
const barFrame = len(" 100% |") + len("| ") + len("  ")

// fit chooses the description and bar width for the terminal's width,
// leaving the last column free so that no redraw wraps.
func (v *progressView) fit(s progressSnap) (string, int) {
	cols := v.cols()
	if cols <= 0 {
		cols = 80
	}
	// The widest description that leaves the bar 8 cells: all the
	// figures, then without the ETA, then the rows alone, then nothing.
	full := v.stats(s, false)
	short := fmt.Sprintf("%d/%d rows  rejects %d", v.shown, v.total, s.Rejected)
	for _, desc := range []string{full, short, fmt.Sprintf("%d/%d rows", v.shown, v.total)} {
		if width := cols - 1 - barFrame - len(desc); width >= 8 {
			return desc, width
		}
	}
	return "", max(cols-1-barFrame, 1)
}

// stats renders rows, rate, ETA and rejects; plain adds the percentage.
func (v *progressView) stats(s progressSnap, plain bool) string {
	elapsed := v.now().Sub(v.start)
	rate := 0.0
	if secs := elapsed.Seconds(); secs > 0 {
		rate = float64(v.shown) / secs
	}
	var b strings.Builder
	if plain && v.total > 0 {
		fmt.Fprintf(&b, "%d%% ", v.shown*100/v.total)
	}
	fmt.Fprintf(&b, "%d/%d rows  %.0f rows/s", v.shown, v.total, rate)
	if s.State == "" || s.State == "RUNNING" {
		eta := "--"
		if rate > 0 && v.total > v.shown {
			eta = (time.Duration(float64(v.total-v.shown)/rate) * time.Second).Round(time.Second).String()
		}
		fmt.Fprintf(&b, "  ETA %s", eta)
	}
	fmt.Fprintf(&b, "  rejects %d", s.Rejected)
	return b.String()
}

// finish clears the bar and writes the summary line of the job's end.
func (v *progressView) finish(s progressSnap) {
	v.note(s)
	v.shown = s.Rows // the rows counted, not the estimate of the last redraw
	if v.bar != nil {
		_ = v.bar.Clear()
		_ = v.bar.Exit()
	}
	elapsed := v.now().Sub(v.start).Round(100 * time.Millisecond)
	fmt.Fprintf(v.w, "%s %s: %s  in %s\n", v.label, s.State, v.stats(s, true), elapsed)
}

// abandon clears the bar without a summary: the job has not ended, only
// the watching has.
func (v *progressView) abandon() {
	if v.bar != nil {
		_ = v.bar.Clear()
		_ = v.bar.Exit()
	}
}

// inFlight estimates the rows of the import chunks running now, which the
// job's counters include only when a chunk commits (in one transaction, so
// no partial count exists): each running chunk counts the share of an
// average chunk's rows that its running time is of the chunks' average
// duration, up to 90%. Until a chunk has committed there is no average and
// it counts nothing. It reads the workflow's pending activities, so the
// workflow and its history are untouched.
type inFlight struct {
	seen  map[string]attempt // running ImportChunk activities by id
	sum   time.Duration      // durations of the chunks seen to end
	ended int
}

type attempt struct {
	n     int32
	since time.Time
}

// observe takes the running chunk activities at now (id → attempt).
func (f *inFlight) observe(now time.Time, running map[string]int32) {
	if f.seen == nil {
		f.seen = map[string]attempt{}
	}
	for id, a := range f.seen {
		if _, ok := running[id]; !ok {
			f.sum += now.Sub(a.since)
			f.ended++
			delete(f.seen, id)
		}
	}
	for id, n := range running {
		if a, ok := f.seen[id]; !ok || a.n != n {
			f.seen[id] = attempt{n: n, since: now} // new, or retried afresh
		}
	}
}

// rows is the estimate at now for chunks of perChunk rows.
func (f *inFlight) rows(now time.Time, perChunk int64) int64 {
	if f.ended == 0 || perChunk <= 0 {
		return 0
	}
	mean := f.sum / time.Duration(f.ended)
	var n int64
	for _, a := range f.seen {
		frac := 0.9
		if mean > 0 {
			frac = min(float64(now.Sub(a.since))/float64(mean), 0.9)
		}
		n += int64(frac * float64(perChunk))
	}
	return n
}

// runningChunks lists the import workflow's started ImportChunk activities
// (id → attempt); nil if the workflow cannot be described.
func runningChunks(ctx context.Context, c client.Client, workflowID string) map[string]int32 {
	d, err := c.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return nil
	}
	out := map[string]int32{}
	for _, a := range d.GetPendingActivities() {
		if a.GetActivityType().GetName() == "ImportChunk" && a.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
			out[a.GetActivityId()] = a.GetAttempt()
		}
	}
	return out
}

// followImport is the progress view of an import and the update that
// ingest.Follow calls with the job and the workflow's progress query. On a
// terminal the rows of running chunks are estimated (inFlight) so that the
// bar moves between commits.
func followImport(ctx context.Context, d *service.Deps, importID string) (*progressView, func(importer.Job, *workflows.Progress)) {
	view := newProgressView("import " + importID)
	var est inFlight
	return view, func(j importer.Job, p *workflows.Progress) {
		s := importSnap(j, p)
		if view.tty && j.State == importer.StateRunning && s.Total > 0 && s.ChunksTotal > 0 {
			now := time.Now()
			est.observe(now, runningChunks(ctx, d.Temporal, workflows.ImportWorkflowID(importID)))
			s.Rows = min(s.Rows+est.rows(now, s.Total/int64(s.ChunksTotal)), s.Total-1)
		}
		view.update(s)
	}
}

// importSnap is what the view shows of an import's job row and, while it
// runs, its progress query (p may be nil).
func importSnap(j importer.Job, p *workflows.Progress) progressSnap {
	s := progressSnap{Rows: j.RowsRead, Rejected: j.RowsRejected, ChunksDone: j.ChunksDone, ChunksTotal: j.ChunksTotal, State: j.State}
	if p != nil {
		s.Total = p.RowsTotal
	}
	if j.State == importer.StateCompleted {
		s.Total = j.RowsRead
	}
	return s
}
