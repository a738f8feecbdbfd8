package main

import (
	"flag"
	"fmt"

	"github.com/fristed/fristed/client"
)

func init() {
	register(&command{
		name:    "police keygen",
		summary: "make a police contact's age key (hybrid post-quantum)",
		usage:   "--out FILE",
		help: `Writes a new hybrid post-quantum age identity to FILE (mode 0600) in the
stock age identity format, readable with "age -d -i FILE"; an existing file
is never overwritten. Prints the public key (recipient) on the last line:
give it to the coordinator for "fristed police add". No device is needed.`,
		flags: func(fs *flag.FlagSet) {
			fs.String("out", "", "file to write the identity to")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			out := flagStr(fs, "out")
			if out == "" {
				return usagef("--out FILE is required")
			}
			rcpt, err := client.PoliceKeygen(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "fristed: wrote the secret key to %s; keep it safe\n", out)
			e.last(rcpt)
			return nil
		},
	})
	register(&command{
		name:    "police add",
		summary: "register a police contact and their age key (coordinator)",
		usage:   "--name NAME --recipient AGE_RECIPIENT",
		help: `Registers a police contact: a random contact id in the admin chain, the
name and the age recipient (age1... or age1pq1...) only in the encrypted
directory. Shows the key's fingerprint on stderr: read it to the contact by
phone to confirm the key. Prints the contact id on the last line.`,
		flags: func(fs *flag.FlagSet) {
			fs.String("name", "", "the contact's name")
			fs.String("recipient", "", "the contact's age recipient")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			if flagStr(fs, "name") == "" || flagStr(fs, "recipient") == "" {
				return usagef("--name NAME and --recipient AGE_RECIPIENT are required")
			}
			return e.withDevice(func(d *client.Device) error {
				id, fp, err := d.PoliceAdd(e.ctx, flagStr(fs, "name"), flagStr(fs, "recipient"))
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "fristed: key fingerprint %s (confirm it with the contact by phone)\n", fp)
				e.last(id.String())
				return nil
			})
		},
	})
}
