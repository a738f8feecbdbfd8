package replica

import (
	"encoding/binary"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/syncproto"
)

// device is one test device: a replica, an id and a clock it ticks for
// every edit it makes.
type device struct {
	id    syncproto.DeviceID
	clock syncproto.HLC
	rep   *Replica
}

func newReplica(t testing.TB) *Replica {
	t.Helper()
	r, err := New()
	require.NoError(t, err, "new replica")
	t.Cleanup(func() { r.Close() })
	return r
}

// newDevice makes a device whose id starts with the byte n, so ties on the
// clock break in the order of n.
func newDevice(t testing.TB, n byte) *device {
	t.Helper()
	d := &device{rep: newReplica(t)}
	d.id[0] = n
	d.clock.WallMS = 1_714_555_800_000
	return d
}

// seqIDs returns an id source that counts, tagged with tag, so tests get
// the same ids on every run.
func seqIDs(tag byte) func() syncproto.DeltaID {
	var n uint64
	return func() syncproto.DeltaID {
		n++
		var id syncproto.DeltaID
		id[0] = tag
		binary.BigEndian.PutUint64(id[8:], n)
		return id
	}
}

var deltaSeq atomic.Uint64

func nextDeltaID() syncproto.DeltaID {
	var id syncproto.DeltaID
	id[0] = 0xdd
	binary.BigEndian.PutUint64(id[8:], deltaSeq.Add(1))
	return id
}

// edit wraps ops in a delta on the device's clock, applies it locally and
// returns it for delivery elsewhere.
func (d *device) edit(t testing.TB, stream syncproto.StreamID, ops []syncproto.Op, err error) *syncproto.Delta {
	t.Helper()
	require.NoError(t, err, "build ops")
	d.clock.Logical++
	dl := &syncproto.Delta{Stream: stream, Author: d.id, ID: nextDeltaID(), Clock: d.clock, Ops: ops}
	require.NoError(t, d.rep.Apply(dl), "apply local edit")
	return dl
}

func (d *device) set(t testing.TB, stream syncproto.StreamID, kind string, rec syncproto.DeltaID, fields map[string]string) *syncproto.Delta {
	t.Helper()
	ops, err := d.rep.SetOps(stream, kind, rec, fields)
	return d.edit(t, stream, ops, err)
}

func (d *device) setResident(t testing.TB, stream syncproto.StreamID, fields map[string]string) *syncproto.Delta {
	t.Helper()
	return d.set(t, stream, KindResident, syncproto.DeltaID{}, fields)
}

func (d *device) add(t testing.TB, stream syncproto.StreamID, kind string, fields map[string]string) (syncproto.DeltaID, *syncproto.Delta) {
	t.Helper()
	id, ops, err := d.rep.NewRecordOps(stream, kind, fields)
	return id, d.edit(t, stream, ops, err)
}

func (d *device) remove(t testing.TB, stream syncproto.StreamID, kind string, id syncproto.DeltaID) *syncproto.Delta {
	t.Helper()
	ops, err := d.rep.RemoveOps(stream, kind, id)
	return d.edit(t, stream, ops, err)
}

func (d *device) receive(t testing.TB, deltas ...*syncproto.Delta) {
	t.Helper()
	for _, dl := range deltas {
		require.NoError(t, d.rep.Apply(dl), "apply delta %s", dl.ID)
	}
}

func testStream(n byte) syncproto.StreamID {
	var s syncproto.StreamID
	s[0], s[15] = 0x5e, n
	return s
}

func dump(t testing.TB, r *Replica, s syncproto.StreamID) string {
	t.Helper()
	b, err := r.Dump(s)
	require.NoError(t, err, "dump")
	return string(b)
}

func show(t testing.TB, r *Replica, s syncproto.StreamID, reveal bool) *ResidentView {
	t.Helper()
	v, err := r.Resident(s, reveal)
	require.NoError(t, err, "resident")
	return v
}

// requireSameDump fails unless every replica's dump of s is the same.
func requireSameDump(t testing.TB, s syncproto.StreamID, reps ...*Replica) {
	t.Helper()
	want := dump(t, reps[0], s)
	for i, r := range reps[1:] {
		if got := dump(t, r, s); got != want {
			t.Fatalf("replica %d dump differs:\ngot:\n%s\nwant (replica 0):\n%s", i+1, got, want)
		}
	}
}
