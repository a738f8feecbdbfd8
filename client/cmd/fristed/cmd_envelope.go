package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/fristed/fristed/client"
)

func init() {
	register(&command{
		name:    "envelope seal",
		summary: "seal a resident's alarm card for a police contact (coordinator)",
		usage:   "RESIDENT --police NAME",
		help: `Builds the resident's alarm card from the case (the reveal is audited),
signs it, encrypts it to the police contact and to a one-time release key
held by the relay, and records the seal in the admin chain. The first seal
writes the release credential fristed-alarm-<ALARM>.json (mode 0600) in the
current directory: hand it to the police with the check code shown on
stderr. Sealing the same resident for the same contact again re-seals: the
alarm id and credential stay the same (an alarm sealed before the directory
kept its secret's hash needs the credential file in the current directory).
A coordinator's sync re-seals by itself when the card would say something
else, and closing the case re-seals to a card without the address.
Prints the alarm id on the last line.`,
		flags: func(fs *flag.FlagSet) {
			fs.String("police", "", "the police contact's name")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return usagef("want one RESIDENT")
			}
			if flagStr(fs, "police") == "" {
				return usagef("--police NAME is required")
			}
			return e.withDevice(func(d *client.Device) error {
				if isTerminal(e.stdin) {
					// Only on a terminal: the sealing user sees what the
					// police will read before it is sealed.
					d.CardPreview = func(card []byte) bool {
						fmt.Fprintf(e.stderr, "%s\n\n", card)
						return e.confirm("Seal this card for the police?")
					}
				}
				res, err := d.EnvelopeSeal(e.ctx, args[0], flagStr(fs, "police"), ".")
				if err != nil {
					return err
				}
				if res.Resealed {
					fmt.Fprintf(e.stderr, "fristed: re-sealed (generation %d); the credential %s stays valid\n", res.Generation, res.CredentialPath)
				} else {
					fmt.Fprintf(e.stderr, "fristed: wrote the release credential %s\n", res.CredentialPath)
				}
				fmt.Fprintf(e.stderr, "fristed: check code %s\n", res.CheckCode)
				e.last(res.Alarm.String())
				return nil
			})
		},
	})
	register(&command{
		name:    "envelope release",
		summary: "release a sealed alarm envelope (police; no device needed)",
		usage:   "--alarm ID --credential FILE > sealed.age",
		help: `Asks the relay to release the envelope, checks the answer against the org
fingerprint in the credential (the coordinator's sealed statement and its
chain, and the inner layer's hash) and writes only the inner layer, an age
file, to stdout: open it with "age -d -i police-key.txt". The sealed-at
date, the check code and the release code go to stderr; compare the check
code with the one on paper, and give the release code to the organisation,
which sees the same code beside the release. A replayed or superseded
envelope fails the check. On any failure nothing is written to stdout.`,
		flags: func(fs *flag.FlagSet) {
			fs.String("alarm", "", "the alarm id")
			fs.String("credential", "", "the release credential file")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			if flagStr(fs, "alarm") == "" || flagStr(fs, "credential") == "" {
				return usagef("--alarm ID and --credential FILE are required")
			}
			cred, err := client.ReadCredential(flagStr(fs, "credential"))
			if err != nil {
				return err
			}
			if cred.Alarm != flagStr(fs, "alarm") {
				return fmt.Errorf("the credential is for alarm %s, not %s", cred.Alarm, flagStr(fs, "alarm"))
			}
			if f, ok := e.stdout.(*os.File); ok && isTerminal(f) {
				return fmt.Errorf("stdout is a terminal: redirect it to a file (> sealed.age)")
			}
			res, err := client.EnvelopeRelease(e.ctx, cred)
			if err != nil {
				return err
			}
			if _, err := e.stdout.Write(res.Inner); err != nil {
				return fmt.Errorf("write the envelope: %w", err)
			}
			if res.Retry {
				fmt.Fprintln(e.stderr, "fristed: this was a retry of the same release")
			}
			fmt.Fprintf(e.stderr, "fristed: sealed at %s\nfristed: check code %s\nfristed: release code %s (the organisation sees the same code beside this release)\n",
				res.SealedAt.Format("2006-01-02 15:04 UTC"), res.CheckCode, res.ReleaseCode)
			return nil
		},
	})
}
