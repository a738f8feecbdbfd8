package vault

import (
	"io"
	"io/fs"
	"os"
	"runtime"
)

// FS is the handful of file-system operations a vault uses. It is an
// interface so that tests can stand in a file system that loses power or
// fails on any operation; OSFS is the real one.
//
// Implementations must behave like the os package: errors for missing files
// satisfy errors.Is(err, fs.ErrNotExist); Rename replaces newpath
// atomically; data written to a File is durable only after File.Sync, and a
// new, renamed or removed directory entry only after SyncDir of the
// directory that holds it.
type FS interface {
	// OpenFile opens name as os.OpenFile does. The vault passes only
	// O_WRONLY, O_CREATE and O_EXCL.
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// ReadFile returns the whole content of name.
	ReadFile(name string) ([]byte, error)
	// Rename atomically replaces newpath with oldpath.
	Rename(oldpath, newpath string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// MkdirAll creates path and any missing parents with mode perm.
	MkdirAll(path string, perm fs.FileMode) error
	// SyncDir makes the entries of directory path durable: files created,
	// renamed into or removed from it.
	SyncDir(path string) error
	// Stat describes name.
	Stat(name string) (fs.FileInfo, error)
}

// File is an open file. The vault writes at explicit offsets so that a
// failed write can be undone with Truncate without a file position to
// repair.
type File interface {
	io.WriterAt
	// Truncate changes the file's size.
	Truncate(size int64) error
	// Sync makes the file's data durable.
	Sync() error
	Close() error
}

// OSFS is the operating system's file system.
type OSFS struct{}

var (
	_ FS   = OSFS{}
	_ File = (*os.File)(nil)
)

// OpenFile implements FS.
func (OSFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// ReadFile implements FS.
func (OSFS) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }

// Rename implements FS.
func (OSFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// MkdirAll implements FS.
func (OSFS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }

// Stat implements FS.
func (OSFS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// SyncDir implements FS. On Windows a directory cannot be opened for
// fsync, so there it does nothing and durability of renames rests on the
// file system's own metadata journal.
func (OSFS) SyncDir(path string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
