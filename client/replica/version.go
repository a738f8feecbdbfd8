package replica

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/fristed/fristed/syncproto"
)

// versionLen is the size of an encoded version: wall (u64), logical (u32)
// and device (16 bytes), big-endian, so that comparing the bytes orders
// versions as the merge does: by clock, then by device id.
const versionLen = 8 + 4 + 16

// version names one register write: the writer's clock and device.
type version [versionLen]byte

func makeVersion(c syncproto.HLC, dev syncproto.DeviceID) version {
	var v version
	binary.BigEndian.PutUint64(v[0:8], c.WallMS)
	binary.BigEndian.PutUint32(v[8:12], c.Logical)
	copy(v[12:], dev[:])
	return v
}

func (v version) clock() syncproto.HLC {
	return syncproto.HLC{WallMS: binary.BigEndian.Uint64(v[0:8]), Logical: binary.BigEndian.Uint32(v[8:12])}
}

func (v version) device() syncproto.DeviceID {
	var d syncproto.DeviceID
	copy(d[:], v[12:])
	return d
}

// String prints a version as clock/device: 1714555800000.0/d_...
func (v version) String() string { return v.clock().String() + "/" + v.device().String() }

// maxBases is the most heads one write can supersede: the count is one
// byte on the wire.
const maxBases = 255

// encodeSetValue is the Value of an OpSet: [u8 n][n versions][value]. The
// bases are the register heads the writer saw; they are written sorted and
// without duplicates.
func encodeSetValue(bases []version, value string) ([]byte, error) {
	bases = slices.Clone(bases)
	slices.SortFunc(bases, func(a, b version) int { return bytes.Compare(a[:], b[:]) })
	bases = slices.Compact(bases)
	if len(bases) > maxBases {
		return nil, fmt.Errorf("%d concurrent values in one field: resolve some first", len(bases))
	}
	out := make([]byte, 0, 1+len(bases)*versionLen+len(value))
	out = append(out, byte(len(bases)))
	for _, b := range bases {
		out = append(out, b[:]...)
	}
	return append(out, value...), nil
}

// decodeSetValue splits an OpSet Value into its bases (as the raw
// concatenation of versions) and the value.
func decodeSetValue(b []byte) (bases, value []byte, err error) {
	if len(b) < 1 {
		return nil, nil, fmt.Errorf("set value without a base count: %w", ErrMalformed)
	}
	n := int(b[0]) * versionLen
	if len(b)-1 < n {
		return nil, nil, fmt.Errorf("set value shorter than its %d bases: %w", b[0], ErrMalformed)
	}
	return b[1 : 1+n], b[1+n:], nil
}

// splitBases turns a raw concatenation of versions into versions.
func splitBases(raw []byte) []version {
	out := make([]version, len(raw)/versionLen)
	for i := range out {
		copy(out[i][:], raw[i*versionLen:])
	}
	return out
}
