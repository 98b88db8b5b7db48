package main

// The command line's contract (README "Commands", SPEC 7): exit code 0 on
// success, 1 on failure, 2 on bad usage; every error is one line on stderr,
// a usage error with a hint to the command's --help; help only on --help
// or `help`, on stdout; data on stdout, human text on stderr.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/service"
)

// usageError marks bad command-line usage (exit code 2).
type usageError struct{ error }

// hinted is a usage error of one command, whose --help the message names.
type hinted struct {
	err  error
	help string // "starter pay"
}

func (h hinted) Error() string { return h.err.Error() }
func (h hinted) Unwrap() error { return h.err }

// run runs the command line args and returns the process's exit code,
// having written any error to stderr as one line.
func run(ctx context.Context, app *cli.App, args []string, stderr io.Writer) int {
	args, err := arrange(app, args)
	if err == nil {
		err = app.RunContext(ctx, args)
	}
	return report(stderr, app.Name, err)
}

// report writes err as one line and returns its exit code.
func report(w io.Writer, name string, err error) int {
	if err == nil {
		return 0
	}
	msg := oneLine(err.Error())
	var ec cli.ExitCoder
	var ue usageError
	switch {
	case errors.As(err, &ue):
	case errors.As(err, &ec) && ec.ExitCode() == 3:
		// urfave/cli's "No help topic for 'x'".
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(w, "%s: interrupted\n", name)
		return 1
	default:
		fmt.Fprintf(w, "%s: %s\n", name, msg)
		return 1
	}
	help := name
	var h hinted
	if errors.As(err, &h) {
		help = h.help
	}
	fmt.Fprintf(w, "%s: %s (run '%s --help')\n", name, msg, help)
	return 2
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// contract applies the rules above to app and all its commands, and turns
// on shell completion.
func contract(app *cli.App) *cli.App {
	app.EnableBashCompletion = true
	// main reports errors and chooses the exit code, not urfave/cli.
	app.ExitErrHandler = func(*cli.Context, error) {}
	app.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
		return hinted{usageError{flagError(err)}, app.Name}
	}
	app.Action = func(c *cli.Context) error {
		if c.Args().Present() {
			return usageError{fmt.Errorf("unknown command %q", c.Args().First())}
		}
		return usageError{errors.New("no command given")}
	}
	before := app.Before
	app.Before = func(c *cli.Context) error {
		quietLogs = !c.IsSet("log-level")
		if before != nil {
			return before(c)
		}
		return nil
	}
	for _, cmd := range app.Commands {
		applyContract(cmd, app.Name+" "+cmd.Name)
	}
	return app
}

func applyContract(cmd *cli.Command, help string) {
	// `starter help pay` and `starter pay --help` stay; a leaf command's own
	// help subcommand would only clutter completion.
	cmd.HideHelpCommand = len(cmd.Subcommands) == 0
	cmd.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
		return hinted{usageError{flagError(err)}, help}
	}
	switch act := cmd.Action; {
	case act != nil:
		cmd.Action = func(c *cli.Context) error {
			err := act(c)
			var ue usageError
			var h hinted
			if errors.As(err, &ue) && !errors.As(err, &h) {
				return hinted{err, help}
			}
			return err
		}
	case len(cmd.Subcommands) > 0:
		var names []string
		for _, s := range cmd.Subcommands {
			names = append(names, s.Name)
		}
		cmd.Action = func(c *cli.Context) error {
			if c.Args().Present() {
				return hinted{usageError{fmt.Errorf("%s: unknown subcommand %q", cmd.Name, c.Args().First())}, help}
			}
			return hinted{usageError{fmt.Errorf("%s needs a subcommand: %s", cmd.Name, strings.Join(names, ", "))}, help}
		}
	}
	for _, s := range cmd.Subcommands {
		applyContract(s, help+" "+s.Name)
	}
}

var (
	unknownFlag = regexp.MustCompile(`^flag provided but not defined: -+(\S+)$`)
	needsValue  = regexp.MustCompile(`^flag needs an argument: -+(\S+)$`)
	badValue    = regexp.MustCompile(`^invalid value (".*") for flag -+([^:\s]+)`)
)

// flagError rewrites the flag package's messages in the CLI's own words,
// with flags spelt as they are typed.
func flagError(err error) error {
	s := err.Error()
	if m := unknownFlag.FindStringSubmatch(s); m != nil {
		return fmt.Errorf("unknown flag --%s", m[1])
	}
	if m := needsValue.FindStringSubmatch(s); m != nil {
		return fmt.Errorf("flag --%s needs a value", m[1])
	}
	if m := badValue.FindStringSubmatch(s); m != nil {
		return fmt.Errorf("invalid value %s for --%s", m[1], m[2])
	}
	return err
}

// requireFlags is a usage error naming the flags of names that were not
// given (urfave/cli's own Required check exits 1 and prints help).
func requireFlags(c *cli.Context, names ...string) error {
	var missing []string
	for _, n := range names {
		if c.String(n) == "" {
			missing = append(missing, "--"+n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return usageError{fmt.Errorf("%s needs %s", c.Command.Name, strings.Join(missing, " and "))}
}

// quietLogs is set when --log-level / PAYMENTS_LOG_LEVEL is not: the short
// commands then log warnings and errors only, so no info line lands among
// their output or before a progress bar.
var quietLogs bool

// cliLogger is the logger of a short command (not dev, serve or migrate).
func cliLogger(cfg config.Config) *slog.Logger {
	level := cfg.LogLevel
	if quietLogs && (level == "" || level == "info") {
		level = "warn"
	}
	return service.NewLogger(os.Stderr, level)
}

// Shell completion: urfave/cli answers --generate-bash-completion; these are
// its scripts, for a binary named starter on $PATH.
const bashCompletion = `# bash completion for starter: source <(starter completion bash)
_starter_complete() {
  local cur words opts
  COMPREPLY=()
  cur="${COMP_WORDS[COMP_CWORD]}"
  words=("${COMP_WORDS[@]:0:$COMP_CWORD}")
  if [[ "$cur" == "-"* ]]; then
    opts=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
  return 0
}
complete -o bashdefault -o default -F _starter_complete starter
`

const zshCompletion = `#compdef starter
# zsh completion for starter: source <(starter completion zsh), after compinit
_starter() {
  local -a opts
  local cur
  cur=${words[-1]}
  if [[ "$cur" == "-"* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _starter starter
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: source <(starter completion bash)",
		ArgsUsage: "bash|zsh",
		Action: func(c *cli.Context) error {
			if c.Args().Len() != 1 {
				return usageError{errors.New("completion takes bash or zsh")}
			}
			switch c.Args().First() {
			case "bash":
				fmt.Print(bashCompletion)
			case "zsh":
				fmt.Print(zshCompletion)
			default:
				return usageError{fmt.Errorf("completion: unknown shell %q, want bash or zsh", c.Args().First())}
			}
			return nil
		},
	}
}
