package vault_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"strings"
	"testing"

	"github.com/fristed/fristed/client/vault"
	"github.com/fristed/fristed/client/vault/internal/faultfs"
)

// workload is a scripted life of a vault: create with states[0]; append
// epochs[0]; compact to states[1]; append epochs[1]; compact to states[2].
type workload struct {
	states [3]string
	epochs [3][]string
}

func newWorkload(seed uint64, n, m int) workload {
	rng := rand.New(rand.NewPCG(seed, 0))
	blob := func(tag string, max int) string {
		return tag + ":" + strings.Repeat(string(rune('a'+rng.IntN(26))), rng.IntN(max))
	}
	var w workload
	for i := range w.states {
		// Up to a few age chunks (64 KiB each).
		w.states[i] = blob(fmt.Sprintf("state%d", i), 200<<10)
	}
	for i := 0; i < n; i++ {
		w.epochs[0] = append(w.epochs[0], blob(fmt.Sprintf("e0f%d", i), 3000))
	}
	for i := 0; i < m; i++ {
		w.epochs[1] = append(w.epochs[1], blob(fmt.Sprintf("e1f%d", i), 3000))
	}
	return w
}

// progress records what the workload was told before the power went.
type progress struct {
	created   bool
	compacted int  // compactions that returned nil
	compact   bool // the power went during a Compact
	tried     [3][]string
	acked     [3][]string
}

func (w workload) run(fsys vault.FS, dir string) progress {
	var p progress
	r, id := deviceKeys()
	v, err := vault.Create(fsys, dir, r, id, []byte(w.states[0]))
	if err != nil {
		return p
	}
	p.created = true
	for e := 0; e < 2; e++ {
		for _, f := range w.epochs[e] {
			p.tried[e] = append(p.tried[e], f)
			if v.Append([]byte(f)) != nil {
				return p
			}
			p.acked[e] = append(p.acked[e], f)
		}
		p.compact = true
		if v.Compact([]byte(w.states[e+1])) != nil {
			return p
		}
		p.compact = false
		p.compacted++
	}
	v.Close()
	return p
}

// check opens what survived and compares it with what was acknowledged.
func (w workload) check(fsys memFS, dir string, p progress) error {
	r, id := deviceKeys()
	if !vault.Exists(fsys, dir) {
		if p.created {
			return errors.New("the vault is gone")
		}
		return nil
	}
	var warns []string
	v, state, frames, err := vault.Open(fsys, dir, r, id, vault.Options{Warn: func(s string) { warns = append(warns, s) }})
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	got := contents{state: string(state)}
	for _, f := range frames {
		got.frames = append(got.frames, string(f))
	}
	e := p.compacted
	switch {
	case !p.created:
		// Create was cut short after the snapshot landed.
		if got.state != w.states[0] || len(got.frames) != 0 {
			return fmt.Errorf("half-created vault: got %.10q and %d frames, want %.10q and none", got.state, len(got.frames), w.states[0])
		}
	case got.state == w.states[e]:
		if !isPrefix(got.frames, p.tried[e]) || len(got.frames) < len(p.acked[e]) {
			return fmt.Errorf("state %d: got %d frames, want at least the %d acknowledged of %d tried, in order",
				e, len(got.frames), len(p.acked[e]), len(p.tried[e]))
		}
	case p.compact && got.state == w.states[e+1]:
		if len(got.frames) != 0 {
			return fmt.Errorf("state %d: got %d frames, want none", e+1, len(got.frames))
		}
	default:
		return fmt.Errorf("got state %.10q, want %.10q (or the next while compacting: %v)", got.state, w.states[e], p.compact)
	}
	if len(warns) > 1 {
		return fmt.Errorf("got warnings %q, want at most one", warns)
	}
	for _, wn := range warns {
		if strings.Contains(wn, "e0f") || strings.Contains(wn, "e1f") {
			return fmt.Errorf("warning %q holds frame content", wn)
		}
	}
	for _, f := range fsys.Files() {
		if b := path.Base(f); b != "replica.age" && b != "journal" {
			return fmt.Errorf("file %s left after open", f)
		}
	}
	// The recovered vault goes on working.
	if err := v.Append([]byte("after")); err != nil {
		return fmt.Errorf("append after recovery: %w", err)
	}
	if err := v.Close(); err != nil {
		return fmt.Errorf("close after recovery: %w", err)
	}
	v, state, frames, err = vault.Open(fsys, dir, r, id, vault.Options{})
	if err != nil {
		return fmt.Errorf("reopen after recovery: %w", err)
	}
	v.Close()
	if string(state) != got.state || len(frames) != len(got.frames)+1 || string(frames[len(frames)-1]) != "after" {
		return fmt.Errorf("reopen after recovery: got %d frames, want %d ending in %q", len(frames), len(got.frames)+1, "after")
	}
	return nil
}

func isPrefix(a, b []string) bool {
	return len(a) <= len(b) && equalStrings(a, b[:len(a)])
}

// TestPowerCut cuts the power after every single file-system operation of
// a workload and checks, under every policy for what reaches the disk,
// that the vault opens and holds every acknowledged edit.
func TestPowerCut(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		w := newWorkload(seed, 4, 3)
		full := newMemFS()
		if p := w.run(full, "/home/vault"); p.compacted != 2 {
			t.Fatalf("seed %d: the workload fails without a power cut", seed)
		}
		total, reboots := full.Ops(), 0
		for cut := 1; cut <= total; cut++ {
			fsys := newMemFS()
			fsys.CutAfter(cut)
			p := w.run(fsys, "/home/vault")
			calls := fsys.Calls()
			pols := crashPolicies(fsys.FS)
			for _, pol := range pols {
				if err := w.check(memFS{fsys.Reboot(pol)}, "/home/vault", p); err != nil {
					t.Fatalf("seed %d, power cut after %v, %v: %v", seed, calls[cut-1], pol, err)
				}
			}
			reboots += len(pols)
		}
		t.Logf("seed %d: %d cut points, %d reboots", seed, total, reboots)
	}
}

// crashPolicies returns what a power cut may leave of f: every subset of
// its unsynced directory changes (nothing orders them), each with unsynced
// data dropped or kept, plus all or none of the changes with data torn or
// zeroed.
func crashPolicies(f *faultfs.FS) []faultfs.Policy {
	names := f.Unsynced()
	var pols []faultfs.Policy
	for mask := 0; mask < 1<<len(names); mask++ {
		var keep []string
		for i, n := range names {
			if mask&(1<<i) != 0 {
				keep = append(keep, n)
			}
		}
		for _, d := range []faultfs.Data{faultfs.DropUnsynced, faultfs.KeepUnsynced} {
			pols = append(pols, faultfs.Policy{Entries: keep, Data: d})
		}
	}
	for _, all := range []bool{false, true} {
		for _, d := range []faultfs.Data{faultfs.TearLastWrite, faultfs.ZeroUnsynced} {
			pols = append(pols, faultfs.Policy{AllEntries: all, Data: d})
		}
	}
	return pols
}
