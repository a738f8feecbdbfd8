package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/fristed/fristed/client"
	fcrypto "github.com/fristed/fristed/crypto"
)

func init() {
	register(&command{
		name:    "org init",
		summary: "create an organisation; this laptop becomes its first coordinator",
		usage:   "--relay URL --invite TOKEN --name NAME --recovery-out FILE [--recovery-passphrase-file F]",
		help: `Makes the org root key and writes it ONLY to the recovery file (keep it
offline: a USB stick in a safe). Registers the org on the relay with the
one-time invite from the relay operator. Prints the org fingerprint, which
new laptops need (fristed device init --org).`,
		flags: func(fs *flag.FlagSet) {
			fs.String("relay", "", "relay URL (https://..., or http://127.0.0.1:PORT for a loopback test relay)")
			fs.String("invite", "", "one-time invite token from `fristed-relay invite`")
			fs.String("name", "", "the organisation's name (kept only in the encrypted directory)")
			fs.String("recovery-out", "", "where to write the recovery file (must not exist)")
			fs.String("recovery-passphrase-file", "", "file holding the recovery file's passphrase (else a prompt)")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			p := client.OrgInitParams{RelayURL: flagStr(fs, "relay"), Invite: flagStr(fs, "invite"),
				Name: flagStr(fs, "name"), RecoveryOut: flagStr(fs, "recovery-out")}
			for _, req := range []struct{ v, f string }{{p.RelayURL, "--relay"}, {p.Invite, "--invite"}, {p.Name, "--name"}, {p.RecoveryOut, "--recovery-out"}} {
				if req.v == "" {
					return usagef("%s is required", req.f)
				}
			}
			pass, err := e.recoveryPassphrase(flagStr(fs, "recovery-passphrase-file"), true)
			if err != nil {
				return err
			}
			p.RecoveryPass = pass
			d, err := client.OrgInit(e.ctx, e.options(), p)
			if err != nil {
				return err
			}
			defer d.Close()
			fmt.Fprintf(e.stderr, "Recovery file written to %s: keep it offline. Org check code: %s\n", p.RecoveryOut, d.Org().CheckCode())
			e.last(d.Org().String())
			return nil
		},
	})
	register(&command{
		name:    "org recover",
		summary: "enrol this laptop as a new coordinator with the recovery file",
		usage:   "--org FINGERPRINT --recovery FILE [--relay URL] [--recovery-passphrase-file F]",
		help: `For when the last coordinator laptop is lost: the org root key in the recovery file delegates this laptop,
after verifying the whole chain. Every command that makes the root sign (this one, device approve
--coordinator, device revoke --recovery) records the statement in the recovery file, and org recover
refuses a chain without it; keep the file writable while it is used.`,
		flags: func(fs *flag.FlagSet) {
			fs.String("relay", "", "relay URL (default: the one recorded in the recovery file)")
			fs.String("org", "", "the org fingerprint")
			fs.String("recovery", "", "the recovery file")
			fs.String("recovery-passphrase-file", "", "file holding the recovery file's passphrase (else a prompt)")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			if flagStr(fs, "org") == "" || flagStr(fs, "recovery") == "" {
				return usagef("--org and --recovery are required")
			}
			org, err := fcrypto.ParseFingerprint(flagStr(fs, "org"))
			if err != nil {
				return err
			}
			rec, err := e.openRecovery(flagStr(fs, "recovery"), flagStr(fs, "recovery-passphrase-file"))
			if err != nil {
				return err
			}
			d, err := client.OrgRecover(e.ctx, e.options(), flagStr(fs, "relay"), org, rec)
			if err != nil {
				return err
			}
			defer d.Close()
			e.last(d.ID().String())
			return nil
		},
	})
}

func flagStr(fs *flag.FlagSet, name string) string { return fs.Lookup(name).Value.String() }

func flagBool(fs *flag.FlagSet, name string) bool { return fs.Lookup(name).Value.String() == "true" }

func (e *env) recoveryPassphrase(file string, confirm bool) ([]byte, error) {
	if file != "" {
		return readSecretFile(file, "--recovery-passphrase-file")
	}
	return e.prompt("Recovery file passphrase", confirm)
}

func (e *env) openRecovery(path, passFile string) (*client.Recovery, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("recovery file: %w", err)
	}
	pass, err := e.recoveryPassphrase(passFile, false)
	if err != nil {
		return nil, err
	}
	rec, err := client.OpenRecovery(path, pass)
	if errors.Is(err, fcrypto.ErrWrongPassphrase) {
		return nil, errors.New("recovery file: wrong passphrase")
	}
	return rec, err
}
