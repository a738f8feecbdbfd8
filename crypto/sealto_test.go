package crypto

import (
	"bytes"
	"errors"
	"testing"

	"filippo.io/age"
	"github.com/stretchr/testify/require"
)

// SealTo is readable by each recipient and nobody else, pads like Seal,
// and refuses bad input with an error.
func TestSealToOpenWith(t *testing.T) {
	a, err := GenerateBoxIdentity()
	require.NoError(t, err)
	b, err := GenerateBoxIdentity()
	require.NoError(t, err)
	outsider, err := GenerateBoxIdentity()
	require.NoError(t, err)
	msg := []byte("revealed the sealed fields")
	sealed, err := SealTo(msg, a.Recipient(), b.Recipient())
	require.NoError(t, err)
	for name, id := range map[string]*BoxIdentity{"a": a, "b": b} {
		got, err := OpenWith(sealed, id)
		require.NoError(t, err, name)
		if !bytes.Equal(got, msg) {
			t.Errorf("%s: got %q, want %q", name, got, msg)
		}
	}
	if _, err := OpenWith(sealed, outsider); !errors.Is(err, ErrNoIdentityMatch) {
		t.Errorf("outsider: got %v, want ErrNoIdentityMatch", err)
	}
	// Two plaintexts of lengths in one Padme bucket seal to one size.
	s1, err := SealTo(bytes.Repeat([]byte{1}, 1000), a.Recipient())
	require.NoError(t, err)
	s2, err := SealTo(bytes.Repeat([]byte{1}, 1010), a.Recipient())
	require.NoError(t, err)
	if len(s1) != len(s2) {
		t.Errorf("got sizes %d and %d for 1000 and 1010 bytes, want one padded size", len(s1), len(s2))
	}
	// A flipped byte in the payload fails authentication.
	bad := append([]byte(nil), sealed...)
	bad[len(bad)-3] ^= 1
	if _, err := OpenWith(bad, a); err == nil {
		t.Error("got a tampered message opened, want an error")
	}
	// Non-canonical padding (valid age, wrong body) is refused.
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, a.Recipient().Recipient())
	require.NoError(t, err)
	_, err = w.Write([]byte{0, 0, 0, 1, 'x', 0, 0, 0, 0, 0, 0})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	if _, err := OpenWith(buf.Bytes(), a); !errors.Is(err, ErrSealPadding) {
		t.Errorf("bad padding: got %v, want ErrSealPadding", err)
	}
	if _, err := SealTo(msg); err == nil {
		t.Error("got a message sealed to nobody, want an error")
	}
	if _, err := SealTo(msg, BoxRecipient{}); err == nil {
		t.Error("got a message sealed to an unset recipient, want an error")
	}
	if _, err := SealTo(make([]byte, MaxSealPlaintext+1), a.Recipient()); !errors.Is(err, ErrSealTooLarge) {
		t.Errorf("too large: got %v, want ErrSealTooLarge", err)
	}
	if _, err := OpenWith(sealed, nil); err == nil {
		t.Error("got a message opened without an identity, want an error")
	}
}
