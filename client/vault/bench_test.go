package vault_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"
	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/client/vault"
)

// BenchmarkAppend measures a durable append of a 1 KiB frame: seal, write,
// fsync. On most disks the fsync is nearly all of it.
func BenchmarkAppend(b *testing.B) {
	v := mustCreate(b, vault.OSFS{}, filepath.Join(b.TempDir(), "vault"), "state")
	defer v.Close()
	frame := make([]byte, 1024)
	rand.Read(frame)
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := v.Append(frame); err != nil {
			b.Fatal(err)
		}
	}
}

const benchStateSize = 8 << 20

// BenchmarkOpen measures opening a vault whose state is 8 MiB, with no
// frames; BenchmarkOpenBaseline is reading and age-decrypting the same file
// into a buffer of the right size, for the ratio.
func BenchmarkOpen(b *testing.B) {
	dir := benchVault(b)
	r, id := deviceKeys()
	b.SetBytes(benchStateSize)
	for b.Loop() {
		v, state, _, err := vault.Open(vault.OSFS{}, dir, r, id, vault.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if len(state) != benchStateSize {
			b.Fatalf("state: got %d bytes, want %d", len(state), benchStateSize)
		}
		v.Close()
	}
}

func BenchmarkOpenBaseline(b *testing.B) {
	dir := benchVault(b)
	_, id := deviceKeys()
	b.SetBytes(benchStateSize)
	for b.Loop() {
		ct, err := os.ReadFile(filepath.Join(dir, "replica.age"))
		if err != nil {
			b.Fatal(err)
		}
		r, err := age.Decrypt(bytes.NewReader(ct), id)
		if err != nil {
			b.Fatal(err)
		}
		state := make([]byte, benchStateSize+100)
		if n, err := io.ReadFull(r, state); err != io.ErrUnexpectedEOF || n < benchStateSize {
			b.Fatalf("got %d bytes and %v, want the whole file", n, err)
		}
	}
}

func benchVault(b *testing.B) string {
	dir := filepath.Join(b.TempDir(), "vault")
	state := make([]byte, benchStateSize)
	rand.Read(state)
	v := mustCreate(b, vault.OSFS{}, dir, string(state))
	require.NoError(b, v.Close())
	return dir
}
