package server_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/relaytest"
	"github.com/fristed/fristed/syncproto"
)

// TestSupersededEpochException: a device removed from a stream by an
// unassignment keeps its last edits. Its batch written under a chain head
// older than the epoch statement that removed it is accepted; the same
// device writing under a newer head is refused.
func TestSupersededEpochException(t *testing.T) {
	e := startEnv(t)
	g := newOrg(t, e)
	w1, devs1, sess1 := g.worker(1)
	w2, devs2, sess2 := g.worker(1)
	A, a := devs1[0], sess1[0]
	B, b := devs2[0], sess2[0]
	s, ep1 := g.stream([]syncproto.WorkerID{w1, w2}, A, B)

	// A writes offline under the head it has, before it hears of the
	// unassignment.
	au := &relaytest.Author{Dev: A, Stream: s}
	writtenAt := g.o.Head()
	_, offline, err := au.Batch(g.o, ep1, writtenAt, []byte("last visit notes"))
	require.NoError(t, err)

	g.post(must[[]byte](t)(g.o.Unassign(g.coord, s, w1)))
	ep2, _, raw, err := g.o.StartEpoch(g.coord, s, g.coord.ID, B.ID)
	require.NoError(t, err)
	g.post(raw)
	removedAt := g.o.Head().Pos
	require.Less(t, writtenAt.Pos, removedAt)

	seq, rc, err := a.Push(s, offline)
	require.NoError(t, err, "batch written before the removal")
	receipt, err := syncproto.UnmarshalReceipt(rc)
	require.NoError(t, err)
	require.NoError(t, receipt.Verify(e.relayKey))
	require.Equal(t, seq, receipt.Seq)

	// Written after A could have seen the new epoch: refused.
	_, late, err := au.Batch(g.o, ep1, g.o.Head(), []byte("after removal"))
	require.NoError(t, err)
	_, _, err = a.Push(s, late)
	require.Equal(t, syncproto.CodeEpochSuperseded, relaytest.CodeOf(err), "batch written after the removal: %v", err)

	// A can no longer read the stream; B reads A's last edit.
	_, _, err = a.Pull(s, 0, 10, 0)
	require.Equal(t, syncproto.CodeNotAssigned, relaytest.CodeOf(err))
	got, _, err := b.Pull(s, 0, 10, 0)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, offline, got[0].Raw)

	// B writes under the new epoch.
	_, rawB, err := (&relaytest.Author{Dev: B, Stream: s}).Batch(g.o, ep2, g.o.Head(), []byte("b"))
	require.NoError(t, err)
	_, _, err = b.Push(s, rawB)
	require.NoError(t, err)
}
