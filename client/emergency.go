package client

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"filippo.io/age"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// Emergency cards. When the relay is down at the moment of an alarm, a
// coordinator's or an assigned worker's laptop writes a fresh card signed
// by itself, followed by the admin chain up to its head (the proof that
// the signer was an enrolled, unrevoked device of the org), age-encrypted
// to the police contact. The police open it with the stock age tool and
// check it with `fristed envelope verify FILE --org FINGERPRINT`.
const proofMarker = "-- chain proof --"

// EmergencyResult is what `envelope emergency` produced.
type EmergencyResult struct {
	File      []byte // the age file for the police
	CheckCode string
}

// EnvelopeEmergency writes an emergency card for a resident to a police
// contact, without the relay, and records it in the audit log (synced
// when the relay is back).
func (d *Device) EnvelopeEmergency(resident, police string) (*EmergencyResult, error) {
	if d.cfg.Role == RolePending {
		return nil, ErrNotApproved
	}
	sid, err := d.residentForEdit(resident)
	if err != nil {
		return nil, err
	}
	contact, rcpt, err := d.policeByName(police)
	if err != nil {
		return nil, err
	}
	alarm, ok, err := d.alarmFor(sid, contact)
	if err != nil {
		return nil, err
	}
	if !ok {
		alarm = syncproto.NewAlarmID() // no sealed envelope yet: the card names a fresh id
	}
	if err := d.recordExport(sid, "an emergency card for the police"); err != nil {
		return nil, err
	}
	v, err := d.rep.Resident(sid, true)
	if err != nil {
		return nil, err
	}
	now := d.opts.now().Truncate(time.Second)
	card, err := BuildCard(cardContent(v, alarm, now), d.pc.device, d.kf.Sign, d.pc.org)
	if err != nil {
		return nil, err
	}
	var bundle bytes.Buffer
	bundle.Write(card)
	bundle.WriteString("\n\n" + proofMarker + "\n")
	for pos := 0; pos < d.chain.Len(); pos++ {
		raw, err := d.chain.Statement(syncproto.ChainPos(pos)).Marshal()
		if err != nil {
			return nil, err
		}
		bundle.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n")
	}
	var out bytes.Buffer
	w, err := age.Encrypt(&out, rcpt)
	if err != nil {
		return nil, err
	}
	w.Write(bundle.Bytes())
	if err := w.Close(); err != nil {
		return nil, err
	}
	return &EmergencyResult{File: out.Bytes(), CheckCode: d.pc.org.CheckCode()}, nil
}

// VerifiedCard is what `envelope verify` established.
type VerifiedCard struct {
	Signer    syncproto.DeviceID
	Role      string
	CheckCode string
}

// ErrCardForged means a card's signature or its proof does not check out.
var ErrCardForged = errors.New("this card is not genuine")

// VerifyEmergencyCard checks a decrypted emergency card: the chain proof
// must verify from genesis against the org fingerprint, the signer must be
// an enrolled device not revoked in it, and the card's signature must be
// that device's.
func VerifyEmergencyCard(text []byte, org fcrypto.Fingerprint) (*VerifiedCard, error) {
	s := string(text)
	i := strings.Index(s, "\n\n"+proofMarker+"\n")
	if i < 0 {
		return nil, fmt.Errorf("%w: no chain proof (a released envelope is checked by `fristed envelope release`)", ErrCardForged)
	}
	card := []byte(s[:i])
	chain := syncproto.NewChain(org)
	for _, line := range strings.Split(strings.TrimSpace(s[i+len(proofMarker)+3:]), "\n") {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(line))
		if err != nil {
			return nil, fmt.Errorf("%w: malformed chain proof", ErrCardForged)
		}
		if _, err := chain.Append(raw); err != nil {
			return nil, fmt.Errorf("%w: chain proof: %v", ErrCardForged, err)
		}
	}
	signer, err := CardSigner(card)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCardForged, err)
	}
	dev := chain.State().Devices[signer]
	if dev == nil || dev.Revoked {
		return nil, fmt.Errorf("%w: the signer is not an active device of this org", ErrCardForged)
	}
	if err := VerifyCard(card, org, dev.SignPub); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCardForged, err)
	}
	return &VerifiedCard{Signer: signer, Role: dev.Role.String(), CheckCode: org.CheckCode()}, nil
}
