package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fakeClock advances by step at every reading.
type fakeClock struct {
	t    time.Time
	step time.Duration
}

func (c *fakeClock) now() time.Time { c.t = c.t.Add(c.step); return c.t }

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

// Off a terminal (a file, a pipe) the view writes plain lines, at most
// one per few seconds, then a summary: no escape codes, no carriage
// returns.
func TestProgressOffATerminalWritesPlainLines(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Unix(0, 0), step: 100 * time.Millisecond}
	v := newProgressViewOn(&out, false, func() int { return 80 }, clock.now, "import abc")
	for rows := int64(0); rows <= 100_000; rows += 500 {
		v.update(progressSnap{Rows: rows, Total: 100_000, Rejected: 3, State: "RUNNING"})
	}
	v.finish(progressSnap{Rows: 100_000, Total: 100_000, Rejected: 3, State: "COMPLETED"})
	s := out.String()
	if strings.ContainsAny(s, "\x1b\r") {
		t.Fatalf("escape codes off a terminal: %q", s)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	// 201 updates, each reading the clock at least once (100ms): about
	// 20s or more, so a handful of lines, far fewer than updates.
	if len(lines) < 2 || len(lines) > 20 {
		t.Fatalf("%d lines for 201 updates:\n%s", len(lines), s)
	}
	last := lines[len(lines)-1]
	for _, want := range []string{"import abc COMPLETED", "100%", "100000/100000 rows", "rows/s", "rejects 3"} {
		if !strings.Contains(last, want) {
			t.Errorf("summary %q lacks %q", last, want)
		}
	}
	if !strings.Contains(lines[0], "rows/s") || !strings.Contains(lines[0], "ETA") {
		t.Errorf("progress line %q", lines[0])
	}
}

// On a terminal the bar is redrawn in place and every redraw fits the
// terminal's width, whatever it is, and moves by rows.
func TestProgressBarFitsTheTerminalWidth(t *testing.T) {
	for _, cols := range []int{40, 60, 80, 132} {
		var out bytes.Buffer
		clock := &fakeClock{t: time.Unix(0, 0), step: time.Second}
		v := newProgressViewOn(&out, true, func() int { return cols }, clock.now, "import abc")
		for rows := int64(0); rows <= 10_000; rows += 250 {
			v.update(progressSnap{Rows: rows, Total: 10_000, Rejected: 12, ChunksDone: int(rows / 5000), ChunksTotal: 2, State: "RUNNING"})
		}
		v.finish(progressSnap{Rows: 10_000, Total: 10_000, Rejected: 12, State: "COMPLETED"})
		s := out.String()
		if !strings.Contains(s, "\x1b[") {
			t.Fatalf("%d cols: no redraw codes on a terminal: %q", cols, s)
		}
		widest, bars := 0, map[string]bool{}
		for _, seg := range strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }) {
			seg = ansi.ReplaceAllString(seg, "")
			if !strings.Contains(seg, "|") {
				continue // the summary, written once as a line of its own
			}
			w := utf8.RuneCountInString(seg)
			if w >= cols {
				t.Errorf("%d cols: a redraw %d wide wraps: %q", cols, w, seg)
			}
			widest = max(widest, w)
			if i, j := strings.Index(seg, "|"), strings.LastIndex(seg, "|"); i >= 0 && j > i {
				bars[seg[i:j]] = true
			}
		}
		if widest < cols-12 {
			t.Errorf("%d cols: widest redraw %d: the bar does not use the width", cols, widest)
		}
		if len(bars) < 10 {
			t.Errorf("%d cols: the bar took %d shapes over 40 updates of rows", cols, len(bars))
		}
		if !strings.Contains(s, "import abc COMPLETED: 100%") {
			t.Errorf("%d cols: no summary: %q", cols, s)
		}
	}
}

// The bar never moves back, even when an estimate is followed by a lower
// count.
func TestProgressRowsNeverMoveBack(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Unix(0, 0), step: time.Second}
	v := newProgressViewOn(&out, true, func() int { return 80 }, clock.now, "x")
	v.update(progressSnap{Rows: 600, Total: 1000, State: "RUNNING"})
	v.update(progressSnap{Rows: 500, Total: 1000, State: "RUNNING"})
	if v.shown != 600 {
		t.Fatalf("shown %d after 600 then 500", v.shown)
	}
	v.finish(progressSnap{Rows: 500, Total: 1000, State: "FAILED"})
	if last := out.String()[strings.LastIndex(strings.TrimSuffix(out.String(), "\n"), "\n")+1:]; !strings.Contains(last, "x FAILED: 50% 500/1000 rows") {
		t.Fatalf("a failed import's summary shows the rows counted: %q", last)
	}
}

// Running chunks count the share of an average chunk's rows that their
// running time is of the average duration, up to 90%; nothing before a
// chunk has ended.
func TestInFlightEstimate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	var f inFlight
	f.observe(at(0), map[string]int32{"5": 1, "6": 1})
	if n := f.rows(at(3), 1000); n != 0 {
		t.Fatalf("estimate before any chunk ended: %d", n)
	}
	f.observe(at(10), map[string]int32{"6": 1, "7": 1}) // 5 took 10s; 7 starts
	if n := f.rows(at(15), 1000); n != 900+500 {
		t.Fatalf("estimate at 15s: %d, want 1400", n)
	}
	f.observe(at(16), map[string]int32{"6": 1, "7": 2}) // 7 is retried afresh
	if n := f.rows(at(16), 1000); n != 900 {
		t.Fatalf("estimate after a retry: %d, want 900", n)
	}
	if n := f.rows(at(16), 0); n != 0 {
		t.Fatalf("no rows per chunk: %d", n)
	}
}
