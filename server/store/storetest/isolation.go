package storetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// testTenantIsolation fills tenant A, then uses every method through
// tenant B with A's stream, secret, alarm, device and request ids: B sees
// nothing of A, and B's writes leave A as it was.
func testTenantIsolation(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b := newChainTenant(t, s), newChainTenant(t, s)
	stream := syncproto.NewStreamID()
	dev := syncproto.NewDeviceID()
	req := syncproto.NewRequestID()
	alarm := syncproto.NewAlarmID()

	aStatements, err := s.Statements(ctx, a, 0, 0)
	require.NoError(t, err)
	aBatches := appendBatches(t, s, a, stream, 3)
	aSnap := newSnapshot(a, stream, 2)
	require.NoError(t, s.PutSnapshot(ctx, aSnap))
	aSecret := store.Secret{Tenant: a, Stream: stream, Kind: "wrapped", Name: "k", KEKGen: 1, Sealed: randBytes(32)}
	require.NoError(t, s.PutSecret(ctx, aSecret))
	aEnv := store.Envelope{Tenant: a, Alarm: alarm, SecretHash: randHash(), Outer: randBytes(64), SealedAt: t0}
	require.NoError(t, s.PutEnvelope(ctx, aEnv))
	_, err = s.BumpTokenVersion(ctx, a, dev)
	require.NoError(t, err)
	day := time.Date(2031, 3, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, s.TouchDevice(ctx, a, dev, day))
	aRaw := randBytes(64)
	require.NoError(t, s.PutEnrolment(ctx, a, req, aRaw, t0.Add(time.Hour)))

	// Reads through B.
	bStatements, err := s.Statements(ctx, b, 0, 0)
	noErr(t, err, "statements of B")
	if len(bStatements) != 1 || bStatements[0].Hash == aStatements[0].Hash {
		t.Fatalf("statements of B: got %d (first shared with A: %v), want B's own genesis only",
			len(bStatements), len(bStatements) > 0 && bStatements[0].Hash == aStatements[0].Hash)
	}
	checkStreamHead(t, s, b, stream, 0, 0)
	got, err := s.Batches(ctx, b, stream, 0, 0)
	noErr(t, err, "batches of A's stream through B")
	if len(got) != 0 {
		t.Fatalf("batches of A's stream through B: got %d, want 0", len(got))
	}
	_, err = s.LatestSnapshot(ctx, b, stream)
	wantErr(t, err, store.ErrNotFound, "latest snapshot of A's stream through B")
	_, err = s.GetSnapshot(ctx, b, stream, aSnap.ID)
	wantErr(t, err, store.ErrNotFound, "A's snapshot through B")
	_, err = s.GetSecret(ctx, b, aSecret.Kind, aSecret.Name)
	wantErr(t, err, store.ErrNotFound, "A's secret through B")
	list, err := s.ListSecrets(ctx, b, aSecret.Kind, "")
	noErr(t, err, "list secrets of B")
	if len(list) != 0 {
		t.Fatalf("list secrets of B: got %d, want 0", len(list))
	}
	_, err = s.GetEnvelope(ctx, b, alarm)
	wantErr(t, err, store.ErrNotFound, "A's envelope through B")
	_, _, err = s.Release(ctx, b, alarm, randHash(), randBytes(8), t0)
	wantErr(t, err, store.ErrNotFound, "release A's envelope through B")
	wantErr(t, s.SetReleasePos(ctx, b, alarm, 4), store.ErrNotFound, "set release pos of A's envelope through B")
	v, err := s.TokenVersion(ctx, b, dev)
	noErr(t, err, "token version through B")
	if v != 0 {
		t.Fatalf("token version of A's device through B: got %d, want 0", v)
	}
	seen, err := s.LastSeen(ctx, b)
	noErr(t, err, "last seen of B")
	if len(seen) != 0 {
		t.Fatalf("last seen of B: got %v, want none", seen)
	}
	_, err = s.GetEnrolment(ctx, b, req, t0)
	wantErr(t, err, store.ErrNotFound, "A's enrolment through B")

	// Writes through B, with A's ids.
	same := withoutStoreFields(aBatches[0])
	same.Tenant = b
	stored, dup, err := s.AppendBatch(ctx, same, 0, t0)
	noErr(t, err, "append A's batch to B")
	if dup || stored.Seq != 1 || stored.Tenant != b {
		t.Fatalf("append A's batch to B: got dup=%v seq %d tenant %v, want a new batch at 1 in B", dup, stored.Seq, stored.Tenant)
	}
	require.NoError(t, s.Prune(ctx, b, stream, 1))
	require.NoError(t, s.PurgeStream(ctx, b, stream))
	require.NoError(t, s.DeleteSecret(ctx, b, aSecret.Kind, aSecret.Name))
	bSecret := aSecret
	bSecret.Tenant, bSecret.Sealed = b, randBytes(32)
	require.NoError(t, s.PutSecret(ctx, bSecret))
	bEnv := aEnv
	bEnv.Tenant, bEnv.Outer = b, randBytes(64)
	require.NoError(t, s.PutEnvelope(ctx, bEnv))
	_, _, err = s.Release(ctx, b, alarm, randHash(), randBytes(8), t0)
	require.NoError(t, err)
	require.NoError(t, s.SetReleasePos(ctx, b, alarm, 4))
	_, err = s.BumpTokenVersion(ctx, b, dev)
	require.NoError(t, err)
	require.NoError(t, s.TouchDevice(ctx, b, dev, day.AddDate(0, 0, 5)))
	require.NoError(t, s.DeleteEnrolment(ctx, b, req))
	require.NoError(t, s.PutEnrolment(ctx, b, req, randBytes(64), t0.Add(time.Hour)))
	appendStatements(t, s, b, 1)

	// A is as it was.
	head, err := s.ChainHead(ctx, a)
	noErr(t, err, "chain head of A")
	if head.Pos != 0 || head.Hash != aStatements[0].Hash {
		t.Fatalf("chain head of A: got %v, want {0 %v}", head, aStatements[0].Hash)
	}
	checkStreamHead(t, s, a, stream, 3, 0)
	all, err := s.Batches(ctx, a, stream, 0, 0)
	noErr(t, err, "batches of A")
	if len(all) != len(aBatches) {
		t.Fatalf("batches of A: got %d, want %d", len(all), len(aBatches))
	}
	for i := range all {
		checkBatch(t, "batch of A", all[i], aBatches[i])
	}
	checkSnapshot(t, s, aSnap, true)
	sec, err := s.GetSecret(ctx, a, aSecret.Kind, aSecret.Name)
	noErr(t, err, "secret of A")
	checkSecret(t, "secret of A", sec, aSecret)
	env, err := s.GetEnvelope(ctx, a, alarm)
	noErr(t, err, "envelope of A")
	checkEnvelope(t, "envelope of A", env, store.Envelope{Tenant: a, Alarm: alarm, SecretHash: aEnv.SecretHash, Outer: aEnv.Outer, SealedAt: ms(t0), Generation: 1})
	v, err = s.TokenVersion(ctx, a, dev)
	noErr(t, err, "token version of A")
	if v != 1 {
		t.Fatalf("token version of A: got %d, want 1", v)
	}
	seen, err = s.LastSeen(ctx, a)
	noErr(t, err, "last seen of A")
	if len(seen) != 1 || !seen[dev].Equal(day) {
		t.Fatalf("last seen of A: got %v, want %v: %v", seen, dev, day)
	}
	raw, err := s.GetEnrolment(ctx, a, req, t0)
	noErr(t, err, "enrolment of A")
	if !bytes.Equal(raw, aRaw) {
		t.Fatalf("enrolment of A: got %d bytes, want the %d bytes put", len(raw), len(aRaw))
	}
}
