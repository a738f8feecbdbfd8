package syncproto

import (
	"encoding/binary"
	"fmt"

	fcrypto "github.com/fristed/fristed/crypto"
)

// The audit log is a stream of kind StreamAudit that every active device
// appends to and only the devices of its current epoch - the coordinator
// laptops - read. Its deltas are not sealed under the epoch key (a worker
// laptop must not hold it, or it could read the others' entries): each is
// age-encrypted with fcrypto.SealTo to the box recipients of the devices
// that the batch's epoch statement names. The batch itself is signed like
// any other, so the author, its per-author counter and previous-batch hash
// are authenticated; the relay's receipts order the batches.
//
// Over that order runs one hash chain, the log's links: link(0) is zero and
// link(n) = AuditLink(link(n-1), n, hash of batch n). A coordinator signs
// an AuditCheckpoint statement into the admin chain naming the newest
// sequence number it has checked and its link, so the admin chain (held by
// the relay and every device, hash-linked and append-only) carries a
// signed commitment to the whole log up to it.

// The recipient. Entries sealed to the box keys of the coordinator laptops
// of the moment cannot be opened by a coordinator laptop enrolled later,
// nor by one made with org recover. So each audit epoch also has a
// recipient of its own: the hybrid age identity derived from the epoch's
// key (AuditIdentity), whose public half a coordinator names in a signed
// AuditRecipient statement right after starting the epoch. Its secret
// travels as the epoch key does - wrapped to the epoch's coordinator
// laptops, and to later ones when they are given the older keys - and a
// worker laptop, which never holds an audit epoch key, can seal to it but
// open nothing. Until the statement exists (and for entries written before
// it existed) entries are sealed to the epoch's devices as before; both
// kinds open and verify.

// AuditIdentity derives an audit epoch's identity from its key.
func AuditIdentity(k *fcrypto.Key, tenant TenantID, stream StreamID, e Epoch) (*fcrypto.BoxIdentity, error) {
	return k.DeriveBoxIdentity(append([]byte("fristed/v1/audit-recipient\x00"), EpochKeyContext(tenant, stream, e)...))
}

// AuditLinkLabel separates audit log links from every other hash.
const AuditLinkLabel = "fristed/v1/audit-link"

// AuditLink returns link(seq) from link(seq-1) and the hash of batch seq.
func AuditLink(prev Hash, seq Seq, batch Hash) Hash {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(seq))
	return Hash(fcrypto.LabeledHash(AuditLinkLabel, prev[:], n[:], batch[:]))
}

// SealAuditBatch seals deltas for an audit stream to recipients (the box
// keys of the devices of epoch hdr.Epoch) and signs the batch.
func SealAuditBatch(hdr Batch, recipients []fcrypto.BoxRecipient, signer *fcrypto.SigningKey, deltas []*Delta) (*Batch, error) {
	b := hdr
	b.Deltas = make([]SealedDelta, 0, len(deltas))
	b.Sig = nil
	for _, dl := range deltas {
		if dl.Tenant != b.Tenant || dl.Stream != b.Stream || dl.Epoch != b.Epoch || dl.Author != b.Author {
			return nil, fmt.Errorf("seal audit batch: %w", ErrBatchMismatch)
		}
		plain, err := dl.Marshal()
		if err != nil {
			return nil, err
		}
		ct, err := fcrypto.SealTo(plain, recipients...)
		if err != nil {
			return nil, fmt.Errorf("seal audit entry %s: %w", dl.ID, err)
		}
		b.Deltas = append(b.Deltas, SealedDelta{ID: dl.ID, Ciphertext: ct})
	}
	if err := b.Sign(signer); err != nil {
		return nil, err
	}
	return &b, nil
}

// OpenAuditBatch verifies an audit batch's signature against the author's
// key, then opens every delta with id. Age has no associated data: what
// binds a delta to its place is the batch signature over its ciphertext
// hash and the delta's own header, which must name the batch's tenant,
// stream, epoch, author and the delta's id.
func OpenAuditBatch(b *Batch, id *fcrypto.BoxIdentity, author fcrypto.PublicKey) ([]*Delta, error) {
	if err := b.Verify(author); err != nil {
		return nil, err
	}
	out := make([]*Delta, 0, len(b.Deltas))
	for _, sd := range b.Deltas {
		plain, err := fcrypto.OpenWith(sd.Ciphertext, id)
		if err != nil {
			return nil, fmt.Errorf("open audit entry %s: %w", sd.ID, err)
		}
		dl, err := UnmarshalDelta(plain)
		if err != nil {
			return nil, fmt.Errorf("open audit entry %s: %w", sd.ID, err)
		}
		if dl.ID != sd.ID || dl.Tenant != b.Tenant || dl.Stream != b.Stream || dl.Epoch != b.Epoch || dl.Author != b.Author {
			return nil, fmt.Errorf("open audit entry %s: %w", sd.ID, ErrBatchMismatch)
		}
		out = append(out, dl)
	}
	return out, nil
}

// checkAuditBatch is CheckBatch for an audit stream: any active device
// appends, under the current epoch only (its devices are the recipients
// the entries are sealed to; an entry sealed to a superseded set could be
// readable by a revoked coordinator laptop).
func checkAuditBatch(str *StreamInfo, e Epoch) error {
	cur := str.Current()
	switch {
	case e == cur.Epoch:
		return nil
	case e > cur.Epoch || str.Epoch(e) == nil:
		return ErrUnknownEpoch
	}
	return ErrEpochSuperseded
}
