package replica

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/syncproto"
)

var s1 = testStream(1)

// opened returns two devices that both hold a resident record written by
// the first.
func opened(t *testing.T) (a, b *device) {
	t.Helper()
	ds := openedN(t, 2)
	return ds[0], ds[1]
}

// openedN returns n devices that all hold a resident record written by
// the first.
func openedN(t *testing.T, n int) []*device {
	t.Helper()
	ds := make([]*device, n)
	for i := range ds {
		ds[i] = newDevice(t, byte(i+1))
	}
	d := ds[0].setResident(t, s1, map[string]string{"pseudonym": "Ada", "arrived": "2024-01-10"})
	for _, o := range ds[1:] {
		o.receive(t, d)
	}
	return ds
}

func conflictsOf(v *ResidentView) map[string][]string {
	out := map[string][]string{}
	for _, c := range v.Conflicts {
		key := c.Field
		if c.Kind != KindResident {
			key = c.Kind + "." + c.Field
		}
		out[key] = c.Values
	}
	return out
}

func TestConcurrentSetsLastWriterWinsAndConflict(t *testing.T) {
	a, b := opened(t)
	b.clock.WallMS += 1000 // b writes later
	da := a.setResident(t, s1, map[string]string{"unit": "A"})
	db := b.setResident(t, s1, map[string]string{"unit": "B"})
	a.receive(t, db)
	b.receive(t, da)
	requireSameDump(t, s1, a.rep, b.rep)
	for i, r := range []*Replica{a.rep, b.rep} {
		v := show(t, r, s1, false)
		if got, want := v.Fields["unit"], "B"; got != want {
			t.Errorf("replica %d: unit: got %q, want %q (the later clock)", i, got, want)
		}
		if got, want := conflictsOf(v)["unit"], []string{"B", "A"}; !slices.Equal(got, want) {
			t.Errorf("replica %d: conflict values: got %q, want %q (newest first)", i, got, want)
		}
	}
}

func TestEqualClocksTieBreakOnDeviceID(t *testing.T) {
	a, b := opened(t)
	b.clock = a.clock
	da := a.setResident(t, s1, map[string]string{"language": "a"})
	db := b.setResident(t, s1, map[string]string{"language": "b"})
	require.Equal(t, da.Clock, db.Clock, "the two writes have the same clock")
	a.receive(t, db)
	b.receive(t, da)
	requireSameDump(t, s1, a.rep, b.rep)
	if got, want := show(t, a.rep, s1, false).Fields["language"], "b"; got != want {
		t.Errorf("got %q, want %q (device 2 > device 1)", got, want)
	}
}

// A write made after seeing another supersedes it even when the writer's
// clock is behind: supersession follows what the writer saw.
func TestSetSupersedesWhatTheWriterSaw(t *testing.T) {
	a, b := opened(t)
	a.clock.WallMS += 60_000 // a's clock runs a minute ahead
	da := a.setResident(t, s1, map[string]string{"flat": "3"})
	b.receive(t, da)
	db := b.setResident(t, s1, map[string]string{"flat": "4"})
	a.receive(t, db)
	requireSameDump(t, s1, a.rep, b.rep)
	v := show(t, a.rep, s1, false)
	if got, want := v.Fields["flat"], "4"; got != want {
		t.Errorf("flat: got %q, want %q", got, want)
	}
	if len(v.Conflicts) != 0 {
		t.Errorf("conflicts: got %v, want none", v.Conflicts)
	}
}

func TestLaterSetResolvesConflict(t *testing.T) {
	ds := openedN(t, 3)
	a, b, c := ds[0], ds[1], ds[2]
	da := a.setResident(t, s1, map[string]string{"unit": "A"})
	db := b.setResident(t, s1, map[string]string{"unit": "B"})
	a.receive(t, db)
	require.Len(t, show(t, a.rep, s1, false).Conflicts, 1, "a sees the conflict")
	dr := a.setResident(t, s1, map[string]string{"unit": "C"})
	if got := show(t, a.rep, s1, false); len(got.Conflicts) != 0 || got.Fields["unit"] != "C" {
		t.Fatalf("after resolving: got unit %q and conflicts %v, want C and none", got.Fields["unit"], got.Conflicts)
	}
	// The resolution arrives at c before either write it resolves.
	c.receive(t, dr, db, da)
	b.receive(t, dr, da)
	requireSameDump(t, s1, a.rep, b.rep, c.rep)
	if got := show(t, c.rep, s1, false); len(got.Conflicts) != 0 || got.Fields["unit"] != "C" {
		t.Errorf("on c: got unit %q and conflicts %v, want C and none", got.Fields["unit"], got.Conflicts)
	}
}

// A superseding write that arrives before the write it supersedes: the
// late write is stored as superseded, without its value, and no conflict
// shows.
func TestSupersedingWriteArrivesFirst(t *testing.T) {
	ds := openedN(t, 3)
	a, b, c := ds[0], ds[1], ds[2]
	d1 := a.setResident(t, s1, map[string]string{"secret_address": "Old street 1"})
	b.receive(t, d1)
	d2 := b.setResident(t, s1, map[string]string{"secret_address": "New street 2"})
	c.receive(t, d2, d1)
	a.receive(t, d2)
	requireSameDump(t, s1, a.rep, b.rep, c.rep)
	for i, r := range []*Replica{a.rep, b.rep, c.rep} {
		v := show(t, r, s1, true)
		if got, want := v.Fields["secret_address"], "New street 2"; got != want {
			t.Errorf("replica %d: got %q, want %q", i, got, want)
		}
		if len(v.Conflicts) != 0 {
			t.Errorf("replica %d: conflicts: got %v, want none", i, v.Conflicts)
		}
		if d := dump(t, r, s1); strings.Contains(d, "Old street") {
			t.Errorf("replica %d keeps the superseded value:\n%s", i, d)
		}
	}
}

func TestApplyIsIdempotent(t *testing.T) {
	a, b := opened(t)
	d := a.setResident(t, s1, map[string]string{"unit": "A"})
	_, dl := a.add(t, s1, KindLog, logFields(a, "twice"))
	before := dump(t, a.rep, s1)
	a.receive(t, d, dl, d)
	if got := dump(t, a.rep, s1); got != before {
		t.Errorf("applying again changed the state:\ngot:\n%s\nwant:\n%s", got, before)
	}
	b.receive(t, dl, d, dl, d)
	requireSameDump(t, s1, a.rep, b.rep)
}

func TestReusedDeltaIDWithOtherContent(t *testing.T) {
	a, _ := opened(t)
	d := a.setResident(t, s1, map[string]string{"unit": "A"})
	before := dump(t, a.rep, s1)
	forged := *d
	forged.Ops = []syncproto.Op{{Type: syncproto.OpSet, Kind: KindResident, Field: "unit", Value: []byte{0, 'B'}}}
	if err := a.rep.Apply(&forged); !errors.Is(err, ErrDeltaConflict) {
		t.Fatalf("got %v, want %v", err, ErrDeltaConflict)
	}
	if got := dump(t, a.rep, s1); got != before {
		t.Errorf("a refused delta changed the state:\ngot:\n%s\nwant:\n%s", got, before)
	}
	// The tenant and epoch are not part of what a delta does: the same
	// edit sealed under an epoch is the same delta.
	sealed := *d
	sealed.Epoch = 7
	require.NoError(t, a.rep.Apply(&sealed))
}

func TestMalformedDeltaChangesNothing(t *testing.T) {
	a, _ := opened(t)
	before := dump(t, a.rep, s1)
	good := syncproto.Op{Type: syncproto.OpSet, Kind: KindResident, Field: "unit", Value: []byte{0, 'A'}}
	tests := []struct {
		name string
		ops  []syncproto.Op
	}{
		{"no ops", nil},
		{"empty set value", []syncproto.Op{good, {Type: syncproto.OpSet, Kind: KindResident, Field: "flat"}}},
		{"set value shorter than its bases", []syncproto.Op{good, {Type: syncproto.OpSet, Kind: KindResident, Field: "flat", Value: []byte{2, 1, 2, 3}}}},
		{"register set twice", []syncproto.Op{good, good}},
		{"set without field", []syncproto.Op{good, {Type: syncproto.OpSet, Kind: KindResident, Value: []byte{0}}}},
		{"add with field", []syncproto.Op{good, {Type: syncproto.OpAdd, Kind: KindLog, Field: "x"}}},
		{"remove with body", []syncproto.Op{good, {Type: syncproto.OpRemove, Kind: KindLog, Value: []byte("x")}}},
		{"op type out of range", []syncproto.Op{good, {Type: 9, Kind: KindLog}}},
		{"no kind", []syncproto.Op{good, {Type: syncproto.OpAdd}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &syncproto.Delta{Stream: s1, Author: a.id, ID: nextDeltaID(), Clock: a.clock, Ops: tt.ops}
			if err := a.rep.Apply(d); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want %v", err, ErrMalformed)
			}
			if got := dump(t, a.rep, s1); got != before {
				t.Errorf("state changed:\ngot:\n%s\nwant:\n%s", got, before)
			}
		})
	}
}

func logFields(d *device, text string) map[string]string {
	return map[string]string{"category": "practical", "minutes": "15", "text": text,
		"author": d.id.String(), "at": "2024-05-01T09:00:00Z"}
}

// A removal wins whatever the order: a removal that arrives before the
// add hides the add, and the tombstone is kept.
func TestRemovedEntryStaysRemoved(t *testing.T) {
	ds := openedN(t, 3)
	a, b, c := ds[0], ds[1], ds[2]
	id, add := a.add(t, s1, KindLog, logFields(a, "met at the café"))
	rm := a.remove(t, s1, KindLog, id)
	b.receive(t, add, rm)
	c.receive(t, rm, add, rm, add)
	requireSameDump(t, s1, a.rep, b.rep, c.rep)
	for i, r := range []*Replica{a.rep, b.rep, c.rep} {
		if got := show(t, r, s1, false).Log; len(got) != 0 {
			t.Errorf("replica %d: log: got %v, want empty", i, got)
		}
		d := dump(t, r, s1)
		if !strings.Contains(d, "tombstone \"log\" "+id.String()) {
			t.Errorf("replica %d: no tombstone in dump:\n%s", i, d)
		}
		if strings.Contains(d, "café") {
			t.Errorf("replica %d keeps the removed entry's text:\n%s", i, d)
		}
	}
	if _, err := a.rep.RemoveOps(s1, KindLog, id); !errors.Is(err, ErrRemoved) {
		t.Errorf("removing again: got %v, want %v", err, ErrRemoved)
	}
}

// Removing a record wins over a concurrent set, in either order.
func TestRemovedRecordStaysRemoved(t *testing.T) {
	a, b := opened(t)
	id, add := a.add(t, s1, "goal", map[string]string{"title": "find work", "due": "2024-06-01"})
	b.receive(t, add)
	set := b.set(t, s1, "goal", id, map[string]string{"status": "in_progress"})
	rm := a.remove(t, s1, "goal", id)
	a.receive(t, set)
	b.receive(t, rm)
	requireSameDump(t, s1, a.rep, b.rep)
	for i, r := range []*Replica{a.rep, b.rep} {
		if got := show(t, r, s1, false).Records["goal"]; len(got) != 0 {
			t.Errorf("replica %d: goals: got %v, want none", i, got)
		}
		if d := dump(t, r, s1); strings.Contains(d, "find work") || strings.Contains(d, "write \"goal\"") {
			t.Errorf("replica %d keeps the removed record:\n%s", i, d)
		}
	}
	if _, err := b.rep.SetOps(s1, "goal", id, map[string]string{"status": "achieved"}); !errors.Is(err, ErrRemoved) {
		t.Errorf("set after removal: got %v, want %v", err, ErrRemoved)
	}
}

func TestSameEntryIDTwoBodiesKeepsTheGreater(t *testing.T) {
	a, b := opened(t)
	var id syncproto.DeltaID
	id[0] = 7
	add := func(body string) *syncproto.Delta {
		return &syncproto.Delta{Stream: s1, Author: a.id, ID: nextDeltaID(), Clock: a.clock,
			Ops: []syncproto.Op{{Type: syncproto.OpAdd, Kind: "evaluation", Record: id, Value: []byte(body)}}}
	}
	d1, d2 := add(`{"date":"2024-05-01","text":"a"}`), add(`{"date":"2024-05-01","text":"b"}`)
	a.receive(t, d1, d2)
	b.receive(t, d2, d1)
	requireSameDump(t, s1, a.rep, b.rep)
	got := show(t, a.rep, s1, false).Records["evaluation"]
	require.Len(t, got, 1)
	if got[0].Fields["text"] != "b" {
		t.Errorf("got %q, want %q", got[0].Fields["text"], "b")
	}
}

// Apply keeps what a newer build wrote (unknown kinds and fields) and
// merges it; views leave it out rather than show what they cannot mask.
func TestUnknownKindsAndFieldsAreKeptNotShown(t *testing.T) {
	a, b := opened(t)
	d := &syncproto.Delta{Stream: s1, Author: a.id, ID: nextDeltaID(), Clock: a.clock, Ops: []syncproto.Op{
		{Type: syncproto.OpSet, Kind: KindResident, Field: "future_secret", Value: []byte{0, 'x'}},
		{Type: syncproto.OpAdd, Kind: "future_kind", Record: syncproto.DeltaID{1}, Value: []byte("{}")},
	}}
	a.receive(t, d)
	b.receive(t, d)
	requireSameDump(t, s1, a.rep, b.rep)
	dm := dump(t, a.rep, s1)
	if !strings.Contains(dm, `"future_secret"`) || !strings.Contains(dm, `"future_kind"`) {
		t.Errorf("dump lacks the unknown data:\n%s", dm)
	}
	v := show(t, a.rep, s1, true)
	if _, ok := v.Fields["future_secret"]; ok {
		t.Errorf("view shows an unknown field")
	}
	if _, ok := v.Records["future_kind"]; ok {
		t.Errorf("view shows an unknown kind")
	}
}

func TestRecordFieldConflict(t *testing.T) {
	a, b := opened(t)
	id, add := a.add(t, s1, "child", map[string]string{"name": "Sara", "birth_year": "2019"})
	b.receive(t, add)
	da := a.set(t, s1, "child", id, map[string]string{"name": "Sarah"})
	db := b.set(t, s1, "child", id, map[string]string{"name": "Sara H."})
	a.receive(t, db)
	b.receive(t, da)
	requireSameDump(t, s1, a.rep, b.rep)
	v := show(t, a.rep, s1, false)
	require.Len(t, v.Conflicts, 1)
	c := v.Conflicts[0]
	if c.Kind != "child" || c.Record != id || c.Field != "name" {
		t.Errorf("conflict: got %s %s %s, want child %s name", c.Kind, c.Record, c.Field, id)
	}
	if want := []string{Masked, Masked}; !slices.Equal(c.Values, want) {
		t.Errorf("values of a sealed field: got %q, want %q", c.Values, want)
	}
	if got := show(t, a.rep, s1, true).Conflicts[0].Values; len(got) != 2 || got[0] == Masked {
		t.Errorf("revealed values: got %q, want the two names", got)
	}
}

// TestApplyBatchWholeOrNothing: a batch with one malformed delta changes
// nothing, not even its good deltas; a good batch applies every delta.
func TestApplyBatchWholeOrNothing(t *testing.T) {
	a, b := opened(t)
	before := dump(t, b.rep, s1)
	d1 := a.setResident(t, s1, map[string]string{"unit": "B"})
	_, d2 := a.add(t, s1, KindLog, logFields(a, "first"))
	bad := &syncproto.Delta{Stream: s1, Author: a.id, ID: nextDeltaID(), Clock: a.clock,
		Ops: []syncproto.Op{{Type: syncproto.OpSet, Kind: KindResident, Field: "flat"}}}
	if err := b.rep.ApplyBatch([]*syncproto.Delta{d1, d2, bad}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want %v", err, ErrMalformed)
	}
	if got := dump(t, b.rep, s1); got != before {
		t.Errorf("a refused batch changed the state:\ngot:\n%s\nwant:\n%s", got, before)
	}
	require.NoError(t, b.rep.ApplyBatch([]*syncproto.Delta{d1, d2}))
	requireSameDump(t, s1, a.rep, b.rep)
	// Applying it again is a no-op.
	require.NoError(t, b.rep.ApplyBatch([]*syncproto.Delta{d1, d2}))
	requireSameDump(t, s1, a.rep, b.rep)
}
