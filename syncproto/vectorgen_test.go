package syncproto

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/cryptotest"

	"filippo.io/age"
	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/stretchr/testify/require"
)

// The generator for testdata. Keys and ids derive from names (helpers_test.go);
// what Seal and age draw from crypto/rand comes from a seed derived from the
// vector's name, reset before each vector, so one vector's randomness never
// shifts another's.

// genVector is a vector as the generator makes it.
type genVector struct {
	name     string
	format   string
	expect   string
	released []byte // what a success releases; hashed into the payload header
	h        map[string]string
	comments []string
	msgs     [][]byte
}

// encode writes the file: header keys in headerKeys order, a blank line,
// one message per line in hex.
func (v *genVector) encode() []byte {
	var b bytes.Buffer
	line := func(k, val string) { b.WriteString(k + ": " + val + "\n") }
	line("format", v.format)
	line("expect", v.expect)
	if v.expect == "success" && formats[v.format].releases {
		sum := sha256.Sum256(v.released)
		line("payload", hex.EncodeToString(sum[:]))
	}
	for _, k := range headerKeys {
		if val, ok := v.h[k]; ok {
			line(k, val)
		}
	}
	for _, c := range v.comments {
		line("comment", c)
	}
	b.WriteString("\n")
	for _, m := range v.msgs {
		b.WriteString(hex.EncodeToString(m) + "\n")
	}
	return b.Bytes()
}

type vectorGen struct {
	t  *testing.T
	vs []*genVector
}

// vec makes one vector: it resets the randomness, then calls make.
func (g *vectorGen) vec(name string, make func() *genVector) {
	g.t.Helper()
	sum := sha256.Sum256([]byte(name))
	cryptotest.SetGlobalRandom(g.t, binary.BigEndian.Uint64(sum[:8]))
	v := make()
	v.name = name
	for _, o := range g.vs {
		require.NotEqual(g.t, o.name, name, "vector name repeated")
	}
	g.vs = append(g.vs, v)
}

func generateVectors(t *testing.T) []*genVector {
	g := &vectorGen{t: t}
	g.deltas()
	g.sealedDeltas()
	g.batches()
	g.receipts()
	g.statements()
	g.chains()
	g.acceptance()
	g.enrolments()
	g.enrolNames()
	g.wrappedKeys()
	g.snapshots()
	g.snapshotContents()
	g.authProofs()
	return g.vs
}

func TestWriteVectors(t *testing.T) {
	vs := generateVectors(t)
	if os.Getenv("FRISTED_WRITE_VECTORS") == "1" {
		// Replace the vector files; leave directories (testdata/fuzz) alone.
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		old, err := os.ReadDir("testdata")
		require.NoError(t, err)
		for _, e := range old {
			if !e.IsDir() {
				require.NoError(t, os.Remove(filepath.Join("testdata", e.Name())))
			}
		}
		for _, v := range vs {
			require.NoError(t, os.WriteFile(filepath.Join("testdata", v.name), v.encode(), 0o644))
		}
		t.Logf("wrote %d vectors", len(vs))
		return
	}
	// Check mode: the committed corpus is what the generator makes.
	committed := map[string][]byte{}
	entries, err := fs.ReadDir(testdata, "testdata")
	require.NoError(t, err)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := fs.ReadFile(testdata, "testdata/"+e.Name())
		require.NoError(t, err)
		committed[e.Name()] = b
	}
	for _, v := range vs {
		got, ok := committed[v.name]
		if !ok {
			t.Errorf("vector %s: generated but not committed", v.name)
			continue
		}
		delete(committed, v.name)
		want := v.encode()
		if formats[v.format].ageBased {
			got, _, _ = bytes.Cut(got, []byte("\n\n"))
			want, _, _ = bytes.Cut(want, []byte("\n\n"))
		}
		if !bytes.Equal(got, want) {
			t.Errorf("vector %s: committed file differs from the generator's", v.name)
		}
	}
	for name := range committed {
		t.Errorf("vector %s: committed but not generated", name)
	}
}

// Byte offsets of the fixed-layout prefixes (doc.go).
const (
	offTenant = 2

	// delta
	deltaOffOps = 86

	// batch
	batchOffEpoch   = 34
	batchOffCounter = 54
	batchOffCount   = 142
	batchOffEntries = 146
	batchEntrySize  = 16 + 32

	// statement
	stmtOffPos    = 18
	stmtOffSigner = 58
	stmtOffDevice = 59
	stmtOffType   = 83
	stmtOffBody   = 84
)

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// withVersion returns m with its version byte set to v.
func withVersion(m []byte, v byte) []byte { m = clone(m); m[0] = v; return m }

// withType returns m with its type byte set to t.
func withType(m []byte, t MsgType) []byte { m = clone(m); m[1] = byte(t); return m }

// resign replaces the trailing signature of a statement-shaped message
// (signed part, then signature) with one over the signed part under label.
func resign(tb testing.TB, m []byte, k *fcrypto.SigningKey, label fcrypto.Label) []byte {
	body := clone(m[:len(m)-fcrypto.SignatureSize])
	sig, err := k.Sign(label, body)
	require.NoError(tb, err)
	return append(body, sig...)
}

// batchSigOffset is where a marshalled batch's signature starts.
func batchSigOffset(m []byte) int {
	n := int(binary.BigEndian.Uint32(m[batchOffCount:]))
	return batchOffEntries + n*batchEntrySize
}

// resignBatch re-signs a marshalled batch under label.
func resignBatch(tb testing.TB, m []byte, k *fcrypto.SigningKey, label fcrypto.Label) []byte {
	off := batchSigOffset(m)
	sig, err := k.Sign(label, m[:off])
	require.NoError(tb, err)
	out := clone(m)
	copy(out[off:], sig)
	return out
}

// rawDelta encodes d without the encoder's checks, for deltas that
// Marshal would refuse.
func rawDelta(d *Delta, count uint32) []byte {
	e := &enc{}
	e.header(MsgDelta)
	e.raw(d.Tenant[:])
	e.raw(d.Stream[:])
	e.u32(uint32(d.Epoch))
	e.raw(d.Author[:])
	e.raw(d.ID[:])
	e.u64(d.Clock.WallMS)
	e.u32(d.Clock.Logical)
	e.u32(count)
	for _, op := range d.Ops {
		e.u8(byte(op.Type))
		e.u16(uint16(len(op.Kind)))
		e.raw([]byte(op.Kind))
		e.raw(op.Record[:])
		e.str(op.Field)
		e.blob(op.Value)
	}
	return e.b
}

func (g *vectorGen) deltas() {
	t := g.t
	tenant, s, author := testTenantID("base"), testStreamID("s"), newTestDevice(t, "dev1").id
	base := func() *Delta {
		d := testDelta(tenant, s, 1, author, "delta vector", []byte("Mina"))
		d.Ops = append(d.Ops, Op{Type: OpRemove, Kind: "goal", Record: testDeltaID("old goal")})
		return d
	}
	ok := func() []byte {
		raw, err := base().Marshal()
		require.NoError(t, err)
		return raw
	}
	one := func(expect string, m []byte, comment string) func() *genVector {
		return func() *genVector {
			return &genVector{format: "delta", expect: expect, msgs: [][]byte{m}, comments: []string{comment}}
		}
	}
	g.vec("delta-ok", one("success", ok(), "a set, an add and a remove"))
	g.vec("delta-unknown-version", one("unknown version", withVersion(ok(), 2), "version byte 2"))
	g.vec("delta-wrong-type", one("wrong type", withType(ok(), MsgReceipt), "a delta carrying the receipt type byte"))
	g.vec("delta-truncated", one("truncated", ok()[:len(ok())-1], "last byte of the last value cut"))
	g.vec("delta-trailing", one("trailing bytes", append(ok(), 0), "a zero byte after the delta"))

	noOps := base()
	noOps.Ops = nil
	g.vec("delta-no-ops", one("malformed", rawDelta(noOps, 0), "zero operations"))
	tooMany := base()
	g.vec("delta-too-many-ops", one("malformed", rawDelta(tooMany, MaxOpsPerDelta+1), "op count above the limit"))
	badType := base()
	badType.Ops[0].Type = 4
	g.vec("delta-op-type", one("malformed", rawDelta(badType, 3), "op type 4 is not defined"))
	addField := base()
	addField.Ops[1].Field = "category"
	g.vec("delta-add-with-field", one("malformed", rawDelta(addField, 3), "a field name on an add"))
	setNoField := base()
	setNoField.Ops[0].Field = ""
	g.vec("delta-set-without-field", one("malformed", rawDelta(setNoField, 3), "a set without a field name"))
	noKind := base()
	noKind.Ops[0].Kind = ""
	g.vec("delta-empty-kind", one("malformed", rawDelta(noKind, 3), "an op without a record kind"))
	nul := base()
	nul.Ops[0].Field = "pseudo\x00nym"
	g.vec("delta-nul-field", one("malformed", rawDelta(nul, 3), "a NUL inside a field name"))
	long := base()
	long.Ops[0].Kind = strings.Repeat("k", MaxStringLen+1)
	g.vec("delta-long-kind", one("too large", rawDelta(long, 3), "a kind longer than MaxStringLen"))
}

func (g *vectorGen) sealedDeltas() {
	t := g.t
	tenant, s, s2, author := testTenantID("base"), testStreamID("s"), testStreamID("s2"), newTestDevice(t, "dev1").id
	key := testEpochKey(t, s, 1)
	d := testDelta(tenant, s, 1, author, "sealed vector", []byte("Mina"))
	plain, err := d.Marshal()
	require.NoError(t, err)
	h := func(k *fcrypto.Key, st StreamID, e Epoch) map[string]string {
		return map[string]string{"epoch key": hex.EncodeToString(k.Bytes()), "tenant": tenant.String(),
			"stream": st.String(), "epoch": strconv.Itoa(int(e)), "delta id": d.ID.String()}
	}
	seal := func(ad, p []byte) []byte {
		ct, err := fcrypto.Seal(key, ad, p)
		require.NoError(t, err)
		return ct
	}
	ad := DeltaAD(tenant, s, 1, d.ID)
	v := func(expect string, hdr map[string]string, ct []byte, comment string) func() *genVector {
		return func() *genVector {
			return &genVector{format: "sealed delta", expect: expect, released: plain, h: hdr, msgs: [][]byte{ct}, comments: []string{comment}}
		}
	}
	g.vec("sealed-delta-ok", func() *genVector { return v("success", h(key, s, 1), seal(ad, plain), "")() })
	g.vec("sealed-delta-wrong-key", func() *genVector {
		return v("auth failure", h(testEpochKey(t, s, 2), s, 1), seal(ad, plain), "opened with the next epoch's key")()
	})
	g.vec("sealed-delta-moved-stream", func() *genVector {
		return v("auth failure", h(key, s2, 1), seal(ad, plain), "a delta of stream s presented as one of s2 (the AD binds the stream)")()
	})
	g.vec("sealed-delta-moved-epoch", func() *genVector {
		return v("auth failure", h(key, s, 2), seal(ad, plain), "a delta of epoch 1 presented as one of epoch 2 (the AD binds the epoch)")()
	})
	g.vec("sealed-delta-inner-stream", func() *genVector {
		other := testDelta(tenant, s2, 1, author, "sealed vector", []byte("Mina"))
		p, err := other.Marshal()
		require.NoError(t, err)
		return v("batch mismatch", h(key, s, 1), seal(ad, p), "sealed with stream s's AD, but the delta inside names s2")()
	})
	g.vec("sealed-delta-inner-trailing", func() *genVector {
		return v("trailing bytes", h(key, s, 1), seal(ad, append(clone(plain), 0)), "the delta inside has a byte after it")()
	})
	g.vec("sealed-delta-truncated", func() *genVector {
		return v("truncated", h(key, s, 1), seal(ad, plain)[:20], "shorter than a nonce and a tag")()
	})
	g.vec("sealed-delta-unknown-version", func() *genVector {
		return v("unknown version", h(key, s, 1), withVersion(seal(ad, plain), 2), "sealed box version 2")()
	})
}

// batchFixture is the base org with two batches by dev1 in stream s, epoch
// 1, and what the first releases.
type batchFixture struct {
	o               *baseOrg
	ok, other       *Batch
	okRaw, otherRaw []byte
	plain           []byte
}

func (g *vectorGen) batchFixture() *batchFixture {
	t := g.t
	o := newBaseOrg(t)
	f := &batchFixture{o: o}
	f.ok = o.testBatch(o.d1, o.s, 1, o.head(), "b1", "b2", "b3")
	f.okRaw = mustMarshalBatch(t, f.ok)
	f.other = o.testBatch(o.d1, o.s, 1, o.head(), "c1", "c2")
	f.otherRaw = mustMarshalBatch(t, f.other)
	ds, err := OpenBatch(f.ok, testEpochKey(t, o.s, 1), o.d1.sign.Public())
	require.NoError(t, err)
	for _, d := range ds {
		raw, err := d.Marshal()
		require.NoError(t, err)
		f.plain = append(f.plain, raw...)
	}
	return f
}

func (g *vectorGen) batches() {
	t := g.t
	var f *batchFixture
	hdr := func() map[string]string {
		return map[string]string{"signer": f.o.d1.sign.Public().String(),
			"epoch key": hex.EncodeToString(testEpochKey(t, f.o.s, 1).Bytes())}
	}
	v := func(expect string, m []byte, comment string) *genVector {
		return &genVector{format: "batch", expect: expect, released: f.plain, h: hdr(), msgs: [][]byte{m}, comments: []string{comment}}
	}
	// Each vector seals afresh after the reset, so its bytes are its own.
	mk := func(name, expect, comment string, m func() []byte) {
		g.vec(name, func() *genVector {
			f = g.batchFixture()
			return v(expect, m(), comment)
		})
	}
	blobOffsets := func(m []byte) []int {
		off := batchSigOffset(m) + fcrypto.SignatureSize
		var out []int
		for off < len(m) {
			out = append(out, off)
			off += 4 + int(binary.BigEndian.Uint32(m[off:]))
		}
		return out
	}
	mk("batch-ok", "success", "three deltas by dev1 in epoch 1", func() []byte { return f.okRaw })
	mk("batch-signed-as-auth", "bad signature", "the author's signature over the batch, made under the auth label", func() []byte {
		return resignBatch(t, f.okRaw, f.o.d1.sign, fcrypto.LabelAuth)
	})
	mk("batch-signed-as-statement", "bad signature", "the author's signature over the batch, made under the statement label", func() []byte {
		return resignBatch(t, f.okRaw, f.o.d1.sign, fcrypto.LabelStatement)
	})
	mk("batch-forged-author", "bad signature", "names dev1 as author, signed by another key", func() []byte {
		return resignBatch(t, f.okRaw, newTestDevice(t, "mallory").sign, fcrypto.LabelBatch)
	})
	mk("batch-missing-delta", "bad signature", "the relay dropped the second delta: its entry, its ciphertext, and one from the count", func() []byte {
		b := *f.ok
		b.Deltas = []SealedDelta{f.ok.Deltas[0], f.ok.Deltas[2]}
		body, err := b.signedBody()
		require.NoError(t, err)
		m := append(body, f.ok.Sig...)
		for _, sd := range b.Deltas {
			m = binary.BigEndian.AppendUint32(m, uint32(len(sd.Ciphertext)))
			m = append(m, sd.Ciphertext...)
		}
		return m
	})
	mk("batch-missing-ciphertext", "truncated", "the relay dropped the last ciphertext", func() []byte {
		offs := blobOffsets(f.okRaw)
		return clone(f.okRaw[:offs[len(offs)-1]])
	})
	mk("batch-ciphertexts-swapped", "batch hash mismatch", "the first two ciphertexts swapped", func() []byte {
		b := *f.ok
		b.Deltas = slices.Clone(f.ok.Deltas)
		b.Deltas[0].Ciphertext, b.Deltas[1].Ciphertext = b.Deltas[1].Ciphertext, b.Deltas[0].Ciphertext
		body, err := f.ok.signedBody()
		require.NoError(t, err)
		m := append(body, f.ok.Sig...)
		for _, sd := range b.Deltas {
			m = binary.BigEndian.AppendUint32(m, uint32(len(sd.Ciphertext)))
			m = append(m, sd.Ciphertext...)
		}
		return m
	})
	mk("batch-ciphertext-from-other-batch", "batch hash mismatch", "the second ciphertext replaced by one from another batch of the same author", func() []byte {
		b := *f.ok
		b.Deltas = slices.Clone(f.ok.Deltas)
		b.Deltas[1].Ciphertext = f.other.Deltas[0].Ciphertext
		body, err := f.ok.signedBody()
		require.NoError(t, err)
		m := append(body, f.ok.Sig...)
		for _, sd := range b.Deltas {
			m = binary.BigEndian.AppendUint32(m, uint32(len(sd.Ciphertext)))
			m = append(m, sd.Ciphertext...)
		}
		return m
	})
	mk("batch-delta-moved-from-other-batch", "bad signature", "the second delta (id, hash and ciphertext) replaced by one from another batch of the same author", func() []byte {
		b := *f.ok
		b.Deltas = slices.Clone(f.ok.Deltas)
		b.Deltas[1] = f.other.Deltas[0]
		b.Sig = f.ok.Sig
		return mustMarshalBatch(t, &b)
	})
	mk("batch-other-devices-delta", "batch mismatch", "dev1 signs a batch holding a delta that coord sealed: it opens, but names another author", func() []byte {
		theirs := f.o.testBatch(f.o.c, f.o.s, 1, f.o.head(), "coord's edit")
		b := *f.ok
		b.Deltas = []SealedDelta{f.ok.Deltas[0], theirs.Deltas[0]}
		require.NoError(t, b.Sign(f.o.d1.sign))
		return mustMarshalBatch(t, &b)
	})
	mk("batch-wrong-epoch-key", "auth failure", "dev1 signs a batch for epoch 1 whose delta was sealed under epoch 2's key", func() []byte {
		d := testDelta(f.o.tenant, f.o.s, 1, f.o.d1.id, "wrong key", []byte("x"))
		p, err := d.Marshal()
		require.NoError(t, err)
		ct, err := fcrypto.Seal(testEpochKey(t, f.o.s, 2), DeltaAD(f.o.tenant, f.o.s, 1, d.ID), p)
		require.NoError(t, err)
		b := *f.ok
		b.Deltas = []SealedDelta{{ID: d.ID, Ciphertext: ct}}
		require.NoError(t, b.Sign(f.o.d1.sign))
		return mustMarshalBatch(t, &b)
	})
	mk("batch-duplicate-delta", "duplicate delta", "the second entry repeats the first delta id (signed by the author)", func() []byte {
		m := clone(f.okRaw)
		copy(m[batchOffEntries+batchEntrySize:], m[batchOffEntries:batchOffEntries+16])
		return resignBatch(t, m, f.o.d1.sign, fcrypto.LabelBatch)
	})
	mk("batch-zero-counter", "malformed", "counter 0 (counters start at 1), signed by the author", func() []byte {
		m := clone(f.okRaw)
		binary.BigEndian.PutUint64(m[batchOffCounter:], 0)
		return resignBatch(t, m, f.o.d1.sign, fcrypto.LabelBatch)
	})
	mk("batch-no-deltas", "malformed", "a batch of zero deltas, signed by the author", func() []byte {
		m := clone(f.okRaw[:batchOffEntries])
		binary.BigEndian.PutUint32(m[batchOffCount:], 0)
		sig, err := f.o.d1.sign.Sign(fcrypto.LabelBatch, m)
		require.NoError(t, err)
		return append(m, sig...)
	})
	mk("batch-counter-changed", "bad signature", "the relay raised the counter", func() []byte {
		m := clone(f.okRaw)
		m[batchOffCounter+7] ^= 0x04
		return m
	})
	mk("batch-epoch-changed", "bad signature", "the relay moved the batch to epoch 2", func() []byte {
		m := clone(f.okRaw)
		binary.BigEndian.PutUint32(m[batchOffEpoch:], 2)
		return m
	})
	mk("batch-ciphertext-too-large", "too large", "the first ciphertext's length prefix above MaxBlobLen", func() []byte {
		m := clone(f.okRaw)
		binary.BigEndian.PutUint32(m[blobOffsets(m)[0]:], MaxBlobLen+1)
		return m
	})
	mk("batch-unknown-version", "unknown version", "version byte 2", func() []byte { return withVersion(f.okRaw, 2) })
	mk("batch-wrong-type", "wrong type", "a batch carrying the statement type byte", func() []byte { return withType(f.okRaw, MsgStatement) })
	mk("batch-truncated-signature", "truncated", "cut inside the signature", func() []byte { return clone(f.okRaw[:batchSigOffset(f.okRaw)+10]) })
	mk("batch-trailing", "trailing bytes", "a zero byte after the last ciphertext", func() []byte { return append(clone(f.okRaw), 0) })
}

func (g *vectorGen) receipts() {
	t := g.t
	o := newTestOrg(t, "base")
	r := &Receipt{Tenant: o.tenant, Stream: testStreamID("s"), Seq: 42, Batch: testHash("batch"), ReceivedMS: o.now}
	require.NoError(t, r.Sign(o.relay))
	ok := r.Marshal()
	v := func(expect string, m []byte, comment string) func() *genVector {
		return func() *genVector {
			return &genVector{format: "receipt", expect: expect, h: map[string]string{"relay": o.relay.Public().String()},
				msgs: [][]byte{m}, comments: []string{comment}}
		}
	}
	g.vec("receipt-ok", v("success", ok, "sequence 42 of stream s"))
	g.vec("receipt-signed-by-device", v("bad signature", resign(t, ok, newTestDevice(t, "dev1").sign, fcrypto.LabelReceipt), "signed by a device key, not the relay's"))
	g.vec("receipt-signed-as-batch", v("bad signature", resign(t, ok, o.relay, fcrypto.LabelBatch), "the relay's signature under the batch label"))
	seq := clone(ok)
	seq[2+16+16+7] = 43
	g.vec("receipt-seq-changed", v("bad signature", seq, "sequence changed to 43 after signing"))
	g.vec("receipt-truncated", v("truncated", ok[:len(ok)-1], "last signature byte cut"))
	g.vec("receipt-trailing", v("trailing bytes", append(clone(ok), 0), "a zero byte after the signature"))
	g.vec("receipt-unknown-version", v("unknown version", withVersion(ok, 0), "version byte 0"))
	g.vec("receipt-wrong-type", v("wrong type", withType(ok, MsgAuth), "a receipt carrying the auth proof type byte"))
}

// fullChain builds a chain holding every statement type in a plausible
// order, and records who signed each statement.
func fullChain(tb testing.TB) (*baseOrg, []signer) {
	o := newBaseOrg(tb)
	signers := []signer{asRoot, asRoot, as(o.c), as(o.c), as(o.c), as(o.c), as(o.c), as(o.c)}
	o.withCoord2().withDev2()
	signers = append(signers, asRoot, as(o.c))
	c2At := ChainPos(len(o.raws) - 2)
	add := func(by signer, b Body) {
		o.add(by, b)
		signers = append(signers, by)
	}
	dir, audit := testStreamID("directory"), testStreamID("audit")
	add(as(o.c), &StreamCreated{Stream: dir, Kind: StreamDirectory})
	add(as(o.c), &StreamCreated{Stream: audit, Kind: StreamAudit})
	add(as(o.c), &SettingsChanged{RetentionDays: 3650, EnvelopeExpiryDays: 365, AutoLockMinutes: 10})
	add(as(o.c), &PoliceContactAdded{Contact: testContactID("oslo")})
	add(as(o.c), &EnvelopeSealed{Alarm: testAlarmID("a"), Generation: 1, Inner: testHash("inner"), SealedMS: o.now})
	add(as(o.d1), &EmergencyCardWritten{Alarm: testAlarmID("a"), Card: testHash("card")})
	add(asRelay, &EnvelopeReleased{Alarm: testAlarmID("a"), Generation: 1, ReleasedMS: o.now, Request: ReleaseRequestHash([]byte("vector release nonce 0"))})
	add(as(o.c), &SnapshotCountersigned{Stream: o.s, Seq: 7, Snapshot: testHash("snapshot")})
	add(as(o.c), &AuditCheckpoint{Stream: audit, Seq: 3, Head: testHash("audit head")})
	add(as(o.c), &Unassigned{Stream: o.s, Worker: o.w1})
	add(as(o.c), o.epochBody(o.s, 2, o.c, o.c2))
	add(as(o.d1), &DeletionReceipt{Stream: o.s, Device: o.d1.id})
	add(as(o.c), &DeviceRevoked{Device: o.d2.id})
	add(asRelay, &DeviceRefused{Device: o.d2.id})
	add(as(o.c), &WorkerRemoved{Worker: o.w2})
	add(as(o.c), &CaseClosed{Stream: o.s})
	o.now += 3650 * dayMS // the retention period set above
	add(as(o.c), &StreamPurged{Stream: o.s})
	add(as(o.c), o.epochBody(audit, 1, o.c, o.c2))
	add(as(o.c), &AuditRecipient{Stream: audit, Epoch: 1, Recipient: testAuditRecipient(tb, o.tenant, audit, 1)})
	add(asRoot, &DeviceRevoked{Device: o.c2.id, HasCompromisedSince: true, CompromisedSince: c2At})
	require.Len(tb, signers, len(o.raws))
	return o, signers
}

func (g *vectorGen) statements() {
	t := g.t
	o, signers := fullChain(t)
	key := func(by signer) string { return o.key(by).Public().String() }
	seen := map[StatementType]bool{}
	for i, raw := range o.raws {
		s := o.chain.Statement(ChainPos(i))
		typ := s.Body.Type()
		name := "statement-" + strings.ReplaceAll(typ.String(), " ", "-")
		if seen[typ] {
			name += "-" + strconv.Itoa(i)
		}
		seen[typ] = true
		comment := typ.String() + ", signed by " + signers[i].kind.String()
		if signers[i].dev != nil {
			comment += " " + signers[i].dev.name
		}
		g.vec(name, func() *genVector {
			return &genVector{format: "statement", expect: "success", h: map[string]string{"signer": key(signers[i])},
				msgs: [][]byte{raw}, comments: []string{comment}}
		})
	}
	for typ := StTenantCreated; typ <= stLast; typ++ {
		require.True(t, seen[typ], "the full chain lacks a %s statement", typ)
	}

	// Tampered statements, on the epoch statement at position 6 of the base
	// org (stream s, epoch 1, devices coord and dev1).
	const epochPos = 6
	require.Equal(t, StEpochStarted, o.chain.Statement(epochPos).Body.Type())
	ep := o.raws[epochPos]
	cKey := o.c.sign
	v := func(expect string, m []byte, signerKey *fcrypto.SigningKey, comment string) func() *genVector {
		return func() *genVector {
			return &genVector{format: "statement", expect: expect, h: map[string]string{"signer": signerKey.Public().String()},
				msgs: [][]byte{m}, comments: []string{comment}}
		}
	}
	devs := stmtOffBody + 16 + 4 + 2
	swapped := clone(ep)
	a, b := clone(swapped[devs:devs+16]), clone(swapped[devs+16:devs+32])
	copy(swapped[devs:], b)
	copy(swapped[devs+16:], a)
	g.vec("statement-epoch-unsorted", v("malformed", resign(t, swapped, cKey, fcrypto.LabelStatement), cKey, "epoch devices out of order (signed by the coordinator)"))
	dup := clone(ep)
	copy(dup[devs+16:], dup[devs:devs+16])
	g.vec("statement-epoch-duplicate-device", v("malformed", resign(t, dup, cKey, fcrypto.LabelStatement), cKey, "an epoch naming one device twice"))
	many := clone(ep)
	binary.BigEndian.PutUint16(many[devs-2:], MaxDevicesInEpoch+1)
	g.vec("statement-epoch-too-many-devices", v("too large", many, cKey, "device count above MaxDevicesInEpoch"))
	g.vec("statement-signed-as-auth", v("bad signature", resign(t, ep, cKey, fcrypto.LabelAuth), cKey, "the coordinator's signature under the auth label: a login answer is never a statement"))
	g.vec("statement-signed-as-batch", v("bad signature", resign(t, ep, cKey, fcrypto.LabelBatch), cKey, "the coordinator's signature under the batch label"))
	g.vec("statement-wrong-key", v("bad signature", ep, o.c2.sign, "checked against another coordinator's key"))
	commitment := clone(ep)
	commitment[len(commitment)-fcrypto.SignatureSize-1] ^= 1
	g.vec("statement-commitment-changed", v("bad signature", commitment, cKey, "a bit of the key commitment flipped after signing"))
	unknown := clone(ep)
	unknown[stmtOffType] = byte(stLast) + 1
	g.vec("statement-unknown-type", v("malformed", resign(t, unknown, cKey, fcrypto.LabelStatement), cKey, "statement type 23 is not defined (newer version?)"))
	kind := clone(ep)
	kind[stmtOffSigner] = 4
	g.vec("statement-signer-kind", v("malformed", resign(t, kind, cKey, fcrypto.LabelStatement), cKey, "signer kind 4 is not defined"))
	zero := clone(ep)
	clear(zero[stmtOffDevice : stmtOffDevice+16])
	g.vec("statement-device-signer-zero", v("malformed", resign(t, zero, cKey, fcrypto.LabelStatement), cKey, "device signer with a zero device id"))
	rootDev := clone(o.raws[1])
	copy(rootDev[stmtOffDevice:], o.c.id[:])
	g.vec("statement-root-signer-with-device", v("malformed", resign(t, rootDev, o.root, fcrypto.LabelStatement), o.root, "root signer with a device id"))

	// A revocation's flag and point, and a stream's kind.
	rev := o.next(as(o.c), &DeviceRevoked{Device: o.d1.id})
	revRaw := mustMarshal(t, rev)
	flag := stmtOffBody + 16
	since := clone(revRaw)
	since[flag+8] = 5
	g.vec("statement-revoked-point-without-flag", v("malformed", resign(t, since, cKey, fcrypto.LabelStatement), cKey, "a compromised-since point without its flag"))
	boolean := clone(revRaw)
	boolean[flag] = 2
	g.vec("statement-revoked-bool", v("malformed", resign(t, boolean, cKey, fcrypto.LabelStatement), cKey, "boolean byte 2"))
	sc := mustMarshal(t, o.next(as(o.c), &StreamCreated{Stream: testStreamID("new"), Kind: StreamResident}))
	sc[stmtOffBody+16] = 4
	g.vec("statement-stream-kind", v("malformed", resign(t, sc, cKey, fcrypto.LabelStatement), cKey, "stream kind 4 is not defined"))

	g.vec("statement-truncated", v("truncated", ep[:len(ep)-1], cKey, "last signature byte cut"))
	g.vec("statement-trailing", v("trailing bytes", append(clone(ep), 0), cKey, "a zero byte after the signature"))
	g.vec("statement-unknown-version", v("unknown version", withVersion(ep, 2), cKey, "version byte 2"))
	g.vec("statement-wrong-type", v("wrong type", withType(ep, MsgBatch), cKey, "a statement carrying the batch type byte"))
}

func chainVector(o *testOrg, expect string, msgs [][]byte, comment string) *genVector {
	return &genVector{format: "chain", expect: expect, h: map[string]string{"org": o.org().String()},
		msgs: msgs, comments: []string{comment}}
}

func (g *vectorGen) chains() {
	t := g.t
	// A vector whose last statement the chain refuses.
	refused := func(name, expect, comment string, build func(o *baseOrg) []byte) {
		g.vec(name, func() *genVector {
			o := newBaseOrg(t)
			last := build(o)
			msgs := append(slices.Clone(o.raws), last)
			v := chainVector(o.testOrg, expect, msgs, comment)
			v.h["at"] = strconv.Itoa(len(msgs) - 1)
			return v
		})
	}
	next := func(o *baseOrg, by signer, b Body) []byte { return mustMarshal(t, o.next(by, b)) }

	g.vec("chain-ok", func() *genVector {
		o, _ := fullChain(t)
		return chainVector(o.testOrg, "success", o.raws, "every statement type, ending with a coordinator revoked with a compromised-since point before anything it signed")
	})
	g.vec("chain-ok-head", func() *genVector {
		o := newBaseOrg(t)
		v := chainVector(o.testOrg, "success", o.raws, "a remembered head inside the chain")
		h, _ := o.chain.HashAt(4)
		v.h["head"] = formatHead(Head{Pos: 4, Hash: h})
		return v
	})
	g.vec("chain-reordered", func() *genVector {
		o := newBaseOrg(t)
		msgs := slices.Clone(o.raws)
		msgs[2], msgs[3] = msgs[3], msgs[2]
		v := chainVector(o.testOrg, "chain broken", msgs, "statements 2 and 3 swapped")
		v.h["at"] = "2"
		return v
	})
	g.vec("chain-duplicated", func() *genVector {
		o := newBaseOrg(t)
		msgs := slices.Insert(slices.Clone(o.raws), 6, o.raws[5])
		v := chainVector(o.testOrg, "chain broken", msgs, "statement 5 delivered twice")
		v.h["at"] = "6"
		return v
	})
	g.vec("chain-gap", func() *genVector {
		o := newBaseOrg(t)
		msgs := slices.Delete(slices.Clone(o.raws), 5, 6)
		v := chainVector(o.testOrg, "chain broken", msgs, "statement 5 withheld")
		v.h["at"] = "5"
		return v
	})
	g.vec("chain-fork", func() *genVector {
		o := newBaseOrg(t)
		// The device saw a history in which position 4 enrolled another
		// device; the relay now shows this one.
		alt := newTestOrg(t, "base")
		ac := alt.coordinator("coord")
		aw := alt.worker(ac, "w1")
		alt.worker(ac, "w2")
		alt.enrol(ac, "dev1b", aw)
		h, _ := alt.chain.HashAt(4)
		v := chainVector(o.testOrg, "fork", o.raws, "the device remembers a different statement at position 4")
		v.h["head"] = formatHead(Head{Pos: 4, Hash: h})
		return v
	})
	g.vec("chain-rollback", func() *genVector {
		o := newBaseOrg(t)
		v := chainVector(o.testOrg, "rollback", o.raws[:5], "the device remembers position 7; the relay shows 5 statements")
		v.h["head"] = formatHead(o.head())
		return v
	})
	g.vec("chain-other-tenant", func() *genVector {
		o := newBaseOrg(t)
		s := o.next(as(o.c), &WorkerAdded{Worker: testWorkerID("w3")})
		s.Tenant = testTenantID("other")
		require.NoError(t, s.Sign(o.c.sign))
		msgs := append(slices.Clone(o.raws), mustMarshal(t, s))
		v := chainVector(o.testOrg, "chain broken", msgs, "a statement of another tenant, validly signed, at the next position")
		v.h["at"] = strconv.Itoa(len(msgs) - 1)
		return v
	})
	g.vec("chain-wrong-org", func() *genVector {
		o := newBaseOrg(t)
		v := chainVector(o.testOrg, "fingerprint mismatch", o.raws, "pinned to another org's fingerprint")
		v.h["org"] = fcrypto.OrgFingerprint(testSigningKey(t, "root other").Public()).String()
		v.h["at"] = "0"
		return v
	})
	g.vec("chain-genesis-not-tenant", func() *genVector {
		o := newTestOrg(t, "base")
		d := newTestDevice(t, "coord")
		s := &Statement{Tenant: o.tenant, Signer: SignerRoot, TimeMS: o.now,
			Body: &CoordinatorDelegated{Device: d.id, SignPub: d.sign.Public(), Box: d.recipient()}}
		require.NoError(t, s.Sign(o.root))
		v := chainVector(o, "invalid", [][]byte{mustMarshal(t, s)}, "the first statement is a delegation, not the tenant's creation")
		v.h["at"] = "0"
		return v
	})
	refused("chain-revoked-signer", "revoked signer", "dev1 writes an emergency card after its revocation", func(o *baseOrg) []byte {
		o.add(as(o.c), &DeviceRevoked{Device: o.d1.id})
		return next(o, as(o.d1), &EmergencyCardWritten{Alarm: testAlarmID("a"), Card: testHash("card")})
	})
	refused("chain-unknown-signer", "unknown signer", "a device that was never enrolled adds a worker", func(o *baseOrg) []byte {
		return next(o, as(newTestDevice(t, "mallory")), &WorkerAdded{Worker: testWorkerID("w3")})
	})
	refused("chain-worker-assigns", "unauthorized", "worker device dev1 assigns worker w2", func(o *baseOrg) []byte {
		return next(o, as(o.d1), &Assigned{Stream: o.s, Worker: o.w2})
	})
	refused("chain-purge-open-case", "invalid", "coord purges stream s, which was never closed, ten years on", func(o *baseOrg) []byte {
		o.now += 3650 * dayMS
		return next(o, as(o.c), &StreamPurged{Stream: o.s})
	})
	refused("chain-purge-early", "invalid", "coord purges stream s one second before the default retention period after its close ends", func(o *baseOrg) []byte {
		o.add(as(o.c), &CaseClosed{Stream: o.s})
		o.now += DefaultRetentionDays*dayMS - 2000 // next adds a second
		return next(o, as(o.c), &StreamPurged{Stream: o.s})
	})
	refused("chain-worker-purges", "unauthorized", "worker device dev1 purges closed stream s after its retention period", func(o *baseOrg) []byte {
		o.add(as(o.c), &CaseClosed{Stream: o.s})
		o.now += DefaultRetentionDays * dayMS
		return next(o, as(o.d1), &StreamPurged{Stream: o.s})
	})
	refused("chain-coordinator-revokes-coordinator", "unauthorized", "coord revokes coord2 without the root key", func(o *baseOrg) []byte {
		o.withCoord2()
		return next(o, as(o.c), &DeviceRevoked{Device: o.c2.id})
	})
	refused("chain-relay-enrols", "unauthorized", "the relay enrols a device", func(o *baseOrg) []byte {
		return next(o, asRelay, enrolBody(newTestDevice(t, "mallory"), o.w1))
	})
	refused("chain-root-adds-worker", "unauthorized", "the root key adds a worker (it signs only coordinator delegations and revocations)", func(o *baseOrg) []byte {
		return next(o, asRoot, &WorkerAdded{Worker: testWorkerID("w3")})
	})
	refused("chain-signed-as-auth", "bad signature", "coord's signature under the auth label", func(o *baseOrg) []byte {
		return resign(t, next(o, as(o.c), &WorkerAdded{Worker: testWorkerID("w3")}), o.c.sign, fcrypto.LabelAuth)
	})
	refused("chain-signer-mismatch", "bad signature", "names coord as signer, signed by dev1", func(o *baseOrg) []byte {
		return resign(t, next(o, as(o.c), &WorkerAdded{Worker: testWorkerID("w3")}), o.d1.sign, fcrypto.LabelStatement)
	})
	refused("chain-epoch-revoked-device", "invalid", "an epoch naming a revoked device", func(o *baseOrg) []byte {
		o.add(as(o.c), &DeviceRevoked{Device: o.d1.id})
		return next(o, as(o.c), o.epochBody(o.s, 2, o.c, o.d1))
	})
	g.vec("chain-last-coordinator", func() *genVector {
		o := newTestOrg(t, "solo")
		c := o.coordinator("coord")
		msgs := append(slices.Clone(o.raws), mustMarshal(t, o.next(asRoot, &DeviceRevoked{Device: c.id})))
		v := chainVector(o, "last coordinator", msgs, "the root revokes the only coordinator device")
		v.h["at"] = "2"
		return v
	})
	g.vec("chain-compromised-revoker", func() *genVector {
		o, bogus := compromisedRevokerChain(t)
		v := chainVector(o.testOrg, "success", o.raws,
			"coord2 revokes dev1 as compromised, then the root revokes coord2 as compromised since before that: the revocation of dev1 is void and voids nothing; dev1's card stands")
		v.h["void"] = strconv.Itoa(int(bogus))
		return v
	})
	g.vec("chain-compromised-since", func() *genVector {
		o, void := compromisedChain(t)
		v := chainVector(o.testOrg, "success", o.raws,
			"coord2 revoked as compromised since position 9: the device it enrolled after that, the assignment it made and the epoch naming that device are void; the worker it added at 9 stays")
		var ps []string
		for _, p := range void {
			ps = append(ps, strconv.Itoa(int(p)))
		}
		v.h["void"] = strings.Join(ps, " ")
		return v
	})
}

// compromisedRevokerChain is the base org with coord2, which "revokes"
// dev1 as compromised since before dev1's emergency card; then the root
// revokes coord2 as compromised since before that revocation. It returns
// the revocation of dev1, the one void position.
func compromisedRevokerChain(tb testing.TB) (*baseOrg, ChainPos) {
	o := newBaseOrg(tb).withCoord2()
	card := o.add(as(o.d1), &EmergencyCardWritten{Alarm: testAlarmID("a"), Card: testHash("card")})
	bogus := o.add(as(o.c2), &DeviceRevoked{Device: o.d1.id, HasCompromisedSince: true, CompromisedSince: card - 1})
	o.add(asRoot, &DeviceRevoked{Device: o.c2.id, HasCompromisedSince: true, CompromisedSince: bogus - 1})
	return o, bogus
}

// compromisedChain is the base org with coord2 (at 8), compromised after
// position 9: it adds a worker at that point and, after it, enrols a device
// and assigns a worker; coord, unaware, starts an epoch naming the planted
// device; then the root revokes coord2 as compromised since 9. It returns
// the positions that must be void.
func compromisedChain(tb testing.TB) (*baseOrg, []ChainPos) {
	o := newBaseOrg(tb).withCoord2()
	o.worker(o.c2, "w3") // 9: at the point, stays
	point := o.head().Pos
	x := o.enrol(o.c2, "mallory", o.w2)                             // 10: void
	assign := o.add(as(o.c2), &Assigned{Stream: o.s, Worker: o.w2}) // 11: void
	epoch := o.epoch(o.c, o.s, 2, o.c, o.c2, o.d1, x)               // 12: void, names the planted device
	o.add(asRoot, &DeviceRevoked{Device: o.c2.id, HasCompromisedSince: true, CompromisedSince: point})
	return o, []ChainPos{point + 1, assign, epoch}
}

func acceptanceVector(o *testOrg, expect string, b *Batch, comment string) *genVector {
	msgs := append(slices.Clone(o.raws), mustMarshalBatch(o.tb, b))
	return &genVector{format: "batch acceptance", expect: expect, h: map[string]string{"org": o.org().String()},
		msgs: msgs, comments: []string{comment}}
}

func (g *vectorGen) acceptance() {
	t := g.t
	mk := func(name, expect, comment string, build func(o *baseOrg) *Batch) {
		g.vec(name, func() *genVector {
			o := newBaseOrg(t)
			return acceptanceVector(o.testOrg, expect, build(o), comment)
		})
	}
	mk("accept-current-epoch", "success", "dev1 writes under the current epoch", func(o *baseOrg) *Batch {
		return o.testBatch(o.d1, o.s, 1, o.head(), "e1")
	})
	mk("accept-superseded-epoch", "epoch superseded", "dev1 writes under epoch 1 after epoch 2, which names it, started", func(o *baseOrg) *Batch {
		o.epoch(o.c, o.s, 2, o.c, o.d1)
		return o.testBatch(o.d1, o.s, 1, o.head(), "e1")
	})
	mk("accept-unassigned-before-removal", "success", "dev1 wrote under epoch 1 before its worker was unassigned and epoch 2 dropped it: its last edits are kept", func(o *baseOrg) *Batch {
		h := o.head()
		o.add(as(o.c), &Unassigned{Stream: o.s, Worker: o.w1})
		o.epoch(o.c, o.s, 2, o.c)
		return o.testBatch(o.d1, o.s, 1, h, "e1")
	})
	mk("accept-unassigned-after-removal", "epoch superseded", "dev1 writes under epoch 1 with a head that already shows its removal", func(o *baseOrg) *Batch {
		o.add(as(o.c), &Unassigned{Stream: o.s, Worker: o.w1})
		o.epoch(o.c, o.s, 2, o.c)
		return o.testBatch(o.d1, o.s, 1, o.head(), "e1")
	})
	mk("accept-unassigned-revoked-holder", "epoch superseded", "as accept-unassigned-before-removal, but dev1b, which holds epoch 1's key, was revoked: a new edit under it would be readable with dev1b's keys", func(o *baseOrg) *Batch {
		d1b := o.enrol(o.c, "dev1b", o.w1)
		o.epoch(o.c, o.s, 2, o.c, o.d1, d1b)
		h := o.head()
		o.add(as(o.c), &DeviceRevoked{Device: d1b.id})
		o.add(as(o.c), &Unassigned{Stream: o.s, Worker: o.w1})
		o.epoch(o.c, o.s, 3, o.c)
		return o.testBatch(o.d1, o.s, 2, h, "e1")
	})
	mk("accept-revoked-author", "device revoked", "dev1 writes after its revocation", func(o *baseOrg) *Batch {
		h := o.head()
		o.add(as(o.c), &DeviceRevoked{Device: o.d1.id})
		return o.testBatch(o.d1, o.s, 1, h, "e1")
	})
	mk("accept-not-in-epoch", "not assigned", "dev2, whose worker is not assigned, writes to stream s", func(o *baseOrg) *Batch {
		o.withDev2()
		return o.testBatch(o.d2, o.s, 1, o.head(), "e1")
	})
	mk("accept-unknown-epoch", "unknown epoch", "dev1 names epoch 7", func(o *baseOrg) *Batch {
		return o.testBatch(o.d1, o.s, 7, o.head(), "e1")
	})
	mk("accept-unknown-author", "unknown signer", "a device that was never enrolled", func(o *baseOrg) *Batch {
		return o.testBatch(newTestDevice(t, "mallory"), o.s, 1, o.head(), "e1")
	})
	mk("accept-forged-author", "bad signature", "names dev1 as author, signed by another key", func(o *baseOrg) *Batch {
		b := o.testBatch(o.d1, o.s, 1, o.head(), "e1")
		require.NoError(t, b.Sign(newTestDevice(t, "mallory").sign))
		return b
	})
	mk("accept-head-fork", "fork", "written under a head that is not in the relay's chain", func(o *baseOrg) *Batch {
		h := o.head()
		h.Hash = testHash("elsewhere")
		return o.testBatch(o.d1, o.s, 1, h, "e1")
	})
	mk("accept-head-future", "rollback", "written under a head beyond the relay's chain", func(o *baseOrg) *Batch {
		h := o.head()
		h.Pos += 5
		return o.testBatch(o.d1, o.s, 1, h, "e1")
	})
}

func (g *vectorGen) enrolments() {
	t := g.t
	o := newTestOrg(t, "base")
	coord := newTestDevice(t, "coord")
	dev := newTestDevice(t, "new")
	mallory := newTestDevice(t, "mallory")
	request := func() *Enrolment {
		var sealed bytes.Buffer
		w, err := age.Encrypt(&sealed, coord.box.Recipient().Recipient())
		require.NoError(t, err)
		name, err := MarshalEnrolName("Ada's laptop")
		require.NoError(t, err)
		_, err = w.Write(name)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		r := &Enrolment{Tenant: o.tenant, Request: testRequestID("new"), SignPub: dev.sign.Public(),
			Box: dev.recipient(), CreatedMS: o.now, Sealed: sealed.Bytes()}
		require.NoError(t, r.Sign(dev.sign))
		return r
	}
	v := func(expect, code string, m []byte, comment string) *genVector {
		return &genVector{format: "enrolment", expect: expect, h: map[string]string{"code": code}, msgs: [][]byte{m}, comments: []string{comment}}
	}
	g.vec("enrolment-ok", func() *genVector {
		r := request()
		return v("success", r.Code(), r.Marshal(), "the device's request and the code it showed")
	})
	g.vec("enrolment-signing-key-swapped", func() *genVector {
		r := request()
		code := r.Code()
		r.SignPub = mallory.sign.Public()
		require.NoError(t, r.Sign(mallory.sign))
		return v("enrolment mismatch", code, r.Marshal(), "the relay replaced the signing key (and re-signed with it)")
	})
	g.vec("enrolment-box-swapped", func() *genVector {
		r := request()
		code := r.Code()
		r.Box = mallory.recipient()
		require.NoError(t, r.Sign(dev.sign))
		return v("enrolment mismatch", code, r.Marshal(), "the relay replaced the age recipient")
	})
	g.vec("enrolment-other-request", func() *genVector {
		r := request()
		code := r.Code()
		r.Request = testRequestID("other")
		require.NoError(t, r.Sign(dev.sign))
		return v("enrolment mismatch", code, r.Marshal(), "the relay answered the code with another request of the same device")
	})
	g.vec("enrolment-bad-self-signature", func() *genVector {
		r := request()
		return v("bad signature", r.Code(), resign(t, r.Marshal(), mallory.sign, fcrypto.LabelEnrol), "keys as committed, self-signature by another key")
	})
	g.vec("enrolment-signed-as-auth", func() *genVector {
		r := request()
		return v("bad signature", r.Code(), resign(t, r.Marshal(), dev.sign, fcrypto.LabelAuth), "the device's self-signature under the auth label")
	})
	g.vec("enrolment-truncated", func() *genVector {
		r := request()
		m := r.Marshal()
		return v("truncated", r.Code(), m[:len(m)-1], "last signature byte cut")
	})
	g.vec("enrolment-unknown-version", func() *genVector {
		r := request()
		return v("unknown version", r.Code(), withVersion(r.Marshal(), 2), "version byte 2")
	})
	g.vec("enrolment-long-recipient", func() *genVector {
		r := request()
		m := r.Marshal()
		binary.BigEndian.PutUint16(m[2+16+16+32:], MaxStringLen+1)
		return v("too large", r.Code(), m, "recipient length above MaxStringLen")
	})
}

// enrolNames: the fixed-size message an enrolment seals its device name in.
func (g *vectorGen) enrolNames() {
	t := g.t
	v := func(expect string, m []byte, released, comment string) func() *genVector {
		return func() *genVector {
			return &genVector{format: "enrolment name", expect: expect, released: []byte(released), msgs: [][]byte{m}, comments: []string{comment}}
		}
	}
	ok, err := MarshalEnrolName("Ada's laptop")
	require.NoError(t, err)
	long, err := MarshalEnrolName(strings.Repeat("ø", MaxEnrolName/2))
	require.NoError(t, err)
	g.vec("enrolname-ok", v("success", ok, "Ada's laptop", "a device name, padded to 256 bytes"))
	g.vec("enrolname-longest", v("success", long, strings.Repeat("ø", MaxEnrolName/2), "the longest name: 250 bytes of UTF-8"))
	withLen := func(n uint32) []byte {
		m := clone(ok)
		binary.BigEndian.PutUint32(m[2:], n)
		return m
	}
	g.vec("enrolname-length-beyond", v("malformed", withLen(EnrolNameSize-2-4+1), "", "the length field runs past the message"))
	empty := clone(ok)
	clear(empty[2:])
	g.vec("enrolname-empty", v("malformed", empty, "", "an empty name, all padding"))
	nz := clone(ok)
	nz[len(nz)-1] = 1
	g.vec("enrolname-nonzero-padding", v("malformed", nz, "", "a non-zero byte in the padding"))
	bad := withLen(1)
	bad[6] = 0xff
	clear(bad[7:])
	g.vec("enrolname-not-utf8", v("malformed", bad, "", "a name that is not UTF-8"))
	g.vec("enrolname-truncated", v("truncated", ok[:len(ok)-1], "", "255 bytes"))
	g.vec("enrolname-trailing", v("trailing bytes", append(clone(ok), 0), "", "257 bytes"))
	g.vec("enrolname-unknown-version", v("unknown version", withVersion(ok, 2), "", "version byte 2"))
	wt := clone(ok)
	wt[1] = byte(MsgEnrolment)
	g.vec("enrolname-wrong-type", v("wrong type", wt, "", "an enrolment's type byte"))
}

func (g *vectorGen) wrappedKeys() {
	t := g.t
	o := newBaseOrg(t)
	o.epoch(o.c, o.s, 2, o.c, o.d1)
	st := o.chain.State().Streams[o.s]
	c1, c2 := st.Epoch(1).Commitment, st.Epoch(2).Commitment
	wrap := func(k *fcrypto.Key, to *testDevice) []byte {
		w, err := fcrypto.WrapKey(k, to.box.Recipient().Recipient())
		require.NoError(t, err)
		return w
	}
	v := func(expect string, e Epoch, commitment Hash, wrapped []byte, comment string) *genVector {
		w := &WrappedKey{Tenant: o.tenant, Stream: o.s, Epoch: e, Device: o.d1.id, Wrapped: wrapped}
		return &genVector{format: "wrapped key", expect: expect, released: testEpochKey(t, o.s, e).Bytes(),
			h:    map[string]string{"identity": testBoxIdentities[testBoxNames["dev1"]], "commitment": hex.EncodeToString(commitment[:])},
			msgs: [][]byte{w.Marshal()}, comments: []string{comment}}
	}
	g.vec("wrapped-key-ok", func() *genVector {
		return v("success", 1, c1, wrap(testEpochKey(t, o.s, 1), o.d1), "epoch 1's key wrapped to dev1, checked against the signed commitment")
	})
	g.vec("wrapped-key-planted", func() *genVector {
		k, err := fcrypto.NewKey()
		require.NoError(t, err)
		return v("key commitment mismatch", 1, c1, wrap(k, o.d1), "a key the relay made and wrapped to dev1 itself")
	})
	g.vec("wrapped-key-other-epoch", func() *genVector {
		return v("key commitment mismatch", 2, c2, wrap(testEpochKey(t, o.s, 1), o.d1), "epoch 1's genuine key offered as epoch 2's")
	})
	g.vec("wrapped-key-other-device", func() *genVector {
		return v("no identity match", 1, c1, wrap(testEpochKey(t, o.s, 1), o.c), "wrapped to coord, opened by dev1")
	})
	g.vec("wrapped-key-truncated", func() *genVector {
		m := v("", 1, c1, wrap(testEpochKey(t, o.s, 1), o.d1), "")
		m.expect, m.msgs[0] = "truncated", m.msgs[0][:60]
		m.comments = []string{"cut after the first two bytes of the age file"}
		return m
	})
	g.vec("wrapped-key-unknown-version", func() *genVector {
		m := v("", 1, c1, wrap(testEpochKey(t, o.s, 1), o.d1), "")
		m.expect, m.msgs[0] = "unknown version", withVersion(m.msgs[0], 2)
		m.comments = []string{"version byte 2"}
		return m
	})
	g.vec("wrapped-key-trailing", func() *genVector {
		m := v("", 1, c1, wrap(testEpochKey(t, o.s, 1), o.d1), "")
		m.expect, m.msgs[0] = "trailing bytes", append(m.msgs[0], 0)
		m.comments = []string{"a zero byte after the age file"}
		return m
	})
}

func (g *vectorGen) snapshots() {
	t := g.t
	o := newBaseOrg(t)
	key := testEpochKey(t, o.s, 1)
	sample := sampleSnapshotContent()
	sample.Tenant, sample.Stream = o.tenant, o.s
	content, err := sample.Marshal()
	require.NoError(t, err)
	snap := func(seq Seq, sealSeq Seq, by *testDevice) *Snapshot {
		ct, err := SealSnapshotContent(key, o.tenant, o.s, 1, sealSeq, content)
		require.NoError(t, err)
		s := &Snapshot{Tenant: o.tenant, Stream: o.s, Epoch: 1, Author: o.d1.id, Seq: seq, CreatedMS: o.now, Content: ct}
		require.NoError(t, s.Sign(by.sign))
		return s
	}
	v := func(expect string, m []byte, comment string) *genVector {
		return &genVector{format: "snapshot", expect: expect, released: content,
			h:    map[string]string{"signer": o.d1.sign.Public().String(), "epoch key": hex.EncodeToString(key.Bytes())},
			msgs: [][]byte{m}, comments: []string{comment}}
	}
	g.vec("snapshot-ok", func() *genVector { return v("success", snap(7, 7, o.d1).Marshal(), "dev1's snapshot after batch 7") })
	g.vec("snapshot-forged-author", func() *genVector {
		return v("bad signature", snap(7, 7, o.c).Marshal(), "names dev1 as author, signed by coord")
	})
	g.vec("snapshot-moved-seq", func() *genVector {
		return v("auth failure", snap(9, 7, o.d1).Marshal(), "content sealed for batch 7, signed and presented as the snapshot after batch 9")
	})
	g.vec("snapshot-signed-as-batch", func() *genVector {
		return v("bad signature", resign(t, snap(7, 7, o.d1).Marshal(), o.d1.sign, fcrypto.LabelBatch), "dev1's signature under the batch label")
	})
	g.vec("snapshot-truncated", func() *genVector {
		m := snap(7, 7, o.d1).Marshal()
		return v("truncated", m[:len(m)-1], "last signature byte cut")
	})
	g.vec("snapshot-unknown-version", func() *genVector {
		return v("unknown version", withVersion(snap(7, 7, o.d1).Marshal(), 2), "version byte 2")
	})
}

func (g *vectorGen) authProofs() {
	t := g.t
	o := newBaseOrg(t)
	a := &AuthProof{Tenant: o.tenant, Device: o.d1.id, Relay: o.relay.Public(), Nonce: testHash("challenge"), SignedMS: o.now}
	require.NoError(t, a.Sign(o.d1.sign))
	ok := a.Marshal()
	v := func(expect string, m []byte, comment string) func() *genVector {
		return func() *genVector {
			return &genVector{format: "auth proof", expect: expect, h: map[string]string{"signer": o.d1.sign.Public().String()},
				msgs: [][]byte{m}, comments: []string{comment}}
		}
	}
	g.vec("auth-ok", v("success", ok, "dev1 answers the relay's challenge"))
	g.vec("auth-signed-as-statement", v("bad signature", resign(t, ok, o.d1.sign, fcrypto.LabelStatement), "dev1's signature under the statement label"))
	g.vec("auth-truncated", v("truncated", ok[:len(ok)-1], "last signature byte cut"))
	g.vec("auth-trailing", v("trailing bytes", append(clone(ok), 0), "a zero byte after the signature"))
	g.vec("auth-unknown-version", v("unknown version", withVersion(ok, 2), "version byte 2"))
}

// testVersion is a register write's version: clock then device.
func testVersion(wall uint64, logical uint32, dev DeviceID) RegisterVersion {
	var v RegisterVersion
	binary.BigEndian.PutUint64(v[0:8], wall)
	binary.BigEndian.PutUint32(v[8:12], logical)
	copy(v[12:], dev[:])
	return v
}

// rawSnapshotContent encodes c as given, in the documented layout, without
// sorting or checking, so vectors can break the canonical form; head, if
// set, overrides every write's head byte.
func rawSnapshotContent(c *SnapshotContent, head *byte) []byte {
	e := &enc{}
	e.header(MsgSnapshotContent)
	e.raw(c.Tenant[:])
	e.raw(c.Stream[:])
	e.u64(uint64(c.Seq))
	e.raw(c.Head[:])
	e.u32(uint32(len(c.Authors)))
	for _, a := range c.Authors {
		e.raw(a.Device[:])
		e.u64(a.Counter)
		e.raw(a.Last[:])
	}
	e.u32(uint32(len(c.Deltas)))
	for _, d := range c.Deltas {
		e.raw(d.ID[:])
		e.raw(d.Hash[:])
	}
	e.u32(uint32(len(c.Writes)))
	for _, w := range c.Writes {
		e.str(w.Kind)
		e.raw(w.Record[:])
		e.str(w.Field)
		e.raw(w.Version[:])
		e.raw(w.Delta[:])
		e.blob(w.Bases)
		h := byte(0)
		if w.Head {
			h = 1
		}
		if head != nil {
			h = *head
		}
		e.u8(h)
		if w.Head {
			e.blob(w.Value)
		}
	}
	e.u32(uint32(len(c.Superseded)))
	for _, x := range c.Superseded {
		e.str(x.Kind)
		e.raw(x.Record[:])
		e.str(x.Field)
		e.raw(x.Version[:])
	}
	e.u32(uint32(len(c.Elements)))
	for _, x := range c.Elements {
		e.str(x.Kind)
		e.raw(x.ID[:])
		e.blob(x.Body)
	}
	e.u32(uint32(len(c.Tombstones)))
	for _, x := range c.Tombstones {
		e.str(x.Kind)
		e.raw(x.ID[:])
	}
	return e.b
}

// sampleSnapshotContent is a resident after seven batches of two devices:
// the pseudonym set, then set concurrently by both (a conflict: two heads),
// one log entry kept and one removed (a tombstone). Lists are in canonical
// order.
func sampleSnapshotContent() *SnapshotContent {
	o1, o2 := DeviceID(testRaw("device dev1")), DeviceID(testRaw("device dev2"))
	if bytes.Compare(o1[:], o2[:]) > 0 {
		o1, o2 = o2, o1
	}
	first := testVersion(1767225600000, 0, o1)
	a, b := testVersion(1767225660000, 0, o1), testVersion(1767225660000, 0, o2)
	rec := DeltaID{}
	ids := []DeltaID{testDeltaID("set"), testDeltaID("set a"), testDeltaID("set b"), testDeltaID("log 1"), testDeltaID("log 2"), testDeltaID("remove log 2")}
	var deltas []SnapshotDelta
	for i, id := range ids {
		deltas = append(deltas, SnapshotDelta{ID: id, Hash: testHash(fmt.Sprintf("delta content %d", i))})
	}
	log1, log2 := ids[3], ids[4]
	if bytes.Compare(log1[:], log2[:]) > 0 {
		log1, log2 = log2, log1
	}
	c := &SnapshotContent{
		Tenant: testTenantID("org"), Stream: testStreamID("mina"), Seq: 7, Head: testHash("batch 7"),
		Authors: []SnapshotAuthor{{Device: o1, Counter: 4, Last: testHash("dev1 batch 4")}, {Device: o2, Counter: 3, Last: testHash("dev2 batch 3")}},
		Deltas:  deltas,
		Writes: []SnapshotWrite{
			{Kind: "resident", Record: rec, Field: "pseudonym", Version: first, Delta: ids[0], Bases: []byte{}, Head: false},
			{Kind: "resident", Record: rec, Field: "pseudonym", Version: a, Delta: ids[1], Bases: first[:], Head: true, Value: []byte("Mina")},
			{Kind: "resident", Record: rec, Field: "pseudonym", Version: b, Delta: ids[2], Bases: first[:], Head: true, Value: []byte("Mina K.")},
		},
		Superseded: []SnapshotSuperseded{{Kind: "resident", Record: rec, Field: "pseudonym", Version: first}},
		Elements:   []SnapshotElement{{Kind: "log", ID: log1, Body: []byte(`{"category":"practical","minutes":30,"text":"Bank"}`)}},
		Tombstones: []SnapshotTombstone{{Kind: "log", ID: log2}},
	}
	c.Deltas = sortedUnique(c.Deltas, compareDelta)
	return c
}

func (g *vectorGen) snapshotContents() {
	t := g.t
	v := func(expect string, m []byte, comment string) func() *genVector {
		return func() *genVector {
			return &genVector{format: "snapshot content", expect: expect, msgs: [][]byte{m}, comments: []string{comment}}
		}
	}
	c := sampleSnapshotContent()
	ok, err := c.Marshal()
	require.NoError(t, err)
	require.Equal(t, ok, rawSnapshotContent(c, nil), "generator layout differs from Marshal")
	g.vec("snapshot-content-ok", v("success", ok, "a conflict (two heads over one superseded write), a kept and a removed log entry"))
	empty, err := (&SnapshotContent{Tenant: c.Tenant, Stream: c.Stream, Seq: 1, Head: testHash("batch 1")}).Marshal()
	require.NoError(t, err)
	g.vec("snapshot-content-empty", v("success", empty, "a stream whose first batch changed nothing"))

	broken := func(f func(c *SnapshotContent)) []byte {
		c := sampleSnapshotContent()
		f(c)
		return rawSnapshotContent(c, nil)
	}
	g.vec("snapshot-content-deltas-unsorted", v("malformed", broken(func(c *SnapshotContent) {
		c.Deltas[0], c.Deltas[1] = c.Deltas[1], c.Deltas[0]
	}), "the first two deltas swapped"))
	g.vec("snapshot-content-duplicate-delta", v("malformed", broken(func(c *SnapshotContent) {
		c.Deltas[1] = c.Deltas[0]
	}), "the first delta listed twice"))
	g.vec("snapshot-content-writes-unsorted", v("malformed", broken(func(c *SnapshotContent) {
		c.Writes[1], c.Writes[2] = c.Writes[2], c.Writes[1]
	}), "the two heads in reverse version order"))
	g.vec("snapshot-content-duplicate-tombstone", v("malformed", broken(func(c *SnapshotContent) {
		c.Tombstones = append(c.Tombstones, c.Tombstones[0])
	}), "a removal listed twice"))
	g.vec("snapshot-content-partial-base", v("malformed", broken(func(c *SnapshotContent) {
		c.Writes[1].Bases = c.Writes[1].Bases[:RegisterVersionLen-1]
	}), "a base one byte short of a version"))
	g.vec("snapshot-content-empty-kind", v("malformed", broken(func(c *SnapshotContent) {
		c.Elements[0].Kind = ""
	}), "an element without a kind"))
	two := byte(2)
	g.vec("snapshot-content-head-flag", v("malformed", rawSnapshotContent(sampleSnapshotContent(), &two), "head byte 2"))
	g.vec("snapshot-content-header-only", v("truncated", broken(func(c *SnapshotContent) {
		c.Authors = nil
	})[:74], "cut after the head hash"))
	huge := clone(ok)
	binary.BigEndian.PutUint32(huge[74:78], 0xffffffff)
	g.vec("snapshot-content-huge-count", v("truncated", huge, "an author count of 2^32-1"))
	g.vec("snapshot-content-truncated", v("truncated", ok[:len(ok)-1], "last byte cut"))
	g.vec("snapshot-content-trailing", v("trailing bytes", append(clone(ok), 0), "a zero byte at the end"))
	g.vec("snapshot-content-unknown-version", v("unknown version", withVersion(ok, 2), "version byte 2"))
	g.vec("snapshot-content-wrong-type", v("wrong type", withType(ok, MsgSnapshot), "a snapshot's type byte"))
}
