package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// cliRun runs the built binary with env and args and returns its exit
// code, stdout and stderr.
func cliRun(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(buildStarter(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// Bad usage exits 2 with one line on stderr that says what is wrong and
// which --help to read, and nothing on stdout (no help dump).
func TestUsageErrorsNameTheProblemAndTheHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string // in stderr
	}{
		{nil, []string{"no command given", "run 'starter --help'"}},
		{[]string{"--log-level", "warn"}, []string{"no command given"}},
		{[]string{"no-such-command"}, []string{`unknown command "no-such-command"`, "run 'starter --help'"}},
		{[]string{"--no-such-flag", "imports"}, []string{"unknown flag --no-such-flag", "run 'starter --help'"}},
		{[]string{"help", "no-such-topic"}, []string{"no-such-topic"}},
		{[]string{"pay", "UX-1", "--method", "CARD"}, []string{"--amount", "run 'starter pay --help'"}},
		{[]string{"pay", "UX-1", "--amount", "1.00"}, []string{"--method", "run 'starter pay --help'"}},
		{[]string{"pay", "UX-1", "--method", "CARD", "--amount", "1", "--bogus"}, []string{"unknown flag --bogus", "run 'starter pay --help'"}},
		{[]string{"imports", "--bogus"}, []string{"unknown flag --bogus", "run 'starter imports --help'"}},
		{[]string{"import", "--type", "refunds", "orders.csv"}, []string{"--type", "refunds", "run 'starter import --help'"}},
		{[]string{"import"}, []string{"FILE", "run 'starter import --help'"}},
		{[]string{"export", "--type", "refunds", "--format", "csv"}, []string{"refunds", "run 'starter export --help'"}},
		{[]string{"gen", "orders", "--count"}, []string{"--count needs a value", "run 'starter gen --help'"}},
		{[]string{"gen", "orders", "--count", "many"}, []string{`invalid value "many" for --count`}},
		{[]string{"migrate", "extra-arg"}, []string{"extra-arg", "run 'starter migrate --help'"}},
		{[]string{"completion", "fish"}, []string{"fish", "run 'starter completion --help'"}},
	} {
		code, stdout, stderr := cliRun(t, nil, c.args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", c.args, code, stderr)
		}
		if stdout != "" {
			t.Errorf("%q: stdout %q, want nothing", c.args, stdout)
		}
		if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
			t.Errorf("%q: stderr is not one line: %q", c.args, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%q: stderr %q lacks %q", c.args, stderr, w)
			}
		}
		if strings.Contains(stderr, "USAGE") || strings.Contains(stderr, "Incorrect Usage") {
			t.Errorf("%q: help on stderr: %q", c.args, stderr)
		}
	}
}

// Help is asked for, so it goes to stdout and exits 0.
func TestHelpOnStdout(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"pay", "--help"}, {"help", "pay"}, {"gen", "orders", "-h"}} {
		code, stdout, stderr := cliRun(t, nil, args...)
		if code != 0 || !strings.Contains(stdout, "USAGE") || stderr != "" {
			t.Errorf("%q: exit %d, stdout %.80q, stderr %q", args, code, stdout, stderr)
		}
	}
	if _, stdout, _ := cliRun(t, nil, "pay", "--help"); !strings.Contains(stdout, "--amount") {
		t.Errorf("pay --help does not show --amount:\n%s", stdout)
	}
}

// Global flags may follow the command, with their values.
func TestGlobalFlagsAfterTheCommand(t *testing.T) {
	code, stdout, stderr := cliRun(t, nil, "gen", "orders", "--count", "3", "--log-level", "warn", "--seed", "2")
	if code != 0 || strings.Count(stdout, "\n") != 4 || !strings.Contains(stderr, "wrote 3 orders rows") {
		t.Fatalf("gen with a global flag after it: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	// The DSN given after the command is the one used: the failure names it.
	code, _, stderr = cliRun(t, []string{"PAYMENTS_MYSQL_DSN="}, "migrate", "--mysql-dsn", "root:pw@tcp(127.0.0.1:1)/x?timeout=1s")
	if code != 1 || !strings.Contains(stderr, "127.0.0.1:1") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("migrate --mysql-dsn: exit %d, stderr %q", code, stderr)
	}
}

// `starter completion bash|zsh` prints scripts that call back into the
// binary's --generate-bash-completion, which lists commands and flags.
func TestShellCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "complete -o bashdefault", "zsh": "#compdef starter"} {
		code, stdout, stderr := cliRun(t, nil, "completion", shell)
		if code != 0 || !strings.Contains(stdout, want) || !strings.Contains(stdout, "--generate-bash-completion") || stderr != "" {
			t.Errorf("completion %s: exit %d\n%s%s", shell, code, stdout, stderr)
		}
	}
	if path, err := exec.LookPath("bash"); err == nil {
		code, stdout, _ := cliRun(t, nil, "completion", "bash")
		check := exec.Command(path, "-n")
		check.Stdin = strings.NewReader(stdout)
		if out, err := check.CombinedOutput(); code != 0 || err != nil {
			t.Errorf("bash -n on the script: %v %s", err, out)
		}
	}
	_, stdout, _ := cliRun(t, nil, "--generate-bash-completion")
	for _, cmd := range []string{"import", "imports", "pay", "completion"} {
		if !strings.Contains("\n"+stdout, "\n"+cmd+"\n") {
			t.Errorf("commands completion lacks %s:\n%s", cmd, stdout)
		}
	}
	_, stdout, _ = cliRun(t, nil, "gen", "orders", "--co", "--generate-bash-completion")
	if strings.TrimSpace(stdout) != "--count" {
		t.Errorf("flag completion of gen --co: %q", stdout)
	}
}
