package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/stretchr/testify/require"
)

type policeKey struct {
	name      string
	recipient age.Recipient
	identity  age.Identity
}

func testPoliceKeys(t testing.TB) []policeKey {
	x := testX25519Identity(t, "police")
	h := testBoxIdentity(t, "police hybrid")
	return []policeKey{
		{"x25519", x.Recipient(), x},
		{"hybrid", h.Recipient().Recipient(), h.Identity()},
	}
}

// TestEnvelopeLayers seals cards of several lengths to both kinds of
// police key: the outer layer opens with the release identity to the inner
// layer, which opens with the police identity to the card, and every outer
// layer has the same size.
func TestEnvelopeLayers(t *testing.T) {
	release := testBoxIdentity(t, "release")
	sizes := map[int]string{}
	for _, p := range testPoliceKeys(t) {
		for _, n := range []int{0, 1, 100, CardSize - 1, CardSize} {
			name := fmt.Sprintf("%s/%d", p.name, n)
			t.Run(name, func(t *testing.T) {
				card := bytes.Repeat([]byte("card text "), n/10+1)[:n]
				inner, outer, err := SealEnvelope(card, p.recipient, release.Recipient())
				require.NoError(t, err)
				sizes[len(outer)] = name

				gotInner, err := OpenOuter(outer, release)
				require.NoError(t, err)
				if !bytes.Equal(gotInner, inner) {
					t.Fatalf("got another inner layer from the outer one")
				}
				require.NoError(t, CheckInner(gotInner, InnerCommitment(inner)))
				got, err := OpenInner(gotInner, p.identity)
				require.NoError(t, err)
				if !bytes.Equal(got, card) {
					t.Errorf("got card %.20q..., want %.20q...", got, card)
				}
				// The police's age tool shows the card and blank lines.
				padded := ageDecryptAll(t, inner, p.identity)
				want, err := PadCard(card)
				require.NoError(t, err)
				if !bytes.Equal(padded, want) || len(padded) != CardSize {
					t.Errorf("got %d bytes from age, want the card padded to %d", len(padded), CardSize)
				}
			})
		}
	}
	if len(sizes) != 1 {
		t.Errorf("got outer layers of %d sizes (%v), want one", len(sizes), sizes)
	}
}

func TestEnvelopeTrailingNewlinesDropped(t *testing.T) {
	// A documented limit of the newline padding: OpenInner cannot tell the
	// card's own trailing newlines from the padding.
	release := testBoxIdentity(t, "release")
	p := testPoliceKeys(t)[0]
	inner, _, err := SealEnvelope([]byte("card\n\n"), p.recipient, release.Recipient())
	require.NoError(t, err)
	got, err := OpenInner(inner, p.identity)
	require.NoError(t, err)
	if string(got) != "card" {
		t.Errorf("got %q, want %q", got, "card")
	}
}

func TestSealEnvelopeErrors(t *testing.T) {
	release := testBoxIdentity(t, "release").Recipient()
	p := testPoliceKeys(t)[0]
	tests := []struct {
		name    string
		card    []byte
		police  age.Recipient
		release BoxRecipient
		want    error
	}{
		{"card too large", make([]byte, CardSize+1), p.recipient, release, ErrCardTooLarge},
		{"no police recipient", []byte("card"), nil, release, nil},
		{"no release recipient", []byte("card"), p.recipient, BoxRecipient{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner, outer, err := SealEnvelope(tt.card, tt.police, tt.release)
			if err == nil || inner != nil || outer != nil {
				t.Fatalf("got (%d, %d bytes, %v), want an error", len(inner), len(outer), err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSealOuterErrors(t *testing.T) {
	release := testBoxIdentity(t, "release").Recipient()
	for _, n := range []int{0, OuterPlainSize - 3, OuterPlainSize} {
		if out, err := SealOuter(make([]byte, n), release); err == nil || out != nil {
			t.Errorf("inner of %d bytes: got (%d bytes, %v), want an error", n, len(out), err)
		}
	}
	if out, err := SealOuter(make([]byte, OuterPlainSize-4), release); err != nil || out == nil {
		t.Errorf("inner of the largest size: got %v, want success", err)
	}
}

func TestOuterPlainRoundTrip(t *testing.T) {
	for _, n := range []int{1, 100, OuterPlainSize - 4} {
		inner := bytes.Repeat([]byte{0xaa}, n)
		plain, err := outerPlain(inner)
		require.NoError(t, err)
		got, err := parseOuterPlain(plain)
		require.NoError(t, err)
		if !bytes.Equal(got, inner) {
			t.Errorf("n=%d: got another inner layer back", n)
		}
	}
}

func TestParseOuterPlainErrors(t *testing.T) {
	good, err := outerPlain([]byte("inner"))
	require.NoError(t, err)
	set := func(i int, b byte) []byte { return flipBit(good, i, good[i]^b) }
	withLen := func(n uint32) []byte {
		p := append([]byte(nil), good...)
		p[0], p[1], p[2], p[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		return p
	}
	for name, plain := range map[string][]byte{
		"empty":              nil,
		"short":              good[:OuterPlainSize-1],
		"long":               append(append([]byte(nil), good...), 0),
		"length 0":           withLen(0),
		"length past end":    withLen(OuterPlainSize - 3),
		"length 2^32-1":      withLen(0xffffffff),
		"non-zero padding":   set(OuterPlainSize-1, 1),
		"padding after body": set(4+5, 0x80),
	} {
		if got, err := parseOuterPlain(plain); got != nil || !errors.Is(err, ErrEnvelopeMalformed) {
			t.Errorf("%s: got (%d bytes, %v), want (nil, %v)", name, len(got), err, ErrEnvelopeMalformed)
		}
	}
}

func TestOpenEnvelopeWrongIdentities(t *testing.T) {
	release := testBoxIdentity(t, "release")
	p := testPoliceKeys(t)
	inner, outer, err := SealEnvelope([]byte("card"), p[0].recipient, release.Recipient())
	require.NoError(t, err)
	if got, err := OpenOuter(outer, testBoxIdentity(t, "other release")); got != nil || !errors.Is(err, ErrNoIdentityMatch) {
		t.Errorf("outer, other release identity: got (%d bytes, %v), want (nil, %v)", len(got), err, ErrNoIdentityMatch)
	}
	if got, err := OpenOuter(outer, nil); got != nil || err == nil {
		t.Errorf("outer, nil identity: got (%d bytes, %v), want an error", len(got), err)
	}
	if got, err := OpenInner(inner, nil); got != nil || err == nil {
		t.Errorf("inner, nil identity: got (%d bytes, %v), want an error", len(got), err)
	}
	if got, err := OpenInner(inner, p[1].identity); got != nil || !errors.Is(err, ErrNoIdentityMatch) {
		t.Errorf("inner, other police identity: got (%d bytes, %v), want (nil, %v)", len(got), err, ErrNoIdentityMatch)
	}
	if got, err := OpenInner(outer, p[0].identity); got != nil || !errors.Is(err, ErrNoIdentityMatch) {
		t.Errorf("outer opened as inner: got (%d bytes, %v), want (nil, %v)", len(got), err, ErrNoIdentityMatch)
	}
}

func TestCheckInner(t *testing.T) {
	a, b := []byte("inner a"), []byte("inner b")
	if err := CheckInner(a, InnerCommitment(a)); err != nil {
		t.Errorf("got %v, want success", err)
	}
	if err := CheckInner(a, InnerCommitment(b)); !errors.Is(err, ErrInnerMismatch) {
		t.Errorf("got %v, want %v", err, ErrInnerMismatch)
	}
	if err := CheckInner(a[:len(a)-1], InnerCommitment(a)); !errors.Is(err, ErrInnerMismatch) {
		t.Errorf("truncated: got %v, want %v", err, ErrInnerMismatch)
	}
}

func sealedOuter(t testing.TB) (outer []byte, release *BoxIdentity) {
	release = testBoxIdentity(t, "release")
	_, outer, err := SealEnvelope([]byte("card"), testPoliceKeys(t)[0].recipient, release.Recipient())
	require.NoError(t, err)
	return outer, release
}

// TestOpenOuterTruncatedEveryOffset cuts an outer layer at every offset.
func TestOpenOuterTruncatedEveryOffset(t *testing.T) {
	outer, release := sealedOuter(t)
	for i := 0; i < len(outer); i++ {
		got, err := OpenOuter(outer[:i], release)
		if got != nil || !isUnclassified(err) || !strings.HasPrefix(err.Error(), "open outer layer: ") {
			t.Fatalf("cut at %d of %d: got (%d bytes, %v), want (nil, an open outer layer error)", i, len(outer), len(got), err)
		}
	}
}

// TestOpenOuterBitFlips flips a bit in every byte of the header and of the
// payload's nonce, and in every 61st byte of the payload (a flip anywhere
// in a chunk fails its tag alike), and in each byte of the final tag.
func TestOpenOuterBitFlips(t *testing.T) {
	outer, release := sealedOuter(t)
	end := headerEnd(t, outer)
	var positions []int
	for i := range outer {
		if i < end+16 || i%61 == 0 || i >= len(outer)-16 {
			positions = append(positions, i)
		}
	}
	for _, i := range positions {
		got, err := OpenOuter(flipBit(outer, i, 0x01), release)
		ok := isUnclassified(err) || (i < end && errors.Is(err, ErrNoIdentityMatch))
		if got != nil || !ok {
			t.Fatalf("byte %d (header ends at %d): got (%d bytes, %v), want (nil, a header or payload error)", i, end, len(got), err)
		}
	}
}
