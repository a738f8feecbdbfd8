package server_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server/relaytest"
	"github.com/fristed/fristed/syncproto"
)

// TestPurge: the relay takes a purge only for a closed case past its
// retention period, signed by a coordinator device and not dated after its
// own clock; then the case's batches and wrapped keys are gone from its
// files. Every refusal leaves the chain as it was.
func TestPurge(t *testing.T) {
	e := startEnv(t)
	g := newOrg(t, e)
	w, devs, sess := g.worker(1)
	A, a := devs[0], sess[0]
	due, ep := g.stream([]syncproto.WorkerID{w}, A)
	early, _ := g.stream([]syncproto.WorkerID{w}, A)
	open, _ := g.stream([]syncproto.WorkerID{w}, A)

	_, batch, err := (&relaytest.Author{Dev: A, Stream: due}).Batch(g.o, ep, g.o.Head(), []byte("case notes"))
	require.NoError(t, err)
	_, _, err = a.Push(due, batch)
	require.NoError(t, err)
	wrapped, err := fcrypto.WrapKey(g.o.Key(due, ep), A.Box.Recipient().Recipient())
	require.NoError(t, err)
	wk := &syncproto.WrappedKey{Tenant: g.tenant, Stream: due, Epoch: ep, Device: A.ID, Wrapped: wrapped}
	require.NoError(t, g.cs.PutKey(wk.Marshal()))

	// at signs body as the coordinator (or dev) dated at, and appends it
	// to the local chain if the relay is to take it.
	at := func(dev *relaytest.Device, when time.Time, body syncproto.Body) []byte {
		s := g.o.Unsigned(syncproto.SignerDevice, dev, body)
		s.TimeMS = uint64(when.UnixMilli())
		raw, err := relaytest.Sign(s, nil, dev)
		require.NoError(t, err)
		return raw
	}
	keep := func(raw []byte) {
		require.NoError(t, g.o.Append(raw))
		g.post(raw)
	}
	now := time.Now()
	keep(at(g.coord, now, &syncproto.SettingsChanged{RetentionDays: 1, EnvelopeExpiryDays: 180, AutoLockMinutes: 10}))
	keep(at(g.coord, now.Add(-48*time.Hour), &syncproto.CaseClosed{Stream: due}))
	keep(at(g.coord, now, &syncproto.CaseClosed{Stream: early}))

	head := func() syncproto.ChainPos {
		_, h, err := g.cs.Chain(0)
		require.NoError(t, err)
		return h
	}
	for _, c := range []struct {
		name string
		sess *relaytest.Session
		raw  []byte
		want syncproto.Code
	}{
		{"open case", g.cs, at(g.coord, now, &syncproto.StreamPurged{Stream: open}), syncproto.CodeInvalidStatement},
		{"open case, dated years on", g.cs, at(g.coord, now.Add(10*365*24*time.Hour), &syncproto.StreamPurged{Stream: open}), syncproto.CodeInvalidStatement},
		{"before the retention period ends", g.cs, at(g.coord, now, &syncproto.StreamPurged{Stream: early}), syncproto.CodeInvalidStatement},
		{"dated after the relay's clock", g.cs, at(g.coord, now.Add(48*time.Hour), &syncproto.StreamPurged{Stream: early}), syncproto.CodeInvalidStatement},
		{"by a worker device", a, at(A, now, &syncproto.StreamPurged{Stream: due}), syncproto.CodeInvalidStatement},
	} {
		before := head()
		_, err := c.sess.PostStatement(c.raw)
		t.Logf("%s: %v", c.name, err)
		require.Error(t, err, c.name)
		require.Equal(t, c.want, relaytest.CodeOf(err), "%s: %v", c.name, err)
		require.Equal(t, before, head(), "%s changed the chain", c.name)
	}

	canaries := [][]byte{batch, wrapped, wk.Marshal()}
	hits, err := relaytest.FindInDir(e.data, canaries)
	require.NoError(t, err)
	require.NotEmpty(t, hits, "the batch is not in the relay's files before the purge: the check would prove nothing")

	keep(at(g.coord, now, &syncproto.StreamPurged{Stream: due}))
	_, _, err = a.Pull(due, 0, 10, 0)
	require.Error(t, err, "pull of a purged case")
	keys, err := a.Keys()
	require.NoError(t, err)
	require.Empty(t, keys, "wrapped keys of a purged case")
	hits, err = relaytest.FindInDir(e.data, canaries)
	require.NoError(t, err)
	require.Empty(t, hits, "the purged case's batch or wrapped key in the relay's files")
	e.proc.Stop(t)
	hits, err = relaytest.FindInDir(e.data, canaries)
	require.NoError(t, err)
	require.Empty(t, hits, "after the relay stopped")
}

// TestVoidEpochKey: a coordinator laptop compromised since P started
// epochs after P; the revocation voids them. A device in the stream's
// current epoch may still be given the key of a void epoch (honest
// devices may have sealed batches under it), checked against that epoch's
// signed commitment on the device; nobody else may, and an epoch no
// statement started stays unknown.
func TestVoidEpochKey(t *testing.T) {
	e := startEnv(t)
	g := newOrg(t, e)
	c2 := must[*relaytest.Device](t)(relaytest.NewDevice())
	g.post(must[[]byte](t)(g.o.Delegate(c2)))
	c2s := must[*relaytest.Session](t)(e.c.Login(g.tenant, c2, e.relayKey))
	w, devs, _ := g.worker(1)
	A := devs[0]
	s, _ := g.stream([]syncproto.WorkerID{w}, A)
	p := g.o.Head().Pos
	for range 2 { // epochs 2 and 3, both void once c2 is revoked
		_, _, raw, err := g.o.StartEpoch(c2, s, g.coord.ID, c2.ID, A.ID)
		require.NoError(t, err)
		_, err = c2s.PostStatement(raw)
		require.NoError(t, err)
	}
	key3 := g.o.Key(s, 3)
	g.post(must[[]byte](t)(g.o.RootSign(&syncproto.DeviceRevoked{Device: c2.ID, HasCompromisedSince: true, CompromisedSince: p})))
	// A later laptop of the same worker; the re-key reuses number 2, so
	// only epoch 3 is void alone.
	B := must[*relaytest.Device](t)(relaytest.NewDevice())
	g.post(must[[]byte](t)(g.o.Enrol(g.coord, B, w)))
	ep, _, raw, err := g.o.StartEpoch(g.coord, s, g.coord.ID, A.ID, B.ID)
	require.NoError(t, err)
	require.Equal(t, syncproto.Epoch(2), ep)
	g.post(raw)

	put := func(to *relaytest.Device, epoch syncproto.Epoch) error {
		wrapped, err := fcrypto.WrapKey(key3, to.Box.Recipient().Recipient())
		require.NoError(t, err)
		return g.cs.PutKey((&syncproto.WrappedKey{Tenant: g.tenant, Stream: s, Epoch: epoch, Device: to.ID, Wrapped: wrapped}).Marshal())
	}
	require.NoError(t, put(B, 3), "void epoch's key to a device of the current epoch")
	err = put(c2, 3)
	require.Error(t, err)
	require.Equal(t, syncproto.CodeNotAssigned, relaytest.CodeOf(err), "void epoch's key to the revoked laptop: %v", err)
	err = put(B, 4)
	require.Equal(t, syncproto.CodeUnknownEpoch, relaytest.CodeOf(err), "an epoch nobody started: %v", err)
	b := must[*relaytest.Session](t)(e.c.Login(g.tenant, B, e.relayKey))
	keys, err := b.Keys()
	require.NoError(t, err)
	require.Len(t, keys, 1)
	got, err := syncproto.UnmarshalWrappedKey(keys[0])
	require.NoError(t, err)
	require.Equal(t, syncproto.Epoch(3), got.Epoch)
}
