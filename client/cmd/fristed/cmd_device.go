package main

import (
	"flag"
	"fmt"

	"github.com/fristed/fristed/client"
	fcrypto "github.com/fristed/fristed/crypto"
)

func init() {
	register(&command{
		name:    "device init",
		summary: "make keys for this laptop and ask to join an org",
		usage:   "--relay URL --org FINGERPRINT --name NAME",
		help: `Prints an enrolment code. Give it to a coordinator, who runs
fristed device approve CODE --worker NAME. The code commits to this
laptop's keys, so a relay that swaps them is caught. Then run fristed sync.`,
		flags: func(fs *flag.FlagSet) {
			fs.String("relay", "", "relay URL")
			fs.String("org", "", "the org fingerprint (from the coordinator)")
			fs.String("name", "", "a name for this laptop (seen only by coordinators)")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			if flagStr(fs, "relay") == "" || flagStr(fs, "org") == "" || flagStr(fs, "name") == "" {
				return usagef("--relay, --org and --name are required")
			}
			org, err := fcrypto.ParseFingerprint(flagStr(fs, "org"))
			if err != nil {
				return err
			}
			d, code, err := client.DeviceInit(e.ctx, e.options(), client.DeviceInitParams{
				RelayURL: flagStr(fs, "relay"), Org: org, Name: flagStr(fs, "name")})
			if err != nil {
				return err
			}
			defer d.Close()
			fmt.Fprintf(e.stderr, "Give this enrolment code to a coordinator, then run `fristed sync`.\n")
			e.last(code)
			return nil
		},
	})
	register(&command{
		name:    "device approve",
		summary: "enrol a laptop by its enrolment code (coordinator)",
		usage:   "CODE (--worker NAME | --coordinator --recovery FILE)",
		help: `Checks the laptop's keys against the code before signing anything. On a
terminal it shows the laptop's name and a short code to compare by phone
and asks to confirm.`,
		flags: func(fs *flag.FlagSet) {
			fs.String("worker", "", "the worker the laptop belongs to (see fristed worker list)")
			fs.Bool("coordinator", false, "enrol as a coordinator laptop (needs --recovery)")
			fs.String("recovery", "", "the recovery file (for --coordinator)")
			fs.String("recovery-passphrase-file", "", "file holding the recovery file's passphrase (else a prompt)")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return usagef("want exactly one enrolment CODE")
			}
			p := client.ApproveParams{Code: args[0], Worker: flagStr(fs, "worker"), Coordinator: flagBool(fs, "coordinator")}
			switch {
			case p.Coordinator && p.Worker != "":
				return usagef("--worker and --coordinator exclude each other")
			case !p.Coordinator && p.Worker == "":
				return usagef("--worker NAME is required (or --coordinator --recovery FILE)")
			case p.Coordinator && flagStr(fs, "recovery") == "":
				return usagef("--coordinator needs --recovery FILE")
			}
			if p.Coordinator {
				rec, err := e.openRecovery(flagStr(fs, "recovery"), flagStr(fs, "recovery-passphrase-file"))
				if err != nil {
					return err
				}
				p.Recovery = rec
			}
			p.Confirm = func(name, short string) bool {
				if !isTerminal(e.stdin) {
					return true
				}
				fmt.Fprintf(e.stderr, "Laptop %q, short code %s.\n", name, short)
				return e.confirm("Does the short code match the one on the laptop?")
			}
			return e.withDevice(func(d *client.Device) error {
				id, err := d.Approve(e.ctx, p)
				if err != nil {
					return err
				}
				e.last(id.String())
				return nil
			})
		},
	})
	register(&command{
		name:    "device list",
		summary: "list the org's laptops (coordinator)",
		usage:   "[--json]",
		flags:   func(fs *flag.FlagSet) { fs.Bool("json", false, "print JSON") },
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			return e.withDevice(func(d *client.Device) error {
				ds, err := d.DeviceList(e.ctx)
				if err != nil {
					return err
				}
				return listOut(e, flagBool(fs, "json"), ds, func(x client.DeviceInfo) string {
					state, seen := "", x.LastSeen
					if x.Revoked {
						state = "revoked"
					}
					if seen == "" {
						seen = "-"
					}
					return fmt.Sprintf("%-30s %-12s %-20s last seen %-10s %s %s", x.ID, x.Role, x.Name, seen, x.Worker, state)
				})
			})
		},
	})
}
