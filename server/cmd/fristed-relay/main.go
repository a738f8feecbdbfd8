// Command fristed-relay runs Fristed's relay: the minimal-knowledge sync
// server that passes sealed edits between a tenant's devices and enforces
// the access control its admin chain states.
//
// Usage:
//
//	fristed-relay serve --listen ADDR --data DIR [--store sqlite|postgres] [--postgres-url URL]
//	                    [--tls-cert F --tls-key F | --insecure-loopback] [--metrics-listen ADDR]
//	                    [--snapshot-keep DURATION]
//	fristed-relay invite --data DIR [--valid DURATION]
//
// Every failure is one line, "fristed-relay: error: ...", on stderr and a
// non-zero exit status. See server/doc.go for the HTTP API and deployment.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

const usage = `fristed-relay: the Fristed sync relay

Usage:
  fristed-relay serve --listen ADDR --data DIR [flags]   run the relay
  fristed-relay invite --data DIR [flags]                print a one-time tenant invite
  fristed-relay help [COMMAND]                           show help

Run "fristed-relay help serve" or "fristed-relay help invite" for the flags.
`

// errHelp means help was printed on request.
var errHelp = errors.New("help requested")

type command struct {
	name string
	run  func(args []string, stdout, stderr io.Writer) error
	help func(w io.Writer)
}

var commands = []command{
	{name: "serve", run: runServe, help: func(w io.Writer) { newServeFlags().help(w) }},
	{name: "invite", run: runInvite, help: func(w io.Writer) { newInviteFlags().help(w) }},
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return fail(stderr, errors.New(`no command given; run "fristed-relay help"`))
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" || name == "-help" {
		if len(args) > 1 {
			for _, c := range commands {
				if c.name == args[1] {
					c.help(stdout)
					return 0
				}
			}
			return fail(stderr, fmt.Errorf("unknown command %q", args[1]))
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		if errors.Is(err, errHelp) {
			c.help(stdout)
			return 0
		}
		if err != nil {
			return fail(stderr, err)
		}
		return 0
	}
	return fail(stderr, fmt.Errorf("unknown command %q; run \"fristed-relay help\"", name))
}

func fail(stderr io.Writer, err error) int {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	fmt.Fprintf(stderr, "fristed-relay: error: %s\n", msg)
	return 1
}
