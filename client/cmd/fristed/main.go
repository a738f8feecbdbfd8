// Command fristed is the Fristed client for care workers and coordinators:
// an encrypted offline replica of the cases assigned to this device, synced
// through a relay that never sees plaintext.
//
// Run `fristed help` for the commands.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/term"

	"github.com/fristed/fristed/client"
)

func main() {
	disableCoreDumps()
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// env is what a command may touch of the outside world.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	ctx    context.Context
}

// command is one subcommand. Each lives in its own file with its own
// flag set and help text.
type command struct {
	name    string // e.g. "resident add"
	summary string
	usage   string                 // flags and arguments
	help    string                 // longer explanation
	flags   func(fs *flag.FlagSet) // defines the command's flags
	run     func(e *env, fs *flag.FlagSet, args []string) error
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// usageError is a bad invocation: printed with a hint to --help.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, ctx: ctx}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c := lookup(args[1:]); c != nil {
				printHelp(stdout, c)
				return 0
			}
		}
		printUsage(stdout)
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintln(stdout, "fristed", version)
		return 0
	}
	c, rest := lookupWithRest(args)
	if c == nil {
		fmt.Fprintf(stderr, "fristed: error: unknown command %q (run `fristed help`)\n", strings.Join(firstWords(args), " "))
		return 2
	}
	fs := flag.NewFlagSet("fristed "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.flags != nil {
		c.flags(fs)
	}
	positional, err := parseInterspersed(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(stdout, c)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "fristed: error: %s: %v (see `fristed %s --help`)\n", c.name, oneLine(err), c.name)
		return 2
	}
	if err := c.run(e, fs, positional); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "fristed: error: %s: %s (see `fristed %s --help`)\n", c.name, oneLine(err), c.name)
			return 2
		}
		fmt.Fprintf(stderr, "fristed: error: %s\n", oneLine(err))
		return 1
	}
	return 0
}

const version = "0.1.0"

func firstWords(args []string) []string {
	var out []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") || len(out) == 2 {
			break
		}
		out = append(out, a)
	}
	return out
}

func lookup(args []string) *command {
	c, _ := lookupWithRest(args)
	return c
}

// lookupWithRest finds the longest command name that prefixes args.
func lookupWithRest(args []string) (*command, []string) {
	if len(args) >= 2 {
		if c := commands[args[0]+" "+args[1]]; c != nil {
			return c, args[2:]
		}
	}
	if len(args) >= 1 {
		if c := commands[args[0]]; c != nil {
			return c, args[1:]
		}
	}
	return nil, nil
}

// parseInterspersed lets flags and positional arguments mix, as in
// `fristed device approve CODE --worker NAME`.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func oneLine(err error) string {
	s := strings.TrimSpace(err.Error())
	s = strings.ReplaceAll(s, "\n", "; ")
	return s
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `fristed - encrypted, offline-first case files for the housing-and-support service

Usage: fristed COMMAND [ARGS] [FLAGS]    (fristed help COMMAND for details)

Commands:
`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-20s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, `
Environment:
  FRISTED_HOME             device directory (default ~/.fristed)
  FRISTED_PASSPHRASE_FILE  file holding the device passphrase (else a terminal prompt)
`)
}

func printHelp(w io.Writer, c *command) {
	fmt.Fprintf(w, "Usage: fristed %s %s\n\n%s\n", c.name, c.usage, c.summary)
	if c.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.help))
	}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	if c.flags != nil {
		c.flags(fs)
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

// isTerminal reports whether r is an interactive terminal.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// passphraseSource returns the device passphrase: from the file named by
// FRISTED_PASSPHRASE_FILE, else from a terminal prompt. Without either it
// fails rather than wait on a pipe.
func (e *env) passphraseSource() func(confirm bool) ([]byte, error) {
	return func(confirm bool) ([]byte, error) {
		if f := os.Getenv("FRISTED_PASSPHRASE_FILE"); f != "" {
			return readSecretFile(f, "FRISTED_PASSPHRASE_FILE")
		}
		return e.prompt("Device passphrase", confirm)
	}
}

func readSecretFile(path, what string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	b = []byte(strings.TrimRight(string(b), "\r\n"))
	if len(b) == 0 {
		return nil, fmt.Errorf("%s %s is empty", what, path)
	}
	return b, nil
}

func (e *env) prompt(label string, confirm bool) ([]byte, error) {
	if !isTerminal(e.stdin) {
		return nil, fmt.Errorf("%s needed but stdin is not a terminal: set FRISTED_PASSPHRASE_FILE or use the passphrase-file flag", strings.ToLower(label))
	}
	fd := int(e.stdin.(*os.File).Fd())
	fmt.Fprintf(e.stderr, "%s: ", label)
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(e.stderr)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if len(p) == 0 {
		return nil, errors.New("empty passphrase")
	}
	if confirm {
		fmt.Fprintf(e.stderr, "%s again: ", label)
		q, err := term.ReadPassword(fd)
		fmt.Fprintln(e.stderr)
		if err != nil {
			return nil, fmt.Errorf("read passphrase: %w", err)
		}
		if string(p) != string(q) {
			return nil, errors.New("the passphrases do not match")
		}
	}
	return p, nil
}

// confirm asks a yes/no question on a terminal; without one it returns
// true (non-interactive use acts on the flags given).
func (e *env) confirm(question string) bool {
	if !isTerminal(e.stdin) {
		return true
	}
	fmt.Fprintf(e.stderr, "%s [y/N] ", question)
	line, _ := bufio.NewReader(e.stdin).ReadString('\n')
	line = strings.ToLower(strings.TrimSpace(line))
	return line == "y" || line == "yes"
}

// testWorkFactor is the scrypt cost of new identity and recovery files;
// zero (the product) means the default. Only this package's tests set it.
var testWorkFactor int

// options are the client options shared by every command.
func (e *env) options() client.Options {
	return client.Options{
		Home:       client.DefaultHome(),
		WorkFactor: testWorkFactor,
		Passphrase: e.passphraseSource(),
		Notice:     func(s string) { fmt.Fprintf(e.stderr, "fristed: %s\n", s) },
	}
}

// open unlocks the device; callers must Close it.
func (e *env) open() (*client.Device, error) {
	return client.Open(e.options())
}

// withDevice runs fn on the unlocked device and closes it, keeping the
// first error.
func (e *env) withDevice(fn func(d *client.Device) error) error {
	d, err := e.open()
	if err != nil {
		return err
	}
	err = fn(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// last prints a value alone on the last line of stdout, as the contract
// wants for ids, codes and fingerprints.
func (e *env) last(v string) { fmt.Fprintln(e.stdout, v) }
