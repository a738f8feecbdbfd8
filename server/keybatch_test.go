package server_test

import (
	"database/sql"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server"
	"github.com/fristed/fristed/server/relaytest"
	"github.com/fristed/fristed/syncproto"
)

// wrapFor wraps the org's key of a stream's epoch to a device.
func (g *org) wrapFor(d *relaytest.Device, s syncproto.StreamID, ep syncproto.Epoch) *syncproto.WrappedKey {
	g.t.Helper()
	wrapped, err := fcrypto.WrapKey(g.o.Key(s, ep), d.Box.Recipient().Recipient())
	require.NoError(g.t, err)
	return &syncproto.WrappedKey{Tenant: g.tenant, Stream: s, Epoch: ep, Device: d.ID, Wrapped: wrapped}
}

// wireRefusal checks that err is the relay's refusal with this status and
// code, and that its message names want (if not empty).
func wireRefusal(t *testing.T, what string, err error, status int, code syncproto.Code, want string) {
	t.Helper()
	var re *relaytest.Error
	require.ErrorAs(t, err, &re, what)
	require.Equal(t, status, re.Status, "%s: %v", what, err)
	require.Equal(t, code, re.Code, "%s: %v", what, err)
	require.Contains(t, re.Message, want, what)
	require.NotContains(t, re.Message, "\n", what)
}

// TestKeyBatchUpload: a batch of wrapped keys is stored whole; a batch
// with one key the single PUT refuses is refused with that key's code
// and index, and stores none of its keys; so are an empty batch, one over
// the limit, a malformed body and a repeated key.
func TestKeyBatchUpload(t *testing.T) {
	e := startEnv(t)
	g := newOrg(t, e)
	w, devs, sess := g.worker(3)
	A, B, C := devs[0], devs[1], devs[2]
	s1, ep1 := g.stream([]syncproto.WorkerID{w}, devs...)
	s2, ep2 := g.stream([]syncproto.WorkerID{w}, devs...)
	// Another tenant on the same relay, with its own stream.
	g2 := newOrg(t, e)
	_, devs2, _ := g2.worker(1)
	s3, ep3 := g2.stream(nil, devs2...)

	wkA1, wkA2, wkB1 := g.wrapFor(A, s1, ep1), g.wrapFor(A, s2, ep2), g.wrapFor(B, s1, ep1)
	require.NoError(t, g.cs.PutKeys(wkA1.Marshal(), wkA2.Marshal(), wkB1.Marshal()))
	keysOf := func(s *relaytest.Session) [][]byte {
		t.Helper()
		keys, err := s.Keys()
		require.NoError(t, err)
		return keys
	}
	require.ElementsMatch(t, [][]byte{wkA1.Marshal(), wkA2.Marshal()}, keysOf(sess[0]))
	require.Equal(t, [][]byte{wkB1.Marshal()}, keysOf(sess[1]))

	// Every refused batch below leads with a good key for C: it must not
	// be stored.
	good := g.wrapFor(C, s1, ep1).Marshal()
	secrets := dbCounts(t, e.data)["secrets"]
	nothingStored := func(what string) {
		t.Helper()
		require.Empty(t, keysOf(sess[2]), "%s: a key of a refused batch was stored", what)
		require.Equal(t, secrets, dbCounts(t, e.data)["secrets"], "%s: secrets stored", what)
	}
	postRaw := func(body string) error {
		_, err := g.cs.Call(http.MethodPost, "/keys/batch", "application/json", []byte(body), nil)
		return err
	}

	over := make([][]byte, server.MaxKeyBatch+1)
	for i := range over {
		over[i] = g.wrapFor(C, s1, ep1).Marshal()
	}
	for _, c := range []struct {
		what   string
		err    error
		status int
		code   syncproto.Code
		msg    string
	}{
		{"empty batch", g.cs.PutKeys(), 400, syncproto.CodeBadRequest, "empty"},
		{"too many keys", g.cs.PutKeys(over...), 413, syncproto.CodeTooLarge, fmt.Sprint(server.MaxKeyBatch)},
		{"malformed JSON", postRaw(`{"keys": [`), 400, syncproto.CodeBadRequest, "JSON"},
		{"keys not a list", postRaw(`{"keys": "abc"}`), 400, syncproto.CodeBadRequest, "JSON"},
		{"malformed base64", postRaw(`{"keys": ["` + b64(good) + `", "%%%"]}`), 400, syncproto.CodeBadRequest, "key 1: malformed base64"},
		{"malformed wrapped key", g.cs.PutKeys(good, good[:len(good)-3]), 400, syncproto.CodeBadRequest, "key 1: wrapped key: malformed"},
		{"the same key twice", g.cs.PutKeys(good, good), 400, syncproto.CodeBadRequest, "key 1: same stream, epoch and device as key 0"},
		{"a key over the single key limit", g.cs.PutKeys(good, make([]byte, 1<<20+4<<10+1)), 413, syncproto.CodeTooLarge, "key 1: over"},
		{"a body over 8 MiB", postRaw(`{"keys": ["` + strings.Repeat("A", 8<<20) + `"]}`), 413, syncproto.CodeTooLarge, ""},
	} {
		wireRefusal(t, c.what, c.err, c.status, c.code, c.msg)
		nothingStored(c.what)
	}

	// Keys the single PUT refuses: the batch refuses them with the same
	// status and code, naming the index.
	otherTenant := g.wrapFor(C, s2, ep2)
	otherTenant.Tenant = g2.tenant
	otherStream := g2.wrapFor(devs2[0], s3, ep3)
	otherStream.Tenant = g.tenant
	unknownEpoch := g.wrapFor(C, s1, ep1)
	unknownEpoch.Epoch = ep1 + 7
	_, outsiders, _ := g.worker(1)
	notAssigned := g.wrapFor(C, s1, ep1)
	notAssigned.Device = outsiders[0].ID
	refused := []struct {
		what   string
		wk     *syncproto.WrappedKey
		status int
		code   syncproto.Code
	}{
		{"another tenant's key", otherTenant, 400, syncproto.CodeBadRequest},
		{"another tenant's stream", otherStream, 404, syncproto.CodeNotFound},
		{"unknown epoch", unknownEpoch, 409, syncproto.CodeUnknownEpoch},
		{"device not in the epoch", notAssigned, 403, syncproto.CodeNotAssigned},
	}
	check := func(what string, wk *syncproto.WrappedKey, status int, code syncproto.Code) {
		t.Helper()
		single := g.cs.PutKey(wk.Marshal())
		var re *relaytest.Error
		require.ErrorAs(t, single, &re, "%s: single PUT", what)
		require.Equal(t, status, re.Status, "%s: single PUT", what)
		require.Equal(t, code, re.Code, "%s: single PUT", what)
		wireRefusal(t, what, g.cs.PutKeys(good, g.wrapFor(B, s2, ep2).Marshal(), wk.Marshal()), status, code, "key 2: "+re.Message)
		nothingStored(what)
		require.Equal(t, [][]byte{wkB1.Marshal()}, keysOf(sess[1]), "%s: B's keys", what)
	}
	for _, c := range refused {
		check(c.what, c.wk, c.status, c.code)
	}

	// A worker laptop may not upload keys.
	wireRefusal(t, "worker laptop", sess[0].PutKeys(good), 403, syncproto.CodeForbidden, "")
	nothingStored("worker laptop")

	// A revoked device: its waiting keys go, and no batch brings one back.
	g.post(must[[]byte](t)(g.o.Revoke(g.coord, A)))
	secrets = dbCounts(t, e.data)["secrets"]
	check("revoked device", wkA1, 403, syncproto.CodeForbidden)

	// The batch left everything as the single PUT would: C's key goes in.
	require.NoError(t, g.cs.PutKeys(good))
	require.Equal(t, [][]byte{good}, keysOf(sess[2]))
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// restoreDB replaces the relay's database with a backup.
func restoreDB(t *testing.T, backup, data string) {
	t.Helper()
	for _, f := range []string{"relay.db", "relay.db-wal", "relay.db-shm"} {
		if err := os.Remove(filepath.Join(data, f)); !os.IsNotExist(err) {
			require.NoError(t, err)
		}
	}
	copyDB(t, backup, data)
}

// TestKeyBatchAckRefusals: a malformed batch acknowledgement destroys
// nothing and does not rotate the KEK.
func TestKeyBatchAckRefusals(t *testing.T) {
	e := startEnv(t)
	g := newOrg(t, e)
	w, devs, sess := g.worker(1)
	s, ep := g.stream([]syncproto.WorkerID{w}, devs...)
	wk := g.wrapFor(devs[0], s, ep)
	require.NoError(t, g.cs.PutKeys(wk.Marshal()))
	a := sess[0]
	gens := kekFiles(t, e.data)
	ackRaw := func(body string) error {
		_, err := a.Call(http.MethodPost, "/keys/ack", "application/json", []byte(body), nil)
		return err
	}
	over := make([]relaytest.KeyRef, server.MaxKeyBatch+1)
	for i := range over {
		over[i] = relaytest.KeyRef{Stream: s, Epoch: syncproto.Epoch(i + 1)}
	}
	ref := fmt.Sprintf(`{"stream": %q, "epoch": %d}`, s, ep)
	for _, c := range []struct {
		what   string
		err    error
		status int
		code   syncproto.Code
		msg    string
	}{
		{"empty", a.AckKeys(), 400, syncproto.CodeBadRequest, "empty"},
		{"too many", a.AckKeys(over...), 413, syncproto.CodeTooLarge, fmt.Sprint(server.MaxKeyBatch)},
		{"malformed JSON", ackRaw(`{"keys": [` + ref), 400, syncproto.CodeBadRequest, "JSON"},
		{"negative epoch", ackRaw(`{"keys": [` + ref + `, {"stream": "` + s.String() + `", "epoch": -1}]}`), 400, syncproto.CodeBadRequest, "JSON"},
		{"malformed stream", ackRaw(`{"keys": [` + ref + `, {"stream": "s_nope", "epoch": 1}]}`), 400, syncproto.CodeBadRequest, "key 1: malformed stream id"},
		{"the same key twice", a.AckKeys(relaytest.KeyRef{Stream: s, Epoch: ep}, relaytest.KeyRef{Stream: s, Epoch: ep}), 400, syncproto.CodeBadRequest, "key 1: same stream and epoch as key 0"},
	} {
		wireRefusal(t, c.what, c.err, c.status, c.code, c.msg)
		keys, err := a.Keys()
		require.NoError(t, err)
		require.Equal(t, [][]byte{wk.Marshal()}, keys, "%s: the key was destroyed", c.what)
		require.Equal(t, gens, kekFiles(t, e.data), "%s: the KEK rotated", c.what)
	}
	// Another device's acknowledgement names its own copies only.
	require.NoError(t, g.cs.AckKeys(relaytest.KeyRef{Stream: s, Epoch: ep}))
	keys, err := a.Keys()
	require.NoError(t, err)
	require.Equal(t, [][]byte{wk.Marshal()}, keys, "another device destroyed this one's key")
}

// TestKeyBatchAckDeletion: one acknowledgement of several keys destroys
// every copy and rotates the KEK once: none of the copies is left in any
// file of the data directory, a backup of the database taken before,
// restored into the relay, brings none back, and copies for another
// device survive. Acknowledging again, or keys never sent, is no error.
func TestKeyBatchAckDeletion(t *testing.T) {
	e := startEnv(t)
	g := newOrg(t, e)
	w, devs, sess := g.worker(2)
	A, a := devs[0], sess[0]
	var acked []*syncproto.WrappedKey
	var refs []relaytest.KeyRef
	var kept [][]byte
	for range 3 {
		s, ep := g.stream([]syncproto.WorkerID{w}, devs...)
		wk := g.wrapFor(A, s, ep)
		acked = append(acked, wk)
		refs = append(refs, relaytest.KeyRef{Stream: s, Epoch: ep})
		kept = append(kept, g.wrapFor(devs[1], s, ep).Marshal())
	}
	var raws [][]byte
	for _, wk := range acked {
		raws = append(raws, wk.Marshal())
	}
	require.NoError(t, g.cs.PutKeys(append(raws, kept...)...))
	keys, err := a.Keys()
	require.NoError(t, err)
	require.ElementsMatch(t, raws, keys)

	sealed := sealedSecrets(t, e.data, A.ID)
	require.Len(t, sealed, len(acked))
	oldGens := kekFiles(t, e.data)
	require.Len(t, oldGens, 1)
	backup := t.TempDir()
	copyDB(t, e.data, backup)

	// Keys never sent in the same acknowledgement are no error.
	require.NoError(t, a.AckKeys(append(refs, relaytest.KeyRef{Stream: refs[0].Stream, Epoch: refs[0].Epoch + 5})...))
	keys, err = a.Keys()
	require.NoError(t, err)
	require.Empty(t, keys, "keys after acknowledging")
	newGens := kekFiles(t, e.data)
	require.Equal(t, []string{nextGen(t, oldGens[0])}, newGens, "one rotation for the whole acknowledgement")

	var secrets [][]byte
	for _, wk := range acked {
		secrets = append(secrets, wk.Wrapped, wk.Marshal())
	}
	check := func(when string) {
		t.Helper()
		hits, err := relaytest.FindInDir(e.data, secrets)
		require.NoError(t, err)
		for _, s := range sealed {
			if raw := findRaw(t, e.data, s); raw != "" {
				hits = append(hits, raw+": sealed form")
			}
		}
		if len(hits) > 0 {
			t.Errorf("%s: destroyed wrapped key found:\n%s", when, strings.Join(hits, "\n"))
		}
	}
	check("running")
	b := must[*relaytest.Session](t)(e.c.Login(g.tenant, devs[1], e.relayKey))
	keys, err = b.Keys()
	require.NoError(t, err)
	require.ElementsMatch(t, kept, keys, "the other device's keys after rotation")

	// Again: idempotent.
	require.NoError(t, a.AckKeys(refs...))
	e.proc.Stop(t)
	check("stopped")

	restoreDB(t, backup, e.data)
	for _, s := range sealed {
		require.NotEmpty(t, findRaw(t, e.data, s), "the restored database holds the sealed key")
	}
	e.start()
	a = must[*relaytest.Session](t)(e.c.Login(g.tenant, A, e.relayKey))
	keys, err = a.Keys()
	require.NoError(t, err)
	require.Empty(t, keys, "keys after restoring a database from before the deletion")
	for _, g := range oldGens {
		require.NotContains(t, kekFiles(t, e.data), g)
	}
}

// nextGen names the KEK file of the generation after the one in name.
func nextGen(t *testing.T, name string) string {
	t.Helper()
	var gen uint32
	_, err := fmt.Sscanf(name, "%010d.kek", &gen)
	require.NoError(t, err)
	return fmt.Sprintf("%010d.kek", gen+1)
}

// sealedSecrets reads every sealed wrapped key of a device from the
// database.
func sealedSecrets(t *testing.T, dir string, dev syncproto.DeviceID) [][]byte {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "relay.db")+"?mode=ro&_busy_timeout=5000")
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query(`SELECT sealed FROM secrets WHERE name LIKE ?`, "%/"+dev.String())
	require.NoError(t, err)
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		require.NoError(t, rows.Scan(&b))
		require.NotEmpty(t, b)
		out = append(out, b)
	}
	require.NoError(t, rows.Err())
	sort.Slice(out, func(i, j int) bool { return string(out[i]) < string(out[j]) })
	return out
}
