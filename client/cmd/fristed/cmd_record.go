package main

import (
	"flag"
	"strconv"

	"github.com/fristed/fristed/client"
	"github.com/fristed/fristed/client/replica"
)

func init() {
	register(&command{
		name:    "record add",
		summary: "add a record to a case (plan goal, threat assessment, contact, ...)",
		usage:   "RESIDENT KIND FIELD=VALUE...",
		help: `KIND is one of: child, threat, need, goal, evaluation, timetable, safety,
crisis, contact, moveout. Prints the new record's id. FIELD=@- reads the
value from stdin, FIELD=@FILE from FILE; sealed fields (a child's name) must
be given one of these ways.`,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) < 3 {
				return usagef("want RESIDENT KIND and at least one FIELD=VALUE")
			}
			fields, err := e.parseFields(args[1], args[2:])
			if err != nil {
				return err
			}
			return e.withDevice(func(d *client.Device) error {
				id, err := d.RecordAdd(args[0], args[1], fields)
				if err != nil {
					return err
				}
				e.last(id)
				return nil
			})
		},
	})
	register(&command{
		name:    "record set",
		summary: "change fields of a record",
		usage:   "RESIDENT KIND ID FIELD=VALUE...",
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) < 4 {
				return usagef("want RESIDENT KIND ID and at least one FIELD=VALUE")
			}
			fields, err := e.parseFields(args[1], args[3:])
			if err != nil {
				return err
			}
			return e.withDevice(func(d *client.Device) error {
				return d.RecordSet(args[0], args[1], args[2], fields)
			})
		},
	})
	register(&command{
		name:    "log add",
		summary: "add a follow-up log entry",
		usage:   "RESIDENT --category CAT --minutes N --text TEXT",
		help: `CAT is one of practical, environmental_therapy, support_conversation,
safety, leisure, services. --text @- reads the text from stdin.`,
		flags: func(fs *flag.FlagSet) {
			fs.String("category", "", "log category")
			fs.String("minutes", "", "minutes spent (a positive whole number)")
			fs.String("text", "", "the entry; @- reads stdin")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return usagef("want exactly one RESIDENT")
			}
			if flagStr(fs, "category") == "" || flagStr(fs, "minutes") == "" || flagStr(fs, "text") == "" {
				return usagef("--category, --minutes and --text are required")
			}
			minutes, err := strconv.Atoi(flagStr(fs, "minutes"))
			if err != nil || minutes <= 0 {
				return usagef("--minutes %q: want a positive whole number", flagStr(fs, "minutes"))
			}
			text := flagStr(fs, "text")
			if text == "@-" {
				f, err := e.parseFields(replica.KindLog, []string{"text=@-"})
				if err != nil {
					return err
				}
				text = f["text"]
			}
			return e.withDevice(func(d *client.Device) error {
				id, err := d.LogAdd(args[0], flagStr(fs, "category"), minutes, text)
				if err != nil {
					return err
				}
				e.last(id)
				return nil
			})
		},
	})
}
