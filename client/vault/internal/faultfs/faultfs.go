// Package faultfs is an in-memory file system for crash and fault tests. It
// keeps two views of every file and directory: what the running system
// sees, and what is on the platter. Data reaches the platter only through
// File.Sync, and a created, renamed or removed directory entry only through
// SyncDir of its directory, which is the weakest guarantee POSIX file
// systems give. A test can fail any single operation, or cut the power after
// any operation and reboot into what survived.
package faultfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"
)

// ErrPowerCut is returned by every operation after the power was cut.
var ErrPowerCut = errors.New("faultfs: power cut")

// Op is the kind of a file-system operation.
type Op int

// Operations, in no particular order.
const (
	OpOpen Op = iota
	OpWrite
	OpTruncate
	OpSync
	OpClose
	OpReadFile
	OpRename
	OpRemove
	OpMkdirAll
	OpSyncDir
	OpStat
)

var opNames = [...]string{"open", "write", "truncate", "sync", "close", "readfile", "rename", "remove", "mkdirall", "syncdir", "stat"}

func (o Op) String() string {
	if o >= 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// Call describes one operation: the N-th (from 1) on this FS. Perm is the
// mode asked for by OpenFile with O_CREATE and by MkdirAll.
type Call struct {
	N    int
	Op   Op
	Path string
	Perm fs.FileMode
}

func (c Call) String() string { return fmt.Sprintf("#%d %s %s", c.N, c.Op, c.Path) }

// Fault is what a Hook makes an operation do. The zero Fault lets it run.
type Fault struct {
	// Err, if set, fails the operation. It has no effect, except for a
	// write with Short set.
	Err error
	// Short makes a failing write write the first half of its bytes.
	Short bool
}

// Data says what becomes of file data not yet synced when the power is cut.
type Data int

const (
	// DropUnsynced loses every write since the last Sync.
	DropUnsynced Data = iota
	// KeepUnsynced keeps them all, as if the cache was flushed in time.
	KeepUnsynced
	// TearLastWrite keeps them all but the last, of which only the first
	// half lands.
	TearLastWrite
	// ZeroUnsynced keeps the new file sizes but not the bytes: unsynced
	// writes read back as zeros, as on file systems that journal metadata
	// only.
	ZeroUnsynced
)

// Policy says what survives a power cut.
type Policy struct {
	// AllEntries keeps every directory change (create, rename, remove,
	// mkdir) made since the last SyncDir of its directory. Otherwise only
	// the changes to the names listed in Entries survive, in any
	// combination the caller likes: without an fsync of the directory,
	// nothing orders them.
	AllEntries bool
	Entries    []string
	Data       Data
}

func (p Policy) String() string {
	e := "synced entries"
	switch {
	case p.AllEntries:
		e = "all entries"
	case len(p.Entries) > 0:
		e = fmt.Sprintf("synced entries and %v", p.Entries)
	}
	return e + ", " + p.Data.String() + " unsynced data"
}

type pending struct {
	truncate bool
	off      int64
	data     []byte
}

type inode struct {
	data    []byte // what the running system reads
	synced  []byte // what is on the platter
	pending []pending
	mode    fs.FileMode
}

type namespace struct {
	files map[string]*inode
	dirs  map[string]fs.FileMode
}

func newNamespace() namespace {
	return namespace{files: map[string]*inode{}, dirs: map[string]fs.FileMode{"/": fs.ModeDir | 0o755}}
}

// A Write is one write as it was issued, for tests that look for leaks.
type Write struct {
	Path string
	Data []byte
}

// FS is the in-memory file system. Paths are slash-separated and absolute;
// "/" always exists.
type FS struct {
	mu     sync.Mutex
	live   namespace // what the running system sees
	disk   namespace // which entries are durable
	n      int
	cutAt  int
	cut    bool
	hook   func(Call) Fault
	calls  []Call
	writes []Write
}

// New returns an empty file system.
func New() *FS {
	return &FS{live: newNamespace(), disk: newNamespace()}
}

// SetHook installs h, called before every operation; nil removes it.
func (f *FS) SetHook(h func(Call) Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = h
}

// CutAfter cuts the power once operation n has run (0: never). Every later
// operation fails with ErrPowerCut and changes nothing.
func (f *FS) CutAfter(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cutAt = n
}

// Ops returns the number of operations so far.
func (f *FS) Ops() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// Calls returns every operation so far.
func (f *FS) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Writes returns every write ever issued, in order, including those that
// were later overwritten, truncated away, lost or removed.
func (f *FS) Writes() []Write {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.writes)
}

// Reboot returns the file system as it is after the power was cut (or now,
// if it was not), under policy p: a new FS with no hook and a fresh count.
func (f *FS) Reboot(p Policy) *FS {
	f.mu.Lock()
	defer f.mu.Unlock()
	keep := func(name string) bool { return p.AllEntries || slices.Contains(p.Entries, name) }
	g := New()
	for _, name := range f.names() {
		src := f.disk
		if keep(name) {
			src = f.live
		}
		if m, ok := src.dirs[name]; ok {
			g.live.dirs[name] = m
		}
	}
	seen := map[*inode]*inode{}
	for _, name := range f.names() {
		src := f.disk
		if keep(name) {
			src = f.live
		}
		ino, ok := src.files[name]
		if !ok || !g.hasDir(g.live, path.Dir(name)) {
			continue // gone, or its directory did not survive
		}
		n, ok := seen[ino]
		if !ok {
			d := survivingData(ino, p.Data)
			n = &inode{data: d, synced: slices.Clone(d), mode: ino.mode}
			seen[ino] = n
		}
		g.live.files[name] = n
	}
	for k, v := range g.live.files {
		g.disk.files[k] = v
	}
	for k, v := range g.live.dirs {
		g.disk.dirs[k] = v
	}
	return g
}

// names returns every file and directory name in either view.
func (f *FS) names() []string {
	set := map[string]bool{}
	for _, ns := range []namespace{f.live, f.disk} {
		for k := range ns.files {
			set[k] = true
		}
		for k := range ns.dirs {
			set[k] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Unsynced returns the names whose directory entry changed since the last
// SyncDir of their directory, sorted: the choices a power cut makes.
func (f *FS) Unsynced() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, name := range f.names() {
		lf, lok := f.live.files[name]
		df, dok := f.disk.files[name]
		ld, ldok := f.live.dirs[name]
		dd, ddok := f.disk.dirs[name]
		if lok != dok || lf != df || ldok != ddok || ld != dd {
			out = append(out, name)
		}
	}
	return out
}

func (f *FS) hasDir(ns namespace, dir string) bool {
	for {
		if _, ok := ns.dirs[dir]; !ok {
			return false
		}
		if dir == "/" {
			return true
		}
		dir = path.Dir(dir)
	}
}

func survivingData(ino *inode, d Data) []byte {
	switch d {
	case KeepUnsynced:
		return slices.Clone(ino.data)
	case DropUnsynced:
		return slices.Clone(ino.synced)
	}
	b := slices.Clone(ino.synced)
	last := -1
	for i, p := range ino.pending {
		if !p.truncate {
			last = i
		}
	}
	for i, p := range ino.pending {
		if p.truncate {
			b = resize(b, p.off)
			continue
		}
		data := p.data
		if d == ZeroUnsynced {
			data = make([]byte, len(p.data))
		} else if i == last {
			data = data[:len(data)/2]
		}
		b = writeAt(b, data, p.off)
	}
	return b
}

func resize(b []byte, n int64) []byte {
	if int64(len(b)) >= n {
		return b[:n]
	}
	return append(b, make([]byte, n-int64(len(b)))...)
}

func writeAt(b, data []byte, off int64) []byte {
	if end := off + int64(len(data)); end > int64(len(b)) {
		b = resize(b, end)
	}
	copy(b[off:], data)
	return b
}

// do runs one operation under the lock, with fault injection and the power
// cut applied.
func (f *FS) do(op Op, name string, fn func(Fault) error) error {
	return f.doPerm(op, name, 0, fn)
}

func (f *FS) doPerm(op Op, name string, perm fs.FileMode, fn func(Fault) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return &fs.PathError{Op: op.String(), Path: name, Err: ErrPowerCut}
	}
	f.n++
	c := Call{N: f.n, Op: op, Path: name, Perm: perm}
	f.calls = append(f.calls, c)
	var fault Fault
	if f.hook != nil {
		fault = f.hook(c)
	}
	err := fn(fault)
	if f.cutAt != 0 && f.n >= f.cutAt {
		f.cut = true
	}
	if err != nil {
		return &fs.PathError{Op: op.String(), Path: name, Err: err}
	}
	return nil
}

func clean(name string) string { return path.Clean("/" + name) }

func (f *FS) checkParent(name string) error {
	if _, ok := f.live.dirs[path.Dir(name)]; !ok {
		return fs.ErrNotExist
	}
	return nil
}

// OpenFile opens a file. It supports O_RDONLY, O_WRONLY, O_RDWR, O_CREATE,
// O_EXCL and O_TRUNC.
func (f *FS) OpenFile(name string, flag int, perm fs.FileMode) (*File, error) {
	name = clean(name)
	var file *File
	var asked fs.FileMode
	if flag&os.O_CREATE != 0 {
		asked = perm
	}
	err := f.doPerm(OpOpen, name, asked, func(ft Fault) error {
		if ft.Err != nil {
			return ft.Err
		}
		if err := f.checkParent(name); err != nil {
			return err
		}
		if _, ok := f.live.dirs[name]; ok {
			return syscall.EISDIR
		}
		ino, ok := f.live.files[name]
		switch {
		case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
			return fs.ErrExist
		case !ok && flag&os.O_CREATE == 0:
			return fs.ErrNotExist
		case !ok:
			ino = &inode{mode: perm & fs.ModePerm}
			f.live.files[name] = ino
		}
		writable := flag&(os.O_WRONLY|os.O_RDWR) != 0
		if flag&os.O_TRUNC != 0 && writable {
			ino.data = ino.data[:0]
			ino.pending = append(ino.pending, pending{truncate: true})
		}
		file = &File{fs: f, ino: ino, name: name, writable: writable}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return file, nil
}

// ReadFile returns a file's content.
func (f *FS) ReadFile(name string) ([]byte, error) {
	name = clean(name)
	var out []byte
	err := f.do(OpReadFile, name, func(ft Fault) error {
		if ft.Err != nil {
			return ft.Err
		}
		ino, ok := f.live.files[name]
		if !ok {
			if _, ok := f.live.dirs[name]; ok {
				return syscall.EISDIR
			}
			return fs.ErrNotExist
		}
		out = slices.Clone(ino.data)
		return nil
	})
	return out, err
}

// Rename moves a file.
func (f *FS) Rename(oldpath, newpath string) error {
	oldpath, newpath = clean(oldpath), clean(newpath)
	return f.do(OpRename, oldpath+" -> "+newpath, func(ft Fault) error {
		if ft.Err != nil {
			return ft.Err
		}
		ino, ok := f.live.files[oldpath]
		if !ok {
			return fs.ErrNotExist
		}
		if err := f.checkParent(newpath); err != nil {
			return err
		}
		if _, ok := f.live.dirs[newpath]; ok {
			return syscall.EISDIR
		}
		delete(f.live.files, oldpath)
		f.live.files[newpath] = ino
		return nil
	})
}

// Remove removes a file or an empty directory.
func (f *FS) Remove(name string) error {
	name = clean(name)
	return f.do(OpRemove, name, func(ft Fault) error {
		if ft.Err != nil {
			return ft.Err
		}
		if _, ok := f.live.files[name]; ok {
			delete(f.live.files, name)
			return nil
		}
		if _, ok := f.live.dirs[name]; !ok || name == "/" {
			return fs.ErrNotExist
		}
		for k := range f.live.files {
			if path.Dir(k) == name {
				return syscall.ENOTEMPTY
			}
		}
		for k := range f.live.dirs {
			if k != name && path.Dir(k) == name {
				return syscall.ENOTEMPTY
			}
		}
		delete(f.live.dirs, name)
		return nil
	})
}

// MkdirAll creates a directory and its parents.
func (f *FS) MkdirAll(name string, perm fs.FileMode) error {
	name = clean(name)
	return f.doPerm(OpMkdirAll, name, perm, func(ft Fault) error {
		if ft.Err != nil {
			return ft.Err
		}
		var missing []string
		for d := name; ; d = path.Dir(d) {
			if _, ok := f.live.files[d]; ok {
				return syscall.ENOTDIR
			}
			if _, ok := f.live.dirs[d]; ok {
				break
			}
			missing = append(missing, d)
		}
		for _, d := range missing {
			f.live.dirs[d] = fs.ModeDir | perm&fs.ModePerm
		}
		return nil
	})
}

// SyncDir makes the entries of a directory durable.
func (f *FS) SyncDir(name string) error {
	name = clean(name)
	return f.do(OpSyncDir, name, func(ft Fault) error {
		if ft.Err != nil {
			return ft.Err
		}
		if _, ok := f.live.dirs[name]; !ok {
			return fs.ErrNotExist
		}
		for k := range f.disk.files {
			if path.Dir(k) == name {
				delete(f.disk.files, k)
			}
		}
		for k, ino := range f.live.files {
			if path.Dir(k) == name {
				f.disk.files[k] = ino
			}
		}
		for k := range f.disk.dirs {
			if k != "/" && path.Dir(k) == name {
				delete(f.disk.dirs, k)
			}
		}
		for k, m := range f.live.dirs {
			if k != "/" && path.Dir(k) == name {
				f.disk.dirs[k] = m
			}
		}
		return nil
	})
}

// Stat describes a file or directory.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	name = clean(name)
	var fi fs.FileInfo
	err := f.do(OpStat, name, func(ft Fault) error {
		if ft.Err != nil {
			return ft.Err
		}
		if ino, ok := f.live.files[name]; ok {
			fi = fileInfo{name: path.Base(name), size: int64(len(ino.data)), mode: ino.mode}
			return nil
		}
		if m, ok := f.live.dirs[name]; ok {
			fi = fileInfo{name: path.Base(name), mode: m}
			return nil
		}
		return fs.ErrNotExist
	})
	return fi, err
}

// Files returns the paths of every file the running system sees, sorted.
func (f *FS) Files() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.live.files {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Dirs returns every directory the running system sees but "/", sorted.
func (f *FS) Dirs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.live.dirs {
		if k != "/" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Mode returns the permission bits of a file or directory.
func (f *FS) Mode(name string) (fs.FileMode, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name = clean(name)
	if ino, ok := f.live.files[name]; ok {
		return ino.mode, true
	}
	m, ok := f.live.dirs[name]
	return m.Perm(), ok
}

// File is an open file.
type File struct {
	fs       *FS
	ino      *inode
	name     string
	writable bool
	closed   bool
}

func (fl *File) check() error {
	if fl.closed {
		return os.ErrClosed
	}
	return nil
}

// WriteAt writes b at off.
func (fl *File) WriteAt(b []byte, off int64) (int, error) {
	n := 0
	err := fl.fs.do(OpWrite, fl.name, func(ft Fault) error {
		if err := fl.check(); err != nil {
			return err
		}
		if !fl.writable {
			return syscall.EBADF
		}
		if off < 0 {
			return syscall.EINVAL
		}
		data := b
		if ft.Err != nil {
			if !ft.Short {
				return ft.Err
			}
			data = b[:len(b)/2]
		}
		fl.fs.writes = append(fl.fs.writes, Write{Path: fl.name, Data: slices.Clone(data)})
		fl.ino.data = writeAt(fl.ino.data, data, off)
		fl.ino.pending = append(fl.ino.pending, pending{off: off, data: slices.Clone(data)})
		n = len(data)
		return ft.Err
	})
	return n, err
}

// Truncate changes the file's size.
func (fl *File) Truncate(size int64) error {
	return fl.fs.do(OpTruncate, fl.name, func(ft Fault) error {
		if ft.Err != nil {
			return ft.Err
		}
		if err := fl.check(); err != nil {
			return err
		}
		if !fl.writable {
			return syscall.EBADF
		}
		fl.ino.data = resize(fl.ino.data, size)
		fl.ino.pending = append(fl.ino.pending, pending{truncate: true, off: size})
		return nil
	})
}

// Sync makes the file's data durable. A failed Sync makes nothing durable.
func (fl *File) Sync() error {
	return fl.fs.do(OpSync, fl.name, func(ft Fault) error {
		if ft.Err != nil {
			return ft.Err
		}
		if err := fl.check(); err != nil {
			return err
		}
		fl.ino.synced = slices.Clone(fl.ino.data)
		fl.ino.pending = nil
		return nil
	})
}

// Close closes the file. A failed Close still closes it.
func (fl *File) Close() error {
	return fl.fs.do(OpClose, fl.name, func(ft Fault) error {
		if err := fl.check(); err != nil {
			return err
		}
		fl.closed = true
		return ft.Err
	})
}

type fileInfo struct {
	name string
	size int64
	mode fs.FileMode
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return i.mode }
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i fileInfo) Sys() any           { return nil }

func (d Data) String() string {
	switch d {
	case DropUnsynced:
		return "drop"
	case KeepUnsynced:
		return "keep"
	case TearLastWrite:
		return "tear"
	case ZeroUnsynced:
		return "zero"
	}
	return fmt.Sprintf("data(%d)", int(d))
}
