package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"strconv"

	"github.com/fristed/fristed/client"
)

func init() {
	register(&command{
		name:    "org settings",
		summary: "show or change the org's settings (changing: coordinator)",
		usage:   "[--retention DAYS] [--envelope-expiry DAYS] [--auto-lock MIN] [--json]",
		help: `Without flags, shows the settings. --retention is how long a closed case
is kept before it is purged everywhere; --envelope-expiry is the age after
which a sealed alarm envelope is listed for re-sealing; --auto-lock locks an
idle session.`,
		flags: func(fs *flag.FlagSet) {
			fs.String("retention", "", "days a closed case is kept")
			fs.String("envelope-expiry", "", "days after which an envelope is listed for re-sealing")
			fs.String("auto-lock", "", "minutes of idle time before the UI locks")
			fs.Bool("json", false, "print JSON")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			var vals [3]*uint32
			for i, name := range []string{"retention", "envelope-expiry", "auto-lock"} {
				if s := flagStr(fs, name); s != "" {
					n, err := strconv.ParseUint(s, 10, 32)
					if err != nil || n == 0 {
						return usagef("--%s %q: want a positive whole number", name, s)
					}
					v := uint32(n)
					vals[i] = &v
				}
			}
			return e.withDevice(func(d *client.Device) error {
				s := d.Settings()
				if vals[0] != nil || vals[1] != nil || vals[2] != nil {
					var err error
					if s, err = d.SetSettings(e.ctx, vals[0], vals[1], vals[2]); err != nil {
						return err
					}
				}
				if flagBool(fs, "json") {
					return json.NewEncoder(e.stdout).Encode(s)
				}
				fmt.Fprintf(e.stdout, "retention         %d days\nenvelope expiry   %d days\nauto-lock         %d minutes\n",
					s.RetentionDays, s.EnvelopeExpiryDays, s.AutoLockMinutes)
				return nil
			})
		},
	})
}
