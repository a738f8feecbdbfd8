package syncproto

import (
	"crypto/sha256"
	"errors"
	"fmt"

	fcrypto "github.com/fristed/fristed/crypto"
)

// SealedDelta is one encrypted delta inside a batch.
type SealedDelta struct {
	ID         DeltaID
	Ciphertext []byte
}

// Batch is the unit a device pushes: sealed deltas for one stream under one
// epoch, signed once over the hash of every delta in it.
type Batch struct {
	Tenant    TenantID
	Stream    StreamID
	Epoch     Epoch
	Author    DeviceID
	Counter   uint64 // author's per-stream batch counter, from 1
	Prev      Hash   // hash of the author's previous batch in the stream; zero for the first
	ChainHead Head   // the admin chain head the author had when sealing
	CreatedMS uint64 // author's clock when sealing
	Deltas    []SealedDelta
	Sig       []byte
}

// Batch errors.
var (
	ErrBatchHash      = errors.New("batch delta does not match its signed hash")
	ErrBatchMismatch  = errors.New("delta does not belong to its batch")
	ErrDuplicateDelta = errors.New("duplicate delta id in batch")
)

func (b *Batch) signedBody() ([]byte, error) {
	if len(b.Deltas) == 0 || len(b.Deltas) > MaxDeltasPerBatch {
		return nil, fmt.Errorf("encode batch: %d deltas: %w", len(b.Deltas), ErrMalformed)
	}
	if b.Counter == 0 {
		return nil, fmt.Errorf("encode batch: zero counter: %w", ErrMalformed)
	}
	e := &enc{}
	e.header(MsgBatch)
	e.raw(b.Tenant[:])
	e.raw(b.Stream[:])
	e.u32(uint32(b.Epoch))
	e.raw(b.Author[:])
	e.u64(b.Counter)
	e.raw(b.Prev[:])
	e.u64(uint64(b.ChainHead.Pos))
	e.raw(b.ChainHead.Hash[:])
	e.u64(b.CreatedMS)
	e.u32(uint32(len(b.Deltas)))
	seen := make(map[DeltaID]bool, len(b.Deltas))
	for _, sd := range b.Deltas {
		if seen[sd.ID] {
			return nil, fmt.Errorf("encode batch: %w", ErrDuplicateDelta)
		}
		seen[sd.ID] = true
		h := sha256.Sum256(sd.Ciphertext)
		e.raw(sd.ID[:])
		e.raw(h[:])
	}
	return e.b, nil
}

// Sign computes the signed body and signs it under LabelBatch.
func (b *Batch) Sign(k *fcrypto.SigningKey) error {
	body, err := b.signedBody()
	if err != nil {
		return err
	}
	sig, err := k.Sign(fcrypto.LabelBatch, body)
	if err != nil {
		return fmt.Errorf("sign batch: %w", err)
	}
	b.Sig = sig
	return nil
}

// Verify checks the batch signature against the author's key.
func (b *Batch) Verify(author fcrypto.PublicKey) error {
	body, err := b.signedBody()
	if err != nil {
		return err
	}
	if err := author.Verify(fcrypto.LabelBatch, body, b.Sig); err != nil {
		return fmt.Errorf("verify batch: %w", err)
	}
	return nil
}

// Hash is the batch's identity: the hash of its signed body, which covers
// every delta's ciphertext hash. It is computed from the fields as they are
// now (never cached), so it always names what Verify checks.
func (b *Batch) Hash() (Hash, error) {
	body, err := b.signedBody()
	if err != nil {
		return Hash{}, err
	}
	return Hash(sha256.Sum256(body)), nil
}

// Marshal returns the wire form: signed body, signature, then each
// ciphertext length-prefixed in the order of the body.
func (b *Batch) Marshal() ([]byte, error) {
	body, err := b.signedBody()
	if err != nil {
		return nil, err
	}
	if len(b.Sig) != fcrypto.SignatureSize {
		return nil, fmt.Errorf("encode batch: unsigned: %w", ErrMalformed)
	}
	e := &enc{b: body}
	e.raw(b.Sig)
	for _, sd := range b.Deltas {
		if len(sd.Ciphertext) > MaxBlobLen {
			return nil, fmt.Errorf("encode batch: %w", ErrTooLarge)
		}
		e.blob(sd.Ciphertext)
	}
	return e.b, nil
}

// UnmarshalBatch decodes a batch and checks that every ciphertext matches
// the hash in the signed body. It does not verify the signature.
func UnmarshalBatch(raw []byte) (*Batch, error) {
	d := &dec{b: raw}
	d.header(MsgBatch)
	b := &Batch{}
	d.fixed(b.Tenant[:])
	d.fixed(b.Stream[:])
	b.Epoch = Epoch(d.u32())
	d.fixed(b.Author[:])
	b.Counter = d.u64()
	d.fixed(b.Prev[:])
	b.ChainHead.Pos = ChainPos(d.u64())
	d.fixed(b.ChainHead.Hash[:])
	b.CreatedMS = d.u64()
	n := d.u32()
	if d.err == nil && (n == 0 || n > MaxDeltasPerBatch || b.Counter == 0) {
		d.fail(ErrMalformed)
	}
	if d.err != nil {
		// n comes from the wire: allocate for it only once it is in bounds.
		n = 0
	}
	hashes := make([][32]byte, 0, n)
	seen := make(map[DeltaID]bool, n)
	for i := uint32(0); d.err == nil && i < n; i++ {
		var sd SealedDelta
		var h [32]byte
		d.fixed(sd.ID[:])
		d.fixed(h[:])
		if seen[sd.ID] {
			d.fail(ErrDuplicateDelta)
		}
		seen[sd.ID] = true
		b.Deltas = append(b.Deltas, sd)
		hashes = append(hashes, h)
	}
	b.Sig = append([]byte(nil), d.take(fcrypto.SignatureSize)...)
	for i := range b.Deltas {
		if d.err != nil {
			break
		}
		b.Deltas[i].Ciphertext = d.blob(MaxBlobLen)
		if d.err == nil && sha256.Sum256(b.Deltas[i].Ciphertext) != hashes[i] {
			d.fail(ErrBatchHash)
		}
	}
	if err := d.finish("batch"); err != nil {
		return nil, err
	}
	return b, nil
}

// SealBatch seals deltas (all for the same tenant, stream, epoch and
// author as hdr) under key and signs the batch. hdr supplies every field
// but Deltas and Sig.
func SealBatch(hdr Batch, key *fcrypto.Key, signer *fcrypto.SigningKey, deltas []*Delta) (*Batch, error) {
	b := hdr
	b.Deltas = make([]SealedDelta, 0, len(deltas))
	b.Sig = nil
	for _, dl := range deltas {
		if dl.Tenant != b.Tenant || dl.Stream != b.Stream || dl.Epoch != b.Epoch || dl.Author != b.Author {
			return nil, fmt.Errorf("seal batch: %w", ErrBatchMismatch)
		}
		plain, err := dl.Marshal()
		if err != nil {
			return nil, err
		}
		ct, err := fcrypto.Seal(key, DeltaAD(b.Tenant, b.Stream, b.Epoch, dl.ID), plain)
		if err != nil {
			return nil, fmt.Errorf("seal delta %s: %w", dl.ID, err)
		}
		b.Deltas = append(b.Deltas, SealedDelta{ID: dl.ID, Ciphertext: ct})
	}
	if err := b.Sign(signer); err != nil {
		return nil, err
	}
	return &b, nil
}

// OpenBatch verifies the batch signature against the author's key, then
// opens every delta with key. It returns nothing unless the signature, every
// AEAD tag and every delta's binding to the batch check out.
func OpenBatch(b *Batch, key *fcrypto.Key, author fcrypto.PublicKey) ([]*Delta, error) {
	if err := b.Verify(author); err != nil {
		return nil, err
	}
	out := make([]*Delta, 0, len(b.Deltas))
	for _, sd := range b.Deltas {
		plain, err := fcrypto.Open(key, DeltaAD(b.Tenant, b.Stream, b.Epoch, sd.ID), sd.Ciphertext)
		if err != nil {
			return nil, fmt.Errorf("open delta %s: %w", sd.ID, err)
		}
		dl, err := UnmarshalDelta(plain)
		if err != nil {
			return nil, fmt.Errorf("open delta %s: %w", sd.ID, err)
		}
		if dl.ID != sd.ID || dl.Tenant != b.Tenant || dl.Stream != b.Stream || dl.Epoch != b.Epoch || dl.Author != b.Author {
			return nil, fmt.Errorf("open delta %s: %w", sd.ID, ErrBatchMismatch)
		}
		out = append(out, dl)
	}
	return out, nil
}
