package vault

import (
	"bytes"
	"errors"
	"io/fs"
	"testing"

	"filippo.io/age"

	"github.com/fristed/fristed/client/vault/internal/faultfs"
	fcrypto "github.com/fristed/fristed/crypto"
)

func TestValidSealedLen(t *testing.T) {
	seen := map[int]bool{}
	for n := 0; n <= 70000; n++ {
		l := fcrypto.SealedSize(n)
		if !validSealedLen(l) {
			t.Fatalf("SealedSize(%d) = %d: got invalid, want valid", n, l)
		}
		seen[l] = true
	}
	valid := 0
	for l := 0; l <= fcrypto.SealedSize(70000); l++ {
		if validSealedLen(l) {
			valid++
		}
	}
	if valid != len(seen) {
		t.Errorf("valid lengths up to SealedSize(70000): got %d, want %d", valid, len(seen))
	}
	for _, n := range []int{MaxFrameSize - 1, MaxFrameSize} {
		if !validSealedLen(fcrypto.SealedSize(n)) {
			t.Errorf("SealedSize(%d): got invalid, want valid", n)
		}
	}
	if validSealedLen(fcrypto.SealedSize(MaxFrameSize) + 1) {
		t.Errorf("a length past the largest frame: got valid")
	}
}

type testJournal struct {
	key     *fcrypto.Key
	id      journalID
	data    []byte
	offs    []int
	payload [][]byte
}

func makeJournal(t *testing.T, sizes ...int) testJournal {
	key, err := fcrypto.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	j := testJournal{key: key}
	copy(j.id[:], "0123456789abcdef")
	j.data = appendJournalHeader(nil, j.id)
	for i, n := range sizes {
		p := bytes.Repeat([]byte{byte('a' + i)}, n)
		s, err := fcrypto.Seal(key, frameAD(j.id, uint64(i)+1), p)
		if err != nil {
			t.Fatal(err)
		}
		j.offs = append(j.offs, len(j.data))
		j.payload = append(j.payload, p)
		j.data = appendFrame(j.data, s)
	}
	return j
}

// TestTornShapes tears the last frame every way a crash can: cut short, or
// with any run of its bytes never written (pages that did not land read
// back as zeros). Every shape is a torn tail, never damage.
func TestTornShapes(t *testing.T) {
	j := makeJournal(t, 10, 300, 10000)
	last := j.offs[2]
	check := func(b []byte, what string) {
		t.Helper()
		frames, good, err := decodeJournal(b, j.id, j.key)
		if err != nil {
			t.Fatalf("%s: got %v, want a torn tail", what, err)
		}
		if bytes.Equal(b, j.data) {
			return
		}
		if len(frames) != 2 || good != int64(last) {
			t.Fatalf("%s: got %d frames and %d good bytes, want 2 and %d", what, len(frames), good, last)
		}
	}
	for c := last; c < len(j.data); c++ {
		check(j.data[:c], "cut")
	}
	for a := last; a < len(j.data); a += 37 {
		for _, b := range []int{a + 1, a + 4, a + 4096, len(j.data)} {
			b = min(b, len(j.data))
			torn := bytes.Clone(j.data)
			clear(torn[a:b])
			check(torn, "zeroed")
			check(torn[:max(b, last+2)], "zeroed and cut")
		}
	}
	// The file grew but nothing landed.
	check(append(j.data[:last:last], make([]byte, len(j.data)-last)...), "all zero")
}

// TestDamageShapes damages a committed frame: a flipped bit anywhere in it,
// length prefix included, or a run of it zeroed, is a CorruptError at its
// offset, never a torn tail.
func TestDamageShapes(t *testing.T) {
	j := makeJournal(t, 10, 300, 20, 5)
	for f := 0; f < 3; f++ {
		start, end := j.offs[f], j.offs[f+1]
		for i := start; i < end; i++ {
			for _, bit := range []byte{0x01, 0x80} {
				b := bytes.Clone(j.data)
				b[i] ^= bit
				wantCorrupt(t, j, b, start, "bit flip")
			}
		}
		for a := start; a < end; a += 3 {
			b := bytes.Clone(j.data)
			clear(b[a:min(a+16, end)])
			if !bytes.Equal(b, j.data) {
				wantCorrupt(t, j, b, start, "zeroed run")
			}
		}
	}
}

func wantCorrupt(t *testing.T, j testJournal, b []byte, off int, what string) {
	t.Helper()
	_, _, err := decodeJournal(b, j.id, j.key)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Offset != int64(off) {
		t.Fatalf("%s: got %v, want a CorruptError at offset %d", what, err, off)
	}
}

type memFS struct{ *faultfs.FS }

func (m memFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := m.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// TestKeysNeverWritten looks for every vault key a vault ever held in every
// byte ever written to its file system.
func TestKeysNeverWritten(t *testing.T) {
	identity, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	fsys := memFS{faultfs.New()}
	v, err := Create(fsys, "/v", identity.Recipient(), identity, []byte("state"))
	if err != nil {
		t.Fatal(err)
	}
	keys := [][]byte{v.key.Bytes()}
	for i := 0; i < 3; i++ {
		if err := v.Append([]byte("frame")); err != nil {
			t.Fatal(err)
		}
		if err := v.Compact([]byte("state")); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, v.key.Bytes())
	}
	v.Close()
	for _, w := range fsys.Writes() {
		for i, k := range keys {
			if bytes.Contains(w.Data, k) || bytes.Contains(w.Data, k[:16]) || bytes.Contains(w.Data, k[16:]) {
				t.Errorf("vault key %d found in a write to %s", i, w.Path)
			}
		}
	}
	if !bytes.Equal(v.key.Bytes(), make([]byte, fcrypto.KeySize)) {
		t.Errorf("the vault key survives Close")
	}
}
