package main

import (
	"flag"
	"fmt"

	"github.com/fristed/fristed/client"
)

func init() {
	register(&command{
		name:    "assign",
		summary: "give a worker access to a resident (coordinator)",
		usage:   "RESIDENT --worker NAME",
		help:    `Starts a new key epoch for the case, wrapped to the worker's laptops.`,
		flags:   func(fs *flag.FlagSet) { fs.String("worker", "", "the worker's name") },
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 || flagStr(fs, "worker") == "" {
				return usagef("want RESIDENT --worker NAME")
			}
			return e.withDevice(func(d *client.Device) error { return d.Assign(e.ctx, args[0], flagStr(fs, "worker")) })
		},
	})
	register(&command{
		name:    "unassign",
		summary: "remove a worker's access to a resident (coordinator)",
		usage:   "RESIDENT --worker NAME",
		help:    `Starts a new key epoch without the worker's laptops: nothing written from now on is readable by them.`,
		flags:   func(fs *flag.FlagSet) { fs.String("worker", "", "the worker's name") },
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 || flagStr(fs, "worker") == "" {
				return usagef("want RESIDENT --worker NAME")
			}
			return e.withDevice(func(d *client.Device) error { return d.Unassign(e.ctx, args[0], flagStr(fs, "worker")) })
		},
	})
	register(&command{
		name:    "sync",
		summary: "push edits made on this laptop and pull the others'",
		usage:   "",
		help: `Works any time: edits made offline wait on this laptop until a sync
reaches the relay. If the relay cannot be reached, says how many edits are
pending and exits non-zero; nothing is lost.`,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			opts := e.options()
			opts.Progress = e.progress()
			d, err := client.Open(opts)
			if err != nil {
				return err
			}
			res, err := d.Sync(e.ctx)
			if cerr := d.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "synced: %d sent, %d received, %d pending\n", res.Pushed, res.Pulled, res.Pending)
			return nil
		},
	})
	register(&command{
		name:    "passphrase change",
		summary: "change this laptop's passphrase",
		usage:   "[--new-passphrase-file F]",
		flags: func(fs *flag.FlagSet) {
			fs.String("new-passphrase-file", "", "file holding the new passphrase (else a prompt)")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			var newPass []byte
			var err error
			if f := flagStr(fs, "new-passphrase-file"); f != "" {
				newPass, err = readSecretFile(f, "--new-passphrase-file")
			} else {
				newPass, err = e.prompt("New device passphrase", true)
			}
			if err != nil {
				return err
			}
			if err := client.ChangePassphrase(e.options(), newPass); err != nil {
				return err
			}
			fmt.Fprintln(e.stderr, "passphrase changed")
			return nil
		},
	})
}

// progress prints a bar on a terminal and nothing otherwise.
func (e *env) progress() func(done, total int, what string) {
	if !isTerminal(e.stdin) {
		return nil
	}
	return func(done, total int, what string) {
		if total <= 0 {
			return
		}
		const width = 30
		n := done * width / total
		fmt.Fprintf(e.stderr, "\r[%s%s] %d/%d %s", repeat('#', n), repeat('.', width-n), done, total, what)
		if done >= total {
			fmt.Fprintln(e.stderr)
		}
	}
}

func repeat(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
