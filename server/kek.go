package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// ErrSecretGone: a secret cannot be opened because the key-encryption key
// it was sealed under has been destroyed (it was deleted, or it comes from
// a database backup older than the last rotation).
var ErrSecretGone = errors.New("secret destroyed")

// Keystore holds the relay's key-encryption keys (KEKs): one random
// 32-byte key per generation, each in its own file (0600) under a
// directory kept outside the database and its backups. Secrets (wrapped
// case keys, release identities) are stored sealed under the current
// generation; destroying a secret deletes it from the store and then
// rotates: a new generation, every remaining secret rewrapped to it in one
// transaction, the old KEK files overwritten and removed. A backup of the
// database taken before the deletion then holds the secret only under a
// key that no longer exists anywhere.
//
// Several relay processes may share the directory (PostgreSQL
// deployments): sealing takes a shared flock on it and rotation an
// exclusive one, and a process that meets a generation it does not know
// reloads the directory.
type Keystore struct {
	dir string

	mu   sync.Mutex
	keys map[uint32]*fcrypto.Key
	cur  uint32

	// Rotations are coalesced: a rotation covers every deletion that
	// completed before it started.
	rotMu          sync.Mutex
	deletions      atomic.Uint64
	rotatedThrough uint64
	onRotate       func()
}

const (
	kekSuffix   = ".kek"
	kekLockName = ".lock"
)

func kekFile(gen uint32) string { return fmt.Sprintf("%010d%s", gen, kekSuffix) }

// OpenKeystore opens (creating if needed) the KEK directory.
func OpenKeystore(dir string) (*Keystore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open kek directory: %w", err)
	}
	k := &Keystore{dir: dir, keys: map[uint32]*fcrypto.Key{}}
	unlock, err := k.lock(true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reloadLocked(); err != nil {
		return nil, err
	}
	if k.cur == 0 {
		if err := k.addGenerationLocked(1); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func (k *Keystore) lock(exclusive bool) (func(), error) {
	return lockFile(filepath.Join(k.dir, kekLockName), exclusive)
}

// Generation returns the current generation.
func (k *Keystore) Generation() uint32 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cur
}

// Generations returns the generations whose files exist now.
func (k *Keystore) Generations() ([]uint32, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reloadLocked(); err != nil {
		return nil, err
	}
	out := make([]uint32, 0, len(k.keys))
	for g := range k.keys {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// reloadLocked reads the directory: new generations are loaded, vanished
// ones forgotten (another process rotated).
func (k *Keystore) reloadLocked() error {
	ents, err := os.ReadDir(k.dir)
	if err != nil {
		return fmt.Errorf("read kek directory: %w", err)
	}
	seen := map[uint32]bool{}
	for _, e := range ents {
		name := e.Name()
		num, ok := strings.CutSuffix(name, kekSuffix)
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		g, err := strconv.ParseUint(num, 10, 32)
		if err != nil || g == 0 || kekFile(uint32(g)) != name {
			continue
		}
		gen := uint32(g)
		seen[gen] = true
		if k.keys[gen] != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(k.dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			delete(seen, gen) // removed by a rotation as we looked
			continue
		} else if err != nil {
			return fmt.Errorf("read kek generation %d: %w", gen, err)
		}
		key, err := fcrypto.KeyFromBytes(b)
		clear(b)
		if err != nil {
			return fmt.Errorf("read kek generation %d: malformed key file", gen)
		}
		k.keys[gen] = key
	}
	k.cur = 0
	for gen, key := range k.keys {
		if !seen[gen] {
			key.Destroy()
			delete(k.keys, gen)
			continue
		}
		k.cur = max(k.cur, gen)
	}
	return nil
}

func (k *Keystore) addGenerationLocked(gen uint32) error {
	key, err := fcrypto.NewKey()
	if err != nil {
		return fmt.Errorf("new kek generation: %w", err)
	}
	b := key.Bytes()
	created, err := createFileOnce(filepath.Join(k.dir, kekFile(gen)), b)
	clear(b)
	if err != nil {
		return fmt.Errorf("new kek generation %d: %w", gen, err)
	}
	if !created {
		return fmt.Errorf("new kek generation %d: file exists", gen)
	}
	k.keys[gen], k.cur = key, gen
	return nil
}

// kekAD binds a sealed secret to where it is stored and to its
// generation, so a sealed value moved to another name, kind or tenant, or
// relabelled with another generation, does not open.
func kekAD(tenant syncproto.TenantID, kind, name string, gen uint32) []byte {
	var g [4]byte
	binary.BigEndian.PutUint32(g[:], gen)
	ad := fcrypto.LabeledHash("fristed/v1/kek", tenant[:], []byte(kind), []byte(name), g[:])
	return ad[:]
}

// Put seals plain under the current generation and stores it as sec,
// replacing any secret of that name.
func (k *Keystore) Put(ctx context.Context, st store.Store, sec store.Secret, plain []byte) error {
	return k.PutAll(ctx, st, []store.Secret{sec}, [][]byte{plain})
}

// PutAll seals each plains[i] under the current generation as secs[i]
// and stores them all in one transaction: all or none.
func (k *Keystore) PutAll(ctx context.Context, st store.Store, secs []store.Secret, plains [][]byte) error {
	if len(secs) != len(plains) {
		return fmt.Errorf("put secrets: %d secrets, %d values", len(secs), len(plains))
	}
	unlock, err := k.lock(false)
	if err != nil {
		return err
	}
	defer unlock()
	k.mu.Lock()
	if err := k.reloadLocked(); err != nil {
		k.mu.Unlock()
		return err
	}
	gen, key := k.cur, k.keys[k.cur]
	k.mu.Unlock()
	sealed := make([]store.Secret, len(secs))
	for i, sec := range secs {
		b, err := fcrypto.Seal(key, kekAD(sec.Tenant, sec.Kind, sec.Name, gen), plains[i])
		if err != nil {
			return fmt.Errorf("seal %s secret: %w", sec.Kind, err)
		}
		sec.KEKGen, sec.Sealed = gen, b
		sealed[i] = sec
	}
	return st.PutSecrets(ctx, sealed)
}

// Open returns a stored secret's plaintext, or ErrSecretGone.
func (k *Keystore) Open(sec store.Secret) ([]byte, error) {
	k.mu.Lock()
	key := k.keys[sec.KEKGen]
	if key == nil {
		if err := k.reloadLocked(); err != nil {
			k.mu.Unlock()
			return nil, err
		}
		key = k.keys[sec.KEKGen]
	}
	k.mu.Unlock()
	if key == nil {
		return nil, ErrSecretGone
	}
	plain, err := fcrypto.Open(key, kekAD(sec.Tenant, sec.Kind, sec.Name, sec.KEKGen), sec.Sealed)
	if err != nil {
		return nil, ErrSecretGone
	}
	return plain, nil
}

// Destroy deletes a secret and rotates, so the deletion holds in backups
// too. It is idempotent.
func (k *Keystore) Destroy(ctx context.Context, st store.Store, tenant syncproto.TenantID, kind, name string) error {
	if err := st.DeleteSecret(ctx, tenant, kind, name); err != nil {
		return err
	}
	return k.rotateCovering(ctx, st, k.deletions.Add(1))
}

// DestroyAll deletes the named secrets in one transaction and rotates
// once for all of them, so every deletion holds in backups too. It
// returns how many existed. It is idempotent.
func (k *Keystore) DestroyAll(ctx context.Context, st store.Store, tenant syncproto.TenantID, kind string, names []string) (int, error) {
	n, err := st.DeleteSecrets(ctx, tenant, kind, names)
	if err != nil {
		return 0, err
	} else if n == 0 {
		// Nothing left to delete, perhaps because an earlier call deleted
		// them and then failed to rotate: finish that rotation.
		return 0, k.Finish(ctx, st)
	}
	return n, k.rotateCovering(ctx, st, k.deletions.Add(1))
}

// Rotate starts a new generation, rewraps every secret to it and destroys
// every older generation.
func (k *Keystore) Rotate(ctx context.Context, st store.Store) error {
	return k.rotateCovering(ctx, st, k.deletions.Add(1))
}

// Finish completes a rotation a crash interrupted: with more than one
// generation on disk, it rotates.
func (k *Keystore) Finish(ctx context.Context, st store.Store) error {
	gens, err := k.Generations()
	if err != nil || len(gens) <= 1 {
		return err
	}
	return k.Rotate(ctx, st)
}

func (k *Keystore) rotateCovering(ctx context.Context, st store.Store, seq uint64) error {
	k.rotMu.Lock()
	defer k.rotMu.Unlock()
	if k.rotatedThrough >= seq {
		return nil
	}
	target := k.deletions.Load()
	// The rotation must finish once begun, or a deleted secret's old KEK
	// lingers until the next one.
	if err := k.rotate(context.WithoutCancel(ctx), st); err != nil {
		return err
	}
	k.rotatedThrough = target
	if k.onRotate != nil {
		k.onRotate()
	}
	return nil
}

func (k *Keystore) rotate(ctx context.Context, st store.Store) error {
	unlock, err := k.lock(true)
	if err != nil {
		return err
	}
	defer unlock()

	k.mu.Lock()
	if err := k.reloadLocked(); err != nil {
		k.mu.Unlock()
		return err
	}
	old := make(map[uint32]*fcrypto.Key, len(k.keys))
	for g, key := range k.keys {
		old[g] = key
	}
	next := k.cur + 1
	if err := k.addGenerationLocked(next); err != nil {
		k.mu.Unlock()
		return fmt.Errorf("rotate kek: %w", err)
	}
	newKey := k.keys[next]
	k.mu.Unlock()

	_, err = st.RewrapSecrets(ctx, next, func(sec store.Secret) ([]byte, error) {
		key := old[sec.KEKGen]
		if key == nil {
			// Sealed under a generation already destroyed (a restored
			// backup): it stays unreadable, now as an empty value.
			return []byte{}, nil
		}
		plain, err := fcrypto.Open(key, kekAD(sec.Tenant, sec.Kind, sec.Name, sec.KEKGen), sec.Sealed)
		if err != nil {
			return []byte{}, nil
		}
		defer clear(plain)
		return fcrypto.Seal(newKey, kekAD(sec.Tenant, sec.Kind, sec.Name, next), plain)
	})
	if err != nil {
		// The old generations stay until a rotation succeeds.
		return fmt.Errorf("rotate kek: %w", err)
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	for g, key := range old {
		if err := shred(filepath.Join(k.dir, kekFile(g))); err != nil {
			return fmt.Errorf("rotate kek: destroy generation %d: %w", g, err)
		}
		key.Destroy()
		delete(k.keys, g)
	}
	return syncDir(k.dir)
}
