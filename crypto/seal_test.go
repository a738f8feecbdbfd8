package crypto

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/chacha20poly1305"
)

// padmeReference is Algorithm 1 of the Padme paper (Nikitin et al., PETS
// 2019), with loops where Padme uses bit tricks:
//
//	E = floor(log2 L), S = floor(log2 E) + 1, z = E - S,
//	round L up to a multiple of 2^z.
//
// The paper leaves L < 2 undefined; both give L.
func padmeReference(l uint64) uint64 {
	if l < 2 {
		return l
	}
	e := uint64(0)
	for x := l; x > 1; x /= 2 {
		e++
	}
	s := uint64(1)
	for x := e; x > 1; x /= 2 {
		s++
	}
	step := uint64(1) << (e - s)
	return (l + step - 1) / step * step
}

func TestPadmeKnownValues(t *testing.T) {
	// Worked by hand from the algorithm above.
	tests := []struct{ n, want uint64 }{
		{0, 0}, {1, 1}, {2, 2}, {3, 3}, {4, 4}, {7, 7},
		{8, 8}, {9, 10}, {10, 10}, {11, 12}, {15, 16}, // E=3, S=2: multiples of 2
		{16, 16}, {17, 18}, {31, 32}, // E=4, S=3: multiples of 2
		{32, 32}, {33, 36}, {37, 40}, {63, 64}, // E=5, S=3: multiples of 4
		{64, 64}, {65, 72}, {100, 104}, // E=6, S=3: multiples of 8
		{129, 144},                 // E=7, S=3: multiples of 16
		{257, 272},                 // E=8, S=4: multiples of 16
		{1000, 1024},               // E=9, S=4: multiples of 32
		{1028, 1088},               // E=10, S=4: multiples of 64 (a 1 KiB delta)
		{4100, 4352},               // E=12, S=4: multiples of 256
		{65537, 67584},             // E=16, S=5: multiples of 2048
		{16<<20 + 4, 17301504},     // E=24, S=5: multiples of 2^19
		{1 << 62, 1 << 62},         // E=62, S=6
		{1<<62 + 1, 1<<62 + 1<<56}, // multiples of 2^56
	}
	for _, tt := range tests {
		if got := Padme(tt.n); got != tt.want {
			t.Errorf("got Padme(%d) = %d, want %d", tt.n, got, tt.want)
		}
		if got := padmeReference(tt.n); got != tt.want {
			t.Errorf("got padmeReference(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

func TestPadmeMatchesReference(t *testing.T) {
	for n := uint64(0); n < 1<<17; n++ {
		if got, want := Padme(n), padmeReference(n); got != want {
			t.Fatalf("got Padme(%d) = %d, want %d", n, got, want)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		n := r.Uint64N(1 << 62)
		if got, want := Padme(n), padmeReference(n); got != want {
			t.Fatalf("got Padme(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestPadmeOverhead(t *testing.T) {
	// The paper's bound: at most 12% overhead (the worst is 129 -> 144).
	for n := uint64(2); n < 1<<17; n++ {
		p := Padme(n)
		if p < n || float64(p-n)/float64(n) > 0.12 {
			t.Fatalf("got Padme(%d) = %d, want within 12%% above", n, p)
		}
		if Padme(p) != p {
			t.Fatalf("got Padme(Padme(%d)) = %d, want %d", n, Padme(p), p)
		}
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := testKey(t, "round trip")
	for _, n := range []int{0, 1, 2, 59, 60, 61, 1000, 1024, 4096, 70000} {
		pt := bytes.Repeat([]byte{0xa5}, n)
		ad := []byte("ad")
		box, err := Seal(k, ad, pt)
		require.NoError(t, err)
		if got, want := len(box), SealedSize(n); got != want {
			t.Errorf("n=%d: got sealed size %d, want %d", n, got, want)
		}
		got, err := Open(k, ad, box)
		if err != nil {
			t.Fatalf("n=%d: got error %v, want success", n, err)
		}
		if !bytes.Equal(got, pt) {
			t.Errorf("n=%d: got a different plaintext back", n)
		}
		again, err := Seal(k, ad, pt)
		require.NoError(t, err)
		if bytes.Equal(box[1:25], again[1:25]) {
			t.Errorf("n=%d: got the same nonce twice", n)
		}
	}
}

func TestSealTooLarge(t *testing.T) {
	k := testKey(t, "large")
	out, err := Seal(k, nil, make([]byte, MaxSealPlaintext+1))
	if !errors.Is(err, ErrSealTooLarge) || out != nil {
		t.Errorf("got (%d bytes, %v), want (nil, %v)", len(out), err, ErrSealTooLarge)
	}
}

// TestOpenTruncatedEveryOffset cuts boxes of several sizes at every offset.
func TestOpenTruncatedEveryOffset(t *testing.T) {
	k := testKey(t, "truncate")
	for _, n := range []int{0, 5, 100, 1024} {
		box, err := Seal(k, nil, make([]byte, n))
		require.NoError(t, err)
		for i := 0; i < len(box); i++ {
			out, err := Open(k, nil, box[:i])
			want := ErrSealAuth
			if i < sealOverhead+4 {
				want = ErrSealTruncated
			}
			if out != nil || !errors.Is(err, want) {
				t.Fatalf("n=%d cut at %d: got (%d bytes, %v), want (nil, %v)", n, i, len(out), err, want)
			}
		}
	}
}

// TestOpenBitFlipEveryBit flips each bit of a box: the version byte gives
// the version error, every other bit an authentication failure.
func TestOpenBitFlipEveryBit(t *testing.T) {
	k := testKey(t, "flip")
	ad := []byte("ad")
	box, err := Seal(k, ad, []byte("a short delta"))
	require.NoError(t, err)
	for i := range box {
		want := ErrSealAuth
		if i == 0 {
			want = ErrSealVersion
		}
		for bit := 0; bit < 8; bit++ {
			out, err := Open(k, ad, flipBit(box, i, 1<<bit))
			if out != nil || !errors.Is(err, want) {
				t.Fatalf("byte %d bit %d: got (%d bytes, %v), want (nil, %v)", i, bit, len(out), err, want)
			}
		}
	}
}

func TestOpenErrors(t *testing.T) {
	k := testKey(t, "errors")
	other := testKey(t, "errors 2")
	ad := []byte("ad")
	box, err := Seal(k, ad, []byte("hello"))
	require.NoError(t, err)
	nonce := box[1:25]
	tests := []struct {
		name string
		key  *Key
		ad   []byte
		box  []byte
		want error
	}{
		{"wrong key", other, ad, box, ErrSealAuth},
		{"wrong ad", k, []byte("ae"), box, ErrSealAuth},
		{"nil ad", k, nil, box, ErrSealAuth},
		{"nil box", k, ad, nil, ErrSealTruncated},
		{"version 0", k, ad, append([]byte{0}, box[1:]...), ErrSealVersion},
		{"version 0xff", k, ad, append([]byte{0xff}, box[1:]...), ErrSealVersion},
		{"version 2, short", k, ad, []byte{2}, ErrSealVersion},
		{"non-zero padding", k, ad, sealBody(t, k, nonce, ad, append(lengthPrefixed(5, []byte("hello")), 0x80)), ErrSealPadding},
		{"body not padded", k, ad, sealBody(t, k, nonce, ad, lengthPrefixed(5, []byte("hello"))), ErrSealPadding},
		{"body over-padded", k, ad, sealBody(t, k, nonce, ad, lengthPrefixed(0, make([]byte, 8))), ErrSealPadding},
		{"length beyond body", k, ad, sealBody(t, k, nonce, ad, lengthPrefixed(7, []byte("hello0"))), ErrSealPadding},
		{"length 2^32-1", k, ad, sealBody(t, k, nonce, ad, lengthPrefixed(0xffffffff, []byte("hello0"))), ErrSealPadding},
		{"body of 3 bytes", k, ad, sealBody(t, k, nonce, ad, []byte{0, 0, 0}), ErrSealTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Open(tt.key, tt.ad, tt.box)
			if out != nil || !errors.Is(err, tt.want) {
				t.Errorf("got (%q, %v), want (nil, %v)", out, err, tt.want)
			}
		})
	}
	// Control: a hand-made body that is canonical opens, so the cases above
	// fail for the reason they name.
	ok := sealBody(t, k, nonce, ad, append(lengthPrefixed(5, []byte("hello")), 0))
	out, err := Open(k, ad, ok)
	require.NoError(t, err)
	if string(out) != "hello" {
		t.Errorf("got %q, want %q", out, "hello")
	}
	if !bytes.Equal(ok, box) {
		t.Errorf("got a hand-made box different from Seal's under the same nonce")
	}
}

func TestSealWithNonceLayout(t *testing.T) {
	k := testKey(t, "layout")
	nonce := testSeed("nonce")[:chacha20poly1305.NonceSizeX]
	box, err := sealWithNonce(k, nonce, []byte("ad"), []byte("hi"))
	require.NoError(t, err)
	if box[0] != sealVersion {
		t.Errorf("got version byte %#x, want %#x", box[0], sealVersion)
	}
	if !bytes.Equal(box[1:25], nonce) {
		t.Errorf("got nonce %x, want %x", box[1:25], nonce)
	}
	if got, want := len(box), 1+24+6+16; got != want { // Padme(4+2) = 6
		t.Errorf("got %d bytes, want %d", got, want)
	}
}

func TestKeys(t *testing.T) {
	k1 := testKey(t, "k1")
	k2 := testKey(t, "k2")
	if !k1.Equal(testKey(t, "k1")) || k1.Equal(k2) {
		t.Errorf("got Equal wrong")
	}
	for _, n := range []int{0, 31, 33} {
		if _, err := KeyFromBytes(make([]byte, n)); err == nil {
			t.Errorf("got KeyFromBytes(%d bytes) accepted, want an error", n)
		}
	}
	b := k1.Bytes()
	b[0] ^= 1
	if !k1.Equal(testKey(t, "k1")) {
		t.Errorf("got the key changed through the slice Bytes returned")
	}
	fresh, err := NewKey()
	require.NoError(t, err)
	if fresh.Equal(&Key{}) {
		t.Errorf("got an all-zero fresh key")
	}
	d := testKey(t, "destroy")
	d.Destroy()
	if !d.Equal(&Key{}) {
		t.Errorf("got key bytes left after Destroy")
	}
}

func TestKeyCommitment(t *testing.T) {
	k := testKey(t, "commit")
	ctx := []byte("tenant/stream/epoch 1")
	c := k.Commitment(ctx)
	if !k.CheckCommitment(ctx, c) {
		t.Errorf("got the key's own commitment rejected")
	}
	if k.CheckCommitment([]byte("tenant/stream/epoch 2"), c) {
		t.Errorf("got the commitment accepted in another context")
	}
	if testKey(t, "commit 2").CheckCommitment(ctx, c) {
		t.Errorf("got the commitment accepted for another key")
	}
	if c == LabeledHash("fristed/v1/key-commitment", k.b[:], ctx) {
		t.Errorf("got the same commitment with context and key swapped")
	}
}

func TestLabeledHashDomainSeparation(t *testing.T) {
	tests := []struct {
		labelA string
		partsA [][]byte
		labelB string
		partsB [][]byte
	}{
		{"l", [][]byte{[]byte("ab"), []byte("c")}, "l", [][]byte{[]byte("a"), []byte("bc")}},
		{"l", [][]byte{[]byte("abc")}, "l", [][]byte{[]byte("abc"), nil}},
		{"la", [][]byte{[]byte("b")}, "l", [][]byte{[]byte("ab")}},
		{"l", nil, "l", [][]byte{nil}},
		{"a", nil, "b", nil},
	}
	for _, tt := range tests {
		if LabeledHash(tt.labelA, tt.partsA...) == LabeledHash(tt.labelB, tt.partsB...) {
			t.Errorf("got LabeledHash(%q, %q) == LabeledHash(%q, %q), want different", tt.labelA, tt.partsA, tt.labelB, tt.partsB)
		}
	}
}

// TestPadFixed: a fixed-size body for every plaintext that fits, one body
// per plaintext (Unpad refuses any other), ErrSealTooLarge beyond.
func TestPadFixed(t *testing.T) {
	for _, n := range []int{0, 1, 100, 252} {
		pt := bytes.Repeat([]byte{'a'}, n)
		body, err := PadFixed(pt, 256)
		if err != nil || len(body) != 256 {
			t.Fatalf("PadFixed(%d bytes, 256): got (%d bytes, %v), want 256 bytes", n, len(body), err)
		}
		got, err := Unpad(body)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Unpad(PadFixed(%d bytes)): got (%q, %v)", n, got, err)
		}
		if n < 252 {
			bad := bytes.Clone(body)
			bad[255] = 1
			if _, err := Unpad(bad); !errors.Is(err, ErrSealPadding) {
				t.Fatalf("non-zero padding after %d bytes: got %v, want ErrSealPadding", n, err)
			}
		}
	}
	if _, err := PadFixed(make([]byte, 253), 256); !errors.Is(err, ErrSealTooLarge) {
		t.Fatalf("253 bytes into 256: got %v, want ErrSealTooLarge", err)
	}
	if _, err := PadFixed(nil, 3); !errors.Is(err, ErrSealTooLarge) {
		t.Fatalf("size 3: got %v, want ErrSealTooLarge", err)
	}
	for _, body := range [][]byte{nil, {0, 0, 0}, {0, 0, 0, 1}, {0xff, 0xff, 0xff, 0xff, 0}} {
		if _, err := Unpad(body); !errors.Is(err, ErrSealPadding) {
			t.Fatalf("Unpad(%x): got %v, want ErrSealPadding", body, err)
		}
	}
}
