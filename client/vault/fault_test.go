package vault_test

import (
	"errors"
	"fmt"
	"path"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/client/vault"
	"github.com/fristed/fristed/client/vault/internal/faultfs"
)

var faults = []struct {
	name  string
	fault faultfs.Fault
}{
	{"EIO", faultfs.Fault{Err: syscall.EIO}},
	{"ENOSPC", faultfs.Fault{Err: syscall.ENOSPC}},
	{"short write", faultfs.Fault{Err: syscall.ENOSPC, Short: true}},
}

// failOnce fails operation n (counted from now) with fault, once.
func failOnce(fsys memFS, n int, fault faultfs.Fault) *faultfs.Call {
	target := fsys.Ops() + n
	hit := new(faultfs.Call)
	fsys.SetHook(func(c faultfs.Call) faultfs.Fault {
		if c.N == target {
			*hit = c
			return fault
		}
		return faultfs.Fault{}
	})
	return hit
}

// countOps returns how many operations fn makes.
func countOps(fsys memFS, fn func()) int {
	before := fsys.Ops()
	fn()
	return fsys.Ops() - before
}

// expectOneOf checks what a vault holds against the states it may be in.
func expectOneOf(fsys memFS, dir string, want ...contents) error {
	r, id := deviceKeys()
	v, state, frames, err := vault.Open(fsys, dir, r, id, vault.Options{})
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	v.Close()
	got := contents{state: string(state)}
	for _, f := range frames {
		got.frames = append(got.frames, string(f))
	}
	for _, w := range want {
		if got.state == w.state && equalStrings(got.frames, w.frames) {
			return nil
		}
	}
	return fmt.Errorf("got %q %q, want one of %q", got.state, got.frames, want)
}

// crashNow checks that every power cut right now leaves one of want.
func crashNow(fsys memFS, dir string, want ...contents) error {
	for _, pol := range crashPolicies(fsys.FS) {
		if err := expectOneOf(memFS{fsys.Reboot(pol)}, dir, want...); err != nil {
			return fmt.Errorf("power cut (%v): %w", pol, err)
		}
	}
	return nil
}

func TestAppendFaults(t *testing.T) {
	probe := newMemFS()
	v := mustCreate(t, probe, "/v", "s", "a")
	n := countOps(probe, func() { require.NoError(t, v.Append([]byte("b"))) })
	for i := 1; i <= n; i++ {
		for _, f := range faults {
			fsys := newMemFS()
			v := mustCreate(t, fsys, "/v", "s", "a")
			hit := failOnce(fsys, i, f.fault)
			err := v.Append([]byte("lost"))
			fsys.SetHook(nil)
			name := fmt.Sprintf("%s on %v", f.name, *hit)
			if err == nil {
				t.Fatalf("%s: append returned nil", name)
			}
			if !errors.Is(err, f.fault.Err) {
				t.Errorf("%s: got %v, want it to wrap %v", name, err, f.fault.Err)
			}
			if err := crashNow(fsys, "/v", contents{"s", []string{"a"}}); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			// The vault goes on, and the failed frame never appears.
			require.NoError(t, v.Append([]byte("b")), name)
			require.NoError(t, v.Close(), name)
			if err := expectOneOf(fsys, "/v", contents{"s", []string{"a", "b"}}); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
}

func TestCompactFaults(t *testing.T) {
	probe := newMemFS()
	v := mustCreate(t, probe, "/v", "s0", "a")
	n := countOps(probe, func() { require.NoError(t, v.Compact([]byte("s1"))) })
	for i := 1; i <= n; i++ {
		for _, f := range faults {
			fsys := newMemFS()
			v := mustCreate(t, fsys, "/v", "s0", "a")
			hit := failOnce(fsys, i, f.fault)
			err := v.Compact([]byte("s1"))
			fsys.SetHook(nil)
			name := fmt.Sprintf("%s on %v", f.name, *hit)
			// Closing the old journal, all of it synced, may fail
			// harmlessly; every other failure is reported.
			if err == nil && !(hit.Op == faultfs.OpClose && hit.Path == "/v/journal") {
				t.Fatalf("%s: compact returned nil", name)
			}
			old, folded := contents{"s0", []string{"a"}}, contents{"s1", nil}
			if err := crashNow(fsys, "/v", old, folded); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			// Appending goes on, after finishing the compaction if it
			// got as far as the new snapshot.
			require.NoError(t, v.Append([]byte("b")), name)
			if err := crashNow(fsys, "/v", contents{"s0", []string{"a", "b"}}, contents{"s1", []string{"b"}}); err != nil {
				t.Fatalf("%s, then append: %v", name, err)
			}
			// And so does compacting.
			require.NoError(t, v.Compact([]byte("s2")), name)
			require.NoError(t, v.Append([]byte("c")), name)
			require.NoError(t, v.Close(), name)
			if err := expectOneOf(fsys, "/v", contents{"s2", []string{"c"}}); err != nil {
				t.Fatalf("%s, then compact: %v", name, err)
			}
			for _, file := range fsys.Files() {
				if b := path.Base(file); b != "journal" && b != "replica.age" {
					t.Errorf("%s: %s left behind", name, file)
				}
			}
		}
	}
}

func TestCreateFaults(t *testing.T) {
	probe := newMemFS()
	n := countOps(probe, func() { v := mustCreate(t, probe, "/home/v", "s"); v.Close() })
	for i := 1; i <= n; i++ {
		for _, f := range faults {
			fsys := newMemFS()
			hit := failOnce(fsys, i, f.fault)
			r, id := deviceKeys()
			v, err := vault.Create(fsys, "/home/v", r, id, []byte("s"))
			fsys.SetHook(nil)
			name := fmt.Sprintf("%s on %v", f.name, *hit)
			if hit.N == 0 {
				require.NoError(t, err)
				require.NoError(t, v.Close())
				continue // the operation was Close, after Create
			}
			if err == nil {
				// Only a failure to close a file that is synced already
				// can go unreported.
				if hit.Op != faultfs.OpClose {
					t.Fatalf("%s: create returned nil", name)
				}
				require.NoError(t, v.Close())
				continue
			}
			if vault.Exists(fsys, "/home/v") {
				t.Errorf("%s: a failed create left a vault", name)
			}
			// Whatever a power cut now leaves is no vault, or a good one.
			for _, pol := range crashPolicies(fsys.FS) {
				after := memFS{fsys.Reboot(pol)}
				if !vault.Exists(after, "/home/v") {
					continue
				}
				if err := expectOneOf(after, "/home/v", contents{"s", nil}); err != nil {
					t.Fatalf("%s, power cut (%v): %v", name, pol, err)
				}
			}
			v = mustCreate(t, fsys, "/home/v", "s")
			require.NoError(t, v.Close())
		}
	}
}

func TestOpenFaults(t *testing.T) {
	// A torn tail and a stale journal make Open write; any of its steps
	// may fail, and a later Open must still find everything.
	setups := []struct {
		name  string
		setup func(memFS)
		want  contents
	}{
		{"torn tail", func(fsys memFS) {
			v := mustCreate(t, fsys, "/v", "s", "a", "b")
			require.NoError(t, v.Close())
			j, err := fsys.ReadFile("/v/journal")
			require.NoError(t, err)
			writeFile(t, fsys, "/v/journal", append(j, 0, 0, 1, 0, 1, 2, 3))
		}, contents{"s", []string{"a", "b"}}},
		{"stale journal", func(fsys memFS) {
			v := mustCreate(t, fsys, "/v", "s0", "a", "b")
			require.NoError(t, v.Close())
			j, err := fsys.ReadFile("/v/journal")
			require.NoError(t, err)
			v, _, _ = openContents(t, fsys, "/v")
			require.NoError(t, v.Compact([]byte("s")))
			require.NoError(t, v.Close())
			// As if the compaction had stopped after the snapshot.
			writeFile(t, fsys, "/v/journal", j)
			writeFile(t, fsys, "/v/replica.age.tmp", []byte("left over"))
		}, contents{"s", nil}},
	}
	for _, sc := range setups {
		setupName, setup, want := sc.name, sc.setup, sc.want
		probe := newMemFS()
		setup(probe)
		n := countOps(probe, func() { v, _, _ := openContents(t, probe, "/v"); v.Close() })
		for i := 1; i <= n; i++ {
			for _, f := range faults {
				fsys := newMemFS()
				setup(fsys)
				hit := failOnce(fsys, i, f.fault)
				r, id := deviceKeys()
				v, _, _, err := vault.Open(fsys, "/v", r, id, vault.Options{})
				fsys.SetHook(nil)
				name := fmt.Sprintf("%s: %s on %v", setupName, f.name, *hit)
				if err == nil {
					require.NoError(t, v.Append([]byte("c")), name)
					require.NoError(t, v.Close(), name)
					w := append([]string(nil), want.frames...)
					if err := expectOneOf(fsys, "/v", contents{"s", append(w, "c")}); err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					continue
				}
				if err := crashNow(fsys, "/v", want); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if err := expectOneOf(fsys, "/v", want); err != nil {
					t.Fatalf("%s, then open: %v", name, err)
				}
			}
			// The power may go while Open repairs, too.
			fsys := newMemFS()
			setup(fsys)
			fsys.CutAfter(fsys.Ops() + i)
			r, id := deviceKeys()
			vault.Open(fsys, "/v", r, id, vault.Options{})
			if err := crashNow(fsys, "/v", want); err != nil {
				t.Fatalf("%s: power cut after %v: %v", setupName, fsys.Calls()[fsys.Ops()-1], err)
			}
		}
	}
}

// TestAppendDoubleFault fails an append's fsync and then the truncate that
// undoes it: the frame must still never be committed.
func TestAppendDoubleFault(t *testing.T) {
	lost := make([]byte, 300)
	for _, then := range []string{"append", "close"} {
		fsys := newMemFS()
		v := mustCreate(t, fsys, "/v", "s", "a")
		fsys.SetHook(func(c faultfs.Call) faultfs.Fault {
			if c.Op == faultfs.OpSync || c.Op == faultfs.OpTruncate {
				return faultfs.Fault{Err: syscall.EIO}
			}
			return faultfs.Fault{}
		})
		if err := v.Append(lost); err == nil {
			t.Fatalf("append with failing fsync: got nil error")
		}
		fsys.SetHook(nil)
		want := contents{"s", []string{"a"}}
		if then == "append" {
			require.NoError(t, v.Append([]byte("b")))
			want.frames = append(want.frames, "b")
			// Nothing of the failed frame is left past the new one.
			v2, got, warns := openContents(t, memFS{fsys.Reboot(faultfs.Policy{})}, "/v")
			require.NoError(t, v2.Close())
			if !equalStrings(got.frames, want.frames) || len(warns) != 0 {
				t.Errorf("power cut after append: got %q and warnings %q, want %q and none", got.frames, warns, want.frames)
			}
		}
		require.NoError(t, v.Close())
		if err := crashNow(fsys, "/v", want); err != nil {
			t.Fatalf("then %s: %v", then, err)
		}
		v, got, warns := openContents(t, fsys, "/v")
		require.NoError(t, v.Close())
		if !equalStrings(got.frames, want.frames) || len(warns) != 0 {
			t.Errorf("then %s: got %q and warnings %q, want %q and none", then, got.frames, warns, want.frames)
		}
	}
}
