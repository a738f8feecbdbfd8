package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	fcrypto "github.com/fristed/fristed/crypto"
)

// Files in the data directory. The keys are 32-byte Ed25519 seeds, mode
// 0600, created on first start.
const (
	relayKeyFile = "relay.key" // signs relay facts: receipts, device refused, envelope released
	tokenKeyFile = "token.key" // signs access tokens (never a protocol message)
	kekDir       = "kek"
	dbFile       = "relay.db"
	tlsCertFile  = "tls-cert.pem"
	tlsKeyFile   = "tls-key.pem"
)

// loadSeed reads the seed at path, creating it on first use. Two processes
// starting at once agree on one seed.
func loadSeed(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, fmt.Errorf("generate %s: %w", filepath.Base(path), err)
		}
		if _, err := createFileOnce(path, seed); err != nil {
			return nil, err
		}
		clear(seed)
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	if len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("read %s: malformed key file", filepath.Base(path))
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("read %s: mode %v lets others read it; chmod 600", filepath.Base(path), fi.Mode().Perm())
	}
	return b, nil
}

// LoadRelayKey returns the relay's signing key from dir, creating it on
// first start.
func LoadRelayKey(dir string) (*fcrypto.SigningKey, error) {
	seed, err := loadSeed(filepath.Join(dir, relayKeyFile))
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	return fcrypto.NewSigningKeyFromSeed(seed)
}

func loadTokenKey(dir string) (ed25519.PrivateKey, error) {
	seed, err := loadSeed(filepath.Join(dir, tokenKeyFile))
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	return ed25519.NewKeyFromSeed(seed), nil
}

// DBPath is where the SQLite store lives in a data directory.
func DBPath(dir string) string { return filepath.Join(dir, dbFile) }
