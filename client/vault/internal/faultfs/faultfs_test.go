package faultfs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"syscall"
	"testing"
)

func write(t *testing.T, f *FS, name string, data []byte, sync bool) {
	t.Helper()
	fl, err := f.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fl.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := fl.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := fl.Close(); err != nil {
		t.Fatal(err)
	}
}

func read(f *FS, name string) string {
	b, err := f.ReadFile(name)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func TestDurability(t *testing.T) {
	f := New()
	if err := f.MkdirAll("/d", 0o700); err != nil {
		t.Fatal(err)
	}
	if got := f.Reboot(Policy{}).Dirs(); len(got) != 0 {
		t.Errorf("unsynced mkdir survived: got %q", got)
	}
	if err := f.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	write(t, f, "/d/a", []byte("old"), true)
	if got := read(f.Reboot(Policy{}), "/d/a"); got != "<readfile /d/a: file does not exist>" {
		t.Errorf("file whose entry was not synced: got %q, want it gone", got)
	}
	if err := f.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	write(t, f, "/d/tmp", []byte("new"), true)
	if err := f.Rename("/d/tmp", "/d/a"); err != nil {
		t.Fatal(err)
	}
	if got := read(f, "/d/a"); got != "new" {
		t.Errorf("running view: got %q, want new", got)
	}
	if got := read(f.Reboot(Policy{}), "/d/a"); got != "old" {
		t.Errorf("unsynced rename: got %q, want old", got)
	}
	if got := read(f.Reboot(Policy{Entries: []string{"/d/a"}}), "/d/a"); got != "new" {
		t.Errorf("rename kept by policy: got %q, want new", got)
	}
	if err := f.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	if got := read(f.Reboot(Policy{}), "/d/a"); got != "new" {
		t.Errorf("synced rename: got %q, want new", got)
	}

	fl, err := f.OpenFile("/d/a", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fl.WriteAt([]byte("1234"), 3)
	for _, tc := range []struct {
		d    Data
		want string
	}{{DropUnsynced, "new"}, {KeepUnsynced, "new1234"}, {TearLastWrite, "new12"}, {ZeroUnsynced, "new\x00\x00\x00\x00"}} {
		if got := read(f.Reboot(Policy{Data: tc.d}), "/d/a"); got != tc.want {
			t.Errorf("unsynced write, %v: got %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestFaultsAndCut(t *testing.T) {
	f := New()
	f.SetHook(func(c Call) Fault {
		if c.Op == OpWrite {
			return Fault{Err: syscall.ENOSPC, Short: true}
		}
		return Fault{}
	})
	fl, err := f.OpenFile("/a", os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	n, err := fl.WriteAt([]byte("abcd"), 0)
	if n != 2 || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("short write: got %d, %v; want 2, ENOSPC", n, err)
	}
	f.SetHook(nil)
	f.CutAfter(f.Ops() + 1)
	if err := fl.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := fl.Sync(); !errors.Is(err, ErrPowerCut) {
		t.Errorf("after the cut: got %v, want ErrPowerCut", err)
	}
	if _, err := f.Stat("/a"); !errors.Is(err, ErrPowerCut) {
		t.Errorf("stat after the cut: got %v, want ErrPowerCut", err)
	}
	g := f.Reboot(Policy{AllEntries: true})
	if got := read(g, "/a"); got != "ab" {
		t.Errorf("after reboot: got %q, want ab", got)
	}
	if _, err := g.Stat("/b"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat missing: got %v, want ErrNotExist", err)
	}
	if !bytes.Equal(f.Writes()[0].Data, []byte("ab")) {
		t.Errorf("write log: got %q, want ab", f.Writes()[0].Data)
	}
}
