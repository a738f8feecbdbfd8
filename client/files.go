package client

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeFileAtomic writes data to path so that after a crash the path holds
// either the old or the new content: temp file, fsync, rename, fsync dir.
// The file is created with mode 0600.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	// A crash between CreateTemp and Rename leaves a temp file behind: for
	// identity.age, a whole copy of the keys under the passphrase of the
	// time. Shred such leftovers first, so a passphrase change does not
	// leave a copy under the old passphrase.
	prefix := "." + filepath.Base(path) + ".tmp-"
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), prefix) {
				shredFile(filepath.Join(dir, e.Name()))
			}
		}
	}
	f, err := os.CreateTemp(dir, prefix+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", filepath.Base(path), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	ok = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// shredFile overwrites a file with random bytes, fsyncs and removes it.
// On flash storage overwriting is not a guarantee, which is why everything
// is encrypted and the keys are what is destroyed; this is belt and braces.
func shredFile(path string) error {
	st, err := os.Stat(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode().IsRegular() {
		if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			buf := make([]byte, 64<<10)
			for left := st.Size(); left > 0; {
				n := int64(len(buf))
				if left < n {
					n = left
				}
				rand.Read(buf[:n])
				if _, err := f.Write(buf[:n]); err != nil {
					break
				}
				left -= n
			}
			f.Sync()
			f.Close()
		}
	}
	return os.Remove(path)
}
