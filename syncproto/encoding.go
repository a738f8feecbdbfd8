package syncproto

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the format version byte that opens every message. Decoders
// reject any other value with ErrVersion.
const Version = 0x01

// MsgType is the second byte of every message.
type MsgType byte

// Do not reorder: these values are on the wire.
const (
	MsgDelta      MsgType = 1
	MsgBatch      MsgType = 2
	MsgReceipt    MsgType = 3
	MsgStatement  MsgType = 4
	MsgSnapshot   MsgType = 5
	MsgEnrolment  MsgType = 6
	MsgAuth       MsgType = 7
	MsgWrappedKey MsgType = 8
	// MsgSnapshotContent is a snapshot's plaintext, inside the sealed
	// Content; it never travels in the clear.
	MsgSnapshotContent MsgType = 9
	// MsgEnrolName is the device name an enrolment request seals to the
	// coordinators, padded to a fixed size.
	MsgEnrolName MsgType = 10
)

func (t MsgType) String() string {
	switch t {
	case MsgDelta:
		return "delta"
	case MsgBatch:
		return "batch"
	case MsgReceipt:
		return "receipt"
	case MsgStatement:
		return "statement"
	case MsgSnapshot:
		return "snapshot"
	case MsgEnrolment:
		return "enrolment"
	case MsgAuth:
		return "auth"
	case MsgWrappedKey:
		return "wrapped key"
	case MsgSnapshotContent:
		return "snapshot content"
	case MsgEnrolName:
		return "enrolment name"
	}
	return fmt.Sprintf("type(%d)", byte(t))
}

// Decoding errors. Every decoder returns one of these (wrapped with the
// message kind and the step), never a panic.
var (
	ErrVersion   = errors.New("unknown format version (newer version?)")
	ErrType      = errors.New("unexpected message type")
	ErrTruncated = errors.New("truncated message")
	ErrTrailing  = errors.New("trailing bytes after message")
	ErrMalformed = errors.New("malformed message")
	ErrTooLarge  = errors.New("message too large")
)

// Limits that bound what a decoder will allocate.
const (
	MaxDeltasPerBatch = 1000
	MaxOpsPerDelta    = 1000
	MaxStringLen      = 4096
	MaxBlobLen        = 16 << 20
	MaxDevicesInEpoch = 1000
)

// enc builds canonical encodings: fixed-width big-endian integers and
// length-prefixed byte strings, so each value has exactly one encoding.
type enc struct{ b []byte }

func (e *enc) u8(v byte)     { e.b = append(e.b, v) }
func (e *enc) u16(v uint16)  { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *enc) u32(v uint32)  { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *enc) u64(v uint64)  { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *enc) raw(v []byte)  { e.b = append(e.b, v...) }
func (e *enc) str(s string)  { e.u16(uint16(len(s))); e.b = append(e.b, s...) }
func (e *enc) blob(v []byte) { e.u32(uint32(len(v))); e.b = append(e.b, v...) }
func (e *enc) bool(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}
func (e *enc) header(t MsgType) { e.u8(Version); e.u8(byte(t)) }

// dec reads what enc writes, with a sticky error.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *dec) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.fail(ErrTruncated)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) u8() byte {
	v := d.take(1)
	if v == nil {
		return 0
	}
	return v[0]
}
func (d *dec) u16() uint16 {
	v := d.take(2)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint16(v)
}
func (d *dec) u32() uint32 {
	v := d.take(4)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}
func (d *dec) u64() uint64 {
	v := d.take(8)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}
func (d *dec) fixed(dst []byte) { copy(dst, d.take(len(dst))) }
func (d *dec) str() string {
	n := int(d.u16())
	if n > MaxStringLen {
		d.fail(ErrTooLarge)
		return ""
	}
	return string(d.take(n))
}
func (d *dec) blob(max int) []byte {
	n := d.u32()
	if uint64(n) > uint64(max) {
		d.fail(ErrTooLarge)
		return nil
	}
	v := d.take(int(n))
	if v == nil {
		return nil
	}
	return append([]byte{}, v...)
}
func (d *dec) bool() bool {
	switch d.u8() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail(ErrMalformed)
	return false
}

// header checks the version and type bytes.
func (d *dec) header(want MsgType) {
	if d.err != nil {
		return
	}
	if len(d.b) < 1 {
		d.fail(ErrTruncated)
		return
	}
	if d.b[0] != Version {
		d.fail(ErrVersion)
		return
	}
	if len(d.b) < 2 {
		d.fail(ErrTruncated)
		return
	}
	if MsgType(d.b[1]) != want {
		d.fail(ErrType)
		return
	}
	d.b = d.b[2:]
}

// finish returns the sticky error, or ErrTrailing if bytes are left over.
func (d *dec) finish(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.err = ErrTrailing
	}
	if d.err != nil {
		return fmt.Errorf("decode %s: %w", what, d.err)
	}
	return nil
}
