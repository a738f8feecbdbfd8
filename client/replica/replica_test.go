package replica

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/syncproto"
)

func load(t testing.TB, b []byte) *Replica {
	t.Helper()
	r, err := Load(b)
	require.NoError(t, err, "load")
	t.Cleanup(func() { r.Close() })
	return r
}

func serialize(t testing.TB, r *Replica) []byte {
	t.Helper()
	b, err := r.Serialize()
	require.NoError(t, err, "serialize")
	return b
}

func TestSerializeLoadRoundTrip(t *testing.T) {
	a, b, _, goal := caseFile(t)
	// Merge state of every sort: a conflict, superseded writes, tombstones.
	da := a.setResident(t, s1, map[string]string{"unit": "Nord"})
	db := b.setResident(t, s1, map[string]string{"unit": "Sør"})
	a.receive(t, db)
	b.receive(t, da)
	logID, _ := a.add(t, s1, KindLog, logFields(a, "to be removed"))
	a.remove(t, s1, KindLog, logID)
	a.remove(t, s1, "goal", goal)
	// The client's own tables travel along.
	_, err := a.rep.DB().Exec(`CREATE TABLE IF NOT EXISTS local_meta (key TEXT PRIMARY KEY, value BLOB)`)
	require.NoError(t, err)
	_, err = a.rep.DB().Exec(`INSERT INTO local_meta VALUES ('cursor', x'0102')`)
	require.NoError(t, err)

	before := dump(t, a.rep, s1)
	r := load(t, serialize(t, a.rep))
	if got := dump(t, r, s1); got != before {
		t.Fatalf("dump after load:\ngot:\n%s\nwant:\n%s", got, before)
	}
	gotView, err := r.Resident(s1, true)
	require.NoError(t, err)
	wantView := show(t, a.rep, s1, true)
	require.Equal(t, wantView, gotView)
	var meta []byte
	require.NoError(t, r.DB().QueryRow(`SELECT value FROM local_meta WHERE key = 'cursor'`).Scan(&meta))
	if !bytes.Equal(meta, []byte{1, 2}) {
		t.Errorf("client table: got %x, want 0102", meta)
	}
	v, err := r.SchemaVersion()
	require.NoError(t, err)
	if v != len(migrations) {
		t.Errorf("schema version: got %d, want %d", v, len(migrations))
	}
}

// A loaded replica keeps growing: SQLite cannot grow a database
// deserialised without the resizeable flag, so Load copies it into one
// that can.
func TestLoadedReplicaGrows(t *testing.T) {
	d := newDevice(t, 1)
	d.setResident(t, s1, map[string]string{"pseudonym": "Ada"})
	d.rep = load(t, serialize(t, d.rep))
	for i := range 200 {
		d.add(t, s1, KindLog, logFields(d, strings.Repeat(fmt.Sprint(i), 500)))
	}
	l, err := d.rep.Log(s1)
	require.NoError(t, err)
	if len(l) != 200 {
		t.Errorf("got %d entries, want 200", len(l))
	}
	load(t, serialize(t, d.rep))
}

func TestLoadRefuses(t *testing.T) {
	plain, err := sql.Open("sqlite3", ":memory:")
	require.NoError(t, err)
	defer plain.Close()
	plain.SetMaxOpenConns(1)
	_, err = plain.Exec(`CREATE TABLE other (x)`)
	require.NoError(t, err)
	other := serializeDB(t, plain)

	r := newReplica(t)
	_, err = r.DB().Exec(fmt.Sprintf(`PRAGMA user_version = %d`, len(migrations)+1))
	require.NoError(t, err)
	newer := serialize(t, r)

	good := serialize(t, newReplica(t))
	for _, tt := range []struct {
		name string
		b    []byte
		want error
	}{
		{"nothing", nil, nil},
		{"garbage", bytes.Repeat([]byte("fristed!"), 512), nil},
		{"truncated", good[:len(good)/2], nil},
		{"another database", other, nil},
		{"a newer schema", newer, ErrSchemaTooNew},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Load(tt.b)
			if err == nil {
				r.Close()
				t.Fatal("got a replica, want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func serializeDB(t *testing.T, db *sql.DB) []byte {
	t.Helper()
	r := &Replica{db: db}
	return serialize(t, r)
}

// Superseded values, removed entries and purged cases are gone from the
// serialised bytes, not just from views.
func TestForgottenDataLeavesTheBytes(t *testing.T) {
	d := newDevice(t, 1)
	s2 := testStream(2)
	d.setResident(t, s1, map[string]string{"pseudonym": "Ada", "secret_address": "Gamleveien 12"})
	d.setResident(t, s1, map[string]string{"secret_address": "Nyveien 3"})
	id, _ := d.add(t, s1, KindLog, logFields(d, "Fortrolig samtale om familien"))
	d.remove(t, s1, KindLog, id)
	d.setResident(t, s2, map[string]string{"pseudonym": "Zainab", "legal_name": "Zainab Purgedottir"})
	for i := range 50 { // enough to spill onto pages of their own
		d.add(t, s2, KindLog, logFields(d, fmt.Sprintf("Purgedottir entry %d %s", i, strings.Repeat("x", 300))))
	}
	require.NoError(t, d.rep.PurgeStream(s2))

	b := serialize(t, d.rep)
	for _, gone := range []string{"Gamleveien", "Fortrolig samtale", "Purgedottir", "Zainab"} {
		if bytes.Contains(b, []byte(gone)) {
			t.Errorf("the serialised replica still holds %q", gone)
		}
	}
	if !bytes.Contains(b, []byte("Nyveien 3")) {
		t.Errorf("the serialised replica lost the current address")
	}
	streams, err := d.rep.Streams()
	require.NoError(t, err)
	if !slices.Equal(streams, []syncproto.StreamID{s1}) {
		t.Errorf("streams after purge: got %v, want [%s]", streams, s1)
	}
	if _, err := d.rep.Resident(s2, false); !errors.Is(err, ErrNotFound) {
		t.Errorf("purged resident: got %v, want %v", err, ErrNotFound)
	}
}

func TestStreams(t *testing.T) {
	d := newDevice(t, 1)
	s2, s3 := testStream(2), testStream(3)
	d.setResident(t, s3, map[string]string{"pseudonym": "C"})
	d.setResident(t, s2, map[string]string{"pseudonym": "B"})
	got, err := d.rep.Streams()
	require.NoError(t, err)
	if want := []syncproto.StreamID{s2, s3}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
