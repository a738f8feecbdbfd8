package server

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/server/store/sqlite"
	"github.com/fristed/fristed/syncproto"
)

func kekStore(t *testing.T) (store.Store, syncproto.TenantID) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "relay.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	tid := syncproto.NewTenantID()
	inv := InviteHash("kek-test")
	require.NoError(t, st.PutInvite(ctx, inv, time.Now().Add(time.Hour)))
	require.NoError(t, st.ConsumeInvite(ctx, inv, tid, time.Now()))
	return st, tid
}

func secret(tid syncproto.TenantID, name string) store.Secret {
	return store.Secret{Tenant: tid, Kind: KindRelease, Name: name}
}

func getSecret(t *testing.T, st store.Store, tid syncproto.TenantID, name string) store.Secret {
	t.Helper()
	s, err := st.GetSecret(context.Background(), tid, KindRelease, name)
	require.NoError(t, err)
	return s
}

func TestKeystoreDestroyRotates(t *testing.T) {
	ctx := context.Background()
	st, tid := kekStore(t)
	dir := filepath.Join(t.TempDir(), "kek")
	k, err := OpenKeystore(dir)
	require.NoError(t, err)
	fi, err := os.Stat(filepath.Join(dir, kekFile(1)))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	require.NoError(t, k.Put(ctx, st, secret(tid, "a"), []byte("identity a")))
	require.NoError(t, k.Put(ctx, st, secret(tid, "b"), []byte("identity b")))
	sa := getSecret(t, st, tid, "a")
	require.Equal(t, uint32(1), sa.KEKGen)
	require.False(t, bytes.Contains(sa.Sealed, []byte("identity a")), "sealed form holds the plaintext")
	plain, err := k.Open(sa)
	require.NoError(t, err)
	require.Equal(t, "identity a", string(plain))

	// Moved to another name, it does not open.
	moved := sa
	moved.Name = "b"
	_, err = k.Open(moved)
	require.ErrorIs(t, err, ErrSecretGone)

	require.NoError(t, k.Destroy(ctx, st, tid, KindRelease, "a"))
	_, err = st.GetSecret(ctx, tid, KindRelease, "a")
	require.ErrorIs(t, err, store.ErrNotFound)
	gens, err := k.Generations()
	require.NoError(t, err)
	require.Equal(t, []uint32{2}, gens, "generations after a destroy")
	_, err = os.Stat(filepath.Join(dir, kekFile(1)))
	require.True(t, errors.Is(err, os.ErrNotExist), "old generation file: %v", err)
	// The old sealed form no longer opens; b was rewrapped and does.
	_, err = k.Open(sa)
	require.ErrorIs(t, err, ErrSecretGone)
	sb := getSecret(t, st, tid, "b")
	require.Equal(t, uint32(2), sb.KEKGen)
	plain, err = k.Open(sb)
	require.NoError(t, err)
	require.Equal(t, "identity b", string(plain))
}

// TestKeystoreShared: two keystores on one directory, as two relay
// processes: each picks up the other's rotation.
func TestKeystoreShared(t *testing.T) {
	ctx := context.Background()
	st, tid := kekStore(t)
	dir := filepath.Join(t.TempDir(), "kek")
	k1, err := OpenKeystore(dir)
	require.NoError(t, err)
	k2, err := OpenKeystore(dir)
	require.NoError(t, err)
	require.NoError(t, k1.Put(ctx, st, secret(tid, "a"), []byte("a")))
	require.NoError(t, k1.Rotate(ctx, st))
	// k2 seals under the generation k1 made, and opens what k1 rewrapped.
	require.NoError(t, k2.Put(ctx, st, secret(tid, "b"), []byte("b")))
	require.Equal(t, uint32(2), getSecret(t, st, tid, "b").KEKGen)
	plain, err := k2.Open(getSecret(t, st, tid, "a"))
	require.NoError(t, err)
	require.Equal(t, "a", string(plain))
	require.Equal(t, uint32(2), k2.Generation())
}

// TestKeystoreRestoredSecret: a secret from a backup older than the last
// rotation is unreadable, and the next rotation overwrites it.
func TestKeystoreRestoredSecret(t *testing.T) {
	ctx := context.Background()
	st, tid := kekStore(t)
	k, err := OpenKeystore(filepath.Join(t.TempDir(), "kek"))
	require.NoError(t, err)
	require.NoError(t, k.Put(ctx, st, secret(tid, "a"), []byte("a")))
	old := getSecret(t, st, tid, "a")
	require.NoError(t, k.Destroy(ctx, st, tid, KindRelease, "a"))
	// "Restore" the row as a backup would have it.
	require.NoError(t, st.PutSecret(ctx, old))
	_, err = k.Open(getSecret(t, st, tid, "a"))
	require.ErrorIs(t, err, ErrSecretGone)
	require.NoError(t, k.Rotate(ctx, st))
	s := getSecret(t, st, tid, "a")
	require.Empty(t, s.Sealed, "restored secret after the next rotation")
	_, err = k.Open(s)
	require.ErrorIs(t, err, ErrSecretGone)
}

// TestKeystoreFinish: a rotation cut short leaves two generations; Finish
// completes it.
func TestKeystoreFinish(t *testing.T) {
	ctx := context.Background()
	st, tid := kekStore(t)
	dir := filepath.Join(t.TempDir(), "kek")
	k, err := OpenKeystore(dir)
	require.NoError(t, err)
	require.NoError(t, k.Put(ctx, st, secret(tid, "a"), []byte("a")))
	k.mu.Lock()
	require.NoError(t, k.addGenerationLocked(2)) // the crash came after the new file
	k.mu.Unlock()
	k2, err := OpenKeystore(dir)
	require.NoError(t, err)
	require.NoError(t, k2.Finish(ctx, st))
	gens, err := k2.Generations()
	require.NoError(t, err)
	require.Equal(t, []uint32{3}, gens)
	plain, err := k2.Open(getSecret(t, st, tid, "a"))
	require.NoError(t, err)
	require.Equal(t, "a", string(plain))
}
