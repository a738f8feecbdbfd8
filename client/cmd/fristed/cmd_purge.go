package main

import (
	"flag"
	"fmt"

	"github.com/fristed/fristed/client"
)

func init() {
	register(&command{
		name:    "org purge",
		summary: "purge closed cases whose retention period has passed (coordinator)",
		usage:   "[RESIDENT...]",
		help: `A closed case is kept for the org's retention period (fristed org settings
--retention DAYS), counted from its signed closing time. Then it is purged:
a signed statement makes the relay delete the case's data and wrapped keys
for good, and every laptop that syncs deletes the case's rows and keys
(crypto-shredding: without the keys no copy of the data left anywhere can
be read). Only the closed-case summary stays, for the annual report.

A coordinator laptop's fristed sync purges every case that is due; this
command does it now. With no RESIDENT it purges every case that is due;
with RESIDENT (id or pseudonym) only those, and it refuses, purging
nothing, an open case or one whose retention period has not passed.
Prints the id of each case purged, one per line.`,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			return e.withDevice(func(d *client.Device) error {
				done, err := d.Purge(e.ctx, args)
				for _, id := range done {
					fmt.Fprintln(e.stdout, id)
				}
				if err != nil {
					return err
				}
				if len(done) == 0 {
					fmt.Fprintln(e.stderr, "no closed case is due for purging")
				} else {
					fmt.Fprintf(e.stderr, "%d case(s) purged; their summaries stay\n", len(done))
				}
				return nil
			})
		},
	})
}
