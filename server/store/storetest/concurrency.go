package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

const (
	concurrentWriters = 50
	batchesPerWriter  = 4
	chainMoves        = 5
)

func testConcurrentAppendOneStream(t *testing.T, s store.Store) {
	runConcurrentAppends(t, []store.Store{s}, 1)
}

func testConcurrentAppendStreams(t *testing.T, s store.Store) {
	runConcurrentAppends(t, []store.Store{s}, 5)
}

// runConcurrentAppends has concurrentWriters goroutines, spread over the
// stores and streams, each append batchesPerWriter batches and pull its
// stream from its own cursor after each one, while another goroutine moves
// the chain head so appends race with it and retry. Every pull must be
// gapless and in order; at the end every stream must hold exactly the
// batches appended, numbered 1..n.
func runConcurrentAppends(t *testing.T, stores []store.Store, nstreams int) {
	ctx := context.Background()
	tenant := newChainTenant(t, stores[0])
	streams := make([]syncproto.StreamID, nstreams)
	for i := range streams {
		streams[i] = syncproto.NewStreamID()
	}

	var (
		mu       sync.Mutex
		appended = map[syncproto.StreamID][]store.Batch{}
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := stores[len(stores)-1]
		for i := 0; i < chainMoves; i++ {
			head, err := s.ChainHead(ctx, tenant)
			if err != nil {
				t.Errorf("chain head: got error %v, want none", err)
				return
			}
			if err := s.AppendStatement(ctx, tenant, newStatement(head.Pos+1)); err != nil {
				t.Errorf("append statement: got error %v, want none", err)
				return
			}
		}
	}()
	for w := 0; w < concurrentWriters; w++ {
		s := stores[w%len(stores)]
		stream := streams[w%nstreams]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cursor, last syncproto.Seq
			for i := 0; i < batchesPerWriter; i++ {
				stored, err := appendRetrying(ctx, s, newBatch(tenant, stream, 3))
				if err != nil {
					t.Errorf("append batch: got error %v, want none", err)
					return
				}
				if stored.Seq <= last {
					t.Errorf("append batch: got seq %d after %d, want increasing", stored.Seq, last)
					return
				}
				last = stored.Seq
				mu.Lock()
				appended[stream] = append(appended[stream], stored)
				mu.Unlock()

				page, err := s.Batches(ctx, tenant, stream, cursor, 7)
				if err != nil {
					t.Errorf("pull: got error %v, want none", err)
					return
				}
				for j, b := range page {
					if want := cursor + syncproto.Seq(j) + 1; b.Seq != want {
						t.Errorf("pull after %d: got seq %d at [%d], want %d", cursor, b.Seq, j, want)
						return
					}
				}
				if len(page) > 0 {
					cursor = page[len(page)-1].Seq
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	for _, stream := range streams {
		want := map[syncproto.Hash]store.Batch{}
		for _, b := range appended[stream] {
			if _, ok := want[b.ID]; ok {
				t.Fatalf("stream %v: batch %v appended twice", stream, b.ID)
			}
			want[b.ID] = b
		}
		for _, s := range stores {
			all, err := s.Batches(ctx, tenant, stream, 0, 0)
			noErr(t, err, "batches after concurrent appends")
			checkSeqs(t, "batches after concurrent appends", all, seqRange(1, syncproto.Seq(len(want))))
			for _, b := range all {
				w, ok := want[b.ID]
				if !ok {
					t.Fatalf("batches after concurrent appends: got batch %v at %d, want only batches appended", b.ID, b.Seq)
				}
				checkBatch(t, "batch after concurrent appends", b, w)
			}
			checkStreamHead(t, s, tenant, stream, syncproto.Seq(len(want)), 0)
		}
	}
	var total int
	for _, bs := range appended {
		total += len(bs)
	}
	if total != concurrentWriters*batchesPerWriter {
		t.Fatalf("batches appended: got %d, want %d", total, concurrentWriters*batchesPerWriter)
	}
	head, err := stores[0].ChainHead(ctx, tenant)
	require.NoError(t, err)
	if head.Pos != chainMoves {
		t.Fatalf("chain head after concurrent appends: got %d, want %d", head.Pos, chainMoves)
	}
}

// appendRetrying appends b against the current chain head, as the relay
// does, re-reading the head when it moved.
func appendRetrying(ctx context.Context, s store.Store, b store.Batch) (store.Batch, error) {
	for range 100 {
		head, err := s.ChainHead(ctx, b.Tenant)
		if err != nil {
			return store.Batch{}, err
		}
		stored, dup, err := s.AppendBatch(ctx, b, head.Pos, t0)
		if errors.Is(err, store.ErrChainMoved) {
			continue
		}
		if err == nil && dup {
			return stored, errors.New("new batch reported as dup")
		}
		return stored, err
	}
	return store.Batch{}, errors.New("chain kept moving")
}

func testConcurrentRelease(t *testing.T, s store.Store) {
	runConcurrentRelease(t, []store.Store{s})
}

// runConcurrentRelease releases one envelope from 20 goroutines with
// distinct nonces, spread over the stores: exactly one wins, and the
// stored record is the winner's.
func runConcurrentRelease(t *testing.T, stores []store.Store) {
	ctx := context.Background()
	tenant := newTenant(t, stores[0])
	alarm := syncproto.NewAlarmID()
	require.NoError(t, stores[0].PutEnvelope(ctx, store.Envelope{Tenant: tenant, Alarm: alarm, SecretHash: randHash(), Outer: randBytes(64), SealedAt: t0}))

	const n = 20
	type result struct {
		nonce syncproto.Hash
		inner []byte
		env   store.Envelope
		retry bool
		err   error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		results[i].nonce, results[i].inner = randHash(), randBytes(32)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			r.env, r.retry, r.err = stores[i%len(stores)].Release(ctx, tenant, alarm, r.nonce, r.inner, t0)
		}()
	}
	wg.Wait()

	winner := -1
	for i, r := range results {
		switch {
		case r.err == nil && r.retry:
			t.Fatalf("concurrent release %d: got retry=true for a fresh nonce, want false", i)
		case r.err == nil && winner >= 0:
			t.Fatalf("concurrent release: got winners %d and %d, want one", winner, i)
		case r.err == nil:
			winner = i
		default:
			wantErr(t, r.err, store.ErrAlreadyReleased, "concurrent release that lost")
		}
	}
	if winner < 0 {
		t.Fatalf("concurrent release: got no winner, want one")
	}
	w := results[winner]
	for _, s := range stores {
		env, err := s.GetEnvelope(ctx, tenant, alarm)
		noErr(t, err, "get envelope after concurrent release")
		if env.NonceHash != w.nonce || !bytes.Equal(env.Inner, w.inner) {
			t.Fatalf("envelope after concurrent release: got nonce %v, want the winner's %v with its inner layer", env.NonceHash, w.nonce)
		}
	}
	// The winner's retry is recognised.
	_, retry, err := stores[len(stores)-1].Release(ctx, tenant, alarm, w.nonce, w.inner, t0)
	noErr(t, err, "winner's retry")
	if !retry {
		t.Fatalf("winner's retry: got retry=false, want true")
	}
}

func testConcurrentSameBatch(t *testing.T, s store.Store) {
	runConcurrentSameBatch(t, []store.Store{s})
}

// runConcurrentSameBatch appends one batch from 20 goroutines at once, as
// retries racing the original would: it is stored once, and every caller
// gets the same record.
func runConcurrentSameBatch(t *testing.T, stores []store.Store) {
	ctx := context.Background()
	tenant := newChainTenant(t, stores[0])
	stream := syncproto.NewStreamID()
	b := newBatch(tenant, stream, 3)

	const n = 20
	type result struct {
		stored store.Batch
		dup    bool
		err    error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			r.stored, r.dup, r.err = stores[i%len(stores)].AppendBatch(ctx, b, 0, t0)
		}()
	}
	wg.Wait()
	var fresh int
	for i, r := range results {
		noErr(t, r.err, "concurrent append of one batch")
		if !r.dup {
			fresh++
		}
		want := b
		want.Seq, want.ReceivedAt = 1, ms(t0)
		checkBatch(t, fmt.Sprintf("concurrent append of one batch [%d]", i), r.stored, want)
	}
	if fresh != 1 {
		t.Fatalf("concurrent append of one batch: got %d callers with dup=false, want 1", fresh)
	}
	for _, s := range stores {
		checkStreamHead(t, s, tenant, stream, 1, 0)
	}
}
