package server_test

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/stretchr/testify/require"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server"
	"github.com/fristed/fristed/server/relaytest"
	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

var canaryAlarmAddress = []byte("canary-alarm-card-address-Lilleveien-4C-0575-Oslo")

// sealed is one generation of an envelope as the coordinator made it.
type sealed struct {
	gen          uint32
	inner, outer []byte
	statement    []byte
}

// sealEnvelope does what `fristed envelope seal` does against the relay:
// a release key for the next generation, both layers, the coordinator's
// "envelope sealed" statement, the upload.
func sealEnvelope(t *testing.T, g *org, alarm syncproto.AlarmID, card []byte, police age.Recipient, secret []byte) sealed {
	t.Helper()
	// Take in the relay's facts (releases) first.
	raws, _, err := g.cs.Chain(g.o.Head().Pos + 1)
	require.NoError(t, err)
	for _, raw := range raws {
		require.NoError(t, g.o.Append(raw))
	}
	rcpt, gen, err := g.cs.ReleaseKey(alarm)
	require.NoError(t, err, "release key")
	inner, outer, err := fcrypto.SealEnvelope(card, police, rcpt)
	require.NoError(t, err)
	raw, err := g.o.DeviceSign(g.coord, &syncproto.EnvelopeSealed{Alarm: alarm, Generation: gen,
		Inner: syncproto.Hash(fcrypto.InnerCommitment(inner)), SealedMS: uint64(time.Now().UnixMilli())})
	require.NoError(t, err)
	g.post(raw)
	require.NoError(t, g.cs.PutEnvelope(alarm, gen, outer, relaytest.SecretHash(secret)), "put envelope")
	return sealed{gen: gen, inner: inner, outer: outer, statement: raw}
}

func random(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// ageOpen opens an age file with the stock library only.
func ageOpen(data []byte, id age.Identity) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(data), id)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// releaseSecret reads a release identity as the relay keeps it: the
// sealed row, and its plaintext through the KEK directory.
func releaseSecret(t *testing.T, e *env, tenant syncproto.TenantID, alarm syncproto.AlarmID, gen uint32) (sealedRow []byte, identity string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(e.data, "relay.db")+"?mode=ro&_busy_timeout=5000")
	require.NoError(t, err)
	defer db.Close()
	var kekGen uint32
	name := server.ReleaseName(alarm, gen)
	require.NoError(t, db.QueryRow(`SELECT kek_gen, sealed FROM secrets WHERE kind = ? AND name = ?`, server.KindRelease, name).
		Scan(&kekGen, &sealedRow), "release identity row")
	ks, err := server.OpenKeystore(filepath.Join(e.data, "kek"))
	require.NoError(t, err)
	plain, err := ks.Open(store.Secret{Tenant: tenant, Kind: server.KindRelease, Name: name, KEKGen: kekGen, Sealed: sealedRow})
	require.NoError(t, err)
	return sealedRow, string(plain)
}

// releasedFacts counts the relay-signed "envelope released" statements.
func releasedFacts(t *testing.T, s *relaytest.Session, alarm syncproto.AlarmID) int {
	t.Helper()
	raws, _, err := s.Chain(0)
	require.NoError(t, err)
	n := 0
	for _, raw := range raws {
		st, err := syncproto.UnmarshalStatement(raw)
		require.NoError(t, err)
		if b, ok := st.Body.(*syncproto.EnvelopeReleased); ok && b.Alarm == alarm {
			require.Equal(t, syncproto.SignerRelay, st.Signer)
			n++
		}
	}
	return n
}

func TestEnvelopeRelease(t *testing.T) {
	e := startEnv(t)
	g := newOrg(t, e)
	police, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	alarm, secret := syncproto.NewAlarmID(), random(t, 32)
	card := append([]byte("ALARM CARD\nresident lives at "), canaryAlarmAddress...)
	env := sealEnvelope(t, g, alarm, card, police.Recipient(), secret)
	canaries := [][]byte{canaryAlarmAddress}

	// Before release: the police cannot open what the relay stores, the
	// release identity can, and no plaintext is anywhere.
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(e.data, "relay.db")+"?mode=ro&_busy_timeout=5000")
	require.NoError(t, err)
	var storedOuter []byte
	require.NoError(t, db.QueryRow(`SELECT outer_layer FROM envelopes`).Scan(&storedOuter))
	db.Close()
	require.Equal(t, env.outer, storedOuter)
	_, err = ageOpen(storedOuter, police)
	require.Error(t, err, "police identity on the stored outer layer")
	sealedRow, idString := releaseSecret(t, e, g.tenant, alarm, env.gen)
	rid, err := fcrypto.ParseBoxIdentity(idString)
	require.NoError(t, err)
	_, err = fcrypto.OpenOuter(env.outer, rid)
	require.NoError(t, err, "the relay's release identity opens the outer layer")
	require.Empty(t, canaryHits(t, e, canaries), "before release")

	nonce := random(t, 16)
	rel, err := e.c.Release(g.tenant, alarm, secret, nonce)
	require.NoError(t, err, "release")
	require.False(t, rel.Retry)
	require.Equal(t, env.inner, rel.Inner)
	got, err := ageOpen(rel.Inner, police)
	require.NoError(t, err, "stock age opens the inner layer")
	require.True(t, bytes.HasPrefix(got, card), "card")
	require.Len(t, got, fcrypto.CardSize)

	// The sealed statement commits to the inner layer and verifies, with
	// its proof, against the org fingerprint alone.
	require.Equal(t, env.statement, rel.Sealed)
	st, err := syncproto.UnmarshalStatement(rel.Sealed)
	require.NoError(t, err)
	b := st.Body.(*syncproto.EnvelopeSealed)
	require.NoError(t, fcrypto.CheckInner(rel.Inner, b.Inner))
	ch := syncproto.NewChain(g.o.Fingerprint())
	for _, raw := range rel.Proof {
		_, err := ch.Append(raw)
		require.NoError(t, err, "proof verifies")
	}
	require.Contains(t, rel.Proof, rel.Sealed)
	// The proof ends with the relay's released fact for this request.
	last, err := syncproto.UnmarshalStatement(rel.Proof[len(rel.Proof)-1])
	require.NoError(t, err)
	lb, ok := last.Body.(*syncproto.EnvelopeReleased)
	require.True(t, ok, "proof ends with %T, want the released fact", last.Body)
	require.Equal(t, syncproto.SignerRelay, last.Signer)
	require.Equal(t, alarm, lb.Alarm)
	require.Equal(t, b.Generation, lb.Generation)
	require.Equal(t, syncproto.ReleaseRequestHash(nonce), lb.Request)
	require.WithinDuration(t, time.UnixMilli(int64(b.SealedMS)), rel.SealedAt, time.Second)
	require.WithinDuration(t, time.Now(), rel.ReleasedAt, time.Minute)
	require.Equal(t, 1, releasedFacts(t, g.cs, alarm))

	// Another request: already released, nothing else.
	_, err = e.c.Release(g.tenant, alarm, secret, random(t, 16))
	var rerr *relaytest.Error
	require.ErrorAs(t, err, &rerr)
	require.Equal(t, http.StatusConflict, rerr.Status)
	require.Equal(t, syncproto.CodeAlreadyReleased, rerr.Code)
	require.Equal(t, "already released at "+rel.ReleasedAt.UTC().Format(time.RFC3339), rerr.Message)

	// The release identity is destroyed: neither it nor its sealed row is
	// in any file, before or after the relay stops.
	check := func(when string) {
		t.Helper()
		hits, err := relaytest.FindInDir(e.data, [][]byte{[]byte(idString)})
		require.NoError(t, err)
		if raw := findRaw(t, e.data, sealedRow); raw != "" {
			hits = append(hits, raw+": sealed release identity")
		}
		require.Empty(t, hits, when+": destroyed release identity found")
		require.Empty(t, canaryHits(t, e, canaries), when+": canary")
	}
	check("after release")
	e.proc.Stop(t)
	check("after stop")
	noClientAddress(t, e)
}

func TestEnvelopeReleaseOnceSQLite(t *testing.T) {
	e := startEnv(t)
	testReleaseOnce(t, e, e)
}

func TestEnvelopeReleaseOncePostgres(t *testing.T) {
	e1 := startEnv(t, withPostgres)
	e2 := startEnv(t, withData(e1.data), withStore(e1.store))
	testReleaseOnce(t, e1, e2)
}

// testReleaseOnce: 20 concurrent releases with distinct nonces, spread
// over two relays (or one), give exactly one inner layer.
func testReleaseOnce(t *testing.T, e1, e2 *env) {
	g := newOrg(t, e1)
	police, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	alarm, secret := syncproto.NewAlarmID(), random(t, 32)
	env := sealEnvelope(t, g, alarm, []byte("card"), police.Recipient(), secret)

	const n = 20
	type result struct {
		nonce []byte
		rel   *relaytest.Released
		err   error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		c := e1.c
		if i%2 == 1 {
			c = e2.c
		}
		results[i].nonce = random(t, 24)
		wg.Add(1)
		go func(i int, c *relaytest.Client) {
			defer wg.Done()
			<-start
			results[i].rel, results[i].err = c.Release(g.tenant, alarm, secret, results[i].nonce)
		}(i, c)
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d concurrent releases in %v", n, time.Since(t0))
	var winner *result
	released := 0
	for i := range results {
		r := &results[i]
		if r.err == nil {
			require.False(t, r.rel.Retry)
			require.Equal(t, env.inner, r.rel.Inner)
			winner = r
			continue
		}
		require.Equal(t, syncproto.CodeAlreadyReleased, relaytest.CodeOf(r.err), "request %d: %v", i, r.err)
		require.True(t, strings.HasPrefix(r.err.(*relaytest.Error).Message, "already released at "))
		released++
	}
	require.NotNil(t, winner, "no request won")
	require.Equal(t, n-1, released)

	// The winner's retry, through either relay, gets the same inner layer.
	for _, c := range []*relaytest.Client{e1.c, e2.c} {
		again, err := c.Release(g.tenant, alarm, secret, winner.nonce)
		require.NoError(t, err, "retry")
		require.True(t, again.Retry)
		require.Equal(t, winner.rel.Inner, again.Inner)
		require.Equal(t, winner.rel.ReleasedAt, again.ReleasedAt)
	}
	require.Equal(t, 1, releasedFacts(t, g.cs, alarm))
}

func TestEnvelopeReseal(t *testing.T) {
	e := startEnv(t)
	g := newOrg(t, e)
	police, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	alarm, secret := syncproto.NewAlarmID(), random(t, 32)
	first := sealEnvelope(t, g, alarm, []byte("card, first version"), police.Recipient(), secret)
	sealed1, id1 := releaseSecret(t, e, g.tenant, alarm, 1)

	// Generation 2: asking for its key destroys generation 1's identity.
	second := sealEnvelope(t, g, alarm, []byte("card, second version"), police.Recipient(), secret)
	require.Equal(t, uint32(2), second.gen)
	hits, err := relaytest.FindInDir(e.data, [][]byte{[]byte(id1)})
	require.NoError(t, err)
	require.Empty(t, hits, "generation 1's identity")
	require.Empty(t, findRaw(t, e.data, sealed1), "generation 1's sealed identity")

	// The old outer layer is refused on upload: its key is gone.
	err = g.cs.PutEnvelope(alarm, 1, first.outer, relaytest.SecretHash(secret))
	require.Equal(t, syncproto.CodeConflict, relaytest.CodeOf(err), "%v", err)

	// The same alarm id and secret release the new inner layer, never the
	// old one.
	rel, err := e.c.Release(g.tenant, alarm, secret, random(t, 16))
	require.NoError(t, err)
	require.Equal(t, second.inner, rel.Inner)
	require.Equal(t, second.statement, rel.Sealed)
	card, err := ageOpen(rel.Inner, police)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(card, []byte("card, second version")))

	// Re-sealing after a release makes it releasable again, once.
	third := sealEnvelope(t, g, alarm, []byte("card, third version"), police.Recipient(), secret)
	rel, err = e.c.Release(g.tenant, alarm, secret, random(t, 16))
	require.NoError(t, err)
	require.Equal(t, third.inner, rel.Inner)
	require.Equal(t, 2, releasedFacts(t, g.cs, alarm))
}

func TestEnvelopeBadInput(t *testing.T) {
	e := startEnv(t)
	g := newOrg(t, e)
	police, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	alarm, secret := syncproto.NewAlarmID(), random(t, 32)
	env := sealEnvelope(t, g, alarm, []byte("card"), police.Recipient(), secret)
	sealedRow, _ := releaseSecret(t, e, g.tenant, alarm, env.gen)

	// Unknown alarm, wrong secret, unknown tenant, another tenant's path:
	// one answer.
	other := newOrg(t, e)
	type attempt struct {
		name   string
		tenant syncproto.TenantID
		alarm  syncproto.AlarmID
		secret []byte
	}
	var answers []*relaytest.Error
	for _, a := range []attempt{
		{"unknown alarm", g.tenant, syncproto.NewAlarmID(), secret},
		{"wrong secret", g.tenant, alarm, random(t, 32)},
		{"unknown tenant", syncproto.NewTenantID(), alarm, secret},
		{"another tenant", other.tenant, alarm, secret},
	} {
		_, err := e.c.Release(a.tenant, a.alarm, a.secret, random(t, 16))
		var rerr *relaytest.Error
		require.ErrorAs(t, err, &rerr, a.name)
		answers = append(answers, rerr)
	}
	for _, a := range answers {
		require.Equal(t, http.StatusNotFound, a.Status)
		require.Equal(t, syncproto.CodeNotFound, a.Code)
		require.Equal(t, answers[0].Message, a.Message)
	}

	path := relaytest.TenantPath(g.tenant) + "/envelopes/" + alarm.String()
	post := func(p string, body []byte) *relaytest.Error {
		t.Helper()
		resp, err := e.c.Do(http.MethodPost, p, http.Header{"Content-Type": {"application/json"}}, body)
		require.NoError(t, err)
		return relaytest.ParseError(resp)
	}
	for name, body := range map[string][]byte{
		"malformed JSON":  []byte(`{"secret": `),
		"short secret":    relaytest.ReleaseBody(random(t, 16), random(t, 16)),
		"short nonce":     relaytest.ReleaseBody(secret, random(t, 8)),
		"long nonce":      relaytest.ReleaseBody(secret, random(t, 33)),
		"secret not b64":  []byte(`{"secret": "!!", "nonce": "AAAAAAAAAAAAAAAAAAAAAA=="}`),
		"empty body":      {},
		"unknown version": []byte(`[]`),
	} {
		rerr := post(path+"/release", body)
		require.Equal(t, http.StatusBadRequest, rerr.Status, name)
		require.Equal(t, syncproto.CodeBadRequest, rerr.Code, name)
	}
	rerr := post("/v1/t/"+g.tenant.String()+"/envelopes/not-an-alarm/release", relaytest.ReleaseBody(secret, random(t, 16)))
	require.Equal(t, syncproto.CodeBadRequest, rerr.Code)

	// Uploads: truncated, padded, for an unknown generation, for an alarm
	// without a statement, not matching the statement, malformed JSON.
	hash := relaytest.SecretHash(secret)
	for name, c := range map[string]struct {
		alarm syncproto.AlarmID
		gen   uint32
		outer []byte
		code  syncproto.Code
	}{
		"truncated":          {alarm, env.gen, env.outer[:len(env.outer)-100], syncproto.CodeBadRequest},
		"padded":             {alarm, env.gen, append(append([]byte(nil), env.outer...), 0), syncproto.CodeBadRequest},
		"unknown generation": {alarm, env.gen + 1, env.outer, syncproto.CodeConflict},
		"no statement":       {syncproto.NewAlarmID(), 1, env.outer, syncproto.CodeNotFound},
		"generation zero":    {alarm, 0, env.outer, syncproto.CodeBadRequest},
	} {
		err := g.cs.PutEnvelope(c.alarm, c.gen, c.outer, hash)
		require.Equal(t, c.code, relaytest.CodeOf(err), "%s: %v", name, err)
	}
	// An outer layer for the right key whose inner layer the statement
	// does not commit to.
	rcpt, gen, err := g.cs.ReleaseKey(alarm)
	require.NoError(t, err)
	_, outer, err := fcrypto.SealEnvelope([]byte("card"), police.Recipient(), rcpt)
	require.NoError(t, err)
	raw, err := g.o.DeviceSign(g.coord, &syncproto.EnvelopeSealed{Alarm: alarm, Generation: gen,
		Inner: syncproto.Hash(fcrypto.InnerCommitment([]byte("something else"))), SealedMS: uint64(time.Now().UnixMilli())})
	require.NoError(t, err)
	g.post(raw)
	err = g.cs.PutEnvelope(alarm, gen, outer, hash)
	require.Equal(t, syncproto.CodeInvalidStatement, relaytest.CodeOf(err), "%v", err)
	var e422 *relaytest.Error
	require.ErrorAs(t, err, &e422)
	require.Equal(t, http.StatusUnprocessableEntity, e422.Status)
	// Sealed to another key.
	otherID, err := fcrypto.GenerateBoxIdentity()
	require.NoError(t, err)
	_, foreign, err := fcrypto.SealEnvelope([]byte("card"), police.Recipient(), otherID.Recipient())
	require.NoError(t, err)
	err = g.cs.PutEnvelope(alarm, gen, foreign, hash)
	require.Equal(t, syncproto.CodeInvalidStatement, relaytest.CodeOf(err), "%v", err)
	_, err = g.cs.Call(http.MethodPut, "/envelopes/"+alarm.String(), "application/json", []byte(`{"generation": "x"}`), nil)
	require.Equal(t, syncproto.CodeBadRequest, relaytest.CodeOf(err), "%v", err)
	// A worker device may not ask for keys or upload.
	_, _, sess := g.worker(1)
	_, _, err = sess[0].ReleaseKey(alarm)
	require.Equal(t, syncproto.CodeForbidden, relaytest.CodeOf(err))

	// Nothing was released; generation 2's release key is kept (it is the
	// current one), generation 1's was destroyed by asking for 2.
	require.Equal(t, 0, releasedFacts(t, g.cs, alarm))
	require.Empty(t, findRaw(t, e.data, sealedRow))
	_, _ = releaseSecret(t, e, g.tenant, alarm, gen)
}

func TestEnvelopeBadInputKeepsKey(t *testing.T) {
	e := startEnv(t)
	g := newOrg(t, e)
	police, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	alarm, secret := syncproto.NewAlarmID(), random(t, 32)
	env := sealEnvelope(t, g, alarm, []byte("card"), police.Recipient(), secret)
	sealedRow, _ := releaseSecret(t, e, g.tenant, alarm, env.gen)
	for i := 0; i < 3; i++ {
		_, err := e.c.Release(g.tenant, alarm, random(t, 32), random(t, 16))
		require.Equal(t, syncproto.CodeNotFound, relaytest.CodeOf(err))
	}
	require.Equal(t, 1, countRelease(t, e))
	require.NotEmpty(t, findRaw(t, e.data, sealedRow), "release identity kept after refused requests")
	require.Equal(t, 0, releasedFacts(t, g.cs, alarm))
	rel, err := e.c.Release(g.tenant, alarm, secret, random(t, 16))
	require.NoError(t, err)
	require.Equal(t, env.inner, rel.Inner)
}

// TestEnvelopeReleaseRateLimit: the release route has its own strict
// budget per address.
func TestEnvelopeReleaseRateLimit(t *testing.T) {
	e := startEnv(t)
	g := newOrg(t, e)
	limited := false
	for i := 0; i < 60 && !limited; i++ {
		_, err := e.c.Release(g.tenant, syncproto.NewAlarmID(), random(t, 32), random(t, 16))
		switch relaytest.CodeOf(err) {
		case syncproto.CodeNotFound:
		case syncproto.CodeRateLimited:
			limited = true
		default:
			t.Fatalf("request %d: %v", i, err)
		}
	}
	require.True(t, limited, "60 release requests from one address were not limited")
}

func countRelease(t *testing.T, e *env) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(e.data, "relay.db")+"?mode=ro&_busy_timeout=5000")
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM secrets WHERE kind = ?`, server.KindRelease).Scan(&n))
	return n
}
