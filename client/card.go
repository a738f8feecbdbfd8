package client

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// An alarm card is plain UTF-8 text the police read after `age -d`:
//
//	FRISTED ALARM CARD
//	Alarm: a_...
//	Sealed at: 2026-01-02T03:04:05Z
//	Status: active
//	Pseudonym: ...
//	...
//	-- signature --
//	Signed-by: d_...
//	Org: <org fingerprint>
//	Signature: <base64 Ed25519ctx signature under fristed/v1/card>
//
// A value of several lines continues on lines indented by two spaces, so
// no value can start a line of its own. The signature covers every byte
// before the "Signature: " line (the card body and the first two lines of
// the signature block). The card ends with the signature's last character,
// never a newline: trailing newlines are the envelope's padding.
const (
	cardTitle     = "FRISTED ALARM CARD"
	cardSigHeader = "-- signature --"
	cardSigPrefix = "Signature: "
)

// CardContact is one contact person on a card.
type CardContact struct {
	Role, Name, Phone string
}

// CardContent is what a card says.
type CardContent struct {
	Alarm    syncproto.AlarmID
	SealedAt time.Time
	// Closed is set when the case was closed or the resident moved out:
	// the card then says so and carries no address and no threat.
	Closed string // the move-out date, or "" for an active case
	// Purged is set when the case was deleted after its retention period:
	// the card then names the alarm and nothing about the resident.
	Purged         bool
	Pseudonym      string
	LegalName      string
	Description    string // physical description without a photo
	SecretAddress  string
	AddressCode    string
	ThreatActors   string
	ThreatVehicles string
	Contacts       []CardContact
	Instructions   []string
}

// Card errors.
var (
	ErrCardMalformed = errors.New("alarm card: malformed")
	ErrCardSignature = errors.New("alarm card: signature does not verify")
	ErrCardOrg       = errors.New("alarm card: signed for another organisation")
)

func cardLine(b *strings.Builder, label, value string) {
	value = strings.TrimRight(strings.ReplaceAll(value, "\r", ""), "\n \t")
	if value == "" {
		value = "-"
	}
	b.WriteString(label)
	b.WriteString(": ")
	for i, l := range strings.Split(value, "\n") {
		if i > 0 {
			b.WriteString("\n  ")
		}
		b.WriteString(strings.TrimRight(l, " \t"))
	}
	b.WriteByte('\n')
}

// cardBody is the card text up to (not including) the signature block.
func cardBody(c CardContent) string {
	var b strings.Builder
	b.WriteString(cardTitle + "\n")
	cardLine(&b, "Alarm", c.Alarm.String())
	cardLine(&b, "Sealed at", c.SealedAt.UTC().Truncate(time.Second).Format(time.RFC3339))
	if c.Purged {
		cardLine(&b, "Status", "CASE DELETED after its retention period: the organisation holds no data on it")
	} else if c.Closed != "" {
		cardLine(&b, "Status", "CASE CLOSED (moved out "+c.Closed+"): no address is known to the organisation")
	} else {
		cardLine(&b, "Status", "active")
	}
	cardLine(&b, "Pseudonym", c.Pseudonym)
	cardLine(&b, "Legal name", c.LegalName)
	cardLine(&b, "Description", c.Description)
	cardLine(&b, "Secret address", c.SecretAddress)
	cardLine(&b, "Address code", c.AddressCode)
	cardLine(&b, "Threat actors", c.ThreatActors)
	cardLine(&b, "Threat vehicles", c.ThreatVehicles)
	if len(c.Contacts) == 0 {
		cardLine(&b, "Contact", "")
	}
	for _, ct := range c.Contacts {
		parts := []string{}
		for _, p := range []string{ct.Role, ct.Name, ct.Phone} {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		cardLine(&b, "Contact", strings.Join(parts, ", "))
	}
	if len(c.Instructions) == 0 {
		cardLine(&b, "Instruction", "")
	}
	for _, in := range c.Instructions {
		cardLine(&b, "Instruction", in)
	}
	return b.String()
}

// CardContentHash identifies what a card says apart from when it was
// sealed: a re-seal is due when the case's card would say something else.
func CardContentHash(c CardContent) syncproto.Hash {
	c.SealedAt = time.Time{}
	return syncproto.Hash(fcrypto.LabeledHash("fristed/v1/card-content", []byte(cardBody(c))))
}

// BuildCard writes and signs a card as device signer of the org.
func BuildCard(c CardContent, signer syncproto.DeviceID, key *fcrypto.SigningKey, org fcrypto.Fingerprint) ([]byte, error) {
	if key == nil {
		return nil, errors.New("alarm card: no signing key")
	}
	signed := cardBody(c) + cardSigHeader + "\nSigned-by: " + signer.String() + "\nOrg: " + org.String() + "\n"
	sig, err := key.Sign(fcrypto.LabelCard, []byte(signed))
	if err != nil {
		return nil, err
	}
	card := []byte(signed + cardSigPrefix + base64.StdEncoding.EncodeToString(sig))
	if len(card) > fcrypto.CardSize {
		return nil, fcrypto.ErrCardTooLarge
	}
	return card, nil
}

// parseCard splits a card into the signed bytes, the signer, the org and
// the signature. Trailing newlines (padding) are ignored.
func parseCard(text []byte) (signed []byte, signer syncproto.DeviceID, org fcrypto.Fingerprint, sig []byte, err error) {
	text = bytes.TrimRight(text, "\n")
	if !bytes.HasPrefix(text, []byte(cardTitle+"\n")) {
		return nil, signer, org, nil, ErrCardMalformed
	}
	i := bytes.LastIndex(text, []byte("\n"+cardSigPrefix))
	if i < 0 {
		return nil, signer, org, nil, ErrCardMalformed
	}
	signed, sigLine := text[:i+1], text[i+1+len(cardSigPrefix):]
	sig, derr := base64.StdEncoding.DecodeString(string(sigLine))
	if derr != nil {
		return nil, signer, org, nil, ErrCardMalformed
	}
	j := bytes.LastIndex(signed, []byte("\n"+cardSigHeader+"\n"))
	if j < 0 {
		return nil, signer, org, nil, ErrCardMalformed
	}
	block := strings.Split(strings.TrimSuffix(string(signed[j+len(cardSigHeader)+2:]), "\n"), "\n")
	if len(block) != 2 || !strings.HasPrefix(block[0], "Signed-by: ") || !strings.HasPrefix(block[1], "Org: ") {
		return nil, signer, org, nil, ErrCardMalformed
	}
	if signer, err = syncproto.ParseDeviceID(strings.TrimPrefix(block[0], "Signed-by: ")); err != nil {
		return nil, signer, org, nil, ErrCardMalformed
	}
	if org, err = fcrypto.ParseFingerprint(strings.TrimPrefix(block[1], "Org: ")); err != nil {
		return nil, signer, org, nil, ErrCardMalformed
	}
	return signed, signer, org, sig, nil
}

// CardSigner returns the device a card says signed it, so the caller can
// look its key up in the org's chain.
func CardSigner(text []byte) (syncproto.DeviceID, error) {
	_, signer, _, _, err := parseCard(text)
	return signer, err
}

// VerifyCard checks a card's signature with the signer's key (taken from
// the org's chain by the caller) and that it names the org.
func VerifyCard(text []byte, org fcrypto.Fingerprint, signerKey fcrypto.PublicKey) error {
	signed, _, cardOrg, sig, err := parseCard(text)
	if err != nil {
		return err
	}
	if !cardOrg.Equal(org) {
		return ErrCardOrg
	}
	if signerKey.IsZero() {
		return fmt.Errorf("%w: no signer key", ErrCardSignature)
	}
	if err := signerKey.Verify(fcrypto.LabelCard, signed, sig); err != nil {
		return ErrCardSignature
	}
	return nil
}
