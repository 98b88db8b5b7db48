// Package progress renders an import's progress as one terminal line:
// a bar, rows, rows/s, ETA and rejects.
package progress

import (
	"fmt"
	"strings"
	"time"
)

// Snapshot is what the line shows.
type Snapshot struct {
	RowsDone, RowsTotal int64
	Rejected            int64
	ChunksDone          int
	ChunksTotal         int
	State               string
}

// Line renders s after elapsed time, width bar cells wide.
func Line(s Snapshot, elapsed time.Duration, width int) string {
	frac := 0.0
	if s.RowsTotal > 0 {
		frac = float64(s.RowsDone) / float64(s.RowsTotal)
	} else if s.ChunksTotal > 0 {
		frac = float64(s.ChunksDone) / float64(s.ChunksTotal)
	}
	frac = min(max(frac, 0), 1)
	filled := int(frac * float64(width))
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	rate := 0.0
	if secs := elapsed.Seconds(); secs > 0 {
		rate = float64(s.RowsDone) / secs
	}
	eta := "--"
	if rate > 0 && s.RowsTotal > s.RowsDone {
		eta = (time.Duration(float64(s.RowsTotal-s.RowsDone)/rate) * time.Second).Round(time.Second).String()
	} else if s.RowsTotal > 0 && s.RowsDone >= s.RowsTotal {
		eta = "0s"
	}
	return fmt.Sprintf("%s %3.0f%% %d/%d rows  %.0f rows/s  ETA %s  rejects %d  chunks %d/%d  %s",
		bar, frac*100, s.RowsDone, s.RowsTotal, rate, eta, s.Rejected, s.ChunksDone, s.ChunksTotal, s.State)
}
