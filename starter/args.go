package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// completionFlag is the flag urfave/cli's completion scripts append; it
// must stay the last argument.
const completionFlag = "--generate-bash-completion"

// interspersed lets a command's flags follow its arguments, as in
// `starter gen orders --count 10` (urfave/cli v2 stops parsing flags at the
// first argument): it moves the command's arguments behind its flags. Global
// flags given after the command (`starter imports --log-level debug`) move
// in front of it, where urfave/cli looks for them. Subcommands
// (`starter keys status`) are followed down to the one that runs.
func interspersed(app *cli.App, args []string) []string {
	out, _ := arrange(app, args)
	return out
}

// arrange is interspersed, and also reports a flag that wants a value but
// ends the command line (`starter gen orders --count`): moved in front of
// the arguments, it would take one of them as its value.
func arrange(app *cli.App, args []string) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	if args[len(args)-1] == completionFlag {
		out, _ := arrange(app, args[:len(args)-1])
		return append(out, completionFlag), nil
	}
	// Skip global flags to find the command.
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "-" && args[i] != "--" {
		if takesValue(app.Flags, args[i]) {
			i++
		}
		i++
	}
	if i >= len(args) {
		return args, nil
	}
	cmd := app.Command(args[i])
	if cmd == nil {
		return args, nil
	}
	path := []string{args[i]}
	rest := args[i+1:]
	for len(rest) > 0 {
		sub := cmd.Command(rest[0])
		if sub == nil {
			break
		}
		cmd, path, rest = sub, append(path, rest[0]), rest[1:]
	}
	globals := append([]string{}, args[1:i]...)
	var flags, positional []string
	var err error
	for k := 0; k < len(rest); k++ {
		a := rest[k]
		switch {
		case a == "--":
			positional = append(positional, rest[k+1:]...)
			k = len(rest)
		case strings.HasPrefix(a, "-") && a != "-":
			own := hasFlag(cmd.Flags, a) || !hasFlag(app.Flags, a)
			fs := &flags
			if !own {
				fs = &globals
			}
			*fs = append(*fs, a)
			if takesValue(cmd.Flags, a) || (!own && takesValue(app.Flags, a)) {
				if k+1 < len(rest) {
					k++
					*fs = append(*fs, rest[k])
				} else if err == nil {
					err = hinted{usageError{fmt.Errorf("flag --%s needs a value", flagName(a))}, app.Name + " " + strings.Join(path, " ")}
				}
			}
		default:
			positional = append(positional, a)
		}
	}
	for _, f := range flags {
		if n := flagName(f); n == "help" || n == "h" {
			positional = nil // help on the command, not on a topic named by its argument
		}
	}
	out := append([]string{args[0]}, globals...)
	out = append(out, path...)
	out = append(out, flags...)
	for _, p := range positional {
		// An argument that looks like a flag stays an argument.
		if strings.HasPrefix(p, "-") && p != "-" {
			out = append(out, "--")
			break
		}
	}
	return append(out, positional...), err
}

func flagName(arg string) string {
	name := strings.TrimLeft(arg, "-")
	if i := strings.IndexByte(name, '='); i >= 0 {
		name = name[:i]
	}
	return name
}

func hasFlag(flags []cli.Flag, arg string) bool {
	name := flagName(arg)
	if name == "help" || name == "h" {
		return true
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// takesValue reports whether arg names a flag that takes a separate value.
func takesValue(flags []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}
