package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/fristed/fristed/client"
)

func init() {
	register(&command{
		name:    "audit verify",
		summary: "check the audit log end to end and name the first bad entry (coordinator)",
		usage:   "",
		help: `Fetches the whole audit log from the relay and checks every entry in
order: the relay's signed receipt, the author laptop's signature and its own
numbering, that the entry opens where this laptop is a recipient, and the
log's hash links against this laptop's own copy and against every signed
audit checkpoint in the admin chain (which the relay and every laptop
hold). Prints one line and exits 0 when the log is intact; otherwise exits
non-zero naming the first bad entry - its position, who recorded it and
when - and what is wrong: edited, missing, out of order, or newest entries
deleted.`,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			return e.withDevice(func(d *client.Device) error {
				rep, err := d.AuditVerify(e.ctx)
				if err != nil {
					return err
				}
				if rep.Problem != nil {
					return rep.Problem
				}
				fmt.Fprintln(e.stdout, rep.Summary())
				return nil
			})
		},
	})
	register(&command{
		name:    "audit show",
		summary: "who did what, when: admin acts, relay facts, case openings, reveals, exports (coordinator)",
		usage:   "[--resident R] [--since YYYY-MM-DD|RFC3339] [--json]",
		help: `Lists the signed admin statements of the chain (enrolments, revocations,
assignments, closings, envelope releases, refused laptops) and the access
events laptops record (a case opened, sealed fields revealed, case data
exported in an alarm envelope or emergency card), in plain language, from
this laptop's replica: run fristed sync first for the latest. Openings of
one case on one laptop within 10 minutes of each other are one event.`,
		flags: func(fs *flag.FlagSet) {
			fs.String("resident", "", "only this resident (id or pseudonym)")
			fs.String("since", "", "only from this date or time on")
			fs.Bool("json", false, "print JSON")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			var since time.Time
			if s := flagStr(fs, "since"); s != "" {
				var err error
				if since, err = time.Parse("2006-01-02", s); err != nil {
					if since, err = time.Parse(time.RFC3339, s); err != nil {
						return usagef("--since %q: want YYYY-MM-DD or an RFC 3339 time", s)
					}
				}
			}
			return e.withDevice(func(d *client.Device) error {
				entries, err := d.AuditShow(flagStr(fs, "resident"), since)
				if err != nil {
					return err
				}
				if flagBool(fs, "json") {
					if entries == nil {
						entries = []client.AuditEntry{}
					}
					return json.NewEncoder(e.stdout).Encode(entries)
				}
				fmt.Fprint(e.stdout, client.FormatAudit(entries))
				return nil
			})
		},
	})
}
