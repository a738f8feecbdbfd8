package syncproto

import (
	"fmt"
	"strings"
)

// HLC is a hybrid logical clock reading: wall time in milliseconds since
// the Unix epoch and a logical counter for events within one millisecond.
type HLC struct {
	WallMS  uint64
	Logical uint32
}

// Less orders clocks; ties between devices are broken by the caller with
// the device id.
func (h HLC) Less(o HLC) bool {
	if h.WallMS != o.WallMS {
		return h.WallMS < o.WallMS
	}
	return h.Logical < o.Logical
}

func (h HLC) String() string { return fmt.Sprintf("%d.%d", h.WallMS, h.Logical) }

// OpType says what an operation does to a record.
type OpType byte

// Do not reorder: these values are on the wire.
const (
	OpSet    OpType = 1 // set a field (last writer wins)
	OpAdd    OpType = 2 // add an element to a grow-only set (log entry, sign-off)
	OpRemove OpType = 3 // tombstone an element
)

// Op is one change to one record of a stream.
type Op struct {
	Type   OpType
	Kind   string  // record kind: "resident", "log", "goal", ...
	Record DeltaID // record id (random); for the resident record, zero
	Field  string  // field name for OpSet, empty otherwise
	Value  []byte  // new value for OpSet / element body for OpAdd
}

// Delta is one edit: the plaintext that is sealed under a stream's epoch
// key. Its stream, epoch and author are repeated inside so a sealed delta
// moved to another stream or batch fails to open or fails the check.
type Delta struct {
	Tenant TenantID
	Stream StreamID
	Epoch  Epoch
	Author DeviceID
	ID     DeltaID
	Clock  HLC
	Ops    []Op
}

// Marshal returns the delta's canonical encoding.
func (d *Delta) Marshal() ([]byte, error) {
	if len(d.Ops) == 0 || len(d.Ops) > MaxOpsPerDelta {
		return nil, fmt.Errorf("encode delta: %d ops: %w", len(d.Ops), ErrMalformed)
	}
	e := &enc{}
	e.header(MsgDelta)
	e.raw(d.Tenant[:])
	e.raw(d.Stream[:])
	e.u32(uint32(d.Epoch))
	e.raw(d.Author[:])
	e.raw(d.ID[:])
	e.u64(d.Clock.WallMS)
	e.u32(d.Clock.Logical)
	e.u32(uint32(len(d.Ops)))
	for _, op := range d.Ops {
		if err := op.check(); err != nil {
			return nil, fmt.Errorf("encode delta: %w", err)
		}
		e.u8(byte(op.Type))
		e.str(op.Kind)
		e.raw(op.Record[:])
		e.str(op.Field)
		e.blob(op.Value)
	}
	return e.b, nil
}

func (op *Op) check() error {
	if op.Type < OpSet || op.Type > OpRemove {
		return fmt.Errorf("op type %d: %w", op.Type, ErrMalformed)
	}
	if op.Kind == "" || len(op.Kind) > MaxStringLen || len(op.Field) > MaxStringLen || len(op.Value) > MaxBlobLen {
		return fmt.Errorf("op %s: %w", op.Kind, ErrMalformed)
	}
	if (op.Type == OpSet) != (op.Field != "") {
		return fmt.Errorf("op %s: field only with set: %w", op.Kind, ErrMalformed)
	}
	if strings.ContainsRune(op.Kind, 0) || strings.ContainsRune(op.Field, 0) {
		return fmt.Errorf("op %s: %w", op.Kind, ErrMalformed)
	}
	return nil
}

// UnmarshalDelta decodes a canonical delta.
func UnmarshalDelta(b []byte) (*Delta, error) {
	d := &dec{b: b}
	d.header(MsgDelta)
	x := &Delta{}
	d.fixed(x.Tenant[:])
	d.fixed(x.Stream[:])
	x.Epoch = Epoch(d.u32())
	d.fixed(x.Author[:])
	d.fixed(x.ID[:])
	x.Clock.WallMS = d.u64()
	x.Clock.Logical = d.u32()
	n := d.u32()
	if d.err == nil && (n == 0 || n > MaxOpsPerDelta) {
		d.fail(ErrMalformed)
	}
	for i := uint32(0); d.err == nil && i < n; i++ {
		var op Op
		op.Type = OpType(d.u8())
		op.Kind = d.str()
		d.fixed(op.Record[:])
		op.Field = d.str()
		op.Value = d.blob(MaxBlobLen)
		if d.err == nil {
			if err := op.check(); err != nil {
				d.fail(ErrMalformed)
			}
		}
		x.Ops = append(x.Ops, op)
	}
	if err := d.finish("delta"); err != nil {
		return nil, err
	}
	return x, nil
}

// DeltaAD is the associated data a delta is sealed with: it binds the
// ciphertext to its tenant, stream, epoch and id.
func DeltaAD(tenant TenantID, stream StreamID, epoch Epoch, id DeltaID) []byte {
	e := &enc{}
	e.raw([]byte("fristed/v1/delta"))
	e.raw(tenant[:])
	e.raw(stream[:])
	e.u32(uint32(epoch))
	e.raw(id[:])
	return e.b
}

// EpochKeyContext is the context an epoch key's commitment is made in.
func EpochKeyContext(tenant TenantID, stream StreamID, epoch Epoch) []byte {
	e := &enc{}
	e.raw([]byte("fristed/v1/epoch-key"))
	e.raw(tenant[:])
	e.raw(stream[:])
	e.u32(uint32(epoch))
	return e.b
}
