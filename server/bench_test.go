package server

import (
	"bytes"
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/fristed/fristed/server/relaytest"
	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/server/store/sqlite"
	"github.com/fristed/fristed/syncproto"
)

// BenchmarkIngest measures durable relay ingest against raw SQLite inserts
// in the same run. The relay path is what the batch handler does after
// reading the body: decode, verify the signature, check access against the
// chain, append (one durable transaction) and sign the receipt. The raw
// path inserts the same blobs into the same schema and indexes, one
// transaction per batch, with the same durability (WAL, synchronous=FULL).
// Each batch holds 100 sealed deltas of 1 KiB. It reports both rates and
// their ratio (target >= 0.5).
//
//	go test -run '^$' -bench Ingest -benchtime 200x ./server/
func BenchmarkIngest(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "relay.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	r, err := New(ctx, Config{Dir: dir, Store: st})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()

	t, dev, stream, batches := benchOrg(b, r, b.N)

	rawDir := b.TempDir()
	rawPath := filepath.Join(rawDir, "raw.db")
	schema, err := sqlite.Open(rawPath) // the same schema and indexes
	if err != nil {
		b.Fatal(err)
	}
	schema.Close()
	q := url.Values{"_journal_mode": {"WAL"}, "_synchronous": {"FULL"}, "_txlock": {"immediate"},
		"_busy_timeout": {"10000"}, "_foreign_keys": {"on"}, "_secure_delete": {"on"}}
	db, err := sql.Open("sqlite3", "file:"+rawPath+"?"+q.Encode())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`INSERT INTO tenants (id, created_ms) VALUES (?, 0)`, t.id[:]); err != nil {
		b.Fatal(err)
	}

	var relayTime, rawTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		stored, dup, err := r.ingest(ctx, t, dev, stream, batches[i].raw)
		if err != nil || dup {
			b.Fatalf("ingest batch %d: dup %v, %v", i, dup, err)
		}
		if _, err := r.receipt(stored); err != nil {
			b.Fatal(err)
		}
		relayTime += time.Since(start)

		start = time.Now()
		if err := rawInsert(db, t.id, stream, batches[i]); err != nil {
			b.Fatal(err)
		}
		rawTime += time.Since(start)
	}
	b.StopTimer()
	relayRate := float64(b.N) / relayTime.Seconds()
	rawRate := float64(b.N) / rawTime.Seconds()
	b.ReportMetric(relayRate, "relay-batches/s")
	b.ReportMetric(rawRate, "raw-batches/s")
	b.ReportMetric(relayRate/rawRate, "ratio")
	b.ReportMetric(relayRate*100, "relay-deltas/s")
}

type benchBatch struct {
	raw    []byte
	id     syncproto.Hash
	author syncproto.DeviceID
	epoch  syncproto.Epoch
	deltas []syncproto.DeltaID
}

// benchOrg makes a tenant with one worker device assigned to one stream,
// stored straight into the relay's store, and n sealed batches of 100
// deltas of 1 KiB.
func benchOrg(b *testing.B, r *Relay, n int) (*tenant, syncproto.DeviceID, syncproto.StreamID, []benchBatch) {
	ctx := context.Background()
	o, err := relaytest.NewOrg(r.PublicKey())
	must(b, err)
	coord, err := relaytest.NewDevice()
	must(b, err)
	dev, err := relaytest.NewDevice()
	must(b, err)
	var raws [][]byte
	add := func(raw []byte, err error) {
		must(b, err)
		raws = append(raws, raw)
	}
	add(o.Genesis(), nil)
	add(o.Delegate(coord))
	w, raw, err := o.AddWorker(coord)
	add(raw, err)
	add(o.Enrol(coord, dev, w))
	s, raw, err := o.CreateStream(coord, syncproto.StreamResident)
	add(raw, err)
	add(o.Assign(coord, s, w))
	ep, _, raw, err := o.StartEpoch(coord, s, coord.ID, dev.ID)
	add(raw, err)

	inv := InviteHash("bench")
	must(b, r.st.PutInvite(ctx, inv, time.Now().Add(time.Hour)))
	must(b, r.st.ConsumeInvite(ctx, inv, o.Tenant, time.Now()))
	for i, raw := range raws {
		must(b, r.st.AppendStatement(ctx, o.Tenant, store.Statement{Pos: syncproto.ChainPos(i), Hash: syncproto.HashStatement(raw), Raw: raw}))
	}
	t, err := r.tenants.get(ctx, o.Tenant)
	must(b, err)

	au := &relaytest.Author{Dev: dev, Stream: s}
	value := bytes.Repeat([]byte("x"), 1000) // seals to 1 KiB with the delta header and padding
	vals := make([][]byte, 100)
	for i := range vals {
		vals[i] = value
	}
	out := make([]benchBatch, n)
	for i := range out {
		bt, raw, err := au.Batch(o, ep, o.Head(), vals...)
		must(b, err)
		id, err := bt.Hash()
		must(b, err)
		bb := benchBatch{raw: raw, id: id, author: dev.ID, epoch: ep}
		for _, d := range bt.Deltas {
			bb.deltas = append(bb.deltas, d.ID)
		}
		out[i] = bb
	}
	return t, dev.ID, s, out
}

// rawInsert stores one batch the way the SQLite schema keeps it, with no
// checks: the floor the relay is measured against.
func rawInsert(db *sql.DB, tenant syncproto.TenantID, stream syncproto.StreamID, bb benchBatch) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO streams (tenant, stream) VALUES (?, ?) ON CONFLICT DO NOTHING`, tenant[:], stream[:]); err != nil {
		return err
	}
	var seq int64
	if err := tx.QueryRow(`UPDATE streams SET head = head + 1 WHERE tenant = ? AND stream = ? RETURNING head`, tenant[:], stream[:]).Scan(&seq); err != nil {
		return err
	}
	ins, err := tx.Prepare(`INSERT INTO deltas (tenant, stream, delta_id, seq) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	ids := make([]byte, 0, 16*len(bb.deltas))
	for _, id := range bb.deltas {
		if _, err := ins.Exec(tenant[:], stream[:], id[:], seq); err != nil {
			return err
		}
		ids = append(ids, id[:]...)
	}
	ins.Close()
	if _, err := tx.Exec(`INSERT INTO batches (tenant, stream, seq, id, author, epoch, delta_ids, raw, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		tenant[:], stream[:], seq, bb.id[:], bb.author[:], int64(bb.epoch), ids, bb.raw, time.Now().UnixMilli()); err != nil {
		return err
	}
	return tx.Commit()
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
