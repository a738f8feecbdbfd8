package vault_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/client/vault"
)

const canary = "CANARY-secret-address-Storgata-17-4321"

// leakForms returns the canary as it would appear raw, in hex, or inside
// base64 at each of the three byte alignments (the characters that do not
// depend on the neighbouring bytes).
func leakForms(s string) [][]byte {
	forms := [][]byte{[]byte(s), []byte(hex.EncodeToString([]byte(s))), []byte(strings.ToUpper(hex.EncodeToString([]byte(s))))}
	for align := 0; align < 3; align++ {
		in := append(make([]byte, align), s...)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			out := enc.EncodeToString(in)
			forms = append(forms, []byte(out[(align*8+5)/6:len(out)-4]))
		}
	}
	return forms
}

func findLeak(data []byte) (string, bool) {
	for _, f := range leakForms(canary) {
		if bytes.Contains(data, f) {
			return string(f), true
		}
	}
	return "", false
}

func TestLeakFormsFindCanary(t *testing.T) {
	for _, wrap := range []func([]byte) []byte{
		func(b []byte) []byte { return b },
		func(b []byte) []byte { return []byte(hex.EncodeToString(b)) },
		func(b []byte) []byte { return []byte(base64.StdEncoding.EncodeToString(b)) },
	} {
		for pre := 0; pre < 3; pre++ {
			data := wrap(append(bytes.Repeat([]byte{'x'}, pre), canary+"tail"...))
			if _, ok := findLeak(data); !ok {
				t.Errorf("canary with %d bytes before it not found in %q", pre, data)
			}
		}
	}
}

// TestStolenLaptop leaves a closed vault whose state and frames hold a
// canary, and looks for it in every file the vault's directory and the
// temporary directory hold, and in every byte ever written.
func TestStolenLaptop(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dir := filepath.Join(t.TempDir(), "home", "vault")
	state := "replica state: " + canary
	frames := []string{"edit: " + canary, canary, strings.Repeat(canary, 100)}

	run := func(fsys vault.FS, dir string) {
		v := mustCreate(t, fsys, dir, state, frames...)
		require.NoError(t, v.Compact([]byte(state+" compacted")))
		for _, f := range frames {
			require.NoError(t, v.Append([]byte(f)))
		}
		require.NoError(t, v.Close())
		// Reopened, compacted again, and one more frame.
		v, _, _ = openContents(t, fsys, dir)
		require.NoError(t, v.Compact([]byte(state)))
		require.NoError(t, v.Append([]byte(canary)))
		require.NoError(t, v.Close())
	}

	run(vault.OSFS{}, dir)
	scanned := 0
	for _, root := range []string{filepath.Dir(dir), tmp} {
		err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			scanned++
			if form, ok := findLeak(data); ok {
				t.Errorf("%s holds the canary as %q", p, form)
			}
			if strings.Contains(p, canary) {
				t.Errorf("a file name holds the canary: %s", p)
			}
			return nil
		})
		require.NoError(t, err)
	}
	if scanned < 2 {
		t.Fatalf("scanned %d files, want at least 2", scanned)
	}

	fsys := newMemFS()
	run(fsys, "/home/vault")
	for _, w := range fsys.Writes() {
		if form, ok := findLeak(w.Data); ok {
			t.Errorf("a write to %s held the canary as %q", w.Path, form)
		}
	}
}
