package client

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server"
	"github.com/fristed/fristed/syncproto"
)

// relayReleaseNames lists the release identities the relay keeps for an
// alarm (its rows in the secrets table).
func relayReleaseNames(t *testing.T, r *loopbackRelay, alarm syncproto.AlarmID) []string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(r.Dir, "relay.db")+"?mode=ro&_busy_timeout=5000")
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM secrets WHERE kind = ? AND name LIKE ?`, server.KindRelease, alarm.String()+"/%")
	require.NoError(t, err)
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		names = append(names, n)
	}
	require.NoError(t, rows.Err())
	return names
}

func captureNotices(d *Device) *[]string {
	var got []string
	d.opts.Notice = func(s string) { got = append(got, s) }
	return &got
}

// Every kind of change to what the card says re-seals the envelope at the
// coordinator's next sync: the old release identity is gone from the
// relay, the alarm id and credential stay, and the police's release with
// the same credential opens the new card. A sync without a change
// re-seals nothing.
func TestEnvelopeAutoResealOnChange(t *testing.T) {
	ctx := context.Background()
	d, r, policeFile := envSetup(t)
	ids := stockIdentity(t, policeFile)
	res, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", t.TempDir())
	require.NoError(t, err)
	cred, err := ReadCredential(res.CredentialPath)
	require.NoError(t, err)
	notices := captureNotices(d)

	gen := func() uint32 { return d.chain.State().Envelopes[res.Alarm].Generation }
	_, err = d.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, uint32(1), gen(), "a sync without a change re-seals nothing")
	require.Empty(t, *notices)

	changes := []struct {
		name   string
		change func() error
		want   string // on the released card
	}{
		{"secret address", func() error {
			return d.ResidentSet("Mina", map[string]string{"secret_address": "Nyveien 9, 0150 Oslo"})
		}, "Secret address: Nyveien 9, 0150 Oslo"},
		{"description", func() error {
			return d.ResidentSet("Mina", map[string]string{"description": "About 165 cm, long dark hair"})
		}, "Description: About 165 cm, long dark hair"},
		{"a newer threat assessment", func() error {
			_, err := d.RecordAdd("Mina", "threat", map[string]string{"source": "local_police", "date": "2099-01-01", "actors": "Two cousins", "vehicles": "Black Audi A6"})
			return err
		}, "Threat vehicles: Black Audi A6"},
		{"a contact person", func() error {
			_, err := d.RecordAdd("Mina", "contact", map[string]string{"role": "police", "name": "Kari Nordmann", "phone": "+47 22 00 00 00"})
			return err
		}, "Contact: police, Kari Nordmann, +47 22 00 00 00"},
		{"a key instruction", func() error {
			_, err := d.RecordAdd("Mina", "crisis", map[string]string{"scenario": "Break-in", "action": "call 112, then the unit"})
			return err
		}, "Instruction: Break-in: call 112, then the unit"},
	}
	for i, c := range changes {
		want := uint32(i + 2)
		require.NoError(t, c.change(), c.name)
		*notices = nil
		_, err := d.Sync(ctx)
		require.NoError(t, err, c.name)
		require.Equal(t, want, gen(), "%s: generation", c.name)
		require.Len(t, *notices, 1, "%s: %v", c.name, *notices)
		require.Contains(t, (*notices)[0], "alarm envelope "+res.Alarm.String()+" re-sealed (generation")
		// Only the new generation's release identity is left.
		require.Equal(t, []string{server.ReleaseName(res.Alarm, want)}, relayReleaseNames(t, r, res.Alarm), c.name)
	}
	*notices = nil
	_, err = d.Sync(ctx)
	require.NoError(t, err)
	require.Empty(t, *notices)

	rel, err := EnvelopeRelease(ctx, cred)
	require.NoError(t, err)
	require.Equal(t, uint32(len(changes)+1), rel.Generation)
	card, err := stockOpen(rel.Inner, ids)
	require.NoError(t, err)
	for _, c := range changes {
		require.Contains(t, string(card), c.want, c.name)
	}
	require.NotContains(t, string(card), envAddress)
	require.Empty(t, relayReleaseNames(t, r, res.Alarm), "the release destroyed the identity")
}

// Closing the case re-seals at once to a card that says so and holds no
// address or threat; the old envelope cannot be opened any more.
func TestEnvelopeResealOnClose(t *testing.T) {
	ctx := context.Background()
	d, r, policeFile := envSetup(t)
	ids := stockIdentity(t, policeFile)
	res, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", t.TempDir())
	require.NoError(t, err)
	cred, err := ReadCredential(res.CredentialPath)
	require.NoError(t, err)
	_, err = d.RecordAdd("Mina", "contact", map[string]string{"role": "crisis_centre", "name": "Enhet A", "phone": "+47 21 00 00 00"})
	require.NoError(t, err)
	notices := captureNotices(d)

	require.NoError(t, d.ResidentClose(ctx, "Mina", "own_alone"))
	require.Equal(t, uint32(3), d.chain.State().Envelopes[res.Alarm].Generation,
		"the close's sync re-sealed the new contact, the close re-sealed the closed card")
	var closed bool
	for _, n := range *notices {
		closed = closed || strings.Contains(n, "the case is closed; the new card says so")
	}
	require.True(t, closed, "notices: %v", *notices)
	require.Equal(t, []string{server.ReleaseName(res.Alarm, 3)}, relayReleaseNames(t, r, res.Alarm))
	*notices = nil
	_, err = d.Sync(ctx)
	require.NoError(t, err)
	require.Empty(t, *notices, "a closed card is sealed once")

	rel, err := EnvelopeRelease(ctx, cred)
	require.NoError(t, err)
	card, err := stockOpen(rel.Inner, ids)
	require.NoError(t, err)
	require.Contains(t, string(card), "Status: CASE CLOSED (moved out ")
	require.Contains(t, string(card), "Legal name: Mina Testesen")
	require.Contains(t, string(card), "Contact: crisis_centre, Enhet A, +47 21 00 00 00")
	require.NotContains(t, string(card), "Lilleveien")
	require.NotContains(t, string(card), "Grey Volvo")
}

// A re-seal that fails after the relay handed out the new release key
// (here: the upload is refused) leaves the envelope unreleasable, says so
// at the sync without failing it, and the next sync finishes the job.
func TestEnvelopeResealInterruptedHealsAtSync(t *testing.T) {
	ctx := context.Background()
	r := startLoopbackRelay(t)
	var failPut atomic.Bool
	target, err := url.Parse(r.URL)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if failPut.Load() && req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/envelopes/") {
			http.Error(w, "proxy: upload lost", http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, req)
	}))
	t.Cleanup(ps.Close)
	d, policeFile := envSetupVia(t, r, ps.URL)
	ids := stockIdentity(t, policeFile)
	res, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", t.TempDir())
	require.NoError(t, err)
	cred, err := ReadCredential(res.CredentialPath)
	require.NoError(t, err)
	cred.Relay = r.URL
	notices := captureNotices(d)

	require.NoError(t, d.ResidentSet("Mina", map[string]string{"secret_address": "Nyveien 9, 0150 Oslo"}))
	failPut.Store(true)
	_, err = d.Sync(ctx)
	require.NoError(t, err, "a failed re-seal does not fail the sync")
	require.Len(t, *notices, 1)
	require.Contains(t, (*notices)[0], "was not re-sealed (tried again at the next sync)")
	require.Equal(t, uint32(2), d.chain.State().Envelopes[res.Alarm].Generation)
	require.Equal(t, []string{server.ReleaseName(res.Alarm, 2)}, relayReleaseNames(t, r, res.Alarm), "generation 1's identity is gone")
	_, err = EnvelopeRelease(ctx, cred)
	require.ErrorContains(t, err, "being re-sealed and cannot be released now; use the emergency card")

	failPut.Store(false)
	*notices = nil
	_, err = d.Sync(ctx)
	require.NoError(t, err)
	require.Len(t, *notices, 1, "%v", *notices)
	require.Contains(t, (*notices)[0], "re-sealed (generation 3)")
	rel, err := EnvelopeRelease(ctx, cred)
	require.NoError(t, err)
	card, err := stockOpen(rel.Inner, ids)
	require.NoError(t, err)
	require.Contains(t, string(card), "Nyveien 9")
}

// An alarm whose directory record has no secret hash (sealed before it was
// kept) is not re-sealed automatically: the sync says how to do it, and a
// manual re-seal beside the credential file records the hash, after which
// changes re-seal by themselves.
func TestEnvelopeResealWithoutSecretHash(t *testing.T) {
	ctx := context.Background()
	d, _, _ := envSetup(t)
	dir := t.TempDir()
	res, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", dir)
	require.NoError(t, err)
	require.NoError(t, d.setDirectory(kindAlarm, syncproto.DeltaID(res.Alarm), map[string]string{"secret_hash": ""}))
	_, err = d.alarmSecretHash(res.Alarm)
	require.Error(t, err)
	notices := captureNotices(d)

	require.NoError(t, d.ResidentSet("Mina", map[string]string{"secret_address": "Nyveien 9, 0150 Oslo"}))
	_, err = d.Sync(ctx)
	require.NoError(t, err)
	require.Len(t, *notices, 1)
	require.Contains(t, (*notices)[0], "re-seal it with fristed envelope seal beside its credential file")
	require.Equal(t, uint32(1), d.chain.State().Envelopes[res.Alarm].Generation)
	*notices = nil
	_, err = d.Sync(ctx)
	require.NoError(t, err)
	require.Empty(t, *notices, "the same failure is told once per open device")

	_, err = d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", t.TempDir())
	require.ErrorContains(t, err, "needs its credential file")
	res2, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", dir)
	require.NoError(t, err)
	require.Equal(t, uint32(2), res2.Generation)

	require.NoError(t, d.ResidentSet("Mina", map[string]string{"secret_address": "Bakkegata 3A"}))
	*notices = nil
	_, err = d.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, uint32(3), d.chain.State().Envelopes[res.Alarm].Generation, "notices: %v", *notices)
}

// An assigned worker's edit reaches the envelope when a coordinator syncs
// it in.
func TestEnvelopeResealAfterWorkerEdit(t *testing.T) {
	ctx := context.Background()
	d, r, policeFile := envSetup(t)
	ids := stockIdentity(t, policeFile)
	_, err := d.WorkerAdd(ctx, "Kari Nordmann")
	require.NoError(t, err)
	w, code, err := DeviceInit(ctx, relOptions(t, filepath.Join(t.TempDir(), "worker")), DeviceInitParams{RelayURL: r.URL, Org: d.Org(), Name: "kari-laptop"})
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	_, err = d.Approve(ctx, ApproveParams{Code: code, Worker: "Kari Nordmann"})
	require.NoError(t, err)
	require.NoError(t, d.Assign(ctx, "Mina", "Kari Nordmann"))
	res, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", t.TempDir())
	require.NoError(t, err)
	cred, err := ReadCredential(res.CredentialPath)
	require.NoError(t, err)

	_, err = w.Sync(ctx)
	require.NoError(t, err)
	require.NoError(t, w.ResidentSet("Mina", map[string]string{"secret_address": "Nyveien 9, 0150 Oslo"}))
	_, err = w.Sync(ctx)
	require.NoError(t, err)
	_, err = w.ResealChanged(ctx, nil)
	require.NoError(t, err, "a worker's laptop does not re-seal")
	require.Equal(t, uint32(1), d.chain.State().Envelopes[res.Alarm].Generation)

	_, err = d.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, uint32(2), d.chain.State().Envelopes[res.Alarm].Generation)
	rel, err := EnvelopeRelease(ctx, cred)
	require.NoError(t, err)
	card, err := stockOpen(rel.Inner, ids)
	require.NoError(t, err)
	require.Contains(t, string(card), "Nyveien 9")
}

// BenchmarkResealCheck is what a coordinator's sync spends per alarm
// when nothing changed: rebuild the card from the case and compare its
// content hash with the sealed one.
func BenchmarkResealCheck(b *testing.B) {
	ctx := context.Background()
	d, _, _ := envSetup(b)
	_, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", b.TempDir())
	require.NoError(b, err)
	b.ResetTimer()
	for b.Loop() {
		done, err := d.ResealChanged(ctx, nil)
		if err != nil || len(done) != 0 {
			b.Fatalf("got %v, %v; want nothing re-sealed", done, err)
		}
	}
}

// A coordinator laptop that cannot read the whole case (a key not yet
// given to it) does not re-seal from what it has: it says why and leaves
// the envelope alone.
func TestEnvelopeNoResealFromPartOfCase(t *testing.T) {
	ctx := context.Background()
	d, r, _ := envSetup(t)
	res, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", t.TempDir())
	require.NoError(t, err)
	sid, err := d.resolveResident("Mina")
	require.NoError(t, err)
	require.NoError(t, d.ResidentSet("Mina", map[string]string{"secret_address": "Nyveien 9, 0150 Oslo"}))
	_, err = d.db().Exec(`DELETE FROM local_keys WHERE stream = ?`, sid[:])
	require.NoError(t, err)

	done, err := d.ResealChanged(ctx, nil)
	require.Empty(t, done)
	require.ErrorContains(t, err, "this laptop cannot read the whole case yet (a key is missing); not re-sealed here")
	require.Equal(t, uint32(1), d.chain.State().Envelopes[res.Alarm].Generation)
	require.Equal(t, []string{server.ReleaseName(res.Alarm, 1)}, relayReleaseNames(t, r, res.Alarm), "the release identity is kept")
	_, err = d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", t.TempDir())
	require.ErrorContains(t, err, "seal: this laptop cannot read the whole case yet")
	require.Equal(t, []string{server.ReleaseName(res.Alarm, 1)}, relayReleaseNames(t, r, res.Alarm))
}

// A move-out recorded before the case is closed re-seals to the closed
// card at the next sync.
func TestEnvelopeResealOnMoveOut(t *testing.T) {
	ctx := context.Background()
	d, _, policeFile := envSetup(t)
	ids := stockIdentity(t, policeFile)
	res, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", t.TempDir())
	require.NoError(t, err)
	cred, err := ReadCredential(res.CredentialPath)
	require.NoError(t, err)
	require.NoError(t, d.ResidentSet("Mina", map[string]string{"moved_out": "2026-12-01", "moved_to": "own_alone"}))
	_, err = d.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, uint32(2), d.chain.State().Envelopes[res.Alarm].Generation)
	rel, err := EnvelopeRelease(ctx, cred)
	require.NoError(t, err)
	card, err := stockOpen(rel.Inner, ids)
	require.NoError(t, err)
	require.Contains(t, string(card), "Status: CASE CLOSED (moved out 2026-12-01)")
	require.NotContains(t, string(card), "Lilleveien")
}

// When a closed case is purged after its retention period, the
// coordinator's sync that purges it re-seals its envelope to a card that
// names the alarm and says the case was deleted, and nothing else: no
// name, description or contact survives the purge in the envelope.
func TestEnvelopeResealOnPurge(t *testing.T) {
	t.Run("sync", func(t *testing.T) { testEnvelopeResealOnPurge(t, false) })
	t.Run("org purge", func(t *testing.T) { testEnvelopeResealOnPurge(t, true) })
}

func testEnvelopeResealOnPurge(t *testing.T, byCommand bool) {
	ctx := context.Background()
	d, r, policeFile := envSetup(t)
	ids := stockIdentity(t, policeFile)
	res, err := d.EnvelopeSeal(ctx, "Mina", "Oslo alarm centre", t.TempDir())
	require.NoError(t, err)
	cred, err := ReadCredential(res.CredentialPath)
	require.NoError(t, err)
	sid, err := d.resolveResident("Mina")
	require.NoError(t, err)
	d.opts.Now = func() time.Time { return time.Now().Add(-48 * time.Hour) }
	require.NoError(t, d.ResidentClose(ctx, "Mina", "own_alone"))
	d.opts.Now = time.Now
	require.Equal(t, uint32(2), d.chain.State().Envelopes[res.Alarm].Generation, "closing re-sealed")
	one := uint32(1)
	_, err = d.SetSettings(ctx, &one, nil, nil)
	require.NoError(t, err)

	notices := captureNotices(d)
	if byCommand {
		purged, err := d.Purge(ctx, []string{"Mina"})
		require.NoError(t, err)
		require.Equal(t, []syncproto.StreamID{sid}, purged)
	} else {
		_, err = d.Sync(ctx)
		require.NoError(t, err)
	}
	require.True(t, d.chain.State().Streams[sid].Purged)
	require.Equal(t, uint32(3), d.chain.State().Envelopes[res.Alarm].Generation, "notices: %v", *notices)
	var said bool
	for _, n := range *notices {
		said = said || strings.Contains(n, "the case was purged; the new card says so and holds nothing else")
	}
	require.True(t, said, "notices: %v", *notices)
	require.Equal(t, []string{server.ReleaseName(res.Alarm, 3)}, relayReleaseNames(t, r, res.Alarm))
	*notices = nil
	_, err = d.Sync(ctx)
	require.NoError(t, err)
	require.Empty(t, *notices, "the purged card is sealed once")

	rel, err := EnvelopeRelease(ctx, cred)
	require.NoError(t, err)
	card, err := stockOpen(rel.Inner, ids)
	require.NoError(t, err)
	require.Contains(t, string(card), "Status: CASE DELETED after its retention period")
	require.Contains(t, string(card), "Alarm: "+res.Alarm.String())
	for _, gone := range []string{"Mina", "Testesen", "Lilleveien", "Ex-partner", "Grey Volvo"} {
		require.NotContains(t, string(card), gone)
	}
}
