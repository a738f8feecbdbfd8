package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/fristed/fristed/client"
	fcrypto "github.com/fristed/fristed/crypto"
)

func init() {
	register(&command{
		name:    "envelope emergency",
		summary: "write a signed alarm card for the police without the relay",
		usage:   "RESIDENT --police NAME > card.age",
		help: `For when the relay is down at the moment of an alarm: this laptop (a
coordinator's, or one assigned to the resident) writes a fresh card signed
by itself, with the org's chain as proof, encrypted to the police contact.
stdout is the age file. The police open it with age -d -i police.key and
check it with fristed envelope verify. Recorded in the audit log.`,
		flags: func(fs *flag.FlagSet) { fs.String("police", "", "the police contact's name") },
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 || flagStr(fs, "police") == "" {
				return usagef("want RESIDENT --police NAME")
			}
			if isTerminalOut(e.stdout) {
				return usagef("stdout is a terminal: redirect it to a file (> card.age)")
			}
			return e.withDevice(func(d *client.Device) error {
				res, err := d.EnvelopeEmergency(args[0], flagStr(fs, "police"))
				if err != nil {
					return err
				}
				if _, err := e.stdout.Write(res.File); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "emergency card written; check code %s\n", res.CheckCode)
				return nil
			})
		},
	})
	register(&command{
		name:    "envelope verify",
		summary: "check that an emergency card is genuine (police side)",
		usage:   "FILE --org FINGERPRINT",
		help: `FILE is the card after age -d. Checks the chain proof against the org
fingerprint, that the signer is an enrolled, unrevoked laptop of the org,
and the card's signature. Needs no device.`,
		flags: func(fs *flag.FlagSet) {
			fs.String("org", "", "the org fingerprint (from the credential or the organisation)")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 || flagStr(fs, "org") == "" {
				return usagef("want FILE --org FINGERPRINT")
			}
			org, err := fcrypto.ParseFingerprint(flagStr(fs, "org"))
			if err != nil {
				return err
			}
			text, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("read card: %w", err)
			}
			v, err := client.VerifyEmergencyCard(text, org)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "genuine: signed by %s laptop %s of this org; check code %s\n", v.Role, v.Signer, v.CheckCode)
			return nil
		},
	})
}

// isTerminalOut reports whether w is a terminal.
func isTerminalOut(w interface{}) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}
