package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSample is the CPU time used so far by this process and by the MySQL
// server, when the server runs on this machine (else its field stays 0).
// Printed next to wall times, it shows which side of the connection a
// change moved the cost to.
type cpuSample struct {
	self, server time.Duration
}

func sampleCPU() cpuSample {
	var s cpuSample
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	s.server = serverCPU()
	return s
}

func (s cpuSample) since(earlier cpuSample) cpuSample {
	return cpuSample{self: s.self - earlier.self, server: s.server - earlier.server}
}

// serverCPU sums utime and stime of a local mariadbd or mysqld process.
func serverCPU() time.Duration {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		if err != nil {
			continue
		}
		if name := string(bytes.TrimSpace(comm)); name != "mariadbd" && name != "mysqld" {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			return 0
		}
		// Fields after the parenthesised command name; utime and stime are
		// the 14th and 15th fields of the line, in clock ticks (100 Hz).
		rest := string(stat[bytes.LastIndexByte(stat, ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 13 {
			return 0
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(u+st) * 10 * time.Millisecond
	}
	return 0
}
