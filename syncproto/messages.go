package syncproto

import (
	"crypto/sha256"
	"fmt"
	"unicode/utf8"

	fcrypto "github.com/fristed/fristed/crypto"
)

// Receipt is the relay's signed acknowledgement of an accepted batch. A
// device keeps receipts; a later receipt for the same stream with a higher
// sequence number proves what the relay had accepted, so withheld batches
// show up as gaps.
type Receipt struct {
	Tenant     TenantID
	Stream     StreamID
	Seq        Seq
	Batch      Hash
	ReceivedMS uint64 // relay receipt time, ms since the Unix epoch
	Sig        []byte
}

func (r *Receipt) signedBody() []byte {
	e := &enc{}
	e.header(MsgReceipt)
	e.raw(r.Tenant[:])
	e.raw(r.Stream[:])
	e.u64(uint64(r.Seq))
	e.raw(r.Batch[:])
	e.u64(r.ReceivedMS)
	return e.b
}

// Sign signs the receipt with the relay's key under LabelReceipt.
func (r *Receipt) Sign(k *fcrypto.SigningKey) error {
	sig, err := k.Sign(fcrypto.LabelReceipt, r.signedBody())
	if err != nil {
		return fmt.Errorf("sign receipt: %w", err)
	}
	r.Sig = sig
	return nil
}

// Verify checks the receipt against the relay's key.
func (r *Receipt) Verify(relay fcrypto.PublicKey) error {
	if err := relay.Verify(fcrypto.LabelReceipt, r.signedBody(), r.Sig); err != nil {
		return fmt.Errorf("verify receipt: %w", err)
	}
	return nil
}

// Marshal returns the wire form: body then signature.
func (r *Receipt) Marshal() []byte {
	e := &enc{b: r.signedBody()}
	e.raw(r.Sig)
	return e.b
}

// UnmarshalReceipt decodes a receipt; it does not verify the signature.
func UnmarshalReceipt(b []byte) (*Receipt, error) {
	d := &dec{b: b}
	d.header(MsgReceipt)
	r := &Receipt{}
	d.fixed(r.Tenant[:])
	d.fixed(r.Stream[:])
	r.Seq = Seq(d.u64())
	d.fixed(r.Batch[:])
	r.ReceivedMS = d.u64()
	r.Sig = append([]byte(nil), d.take(fcrypto.SignatureSize)...)
	if err := d.finish("receipt"); err != nil {
		return nil, err
	}
	return r, nil
}

// AuthProof is what a device signs to log in: the relay's challenge nonce,
// bound to the tenant, the device and the relay's key, under LabelAuth. The
// device builds it itself, so a challenge can never be a statement or a
// batch in disguise.
type AuthProof struct {
	Tenant   TenantID
	Device   DeviceID
	Relay    fcrypto.PublicKey // the relay's signing key the device has pinned
	Nonce    Hash
	SignedMS uint64
	Sig      []byte
}

func (a *AuthProof) signedBody() []byte {
	e := &enc{}
	e.header(MsgAuth)
	e.raw(a.Tenant[:])
	e.raw(a.Device[:])
	e.raw(a.Relay[:])
	e.raw(a.Nonce[:])
	e.u64(a.SignedMS)
	return e.b
}

// Sign signs the proof with the device key.
func (a *AuthProof) Sign(k *fcrypto.SigningKey) error {
	sig, err := k.Sign(fcrypto.LabelAuth, a.signedBody())
	if err != nil {
		return fmt.Errorf("sign auth proof: %w", err)
	}
	a.Sig = sig
	return nil
}

// Verify checks the proof against the device key.
func (a *AuthProof) Verify(device fcrypto.PublicKey) error {
	if err := device.Verify(fcrypto.LabelAuth, a.signedBody(), a.Sig); err != nil {
		return fmt.Errorf("verify auth proof: %w", err)
	}
	return nil
}

// Marshal returns the wire form.
func (a *AuthProof) Marshal() []byte {
	e := &enc{b: a.signedBody()}
	e.raw(a.Sig)
	return e.b
}

// UnmarshalAuthProof decodes an auth proof; it does not verify it.
func UnmarshalAuthProof(b []byte) (*AuthProof, error) {
	d := &dec{b: b}
	d.header(MsgAuth)
	a := &AuthProof{}
	d.fixed(a.Tenant[:])
	d.fixed(a.Device[:])
	d.fixed(a.Relay[:])
	d.fixed(a.Nonce[:])
	a.SignedMS = d.u64()
	a.Sig = append([]byte(nil), d.take(fcrypto.SignatureSize)...)
	if err := d.finish("auth proof"); err != nil {
		return nil, err
	}
	return a, nil
}

// Enrolment is a new device's request to join a tenant: its public keys
// under a random request id, self-signed to prove it holds the signing key.
// Sealed carries what only coordinators may read (the device's name, as an
// enrolment name message of fixed size, MarshalEnrolName), age-encrypted to
// the coordinator devices; the relay sees ciphertext.
type Enrolment struct {
	Tenant    TenantID
	Request   RequestID
	SignPub   fcrypto.PublicKey
	Box       string // age hybrid recipient
	CreatedMS uint64
	Sealed    []byte
	Sig       []byte
}

func (r *Enrolment) signedBody() []byte {
	e := &enc{}
	e.header(MsgEnrolment)
	e.raw(r.Tenant[:])
	e.raw(r.Request[:])
	e.raw(r.SignPub[:])
	e.str(r.Box)
	e.u64(r.CreatedMS)
	e.blob(r.Sealed)
	return e.b
}

// Commitment is the enrolment commitment the device's code carries.
func (r *Enrolment) Commitment() [32]byte {
	return fcrypto.EnrolmentCommitment(r.Request[:], r.SignPub, r.Box)
}

// Code is the enrolment code the device shows its user.
func (r *Enrolment) Code() string { return fcrypto.EnrolmentCode(r.Request[:], r.Commitment()) }

// maxEnrolSealed bounds an enrolment's sealed part (an age file holding a
// device name).
const maxEnrolSealed = 64 << 10

// check refuses what UnmarshalEnrolment would refuse, so a request is never
// signed in a form that cannot be decoded (or whose length prefix wrapped).
func (r *Enrolment) check() error {
	if len(r.Box) > MaxStringLen || len(r.Sealed) > maxEnrolSealed {
		return ErrTooLarge
	}
	return nil
}

// Sign self-signs the request.
func (r *Enrolment) Sign(k *fcrypto.SigningKey) error {
	if !k.Public().Equal(r.SignPub) {
		return fmt.Errorf("sign enrolment: key is not the request's key")
	}
	if err := r.check(); err != nil {
		return fmt.Errorf("sign enrolment: %w", err)
	}
	sig, err := k.Sign(fcrypto.LabelEnrol, r.signedBody())
	if err != nil {
		return fmt.Errorf("sign enrolment: %w", err)
	}
	r.Sig = sig
	return nil
}

// Verify checks the self-signature.
func (r *Enrolment) Verify() error {
	if err := r.check(); err != nil {
		return fmt.Errorf("verify enrolment: %w", err)
	}
	if err := r.SignPub.Verify(fcrypto.LabelEnrol, r.signedBody(), r.Sig); err != nil {
		return fmt.Errorf("verify enrolment: %w", err)
	}
	return nil
}

// Marshal returns the wire form.
func (r *Enrolment) Marshal() []byte {
	e := &enc{b: r.signedBody()}
	e.raw(r.Sig)
	return e.b
}

// UnmarshalEnrolment decodes an enrolment request; it does not verify it.
func UnmarshalEnrolment(b []byte) (*Enrolment, error) {
	d := &dec{b: b}
	d.header(MsgEnrolment)
	r := &Enrolment{}
	d.fixed(r.Tenant[:])
	d.fixed(r.Request[:])
	d.fixed(r.SignPub[:])
	r.Box = d.str()
	r.CreatedMS = d.u64()
	r.Sealed = d.blob(maxEnrolSealed)
	r.Sig = append([]byte(nil), d.take(fcrypto.SignatureSize)...)
	if err := d.finish("enrolment"); err != nil {
		return nil, err
	}
	return r, nil
}

// EnrolNameSize is the size of every enrolment name message, whatever the
// name: an enrolment request seals this message, not the bare name, to the
// coordinators, so the age file's length says nothing about the name.
const EnrolNameSize = 256

// MaxEnrolName is the longest device name (in bytes) an enrolment carries.
const MaxEnrolName = EnrolNameSize - 2 - 4

// MarshalEnrolName encodes a device name as the fixed-size message an
// enrolment request seals: header, then the name padded as a sealed box's
// body (fcrypto.PadFixed) to EnrolNameSize bytes in all. The name must be
// non-empty UTF-8 of at most MaxEnrolName bytes.
func MarshalEnrolName(name string) ([]byte, error) {
	if name == "" || !utf8.ValidString(name) {
		return nil, fmt.Errorf("enrolment name: %w: want non-empty UTF-8", ErrMalformed)
	}
	if len(name) > MaxEnrolName {
		return nil, fmt.Errorf("enrolment name: %w: longer than %d bytes", ErrTooLarge, MaxEnrolName)
	}
	e := &enc{}
	e.header(MsgEnrolName)
	body, err := fcrypto.PadFixed([]byte(name), EnrolNameSize-len(e.b))
	if err != nil {
		return nil, fmt.Errorf("enrolment name: %w", err)
	}
	e.raw(body)
	return e.b, nil
}

// UnmarshalEnrolName decodes what MarshalEnrolName encodes, refusing any
// other size, non-zero padding, an empty name or one that is not UTF-8.
func UnmarshalEnrolName(b []byte) (string, error) {
	d := &dec{b: b}
	d.header(MsgEnrolName)
	body := d.take(EnrolNameSize - 2)
	if err := d.finish("enrolment name"); err != nil {
		return "", err
	}
	name, err := fcrypto.Unpad(body)
	if err != nil || len(name) == 0 || !utf8.Valid(name) {
		return "", fmt.Errorf("enrolment name: %w", ErrMalformed)
	}
	return string(name), nil
}

// WrappedKey carries one epoch key wrapped (age) to one device. Its
// genuineness comes from the commitment in the coordinator-signed "epoch
// started" statement, not from the wrapper. One copy per device lets the
// relay destroy each copy as soon as its device acknowledges it. Wrapped
// is at most maxWrapped bytes; UnmarshalWrappedKey refuses more.
type WrappedKey struct {
	Tenant  TenantID
	Stream  StreamID
	Epoch   Epoch
	Device  DeviceID
	Wrapped []byte
}

// maxWrapped bounds a wrapped key's age file (about 1.5 KB for one hybrid
// recipient).
const maxWrapped = 1 << 20

// Marshal returns the canonical encoding.
func (w *WrappedKey) Marshal() []byte {
	e := &enc{}
	e.header(MsgWrappedKey)
	e.raw(w.Tenant[:])
	e.raw(w.Stream[:])
	e.u32(uint32(w.Epoch))
	e.raw(w.Device[:])
	e.blob(w.Wrapped)
	return e.b
}

// UnmarshalWrappedKey decodes a wrapped key message.
func UnmarshalWrappedKey(b []byte) (*WrappedKey, error) {
	d := &dec{b: b}
	d.header(MsgWrappedKey)
	w := &WrappedKey{}
	d.fixed(w.Tenant[:])
	d.fixed(w.Stream[:])
	w.Epoch = Epoch(d.u32())
	d.fixed(w.Device[:])
	w.Wrapped = d.blob(maxWrapped)
	if err := d.finish("wrapped key"); err != nil {
		return nil, err
	}
	return w, nil
}

// Snapshot is an encrypted image of a stream's state after batch Seq,
// signed by the device that made it. Content is sealed under the epoch key
// (its schema belongs to the client); a coordinator's "snapshot
// countersigned" statement naming its hash is what allows pruning.
type Snapshot struct {
	Tenant    TenantID
	Stream    StreamID
	Epoch     Epoch
	Author    DeviceID
	Seq       Seq
	CreatedMS uint64
	Content   []byte // sealed
	Sig       []byte
}

func (s *Snapshot) signedBody() []byte {
	e := &enc{}
	e.header(MsgSnapshot)
	e.raw(s.Tenant[:])
	e.raw(s.Stream[:])
	e.u32(uint32(s.Epoch))
	e.raw(s.Author[:])
	e.u64(uint64(s.Seq))
	e.u64(s.CreatedMS)
	e.blob(s.Content)
	return e.b
}

// maxSnapshotContent bounds a snapshot's sealed content.
const maxSnapshotContent = MaxBlobLen * 4

// Sign signs the snapshot under LabelSnapshot.
func (s *Snapshot) Sign(k *fcrypto.SigningKey) error {
	if len(s.Content) > maxSnapshotContent {
		return fmt.Errorf("sign snapshot: %w", ErrTooLarge)
	}
	sig, err := k.Sign(fcrypto.LabelSnapshot, s.signedBody())
	if err != nil {
		return fmt.Errorf("sign snapshot: %w", err)
	}
	s.Sig = sig
	return nil
}

// Verify checks the author's signature.
func (s *Snapshot) Verify(author fcrypto.PublicKey) error {
	if err := author.Verify(fcrypto.LabelSnapshot, s.signedBody(), s.Sig); err != nil {
		return fmt.Errorf("verify snapshot: %w", err)
	}
	return nil
}

// Marshal returns the wire form.
func (s *Snapshot) Marshal() []byte {
	e := &enc{b: s.signedBody()}
	e.raw(s.Sig)
	return e.b
}

// Hash is the snapshot's identity, named by the countersignature.
func (s *Snapshot) Hash() Hash { return Hash(sha256.Sum256(s.Marshal())) }

// SnapshotAD is the associated data a snapshot's content is sealed with.
func SnapshotAD(tenant TenantID, stream StreamID, epoch Epoch, seq Seq) []byte {
	e := &enc{}
	e.raw([]byte("fristed/v1/snapshot"))
	e.raw(tenant[:])
	e.raw(stream[:])
	e.u32(uint32(epoch))
	e.u64(uint64(seq))
	return e.b
}

// UnmarshalSnapshot decodes a snapshot; it does not verify it.
func UnmarshalSnapshot(b []byte) (*Snapshot, error) {
	d := &dec{b: b}
	d.header(MsgSnapshot)
	s := &Snapshot{}
	d.fixed(s.Tenant[:])
	d.fixed(s.Stream[:])
	s.Epoch = Epoch(d.u32())
	d.fixed(s.Author[:])
	s.Seq = Seq(d.u64())
	s.CreatedMS = d.u64()
	s.Content = d.blob(maxSnapshotContent)
	s.Sig = append([]byte(nil), d.take(fcrypto.SignatureSize)...)
	if err := d.finish("snapshot"); err != nil {
		return nil, err
	}
	return s, nil
}
