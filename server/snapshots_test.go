package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/relaytest"
	"github.com/fristed/fristed/syncproto"
)

// withSnapshotKeep sets the relay's --snapshot-keep.
func withSnapshotKeep(d string) envOpt {
	return func(e *env) { e.serve = append(e.serve, "--snapshot-keep", d) }
}

// TestSnapshotPruneOnlyWhenCountersigned: snapshots alone never prune; a
// countersignature of one the relay holds prunes to it (and keeps it,
// served by its hash), a countersignature of one it does not hold prunes
// nothing until it is uploaded. GET by hash serves exactly that snapshot.
func TestSnapshotPruneOnlyWhenCountersigned(t *testing.T) {
	e := startEnv(t, withSnapshotKeep("0"))
	g := newOrg(t, e)
	w, devs, sess := g.worker(1)
	a := sess[0]
	s, ep := g.stream([]syncproto.WorkerID{w}, devs...)
	au := &relaytest.Author{Dev: devs[0], Stream: s}
	for range 4 {
		_, raw, err := au.Batch(g.o, ep, g.o.Head(), []byte("entry"))
		require.NoError(t, err)
		_, _, err = a.Push(s, raw)
		require.NoError(t, err)
	}
	snap := func(seq syncproto.Seq) *syncproto.Snapshot {
		content, err := syncproto.SealSnapshotContent(g.o.Key(s, ep), g.tenant, s, ep, seq, []byte("state"))
		require.NoError(t, err)
		sn := &syncproto.Snapshot{Tenant: g.tenant, Stream: s, Epoch: ep, Author: devs[0].ID, Seq: seq,
			CreatedMS: uint64(time.Now().UnixMilli()), Content: content}
		require.NoError(t, sn.Sign(devs[0].Sign))
		return sn
	}
	pruned := func() syncproto.Seq {
		heads, _, err := a.Heads(map[syncproto.StreamID]syncproto.Seq{s: 0}, 0, 0)
		require.NoError(t, err)
		return heads[s].Pruned
	}
	byHash := func(h string) (*relaytest.Response, error) {
		return a.Call(http.MethodGet, "/streams/"+s.String()+"/snapshot?hash="+h, "", nil, nil)
	}

	s2, s3, s4 := snap(2), snap(3), snap(4)
	require.NoError(t, a.PutSnapshot(s, s2.Marshal()))
	require.NoError(t, a.PutSnapshot(s, s3.Marshal()))
	require.Equal(t, syncproto.Seq(0), pruned(), "pruned by uploads alone")
	got, seq, err := a.GetSnapshot(s)
	require.NoError(t, err)
	require.Equal(t, s3.Marshal(), got, "latest")
	require.Equal(t, syncproto.Seq(3), seq)
	resp, err := byHash(s2.Hash().String())
	require.NoError(t, err)
	require.Equal(t, s2.Marshal(), resp.Body, "by hash")
	_, err = byHash(s4.Hash().String())
	require.Equal(t, syncproto.CodeNotFound, relaytest.CodeOf(err), "hash not held")
	_, err = byHash("h_nonsense")
	require.Equal(t, syncproto.CodeBadRequest, relaytest.CodeOf(err), "malformed hash")

	// Countersigned and held: pruned to it, and it stays.
	g.post(must[[]byte](t)(g.o.DeviceSign(g.coord, &syncproto.SnapshotCountersigned{Stream: s, Seq: 2, Snapshot: s2.Hash()})))
	require.Equal(t, syncproto.Seq(2), pruned())
	_, _, err = a.Pull(s, 0, 100, 0)
	require.Equal(t, syncproto.CodePruned, relaytest.CodeOf(err))
	resp, err = byHash(s2.Hash().String())
	require.NoError(t, err)
	require.Equal(t, s2.Marshal(), resp.Body, "the countersigned snapshot after pruning")

	// Countersigned before it is uploaded: pruned when it arrives.
	g.post(must[[]byte](t)(g.o.DeviceSign(g.coord, &syncproto.SnapshotCountersigned{Stream: s, Seq: 4, Snapshot: s4.Hash()})))
	require.Equal(t, syncproto.Seq(2), pruned(), "pruned to a snapshot the relay does not hold")
	require.NoError(t, a.PutSnapshot(s, s4.Marshal()))
	require.Equal(t, syncproto.Seq(4), pruned())
}

// TestSnapshotKeepWindow: the relay prunes to a countersigned snapshot only
// once the countersignature has stood for the keep window (measured from
// its signed time), so the previous countersigned snapshot and the history
// after it stay meanwhile, served by hash; a countersignature dated before
// the relay's clock by more than the allowed skew is refused, so it cannot
// make the relay prune early.
func TestSnapshotKeepWindow(t *testing.T) {
	e := startEnv(t, withSnapshotKeep("5m"))
	g := newOrg(t, e)
	w, devs, sess := g.worker(1)
	a := sess[0]
	s, ep := g.stream([]syncproto.WorkerID{w}, devs...)
	au := &relaytest.Author{Dev: devs[0], Stream: s}
	for range 4 {
		_, raw, err := au.Batch(g.o, ep, g.o.Head(), []byte("entry"))
		require.NoError(t, err)
		_, _, err = a.Push(s, raw)
		require.NoError(t, err)
	}
	snap := func(seq syncproto.Seq) *syncproto.Snapshot {
		content, err := syncproto.SealSnapshotContent(g.o.Key(s, ep), g.tenant, s, ep, seq, []byte("state"))
		require.NoError(t, err)
		sn := &syncproto.Snapshot{Tenant: g.tenant, Stream: s, Epoch: ep, Author: devs[0].ID, Seq: seq,
			CreatedMS: uint64(time.Now().UnixMilli()), Content: content}
		require.NoError(t, sn.Sign(devs[0].Sign))
		require.NoError(t, a.PutSnapshot(s, sn.Marshal()))
		return sn
	}
	pruned := func() syncproto.Seq {
		heads, _, err := a.Heads(map[syncproto.StreamID]syncproto.Seq{s: 0}, 0, 0)
		require.NoError(t, err)
		return heads[s].Pruned
	}
	countersign := func(sn *syncproto.Snapshot, age time.Duration) ([]byte, error) {
		st := g.o.Unsigned(syncproto.SignerDevice, g.coord, &syncproto.SnapshotCountersigned{Stream: s, Seq: sn.Seq, Snapshot: sn.Hash()})
		st.TimeMS = uint64(time.Now().Add(-age).UnixMilli())
		raw, err := relaytest.Sign(st, g.o.Root, g.coord)
		require.NoError(t, err)
		_, err = g.cs.PostStatement(raw)
		return raw, err
	}
	s2, s3, s4 := snap(2), snap(3), snap(4)
	byHash := func(sn *syncproto.Snapshot) []byte {
		resp, err := a.Call(http.MethodGet, "/streams/"+s.String()+"/snapshot?hash="+sn.Hash().String(), "", nil, nil)
		require.NoError(t, err)
		return resp.Body
	}

	// Countersigned 9 minutes ago (within the skew, past the 5-minute
	// window): pruned to it.
	raw, err := countersign(s2, 9*time.Minute)
	require.NoError(t, err)
	require.NoError(t, g.o.Append(raw))
	require.Equal(t, syncproto.Seq(2), pruned(), "a countersignature past the window")

	// Countersigned now: inside the window, nothing more is pruned; the
	// previous countersigned snapshot and the history after it stay.
	raw, err = countersign(s3, 0)
	require.NoError(t, err)
	require.NoError(t, g.o.Append(raw))
	require.Equal(t, syncproto.Seq(2), pruned(), "pruned inside the keep window")
	got, _, err := a.Pull(s, 2, 100, 0)
	require.NoError(t, err, "the history after the previous snapshot")
	require.Len(t, got, 2)
	require.Equal(t, s2.Marshal(), byHash(s2), "the previous countersigned snapshot")
	require.Equal(t, s3.Marshal(), byHash(s3))

	// Dated before the relay's clock by more than the skew: refused, so
	// it cannot make the relay prune early.
	_, err = countersign(s4, 11*time.Minute)
	require.Equal(t, syncproto.CodeInvalidStatement, relaytest.CodeOf(err), "backdated countersignature")
	require.Equal(t, syncproto.Seq(2), pruned())
}
