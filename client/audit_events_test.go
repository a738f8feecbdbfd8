package client

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/syncproto"
)

// TestAuditAccessEvents: showing a case records "opened the case" once
// per laptop and case within OpenWindow (a clock set back records anew),
// a reveal is recorded every time, a case this laptop does not hold
// records nothing, and exports - the emergency card, and the hook for an
// export across cases - are recorded with what was written out; audit show
// filters them by resident and time.
func TestAuditAccessEvents(t *testing.T) {
	d, r, _ := envSetup(t)
	t0 := time.Date(2027, 1, 4, 9, 0, 0, 0, time.UTC)
	clock := t0
	d.opts.Now = func() time.Time { return clock }
	device := func() []AuditEntry {
		t.Helper()
		all, err := d.AuditShow("", time.Time{})
		require.NoError(t, err)
		var out []AuditEntry
		for _, e := range all {
			if e.Source == "device" {
				out = append(out, e)
			}
		}
		return out
	}
	count := func(what string) int {
		n := 0
		for _, e := range device() {
			if e.What == what {
				n++
			}
		}
		return n
	}

	show := func(at time.Duration, reveal bool) {
		t.Helper()
		clock = t0.Add(at)
		v, err := d.ResidentShow("Mina", reveal)
		require.NoError(t, err)
		require.Equal(t, "Mina", v.Fields["pseudonym"])
	}
	show(0, false)
	show(5*time.Minute, false)
	show(OpenWindow-time.Second, false)
	if got := count("opened the case"); got != 1 {
		t.Fatalf("three openings within %v: got %d events, want 1", OpenWindow, got)
	}
	show(OpenWindow, false) // a new access
	show(OpenWindow+time.Minute, false)
	if got := count("opened the case"); got != 2 {
		t.Fatalf("an opening %v after the first: got %d events, want 2", OpenWindow, got)
	}
	show(time.Minute, false) // the clock went back
	if got := count("opened the case"); got != 3 {
		t.Fatalf("an opening with the clock set back: got %d events, want 3", got)
	}
	show(20*time.Minute, true)
	show(20*time.Minute, true)
	if got := count("opened the case and revealed the sealed fields"); got != 2 {
		t.Fatalf("two reveals: got %d events, want 2 (reveals are never collapsed)", got)
	}

	before := len(device())
	_, err := d.ResidentShow(syncproto.NewStreamID().String(), false)
	require.Error(t, err)
	_, err = d.ResidentShow("Nobody", true)
	require.Error(t, err)
	if got := len(device()); got != before {
		t.Fatalf("showing cases this laptop does not hold: got %d events, want %d", got, before)
	}

	clock = t0.Add(time.Hour)
	r.Stop()
	_, err = d.EnvelopeEmergency("Mina", "Oslo alarm centre")
	require.NoError(t, err)
	clock = t0.Add(2 * time.Hour)
	require.NoError(t, d.recordExport(syncproto.StreamID{}, "the annual report 2026"))

	evs := device()
	require.Len(t, evs, before+2)
	card, report := evs[len(evs)-2], evs[len(evs)-1]
	if card.What != "exported an emergency card for the police" || card.Resident == "" || !card.At.Equal(t0.Add(time.Hour)) {
		t.Errorf("emergency card: got %+v, want an export of Mina's case at %s", card, t0.Add(time.Hour))
	}
	if report.What != "exported the annual report 2026" || report.Resident != "" {
		t.Errorf("annual report: got %+v, want an export across cases", report)
	}

	// --resident keeps Mina's events only; --since drops the earlier ones.
	mina, err := d.AuditShow("Mina", t0.Add(15*time.Minute))
	require.NoError(t, err)
	var whats []string
	for _, e := range mina {
		if e.Source == "device" {
			whats = append(whats, e.What)
		}
	}
	require.Equal(t, []string{
		"opened the case and revealed the sealed fields",
		"opened the case and revealed the sealed fields",
		"exported an emergency card for the police",
	}, whats)
}

// TestAuditEventNotRecordedShowsNothing: when the access event cannot be
// saved, the case is not shown and the export not written.
func TestAuditEventNotRecordedShowsNothing(t *testing.T) {
	d, _, _ := envSetup(t)
	require.NoError(t, d.vault.Close()) // every later save fails
	for _, reveal := range []bool{false, true} {
		v, err := d.ResidentShow("Mina", reveal)
		require.Error(t, err)
		require.Nil(t, v, "a case shown without its access event (reveal %v)", reveal)
		want := "record the case opening in the audit log"
		if reveal {
			want = "record the reveal in the audit log"
		}
		require.ErrorContains(t, err, want)
	}
	res, err := d.EnvelopeEmergency("Mina", "Oslo alarm centre")
	require.ErrorContains(t, err, "record the export in the audit log")
	require.Nil(t, res, "an emergency card written without its access event")
	require.ErrorContains(t, d.recordExport(syncproto.StreamID{}, "the annual report 2026"), "record the export in the audit log")
}
