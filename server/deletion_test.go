package server_test

import (
	"bytes"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server/relaytest"
	"github.com/fristed/fristed/syncproto"
)

// TestWrappedKeyDeletion: once a device acknowledges its wrapped key, the
// key's bytes and their sealed form are gone from every file of the data
// directory, and a copy of the database taken before the deletion,
// restored into the relay, does not bring it back: its key-encryption key
// generation no longer exists.
func TestWrappedKeyDeletion(t *testing.T) {
	e := startEnv(t)
	g := newOrg(t, e)
	w, devs, sess := g.worker(2)
	A, a := devs[0], sess[0]
	s, ep := g.stream([]syncproto.WorkerID{w}, devs...)
	key := g.o.Key(s, ep)
	put := func(d *relaytest.Device) *syncproto.WrappedKey {
		wrapped, err := fcrypto.WrapKey(key, d.Box.Recipient().Recipient())
		require.NoError(t, err)
		wk := &syncproto.WrappedKey{Tenant: g.tenant, Stream: s, Epoch: ep, Device: d.ID, Wrapped: wrapped}
		require.NoError(t, g.cs.PutKey(wk.Marshal()))
		return wk
	}
	wkA := put(A)
	wkB := put(devs[1]) // stays: the rotation must carry it over
	keys, err := a.Keys()
	require.NoError(t, err)
	require.Equal(t, [][]byte{wkA.Marshal()}, keys)

	sealed := sealedSecret(t, e.data, A.ID)
	oldGens := kekFiles(t, e.data)

	// A hot copy of the database and its WAL as they are now, kept
	// outside the data directory, as a backup would be.
	backup := t.TempDir()
	copyDB(t, e.data, backup)

	require.NoError(t, a.AckKey(s, ep), "acknowledge")
	keys, err = a.Keys()
	require.NoError(t, err)
	require.Empty(t, keys, "keys after acknowledging")

	secrets := [][]byte{wkA.Wrapped, wkA.Marshal()}
	check := func(when string) {
		t.Helper()
		hits, err := relaytest.FindInDir(e.data, secrets)
		require.NoError(t, err)
		if raw := findRaw(t, e.data, sealed); raw != "" {
			hits = append(hits, raw+": sealed form")
		}
		if len(hits) > 0 {
			t.Errorf("%s: destroyed wrapped key found:\n%s", when, strings.Join(hits, "\n"))
		}
	}
	check("running")
	newGens := kekFiles(t, e.data)
	for _, g := range oldGens {
		require.NotContains(t, newGens, g, "key-encryption key generation that sealed the deleted key")
	}
	// B's copy survived the rotation.
	b := must[*relaytest.Session](t)(e.c.Login(g.tenant, devs[1], e.relayKey))
	keys, err = b.Keys()
	require.NoError(t, err)
	require.Equal(t, [][]byte{wkB.Marshal()}, keys, "the other device's key after rotation")
	e.proc.Stop(t)
	check("stopped")

	// Restore the old database into the relay.
	for _, f := range []string{"relay.db", "relay.db-wal", "relay.db-shm"} {
		os.Remove(filepath.Join(e.data, f))
	}
	copyDB(t, backup, e.data)
	require.NotEmpty(t, findRaw(t, e.data, sealed), "the restored database holds the sealed key")
	e.start()
	a = must[*relaytest.Session](t)(e.c.Login(g.tenant, A, e.relayKey))
	keys, err = a.Keys()
	require.NoError(t, err)
	require.Empty(t, keys, "keys after restoring a database from before the deletion")
	for _, g := range oldGens {
		require.NotContains(t, kekFiles(t, e.data), g)
	}
}

// sealedSecret reads a device's sealed wrapped key from the database.
func sealedSecret(t *testing.T, dir string, dev syncproto.DeviceID) []byte {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "relay.db")+"?mode=ro&_busy_timeout=5000")
	require.NoError(t, err)
	defer db.Close()
	var sealed []byte
	require.NoError(t, db.QueryRow(`SELECT sealed FROM secrets WHERE name LIKE ?`, "%/"+dev.String()).Scan(&sealed))
	require.NotEmpty(t, sealed)
	return sealed
}

func kekFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "kek", "*.kek"))
	require.NoError(t, err)
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

func copyDB(t *testing.T, from, to string) {
	t.Helper()
	for _, f := range []string{"relay.db", "relay.db-wal"} {
		src, err := os.Open(filepath.Join(from, f))
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		dst, err := os.OpenFile(filepath.Join(to, f), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		require.NoError(t, err)
		_, err = io.Copy(dst, src)
		require.NoError(t, err)
		src.Close()
		require.NoError(t, dst.Close())
	}
}

// findRaw returns the first file under dir that contains b, or "".
func findRaw(t *testing.T, dir string, b []byte) string {
	t.Helper()
	var found string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, b) {
			found = path
		}
		return nil
	})
	require.NoError(t, err)
	return found
}
