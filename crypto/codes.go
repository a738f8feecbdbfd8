package crypto

import (
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

var idEncodingUpper = base32.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567").WithPadding(base32.NoPadding)

// groupCode splits s into dash-separated groups of n characters.
func groupCode(s string, n int) string {
	var parts []string
	for len(s) > n {
		parts = append(parts, s[:n])
		s = s[n:]
	}
	return strings.Join(append(parts, s), "-")
}

// GroupedCode writes b as upper-case base32 in dash-separated groups of
// four, for codes people read to each other (5 bytes make XXXX-XXXX).
func GroupedCode(b []byte) string { return groupCode(idEncodingUpper.EncodeToString(b), 4) }

// Fingerprint identifies an organisation: a hash of its root public key. It
// is what devices pin at enrolment and what credential files carry.
type Fingerprint [32]byte

const fingerprintPrefix = "fristed-org1"

// OrgFingerprint returns the fingerprint of an org root key.
func OrgFingerprint(root PublicKey) Fingerprint {
	return Fingerprint(LabeledHash("fristed/v1/org-fingerprint", root[:]))
}

func (f Fingerprint) String() string {
	return fingerprintPrefix + strings.ToLower(idEncodingUpper.EncodeToString(f[:]))
}

// ParseFingerprint parses the form printed by Fingerprint.String.
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, fingerprintPrefix) {
		return f, errors.New("malformed org fingerprint: wrong prefix")
	}
	b, err := idEncodingUpper.DecodeString(strings.ToUpper(s[len(fingerprintPrefix):]))
	if err != nil || len(b) != len(f) {
		return f, errors.New("malformed org fingerprint")
	}
	copy(f[:], b)
	if f.String() != s {
		return Fingerprint{}, errors.New("malformed org fingerprint: not canonical")
	}
	return f, nil
}

// Equal compares fingerprints in constant time.
func (f Fingerprint) Equal(g Fingerprint) bool { return subtle.ConstantTimeCompare(f[:], g[:]) == 1 }

// CheckCode is the short form of the org fingerprint that the police keep on
// paper: 80 bits in four groups of four base32 characters. It depends only
// on the root key, so it survives re-seals and coordinator changes. It is a
// second, human check; programs compare the full fingerprint.
func (f Fingerprint) CheckCode() string {
	h := LabeledHash("fristed/v1/check-code", f[:])
	return groupCode(idEncodingUpper.EncodeToString(h[:10]), 4)
}

// Enrolment codes.
//
// A new device posts its public keys to the relay under a random request id
// and shows the user an enrolment code: the request id and 96 bits of a
// commitment to the keys. The coordinator types the code; approving
// re-computes the commitment over the keys the relay returns, so a relay
// that substitutes a key is caught by the code alone. The short code shown
// beside it for voice confirmation is derived from the commitment, never
// from keys a relay could grind against.
const (
	enrolCommitBytes = 12 // 96 bits, above the 80 the design asks for
	enrolCodePrefix  = "E"
	requestIDSize    = 16
)

// EnrolmentCommitment commits to a device's public keys under its request
// id.
func EnrolmentCommitment(requestID []byte, signPub PublicKey, boxRecipient string) [32]byte {
	return LabeledHash("fristed/v1/enrolment", requestID, signPub[:], []byte(boxRecipient))
}

// EnrolmentCode formats the code a new device shows. requestID must be 16
// bytes; ParseEnrolmentCode rejects a code made with any other length.
func EnrolmentCode(requestID []byte, commitment [32]byte) string {
	raw := append(append([]byte(nil), requestID...), commitment[:enrolCommitBytes]...)
	return enrolCodePrefix + groupCode(idEncodingUpper.EncodeToString(raw), 5)
}

// ParseEnrolmentCode returns the request id and the commitment prefix in a
// code. Dashes, spaces and ASCII case are ignored; anything else that is not
// the canonical encoding of the bytes is rejected.
func ParseEnrolmentCode(code string) (requestID []byte, commitPrefix []byte, err error) {
	malformed := errors.New("malformed enrolment code")
	c := strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(code))
	for i := 0; i < len(c); i++ {
		// Only ASCII: strings.ToUpper would turn some other runes (U+017F,
		// U+0131) into base32 letters.
		if c[i] >= 0x80 {
			return nil, nil, malformed
		}
	}
	c = strings.ToUpper(c)
	if !strings.HasPrefix(c, enrolCodePrefix) {
		return nil, nil, malformed
	}
	c = c[len(enrolCodePrefix):]
	raw, err := idEncodingUpper.DecodeString(c)
	if err != nil || len(raw) != requestIDSize+enrolCommitBytes {
		return nil, nil, malformed
	}
	// base32 ignores the unused low bits of the last character; two codes
	// must not name the same request.
	if idEncodingUpper.EncodeToString(raw) != c {
		return nil, nil, malformed
	}
	return raw[:requestIDSize], raw[requestIDSize:], nil
}

// ErrEnrolmentMismatch means the keys fetched for an enrolment request are
// not the keys the device committed to: the relay or the network swapped
// them.
var ErrEnrolmentMismatch = errors.New("enrolment code does not match the device's keys: do not approve")

// CheckEnrolment verifies that keys match the code.
func CheckEnrolment(code string, signPub PublicKey, boxRecipient string) error {
	reqID, prefix, err := ParseEnrolmentCode(code)
	if err != nil {
		return err
	}
	c := EnrolmentCommitment(reqID, signPub, boxRecipient)
	if subtle.ConstantTimeCompare(c[:enrolCommitBytes], prefix) != 1 {
		return ErrEnrolmentMismatch
	}
	return nil
}

// ShortCode is a six-digit code derived from an enrolment commitment, for
// the coordinator and the worker to compare by voice.
func ShortCode(commitment [32]byte) string {
	h := LabeledHash("fristed/v1/short-code", commitment[:])
	n := (uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2])) % 1000000
	return fmt.Sprintf("%03d %03d", n/1000, n%1000)
}
