package replica

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/fristed/fristed/syncproto"
)

// TestExportImport: for random edit histories (concurrent sets, removals,
// conflicts), loading one replica's exported state into an empty replica
// gives the same dump, the content survives its encoding, and importing a
// replica's state into another that holds other deltas of the stream gives
// the dump of a replica that applied both sets of deltas: Import is Apply's
// merge in state form. A failing seed is printed.
func TestExportImport(t *testing.T) {
	var reps [3]*Replica
	for i := range reps {
		reps[i] = newReplica(t)
	}
	var seen exportSeen
	for seed := uint64(1); seed <= 300; seed++ {
		if err := exportImportSchedule(t, seed, reps, &seen); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
	// The schedules exercised what the snapshot must carry.
	if seen.tombstones == 0 || seen.conflicts == 0 || seen.superseded == 0 {
		t.Fatalf("got %+v schedules with tombstones, conflicts, superseded writes; want some of each", seen)
	}
}

type exportSeen struct{ tombstones, conflicts, superseded int }

func exportImportSchedule(t *testing.T, seed uint64, reps [3]*Replica, seen *exportSeen) (err error) {
	s := &schedule{rng: rand.New(rand.NewPCG(seed, 0x5a47)), reps: reps}
	binary.BigEndian.PutUint64(s.stream[8:], seed)
	for i := range s.devs {
		s.devs[i][0] = byte(i + 1)
		s.clocks[i].WallMS = 1_714_555_800_000
		reps[i].newID = s.randomID
	}
	scratch := []*Replica{newReplica(t), newReplica(t), newReplica(t)}
	defer func() {
		for _, r := range reps {
			if perr := r.PurgeStream(s.stream); perr != nil && err == nil {
				err = perr
			}
		}
		for _, r := range scratch {
			r.Close()
		}
	}()
	if err := s.edit(0, s.openCase); err != nil {
		return err
	}
	for range 8 + s.rng.IntN(12) {
		i := s.rng.IntN(3)
		if s.rng.IntN(4) == 0 {
			if err := s.deliver(i, s.sample()); err != nil {
				return err
			}
			continue
		}
		if err := s.edit(i, s.randomEdit); err != nil {
			return err
		}
	}
	full, part1, part2 := scratch[0], scratch[1], scratch[2]
	if err := full.ApplyBatch(s.all); err != nil {
		return err
	}
	for _, d := range s.all {
		r := part1
		if s.rng.IntN(2) == 0 {
			r = part2
		}
		if s.rng.IntN(5) == 0 {
			if err := part1.Apply(d); err != nil { // some in both
				return err
			}
		}
		if err := r.Apply(d); err != nil {
			return err
		}
	}
	want, err := full.Dump(s.stream)
	if err != nil {
		return err
	}

	// Through the encoding, into the empty replica of device 0.
	c, err := full.Export(s.stream)
	if err != nil {
		return err
	}
	raw, err := c.Marshal()
	if err != nil {
		return err
	}
	if len(c.Tombstones) > 0 {
		seen.tombstones++
	}
	if len(c.Superseded) > 0 {
		seen.superseded++
	}
	if v, _ := full.Resident(s.stream, true); v != nil && len(v.Conflicts) > 0 {
		seen.conflicts++
	}
	back, err := syncproto.UnmarshalSnapshotContent(raw)
	if err != nil {
		return err
	}
	if err := reps[0].PurgeStream(s.stream); err != nil {
		return err
	}
	if err := reps[0].Import(back); err != nil {
		return err
	}
	if got, _ := reps[0].Dump(s.stream); string(got) != string(want) {
		return fmt.Errorf("loaded snapshot dump differs:\n%s\nwant:\n%s", got, want)
	}
	c2, err := reps[0].Export(s.stream)
	if err != nil {
		return err
	}
	if raw2, _ := c2.Marshal(); string(raw2) != string(raw) {
		return fmt.Errorf("re-exported content differs")
	}

	// Merged into a replica with other deltas of the stream.
	c, err = part2.Export(s.stream)
	if err != nil {
		return err
	}
	if err := part1.Import(c); err != nil {
		return err
	}
	if got, _ := part1.Dump(s.stream); string(got) != string(want) {
		return fmt.Errorf("merged snapshot dump differs:\n%s\nwant:\n%s", got, want)
	}
	return nil
}
