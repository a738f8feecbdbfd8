package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/client/replica"
	"github.com/fristed/fristed/client/transport"
	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// snapOrg is a coordinator and one worker device assigned to one resident,
// on a loopback relay, with a small snapshot threshold.
type snapOrg struct {
	t        testing.TB
	relay    *loopbackRelay
	coord    *Device
	kari     *Device // Kari's laptop
	sid      syncproto.StreamID
	every    int
	notes    map[*Device]*[]string
	now      func() time.Time // every device's clock; nil is time.Now
	recovery string           // the recovery file, passphrase "recovery " + relPassphrase
}

func newSnapOrg(t testing.TB, every int) *snapOrg {
	return newSnapOrgOn(t, every, startLoopbackRelay(t), nil)
}

// newSnapOrgOn is newSnapOrg on a given relay, with every device on the
// clock now.
func newSnapOrgOn(t testing.TB, every int, relay *loopbackRelay, now func() time.Time) *snapOrg {
	t.Helper()
	ctx := context.Background()
	o := &snapOrg{t: t, relay: relay, every: every, notes: map[*Device]*[]string{}, now: now,
		recovery: filepath.Join(t.TempDir(), "recovery.age")}
	var err error
	o.coord, err = OrgInit(ctx, o.options(filepath.Join(t.TempDir(), "coord")), OrgInitParams{RelayURL: relay.URL, Invite: relay.Invite,
		Name: "Enhet S", RecoveryOut: o.recovery, RecoveryPass: []byte("recovery " + relPassphrase)})
	require.NoError(t, err, "org init")
	t.Cleanup(func() { o.coord.Close() })
	o.watch(o.coord)
	_, err = o.coord.WorkerAdd(ctx, "Kari")
	require.NoError(t, err)
	o.sid, err = o.coord.ResidentAdd(ctx, ResidentAddParams{Pseudonym: "Mina", Arrived: "2026-11-01"})
	require.NoError(t, err)
	o.kari = o.newDevice("kari", "Kari")
	o.sync(o.kari)
	return o
}

// newDevice enrols a laptop for worker (added if new) and assigns the
// worker to the resident; the laptop has not synced yet.
func (o *snapOrg) newDevice(name, worker string) *Device {
	t := o.t
	t.Helper()
	ctx := context.Background()
	home := filepath.Join(t.TempDir(), name)
	w, code, err := DeviceInit(ctx, o.options(home), DeviceInitParams{RelayURL: o.relay.URL, Org: o.coord.Org(), Name: name + "-laptop"})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	if ws, _ := o.coord.WorkerList(); !hasWorker(ws, worker) {
		_, err := o.coord.WorkerAdd(ctx, worker)
		require.NoError(t, err)
	}
	_, err = o.coord.Approve(ctx, ApproveParams{Code: code, Worker: worker})
	require.NoError(t, err)
	require.NoError(t, o.coord.Assign(ctx, o.sid.String(), worker))
	_, err = o.coord.Sync(ctx) // shares the history's keys with the new laptop
	require.NoError(t, err)
	w, err = Open(o.options(home))
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	o.watch(w)
	return w
}

// options are a device's library options on the org's clock.
func (o *snapOrg) options(home string) Options {
	opts := relOptions(o.t, home)
	opts.Now, opts.loginNow = o.now, o.now
	return opts
}

func hasWorker(ws []WorkerInfo, name string) bool {
	for _, w := range ws {
		if w.Name == name {
			return true
		}
	}
	return false
}

// watch sets the snapshot threshold and collects the device's notices.
func (o *snapOrg) watch(d *Device) {
	d.opts.SnapshotEvery = o.every
	var notes []string
	o.notes[d] = &notes
	name := filepath.Base(d.home)
	d.opts.Notice = func(s string) {
		o.t.Logf("notice [%s]: %s", name, s)
		notes = append(notes, s)
	}
}

func (o *snapOrg) noticesOf(d *Device) string { return strings.Join(*o.notes[d], "\n") }

func (o *snapOrg) sync(d *Device) SyncResult {
	o.t.Helper()
	res, err := d.Sync(context.Background())
	require.NoError(o.t, err)
	return res
}

// head is the relay's head and pruned point of the resident's stream.
func (o *snapOrg) head() transport.StreamHead {
	o.t.Helper()
	c, err := o.coord.client()
	require.NoError(o.t, err)
	hs, _, err := c.Heads(context.Background(), map[syncproto.StreamID]syncproto.Seq{o.sid: 0}, 0, 0)
	require.NoError(o.t, err)
	return hs[o.sid]
}

func (o *snapOrg) countersigned() *syncproto.SnapshotCountersigned {
	return o.coord.chain.State().Streams[o.sid].Countersigned
}

func (o *snapOrg) dump(d *Device) string {
	o.t.Helper()
	b, err := d.rep.Dump(o.sid)
	require.NoError(o.t, err)
	return string(b)
}

// pushHistory writes n log entries to the resident as device d, perBatch
// to a batch, straight through the sealing and the relay the way push
// does, without a journal frame per entry (which would cost an fsync
// each). The entries are applied to d's replica as its own edits are.
func pushHistory(t testing.TB, d *Device, sid syncproto.StreamID, n, perBatch int) {
	t.Helper()
	ctx := context.Background()
	c, err := d.client()
	require.NoError(t, err)
	str := d.chain.State().Streams[sid]
	epoch := str.Current().Epoch
	key, err := d.epochKey(sid, epoch)
	require.NoError(t, err)
	head, _ := d.chain.Head()
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for done := 0; done < n; {
		var deltas []*syncproto.Delta
		for ; len(deltas) < perBatch && done < n; done++ {
			_, ops, err := d.rep.LogOps(sid, replica.LogEntry{Category: "practical", Minutes: 15,
				Text: fmt.Sprintf("entry %d", done), Author: d.pc.device.String(), At: at.Add(time.Duration(done) * time.Minute)})
			require.NoError(t, err)
			deltas = append(deltas, &syncproto.Delta{Tenant: d.pc.tenant, Stream: sid, Epoch: epoch, Author: d.pc.device,
				ID: syncproto.NewDeltaID(), Clock: d.tick(), Ops: ops})
		}
		require.NoError(t, d.rep.ApplyBatch(deltas))
		counter, prev, err := d.authorState(sid, d.pc.device)
		require.NoError(t, err)
		b, err := syncproto.SealBatch(syncproto.Batch{Tenant: d.pc.tenant, Stream: sid, Epoch: epoch, Author: d.pc.device,
			Counter: counter + 1, Prev: prev, ChainHead: head, CreatedMS: uint64(d.opts.now().UnixMilli())}, key, d.kf.Sign, deltas)
		require.NoError(t, err)
		raw, err := b.Marshal()
		require.NoError(t, err)
		seq, rc, err := c.PushBatch(ctx, sid, raw)
		require.NoError(t, err)
		h, err := b.Hash()
		require.NoError(t, err)
		require.NoError(t, d.setAuthorState(sid, d.pc.device, counter+1, h))
		_, err = d.db().Exec(`INSERT OR REPLACE INTO local_receipts (stream, seq, raw) VALUES (?, ?, ?)`, sid[:], int64(seq), rc)
		require.NoError(t, err)
	}
	d.dirty = true
}

// TestSnapshotPostCountersignPrune: past the threshold, the up-to-date
// worker laptop posts a snapshot; the relay keeps the history until the
// coordinator, at its next sync, has rebuilt the stream from the history,
// found the same state and countersigned; then it prunes to the snapshot.
// Nothing more is posted until the history grows past the threshold again.
func TestSnapshotPostCountersignPrune(t *testing.T) {
	o := newSnapOrg(t, 5)
	pushHistory(t, o.coord, o.sid, 24, 3) // 8 batches, 9 with the resident's own
	o.sync(o.kari)
	head := o.head()
	require.Equal(t, syncproto.Seq(9), head.Head)
	c, err := o.kari.client()
	require.NoError(t, err)
	raw, err := c.GetSnapshot(context.Background(), o.sid)
	require.NoError(t, err, "the worker laptop posted a snapshot")
	sn, err := syncproto.UnmarshalSnapshot(raw)
	require.NoError(t, err)
	if sn.Seq != 9 || sn.Author != o.kari.ID() {
		t.Fatalf("got snapshot after batch %d by %s, want after 9 by the worker laptop", sn.Seq, sn.Author)
	}
	if head.Pruned != 0 {
		t.Fatalf("got pruned %d before any countersignature, want 0", head.Pruned)
	}

	o.sync(o.coord)
	cs := o.countersigned()
	if cs == nil || cs.Seq != 9 || cs.Snapshot != sn.Hash() {
		t.Fatalf("got countersignature %+v, want the snapshot after batch 9", cs)
	}
	if got := o.head(); got.Pruned != 9 {
		t.Fatalf("got pruned %d after the countersignature, want 9", got.Pruned)
	}
	if n := strings.Count(o.noticesOf(o.coord), "snapshot"); n != 0 {
		t.Errorf("coordinator notices about snapshots: %q", o.noticesOf(o.coord))
	}

	// Under the threshold again: no new snapshot.
	pushHistory(t, o.coord, o.sid, 4, 1)
	o.sync(o.kari)
	raw2, err := c.GetSnapshot(context.Background(), o.sid)
	require.NoError(t, err)
	if !bytes.Equal(raw2, raw) {
		t.Fatal("a new snapshot was posted under the threshold")
	}
	// Past it: a new one, countersigned in turn from the first plus the
	// batches after it.
	pushHistory(t, o.coord, o.sid, 4, 1)
	o.sync(o.kari)
	o.sync(o.coord)
	if cs := o.countersigned(); cs == nil || cs.Seq != 17 {
		t.Fatalf("got countersignature %+v, want one after batch 17", cs)
	}
	if got := o.head(); got.Pruned != 17 {
		t.Fatalf("got pruned %d, want 17", got.Pruned)
	}
}

// TestSnapshotKeepsMergeMetadata: a conflict (the same field set on two
// laptops without seeing each other), a removed log entry and superseded
// writes survive the snapshot: a laptop that starts from it holds a
// canonical dump (tombstones, clocks, conflict records) byte for byte the
// same as the laptops that replayed the history.
func TestSnapshotKeepsMergeMetadata(t *testing.T) {
	o := newSnapOrg(t, 3)
	require.NoError(t, o.coord.ResidentSet("Mina", map[string]string{"unit": "Nord", "arrived": "2026-11-02"}))
	require.NoError(t, o.kari.ResidentSet("Mina", map[string]string{"unit": "Sør"}))
	entry, err := o.coord.LogAdd("Mina", "practical", 10, "to be removed")
	require.NoError(t, err)
	o.sync(o.coord)
	o.sync(o.kari)
	o.sync(o.coord)
	id, err := syncproto.ParseDeltaID(entry)
	require.NoError(t, err)
	ops, err := o.coord.rep.RemoveOps(o.sid, replica.KindLog, id)
	require.NoError(t, err)
	_, err = o.coord.commit(o.sid, ops)
	require.NoError(t, err)
	pushHistory(t, o.coord, o.sid, 8, 2)
	o.sync(o.coord)
	o.sync(o.kari)  // posts
	o.sync(o.coord) // countersigns
	require.NotNil(t, o.countersigned(), "countersigned")
	require.NotZero(t, o.head().Pruned, "pruned")

	per := o.newDevice("per", "Per")
	var batches atomic.Int64
	per.viaRelay(countingProxy(t, o.relay.URL, o.sid, &batches))
	o.sync(per)
	want := o.dump(o.coord)
	for _, line := range []string{"\ntombstone ", "\nconflict ", " superseded\n"} {
		if !strings.Contains(want, line) {
			t.Fatalf("the history has no %q line; the test needs one:\n%s", strings.TrimSpace(line), want)
		}
	}
	if got := o.dump(per); got != want {
		t.Fatalf("dump of the laptop started from the snapshot:\n%s\nwant (coordinator's):\n%s", got, want)
	}
	if got := o.dump(o.kari); got != want {
		t.Fatalf("worker's dump differs from the coordinator's:\n%s\nwant:\n%s", got, want)
	}
	if n := batches.Load(); n != 0 {
		t.Errorf("got %d batches of the resident served, want 0", n)
	}
	v, err := per.ResidentShow("Mina", false)
	require.NoError(t, err)
	if len(v.Conflicts) != 1 {
		t.Errorf("got conflicts %+v, want the unit conflict", v.Conflicts)
	}
}

// TestSnapshotOnboarding: a laptop assigned to a resident with 100,000
// log entries and a countersigned snapshot reaches the current state (the
// same canonical dump as the laptops that replayed it) without fetching
// the pruned history: it pulls only the batch after the snapshot, and the
// relay no longer has the rest.
func TestSnapshotOnboarding(t *testing.T) {
	const total, perBatch = 100_000, 500 // the relay's most per batch: 200 batches
	o := newSnapOrg(t, 100)
	pushHistory(t, o.coord, o.sid, total, perBatch)
	o.sync(o.kari)  // replays 100,000 deltas; posts
	o.sync(o.coord) // rebuilds 100,000 deltas; countersigns
	cs := o.countersigned()
	require.NotNil(t, cs, "countersigned")
	require.Equal(t, syncproto.Seq(total/perBatch+1), cs.Seq)
	require.Equal(t, cs.Seq, o.head().Pruned)
	pushHistory(t, o.coord, o.sid, perBatch, perBatch) // one batch after the snapshot

	per := o.newDevice("per", "Per")
	var batches atomic.Int64
	per.viaRelay(countingProxy(t, o.relay.URL, o.sid, &batches))
	o.sync(per)
	if n := batches.Load(); n != 1 {
		t.Errorf("got %d batches of the resident served, want 1 (only the one after the snapshot)", n)
	}
	o.sync(o.kari)
	want := o.dump(o.coord)
	if got := o.dump(per); got != want {
		t.Fatalf("onboarded laptop's dump differs from the coordinator's (%d vs %d bytes)", len(got), len(want))
	}
	if got := o.dump(o.kari); got != want {
		t.Fatalf("worker laptop's dump differs from the coordinator's")
	}
	var n int
	require.NoError(t, per.db().QueryRow(`SELECT COUNT(*) FROM elements WHERE stream = ? AND kind = ?`, o.sid[:], replica.KindLog).Scan(&n))
	require.Equal(t, total+perBatch, n, "log entries on the onboarded laptop")
}

// countingProxy forwards to the relay and counts the batches of stream
// sid it serves.
func countingProxy(t testing.TB, relayURL string, sid syncproto.StreamID, n *atomic.Int64) string {
	return snapshotProxy(t, relayURL, func(r *http.Request, body []byte) []byte {
		if strings.HasSuffix(r.URL.Path, sid.String()+"/batches") && r.Method == http.MethodGet {
			n.Add(int64(bytes.Count(body, []byte(`"seq"`))))
		}
		return body
	})
}

// snapshotProxy forwards to the relay and lets rewrite change any 200
// answer's body.
func snapshotProxy(t testing.TB, relayURL string, rewrite func(r *http.Request, body []byte) []byte) string {
	target, err := url.Parse(relayURL)
	require.NoError(t, err)
	p := httputil.NewSingleHostReverseProxy(target)
	p.ModifyResponse = func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return nil
		}
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		raw = rewrite(resp.Request, raw)
		resp.Body = io.NopCloser(bytes.NewReader(raw))
		resp.ContentLength = int64(len(raw))
		resp.Header.Del("Content-Length")
		return nil
	}
	s := httptest.NewServer(p)
	t.Cleanup(s.Close)
	return s.URL
}

func isSnapshotGet(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/snapshot")
}

// forgeSnapshot returns a snapshot of the resident by device d (signed
// with sign) whose content is d's state with an extra log entry the
// history never had.
func forgeSnapshot(t testing.TB, o *snapOrg, d *Device, sign *fcrypto.SigningKey, seq syncproto.Seq) *syncproto.Snapshot {
	t.Helper()
	content, err := d.snapshotContent(o.sid, seq)
	require.NoError(t, err)
	require.NotNil(t, content)
	content.Elements = append(content.Elements, syncproto.SnapshotElement{Kind: replica.KindLog, ID: syncproto.NewDeltaID(),
		Body: []byte(`{"category":"safety","minutes":5,"text":"planted"}`)})
	plain, err := content.Marshal()
	require.NoError(t, err)
	epoch := o.coord.chain.State().Streams[o.sid].Current().Epoch
	key, err := d.epochKey(o.sid, epoch)
	require.NoError(t, err)
	sealed, err := syncproto.SealSnapshotContent(key, d.pc.tenant, o.sid, epoch, seq, plain)
	require.NoError(t, err)
	sn := &syncproto.Snapshot{Tenant: d.pc.tenant, Stream: o.sid, Epoch: epoch, Author: d.pc.device, Seq: seq,
		CreatedMS: uint64(time.Now().UnixMilli()), Content: sealed}
	require.NoError(t, sn.Sign(sign))
	return sn
}

// TestSnapshotMismatchNotCountersigned: a snapshot signed by an assigned
// laptop whose content is not what the history gives (an entry planted)
// is reported by the coordinator and never countersigned; the relay keeps
// the history.
func TestSnapshotMismatchNotCountersigned(t *testing.T) {
	o := newSnapOrg(t, 3)
	pushHistory(t, o.coord, o.sid, 10, 2)
	o.kari.opts.SnapshotEvery = 1000 // Kari's laptop posts nothing itself
	o.sync(o.kari)
	c, err := o.kari.client()
	require.NoError(t, err)
	require.NoError(t, c.PutSnapshot(context.Background(), o.sid, forgeSnapshot(t, o, o.kari, o.kari.kf.Sign, 6).Marshal()))

	o.sync(o.coord)
	if cs := o.countersigned(); cs != nil {
		t.Fatalf("got countersignature %+v of a snapshot that does not match the history", cs)
	}
	if !strings.Contains(o.noticesOf(o.coord), "does not match the history") {
		t.Fatalf("got notices %q, want the mismatch reported", o.noticesOf(o.coord))
	}
	if got := o.head().Pruned; got != 0 {
		t.Fatalf("got pruned %d, want 0", got)
	}
	// Reported once, not at every sync.
	before := len(*o.notes[o.coord])
	o.sync(o.coord)
	if len(*o.notes[o.coord]) != before {
		t.Errorf("the same snapshot was reported again: %q", (*o.notes[o.coord])[before:])
	}
	// The planted snapshot holds the next one back only until the
	// history grows past the threshold again; that one is countersigned.
	o.kari.opts.SnapshotEvery = o.every
	pushHistory(t, o.coord, o.sid, 8, 2)
	o.sync(o.kari)
	o.sync(o.coord)
	if cs := o.countersigned(); cs == nil || cs.Seq != 10 {
		t.Fatalf("got countersignature %+v, want the honest snapshot after batch 10", cs)
	}
}

// TestHostileRelaySnapshotToCoordinator: a relay that serves the
// coordinator a snapshot with its signature cut off, or signed by another
// device than the author it names, gets it refused and reported; nothing
// is countersigned.
func TestHostileRelaySnapshotToCoordinator(t *testing.T) {
	for _, tc := range []struct {
		name   string
		forge  func(o *snapOrg, sn *syncproto.Snapshot) []byte
		notice string
	}{
		{"unsigned", func(o *snapOrg, sn *syncproto.Snapshot) []byte {
			sn.Sig = make([]byte, fcrypto.SignatureSize)
			return sn.Marshal()
		}, "signature does not verify"},
		{"signed by another device", func(o *snapOrg, sn *syncproto.Snapshot) []byte {
			require.NoError(o.t, sn.Sign(o.coord.kf.Sign))
			return sn.Marshal()
		}, "signature does not verify"},
		{"sealed under another key", func(o *snapOrg, sn *syncproto.Snapshot) []byte {
			sn.Content[len(sn.Content)-1] ^= 1
			require.NoError(o.t, sn.Sign(o.kari.kf.Sign))
			return sn.Marshal()
		}, "does not decrypt"},
		{"not a snapshot", func(o *snapOrg, sn *syncproto.Snapshot) []byte { return []byte("\x01\x05garbage") }, "snapshot refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newSnapOrg(t, 3)
			pushHistory(t, o.coord, o.sid, 10, 2)
			o.sync(o.kari) // posts an honest snapshot after batch 6
			o.coord.viaRelay(snapshotProxy(t, o.relay.URL, func(r *http.Request, body []byte) []byte {
				if !isSnapshotGet(r) {
					return body
				}
				sn, err := syncproto.UnmarshalSnapshot(body)
				require.NoError(t, err)
				return tc.forge(o, sn)
			}))
			o.sync(o.coord)
			if cs := o.countersigned(); cs != nil {
				t.Fatalf("got countersignature %+v of a forged snapshot", cs)
			}
			if !strings.Contains(o.noticesOf(o.coord), tc.notice) {
				t.Fatalf("got notices %q, want %q", o.noticesOf(o.coord), tc.notice)
			}
			if got := o.head().Pruned; got != 0 {
				t.Fatalf("got pruned %d, want 0", got)
			}
		})
	}
}

// TestHostileRelayHidesCountersignedSnapshot: a relay that answers "no
// such snapshot" for the countersigned one gets it reported to the new
// laptop, whose stream waits.
func TestHostileRelayHidesCountersignedSnapshot(t *testing.T) {
	o := newSnapOrg(t, 3)
	pushHistory(t, o.coord, o.sid, 10, 2)
	o.sync(o.kari)
	o.sync(o.coord)
	require.NotNil(t, o.countersigned(), "countersigned")
	per := o.newDevice("per", "Per")
	target, err := url.Parse(o.relay.URL)
	require.NoError(t, err)
	p := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isSnapshotGet(r) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"code":"not_found","message":"no snapshot of this stream"}`)
			return
		}
		p.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	per.viaRelay(proxy.URL)
	_, err = per.Sync(context.Background())
	if !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), "does not serve") {
		t.Fatalf("got %v, want ErrSnapshot: the relay does not serve it", err)
	}
}

// TestHostileRelaySnapshotToNewDevice: a relay that serves a new laptop
// something other than the countersigned snapshot (its signature cut off,
// re-signed by another device, a validly signed snapshot nobody
// countersigned, or garbage) gets it refused and reported, with nothing of
// it applied; the history being pruned, the stream waits, and through an
// honest relay the laptop then starts from the countersigned snapshot.
func TestHostileRelaySnapshotToNewDevice(t *testing.T) {
	o := newSnapOrg(t, 3)
	pushHistory(t, o.coord, o.sid, 10, 2)
	o.sync(o.kari)
	o.sync(o.coord)
	require.NotNil(t, o.countersigned(), "countersigned")
	forged := forgeSnapshot(t, o, o.kari, o.kari.kf.Sign, 6).Marshal()
	per := o.newDevice("per", "Per")
	for _, tc := range []struct {
		name  string
		forge func(sn *syncproto.Snapshot) []byte
	}{
		{"unsigned", func(sn *syncproto.Snapshot) []byte { sn.Sig = make([]byte, fcrypto.SignatureSize); return sn.Marshal() }},
		{"signed by another device", func(sn *syncproto.Snapshot) []byte { require.NoError(t, sn.Sign(o.coord.kf.Sign)); return sn.Marshal() }},
		{"not countersigned", func(*syncproto.Snapshot) []byte { return forged }},
		{"not a snapshot", func(*syncproto.Snapshot) []byte { return []byte("\x01\x05garbage") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			per.viaRelay(snapshotProxy(t, o.relay.URL, func(r *http.Request, body []byte) []byte {
				if !isSnapshotGet(r) {
					return body
				}
				sn, err := syncproto.UnmarshalSnapshot(body)
				require.NoError(t, err)
				return tc.forge(sn)
			}))
			before := len(*o.notes[per])
			_, err := per.Sync(context.Background())
			if !errors.Is(err, ErrSnapshot) {
				t.Fatalf("got %v, want ErrSnapshot", err)
			}
			if got := strings.Join((*o.notes[per])[before:], "\n"); !strings.Contains(got, "snapshot refused") {
				t.Fatalf("got notices %q, want the refusal reported", got)
			}
			if got := o.dump(per); strings.Count(got, "\n") != 1 {
				t.Fatalf("the refused snapshot left data on the laptop:\n%s", got)
			}
			if cur, _ := per.cursor(o.sid); cur != 0 {
				t.Fatalf("got cursor %d, want 0", cur)
			}
		})
	}
	per.viaRelay(o.relay.URL)
	o.sync(per)
	if got, want := o.dump(per), o.dump(o.coord); got != want {
		t.Fatalf("dump after the honest relay:\n%s\nwant:\n%s", got, want)
	}
}

// TestSnapshotPrunedPastCursor: a laptop that was offline while the
// stream grew and was pruned past its cursor, with an edit of its own
// waiting, catches up from the countersigned snapshot merged into what it
// holds, delivers its edit, and ends with the same dump as the others.
func TestSnapshotPrunedPastCursor(t *testing.T) {
	o := newSnapOrg(t, 3)
	per := o.newDevice("per", "Per")
	o.sync(per)
	pushHistory(t, o.coord, o.sid, 4, 2)
	o.sync(per)
	cur, err := per.cursor(o.sid)
	require.NoError(t, err)
	require.NotZero(t, cur)
	_, err = per.LogAdd("Mina", "safety", 20, "written offline")
	require.NoError(t, err)

	pushHistory(t, o.coord, o.sid, 12, 2)
	o.sync(o.kari)  // posts
	o.sync(o.coord) // countersigns; the relay prunes
	cs := o.countersigned()
	require.NotNil(t, cs, "countersigned")
	require.Greater(t, o.head().Pruned, cur, "pruned past the offline laptop's cursor")

	o.sync(per)
	if got, _ := per.cursor(o.sid); got < cs.Seq {
		t.Fatalf("got cursor %d, want at least %d", got, cs.Seq)
	}
	o.sync(o.coord)
	o.sync(o.kari)
	want := o.dump(o.coord)
	if !strings.Contains(want, "written offline") {
		t.Fatalf("the offline edit did not arrive:\n%s", want)
	}
	for _, d := range []*Device{per, o.kari} {
		if got := o.dump(d); got != want {
			t.Fatalf("dump of %s:\n%s\nwant (coordinator's):\n%s", filepath.Base(d.home), got, want)
		}
	}
}

// TestSnapshotPostRefused: a relay that refuses the upload does not fail
// the sync (every edit is delivered); the laptop says so and posts at a
// later sync.
func TestSnapshotPostRefused(t *testing.T) {
	o := newSnapOrg(t, 3)
	pushHistory(t, o.coord, o.sid, 10, 2)
	target, err := url.Parse(o.relay.URL)
	require.NoError(t, err)
	p := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/snapshot") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"code":"not_assigned","message":"not assigned to this stream"}`)
			return
		}
		p.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	o.kari.viaRelay(proxy.URL)
	o.sync(o.kari)
	if !strings.Contains(o.noticesOf(o.kari), "not posted") {
		t.Fatalf("got notices %q, want the refused upload reported", o.noticesOf(o.kari))
	}
	c, err := o.coord.client()
	require.NoError(t, err)
	_, err = c.GetSnapshot(context.Background(), o.sid)
	require.True(t, isSnapshotNotFound(err), "got %v, want no snapshot on the relay", err)

	o.kari.viaRelay(o.relay.URL)
	o.sync(o.kari)
	_, err = c.GetSnapshot(context.Background(), o.sid)
	require.NoError(t, err, "posted at the next sync")
}

// TestHostileRelayWithholdsDuringRebuild: a relay that drops a batch from
// the history a coordinator rebuilds from gets the snapshot reported, not
// countersigned.
func TestHostileRelayWithholdsDuringRebuild(t *testing.T) {
	o := newSnapOrg(t, 3)
	pushHistory(t, o.coord, o.sid, 10, 2)
	o.sync(o.coord) // up to date: its own pull asks for nothing old
	o.sync(o.kari)  // posts
	o.coord.viaRelay(snapshotProxy(t, o.relay.URL, func(r *http.Request, body []byte) []byte {
		if !strings.HasSuffix(r.URL.Path, o.sid.String()+"/batches") || r.URL.Query().Get("after") != "0" {
			return body
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal(body, &m))
		bs, _ := m["batches"].([]any)
		if len(bs) > 2 {
			m["batches"] = append(bs[:1:1], bs[2:]...)
		}
		out, err := json.Marshal(m)
		require.NoError(t, err)
		return out
	}))
	o.sync(o.coord)
	if cs := o.countersigned(); cs != nil {
		t.Fatalf("got countersignature %+v from a withheld history", cs)
	}
	if !strings.Contains(o.noticesOf(o.coord), "does not rebuild") {
		t.Fatalf("got notices %q, want the failed rebuild reported", o.noticesOf(o.coord))
	}
}

// TestOpenSnapshotRefusals: a snapshot by a device the chain does not
// know, by one outside the epoch it names, or whose sealed content names
// another point than the snapshot, is refused with ErrSnapshot.
func TestOpenSnapshotRefusals(t *testing.T) {
	o := newSnapOrg(t, 1000)
	pushHistory(t, o.coord, o.sid, 4, 2)
	o.sync(o.kari)
	stranger, err := fcrypto.GenerateSigningKey()
	require.NoError(t, err)
	outsider := o.newDevice("per", "Per") // assigned after the epoch the snapshot names
	o.sync(outsider)
	o.sync(o.kari) // takes the new epoch's key
	epoch := o.coord.chain.State().Streams[o.sid].Current().Epoch
	for _, tc := range []struct {
		name  string
		forge func() *syncproto.Snapshot
		want  string
	}{
		{"unknown author", func() *syncproto.Snapshot {
			sn := forgeSnapshot(t, o, o.kari, o.kari.kf.Sign, 3)
			rand.Read(sn.Author[:])
			require.NoError(t, sn.Sign(stranger))
			return sn
		}, "unknown device"},
		{"author outside the epoch", func() *syncproto.Snapshot {
			sn := forgeSnapshot(t, o, o.kari, o.kari.kf.Sign, 3)
			sn.Epoch, sn.Author = epoch-1, outsider.ID()
			require.NoError(t, sn.Sign(outsider.kf.Sign))
			return sn
		}, "not in the epoch"},
		{"content of another point", func() *syncproto.Snapshot {
			sn := forgeSnapshot(t, o, o.kari, o.kari.kf.Sign, 3)
			content, err := o.kari.snapshotContent(o.sid, 2)
			require.NoError(t, err)
			plain, err := content.Marshal()
			require.NoError(t, err)
			key, err := o.kari.epochKey(o.sid, sn.Epoch)
			require.NoError(t, err)
			sn.Content, err = syncproto.SealSnapshotContent(key, sn.Tenant, o.sid, sn.Epoch, 3, plain)
			require.NoError(t, err)
			require.NoError(t, sn.Sign(o.kari.kf.Sign))
			return sn
		}, "another stream or point"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := o.coord.openSnapshot(tc.forge(), o.sid)
			if !errors.Is(err, ErrSnapshot) || got != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, %v; want nothing and ErrSnapshot about %q", got, err, tc.want)
			}
		})
	}
}

// TestSnapshotWaitsForKey: a laptop that does not hold the key the
// countersigned snapshot is sealed under yet (the relay has not handed it
// over) says so and leaves the stream for the next sync, which starts
// from the snapshot.
func TestSnapshotWaitsForKey(t *testing.T) {
	o := newSnapOrg(t, 3)
	pushHistory(t, o.coord, o.sid, 10, 2)
	o.sync(o.kari)
	o.sync(o.coord)
	require.NotNil(t, o.countersigned(), "countersigned")
	per := o.newDevice("per", "Per")
	per.viaRelay(snapshotProxy(t, o.relay.URL, func(r *http.Request, body []byte) []byte {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/keys") {
			return []byte(`{"keys":[]}`)
		}
		return body
	}))
	o.sync(per)
	reported := false
	for _, n := range *o.notes[per] {
		reported = reported || strings.Contains(n, "no key for this epoch") && strings.Contains(n, o.sid.String())
	}
	if !reported {
		t.Fatalf("got notices %q, want the missing key of %s reported", o.noticesOf(per), o.sid)
	}
	if got := o.dump(per); strings.Count(got, "\n") != 1 {
		t.Fatalf("got data without the key:\n%s", got)
	}
	per.viaRelay(o.relay.URL)
	o.sync(per)
	if got, want := o.dump(per), o.dump(o.coord); got != want {
		t.Fatalf("dump after the key arrived:\n%s\nwant:\n%s", got, want)
	}
}
