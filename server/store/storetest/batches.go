package storetest

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

func testAppendBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	tenant := newChainTenant(t, s)
	stream := syncproto.NewStreamID()
	checkStreamHead(t, s, tenant, stream, 0, 0)

	var stored []store.Batch
	for i := 0; i < 3; i++ {
		b := newBatch(tenant, stream, 3)
		now := t0.Add(time.Duration(i) * time.Minute)
		got, dup, err := s.AppendBatch(ctx, b, 0, now)
		noErr(t, err, "append batch")
		if dup {
			t.Fatalf("append batch %d: got dup, want new", i)
		}
		b.Seq = syncproto.Seq(i + 1)
		b.ReceivedAt = ms(now)
		checkBatch(t, "append batch", got, b)
		stored = append(stored, got)
	}
	checkStreamHead(t, s, tenant, stream, 3, 0)

	// A retry returns the original record, whatever the clock.
	got, dup, err := s.AppendBatch(ctx, withoutStoreFields(stored[1]), 0, t0.Add(time.Hour))
	noErr(t, err, "retry batch")
	if !dup {
		t.Fatalf("retry batch: got dup=false, want true")
	}
	checkBatch(t, "retry batch", got, stored[1])

	// The chain moves: a retry is still a dup, a new batch against the old
	// head is refused and stores nothing.
	appendStatements(t, s, tenant, 1)
	got, dup, err = s.AppendBatch(ctx, withoutStoreFields(stored[0]), 0, t0.Add(time.Hour))
	noErr(t, err, "retry batch after the chain moved")
	if !dup {
		t.Fatalf("retry batch after the chain moved: got dup=false, want true")
	}
	checkBatch(t, "retry batch after the chain moved", got, stored[0])
	b4 := newBatch(tenant, stream, 1)
	_, _, err = s.AppendBatch(ctx, b4, 0, t0)
	wantErr(t, err, store.ErrChainMoved, "append against an old head")
	_, _, err = s.AppendBatch(ctx, b4, 2, t0)
	wantErr(t, err, store.ErrChainMoved, "append against a future head")
	checkStreamHead(t, s, tenant, stream, 3, 0)
	got, _, err = s.AppendBatch(ctx, b4, 1, t0)
	noErr(t, err, "append against the new head")
	if got.Seq != 4 {
		t.Fatalf("append against the new head: got seq %d, want 4", got.Seq)
	}
	stored = append(stored, got)

	// A delta id already in the stream, or twice in one batch: nothing of
	// the batch is stored, not even its other delta ids.
	fresh := syncproto.NewDeltaID()
	reuse := newBatch(tenant, stream, 0)
	reuse.DeltaIDs = []syncproto.DeltaID{fresh, stored[0].DeltaIDs[1]}
	_, _, err = s.AppendBatch(ctx, reuse, 1, t0)
	wantErr(t, err, store.ErrConflict, "append reusing a delta id")
	twice := newBatch(tenant, stream, 0)
	twice.DeltaIDs = []syncproto.DeltaID{fresh, fresh}
	_, _, err = s.AppendBatch(ctx, twice, 1, t0)
	wantErr(t, err, store.ErrConflict, "append with a delta id twice")
	checkStreamHead(t, s, tenant, stream, 4, 0)
	again := newBatch(tenant, stream, 0)
	again.DeltaIDs = []syncproto.DeltaID{fresh}
	got, _, err = s.AppendBatch(ctx, again, 1, t0)
	noErr(t, err, "append the delta id of a refused batch")
	if got.Seq != 5 {
		t.Fatalf("append after refused batches: got seq %d, want 5", got.Seq)
	}
	stored = append(stored, got)

	// Delta ids are unique within a stream, not across streams; sequence
	// numbers are per stream.
	other := syncproto.NewStreamID()
	elsewhere := newBatch(tenant, other, 0)
	elsewhere.DeltaIDs = stored[0].DeltaIDs
	got, _, err = s.AppendBatch(ctx, elsewhere, 1, t0)
	noErr(t, err, "append a delta id used in another stream")
	if got.Seq != 1 {
		t.Fatalf("first batch of another stream: got seq %d, want 1", got.Seq)
	}

	// A batch without deltas is fine.
	empty := newBatch(tenant, stream, 0)
	got, _, err = s.AppendBatch(ctx, empty, 1, t0)
	noErr(t, err, "append a batch without deltas")
	stored = append(stored, got)

	all, err := s.Batches(ctx, tenant, stream, 0, 0)
	noErr(t, err, "batches")
	if len(all) != len(stored) {
		t.Fatalf("batches: got %d, want %d", len(all), len(stored))
	}
	for i := range all {
		checkBatch(t, "batches", all[i], stored[i])
	}

	unknown := syncproto.NewTenantID()
	_, _, err = s.AppendBatch(ctx, newBatch(unknown, stream, 1), 0, t0)
	wantErr(t, err, store.ErrNotFound, "append to an unknown tenant")
	noChain := newTenant(t, s)
	_, _, err = s.AppendBatch(ctx, newBatch(noChain, stream, 1), 0, t0)
	wantErr(t, err, store.ErrChainMoved, "append to a tenant with an empty chain")
}

// withoutStoreFields is b as a client would send it again.
func withoutStoreFields(b store.Batch) store.Batch {
	b.Seq = 0
	b.ReceivedAt = time.Time{}
	return b
}

func testBatchesPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	tenant := newChainTenant(t, s)
	stream := syncproto.NewStreamID()
	stored := appendBatches(t, s, tenant, stream, 25)
	checkStreamHead(t, s, tenant, stream, 25, 0)

	// Follow the cursor as a client does.
	var after syncproto.Seq
	var pages int
	for {
		page, err := s.Batches(ctx, tenant, stream, after, 10)
		noErr(t, err, "batches page")
		if len(page) == 0 {
			break
		}
		pages++
		if len(page) > 10 {
			t.Fatalf("batches page after %d: got %d, want at most 10", after, len(page))
		}
		checkSeqs(t, "batches page", page, seqRange(after+1, after+syncproto.Seq(len(page))))
		for _, b := range page {
			checkBatch(t, "batches page", b, stored[b.Seq-1])
		}
		after = page[len(page)-1].Seq
	}
	if pages != 3 || after != 25 {
		t.Fatalf("paging by 10: got %d pages up to %d, want 3 up to 25", pages, after)
	}

	for _, tc := range []struct {
		after syncproto.Seq
		limit int
		want  []syncproto.Seq
	}{
		{0, 3, seqRange(1, 3)},
		{7, 1, seqRange(8, 8)},
		{20, 100, seqRange(21, 25)},
		{24, 0, seqRange(25, 25)},
		{25, 10, nil},
		{1000, 10, nil},
	} {
		got, err := s.Batches(ctx, tenant, stream, tc.after, tc.limit)
		noErr(t, err, "batches")
		checkSeqs(t, "batches", got, tc.want)
	}

	unknown := syncproto.NewStreamID()
	checkStreamHead(t, s, tenant, unknown, 0, 0)
	got, err := s.Batches(ctx, tenant, unknown, 0, 10)
	noErr(t, err, "batches of an unknown stream")
	if len(got) != 0 {
		t.Fatalf("batches of an unknown stream: got %d, want 0", len(got))
	}
}

func testSnapshots(t *testing.T, s store.Store) {
	ctx := context.Background()
	tenant := newChainTenant(t, s)
	stream := syncproto.NewStreamID()
	appendBatches(t, s, tenant, stream, 5)

	_, err := s.LatestSnapshot(ctx, tenant, stream)
	wantErr(t, err, store.ErrNotFound, "latest snapshot of a stream without one")

	s3 := newSnapshot(tenant, stream, 3)
	noErr(t, s.PutSnapshot(ctx, s3), "put snapshot")
	noErr(t, s.PutSnapshot(ctx, s3), "put the same snapshot again")
	checkSnapshot(t, s, s3, true)
	s5 := newSnapshot(tenant, stream, 5)
	noErr(t, s.PutSnapshot(ctx, s5), "put a later snapshot")
	checkSnapshot(t, s, s5, true)
	checkSnapshot(t, s, s3, false)
	noErr(t, s.PutSnapshot(ctx, s3), "put an older snapshot again")
	checkSnapshot(t, s, s5, true)

	_, err = s.GetSnapshot(ctx, tenant, stream, randHash())
	wantErr(t, err, store.ErrNotFound, "get an unknown snapshot")
	other := syncproto.NewStreamID()
	_, err = s.GetSnapshot(ctx, tenant, other, s3.ID)
	wantErr(t, err, store.ErrNotFound, "get a snapshot through another stream")
	_, err = s.LatestSnapshot(ctx, tenant, other)
	wantErr(t, err, store.ErrNotFound, "latest snapshot of another stream")

	wantErr(t, s.PutSnapshot(ctx, newSnapshot(syncproto.NewTenantID(), stream, 1)), store.ErrNotFound, "put a snapshot for an unknown tenant")
}

// checkSnapshot requires want to be stored, and the latest if latest.
func checkSnapshot(t *testing.T, s store.Store, want store.Snapshot, latest bool) {
	t.Helper()
	ctx := context.Background()
	same := func(what string, got store.Snapshot) {
		t.Helper()
		if got.Tenant != want.Tenant || got.Stream != want.Stream || got.Seq != want.Seq || got.ID != want.ID || !bytes.Equal(got.Raw, want.Raw) {
			t.Fatalf("%s: got snapshot at seq %d id %v, want seq %d id %v with the bytes put", what, got.Seq, got.ID, want.Seq, want.ID)
		}
	}
	got, err := s.GetSnapshot(ctx, want.Tenant, want.Stream, want.ID)
	noErr(t, err, "get snapshot")
	same("get snapshot", got)
	if latest {
		got, err := s.LatestSnapshot(ctx, want.Tenant, want.Stream)
		noErr(t, err, "latest snapshot")
		same("latest snapshot", got)
	}
}

func testPrune(t *testing.T, s store.Store) {
	ctx := context.Background()
	tenant := newChainTenant(t, s)
	stream := syncproto.NewStreamID()
	stored := appendBatches(t, s, tenant, stream, 10)
	snaps := map[syncproto.Seq]store.Snapshot{}
	for _, seq := range []syncproto.Seq{2, 4, 6, 8} {
		snaps[seq] = newSnapshot(tenant, stream, seq)
		require.NoError(t, s.PutSnapshot(ctx, snaps[seq]))
	}
	// Another stream is not touched.
	other := syncproto.NewStreamID()
	appendBatches(t, s, tenant, other, 3)

	noErr(t, s.Prune(ctx, tenant, stream, 6), "prune")
	checkStreamHead(t, s, tenant, stream, 10, 6)
	for _, after := range []syncproto.Seq{0, 1, 5} {
		_, err := s.Batches(ctx, tenant, stream, after, 10)
		wantErr(t, err, store.ErrPruned, "batches below the pruned point")
	}
	got, err := s.Batches(ctx, tenant, stream, 6, 0)
	noErr(t, err, "batches from the pruned point")
	checkSeqs(t, "batches from the pruned point", got, seqRange(7, 10))
	for _, seq := range []syncproto.Seq{2, 4} {
		_, err := s.GetSnapshot(ctx, tenant, stream, snaps[seq].ID)
		wantErr(t, err, store.ErrNotFound, "get a snapshot older than the pruned point")
	}
	checkSnapshot(t, s, snaps[6], false)
	checkSnapshot(t, s, snaps[8], true)

	// Lower or equal: a no-op.
	noErr(t, s.Prune(ctx, tenant, stream, 4), "prune below the pruned point")
	noErr(t, s.Prune(ctx, tenant, stream, 6), "prune to the pruned point")
	checkStreamHead(t, s, tenant, stream, 10, 6)
	checkSnapshot(t, s, snaps[6], false)

	wantErr(t, s.Prune(ctx, tenant, stream, 11), store.ErrConflict, "prune past the head")
	checkStreamHead(t, s, tenant, stream, 10, 6)

	// Pruned delta ids stay taken; appending goes on from the head.
	reuse := newBatch(tenant, stream, 0)
	reuse.DeltaIDs = stored[0].DeltaIDs
	_, _, err = s.AppendBatch(ctx, reuse, 0, t0)
	wantErr(t, err, store.ErrConflict, "append reusing a pruned delta id")
	next := appendBatches(t, s, tenant, stream, 1)
	if next[0].Seq != 11 {
		t.Fatalf("append after prune: got seq %d, want 11", next[0].Seq)
	}

	snaps[11] = newSnapshot(tenant, stream, 11)
	require.NoError(t, s.PutSnapshot(ctx, snaps[11]))
	noErr(t, s.Prune(ctx, tenant, stream, 11), "prune to the head")
	checkStreamHead(t, s, tenant, stream, 11, 11)
	got, err = s.Batches(ctx, tenant, stream, 11, 10)
	noErr(t, err, "batches at the head after pruning everything")
	if len(got) != 0 {
		t.Fatalf("batches after pruning everything: got %d, want 0", len(got))
	}
	for _, seq := range []syncproto.Seq{6, 8} {
		_, err := s.GetSnapshot(ctx, tenant, stream, snaps[seq].ID)
		wantErr(t, err, store.ErrNotFound, "get a snapshot older than the pruned point")
	}
	checkSnapshot(t, s, snaps[11], true)

	checkStreamHead(t, s, tenant, other, 3, 0)
	got, err = s.Batches(ctx, tenant, other, 0, 0)
	noErr(t, err, "batches of another stream")
	checkSeqs(t, "batches of another stream", got, seqRange(1, 3))
}

func testPurgeStream(t *testing.T, s store.Store) {
	ctx := context.Background()
	tenant := newChainTenant(t, s)
	stream := syncproto.NewStreamID()
	other := syncproto.NewStreamID()
	appendBatches(t, s, tenant, stream, 4)
	appendBatches(t, s, tenant, other, 2)
	snap := newSnapshot(tenant, stream, 4)
	require.NoError(t, s.PutSnapshot(ctx, snap))
	otherSnap := newSnapshot(tenant, other, 2)
	require.NoError(t, s.PutSnapshot(ctx, otherSnap))
	mine := store.Secret{Tenant: tenant, Stream: stream, Kind: "wrapped", Name: "k1", KEKGen: 1, Sealed: randBytes(32)}
	theirs := store.Secret{Tenant: tenant, Stream: other, Kind: "wrapped", Name: "k2", KEKGen: 1, Sealed: randBytes(32)}
	nobody := store.Secret{Tenant: tenant, Kind: "release", Name: "k3", KEKGen: 1, Sealed: randBytes(32)}
	for _, sec := range []store.Secret{mine, theirs, nobody} {
		require.NoError(t, s.PutSecret(ctx, sec))
	}

	noErr(t, s.PurgeStream(ctx, tenant, stream), "purge stream")
	checkStreamHead(t, s, tenant, stream, 4, 4)
	_, err := s.Batches(ctx, tenant, stream, 0, 0)
	wantErr(t, err, store.ErrPruned, "batches of a purged stream")
	got, err := s.Batches(ctx, tenant, stream, 4, 0)
	noErr(t, err, "batches at the head of a purged stream")
	if len(got) != 0 {
		t.Fatalf("batches of a purged stream: got %d, want 0", len(got))
	}
	_, err = s.LatestSnapshot(ctx, tenant, stream)
	wantErr(t, err, store.ErrNotFound, "latest snapshot of a purged stream")
	_, err = s.GetSnapshot(ctx, tenant, stream, snap.ID)
	wantErr(t, err, store.ErrNotFound, "get snapshot of a purged stream")
	_, err = s.GetSecret(ctx, tenant, mine.Kind, mine.Name)
	wantErr(t, err, store.ErrNotFound, "get secret of a purged stream")
	for _, sec := range []store.Secret{theirs, nobody} {
		got, err := s.GetSecret(ctx, tenant, sec.Kind, sec.Name)
		noErr(t, err, "get secret of another stream")
		checkSecret(t, "secret of another stream", got, sec)
	}
	checkStreamHead(t, s, tenant, other, 2, 0)
	checkSnapshot(t, s, otherSnap, true)

	// Sequence numbers are never handed out twice.
	next := appendBatches(t, s, tenant, stream, 1)
	if next[0].Seq != 5 {
		t.Fatalf("append after purge: got seq %d, want 5", next[0].Seq)
	}
	noErr(t, s.PurgeStream(ctx, tenant, syncproto.NewStreamID()), "purge an unknown stream")
}

func testSubscribe(t *testing.T, s store.Store) {
	ctx := context.Background()
	tenant := newChainTenant(t, s)
	stream := syncproto.NewStreamID()

	type key struct {
		tenant syncproto.TenantID
		stream syncproto.StreamID
	}
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan key, 1000)
	var calls atomic.Int64
	noErr(t, s.Subscribe(subCtx, func(tenant syncproto.TenantID, stream syncproto.StreamID) {
		calls.Add(1)
		select {
		case got <- key{tenant, stream}:
		default:
		}
	}), "subscribe")

	want := key{tenant, stream}
	waitFor := func(what string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case k := <-got:
				if k == want {
					return
				}
			case <-timeout:
				t.Fatalf("%s: got no call for %v/%v within 10s, want one", what, want.tenant, want.stream)
			}
		}
	}
	appendBatches(t, s, tenant, stream, 1)
	waitFor("subscribe after append")
	appendBatches(t, s, tenant, stream, 1)
	waitFor("subscribe after a second append")

	// Once ctx ends, fn is soon called no more: an append goes unheard.
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		before := calls.Load()
		appendBatches(t, s, tenant, stream, 1)
		time.Sleep(200 * time.Millisecond)
		if calls.Load() == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls after the subscription ended: got calls 5s on, want none")
		}
	}
}
