package sqlite_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/server/store/sqlite"
	"github.com/fristed/fristed/server/store/storetest"
	"github.com/fristed/fristed/syncproto"
)

var (
	now       = time.Date(2031, 3, 14, 15, 9, 26, 0, time.UTC)
	farFuture = now.AddDate(1, 0, 0)
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func open(t *testing.T) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "relay.db")
	s, err := sqlite.Open(path)
	require.NoError(t, err, "open store")
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: got error %v, want none", err)
		}
	})
	return s, path
}

func TestStore(t *testing.T) {
	storetest.RunStoreTests(t, func(t *testing.T) store.Store {
		s, _ := open(t)
		return s
	})
}

// TestShared runs two stores on one file, as the relay and a second
// process (fristed-relay invite) would.
func TestShared(t *testing.T) {
	storetest.RunSharedStoreTests(t, func(t *testing.T) (store.Store, store.Store) {
		a, path := open(t)
		b, err := sqlite.Open(path)
		require.NoError(t, err, "open a second store")
		t.Cleanup(func() {
			if err := b.Close(); err != nil {
				t.Errorf("close second store: got error %v, want none", err)
			}
		})
		return a, b
	}, storetest.SharedOptions{LocalSubscribe: true})
}

// TestReopen checks that the schema is applied once and data survives.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "relay.db")
	s, err := sqlite.Open(path)
	require.NoError(t, err)
	tok := syncproto.Hash{1}
	require.NoError(t, s.PutInvite(ctx, tok, farFuture))
	require.NoError(t, s.Close())

	s, err = sqlite.Open(path)
	require.NoError(t, err, "reopen")
	defer s.Close()
	err = s.PutInvite(ctx, tok, farFuture)
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("put invite after reopen: got error %v, want %v", err, store.ErrConflict)
	}
}

// TestDeletionLeavesNoTrace puts secrets, batches, a snapshot and an
// envelope with recognisable random bytes, deletes them through the
// store, and then requires that none of those bytes is left in the
// database file, its WAL or its shared-memory index.
func TestDeletionLeavesNoTrace(t *testing.T) {
	ctx := context.Background()
	s, path := open(t)
	tenant := syncproto.NewTenantID()
	tok := syncproto.Hash{7}
	require.NoError(t, s.PutInvite(ctx, tok, farFuture))
	require.NoError(t, s.ConsumeInvite(ctx, tok, tenant, now))
	genesis := []byte("genesis")
	require.NoError(t, s.AppendStatement(ctx, tenant, store.Statement{Pos: 0, Raw: genesis}))
	stream := syncproto.NewStreamID()

	var marks [][]byte
	mark := func() []byte {
		b := randomBytes(t, 64)
		marks = append(marks, b)
		return b
	}

	// Secrets: deleted one by one, by rewrap, by replacement and by purge.
	secret := store.Secret{Tenant: tenant, Kind: "release", Name: "r1", KEKGen: 1, Sealed: mark()}
	require.NoError(t, s.PutSecret(ctx, secret))
	replaced := store.Secret{Tenant: tenant, Kind: "release", Name: "r2", KEKGen: 1, Sealed: mark()}
	require.NoError(t, s.PutSecret(ctx, replaced))
	rewrapped := store.Secret{Tenant: tenant, Kind: "wrapped", Name: "w1", KEKGen: 1, Sealed: mark()}
	require.NoError(t, s.PutSecret(ctx, rewrapped))
	purged := store.Secret{Tenant: tenant, Stream: stream, Kind: "wrapped", Name: "w2", KEKGen: 2, Sealed: mark()}
	require.NoError(t, s.PutSecret(ctx, purged))
	// In batches (generation 2: the rewrap below leaves them alone):
	// deleted together, and replaced by a batch.
	batchDeleted := []store.Secret{
		{Tenant: tenant, Kind: "wrapped", Name: "b1", KEKGen: 2, Sealed: mark()},
		{Tenant: tenant, Kind: "wrapped", Name: "b2", KEKGen: 2, Sealed: mark()},
	}
	batchReplaced := store.Secret{Tenant: tenant, Kind: "wrapped", Name: "b3", KEKGen: 2, Sealed: mark()}
	require.NoError(t, s.PutSecrets(ctx, append(slices.Clone(batchDeleted), batchReplaced)))

	// Batches and snapshots: some pruned, the rest purged.
	for i := 0; i < 4; i++ {
		raw := mark()
		b := store.Batch{Tenant: tenant, Stream: stream, ID: syncproto.Hash{byte(i + 1)}, Epoch: 1, Raw: raw}
		_, _, err := s.AppendBatch(ctx, b, 0, now)
		require.NoError(t, err)
	}
	require.NoError(t, s.PutSnapshot(ctx, store.Snapshot{Tenant: tenant, Stream: stream, Seq: 1, ID: syncproto.Hash{1}, Raw: mark()}))
	require.NoError(t, s.PutSnapshot(ctx, store.Snapshot{Tenant: tenant, Stream: stream, Seq: 2, ID: syncproto.Hash{2}, Raw: mark()}))

	// Envelopes: outer replaced by a re-seal, inner forgotten.
	alarm := syncproto.NewAlarmID()
	require.NoError(t, s.PutEnvelope(ctx, store.Envelope{Tenant: tenant, Alarm: alarm, Outer: mark(), SealedAt: now}))
	_, _, err := s.Release(ctx, tenant, alarm, syncproto.Hash{9}, mark(), now)
	require.NoError(t, err)

	// Everything is on disk now.
	if found := scan(t, path, marks); len(found) != len(marks) {
		t.Fatalf("marks on disk before deleting: got %d of %d, want all (the scan must see live data)", len(found), len(marks))
	}

	require.NoError(t, s.DeleteSecret(ctx, tenant, secret.Kind, secret.Name))
	n, err := s.DeleteSecrets(ctx, tenant, "wrapped", []string{"b1", "b2"})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	batchReplaced.Sealed = randomBytes(t, 64)
	require.NoError(t, s.PutSecrets(ctx, []store.Secret{batchReplaced}))
	replaced.Sealed = randomBytes(t, 64)
	require.NoError(t, s.PutSecret(ctx, replaced))
	_, err = s.RewrapSecrets(ctx, 2, func(store.Secret) ([]byte, error) { return randomBytes(t, 64), nil })
	require.NoError(t, err)
	require.NoError(t, s.Prune(ctx, tenant, stream, 2))
	require.NoError(t, s.PurgeStream(ctx, tenant, stream))
	keptOuter := randomBytes(t, 64)
	require.NoError(t, s.PutEnvelope(ctx, store.Envelope{Tenant: tenant, Alarm: alarm, Outer: keptOuter, SealedAt: now}))
	_, _, err = s.Release(ctx, tenant, alarm, syncproto.Hash{9}, mark(), now)
	require.NoError(t, err)
	require.NoError(t, s.ForgetInner(ctx, now.Add(time.Millisecond)))

	if left := scan(t, path, marks); len(left) != 0 {
		t.Fatalf("deleted bytes left on disk: got %v, want none", left)
	}
	// The store still holds what it should, so the scan can see bytes.
	if left := scan(t, path, [][]byte{keptOuter}); len(left) != 1 {
		t.Fatalf("kept outer layer on disk: got %d hits, want 1 (the scan must see live data)", len(left))
	}
}

// scan returns which marks are in the database file, its WAL or its
// shared-memory index, as "file: mark i".
func scan(t *testing.T, path string, marks [][]byte) []string {
	t.Helper()
	var found []string
	seen := map[int]bool{}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		require.NoError(t, err)
		for i, m := range marks {
			if bytes.Contains(b, m) && !seen[i] {
				seen[i] = true
				found = append(found, fmt.Sprintf("%s: mark %d", filepath.Base(f), i))
			}
		}
	}
	slices.Sort(found)
	return found
}
