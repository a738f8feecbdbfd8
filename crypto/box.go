package crypto

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"

	"github.com/fristed/fristed/crypto/internal/bech32"
)

// BoxIdentity is a device's (or a release envelope's) age decryption key:
// the hybrid ML-KEM-768 + X25519 kind, because wrapped keys sit on the relay
// for years and the adversary's motive lasts decades. It has no String
// method; Marshal returns the secret for an encrypted key file.
type BoxIdentity struct{ id *age.HybridIdentity }

// BoxRecipient is the public half of a BoxIdentity ("age1pq1...").
type BoxRecipient struct{ r *age.HybridRecipient }

// GenerateBoxIdentity makes a new hybrid age identity.
func GenerateBoxIdentity() (*BoxIdentity, error) {
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		return nil, fmt.Errorf("generate age identity: %w", err)
	}
	return &BoxIdentity{id: id}, nil
}

// DeriveBoxIdentity returns the hybrid identity derived from the key k
// and a context naming its use: its 32-byte ML-KEM-768 + X25519 seed is
// HKDF-SHA-256 of k with info "fristed/v1/box-identity" and context. The
// same key and context always give the same identity, so whoever holds the
// key can open what was sealed to its recipient; a different context gives
// an unrelated one.
func (k *Key) DeriveBoxIdentity(context []byte) (*BoxIdentity, error) {
	seed, err := hkdf.Key(sha256.New, k.b[:], nil, "fristed/v1/box-identity\x00"+string(context), 32)
	if err != nil {
		return nil, fmt.Errorf("derive age identity: %w", err)
	}
	defer clear(seed)
	s, err := bech32.Encode("AGE-SECRET-KEY-PQ-", seed)
	if err != nil {
		return nil, fmt.Errorf("derive age identity: %w", err)
	}
	return ParseBoxIdentity(s)
}

// ParseBoxIdentity parses the secret form written by Marshal.
func ParseBoxIdentity(s string) (*BoxIdentity, error) {
	id, err := age.ParseHybridIdentity(s)
	if err != nil {
		return nil, errors.New("malformed age identity")
	}
	return &BoxIdentity{id: id}, nil
}

// Marshal returns the secret key string. Callers must not log or print it.
func (i *BoxIdentity) Marshal() string { return i.id.String() }

// Recipient returns the public key.
func (i *BoxIdentity) Recipient() BoxRecipient { return BoxRecipient{r: i.id.Recipient()} }

// Identity returns the age identity for decryption.
func (i *BoxIdentity) Identity() age.Identity { return i.id }

// ParseBoxRecipient parses an "age1pq1..." recipient.
func ParseBoxRecipient(s string) (BoxRecipient, error) {
	r, err := age.ParseHybridRecipient(s)
	if err != nil {
		return BoxRecipient{}, errors.New("malformed age hybrid recipient")
	}
	return BoxRecipient{r: r}, nil
}

func (r BoxRecipient) String() string {
	if r.r == nil {
		return ""
	}
	return r.r.String()
}

// Recipient returns the age recipient for encryption, or nil if r is unset
// (not an interface holding a nil pointer, which would panic when used).
func (r BoxRecipient) Recipient() age.Recipient {
	if r.r == nil {
		return nil
	}
	return r.r
}

// IsZero reports whether r is unset.
func (r BoxRecipient) IsZero() bool { return r.r == nil }

// ParsePoliceRecipient parses a police contact's public key as made by the
// stock age-keygen (X25519, "age1...") or with -pq / fristed police keygen
// (hybrid, "age1pq1...").
func ParsePoliceRecipient(s string) (age.Recipient, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "age1pq1") {
		r, err := age.ParseHybridRecipient(s)
		if err != nil {
			return nil, errors.New("malformed age recipient")
		}
		return r, nil
	}
	r, err := age.ParseX25519Recipient(s)
	if err != nil {
		return nil, errors.New("malformed age recipient")
	}
	return r, nil
}

// RecipientFingerprint returns a short, phone-readable fingerprint of an
// age recipient string, so a police key can be confirmed by voice.
func RecipientFingerprint(recipient string) string {
	h := LabeledHash("fristed/v1/recipient-fingerprint", []byte(strings.TrimSpace(recipient)))
	return groupCode(idEncodingUpper.EncodeToString(h[:10]), 4)
}

// ErrNoIdentityMatch is returned when an age file (a wrapped key or an
// envelope layer) has no stanza for the identity given: it was encrypted to
// someone else, or its stanza was tampered with.
var ErrNoIdentityMatch = errors.New("not encrypted to this identity")

// ageError reports an age decryption failure for step. Only "not for this
// identity" is distinguished; the rest says that it failed, as age does.
func ageError(step string, err error) error {
	if nm := new(age.NoIdentityMatchError); errors.As(err, &nm) {
		return fmt.Errorf("%s: %w", step, ErrNoIdentityMatch)
	}
	return fmt.Errorf("%s: %v", step, err)
}

// ErrKeyCommitment is returned when an unwrapped key does not match the
// commitment signed for it: somebody other than the coordinator made it.
var ErrKeyCommitment = errors.New("wrapped key does not match its signed commitment")

// WrapKey encrypts k to every recipient with age: one file, one stanza per
// recipient. Used for epoch keys (to a stream's devices) and vault keys.
func WrapKey(k *Key, recipients ...age.Recipient) ([]byte, error) {
	if len(recipients) == 0 {
		return nil, errors.New("wrap key: no recipients")
	}
	for _, r := range recipients {
		if r == nil {
			return nil, errors.New("wrap key: nil recipient")
		}
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, recipients...)
	if err != nil {
		return nil, fmt.Errorf("wrap key: %w", err)
	}
	if _, err := w.Write(k.b[:]); err != nil {
		return nil, fmt.Errorf("wrap key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("wrap key: %w", err)
	}
	return buf.Bytes(), nil
}

// UnwrapKey decrypts a wrapped key with id and accepts it only if it matches
// commitment in context: anyone can write an age file to a public key, so
// the signed commitment is what makes a wrapped key genuine. A key that does
// not match gives ErrKeyCommitment; a file not encrypted to id gives
// ErrNoIdentityMatch.
func UnwrapKey(wrapped, context []byte, commitment [32]byte, id age.Identity) (*Key, error) {
	if id == nil {
		return nil, errors.New("unwrap key: no identity")
	}
	r, err := age.Decrypt(bytes.NewReader(wrapped), id)
	if err != nil {
		return nil, ageError("unwrap key", err)
	}
	b, err := io.ReadAll(io.LimitReader(r, KeySize+1))
	if err != nil {
		return nil, fmt.Errorf("unwrap key: %v", err)
	}
	if len(b) != KeySize {
		return nil, errors.New("unwrap key: malformed key")
	}
	k, _ := KeyFromBytes(b)
	clear(b)
	if !k.CheckCommitment(context, commitment) {
		k.Destroy()
		return nil, ErrKeyCommitment
	}
	return k, nil
}

// SealTo pads plaintext with Padme (as Seal does) and encrypts it with age
// to every recipient: one file, one hybrid stanza per recipient. It is for
// messages that some devices write but only others may read (a worker
// laptop's audit entries, readable by the coordinator laptops alone).
func SealTo(plaintext []byte, recipients ...BoxRecipient) ([]byte, error) {
	if len(plaintext) > MaxSealPlaintext {
		return nil, ErrSealTooLarge
	}
	if len(recipients) == 0 {
		return nil, errors.New("seal: no recipients")
	}
	rs := make([]age.Recipient, len(recipients))
	for i, r := range recipients {
		if r.IsZero() {
			return nil, errors.New("seal: unset recipient")
		}
		rs[i] = r.Recipient()
	}
	body := padBody(plaintext)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rs...)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return buf.Bytes(), nil
}

// OpenWith decrypts a message made by SealTo with id. A message not
// encrypted to id gives ErrNoIdentityMatch; one whose padding is not
// canonical gives ErrSealPadding.
func OpenWith(sealed []byte, id *BoxIdentity) ([]byte, error) {
	if id == nil {
		return nil, errors.New("open: no identity")
	}
	r, err := age.Decrypt(bytes.NewReader(sealed), id.id)
	if err != nil {
		return nil, ageError("open", err)
	}
	body, err := io.ReadAll(io.LimitReader(r, int64(Padme(4+MaxSealPlaintext))+1))
	if err != nil {
		return nil, ageError("open", err)
	}
	return unpadBody(body)
}

// padBody is the plaintext SealTo encrypts: a 4-byte big-endian length,
// the message, zeros up to the Padme length (the layout Seal uses).
func padBody(plaintext []byte) []byte {
	body := make([]byte, Padme(uint64(4+len(plaintext))))
	binary.BigEndian.PutUint32(body, uint32(len(plaintext)))
	copy(body[4:], plaintext)
	return body
}

// unpadBody reverses padBody and accepts only its exact output.
func unpadBody(body []byte) ([]byte, error) {
	if len(body) < 4 {
		return nil, ErrSealPadding
	}
	n := binary.BigEndian.Uint32(body)
	if uint64(n) > uint64(len(body)-4) || uint64(len(body)) != Padme(uint64(4)+uint64(n)) {
		return nil, ErrSealPadding
	}
	for _, b := range body[4+n:] {
		if b != 0 {
			return nil, ErrSealPadding
		}
	}
	return body[4 : 4+n], nil
}
