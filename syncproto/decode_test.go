package syncproto

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/stretchr/testify/require"
)

// decoder is one of the package's decoders, returning nil (not a typed nil
// in an interface) when it fails.
type decoder struct {
	name string
	typ  MsgType
	dec  func([]byte) (any, error)
}

func wrapDecoder[T any](f func([]byte) (*T, error)) func([]byte) (any, error) {
	return func(b []byte) (any, error) {
		v, err := f(b)
		if v == nil {
			return nil, err
		}
		return v, err
	}
}

var decoders = []decoder{
	{"delta", MsgDelta, wrapDecoder(UnmarshalDelta)},
	{"batch", MsgBatch, wrapDecoder(UnmarshalBatch)},
	{"receipt", MsgReceipt, wrapDecoder(UnmarshalReceipt)},
	{"statement", MsgStatement, wrapDecoder(UnmarshalStatement)},
	{"snapshot", MsgSnapshot, wrapDecoder(UnmarshalSnapshot)},
	{"enrolment", MsgEnrolment, wrapDecoder(UnmarshalEnrolment)},
	{"auth proof", MsgAuth, wrapDecoder(UnmarshalAuthProof)},
	{"wrapped key", MsgWrappedKey, wrapDecoder(UnmarshalWrappedKey)},
}

func decoderFor(t MsgType) decoder {
	for _, d := range decoders {
		if d.typ == t {
			return d
		}
	}
	panic(fmt.Sprintf("no decoder for %s", t))
}

// sample is one valid message.
type sample struct {
	name string
	raw  []byte
}

// sampleMessages returns valid messages of every type: every statement of
// the full chain, and one of each other message.
func sampleMessages(t *testing.T) []sample {
	o, _ := fullChain(t)
	var out []sample
	for i, raw := range o.raws {
		out = append(out, sample{fmt.Sprintf("statement %d (%s)", i, o.chain.Statement(ChainPos(i)).Body.Type()), raw})
	}
	d := testDelta(o.tenant, testStreamID("s"), 1, o.d1.id, "sample", []byte("Mina"))
	draw, err := d.Marshal()
	require.NoError(t, err)
	out = append(out, sample{"delta", draw})
	b := o.testBatch(o.d1, testStreamID("s"), 1, o.head(), "x1", "x2")
	out = append(out, sample{"batch", mustMarshalBatch(t, b)})
	r := &Receipt{Tenant: o.tenant, Stream: testStreamID("s"), Seq: 3, Batch: testHash("b"), ReceivedMS: 5}
	require.NoError(t, r.Sign(o.relay))
	out = append(out, sample{"receipt", r.Marshal()})
	snap := &Snapshot{Tenant: o.tenant, Stream: testStreamID("s"), Epoch: 1, Author: o.d1.id, Seq: 3, CreatedMS: 5, Content: []byte("sealed")}
	require.NoError(t, snap.Sign(o.d1.sign))
	out = append(out, sample{"snapshot", snap.Marshal()})
	dev := newTestDevice(t, "new")
	en := &Enrolment{Tenant: o.tenant, Request: testRequestID("new"), SignPub: dev.sign.Public(), Box: dev.recipient(), CreatedMS: 5, Sealed: []byte("age")}
	require.NoError(t, en.Sign(dev.sign))
	out = append(out, sample{"enrolment", en.Marshal()})
	a := &AuthProof{Tenant: o.tenant, Device: o.d1.id, Relay: o.relay.Public(), Nonce: testHash("n"), SignedMS: 5}
	require.NoError(t, a.Sign(o.d1.sign))
	out = append(out, sample{"auth proof", a.Marshal()})
	w := &WrappedKey{Tenant: o.tenant, Stream: testStreamID("s"), Epoch: 1, Device: o.d1.id, Wrapped: []byte("age file")}
	out = append(out, sample{"wrapped key", w.Marshal()})
	return out
}

// reencode marshals a decoded value again.
func reencode(t *testing.T, v any) []byte {
	t.Helper()
	switch v := v.(type) {
	case *Delta:
		b, err := v.Marshal()
		require.NoError(t, err)
		return b
	case *Batch:
		return mustMarshalBatch(t, v)
	case *Statement:
		return mustMarshal(t, v)
	case interface{ Marshal() []byte }:
		return v.Marshal()
	}
	t.Fatalf("cannot re-encode %T", v)
	return nil
}

func TestDecodeRoundTrip(t *testing.T) {
	for _, s := range sampleMessages(t) {
		t.Run(s.name, func(t *testing.T) {
			v, err := decoderFor(MsgType(s.raw[1])).dec(s.raw)
			require.NoError(t, err)
			if got := reencode(t, v); !bytes.Equal(got, s.raw) {
				t.Fatalf("got re-encoding %x, want %x", got, s.raw)
			}
		})
	}
}

// TestTruncatedEveryOffset cuts every message at every offset: each prefix
// is refused as truncated, with nothing returned.
func TestTruncatedEveryOffset(t *testing.T) {
	for _, s := range sampleMessages(t) {
		t.Run(s.name, func(t *testing.T) {
			d := decoderFor(MsgType(s.raw[1]))
			for i := 0; i < len(s.raw); i++ {
				v, err := d.dec(s.raw[:i])
				if !errors.Is(err, ErrTruncated) {
					t.Fatalf("cut at %d of %d: got %v, want %v", i, len(s.raw), err, ErrTruncated)
				}
				if v != nil {
					t.Fatalf("cut at %d: got a %T with the error, want nothing", i, v)
				}
			}
		})
	}
}

func TestUnknownVersion(t *testing.T) {
	for _, s := range sampleMessages(t) {
		for _, version := range []byte{0x00, 0x02, 0xff} {
			t.Run(fmt.Sprintf("%s/%#x", s.name, version), func(t *testing.T) {
				v, err := decoderFor(MsgType(s.raw[1])).dec(withVersion(s.raw, version))
				if !errors.Is(err, ErrVersion) {
					t.Fatalf("got %v, want %v", err, ErrVersion)
				}
				if !strings.Contains(err.Error(), "newer version?") {
					t.Errorf("got message %q, want it to ask \"newer version?\"", err)
				}
				if CodeOf(err) != CodeUnknownVersion {
					t.Errorf("got code %s, want %s", CodeOf(err), CodeUnknownVersion)
				}
				require.Nil(t, v)
			})
		}
	}
	// A lone version byte is a version error, not a truncation: a newer
	// client's message must say so whatever its length.
	for _, d := range decoders {
		if _, err := d.dec([]byte{0x02}); !errors.Is(err, ErrVersion) {
			t.Errorf("%s: one byte 0x02: got %v, want %v", d.name, err, ErrVersion)
		}
	}
}

func TestWrongType(t *testing.T) {
	samples := sampleMessages(t)
	for _, d := range decoders {
		for _, s := range samples {
			if MsgType(s.raw[1]) == d.typ {
				continue
			}
			v, err := d.dec(s.raw)
			if !errors.Is(err, ErrType) {
				t.Errorf("%s given a %s: got %v, want %v", d.name, s.name, err, ErrType)
			}
			require.Nil(t, v)
		}
	}
}

func TestTrailingBytes(t *testing.T) {
	for _, s := range sampleMessages(t) {
		for _, extra := range [][]byte{{0}, {1, 2, 3}, s.raw} {
			v, err := decoderFor(MsgType(s.raw[1])).dec(append(clone(s.raw), extra...))
			if !errors.Is(err, ErrTrailing) {
				t.Errorf("%s + %d bytes: got %v, want %v", s.name, len(extra), err, ErrTrailing)
			}
			require.Nil(t, v)
		}
	}
}

// region names a byte range of a message and the outcomes a flipped bit in
// it may have.
type region struct {
	name       string
	start, end int
	want       []error
}

var framing = []error{ErrTruncated, ErrMalformed, ErrTooLarge, ErrTrailing, ErrBatchHash}

// flipEveryBit flips each bit of raw in turn and requires check's error to
// be one of its region's.
func flipEveryBit(t *testing.T, raw []byte, regions []region, check func([]byte) error) {
	t.Helper()
	covered := 0
	for _, r := range regions {
		require.Equal(t, covered, r.start, "regions must tile the message: %s", r.name)
		covered = r.end
		for i := r.start; i < r.end; i++ {
			for bit := 0; bit < 8; bit++ {
				m := clone(raw)
				m[i] ^= 1 << bit
				err := check(m)
				ok := false
				for _, w := range r.want {
					ok = ok || errors.Is(err, w)
				}
				if !ok {
					t.Fatalf("%s: bit %d of byte %d flipped: got %v, want one of %v", r.name, bit, i, err, r.want)
				}
			}
		}
	}
	require.Equal(t, len(raw), covered, "regions must cover the message")
}

func TestBatchBitFlips(t *testing.T) {
	o := newBaseOrg(t)
	b := o.testBatch(o.d1, o.s, 1, o.head(), "f1", "f2")
	raw := mustMarshalBatch(t, b)
	key := testEpochKey(t, o.s, 1)
	sigAt := batchSigOffset(raw)
	bad := []error{fcrypto.ErrBadSignature}
	regions := []region{
		{"version", 0, 1, []error{ErrVersion}},
		{"type", 1, 2, []error{ErrType}},
		{"ids and header fields", 2, batchOffCount, bad},
		{"delta count", batchOffCount, batchOffEntries, framing},
	}
	for i := range b.Deltas {
		at := batchOffEntries + i*batchEntrySize
		regions = append(regions,
			region{fmt.Sprintf("delta id %d", i), at, at + 16, bad},
			region{fmt.Sprintf("ciphertext hash %d", i), at + 16, at + batchEntrySize, []error{ErrBatchHash}})
	}
	regions = append(regions, region{"signature", sigAt, sigAt + fcrypto.SignatureSize, bad})
	at := sigAt + fcrypto.SignatureSize
	for i, sd := range b.Deltas {
		regions = append(regions,
			region{fmt.Sprintf("ciphertext length %d", i), at, at + 4, []error{ErrTruncated, ErrTooLarge, ErrBatchHash}},
			region{fmt.Sprintf("ciphertext %d", i), at + 4, at + 4 + len(sd.Ciphertext), []error{ErrBatchHash}})
		at += 4 + len(sd.Ciphertext)
	}
	flipEveryBit(t, raw, regions, func(m []byte) error {
		got, err := UnmarshalBatch(m)
		if err != nil {
			require.Nil(t, got)
			return err
		}
		ds, err := OpenBatch(got, key, o.d1.sign.Public())
		if err != nil {
			require.Nil(t, ds)
		}
		return err
	})
}

func TestStatementBitFlips(t *testing.T) {
	o := newBaseOrg(t)
	s := o.next(as(o.c), &EnvelopeSealed{Alarm: testAlarmID("a"), Generation: 1, Inner: testHash("inner"), SealedMS: 5})
	raw := mustMarshal(t, s)
	bad := []error{fcrypto.ErrBadSignature}
	sigAt := len(raw) - fcrypto.SignatureSize
	regions := []region{
		{"version", 0, 1, []error{ErrVersion}},
		{"type", 1, 2, []error{ErrType}},
		{"tenant", offTenant, stmtOffPos, bad},
		{"position", stmtOffPos, 26, bad},
		{"parent", 26, stmtOffSigner, bad},
		{"signer kind", stmtOffSigner, stmtOffDevice, []error{ErrMalformed}},
		{"signer device", stmtOffDevice, 75, bad},
		{"time", 75, stmtOffType, bad},
		// Another type reads the body differently: it fails to decode, or
		// decodes to something the signature does not cover.
		{"statement type", stmtOffType, stmtOffBody, append(framing, fcrypto.ErrBadSignature)},
		{"body", stmtOffBody, sigAt, bad},
		{"signature", sigAt, len(raw), bad},
	}
	flipEveryBit(t, raw, regions, func(m []byte) error {
		got, err := UnmarshalStatement(m)
		if err != nil {
			require.Nil(t, got)
			return err
		}
		return got.VerifySig(o.c.sign.Public())
	})
	// In a chain, a changed position or parent no longer extends it.
	for _, at := range []int{stmtOffPos + 7, stmtOffPos, 26, 57} {
		m := clone(raw)
		m[at] ^= 1
		before := o.chain.State().Clone()
		if _, err := o.chain.Append(m); !errors.Is(err, ErrChainBroken) {
			t.Errorf("byte %d flipped: got %v, want %v", at, err, ErrChainBroken)
		}
		require.Equal(t, before, o.chain.State())
	}
}

// TestEncoderRefusesWhatDecoderRefuses: every value an encoder accepts
// decodes again, so nothing is signed that cannot be read back.
func TestEncoderRefusesWhatDecoderRefuses(t *testing.T) {
	o := newBaseOrg(t)
	many := make([]DeviceID, MaxDevicesInEpoch+1)
	for i := range many {
		many[i][0], many[i][1] = byte(i>>8), byte(i)
	}
	bodies := []struct {
		name string
		body Body
	}{
		{"point without flag", &DeviceRevoked{Device: o.d1.id, CompromisedSince: 5}},
		{"stream kind 0", &StreamCreated{Stream: testStreamID("x")}},
		{"stream kind 4", &StreamCreated{Stream: testStreamID("x"), Kind: 4}},
		{"unsorted devices", &EpochStarted{Stream: o.s, Epoch: 2, Devices: []DeviceID{{2}, {1}}, Commitment: testHash("c")}},
		{"duplicate devices", &EpochStarted{Stream: o.s, Epoch: 2, Devices: []DeviceID{{1}, {1}}, Commitment: testHash("c")}},
		{"too many devices", &EpochStarted{Stream: o.s, Epoch: 2, Devices: many, Commitment: testHash("c")}},
		{"recipient too long", &CoordinatorDelegated{Device: o.d1.id, SignPub: o.d1.sign.Public(), Box: strings.Repeat("a", MaxStringLen+1)}},
		{"recipient wraps its length", &DeviceEnrolled{Device: o.d1.id, Box: strings.Repeat("a", 1<<16+1)}},
		{"NUL in recipient", &CoordinatorDelegated{Device: o.d1.id, Box: "age1\x00"}},
	}
	for _, tt := range bodies {
		s := &Statement{Tenant: o.tenant, Pos: 9, Signer: SignerDevice, SignerDevice: o.c.id, Body: tt.body}
		if err := s.Sign(o.c.sign); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrTrailing) {
			t.Errorf("%s: Sign got %v, want a decoding error", tt.name, err)
		}
		if s.Sig != nil {
			t.Errorf("%s: Sign left a signature", tt.name)
		}
		s.Sig = make([]byte, fcrypto.SignatureSize)
		if _, err := s.Marshal(); err == nil {
			t.Errorf("%s: Marshal got nil, want an error", tt.name)
		}
	}

	statements := []struct {
		name string
		s    Statement
	}{
		{"no body", Statement{Signer: SignerRoot}},
		{"signer kind 0", Statement{Body: &WorkerAdded{}}},
		{"signer kind 4", Statement{Signer: 4, Body: &WorkerAdded{}}},
		{"device signer without device", Statement{Signer: SignerDevice, Body: &WorkerAdded{}}},
		{"root signer with device", Statement{Signer: SignerRoot, SignerDevice: DeviceID{1}, Body: &WorkerAdded{}}},
	}
	for _, tt := range statements {
		if err := tt.s.Sign(o.root); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want %v", tt.name, err, ErrMalformed)
		}
	}
	unsigned := o.next(as(o.c), &WorkerAdded{Worker: testWorkerID("x")})
	unsigned.Sig = unsigned.Sig[:10]
	if _, err := unsigned.Marshal(); !errors.Is(err, ErrMalformed) {
		t.Errorf("short signature: got %v, want %v", err, ErrMalformed)
	}

	ops := []struct {
		name string
		ops  []Op
	}{
		{"no ops", nil},
		{"op type 0", []Op{{Type: 0, Kind: "log"}}},
		{"op type 4", []Op{{Type: 4, Kind: "log"}}},
		{"empty kind", []Op{{Type: OpAdd}}},
		{"set without field", []Op{{Type: OpSet, Kind: "resident"}}},
		{"add with field", []Op{{Type: OpAdd, Kind: "log", Field: "x"}}},
		{"NUL in kind", []Op{{Type: OpAdd, Kind: "l\x00g"}}},
		{"kind too long", []Op{{Type: OpAdd, Kind: strings.Repeat("k", MaxStringLen+1)}}},
		{"field too long", []Op{{Type: OpSet, Kind: "resident", Field: strings.Repeat("f", MaxStringLen+1)}}},
		{"too many ops", make([]Op, MaxOpsPerDelta+1)},
	}
	for _, tt := range ops {
		d := &Delta{Ops: tt.ops}
		if b, err := d.Marshal(); !errors.Is(err, ErrMalformed) || b != nil {
			t.Errorf("%s: got %d bytes, %v, want %v", tt.name, len(b), err, ErrMalformed)
		}
	}

	// Enrolment requests are signed only if they decode again.
	dev := newTestDevice(t, "new")
	for _, r := range []*Enrolment{
		{SignPub: dev.sign.Public(), Box: strings.Repeat("a", MaxStringLen+1)},
		{SignPub: dev.sign.Public(), Box: dev.recipient(), Sealed: make([]byte, maxEnrolSealed+1)},
	} {
		if err := r.Sign(dev.sign); !errors.Is(err, ErrTooLarge) {
			t.Errorf("enrolment: Sign got %v, want %v", err, ErrTooLarge)
		}
		r.Sig = make([]byte, fcrypto.SignatureSize)
		if err := r.Verify(); !errors.Is(err, ErrTooLarge) {
			t.Errorf("enrolment: Verify got %v, want %v", err, ErrTooLarge)
		}
	}
	if err := (&Enrolment{SignPub: dev.sign.Public()}).Sign(o.c.sign); err == nil {
		t.Error("enrolment signed by a key other than its own: got nil, want an error")
	}
}

// allBodies returns one body of every statement type, every field set.
func allBodies(tb testing.TB) []Body {
	d := newTestDevice(tb, "dev1")
	k := testSigningKey(tb, "root x")
	return []Body{
		&TenantCreated{Root: k.Public(), Relay: d.sign.Public()},
		&CoordinatorDelegated{Device: d.id, SignPub: d.sign.Public(), Box: d.recipient()},
		&DeviceEnrolled{Device: d.id, Worker: testWorkerID("w"), SignPub: d.sign.Public(), Box: d.recipient(), Commitment: testHash("c")},
		&DeviceRevoked{Device: d.id},
		&DeviceRevoked{Device: d.id, HasCompromisedSince: true, CompromisedSince: 1<<64 - 1},
		&WorkerAdded{Worker: testWorkerID("w")},
		&WorkerRemoved{Worker: testWorkerID("w")},
		&StreamCreated{Stream: testStreamID("s"), Kind: StreamResident},
		&StreamCreated{Stream: testStreamID("s"), Kind: StreamAudit},
		&EpochStarted{Stream: testStreamID("s"), Epoch: 1<<32 - 1, Devices: SortDevices([]DeviceID{d.id, {1}, {0xff}}), Commitment: testHash("k")},
		&Assigned{Stream: testStreamID("s"), Worker: testWorkerID("w")},
		&Unassigned{Stream: testStreamID("s"), Worker: testWorkerID("w")},
		&SnapshotCountersigned{Stream: testStreamID("s"), Seq: 7, Snapshot: testHash("snap")},
		&DeletionReceipt{Stream: testStreamID("s"), Device: d.id},
		&StreamPurged{Stream: testStreamID("s")},
		&PoliceContactAdded{Contact: testContactID("p")},
		&EnvelopeSealed{Alarm: testAlarmID("a"), Generation: 3, Inner: testHash("i"), SealedMS: 9},
		&EnvelopeReleased{Alarm: testAlarmID("a"), Generation: 3, ReleasedMS: 10, Request: Hash{7}},
		&EmergencyCardWritten{Alarm: testAlarmID("a"), Card: testHash("card")},
		&DeviceRefused{Device: d.id},
		&AuditCheckpoint{Stream: testStreamID("audit"), Seq: 4, Head: testHash("h")},
		&CaseClosed{Stream: testStreamID("s")},
		&SettingsChanged{RetentionDays: 1, EnvelopeExpiryDays: 2, AutoLockMinutes: 3},
		&AuditRecipient{Stream: testStreamID("audit"), Epoch: 2, Recipient: testAuditRecipient(tb, testTenantID("t"), testStreamID("audit"), 2)},
	}
}

// TestStatementBodiesRoundTrip decodes a statement of every type to the
// value that was signed.
func TestStatementBodiesRoundTrip(t *testing.T) {
	k := testSigningKey(t, "signer")
	seen := map[StatementType]bool{}
	for _, body := range allBodies(t) {
		seen[body.Type()] = true
		s := &Statement{Tenant: testTenantID("t"), Pos: 12, Prev: testHash("prev"), Signer: SignerDevice,
			SignerDevice: DeviceID{9}, TimeMS: 1 << 40, Body: body}
		require.NoError(t, s.Sign(k))
		raw := mustMarshal(t, s)
		got, err := UnmarshalStatement(raw)
		require.NoError(t, err, "%s", body.Type())
		require.Equal(t, s, got, "%s", body.Type())
		require.NoError(t, got.VerifySig(k.Public()))
	}
	for typ := StTenantCreated; typ <= stLast; typ++ {
		require.True(t, seen[typ], "no %s body", typ)
	}
}

func TestDeltaRoundTrip(t *testing.T) {
	d := &Delta{Tenant: testTenantID("t"), Stream: testStreamID("s"), Epoch: 9, Author: DeviceID{7}, ID: testDeltaID("d"),
		Clock: HLC{WallMS: 1<<63 + 5, Logical: 1<<32 - 1},
		Ops: []Op{
			{Type: OpSet, Kind: "resident", Field: "secret_address", Value: []byte("Storgata 1")},
			{Type: OpSet, Kind: "resident", Field: "aliases", Value: []byte{}},
			{Type: OpAdd, Kind: "log", Record: testDeltaID("entry"), Value: bytes.Repeat([]byte{0xff}, 3000)},
			{Type: OpRemove, Kind: "log", Record: testDeltaID("entry")},
		}}
	raw, err := d.Marshal()
	require.NoError(t, err)
	got, err := UnmarshalDelta(raw)
	require.NoError(t, err)
	// A decoded empty value is empty, not nil; compare the bytes.
	raw2, err := got.Marshal()
	require.NoError(t, err)
	require.Equal(t, raw, raw2)
	require.Equal(t, d.Clock, got.Clock)
	require.Equal(t, "Storgata 1", string(got.Ops[0].Value))
	require.Len(t, got.Ops, 4)
}

func TestMsgTypeString(t *testing.T) {
	for _, tt := range []struct {
		t    MsgType
		want string
	}{
		{MsgDelta, "delta"}, {MsgBatch, "batch"}, {MsgReceipt, "receipt"}, {MsgStatement, "statement"},
		{MsgSnapshot, "snapshot"}, {MsgEnrolment, "enrolment"}, {MsgAuth, "auth"}, {MsgWrappedKey, "wrapped key"},
		{MsgSnapshotContent, "snapshot content"}, {MsgEnrolName, "enrolment name"}, {11, "type(11)"},
	} {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	for _, tt := range []struct {
		got, want string
	}{
		{StEpochStarted.String(), "epoch started"}, {StatementType(0).String(), "statement(0)"},
		{StatementType(23).String(), "statement(23)"}, {SignerRelay.String(), "relay"}, {SignerKind(9).String(), "signer(9)"},
		{StreamAudit.String(), "audit"}, {StreamKind(0).String(), "stream-kind(0)"},
		{RoleCoordinator.String(), "coordinator"}, {RoleWorker.String(), "worker"},
		{HLC{WallMS: 12, Logical: 3}.String(), "12.3"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestHLCLess(t *testing.T) {
	for _, tt := range []struct {
		a, b HLC
		want bool
	}{
		{HLC{1, 0}, HLC{2, 0}, true},
		{HLC{2, 0}, HLC{1, 9}, false},
		{HLC{2, 1}, HLC{2, 2}, true},
		{HLC{2, 2}, HLC{2, 2}, false},
	} {
		if got := tt.a.Less(tt.b); got != tt.want {
			t.Errorf("%s < %s: got %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestDecodeAllocationBounded feeds headers that claim huge counts and
// lengths: a decoder refuses them without allocating for the claim (a
// 150-byte batch claiming 2^32 deltas once made the decoder ask for 128 GiB).
func TestDecodeAllocationBounded(t *testing.T) {
	o := newBaseOrg(t)
	batch := mustMarshalBatch(t, o.testBatch(o.d1, o.s, 1, o.head(), "a"))
	delta, err := testDelta(o.tenant, o.s, 1, o.d1.id, "a", []byte("x")).Marshal()
	require.NoError(t, err)
	epoch := clone(o.raws[6])
	require.Equal(t, StEpochStarted, StatementType(epoch[stmtOffType]))
	w := (&WrappedKey{Tenant: o.tenant, Wrapped: []byte("x")}).Marshal()

	tests := []struct {
		name string
		raw  []byte
		at   int
		val  []byte
		want error
	}{
		{"batch delta count", batch[:batchOffEntries], batchOffCount, []byte{0xff, 0xff, 0xff, 0xff}, ErrMalformed},
		{"batch ciphertext length", batch, batchSigOffset(batch) + fcrypto.SignatureSize, []byte{0xff, 0xff, 0xff, 0xff}, ErrTooLarge},
		{"delta op count", delta[:deltaOffOps], deltaOffOps - 4, []byte{0xff, 0xff, 0xff, 0xff}, ErrMalformed},
		{"delta value length", delta, deltaOffOps + 1 + 2 + 8 + 16 + 2 + 9, []byte{0xff, 0xff, 0xff, 0xff}, ErrTooLarge},
		{"epoch device count", epoch[:stmtOffBody+22], stmtOffBody + 20, []byte{0xff, 0xff}, ErrTooLarge},
		{"wrapped key length", w, len(w) - 5, []byte{0xff, 0xff, 0xff, 0xff}, ErrTooLarge},
	}
	for _, tt := range tests {
		m := clone(tt.raw)
		copy(m[tt.at:], tt.val)
		d := decoderFor(MsgType(m[1]))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		v, err := d.dec(m)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
		require.Nil(t, v)
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("%s: allocated %d bytes, want at most 1 MiB", tt.name, n)
		}
	}
}
