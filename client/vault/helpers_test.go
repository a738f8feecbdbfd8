package vault_test

import (
	"io/fs"
	"sync"
	"testing"

	"filippo.io/age"
	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/client/vault"
	"github.com/fristed/fristed/client/vault/internal/faultfs"
)

// memFS adapts faultfs to vault.FS.
type memFS struct{ *faultfs.FS }

func (m memFS) OpenFile(name string, flag int, perm fs.FileMode) (vault.File, error) {
	f, err := m.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

var _ vault.FS = memFS{}

func newMemFS() memFS { return memFS{faultfs.New()} }

var (
	idOnce     sync.Once
	idIdentity *age.HybridIdentity
)

// deviceKeys returns the device's hybrid age key pair, as the product
// uses, made once per test binary.
func deviceKeys() (age.Recipient, age.Identity) {
	idOnce.Do(func() {
		var err error
		idIdentity, err = age.GenerateHybridIdentity()
		if err != nil {
			panic(err)
		}
	})
	return idIdentity.Recipient(), idIdentity
}

// contents is what a vault yields on Open.
type contents struct {
	state  string
	frames []string
}

func openContents(t testing.TB, fsys vault.FS, dir string) (*vault.Vault, contents, []string) {
	t.Helper()
	r, id := deviceKeys()
	var warnings []string
	v, state, frames, err := vault.Open(fsys, dir, r, id, vault.Options{Warn: func(s string) { warnings = append(warnings, s) }})
	require.NoError(t, err, "open")
	c := contents{state: string(state)}
	for _, f := range frames {
		c.frames = append(c.frames, string(f))
	}
	return v, c, warnings
}

func mustCreate(t testing.TB, fsys vault.FS, dir, state string, frames ...string) *vault.Vault {
	t.Helper()
	r, id := deviceKeys()
	v, err := vault.Create(fsys, dir, r, id, []byte(state))
	require.NoError(t, err, "create")
	for _, f := range frames {
		require.NoError(t, v.Append([]byte(f)), "append")
	}
	return v
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
