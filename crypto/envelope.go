package crypto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
)

// Sealed alarm envelopes.
//
// The card (text, signed by the sealing coordinator under LabelCard) is
// padded with newlines to CardSize and age-encrypted to the police contact:
// the inner layer, which the police open with the stock age tool. The inner
// layer, length-prefixed and zero-padded to OuterPlainSize, is age-encrypted
// to a one-time hybrid release identity that the relay holds: the outer
// layer. Every outer layer of a given format version has the same size,
// whatever the card and whatever kind of key the police use.
const (
	// CardSize is the padded size of a card: the police see the card text
	// followed by blank lines up to this size.
	CardSize = 12 * 1024
	// OuterPlainSize bounds the inner layer (card plus age header for up to
	// a few recipients of either kind).
	OuterPlainSize = CardSize + 8*1024
)

// Envelope errors.
var (
	ErrCardTooLarge      = errors.New("alarm card too large")
	ErrEnvelopeMalformed = errors.New("malformed envelope")
	ErrInnerMismatch     = errors.New("envelope inner layer does not match its sealed commitment")
)

// PadCard pads a card to CardSize with newlines.
func PadCard(card []byte) ([]byte, error) {
	if len(card) > CardSize {
		return nil, ErrCardTooLarge
	}
	out := make([]byte, CardSize)
	copy(out, card)
	for i := len(card); i < CardSize; i++ {
		out[i] = '\n'
	}
	return out, nil
}

// SealEnvelope builds both layers: inner to the police recipient, outer to
// the release recipient.
func SealEnvelope(card []byte, police age.Recipient, release BoxRecipient) (inner, outer []byte, err error) {
	if police == nil {
		return nil, nil, errors.New("seal inner layer: no police recipient")
	}
	padded, err := PadCard(card)
	if err != nil {
		return nil, nil, err
	}
	inner, err = ageEncrypt(padded, police)
	if err != nil {
		return nil, nil, fmt.Errorf("seal inner layer: %w", err)
	}
	outer, err = SealOuter(inner, release)
	if err != nil {
		return nil, nil, err
	}
	return inner, outer, nil
}

// SealOuter wraps an inner layer for the release recipient.
func SealOuter(inner []byte, release BoxRecipient) ([]byte, error) {
	if release.IsZero() {
		return nil, errors.New("seal outer layer: no release recipient")
	}
	plain, err := outerPlain(inner)
	if err != nil {
		return nil, err
	}
	outer, err := ageEncrypt(plain, release.Recipient())
	if err != nil {
		return nil, fmt.Errorf("seal outer layer: %w", err)
	}
	return outer, nil
}

// outerPlain is the outer layer's plaintext: the inner layer's length (4
// bytes, big-endian), the inner layer, zeros up to OuterPlainSize.
func outerPlain(inner []byte) ([]byte, error) {
	if len(inner) == 0 {
		return nil, errors.New("seal outer layer: empty inner layer")
	}
	if len(inner)+4 > OuterPlainSize {
		return nil, ErrCardTooLarge
	}
	plain := make([]byte, OuterPlainSize)
	binary.BigEndian.PutUint32(plain, uint32(len(inner)))
	copy(plain[4:], inner)
	return plain, nil
}

// parseOuterPlain is the inverse of outerPlain; it accepts only what
// outerPlain produces.
func parseOuterPlain(plain []byte) ([]byte, error) {
	if len(plain) != OuterPlainSize {
		return nil, ErrEnvelopeMalformed
	}
	n := binary.BigEndian.Uint32(plain)
	if n == 0 || n > OuterPlainSize-4 {
		return nil, ErrEnvelopeMalformed
	}
	for _, b := range plain[4+n:] {
		if b != 0 {
			return nil, ErrEnvelopeMalformed
		}
	}
	return plain[4 : 4+n], nil
}

// OpenOuter strips the outer layer with the release identity. An outer
// layer not encrypted to release gives ErrNoIdentityMatch, one whose
// plaintext is not as SealOuter makes it ErrEnvelopeMalformed.
func OpenOuter(outer []byte, release *BoxIdentity) ([]byte, error) {
	if release == nil {
		return nil, errors.New("open outer layer: no release identity")
	}
	r, err := age.Decrypt(bytes.NewReader(outer), release.Identity())
	if err != nil {
		return nil, ageError("open outer layer", err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, OuterPlainSize+1))
	if err != nil {
		return nil, fmt.Errorf("open outer layer: %v", err)
	}
	return parseOuterPlain(plain)
}

// InnerCommitment is the hash of an inner layer that the coordinator's
// "envelope sealed" statement carries.
func InnerCommitment(inner []byte) [32]byte {
	return LabeledHash("fristed/v1/envelope-inner", inner)
}

// CheckInner verifies an inner layer against its commitment.
func CheckInner(inner []byte, commitment [32]byte) error {
	c := InnerCommitment(inner)
	if !bytes.Equal(c[:], commitment[:]) {
		return ErrInnerMismatch
	}
	return nil
}

// OpenInner decrypts an inner layer with a police identity and strips the
// padding: every trailing newline, so a card that ended in newlines comes
// back without them. The police normally use the stock age tool instead.
func OpenInner(inner []byte, police age.Identity) ([]byte, error) {
	if police == nil {
		return nil, errors.New("open inner layer: no police identity")
	}
	r, err := age.Decrypt(bytes.NewReader(inner), police)
	if err != nil {
		return nil, ageError("open inner layer", err)
	}
	padded, err := io.ReadAll(io.LimitReader(r, CardSize+1))
	if err != nil {
		return nil, fmt.Errorf("open inner layer: %v", err)
	}
	if len(padded) != CardSize {
		return nil, ErrEnvelopeMalformed
	}
	return bytes.TrimRight(padded, "\n"), nil
}

func ageEncrypt(plain []byte, recipients ...age.Recipient) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, recipients...)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
