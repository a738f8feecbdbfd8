package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server"
	"github.com/fristed/fristed/syncproto"
)

// releaseAnswer is the relay's release answer as it travels.
type releaseAnswer struct {
	Inner      string   `json:"inner"`
	Sealed     string   `json:"sealed_statement"`
	Proof      []string `json:"proof"`
	SealedAt   string   `json:"sealed_at"`
	ReleasedAt string   `json:"released_at"`
	Retry      bool     `json:"retry"`
}

// hostileReleaseProxy forwards everything to the relay except release
// calls, which it hands to answer with the request's nonce and a function
// that forwards the call to the real relay.
func hostileReleaseProxy(t *testing.T, relayURL string, answer func(nonce []byte, forward func() releaseAnswer) releaseAnswer) string {
	t.Helper()
	target, err := url.Parse(relayURL)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !strings.HasSuffix(req.URL.Path, "/release") {
			rp.ServeHTTP(w, req)
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var in struct{ Nonce string }
		_ = json.Unmarshal(body, &in)
		nonce, _ := base64.StdEncoding.DecodeString(in.Nonce)
		forward := func() releaseAnswer {
			resp, err := http.Post(relayURL+req.URL.Path, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Errorf("forward release: %v", err)
				return releaseAnswer{}
			}
			defer resp.Body.Close()
			var a releaseAnswer
			if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&a) != nil {
				t.Errorf("forward release: status %d", resp.StatusCode)
			}
			return a
		}
		a := answer(nonce, forward)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a)
	}))
	t.Cleanup(ps.Close)
	return ps.URL
}

// releaseVia releases with cred through the relay at relayURL, returning
// the raw answer too.
func releaseVia(t *testing.T, cred *Credential, relayURL string) (*ReleaseResult, releaseAnswer, error) {
	t.Helper()
	var got releaseAnswer
	proxy := hostileReleaseProxy(t, relayURL, func(_ []byte, forward func() releaseAnswer) releaseAnswer {
		got = forward()
		return got
	})
	c := *cred
	c.Relay = proxy
	res, err := EnvelopeRelease(context.Background(), &c)
	return res, got, err
}

func releaseThrough(t *testing.T, cred *Credential, proxy string) (*ReleaseResult, error) {
	t.Helper()
	c := *cred
	c.Relay = proxy
	return EnvelopeRelease(context.Background(), &c)
}

// A malicious relay keeps a genuine release answer of generation 1 and,
// after the coordinator re-sealed the envelope with a new address, serves
// it again: with its own proof (truncated to before the re-seal), with the
// proof cut back to the sealed statement, and with the current chain as
// proof. Each fails the release check with a clear message, and the
// genuine release of the new generation still works afterwards.
func TestEnvelopeSupersededReplayRefused(t *testing.T) {
	ctx := context.Background()
	d, r, policeFile := envSetup(t)
	ids := stockIdentity(t, policeFile)
	dir := t.TempDir()
	res, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", dir)
	require.NoError(t, err)
	cred, err := ReadCredential(res.CredentialPath)
	require.NoError(t, err)

	// Generation 1 is released (an alarm), and its answer kept.
	rel1, old, err := releaseVia(t, cred, r.URL)
	require.NoError(t, err)
	require.Equal(t, uint32(1), rel1.Generation)

	// The resident moves; the envelope is re-sealed with the same
	// credential.
	require.NoError(t, d.ResidentSet("Mina", map[string]string{"secret_address": "Nyveien 9, 0150 Oslo"}))
	res2, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", dir)
	require.NoError(t, err)
	require.Equal(t, uint32(2), res2.Generation)

	cases := []struct {
		name   string
		answer func(nonce []byte, forward func() releaseAnswer) releaseAnswer
		want   string
	}{
		{"replay with its own proof", func([]byte, func() releaseAnswer) releaseAnswer { return old },
			"the proof ends with a release recorded for another request"},
		{"replay with the proof cut at the sealed statement", func([]byte, func() releaseAnswer) releaseAnswer {
			a := old
			for i, raw := range a.Proof {
				if raw == a.Sealed {
					a.Proof = a.Proof[:i+1]
				}
			}
			return a
		}, "the proof does not end with the relay's release of this alarm"},
		{"old inner layer with the current proof", func(_ []byte, forward func() releaseAnswer) releaseAnswer {
			a := forward()
			a.Inner = old.Inner
			return a
		}, "the inner layer is a superseded envelope (generation 1 sealed at"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := releaseThrough(t, cred, hostileReleaseProxy(t, r.URL, tc.answer))
			require.ErrorIs(t, err, ErrReleaseCheck)
			require.ErrorContains(t, err, tc.want)
		})
	}

	// The third case released generation 2 through the proxy; its retry
	// window belongs to that request. The genuine answer, checked
	// directly, opens to the new address.
	_, err = EnvelopeRelease(ctx, cred)
	require.ErrorContains(t, err, "already released")
	res3, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", dir)
	require.NoError(t, err)
	require.Equal(t, uint32(3), res3.Generation)
	rel, err := EnvelopeRelease(ctx, cred)
	require.NoError(t, err)
	padded, err := stockOpen(rel.Inner, ids)
	require.NoError(t, err)
	require.Contains(t, string(padded), "Nyveien 9")
}

// What remains: a relay that keeps the old release identity and signs a
// release fact of its own on a fork of the chain cut before the re-seal
// passes the police's check (the relay holds its signing key). The release
// code shows it: the police read theirs to the organisation, whose audit
// has no release with that code.
func TestEnvelopeForkedReleaseHasUnknownCode(t *testing.T) {
	ctx := context.Background()
	d, r, _ := envSetup(t)
	dir := t.TempDir()
	res, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", dir)
	require.NoError(t, err)
	cred, err := ReadCredential(res.CredentialPath)
	require.NoError(t, err)
	_, old, err := releaseVia(t, cred, r.URL)
	require.NoError(t, err)
	require.NoError(t, d.ResidentSet("Mina", map[string]string{"secret_address": "Nyveien 9, 0150 Oslo"}))
	_, err = d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", dir)
	require.NoError(t, err)

	key, err := server.LoadRelayKey(r.Dir)
	require.NoError(t, err)
	fork := func(nonce []byte, _ func() releaseAnswer) releaseAnswer {
		a := old
		ch := syncproto.NewChain(d.Org())
		var tenant syncproto.TenantID
		for _, b64 := range a.Proof[:len(a.Proof)-1] {
			raw, _ := base64.StdEncoding.DecodeString(b64)
			st, err := ch.Append(raw)
			require.NoError(t, err)
			tenant = st.Tenant
		}
		now := uint64(time.Now().UnixMilli())
		s := ch.Next(tenant, syncproto.SignerRelay, syncproto.DeviceID{}, now,
			&syncproto.EnvelopeReleased{Alarm: res.Alarm, Generation: 1, ReleasedMS: now, Request: syncproto.ReleaseRequestHash(nonce)})
		require.NoError(t, s.Sign(key))
		raw, err := s.Marshal()
		require.NoError(t, err)
		a.Proof = append(append([]string(nil), a.Proof[:len(a.Proof)-1]...), base64.StdEncoding.EncodeToString(raw))
		return a
	}
	forged, err := releaseThrough(t, cred, hostileReleaseProxy(t, r.URL, fork))
	require.NoError(t, err, "a fork signed by the relay passes the police's check alone")
	require.Regexp(t, `^[A-Z2-7]{4}-[A-Z2-7]{4}$`, forged.ReleaseCode)

	_, err = d.Sync(ctx)
	require.NoError(t, err)
	entries, err := d.AuditShow("", time.Time{})
	require.NoError(t, err)
	var codes []string
	for _, e := range entries {
		if i := strings.Index(e.What, "(release code "); i >= 0 {
			codes = append(codes, e.What[i+len("(release code "):len(e.What)-1])
		}
	}
	require.Len(t, codes, 1, "the organisation sees the one genuine release: %v", codes)
	require.NotContains(t, codes, forged.ReleaseCode)
}
