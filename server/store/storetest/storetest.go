// Package storetest is the conformance suite for store.Store: every
// implementation runs RunStoreTests, and those shared between relay
// processes also run RunSharedStoreTests, so the relay can rely on the
// documented contract whichever database an operator picks.
//
// The suite checks the contract, not an implementation: it uses only the
// interface, fixed clocks and random ids, and every subtest starts from an
// empty store.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// RunStoreTests runs the conformance suite. newStore must return a new,
// empty store and close it when the test ends (t.Cleanup); subtests run in
// parallel, each with its own store.
func RunStoreTests(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Invites", testInvites},
		{"Chain", testChain},
		{"ChainRace", testChainRace},
		{"AppendBatch", testAppendBatch},
		{"BatchesPaging", testBatchesPaging},
		{"Snapshots", testSnapshots},
		{"Prune", testPrune},
		{"PurgeStream", testPurgeStream},
		{"Secrets", testSecrets},
		{"RewrapSecrets", testRewrapSecrets},
		{"SecretBatches", testSecretBatches},
		{"Envelopes", testEnvelopes},
		{"Challenges", testChallenges},
		{"TokenVersions", testTokenVersions},
		{"LastSeen", testLastSeen},
		{"Enrolments", testEnrolments},
		{"Subscribe", testSubscribe},
		{"TenantIsolation", testTenantIsolation},
		{"ConcurrentAppendOneStream", testConcurrentAppendOneStream},
		{"ConcurrentAppendStreams", testConcurrentAppendStreams},
		{"ConcurrentSameBatch", testConcurrentSameBatch},
		{"ConcurrentRelease", testConcurrentRelease},
		{"ConcurrentChallenge", testConcurrentChallenge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// t0 is the suite's clock. It is deliberately not on a millisecond
// boundary, so stores must truncate, and not in UTC, so they must convert.
var t0 = time.Date(2031, 3, 14, 15, 9, 26, 535_897_932, time.FixedZone("UTC+1", 3600))

// ms is what a store must give back for a time it was given.
func ms(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

func randBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

func randHash() syncproto.Hash {
	var h syncproto.Hash
	copy(h[:], randBytes(len(h)))
	return h
}

func hashOf(b []byte) syncproto.Hash { return sha256.Sum256(b) }

// newTenant creates a tenant through a fresh invite, with an empty chain.
func newTenant(t *testing.T, s store.Store) syncproto.TenantID {
	t.Helper()
	ctx := context.Background()
	tok := randHash()
	require.NoError(t, s.PutInvite(ctx, tok, t0.Add(time.Hour)), "put invite")
	tenant := syncproto.NewTenantID()
	require.NoError(t, s.ConsumeInvite(ctx, tok, tenant, t0), "consume invite")
	return tenant
}

// newChainTenant creates a tenant whose chain holds its genesis statement,
// so batches can be appended against head 0.
func newChainTenant(t *testing.T, s store.Store) syncproto.TenantID {
	t.Helper()
	tenant := newTenant(t, s)
	appendStatements(t, s, tenant, 1)
	return tenant
}

func newStatement(pos syncproto.ChainPos) store.Statement {
	raw := randBytes(48 + int(pos%7))
	return store.Statement{Pos: pos, Hash: hashOf(raw), Raw: raw}
}

// appendStatements appends n statements after the tenant's current head.
func appendStatements(t *testing.T, s store.Store, tenant syncproto.TenantID, n int) []store.Statement {
	t.Helper()
	ctx := context.Background()
	next := syncproto.ChainPos(0)
	head, err := s.ChainHead(ctx, tenant)
	if err == nil {
		next = head.Pos + 1
	} else {
		require.ErrorIs(t, err, store.ErrNotFound, "chain head")
	}
	var out []store.Statement
	for i := 0; i < n; i++ {
		st := newStatement(next)
		require.NoError(t, s.AppendStatement(ctx, tenant, st), "append statement %d", next)
		out = append(out, st)
		next++
	}
	return out
}

func newBatch(tenant syncproto.TenantID, stream syncproto.StreamID, deltas int) store.Batch {
	raw := randBytes(100 + deltas)
	b := store.Batch{
		Tenant: tenant,
		Stream: stream,
		ID:     hashOf(raw),
		Author: syncproto.NewDeviceID(),
		Epoch:  3,
		Raw:    raw,
	}
	for i := 0; i < deltas; i++ {
		b.DeltaIDs = append(b.DeltaIDs, syncproto.NewDeltaID())
	}
	return b
}

// appendBatches appends n fresh batches against chain head 0.
func appendBatches(t *testing.T, s store.Store, tenant syncproto.TenantID, stream syncproto.StreamID, n int) []store.Batch {
	t.Helper()
	var out []store.Batch
	for i := 0; i < n; i++ {
		stored, dup, err := s.AppendBatch(context.Background(), newBatch(tenant, stream, 2), 0, t0.Add(time.Duration(i)*time.Second))
		require.NoError(t, err, "append batch")
		require.False(t, dup, "append batch: dup")
		out = append(out, stored)
	}
	return out
}

func newSnapshot(tenant syncproto.TenantID, stream syncproto.StreamID, seq syncproto.Seq) store.Snapshot {
	raw := randBytes(64)
	return store.Snapshot{Tenant: tenant, Stream: stream, Seq: seq, ID: hashOf(raw), Raw: raw}
}

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func noErr(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: got error %v, want none", what, err)
	}
}

func checkBatch(t *testing.T, what string, got, want store.Batch) {
	t.Helper()
	if got.Tenant != want.Tenant || got.Stream != want.Stream || got.ID != want.ID ||
		got.Author != want.Author || got.Epoch != want.Epoch {
		t.Fatalf("%s: got batch %v/%v id %v author %v epoch %d, want %v/%v id %v author %v epoch %d", what,
			got.Tenant, got.Stream, got.ID, got.Author, got.Epoch,
			want.Tenant, want.Stream, want.ID, want.Author, want.Epoch)
	}
	if !slices.Equal(got.DeltaIDs, want.DeltaIDs) {
		t.Fatalf("%s: got delta ids %v, want %v", what, got.DeltaIDs, want.DeltaIDs)
	}
	if !bytes.Equal(got.Raw, want.Raw) {
		t.Fatalf("%s: got %d raw bytes, want %d other bytes", what, len(got.Raw), len(want.Raw))
	}
	if got.Seq != want.Seq {
		t.Fatalf("%s: got seq %d, want %d", what, got.Seq, want.Seq)
	}
	checkTime(t, what+": received at", got.ReceivedAt, want.ReceivedAt)
}

// checkTime requires got to be exactly want, in UTC.
func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
	if !got.IsZero() && got.Location() != time.UTC {
		t.Fatalf("%s: got location %v, want UTC", what, got.Location())
	}
}

func seqs(bs []store.Batch) []syncproto.Seq {
	out := make([]syncproto.Seq, len(bs))
	for i, b := range bs {
		out[i] = b.Seq
	}
	return out
}

func seqRange(from, to syncproto.Seq) []syncproto.Seq {
	var out []syncproto.Seq
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func checkSeqs(t *testing.T, what string, bs []store.Batch, want []syncproto.Seq) {
	t.Helper()
	if got := seqs(bs); !slices.Equal(got, want) {
		t.Fatalf("%s: got seqs %v, want %v", what, got, want)
	}
}

func checkStreamHead(t *testing.T, s store.Store, tenant syncproto.TenantID, stream syncproto.StreamID, wantHead, wantPruned syncproto.Seq) {
	t.Helper()
	head, pruned, err := s.StreamHead(context.Background(), tenant, stream)
	noErr(t, err, "stream head")
	if head != wantHead || pruned != wantPruned {
		t.Fatalf("stream head: got head %d pruned %d, want head %d pruned %d", head, pruned, wantHead, wantPruned)
	}
}
