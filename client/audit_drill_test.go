package client

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fristed/fristed/client/replica"
	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server/relaytest"
	"github.com/fristed/fristed/syncproto"
	"github.com/stretchr/testify/require"
)

// drillAuditTampering: access events from two worker laptops and the
// coordinator reach the audit log, sealed to the coordinator laptop only;
// `audit verify` passes on the intact log, and after any single entry is
// edited, deleted (the newest too) or moved in the relay's database -
// each case undone before the next - it fails naming that entry and what
// is wrong. A worker laptop cannot open any entry, its own included.
func drillAuditTampering(t *testing.T, bins drillBins) {
	o := newDrillOrg(t, bins, nil)
	o.must(o.coord, "worker", "add", "Kari Nordmann")
	o.must(o.coord, "worker", "add", "Ola Hansen")
	k1, b1 := o.home("k1"), o.home("b1")
	k1ID := o.enrol(o.coord, k1, "kari-laptop", "Kari Nordmann")
	b1ID := o.enrol(o.coord, b1, "ola-laptop", "Ola Hansen")
	o.residentAdd("Mina")
	o.must(o.coord, "assign", "Mina", "--worker", "Kari Nordmann")
	o.must(o.coord, "assign", "Mina", "--worker", "Ola Hansen")
	o.must(o.coord, "sync")

	// Five entries, one per sync: k1, coordinator, b1, k1, b1.
	for _, h := range []string{k1, o.coord, b1, k1, b1} {
		o.must(h, "sync")
		o.must(h, "resident", "show", "Mina", "--reveal")
		o.must(h, "sync")
	}
	o.must(o.coord, "sync") // links the last entries and signs a checkpoint

	so := o.must(o.coord, "audit", "verify")
	require.Regexp(t, `^audit log intact: 5 entries \(5 access events readable here\), relay and this laptop agree; signed checkpoint at chain position \d+ covers entries 1-5\n$`, so)
	shown := o.must(o.coord, "audit", "show", "--resident", "Mina")
	require.Equal(t, 5, strings.Count(shown, "revealed the sealed fields"), "audit show:\n%s", shown)
	for _, who := range []string{"Kari Nordmann (kari-laptop)", "Ola Hansen (ola-laptop)"} {
		require.Contains(t, shown, who+" opened the case and revealed the sealed fields")
	}

	// The audit stream is keyed to the coordinator laptop alone.
	st := o.chain().State()
	audit, ok := drillStreamOfKind(st, syncproto.StreamAudit)
	require.True(t, ok)
	cur := st.Streams[audit].Current()
	require.Equal(t, st.ActiveCoordinators(), cur.Devices, "audit epoch devices")
	var entries []drillBatch
	for _, b := range o.batches() {
		if b.Stream == audit {
			entries = append(entries, b)
		}
	}
	require.Len(t, entries, 5)

	// A worker laptop cannot read the log: the relay refuses its pull, it
	// holds no audit key, and with everything on it - epoch keys and its
	// age identity - no entry opens, not its own, not the other worker's.
	for _, h := range []string{k1, b1} {
		o.with(h, func(d *Device) {
			keys := drillEpochKeys(t, d)
			require.NotContains(t, keys, audit, "%s holds an audit key", filepath.Base(h))
			for _, e := range entries {
				for _, sd := range e.Batch.Deltas {
					_, opened := drillOpenDelta(e.Batch, sd, keys)
					require.False(t, opened, "%s opened audit entry %d with an epoch key", filepath.Base(h), e.Seq)
				}
				_, err := syncproto.OpenAuditBatch(e.Batch, d.kf.Box, st.Devices[e.Batch.Author].SignPub)
				require.ErrorIs(t, err, fcrypto.ErrNoIdentityMatch, "%s opening audit entry %d by %s", filepath.Base(h), e.Seq, e.Batch.Author)
			}
			c, err := d.client()
			require.NoError(t, err)
			_, _, err = c.PullBatches(context.Background(), audit, 0, 10, 0)
			var we *syncproto.Error
			require.ErrorAs(t, err, &we, "worker pull of the audit stream")
			require.Equal(t, syncproto.CodeNotAssigned, we.Code)
		})
	}
	authors := map[syncproto.DeviceID]bool{}
	for _, e := range entries {
		authors[e.Batch.Author] = true
	}
	require.True(t, authors[k1ID] && authors[b1ID], "entries by both workers")

	// A worker laptop may not run the check either.
	require.Contains(t, o.fail(k1, "audit", "verify"), "coordinator")

	verifier := o.coord
	tamper := func(name, wantRE string, do, undo func(db *sql.DB)) {
		t.Helper()
		db := o.relayWriteDB()
		do(db)
		line := o.fail(verifier, "audit", "verify")
		undo(db)
		require.NoError(t, db.Close())
		require.Regexp(t, regexp.MustCompile(wantRE), line, "%s", name)
		t.Logf("%s: %s", name, line)
		o.must(verifier, "audit", "verify") // undone: intact again
	}
	// The relay keeps the admin chain in memory: a change to its
	// statements sticks only if made while it is stopped, as a thief who
	// wants it to would.
	restart := func() {
		addr := strings.TrimPrefix(o.relay.URL, "http://")
		o.relay.Stop(t)
		o.relay = relaytest.StartRelay(t, bins.relay, "--listen", addr, "--data", o.data, "--insecure-loopback")
	}
	coldTamper := func(name, wantRE string, do, undo func(db *sql.DB)) {
		tamper(name, wantRE, func(db *sql.DB) { do(db); restart() }, func(db *sql.DB) { undo(db); restart() })
	}
	rawOf := func(db *sql.DB, seq int) []byte {
		var raw []byte
		require.NoError(t, db.QueryRow(`SELECT raw FROM batches WHERE stream = ? AND seq = ?`, audit[:], seq).Scan(&raw))
		return raw
	}
	exec := func(db *sql.DB, q string, args ...any) {
		t.Helper()
		res, err := db.Exec(q, args...)
		require.NoError(t, err, q)
		n, err := res.RowsAffected()
		require.NoError(t, err)
		require.Positive(t, n, "%s changed nothing", q)
	}
	who := map[int]string{1: "Kari Nordmann", 2: "coordinator", 3: "Ola Hansen", 4: "Kari Nordmann", 5: "Ola Hansen"}
	entry := func(seq int, kind string) string {
		return `^fristed: error: audit log damaged: entry ` + string(rune('0'+seq)) + ` \(recorded by ` + who[seq] +
			`[^)]*\)? at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\): ` + kind + `: `
	}

	for seq := 1; seq <= 5; seq++ {
		// A byte of the ciphertext.
		var orig []byte
		tamper("edit ciphertext", entry(seq, "edited"), func(db *sql.DB) {
			orig = rawOf(db, seq)
			bad := append([]byte(nil), orig...)
			bad[len(bad)-20] ^= 0x01
			exec(db, `UPDATE batches SET raw = ? WHERE stream = ? AND seq = ?`, bad, audit[:], seq)
		}, func(db *sql.DB) {
			exec(db, `UPDATE batches SET raw = ? WHERE stream = ? AND seq = ?`, orig, audit[:], seq)
		})
		// A byte of the author-signed header (its time), then the same
		// with the relay's batch id made to match.
		tamper("edit header", entry(seq, "edited"), func(db *sql.DB) {
			orig = rawOf(db, seq)
			b, err := syncproto.UnmarshalBatch(orig)
			require.NoError(t, err)
			b.CreatedMS ^= 1
			bad, err := b.Marshal()
			require.NoError(t, err)
			exec(db, `UPDATE batches SET raw = ? WHERE stream = ? AND seq = ?`, bad, audit[:], seq)
		}, func(db *sql.DB) {
			exec(db, `UPDATE batches SET raw = ? WHERE stream = ? AND seq = ?`, orig, audit[:], seq)
		})
		var origID []byte
		tamper("edit header and batch id", entry(seq, "edited"), func(db *sql.DB) {
			require.NoError(t, db.QueryRow(`SELECT raw, id FROM batches WHERE stream = ? AND seq = ?`, audit[:], seq).Scan(&orig, &origID))
			b, err := syncproto.UnmarshalBatch(orig)
			require.NoError(t, err)
			b.CreatedMS ^= 1
			bad, err := b.Marshal()
			require.NoError(t, err)
			h, err := b.Hash()
			require.NoError(t, err)
			exec(db, `UPDATE batches SET raw = ?, id = ? WHERE stream = ? AND seq = ?`, bad, h[:], audit[:], seq)
		}, func(db *sql.DB) {
			exec(db, `UPDATE batches SET raw = ?, id = ? WHERE stream = ? AND seq = ?`, orig, origID, audit[:], seq)
		})
		// A byte of the author's signature.
		tamper("edit signature", entry(seq, "edited")+`the author's signature does not verify$`, func(db *sql.DB) {
			orig = rawOf(db, seq)
			b, err := syncproto.UnmarshalBatch(orig)
			require.NoError(t, err)
			at := bytes.Index(orig, b.Sig)
			require.Positive(t, at)
			exec(db, `UPDATE batches SET raw = ? WHERE stream = ? AND seq = ?`, flipByte(orig, at+7), audit[:], seq)
		}, func(db *sql.DB) {
			exec(db, `UPDATE batches SET raw = ? WHERE stream = ? AND seq = ?`, orig, audit[:], seq)
		})
		// The whole entry, deleted.
		var row [6]any
		kind := "missing"
		if seq == 5 {
			kind = "newest entries deleted"
		}
		tamper("delete", entry(seq, kind), func(db *sql.DB) {
			var id, author, dids, raw []byte
			var epoch, recv int64
			require.NoError(t, db.QueryRow(`SELECT id, author, epoch, delta_ids, raw, received_ms FROM batches WHERE stream = ? AND seq = ?`,
				audit[:], seq).Scan(&id, &author, &epoch, &dids, &raw, &recv))
			row = [6]any{id, author, epoch, dids, raw, recv}
			exec(db, `DELETE FROM batches WHERE stream = ? AND seq = ?`, audit[:], seq)
		}, func(db *sql.DB) {
			var tenant []byte
			require.NoError(t, db.QueryRow(`SELECT id FROM tenants`).Scan(&tenant))
			exec(db, `INSERT INTO batches (tenant, stream, seq, id, author, epoch, delta_ids, raw, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				tenant, audit[:], seq, row[0], row[1], row[2], row[3], row[4], row[5])
		})
		if seq == 5 {
			continue
		}
		// Swapped with the next entry.
		swap := func(db *sql.DB) {
			exec(db, `UPDATE batches SET seq = -1 WHERE stream = ? AND seq = ?`, audit[:], seq)
			exec(db, `UPDATE batches SET seq = ? WHERE stream = ? AND seq = ?`, seq, audit[:], seq+1)
			exec(db, `UPDATE batches SET seq = ? WHERE stream = ? AND seq = -1`, seq+1, audit[:])
		}
		want := entry(seq, "out of order")
		tamper("reorder", want, swap, swap)
	}

	// The newest entry and the admin statements since it (the checkpoint
	// among them) deleted: this laptop's own chain and links still name
	// the entry.
	var saved [][]any
	coldTamper("delete newest entry and checkpoint", entry(5, "newest entries deleted"), func(db *sql.DB) {
		var cpPos int64 = -1
		rows, err := db.Query(`SELECT pos, raw FROM statements ORDER BY pos`)
		require.NoError(t, err)
		for rows.Next() {
			var pos int64
			var raw []byte
			require.NoError(t, rows.Scan(&pos, &raw))
			s, err := syncproto.UnmarshalStatement(raw)
			require.NoError(t, err)
			if _, ok := s.Body.(*syncproto.AuditCheckpoint); ok {
				cpPos = pos
			}
		}
		require.NoError(t, rows.Err())
		rows.Close()
		require.GreaterOrEqual(t, cpPos, int64(0))
		rows, err = db.Query(`SELECT tenant, pos, hash, raw FROM statements WHERE pos >= ?`, cpPos)
		require.NoError(t, err)
		for rows.Next() {
			var tenant, hash, raw []byte
			var pos int64
			require.NoError(t, rows.Scan(&tenant, &pos, &hash, &raw))
			saved = append(saved, []any{tenant, pos, hash, raw})
		}
		require.NoError(t, rows.Err())
		rows.Close()
		exec(db, `DELETE FROM statements WHERE pos >= ?`, cpPos)
		exec(db, `UPDATE batches SET seq = -5 WHERE stream = ? AND seq = 5`, audit[:])
	}, func(db *sql.DB) {
		for _, r := range saved {
			exec(db, `INSERT INTO statements (tenant, pos, hash, raw) VALUES (?, ?, ?, ?)`, r...)
		}
		exec(db, `UPDATE batches SET seq = 5 WHERE stream = ? AND seq = -5`, audit[:])
	})

	// A second coordinator laptop, enrolled after the entries were
	// written: it checks them all and opens them all (they were sealed to
	// the audit epoch's recipient, whose key it is given with the older
	// epoch keys), so audit show lists every reveal. Without a copy of its
	// own, it names the entries a failing checkpoint covers beyond the
	// last one that held.
	c2 := o.home("c2")
	o.enrol(o.coord, c2, "coord-2", "")
	o.must(c2, "sync")
	require.Regexp(t, `^audit log intact: 5 entries \(5 access events readable here\)`, o.must(c2, "audit", "verify"))
	shownC2 := o.must(c2, "audit", "show", "--resident", "Mina")
	require.Equal(t, 5, strings.Count(shownC2, "opened the case and revealed the sealed fields"), "audit show on the later coordinator laptop:\n%s", shownC2)
	o.with(c2, func(d *Device) {
		_, err := d.db().Exec(`DELETE FROM local_audit`)
		require.NoError(t, err)
		d.dirty = true
	})
	verifier = c2
	var cps []syncproto.Seq
	for _, raw := range o.chainRaws() {
		s, err := syncproto.UnmarshalStatement(raw)
		require.NoError(t, err)
		if cp, ok := s.Body.(*syncproto.AuditCheckpoint); ok {
			cps = append(cps, cp.Seq)
		}
	}
	require.Equal(t, []syncproto.Seq{1, 2, 5}, cps, "checkpoints signed by the coordinator's syncs")
	for _, tc := range []struct {
		seq  int
		want string
	}{
		{2, `: entry 2: edited: it does not match the checkpoint signed at chain position \d+$`},
		{3, `: entry 3: edited: entries 3 to 5 do not match the checkpoint signed at chain position \d+: one of them`},
	} {
		swap := func(db *sql.DB) {
			exec(db, `UPDATE batches SET seq = -1 WHERE stream = ? AND seq = ?`, audit[:], tc.seq)
			exec(db, `UPDATE batches SET seq = ? WHERE stream = ? AND seq = ?`, tc.seq, audit[:], tc.seq+1)
			exec(db, `UPDATE batches SET seq = ? WHERE stream = ? AND seq = -1`, tc.seq+1, audit[:])
		}
		tamper("reorder, no copy of its own", tc.want, swap, swap)
	}
	tamper("delete newest, no copy of its own", `: entry 5: newest entries deleted: the checkpoint signed at chain position \d+ covers 5 entries, the relay now has 4`,
		func(db *sql.DB) {
			exec(db, `UPDATE batches SET seq = -5 WHERE stream = ? AND seq = 5`, audit[:])
		}, func(db *sql.DB) {
			exec(db, `UPDATE batches SET seq = 5 WHERE stream = ? AND seq = -5`, audit[:])
		})

	// An entry deleted and the later ones renumbered to close the gap:
	// the relay signs receipts for the new numbers, but the author's own
	// numbering shows its earlier entry is gone.
	var saved3 []any
	tamper("delete and renumber, no copy of its own", `: entry 4 \(recorded by Ola Hansen \(ola-laptop\) at [^)]*\): missing: the author's entry 1 before it is missing$`,
		func(db *sql.DB) {
			var tenant, id, author, dids, raw []byte
			var epoch, recv int64
			require.NoError(t, db.QueryRow(`SELECT tenant, id, author, epoch, delta_ids, raw, received_ms FROM batches WHERE stream = ? AND seq = 3`,
				audit[:]).Scan(&tenant, &id, &author, &epoch, &dids, &raw, &recv))
			saved3 = []any{tenant, audit[:], 3, id, author, epoch, dids, raw, recv}
			exec(db, `DELETE FROM batches WHERE stream = ? AND seq = 3`, audit[:])
			exec(db, `UPDATE batches SET seq = 3 WHERE stream = ? AND seq = 4`, audit[:])
			exec(db, `UPDATE batches SET seq = 4 WHERE stream = ? AND seq = 5`, audit[:])
		}, func(db *sql.DB) {
			exec(db, `UPDATE batches SET seq = 5 WHERE stream = ? AND seq = 4`, audit[:])
			exec(db, `UPDATE batches SET seq = 4 WHERE stream = ? AND seq = 3`, audit[:])
			exec(db, `INSERT INTO batches (tenant, stream, seq, id, author, epoch, delta_ids, raw, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, saved3...)
		})

	// A laptop without the first links keeps syncing, keeps no copy and
	// signs no checkpoint; one that has them signs the next.
	o.must(k1, "resident", "show", "Mina", "--reveal")
	o.must(k1, "sync")
	o.must(c2, "sync")
	o.with(c2, func(d *Device) {
		links, last, err := d.auditLinks()
		require.NoError(t, err)
		require.Empty(t, links, "links kept without the first entries")
		require.Zero(t, last)
	})
	require.Equal(t, syncproto.Seq(5), o.chain().State().Checkpoint.Seq)
	o.must(o.coord, "sync")
	require.Equal(t, syncproto.Seq(6), o.chain().State().Checkpoint.Seq)
	require.Regexp(t, `^audit log intact: 6 entries \(6 access events readable here\)`, o.must(c2, "audit", "verify"))

	// The newest admin statement deleted, the log itself untouched: the
	// check still runs, and reports the rollback.
	verifier = o.coord
	var newest []any
	coldTamper("delete newest statement", `^fristed: error: audit log damaged: admin chain: chain rolled back`, func(db *sql.DB) {
		var tenant, hash, raw []byte
		var pos int64
		require.NoError(t, db.QueryRow(`SELECT tenant, pos, hash, raw FROM statements ORDER BY pos DESC LIMIT 1`).Scan(&tenant, &pos, &hash, &raw))
		newest = []any{tenant, pos, hash, raw}
		exec(db, `DELETE FROM statements WHERE pos = ?`, pos)
	}, func(db *sql.DB) {
		exec(db, `INSERT INTO statements (tenant, pos, hash, raw) VALUES (?, ?, ?, ?)`, newest...)
	})

	// A laptop pulling the log (here c2, from the start again) stops at an
	// entry whose link disagrees with the newest signed checkpoint.
	o.with(c2, func(d *Device) {
		for _, q := range []string{`DELETE FROM local_cursor WHERE stream = ?`, `DELETE FROM local_authors WHERE stream = ?`,
			`DELETE FROM local_receipts WHERE stream = ?`} {
			_, err := d.db().Exec(q, audit[:])
			require.NoError(t, err)
		}
		d.dirty = true
	})
	db := o.relayWriteDB()
	swap56 := func() {
		exec(db, `UPDATE batches SET seq = -1 WHERE stream = ? AND seq = 5`, audit[:])
		exec(db, `UPDATE batches SET seq = 5 WHERE stream = ? AND seq = 6`, audit[:])
		exec(db, `UPDATE batches SET seq = 6 WHERE stream = ? AND seq = -1`, audit[:])
	}
	swap56()
	_, se, code := o.run(c2, "", "sync")
	swap56()
	require.NoError(t, db.Close())
	require.NotEqual(t, 0, code, "sync over a reordered audit log")
	// Caught by the author order (an entry already seen, served again)
	// or by the signed checkpoint, whichever comes first.
	require.Regexp(t, `audit entry 6 does not match the signed audit checkpoint|batch 6 of \S+ is a replay`, se)
	// c2 keeps what the relay showed it (and the relay's receipts for
	// it): once the relay shows the right order again, c2's copy differs
	// at entry 5, and it says so.
	line := o.fail(c2, "audit", "verify")
	require.Regexp(t, `: entry 5 \(recorded by Kari Nordmann \(kari-laptop\) at [^)]*\): edited: it differs from this laptop's copy$`, line)
	_, se, code = o.run(c2, "", "sync")
	require.NotEqual(t, 0, code)
	require.Regexp(t, `audit entry 6 does not match the signed audit checkpoint|batch 6 of \S+ is a replay`, se)
	o.must(o.coord, "audit", "verify")

	// The coordinator laptop's own copy is in its encrypted replica: a
	// changed byte there is refused before anything is read.
	stolen := filepath.Join(o.dir, "coord-copy")
	drillCopyDir(t, o.coord, stolen)
	files, err := filepath.Glob(filepath.Join(stolen, vaultDir, "*"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		if len(b) < 200 {
			continue
		}
		b[len(b)/2] ^= 0x01
		require.NoError(t, os.WriteFile(f, b, 0o600))
	}
	line = o.fail(stolen, "audit", "verify")
	require.NotContains(t, line, "intact")
}

// relayWriteDB opens the relay's database for writing, as someone with the
// relay's disk would; the caller closes it.
func (o *drillOrg) relayWriteDB() *sql.DB {
	o.t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(o.data, "relay.db")+"?_busy_timeout=5000")
	require.NoError(o.t, err)
	db.SetMaxOpenConns(1)
	return db
}

func flipByte(b []byte, at int) []byte {
	out := append([]byte(nil), b...)
	out[at] ^= 0x01
	return out
}

// drillAuditUnpulled: a worker laptop's newest audit entries, deleted on
// the relay's disk before any coordinator laptop pulled them (so no
// checkpoint or coordinator copy covers them), are caught by the author
// laptop: its sync compares the receipts the relay signed for its entries
// with the audit stream's head, which it may read though it may not pull
// the stream, and goes on failing until the entries are back.
func drillAuditUnpulled(t *testing.T, bins drillBins) {
	o := newDrillOrg(t, bins, nil)
	o.must(o.coord, "worker", "add", "Kari Nordmann")
	k1 := o.home("k1")
	o.enrol(o.coord, k1, "kari-laptop", "Kari Nordmann")
	o.residentAdd("Mina")
	o.must(o.coord, "assign", "Mina", "--worker", "Kari Nordmann")
	o.must(o.coord, "sync")
	o.must(k1, "sync")
	o.must(k1, "resident", "show", "Mina")
	o.must(k1, "sync")
	o.must(k1, "resident", "show", "Mina", "--reveal")
	o.must(k1, "sync") // the head check passes on the intact log

	audit, ok := drillStreamOfKind(o.chain().State(), syncproto.StreamAudit)
	require.True(t, ok)
	o.with(k1, func(d *Device) {
		c, err := d.client()
		require.NoError(t, err)
		h, err := c.StreamHead(context.Background(), audit)
		require.NoError(t, err, "a worker laptop reading the audit stream's head")
		require.Equal(t, syncproto.Seq(2), h.Head)
		_, _, err = c.PullBatches(context.Background(), audit, 0, 10, 0)
		require.Equal(t, syncproto.CodeNotAssigned, syncproto.CodeOf(err), "a worker laptop pulling the audit stream: got %v", err)
	})

	// The newest entry (the reveal) deleted and the head moved back.
	db := o.relayWriteDB()
	var tenant []byte
	var row [6]any
	var id, author, dids, raw []byte
	var epoch, recv int64
	require.NoError(t, db.QueryRow(`SELECT tenant, id, author, epoch, delta_ids, raw, received_ms FROM batches WHERE stream = ? AND seq = 2`,
		audit[:]).Scan(&tenant, &id, &author, &epoch, &dids, &raw, &recv))
	row = [6]any{id, author, epoch, dids, raw, recv}
	_, err := db.Exec(`DELETE FROM batches WHERE stream = ? AND seq = 2`, audit[:])
	require.NoError(t, err)
	_, err = db.Exec(`UPDATE streams SET head = 1 WHERE stream = ?`, audit[:])
	require.NoError(t, err)

	want := `^fristed: error: .*the relay shows 1 audit log entries but signed a receipt for this laptop's entry 2: entries were deleted$`
	require.Regexp(t, want, o.fail(k1, "sync"))
	require.Regexp(t, want, o.fail(k1, "sync"), "the second sync after the deletion")
	// The coordinator laptop never saw the entry: its view of the log is
	// consistent, which is why the author's check is needed.
	o.must(o.coord, "sync")
	require.Regexp(t, `^audit log intact: 1 entry `, o.must(o.coord, "audit", "verify"))

	// Put back, the author's sync passes again.
	_, err = db.Exec(`INSERT INTO batches (tenant, stream, seq, id, author, epoch, delta_ids, raw, received_ms) VALUES (?, ?, 2, ?, ?, ?, ?, ?, ?)`,
		append([]any{tenant, audit[:]}, row[:]...)...)
	require.NoError(t, err)
	_, err = db.Exec(`UPDATE streams SET head = 2 WHERE stream = ?`, audit[:])
	require.NoError(t, err)
	require.NoError(t, db.Close())
	o.must(k1, "sync")
}

// drillAuditLaterCoordinators: coordinator laptops that join after entries
// were written - one approved with --coordinator, one made by org recover -
// open and verify every entry sealed to the audit epoch's recipient, and
// an entry in the older form (sealed to the coordinator laptops of the
// moment) still verifies on both though neither can open it. A worker
// laptop holds no audit key and opens nothing.
func drillAuditLaterCoordinators(t *testing.T, bins drillBins) {
	o := newDrillOrg(t, bins, nil)
	ctx := context.Background()
	o.must(o.coord, "worker", "add", "Kari Nordmann")
	k1 := o.home("k1")
	o.enrol(o.coord, k1, "kari-laptop", "Kari Nordmann")
	o.residentAdd("Mina")
	o.must(o.coord, "assign", "Mina", "--worker", "Kari Nordmann")
	o.must(o.coord, "sync")
	o.must(k1, "sync")
	o.must(k1, "resident", "show", "Mina", "--reveal")
	o.must(k1, "sync")
	o.must(o.coord, "resident", "show", "Mina", "--reveal")
	o.must(o.coord, "sync")

	st := o.chain().State()
	audit, ok := drillStreamOfKind(st, syncproto.StreamAudit)
	require.True(t, ok)
	cur := st.Streams[audit].Current()
	require.NotEmpty(t, cur.AuditRecipient, "the audit epoch's recipient is named in the chain")

	// An entry in the older form: Kari's laptop seals it to the epoch's
	// devices, under a chain head before the recipient was named.
	o.with(k1, func(d *Device) {
		ops, err := d.rep.AuditOps(audit, replica.AuditEvent{Event: "reveal", Resident: syncproto.StreamID{}.String(),
			Device: d.pc.device.String(), At: d.opts.now().Truncate(time.Second)})
		require.NoError(t, err)
		dl := &syncproto.Delta{Tenant: d.pc.tenant, Stream: audit, Epoch: cur.Epoch, Author: d.pc.device,
			ID: syncproto.NewDeltaID(), Clock: d.tick(), Ops: ops}
		counter, prev, err := d.authorState(audit, d.pc.device)
		require.NoError(t, err)
		at := cur.AuditRecipientAt - 1
		h, ok := d.chain.HashAt(at)
		require.True(t, ok)
		devs := *cur
		devs.AuditRecipient = ""
		rcpts, err := d.epochRecipients(&devs)
		require.NoError(t, err)
		b, err := syncproto.SealAuditBatch(syncproto.Batch{Tenant: d.pc.tenant, Stream: audit, Epoch: cur.Epoch, Author: d.pc.device,
			Counter: counter + 1, Prev: prev, ChainHead: syncproto.Head{Pos: at, Hash: h}, CreatedMS: uint64(d.opts.now().UnixMilli())},
			rcpts, d.kf.Sign, []*syncproto.Delta{dl})
		require.NoError(t, err)
		raw, err := b.Marshal()
		require.NoError(t, err)
		c, err := d.client()
		require.NoError(t, err)
		_, _, err = c.PushBatch(ctx, audit, raw)
		require.NoError(t, err)
	})
	o.must(o.coord, "sync")
	require.Regexp(t, `^audit log intact: 3 entries \(3 access events readable here\)`, o.must(o.coord, "audit", "verify"))

	// Approved as a coordinator later: reads both reveals, verifies all.
	c2 := o.home("c2")
	o.enrol(o.coord, c2, "coord-2", "")
	o.must(c2, "sync")
	require.Regexp(t, `^audit log intact: 3 entries \(2 access events readable here\)`, o.must(c2, "audit", "verify"))
	shown := o.must(c2, "audit", "show", "--resident", "Mina")
	for _, who := range []string{"Kari Nordmann (kari-laptop)", "coordinator (coordinator)"} {
		require.Contains(t, shown, who+" opened the case and revealed the sealed fields", "audit show on the later coordinator laptop:\n%s", shown)
	}

	// Made by org recover: waits for the older keys, which a coordinator
	// laptop's sync sends it, then reads and verifies the same.
	c3 := o.home("c3")
	o.must(c3, append([]string{"org", "recover", "--relay", o.url, "--org", o.org}, o.recoveryFlags()...)...)
	o.must(c3, "sync")
	o.must(o.coord, "sync")
	o.must(c3, "sync")
	require.Regexp(t, `^audit log intact: 3 entries \(2 access events readable here\)`, o.must(c3, "audit", "verify"))
	require.Contains(t, o.must(c3, "audit", "show"), "Kari Nordmann (kari-laptop) opened the case and revealed the sealed fields")

	// The worker laptop: no audit key, and no entry opens with its identity.
	o.must(k1, "sync")
	o.with(k1, func(d *Device) {
		require.Empty(t, drillEpochKeys(t, d)[audit], "audit keys on a worker laptop")
		for _, sb := range o.batches() {
			if sb.Stream != audit {
				continue
			}
			_, err := syncproto.OpenAuditBatch(sb.Batch, d.kf.Box, o.chain().State().Devices[sb.Batch.Author].SignPub)
			require.Error(t, err, "the worker laptop opening audit entry %d", sb.Seq)
		}
	})
	require.Contains(t, o.fail(k1, "audit", "show"), "coordinator")
}

// drillAuditUnopenable: an entry its author signed but sealed to a
// recipient no coordinator laptop holds (a faulty author, or a recipient
// named by a stolen coordinator laptop) does not stop the coordinators'
// syncs; audit verify names it.
func drillAuditUnopenable(t *testing.T, bins drillBins) {
	o := newDrillOrg(t, bins, nil)
	ctx := context.Background()
	o.must(o.coord, "worker", "add", "Kari Nordmann")
	k1 := o.home("k1")
	o.enrol(o.coord, k1, "kari-laptop", "Kari Nordmann")
	o.must(o.coord, "sync")
	o.must(k1, "sync")
	audit, ok := drillStreamOfKind(o.chain().State(), syncproto.StreamAudit)
	require.True(t, ok)
	cur := o.chain().State().Streams[audit].Current()
	o.with(k1, func(d *Device) {
		ops, err := d.rep.AuditOps(audit, replica.AuditEvent{Event: "open", Device: d.pc.device.String(), At: d.opts.now().Truncate(time.Second)})
		require.NoError(t, err)
		dl := &syncproto.Delta{Tenant: d.pc.tenant, Stream: audit, Epoch: cur.Epoch, Author: d.pc.device,
			ID: syncproto.NewDeltaID(), Clock: d.tick(), Ops: ops}
		counter, prev, err := d.authorState(audit, d.pc.device)
		require.NoError(t, err)
		head, _ := d.chain.Head()
		stranger, err := fcrypto.GenerateBoxIdentity()
		require.NoError(t, err)
		b, err := syncproto.SealAuditBatch(syncproto.Batch{Tenant: d.pc.tenant, Stream: audit, Epoch: cur.Epoch, Author: d.pc.device,
			Counter: counter + 1, Prev: prev, ChainHead: head, CreatedMS: uint64(d.opts.now().UnixMilli())},
			[]fcrypto.BoxRecipient{stranger.Recipient()}, d.kf.Sign, []*syncproto.Delta{dl})
		require.NoError(t, err)
		raw, err := b.Marshal()
		require.NoError(t, err)
		c, err := d.client()
		require.NoError(t, err)
		_, _, err = c.PushBatch(ctx, audit, raw)
		require.NoError(t, err)
	})
	o.must(o.coord, "sync")
	o.must(o.coord, "sync")
	require.Regexp(t, `^fristed: error: audit log damaged: entry 1 \(recorded by Kari Nordmann \(kari-laptop\) at [^)]*\): edited: it does not open on this laptop, which holds the key it is sealed to$`,
		o.fail(o.coord, "audit", "verify"))
}
