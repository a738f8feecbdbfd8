package vault

import (
	"bytes"
	"embed"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"

	fcrypto "github.com/fristed/fristed/crypto"
)

// Test vectors pin the file formats: a change that would make existing
// vaults unreadable fails here. Each file is a "key: value" header, a blank
// line, then the file's bytes (hex for a journal, base64 for a replica).
// Unknown keys fail the test.
//
//go:embed testdata/vectors/*.txt
var vectorFiles embed.FS

var updateVectors = flag.Bool("update-vectors", false, "rewrite testdata/vectors (the formats changed on purpose)")

type vector struct {
	name     string
	file     string // "journal" or "replica"
	expect   string // "ok", "torn", "corrupt", "version", "wrongkey"
	key      []byte
	id       []byte
	identity string
	frames   [][]byte
	state    []byte
	good     int64
	offset   int64
	body     []byte
}

var vectorKeys = map[string]bool{
	"file": true, "expect": true, "key": true, "id": true, "identity": true,
	"frame": true, "state": true, "good": true, "offset": true, "comment": true,
}

func parseVector(name string, data []byte) (*vector, error) {
	hdr, body, ok := strings.Cut(string(data), "\n\n")
	if !ok {
		return nil, errors.New("no blank line after the header")
	}
	v := &vector{name: name, good: -1, offset: -1}
	for _, line := range strings.Split(hdr, "\n") {
		k, val, ok := strings.Cut(line, ": ")
		if !ok || !vectorKeys[k] {
			return nil, fmt.Errorf("bad header line %q", line)
		}
		var err error
		switch k {
		case "file":
			v.file = val
		case "expect":
			v.expect = val
		case "key":
			v.key, err = hex.DecodeString(val)
		case "id":
			v.id, err = hex.DecodeString(val)
		case "identity":
			v.identity = val
		case "frame":
			var f []byte
			f, err = hex.DecodeString(val)
			v.frames = append(v.frames, f)
		case "state":
			v.state, err = hex.DecodeString(val)
		case "good":
			v.good, err = strconv.ParseInt(val, 10, 64)
		case "offset":
			v.offset, err = strconv.ParseInt(val, 10, 64)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", k, err)
		}
	}
	compact := strings.Join(strings.Fields(body), "")
	var err error
	switch v.file {
	case "journal":
		v.body, err = hex.DecodeString(compact)
	case "replica":
		v.body, err = base64.StdEncoding.DecodeString(compact)
	default:
		return nil, fmt.Errorf("unknown file %q", v.file)
	}
	if err != nil {
		return nil, fmt.Errorf("body: %v", err)
	}
	switch v.expect {
	case "ok", "torn", "corrupt", "version", "wrongkey":
	default:
		return nil, fmt.Errorf("unknown expect %q", v.expect)
	}
	return v, nil
}

func loadVectors(t testing.TB) []*vector {
	t.Helper()
	entries, err := fs.ReadDir(vectorFiles, "testdata/vectors")
	if err != nil || len(entries) == 0 {
		t.Fatalf("no test vectors: %v", err)
	}
	var vs []*vector
	for _, e := range entries {
		data, err := vectorFiles.ReadFile("testdata/vectors/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		v, err := parseVector(e.Name(), data)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		vs = append(vs, v)
	}
	return vs
}

// decodeJournalFile is what Open does with a journal's bytes, less the
// file system.
func decodeJournalFile(data []byte, id journalID, key *fcrypto.Key) ([][]byte, int64, error) {
	jid, err := parseJournalHeader(data)
	if err != nil {
		return nil, 0, err
	}
	if jid != id {
		return nil, 0, errors.New("journal id differs")
	}
	return decodeJournal(data, id, key)
}

func TestVectors(t *testing.T) {
	if *updateVectors {
		writeVectors(t)
	}
	for _, v := range loadVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			switch v.file {
			case "journal":
				checkJournalVector(t, v)
			case "replica":
				checkReplicaVector(t, v)
			}
		})
	}
}

func checkJournalVector(t *testing.T, v *vector) {
	key, err := fcrypto.KeyFromBytes(v.key)
	if err != nil {
		t.Fatal(err)
	}
	var id journalID
	copy(id[:], v.id)
	frames, good, err := decodeJournalFile(v.body, id, key)
	var ce *CorruptError
	switch v.expect {
	case "ok", "torn":
		if err != nil {
			t.Fatalf("got %v, want no error", err)
		}
		wantGood := int64(len(v.body))
		if v.expect == "torn" {
			wantGood = v.good
		}
		if good != wantGood {
			t.Errorf("good prefix: got %d, want %d", good, wantGood)
		}
		if len(frames) != len(v.frames) {
			t.Fatalf("frames: got %d, want %d", len(frames), len(v.frames))
		}
		for i := range frames {
			if !bytes.Equal(frames[i], v.frames[i]) {
				t.Errorf("frame %d: got %x, want %x", i+1, frames[i], v.frames[i])
			}
		}
	case "corrupt":
		if !errors.As(err, &ce) || ce.Offset != v.offset {
			t.Errorf("got %v, want a CorruptError at offset %d", err, v.offset)
		}
	case "version":
		if !errors.Is(err, ErrVersion) {
			t.Errorf("got %v, want ErrVersion", err)
		}
	default:
		t.Fatalf("expect %q does not apply to a journal", v.expect)
	}
}

func checkReplicaVector(t *testing.T, v *vector) {
	identity, err := age.ParseX25519Identity(v.identity)
	if err != nil {
		t.Fatal(err)
	}
	id, key, state, err := decryptSnapshot(v.body, identity)
	var ce *CorruptError
	switch v.expect {
	case "ok":
		if err != nil {
			t.Fatalf("got %v, want no error", err)
		}
		if !bytes.Equal(id[:], v.id) || !bytes.Equal(key.Bytes(), v.key) || !bytes.Equal(state, v.state) {
			t.Errorf("got id %x, key and state %q; want id %x and state %q", id, state, v.id, v.state)
		}
	case "corrupt":
		if !errors.As(err, &ce) {
			t.Errorf("got %v, want a CorruptError", err)
		}
	case "version":
		if !errors.Is(err, ErrVersion) {
			t.Errorf("got %v, want ErrVersion", err)
		}
	case "wrongkey":
		if !errors.Is(err, ErrWrongKey) {
			t.Errorf("got %v, want ErrWrongKey", err)
		}
	default:
		t.Fatalf("expect %q does not apply to a replica", v.expect)
	}
}

// FuzzJournal decodes arbitrary journals under the vectors' key: it must
// never panic, and whatever it accepts must be exactly the canonical
// encoding of the frames it returns, so nothing malleable gets through.
func FuzzJournal(f *testing.F) {
	var key *fcrypto.Key
	var id journalID
	seeds := 0
	for _, v := range loadVectors(f) {
		if v.file != "journal" {
			continue
		}
		key, _ = fcrypto.KeyFromBytes(v.key)
		copy(id[:], v.id)
		f.Add(v.body)
		seeds++
	}
	if seeds == 0 {
		f.Fatal("no journal vectors to seed from")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		frames, good, err := decodeJournalFile(data, id, key)
		if err != nil {
			return
		}
		if good < int64(journalHdrSize) || good > int64(len(data)) {
			t.Fatalf("good prefix %d out of range [%d, %d]", good, journalHdrSize, len(data))
		}
		raw, end := splitFrames(data[:good], journalHdrSize)
		if end != int(good) || len(raw) != len(frames) {
			t.Fatalf("the accepted prefix does not split into the %d frames returned (%d, %d)", len(frames), len(raw), end)
		}
		re := appendJournalHeader(nil, id)
		for i, r := range raw {
			p, err := fcrypto.Open(key, frameAD(id, uint64(i)+1), r.sealed)
			if err != nil || !bytes.Equal(p, frames[i]) {
				t.Fatalf("frame %d does not reopen", i+1)
			}
			re = appendFrame(re, r.sealed)
		}
		if !bytes.Equal(re, data[:good]) {
			t.Fatalf("accepted bytes are not the canonical encoding of their frames")
		}
	})
}

// FuzzSplitFrames checks the framing layer alone: it never panics, what it
// splits re-encodes to the same bytes, and it stops only where no complete
// frame starts.
func FuzzSplitFrames(f *testing.F) {
	seeds := 0
	for _, v := range loadVectors(f) {
		if v.file == "journal" && len(v.body) >= journalHdrSize {
			f.Add(v.body[journalHdrSize:])
			seeds++
		}
	}
	if seeds == 0 {
		f.Fatal("no journal vectors to seed from")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		raw, end := splitFrames(data, 0)
		var re []byte
		for _, r := range raw {
			if !validSealedLen(len(r.sealed)) {
				t.Fatalf("frame at %d has a length no frame can have", r.off)
			}
			re = appendFrame(re, r.sealed)
		}
		if !bytes.Equal(re, data[:end]) {
			t.Fatalf("split frames do not re-encode to the same bytes")
		}
		if tail := data[end:]; len(tail) >= frameLenSize {
			n := int(binary.BigEndian.Uint32(tail))
			if validSealedLen(n) && n <= len(tail)-frameLenSize {
				t.Fatalf("splitting stopped before a complete frame at %d", end)
			}
		}
	})
}

// writeVectors regenerates the vectors. Sealing and age use random nonces,
// so the files change every time: run it only when the format changes.
func writeVectors(t *testing.T) {
	dir := filepath.Join("testdata", "vectors")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	keyBytes := bytes.Repeat([]byte{0x42}, fcrypto.KeySize)
	key, _ := fcrypto.KeyFromBytes(keyBytes)
	var id journalID
	copy(id[:], "journal-id-16byt")
	payloads := [][]byte{[]byte("frame one"), {}, bytes.Repeat([]byte("frame three "), 20)}

	seal := func(seq int, p []byte) []byte {
		s, err := fcrypto.Seal(key, frameAD(id, uint64(seq)), p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	journal := func(frames ...[]byte) []byte {
		b := appendJournalHeader(nil, id)
		for _, f := range frames {
			b = appendFrame(b, f)
		}
		return b
	}
	s1, s2, s3 := seal(1, payloads[0]), seal(2, payloads[1]), seal(3, payloads[2])
	full := journal(s1, s2, s3)
	lastOff := len(journal(s1, s2))
	flipAt := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }

	type jv struct {
		name, expect, comment string
		body                  []byte
		frames                int
		good, offset          int
	}
	jvs := []jv{
		{"journal-empty", "ok", "a journal with no frames", journal(), 0, 0, 0},
		{"journal-frames", "ok", "three frames, the second empty", full, 3, 0, 0},
		{"journal-torn-length", "torn", "two bytes of a fourth length prefix", append(bytes.Clone(full), 0, 0), 3, len(full), 0},
		{"journal-torn-body", "torn", "the third frame cut short", full[:len(full)-5], 2, lastOff, 0},
		{"journal-torn-auth", "torn", "the last frame fails authentication", flipAt(full, len(full)-1), 2, lastOff, 0},
		{"journal-zero-tail", "torn", "zeros past the last frame", append(bytes.Clone(full), make([]byte, 40)...), 3, len(full), 0},
		{"journal-corrupt-middle", "corrupt", "the second frame fails authentication", flipAt(full, len(journal(s1))+10), 0, 0, len(journal(s1))},
		{"journal-corrupt-length", "corrupt", "a length no frame can have", flipAt(full, journalHdrSize), 0, 0, journalHdrSize},
		{"journal-reordered", "corrupt", "frames one and two swapped", journal(s2, s1, s3), 0, 0, journalHdrSize},
		{"journal-magic", "corrupt", "not a journal", flipAt(full, 0), 0, 0, 0},
		{"journal-version", "version", "version 2", func() []byte { b := bytes.Clone(full); b[len(journalMagic)] = 2; return b }(), 0, 0, 0},
	}
	for _, v := range jvs {
		var h strings.Builder
		fmt.Fprintf(&h, "file: journal\nexpect: %s\ncomment: %s\nkey: %x\nid: %x\n", v.expect, v.comment, keyBytes, id[:])
		for _, p := range payloads[:v.frames] {
			fmt.Fprintf(&h, "frame: %x\n", p)
		}
		switch v.expect {
		case "torn":
			fmt.Fprintf(&h, "good: %d\n", v.good)
		case "corrupt":
			fmt.Fprintf(&h, "offset: %d\n", v.offset)
		}
		h.WriteString("\n")
		h.WriteString(wrap(hex.EncodeToString(v.body), 64))
		if err := os.WriteFile(filepath.Join(dir, v.name+".txt"), []byte(h.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	other, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	state := []byte("an opaque replica state")
	snap, err := encryptSnapshot(identity.Recipient(), id, key, state)
	if err != nil {
		t.Fatal(err)
	}
	rvs := []struct {
		name, expect, comment string
		identity              string
		body                  []byte
	}{
		{"replica-ok", "ok", "a snapshot", identity.String(), snap},
		{"replica-wrongkey", "wrongkey", "another device's identity", other.String(), snap},
		{"replica-truncated", "corrupt", "the last byte missing", identity.String(), snap[:len(snap)-1]},
		{"replica-damaged", "corrupt", "a payload byte flipped", identity.String(), flipAt(snap, len(snap)-3)},
	}
	for _, v := range rvs {
		var h strings.Builder
		fmt.Fprintf(&h, "file: replica\nexpect: %s\ncomment: %s\nidentity: %s\n", v.expect, v.comment, v.identity)
		if v.expect == "ok" {
			fmt.Fprintf(&h, "id: %x\nkey: %x\nstate: %x\n", id[:], keyBytes, state)
		}
		h.WriteString("\n")
		h.WriteString(wrap(base64.StdEncoding.EncodeToString(v.body), 64))
		if err := os.WriteFile(filepath.Join(dir, v.name+".txt"), []byte(h.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func wrap(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	b.WriteString(s + "\n")
	return b.String()
}

// FuzzSnapshot decrypts arbitrary replica files with the vectors' identity:
// it must never panic, and what it accepts must re-encrypt to a file that
// decrypts to the same contents.
func FuzzSnapshot(f *testing.F) {
	var identity *age.X25519Identity
	for _, v := range loadVectors(f) {
		if v.file != "replica" {
			continue
		}
		if v.expect == "ok" {
			var err error
			if identity, err = age.ParseX25519Identity(v.identity); err != nil {
				f.Fatal(err)
			}
		}
		f.Add(v.body)
	}
	if identity == nil {
		f.Fatal("no replica vector to seed from")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, key, state, err := decryptSnapshot(data, identity)
		if err != nil {
			return
		}
		again, err := encryptSnapshot(identity.Recipient(), id, key, state)
		if err != nil {
			t.Fatal(err)
		}
		id2, key2, state2, err := decryptSnapshot(again, identity)
		if err != nil || id2 != id || !key2.Equal(key) || !bytes.Equal(state2, state) {
			t.Fatalf("re-encrypted snapshot differs: %v", err)
		}
	})
}
