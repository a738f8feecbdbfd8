package syncproto

import (
	"testing"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/stretchr/testify/require"
)

func TestSanityChainAndBatch(t *testing.T) {
	root, _ := fcrypto.GenerateSigningKey()
	relay, _ := fcrypto.GenerateSigningKey()
	org := fcrypto.OrgFingerprint(root.Public())
	c := NewChain(org)
	tenant := NewTenantID()
	add := func(signer SignerKind, dev DeviceID, key *fcrypto.SigningKey, b Body) {
		s := c.Next(tenant, signer, dev, 1, b)
		require.NoError(t, s.Sign(key))
		raw, err := s.Marshal()
		require.NoError(t, err)
		_, err = c.Append(raw)
		require.NoError(t, err)
	}
	add(SignerRoot, DeviceID{}, root, &TenantCreated{Root: root.Public(), Relay: relay.Public()})
	coord, _ := fcrypto.NewDeviceKeys()
	cid := NewDeviceID()
	add(SignerRoot, DeviceID{}, root, &CoordinatorDelegated{Device: cid, SignPub: coord.Sign.Public(), Box: coord.Box.Recipient().String()})
	w := NewWorkerID()
	add(SignerDevice, cid, coord.Sign, &WorkerAdded{Worker: w})
	wk, _ := fcrypto.NewDeviceKeys()
	wid := NewDeviceID()
	add(SignerDevice, cid, coord.Sign, &DeviceEnrolled{Device: wid, Worker: w, SignPub: wk.Sign.Public(), Box: wk.Box.Recipient().String()})
	sid := NewStreamID()
	add(SignerDevice, cid, coord.Sign, &StreamCreated{Stream: sid, Kind: StreamResident})
	key, _ := fcrypto.NewKey()
	ctx := EpochKeyContext(tenant, sid, 1)
	add(SignerDevice, cid, coord.Sign, &EpochStarted{Stream: sid, Epoch: 1, Devices: SortDevices([]DeviceID{cid, wid}), Commitment: key.Commitment(ctx)})
	wrapped, err := fcrypto.WrapKey(key, wk.Box.Recipient().Recipient(), coord.Box.Recipient().Recipient())
	require.NoError(t, err)
	k2, err := fcrypto.UnwrapKey(wrapped, ctx, c.State().Streams[sid].Current().Commitment, wk.Box.Identity())
	require.NoError(t, err)
	require.True(t, k2.Equal(key))

	head, _ := c.Head()
	d := &Delta{Tenant: tenant, Stream: sid, Epoch: 1, Author: wid, ID: NewDeltaID(), Clock: HLC{WallMS: 5},
		Ops: []Op{{Type: OpSet, Kind: "resident", Field: "pseudonym", Value: []byte("Mina")}}}
	b, err := SealBatch(Batch{Tenant: tenant, Stream: sid, Epoch: 1, Author: wid, Counter: 1, ChainHead: head}, key, wk.Sign, []*Delta{d})
	require.NoError(t, err)
	raw, err := b.Marshal()
	require.NoError(t, err)
	b2, err := UnmarshalBatch(raw)
	require.NoError(t, err)
	require.NoError(t, c.State().CheckBatch(wid, sid, 1, head.Pos))
	ds, err := OpenBatch(b2, k2, wk.Sign.Public())
	require.NoError(t, err)
	require.Equal(t, "Mina", string(ds[0].Ops[0].Value))
}
