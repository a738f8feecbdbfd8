package crypto

import (
	stdcrypto "crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Label is the context a signature is made in. The set is closed and
// append-only; each names one kind of signed message.
type Label string

const (
	LabelAuth      Label = "fristed/v1/auth"      // login challenge response
	LabelBatch     Label = "fristed/v1/batch"     // batch of sealed deltas
	LabelStatement Label = "fristed/v1/statement" // admin chain statement
	LabelSnapshot  Label = "fristed/v1/snapshot"  // encrypted stream snapshot
	LabelCard      Label = "fristed/v1/card"      // alarm card for the police
	LabelReceipt   Label = "fristed/v1/receipt"   // relay's batch receipt
	LabelEnrol     Label = "fristed/v1/enrol"     // enrolment request
	LabelAudit     Label = "fristed/v1/audit"     // audit log entry
)

var labels = map[Label]bool{
	LabelAuth: true, LabelBatch: true, LabelStatement: true, LabelSnapshot: true,
	LabelCard: true, LabelReceipt: true, LabelEnrol: true, LabelAudit: true,
}

// ErrBadSignature is returned for any signature that does not verify.
var ErrBadSignature = errors.New("signature does not verify")

// ErrUnknownLabel is returned when signing or verifying under a label
// outside the closed set.
var ErrUnknownLabel = errors.New("unknown signature label")

const (
	PublicKeySize = ed25519.PublicKeySize
	SignatureSize = ed25519.SignatureSize
	SeedSize      = ed25519.SeedSize
)

// PublicKey is an Ed25519 verification key.
type PublicKey [PublicKeySize]byte

const publicKeyPrefix = "fpub1"

// String returns the key as "fpub1" followed by unpadded base64url.
func (p PublicKey) String() string {
	return publicKeyPrefix + base64.RawURLEncoding.EncodeToString(p[:])
}

// ParsePublicKey parses the form printed by PublicKey.String.
func ParsePublicKey(s string) (PublicKey, error) {
	var p PublicKey
	if !strings.HasPrefix(s, publicKeyPrefix) {
		return p, errors.New("malformed public key: wrong prefix")
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s[len(publicKeyPrefix):])
	if err != nil || len(b) != PublicKeySize {
		return p, errors.New("malformed public key")
	}
	copy(p[:], b)
	return p, nil
}

// Equal compares two public keys in constant time.
func (p PublicKey) Equal(q PublicKey) bool { return subtle.ConstantTimeCompare(p[:], q[:]) == 1 }

// IsZero reports whether p is the zero key (never a valid key).
func (p PublicKey) IsZero() bool { return p == PublicKey{} }

// Verify checks sig over msg under label.
func (p PublicKey) Verify(label Label, msg, sig []byte) error {
	if !labels[label] {
		return ErrUnknownLabel
	}
	if len(sig) != SignatureSize {
		return ErrBadSignature
	}
	opts := &ed25519.Options{Context: string(label)}
	if err := ed25519.VerifyWithOptions(ed25519.PublicKey(p[:]), msg, sig, opts); err != nil {
		return ErrBadSignature
	}
	return nil
}

// SigningKey is an Ed25519 private key. It has no String method and its
// bytes leave it only through MarshalSeed, for key files.
type SigningKey struct {
	priv ed25519.PrivateKey
	pub  PublicKey
}

// GenerateSigningKey makes a new random signing key.
func GenerateSigningKey() (*SigningKey, error) {
	seed := make([]byte, SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return NewSigningKeyFromSeed(seed)
}

// NewSigningKeyFromSeed derives the key from a 32-byte seed.
func NewSigningKeyFromSeed(seed []byte) (*SigningKey, error) {
	if len(seed) != SeedSize {
		return nil, errors.New("malformed signing key seed")
	}
	priv := ed25519.NewKeyFromSeed(seed)
	k := &SigningKey{priv: priv}
	copy(k.pub[:], priv.Public().(ed25519.PublicKey))
	return k, nil
}

// Public returns the verification key.
func (k *SigningKey) Public() PublicKey { return k.pub }

// MarshalSeed returns a copy of the 32-byte seed, for writing to an
// encrypted key file. Callers must not log or print it.
func (k *SigningKey) MarshalSeed() []byte { return append([]byte(nil), k.priv.Seed()...) }

// Sign signs msg under label.
func (k *SigningKey) Sign(label Label, msg []byte) ([]byte, error) {
	if !labels[label] {
		return nil, ErrUnknownLabel
	}
	sig, err := k.priv.Sign(nil, msg, &ed25519.Options{Hash: stdcrypto.Hash(0), Context: string(label)})
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return sig, nil
}

// MustSign is Sign for labels known at compile time.
func (k *SigningKey) MustSign(label Label, msg []byte) []byte {
	sig, err := k.Sign(label, msg)
	if err != nil {
		panic(err)
	}
	return sig
}

// Equal compares two signing keys in constant time.
func (k *SigningKey) Equal(o *SigningKey) bool {
	return subtle.ConstantTimeCompare(k.priv, o.priv) == 1
}
