package client

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

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
