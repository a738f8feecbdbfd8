package client

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	fcrypto "github.com/fristed/fristed/crypto"
)

// TestEmergencyCard: with the relay down, the coordinator writes a card the
// police open with stock age and that verifies against the org
// fingerprint; a tampered card, another org, or a card whose proof lacks
// the signer is refused.
func TestEmergencyCard(t *testing.T) {
	d, r, policeFile := envSetup(t)
	r.Stop() // the alarm goes off while the relay is down

	res, err := d.EnvelopeEmergency("Mina", "Oslo alarm centre")
	require.NoError(t, err)
	if !bytes.HasPrefix(res.File, []byte("age-encryption.org/v1")) {
		t.Fatalf("got %q..., want an age file", res.File[:20])
	}
	if bytes.Contains(res.File, []byte(envAddress)) {
		t.Fatal("the address is in the clear in the emergency file")
	}
	text, err := stockOpen(res.File, stockIdentity(t, policeFile))
	require.NoError(t, err)
	if !strings.Contains(string(text), envAddress) || !strings.Contains(string(text), "Grey Volvo") {
		t.Fatalf("got card %q, want the address and the vehicle", text)
	}
	v, err := VerifyEmergencyCard(text, d.Org())
	require.NoError(t, err)
	if v.Signer != d.ID() || v.CheckCode != d.Org().CheckCode() {
		t.Errorf("got %+v, want signer %s and check code %s", v, d.ID(), d.Org().CheckCode())
	}

	// The emergency is in the audit log, waiting to sync.
	entries, err := d.AuditShow("Mina", d.opts.now().AddDate(0, 0, -1))
	require.NoError(t, err)
	found := false
	for _, e := range entries {
		found = found || (e.Source == "device" && e.What == "exported an emergency card for the police")
	}
	if !found {
		t.Errorf("got audit %+v, want an emergency card entry", entries)
	}

	tampered := bytes.Replace(text, []byte(envAddress), []byte("Falskveien 1, 0150 Oslo"), 1)
	other := fcrypto.OrgFingerprint(mustKey(t).Public())
	i := bytes.Index(text, []byte(proofMarker))
	lines := strings.Split(strings.TrimSpace(string(text[i+len(proofMarker):])), "\n")
	short := append(append([]byte(nil), text[:i+len(proofMarker)]...), []byte("\n"+strings.Join(lines[:1], "\n")+"\n")...)
	badB64 := append(append([]byte(nil), text[:i+len(proofMarker)]...), []byte("\n!!!\n")...)
	for name, tc := range map[string]struct {
		text []byte
		want string
	}{
		"tampered address":        {tampered, "signature"},
		"another org":             {text, "chain proof"},
		"proof without signer":    {short, "not an active device"},
		"malformed proof":         {badB64, "malformed chain proof"},
		"released card, no proof": {text[:i], "no chain proof"},
	} {
		org := d.Org()
		if name == "another org" {
			org = other
		}
		_, err := VerifyEmergencyCard(tc.text, org)
		if !errors.Is(err, ErrCardForged) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want ErrCardForged mentioning %q", name, err, tc.want)
		}
	}
}

func mustKey(t *testing.T) *fcrypto.SigningKey {
	t.Helper()
	k, err := fcrypto.GenerateSigningKey()
	require.NoError(t, err)
	return k
}

// TestExpiredEnvelopeListed: a coordinator's sync lists envelopes sealed
// longer ago than the org's envelope expiry, and not fresh ones.
func TestExpiredEnvelopeListed(t *testing.T) {
	ctx := context.Background()
	d, _, _ := envSetup(t)
	res, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", t.TempDir())
	require.NoError(t, err)
	var notices []string
	d.opts.Notice = func(s string) { notices = append(notices, s) }
	_, err = d.Sync(ctx)
	require.NoError(t, err)
	for _, n := range notices {
		if strings.Contains(n, "re-seal") {
			t.Fatalf("got notice %q for a fresh envelope", n)
		}
	}
	later := time.Now().AddDate(0, 0, DefaultEnvelopeExpiryDays+1)
	d.opts.Now = func() time.Time { return later }
	_, err = d.Sync(ctx)
	require.NoError(t, err)
	found := false
	for _, n := range notices {
		found = found || (strings.Contains(n, res.Alarm.String()) && strings.Contains(n, "re-seal"))
	}
	if !found {
		t.Errorf("got notices %q, want one asking to re-seal %s", notices, res.Alarm)
	}
}

// TestSealPreviewDeclined: a declined preview seals nothing and leaves no
// credential file behind.
func TestSealPreviewDeclined(t *testing.T) {
	d, _, _ := envSetup(t)
	dir := t.TempDir()
	var shown []byte
	d.CardPreview = func(card []byte) bool { shown = card; return false }
	_, err := d.EnvelopeSeal(context.Background(), "Mina", "Oslo alarm centre", dir)
	if err == nil || !strings.Contains(err.Error(), "not sealed") {
		t.Fatalf("got %v, want not sealed", err)
	}
	if !strings.Contains(string(shown), envAddress) {
		t.Errorf("got preview %q, want the card with the address", shown)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("got files %v after a declined seal, want none", left)
	}
	if n := len(d.chain.State().Envelopes); n != 0 {
		t.Errorf("got %d envelopes in the chain, want 0", n)
	}
}
