package replica

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/fristed/fristed/syncproto"
)

var (
	schedules = flag.Int("schedules", 2000, "random schedules TestConvergence runs (200 with -short, 400 with -race)")
	onlySeed  = flag.Uint64("seed", 0, "run TestConvergence for this seed only")
)

// TestConvergence: three replicas edit one case concurrently (the same
// fields, records added, changed and removed, log entries added and
// removed), with partial syncs in between so edits build on some of each
// other's; then every delta reaches every replica in a random order, with
// duplicates. All dumps must be byte-identical. A conflict left over is
// then resolved by one replica's set, which must clear it everywhere.
func TestConvergence(t *testing.T) {
	n := *schedules
	if testing.Short() {
		n = min(n, 200)
	}
	if raceEnabled {
		n = min(n, 400)
	}
	seeds := make(chan uint64)
	go func() {
		defer close(seeds)
		if *onlySeed != 0 {
			seeds <- *onlySeed
			return
		}
		for s := range uint64(n) {
			seeds <- s + 1
		}
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	for range runtime.GOMAXPROCS(0) {
		var reps [3]*Replica
		for i := range reps {
			reps[i] = newReplica(t)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range seeds {
				if err := runSchedule(seed, reps); err != nil {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("seed %d: %v\nrerun: go test ./client/replica -run TestConvergence -seed %d -v", seed, err, seed))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for i, f := range failed {
		if i == 3 {
			t.Errorf("... and %d more failing seeds", len(failed)-3)
			break
		}
		t.Error(f)
	}
}

type schedule struct {
	rng    *rand.Rand
	stream syncproto.StreamID
	reps   [3]*Replica
	devs   [3]syncproto.DeviceID
	clocks [3]syncproto.HLC
	all    []*syncproto.Delta
	log    []string // what happened, for a failure report
}

func runSchedule(seed uint64, reps [3]*Replica) (err error) {
	s := &schedule{rng: rand.New(rand.NewPCG(seed, 0x5eed)), reps: reps}
	binary.BigEndian.PutUint64(s.stream[8:], seed)
	for i := range s.devs {
		s.devs[i][0] = byte(i + 1)
		s.devs[i][1] = byte(s.rng.IntN(256))
		s.clocks[i].WallMS = 1_714_555_800_000
		reps[i].newID = s.randomID
	}
	defer func() {
		for _, r := range reps {
			if perr := r.PurgeStream(s.stream); perr != nil && err == nil {
				err = perr
			}
		}
		if err != nil {
			err = fmt.Errorf("%w\nschedule:\n  %s", err, strings.Join(s.log, "\n  "))
		}
	}()

	if err := s.edit(0, s.openCase); err != nil {
		return err
	}
	steps := 6 + s.rng.IntN(10)
	for range steps {
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
	for i := range s.reps {
		if err := s.deliver(i, s.withDuplicates(s.all)); err != nil {
			return err
		}
	}
	if err := s.sameDumps(); err != nil {
		return err
	}

	// Resolve what is left in conflict from one replica; the resolution
	// reaches the others in any order and clears the conflict everywhere.
	v, err := s.reps[0].Resident(s.stream, true)
	if err != nil {
		return err
	}
	if len(v.Conflicts) == 0 {
		return nil
	}
	before := len(s.all)
	for _, c := range v.Conflicts {
		err := s.edit(0, func(r *Replica) ([]syncproto.Op, string, error) {
			value := "resolved"
			if f, _ := kindIndex[c.Kind].Field(c.Field); f.Type == TypeEnum {
				value = f.Values[0]
			}
			ops, err := r.SetOps(s.stream, c.Kind, c.Record, map[string]string{c.Field: value})
			return ops, "resolve " + c.Kind + "." + c.Field, err
		})
		if err != nil {
			return err
		}
	}
	for i := 1; i < 3; i++ {
		if err := s.deliver(i, s.withDuplicates(s.all[before:])); err != nil {
			return err
		}
	}
	for i, r := range s.reps {
		v, err := r.Resident(s.stream, true)
		if err != nil {
			return err
		}
		if len(v.Conflicts) != 0 {
			return fmt.Errorf("replica %d: got conflicts %v after resolving, want none", i, v.Conflicts)
		}
	}
	return s.sameDumps()
}

func (s *schedule) randomID() syncproto.DeltaID {
	var id syncproto.DeltaID
	binary.BigEndian.PutUint64(id[:8], s.rng.Uint64())
	binary.BigEndian.PutUint64(id[8:], s.rng.Uint64())
	return id
}

// edit makes a local edit on replica i with the ops f builds; f may
// return no ops when there is nothing to do.
func (s *schedule) edit(i int, f func(*Replica) ([]syncproto.Op, string, error)) error {
	ops, what, err := f(s.reps[i])
	if err != nil {
		return fmt.Errorf("replica %d: %s: %w", i, what, err)
	}
	if len(ops) == 0 {
		return nil
	}
	c := &s.clocks[i]
	// Clocks often coincide across devices, so the device tie-break is
	// exercised too.
	if s.rng.IntN(2) == 0 {
		c.WallMS += uint64(1 + s.rng.IntN(2))
		c.Logical = 0
	} else {
		c.Logical++
	}
	d := &syncproto.Delta{Stream: s.stream, Author: s.devs[i], ID: s.randomID(), Clock: *c, Ops: ops}
	s.log = append(s.log, fmt.Sprintf("replica %d at %s: %s (%s)", i, c, what, d.ID))
	if err := s.reps[i].Apply(d); err != nil {
		return fmt.Errorf("replica %d: apply own %s: %w", i, what, err)
	}
	s.all = append(s.all, d)
	return nil
}

func (s *schedule) deliver(i int, ds []*syncproto.Delta) error {
	if len(ds) > 0 {
		s.log = append(s.log, fmt.Sprintf("replica %d receives %d deltas", i, len(ds)))
	}
	for _, d := range ds {
		if err := s.reps[i].Apply(d); err != nil {
			return fmt.Errorf("replica %d: apply %s: %w", i, d.ID, err)
		}
	}
	return nil
}

// sample is a random subset of the deltas so far, in random order.
func (s *schedule) sample() []*syncproto.Delta {
	var out []*syncproto.Delta
	for _, d := range s.all {
		if s.rng.IntN(2) == 0 {
			out = append(out, d)
		}
	}
	s.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// withDuplicates is ds shuffled, with about a third delivered twice.
func (s *schedule) withDuplicates(ds []*syncproto.Delta) []*syncproto.Delta {
	out := append([]*syncproto.Delta(nil), ds...)
	for _, d := range ds {
		if s.rng.IntN(3) == 0 {
			out = append(out, d)
		}
	}
	s.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func (s *schedule) sameDumps() error {
	want, err := s.reps[0].Dump(s.stream)
	if err != nil {
		return err
	}
	for i, r := range s.reps[1:] {
		got, err := r.Dump(s.stream)
		if err != nil {
			return err
		}
		if string(got) != string(want) {
			return fmt.Errorf("replica %d dump differs from replica 0:\n%s\nreplica 0:\n%s", i+1, got, want)
		}
	}
	return nil
}

func (s *schedule) openCase(r *Replica) ([]syncproto.Op, string, error) {
	ops, err := r.SetOps(s.stream, KindResident, syncproto.DeltaID{}, map[string]string{"pseudonym": "Ada", "arrived": "2024-01-10"})
	return ops, "open the case", err
}

var residentValues = map[string][]string{
	"unit":           {"Nord", "Sør", "Vest"},
	"language":       {"urdu", "somali", "arabic"},
	"address_code":   {"6", "7", "none"},
	"secret_address": {"Gata 1", "Veien 2"},
}

func (s *schedule) pick(vs []string) string { return vs[s.rng.IntN(len(vs))] }

func (s *schedule) live(r *Replica, kind string) ([]syncproto.DeltaID, error) {
	recs, err := r.Records(s.stream, kind)
	if err != nil {
		return nil, err
	}
	out := make([]syncproto.DeltaID, len(recs))
	for i, rec := range recs {
		out[i] = rec.ID
	}
	return out, nil
}

func (s *schedule) randomEdit(r *Replica) ([]syncproto.Op, string, error) {
	switch n := s.rng.IntN(100); {
	case n < 35:
		fields := map[string]string{}
		for range 1 + s.rng.IntN(2) {
			f := s.pick([]string{"unit", "language", "address_code", "secret_address"})
			fields[f] = s.pick(residentValues[f])
		}
		ops, err := r.SetOps(s.stream, KindResident, syncproto.DeltaID{}, fields)
		return ops, fmt.Sprintf("set resident %v", fields), err
	case n < 50:
		_, ops, err := r.NewRecordOps(s.stream, "goal", map[string]string{"title": s.pick([]string{"work", "school", "flat"})})
		return ops, "add goal", err
	case n < 65:
		goals, err := s.live(r, "goal")
		if err != nil || len(goals) == 0 {
			return nil, "no goal to set", err
		}
		g := goals[s.rng.IntN(len(goals))]
		f := map[string]string{s.pick([]string{"title", "status"}): ""}
		for k := range f {
			if k == "title" {
				f[k] = s.pick([]string{"work", "school", "flat"})
			} else {
				f[k] = s.pick([]string{"open", "achieved"})
			}
		}
		ops, err := r.SetOps(s.stream, "goal", g, f)
		return ops, fmt.Sprintf("set goal %s %v", g, f), err
	case n < 73:
		goals, err := s.live(r, "goal")
		if err != nil || len(goals) == 0 {
			return nil, "no goal to remove", err
		}
		g := goals[s.rng.IntN(len(goals))]
		ops, err := r.RemoveOps(s.stream, "goal", g)
		return ops, "remove goal " + g.String(), err
	case n < 90:
		var author syncproto.DeviceID
		author[0] = byte(s.rng.IntN(3) + 1)
		_, ops, err := r.NewRecordOps(s.stream, KindLog, map[string]string{"category": "practical",
			"minutes": fmt.Sprint(1 + s.rng.IntN(90)), "text": s.pick([]string{"bank", "nav", "walk"}),
			"author": author.String(), "at": fmt.Sprintf("2024-05-0%dT10:00:00Z", 1+s.rng.IntN(3))})
		return ops, "add log entry", err
	default:
		entries, err := s.live(r, KindLog)
		if err != nil || len(entries) == 0 {
			return nil, "no entry to remove", err
		}
		e := entries[s.rng.IntN(len(entries))]
		ops, err := r.RemoveOps(s.stream, KindLog, e)
		return ops, "remove log entry " + e.String(), err
	}
}
