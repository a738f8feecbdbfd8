package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/chacha20poly1305"
)

// Fuzz targets for every decoder. Each is seeded from the vectors and
// fails if there are none; where an encoder exists, whatever decodes must
// re-encode to the same bytes, so no non-canonical input is accepted.
// Long campaigns: go test ./crypto -run '^$' -fuzz '^FuzzOpen$' -fuzztime 10m

// successVector returns the first success vector of kind.
func successVector(f *testing.F, kind string) *vector {
	for _, v := range vectorsOfKind(f, kind) {
		if v.expect == "success" {
			return v
		}
	}
	f.Fatalf("no %q success vector", kind)
	return nil
}

func addSeeds(f *testing.F, seeds ...[]byte) {
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	for _, s := range seeds {
		f.Add(s)
	}
}

func addStringSeeds(f *testing.F, seeds ...string) {
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	for _, s := range seeds {
		f.Add(s)
	}
}

func inputs(f *testing.F, kind string) [][]byte {
	var out [][]byte
	for _, v := range vectorsOfKind(f, kind) {
		out = append(out, v.input)
	}
	return out
}

func FuzzOpen(f *testing.F) {
	v := successVector(f, "sealed box")
	k, err := KeyFromBytes(v.hexHeader(f, "key"))
	require.NoError(f, err)
	ad := v.hexHeader(f, "ad")
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	addSeeds(f, inputs(f, "sealed box")...)
	f.Fuzz(func(t *testing.T, data []byte) {
		// As a box: only an authentic one opens, and it re-seals to itself.
		out, err := Open(k, ad, data)
		if err != nil {
			if out != nil {
				t.Fatalf("got %d bytes with error %v", len(out), err)
			}
			if !errors.Is(err, ErrSealTruncated) && !errors.Is(err, ErrSealVersion) && !errors.Is(err, ErrSealAuth) && !errors.Is(err, ErrSealPadding) {
				t.Fatalf("got unexpected error %v", err)
			}
		} else {
			again, err := sealWithNonce(k, data[1:25], ad, out)
			require.NoError(t, err)
			if !bytes.Equal(again, data) {
				t.Fatalf("got a box that opens but does not re-seal to itself")
			}
		}
		// As an authentic body, to reach the length and padding checks.
		box := sealBody(t, k, nonce, ad, data)
		out, err = Open(k, ad, box)
		if err != nil {
			if out != nil || (!errors.Is(err, ErrSealPadding) && !errors.Is(err, ErrSealTruncated)) {
				t.Fatalf("authentic body %x: got (%d bytes, %v), want (nil, a padding or truncation error)", data, len(out), err)
			}
			return
		}
		again, err := sealWithNonce(k, nonce, ad, out)
		require.NoError(t, err)
		if !bytes.Equal(again, box) {
			t.Fatalf("body %x: accepted but not canonical", data)
		}
	})
}

func FuzzParseKeyFilePlain(f *testing.F) {
	var seeds [][]byte
	for _, v := range vectorsOfKind(f, "key file") {
		id, err := age.NewScryptIdentity(v.header(f, "passphrase"))
		require.NoError(f, err)
		r, err := age.Decrypt(bytes.NewReader(v.input), id)
		if err != nil {
			continue // not a scrypt file, or not this passphrase
		}
		var b bytes.Buffer
		if _, err := b.ReadFrom(r); err == nil {
			seeds = append(seeds, b.Bytes())
		}
	}
	addSeeds(f, seeds...)
	f.Fuzz(func(t *testing.T, data []byte) {
		kf, err := parseKeyFilePlain(data)
		if err != nil {
			if kf != nil || (!errors.Is(err, ErrKeyFileFormat) && !errors.Is(err, ErrKeyFileVersion)) {
				t.Fatalf("got (%v, %v), want (nil, a format or version error)", kf, err)
			}
			return
		}
		again, err := kf.marshalPlain()
		require.NoError(t, err)
		if !bytes.Equal(again, data) {
			t.Fatalf("got %x re-encoded, want %x", again, data)
		}
	})
}

// asciiCode is how a typed code is compared: ASCII letters upper-cased,
// dashes and spaces dropped, surrounding white space trimmed.
func asciiCode(s string) string {
	s = strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(s))
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func FuzzParseEnrolmentCode(f *testing.F) {
	var seeds []string
	for _, v := range vectorsOfKind(f, "enrolment code") {
		seeds = append(seeds, string(v.input))
	}
	addStringSeeds(f, seeds...)
	f.Fuzz(func(t *testing.T, s string) {
		reqID, prefix, err := ParseEnrolmentCode(s)
		if err != nil {
			if reqID != nil || prefix != nil {
				t.Fatalf("got values with error %v", err)
			}
			return
		}
		if len(reqID) != requestIDSize || len(prefix) != enrolCommitBytes {
			t.Fatalf("got %d and %d bytes, want %d and %d", len(reqID), len(prefix), requestIDSize, enrolCommitBytes)
		}
		var c [32]byte
		copy(c[:], prefix)
		code := EnrolmentCode(reqID, c)
		if asciiCode(code) != asciiCode(s) {
			t.Fatalf("got %q accepted as %q", s, code)
		}
	})
}

func FuzzParseFingerprint(f *testing.F) {
	var seeds []string
	for _, v := range vectorsOfKind(f, "org fingerprint") {
		seeds = append(seeds, string(v.input))
	}
	addStringSeeds(f, seeds...)
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprint(s)
		if err != nil {
			if fp != (Fingerprint{}) {
				t.Fatalf("got a fingerprint with error %v", err)
			}
			return
		}
		if got := fp.String(); got != strings.TrimSpace(s) {
			t.Fatalf("got %q accepted as %q", s, got)
		}
		_ = fp.CheckCode()
	})
}

func FuzzParsePublicKey(f *testing.F) {
	var seeds []string
	for _, v := range loadVectors(f) {
		if v.kind == "public key" {
			seeds = append(seeds, string(v.input))
		}
		for _, key := range []string{"public key", "root"} {
			if s, ok := v.h[key]; ok {
				seeds = append(seeds, s)
			}
		}
	}
	addStringSeeds(f, seeds...)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePublicKey(s)
		if err != nil {
			if p != (PublicKey{}) {
				t.Fatalf("got a key with error %v", err)
			}
			return
		}
		if p.String() != s {
			t.Fatalf("got %q accepted as %q", s, p)
		}
		if p.isSmallOrder() {
			t.Fatalf("got small-order key %s accepted", p)
		}
	})
}

func FuzzOpenOuter(f *testing.F) {
	v := successVector(f, "envelope")
	release, err := ParseBoxIdentity(v.header(f, "identity"))
	require.NoError(f, err)
	var seeds [][]byte
	for _, v := range vectorsOfKind(f, "envelope") {
		seeds = append(seeds, v.input)
		if r, err := age.Decrypt(bytes.NewReader(v.input), release.Identity()); err == nil {
			var b bytes.Buffer
			if _, err := b.ReadFrom(r); err == nil {
				seeds = append(seeds, b.Bytes()) // an outer plaintext
			}
		}
	}
	addSeeds(f, seeds...)
	f.Fuzz(func(t *testing.T, data []byte) {
		inner, err := OpenOuter(data, release)
		if err != nil {
			if inner != nil {
				t.Fatalf("got %d bytes with error %v", len(inner), err)
			}
		} else if len(inner) == 0 || len(inner) > OuterPlainSize-4 {
			t.Fatalf("got an inner layer of %d bytes", len(inner))
		}
		// The outer plaintext's own decoder, which age keeps out of reach.
		inner, err = parseOuterPlain(data)
		if err != nil {
			if inner != nil || !errors.Is(err, ErrEnvelopeMalformed) {
				t.Fatalf("got (%d bytes, %v), want (nil, %v)", len(inner), err, ErrEnvelopeMalformed)
			}
			return
		}
		again, err := outerPlain(inner)
		require.NoError(t, err)
		if !bytes.Equal(again, data) {
			t.Fatalf("got an outer plaintext accepted that is not canonical")
		}
	})
}

func FuzzUnwrapKey(f *testing.F) {
	v := successVector(f, "key wrap")
	id, err := ParseBoxIdentity(v.header(f, "identity"))
	require.NoError(f, err)
	ctx := v.hexHeader(f, "context")
	c := v.hash32Header(f, "commitment")
	addSeeds(f, inputs(f, "key wrap")...)
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := UnwrapKey(data, ctx, c, id.Identity())
		if err != nil {
			if k != nil {
				t.Fatalf("got a key with error %v", err)
			}
			return
		}
		if !k.CheckCommitment(ctx, c) {
			t.Fatalf("got a key that does not match its commitment")
		}
	})
}

func FuzzParseRecipient(f *testing.F) {
	var seeds []string
	for _, v := range loadVectors(f) {
		if s, ok := v.h["recipient"]; ok {
			seeds = append(seeds, s)
		}
		if s, ok := v.h["police identity"]; ok {
			if id, err := age.ParseX25519Identity(s); err == nil {
				seeds = append(seeds, id.Recipient().String())
			}
		}
	}
	addStringSeeds(f, seeds...)
	f.Fuzz(func(t *testing.T, s string) {
		if r, err := ParseBoxRecipient(s); err == nil && r.String() != s {
			t.Fatalf("ParseBoxRecipient: got %q accepted as %q", s, r)
		}
		r, err := ParsePoliceRecipient(s)
		if err != nil {
			return
		}
		if got := r.(fmt.Stringer).String(); got != strings.TrimSpace(s) {
			t.Fatalf("ParsePoliceRecipient: got %q accepted as %q", s, got)
		}
		_ = RecipientFingerprint(s)
	})
}

// FuzzOpenWith: OpenWith never panics and returns nothing with an error;
// the padded body it decrypts is accepted only in padBody's exact form.
func FuzzOpenWith(f *testing.F) {
	v := successVector(f, "sealed to")
	id, err := ParseBoxIdentity(v.header(f, "identity"))
	require.NoError(f, err)
	seeds := inputs(f, "sealed to")
	for _, m := range []string{"", "r", "revealed the sealed fields"} {
		seeds = append(seeds, padBody([]byte(m)))
	}
	addSeeds(f, seeds...)
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := OpenWith(data, id)
		if err != nil && msg != nil {
			t.Fatalf("got %d bytes with error %v", len(msg), err)
		}
		msg, err = unpadBody(data)
		if err != nil {
			if msg != nil || !errors.Is(err, ErrSealPadding) {
				t.Fatalf("got (%d bytes, %v), want (nil, %v)", len(msg), err, ErrSealPadding)
			}
			return
		}
		if !bytes.Equal(padBody(msg), data) {
			t.Fatalf("got a padded body accepted that is not canonical")
		}
	})
}
