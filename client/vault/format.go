package vault

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"

	fcrypto "github.com/fristed/fristed/crypto"
)

const (
	snapshotMagic = "fristed-replica"
	journalMagic  = "fristed-journal"
	formatVersion = 0x01

	idSize         = 16
	frameLenSize   = 4
	journalHdrSize = len(journalMagic) + 1 + idSize
	snapshotHdrLen = len(snapshotMagic) + 1 + idSize + fcrypto.KeySize + 8

	// MaxFrameSize bounds one journal frame's payload.
	MaxFrameSize = fcrypto.MaxSealPlaintext
)

var (
	minSealedFrame = fcrypto.SealedSize(0)
	maxSealedFrame = fcrypto.SealedSize(MaxFrameSize)
)

// journalID names one journal; frames are bound to it.
type journalID [idSize]byte

func newJournalID() (journalID, error) {
	var id journalID
	if _, err := rand.Read(id[:]); err != nil {
		return id, fmt.Errorf("generate journal id: %w", err)
	}
	return id, nil
}

// frameAD is the associated data of frame seq: it binds the frame to its
// journal and position.
func frameAD(id journalID, seq uint64) []byte {
	ad := make([]byte, idSize+8)
	copy(ad, id[:])
	binary.BigEndian.PutUint64(ad[idSize:], seq)
	return ad
}

func appendJournalHeader(b []byte, id journalID) []byte {
	b = append(b, journalMagic...)
	b = append(b, formatVersion)
	return append(b, id[:]...)
}

// parseJournalHeader returns the journal id. Errors are *CorruptError with
// File unset, or ErrVersion.
func parseJournalHeader(data []byte) (journalID, error) {
	var id journalID
	if len(data) < journalHdrSize || string(data[:len(journalMagic)]) != journalMagic {
		return id, &CorruptError{Offset: 0, Reason: "not a journal file"}
	}
	if data[len(journalMagic)] != formatVersion {
		return id, ErrVersion
	}
	copy(id[:], data[len(journalMagic)+1:journalHdrSize])
	return id, nil
}

// rawFrame is one length-delimited frame, not yet authenticated.
type rawFrame struct {
	off    int64 // offset of the length prefix
	sealed []byte
}

// appendFrame appends the framing of one sealed frame to b.
func appendFrame(b, sealed []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(sealed)))
	return append(b, sealed...)
}

// sealOverhead is what fcrypto.Seal adds to a padded body.
var sealOverhead = fcrypto.SealedSize(0) - int(fcrypto.Padme(4))

// validSealedLen reports whether n is a length fcrypto.Seal produces for
// some payload of at most MaxFrameSize bytes. The padded body of a sealed
// message is always a Padme value, so most damaged lengths are not.
func validSealedLen(n int) bool {
	if n < minSealedFrame || n > maxSealedFrame {
		return false
	}
	body := uint64(n - sealOverhead)
	return fcrypto.Padme(body) == body
}

// splitFrames walks the frames of data from offset start without
// authenticating them, and stops at the first one that is incomplete (its
// length or body reaches past the end of data) or whose length no frame can
// have. end is that frame's offset, or len(data).
func splitFrames(data []byte, start int) (frames []rawFrame, end int) {
	off := start
	for off < len(data) {
		if len(data)-off < frameLenSize {
			return frames, off
		}
		n := int(binary.BigEndian.Uint32(data[off:]))
		if !validSealedLen(n) || n > len(data)-off-frameLenSize {
			return frames, off
		}
		frames = append(frames, rawFrame{off: int64(off), sealed: data[off+frameLenSize : off+frameLenSize+n]})
		off += frameLenSize + n
	}
	return frames, off
}

// decodeJournal authenticates and opens the frames of a journal whose
// header (already checked) names id, in order. It returns the payloads and
// the length of the good prefix.
//
// At the first frame that is incomplete, malformed or fails authentication
// it decides between a torn tail and damage. Frames are appended one at a
// time and each is synced before the next is written, so a crash can spoil
// only the last write, however its pages land: if any later frame
// authenticates, the bad one was committed and the journal is damaged (a
// *CorruptError with File unset); if none does, it is a torn tail, and
// everything from it on is dropped.
func decodeJournal(data []byte, id journalID, key *fcrypto.Key) (frames [][]byte, good int64, err error) {
	raw, end := splitFrames(data, journalHdrSize)
	for i, f := range raw {
		p, err := fcrypto.Open(key, frameAD(id, uint64(i)+1), f.sealed)
		if err != nil {
			if laterFrame(data, f.off, uint64(i)+1, id, key) {
				return nil, 0, &CorruptError{Offset: f.off, Reason: "frame failed authentication"}
			}
			return frames, f.off, nil
		}
		frames = append(frames, p)
	}
	if end < len(data) && laterFrame(data, int64(end), uint64(len(raw))+1, id, key) {
		return nil, 0, &CorruptError{Offset: int64(end), Reason: "frame has a damaged length"}
	}
	return frames, int64(end), nil
}

const (
	// maxSkip bounds how many damaged frames in a row laterFrame looks
	// past.
	maxSkip = 64
	// scanBudget bounds the bytes laterFrame authenticates, so that no
	// journal, however crafted, makes Open slow. A crash leaves one frame
	// of our own past the last good one, which comes nowhere near it.
	scanBudget = 256 << 20
)

// laterFrame reports whether frame seq, expected at off, or one of the
// frames after it authenticates anywhere past off: proof that the journal
// went on after off, which a crash cannot leave. Candidates must have a
// valid length and the seal version byte, so few offsets cost an AEAD
// check. A search that runs out of budget counts as proof too.
func laterFrame(data []byte, off int64, seq uint64, id journalID, key *fcrypto.Key) bool {
	budget := scanBudget
	for o := int(off) + frameLenSize + minSealedFrame; o+frameLenSize+minSealedFrame <= len(data); o++ {
		n := int(binary.BigEndian.Uint32(data[o:]))
		if !validSealedLen(n) || n > len(data)-o-frameLenSize || data[o+frameLenSize] != sealVersion {
			continue
		}
		sealed := data[o+frameLenSize : o+frameLenSize+n]
		for s := seq; s <= seq+maxSkip; s++ {
			if budget -= n; budget < 0 {
				// Not what a crash leaves: call it damage rather
				// than drop what may be committed frames.
				return true
			}
			if _, err := fcrypto.Open(key, frameAD(id, s), sealed); err == nil {
				return true
			}
		}
	}
	return false
}

// sealVersion is the first byte of every sealed message (fcrypto's
// layout, version 1).
const sealVersion = 0x01

// encryptSnapshot returns the age file holding state, the journal id and the
// vault key, encrypted to r.
func encryptSnapshot(r age.Recipient, id journalID, key *fcrypto.Key, state []byte) ([]byte, error) {
	hdr := make([]byte, 0, snapshotHdrLen)
	hdr = append(hdr, snapshotMagic...)
	hdr = append(hdr, formatVersion)
	hdr = append(hdr, id[:]...)
	kb := key.Bytes()
	hdr = append(hdr, kb...)
	clear(kb)
	hdr = binary.BigEndian.AppendUint64(hdr, uint64(len(state)))
	defer clear(hdr)

	var buf bytes.Buffer
	// age adds a header of a few KiB and 16 bytes per 64 KiB chunk.
	buf.Grow(len(state) + len(state)/4096 + 8192)
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		return nil, fmt.Errorf("encrypt replica: %v", err)
	}
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("encrypt replica: %v", err)
	}
	if _, err := w.Write(state); err != nil {
		return nil, fmt.Errorf("encrypt replica: %v", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encrypt replica: %v", err)
	}
	return buf.Bytes(), nil
}

// checkSnapshotKey makes sure identity can open a snapshot just encrypted,
// so that a recipient that does not belong to the identity is caught before
// it replaces a snapshot that could be read.
func checkSnapshotKey(ct []byte, identity age.Identity) error {
	r, err := age.Decrypt(bytes.NewReader(ct), identity)
	if err != nil {
		return errors.New("the recipient does not belong to the identity")
	}
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != snapshotMagic {
		return errors.New("the new snapshot does not read back")
	}
	return nil
}

// decryptSnapshot opens a snapshot. Errors: ErrWrongKey, ErrVersion, or a
// *CorruptError with File unset.
func decryptSnapshot(ct []byte, identity age.Identity) (id journalID, key *fcrypto.Key, state []byte, err error) {
	r, err := age.Decrypt(bytes.NewReader(ct), identity)
	if err != nil {
		if nm := new(age.NoIdentityMatchError); errors.As(err, &nm) {
			return id, nil, nil, ErrWrongKey
		}
		return id, nil, nil, &CorruptError{Offset: -1, Reason: fmt.Sprintf("age: %v", err)}
	}
	hdr := make([]byte, snapshotHdrLen)
	defer clear(hdr)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return id, nil, nil, payloadError(err)
	}
	if string(hdr[:len(snapshotMagic)]) != snapshotMagic {
		return id, nil, nil, &CorruptError{Offset: -1, Reason: "not a replica file"}
	}
	p := hdr[len(snapshotMagic):]
	if p[0] != formatVersion {
		return id, nil, nil, ErrVersion
	}
	p = p[1:]
	copy(id[:], p[:idSize])
	p = p[idSize:]
	key, _ = fcrypto.KeyFromBytes(p[:fcrypto.KeySize])
	p = p[fcrypto.KeySize:]
	n := binary.BigEndian.Uint64(p)
	// The plaintext cannot be longer than the ciphertext; checking first
	// keeps a damaged length from asking for an absurd allocation.
	if n > uint64(len(ct)) {
		key.Destroy()
		return id, nil, nil, &CorruptError{Offset: -1, Reason: "state length out of range"}
	}
	state = make([]byte, n)
	if _, err := io.ReadFull(r, state); err != nil {
		key.Destroy()
		return id, nil, nil, payloadError(err)
	}
	// Reading past the end authenticates the final chunk and rejects
	// trailing data.
	var extra [1]byte
	switch _, err := io.ReadFull(r, extra[:]); err {
	case io.EOF:
	case nil:
		key.Destroy()
		return id, nil, nil, &CorruptError{Offset: -1, Reason: "trailing data after the state"}
	default:
		key.Destroy()
		return id, nil, nil, payloadError(err)
	}
	return id, key, state, nil
}

func payloadError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &CorruptError{Offset: -1, Reason: "truncated"}
	}
	return &CorruptError{Offset: -1, Reason: fmt.Sprintf("age: %v", err)}
}
