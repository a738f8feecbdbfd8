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

// ParsePublicKey parses the form printed by PublicKey.String. It rejects
// non-canonical base64 and keys of small order.
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
	if p.String() != s {
		// The decoder skips newlines: one key, one spelling.
		return PublicKey{}, errors.New("malformed public key: not canonical")
	}
	if p.isSmallOrder() {
		return PublicKey{}, errors.New("malformed public key: small order")
	}
	return p, nil
}

// smallOrderKeys lists, with the sign bit cleared, every encoding that
// crypto/ed25519 decodes to a point of order 1, 2, 4 or 8: y = 1, y = p-1,
// y = 0, the two order-8 values of y, and the non-canonical y = p and
// y = p+1 (the same list libsodium rejects). Under such a key a signature
// with s = 0 verifies for a fixed fraction of all messages (1/4 for the
// zero key), so anyone can sign as it; no Fristed key is one of them.
var smallOrderKeys = [...]PublicKey{
	{0x01}, // identity (y = 1)
	{},     // order 4 (y = 0), the zero key
	{ // order 8
		0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
		0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
	},
	{ // order 8
		0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
		0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
	},
	{ // order 2 (y = p-1)
		0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
	},
	{ // order 4, non-canonical (y = p)
		0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
	},
	{ // identity, non-canonical (y = p+1)
		0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
	},
}

// isSmallOrder reports whether p encodes a point of small order, whatever
// its sign bit. Public keys are public, so this need not be constant time.
func (p PublicKey) isSmallOrder() bool {
	p[31] &= 0x7f
	for _, s := range smallOrderKeys {
		if p == s {
			return true
		}
	}
	return false
}

// Equal compares two public keys in constant time.
func (p PublicKey) Equal(q PublicKey) bool { return subtle.ConstantTimeCompare(p[:], q[:]) == 1 }

// IsZero reports whether p is the zero key (never a valid key: Verify and
// ParsePublicKey reject it, with every other key of small order).
func (p PublicKey) IsZero() bool { return p == PublicKey{} }

// Verify checks sig over msg under label. A key of small order (the zero
// key among them) verifies nothing, since anyone can sign as it.
func (p PublicKey) Verify(label Label, msg, sig []byte) error {
	if !labels[label] {
		return ErrUnknownLabel
	}
	if len(sig) != SignatureSize || p.isSmallOrder() {
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
