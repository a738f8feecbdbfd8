package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/fristed/fristed/client"
	"github.com/fristed/fristed/client/replica"
)

func init() {
	register(&command{
		name:    "resident add",
		summary: "open a case for a new resident (coordinator)",
		usage:   "--pseudonym P --arrived YYYY-MM-DD [--unit U] [--description @-|@FILE]",
		help: `The pseudonym is the name used in the software. Sealed fields (legal name,
aliases, secret address, cover story) are set afterwards with fristed resident
set, e.g. secret_address=@- to type the address on stdin, out of shell
history; they are refused on the command line.
--description is the physical description without a photo that the alarm
card carries (sealed): @- reads it from stdin, @FILE from FILE.`,
		flags: func(fs *flag.FlagSet) {
			fs.String("pseudonym", "", "the name used in the software")
			fs.String("arrived", "", "arrival date, YYYY-MM-DD")
			fs.String("unit", "", "unit (bokollektiv or flat group)")
			fs.String("description", "", "physical description without a photo (sealed: @- reads stdin, @FILE a file)")
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
		usage:   "RESIDENT FIELD=VALUE... [--description @-|@FILE]",
		help: `RESIDENT is the resident id or pseudonym. FIELD=@- reads the value from
stdin, FIELD=@FILE from FILE. Sealed fields (legal_name, aliases,
secret_address, cover_story, description) must be given one of these ways,
so they never reach shell history or the process list.
Fields: see client/replica/SCHEMA.md (e.g. legal_name, secret_address, address_code=6|7|none).
--description @-|@FILE is the same as description=@-|@FILE: the physical
description without a photo that the alarm card carries.`,
		flags: func(fs *flag.FlagSet) {
			fs.String("description", "", "physical description without a photo (sealed: @- reads stdin, @FILE a file)")
		},
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			desc, err := e.descriptionFlag(fs, args)
			if err != nil {
				return err
			}
			if len(args) < 1 || (len(args) < 2 && desc == "") {
				return usagef("want RESIDENT and at least one FIELD=VALUE or --description")
			}
			fields, err := e.parseFields(replica.KindResident, args[1:])
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
		help:    `Showing a case is recorded in the audit log (once per 10 minutes per case on this laptop). Sealed fields are masked unless --reveal; every reveal is recorded.`,
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

// descriptionFlag is the value of --description, read from stdin for @-
// or from a file for @FILE. The description is sealed: typed on the
// command line it is refused, like any sealed field.
func (e *env) descriptionFlag(fs *flag.FlagSet, args []string) (string, error) {
	v := flagStr(fs, "description")
	switch {
	case v == "@-":
		for _, a := range args {
			if strings.HasSuffix(a, "=@-") {
				return "", usagef("only one field can be read from stdin")
			}
		}
		fallthrough
	case strings.HasPrefix(v, "@"):
		f, err := e.parseFields(replica.KindResident, []string{"description=" + v})
		if err != nil {
			return "", err
		}
		return f["description"], nil
	case v != "":
		return "", usagef("description is sealed: give it as --description @- (typed on stdin) or --description @FILE, never on the command line")
	}
	return v, nil
}

// parseFields turns FIELD=VALUE arguments for a record of kind into a
// map. A value "@-" is read from stdin (one field at most), "@FILE" from
// the file FILE. A sealed field (client/replica/SCHEMA.md) must be given
// one of these two ways: typed inline it would stay in shell history and
// be visible in the process list, so it is refused before anything is
// read or stored.
func (e *env) parseFields(kind string, args []string) (map[string]string, error) {
	fields := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, usagef("%q is not FIELD=VALUE", a)
		}
		if _, dup := fields[k]; dup {
			return nil, usagef("field %s given twice", k)
		}
		if v == "@" {
			return nil, usagef("%s=@: name a file after @, or give @- to read stdin", k)
		}
		// An empty value clears the field and reveals nothing.
		if v != "" && !strings.HasPrefix(v, "@") && sealedField(kind, k) {
			return nil, usagef("%s is sealed: give it as %s=@- (typed on stdin) or %s=@FILE, never on the command line", k, k, k)
		}
		fields[k] = v
	}
	usedStdin := false
	for k, v := range fields {
		if !strings.HasPrefix(v, "@") {
			continue
		}
		var b []byte
		var err error
		if v == "@-" {
			if usedStdin {
				return nil, usagef("only one field can be read from stdin")
			}
			usedStdin = true
			b, err = readCapped(e.stdin)
			if err != nil {
				return nil, fmt.Errorf("read %s from stdin: %w", k, err)
			}
		} else {
			b, err = readFileCapped(v[1:])
			if err != nil {
				return nil, fmt.Errorf("read %s from %s: %w", k, v[1:], err)
			}
		}
		fields[k] = strings.TrimRight(string(b), "\r\n")
		if fields[k] == "" {
			return nil, fmt.Errorf("read %s from %s: empty value", k, fieldSource(v))
		}
	}
	return fields, nil
}

// maxFieldBytes bounds a value read from stdin or a file.
const maxFieldBytes = 1 << 20

func readCapped(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxFieldBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFieldBytes {
		return nil, fmt.Errorf("longer than %d bytes", maxFieldBytes)
	}
	return b, nil
}

func readFileCapped(name string) ([]byte, error) {
	f, err := os.Open(name)
	var pe *os.PathError
	if errors.As(err, &pe) {
		return nil, pe.Err // the caller's message names the file
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readCapped(f)
}

func fieldSource(v string) string {
	if v == "@-" {
		return "stdin"
	}
	return v[1:]
}

// sealedField reports whether field of a record kind is sealed.
func sealedField(kind, field string) bool {
	k, ok := replica.LookupKind(kind)
	if !ok {
		return false // an unknown kind is refused by the library
	}
	f, ok := k.Field(field)
	return ok && f.Sealed
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
