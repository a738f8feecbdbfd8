package client

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/syncproto"
)

// skewOrg is a coordinator and two workers' laptops assigned to one
// resident, over a relay on a loopback port. Ada's laptop reads its clock
// through adaAhead, which the test moves; the relay and the others keep
// the wall clock. Every laptop's notices are kept.
type skewOrg struct {
	t        *testing.T
	sid      syncproto.StreamID
	devs     map[string]*Device
	notices  map[string][]string
	adaAhead time.Duration
	relayURL string
}

func newSkewOrg(t *testing.T) *skewOrg {
	ctx := context.Background()
	o := &skewOrg{t: t, devs: map[string]*Device{}, notices: map[string][]string{}}
	r := startLoopbackRelay(t)
	o.relayURL = r.URL
	dir := t.TempDir()
	opts := func(name string) Options {
		op := relOptions(t, filepath.Join(dir, name))
		op.Notice = func(s string) {
			t.Logf("notice [%s]: %s", name, s)
			o.notices[name] = append(o.notices[name], s)
		}
		if name == "ada" {
			op.Now = func() time.Time { return time.Now().Add(o.adaAhead) }
		}
		return op
	}
	c, err := OrgInit(ctx, opts("coord"), OrgInitParams{RelayURL: r.URL, Invite: r.Invite, Name: "Enhet S",
		RecoveryOut: filepath.Join(dir, "recovery.age"), RecoveryPass: []byte("recovery " + relPassphrase)})
	require.NoError(t, err, "org init")
	o.devs["coord"] = c
	t.Cleanup(func() {
		for _, d := range o.devs {
			d.Close()
		}
	})
	for _, w := range []string{"Ada", "Bo"} {
		_, err := c.WorkerAdd(ctx, w)
		require.NoError(t, err)
		home := strings.ToLower(w)
		d, code, err := DeviceInit(ctx, opts(home), DeviceInitParams{RelayURL: r.URL, Org: c.Org(), Name: home + "s laptop"})
		require.NoError(t, err, "device init %s", home)
		o.devs[home] = d
		_, err = c.Approve(ctx, ApproveParams{Code: code, Worker: w})
		require.NoError(t, err)
	}
	o.sid, err = c.ResidentAdd(ctx, ResidentAddParams{Pseudonym: "Mina", Arrived: "2026-11-01"})
	require.NoError(t, err)
	for _, w := range []string{"Ada", "Bo"} {
		require.NoError(t, c.Assign(ctx, "Mina", w))
	}
	o.syncAll()
	return o
}

// syncAll syncs every laptop, Ada's first, then once more each so that
// everything reaches everyone, and forgets the notices so far.
func (o *skewOrg) syncAll() {
	o.t.Helper()
	for range 2 {
		for _, name := range []string{"ada", "bo", "coord"} {
			_, err := o.devs[name].Sync(context.Background())
			require.NoError(o.t, err, "sync %s", name)
		}
	}
}

func (o *skewOrg) clearNotices() { o.notices = map[string][]string{} }

// noticed reports whether a notice of name holds every part.
func (o *skewOrg) noticed(name string, parts ...string) bool {
	for _, n := range o.notices[name] {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(n, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// requireConverged checks that every replica's dump of the case is the
// same, and returns Ada's log texts.
func (o *skewOrg) requireConverged(step string) []string {
	o.t.Helper()
	var want []byte
	for _, name := range []string{"ada", "bo", "coord"} {
		got, err := o.devs[name].rep.Dump(o.sid)
		require.NoError(o.t, err)
		if want == nil {
			want = got
			continue
		}
		if !bytes.Equal(got, want) {
			o.t.Fatalf("%s: %s's replica differs from ada's:\n%s", step, name, dumpDiff(want, got))
		}
	}
	log, err := o.devs["ada"].rep.Log(o.sid)
	require.NoError(o.t, err)
	var texts []string
	for _, e := range log {
		texts = append(texts, e.Text)
	}
	return texts
}

// TestClockAheadRefusedAlike: edits made on a laptop whose clock runs an
// hour ahead are refused by every device, the author's replica included,
// and the author is told; 4 minutes ahead is fine, 6 minutes ahead is
// accepted with a warning, and once the clock is fixed the laptop's edits
// go through again.
func TestClockAheadRefusedAlike(t *testing.T) {
	o := newSkewOrg(t)
	ada := o.devs["ada"]

	// 4 minutes ahead: accepted, nothing said.
	o.adaAhead = 4 * time.Minute
	o.clearNotices()
	_, err := ada.LogAdd("Mina", "practical", 5, "four minutes ahead")
	require.NoError(t, err)
	o.syncAll()
	if texts := o.requireConverged("4 minutes ahead"); !slices.Contains(texts, "four minutes ahead") {
		t.Fatalf("got log %q, want the edit made 4 minutes ahead", texts)
	}
	for name, ns := range o.notices {
		for _, n := range ns {
			if strings.Contains(n, "ahead") {
				t.Errorf("%s got notice %q at 4 minutes ahead, want none about the clock", name, n)
			}
		}
	}

	// 6 minutes ahead: accepted, with a warning before harm is done.
	o.adaAhead = 6 * time.Minute
	o.clearNotices()
	_, err = ada.LogAdd("Mina", "practical", 5, "six minutes ahead")
	require.NoError(t, err)
	o.syncAll()
	if texts := o.requireConverged("6 minutes ahead"); !slices.Contains(texts, "six minutes ahead") {
		t.Fatalf("got log %q, want the edit made 6 minutes ahead", texts)
	}
	if !o.noticed("ada", "warning", "6 minutes ahead of the relay's", "fix the clock") {
		t.Errorf("got notices %q, want the early warning", o.notices["ada"])
	}
	if n := len(o.notices["ada"]); n != 1 {
		t.Errorf("got %d notices on ada, want the warning once per sync (%q)", n, o.notices["ada"])
	}

	// An hour ahead: both edits of the batch are refused everywhere.
	o.adaAhead = time.Hour
	o.clearNotices()
	_, err = ada.LogAdd("Mina", "practical", 5, "an hour ahead")
	require.NoError(t, err)
	require.NoError(t, ada.ResidentSet("Mina", map[string]string{"language": "an hour ahead"}))
	// Showing the case writes an entry to the audit log, which this
	// worker's laptop cannot read back: refused by its readers, said here.
	_, err = ada.ResidentShow("Mina", false)
	require.NoError(t, err)
	o.syncAll()
	if !o.noticed("ada", "60 minutes ahead", "audit entries", "every device refuses them") {
		t.Errorf("got notices %q, want the refused audit entry named", o.notices["ada"])
	}
	ignored := 0
	for _, n := range o.notices["coord"] {
		if strings.Contains(n, "ignored batch") && strings.Contains(n, "ahead of the relay's receipt") {
			ignored++
		}
	}
	if ignored != 2 {
		t.Errorf("got notices %q on coord, want the case's and the audit log's batch reported as ignored", o.notices["coord"])
	}
	texts := o.requireConverged("an hour ahead")
	if slices.Contains(texts, "an hour ahead") {
		t.Fatalf("got log %q, want the edit made an hour ahead refused", texts)
	}
	if !o.noticed("ada", "60 minutes ahead", "2 edit(s) to Mina", "refused by every device", "enter them again") {
		t.Errorf("got notices %q, want the refusal named", o.notices["ada"])
	}
	for _, name := range []string{"bo", "coord"} {
		if !o.noticed(name, "ignored batch", "ahead of the relay's receipt") {
			t.Errorf("got notices %q on %s, want the batch reported as ignored", o.notices[name], name)
		}
	}
	v, err := ada.rep.Resident(o.sid, false)
	require.NoError(t, err)
	if v.Fields["language"] != "" {
		t.Errorf("got language %q on ada, want the refused edit gone", v.Fields["language"])
	}

	// Made an hour ahead while offline, the clock fixed before the sync:
	// refused the same, without the early warning, and the edits made
	// after the fix are not stamped with the old clock.
	_, err = ada.LogAdd("Mina", "practical", 5, "offline, an hour ahead")
	require.NoError(t, err)
	o.adaAhead = 0
	o.clearNotices()
	o.syncAll()
	if texts := o.requireConverged("offline an hour ahead"); slices.Contains(texts, "offline, an hour ahead") {
		t.Fatalf("got log %q, want the edit made offline an hour ahead refused", texts)
	}
	if !o.noticed("ada", "1 edit(s) to Mina", "refused by every device") || o.noticed("ada", "warning") {
		t.Errorf("got notices %q, want the refusal and no early warning", o.notices["ada"])
	}
	_, err = ada.LogAdd("Mina", "practical", 5, "clock fixed")
	require.NoError(t, err)
	o.clearNotices()
	o.syncAll()
	if texts := o.requireConverged("clock fixed"); !slices.Contains(texts, "clock fixed") {
		t.Fatalf("got log %q, want the edit made after the fix", texts)
	}
	if o.noticed("ada", "refused") {
		t.Errorf("got notices %q, want none refusing the edit made after the fix", o.notices["ada"])
	}

	// Re-reading its own history (a rebuild) skips the refused batches
	// again: the replicas stay identical.
	require.NoError(t, ada.startRebuild(o.sid, "test"))
	o.syncAll()
	o.requireConverged("after a rebuild")

	// So does taking the case again after it was purged here by an
	// unassignment: the laptop's own batches are then applied like
	// anyone's.
	ctx := context.Background()
	require.NoError(t, o.devs["coord"].Unassign(ctx, "Mina", "Ada"))
	o.syncAll()
	require.NoError(t, o.devs["coord"].Assign(ctx, "Mina", "Ada"))
	o.syncAll()
	if texts := o.requireConverged("assigned again"); !slices.Equal(slices.Sorted(slices.Values(texts)), []string{"clock fixed", "four minutes ahead", "six minutes ahead"}) {
		t.Fatalf("got log %q after the case was assigned again, want the accepted edits only", texts)
	}
}

// TestOwnSkewCheckUnreadableOutbox: when the outbox cannot be read back as
// the receipt for a re-sent batch arrives, the sync fails naming the step,
// and the batch and its edit stay queued.
func TestOwnSkewCheckUnreadableOutbox(t *testing.T) {
	o := newSkewOrg(t)
	ada := o.devs["ada"]
	_, err := ada.LogAdd("Mina", "practical", 5, "sent twice")
	require.NoError(t, err)
	// The relay takes the batch but its receipt is lost on the way back.
	ada.viaRelay(hostileProxy(t, o.relayURL, "/batches", func(m map[string]any) {
		if _, ok := m["receipt"]; ok {
			m["receipt"] = "eA=="
		}
	}))
	_, err = ada.Sync(context.Background())
	require.Error(t, err)
	_, err = ada.db().Exec(`UPDATE local_outbox SET delta = x'00'`)
	require.NoError(t, err)
	ada.viaRelay(o.relayURL)
	_, err = ada.Sync(context.Background())
	if err == nil || !strings.Contains(err.Error(), "read outbox") {
		t.Fatalf("got %v, want an error reading the outbox", err)
	}
	var inflight, pending int
	require.NoError(t, ada.db().QueryRow(`SELECT COUNT(*) FROM local_inflight`).Scan(&inflight))
	require.NoError(t, ada.db().QueryRow(`SELECT COUNT(*) FROM local_outbox`).Scan(&pending))
	if inflight != 1 || pending != 1 {
		t.Errorf("got %d in-flight batches and %d queued edits, want 1 and 1", inflight, pending)
	}
}
