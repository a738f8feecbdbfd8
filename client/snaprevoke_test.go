package client

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/client/replica"
	"github.com/fristed/fristed/client/transport"
	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server"
	"github.com/fristed/fristed/server/relaytest"
	"github.com/fristed/fristed/syncproto"
)

// testClock is a clock for the relay and every device of a test: it moves
// one millisecond per reading, so "later" is always strictly later, and
// jumps when the test says so.
type testClock struct{ ms atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ms.Store(time.Now().UnixMilli())
	return c
}

func (c *testClock) Now() time.Time          { return time.UnixMilli(c.ms.Add(1)).UTC() }
func (c *testClock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// startKeepRelay is startLoopbackRelay on clock now with a snapshot keep
// window.
func startKeepRelay(t testing.TB, now func() time.Time, keep time.Duration) *loopbackRelay {
	return startLoopbackRelayWith(t, func(cfg *server.Config) {
		cfg.Now, cfg.SnapshotKeep = now, keep
	})
}

// newCoordinator enrols a second coordinator laptop through the root key.
func (o *snapOrg) newCoordinator(name string) *Device {
	t := o.t
	t.Helper()
	ctx := context.Background()
	home := filepath.Join(t.TempDir(), name)
	w, code, err := DeviceInit(ctx, o.options(home), DeviceInitParams{RelayURL: o.relay.URL, Org: o.coord.Org(), Name: name})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = o.coord.Approve(ctx, ApproveParams{Code: code, Coordinator: true, Recovery: o.root()})
	require.NoError(t, err)
	o.sync(o.coord)
	w, err = Open(o.options(home))
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	o.watch(w)
	return w
}

func (o *snapOrg) root() *Recovery {
	rec, err := OpenRecovery(o.recovery, []byte("recovery "+relPassphrase))
	require.NoError(o.t, err)
	return rec
}

// addResident adds a resident assigned to the given workers.
func (o *snapOrg) addResident(name string, workers ...string) syncproto.StreamID {
	o.t.Helper()
	ctx := context.Background()
	sid, err := o.coord.ResidentAdd(ctx, ResidentAddParams{Pseudonym: name, Arrived: "2026-11-01"})
	require.NoError(o.t, err)
	for _, w := range workers {
		require.NoError(o.t, o.coord.Assign(ctx, sid.String(), w))
	}
	o.sync(o.coord)
	return sid
}

func (o *snapOrg) dumpOf(d *Device, sid syncproto.StreamID) string {
	o.t.Helper()
	b, err := d.rep.Dump(sid)
	require.NoError(o.t, err)
	return string(b)
}

func (o *snapOrg) headOf(sid syncproto.StreamID) transport.StreamHead {
	o.t.Helper()
	c, err := o.coord.client()
	require.NoError(o.t, err)
	hs, _, err := c.Heads(context.Background(), map[syncproto.StreamID]syncproto.Seq{sid: 0}, 0, 0)
	require.NoError(o.t, err)
	return hs[sid]
}

// countersignedAt returns the chain position of the countersignature of
// stream sid naming seq, as d's chain holds it.
func countersignedAt(t testing.TB, d *Device, sid syncproto.StreamID, seq syncproto.Seq) syncproto.ChainPos {
	t.Helper()
	for pos := d.chain.Len() - 1; pos >= 0; pos-- {
		if cs, ok := d.chain.Statement(syncproto.ChainPos(pos)).Body.(*syncproto.SnapshotCountersigned); ok && cs.Stream == sid && cs.Seq == seq {
			return syncproto.ChainPos(pos)
		}
	}
	t.Fatalf("no countersignature of %s after batch %d", sid, seq)
	return 0
}

// TestSnapshotStolenCoordinatorPrunedHistory: a second coordinator laptop
// is stolen. The thief writes into two residents; the worker laptop, not
// knowing, merges the edits and posts snapshots holding them. Mina's is
// countersigned by the honest coordinator, Sara's by the thief (a void
// countersignature once revoked), and the relay prunes both streams to the
// snapshots countersigned before the theft, which it keeps for its keep
// window. A new laptop onboards from the thief's Sara snapshot. After the
// root revokes the stolen laptop compromised since before the theft,
// every honest replica rebuilds both streams from the last snapshot
// countersigned before the point plus the verified history after it, and
// they all hold the same state, without the thief's edits; the void
// countersignature is no longer the chain's; the honest coordinator
// countersigns a new clean snapshot; a laptop enrolled afterwards onboards
// to the same state.
func TestSnapshotStolenCoordinatorPrunedHistory(t *testing.T) {
	ctx := context.Background()
	clk := newTestClock()
	o := newSnapOrgOn(t, 3, startKeepRelay(t, clk.Now, 24*time.Hour), clk.Now)
	mina := o.sid
	sara := o.addResident("Sara", "Kari")
	ola := o.addResident("Ola", "Kari")
	thief := o.newCoordinator("coord-2")
	for _, d := range []*Device{o.kari, thief, o.coord} {
		o.sync(d)
	}
	pushHistory(t, o.kari, ola, 4, 2) // under the threshold: no snapshot before the theft

	// Before the theft: history and a first countersigned snapshot of
	// each resident (the honest coordinator checks; the second one has
	// not synced since).
	for _, s := range []syncproto.StreamID{mina, sara} {
		pushHistory(t, o.kari, s, 8, 2)
	}
	o.sync(o.kari)  // posts both
	o.sync(o.coord) // countersigns both
	first := map[syncproto.StreamID]*syncproto.SnapshotCountersigned{}
	for _, s := range []syncproto.StreamID{mina, sara} {
		cs := o.coord.chain.State().Streams[s].Countersigned
		require.NotNil(t, cs, "first countersignature of %s", s)
		first[s] = cs
		require.Zero(t, o.headOf(s).Pruned, "pruned inside the keep window")
	}
	o.sync(o.kari)
	o.sync(thief)
	clk.Advance(48 * time.Hour)
	point := syncproto.ChainPos(o.coord.chain.Len() - 1)

	// The theft.
	_, err := thief.LogAdd("Mina", "practical", 5, "thief in Mina")
	require.NoError(t, err)
	_, err = thief.LogAdd("Sara", "practical", 5, "thief in Sara")
	require.NoError(t, err)
	o.sync(thief)
	o.sync(o.kari) // merges the thief's edits
	_, err = o.kari.LogAdd("Mina", "safety", 15, "kari during theft")
	require.NoError(t, err)
	pushHistory(t, o.kari, mina, 8, 2)
	o.sync(o.kari)  // posts Mina's snapshot, with the thief's edit in it
	o.sync(o.coord) // the honest coordinator countersigns it
	pushHistory(t, o.kari, sara, 8, 2)
	o.sync(o.kari) // posts Sara's
	o.sync(thief)  // the thief countersigns it
	tainted := o.coord.chain.State().Streams[mina].Countersigned
	require.Greater(t, tainted.Seq, first[mina].Seq, "Mina's second countersignature")
	o.sync(o.coord)
	void := o.coord.chain.State().Streams[sara].Countersigned
	require.Greater(t, void.Seq, first[sara].Seq, "Sara's second countersignature")
	voidPos := countersignedAt(t, o.coord, sara, void.Seq)
	require.Equal(t, syncproto.SignerDevice, o.coord.chain.Statement(voidPos).Signer)
	require.Equal(t, thief.ID(), o.coord.chain.Statement(voidPos).SignerDevice, "Sara's snapshot countersigned by the thief")
	for _, s := range []syncproto.StreamID{mina, sara} {
		require.Equal(t, first[s].Seq, o.headOf(s).Pruned, "%s pruned to the snapshot that stood for the keep window", s)
	}
	// The thief also forges a snapshot of Ola with an entry no device
	// ever wrote, authored and countersigned by the stolen laptop: its
	// authors are honest, only the countersignature vouches for it.
	o.sync(thief)
	forgeThiefSnapshot(t, thief, ola, "planted by thief")
	forged := thief.chain.State().Streams[ola].Countersigned
	require.NotNil(t, forged, "the thief's countersignature of Ola")
	o.sync(o.coord)
	// A laptop onboarded now starts from the newest countersignatures,
	// the thief's among them.
	eva := o.newDevice("eva", "Eva")
	require.NoError(t, o.coord.Assign(ctx, sara.String(), "Eva"))
	require.NoError(t, o.coord.Assign(ctx, ola.String(), "Eva"))
	o.sync(o.coord)
	o.sync(eva)
	cur, err := eva.cursor(sara)
	require.NoError(t, err)
	require.GreaterOrEqual(t, cur, void.Seq, "the new laptop started Sara from the thief's countersigned snapshot")
	require.Contains(t, o.dumpOf(eva, sara), "thief in Sara")
	require.Contains(t, o.dumpOf(eva, ola), "planted by thief", "the new laptop started Ola from the forged snapshot")

	// The root revokes the stolen laptop, compromised since before the
	// theft.
	_, err = o.coord.Revoke(ctx, RevokeParams{Device: thief.ID().String(), Recovery: o.root(), CompromisedSince: &point})
	require.NoError(t, err)
	for range 2 {
		for _, d := range []*Device{o.coord, o.kari, eva} {
			o.sync(d)
		}
	}
	require.True(t, o.coord.chain.IsVoid(voidPos), "the thief's countersignature stands")
	if cs := o.coord.chain.State().Streams[sara].Countersigned; *cs != *first[sara] {
		t.Fatalf("got Sara's countersignature %+v, want the one before the theft %+v", cs, first[sara])
	}
	require.Nil(t, o.coord.chain.State().Streams[ola].Countersigned, "the thief's countersignature of Ola stands")
	for _, s := range []syncproto.StreamID{mina, sara, ola} {
		want := o.dumpOf(o.coord, s)
		if strings.Contains(want, "thief") {
			t.Fatalf("the coordinator still holds the thief's edit in %s:\n%s", s, want)
		}
		for _, d := range []*Device{o.kari, eva} {
			if got := o.dumpOf(d, s); got != want {
				t.Fatalf("%s of %s:\n%s\nwant (coordinator's):\n%s", s, filepath.Base(d.home), got, want)
			}
		}
	}
	require.Contains(t, o.dumpOf(o.coord, mina), "kari during theft", "an honest edit after the point")

	// Two days on, the honest countersignature of Mina's tainted snapshot
	// has stood for the keep window, but it was signed between the point
	// and the revocation: the relay does not prune to it, at the next
	// upload either. A clean snapshot of Mina, posted by the worker
	// laptop, is checked against the snapshot before the theft and the
	// history after it, and countersigned by the honest coordinator.
	clk.Advance(48 * time.Hour)
	pushHistory(t, o.kari, mina, 8, 2)
	o.sync(o.kari)
	require.Equal(t, first[mina].Seq, o.headOf(mina).Pruned, "pruned to a countersignature signed between the point and the revocation")
	o.sync(o.coord)
	fresh := o.coord.chain.State().Streams[mina].Countersigned
	require.Greater(t, fresh.Seq, tainted.Seq, "a new countersignature of Mina after the revocation")
	require.Greater(t, countersignedAt(t, o.coord, mina, fresh.Seq), o.coord.chain.State().Devices[thief.ID()].RevokedAt)

	// A laptop enrolled after all this onboards to the same state.
	per := o.newDevice("per", "Per")
	require.NoError(t, o.coord.Assign(ctx, sara.String(), "Per"))
	o.sync(o.coord)
	o.sync(per)
	o.sync(o.kari)
	for _, s := range []syncproto.StreamID{mina, sara} {
		want := o.dumpOf(o.coord, s)
		for _, d := range []*Device{per, o.kari} {
			if got := o.dumpOf(d, s); got != want {
				t.Fatalf("%s of %s:\n%s\nwant (coordinator's):\n%s", s, filepath.Base(d.home), got, want)
			}
		}
	}
}

// TestSnapshotNoUsableBase: the relay pruned a stream to a snapshot
// countersigned after the point since which one of its authors is revoked
// as compromised, and kept nothing older (keep window 0). No replica may
// start from it, and nothing else is left to start from: the stream is
// reported in one notice per sync naming it, nothing of it is applied, and
// the sync succeeds, the other residents syncing on.
func TestSnapshotNoUsableBase(t *testing.T) {
	ctx := context.Background()
	o := newSnapOrg(t, 3)
	sara := o.addResident("Sara", "Kari")
	o.sync(o.kari)
	point := syncproto.ChainPos(o.coord.chain.Len() - 1)
	_, err := o.coord.WorkerAdd(ctx, "Ola") // a statement after the point, so the next batch names a later head
	require.NoError(t, err)
	o.sync(o.kari)
	_, err = o.kari.LogAdd("Mina", "practical", 5, "by Kari's laptop")
	require.NoError(t, err)
	o.sync(o.kari)
	pushHistory(t, o.coord, o.sid, 8, 2)
	o.sync(o.kari)
	o.sync(o.coord)
	cs := o.countersigned()
	require.NotNil(t, cs, "countersigned")
	require.Equal(t, cs.Seq, o.head().Pruned, "pruned")

	_, err = o.coord.Revoke(ctx, RevokeParams{Device: o.kari.ID().String(), CompromisedSince: &point})
	require.NoError(t, err)
	per := o.newDevice("per", "Per")
	require.NoError(t, o.coord.Assign(ctx, sara.String(), "Per"))
	_, err = o.coord.LogAdd("Sara", "safety", 10, "sara after revocation")
	require.NoError(t, err)
	o.sync(o.coord)
	for _, d := range []*Device{per, o.coord} {
		*o.notes[d] = nil
		if _, err := d.Sync(ctx); err != nil {
			t.Fatalf("sync of %s: got %v, want the stream reported and the sync done", filepath.Base(d.home), err)
		}
		n := 0
		for _, s := range *o.notes[d] {
			if strings.Contains(s, "no usable snapshot") {
				n++
				require.Contains(t, s, o.sid.String(), "the notice names the stream")
				require.Contains(t, s, o.kari.ID().String(), "the notice names the compromised author")
			}
		}
		require.Equal(t, 1, n, "notices of %s: %q", filepath.Base(d.home), *o.notes[d])
	}
	if got := o.dump(per); strings.Count(got, "\n") != 1 {
		t.Fatalf("the unusable snapshot left data on the new laptop:\n%s", got)
	}
	want := o.dumpOf(o.coord, sara)
	require.Contains(t, want, "sara after revocation")
	require.Equal(t, want, o.dumpOf(per, sara), "the other resident syncs on")

	// A snapshot of the stream posted now cannot be checked (nothing to
	// rebuild it from): the coordinator says so and does not countersign.
	pushHistory(t, o.coord, o.sid, 8, 2)
	head := o.head().Head
	sn := forgeSnapshot(t, o, o.coord, o.coord.kf.Sign, head)
	c, err := o.coord.client()
	require.NoError(t, err)
	require.NoError(t, c.PutSnapshot(ctx, o.sid, sn.Marshal()))
	*o.notes[o.coord] = nil
	o.sync(o.coord)
	require.Contains(t, o.noticesOf(o.coord), "not checked: the history is pruned")
	require.Equal(t, cs.Seq, o.countersigned().Seq, "countersigned without a base")
}

// forgeThiefSnapshot makes d, a coordinator laptop, post a snapshot of sid
// at the relay's head holding an extra log entry that no batch holds, and
// countersign it itself, as a thief holding the laptop can.
func forgeThiefSnapshot(t *testing.T, d *Device, sid syncproto.StreamID, text string) {
	t.Helper()
	ctx := context.Background()
	c, err := d.client()
	require.NoError(t, err)
	head, err := d.cursor(sid)
	require.NoError(t, err)
	_, ops, err := d.rep.LogOps(sid, replica.LogEntry{Category: "practical", Minutes: 1, Text: text,
		Author: d.pc.device.String(), At: time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)})
	require.NoError(t, err)
	cur := d.chain.State().Streams[sid].Current()
	require.NoError(t, d.rep.ApplyBatch([]*syncproto.Delta{{Tenant: d.pc.tenant, Stream: sid, Epoch: cur.Epoch, Author: d.pc.device,
		ID: syncproto.NewDeltaID(), Clock: d.tick(), Ops: ops}}))
	content, err := d.snapshotContent(sid, head)
	require.NoError(t, err)
	require.NotNil(t, content)
	plain, err := content.Marshal()
	require.NoError(t, err)
	key, err := d.epochKey(sid, cur.Epoch)
	require.NoError(t, err)
	sealed, err := syncproto.SealSnapshotContent(key, d.pc.tenant, sid, cur.Epoch, head, plain)
	require.NoError(t, err)
	sn := &syncproto.Snapshot{Tenant: d.pc.tenant, Stream: sid, Epoch: cur.Epoch, Author: d.pc.device, Seq: head,
		CreatedMS: uint64(d.opts.now().UnixMilli()), Content: sealed}
	require.NoError(t, sn.Sign(d.kf.Sign))
	require.NoError(t, c.PutSnapshot(ctx, sid, sn.Marshal()))
	_, err = d.postStatement(ctx, &syncproto.SnapshotCountersigned{Stream: sid, Seq: head, Snapshot: sn.Hash()}, nil)
	require.NoError(t, err)
}

// TestSnapshotWorkerlessStream: a resident no worker is assigned to gets
// snapshots from a coordinator laptop. While it is the only coordinator
// device it checks and countersigns its own; once there is a second one,
// it leaves its snapshot to the other, which countersigns it.
func TestSnapshotWorkerlessStream(t *testing.T) {
	o := newSnapOrg(t, 3)
	ola := o.addResident("Ola")
	pushHistory(t, o.coord, ola, 8, 2)
	o.sync(o.coord) // posts and, the only coordinator, countersigns
	cs := o.coord.chain.State().Streams[ola].Countersigned
	require.NotNil(t, cs, "countersigned by the only coordinator laptop")
	require.Equal(t, o.coord.ID(), o.coord.chain.Statement(countersignedAt(t, o.coord, ola, cs.Seq)).SignerDevice)
	require.Equal(t, cs.Seq, o.headOf(ola).Pruned)

	second := o.newCoordinator("coord-2")
	o.sync(second)
	pushHistory(t, o.coord, ola, 8, 2)
	o.sync(o.coord) // posts, does not countersign its own
	c, err := o.coord.client()
	require.NoError(t, err)
	raw, err := c.GetSnapshot(context.Background(), ola)
	require.NoError(t, err)
	sn, err := syncproto.UnmarshalSnapshot(raw)
	require.NoError(t, err)
	require.Equal(t, o.coord.ID(), sn.Author, "the coordinator laptop posted a snapshot")
	require.Greater(t, sn.Seq, cs.Seq)
	require.Equal(t, cs.Seq, o.coord.chain.State().Streams[ola].Countersigned.Seq, "countersigned its own snapshot with another coordinator there")
	o.sync(second)
	got := second.chain.State().Streams[ola].Countersigned
	if got == nil || got.Snapshot != sn.Hash() {
		t.Fatalf("got countersignature %+v, want the second coordinator's of %s", got, sn.Hash())
	}
	require.Equal(t, second.ID(), second.chain.Statement(countersignedAt(t, second, ola, got.Seq)).SignerDevice)
	want := o.dumpOf(o.coord, ola)
	require.Equal(t, want, o.dumpOf(second, ola))
}

// TestSnapshotCheckMeetsRevocation: a compromised-since revocation that
// reaches the chain while a coordinator laptop rebuilds a stream to check
// a snapshot stops the countersignature: the check did not know which
// batches are now void. The next sync checks again under the new chain.
func TestSnapshotCheckMeetsRevocation(t *testing.T) {
	ctx := context.Background()
	o := newSnapOrg(t, 3)
	second := o.newCoordinator("coord-2")
	o.sync(second)
	o.sync(o.kari)
	pushHistory(t, o.kari, o.sid, 8, 2)
	o.sync(o.kari) // posts
	point := syncproto.ChainPos(o.coord.chain.Len() - 1)
	// The check rebuilds the stream from its start (nothing is
	// countersigned yet); the pull asks only for what follows the
	// coordinator's cursor. The revocation lands during the rebuild.
	cur, err := o.coord.cursor(o.sid)
	require.NoError(t, err)
	require.NotZero(t, cur)
	var revoked atomic.Bool
	o.coord.viaRelay(snapshotProxy(t, o.relay.URL, func(r *http.Request, body []byte) []byte {
		if strings.HasSuffix(r.URL.Path, o.sid.String()+"/batches") && r.Method == http.MethodGet && r.URL.Query().Get("after") == "0" && !revoked.Swap(true) {
			_, err := second.Revoke(ctx, RevokeParams{Device: o.kari.ID().String(), CompromisedSince: &point})
			require.NoError(t, err)
		}
		return body
	}))
	o.sync(o.coord)
	require.True(t, revoked.Load(), "the coordinator rebuilt nothing")
	require.Nil(t, o.countersigned(), "countersigned after a check that did not know of the revocation")
	require.True(t, o.coord.chain.State().Devices[o.kari.ID()].Revoked, "the revocation is not in the coordinator's chain")
	require.NotContains(t, o.noticesOf(o.coord), "not countersigned", "the snapshot was judged")
}

// TestUsableCountersignatureRule: which authors make a countersignature at
// a chain position unusable. Device B, a coordinator, is revoked as
// compromised since position P by a revocation at R; after P it enrolled
// laptop X, whose enrolment is void. A countersignature at or before P, or
// after R, is usable with B's edits in it; one in between is not. X counts
// as revoked at R; an honest author never taints; an author the chain
// never knew always does.
func TestUsableCountersignatureRule(t *testing.T) {
	relayKey, err := fcrypto.GenerateSigningKey()
	require.NoError(t, err)
	o, err := relaytest.NewOrg(relayKey.Public())
	require.NoError(t, err)
	dev := func() *relaytest.Device {
		d, err := relaytest.NewDevice()
		require.NoError(t, err)
		return d
	}
	a, b, k, x := dev(), dev(), dev(), dev()
	must := func(_ []byte, err error) { t.Helper(); require.NoError(t, err) }
	must(o.Delegate(a))
	must(o.Delegate(b))
	w, _, err := o.AddWorker(a)
	require.NoError(t, err)
	must(o.Enrol(a, k, w))
	s, _, err := o.CreateStream(a, syncproto.StreamResident)
	require.NoError(t, err)
	countersign := func(seq syncproto.Seq) syncproto.ChainPos {
		must(o.DeviceSign(a, &syncproto.SnapshotCountersigned{Stream: s, Seq: seq, Snapshot: syncproto.Hash{byte(seq)}}))
		return o.Head().Pos
	}
	atPoint := countersign(1)
	point := atPoint
	must(o.Enrol(b, x, w)) // by the thief, after the point
	between := countersign(2)
	must(o.RootSign(&syncproto.DeviceRevoked{Device: b.ID, HasCompromisedSince: true, CompromisedSince: point}))
	revokedAt := o.Head().Pos
	after := countersign(3)

	ch := syncproto.NewChain(o.Fingerprint())
	for _, raw := range o.Raws() {
		_, err := ch.Append(raw)
		require.NoError(t, err)
	}
	require.True(t, ch.State().Devices[b.ID].HasCompromisedSince)
	require.Equal(t, revokedAt, ch.State().Devices[b.ID].RevokedAt)
	require.Nil(t, ch.State().Devices[x.ID], "the thief's enrolment stands")
	d := &Device{chain: ch}
	var stranger syncproto.DeviceID
	stranger[0] = 0xee
	for _, tc := range []struct {
		name   string
		author syncproto.DeviceID
		pos    syncproto.ChainPos
		bad    bool
	}{
		{"compromised author, countersigned at the point", b.ID, atPoint, false},
		{"compromised author, countersigned between point and revocation", b.ID, between, true},
		{"compromised author, countersigned after the revocation", b.ID, after, false},
		{"voided enrolment, between", x.ID, between, true},
		{"voided enrolment, after the revocation", x.ID, after, false},
		{"honest author, between", k.ID, between, false},
		{"unknown author, after the revocation", stranger, after, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			content := &syncproto.SnapshotContent{Authors: []syncproto.SnapshotAuthor{{Device: k.ID}, {Device: tc.author}}}
			got, bad := d.taintedBy(tc.pos, content)
			if bad != tc.bad || (bad && got != tc.author) {
				t.Fatalf("got %s, %v; want tainted %v by %s", got, bad, tc.bad, tc.author)
			}
		})
	}
}

// TestSnapshotNoneOfAuditLog: the audit stream, read only by coordinator
// laptops, is never snapshotted, however long: its log is checked link by
// link from the first batch.
func TestSnapshotNoneOfAuditLog(t *testing.T) {
	o := newSnapOrg(t, 1)
	audit, ok := drillStreamOfKind(o.coord.chain.State(), syncproto.StreamAudit)
	require.True(t, ok, "no audit stream")
	ola := o.addResident("Ola") // a worker-less resident beside it, which does get one
	for range 3 {
		_, err := o.coord.ResidentShow("Ola", true) // a reveal: an audit entry
		require.NoError(t, err)
		o.sync(o.coord)
	}
	pushHistory(t, o.coord, ola, 4, 2)
	o.sync(o.coord)
	require.Greater(t, o.headOf(audit).Head, syncproto.Seq(2), "audit entries on the relay")
	require.NotNil(t, o.coord.chain.State().Streams[ola].Countersigned, "the resident's snapshot")
	require.Nil(t, o.coord.chain.State().Streams[audit].Countersigned, "the audit log was snapshotted")
	c, err := o.coord.client()
	require.NoError(t, err)
	_, err = c.GetSnapshot(context.Background(), audit)
	require.True(t, isSnapshotNotFound(err), "got %v, want no snapshot of the audit log", err)
}
