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

// cpuSample is the CPU time used so far by the service (this process, plus
// the worker process when it runs apart) and by the MySQL server when that
// runs on this machine. Printed next to wall times, it shows which side of
// the connection a change moved the cost to.
type cpuSample struct {
	service, server time.Duration
	serverSeen      bool
}

// sampleCPU samples this process, the worker process (if any) and the
// server found by findServer (if any).
func (st *Stack) sampleCPU() cpuSample {
	var s cpuSample
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.service = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if st.worker != nil {
		if d, ok := procCPU(st.worker.pid()); ok {
			s.service += d
		}
	}
	if st.serverPID != "" {
		s.server, s.serverSeen = procCPU(st.serverPID)
	}
	return s
}

func (s cpuSample) since(earlier cpuSample) cpuSample {
	return cpuSample{service: s.service - earlier.service, server: s.server - earlier.server,
		serverSeen: s.serverSeen && earlier.serverSeen}
}

// serverText is the server's CPU seconds, or n/a when no local server was
// found (a remote one, say).
func (s cpuSample) serverText() string {
	if !s.serverSeen {
		return "n/a"
	}
	return strconv.FormatFloat(s.server.Seconds(), 'f', 1, 64)
}

// findServer returns the pid of the first local mariadbd or mysqld process,
// or "" for none. With several servers on the machine it may be another
// than the one the benchmark uses.
func findServer() string {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		if err != nil {
			continue
		}
		if name := string(bytes.TrimSpace(comm)); name == "mariadbd" || name == "mysqld" {
			return filepath.Base(d)
		}
	}
	return ""
}

// procCPU sums utime and stime of /proc/<pid>.
func procCPU(pid string) (time.Duration, bool) {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false
	}
	// Fields after the parenthesised command name; utime and stime are
	// the 14th and 15th fields of the line, in clock ticks (USER_HZ, 100
	// on Linux).
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 > len(stat) {
		return 0, false
	}
	f := strings.Fields(string(stat[i+2:]))
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+st) * 10 * time.Millisecond, true
}
