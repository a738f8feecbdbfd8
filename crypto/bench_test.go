package crypto

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"filippo.io/age"
	"github.com/stretchr/testify/require"
)

// A batch as the sync engine builds it: 100 deltas of 1 KiB, each sealed
// under the epoch key with its own associated data, and one Ed25519ctx
// signature over the hashes of the sealed deltas.
const (
	benchDeltas    = 100
	benchDeltaSize = 1024
)

type benchBatch struct {
	key    *Key
	signer *SigningKey
	ads    [][]byte
	deltas [][]byte
}

func newBenchBatch(b *testing.B) *benchBatch {
	bb := &benchBatch{key: testKey(b, "bench epoch"), signer: testSigningKey(b, "bench device")}
	for i := range benchDeltas {
		bb.ads = append(bb.ads, fmt.Appendf(nil, "tenant/stream/epoch/delta %d", i))
		d := make([]byte, benchDeltaSize)
		for j := range d {
			d[j] = byte(i + j)
		}
		bb.deltas = append(bb.deltas, d)
	}
	return bb
}

func (bb *benchBatch) seal(tb testing.TB) (boxes [][]byte, sig []byte) {
	h := sha256.New()
	for i, d := range bb.deltas {
		box, err := Seal(bb.key, bb.ads[i], d)
		require.NoError(tb, err)
		sum := sha256.Sum256(box)
		h.Write(sum[:])
		boxes = append(boxes, box)
	}
	sig, err := bb.signer.Sign(LabelBatch, h.Sum(nil))
	require.NoError(tb, err)
	return boxes, sig
}

func BenchmarkSealBatch(b *testing.B) {
	bb := newBenchBatch(b)
	b.SetBytes(benchDeltas * benchDeltaSize)
	b.ReportAllocs()
	for b.Loop() {
		bb.seal(b)
	}
}

func BenchmarkOpenBatch(b *testing.B) {
	bb := newBenchBatch(b)
	boxes, sig := bb.seal(b)
	pub := bb.signer.Public()
	b.SetBytes(benchDeltas * benchDeltaSize)
	b.ReportAllocs()
	for b.Loop() {
		h := sha256.New()
		for _, box := range boxes {
			sum := sha256.Sum256(box)
			h.Write(sum[:])
		}
		if err := pub.Verify(LabelBatch, h.Sum(nil), sig); err != nil {
			b.Fatal(err)
		}
		for i, box := range boxes {
			if _, err := Open(bb.key, bb.ads[i], box); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkSignVerify(b *testing.B) {
	k := testSigningKey(b, "bench")
	msg := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		sig := k.MustSign(LabelBatch, msg)
		if err := k.Public().Verify(LabelBatch, msg, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func benchDevices(b *testing.B) ([]*BoxIdentity, []age.Recipient) {
	var ids []*BoxIdentity
	var rs []age.Recipient
	for i := range 5 {
		id := testBoxIdentity(b, fmt.Sprintf("bench device %d", i))
		ids = append(ids, id)
		rs = append(rs, id.Recipient().Recipient())
	}
	return ids, rs
}

func BenchmarkWrapKeyFiveDevices(b *testing.B) {
	key := testKey(b, "bench epoch")
	_, rs := benchDevices(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := WrapKey(key, rs...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnwrapKey opens a key wrapped to five devices as the first and
// as the last of them: age tries the stanzas in order, one ML-KEM
// decapsulation each.
func BenchmarkUnwrapKey(b *testing.B) {
	key := testKey(b, "bench epoch")
	ctx := []byte("tenant/stream/epoch")
	c := key.Commitment(ctx)
	ids, rs := benchDevices(b)
	wrapped, err := WrapKey(key, rs...)
	require.NoError(b, err)
	for _, i := range []int{0, 4} {
		b.Run(fmt.Sprintf("stanza=%d", i+1), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := UnwrapKey(wrapped, ctx, c, ids[i].Identity()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecryptKeyFile is the unlock cost: almost all of it is scrypt,
// so it is reported apart from everything else, at the default work factor
// and at the tests' low one (what is left is age and the parse).
func BenchmarkDecryptKeyFile(b *testing.B) {
	kf := testKeyFile(b, KindDevice, []byte("meta"))
	for _, wf := range []int{DefaultWorkFactor, testWorkFactor} {
		b.Run(fmt.Sprintf("logN=%d", wf), func(b *testing.B) {
			file, err := EncryptKeyFile(kf, []byte(testPassphrase), wf)
			require.NoError(b, err)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecryptKeyFile(file, []byte(testPassphrase), KindDevice); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEnvelope(b *testing.B) {
	release := testBoxIdentity(b, "release")
	police := testX25519Identity(b, "police")
	card := make([]byte, 2048)
	b.Run("seal", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := SealEnvelope(card, police.Recipient(), release.Recipient()); err != nil {
				b.Fatal(err)
			}
		}
	})
	_, outer, err := SealEnvelope(card, police.Recipient(), release.Recipient())
	require.NoError(b, err)
	b.Run("open-outer", func(b *testing.B) {
		for b.Loop() {
			if _, err := OpenOuter(outer, release); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSealTo measures sealing one audit entry (a reveal's delta is
// about 200 bytes) to the coordinator laptops' hybrid recipients, and
// opening it on one of them; bytes/entry is the sealed size.
//
//	go test ./crypto -run '^$' -bench 'BenchmarkSealTo' -benchtime 200x
func BenchmarkSealTo(b *testing.B) {
	msg := make([]byte, 200)
	for _, n := range []int{1, 3} {
		var rs []BoxRecipient
		var first *BoxIdentity
		for i := range n {
			id, err := GenerateBoxIdentity()
			require.NoError(b, err)
			if i == 0 {
				first = id
			}
			rs = append(rs, id.Recipient())
		}
		b.Run(fmt.Sprintf("seal/coordinators=%d", n), func(b *testing.B) {
			var size int
			for b.Loop() {
				s, err := SealTo(msg, rs...)
				require.NoError(b, err)
				size = len(s)
			}
			b.ReportMetric(float64(size), "bytes/entry")
		})
		sealed, err := SealTo(msg, rs...)
		require.NoError(b, err)
		b.Run(fmt.Sprintf("open/coordinators=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := OpenWith(sealed, first); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDeriveBoxIdentity: deriving an audit epoch's identity from its
// key, which a coordinator laptop does for each audit entry it opens.
func BenchmarkDeriveBoxIdentity(b *testing.B) {
	k, err := NewKey()
	require.NoError(b, err)
	for b.Loop() {
		if _, err := k.DeriveBoxIdentity([]byte("context")); err != nil {
			b.Fatal(err)
		}
	}
}
