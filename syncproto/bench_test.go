package syncproto

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/stretchr/testify/require"
)

// benchBatch is a batch of 100 deltas of 1 KiB each, the unit the
// end-to-end target is stated in.
func benchDeltas(o *baseOrg) []*Delta {
	ds := make([]*Delta, 100)
	for i := range ds {
		ds[i] = &Delta{Tenant: o.tenant, Stream: o.s, Epoch: 1, Author: o.d1.id, ID: testDeltaID(fmt.Sprint("bench ", i)),
			Clock: HLC{WallMS: 1_767_225_600_000 + uint64(i)},
			Ops:   []Op{{Type: OpAdd, Kind: "log", Record: testDeltaID(fmt.Sprint("entry ", i)), Value: bytes.Repeat([]byte{'x'}, 1024)}}}
	}
	return ds
}

func benchHeader(o *baseOrg) Batch {
	return Batch{Tenant: o.tenant, Stream: o.s, Epoch: 1, Author: o.d1.id, Counter: 1, ChainHead: o.head(), CreatedMS: 1}
}

// BenchmarkSealBatch seals and signs 100 deltas of 1 KiB and encodes the
// batch for the wire.
func BenchmarkSealBatch(b *testing.B) {
	o := newBaseOrg(b)
	ds, hdr, key := benchDeltas(o), benchHeader(o), testEpochKey(b, o.s, 1)
	b.SetBytes(100 * 1024)
	b.ReportAllocs()
	for b.Loop() {
		batch, err := SealBatch(hdr, key, o.d1.sign, ds)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := batch.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenBatch decodes such a batch, verifies its signature and opens
// every delta.
func BenchmarkOpenBatch(b *testing.B) {
	o := newBaseOrg(b)
	key := testEpochKey(b, o.s, 1)
	batch, err := SealBatch(benchHeader(o), key, o.d1.sign, benchDeltas(o))
	require.NoError(b, err)
	raw := mustMarshalBatch(b, batch)
	author := o.d1.sign.Public()
	b.SetBytes(100 * 1024)
	b.ReportAllocs()
	for b.Loop() {
		got, err := UnmarshalBatch(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := OpenBatch(got, key, author); err != nil {
			b.Fatal(err)
		}
	}
}

var benchChain = struct {
	once sync.Once
	org  fcrypto.Fingerprint
	raws [][]byte
}{}

// buildBenchChain makes a chain of n statements in a realistic mix: two
// coordinators, 150 workers with two devices each, and resident streams
// that are created, assigned, keyed, re-assigned and re-keyed, with
// snapshots countersigned, envelopes sealed, devices revoked and cases
// closed along the way.
func buildBenchChain(tb testing.TB, n int) (fcrypto.Fingerprint, [][]byte) {
	o := newTestOrg(tb, "bench")
	c := o.coordinator("coord")
	o.coordinator("coord2")
	type worker struct {
		id   WorkerID
		devs []*testDevice
	}
	var workers []*worker
	for i := 0; i < 150; i++ {
		w := &worker{id: o.worker(c, fmt.Sprint("w", i))}
		for j := 0; j < 2; j++ {
			w.devs = append(w.devs, o.enrol(c, fmt.Sprint("w", i, "d", j), w.id))
		}
		workers = append(workers, w)
	}
	o.stream(c, "directory", StreamDirectory)
	o.stream(c, "audit", StreamAudit)
	coords := o.chain.State().ActiveCoordinators()
	epochFor := func(s StreamID, e Epoch, ws ...*worker) *EpochStarted {
		ids := append([]DeviceID(nil), coords...)
		for _, w := range ws {
			for _, d := range w.devs {
				if o.chain.State().Devices[d.id].Active() {
					ids = append(ids, d.id)
				}
			}
		}
		k := testEpochKey(tb, s, e)
		return &EpochStarted{Stream: s, Epoch: e, Devices: SortDevices(ids), Commitment: Hash(k.Commitment(EpochKeyContext(o.tenant, s, e)))}
	}
	for i := 0; o.chain.Len() < n; i++ {
		s := testStreamID(fmt.Sprint("resident ", i))
		a, b := workers[i%len(workers)], workers[(i*7+3)%len(workers)]
		steps := []Body{&StreamCreated{Stream: s, Kind: StreamResident}, &Assigned{Stream: s, Worker: a.id}, epochFor(s, 1, a)}
		if i%3 == 0 {
			steps = append(steps, &SnapshotCountersigned{Stream: s, Seq: 40, Snapshot: testHash(fmt.Sprint("snap ", i))})
		}
		if i%4 == 0 {
			steps = append(steps, &Unassigned{Stream: s, Worker: a.id}, &Assigned{Stream: s, Worker: b.id}, epochFor(s, 2, b))
		}
		if i%10 == 0 {
			steps = append(steps, &EnvelopeSealed{Alarm: testAlarmID(fmt.Sprint(i)), Generation: 1, Inner: testHash(fmt.Sprint("inner ", i))})
		}
		if i%25 == 0 {
			steps = append(steps, &CaseClosed{Stream: s})
		}
		if i%40 == 39 {
			// A lost laptop: revoke one device of a worker.
			if d := workers[(i/40)%len(workers)].devs[0]; o.chain.State().Devices[d.id].Active() {
				steps = append(steps, &DeviceRevoked{Device: d.id})
			}
		}
		for _, st := range steps {
			if o.chain.Len() == n {
				break
			}
			o.add(as(c), st)
		}
	}
	require.Equal(tb, n, o.chain.Len())
	return o.org(), o.raws
}

// BenchmarkChainVerify verifies a chain of 10,000 statements from scratch,
// as a new device or the relay at start-up does.
func BenchmarkChainVerify(b *testing.B) {
	benchChain.once.Do(func() { benchChain.org, benchChain.raws = buildBenchChain(b, 10_000) })
	b.ReportAllocs()
	for b.Loop() {
		c := NewChain(benchChain.org)
		for _, raw := range benchChain.raws {
			if _, err := c.Append(raw); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(benchChain.raws)), "ns/statement")
}

func TestBenchChainMix(t *testing.T) {
	org, raws := buildBenchChain(t, 600)
	c, at, err := replay(org, raws)
	require.NoError(t, err)
	require.Equal(t, -1, at)
	types := map[StatementType]int{}
	for i := 0; i < c.Len(); i++ {
		types[c.Statement(ChainPos(i)).Body.Type()]++
	}
	for _, typ := range []StatementType{StDeviceEnrolled, StWorkerAdded, StStreamCreated, StEpochStarted, StAssigned} {
		if types[typ] == 0 {
			t.Errorf("the benchmark chain has no %s statement", typ)
		}
	}
}
