package relaytest

import (
	"fmt"
	"sync"
	"time"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// Device is a test device's keys and place in the org.
type Device struct {
	ID          syncproto.DeviceID
	Sign        *fcrypto.SigningKey
	Box         *fcrypto.BoxIdentity
	Worker      syncproto.WorkerID // zero for coordinators
	Coordinator bool
}

// NewDevice makes a device's keys; its id derives from the signing key.
func NewDevice() (*Device, error) {
	sk, err := fcrypto.GenerateSigningKey()
	if err != nil {
		return nil, err
	}
	box, err := fcrypto.GenerateBoxIdentity()
	if err != nil {
		return nil, err
	}
	return &Device{ID: syncproto.DeviceIDFromKey(sk.Public()), Sign: sk, Box: box}, nil
}

// Org is a test organisation: the root key and a local copy of the chain,
// from which it builds and signs the next statements. Methods that make a
// statement append it to the local chain; post the returned bytes to the
// relay in the same order.
type Org struct {
	Root   *fcrypto.SigningKey
	Tenant syncproto.TenantID

	mu    sync.Mutex
	chain *syncproto.Chain
	raws  [][]byte
	keys  map[epochRef]*fcrypto.Key
}

type epochRef struct {
	stream syncproto.StreamID
	epoch  syncproto.Epoch
}

// NewOrg makes a root key and a genesis naming the relay's key.
func NewOrg(relay fcrypto.PublicKey) (*Org, error) {
	root, err := fcrypto.GenerateSigningKey()
	if err != nil {
		return nil, err
	}
	o := &Org{Root: root, Tenant: syncproto.NewTenantID(), keys: map[epochRef]*fcrypto.Key{}}
	o.chain = syncproto.NewChain(fcrypto.OrgFingerprint(root.Public()))
	if _, err := o.next(syncproto.SignerRoot, nil, &syncproto.TenantCreated{Root: root.Public(), Relay: relay}); err != nil {
		return nil, err
	}
	return o, nil
}

// Fingerprint is the org fingerprint.
func (o *Org) Fingerprint() fcrypto.Fingerprint { return fcrypto.OrgFingerprint(o.Root.Public()) }

// Genesis returns the genesis statement.
func (o *Org) Genesis() []byte { return o.Raw(0) }

// Raw returns the statement at pos.
func (o *Org) Raw(pos syncproto.ChainPos) []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.raws[pos]
}

// Raws returns every statement.
func (o *Org) Raws() [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([][]byte(nil), o.raws...)
}

// Head returns the local chain head.
func (o *Org) Head() syncproto.Head {
	o.mu.Lock()
	defer o.mu.Unlock()
	h, _ := o.chain.Head()
	return h
}

// State returns a copy of the local chain's state.
func (o *Org) State() *syncproto.State {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.chain.State().Clone()
}

// Append appends a statement made elsewhere (a relay fact) to the local
// chain.
func (o *Org) Append(raw []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, err := o.chain.Append(raw); err != nil {
		return err
	}
	o.raws = append(o.raws, raw)
	return nil
}

// Unsigned returns the next statement, signed by signer (dev for
// SignerDevice), without appending it: for statements the relay must
// refuse.
func (o *Org) Unsigned(signer syncproto.SignerKind, dev *Device, body syncproto.Body) *syncproto.Statement {
	o.mu.Lock()
	defer o.mu.Unlock()
	var id syncproto.DeviceID
	if dev != nil {
		id = dev.ID
	}
	return o.chain.Next(o.Tenant, signer, id, uint64(time.Now().UnixMilli()), body)
}

// Sign signs a statement with the root key or a device's key.
func Sign(s *syncproto.Statement, root *fcrypto.SigningKey, dev *Device) ([]byte, error) {
	k := root
	if s.Signer == syncproto.SignerDevice {
		k = dev.Sign
	}
	if err := s.Sign(k); err != nil {
		return nil, err
	}
	return s.Marshal()
}

// next signs the next statement and appends it locally.
func (o *Org) next(signer syncproto.SignerKind, dev *Device, body syncproto.Body) ([]byte, error) {
	s := o.Unsigned(signer, dev, body)
	raw, err := Sign(s, o.Root, dev)
	if err != nil {
		return nil, err
	}
	if err := o.Append(raw); err != nil {
		return nil, fmt.Errorf("append %s locally: %w", body.Type(), err)
	}
	return raw, nil
}

// RootSign makes the next statement signed by the root key.
func (o *Org) RootSign(body syncproto.Body) ([]byte, error) {
	return o.next(syncproto.SignerRoot, nil, body)
}

// DeviceSign makes the next statement signed by a device.
func (o *Org) DeviceSign(dev *Device, body syncproto.Body) ([]byte, error) {
	return o.next(syncproto.SignerDevice, dev, body)
}

// Delegate certifies dev as a coordinator device (root-signed).
func (o *Org) Delegate(dev *Device) ([]byte, error) {
	dev.Coordinator = true
	return o.RootSign(&syncproto.CoordinatorDelegated{Device: dev.ID, SignPub: dev.Sign.Public(), Box: dev.Box.Recipient().String()})
}

// AddWorker adds a worker.
func (o *Org) AddWorker(coord *Device) (syncproto.WorkerID, []byte, error) {
	w := syncproto.NewWorkerID()
	raw, err := o.DeviceSign(coord, &syncproto.WorkerAdded{Worker: w})
	return w, raw, err
}

// Enrol enrols dev as a device of worker w.
func (o *Org) Enrol(coord, dev *Device, w syncproto.WorkerID) ([]byte, error) {
	dev.Worker = w
	req := syncproto.NewRequestID()
	commit := syncproto.Hash(fcrypto.EnrolmentCommitment(req[:], dev.Sign.Public(), dev.Box.Recipient().String()))
	return o.DeviceSign(coord, &syncproto.DeviceEnrolled{Device: dev.ID, Worker: w, SignPub: dev.Sign.Public(),
		Box: dev.Box.Recipient().String(), Commitment: commit})
}

// CreateStream creates a stream.
func (o *Org) CreateStream(coord *Device, kind syncproto.StreamKind) (syncproto.StreamID, []byte, error) {
	s := syncproto.NewStreamID()
	raw, err := o.DeviceSign(coord, &syncproto.StreamCreated{Stream: s, Kind: kind})
	return s, raw, err
}

// StartEpoch starts the stream's next epoch for devices with a fresh key,
// which the org remembers.
func (o *Org) StartEpoch(coord *Device, stream syncproto.StreamID, devices ...syncproto.DeviceID) (syncproto.Epoch, *fcrypto.Key, []byte, error) {
	st := o.State()
	e := syncproto.Epoch(1)
	if str := st.Streams[stream]; str != nil && str.Current() != nil {
		e = str.Current().Epoch + 1
	}
	key, err := fcrypto.NewKey()
	if err != nil {
		return 0, nil, nil, err
	}
	c := key.Commitment(syncproto.EpochKeyContext(o.Tenant, stream, e))
	raw, err := o.DeviceSign(coord, &syncproto.EpochStarted{Stream: stream, Epoch: e,
		Devices: syncproto.SortDevices(devices), Commitment: c})
	if err != nil {
		return 0, nil, nil, err
	}
	o.mu.Lock()
	o.keys[epochRef{stream, e}] = key
	o.mu.Unlock()
	return e, key, raw, nil
}

// Key returns an epoch's key.
func (o *Org) Key(stream syncproto.StreamID, e syncproto.Epoch) *fcrypto.Key {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.keys[epochRef{stream, e}]
}

// Assign assigns a worker to a resident stream.
func (o *Org) Assign(coord *Device, stream syncproto.StreamID, w syncproto.WorkerID) ([]byte, error) {
	return o.DeviceSign(coord, &syncproto.Assigned{Stream: stream, Worker: w})
}

// Unassign removes a worker from a stream.
func (o *Org) Unassign(coord *Device, stream syncproto.StreamID, w syncproto.WorkerID) ([]byte, error) {
	return o.DeviceSign(coord, &syncproto.Unassigned{Stream: stream, Worker: w})
}

// Revoke revokes a worker device (coordinator-signed).
func (o *Org) Revoke(coord, dev *Device) ([]byte, error) {
	return o.DeviceSign(coord, &syncproto.DeviceRevoked{Device: dev.ID})
}

// Author is one device's writing state in one stream: its batch counter
// and the hash of its previous batch.
type Author struct {
	Dev     *Device
	Stream  syncproto.StreamID
	Counter uint64
	Prev    syncproto.Hash
}

// Deltas makes one delta per value: a "note" field set on the resident
// record, the value as plaintext.
func (a *Author) Deltas(o *Org, e syncproto.Epoch, values ...[]byte) []*syncproto.Delta {
	now := uint64(time.Now().UnixMilli())
	deltas := make([]*syncproto.Delta, len(values))
	for i, v := range values {
		deltas[i] = &syncproto.Delta{Tenant: o.Tenant, Stream: a.Stream, Epoch: e, Author: a.Dev.ID,
			ID: syncproto.NewDeltaID(), Clock: syncproto.HLC{WallMS: now, Logical: uint32(i)},
			Ops: []syncproto.Op{{Type: syncproto.OpSet, Kind: "resident", Field: "note", Value: v}}}
	}
	return deltas
}

// Batch seals one delta per value under the epoch's key and signs the
// batch, written under chain head head. It advances the author's state.
func (a *Author) Batch(o *Org, e syncproto.Epoch, head syncproto.Head, values ...[]byte) (*syncproto.Batch, []byte, error) {
	key := o.Key(a.Stream, e)
	if key == nil {
		return nil, nil, fmt.Errorf("no key for epoch %d", e)
	}
	return a.Seal(o, e, key, head, a.Deltas(o, e, values...))
}

// Seal seals deltas under key and signs the batch.
func (a *Author) Seal(o *Org, e syncproto.Epoch, key *fcrypto.Key, head syncproto.Head, deltas []*syncproto.Delta) (*syncproto.Batch, []byte, error) {
	hdr := syncproto.Batch{Tenant: o.Tenant, Stream: a.Stream, Epoch: e, Author: a.Dev.ID,
		Counter: a.Counter + 1, Prev: a.Prev, ChainHead: head, CreatedMS: uint64(time.Now().UnixMilli())}
	b, err := syncproto.SealBatch(hdr, key, a.Dev.Sign, deltas)
	if err != nil {
		return nil, nil, err
	}
	raw, err := b.Marshal()
	if err != nil {
		return nil, nil, err
	}
	h, err := b.Hash()
	if err != nil {
		return nil, nil, err
	}
	a.Counter, a.Prev = b.Counter, h
	return b, raw, nil
}
