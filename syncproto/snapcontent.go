package syncproto

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	fcrypto "github.com/fristed/fristed/crypto"
)

// SnapshotContent is what a Snapshot's sealed Content holds: one stream's
// replica state after batch Seq, with everything the merge needs to go on
// from there as if it had replayed the history: the applied deltas, every
// register write (clock and device version, bases, head flag, a head's
// value: conflicts are registers with several heads), the versions named
// as bases, set elements and tombstones, and each author's last batch (its
// counter and hash) so that the batches after Seq are checked in their
// authors' order as usual.
//
// Its encoding is canonical: Marshal sorts every list by its key and
// UnmarshalSnapshotContent refuses a list that is not strictly ascending
// (so no duplicates), a head flag other than 0 or 1, and bases that are not
// whole versions; a decoded content re-encodes to the same bytes. Two
// replicas in the same state give the same bytes, which is how a
// coordinator checks a snapshot against the history.
//
//	01 09 | tenant | stream | seq u64 | head batch hash
//	| u32 n | n × author: device | counter u64 | last batch hash
//	| u32 n | n × delta: id | content hash (32)
//	| u32 n | n × write: kind str | record | field str | version (28) | delta
//	                     | bases blob (k × version) | head u8 | value blob if head
//	| u32 n | n × superseded: kind str | record | field str | version (28)
//	| u32 n | n × element: kind str | id | body blob
//	| u32 n | n × tombstone: kind str | id
//
// A version is wall ms u64 | logical u32 | device (16), big-endian, so its
// bytes order as the merge orders writes. Strings are u16-prefixed (at most
// MaxStringLen), blobs u32-prefixed (at most MaxBlobLen).
type SnapshotContent struct {
	Tenant     TenantID
	Stream     StreamID
	Seq        Seq  // the last batch folded in
	Head       Hash // that batch's hash
	Authors    []SnapshotAuthor
	Deltas     []SnapshotDelta
	Writes     []SnapshotWrite
	Superseded []SnapshotSuperseded
	Elements   []SnapshotElement
	Tombstones []SnapshotTombstone
}

// RegisterVersionLen is the size of a register write's version.
const RegisterVersionLen = 8 + 4 + 16

// RegisterVersion is a register write's clock and device, big-endian.
type RegisterVersion [RegisterVersionLen]byte

// maxSnapshotBases is the most versions one write names (a one-byte count
// in the set op).
const maxSnapshotBases = 255

// SnapshotAuthor is an author's last batch in the stream up to Seq.
type SnapshotAuthor struct {
	Device  DeviceID
	Counter uint64
	Last    Hash
}

// SnapshotDelta is an applied delta and the hash of what it does.
type SnapshotDelta struct {
	ID   DeltaID
	Hash Hash
}

// SnapshotWrite is one register write. Value is kept only for a head.
type SnapshotWrite struct {
	Kind    string
	Record  DeltaID
	Field   string
	Version RegisterVersion
	Delta   DeltaID
	Bases   []byte // k × RegisterVersion, as the writer sent them
	Head    bool
	Value   []byte // nil unless Head
}

// SnapshotSuperseded is a version named as a base by a known write.
type SnapshotSuperseded struct {
	Kind    string
	Record  DeltaID
	Field   string
	Version RegisterVersion
}

// SnapshotElement is a set element and its body.
type SnapshotElement struct {
	Kind string
	ID   DeltaID
	Body []byte
}

// SnapshotTombstone is a removal.
type SnapshotTombstone struct {
	Kind string
	ID   DeltaID
}

func compareAuthor(a, b SnapshotAuthor) int { return bytes.Compare(a.Device[:], b.Device[:]) }
func compareDelta(a, b SnapshotDelta) int   { return bytes.Compare(a.ID[:], b.ID[:]) }
func compareWrite(a, b SnapshotWrite) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), bytes.Compare(a.Record[:], b.Record[:]), cmp.Compare(a.Field, b.Field),
		bytes.Compare(a.Version[:], b.Version[:]), bytes.Compare(a.Delta[:], b.Delta[:]))
}
func compareSuperseded(a, b SnapshotSuperseded) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), bytes.Compare(a.Record[:], b.Record[:]), cmp.Compare(a.Field, b.Field),
		bytes.Compare(a.Version[:], b.Version[:]))
}
func compareElement(a, b SnapshotElement) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), bytes.Compare(a.ID[:], b.ID[:]))
}
func compareTombstone(a, b SnapshotTombstone) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), bytes.Compare(a.ID[:], b.ID[:]))
}

// check refuses what the decoder would refuse, so that Marshal never
// writes bytes UnmarshalSnapshotContent rejects.
func (c *SnapshotContent) check() error {
	str := func(s string) bool { return len(s) <= MaxStringLen }
	for _, w := range c.Writes {
		if w.Kind == "" || !str(w.Kind) || !str(w.Field) || len(w.Bases)%RegisterVersionLen != 0 ||
			len(w.Bases)/RegisterVersionLen > maxSnapshotBases || len(w.Value) > MaxBlobLen || (!w.Head && w.Value != nil) {
			return fmt.Errorf("write %q/%q: %w", w.Kind, w.Field, ErrMalformed)
		}
	}
	for _, s := range c.Superseded {
		if s.Kind == "" || !str(s.Kind) || !str(s.Field) {
			return fmt.Errorf("superseded %q: %w", s.Kind, ErrMalformed)
		}
	}
	for _, e := range c.Elements {
		if e.Kind == "" || !str(e.Kind) || len(e.Body) > MaxBlobLen {
			return fmt.Errorf("element %q: %w", e.Kind, ErrMalformed)
		}
	}
	for _, t := range c.Tombstones {
		if t.Kind == "" || !str(t.Kind) {
			return fmt.Errorf("tombstone %q: %w", t.Kind, ErrMalformed)
		}
	}
	return nil
}

func sortedUnique[T any](s []T, f func(a, b T) int) []T {
	s = slices.Clone(s)
	slices.SortFunc(s, f)
	return slices.CompactFunc(s, func(a, b T) bool { return f(a, b) == 0 })
}

// Marshal returns the canonical encoding; lists are sorted (and exact
// duplicates dropped) first, so the caller may give them in any order.
func (c *SnapshotContent) Marshal() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("encode snapshot content: %w", err)
	}
	e := &enc{}
	e.header(MsgSnapshotContent)
	e.raw(c.Tenant[:])
	e.raw(c.Stream[:])
	e.u64(uint64(c.Seq))
	e.raw(c.Head[:])
	authors := sortedUnique(c.Authors, compareAuthor)
	e.u32(uint32(len(authors)))
	for _, a := range authors {
		e.raw(a.Device[:])
		e.u64(a.Counter)
		e.raw(a.Last[:])
	}
	deltas := sortedUnique(c.Deltas, compareDelta)
	e.u32(uint32(len(deltas)))
	for _, d := range deltas {
		e.raw(d.ID[:])
		e.raw(d.Hash[:])
	}
	writes := sortedUnique(c.Writes, compareWrite)
	e.u32(uint32(len(writes)))
	for _, w := range writes {
		e.str(w.Kind)
		e.raw(w.Record[:])
		e.str(w.Field)
		e.raw(w.Version[:])
		e.raw(w.Delta[:])
		e.blob(w.Bases)
		e.bool(w.Head)
		if w.Head {
			e.blob(w.Value)
		}
	}
	sup := sortedUnique(c.Superseded, compareSuperseded)
	e.u32(uint32(len(sup)))
	for _, s := range sup {
		e.str(s.Kind)
		e.raw(s.Record[:])
		e.str(s.Field)
		e.raw(s.Version[:])
	}
	els := sortedUnique(c.Elements, compareElement)
	e.u32(uint32(len(els)))
	for _, el := range els {
		e.str(el.Kind)
		e.raw(el.ID[:])
		e.blob(el.Body)
	}
	tombs := sortedUnique(c.Tombstones, compareTombstone)
	e.u32(uint32(len(tombs)))
	for _, t := range tombs {
		e.str(t.Kind)
		e.raw(t.ID[:])
	}
	return e.b, nil
}

// count reads a list length and refuses one that cannot fit in what is
// left (each item takes at least min bytes), so a forged count cannot make
// the decoder allocate.
func (d *dec) count(min int) int {
	n := d.u32()
	if d.err == nil && uint64(n)*uint64(min) > uint64(len(d.b)) {
		d.fail(ErrTruncated)
		return 0
	}
	return int(n)
}

// list decodes n items and requires them strictly ascending under f.
func decodeList[T any](d *dec, min int, item func() T, f func(a, b T) int) []T {
	n := d.count(min)
	if d.err != nil || n == 0 {
		return nil
	}
	out := make([]T, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		v := item()
		if d.err != nil {
			break
		}
		if i > 0 && f(out[i-1], v) >= 0 {
			d.fail(ErrMalformed)
			break
		}
		out = append(out, v)
	}
	if d.err != nil {
		return nil
	}
	return out
}

// UnmarshalSnapshotContent decodes a snapshot's opened content, refusing
// any non-canonical form.
func UnmarshalSnapshotContent(b []byte) (*SnapshotContent, error) {
	d := &dec{b: b}
	d.header(MsgSnapshotContent)
	c := &SnapshotContent{}
	d.fixed(c.Tenant[:])
	d.fixed(c.Stream[:])
	c.Seq = Seq(d.u64())
	d.fixed(c.Head[:])
	kind := func() string {
		s := d.str()
		if d.err == nil && s == "" {
			d.fail(ErrMalformed)
		}
		return s
	}
	c.Authors = decodeList(d, 16+8+32, func() (a SnapshotAuthor) {
		d.fixed(a.Device[:])
		a.Counter = d.u64()
		d.fixed(a.Last[:])
		return
	}, compareAuthor)
	c.Deltas = decodeList(d, 16+32, func() (x SnapshotDelta) {
		d.fixed(x.ID[:])
		d.fixed(x.Hash[:])
		return
	}, compareDelta)
	c.Writes = decodeList(d, 2+16+2+RegisterVersionLen+16+4+1, func() (w SnapshotWrite) {
		w.Kind = kind()
		d.fixed(w.Record[:])
		w.Field = d.str()
		d.fixed(w.Version[:])
		d.fixed(w.Delta[:])
		w.Bases = d.blob(maxSnapshotBases * RegisterVersionLen)
		if d.err == nil && len(w.Bases)%RegisterVersionLen != 0 {
			d.fail(ErrMalformed)
		}
		if w.Head = d.bool(); w.Head {
			w.Value = d.blob(MaxBlobLen)
		}
		return
	}, compareWrite)
	c.Superseded = decodeList(d, 2+16+2+RegisterVersionLen, func() (s SnapshotSuperseded) {
		s.Kind = kind()
		d.fixed(s.Record[:])
		s.Field = d.str()
		d.fixed(s.Version[:])
		return
	}, compareSuperseded)
	c.Elements = decodeList(d, 2+16+4, func() (e SnapshotElement) {
		e.Kind = kind()
		d.fixed(e.ID[:])
		e.Body = d.blob(MaxBlobLen)
		return
	}, compareElement)
	c.Tombstones = decodeList(d, 2+16, func() (t SnapshotTombstone) {
		t.Kind = kind()
		d.fixed(t.ID[:])
		return
	}, compareTombstone)
	if err := d.finish("snapshot content"); err != nil {
		return nil, err
	}
	return c, nil
}

// snapshotChunk is the plaintext size of one sealed chunk of a snapshot's
// content; crypto.Seal bounds one message at 16 MiB and a large stream's
// snapshot is bigger.
const snapshotChunk = 4 << 20

// SealSnapshotContent seals a snapshot's content under the epoch key as a
// sequence of chunks, each
//
//	u32 length | crypto.Seal(key, SnapshotAD | u32 index | u8 last, part)
//
// of at most 4 MiB of plaintext, the last one flagged (the STREAM
// construction age uses for files): a chunk cannot be moved, dropped,
// repeated or taken from another snapshot, and the content cannot be cut
// after a chunk, without OpenSnapshotContent failing. Empty content is one
// empty last chunk.
func SealSnapshotContent(key *fcrypto.Key, tenant TenantID, stream StreamID, epoch Epoch, seq Seq, plain []byte) ([]byte, error) {
	if len(plain) > maxSnapshotContent {
		return nil, fmt.Errorf("seal snapshot: %w", ErrTooLarge)
	}
	ad := SnapshotAD(tenant, stream, epoch, seq)
	e := &enc{}
	for i := 0; ; i++ {
		n := min(len(plain), snapshotChunk)
		last := n == len(plain)
		sealed, err := fcrypto.Seal(key, chunkAD(ad, i, last), plain[:n])
		if err != nil {
			return nil, fmt.Errorf("seal snapshot: %w", err)
		}
		e.blob(sealed)
		plain = plain[n:]
		if last {
			return e.b, nil
		}
	}
}

func chunkAD(ad []byte, i int, last bool) []byte {
	e := &enc{b: append([]byte(nil), ad...)}
	e.u32(uint32(i))
	e.bool(last)
	return e.b
}

// OpenSnapshotContent opens what SealSnapshotContent sealed. A chunk that
// fails authentication gives crypto.ErrSealAuth (as does content cut after
// a chunk that is not the last); broken framing ErrTruncated or
// ErrTrailing.
func OpenSnapshotContent(key *fcrypto.Key, tenant TenantID, stream StreamID, epoch Epoch, seq Seq, content []byte) ([]byte, error) {
	ad := SnapshotAD(tenant, stream, epoch, seq)
	d := &dec{b: content}
	var out []byte
	for i := 0; ; i++ {
		sealed := d.blob(maxSnapshotContent)
		if d.err != nil {
			return nil, fmt.Errorf("open snapshot: %w", d.err)
		}
		last := len(d.b) == 0
		part, err := fcrypto.Open(key, chunkAD(ad, i, last), sealed)
		if err != nil {
			clear(out)
			return nil, fmt.Errorf("open snapshot: %w", err)
		}
		if len(part) > snapshotChunk || (!last && len(part) != snapshotChunk) {
			clear(out)
			return nil, fmt.Errorf("open snapshot: chunk %d: %w", i, ErrMalformed)
		}
		out = append(out, part...)
		if last {
			return out, nil
		}
	}
}
