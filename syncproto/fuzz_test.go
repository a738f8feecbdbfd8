package syncproto

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	fcrypto "github.com/fristed/fristed/crypto"
)

// Fuzz targets: every decoder decodes, re-encodes and requires the same
// bytes, so any input that is not the one canonical encoding of its value
// is refused; and refuses with nothing returned and a specific wire code.
// Seeds come from the vectors; a target without seeds fails. Long runs
// belong in scripts/fuzz.sh.

// seedMessages adds every vector message of type t (by its type byte).
// Messages that carry an age recipient (about 2 KB) are added with a short
// one instead: Go's fuzzer minimizes each new input in time quadratic in
// its length, and a 2 KB input would stall a 60-second run.
func seedMessages(f *testing.F, t MsgType) {
	n := 0
	for _, v := range loadVectors(f) {
		for _, m := range v.msgs {
			if len(m) > 1 && MsgType(m[1]) == t {
				f.Add(shrinkSeed(m))
				n++
			}
		}
	}
	if n == 0 {
		f.Fatalf("no %s in the vectors to seed from", t)
	}
}

const shortRecipient = "age1pq1short"

// shrinkSeed replaces the age recipient (and sealed name) in a statement or
// enrolment with short ones, keeping the layout.
func shrinkSeed(m []byte) []byte {
	switch MsgType(m[1]) {
	case MsgStatement:
		s, err := UnmarshalStatement(m)
		if err != nil {
			return m
		}
		switch b := s.Body.(type) {
		case *CoordinatorDelegated:
			b.Box = shortRecipient
		case *DeviceEnrolled:
			b.Box = shortRecipient
		default:
			return m
		}
		if out, err := s.Marshal(); err == nil {
			return out
		}
	case MsgEnrolment:
		r, err := UnmarshalEnrolment(m)
		if err != nil {
			return m
		}
		r.Box, r.Sealed = shortRecipient, r.Sealed[:min(len(r.Sealed), 16)]
		return r.Marshal()
	}
	return m
}

// fuzzDecoder checks one decoder on one input.
func fuzzDecoder[T any](t *testing.T, b []byte, dec func([]byte) (*T, error), enc func(*T) ([]byte, error)) *T {
	v, err := dec(b)
	if err != nil {
		if v != nil {
			t.Fatalf("got a value with error %v", err)
		}
		switch c := CodeOf(err); c {
		case CodeBadRequest, CodeUnknownVersion, CodeTooLarge:
		default:
			t.Fatalf("decode error %v: got code %s, want bad_request, unknown_version or too_large", err, c)
		}
		return nil
	}
	re, err := enc(v)
	if err != nil {
		t.Fatalf("decoded, but does not encode: %v", err)
	}
	if !bytes.Equal(re, b) {
		t.Fatalf("not canonical:\n got %x\nwant %x", re, b)
	}
	return v
}

func plain[T any](f func(*T) []byte) func(*T) ([]byte, error) {
	return func(v *T) ([]byte, error) { return f(v), nil }
}

// fuzzKey is a key no fuzz input was signed with: verifying must fail
// cleanly, never panic.
var fuzzKey = func() fcrypto.PublicKey {
	k, err := fcrypto.NewSigningKeyFromSeed(testSeed("fuzz"))
	if err != nil {
		panic(err)
	}
	return k.Public()
}()

func FuzzUnmarshalDelta(f *testing.F) {
	seedMessages(f, MsgDelta)
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzDecoder(t, b, UnmarshalDelta, (*Delta).Marshal)
	})
}

func FuzzUnmarshalBatch(f *testing.F) {
	seedMessages(f, MsgBatch)
	f.Fuzz(func(t *testing.T, b []byte) {
		batch := fuzzDecoder(t, b, UnmarshalBatch, (*Batch).Marshal)
		if batch == nil {
			return
		}
		if _, err := batch.Hash(); err != nil {
			t.Fatalf("decoded batch has no hash: %v", err)
		}
		key, _ := fcrypto.KeyFromBytes(make([]byte, fcrypto.KeySize))
		if ds, err := OpenBatch(batch, key, fuzzKey); err == nil || ds != nil {
			t.Fatalf("opened under a key nobody signed with: %v", err)
		}
	})
}

func FuzzUnmarshalReceipt(f *testing.F) {
	seedMessages(f, MsgReceipt)
	f.Fuzz(func(t *testing.T, b []byte) {
		if r := fuzzDecoder(t, b, UnmarshalReceipt, plain((*Receipt).Marshal)); r != nil && r.Verify(fuzzKey) == nil {
			t.Fatal("verified under a key nobody signed with")
		}
	})
}

func FuzzUnmarshalStatement(f *testing.F) {
	seedMessages(f, MsgStatement)
	f.Fuzz(func(t *testing.T, b []byte) {
		s := fuzzDecoder(t, b, UnmarshalStatement, (*Statement).Marshal)
		if s == nil {
			return
		}
		if s.VerifySig(fuzzKey) == nil {
			t.Fatal("verified under a key nobody signed with")
		}
		_ = s.Body.Type().String()
	})
}

func FuzzUnmarshalSnapshot(f *testing.F) {
	seedMessages(f, MsgSnapshot)
	f.Fuzz(func(t *testing.T, b []byte) {
		if s := fuzzDecoder(t, b, UnmarshalSnapshot, plain((*Snapshot).Marshal)); s != nil && s.Verify(fuzzKey) == nil {
			t.Fatal("verified under a key nobody signed with")
		}
	})
}

func FuzzUnmarshalSnapshotContent(f *testing.F) {
	seedMessages(f, MsgSnapshotContent)
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzDecoder(t, b, UnmarshalSnapshotContent, (*SnapshotContent).Marshal)
	})
}

func FuzzUnmarshalEnrolment(f *testing.F) {
	seedMessages(f, MsgEnrolment)
	f.Fuzz(func(t *testing.T, b []byte) {
		if r := fuzzDecoder(t, b, UnmarshalEnrolment, plain((*Enrolment).Marshal)); r != nil {
			_ = r.Verify() // self-signed: may verify; must not panic
			_ = r.Code()
		}
	})
}

func FuzzUnmarshalEnrolName(f *testing.F) {
	seedMessages(f, MsgEnrolName)
	f.Fuzz(func(t *testing.T, b []byte) {
		name, err := UnmarshalEnrolName(b)
		if err != nil {
			if name != "" {
				t.Fatalf("got name %q with error %v", name, err)
			}
			if c := CodeOf(err); c != CodeBadRequest && c != CodeUnknownVersion && c != CodeTooLarge {
				t.Fatalf("decode error %v: got code %s", err, c)
			}
			return
		}
		re, err := MarshalEnrolName(name)
		if err != nil {
			t.Fatalf("decoded, but does not encode: %v", err)
		}
		if !bytes.Equal(re, b) {
			t.Fatalf("not canonical:\n got %x\nwant %x", re, b)
		}
	})
}

func FuzzUnmarshalAuthProof(f *testing.F) {
	seedMessages(f, MsgAuth)
	f.Fuzz(func(t *testing.T, b []byte) {
		if a := fuzzDecoder(t, b, UnmarshalAuthProof, plain((*AuthProof).Marshal)); a != nil && a.Verify(fuzzKey) == nil {
			t.Fatal("verified under a key nobody signed with")
		}
	})
}

func FuzzUnmarshalWrappedKey(f *testing.F) {
	seedMessages(f, MsgWrappedKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzDecoder(t, b, UnmarshalWrappedKey, plain((*WrappedKey).Marshal))
	})
}

// FuzzParseID parses the input as every kind of id and as a hash: whatever
// parses prints back as the input.
func FuzzParseID(f *testing.F) {
	n := 0
	for _, v := range loadVectors(f) {
		for _, k := range []string{"tenant", "stream", "delta id"} {
			if s, ok := v.h[k]; ok {
				f.Add(s)
				n++
			}
		}
		if h, ok := v.h["head"]; ok {
			_, hash, _ := strings.Cut(h, " ")
			f.Add(hash)
			n++
		}
	}
	if n == 0 {
		f.Fatal("no ids in the vectors to seed from")
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, k := range idKinds {
			id, err := k.parse(s)
			if err != nil {
				if CodeOf(err) != CodeBadRequest {
					t.Fatalf("parse %q: got code %s, want %s", s, CodeOf(err), CodeBadRequest)
				}
				continue
			}
			if got := k.format(id); got != s {
				t.Fatalf("parsed %q, prints as %q", s, got)
			}
		}
		h, err := ParseHash(s)
		if err == nil && h.String() != s {
			t.Fatalf("parsed hash %q, prints as %q", s, h.String())
		}
	})
}

// The chain fuzzer runs programs: a compact description of a sequence of
// statements that the harness builds at the chain's next position and signs
// with the key the program names, so the fuzzer explores what the chain
// accepts and derives rather than breaking signatures. An op is five bytes,
//
//	type, signer, b, c, d
//
// type 1..22 is a statement of that type whose fields are picked from small
// pools of ids by b, c and d; signer 0 is the root, 1 the relay, 2.. a
// device of the pool. Other types feed raw bytes: 0 appends the next b
// bytes of the input as a statement, 23 replays a statement built earlier,
// 24 re-signs the last one under the auth label, 25 signs it with another
// device's key. Seeds are the vector chains, translated.

const (
	opRaw     = 0
	opReplay  = 23
	opLabel   = 24
	opWrongBy = 25
	opKinds   = 26
	opLen     = 5
	maxOps    = 48
)

// fuzzWorld holds the pools and keys programs draw from; the names are the
// ones the vectors use, so vector chains translate.
type fuzzWorld struct {
	root, relay *fcrypto.SigningKey
	tenant      TenantID
	devs        []*testDevice
	workers     []WorkerID
	streams     []StreamID
	alarms      []AlarmID
	contacts    []ContactID
	recipient   string // a well-formed audit recipient
}

var (
	fuzzWorldOnce sync.Once
	theFuzzWorld  *fuzzWorld
)

func getFuzzWorld(tb testing.TB) *fuzzWorld {
	fuzzWorldOnce.Do(func() {
		w := &fuzzWorld{root: testSigningKey(tb, "root base"), relay: testSigningKey(tb, "relay base"), tenant: testTenantID("base")}
		for _, n := range []string{"coord", "coord2", "coord3", "dev1", "dev2", "dev1b", "mallory", "new"} {
			w.devs = append(w.devs, newTestDevice(tb, n))
		}
		for _, n := range []string{"w1", "w2", "w3", "w4"} {
			w.workers = append(w.workers, testWorkerID(n))
		}
		for _, n := range []string{"s", "s2", "directory", "audit"} {
			w.streams = append(w.streams, testStreamID(n))
		}
		w.alarms = []AlarmID{testAlarmID("a"), testAlarmID("b")}
		w.contacts = []ContactID{testContactID("oslo"), testContactID("bergen")}
		w.recipient = testAuditRecipient(tb, w.tenant, testStreamID("audit"), 1)
		theFuzzWorld = w
	})
	return theFuzzWorld
}

func (w *fuzzWorld) org() fcrypto.Fingerprint { return fcrypto.OrgFingerprint(w.root.Public()) }

func (w *fuzzWorld) dev(i byte) *testDevice { return w.devs[int(i)%len(w.devs)] }
func (w *fuzzWorld) hash(i byte) Hash {
	if i == 0 {
		return Hash{}
	}
	return testHash(fmt.Sprint("fuzz ", i))
}

// body builds the body of statement type t from b, c and d.
func (w *fuzzWorld) body(t StatementType, b, c, d byte) Body {
	str, wk := w.streams[int(b)%len(w.streams)], w.workers[int(c)%len(w.workers)]
	switch t {
	case StTenantCreated:
		tc := &TenantCreated{Root: w.root.Public(), Relay: w.relay.Public()}
		if b&1 == 1 {
			tc.Root = w.relay.Public()
		}
		return tc
	case StCoordinatorDelegated:
		x := w.dev(b)
		return &CoordinatorDelegated{Device: x.id, SignPub: x.sign.Public(), Box: x.recipient()}
	case StDeviceEnrolled:
		return enrolBody(w.dev(b), wk)
	case StDeviceRevoked:
		return &DeviceRevoked{Device: w.dev(b).id, HasCompromisedSince: c&0x80 != 0, CompromisedSince: ChainPos(c & 0x7f)}
	case StWorkerAdded:
		return &WorkerAdded{Worker: w.workers[int(b)%len(w.workers)]}
	case StWorkerRemoved:
		return &WorkerRemoved{Worker: w.workers[int(b)%len(w.workers)]}
	case StStreamCreated:
		return &StreamCreated{Stream: str, Kind: StreamKind(1 + c%3)}
	case StEpochStarted:
		var ids []DeviceID
		for i := range w.devs {
			if d&(1<<i) != 0 {
				ids = append(ids, w.devs[i].id)
			}
		}
		return &EpochStarted{Stream: str, Epoch: Epoch(c), Devices: SortDevices(ids), Commitment: w.hash(c | 0x80)}
	case StAssigned:
		return &Assigned{Stream: str, Worker: wk}
	case StUnassigned:
		return &Unassigned{Stream: str, Worker: wk}
	case StSnapshotCountersigned:
		return &SnapshotCountersigned{Stream: str, Seq: Seq(c), Snapshot: w.hash(d)}
	case StDeletionReceipt:
		return &DeletionReceipt{Stream: str, Device: w.dev(c).id}
	case StStreamPurged:
		return &StreamPurged{Stream: str}
	case StPoliceContactAdded:
		return &PoliceContactAdded{Contact: w.contacts[int(b)%len(w.contacts)]}
	case StEnvelopeSealed:
		return &EnvelopeSealed{Alarm: w.alarms[int(b)%len(w.alarms)], Generation: uint32(c), Inner: w.hash(d), SealedMS: 1}
	case StEnvelopeReleased:
		return &EnvelopeReleased{Alarm: w.alarms[int(b)%len(w.alarms)], Generation: uint32(c), ReleasedMS: 2, Request: Hash{byte(c) | 1}}
	case StEmergencyCardWritten:
		return &EmergencyCardWritten{Alarm: w.alarms[int(b)%len(w.alarms)], Card: w.hash(c)}
	case StDeviceRefused:
		return &DeviceRefused{Device: w.dev(b).id}
	case StAuditCheckpoint:
		return &AuditCheckpoint{Stream: str, Seq: Seq(c), Head: w.hash(d)}
	case StCaseClosed:
		return &CaseClosed{Stream: str}
	case StSettingsChanged:
		return &SettingsChanged{RetentionDays: uint32(b), EnvelopeExpiryDays: uint32(c), AutoLockMinutes: uint32(d)}
	case StAuditRecipient:
		ar := &AuditRecipient{Stream: str, Epoch: Epoch(c), Recipient: w.recipient}
		if d&1 == 1 {
			ar.Recipient = "age1pq1notarecipient"
		}
		return ar
	}
	return nil
}

// op translates a statement into the op that builds it, as near as the
// pools allow.
func (w *fuzzWorld) op(s *Statement) []byte {
	devIdx := func(id DeviceID) byte {
		for i, d := range w.devs {
			if d.id == id {
				return byte(i)
			}
		}
		return 0
	}
	idx := func(n int, match func(i int) bool) byte {
		for i := 0; i < n; i++ {
			if match(i) {
				return byte(i)
			}
		}
		return 0
	}
	stream := func(id StreamID) byte { return idx(len(w.streams), func(i int) bool { return w.streams[i] == id }) }
	worker := func(id WorkerID) byte { return idx(len(w.workers), func(i int) bool { return w.workers[i] == id }) }
	alarm := func(id AlarmID) byte { return idx(len(w.alarms), func(i int) bool { return w.alarms[i] == id }) }
	var signer byte // root
	switch s.Signer {
	case SignerRelay:
		signer = 1
	case SignerDevice:
		signer = 2 + devIdx(s.SignerDevice)
	}
	var b, c, d byte
	switch x := s.Body.(type) {
	case *CoordinatorDelegated:
		b = devIdx(x.Device)
	case *DeviceEnrolled:
		b, c = devIdx(x.Device), worker(x.Worker)
	case *DeviceRevoked:
		b, c = devIdx(x.Device), byte(x.CompromisedSince&0x7f)
		if x.HasCompromisedSince {
			c |= 0x80
		}
	case *WorkerAdded:
		b = worker(x.Worker)
	case *WorkerRemoved:
		b = worker(x.Worker)
	case *StreamCreated:
		b, c = stream(x.Stream), byte(x.Kind-1)
	case *EpochStarted:
		b, c = stream(x.Stream), byte(x.Epoch)
		for _, id := range x.Devices {
			d |= 1 << devIdx(id)
		}
	case *Assigned:
		b, c = stream(x.Stream), worker(x.Worker)
	case *Unassigned:
		b, c = stream(x.Stream), worker(x.Worker)
	case *SnapshotCountersigned:
		b, c, d = stream(x.Stream), byte(x.Seq), 1
	case *DeletionReceipt:
		b, c = stream(x.Stream), devIdx(x.Device)
	case *StreamPurged:
		b, c = stream(x.Stream), 255 // as late as the op can say: past any retention period
	case *EnvelopeSealed:
		b, c, d = alarm(x.Alarm), byte(x.Generation), 1
	case *EnvelopeReleased:
		b, c = alarm(x.Alarm), byte(x.Generation)
	case *EmergencyCardWritten:
		b, c = alarm(x.Alarm), 1
	case *DeviceRefused:
		b = devIdx(x.Device)
	case *AuditCheckpoint:
		b, c, d = stream(x.Stream), byte(x.Seq), 1
	case *CaseClosed:
		b = stream(x.Stream)
	case *SettingsChanged:
		b, c, d = byte(x.RetentionDays), byte(x.EnvelopeExpiryDays), byte(x.AutoLockMinutes)
	case *AuditRecipient:
		b, c = stream(x.Stream), byte(x.Epoch)
	}
	return []byte{byte(s.Body.Type()), signer, b, c, d}
}

// signerOf returns the signer an op names and its key.
func (w *fuzzWorld) signerOf(i byte) (SignerKind, DeviceID, *fcrypto.SigningKey) {
	switch i %= byte(2 + len(w.devs)); i {
	case 0:
		return SignerRoot, DeviceID{}, w.root
	case 1:
		return SignerRelay, DeviceID{}, w.relay
	}
	d := w.devs[i-2]
	return SignerDevice, d.id, d.sign
}

// runProgram builds and appends the program's statements, checking that a
// refused statement changes nothing. It returns the chain.
func runProgram(t *testing.T, w *fuzzWorld, prog []byte) *Chain {
	c := NewChain(w.org())
	var built [][]byte
	appendRaw := func(raw []byte) {
		before, _ := c.Head()
		n := c.Len()
		s, err := c.Append(raw)
		if err != nil {
			after, _ := c.Head()
			if s != nil || c.Len() != n || after != before {
				t.Fatalf("refused (%v), but returned a statement or moved the chain", err)
			}
			if CodeOf(err) == CodeInternal {
				t.Fatalf("refusal without a wire code: %v", err)
			}
		}
		built = append(built, raw)
	}
	sign := func(s *Statement, k *fcrypto.SigningKey, label fcrypto.Label) []byte {
		body, err := s.signedBody()
		if err != nil {
			return nil
		}
		sig, err := k.Sign(label, body)
		if err != nil {
			t.Fatal(err)
		}
		return append(body, sig...)
	}
	for ops := 0; len(prog) > 0 && ops < maxOps; ops++ {
		kind := prog[0] % opKinds
		if kind == opRaw {
			n := 0
			if len(prog) > 1 {
				n = int(prog[1])
			}
			raw := prog[min(2, len(prog)):min(2+n, len(prog))]
			prog = prog[min(2+n, len(prog)):]
			appendRaw(append([]byte(nil), raw...))
			continue
		}
		var op [opLen]byte
		prog = prog[copy(op[:], prog):]
		switch kind {
		case opReplay:
			if len(built) > 0 {
				appendRaw(built[int(op[2])%len(built)])
			}
			continue
		case opLabel, opWrongBy:
			if len(built) == 0 {
				continue
			}
			s, err := UnmarshalStatement(built[len(built)-1])
			if err != nil {
				continue
			}
			_, _, k := w.signerOf(op[1])
			label := fcrypto.LabelStatement
			if kind == opLabel {
				label = fcrypto.LabelAuth
			}
			if raw := sign(s, k, label); raw != nil {
				appendRaw(raw)
			}
			continue
		}
		kindSigner, dev, k := w.signerOf(op[1])
		at := uint64(ops)
		if StatementType(kind) == StStreamPurged {
			// c dates a purge up to about 51 years on, in 73-day steps,
			// so programs reach both sides of a retention period.
			at += uint64(op[3]) * 73 * dayMS
		}
		s := c.Next(w.tenant, kindSigner, dev, at, w.body(StatementType(kind), op[2], op[3], op[4]))
		if raw := sign(s, k, fcrypto.LabelStatement); raw != nil {
			appendRaw(raw)
		}
	}
	return c
}

// checkChainInvariants checks what must hold of any chain a program built.
func checkChainInvariants(t *testing.T, w *fuzzWorld, c *Chain) {
	if h, ok := c.Head(); ok {
		if err := c.CheckHead(h); err != nil {
			t.Fatalf("own head: %v", err)
		}
	}
	requireReverifies(t, c)
	st := c.State()
	delegated := false
	for i := 0; i < c.Len(); i++ {
		if _, ok := c.Statement(ChainPos(i)).Body.(*CoordinatorDelegated); ok && !c.IsVoid(ChainPos(i)) {
			delegated = true
		}
	}
	if delegated && len(st.ActiveCoordinators()) == 0 {
		t.Fatal("every coordinator device revoked")
	}
	// Only an audit stream's epoch names an audit recipient, a well-formed
	// one, named after the epoch started.
	for id, str := range st.Streams {
		for _, ep := range str.Epochs {
			if ep.AuditRecipient == "" {
				continue
			}
			if str.Kind != StreamAudit {
				t.Fatalf("stream %s of kind %s names an audit recipient", id, str.Kind)
			}
			if _, err := fcrypto.ParseBoxRecipient(ep.AuditRecipient); err != nil || ep.AuditRecipientAt <= ep.Pos {
				t.Fatalf("audit recipient of epoch %d at %d (epoch at %d): %v", ep.Epoch, ep.AuditRecipientAt, ep.Pos, err)
			}
		}
	}
	// Only a closed case whose retention period had passed is purged.
	for i := 0; i < c.Len(); i++ {
		p, ok := c.Statement(ChainPos(i)).Body.(*StreamPurged)
		if !ok || c.IsVoid(ChainPos(i)) {
			continue
		}
		str := st.Streams[p.Stream]
		if str == nil || !str.Purged || !str.Closed || str.Kind != StreamResident || str.ClosedAt >= ChainPos(i) {
			t.Fatalf("purge at %d of a stream that is not a closed case", i)
		}
		if c.Statement(ChainPos(i)).TimeMS < str.ClosedMS+dayMS { // the shortest retention period is a day
			t.Fatalf("purge at %d within a day of the close", i)
		}
	}
	head, _ := c.Head()
	devs := append([]*testDevice(nil), w.devs...)
	for _, d := range devs {
		for _, s := range w.streams {
			for e := Epoch(0); e < 4; e++ {
				for _, at := range []ChainPos{0, head.Pos / 2, head.Pos, head.Pos + 5} {
					checkBatchInvariant(t, st, d.id, s, e, at)
				}
			}
		}
	}
}

// checkBatchInvariant: CheckBatch accepts only an active device in the
// epoch it names, and a superseded epoch only under its exception.
func checkBatchInvariant(t *testing.T, st *State, d DeviceID, s StreamID, e Epoch, at ChainPos) {
	err := st.CheckBatch(d, s, e, at)
	if err != nil {
		for _, want := range []error{ErrUnknownSigner, ErrDeviceRevoked, ErrNotAssigned, ErrEpochSuperseded, ErrUnknownEpoch} {
			if errors.Is(err, want) {
				return
			}
		}
		t.Fatalf("CheckBatch: unexpected error %v", err)
	}
	str := st.Streams[s]
	if !st.Devices[d].Active() || str == nil || str.Purged {
		t.Fatalf("CheckBatch accepted device %s in stream %s: inactive device or no stream", d, s)
	}
	ep, cur := str.Epoch(e), str.Current()
	if str.Kind == StreamAudit {
		// Any active device appends to the audit log, under its current
		// epoch only.
		if e != cur.Epoch {
			t.Fatalf("CheckBatch accepted audit stream %s under epoch %d, current is %d", s, e, cur.Epoch)
		}
		return
	}
	if ep == nil || !ep.Has(d) {
		t.Fatalf("CheckBatch accepted device %s under epoch %d, which does not name it", d, e)
	}
	if e == cur.Epoch {
		return
	}
	removed, ok := str.RemovedAt[d]
	if cur.Has(d) || !ok || at >= removed {
		t.Fatalf("CheckBatch accepted a superseded epoch %d from device %s outside the exception", e, d)
	}
	for _, x := range ep.Devices {
		if !st.Devices[x].Active() {
			t.Fatalf("CheckBatch accepted epoch %d, whose key a revoked device holds", e)
		}
	}
}

// FuzzChain runs statement programs (see above): the chain never panics, a
// refused statement changes nothing and has a wire code, and what it
// accepts re-verifies to the same head, voids and state.
func FuzzChain(f *testing.F) {
	w := getFuzzWorld(f)
	n := 0
	for _, v := range loadVectors(f) {
		var msgs [][]byte
		switch v.format {
		case "chain":
			msgs = v.msgs
		case "batch acceptance":
			msgs = v.msgs[:len(v.msgs)-1]
		default:
			continue
		}
		var prog []byte
		for _, m := range msgs {
			s, err := UnmarshalStatement(m)
			if err != nil {
				continue
			}
			prog = append(prog, w.op(s)...)
		}
		f.Add(prog)
		n++
	}
	if n == 0 {
		f.Fatal("no chains in the vectors to seed from")
	}
	// One seed appends raw bytes: a genesis from the vectors, then a replay.
	for _, v := range loadVectors(f) {
		if v.name == "chain-ok" {
			g := v.msgs[0]
			f.Add(append(append([]byte{opRaw, byte(len(g))}, g...), opReplay, 0, 0, 0, 0))
			break
		}
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		checkChainInvariants(t, w, runProgram(t, w, prog))
	})
}

// TestFuzzChainSeedsBuildChains: the translated vector chains build chains
// as long as the vectors' (the pools hold every id they use), so the chain
// fuzzer starts from deep states.
func TestFuzzChainSeedsBuildChains(t *testing.T) {
	w := getFuzzWorld(t)
	for _, v := range loadVectors(t) {
		if v.format != "chain" || v.expect != "success" {
			continue
		}
		var prog []byte
		for _, m := range v.msgs {
			s, err := UnmarshalStatement(m)
			if err != nil {
				t.Fatal(err)
			}
			prog = append(prog, w.op(s)...)
		}
		c := runProgram(t, w, prog)
		if c.Len() != len(v.msgs) {
			t.Errorf("%s: got a chain of %d, want %d", v.name, c.Len(), len(v.msgs))
		}
		checkChainInvariants(t, w, c)
	}
}
