package crypto

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFingerprint(t *testing.T) {
	root := testSigningKey(t, "org root").Public()
	f := OrgFingerprint(root)
	s := f.String()
	if !regexp.MustCompile(`^fristed-org1[a-z2-7]{52}$`).MatchString(s) {
		t.Errorf("got %q, want fristed-org1 and 52 lower-case base32 characters", s)
	}
	got, err := ParseFingerprint(s)
	require.NoError(t, err)
	if !got.Equal(f) {
		t.Errorf("got %s, want %s", got, f)
	}
	if OrgFingerprint(testSigningKey(t, "other root").Public()).Equal(f) {
		t.Errorf("got two roots with one fingerprint")
	}
	if f == Fingerprint(LabeledHash("fristed/v1/check-code", root[:])) {
		t.Errorf("got the fingerprint equal to a hash under another label")
	}
}

func TestParseFingerprintErrors(t *testing.T) {
	s := OrgFingerprint(testSigningKey(t, "org root").Public()).String()
	for _, bad := range []string{
		"", fingerprintPrefix, s[:len(s)-1], s + "a", s + "====", strings.ToUpper(s),
		fingerprintPrefix + strings.ToUpper(s[len(fingerprintPrefix):]),
		"fristed-org2" + s[len(fingerprintPrefix):], s[len(fingerprintPrefix):],
		s[:20] + "1" + s[21:], s[:20] + "-" + s[20:],
	} {
		if _, err := ParseFingerprint(bad); err == nil {
			t.Errorf("got ParseFingerprint(%q) accepted, want an error", bad)
		}
	}
}

func TestCheckCode(t *testing.T) {
	f := OrgFingerprint(testSigningKey(t, "org root").Public())
	c := f.CheckCode()
	if !regexp.MustCompile(`^[A-Z2-7]{4}(-[A-Z2-7]{4}){3}$`).MatchString(c) {
		t.Errorf("got check code %q, want four groups of four base32 characters (80 bits)", c)
	}
	if OrgFingerprint(testSigningKey(t, "other root").Public()).CheckCode() == c {
		t.Errorf("got two orgs with one check code")
	}
}

func testEnrolment(t testing.TB) (reqID []byte, sign PublicKey, recipient string) {
	return testSeed("request")[:requestIDSize], testSigningKey(t, "device").Public(), testBoxIdentity(t, "device").Recipient().String()
}

func TestEnrolmentCode(t *testing.T) {
	reqID, sign, recipient := testEnrolment(t)
	c := EnrolmentCommitment(reqID, sign, recipient)
	code := EnrolmentCode(reqID, c)
	if !regexp.MustCompile(`^E[A-Z2-7]{5}(-[A-Z2-7]{1,5}){8}$`).MatchString(code) {
		t.Errorf("got code %q, want E and 45 base32 characters in groups of five", code)
	}
	gotID, prefix, err := ParseEnrolmentCode(code)
	require.NoError(t, err)
	if !bytes.Equal(gotID, reqID) || !bytes.Equal(prefix, c[:enrolCommitBytes]) {
		t.Errorf("got (%x, %x), want (%x, %x)", gotID, prefix, reqID, c[:enrolCommitBytes])
	}
	if len(prefix)*8 < 80 {
		t.Errorf("got a %d-bit commitment in the code, want at least 80", len(prefix)*8)
	}
	for _, typed := range []string{code, strings.ToLower(code), strings.ReplaceAll(code, "-", ""), strings.ReplaceAll(code, "-", " "), "  " + code + "\n"} {
		if err := CheckEnrolment(typed, sign, recipient); err != nil {
			t.Errorf("CheckEnrolment(%q): got %v, want success", typed, err)
		}
	}
}

func TestEnrolmentSubstitution(t *testing.T) {
	reqID, sign, recipient := testEnrolment(t)
	code := EnrolmentCode(reqID, EnrolmentCommitment(reqID, sign, recipient))
	otherSign := testSigningKey(t, "relay's key").Public()
	otherRecipient := testBoxIdentity(t, "relay's key").Recipient().String()
	tests := []struct {
		name      string
		sign      PublicKey
		recipient string
	}{
		{"signing key", otherSign, recipient},
		{"age recipient", sign, otherRecipient},
		{"both", otherSign, otherRecipient},
		{"recipient with white space", sign, recipient + " "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckEnrolment(code, tt.sign, tt.recipient); !errors.Is(err, ErrEnrolmentMismatch) {
				t.Errorf("got %v, want %v", err, ErrEnrolmentMismatch)
			}
		})
	}
}

// TestEnrolmentCodeEverySubstitution changes each character of a code to
// every other base32 character: none may pass CheckEnrolment.
func TestEnrolmentCodeEverySubstitution(t *testing.T) {
	reqID, sign, recipient := testEnrolment(t)
	code := EnrolmentCode(reqID, EnrolmentCommitment(reqID, sign, recipient))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	for i := 1; i < len(code); i++ {
		if code[i] == '-' {
			continue
		}
		for _, c := range []byte(alphabet) {
			if c == code[i] {
				continue
			}
			typed := code[:i] + string(c) + code[i+1:]
			if err := CheckEnrolment(typed, sign, recipient); err == nil {
				t.Fatalf("got %q accepted for %q", typed, code)
			}
		}
	}
}

func TestParseEnrolmentCodeErrors(t *testing.T) {
	reqID, sign, recipient := testEnrolment(t)
	code := EnrolmentCode(reqID, EnrolmentCommitment(reqID, sign, recipient))
	flat := strings.ReplaceAll(code, "-", "")
	for _, bad := range []string{
		"", "E", code[1:], "F" + code[1:], code[:len(code)-1], code + "A", code + "-AAAAAAAA",
		strings.Replace(code, "-", "_", 1), code[:3] + "0" + code[4:],
		"E" + strings.Repeat("A", 44),           // 44 characters: 27.5 bytes
		strings.Replace(flat, "A", "\u0430", 1), // Cyrillic a
		"E" + strings.NewReplacer("I", "\u0131", "S", "\u017f").Replace(flat[1:]),
		EnrolmentCode(reqID[:15], EnrolmentCommitment(reqID[:15], sign, recipient)),
	} {
		if id, prefix, err := ParseEnrolmentCode(bad); err == nil || id != nil || prefix != nil {
			t.Errorf("got ParseEnrolmentCode(%q) accepted, want an error", bad)
		}
	}
}

func TestShortCode(t *testing.T) {
	reqID, sign, recipient := testEnrolment(t)
	c := EnrolmentCommitment(reqID, sign, recipient)
	s := ShortCode(c)
	if !regexp.MustCompile(`^[0-9]{3} [0-9]{3}$`).MatchString(s) {
		t.Errorf("got %q, want six digits in two groups", s)
	}
	if ShortCode(EnrolmentCommitment(reqID, testSigningKey(t, "x").Public(), recipient)) == s {
		t.Errorf("got the same short code for other keys")
	}
}

func TestGroupCode(t *testing.T) {
	for _, tt := range []struct {
		s    string
		n    int
		want string
	}{
		{"", 4, ""}, {"ABC", 4, "ABC"}, {"ABCD", 4, "ABCD"}, {"ABCDE", 4, "ABCD-E"}, {"ABCDEFGH", 4, "ABCD-EFGH"},
	} {
		if got := groupCode(tt.s, tt.n); got != tt.want {
			t.Errorf("groupCode(%q, %d): got %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}
