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
	if len(inner)+4 > OuterPlainSize {
		return nil, ErrCardTooLarge
	}
	plain := make([]byte, OuterPlainSize)
	binary.BigEndian.PutUint32(plain, uint32(len(inner)))
	copy(plain[4:], inner)
	outer, err := ageEncrypt(plain, release.Recipient())
	if err != nil {
		return nil, fmt.Errorf("seal outer layer: %w", err)
	}
	return outer, nil
}

// OpenOuter strips the outer layer with the release identity.
func OpenOuter(outer []byte, release *BoxIdentity) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(outer), release.Identity())
	if err != nil {
		return nil, fmt.Errorf("open outer layer: %v", err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, OuterPlainSize+1))
	if err != nil {
		return nil, fmt.Errorf("open outer layer: %v", err)
	}
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
// padding. The police normally use the stock age tool instead.
func OpenInner(inner []byte, police age.Identity) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(inner), police)
	if err != nil {
		return nil, fmt.Errorf("open inner layer: %v", err)
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
