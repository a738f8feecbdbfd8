package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server/relaytest"
	"github.com/fristed/fristed/syncproto"
)

// TestRootReadChain: the holder of the org root key, who has no device,
// reads the whole chain with a root-signed proof over a fresh nonce (org
// recover verifies it before the root signs on its head). Anything else is
// refused alike, and a nonce serves one read.
func TestRootReadChain(t *testing.T) {
	e := startEnv(t)
	g := newOrg(t, e)
	g.worker(1)
	other := newOrg(t, e)
	path := relaytest.TenantPath(g.tenant) + "/chain/root-read"

	proof := func(key *fcrypto.SigningKey, mod func(p *syncproto.AuthProof)) []byte {
		t.Helper()
		n, err := e.c.Challenge(g.tenant, syncproto.DeviceID{})
		require.NoError(t, err)
		p := &syncproto.AuthProof{Tenant: g.tenant, Relay: e.relayKey, Nonce: n, SignedMS: uint64(time.Now().UnixMilli())}
		if mod != nil {
			mod(p)
		}
		require.NoError(t, p.Sign(key))
		return p.Marshal()
	}
	read := func(path string, body []byte) (*relaytest.Response, error) {
		return e.c.Do(http.MethodPost, path, http.Header{"Content-Type": {"application/octet-stream"}}, body)
	}

	ok := proof(g.o.Root, nil)
	resp, err := read(path, ok)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.Status, "root read: %s", resp.Body)
	var out struct {
		Statements []string `json:"statements"`
		Head       uint64   `json:"head"`
	}
	require.NoError(t, json.Unmarshal(resp.Body, &out))
	want, head, err := g.cs.Chain(0)
	require.NoError(t, err)
	if len(out.Statements) != len(want) || out.Head != uint64(head) {
		t.Fatalf("root read: got %d statements, head %d; want %d, head %d", len(out.Statements), out.Head, len(want), head)
	}
	for i, s := range out.Statements {
		if s != base64.StdEncoding.EncodeToString(want[i]) {
			t.Fatalf("root read: statement %d differs from the chain", i)
		}
	}

	do := func(p string, body []byte) func() (*relaytest.Response, error) {
		return func() (*relaytest.Response, error) { return read(p, body) }
	}
	g.expectRefusals(t, nil, []refusal{
		{"nonce reused", 401, syncproto.CodeUnauthorized, do(path, ok)},
		{"signed by a device", 401, syncproto.CodeUnauthorized, do(path, proof(g.coord.Sign, nil))},
		{"another org's root", 401, syncproto.CodeUnauthorized, do(path, proof(other.o.Root, nil))},
		{"a device id", 401, syncproto.CodeUnauthorized, do(path, proof(g.o.Root, func(p *syncproto.AuthProof) { p.Device = g.coord.ID }))},
		{"another tenant", 401, syncproto.CodeUnauthorized, do(relaytest.TenantPath(other.tenant)+"/chain/root-read", proof(g.o.Root, nil))},
		{"another relay key", 401, syncproto.CodeUnauthorized, do(path, proof(g.o.Root, func(p *syncproto.AuthProof) { p.Relay = g.o.Root.Public() }))},
		{"unknown nonce", 401, syncproto.CodeUnauthorized, do(path, proof(g.o.Root, func(p *syncproto.AuthProof) { p.Nonce[0] ^= 1 }))},
		{"clock far off", 401, syncproto.CodeUnauthorized, do(path, proof(g.o.Root, func(p *syncproto.AuthProof) {
			p.SignedMS = uint64(time.Now().Add(time.Hour).UnixMilli())
		}))},
		{"not a proof", 400, syncproto.CodeBadRequest, do(path, []byte("\x01\x07short"))},
		{"bad page", 400, syncproto.CodeBadRequest, do(path+"?from=-1", proof(g.o.Root, nil))},
	})
}
