package client

import (
	"bytes"
	_ "embed"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/client/replica"
	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// Card vectors: a card signed with a fixed key (ok.txt), the same card
// with the address changed after signing (tampered.txt), and the card of
// the same case after closing (closed.txt) and after its purge (purged.txt).
// Regenerate with
// FRISTED_UPDATE_CARD_VECTORS=1 go test -run TestCardVectors ./client/
var (
	//go:embed testdata/card/ok.txt
	cardVectorOK []byte
	//go:embed testdata/card/tampered.txt
	cardVectorTampered []byte
	//go:embed testdata/card/closed.txt
	cardVectorClosed []byte
	//go:embed testdata/card/purged.txt
	cardVectorPurged []byte
)

// cardVectorClosedContent is what cardContent makes of the vector case
// after it was closed.
func cardVectorClosedContent(t *testing.T) CardContent {
	c := cardVectorContent(t)
	v := &replica.ResidentView{
		Fields: map[string]string{"pseudonym": c.Pseudonym, "legal_name": c.LegalName, "description": c.Description,
			"secret_address": c.SecretAddress, "address_code": c.AddressCode, "moved_out": "2027-03-01", "closed": "yes"},
		Records: map[string][]replica.Record{
			"threat":  {{Kind: "threat", Fields: map[string]string{"actors": c.ThreatActors, "vehicles": c.ThreatVehicles}}},
			"contact": {{Kind: "contact", Fields: map[string]string{"role": "police", "name": "Kari Nordmann", "phone": "+47 22 00 00 00"}}},
			"crisis":  {{Kind: "crisis", Fields: map[string]string{"scenario": "Break-in", "action": "call 112, then the unit"}}},
		},
	}
	return cardContent(v, c.Alarm, c.SealedAt)
}

func cardVectorKeys(t *testing.T) (*fcrypto.SigningKey, syncproto.DeviceID, fcrypto.Fingerprint) {
	t.Helper()
	seed := bytes.Repeat([]byte{0x42}, 32)
	key, err := fcrypto.NewSigningKeyFromSeed(seed)
	require.NoError(t, err)
	root, err := fcrypto.NewSigningKeyFromSeed(bytes.Repeat([]byte{0x07}, 32))
	require.NoError(t, err)
	dev, err := syncproto.ParseDeviceID("d_aaaaaaaaaaaaaaaaaaaaaaaaaa")
	require.NoError(t, err)
	return key, dev, fcrypto.OrgFingerprint(root.Public())
}

func cardVectorContent(t *testing.T) CardContent {
	t.Helper()
	alarm, err := syncproto.ParseAlarmID("a_bbbbbbbbbbbbbbbbbbbbbbbbba")
	require.NoError(t, err)
	return CardContent{
		Alarm: alarm, SealedAt: time.Date(2026, 11, 29, 9, 30, 0, 0, time.UTC),
		Pseudonym: "Mina", LegalName: "Mina Testesen", Description: "About 165 cm, slim, long dark hair,\nscar above the left eyebrow",
		SecretAddress: "Lilleveien 4C\n0575 Oslo", AddressCode: "6",
		ThreatActors: "Ex-partner and his brother", ThreatVehicles: "Grey Volvo V70",
		Contacts:     []CardContact{{Role: "police", Name: "Kari Nordmann", Phone: "+47 22 00 00 00"}},
		Instructions: []string{"Break-in: call 112, then the unit", "Do not disclose the address. Verify this card's check code with the organisation."},
	}
}

func TestCardVectors(t *testing.T) {
	key, dev, org := cardVectorKeys(t)
	card, err := BuildCard(cardVectorContent(t), dev, key, org)
	require.NoError(t, err)
	tampered := bytes.Replace(card, []byte("Lilleveien 4C"), []byte("Lilleveien 4D"), 1)
	closed, err := BuildCard(cardVectorClosedContent(t), dev, key, org)
	require.NoError(t, err)
	vc := cardVectorContent(t)
	purged, err := BuildCard(CardContent{Alarm: vc.Alarm, SealedAt: vc.SealedAt, Purged: true, Instructions: []string{purgedInstruction}}, dev, key, org)
	require.NoError(t, err)
	if os.Getenv("FRISTED_UPDATE_CARD_VECTORS") == "1" {
		require.NoError(t, os.WriteFile(filepath.Join("testdata", "card", "ok.txt"), card, 0o644))
		require.NoError(t, os.WriteFile(filepath.Join("testdata", "card", "tampered.txt"), tampered, 0o644))
		require.NoError(t, os.WriteFile(filepath.Join("testdata", "card", "closed.txt"), closed, 0o644))
		require.NoError(t, os.WriteFile(filepath.Join("testdata", "card", "purged.txt"), purged, 0o644))
		t.Skip("vectors written")
	}
	require.Equal(t, string(cardVectorClosed), string(closed))
	require.Equal(t, string(cardVectorPurged), string(purged))
	require.NoError(t, VerifyCard(cardVectorPurged, org, key.Public()))
	for _, gone := range []string{"Mina", "Testesen", "Lilleveien", "Kari", "165 cm"} {
		require.NotContains(t, string(cardVectorPurged), gone)
	}
	require.NoError(t, VerifyCard(cardVectorClosed, org, key.Public()))
	require.Contains(t, string(cardVectorClosed), "\nStatus: CASE CLOSED (moved out 2027-03-01)")
	require.NotContains(t, string(cardVectorClosed), "Lilleveien")
	require.NotEqual(t, CardContentHash(cardVectorContent(t)), CardContentHash(cardVectorClosedContent(t)))
	later := cardVectorContent(t)
	later.SealedAt = later.SealedAt.Add(time.Hour)
	require.Equal(t, CardContentHash(cardVectorContent(t)), CardContentHash(later), "the content hash ignores sealed-at")
	// Ed25519 signatures are deterministic: the vector is exactly what
	// BuildCard makes today.
	require.Equal(t, string(cardVectorOK), string(card))
	require.NoError(t, VerifyCard(cardVectorOK, org, key.Public()))
	signer, err := CardSigner(cardVectorOK)
	require.NoError(t, err)
	require.Equal(t, dev, signer)
	require.NotEqual(t, byte('\n'), cardVectorOK[len(cardVectorOK)-1], "a card must not end in a newline (padding)")

	require.ErrorIs(t, VerifyCard(cardVectorTampered, org, key.Public()), ErrCardSignature)

	// Padding (trailing newlines) is not part of the card.
	padded, err := fcrypto.PadCard(cardVectorOK)
	require.NoError(t, err)
	require.NoError(t, VerifyCard(padded, org, key.Public()))

	// Another org, another key, garbage.
	otherRoot, err := fcrypto.NewSigningKeyFromSeed(bytes.Repeat([]byte{0x08}, 32))
	require.NoError(t, err)
	other := fcrypto.OrgFingerprint(otherRoot.Public())
	require.ErrorIs(t, VerifyCard(cardVectorOK, other, key.Public()), ErrCardOrg)
	k2, err := fcrypto.GenerateSigningKey()
	require.NoError(t, err)
	require.ErrorIs(t, VerifyCard(cardVectorOK, org, k2.Public()), ErrCardSignature)
	require.ErrorIs(t, VerifyCard([]byte("hello"), org, key.Public()), ErrCardMalformed)
}

// A value cannot forge lines of the signature block: continuation lines
// are indented.
func TestCardValueCannotForgeBlock(t *testing.T) {
	key, dev, org := cardVectorKeys(t)
	c := cardVectorContent(t)
	c.SecretAddress = "x\n-- signature --\nSigned-by: d_cccccccccccccccccccccccccc\nOrg: " + org.String() + "\nSignature: AAAA"
	card, err := BuildCard(c, dev, key, org)
	require.NoError(t, err)
	require.NoError(t, VerifyCard(card, org, key.Public()))
	signer, err := CardSigner(card)
	require.NoError(t, err)
	require.Equal(t, dev, signer)
	require.True(t, strings.HasPrefix(string(card), "FRISTED ALARM CARD\n"))
}
