package syncproto

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/stretchr/testify/require"
)

func TestSealOpenBatch(t *testing.T) {
	o := newBaseOrg(t)
	key := testEpochKey(t, o.s, 1)
	var ds []*Delta
	for _, n := range []string{"a", "b", "c"} {
		ds = append(ds, testDelta(o.tenant, o.s, 1, o.d1.id, n, bytes.Repeat([]byte(n), 1000)))
	}
	hdr := Batch{Tenant: o.tenant, Stream: o.s, Epoch: 1, Author: o.d1.id, Counter: 1, ChainHead: o.head(), CreatedMS: 9}
	b, err := SealBatch(hdr, key, o.d1.sign, ds)
	require.NoError(t, err)
	raw := mustMarshalBatch(t, b)
	got, err := UnmarshalBatch(raw)
	require.NoError(t, err)
	opened, err := OpenBatch(got, key, o.d1.sign.Public())
	require.NoError(t, err)
	require.Equal(t, ds, opened)
	for i, d := range ds {
		// Sealed sizes are padded: the relay learns the Padme bucket only.
		plain, err := d.Marshal()
		require.NoError(t, err)
		require.Equal(t, fcrypto.SealedSize(len(plain)), len(got.Deltas[i].Ciphertext))
	}
	h1, err := b.Hash()
	require.NoError(t, err)
	h2, err := got.Hash()
	require.NoError(t, err)
	require.Equal(t, h1, h2)
	require.Equal(t, Hash(sha256.Sum256(raw[:batchSigOffset(raw)])), h1, "the batch hash is the hash of the signed part")

	// Sealing twice gives other ciphertexts (fresh nonces), so another hash.
	b2, err := SealBatch(hdr, key, o.d1.sign, ds)
	require.NoError(t, err)
	h3, err := b2.Hash()
	require.NoError(t, err)
	require.NotEqual(t, h1, h3)
}

// TestBatchHashFollowsFields: the hash names the batch as it is now, so
// it always matches what Verify checks.
func TestBatchHashFollowsFields(t *testing.T) {
	o := newBaseOrg(t)
	raw := mustMarshalBatch(t, o.testBatch(o.d1, o.s, 1, o.head(), "a", "b"))
	mutations := []struct {
		name string
		f    func(b *Batch)
	}{
		{"counter", func(b *Batch) { b.Counter++ }},
		{"epoch", func(b *Batch) { b.Epoch++ }},
		{"prev", func(b *Batch) { b.Prev[0] ^= 1 }},
		{"chain head", func(b *Batch) { b.ChainHead.Pos++ }},
		{"created", func(b *Batch) { b.CreatedMS++ }},
		{"a delta dropped", func(b *Batch) { b.Deltas = b.Deltas[:1] }},
		{"a ciphertext", func(b *Batch) { b.Deltas[1].Ciphertext = append([]byte{}, b.Deltas[0].Ciphertext...) }},
	}
	for _, m := range mutations {
		b, err := UnmarshalBatch(raw)
		require.NoError(t, err)
		before, err := b.Hash()
		require.NoError(t, err)
		m.f(b)
		after, err := b.Hash()
		require.NoError(t, err)
		body, err := b.signedBody()
		require.NoError(t, err)
		if after != Hash(sha256.Sum256(body)) || after == before {
			t.Errorf("%s changed: got hash %s (was %s), want the hash of the new signed body", m.name, after, before)
		}
		if err := b.Verify(o.d1.sign.Public()); !errors.Is(err, fcrypto.ErrBadSignature) {
			t.Errorf("%s changed: Verify got %v, want %v", m.name, err, fcrypto.ErrBadSignature)
		}
	}
}

// TestOpenBatchRefuses: every way a batch can be wrong gives its own error
// and releases nothing.
func TestOpenBatchRefuses(t *testing.T) {
	o := newBaseOrg(t)
	key := testEpochKey(t, o.s, 1)
	good := func() *Batch { return o.testBatch(o.d1, o.s, 1, o.head(), "a", "b", "c") }
	other := o.testBatch(o.d1, o.s, 1, o.head(), "x")
	theirs := o.testBatch(o.c, o.s, 1, o.head(), "y")
	resign := func(b *Batch) *Batch { require.NoError(t, b.Sign(o.d1.sign)); return b }
	tests := []struct {
		name   string
		batch  func() *Batch
		key    *fcrypto.Key
		author fcrypto.PublicKey
		want   error
	}{
		{"missing delta", func() *Batch { b := good(); b.Deltas = append(b.Deltas[:1], b.Deltas[2]); return b }, key, o.d1.sign.Public(), fcrypto.ErrBadSignature},
		{"delta added", func() *Batch { b := good(); b.Deltas = append(b.Deltas, other.Deltas[0]); return b }, key, o.d1.sign.Public(), fcrypto.ErrBadSignature},
		{"deltas reordered", func() *Batch { b := good(); b.Deltas[0], b.Deltas[1] = b.Deltas[1], b.Deltas[0]; return b }, key, o.d1.sign.Public(), fcrypto.ErrBadSignature},
		{"ciphertext swapped", func() *Batch {
			b := good()
			b.Deltas[0].Ciphertext, b.Deltas[1].Ciphertext = b.Deltas[1].Ciphertext, b.Deltas[0].Ciphertext
			return b
		}, key, o.d1.sign.Public(), fcrypto.ErrBadSignature},
		{"another author's key", good, key, o.c.sign.Public(), fcrypto.ErrBadSignature},
		{"unsigned", func() *Batch { b := good(); b.Sig = nil; return b }, key, o.d1.sign.Public(), fcrypto.ErrBadSignature},
		{"wrong epoch key", good, testEpochKey(t, o.s, 2), o.d1.sign.Public(), fcrypto.ErrSealAuth},
		{"ciphertext swapped, signed by the author", func() *Batch {
			b := good()
			b.Deltas[0].Ciphertext, b.Deltas[1].Ciphertext = b.Deltas[1].Ciphertext, b.Deltas[0].Ciphertext
			return resign(b)
		}, key, o.d1.sign.Public(), fcrypto.ErrSealAuth},
		{"ciphertext bit flipped, signed by the author", func() *Batch {
			b := good()
			b.Deltas[2].Ciphertext[40] ^= 1
			return resign(b)
		}, key, o.d1.sign.Public(), fcrypto.ErrSealAuth},
		{"another device's delta, signed by the author", func() *Batch {
			b := good()
			b.Deltas[1] = theirs.Deltas[0]
			return resign(b)
		}, key, o.d1.sign.Public(), ErrBatchMismatch},
		{"delta moved to another epoch, signed by the author", func() *Batch {
			b := good()
			b.Epoch = 2
			return resign(b)
		}, key, o.d1.sign.Public(), fcrypto.ErrSealAuth},
		{"duplicate delta", func() *Batch { b := good(); b.Deltas[1] = b.Deltas[0]; return b }, key, o.d1.sign.Public(), ErrDuplicateDelta},
		{"zero counter", func() *Batch { b := good(); b.Counter = 0; return b }, key, o.d1.sign.Public(), ErrMalformed},
		{"no deltas", func() *Batch { b := good(); b.Deltas = nil; return b }, key, o.d1.sign.Public(), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := OpenBatch(tt.batch(), tt.key, tt.author)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			require.Nil(t, ds)
		})
	}
}

// TestBatchMissingDeltaOnTheWire: a relay that drops a delta from a batch
// cannot make it verify, whichever parts it drops.
func TestBatchMissingDeltaOnTheWire(t *testing.T) {
	o := newBaseOrg(t)
	b := o.testBatch(o.d1, o.s, 1, o.head(), "a", "b", "c")
	raw := mustMarshalBatch(t, b)
	entry := func(i int) int { return batchOffEntries + i*batchEntrySize }
	dropEntry := append(clone(raw[:entry(1)]), raw[entry(2):]...)
	dropEntry[batchOffCount+3] = 2
	blob1 := batchSigOffset(raw) + fcrypto.SignatureSize + 4 + len(b.Deltas[0].Ciphertext)
	blob2 := blob1 + 4 + len(b.Deltas[1].Ciphertext)
	tests := []struct {
		name string
		raw  []byte
		want error
	}{
		{"last ciphertext cut off", raw[:blob2], ErrTruncated},
		{"middle ciphertext cut out", append(clone(raw[:blob1]), raw[blob2:]...), ErrBatchHash},
		{"entry and count dropped, ciphertexts kept", dropEntry, ErrBatchHash},
	}
	for _, tt := range tests {
		got, err := UnmarshalBatch(tt.raw)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
		require.Nil(t, got)
	}
	// Dropping an entry and its ciphertext decodes, but fails the signature.
	short := *b
	short.Deltas = []SealedDelta{b.Deltas[0], b.Deltas[2]}
	got, err := UnmarshalBatch(mustMarshalBatch(t, &short))
	require.NoError(t, err)
	if _, err := OpenBatch(got, testEpochKey(t, o.s, 1), o.d1.sign.Public()); !errors.Is(err, fcrypto.ErrBadSignature) {
		t.Errorf("entry and ciphertext dropped: got %v, want %v", err, fcrypto.ErrBadSignature)
	}
}

func TestSealBatchRefuses(t *testing.T) {
	o := newBaseOrg(t)
	key := testEpochKey(t, o.s, 1)
	hdr := Batch{Tenant: o.tenant, Stream: o.s, Epoch: 1, Author: o.d1.id, Counter: 1}
	mk := func(f func(d *Delta)) []*Delta {
		d := testDelta(o.tenant, o.s, 1, o.d1.id, "a", []byte("x"))
		f(d)
		return []*Delta{d}
	}
	tests := []struct {
		name   string
		hdr    Batch
		deltas []*Delta
		want   error
	}{
		{"delta of another stream", hdr, mk(func(d *Delta) { d.Stream = testStreamID("other") }), ErrBatchMismatch},
		{"delta of another epoch", hdr, mk(func(d *Delta) { d.Epoch = 2 }), ErrBatchMismatch},
		{"delta of another author", hdr, mk(func(d *Delta) { d.Author = o.c.id }), ErrBatchMismatch},
		{"delta of another tenant", hdr, mk(func(d *Delta) { d.Tenant = testTenantID("other") }), ErrBatchMismatch},
		{"malformed delta", hdr, mk(func(d *Delta) { d.Ops = nil }), ErrMalformed},
		{"no deltas", hdr, nil, ErrMalformed},
		{"zero counter", Batch{Tenant: o.tenant, Stream: o.s, Epoch: 1, Author: o.d1.id}, mk(func(*Delta) {}), ErrMalformed},
		{"same delta twice", hdr, append(mk(func(*Delta) {}), mk(func(*Delta) {})...), ErrDuplicateDelta},
	}
	for _, tt := range tests {
		b, err := SealBatch(tt.hdr, key, o.d1.sign, tt.deltas)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
		require.Nil(t, b)
	}
	unsigned := Batch{Tenant: o.tenant, Stream: o.s, Epoch: 1, Author: o.d1.id, Counter: 1, Deltas: []SealedDelta{{ID: testDeltaID("a")}}}
	if _, err := unsigned.Marshal(); !errors.Is(err, ErrMalformed) {
		t.Errorf("unsigned batch: got %v, want %v", err, ErrMalformed)
	}
}

// TestCheckBatch: the relay's acceptance rule for a batch's epoch.
func TestCheckBatch(t *testing.T) {
	tests := []struct {
		name  string
		build func(o *baseOrg) (d *testDevice, s StreamID, e Epoch, writtenAt ChainPos)
		want  error
	}{
		{"current epoch", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			return o.d1, o.s, 1, o.head().Pos
		}, nil},
		{"coordinator in the current epoch", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			return o.c, o.s, 1, o.head().Pos
		}, nil},
		{"current epoch, written under an old head", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			return o.d1, o.s, 1, 0
		}, nil},
		{"superseded epoch", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			h := o.head().Pos
			o.epoch(o.c, o.s, 2, o.c, o.d1)
			return o.d1, o.s, 1, h
		}, ErrEpochSuperseded},
		{"removed by unassignment, written before", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			h := o.head().Pos
			o.add(as(o.c), &Unassigned{Stream: o.s, Worker: o.w1})
			o.epoch(o.c, o.s, 2, o.c)
			return o.d1, o.s, 1, h
		}, nil},
		{"removed by unassignment, written after", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			o.add(as(o.c), &Unassigned{Stream: o.s, Worker: o.w1})
			p := o.epoch(o.c, o.s, 2, o.c)
			return o.d1, o.s, 1, p
		}, ErrEpochSuperseded},
		{"removed, written before, but under an epoch it knew was superseded", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			o.epoch(o.c, o.s, 2, o.c, o.d1)
			h := o.head().Pos
			o.add(as(o.c), &Unassigned{Stream: o.s, Worker: o.w1})
			o.epoch(o.c, o.s, 3, o.c)
			return o.d1, o.s, 1, h
		}, ErrEpochSuperseded},
		{"removed, written before, under the epoch it last had", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			o.epoch(o.c, o.s, 2, o.c, o.d1)
			h := o.head().Pos
			o.add(as(o.c), &Unassigned{Stream: o.s, Worker: o.w1})
			o.epoch(o.c, o.s, 3, o.c)
			return o.d1, o.s, 2, h
		}, nil},
		{"removed, written before, but a holder of the old key is revoked", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			d1b := o.enrol(o.c, "dev1b", o.w1)
			o.epoch(o.c, o.s, 2, o.c, o.d1, d1b)
			h := o.head().Pos
			o.add(as(o.c), &DeviceRevoked{Device: d1b.id})
			o.add(as(o.c), &Unassigned{Stream: o.s, Worker: o.w1})
			o.epoch(o.c, o.s, 3, o.c)
			return o.d1, o.s, 2, h
		}, ErrEpochSuperseded},
		{"removed, then added back", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			h := o.head().Pos
			o.epoch(o.c, o.s, 2, o.c)
			o.epoch(o.c, o.s, 3, o.c, o.d1)
			return o.d1, o.s, 1, h
		}, ErrEpochSuperseded},
		{"revoked device", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			h := o.head().Pos
			o.add(as(o.c), &DeviceRevoked{Device: o.d1.id})
			return o.d1, o.s, 1, h
		}, ErrDeviceRevoked},
		{"revoked device, old epoch, written before its removal", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			h := o.head().Pos
			o.add(as(o.c), &DeviceRevoked{Device: o.d1.id})
			o.epoch(o.c, o.s, 2, o.c)
			return o.d1, o.s, 1, h
		}, ErrDeviceRevoked},
		{"device not in the epoch", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			o.withDev2()
			return o.d2, o.s, 1, o.head().Pos
		}, ErrNotAssigned},
		{"device not in the old epoch", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			o.withDev2()
			h := o.head().Pos
			o.epoch(o.c, o.s, 2, o.c, o.d1, o.d2)
			return o.d2, o.s, 1, h
		}, ErrNotAssigned},
		{"epoch from the future", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			return o.d1, o.s, 2, o.head().Pos
		}, ErrUnknownEpoch},
		{"epoch 0", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			return o.d1, o.s, 0, o.head().Pos
		}, ErrUnknownEpoch},
		{"epoch in a gap", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			o.epoch(o.c, o.s, 5, o.c, o.d1)
			return o.d1, o.s, 3, o.head().Pos
		}, ErrUnknownEpoch},
		{"stream without epochs", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			s := o.stream(o.c, "s2", StreamResident)
			return o.d1, s, 1, o.head().Pos
		}, ErrNotAssigned},
		{"unknown stream", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			return o.d1, testStreamID("nowhere"), 1, o.head().Pos
		}, ErrNotAssigned},
		{"purged stream", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			o.closeAndPurge(o.s)
			return o.d1, o.s, 1, o.head().Pos
		}, ErrNotAssigned},
		{"unknown device", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			return newTestDevice(t, "mallory"), o.s, 1, o.head().Pos
		}, ErrUnknownSigner},
		{"audit log: a worker device outside the epoch appends", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			a := o.auditStream()
			return o.d1, a, 1, o.head().Pos
		}, nil},
		{"audit log: superseded epoch", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			a := o.auditStream()
			o.epoch(o.c, a, 2, o.c)
			return o.d1, a, 1, o.head().Pos
		}, ErrEpochSuperseded},
		{"audit log: unknown epoch", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			a := o.auditStream()
			return o.d1, a, 2, o.head().Pos
		}, ErrUnknownEpoch},
		{"audit log: revoked device", func(o *baseOrg) (*testDevice, StreamID, Epoch, ChainPos) {
			a := o.auditStream()
			o.add(as(o.c), &DeviceRevoked{Device: o.d1.id})
			return o.d1, a, 1, o.head().Pos
		}, ErrDeviceRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newBaseOrg(t)
			d, s, e, at := tt.build(o)
			err := o.chain.State().CheckBatch(d.id, s, e, at)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if tt.want == nil {
				return
			}
			wantCode := map[error]Code{ErrEpochSuperseded: CodeEpochSuperseded, ErrDeviceRevoked: CodeDeviceRevoked,
				ErrNotAssigned: CodeNotAssigned, ErrUnknownEpoch: CodeUnknownEpoch, ErrUnknownSigner: CodeInvalidStatement}[tt.want]
			if got := CodeOf(err); got != wantCode {
				t.Errorf("got code %s, want %s", got, wantCode)
			}
		})
	}
}
