package replica

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/syncproto"
)

// caseFile builds a small case on device a and delivers it to b.
func caseFile(t *testing.T) (a, b *device, child, goal syncproto.DeltaID) {
	t.Helper()
	a, b = opened(t)
	a.rep.newID, b.rep.newID = seqIDs(0xa0), seqIDs(0xb0)
	var ds []*syncproto.Delta
	ds = append(ds, a.setResident(t, s1, map[string]string{"legal_name": "Amina Khan", "secret_address": "Hemmeligveien 7",
		"address_code": "6", "language": "urdu, english"}))
	child, d := a.add(t, s1, "child", map[string]string{"name": "Sara", "birth_year": "2019"})
	ds = append(ds, d)
	goal, d = a.add(t, s1, "goal", map[string]string{"title": "Norwegian course", "due": "2024-09-01"})
	ds = append(ds, d)
	_, ops, err := a.rep.LogOps(s1, LogEntry{Category: "support_conversation", Minutes: 45, Text: "weekly talk",
		Author: a.id.String(), At: time.Date(2024, 5, 2, 10, 0, 0, 0, time.UTC)})
	ds = append(ds, a.edit(t, s1, ops, err))
	// Times are kept in UTC, whatever zone the caller's clock is in.
	_, ops, err = a.rep.LogOps(s1, LogEntry{Category: "practical", Minutes: 30, Text: "bank",
		Author: a.id.String(), At: time.Date(2024, 5, 1, 14, 0, 0, 0, time.FixedZone("CEST", 7200))})
	ds = append(ds, a.edit(t, s1, ops, err))
	b.receive(t, ds...)
	return a, b, child, goal
}

func TestResidentMasksSealedFields(t *testing.T) {
	a, _, _, _ := caseFile(t)
	v := show(t, a.rep, s1, false)
	for _, f := range []string{"legal_name", "secret_address"} {
		if got := v.Fields[f]; got != Masked {
			t.Errorf("%s: got %q, want %q", f, got, Masked)
		}
	}
	if got := v.Records["child"][0].Fields["name"]; got != Masked {
		t.Errorf("child name: got %q, want %q", got, Masked)
	}
	if got := v.Fields["language"]; got != "urdu, english" {
		t.Errorf("language: got %q, want it shown", got)
	}
	js, err := json.Marshal(v)
	require.NoError(t, err)
	var text bytes.Buffer
	require.NoError(t, v.Render(&text))
	for _, secret := range []string{"Amina", "Hemmelig", "Sara"} {
		if bytes.Contains(js, []byte(secret)) || strings.Contains(text.String(), secret) {
			t.Errorf("a masked view shows %q:\n%s\n%s", secret, js, text.String())
		}
	}

	v = show(t, a.rep, s1, true)
	if got := v.Fields["secret_address"]; got != "Hemmeligveien 7" {
		t.Errorf("revealed secret_address: got %q, want the address", got)
	}
	if got := v.Records["child"][0].Fields["name"]; got != "Sara" {
		t.Errorf("revealed child name: got %q, want Sara", got)
	}
}

func TestResidentJSONContract(t *testing.T) {
	a, b, child, goal := caseFile(t)
	b.clock.WallMS += 1000
	da := a.setResident(t, s1, map[string]string{"unit": "Nord"})
	db := b.setResident(t, s1, map[string]string{"unit": "Sør"})
	a.receive(t, db)
	b.receive(t, da)
	v := show(t, a.rep, s1, false)
	got, err := json.Marshal(v)
	require.NoError(t, err)

	var m map[string]any
	require.NoError(t, json.Unmarshal(got, &m))
	for _, k := range []string{"id", "pseudonym", "legal_name", "arrived", "planned_move_out", "records", "log", "conflicts"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no key %q in %s", k, got)
		}
	}
	want := `{"id":"` + s1.String() + `","pseudonym":"Ada","legal_name":"•••• (sealed)","secret_address":"•••• (sealed)",` +
		`"address_code":"6","language":"urdu, english","unit":"Sør","arrived":"2024-01-10","planned_move_out":"2024-07-10",` +
		`"records":{"child":[{"id":"` + child.String() + `","name":"•••• (sealed)","birth_year":"2019"}],` +
		`"goal":[{"id":"` + goal.String() + `","title":"Norwegian course","due":"2024-09-01"}]},` +
		`"log":[{"id":"` + a.rep.mustLog(t)[0].ID.String() + `","category":"practical","minutes":30,"text":"bank","author":"` + a.id.String() + `","at":"2024-05-01T12:00:00Z"},` +
		`{"id":"` + a.rep.mustLog(t)[1].ID.String() + `","category":"support_conversation","minutes":45,"text":"weekly talk","author":"` + a.id.String() + `","at":"2024-05-02T10:00:00Z"}],` +
		`"conflicts":[{"field":"unit","values":["Sør","Nord"]}]}`
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}

	// A record field's conflict names its kind and record.
	db = b.set(t, s1, "goal", goal, map[string]string{"status": "open"})
	da = a.set(t, s1, "goal", goal, map[string]string{"status": "achieved"})
	a.receive(t, db)
	b.receive(t, da)
	got, err = json.Marshal(show(t, b.rep, s1, false))
	require.NoError(t, err)
	wantConflict := `{"kind":"goal","record":"` + goal.String() + `","field":"status","values":["open","achieved"]}` // b's clock is ahead
	if !strings.Contains(string(got), wantConflict) {
		t.Errorf("got %s, want it to contain %s", got, wantConflict)
	}
}

func (r *Replica) mustLog(t *testing.T) []LogEntry {
	t.Helper()
	l, err := r.Log(s1)
	require.NoError(t, err)
	return l
}

func TestEmptyCaseJSON(t *testing.T) {
	d := newDevice(t, 1)
	d.setResident(t, s1, map[string]string{"pseudonym": "Ada"})
	got, err := json.Marshal(show(t, d.rep, s1, false))
	require.NoError(t, err)
	want := `{"id":"` + s1.String() + `","pseudonym":"Ada","records":{},"log":[],"conflicts":[]}`
	if string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestPlannedMoveOutSetWins(t *testing.T) {
	a, _ := opened(t)
	if v := show(t, a.rep, s1, false); v.Fields["planned_move_out"] != "2024-07-10" || !v.PlannedMoveOutDefault {
		t.Errorf("got %q (default %v), want 2024-07-10 computed", v.Fields["planned_move_out"], v.PlannedMoveOutDefault)
	}
	a.setResident(t, s1, map[string]string{"planned_move_out": "2024-10-01"})
	if v := show(t, a.rep, s1, false); v.Fields["planned_move_out"] != "2024-10-01" || v.PlannedMoveOutDefault {
		t.Errorf("got %q (default %v), want 2024-10-01 as set", v.Fields["planned_move_out"], v.PlannedMoveOutDefault)
	}
}

func TestResidentNotFound(t *testing.T) {
	r := newReplica(t)
	if _, err := r.Resident(s1, false); !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v, want %v", err, ErrNotFound)
	}
}

func TestLogOrderedByTimeThenID(t *testing.T) {
	d := newDevice(t, 1)
	d.setResident(t, s1, map[string]string{"pseudonym": "Ada"})
	at := []string{"2024-05-03T08:00:00Z", "2024-05-01T08:00:00Z", "2024-05-03T08:00:00Z", "2024-05-02T08:00:00Z"}
	for i, ts := range at {
		f := logFields(d, "entry")
		f["at"] = ts
		f["minutes"] = string(rune('1' + i))
		d.add(t, s1, KindLog, f)
	}
	l := show(t, d.rep, s1, false).Log
	require.Len(t, l, 4)
	if !slices.IsSortedFunc(l, func(a, b LogEntry) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	}) {
		t.Errorf("log not sorted by at, then id: %v", l)
	}
}

func TestResidents(t *testing.T) {
	d := newDevice(t, 1)
	s2 := testStream(2)
	d.setResident(t, s1, map[string]string{"pseudonym": "Zainab", "arrived": "2024-01-10", "unit": "Nord"})
	d.setResident(t, s2, map[string]string{"pseudonym": "Ada", "arrived": "2023-03-01", "closed": "yes"})
	d.setResident(t, s1, map[string]string{"unit": "Sør"})
	d.set(t, testStream(3), "org", syncproto.DeltaID{}, map[string]string{"name": "not a resident"})
	got, err := d.rep.Residents()
	require.NoError(t, err)
	want := []ResidentSummary{
		{ID: s2, Pseudonym: "Ada", Arrived: "2023-03-01", Closed: true},
		{ID: s1, Pseudonym: "Zainab", Unit: "Sør", Arrived: "2024-01-10"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	js, err := json.Marshal(got[0])
	require.NoError(t, err)
	if w := `{"id":"` + s2.String() + `","pseudonym":"Ada","unit":"","arrived":"2023-03-01","closed":true}`; string(js) != w {
		t.Errorf("got %s, want %s", js, w)
	}
}

func TestRenderNeutralisesControlCharacters(t *testing.T) {
	d := newDevice(t, 1)
	// A faulty device can write what validation would refuse.
	bad := &syncproto.Delta{Stream: s1, Author: d.id, ID: nextDeltaID(), Clock: d.clock, Ops: []syncproto.Op{
		{Type: syncproto.OpSet, Kind: KindResident, Field: "pseudonym", Value: []byte("\x00Ada\x1b]0;owned\x07")},
		{Type: syncproto.OpSet, Kind: KindResident, Field: "language", Value: []byte("\x00a\u202eb")},
	}}
	d.receive(t, bad)
	var out bytes.Buffer
	require.NoError(t, show(t, d.rep, s1, false).Render(&out))
	if strings.ContainsAny(out.String(), "\x1b\x07\u202e") {
		t.Errorf("rendered control characters: %q", out.String())
	}
	if !strings.Contains(out.String(), "Ada") {
		t.Errorf("got %q, want the pseudonym", out.String())
	}
}

func TestRender(t *testing.T) {
	a, _, _, _ := caseFile(t)
	var out bytes.Buffer
	require.NoError(t, show(t, a.rep, s1, false).Render(&out))
	for _, want := range []string{"pseudonym", "Ada", Masked, "2024-07-10 (arrived + 6 months)", "log (2 entries, 75 minutes)", "weekly talk", "goal (1)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("rendering lacks %q:\n%s", want, out.String())
		}
	}
}

func TestAuditEvents(t *testing.T) {
	d := newDevice(t, 1)
	audit := testStream(7)
	at := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)
	ops, err := d.rep.AuditOps(audit, AuditEvent{Event: "reveal", Resident: s1.String(), Device: d.id.String(), At: at})
	d.edit(t, audit, ops, err)
	evs, err := d.rep.AuditEvents(audit)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	if e := evs[0]; e.Event != "reveal" || e.Resident != s1.String() || e.Device != d.id.String() || !e.At.Equal(at) {
		t.Errorf("got %+v", e)
	}
}
