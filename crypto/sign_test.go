package crypto

import (
	stdcrypto "crypto"
	"crypto/ed25519"
	"crypto/sha512"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/curve25519"
)

var allLabels = []Label{LabelAuth, LabelBatch, LabelStatement, LabelSnapshot, LabelCard, LabelReceipt, LabelEnrol, LabelAudit}

func TestLabelsClosedSet(t *testing.T) {
	if got, want := len(labels), len(allLabels); got != want {
		t.Fatalf("got %d labels, want %d", got, want)
	}
	for _, l := range allLabels {
		if !labels[l] {
			t.Errorf("got %q missing from the set", l)
		}
		if !strings.HasPrefix(string(l), "fristed/v1/") || len(l) > 255 {
			t.Errorf("got label %q, want fristed/v1/... of at most 255 bytes (the Ed25519ctx limit)", l)
		}
	}
}

// TestSignatureUnderEveryLabel signs under each label and verifies under
// each: only the same label verifies.
func TestSignatureUnderEveryLabel(t *testing.T) {
	k := testSigningKey(t, "labels")
	msg := []byte("the same bytes in every role")
	for _, signed := range allLabels {
		sig, err := k.Sign(signed, msg)
		require.NoError(t, err)
		for _, presented := range allLabels {
			err := k.Public().Verify(presented, msg, sig)
			switch {
			case signed == presented && err != nil:
				t.Errorf("signed under %s, verified under %s: got %v, want success", signed, presented, err)
			case signed != presented && !errors.Is(err, ErrBadSignature):
				t.Errorf("signed under %s, verified under %s: got %v, want %v", signed, presented, err, ErrBadSignature)
			}
		}
	}
}

// TestSignIsEd25519ctx checks the mode: Ed25519ctx with the label as the
// context, neither pure Ed25519 nor Ed25519ph.
func TestSignIsEd25519ctx(t *testing.T) {
	k := testSigningKey(t, "mode")
	p := k.Public()
	pub := ed25519.PublicKey(p[:])
	msg := []byte("message")
	sig := k.MustSign(LabelBatch, msg)
	if err := ed25519.VerifyWithOptions(pub, msg, sig, &ed25519.Options{Context: string(LabelBatch)}); err != nil {
		t.Errorf("got Ed25519ctx verification error %v, want success", err)
	}
	if ed25519.Verify(pub, msg, sig) {
		t.Errorf("got the signature accepted as pure Ed25519")
	}
	digest := sha512.Sum512(msg)
	if ed25519.VerifyWithOptions(pub, digest[:], sig, &ed25519.Options{Hash: stdcrypto.SHA512, Context: string(LabelBatch)}) == nil {
		t.Errorf("got the signature accepted as Ed25519ph")
	}
}

func TestUnknownLabel(t *testing.T) {
	k := testSigningKey(t, "unknown")
	for _, l := range []Label{"", "fristed/v1/other", "fristed/v1/auth ", Label(strings.ToUpper(string(LabelAuth)))} {
		if sig, err := k.Sign(l, []byte("m")); !errors.Is(err, ErrUnknownLabel) || sig != nil {
			t.Errorf("Sign(%q): got (%x, %v), want (nil, %v)", l, sig, err, ErrUnknownLabel)
		}
		if err := k.Public().Verify(l, []byte("m"), make([]byte, SignatureSize)); !errors.Is(err, ErrUnknownLabel) {
			t.Errorf("Verify(%q): got %v, want %v", l, err, ErrUnknownLabel)
		}
	}
	require.Panics(t, func() { k.MustSign("fristed/v1/other", nil) })
}

func TestVerifyBitFlips(t *testing.T) {
	k := testSigningKey(t, "flips")
	msg := []byte("batch hash")
	sig := k.MustSign(LabelBatch, msg)
	for i := range sig {
		for bit := 0; bit < 8; bit++ {
			if err := k.Public().Verify(LabelBatch, msg, flipBit(sig, i, 1<<bit)); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("signature byte %d bit %d: got %v, want %v", i, bit, err, ErrBadSignature)
			}
		}
	}
	for i := range msg {
		if err := k.Public().Verify(LabelBatch, flipBit(msg, i, 0x01), sig); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("message byte %d: got %v, want %v", i, err, ErrBadSignature)
		}
	}
	for _, n := range []int{0, SignatureSize - 1, SignatureSize + 1} {
		s := make([]byte, n)
		copy(s, sig)
		if err := k.Public().Verify(LabelBatch, msg, s); !errors.Is(err, ErrBadSignature) {
			t.Errorf("signature of %d bytes: got %v, want %v", n, err, ErrBadSignature)
		}
	}
}

// TestSmallOrderKeysDerived rebuilds the list of small-order encodings from
// the curve equation and checks it against the one Verify uses, and that
// each point is of small order for an independent implementation: mapped
// to Curve25519, X25519 rejects it.
func TestSmallOrderKeysDerived(t *testing.T) {
	var derived []PublicKey
	ys := smallOrderEdwardsY(t)
	for _, y := range ys {
		derived = append(derived, PublicKey(littleEndian32(y)))
	}
	// Non-canonical encodings: y + p < 2^255 only for y = 0 and y = 1.
	for _, y := range ys {
		if y.Cmp(big.NewInt(19)) < 0 {
			derived = append(derived, PublicKey(littleEndian32(new(big.Int).Add(y, fieldP))))
		}
	}
	if got, want := len(derived), len(smallOrderKeys); got != want {
		t.Fatalf("got %d derived encodings, want %d", got, want)
	}
	for _, d := range derived {
		if !slices.Contains(smallOrderKeys[:], d) {
			t.Errorf("got %x derived but not in smallOrderKeys", d[:])
		}
	}
	scalar := testSeed("scalar")
	for _, u := range lowOrderX25519Points(t) {
		if _, err := curve25519.X25519(scalar, u[:]); err == nil {
			t.Errorf("got X25519 with u = %x accepted, want a low-order error", u[:])
		}
	}
}

// TestVerifyRejectsSmallOrderKeys shows why the check exists: under each
// small-order key that crypto/ed25519 decodes, a forged signature verifies
// with the standard library alone, and Verify refuses it.
func TestVerifyRejectsSmallOrderKeys(t *testing.T) {
	forged := 0
	for _, base := range smallOrderKeys {
		for _, sign := range []byte{0, 0x80} {
			key := base
			key[31] |= sign
			if !key.isSmallOrder() {
				t.Errorf("got %x not small order", key[:])
			}
			if _, err := ParsePublicKey(key.String()); err == nil {
				t.Errorf("got ParsePublicKey(%s) accepted, want an error", key)
			}
			sig := make([]byte, SignatureSize)
			sig[0] = 0x01 // R = identity, s = 0
			for i := 0; i < 64; i++ {
				msg := fmt.Appendf(nil, "forged %d", i)
				if err := key.Verify(LabelStatement, msg, sig); !errors.Is(err, ErrBadSignature) {
					t.Fatalf("key %x: got %v, want %v", key[:], err, ErrBadSignature)
				}
				if ed25519.VerifyWithOptions(key[:], msg, sig, &ed25519.Options{Context: string(LabelStatement)}) == nil {
					forged++
				}
			}
		}
	}
	if forged == 0 {
		t.Errorf("got no forgery accepted by crypto/ed25519 under any small-order key, want some")
	}
	if (PublicKey{}).Verify(LabelBatch, nil, make([]byte, SignatureSize)) == nil {
		t.Errorf("got the zero key verifying, want an error")
	}
}

func TestParsePublicKey(t *testing.T) {
	k := testSigningKey(t, "parse").Public()
	s := k.String()
	got, err := ParsePublicKey(s)
	require.NoError(t, err)
	if got != k {
		t.Errorf("got %s, want %s", got, k)
	}
	if !strings.HasPrefix(s, "fpub1") || len(s) != 5+43 {
		t.Errorf("got %q, want fpub1 and 43 base64url characters", s)
	}
	for _, bad := range []string{"", "fpub1", s[:len(s)-1], s + "A", "x" + s, strings.ToUpper(s[:5]) + s[5:], s + "\n", " " + s} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("got ParsePublicKey(%q) accepted, want an error", bad)
		}
	}
}

func TestSigningKeys(t *testing.T) {
	k := testSigningKey(t, "seed")
	again, err := NewSigningKeyFromSeed(k.MarshalSeed())
	require.NoError(t, err)
	if !k.Equal(again) || k.Public() != again.Public() {
		t.Errorf("got a different key from the same seed")
	}
	if k.Equal(testSigningKey(t, "other seed")) {
		t.Errorf("got two keys equal")
	}
	seed := k.MarshalSeed()
	seed[0] ^= 1
	if !k.Equal(again) {
		t.Errorf("got the key changed through MarshalSeed's slice")
	}
	for _, n := range []int{0, 31, 33, 64} {
		if _, err := NewSigningKeyFromSeed(make([]byte, n)); err == nil {
			t.Errorf("got a %d-byte seed accepted, want an error", n)
		}
	}
	g, err := GenerateSigningKey()
	require.NoError(t, err)
	if g.Public().IsZero() || g.Public().isSmallOrder() {
		t.Errorf("got a generated key of small order")
	}
	if !k.Public().Equal(again.Public()) || k.Public().Equal(g.Public()) {
		t.Errorf("got PublicKey.Equal wrong")
	}
}
