package main

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/fristed/fristed/client"
	"github.com/fristed/fristed/syncproto"
)

func init() {
	register(&command{
		name:    "device revoke",
		summary: "revoke a lost or stolen laptop (coordinator)",
		usage:   "DEVICE [--recovery FILE] [--compromised-since CHAIN_POS]",
		help: `DEVICE is a device id or name (see fristed device list). The relay refuses the
laptop on its next request; every case it could read gets a new key, so
nothing written from now on is readable with its keys. If it ever reaches
the relay again it is shown the signed revocation and wipes itself.

Revoking a coordinator laptop needs the recovery file. --compromised-since
voids the laptop's own statements after that chain position (a stolen,
unlocked coordinator laptop): what it granted is re-keyed.`,
		flags: func(fs *flag.FlagSet) {
			fs.String("recovery", "", "the recovery file (needed for coordinator laptops)")
			fs.String("recovery-passphrase-file", "", "file holding the recovery file's passphrase (else a prompt)")
			fs.String("compromised-since", "", "chain position since which the laptop is considered compromised")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return usagef("want exactly one DEVICE")
			}
			p := client.RevokeParams{Device: args[0]}
			if s := flagStr(fs, "compromised-since"); s != "" {
				n, err := strconv.ParseUint(s, 10, 64)
				if err != nil {
					return usagef("--compromised-since %q: want a chain position (a whole number)", s)
				}
				pos := syncproto.ChainPos(n)
				p.CompromisedSince = &pos
			}
			if f := flagStr(fs, "recovery"); f != "" {
				rec, err := e.openRecovery(f, flagStr(fs, "recovery-passphrase-file"))
				if err != nil {
					return err
				}
				p.Recovery = rec
			}
			return e.withDevice(func(d *client.Device) error {
				res, err := d.Revoke(e.ctx, p)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "revoked; %d case(s) re-keyed\n", res.Rekeyed)
				e.last(res.Device.String())
				return nil
			})
		},
	})
	register(&command{
		name:    "worker remove",
		summary: "remove a worker: revoke their laptops, unassign them everywhere (coordinator)",
		usage:   "NAME",
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return usagef("want exactly one NAME")
			}
			return e.withDevice(func(d *client.Device) error { return d.WorkerRemove(e.ctx, args[0]) })
		},
	})
}
