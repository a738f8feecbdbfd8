package replica

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fristed/fristed/syncproto"
)

var update = flag.Bool("update", false, "rewrite SCHEMA.md from the schema")

func TestValidation(t *testing.T) {
	a, _ := opened(t)
	goal, _ := a.add(t, s1, "goal", map[string]string{"title": "find work"})
	threat, _ := a.add(t, s1, "threat", map[string]string{"source": "local_police"})
	gone, _ := a.add(t, s1, "goal", map[string]string{"title": "old"})
	a.remove(t, s1, "goal", gone)
	missing := syncproto.DeltaID{9}

	set := func(kind string, rec syncproto.DeltaID, f map[string]string) func() error {
		return func() error { _, err := a.rep.SetOps(s1, kind, rec, f); return err }
	}
	add := func(kind string, f map[string]string) func() error {
		return func() error { _, _, err := a.rep.NewRecordOps(s1, kind, f); return err }
	}
	res := func(f map[string]string) func() error { return set(KindResident, syncproto.DeltaID{}, f) }
	logOK := logFields(a, "ok")
	logWith := func(k, v string) map[string]string {
		m := map[string]string{}
		for kk, vv := range logOK {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	tests := []struct {
		name string
		do   func() error
		want error  // sentinel the error wraps
		msg  string // the message, exactly, when not empty
	}{
		{"unknown kind", add("pet", map[string]string{"name": "x"}), ErrInvalid,
			`unknown kind "pet" (child, threat, need, goal, evaluation, timetable, safety, crisis, contact, moveout, alarm_card)`},
		{"unknown field", res(map[string]string{"shoe_size": "42"}), ErrInvalid, ""},
		{"bad date", res(map[string]string{"arrived": "10.01.2024"}), ErrInvalid,
			`resident: field "arrived": want a date YYYY-MM-DD`},
		{"impossible date", res(map[string]string{"moved_out": "2024-02-30"}), ErrInvalid, ""},
		{"bad enum", res(map[string]string{"address_code": "5"}), ErrInvalid,
			`resident: field "address_code": want one of (6, 7, none)`},
		{"bad moved_to", res(map[string]string{"moved_to": "home"}), ErrInvalid,
			`resident: field "moved_to": want one of (own_alone, own_friends, own_partner, family_parents, family_mother, family_spouse, crisis_centre, other_unit)`},
		{"zero minutes", add(KindLog, logWith("minutes", "0")), ErrInvalid,
			`log: field "minutes": want a positive whole number of minutes`},
		{"negative minutes", add(KindLog, logWith("minutes", "-5")), ErrInvalid, ""},
		{"minutes with leading zero", add(KindLog, logWith("minutes", "05")), ErrInvalid, ""},
		{"bad log category", add(KindLog, logWith("category", "chat")), ErrInvalid,
			`log: field "category": want one of (practical, environmental_therapy, support_conversation, safety, leisure, services)`},
		{"log time not UTC", add(KindLog, logWith("at", "2024-05-01T11:00:00+02:00")), ErrInvalid, ""},
		{"log author not a device", add(KindLog, logWith("author", "Kari")), ErrInvalid, ""},
		{"log without text", add(KindLog, logWith("text", "")), ErrInvalid, `log: field "text": required`},
		{"bad year", add("child", map[string]string{"name": "x", "birth_year": "19"}), ErrInvalid, ""},
		{"required on add", add("need", map[string]string{"description": "x"}), ErrInvalid, `need: field "category": required`},
		{"required cleared", res(map[string]string{"pseudonym": ""}), ErrInvalid, ""},
		{"control character", res(map[string]string{"unit": "A\x1b[2J"}), ErrInvalid, `resident: field "unit": contains a control character`},
		{"ref not an id", add("goal", map[string]string{"title": "sub", "parent": "goal-1"}), ErrInvalid, ""},
		{"ref to a missing record", add("goal", map[string]string{"title": "sub", "parent": missing.String()}), ErrInvalid,
			`goal: field "parent": no goal with that id in this stream`},
		{"ref to a removed record", add("goal", map[string]string{"title": "sub", "parent": gone.String()}), ErrInvalid, ""},
		{"ref to another kind", add("goal", map[string]string{"title": "sub", "parent": threat.String()}), ErrInvalid, ""},
		{"goal its own parent", set("goal", goal, map[string]string{"parent": goal.String()}), ErrInvalid, ""},
		{"contact role family", add("contact", map[string]string{"role": "family"}), ErrInvalid, ""},
		{"set an entry", set(KindLog, goal, map[string]string{"text": "x"}), ErrInvalid, ""},
		{"record id on the resident", set(KindResident, goal, map[string]string{"unit": "A"}), ErrInvalid, ""},
		{"no record id", set("goal", syncproto.DeltaID{}, map[string]string{"title": "x"}), ErrInvalid, ""},
		{"no fields", res(map[string]string{}), ErrInvalid, ""},
		{"set a missing record", set("goal", missing, map[string]string{"title": "x"}), ErrNotFound, ""},
		{"set a removed record", set("goal", gone, map[string]string{"title": "x"}), ErrRemoved, ""},
		{"add a resident", add(KindResident, map[string]string{"pseudonym": "x"}), ErrInvalid, ""},
		{"remove the resident", func() error { _, err := a.rep.RemoveOps(s1, KindResident, syncproto.DeltaID{}); return err }, ErrInvalid, ""},
		{"remove a missing record", func() error { _, err := a.rep.RemoveOps(s1, "goal", missing); return err }, ErrNotFound, ""},
		{"log entry zero minutes", func() error {
			_, _, err := a.rep.LogOps(s1, LogEntry{Category: "practical", Text: "x", Author: a.id.String(), At: time.Now()})
			return err
		}, ErrInvalid, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want an error wrapping %v", err, tt.want)
			}
			if tt.msg != "" && err.Error() != tt.msg {
				t.Errorf("message: got %q, want %q", err.Error(), tt.msg)
			}
		})
	}
}

func TestValidationErrorsCarryNoValue(t *testing.T) {
	r := newReplica(t)
	secret := "Hemmeligveien 7"
	for _, f := range []map[string]string{
		{"secret_address": secret + "\x00"},
		{"address_code": secret},
		{"arrived": secret},
	} {
		_, err := r.SetOps(s1, KindResident, syncproto.DeltaID{}, f)
		if err == nil || strings.Contains(err.Error(), "Hemmelig") {
			t.Errorf("got %v, want an error that does not repeat the value", err)
		}
	}
}

func TestUnknownFieldListsTheFields(t *testing.T) {
	r := newReplica(t)
	_, err := r.SetOps(s1, KindResident, syncproto.DeltaID{}, map[string]string{"adress": "x"})
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v, want a *ValidationError", err)
	}
	if ve.Kind != KindResident || !strings.Contains(ve.Problem, `"adress"`) || len(ve.Allowed) != len(kindIndex[KindResident].Fields) {
		t.Errorf("got %+v, want the resident kind, the field and every allowed field", ve)
	}
}

// Record kinds named by an outside id (directory workers, devices) come
// into being with their first set.
func TestNamedByIDRecordsNeedNoAdd(t *testing.T) {
	d := newDevice(t, 1)
	dir := testStream(9)
	w := syncproto.DeltaID(syncproto.NewWorkerID())
	d.set(t, dir, "worker", w, map[string]string{"name": "Kari"})
	d.set(t, dir, "org", syncproto.DeltaID{}, map[string]string{"name": "Fristed Vest"})
	recs, err := d.rep.Records(dir, "worker")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != w || recs[0].Fields["name"] != "Kari" {
		t.Errorf("got %+v, want worker %s named Kari", recs, w)
	}
}

func TestPlannedMoveOut(t *testing.T) {
	for _, tt := range []struct{ arrived, want string }{
		{"2024-01-10", "2024-07-10"},
		{"2023-08-31", "2024-02-29"},
		{"2024-08-31", "2025-02-28"},
		{"2024-12-31", "2025-06-30"},
		{"2024-07-15", "2025-01-15"},
	} {
		got, ok := plannedMoveOut(tt.arrived)
		if !ok || got != tt.want {
			t.Errorf("arrived %s: got %s, want %s", tt.arrived, got, tt.want)
		}
	}
}

func TestSchemaIsACopy(t *testing.T) {
	s := Schema()
	enum := -1
	for i, f := range schema[0].Fields {
		if f.Name == "address_code" {
			enum = i
		}
	}
	if enum < 0 || len(schema[0].Fields[enum].Values) == 0 {
		t.Fatal("no address_code enum in the resident kind")
	}
	s[0].Fields[0].Name = "changed"
	s[0].Fields[enum].Values[0] = "changed"
	if schema[0].Fields[0].Name == "changed" || schema[0].Fields[enum].Values[0] == "changed" {
		t.Fatal("Schema returned the package's own slices")
	}
	k, ok := LookupKind("goal")
	if !ok || k.Name != "goal" {
		t.Fatalf("LookupKind(goal): got %v, %v", k.Name, ok)
	}
}

func TestSchemaIsConsistent(t *testing.T) {
	for _, k := range schema {
		seen := map[string]bool{}
		for _, f := range k.Fields {
			if seen[f.Name] {
				t.Errorf("%s.%s: duplicate field", k.Name, f.Name)
			}
			seen[f.Name] = true
			if (f.Type == TypeEnum) != (len(f.Values) > 0) {
				t.Errorf("%s.%s: enum values on a %s field", k.Name, f.Name, f.Type)
			}
			if f.Type == TypeRef {
				if _, ok := kindIndex[f.Ref]; !ok {
					t.Errorf("%s.%s: refers to unknown kind %q", k.Name, f.Name, f.Ref)
				}
			}
			if f.Doc == "" {
				t.Errorf("%s.%s: no doc", k.Name, f.Name)
			}
		}
		if k.Singleton && k.Class != ClassRecord {
			t.Errorf("%s: a singleton must be a record kind", k.Name)
		}
	}
}

// SCHEMA.md is generated from the schema; run go test -run TestSchemaDoc
// -update after changing it.
func TestSchemaDoc(t *testing.T) {
	want := schemaMarkdown()
	if *update {
		if err := os.WriteFile("SCHEMA.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("SCHEMA.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("SCHEMA.md is out of date: run go test ./client/replica -run TestSchemaDoc -update")
	}
}

func schemaMarkdown() string {
	var b strings.Builder
	b.WriteString(`# Case model

Generated from ` + "`client/replica/schema.go`" + ` by ` + "`go test ./client/replica -run TestSchemaDoc -update`" + `; do not edit.
The same schema is available to code as ` + "`replica.Schema()`" + ` (kinds, fields, types, sealed flags,
enum values), for the CLI, the web UI and the docs.

Every value is a string. Sealed fields are shown as ` + "`" + Masked + "`" + ` unless revealed (and every
reveal is audited); the CLI takes them only from stdin (` + "`FIELD=@-`" + `) or a file (` + "`FIELD=@FILE`" + `),
never inline, so they stay out of shell history. Required fields must be given when a record is added and cannot be cleared;
setting an optional field to the empty string clears it.

## Classes

- **record**: each field is a register (last writer wins by clock, then device id; concurrent
  writes stay visible as a conflict until someone sets the field again). Added with
  ` + "`record add`" + `, changed with ` + "`record set`" + `, removable as a whole.
- **entry**: immutable, added with all its fields to a grow-only set with tombstones; a
  correction is a removal plus a new entry. A removal wins whatever the delivery order.

## Types

| type | values |
|---|---|
| text | free text; newlines and tabs allowed, other control characters not; at most 64 KiB |
| date | ` + "`YYYY-MM-DD`" + ` |
| enum | one of the listed values |
| year | four digits |
| ref | the id (` + "`x_...`" + `) of a live record of the named kind in the same stream |
| minutes | a positive whole number, no sign or leading zeros |
| time | RFC 3339 in UTC, to the second: ` + "`2024-05-01T09:30:00Z`" + ` |
| device | a device id (` + "`d_...`" + `) |
| stream | a stream id (` + "`s_...`" + `) |

## Kinds

| kind | stream | class | fields |
|---|---|---|---|
`)
	for _, k := range schema {
		names := make([]string, len(k.Fields))
		for i, f := range k.Fields {
			names[i] = "`" + f.Name + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", k.Name, k.Stream, kindClass(k), strings.Join(names, ", "))
	}
	b.WriteString("\n## Merge\n\nHow concurrent edits combine (from the package documentation in `doc.go`):\n\n")
	b.WriteString(mergeTable())
	for _, k := range schema {
		fmt.Fprintf(&b, "\n### `%s`\n\n%s\n\n| field | type | sealed | required | values / notes |\n|---|---|---|---|---|\n", k.Name, k.Doc)
		for _, f := range k.Fields {
			notes := f.Doc
			switch {
			case f.Type == TypeEnum:
				vs := make([]string, len(f.Values))
				for i, v := range f.Values {
					vs[i] = "`" + v + "`"
				}
				notes = strings.Join(vs, ", ") + ": " + f.Doc
			case f.Type == TypeRef:
				notes = "a `" + f.Ref + "` id: " + f.Doc
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f.Name, f.Type, yes(f.Sealed), yes(f.Required), notes)
		}
	}
	return b.String()
}

func kindClass(k Kind) string {
	s := string(k.Class)
	if k.Singleton {
		s += ", one per stream (id zero)"
	}
	if k.NamedByID {
		s += ", id from the admin chain"
	}
	return s
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return ""
}

// mergeTable is the rules table of doc.go, so the two cannot drift apart.
func mergeTable() string {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		panic(err)
	}
	var b strings.Builder
	for _, line := range strings.Split(string(src), "\n") {
		if rest, ok := strings.CutPrefix(line, "//\t|"); ok {
			b.WriteString("|" + rest + "\n")
		}
	}
	return b.String()
}
