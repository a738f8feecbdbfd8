package syncproto

import (
	"encoding/hex"
	"errors"
	"testing"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/stretchr/testify/require"
)

// auditStream creates the org's audit stream in epoch 1, for the
// coordinator only.
func (o *baseOrg) auditStream() StreamID {
	o.tb.Helper()
	a := o.stream(o.c, "audit", StreamAudit)
	o.epoch(o.c, a, 1, o.c)
	return a
}

// A worker device seals its audit entries to the coordinator laptops: the
// coordinator opens them; the worker's own device, another worker's
// device and the epoch key (which a worker never holds) do not.
func TestAuditBatchSealedToCoordinators(t *testing.T) {
	o := newBaseOrg(t).withDev2()
	a := o.auditStream()
	dl := testDelta(o.tenant, a, 1, o.d1.id, "reveal", []byte("reveal"))
	hdr := Batch{Tenant: o.tenant, Stream: a, Epoch: 1, Author: o.d1.id, Counter: 1, ChainHead: o.head(), CreatedMS: o.now}
	b, err := SealAuditBatch(hdr, []fcrypto.BoxRecipient{o.c.box.Recipient()}, o.d1.sign, []*Delta{dl})
	require.NoError(t, err)
	raw, err := b.Marshal()
	require.NoError(t, err)
	b, err = UnmarshalBatch(raw)
	require.NoError(t, err)

	got, err := OpenAuditBatch(b, o.c.box, o.d1.sign.Public())
	require.NoError(t, err)
	require.Len(t, got, 1)
	if got[0].ID != dl.ID || got[0].Author != o.d1.id {
		t.Errorf("got delta %s by %s, want %s by %s", got[0].ID, got[0].Author, dl.ID, o.d1.id)
	}
	for name, id := range map[string]*fcrypto.BoxIdentity{"author": o.d1.box, "other worker": o.d2.box} {
		if _, err := OpenAuditBatch(b, id, o.d1.sign.Public()); !errors.Is(err, fcrypto.ErrNoIdentityMatch) {
			t.Errorf("%s: got %v, want ErrNoIdentityMatch", name, err)
		}
	}
	if _, err := OpenBatch(b, testEpochKey(t, a, 1), o.d1.sign.Public()); err == nil {
		t.Error("got an audit entry opened with the epoch key, want an error")
	}
	// Wrong author key: the signature fails before anything is opened.
	if _, err := OpenAuditBatch(b, o.c.box, o.d2.sign.Public()); err == nil {
		t.Error("got an audit batch opened under another author's key, want an error")
	}
	// A delta that names another epoch than its batch is refused.
	other := testDelta(o.tenant, a, 2, o.d1.id, "moved", []byte("x"))
	if _, err := SealAuditBatch(hdr, []fcrypto.BoxRecipient{o.c.box.Recipient()}, o.d1.sign, []*Delta{other}); !errors.Is(err, ErrBatchMismatch) {
		t.Errorf("seal mismatched delta: got %v, want ErrBatchMismatch", err)
	}
	// A ciphertext from another batch (re-signed by the author, so the
	// batch verifies) is refused when its header disagrees.
	moved := *b
	moved.Deltas = []SealedDelta{{ID: testDeltaID("elsewhere"), Ciphertext: b.Deltas[0].Ciphertext}}
	require.NoError(t, moved.Sign(o.d1.sign))
	if _, err := OpenAuditBatch(&moved, o.c.box, o.d1.sign.Public()); !errors.Is(err, ErrBatchMismatch) {
		t.Errorf("moved ciphertext: got %v, want ErrBatchMismatch", err)
	}
	if _, err := SealAuditBatch(hdr, nil, o.d1.sign, []*Delta{dl}); err == nil {
		t.Error("got an audit batch sealed to nobody, want an error")
	}
}

// TestAuditLinkVector pins the link function: a change breaks every
// signed checkpoint ever made.
func TestAuditLinkVector(t *testing.T) {
	l1 := AuditLink(Hash{}, 1, testHash("batch 1"))
	l2 := AuditLink(l1, 2, testHash("batch 2"))
	for _, tc := range []struct {
		got  Hash
		want string
	}{
		{l1, auditLinkVector1},
		{l2, auditLinkVector2},
	} {
		if hex.EncodeToString(tc.got[:]) != tc.want {
			t.Errorf("got link %x, want %s", tc.got[:], tc.want)
		}
	}
	if AuditLink(Hash{}, 2, testHash("batch 1")) == l1 {
		t.Error("got the same link at another sequence number")
	}
	if AuditLink(l1, 2, testHash("batch 1")) == l2 {
		t.Error("got the same link for another batch")
	}
}

// The vectors were computed independently of this package, from the
// definition: SHA-256 over the length-prefixed label, previous link,
// big-endian sequence number and batch hash.
const (
	auditLinkVector1 = "9a8a020edafa9711c59bb7f86d5992c61eb3fa63769d2f0a18735ed6a5e56d26"
	auditLinkVector2 = "97b64e35948ddf5494e157d82eec8432079f143c599e086e07bd1c62ab4f44f0"
)
