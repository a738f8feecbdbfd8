package server_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server/relaytest"
	"github.com/fristed/fristed/syncproto"
)

// refusal is one bad request and the answer it must get.
type refusal struct {
	name   string
	status int
	code   syncproto.Code
	do     func() (*relaytest.Response, error)
}

// relayState is what a refused request must leave unchanged.
type relayState struct {
	counts map[string]int
	chain  syncproto.ChainPos
	heads  map[syncproto.StreamID]relaytest.StreamHead
}

func (g *org) state(streams ...syncproto.StreamID) relayState {
	g.t.Helper()
	st := relayState{counts: dbCounts(g.t, g.e.data), heads: map[syncproto.StreamID]relaytest.StreamHead{}}
	_, head, err := g.cs.Chain(0)
	require.NoError(g.t, err)
	st.chain = head
	for _, s := range streams {
		h, err := g.cs.Head(s)
		require.NoError(g.t, err)
		st.heads[s] = h
	}
	return st
}

// expectRefusals runs each case as a subtest: the status and code must
// match, and nothing may change in the store, the chain or the streams.
func (g *org) expectRefusals(t *testing.T, streams []syncproto.StreamID, cases []refusal) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := g.state(streams...)
			resp, err := c.do()
			require.NoError(t, err, "request")
			e := relaytest.ParseError(resp)
			if resp.Status != c.status || e.Code != c.code {
				t.Errorf("got %d %s (%s), want %d %s", resp.Status, e.Code, e.Message, c.status, c.code)
			}
			if e.Code.Status() != resp.Status {
				t.Errorf("code %s sent with status %d, want %d", e.Code, resp.Status, e.Code.Status())
			}
			if after := g.state(streams...); !equalState(before, after) {
				t.Errorf("state changed: before %+v, after %+v", before, after)
			}
		})
	}
}

func equalState(a, b relayState) bool {
	if a.chain != b.chain || len(a.counts) != len(b.counts) || len(a.heads) != len(b.heads) {
		return false
	}
	for k, v := range a.counts {
		if b.counts[k] != v {
			return false
		}
	}
	for k, v := range a.heads {
		if b.heads[k] != v {
			return false
		}
	}
	return true
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func TestBadInput(t *testing.T) {
	e := startEnv(t)
	g := newOrg(t, e)
	w, devs, sess := g.worker(2)
	A, a := devs[0], sess[0]
	_, devsC, sessC := g.worker(1)
	C, c := devsC[0], sessC[0]
	s, ep := g.stream([]syncproto.WorkerID{w}, devs...)
	s2, _ := g.stream(nil)
	au := &relaytest.Author{Dev: A, Stream: s}
	b0, raw0, err := au.Batch(g.o, ep, g.o.Head(), []byte("first"))
	require.NoError(t, err)
	seq0, rc0, err := a.Push(s, raw0)
	require.NoError(t, err)
	streams := []syncproto.StreamID{s, s2}
	batchPath := relaytest.TenantPath(g.tenant) + "/streams/" + s.String() + "/batches"
	push := func(sess *relaytest.Session, path string, body []byte) func() (*relaytest.Response, error) {
		return func() (*relaytest.Response, error) { return e.c.Do(http.MethodPost, path, bearer(sess.Token), body) }
	}
	fresh := func(values ...string) (*syncproto.Batch, []byte) {
		x := &relaytest.Author{Dev: A, Stream: s, Counter: 100}
		var vs [][]byte
		for _, v := range values {
			vs = append(vs, []byte(v))
		}
		b, raw, err := x.Batch(g.o, ep, g.o.Head(), vs...)
		require.NoError(t, err)
		return b, raw
	}
	mutate := func(raw []byte, f func([]byte) []byte) []byte { return f(append([]byte(nil), raw...)) }

	t.Run("batches", func(t *testing.T) {
		b3, raw3 := fresh("x", "y", "z")
		// Missing a delta: the signature covers every delta's hash.
		missing := *b3
		missing.Deltas = missing.Deltas[:2]
		rawMissing, err := missing.Marshal()
		require.NoError(t, err)
		lastLen := len(b3.Deltas[2].Ciphertext)
		// Signed by another device's key under A's id.
		forged := &relaytest.Author{Dev: &relaytest.Device{ID: A.ID, Sign: devs[1].Sign}, Stream: s}
		_, rawForged, err := forged.Batch(g.o, ep, g.o.Head(), []byte("forged"))
		require.NoError(t, err)
		// Another device's batch, sent with A's token.
		_, rawB, err := (&relaytest.Author{Dev: devs[1], Stream: s}).Batch(g.o, ep, g.o.Head(), []byte("b"))
		require.NoError(t, err)
		// C is not assigned to s.
		_, rawC, err := (&relaytest.Author{Dev: C, Stream: s}).Seal(g.o, ep, g.o.Key(s, ep), g.o.Head(),
			(&relaytest.Author{Dev: C, Stream: s}).Deltas(g.o, ep, []byte("c")))
		require.NoError(t, err)
		// An epoch that does not exist.
		k7, _ := fcrypto.NewKey()
		x := &relaytest.Author{Dev: A, Stream: s}
		_, rawE7, err := x.Seal(g.o, 7, k7, g.o.Head(), x.Deltas(g.o, 7, []byte("e7")))
		require.NoError(t, err)
		// A delta id already in the stream.
		reuse := x.Deltas(g.o, ep, []byte("again"))
		reuse[0].ID = b0.Deltas[0].ID
		_, rawReuse, err := x.Seal(g.o, ep, g.o.Key(s, ep), g.o.Head(), reuse)
		require.NoError(t, err)
		// A chain head that is not in the chain.
		bogusHead := g.o.Head()
		bogusHead.Hash[0] ^= 1
		_, rawBogus, err := x.Seal(g.o, ep, g.o.Key(s, ep), bogusHead, x.Deltas(g.o, ep, []byte("h")))
		require.NoError(t, err)
		big := make([]byte, 8<<20+1)
		copy(big, raw3)

		g.expectRefusals(t, streams, []refusal{
			{"malformed", 400, syncproto.CodeBadRequest, push(a, batchPath, []byte("\x01\x02not a batch"))},
			{"not a batch", 400, syncproto.CodeBadRequest, push(a, batchPath, mutate(raw3, func(b []byte) []byte { b[1] = byte(syncproto.MsgStatement); return b }))},
			{"garbage", 400, syncproto.CodeUnknownVersion, push(a, batchPath, []byte("not a batch"))},
			{"empty", 400, syncproto.CodeBadRequest, push(a, batchPath, []byte{})},
			{"truncated", 400, syncproto.CodeBadRequest, push(a, batchPath, raw3[:len(raw3)-7])},
			{"unknown version", 400, syncproto.CodeUnknownVersion, push(a, batchPath, mutate(raw3, func(b []byte) []byte { b[0] = 0x02; return b }))},
			{"oversized", 413, syncproto.CodeTooLarge, push(a, batchPath, big)},
			{"missing delta", 422, syncproto.CodeBadSignature, push(a, batchPath, rawMissing)},
			{"missing ciphertext", 400, syncproto.CodeBadRequest, push(a, batchPath, raw3[:len(raw3)-4-lastLen])},
			{"tampered ciphertext", 400, syncproto.CodeBadRequest, push(a, batchPath, mutate(raw3, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }))},
			{"forged signature", 422, syncproto.CodeBadSignature, push(a, batchPath, rawForged)},
			{"another device's batch", 403, syncproto.CodeForbidden, push(a, batchPath, rawB)},
			{"stream differs from url", 400, syncproto.CodeBadRequest, push(a, strings.Replace(batchPath, s.String(), s2.String(), 1), raw3)},
			{"not assigned", 403, syncproto.CodeNotAssigned, push(c, batchPath, rawC)},
			{"unknown epoch", 409, syncproto.CodeUnknownEpoch, push(a, batchPath, rawE7)},
			{"delta id reused", 409, syncproto.CodeConflict, push(a, batchPath, rawReuse)},
			{"chain head not in chain", 400, syncproto.CodeBadRequest, push(a, batchPath, rawBogus)},
			{"pull unassigned", 403, syncproto.CodeNotAssigned, func() (*relaytest.Response, error) {
				return e.c.Do(http.MethodGet, batchPath+"?after=0", bearer(c.Token), nil)
			}},
			{"pull bad cursor", 400, syncproto.CodeBadRequest, func() (*relaytest.Response, error) {
				return e.c.Do(http.MethodGet, batchPath+"?after=-1", bearer(a.Token), nil)
			}},
		})
	})

	t.Run("replay", func(t *testing.T) {
		before := g.state(streams...)
		seq, rc, err := a.Push(s, raw0)
		require.NoError(t, err)
		if seq != seq0 || !bytes.Equal(rc, rc0) {
			t.Errorf("replay: got seq %d receipt %x, want seq %d receipt %x", seq, rc, seq0, rc0)
		}
		if after := g.state(streams...); !equalState(before, after) {
			t.Errorf("replay changed state: %+v -> %+v", before, after)
		}
	})

	t.Run("tokens", func(t *testing.T) {
		chainPath := relaytest.TenantPath(g.tenant) + "/chain"
		seed, err := os.ReadFile(filepath.Join(e.data, "token.key"))
		require.NoError(t, err)
		tokenKey := ed25519.NewKeyFromSeed(seed)
		_, wrongKey, _ := ed25519.GenerateKey(rand.Reader)
		now := time.Now()
		claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
			c := jwt.MapClaims{"iss": "fristed-relay/" + e.relayKey.String(), "sub": A.ID.String(),
				"aud": []string{g.tenant.String()}, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "ver": 0}
			if mod != nil {
				mod(c)
			}
			return c
		}
		sign := func(m jwt.SigningMethod, key any, c jwt.MapClaims) string {
			s, err := jwt.NewWithClaims(m, c).SignedString(key)
			require.NoError(t, err)
			return s
		}
		get := func(h http.Header) func() (*relaytest.Response, error) {
			return func() (*relaytest.Response, error) { return e.c.Do(http.MethodGet, chainPath, h, nil) }
		}
		tok := func(s string) func() (*relaytest.Response, error) { return get(bearer(s)) }

		// The crafted claims are right: signed with the token key they pass.
		resp, err := tok(sign(jwt.SigningMethodEdDSA, tokenKey, claims(nil)))()
		require.NoError(t, err)
		require.Equal(t, 200, resp.Status, "a well-formed token signed with the relay's token key: %s", resp.Body)

		other := newOrg(t, e)
		g.expectRefusals(t, streams, []refusal{
			{"no token", 401, syncproto.CodeUnauthorized, get(nil)},
			{"not bearer", 401, syncproto.CodeUnauthorized, get(http.Header{"Authorization": {"Basic YTpi"}})},
			{"alg none", 401, syncproto.CodeUnauthorized, tok(sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)))},
			{"HS256 with relay key", 401, syncproto.CodeUnauthorized, tok(sign(jwt.SigningMethodHS256, e.relayKey[:], claims(nil)))},
			{"HS256 with relay key text", 401, syncproto.CodeUnauthorized, tok(sign(jwt.SigningMethodHS256, []byte(e.relayKey.String()), claims(nil)))},
			{"HS256 with token public key", 401, syncproto.CodeUnauthorized, tok(sign(jwt.SigningMethodHS256, []byte(tokenKey.Public().(ed25519.PublicKey)), claims(nil)))},
			{"wrong key", 401, syncproto.CodeUnauthorized, tok(sign(jwt.SigningMethodEdDSA, wrongKey, claims(nil)))},
			{"expired", 401, syncproto.CodeUnauthorized, tok(sign(jwt.SigningMethodEdDSA, tokenKey, claims(func(c jwt.MapClaims) {
				c["iat"], c["exp"] = now.Add(-30*time.Minute).Unix(), now.Add(-10*time.Minute).Unix()
			})))},
			{"no exp", 401, syncproto.CodeUnauthorized, tok(sign(jwt.SigningMethodEdDSA, tokenKey, claims(func(c jwt.MapClaims) { delete(c, "exp") })))},
			{"issued in the future", 401, syncproto.CodeUnauthorized, tok(sign(jwt.SigningMethodEdDSA, tokenKey, claims(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() })))},
			{"wrong audience", 401, syncproto.CodeUnauthorized, tok(sign(jwt.SigningMethodEdDSA, tokenKey, claims(func(c jwt.MapClaims) { c["aud"] = []string{other.tenant.String()} })))},
			{"wrong issuer", 401, syncproto.CodeUnauthorized, tok(sign(jwt.SigningMethodEdDSA, tokenKey, claims(func(c jwt.MapClaims) { c["iss"] = "someone" })))},
			{"stale version", 401, syncproto.CodeUnauthorized, tok(sign(jwt.SigningMethodEdDSA, tokenKey, claims(func(c jwt.MapClaims) { c["ver"] = 7 })))},
			{"another tenant's token", 401, syncproto.CodeUnauthorized, tok(other.cs.Token)},
			{"oversized header", 413, syncproto.CodeTooLarge, tok(strings.Repeat("a", 5000))},
		})
	})

	t.Run("statements", func(t *testing.T) {
		signed := func(s *syncproto.Statement, dev *relaytest.Device) []byte {
			raw, err := relaytest.Sign(s, g.o.Root, dev)
			require.NoError(t, err)
			return raw
		}
		post := func(sess *relaytest.Session, raw []byte) func() (*relaytest.Response, error) {
			return push(sess, relaytest.TenantPath(g.tenant)+"/chain", raw)
		}
		add := func() syncproto.Body { return &syncproto.WorkerAdded{Worker: syncproto.NewWorkerID()} }
		ahead := g.o.Unsigned(syncproto.SignerDevice, g.coord, add())
		ahead.Pos++
		stale := g.o.Unsigned(syncproto.SignerDevice, g.coord, add())
		stale.Prev[0] ^= 1
		badSig := signed(g.o.Unsigned(syncproto.SignerDevice, g.coord, add()), g.coord)
		badSig[len(badSig)-1] ^= 1
		relayFact := g.o.Unsigned(syncproto.SignerRelay, nil, &syncproto.DeviceRefused{Device: A.ID})
		relayFact.Sig = make([]byte, 64)
		rawRelay := must[[]byte](t)(relayFact.Marshal())
		good := signed(g.o.Unsigned(syncproto.SignerDevice, g.coord, add()), g.coord)
		g.expectRefusals(t, streams, []refusal{
			{"does not extend the head", 409, syncproto.CodeChainConflict, post(g.cs, signed(ahead, g.coord))},
			{"wrong parent", 409, syncproto.CodeChainConflict, post(g.cs, signed(stale, g.coord))},
			{"no authority", 422, syncproto.CodeInvalidStatement, post(a, signed(g.o.Unsigned(syncproto.SignerDevice, A, add()), A))},
			{"root statement by a worker device", 403, syncproto.CodeForbidden, post(a, signed(g.o.Unsigned(syncproto.SignerRoot, nil,
				&syncproto.CoordinatorDelegated{Device: C.ID, SignPub: C.Sign.Public(), Box: C.Box.Recipient().String()}), nil))},
			{"signed by another device", 403, syncproto.CodeForbidden, post(a, good)},
			{"bad signature", 422, syncproto.CodeBadSignature, post(g.cs, badSig)},
			{"forged relay fact", 403, syncproto.CodeForbidden, post(g.cs, rawRelay)},
			{"malformed", 400, syncproto.CodeBadRequest, post(g.cs, []byte("\x01\x04statement"))},
			{"unknown version", 400, syncproto.CodeUnknownVersion, post(g.cs, mutate(good, func(b []byte) []byte { b[0] = 9; return b }))},
			{"device statement without login", 401, syncproto.CodeUnauthorized, func() (*relaytest.Response, error) {
				return e.c.Do(http.MethodPost, relaytest.TenantPath(g.tenant)+"/chain/root", nil, good)
			}},
		})
	})

	t.Run("other", func(t *testing.T) {
		tp := relaytest.TenantPath(g.tenant)
		wkC := &syncproto.WrappedKey{Tenant: g.tenant, Stream: s, Epoch: ep, Device: C.ID, Wrapped: []byte("w")}
		wkA := &syncproto.WrappedKey{Tenant: g.tenant, Stream: s, Epoch: ep, Device: A.ID, Wrapped: []byte("w")}
		nd, err := relaytest.NewDevice()
		require.NoError(t, err)
		enr := &syncproto.Enrolment{Tenant: g.tenant, Request: syncproto.NewRequestID(), SignPub: nd.Sign.Public(),
			Box: nd.Box.Recipient().String(), CreatedMS: uint64(time.Now().UnixMilli())}
		require.NoError(t, enr.Sign(nd.Sign))
		badEnr := enr.Marshal()
		badEnr[len(badEnr)-1] ^= 1
		nonce, err := e.c.Challenge(g.tenant, A.ID)
		require.NoError(t, err)
		proof := func(relay fcrypto.PublicKey, k *fcrypto.SigningKey, n syncproto.Hash) []byte {
			p := &syncproto.AuthProof{Tenant: g.tenant, Device: A.ID, Relay: relay, Nonce: n, SignedMS: uint64(time.Now().UnixMilli())}
			require.NoError(t, p.Sign(k))
			return p.Marshal()
		}
		_, err = e.c.Token(g.tenant, proof(e.relayKey, A.Sign, nonce))
		require.NoError(t, err, "login")
		nonce2, err := e.c.Challenge(g.tenant, A.ID)
		require.NoError(t, err)
		nonce3, err := e.c.Challenge(g.tenant, A.ID)
		require.NoError(t, err)
		invite := e.invite()
		anon := func(method, path string, body []byte) func() (*relaytest.Response, error) {
			return func() (*relaytest.Response, error) { return e.c.Do(method, path, nil, body) }
		}
		g.expectRefusals(t, streams, []refusal{
			{"key for a device not in the epoch", 403, syncproto.CodeNotAssigned, func() (*relaytest.Response, error) {
				return e.c.Do(http.MethodPut, tp+"/keys", bearer(g.cs.Token), wkC.Marshal())
			}},
			{"key put by a worker device", 403, syncproto.CodeForbidden, func() (*relaytest.Response, error) {
				return e.c.Do(http.MethodPut, tp+"/keys", bearer(a.Token), wkA.Marshal())
			}},
			{"malformed heads", 400, syncproto.CodeBadRequest, push(a, tp+"/heads", []byte("{"))},
			{"oversized heads", 413, syncproto.CodeTooLarge, push(a, tp+"/heads", make([]byte, 70<<10))},
			{"enrolment bad signature", 422, syncproto.CodeBadSignature, anon(http.MethodPost, tp+"/enrolments", badEnr)},
			{"enrolment malformed", 400, syncproto.CodeBadRequest, anon(http.MethodPost, tp+"/enrolments", []byte{1, 6, 0})},
			{"replayed nonce", 401, syncproto.CodeUnauthorized, anon(http.MethodPost, tp+"/auth/token", proof(e.relayKey, A.Sign, nonce))},
			{"proof for another relay", 401, syncproto.CodeUnauthorized, anon(http.MethodPost, tp+"/auth/token", proof(C.Sign.Public(), A.Sign, nonce2))},
			{"proof signed by another key", 401, syncproto.CodeUnauthorized, anon(http.MethodPost, tp+"/auth/token", proof(e.relayKey, C.Sign, nonce3))},
			{"malformed proof", 400, syncproto.CodeBadRequest, anon(http.MethodPost, tp+"/auth/token", []byte("\x01\x07proof"))},
			{"unknown route", 404, syncproto.CodeNotFound, anon(http.MethodGet, "/v1/nothing", nil)},
			{"malformed tenant", 400, syncproto.CodeBadRequest, anon(http.MethodGet, "/v1/t/t_x/enrol-info", nil)},
			{"unknown tenant", 404, syncproto.CodeNotFound, anon(http.MethodGet, relaytest.TenantPath(syncproto.NewTenantID())+"/enrol-info", nil)},
			{"used invite", 401, syncproto.CodeUnauthorized, func() (*relaytest.Response, error) {
				o2, err := relaytest.NewOrg(e.relayKey)
				require.NoError(t, err)
				return e.c.Do(http.MethodPost, "/v1/tenants", nil, []byte(`{"invite":"fri_nope","genesis":"`+base64.StdEncoding.EncodeToString(o2.Genesis())+`"}`))
			}},
			{"genesis for another relay", 422, syncproto.CodeInvalidStatement, func() (*relaytest.Response, error) {
				o2, err := relaytest.NewOrg(C.Sign.Public())
				require.NoError(t, err)
				return e.c.Do(http.MethodPost, "/v1/tenants", nil, []byte(`{"invite":"`+invite+`","genesis":"`+base64.StdEncoding.EncodeToString(o2.Genesis())+`"}`))
			}},
		})
	})

	t.Run("superseded epoch", func(t *testing.T) {
		ep2, _, raw, err := g.o.StartEpoch(g.coord, s, g.coord.ID, devs[0].ID, devs[1].ID)
		require.NoError(t, err)
		g.post(raw)
		x := &relaytest.Author{Dev: A, Stream: s, Counter: 200}
		_, rawOld, err := x.Seal(g.o, ep, g.o.Key(s, ep), g.o.Head(), x.Deltas(g.o, ep, []byte("old epoch")))
		require.NoError(t, err)
		g.expectRefusals(t, streams, []refusal{
			{"batch under a superseded epoch", 409, syncproto.CodeEpochSuperseded, push(a, batchPath, rawOld)},
		})
		// A batch accepted before the new epoch is still answered as it
		// was: a retry after a lost reply.
		seq, rc, err := a.Push(s, raw0)
		require.NoError(t, err, "replay after the epoch moved on")
		require.Equal(t, seq0, seq)
		require.Equal(t, rc0, rc)
		_, rawNew, err := x.Batch(g.o, ep2, g.o.Head(), []byte("new epoch"))
		require.NoError(t, err)
		_, _, err = a.Push(s, rawNew)
		require.NoError(t, err, "batch under the new epoch")
	})

	t.Run("revoked device", func(t *testing.T) {
		D, d := devs[1], sess[1]
		wk := &syncproto.WrappedKey{Tenant: g.tenant, Stream: s, Epoch: ep, Device: D.ID, Wrapped: []byte("wrapped")}
		require.NoError(t, g.cs.PutKey(wk.Marshal()))
		secrets := dbCounts(t, e.data)["secrets"]
		g.post(must[[]byte](t)(g.o.Revoke(g.coord, D)))
		require.Equal(t, secrets-1, dbCounts(t, e.data)["secrets"], "wrapped keys waiting for the revoked device")
		check := func(what string, err error) {
			t.Helper()
			var re *relaytest.Error
			require.ErrorAs(t, err, &re, what)
			require.Equal(t, 403, re.Status, what)
			require.Equal(t, syncproto.CodeDeviceRevoked, re.Code, what)
			rev, err := syncproto.UnmarshalStatement(re.Revocation)
			require.NoError(t, err, what)
			body, ok := rev.Body.(*syncproto.DeviceRevoked)
			require.True(t, ok && body.Device == D.ID, "%s: revocation names the device", what)
			ch := syncproto.NewChain(g.o.Fingerprint())
			for _, raw := range re.Chain {
				_, err := ch.Append(raw)
				require.NoError(t, err, "%s: chain verifies against the org fingerprint", what)
			}
			require.Equal(t, re.Revocation, re.Chain[rev.Pos], "%s: revocation is in the chain", what)
			require.True(t, ch.State().Devices[D.ID].Revoked, what)
		}
		_, _, err := d.Chain(0)
		check("old token", err)
		_, err = e.c.Login(g.tenant, D, e.relayKey)
		check("login", err)
		_, rawD, err := (&relaytest.Author{Dev: D, Stream: s}).Batch(g.o, ep, g.o.Head(), []byte("late"))
		require.NoError(t, err)
		_, _, err = d.Push(s, rawD)
		check("push", err)
		raws, _, err := g.cs.Chain(0)
		require.NoError(t, err)
		refused := 0
		for _, raw := range raws {
			st, err := syncproto.UnmarshalStatement(raw)
			require.NoError(t, err)
			if r, ok := st.Body.(*syncproto.DeviceRefused); ok && r.Device == D.ID {
				refused++
				require.Equal(t, syncproto.SignerRelay, st.Signer)
			}
		}
		require.Equal(t, 1, refused, "device refused facts for the revoked device")
	})
}
