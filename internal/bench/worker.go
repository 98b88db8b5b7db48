package bench

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/acme/payments/internal/config"
)

// workerProcess is a program of the service (the worker, or `starter
// serve`) running as a child process.
type workerProcess struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // why it exited; read after exited is closed
}

// pid is the process id as /proc names it.
func (w *workerProcess) pid() string { return strconv.Itoa(w.cmd.Process.Pid) }

// startWorker runs the worker program against the stack, configured the way
// an operator would: through the environment (never argv, which other users
// can read).
func startWorker(bin string, c config.Config) (*workerProcess, error) {
	env, err := serviceEnv(c)
	if err != nil {
		return nil, err
	}
	return startProgram("worker", bin, nil, env)
}

// serviceEnv is the environment of a service program against the stack.
// Settings of the caller's own environment for the service are left out so
// that only the stack's apply.
func serviceEnv(c config.Config) ([]string, error) {
	blobURL, err := c.StagingURL()
	if err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PAYMENTS_") && !strings.HasPrefix(kv, "TEMPORAL_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"PAYMENTS_MYSQL_DSN="+c.MySQLDSN,
		"TEMPORAL_ADDRESS="+c.TemporalAddress,
		"TEMPORAL_NAMESPACE="+c.TemporalNamespace,
		"PAYMENTS_BLOB_URL="+blobURL,
		"PAYMENTS_KEYS="+c.Keys,
		"PAYMENTS_BLIND_INDEX_KEY="+c.BlindIndexKey,
		"PAYMENTS_IMPORT_CHUNK_ROWS="+strconv.Itoa(c.ImportChunkRows),
		"PAYMENTS_IMPORT_PARALLELISM="+strconv.Itoa(c.ImportParallelism),
		"PAYMENTS_EXPORT_CHUNK_ROWS="+strconv.Itoa(c.ExportChunkRows),
		"PAYMENTS_EXPORT_PARALLELISM="+strconv.Itoa(c.ExportParallelism),
		"PAYMENTS_LOG_LEVEL=warn",
	), nil
}

// startProgram runs bin with args and env; its output goes to this
// process's stderr.
func startProgram(name, bin string, args, env []string) (*workerProcess, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// Linux only, like the /proc reads: the program dies with the bench.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s: %w", name, bin, err)
	}
	w := &workerProcess{cmd: cmd, exited: make(chan struct{})}
	go func() {
		w.err = cmd.Wait()
		close(w.exited)
	}()
	return w, nil
}

// stop asks the program to shut down and kills it if it has not within ten
// seconds.
func (w *workerProcess) stop() {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.exited:
	case <-time.After(10 * time.Second):
		_ = w.cmd.Process.Kill()
		<-w.exited
	}
}
