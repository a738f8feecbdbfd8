package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/fristed/fristed/client"
	"github.com/fristed/fristed/client/replica"
)

func init() {
	register(&command{
		name:    "resident add",
		summary: "open a case for a new resident (coordinator)",
		usage:   "--pseudonym P --arrived YYYY-MM-DD [--unit U] [--description TEXT|@-]",
		help: `The pseudonym is the name used in the software. Sealed fields (legal name,
aliases, secret address) are set afterwards with fristed resident set, e.g.
secret_address=@- to type the address on stdin, out of shell history.
--description is the physical description without a photo that the alarm
card carries (sealed); @- reads it from stdin.`,
		flags: func(fs *flag.FlagSet) {
			fs.String("pseudonym", "", "the name used in the software")
			fs.String("arrived", "", "arrival date, YYYY-MM-DD")
			fs.String("unit", "", "unit (bokollektiv or flat group)")
			fs.String("description", "", "physical description without a photo (sealed; @- reads stdin)")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			if flagStr(fs, "pseudonym") == "" || flagStr(fs, "arrived") == "" {
				return usagef("--pseudonym and --arrived are required")
			}
			desc, err := e.descriptionFlag(fs, args)
			if err != nil {
				return err
			}
			return e.withDevice(func(d *client.Device) error {
				id, err := d.ResidentAdd(e.ctx, client.ResidentAddParams{Pseudonym: flagStr(fs, "pseudonym"),
					Arrived: flagStr(fs, "arrived"), Unit: flagStr(fs, "unit"), Description: desc})
				if err != nil {
					return err
				}
				e.last(id.String())
				return nil
			})
		},
	})
	register(&command{
		name:    "resident set",
		summary: "set fields of a resident's case",
		usage:   "RESIDENT FIELD=VALUE... [--description TEXT|@-]",
		help: `RESIDENT is the resident id or pseudonym. FIELD=@- reads the value from
stdin, so secrets never reach shell history or the process list.
Fields: see client/replica/SCHEMA.md (e.g. legal_name, secret_address, address_code=6|7|none).
--description TEXT is the same as description=TEXT: the physical description
without a photo that the alarm card carries.`,
		flags: func(fs *flag.FlagSet) {
			fs.String("description", "", "physical description without a photo (sealed; @- reads stdin)")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			desc, err := e.descriptionFlag(fs, args)
			if err != nil {
				return err
			}
			if len(args) < 1 || (len(args) < 2 && desc == "") {
				return usagef("want RESIDENT and at least one FIELD=VALUE or --description")
			}
			fields, err := e.parseFields(args[1:])
			if err != nil {
				return err
			}
			if desc != "" {
				if _, dup := fields["description"]; dup {
					return usagef("description given twice")
				}
				fields["description"] = desc
			}
			return e.withDevice(func(d *client.Device) error {
				if err := d.ResidentSet(args[0], fields); err != nil {
					return err
				}
				fmt.Fprintln(e.stderr, "saved")
				return nil
			})
		},
	})
	register(&command{
		name:    "resident show",
		summary: "show a resident's case",
		usage:   "RESIDENT [--reveal] [--json]",
		help:    `Sealed fields are masked unless --reveal; every reveal is recorded in the audit log.`,
		flags: func(fs *flag.FlagSet) {
			fs.Bool("reveal", false, "show sealed fields (recorded in the audit log)")
			fs.Bool("json", false, "print JSON")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return usagef("want exactly one RESIDENT")
			}
			return e.withDevice(func(d *client.Device) error {
				v, err := d.ResidentShow(args[0], flagBool(fs, "reveal"))
				if err != nil {
					return err
				}
				if flagBool(fs, "json") {
					return json.NewEncoder(e.stdout).Encode(v)
				}
				return d.RenderResident(e.stdout, v)
			})
		},
	})
	register(&command{
		name:    "resident list",
		summary: "list the residents on this laptop",
		usage:   "[--json]",
		flags:   func(fs *flag.FlagSet) { fs.Bool("json", false, "print JSON") },
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			return e.withDevice(func(d *client.Device) error {
				rs, err := d.ResidentList()
				if err != nil {
					return err
				}
				return listOut(e, flagBool(fs, "json"), rs, func(r replica.ResidentSummary) string {
					return fmt.Sprintf("%s  %-20s %-10s arrived %s", r.ID, r.Pseudonym, r.Unit, r.Arrived)
				})
			})
		},
	})
}

// parseFields turns FIELD=VALUE arguments into a map; one value may be
// "@-", read from stdin.
// descriptionFlag is the value of --description, read from stdin for @-.
// A sealed value typed on the command line gets the shell-history warning.
func (e *env) descriptionFlag(fs *flag.FlagSet, args []string) (string, error) {
	v := flagStr(fs, "description")
	switch {
	case v == "@-":
		for _, a := range args {
			if strings.HasSuffix(a, "=@-") {
				return "", usagef("only one field can be read from stdin")
			}
		}
		f, err := e.parseFields([]string{"description=@-"})
		if err != nil {
			return "", err
		}
		return f["description"], nil
	case v != "":
		fmt.Fprintln(e.stderr, "fristed: warning: description given on the command line may stay in shell history; next time use --description @- and type it on stdin")
	}
	return v, nil
}

func (e *env) parseFields(args []string) (map[string]string, error) {
	fields := map[string]string{}
	usedStdin := false
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, usagef("%q is not FIELD=VALUE", a)
		}
		if _, dup := fields[k]; dup {
			return nil, usagef("field %s given twice", k)
		}
		if v == "@-" {
			if usedStdin {
				return nil, usagef("only one field can be read from stdin")
			}
			usedStdin = true
			b, err := io.ReadAll(io.LimitReader(e.stdin, 1<<20))
			if err != nil {
				return nil, fmt.Errorf("read %s from stdin: %w", k, err)
			}
			v = strings.TrimRight(string(b), "\r\n")
			if v == "" {
				return nil, errors.New("read " + k + " from stdin: empty value")
			}
		} else if sealedField(k) {
			fmt.Fprintf(e.stderr, "fristed: warning: %s given on the command line may stay in shell history; next time use %s=@- and type it on stdin\n", k, k)
		}
		fields[k] = v
	}
	return fields, nil
}

// sealedField reports whether any kind has a sealed field of that name.
func sealedField(name string) bool {
	for _, k := range replica.Schema() {
		if f, ok := k.Field(name); ok && f.Sealed {
			return true
		}
	}
	return false
}

func init() {
	register(&command{
		name:    "resident close",
		summary: "close a case on move-out (coordinator)",
		usage:   "RESIDENT --moved-to CATEGORY",
		help: `CATEGORY (table 5-1): own_alone, own_friends, own_partner, family_parents,
family_mother, family_spouse, crisis_centre, other_unit. Keeps a summary
with nothing identifying (unit, months, category, follow-up minutes) for
the annual report. After the org's retention period the case itself is
purged everywhere (see fristed org purge).`,
		flags: func(fs *flag.FlagSet) { fs.String("moved-to", "", "where the resident moved") },
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 || flagStr(fs, "moved-to") == "" {
				return usagef("want RESIDENT --moved-to CATEGORY")
			}
			return e.withDevice(func(d *client.Device) error {
				if err := d.ResidentClose(e.ctx, args[0], flagStr(fs, "moved-to")); err != nil {
					return err
				}
				fmt.Fprintln(e.stderr, "case closed")
				return nil
			})
		},
	})
}
