package progress

import (
	"strings"
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	got := Line(Snapshot{RowsDone: 500, RowsTotal: 1000, Rejected: 3, ChunksDone: 1, ChunksTotal: 2, State: "RUNNING"}, 5*time.Second, 10)
	for _, want := range []string{"█████░░░░░", " 50%", "500/1000 rows", "100 rows/s", "ETA 5s", "rejects 3", "chunks 1/2", "RUNNING"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	done := Line(Snapshot{RowsDone: 10, RowsTotal: 10, State: "COMPLETED"}, time.Second, 4)
	if !strings.Contains(done, "████ 100%") || !strings.Contains(done, "ETA 0s") {
		t.Errorf("%q", done)
	}
	start := Line(Snapshot{State: "RUNNING"}, 0, 4)
	if !strings.Contains(start, "░░░░   0%") || !strings.Contains(start, "ETA --") {
		t.Errorf("%q", start)
	}
}
