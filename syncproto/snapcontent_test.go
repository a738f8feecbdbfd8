package syncproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/stretchr/testify/require"
)

// TestSnapshotChunks: content larger than one sealed message goes in
// chunks that open only whole, in order, from this snapshot, and not cut.
func TestSnapshotChunks(t *testing.T) {
	key := testEpochKey(t, testStreamID("mina"), 1)
	tenant, s := testTenantID("org"), testStreamID("mina")
	plain := bytes.Repeat([]byte("snapshot content "), (2*snapshotChunk+1000)/17)
	sealed, err := SealSnapshotContent(key, tenant, s, 1, 9, plain)
	require.NoError(t, err)
	got, err := OpenSnapshotContent(key, tenant, s, 1, 9, sealed)
	require.NoError(t, err)
	require.Equal(t, plain, got)

	// The chunks, as framed.
	var chunks [][]byte
	for rest := sealed; len(rest) > 0; {
		n := binary.BigEndian.Uint32(rest)
		chunks = append(chunks, rest[:4+n])
		rest = rest[4+n:]
	}
	require.Len(t, chunks, 3)
	join := func(cs ...[]byte) []byte { return bytes.Join(cs, nil) }
	other, err := SealSnapshotContent(key, tenant, s, 1, 10, plain)
	require.NoError(t, err)
	for _, tc := range []struct {
		name    string
		content []byte
		seq     Seq
		want    error
	}{
		{"cut after a chunk", join(chunks[0], chunks[1]), 9, fcrypto.ErrSealAuth},
		{"chunks swapped", join(chunks[1], chunks[0], chunks[2]), 9, fcrypto.ErrSealAuth},
		{"chunk repeated", join(chunks[0], chunks[0], chunks[1], chunks[2]), 9, fcrypto.ErrSealAuth},
		{"chunk added after the last", join(chunks[0], chunks[1], chunks[2], chunks[2]), 9, fcrypto.ErrSealAuth},
		{"chunk from another snapshot", join(chunks[0], other[len(chunks[0]):len(chunks[0])+len(chunks[1])], chunks[2]), 9, fcrypto.ErrSealAuth},
		{"opened as another point", sealed, 10, fcrypto.ErrSealAuth},
		{"empty", nil, 9, ErrTruncated},
		{"cut inside a chunk", sealed[:len(sealed)-1], 9, ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := OpenSnapshotContent(key, tenant, s, 1, tc.seq, tc.content)
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("got %d bytes, %v; want nothing and %v", len(got), err, tc.want)
			}
		})
	}

	empty, err := SealSnapshotContent(key, tenant, s, 1, 9, nil)
	require.NoError(t, err)
	got, err = OpenSnapshotContent(key, tenant, s, 1, 9, empty)
	require.NoError(t, err)
	require.Empty(t, got)
}
