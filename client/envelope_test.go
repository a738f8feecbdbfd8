package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/stretchr/testify/require"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

const envAddress = "Lilleveien 4C, 0575 Oslo"

// envSetup makes an org with one resident and one police contact whose key
// is in a stock age identity file.
func envSetup(t testing.TB) (d *Device, r *loopbackRelay, policeFile string) {
	t.Helper()
	r = startLoopbackRelay(t)
	d, policeFile = envSetupVia(t, r, r.URL)
	return d, r, policeFile
}

// envSetupVia is envSetup with the coordinator talking to the relay r at
// url (a proxy in front of it).
func envSetupVia(t testing.TB, r *loopbackRelay, url string) (d *Device, policeFile string) {
	t.Helper()
	ctx := context.Background()
	d = relNewOrg(t, &loopbackRelay{URL: url, Invite: r.Invite, Dir: r.Dir}, filepath.Join(t.TempDir(), "coord"), "Enhet A")
	t.Cleanup(func() { d.Close() })
	_, err := d.ResidentAdd(ctx, ResidentAddParams{Pseudonym: "Mina", Arrived: "2026-11-01"})
	require.NoError(t, err)
	require.NoError(t, d.ResidentSet("Mina", map[string]string{"secret_address": envAddress, "legal_name": "Mina Testesen"}))
	_, err = d.RecordAdd("Mina", "threat", map[string]string{"source": "local_police", "actors": "Ex-partner", "vehicles": "Grey Volvo"})
	require.NoError(t, err)
	policeFile = filepath.Join(t.TempDir(), "police-key.txt")
	rcpt, err := PoliceKeygen(policeFile)
	require.NoError(t, err)
	fi, err := os.Stat(policeFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	_, err = PoliceKeygen(policeFile)
	require.ErrorContains(t, err, "not overwriting")
	_, fp, err := d.PoliceAdd(ctx, "Oslo alarm centre", rcpt)
	require.NoError(t, err)
	require.Equal(t, fcrypto.RecipientFingerprint(rcpt), fp)
	return d, policeFile
}

// stockIdentity reads the police key file with the stock age library only.
func stockIdentity(t *testing.T, path string) []age.Identity {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	require.NoError(t, err)
	return ids
}

func stockOpen(data []byte, ids []age.Identity) ([]byte, error) {
	rd, err := age.Decrypt(bytes.NewReader(data), ids...)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(rd)
}

func TestEnvelopeSealReleaseStockAge(t *testing.T) {
	ctx := context.Background()
	d, r, policeFile := envSetup(t)
	ids := stockIdentity(t, policeFile)
	dir := t.TempDir()

	res, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", dir)
	require.NoError(t, err)
	require.False(t, res.Resealed)
	require.Equal(t, d.Org().CheckCode(), res.CheckCode)
	fi, err := os.Stat(res.CredentialPath)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	credRaw, err := os.ReadFile(res.CredentialPath)
	require.NoError(t, err)
	require.NotContains(t, string(credRaw), "Lilleveien")
	require.NotContains(t, string(credRaw), "Mina")

	// Before release the police key opens no outer layer.
	policeRcpt, err := fcrypto.ParsePoliceRecipient(d.mustPoliceRecipient(t, "Oslo alarm centre"))
	require.NoError(t, err)
	release, err := fcrypto.GenerateBoxIdentity()
	require.NoError(t, err)
	_, outer, err := fcrypto.SealEnvelope([]byte("FRISTED ALARM CARD\nSecret address: "+envAddress), policeRcpt, release.Recipient())
	require.NoError(t, err)
	_, err = stockOpen(outer, ids)
	var nm *age.NoIdentityMatchError
	require.True(t, errors.As(err, &nm), "police key opened an outer layer: %v", err)

	cred, err := ReadCredential(res.CredentialPath)
	require.NoError(t, err)
	rel, err := EnvelopeRelease(ctx, cred)
	require.NoError(t, err)
	require.Equal(t, res.CheckCode, rel.CheckCode)
	require.NotContains(t, string(rel.Inner), "Lilleveien")

	padded, err := stockOpen(rel.Inner, ids)
	require.NoError(t, err)
	require.Len(t, padded, fcrypto.CardSize)
	card := bytes.TrimRight(padded, "\n")
	require.Contains(t, string(card), "Secret address: "+envAddress)
	require.Contains(t, string(card), "Alarm: "+res.Alarm.String())
	require.Contains(t, string(card), "Threat vehicles: Grey Volvo")

	// The card's signature checks against the chain's key of its signer.
	signer, err := CardSigner(card)
	require.NoError(t, err)
	require.Equal(t, d.ID(), signer)
	key := d.chain.State().Devices[signer].SignPub
	require.NoError(t, VerifyCard(card, d.Org(), key))

	// A second release is refused.
	_, err = EnvelopeRelease(ctx, cred)
	require.ErrorContains(t, err, "already released")
	_ = r
}

func (d *Device) mustPoliceRecipient(t *testing.T, name string) string {
	t.Helper()
	ls, err := d.labels(kindPolice)
	require.NoError(t, err)
	for _, l := range ls {
		if l.Fields["name"] == name {
			return l.Fields["recipient"]
		}
	}
	t.Fatalf("no police contact %q", name)
	return ""
}

// A proxy that swaps the released inner layer for a card someone else
// encrypted to the police key: the release command refuses it. A re-seal
// (same alarm, same credential) then releases normally.
func TestEnvelopeSwappedInnerRefusedThenReseal(t *testing.T) {
	ctx := context.Background()
	d, r, policeFile := envSetup(t)
	ids := stockIdentity(t, policeFile)
	dir := t.TempDir()
	res, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", dir)
	require.NoError(t, err)

	policeRcpt, err := fcrypto.ParsePoliceRecipient(d.mustPoliceRecipient(t, "Oslo alarm centre"))
	require.NoError(t, err)
	var forged bytes.Buffer
	w, err := age.Encrypt(&forged, policeRcpt)
	require.NoError(t, err)
	_, err = w.Write([]byte("FRISTED ALARM CARD\nSecret address: a trap\n"))
	require.NoError(t, err)
	require.NoError(t, w.Close())

	target, err := url.Parse(r.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if !strings.HasSuffix(resp.Request.URL.Path, "/release") || resp.StatusCode != http.StatusOK {
			return nil
		}
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		m["inner"] = base64.StdEncoding.EncodeToString(forged.Bytes())
		raw, _ = json.Marshal(m)
		resp.Body = io.NopCloser(bytes.NewReader(raw))
		resp.ContentLength = int64(len(raw))
		resp.Header.Del("Content-Length")
		return nil
	}
	ps := httptest.NewServer(proxy)
	defer ps.Close()

	cred, err := ReadCredential(res.CredentialPath)
	require.NoError(t, err)
	viaProxy := *cred
	viaProxy.Relay = ps.URL
	_, err = EnvelopeRelease(ctx, &viaProxy)
	require.ErrorIs(t, err, ErrReleaseCheck)
	require.ErrorContains(t, err, "inner layer is not the one the coordinator sealed")

	// Re-seal: same alarm id, same credential, a new generation.
	res2, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", dir)
	require.NoError(t, err)
	require.True(t, res2.Resealed)
	require.Equal(t, res.Alarm, res2.Alarm)
	require.Equal(t, uint32(2), res2.Generation)
	rel, err := EnvelopeRelease(ctx, cred)
	require.NoError(t, err)
	padded, err := stockOpen(rel.Inner, ids)
	require.NoError(t, err)
	require.Contains(t, string(padded), envAddress)
}

func TestEnvelopeReleaseBadInput(t *testing.T) {
	ctx := context.Background()
	d, _, _ := envSetup(t)
	dir := t.TempDir()
	res, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", dir)
	require.NoError(t, err)
	cred, err := ReadCredential(res.CredentialPath)
	require.NoError(t, err)

	unknown := *cred
	unknown.Alarm = syncproto.NewAlarmID().String()
	_, err = EnvelopeRelease(ctx, &unknown)
	require.EqualError(t, err, "release: unknown alarm or wrong credential")

	// A wrong secret, as if the credential file were edited.
	wrong := *cred
	sec, _ := base64.StdEncoding.DecodeString(cred.Secret)
	sec[0] ^= 1
	wrong.Secret = base64.StdEncoding.EncodeToString(sec)
	raw, _ := json.Marshal(wrong)
	edited := filepath.Join(dir, "edited.json")
	require.NoError(t, os.WriteFile(edited, raw, 0o600))
	wc, err := ReadCredential(edited)
	require.NoError(t, err)
	_, err = EnvelopeRelease(ctx, wc)
	require.EqualError(t, err, "release: unknown alarm or wrong credential")

	// A truncated credential file.
	full, err := os.ReadFile(res.CredentialPath)
	require.NoError(t, err)
	trunc := filepath.Join(dir, "truncated.json")
	require.NoError(t, os.WriteFile(trunc, full[:len(full)/2], 0o600))
	_, err = ReadCredential(trunc)
	require.ErrorContains(t, err, "malformed (truncated or edited?)")

	// A credential with a bad secret length.
	short := *cred
	short.Secret = base64.StdEncoding.EncodeToString([]byte("short"))
	_, err = EnvelopeRelease(ctx, &short)
	require.ErrorContains(t, err, "malformed secret")

	// The genuine credential still works after all that.
	_, err = EnvelopeRelease(ctx, cred)
	require.NoError(t, err)
}
