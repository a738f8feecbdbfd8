package crypto

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the size of a symmetric key.
const KeySize = 32

// Key is a 32-byte symmetric key: a stream's epoch key, a vault key or the
// relay's key-encryption key. It has no String method.
type Key struct{ b [KeySize]byte }

// NewKey returns a fresh random key.
func NewKey() (*Key, error) {
	k := new(Key)
	if _, err := rand.Read(k.b[:]); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

// KeyFromBytes copies a 32-byte key.
func KeyFromBytes(b []byte) (*Key, error) {
	if len(b) != KeySize {
		return nil, errors.New("malformed key")
	}
	k := new(Key)
	copy(k.b[:], b)
	return k, nil
}

// Bytes returns a copy of the key, for wrapping or an encrypted file.
// Callers must not log or print it.
func (k *Key) Bytes() []byte { return append([]byte(nil), k.b[:]...) }

// Equal compares keys in constant time.
func (k *Key) Equal(o *Key) bool { return subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1 }

// Commitment returns a binding commitment to the key in context (for an
// epoch key: the tenant, stream and epoch). The key is 256 random bits, so
// a hash commits to it without revealing it.
func (k *Key) Commitment(context []byte) [32]byte {
	return LabeledHash("fristed/v1/key-commitment", context, k.b[:])
}

// CheckCommitment reports in constant time whether k matches c in context.
func (k *Key) CheckCommitment(context []byte, c [32]byte) bool {
	got := k.Commitment(context)
	return subtle.ConstantTimeCompare(got[:], c[:]) == 1
}

// Destroy overwrites the key's bytes.
func (k *Key) Destroy() { clear(k.b[:]) }

// LabeledHash is SHA-256 over a label and length-prefixed parts, so no two
// distinct inputs (or labels) share a preimage.
func LabeledHash(label string, parts ...[]byte) [32]byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(label)))
	h.Write(n[:])
	h.Write([]byte(label))
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Sealed box layout (version 1):
//
//	version (1 byte, 0x01) | nonce (24 bytes) | XChaCha20-Poly1305(body)
//
// where body = length (4 bytes, big-endian) | plaintext | zero padding, and
// len(body) = Padme(4 + len(plaintext)). The associated data is the version
// byte followed by the caller's ad.
const (
	sealVersion  = 0x01
	sealOverhead = 1 + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
	// MaxSealPlaintext bounds one sealed message.
	MaxSealPlaintext = 16 << 20
)

// Errors from Open. They say only what failed, never why in detail.
var (
	ErrSealVersion   = errors.New("sealed message has an unknown version (newer version?)")
	ErrSealTruncated = errors.New("sealed message is truncated")
	ErrSealAuth      = errors.New("sealed message failed authentication")
	ErrSealPadding   = errors.New("sealed message has malformed padding")
	ErrSealTooLarge  = errors.New("message too large to seal")
)

// Seal pads plaintext with Padme and encrypts it under k with a random
// nonce, binding ad.
func Seal(k *Key, ad, plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxSealPlaintext {
		return nil, ErrSealTooLarge
	}
	var nonce [chacha20poly1305.NonceSizeX]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return sealWithNonce(k, nonce[:], ad, plaintext)
}

func sealWithNonce(k *Key, nonce, ad, plaintext []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(k.b[:])
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	body := padBodyTo(plaintext, Padme(uint64(4+len(plaintext))))
	out := make([]byte, 0, sealOverhead+len(body))
	out = append(out, sealVersion)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, body, sealAD(ad)), nil
}

func sealAD(ad []byte) []byte {
	return append([]byte{sealVersion}, ad...)
}

// SealedSize returns the size Seal produces for a plaintext of n bytes.
func SealedSize(n int) int { return sealOverhead + int(Padme(uint64(4+n))) }

// Open authenticates and decrypts a message made by Seal. Nothing is
// returned unless the tag verifies and the padding is canonical.
func Open(k *Key, ad, sealed []byte) ([]byte, error) {
	if len(sealed) < 1 {
		return nil, ErrSealTruncated
	}
	if sealed[0] != sealVersion {
		return nil, ErrSealVersion
	}
	if len(sealed) < sealOverhead+4 {
		return nil, ErrSealTruncated
	}
	aead, err := chacha20poly1305.NewX(k.b[:])
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	nonce := sealed[1 : 1+chacha20poly1305.NonceSizeX]
	body, err := aead.Open(nil, nonce, sealed[1+len(nonce):], sealAD(ad))
	if err != nil {
		return nil, ErrSealAuth
	}
	pt, err := Unpad(body)
	if err != nil || uint64(len(body)) != Padme(uint64(4+len(pt))) {
		return nil, ErrSealPadding
	}
	return pt, nil
}

// padBodyTo lays plaintext out as a sealed box's body of size bytes:
// length (4 bytes, big-endian) | plaintext | zero padding.
func padBodyTo(plaintext []byte, size uint64) []byte {
	body := make([]byte, size)
	binary.BigEndian.PutUint32(body, uint32(len(plaintext)))
	copy(body[4:], plaintext)
	return body
}

// PadFixed lays plaintext out as a sealed box's body of exactly size bytes
// (length, plaintext, zero padding), for a message whose length must not
// leak at all, such as a name encrypted with age: encrypt the padded body
// instead of the plaintext. It fails with ErrSealTooLarge if plaintext
// does not fit.
func PadFixed(plaintext []byte, size int) ([]byte, error) {
	if size < 4 || len(plaintext) > size-4 {
		return nil, ErrSealTooLarge
	}
	return padBodyTo(plaintext, uint64(size)), nil
}

// Unpad returns the plaintext of a body made by PadFixed (or inside Seal).
// It fails with ErrSealPadding unless the length fits the body and every
// padding byte is zero, so each plaintext has exactly one body of a size.
func Unpad(body []byte) ([]byte, error) {
	if len(body) < 4 {
		return nil, ErrSealPadding
	}
	n := binary.BigEndian.Uint32(body)
	if uint64(n) > uint64(len(body)-4) {
		return nil, ErrSealPadding
	}
	for _, b := range body[4+n:] {
		if b != 0 {
			return nil, ErrSealPadding
		}
	}
	return body[4 : 4+n], nil
}

// Padme returns the padded length for a message of length n, per the Padme
// scheme of Nikitin et al. ("Reducing Metadata Leakage from Encrypted Files
// and Communication with PURBs", PETS 2019): at most 12% overhead, and only
// O(log log n) bits of the length leak.
func Padme(n uint64) uint64 {
	if n < 2 {
		return n
	}
	e := uint64(63 - bits.LeadingZeros64(n)) // floor(log2 n)
	s := uint64(64 - bits.LeadingZeros64(e)) // floor(log2 e) + 1
	lastBits := e - s
	mask := uint64(1)<<lastBits - 1
	return (n + mask) &^ mask
}
