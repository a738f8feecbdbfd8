package client

// Pull benchmarks: how fast a device applies pulled deltas, and
// what a pull costs a device 100 deltas behind on a stream of 1,000 and of
// 1,000,000 deltas, which must be the same.
//
//	go test ./client -run '^$' -bench 'PullApply|PullBehind' -benchtime 20x -count 3
//
// BenchmarkPullBehind/ratio reports x-1k, the 1,000,000-delta pull's time
// over the 1,000-delta one's, both measured alternately in one run.
// docs/PERFORMANCE.md has the figures.

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// rewindStream makes d forget stream s back to batch seq: the stream's
// case data, and the cursor, receipts and author positions after seq (the
// author positions are set to those given).
func rewindStream(tb testing.TB, d *Device, s syncproto.StreamID, seq syncproto.Seq, authors map[syncproto.DeviceID]authorPos) {
	require.NoError(tb, d.rep.PurgeStream(s))
	_, err := d.db().Exec(`INSERT OR REPLACE INTO local_cursor (stream, seq) VALUES (?, ?)`, s[:], int64(seq))
	require.NoError(tb, err)
	_, err = d.db().Exec(`DELETE FROM local_receipts WHERE stream = ? AND seq > ?`, s[:], int64(seq))
	require.NoError(tb, err)
	_, err = d.db().Exec(`DELETE FROM local_authors WHERE stream = ?`, s[:])
	require.NoError(tb, err)
	for dev, a := range authors {
		require.NoError(tb, d.setAuthorState(s, dev, a.n, a.h))
	}
}

func authorsOf(tb testing.TB, d *Device, s syncproto.StreamID) map[syncproto.DeviceID]authorPos {
	rows, err := d.db().Query(`SELECT device, counter, last FROM local_authors WHERE stream = ?`, s[:])
	require.NoError(tb, err)
	defer rows.Close()
	out := map[syncproto.DeviceID]authorPos{}
	for rows.Next() {
		var dev, last []byte
		var n int64
		require.NoError(tb, rows.Scan(&dev, &n, &last))
		var id syncproto.DeviceID
		copy(id[:], dev)
		var h syncproto.Hash
		copy(h[:], last)
		out[id] = authorPos{uint64(n), h}
	}
	require.NoError(tb, rows.Err())
	return out
}

// BenchmarkPullApply: deltas per second a worker laptop pulls, verifies,
// opens and merges into its replica: 10,000 log entries in batches of 100.
func BenchmarkPullApply(b *testing.B) {
	const total, perBatch = 10_000, 100
	o := newSnapOrg(b, 1<<30)
	pushHistory(b, o.coord, o.sid, total, perBatch)
	authors := authorsOf(b, o.kari, o.sid)
	base, err := o.kari.cursor(o.sid)
	require.NoError(b, err)
	ctx := context.Background()
	var pulled int
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		rewindStream(b, o.kari, o.sid, base, authors)
		b.StartTimer()
		var res SyncResult
		require.NoError(b, o.kari.pull(ctx, &res))
		pulled += res.Pulled
	}
	require.Equal(b, total*b.N, pulled, "deltas pulled")
	b.ReportMetric(float64(pulled)/b.Elapsed().Seconds(), "deltas/s")
}

// behindFixture: two residents, one with 1,000 log entries of history and
// one with 1,000,000, each followed by 100 entries (10 batches of 10) the
// worker laptop has not pulled yet.
type behindFixture struct {
	o       *snapOrg
	streams map[string]behindStream
}

type behindStream struct {
	sid     syncproto.StreamID
	base    syncproto.Seq
	authors map[syncproto.DeviceID]authorPos
}

var (
	behindOnce sync.Once
	behindFix  *behindFixture
)

// fillHistory appends n deltas of history to stream sid in batches of 100
// straight into the relay's store: the batches of a device nobody pulls
// from (the laptop is past them), so only the store's indexes and sizes
// are real; going through HTTP would take minutes for a million.
func fillHistory(tb testing.TB, o *snapOrg, sid syncproto.StreamID, n int) {
	ctx := context.Background()
	var author syncproto.DeviceID
	rand.Read(author[:])
	epoch := o.coord.chain.State().Streams[sid].Current().Epoch
	raw := make([]byte, 100*120) // about what 100 sealed short entries take
	for done := 0; done < n; done += 100 {
		bt := store.Batch{Tenant: o.coord.pc.tenant, Stream: sid, Author: author, Epoch: epoch, Raw: raw,
			DeltaIDs: make([]syncproto.DeltaID, 100)}
		rand.Read(bt.ID[:])
		for i := range bt.DeltaIDs {
			bt.DeltaIDs[i] = syncproto.NewDeltaID()
		}
		head, _ := o.coord.chain.Head()
		_, _, err := o.relay.Store.AppendBatch(ctx, bt, head.Pos, time.Now())
		require.NoError(tb, err)
	}
}

func behind(b *testing.B) *behindFixture {
	behindOnce.Do(func() {
		o := newSnapOrg(b, 1<<30)
		f := &behindFixture{o: o, streams: map[string]behindStream{}}
		// Both residents exist and are synced before any filling: a sync
		// would pull the filler batches.
		big, err := o.coord.ResidentAdd(context.Background(), ResidentAddParams{Pseudonym: "Lina", Arrived: "2026-11-01"})
		require.NoError(b, err)
		require.NoError(b, o.coord.Assign(context.Background(), big.String(), "Kari"))
		o.sync(o.coord)
		o.sync(o.kari)
		for _, h := range []struct {
			name string
			sid  syncproto.StreamID
			n    int
		}{{"1k", o.sid, 1_000}, {"1M", big, 1_000_000}} {
			fillHistory(b, o, h.sid, h.n)
			c, err := o.coord.client()
			require.NoError(b, err)
			hs, _, err := c.Heads(context.Background(), map[syncproto.StreamID]syncproto.Seq{h.sid: 0}, 0, 0)
			require.NoError(b, err)
			// The laptop is up to date with the history (it skips the
			// filled batches), then 100 entries behind.
			_, err = o.kari.db().Exec(`INSERT OR REPLACE INTO local_cursor (stream, seq) VALUES (?, ?)`, h.sid[:], int64(hs[h.sid].Head))
			require.NoError(b, err)
			f.streams[h.name] = behindStream{sid: h.sid, base: hs[h.sid].Head, authors: authorsOf(b, o.kari, h.sid)}
			pushHistory(b, o.coord, h.sid, 100, 10)
		}
		// Up to date everywhere; each measured pull rewinds one stream.
		var res SyncResult
		require.NoError(b, o.kari.pull(context.Background(), &res))
		require.Equal(b, 200, res.Pulled, "deltas pulled")
		behindFix = f
	})
	if behindFix == nil {
		b.Fatal("pull fixture failed to build in an earlier benchmark")
	}
	return behindFix
}

func (f *behindFixture) pull(b *testing.B, name string) time.Duration {
	s := f.streams[name]
	rewindStream(b, f.o.kari, s.sid, s.base, s.authors)
	var res SyncResult
	t0 := time.Now()
	require.NoError(b, f.o.kari.pull(context.Background(), &res))
	d := time.Since(t0)
	require.Equal(b, 100, res.Pulled, "deltas pulled")
	return d
}

// BenchmarkPullBehind: one pull by a laptop 100 entries behind, on a
// stream of 1,000 and one of 1,000,000 entries; ratio times both
// alternately and reports the median of 1M/1k.
func BenchmarkPullBehind(b *testing.B) {
	f := behind(b)
	for _, name := range []string{"1k", "1M"} {
		b.Run(name, func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				total += f.pull(b, name)
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "pull-ns/op")
		})
	}
	b.Run("ratio", func(b *testing.B) {
		var small, big []time.Duration
		for b.Loop() {
			if len(small)%2 == 0 {
				small, big = append(small, f.pull(b, "1k")), append(big, f.pull(b, "1M"))
			} else {
				big, small = append(big, f.pull(b, "1M")), append(small, f.pull(b, "1k"))
			}
		}
		ratios := make([]float64, len(small))
		for i := range small {
			ratios[i] = float64(big[i]) / float64(small[i])
		}
		b.ReportMetric(float64(relMedian(small).Nanoseconds()), "1k-ns/op")
		b.ReportMetric(float64(relMedian(big).Nanoseconds()), "1M-ns/op")
		b.ReportMetric(relMedian(ratios), "x-1k")
	})
}

// onboardFixture: a laptop assigned to two residents of 100,000 log
// entries each (batches of 500); one has a countersigned snapshot and its
// history pruned, the other only its history.
type onboardFixture struct {
	per          *Device
	snap, replay behindStream
}

var (
	onboardOnce sync.Once
	onboardFix  *onboardFixture
)

func onboard(b *testing.B) *onboardFixture {
	onboardOnce.Do(func() {
		const total, perBatch = 100_000, 500
		ctx := context.Background()
		o := newSnapOrg(b, 100)
		pushHistory(b, o.coord, o.sid, total, perBatch)
		o.sync(o.kari)  // posts
		o.sync(o.coord) // countersigns
		require.NotNil(b, o.countersigned(), "countersigned")
		// The second resident gets no snapshot: nobody posts one.
		o.kari.opts.SnapshotEvery = 1 << 30
		other, err := o.coord.ResidentAdd(ctx, ResidentAddParams{Pseudonym: "Lina", Arrived: "2026-11-01"})
		require.NoError(b, err)
		pushHistory(b, o.coord, other, total, perBatch)
		per := o.newDevice("per", "Per")
		require.NoError(b, o.coord.Assign(ctx, other.String(), "Per"))
		o.sync(o.coord)
		o.sync(per)
		for _, s := range []syncproto.StreamID{o.sid, other} {
			var n int
			require.NoError(b, per.db().QueryRow(`SELECT COUNT(*) FROM elements WHERE stream = ?`, s[:]).Scan(&n))
			require.Equal(b, total, n, "log entries")
		}
		onboardFix = &onboardFixture{per: per, snap: behindStream{sid: o.sid}, replay: behindStream{sid: other}}
	})
	if onboardFix == nil {
		b.Fatal("onboarding fixture failed to build in an earlier benchmark")
	}
	return onboardFix
}

func (f *onboardFixture) start(b *testing.B, s behindStream) time.Duration {
	rewindStream(b, f.per, s.sid, 0, nil)
	var res SyncResult
	t0 := time.Now()
	require.NoError(b, f.per.pull(context.Background(), &res))
	return time.Since(t0)
}

// BenchmarkOnboard: a laptop new to a resident of 100,000 log entries
// reaches its state from the countersigned snapshot (snapshot) or by
// replaying the history (replay); ratio reports the median of
// snapshot/replay from both measured alternately.
//
//	go test ./client -run '^$' -bench Onboard -benchtime 5x
func BenchmarkOnboard(b *testing.B) {
	f := onboard(b)
	b.Run("snapshot", func(b *testing.B) {
		for b.Loop() {
			f.start(b, f.snap)
		}
	})
	b.Run("replay", func(b *testing.B) {
		for b.Loop() {
			f.start(b, f.replay)
		}
	})
	b.Run("ratio", func(b *testing.B) {
		var snaps, replays []time.Duration
		for b.Loop() {
			if len(snaps)%2 == 0 {
				snaps, replays = append(snaps, f.start(b, f.snap)), append(replays, f.start(b, f.replay))
			} else {
				replays, snaps = append(replays, f.start(b, f.replay)), append(snaps, f.start(b, f.snap))
			}
		}
		ratios := make([]float64, len(snaps))
		for i := range snaps {
			ratios[i] = float64(snaps[i]) / float64(replays[i])
		}
		b.ReportMetric(float64(relMedian(snaps).Nanoseconds()), "snapshot-ns/op")
		b.ReportMetric(float64(relMedian(replays).Nanoseconds()), "replay-ns/op")
		b.ReportMetric(relMedian(ratios), "x-replay")
	})
}
