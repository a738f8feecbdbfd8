package server_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/relaytest"
	"github.com/fristed/fristed/syncproto"
)

// TestAuditHeadForAppenders: every active device may read the audit
// stream's head (it appends to the log and compares its receipts with the
// head) but not pull the stream; the head of another stream it cannot read
// stays refused, and a revoked device is refused the audit head too.
func TestAuditHeadForAppenders(t *testing.T) {
	e := startEnv(t)
	g := newOrg(t, e)
	_, devs, sess := g.worker(1)
	audit, raw, err := g.o.CreateStream(g.coord, syncproto.StreamAudit)
	require.NoError(t, err)
	g.post(raw)
	ep, _, raw, err := g.o.StartEpoch(g.coord, audit, g.coord.ID)
	require.NoError(t, err)
	g.post(raw)
	other, _ := g.stream(nil, g.coord)

	// The worker appends one entry; its head is visible to it.
	_, rawB, err := (&relaytest.Author{Dev: devs[0], Stream: audit}).Batch(g.o, ep, g.o.Head(), []byte("opened"))
	require.NoError(t, err)
	seq, _, err := sess[0].Push(audit, rawB)
	require.NoError(t, err)
	h, err := sess[0].Head(audit)
	require.NoError(t, err, "a worker laptop reading the audit head")
	require.Equal(t, seq, h.Head)

	_, _, err = sess[0].Pull(audit, 0, 10, 0)
	require.Equal(t, syncproto.CodeNotAssigned, relaytest.CodeOf(err), "a worker laptop pulling the audit stream: %v", err)
	_, err = sess[0].Head(other)
	require.Equal(t, syncproto.CodeNotAssigned, relaytest.CodeOf(err), "a worker laptop reading an unassigned stream's head: %v", err)

	g.post(must[[]byte](t)(g.o.Revoke(g.coord, devs[0])))
	_, err = sess[0].Head(audit)
	require.Equal(t, syncproto.CodeDeviceRevoked, relaytest.CodeOf(err), "a revoked laptop reading the audit head: %v", err)
}
