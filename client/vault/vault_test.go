package vault_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/client/vault"
	"github.com/fristed/fristed/client/vault/internal/faultfs"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		fsys vault.FS
		dir  string
	}{
		{"os", vault.OSFS{}, filepath.Join(t.TempDir(), "vault")},
		{"mem", newMemFS(), "/home/vault"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := []string{"first", "", "third frame", strings.Repeat("x", 100000)}
			v := mustCreate(t, tc.fsys, tc.dir, "state zero", want...)
			require.NoError(t, v.Close())

			v, got, warns := openContents(t, tc.fsys, tc.dir)
			if got.state != "state zero" {
				t.Errorf("state: got %q, want %q", got.state, "state zero")
			}
			if !equalStrings(got.frames, want) {
				t.Errorf("frames: got %d frames %.40q, want %d", len(got.frames), got.frames, len(want))
			}
			if len(warns) != 0 {
				t.Errorf("warnings: got %q, want none", warns)
			}
			// Frames appended after a reopen continue the sequence.
			require.NoError(t, v.Append([]byte("after reopen")))
			require.NoError(t, v.Close())
			v, got, _ = openContents(t, tc.fsys, tc.dir)
			if n := len(got.frames); n != len(want)+1 || got.frames[n-1] != "after reopen" {
				t.Errorf("frames after reopen: got %d, want %d ending in %q", n, len(want)+1, "after reopen")
			}

			require.NoError(t, v.Compact([]byte("state one")))
			require.NoError(t, v.Close())
			v, got, _ = openContents(t, tc.fsys, tc.dir)
			if got.state != "state one" || len(got.frames) != 0 {
				t.Errorf("after compact: got state %q and %d frames, want %q and 0", got.state, len(got.frames), "state one")
			}
			require.NoError(t, v.Append([]byte("g1")))
			require.NoError(t, v.Compact(nil))
			require.NoError(t, v.Append([]byte("h1")))
			require.NoError(t, v.Close())
			_, got, _ = openContents(t, tc.fsys, tc.dir)
			if got.state != "" || !equalStrings(got.frames, []string{"h1"}) {
				t.Errorf("after second compact: got state %q and frames %q, want empty and [h1]", got.state, got.frames)
			}
		})
	}
}

func TestCreateExisting(t *testing.T) {
	fsys := newMemFS()
	v := mustCreate(t, fsys, "/v", "s")
	require.NoError(t, v.Close())
	r, id := deviceKeys()
	_, err := vault.Create(fsys, "/v", r, id, []byte("other"))
	if !errors.Is(err, vault.ErrExists) {
		t.Fatalf("create over a vault: got %v, want ErrExists", err)
	}
	if !vault.Exists(fsys, "/v") {
		t.Errorf("Exists: got false, want true")
	}
	if vault.Exists(fsys, "/w") {
		t.Errorf("Exists(/w): got true, want false")
	}
	_, _, _, err = vault.Open(fsys, "/w", r, id, vault.Options{})
	if !errors.Is(err, vault.ErrNoVault) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("open missing: got %v, want ErrNoVault and fs.ErrNotExist", err)
	}
}

func TestWrongKey(t *testing.T) {
	fsys := newMemFS()
	v := mustCreate(t, fsys, "/v", "s", "f")
	require.NoError(t, v.Close())
	other, err := age.GenerateHybridIdentity()
	require.NoError(t, err)
	_, _, _, err = vault.Open(fsys, "/v", other.Recipient(), other, vault.Options{})
	if !errors.Is(err, vault.ErrWrongKey) {
		t.Fatalf("open with another identity: got %v, want ErrWrongKey", err)
	}
	if want := "open replica: not encrypted to this identity (wrong key)"; err.Error() != want {
		t.Errorf("error: got %q, want %q", err, want)
	}
}

func TestRecipientMismatch(t *testing.T) {
	fsys := newMemFS()
	_, id := deviceKeys()
	other, err := age.GenerateHybridIdentity()
	require.NoError(t, err)
	_, err = vault.Create(fsys, "/v", other.Recipient(), id, []byte("s"))
	if err == nil {
		t.Fatal("create with a recipient that is not the identity's: got nil error")
	}
	if vault.Exists(fsys, "/v") {
		t.Errorf("a vault was left behind")
	}
	v := mustCreate(t, fsys, "/v", "s", "f")
	v2, _, _, err := vault.Open(fsys, "/v", other.Recipient(), id, vault.Options{})
	require.NoError(t, err)
	if err := v2.Compact([]byte("unreadable")); err == nil {
		t.Errorf("compact to a foreign recipient: got nil error")
	}
	require.NoError(t, v2.Close())
	require.NoError(t, v.Close())
	_, got, _ := openContents(t, fsys, "/v")
	if got.state != "s" || !equalStrings(got.frames, []string{"f"}) {
		t.Errorf("after refused compact: got %q %q, want %q [f]", got.state, got.frames, "s")
	}
}

func TestModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home", "vault")
	v := mustCreate(t, vault.OSFS{}, dir, "s", "f")
	require.NoError(t, v.Compact([]byte("t")))
	require.NoError(t, v.Append([]byte("g")))
	require.NoError(t, v.Close())
	for _, d := range []string{dir, filepath.Dir(dir)} {
		st, err := os.Stat(d)
		require.NoError(t, err)
		if got := st.Mode().Perm(); got != 0o700 {
			t.Errorf("%s: got mode %o, want 700", d, got)
		}
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		st, err := os.Stat(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		if got := st.Mode().Perm(); got != 0o600 {
			t.Errorf("%s: got mode %o, want 600", e.Name(), got)
		}
	}
	if want := []string{"journal", "replica.age"}; !equalStrings(names, want) {
		t.Errorf("files: got %q, want %q", names, want)
	}

	// Temporary files too, which the disk above never shows.
	fsys := newMemFS()
	v = mustCreate(t, fsys, "/home/vault", "s", "f")
	require.NoError(t, v.Compact([]byte("t")))
	require.NoError(t, v.Close())
	creates := 0
	for _, c := range fsys.Calls() {
		want := fs.FileMode(0o600)
		switch {
		case c.Op == faultfs.OpMkdirAll:
			want = 0o700
		case c.Op != faultfs.OpOpen || c.Perm == 0:
			continue
		}
		creates++
		if c.Perm != want {
			t.Errorf("%v: got mode %o, want %o", c, c.Perm, want)
		}
	}
	if creates < 5 {
		t.Errorf("creates: got %d, want at least 5", creates)
	}
	for _, d := range fsys.Dirs() {
		if m, _ := fsys.Mode(d); m != 0o700 {
			t.Errorf("%s: got mode %o, want 700", d, m)
		}
	}
}

func TestLimits(t *testing.T) {
	fsys := newMemFS()
	v := mustCreate(t, fsys, "/v", "s")
	big := make([]byte, vault.MaxFrameSize+1)
	if err := v.Append(big); !errors.Is(err, vault.ErrFrameTooLarge) {
		t.Errorf("append over the limit: got %v, want ErrFrameTooLarge", err)
	}
	require.NoError(t, v.Close())
	require.NoError(t, v.Close(), "second close")
	if err := v.Append([]byte("x")); !errors.Is(err, vault.ErrClosed) {
		t.Errorf("append after close: got %v, want ErrClosed", err)
	}
	if err := v.Compact([]byte("x")); !errors.Is(err, vault.ErrClosed) {
		t.Errorf("compact after close: got %v, want ErrClosed", err)
	}
	_, got, _ := openContents(t, fsys, "/v")
	if len(got.frames) != 0 {
		t.Errorf("frames: got %d, want 0", len(got.frames))
	}
}

func journalBytes(t *testing.T, fsys memFS, dir string) []byte {
	b, err := fsys.ReadFile(dir + "/journal")
	require.NoError(t, err)
	return b
}

// frameOffsets returns the offset of each frame in a journal.
func frameOffsets(j []byte) []int {
	var offs []int
	for off := 32; off+4 <= len(j); {
		offs = append(offs, off)
		off += 4 + int(uint32(j[off])<<24|uint32(j[off+1])<<16|uint32(j[off+2])<<8|uint32(j[off+3]))
	}
	return offs
}

func writeFile(t *testing.T, fsys memFS, name string, b []byte) {
	f, err := fsys.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	require.NoError(t, err)
	_, err = f.WriteAt(b, 0)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
	require.NoError(t, fsys.SyncDir(path.Dir(name)))
}

func TestTornTail(t *testing.T) {
	fsys := newMemFS()
	frames := []string{"alpha", "bravo", "charlie delta echo"}
	v := mustCreate(t, fsys, "/v", "s", frames...)
	require.NoError(t, v.Close())
	j := journalBytes(t, fsys, "/v")
	offs := frameOffsets(j)
	last := offs[len(offs)-1]

	check := func(t *testing.T, journal []byte, what string) {
		writeFile(t, fsys, "/v/journal", journal)
		v, got, warns := openContents(t, fsys, "/v")
		require.NoError(t, v.Close())
		if !equalStrings(got.frames, frames[:2]) {
			t.Fatalf("%s: got frames %q, want %q", what, got.frames, frames[:2])
		}
		if len(warns) != 1 || !strings.Contains(warns[0], "offset "+strconv.Itoa(last)) {
			t.Fatalf("%s: got warnings %q, want one naming offset %d", what, warns, last)
		}
		if got := len(journalBytes(t, fsys, "/v")); got != last {
			t.Fatalf("%s: journal is %d bytes after open, want %d", what, got, last)
		}
	}
	for cut := last + 1; cut < len(j); cut++ {
		check(t, j[:cut], "truncated at "+strconv.Itoa(cut))
	}
	// The last frame cannot be told from a torn one, length included.
	for i := last; i < len(j); i++ {
		b := bytes.Clone(j)
		b[i] ^= 0x01
		check(t, b, "last frame damaged at "+strconv.Itoa(i))
	}
	// A file extended with zeros, as a metadata-only journal may leave.
	check(t, append(j[:last:last], make([]byte, 70)...), "zero tail")
	// Whatever is opened is the exact frames; a cut on a frame boundary
	// is no damage at all.
	writeFile(t, fsys, "/v/journal", j[:last])
	v, got, warns := openContents(t, fsys, "/v")
	require.NoError(t, v.Close())
	if len(warns) != 0 || len(got.frames) != 2 {
		t.Errorf("cut at a boundary: got %d frames, warnings %q; want 2 and none", len(got.frames), warns)
	}
}

func TestCorruptMiddleFrame(t *testing.T) {
	fsys := newMemFS()
	v := mustCreate(t, fsys, "/v", "s", "one", "two", "three")
	require.NoError(t, v.Close())
	j := journalBytes(t, fsys, "/v")
	offs := frameOffsets(j)
	for i, off := range offs[:2] {
		for _, at := range []int{off, off + 3, off + 4, off + 10, offs[i+1] - 1} {
			b := bytes.Clone(j)
			b[at] ^= 0x80
			writeFile(t, fsys, "/v/journal", b)
			r, id := deviceKeys()
			_, _, _, err := vault.Open(fsys, "/v", r, id, vault.Options{})
			var ce *vault.CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, vault.ErrCorrupt) {
				t.Fatalf("frame %d damaged at %d: got %v, want a CorruptError", i+1, at, err)
			}
			if ce.File != "/v/journal" || ce.Offset != int64(off) {
				t.Errorf("frame %d damaged at %d: got file %q offset %d, want %q offset %d", i+1, at, ce.File, ce.Offset, "/v/journal", off)
			}
			if !bytes.Equal(journalBytes(t, fsys, "/v"), b) {
				t.Errorf("frame %d damaged at %d: open changed the damaged journal", i+1, at)
			}
		}
	}
	// A damaged header.
	b := bytes.Clone(j)
	b[0] = 'F'
	writeFile(t, fsys, "/v/journal", b)
	r, id := deviceKeys()
	_, _, _, err := vault.Open(fsys, "/v", r, id, vault.Options{})
	var ce *vault.CorruptError
	if !errors.As(err, &ce) || ce.Offset != 0 {
		t.Errorf("damaged journal magic: got %v, want a CorruptError at offset 0", err)
	}
	// A damaged journal id whose frames still belong to the snapshot.
	b = bytes.Clone(j)
	b[20] ^= 1
	writeFile(t, fsys, "/v/journal", b)
	_, _, _, err = vault.Open(fsys, "/v", r, id, vault.Options{})
	if !errors.As(err, &ce) || ce.Offset != 0 {
		t.Errorf("damaged journal id: got %v, want a CorruptError at offset 0", err)
	}
}

func TestStaleJournal(t *testing.T) {
	// A journal from before the last compaction (a crash between the two
	// renames) is ignored and replaced.
	fsys := newMemFS()
	v := mustCreate(t, fsys, "/v", "s0", "a", "b")
	require.NoError(t, v.Close())
	old := journalBytes(t, fsys, "/v")
	v, _, _ = openContents(t, fsys, "/v")
	require.NoError(t, v.Compact([]byte("s1")))
	require.NoError(t, v.Close())
	writeFile(t, fsys, "/v/journal", old)

	v, got, warns := openContents(t, fsys, "/v")
	if got.state != "s1" || len(got.frames) != 0 || len(warns) != 0 {
		t.Fatalf("stale journal: got %q, %d frames, warnings %q; want s1, 0, none", got.state, len(got.frames), warns)
	}
	require.NoError(t, v.Append([]byte("c")))
	require.NoError(t, v.Close())
	_, got, _ = openContents(t, fsys, "/v")
	if !equalStrings(got.frames, []string{"c"}) {
		t.Errorf("after stale journal: got %q, want [c]", got.frames)
	}
	// So is a missing one (a crash during Create).
	require.NoError(t, fsys.Remove("/v/journal"))
	v, got, _ = openContents(t, fsys, "/v")
	require.NoError(t, v.Close())
	if got.state != "s1" || len(got.frames) != 0 {
		t.Errorf("missing journal: got %q and %d frames, want s1 and 0", got.state, len(got.frames))
	}
}

func TestCorruptSnapshot(t *testing.T) {
	fsys := newMemFS()
	v := mustCreate(t, fsys, "/v", strings.Repeat("state ", 20000), "f")
	require.NoError(t, v.Close())
	snap, err := fsys.ReadFile("/v/replica.age")
	require.NoError(t, err)
	r, id := deviceKeys()
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"payload byte", flip(snap, len(snap)-100)},
		{"middle byte", flip(snap, len(snap)/2)},
		{"truncated", snap[:len(snap)-1]},
		{"truncated at a chunk", snap[:len(snap)/2]},
		{"header mac", flip(snap, bytes.Index(snap, []byte("\n---"))+6)},
		{"empty", nil},
	} {
		writeFile(t, fsys, "/v/replica.age", tc.b)
		_, _, _, err := vault.Open(fsys, "/v", r, id, vault.Options{})
		var ce *vault.CorruptError
		if !errors.As(err, &ce) || ce.File != "/v/replica.age" {
			t.Errorf("%s: got %v, want a CorruptError naming /v/replica.age", tc.name, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "open replica: /v/replica.age is damaged") {
			t.Errorf("%s: got %q, want it to start %q", tc.name, err, "open replica: /v/replica.age is damaged")
		}
	}
	// A damaged recipient stanza cannot be told from someone else's.
	writeFile(t, fsys, "/v/replica.age", flip(snap, bytes.Index(snap, []byte("\n-> "))+40))
	_, _, _, err = vault.Open(fsys, "/v", r, id, vault.Options{})
	if !errors.Is(err, vault.ErrWrongKey) && !errors.Is(err, vault.ErrCorrupt) {
		t.Errorf("damaged stanza: got %v, want ErrWrongKey or ErrCorrupt", err)
	}
}

func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x04
	return b
}

func TestDestroy(t *testing.T) {
	t.Run("os", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "vault")
		v := mustCreate(t, vault.OSFS{}, dir, "s", "f")
		require.NoError(t, v.Close())
		require.NoError(t, os.WriteFile(filepath.Join(dir, "replica.age.tmp"), []byte("left over"), 0o600))
		require.NoError(t, vault.Destroy(vault.OSFS{}, dir))
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stat after destroy: got %v, want not exist", err)
		}
		require.NoError(t, vault.Destroy(vault.OSFS{}, dir), "second destroy")
	})
	t.Run("mem", func(t *testing.T) {
		fsys := newMemFS()
		v := mustCreate(t, fsys, "/home/vault", "s", "f")
		require.NoError(t, v.Close())
		snap, err := fsys.ReadFile("/home/vault/replica.age")
		require.NoError(t, err)
		journal := journalBytes(t, fsys, "/home/vault")
		require.NoError(t, vault.Destroy(fsys, "/home/vault"))
		if got := fsys.Files(); len(got) != 0 {
			t.Errorf("files after destroy: got %q, want none", got)
		}
		if got := fsys.Dirs(); !equalStrings(got, []string{"/home"}) {
			t.Errorf("dirs after destroy: got %q, want [/home]", got)
		}
		// Even what is still on the platter after a power cut right now
		// is neither file.
		after := fsys.Reboot(faultfs.Policy{})
		if len(after.Files()) != 0 {
			t.Errorf("files surviving a power cut after destroy: got %q, want none", after.Files())
		}
		// The overwrite reached the disk before the names went away.
		var overwrote int
		for _, w := range fsys.Writes() {
			if (strings.HasSuffix(w.Path, "replica.age") && len(w.Data) == len(snap)) ||
				(strings.HasSuffix(w.Path, "journal") && len(w.Data) == len(journal)) {
				if !bytes.Equal(w.Data, snap) && !bytes.Equal(w.Data, journal) {
					overwrote++
				}
			}
		}
		if overwrote != 2 {
			t.Errorf("overwrites: got %d, want 2", overwrote)
		}
	})
}
