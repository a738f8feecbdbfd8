package server_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server/relaytest"
	"github.com/fristed/fristed/syncproto"
)

// Canaries: what the relay must never hold in plaintext. Worker and device
// names are labels the product keeps in the encrypted directory stream, so
// they travel in deltas here too.
var (
	canaryResident = []byte("canary-resident-Aisha-Nordvik-5b1f3c")
	canaryAddress  = []byte("canary-secret-address-Storgata-17B-0182-Oslo")
	canaryLog      = []byte("canary-log-she-fears-her-uncle-will-find-her-7731")
	canaryLog2     = []byte("canary-log-second-talk-about-school-plans-9c2e")
	canaryWorker   = []byte("canary-worker-name-Ingrid-Bakke-99a0")
	canaryDevice   = []byte("canary-device-name-Ingrids-laptop-41d7")
)

func TestPlaintextCanarySQLite(t *testing.T) {
	e, canaries := runCanaryWorkload(t)
	// Scan while running (the WAL and shared-memory files exist), then
	// after a graceful stop.
	files, err := filepath.Glob(filepath.Join(e.data, "relay.db*"))
	require.NoError(t, err)
	if len(files) < 2 {
		t.Errorf("relay database files while running: got %v, want the database and its WAL", files)
	}
	if hits := canaryHits(t, e, canaries); len(hits) > 0 {
		t.Errorf("plaintext found while the relay runs:\n%s", strings.Join(hits, "\n"))
	}
	e.proc.Stop(t)
	if hits := canaryHits(t, e, canaries); len(hits) > 0 {
		t.Errorf("plaintext found after the relay stopped:\n%s", strings.Join(hits, "\n"))
	}
	noClientAddress(t, e)
}

func TestPlaintextCanaryPostgres(t *testing.T) {
	e, canaries := runCanaryWorkload(t, withPostgres)
	dump := pgDump(t, e)
	if !bytes.Contains(dump, []byte("COPY "+e.pgSchema+".batches")) {
		t.Fatalf("pg_dump output holds no batches table; got %d bytes", len(dump))
	}
	var hits []string
	for _, h := range relaytest.Find(dump, canaries) {
		hits = append(hits, "pg_dump: "+h)
	}
	e.proc.Stop(t)
	hits = append(hits, canaryHits(t, e, canaries)...)
	if len(hits) > 0 {
		t.Errorf("plaintext found:\n%s", strings.Join(hits, "\n"))
	}
	noClientAddress(t, e)
}

func pgDump(t *testing.T, e *env) []byte {
	t.Helper()
	bin := "/usr/lib/postgresql/15/bin/pg_dump"
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("pg_dump"); err != nil {
			t.Skip("pg_dump not found: PostgreSQL canary scan skipped")
		}
	}
	out, err := exec.Command(bin, "--schema="+e.pgSchema, "--no-owner", e.pgBase).Output()
	require.NoError(t, err, "pg_dump")
	return out
}

// runCanaryWorkload syncs case data holding the canaries through a relay:
// batches, a long-poll, heads, a snapshot and its countersignature (which
// prunes), a wrapped epoch key fetched and acknowledged, an enrolment. It
// checks that the devices themselves can read the canaries back.
func runCanaryWorkload(t *testing.T, opts ...envOpt) (*env, [][]byte) {
	e := startEnv(t, append(opts, withSnapshotKeep("0"))...) // the workload prunes
	g := newOrg(t, e)
	w, devs, sess := g.worker(2)
	a, b := sess[0], sess[1]
	s, ep := g.stream([]syncproto.WorkerID{w}, devs...)
	dir, raw, err := g.o.CreateStream(g.coord, syncproto.StreamDirectory)
	require.NoError(t, err)
	g.post(raw)
	dep, _, raw, err := g.o.StartEpoch(g.coord, dir, g.coord.ID, devs[0].ID, devs[1].ID)
	require.NoError(t, err)
	g.post(raw)
	key := g.o.Key(s, ep)
	canaries := [][]byte{canaryResident, canaryAddress, canaryLog, canaryLog2, canaryWorker, canaryDevice,
		key.Bytes(), g.o.Key(dir, dep).Bytes()}

	// Worker device A writes the case; the coordinator labels the worker
	// and the device in the directory.
	au := &relaytest.Author{Dev: devs[0], Stream: s}
	for _, v := range [][]byte{canaryResident, canaryAddress, canaryLog} {
		_, raw, err := au.Batch(g.o, ep, g.o.Head(), append([]byte("value: "), v...))
		require.NoError(t, err)
		_, _, err = a.Push(s, raw)
		require.NoError(t, err, "push")
	}
	cu := &relaytest.Author{Dev: g.coord, Stream: dir}
	_, raw, err = cu.Batch(g.o, dep, g.o.Head(), canaryWorker, canaryDevice)
	require.NoError(t, err)
	_, _, err = g.cs.Push(dir, raw)
	require.NoError(t, err, "push directory")

	// Device B pulls and opens everything: the canaries are there for
	// the devices.
	pulled, head, err := b.Pull(s, 0, 100, 0)
	require.NoError(t, err)
	require.Len(t, pulled, 3)
	var plain []byte
	for _, p := range pulled {
		bt, err := syncproto.UnmarshalBatch(p.Raw)
		require.NoError(t, err)
		ds, err := syncproto.OpenBatch(bt, key, devs[0].Sign.Public())
		require.NoError(t, err)
		for _, d := range ds {
			plain = append(plain, d.Ops[0].Value...)
		}
		rc, err := syncproto.UnmarshalReceipt(p.Receipt)
		require.NoError(t, err)
		require.NoError(t, rc.Verify(e.relayKey), "receipt")
	}
	for _, c := range [][]byte{canaryResident, canaryAddress, canaryLog} {
		require.True(t, bytes.Contains(plain, c), "device B reads back %q", c)
	}

	// A long-poll wakes when A writes more.
	done := make(chan []relaytest.Pulled, 1)
	go func() {
		p, _, err := b.Pull(s, head, 100, 20*time.Second)
		if err != nil {
			t.Errorf("long-poll: %v", err)
		}
		done <- p
	}()
	time.Sleep(300 * time.Millisecond)
	_, raw, err = au.Batch(g.o, ep, g.o.Head(), canaryLog2)
	require.NoError(t, err)
	_, _, err = a.Push(s, raw)
	require.NoError(t, err)
	select {
	case p := <-done:
		require.Len(t, p, 1, "long-poll batches")
	case <-time.After(15 * time.Second):
		t.Fatal("long-poll did not wake")
	}
	heads, _, err := b.Heads(map[syncproto.StreamID]syncproto.Seq{s: 0}, 0, 0)
	require.NoError(t, err)
	require.Equal(t, syncproto.Seq(4), heads[s].Head)

	// A snapshot of the whole case, countersigned: the relay prunes.
	var all []byte
	for _, c := range canaries[:6] {
		all = append(all, c...)
	}
	content, err := fcrypto.Seal(key, syncproto.SnapshotAD(g.tenant, s, ep, 4), all)
	require.NoError(t, err)
	sn := &syncproto.Snapshot{Tenant: g.tenant, Stream: s, Epoch: ep, Author: devs[0].ID, Seq: 4,
		CreatedMS: uint64(time.Now().UnixMilli()), Content: content}
	require.NoError(t, sn.Sign(devs[0].Sign))
	require.NoError(t, a.PutSnapshot(s, sn.Marshal()), "put snapshot")
	g.post(must[[]byte](t)(g.o.DeviceSign(g.coord, &syncproto.SnapshotCountersigned{Stream: s, Seq: 4, Snapshot: sn.Hash()})))
	_, _, err = b.Pull(s, 0, 100, 0)
	require.Equal(t, syncproto.CodePruned, relaytest.CodeOf(err), "pull before the countersigned snapshot")
	got, seq, err := b.GetSnapshot(s)
	require.NoError(t, err)
	require.Equal(t, sn.Marshal(), got)
	require.Equal(t, syncproto.Seq(4), seq)

	// The epoch key, wrapped to B, fetched and acknowledged.
	wrapped, err := fcrypto.WrapKey(key, devs[1].Box.Recipient().Recipient())
	require.NoError(t, err)
	wk := &syncproto.WrappedKey{Tenant: g.tenant, Stream: s, Epoch: ep, Device: devs[1].ID, Wrapped: wrapped}
	require.NoError(t, g.cs.PutKey(wk.Marshal()))
	keys, err := b.Keys()
	require.NoError(t, err)
	require.Len(t, keys, 1)
	gotWK, err := syncproto.UnmarshalWrappedKey(keys[0])
	require.NoError(t, err)
	k2, err := fcrypto.UnwrapKey(gotWK.Wrapped, syncproto.EpochKeyContext(g.tenant, s, ep),
		key.Commitment(syncproto.EpochKeyContext(g.tenant, s, ep)), devs[1].Box.Identity())
	require.NoError(t, err)
	require.True(t, k2.Equal(key))
	require.NoError(t, b.AckKey(s, ep))

	// A new device asks to join, its name sealed.
	nd, err := relaytest.NewDevice()
	require.NoError(t, err)
	sealKey, err := fcrypto.NewKey()
	require.NoError(t, err)
	sealed, err := fcrypto.Seal(sealKey, nil, canaryDevice)
	require.NoError(t, err)
	enr := &syncproto.Enrolment{Tenant: g.tenant, Request: syncproto.NewRequestID(), SignPub: nd.Sign.Public(),
		Box: nd.Box.Recipient().String(), CreatedMS: uint64(time.Now().UnixMilli()), Sealed: sealed}
	require.NoError(t, enr.Sign(nd.Sign))
	require.NoError(t, e.c.PostEnrolment(g.tenant, enr.Marshal()))
	gotEnr, err := g.cs.GetEnrolment(enr.Request)
	require.NoError(t, err)
	require.Equal(t, enr.Marshal(), gotEnr)
	seen, err := g.cs.LastSeen()
	require.NoError(t, err)
	require.Contains(t, seen, devs[0].ID.String())

	if !bytes.Contains(e.proc.Stderr(), []byte(`"route":"/v1/t/:tenant/streams/:stream/batches"`)) {
		t.Errorf("relay log has no request lines for batches; the log scan would prove nothing")
	}
	return e, canaries
}
