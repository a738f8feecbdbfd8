package vault

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"filippo.io/age"

	fcrypto "github.com/fristed/fristed/crypto"
)

const (
	snapshotName = "replica.age"
	journalName  = "journal"
	tmpSuffix    = ".tmp"

	fileMode = 0o600
	dirMode  = 0o700
)

// Options tune Open.
type Options struct {
	// Warn, if set, receives one line for each repair Open makes, such as
	// dropping a torn journal tail. Lines name files and offsets, never
	// content.
	Warn func(msg string)
}

func (o Options) warn(format string, args ...any) {
	if o.Warn != nil {
		o.Warn(fmt.Sprintf(format, args...))
	}
}

// A Vault is an open vault directory. Its methods are safe for concurrent
// use. The vault key lives only in memory, and Close destroys it.
type Vault struct {
	mu       sync.Mutex
	fsys     FS
	dir      string
	r        age.Recipient
	identity age.Identity

	id  journalID
	key *fcrypto.Key

	// journal is open for writing the journal named id, which holds seq
	// frames in its first size bytes. It is nil while that journal is not
	// yet durably in place (after a compaction that failed half-way).
	journal File
	size    int64
	seq     uint64

	// tornTail means bytes past size may be in the journal (a failed
	// Append whose rollback failed too); they are cut before the next
	// write. snapshotUnsynced means the last snapshot rename may not be
	// durable yet. Both are repaired by ready.
	tornTail         bool
	snapshotUnsynced bool

	closed bool
}

func (v *Vault) path(name string) string { return filepath.Join(v.dir, name) }

// Exists reports whether dir holds a vault (a snapshot).
func Exists(fsys FS, dir string) bool {
	_, err := fsys.Stat(filepath.Join(dir, snapshotName))
	return err == nil
}

// Create makes a new vault in dir holding state and an empty journal,
// creating dir (mode 0700) if needed. The snapshot is encrypted to r; id
// must be able to decrypt it, which Create checks before writing. It fails
// with ErrExists if dir already holds a vault. When Create returns nil the
// vault is durable.
func Create(fsys FS, dir string, r age.Recipient, id age.Identity, state []byte) (*Vault, error) {
	if r == nil || id == nil {
		return nil, errors.New("create vault: no age recipient or identity")
	}
	switch _, err := fsys.Stat(filepath.Join(dir, snapshotName)); {
	case err == nil:
		return nil, fmt.Errorf("create vault: %w", ErrExists)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("create vault: %w", err)
	}
	if err := mkdirDurable(fsys, dir); err != nil {
		return nil, fmt.Errorf("create vault: %w", err)
	}
	v := &Vault{fsys: fsys, dir: dir, r: r, identity: id}
	if err := v.writeSnapshot(state); err != nil {
		return nil, fmt.Errorf("create vault: %w", err)
	}
	if err := v.ready(); err != nil {
		v.key.Destroy()
		// The snapshot is in place but the vault is not; leave nothing
		// behind that a retry would take for a vault.
		Destroy(fsys, dir)
		return nil, fmt.Errorf("create vault: %w", err)
	}
	return v, nil
}

// Open opens the vault in dir with the device's identity (to read the
// snapshot) and recipient (to write the next one). It returns the
// snapshot's state and the payloads of the journal's frames, in the order
// they were appended; the caller applies them to the state.
//
// Open repairs what a crash leaves: a journal from before the last
// compaction is replaced by an empty one, and a torn last frame is dropped
// (reported through opts.Warn) and cut off. Any other damage is a
// *CorruptError (errors.Is ErrCorrupt). An identity the snapshot is not
// encrypted to gives ErrWrongKey; a directory without a snapshot gives
// ErrNoVault.
func Open(fsys FS, dir string, r age.Recipient, id age.Identity, opts Options) (v *Vault, state []byte, frames [][]byte, err error) {
	if r == nil || id == nil {
		return nil, nil, nil, errors.New("open replica: no age recipient or identity")
	}
	v = &Vault{fsys: fsys, dir: dir, r: r, identity: id}
	ct, err := fsys.ReadFile(v.path(snapshotName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil, fmt.Errorf("open replica: %w: %w", ErrNoVault, err)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open replica: %w", err)
	}
	v.id, v.key, state, err = decryptSnapshot(ct, id)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open replica: %w", fileError(err, v.path(snapshotName)))
	}
	frames, err = v.openJournal(opts)
	if err != nil {
		v.key.Destroy()
		if v.journal != nil {
			v.journal.Close()
		}
		return nil, nil, nil, fmt.Errorf("open journal: %w", err)
	}
	// Temporary files are ciphertext, but nothing needs them any more.
	fsys.Remove(v.path(snapshotName + tmpSuffix))
	fsys.Remove(v.path(journalName + tmpSuffix))
	return v, state, frames, nil
}

// openJournal reads and repairs the journal and leaves it open for Append.
func (v *Vault) openJournal(opts Options) ([][]byte, error) {
	path := v.path(journalName)
	data, err := v.fsys.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		// A crash during Create, after the snapshot was in place.
		return nil, v.ready()
	}
	if err != nil {
		return nil, err
	}
	jid, err := parseJournalHeader(data)
	if err != nil {
		return nil, fileError(err, path)
	}
	if jid != v.id {
		// A crash during Compact, between the snapshot and the journal:
		// the frames are in the snapshot already. Unless they turn out
		// to be this snapshot's, in which case the header is damaged.
		if raw, _ := splitFrames(data, journalHdrSize); len(raw) > 0 {
			if _, err := fcrypto.Open(v.key, frameAD(v.id, 1), raw[0].sealed); err == nil {
				return nil, &CorruptError{File: path, Offset: 0, Reason: "journal id does not match its frames"}
			}
		}
		return nil, v.ready()
	}
	frames, good, err := decodeJournal(data, v.id, v.key)
	if err != nil {
		return nil, fileError(err, path)
	}
	if v.journal, err = v.fsys.OpenFile(path, os.O_WRONLY, 0); err != nil {
		return nil, err
	}
	v.size, v.seq = good, uint64(len(frames))
	if good < int64(len(data)) {
		opts.warn("vault: dropped %d bytes of an incomplete or damaged last frame at offset %d of %s (most likely an edit interrupted by a crash before it was acknowledged)", int64(len(data))-good, good, path)
		v.tornTail = true
		if err := v.cutTornTail(); err != nil {
			return nil, err
		}
	}
	return frames, nil
}

func fileError(err error, path string) error {
	if ce, ok := err.(*CorruptError); ok {
		ce.File = path
	}
	return err
}

// Append adds frame to the journal. When it returns nil the frame is
// durable: Open will return it until the next Compact. When it returns an
// error the frame is not committed and the vault stays usable; Append may be
// retried. (Only if undoing the failed write fails as well, and the machine
// then crashes before the vault writes again, may the frame reappear.)
func (v *Vault) Append(frame []byte) error {
	if len(frame) > MaxFrameSize {
		return fmt.Errorf("append: %w", ErrFrameTooLarge)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return fmt.Errorf("append: %w", ErrClosed)
	}
	if err := v.ready(); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	sealed, err := fcrypto.Seal(v.key, frameAD(v.id, v.seq+1), frame)
	if err != nil {
		return fmt.Errorf("append: %w", err)
	}
	buf := appendFrame(make([]byte, 0, frameLenSize+len(sealed)), sealed)
	n, err := v.journal.WriteAt(buf, v.size)
	if err == nil && n != len(buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		v.rollback()
		return fmt.Errorf("append: write journal: %w", err)
	}
	if err := v.journal.Sync(); err != nil {
		v.rollback()
		return fmt.Errorf("append: fsync journal: %w", err)
	}
	v.size += int64(len(buf))
	v.seq++
	return nil
}

// rollback undoes a failed append; if it cannot, ready tries again before
// the next write.
func (v *Vault) rollback() {
	v.tornTail = true
	v.cutTornTail()
}

func (v *Vault) cutTornTail() error {
	if err := v.journal.Truncate(v.size); err != nil {
		return fmt.Errorf("truncate journal: %w", err)
	}
	if err := v.journal.Sync(); err != nil {
		return fmt.Errorf("fsync journal: %w", err)
	}
	v.tornTail = false
	return nil
}

// ready finishes whatever a failed call left undone, so the journal is
// durably in place, named in the durable snapshot, and ends at size.
func (v *Vault) ready() error {
	if v.snapshotUnsynced {
		if err := v.fsys.SyncDir(v.dir); err != nil {
			return fmt.Errorf("fsync %s: %w", v.dir, err)
		}
		v.snapshotUnsynced = false
	}
	if v.journal == nil {
		hdr := appendJournalHeader(nil, v.id)
		if err := writeAtomic(v.fsys, v.path(journalName), hdr); err != nil {
			return err
		}
		f, err := v.fsys.OpenFile(v.path(journalName), os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		v.journal, v.size, v.seq, v.tornTail = f, int64(len(hdr)), 0, false
	}
	if v.tornTail {
		return v.cutTornTail()
	}
	return nil
}

// Compact replaces the snapshot with state, which must include the effect
// of every frame appended so far, and starts an empty journal under a new
// journal id and vault key. When it returns nil both are durable. When it
// returns an error Open yields either the old snapshot and journal or the
// new snapshot and no frames, both of which the caller's state agrees with;
// the vault stays usable, and the next Append or Compact finishes or
// repeats the work.
func (v *Vault) Compact(state []byte) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return fmt.Errorf("compact: %w", ErrClosed)
	}
	if err := v.writeSnapshot(state); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	if err := v.ready(); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	return nil
}

// writeSnapshot writes state as the snapshot under a new journal id and
// vault key. Once the rename is done the vault switches to them and the
// old journal is abandoned (its frames are in state); ready then makes the
// rename durable and writes the new journal.
func (v *Vault) writeSnapshot(state []byte) error {
	id, err := newJournalID()
	if err != nil {
		return err
	}
	key, err := fcrypto.NewKey()
	if err != nil {
		return err
	}
	ct, err := encryptSnapshot(v.r, id, key, state)
	if err == nil {
		err = checkSnapshotKey(ct, v.identity)
	}
	if err != nil {
		key.Destroy()
		return fmt.Errorf("write replica: %w", err)
	}
	path := v.path(snapshotName)
	if err := writeTemp(v.fsys, path+tmpSuffix, ct); err != nil {
		key.Destroy()
		return fmt.Errorf("write replica: %w", err)
	}
	if err := v.fsys.Rename(path+tmpSuffix, path); err != nil {
		key.Destroy()
		v.fsys.Remove(path + tmpSuffix)
		return fmt.Errorf("write replica: %w", err)
	}
	if v.journal != nil {
		// Everything in it was synced; an error closing it is moot.
		v.journal.Close()
	}
	if v.key != nil {
		v.key.Destroy()
	}
	v.id, v.key = id, key
	v.journal, v.size, v.seq, v.tornTail = nil, 0, 0, false
	v.snapshotUnsynced = true
	return nil
}

// Close releases the journal and destroys the vault key. It is idempotent.
func (v *Vault) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil
	}
	v.closed = true
	v.key.Destroy()
	if v.journal == nil {
		return nil
	}
	if v.tornTail {
		v.cutTornTail()
	}
	if err := v.journal.Close(); err != nil {
		return fmt.Errorf("close journal: %w", err)
	}
	return nil
}

// Destroy crypto-shreds the vault in dir: each file is overwritten with
// random bytes, fsynced and removed, the snapshot (which holds the vault
// key) first; then dir itself is removed if nothing else is in it. On flash
// storage overwriting in place is not guaranteed, which is why everything is
// encrypted under keys that exist only in these files and in memory.
// Destroy goes on past errors and returns them all; it is idempotent, and a
// dir without a vault is not an error.
func Destroy(fsys FS, dir string) error {
	var errs []error
	for _, name := range []string{snapshotName, snapshotName + tmpSuffix, journalName, journalName + tmpSuffix} {
		if err := shred(fsys, filepath.Join(dir, name)); err != nil {
			errs = append(errs, fmt.Errorf("destroy vault: %w", err))
		}
	}
	if _, err := fsys.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return errors.Join(errs...)
	}
	if err := fsys.SyncDir(dir); err != nil {
		errs = append(errs, fmt.Errorf("destroy vault: fsync %s: %w", dir, err))
	}
	if fsys.Remove(dir) == nil {
		if err := fsys.SyncDir(filepath.Dir(dir)); err != nil {
			errs = append(errs, fmt.Errorf("destroy vault: fsync %s: %w", filepath.Dir(dir), err))
		}
	}
	return errors.Join(errs...)
}

func shred(fsys FS, path string) error {
	st, err := fsys.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var errs []error
	if err != nil {
		// Without a size there is nothing to overwrite, but the file
		// must go all the same.
		errs = append(errs, err)
	} else if f, err := fsys.OpenFile(path, os.O_WRONLY, 0); err != nil {
		errs = append(errs, fmt.Errorf("overwrite %s: %w", path, err))
	} else {
		buf := make([]byte, 64<<10)
		for off := int64(0); off < st.Size(); off += int64(len(buf)) {
			b := buf[:min(int64(len(buf)), st.Size()-off)]
			rand.Read(b)
			if _, err := f.WriteAt(b, off); err != nil {
				errs = append(errs, fmt.Errorf("overwrite %s: %w", path, err))
				break
			}
		}
		if err := f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("overwrite %s: fsync: %w", path, err))
		}
		f.Close()
	}
	if err := fsys.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove %s: %w", path, err))
	}
	return errors.Join(errs...)
}

// writeAtomic replaces path with data: temp file, fsync, rename, fsync dir.
func writeAtomic(fsys FS, path string, data []byte) error {
	tmp := path + tmpSuffix
	if err := writeTemp(fsys, tmp, data); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := fsys.Rename(tmp, path); err != nil {
		fsys.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := fsys.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write %s: fsync dir: %w", filepath.Base(path), err)
	}
	return nil
}

// writeTemp writes data to a fresh file at tmp (mode 0600) and fsyncs it.
// On failure it removes the file.
func writeTemp(fsys FS, tmp string, data []byte) (err error) {
	f, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fileMode)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			fsys.Remove(tmp)
		}
	}()
	n, err := f.WriteAt(data, 0)
	if err == nil && n != len(data) {
		err = io.ErrShortWrite
	}
	if err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync: %w", err)
	}
	return f.Close()
}

// mkdirDurable creates dir (mode 0700) and its missing parents, and fsyncs
// the parent of each directory it created so the new entries survive a
// power cut.
func mkdirDurable(fsys FS, dir string) error {
	dir = filepath.Clean(dir)
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		_, err := fsys.Stat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		created = append(created, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if len(created) == 0 {
		return nil
	}
	if err := fsys.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	for i := len(created) - 1; i >= 0; i-- {
		parent := filepath.Dir(created[i])
		if err := fsys.SyncDir(parent); err != nil {
			return fmt.Errorf("fsync %s: %w", parent, err)
		}
	}
	return nil
}
