package client

// Retention and crypto-shredding with the real binaries: a closed case
// past the org's retention period is purged from the relay's files and
// from every laptop, including one that was offline during the purge;
// only its closed-case summary stays. Refusals leave the chain as it was.

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/syncproto"
)

const (
	retentionAddress = "Solbakken 4 canary-retention-address"
	retentionLog     = "First talk about the family canary-retention-log"
	retentionPending = "Written offline while the case was purged canary-retention-pending"
)

// drillRetention: Mina's case is closed with the coordinator's clock two
// days back, the retention period is set to one day, and the case is
// purged. Kari's laptop K1 syncs right after, K2 was offline (with an edit
// pending on Mina) and syncs later; Ola's laptop O1 never fetched the key
// it was given for Mina, so its wrapped copy was still on the relay.
func drillRetention(t *testing.T, bins drillBins) {
	ctx := context.Background()
	o := newDrillOrg(t, bins, nil)
	o.must(o.coord, "worker", "add", "Kari Nordmann")
	o.must(o.coord, "worker", "add", "Ola Hansen")
	k1, k2, o1 := o.home("k1"), o.home("k2"), o.home("o1")
	o.enrol(o.coord, k1, "kari-laptop-1", "Kari Nordmann")
	o.enrol(o.coord, k2, "kari-laptop-2", "Kari Nordmann")
	o.enrol(o.coord, o1, "ola-laptop", "Ola Hansen")
	mina, sara := o.residentAdd("Mina"), o.residentAdd("Sara")
	lea, ida := o.residentAdd("Lea"), o.residentAdd("Ida")
	o.residentAdd("Nora")
	_, se, code := o.run(o.coord, retentionAddress+"\n", "resident", "set", "Mina", "secret_address=@-")
	require.Equal(t, 0, code, "resident set: %s", se)
	o.must(o.coord, "assign", "Mina", "--worker", "Kari Nordmann")
	o.must(o.coord, "assign", "Sara", "--worker", "Kari Nordmann")
	o.must(o.coord, "sync")
	o.must(k1, "sync")
	o.must(k1, "log", "add", "Mina", "--category", "safety", "--minutes", "30", "--text", retentionLog)
	o.must(k1, "sync")
	o.must(k2, "sync")
	o.must(o.coord, "sync")
	// Ola's laptop is given Mina's keys but never fetches them.
	o.must(o.coord, "assign", "Mina", "--worker", "Ola Hansen")
	// K2 goes offline with an edit pending on Mina.
	o.must(k2, "log", "add", "Mina", "--category", "practical", "--minutes", "5", "--text", retentionPending)

	// What the relay and the laptops hold of Mina before the purge.
	var minaBatches, minaSecrets [][]byte
	func() {
		db := o.relayDB()
		defer db.Close()
		for q, out := range map[string]*[][]byte{
			`SELECT raw FROM batches WHERE stream = ?`:    &minaBatches,
			`SELECT sealed FROM secrets WHERE stream = ?`: &minaSecrets,
		} {
			rows, err := db.Query(q, mina[:])
			require.NoError(t, err)
			for rows.Next() {
				var b []byte
				require.NoError(t, rows.Scan(&b))
				*out = append(*out, b)
			}
			require.NoError(t, rows.Close())
		}
	}()
	require.NotEmpty(t, minaBatches, "no batch of Mina on the relay: the check would prove nothing")
	require.NotEmpty(t, minaSecrets, "no wrapped key of Mina left on the relay: the check would prove nothing")
	// Ciphertext samples: 48 bytes from the middle of each batch and each
	// sealed key, to look for in the relay's files afterwards.
	var samples []string
	for _, b := range append(append([][]byte(nil), minaBatches...), minaSecrets...) {
		mid := len(b) / 2
		samples = append(samples, string(b[mid-24:mid+24]))
	}
	leaks, _ := scanForCanaries(t, []string{o.data}, samples)
	require.NotEmpty(t, leaks, "the samples are not in the relay's files before the purge: the scan would prove nothing")
	minaKeys := map[string][][]byte{}
	for _, h := range []string{o.coord, k1, k2} {
		o.with(h, func(d *Device) {
			for _, k := range drillEpochKeys(t, d)[mina] {
				minaKeys[h] = append(minaKeys[h], k.Bytes())
			}
		})
		require.NotEmpty(t, minaKeys[h], "%s holds no key of Mina before the purge", filepath.Base(h))
	}

	// Mina's and Lea's cases are closed two days ago; Sara's now; Nora's
	// stays open.
	closeAgo := func(pseudonym string) {
		o.with(o.coord, func(d *Device) {
			d.opts.Now = func() time.Time { return time.Now().Add(-48 * time.Hour) }
			require.NoError(t, d.ResidentClose(ctx, pseudonym, "own_alone"))
		})
	}
	closeAgo("Mina")
	closeAgo("Lea")
	o.must(o.coord, "resident", "close", "Sara", "--moved-to", "crisis_centre")
	o.must(o.coord, "org", "settings", "--retention", "1")

	refused := func(home, want string, args ...string) {
		t.Helper()
		before := o.head()
		line := o.fail(home, args...)
		t.Logf("fristed %s: %s", strings.Join(args, " "), line)
		require.Contains(t, line, want, "fristed %s", strings.Join(args, " "))
		require.Equal(t, before, o.head(), "fristed %s changed the chain", strings.Join(args, " "))
	}
	refused(o.coord, "the case is open", "org", "purge", "Nora")
	refused(o.coord, "before its retention period ends", "org", "purge", "Sara")
	refused(o.coord, "before its retention period ends", "org", "purge", "Mina", "Sara")
	refused(k1, "only a coordinator device", "org", "purge", "Mina")
	refused(o.coord, "unknown resident", "org", "purge", "Nobody")
	require.False(t, o.chain().State().Streams[mina].Purged)
	// A coordinator laptop whose clock runs a day ahead: the chain would
	// take its purges, the relay does not; its sync goes on.
	before := o.head()
	o.with(o.coord, func(d *Device) {
		d.opts.Now = func() time.Time { return time.Now().Add(24 * time.Hour) }
		_, err := d.Sync(ctx)
		require.NoError(t, err, "sync with the clock ahead")
	})
	require.Equal(t, before, o.head(), "a purge dated after the relay's clock was taken")

	so, se, code := o.run(o.coord, "", "org", "purge", "Mina")
	require.Equal(t, 0, code, "org purge: %s", se)
	require.Equal(t, mina.String(), drillLastLine(so))
	require.Contains(t, se, "1 case(s) purged")
	st := o.chain().State()
	require.True(t, st.Streams[mina].Purged)
	require.False(t, st.Streams[sara].Purged, "Sara's retention period has not passed")
	refused(o.coord, "purged already", "org", "purge", mina.String())
	// Without names: every case that is due, here Lea's; then none.
	so, se, code = o.run(o.coord, "", "org", "purge")
	require.Equal(t, 0, code, "org purge: %s", se)
	require.Equal(t, lea.String(), strings.TrimSpace(so))
	_, se, code = o.run(o.coord, "", "org", "purge")
	require.Equal(t, 0, code, "org purge: %s", se)
	require.Contains(t, se, "no closed case is due")
	// A coordinator's sync purges a case that is due by itself.
	closeAgo("Ida")
	_, se, code = o.run(o.coord, "", "sync")
	require.Equal(t, 0, code, "sync: %s", se)
	require.Contains(t, se, "purged closed case "+ida.String())
	require.True(t, o.chain().State().Streams[ida].Purged)

	// The relay holds nothing of Mina: no batch, no snapshot, no key, and
	// none of the bytes in its files, WAL included.
	func() {
		db := o.relayDB()
		defer db.Close()
		for _, table := range []string{"batches", "deltas", "snapshots", "secrets"} {
			var n int
			require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM `+table+` WHERE stream = ?`, mina[:]).Scan(&n))
			require.Zero(t, n, "the relay's %s still holds %d rows of Mina", table, n)
		}
	}()
	leaks, scanned := scanForCanaries(t, []string{o.data}, samples)
	for _, l := range leaks {
		t.Errorf("%s: got ciphertext of the purged case (sample %x), want none", l.path, l.canary[:8])
	}
	t.Logf("relay: scanned %d bytes for %d ciphertext samples: %d found", scanned, len(samples), len(leaks))
	leaks, _ = scanForCanaries(t, []string{o.data}, []string{retentionAddress, retentionLog, retentionPending})
	require.Empty(t, leaks)

	// journalSize is the size of a laptop's journal file: 32 bytes is the
	// header alone, no frame.
	journalSize := func(home string) int64 {
		t.Helper()
		fi, err := os.Stat(filepath.Join(home, vaultDir, "journal"))
		require.NoError(t, err)
		return fi.Size()
	}

	// gone checks that a laptop holds nothing of Mina: no row in any
	// table, no key, and neither the case's text nor its key bytes in the
	// replica it would write to disk; and that Mina's summary is there.
	gone := func(home string, keys [][]byte) {
		t.Helper()
		o.with(home, func(d *Device) {
			held := drillReplicaStreams(t, d)
			require.NotContains(t, held, mina, "%s holds rows of the purged case in %v", filepath.Base(home), held[mina])
			require.NotContains(t, drillEpochKeys(t, d), mina, "%s holds a key of the purged case", filepath.Base(home))
			state, err := d.rep.Serialize()
			require.NoError(t, err)
			for _, c := range []string{retentionAddress, retentionLog, retentionPending} {
				require.False(t, bytes.Contains(state, []byte(c)), "%s's replica holds %q", filepath.Base(home), c)
			}
			for _, k := range keys {
				require.False(t, bytes.Contains(state, k), "%s's replica holds a key of the purged case", filepath.Base(home))
			}
			dir, ok := drillStreamOfKind(d.chain.State(), syncproto.StreamDirectory)
			require.True(t, ok)
			recs, err := d.rep.Records(dir, "closed_case")
			require.NoError(t, err)
			found := false
			for _, r := range recs {
				if r.ID == syncproto.DeltaID(mina) {
					found = true
					require.Equal(t, "own_alone", r.Fields["moved_to"])
					require.Equal(t, "A", r.Fields["unit"])
				}
			}
			require.True(t, found, "%s: the closed-case summary of Mina is gone", filepath.Base(home))
		})
		// The vault holds the snapshot and a fresh journal only.
		for _, f := range drillHomeFiles(t, home) {
			require.False(t, strings.Contains(f, ".tmp"), "%s: stray file %s", filepath.Base(home), f)
		}
	}
	gone(o.coord, minaKeys[o.coord])

	// K1 syncs and deletes the case.
	_, se, code = o.run(k1, "", "sync")
	require.Equal(t, 0, code, "k1 sync: %s", se)
	require.Contains(t, se, "deleted purged case")
	gone(k1, minaKeys[k1])
	require.Equal(t, []string{"Sara"}, o.residentNames(k1))

	// K2 was offline: until it syncs it still holds the case (the positive
	// control for gone), with a second edit in its journal; then its sync
	// drops both pending edits, deletes the case and, before returning,
	// compacts the journal, so no frame of the case is left on disk.
	o.with(k2, func(d *Device) {
		require.Contains(t, drillEpochKeys(t, d), mina)
		v, err := d.ResidentShow("Mina", true)
		require.NoError(t, err)
		require.Equal(t, retentionAddress, v.Fields["secret_address"])
		_, err = d.LogAdd("Mina", "practical", 5, retentionPending+" 2")
		require.NoError(t, err)
		require.Greater(t, journalSize(k2), int64(32), "the edit is not in K2's journal: the check below would prove nothing")
		var notes []string
		d.opts.Notice = func(s string) { notes = append(notes, s) }
		_, err = d.Sync(ctx)
		require.NoError(t, err, "K2's sync")
		require.Contains(t, notes, "2 edit(s) to "+mina.String()+" were dropped: the case was purged after its retention period")
		require.Equal(t, int64(32), journalSize(k2), "K2's journal still holds frames after the purge")
	})
	gone(k2, minaKeys[k2])
	n := 0
	o.with(k2, func(d *Device) { n, _ = d.Pending() })
	require.Zero(t, n, "K2 still has edits pending")

	// Ola's laptop gets no key of Mina: the relay destroyed its copy.
	o.must(o1, "sync")
	o.with(o1, func(d *Device) { require.NotContains(t, drillEpochKeys(t, d), mina) })
	leaks, _ = scanForCanaries(t, []string{o.data}, append(samples, retentionPending))
	require.Empty(t, leaks, "after every laptop synced")

	// Nora's and Sara's cases are untouched, and the laptops carry on.
	o.must(o.coord, "log", "add", "Sara", "--category", "practical", "--minutes", "5", "--text", "after the purge")
	o.must(o.coord, "sync")
	o.must(k1, "sync")
	require.Contains(t, o.logTexts(k1, "Sara"), "after the purge")
}
