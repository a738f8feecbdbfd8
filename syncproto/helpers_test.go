package syncproto

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"testing"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/stretchr/testify/require"
)

// Deterministic fixtures for the tests, the vector generator and the
// benchmarks: signing keys from seeds derived from a name, ids derived from
// a name, and age identities fixed as strings (a hybrid identity is its
// 32-byte seed, so the string is the whole key).

func testSeed(name string) []byte {
	h := sha256.Sum256([]byte("fristed syncproto test seed: " + name))
	return h[:]
}

func testSigningKey(tb testing.TB, name string) *fcrypto.SigningKey {
	k, err := fcrypto.NewSigningKeyFromSeed(testSeed(name))
	require.NoError(tb, err)
	return k
}

func testRaw(name string) rawID {
	h := sha256.Sum256([]byte("fristed syncproto test id: " + name))
	var id rawID
	copy(id[:], h[:])
	return id
}

func testTenantID(name string) TenantID   { return TenantID(testRaw("tenant " + name)) }
func testWorkerID(name string) WorkerID   { return WorkerID(testRaw("worker " + name)) }
func testStreamID(name string) StreamID   { return StreamID(testRaw("stream " + name)) }
func testDeltaID(name string) DeltaID     { return DeltaID(testRaw("delta " + name)) }
func testAlarmID(name string) AlarmID     { return AlarmID(testRaw("alarm " + name)) }
func testContactID(name string) ContactID { return ContactID(testRaw("contact " + name)) }
func testRequestID(name string) RequestID { return RequestID(testRaw("request " + name)) }
func testHash(name string) Hash {
	return Hash(sha256.Sum256([]byte("fristed syncproto test hash: " + name)))
}

// testEpochKey is the epoch key a test coordinator makes for a stream.
func testEpochKey(tb testing.TB, stream StreamID, e Epoch) *fcrypto.Key {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(e))
	k, err := fcrypto.KeyFromBytes(testSeed("epoch key " + string(stream[:]) + string(n[:])))
	require.NoError(tb, err)
	return k
}

// testAuditRecipient is the audit recipient derived from the test epoch
// key of stream s, epoch e.
func testAuditRecipient(tb testing.TB, tenant TenantID, s StreamID, e Epoch) string {
	id, err := AuditIdentity(testEpochKey(tb, s, e), tenant, s, e)
	require.NoError(tb, err)
	return id.Recipient().String()
}

// testBoxIdentities are hybrid age identities made once with
// age.GenerateHybridIdentity. Devices share them round-robin by name, which
// the chain allows; tests that care give distinct names from this list.
var testBoxIdentities = []string{
	"AGE-SECRET-KEY-PQ-1ZZV8RP2MUZS7ZMVK7CCLMAMRAKFEEQLLP7MVVVUPKP3D8GRRZ0ZQRV0D6H",
	"AGE-SECRET-KEY-PQ-18C6266CR5U485R4VE0UEZLWEK0Q0GARJ3Z4CJEFP6SPG6XWPDL6QPNH6CM",
	"AGE-SECRET-KEY-PQ-1K38UTW9RFQ3JDV0GAHY35XKJ5Q8T9PRHMC4ALGFW98UL8ZNRJXGQA8XRXS",
	"AGE-SECRET-KEY-PQ-1SF23PV50UMSQ30VCSD9NKGUUA2ZDLMP0SNCHJ7RVGJHH2LH7X0ZQVZDPQ3",
	"AGE-SECRET-KEY-PQ-18SEXDM5U6WL3G7CDVK9XQUSTRFPWPDNHHRA9NDHCETD7A832AQQSNEYUK6",
	"AGE-SECRET-KEY-PQ-1754KXJ690WQARFCCJ2TVRS2YHS6C3MU2V8F0PUF9XARHHJJAZRFS06HQYW",
	"AGE-SECRET-KEY-PQ-1DU2CPXDZJUM4A70TA9PYYLUV5QE9X8Z4Y2XCWLUSD2S8YU9MCLWQV6VGQ4",
	"AGE-SECRET-KEY-PQ-1CYWQ4RTZV87KTNAMXJJM7KHMUWCM4J83YRUM8MZZLZ3RZ3T0NESQGK7UHH",
}

// testBoxNames pins the identity of the devices the tests name, so that
// devices that meet in a test hold distinct age keys.
var testBoxNames = map[string]int{
	"coord": 0, "coord2": 1, "dev1": 2, "dev2": 3, "dev1b": 4, "mallory": 5, "new": 6, "coord3": 7,
}

var (
	boxMu    sync.Mutex
	boxCache = map[int]*fcrypto.BoxIdentity{}
)

func testBox(tb testing.TB, name string) *fcrypto.BoxIdentity {
	i, ok := testBoxNames[name]
	if !ok {
		h := sha256.Sum256([]byte(name))
		i = int(h[0]) % len(testBoxIdentities)
	}
	boxMu.Lock()
	defer boxMu.Unlock()
	if id := boxCache[i]; id != nil {
		return id
	}
	id, err := fcrypto.ParseBoxIdentity(testBoxIdentities[i])
	require.NoError(tb, err)
	boxCache[i] = id
	return id
}

// testDevice is one device's keys; its id derives from its signing key, as
// the client's do.
type testDevice struct {
	name string
	id   DeviceID
	sign *fcrypto.SigningKey
	box  *fcrypto.BoxIdentity
}

func newTestDevice(tb testing.TB, name string) *testDevice {
	k := testSigningKey(tb, "device "+name)
	return &testDevice{name: name, id: DeviceIDFromKey(k.Public()), sign: k, box: testBox(tb, name)}
}

func (d *testDevice) recipient() string { return d.box.Recipient().String() }

// signer names who signs a statement.
type signer struct {
	kind SignerKind
	dev  *testDevice
}

var (
	asRoot  = signer{kind: SignerRoot}
	asRelay = signer{kind: SignerRelay}
)

func as(d *testDevice) signer { return signer{kind: SignerDevice, dev: d} }

// testOrg builds a tenant's chain statement by statement, keeping the
// marshalled statements so tests can replay, reorder or tamper with them.
type testOrg struct {
	tb     testing.TB
	root   *fcrypto.SigningKey
	relay  *fcrypto.SigningKey
	tenant TenantID
	chain  *Chain
	raws   [][]byte
	now    uint64
}

// newTestOrg returns an org whose chain holds its genesis statement.
func newTestOrg(tb testing.TB, name string) *testOrg {
	o := &testOrg{
		tb:     tb,
		root:   testSigningKey(tb, "root "+name),
		relay:  testSigningKey(tb, "relay "+name),
		tenant: testTenantID(name),
		now:    1_767_225_600_000, // 2026-01-01, one second per statement
	}
	o.chain = NewChain(o.org())
	o.add(asRoot, &TenantCreated{Root: o.root.Public(), Relay: o.relay.Public()})
	return o
}

func (o *testOrg) org() fcrypto.Fingerprint { return fcrypto.OrgFingerprint(o.root.Public()) }

func (o *testOrg) key(by signer) *fcrypto.SigningKey {
	switch by.kind {
	case SignerRoot:
		return o.root
	case SignerRelay:
		return o.relay
	}
	return by.dev.sign
}

// next returns body as the chain's next statement, signed by by but not
// appended.
func (o *testOrg) next(by signer, body Body) *Statement {
	o.tb.Helper()
	var dev DeviceID
	if by.dev != nil {
		dev = by.dev.id
	}
	o.now += 1000
	s := o.chain.Next(o.tenant, by.kind, dev, o.now, body)
	require.NoError(o.tb, s.Sign(o.key(by)))
	return s
}

// dayMS is a day in statement time.
const dayMS = 24 * 60 * 60 * 1000

// closeAndPurge closes a resident stream and purges it once the default
// retention period has passed.
func (o *baseOrg) closeAndPurge(s StreamID) {
	o.tb.Helper()
	o.add(as(o.c), &CaseClosed{Stream: s})
	o.now += DefaultRetentionDays * dayMS
	o.add(as(o.c), &StreamPurged{Stream: s})
}

func mustMarshal(tb testing.TB, s *Statement) []byte {
	tb.Helper()
	raw, err := s.Marshal()
	require.NoError(tb, err)
	return raw
}

// try signs body as the next statement and appends it, returning the
// chain's verdict.
func (o *testOrg) try(by signer, body Body) error {
	o.tb.Helper()
	raw := mustMarshal(o.tb, o.next(by, body))
	if _, err := o.chain.Append(raw); err != nil {
		return err
	}
	o.raws = append(o.raws, raw)
	return nil
}

// add is try for statements the test expects to be accepted; it returns
// the statement's position.
func (o *testOrg) add(by signer, body Body) ChainPos {
	o.tb.Helper()
	require.NoError(o.tb, o.try(by, body))
	return ChainPos(len(o.raws) - 1)
}

func (o *testOrg) head() Head {
	h, ok := o.chain.Head()
	require.True(o.tb, ok)
	return h
}

func (o *testOrg) coordinator(name string) *testDevice {
	o.tb.Helper()
	d := newTestDevice(o.tb, name)
	o.add(asRoot, &CoordinatorDelegated{Device: d.id, SignPub: d.sign.Public(), Box: d.recipient()})
	return d
}

func (o *testOrg) worker(by *testDevice, name string) WorkerID {
	o.tb.Helper()
	w := testWorkerID(name)
	o.add(as(by), &WorkerAdded{Worker: w})
	return w
}

func (o *testOrg) enrol(by *testDevice, name string, w WorkerID) *testDevice {
	o.tb.Helper()
	d := newTestDevice(o.tb, name)
	o.add(as(by), enrolBody(d, w))
	return d
}

func enrolBody(d *testDevice, w WorkerID) *DeviceEnrolled {
	rid := testRequestID(d.name)
	c := fcrypto.EnrolmentCommitment(rid[:], d.sign.Public(), d.recipient())
	return &DeviceEnrolled{Device: d.id, Worker: w, SignPub: d.sign.Public(), Box: d.recipient(), Commitment: Hash(c)}
}

func (o *testOrg) stream(by *testDevice, name string, kind StreamKind) StreamID {
	o.tb.Helper()
	s := testStreamID(name)
	o.add(as(by), &StreamCreated{Stream: s, Kind: kind})
	return s
}

func (o *testOrg) epochBody(s StreamID, e Epoch, devs ...*testDevice) *EpochStarted {
	ids := make([]DeviceID, len(devs))
	for i, d := range devs {
		ids[i] = d.id
	}
	k := testEpochKey(o.tb, s, e)
	return &EpochStarted{Stream: s, Epoch: e, Devices: SortDevices(ids),
		Commitment: Hash(k.Commitment(EpochKeyContext(o.tenant, s, e)))}
}

func (o *testOrg) epoch(by *testDevice, s StreamID, e Epoch, devs ...*testDevice) ChainPos {
	o.tb.Helper()
	return o.add(as(by), o.epochBody(s, e, devs...))
}

// baseOrg is the org most tests start from: coordinator c, workers w1 and
// w2, w1's device d1, and resident stream s in epoch 1 for c and d1,
// assigned to w1. It is small on purpose: every device statement carries
// an age hybrid recipient of about 2 KB.
type baseOrg struct {
	*testOrg
	c, d1  *testDevice
	w1, w2 WorkerID
	s      StreamID
	// Added on request: a second coordinator and w2's device.
	c2, d2 *testDevice
}

func newBaseOrg(tb testing.TB) *baseOrg {
	o := &baseOrg{testOrg: newTestOrg(tb, "base")}
	o.c = o.coordinator("coord")             // 1
	o.w1 = o.worker(o.c, "w1")               // 2
	o.w2 = o.worker(o.c, "w2")               // 3
	o.d1 = o.enrol(o.c, "dev1", o.w1)        // 4
	o.s = o.stream(o.c, "s", StreamResident) // 5
	o.epoch(o.c, o.s, 1, o.c, o.d1)          // 6
	o.add(as(o.c), &Assigned{Stream: o.s, Worker: o.w1})
	return o
}

// withCoord2 delegates a second coordinator device.
func (o *baseOrg) withCoord2() *baseOrg { o.c2 = o.coordinator("coord2"); return o }

// withDev2 enrols w2's device.
func (o *baseOrg) withDev2() *baseOrg { o.d2 = o.enrol(o.c, "dev2", o.w2); return o }

// testDelta is a small edit by author to stream s in epoch e.
func testDelta(tenant TenantID, s StreamID, e Epoch, author DeviceID, name string, value []byte) *Delta {
	return &Delta{Tenant: tenant, Stream: s, Epoch: e, Author: author, ID: testDeltaID(name),
		Clock: HLC{WallMS: 1_767_225_600_000, Logical: 1},
		Ops: []Op{
			{Type: OpSet, Kind: "resident", Field: "pseudonym", Value: value},
			{Type: OpAdd, Kind: "log", Record: testDeltaID(name + " log"), Value: []byte(`{"category":"practical","minutes":30}`)},
		}}
}

// testBatch seals n deltas by author under the stream's epoch key.
func (o *testOrg) testBatch(author *testDevice, s StreamID, e Epoch, head Head, names ...string) *Batch {
	o.tb.Helper()
	var ds []*Delta
	for _, n := range names {
		ds = append(ds, testDelta(o.tenant, s, e, author.id, n, []byte("Mina "+n)))
	}
	hdr := Batch{Tenant: o.tenant, Stream: s, Epoch: e, Author: author.id, Counter: 3,
		Prev: testHash("prev batch"), ChainHead: head, CreatedMS: o.now}
	b, err := SealBatch(hdr, testEpochKey(o.tb, s, e), author.sign, ds)
	require.NoError(o.tb, err)
	return b
}

func mustMarshalBatch(tb testing.TB, b *Batch) []byte {
	tb.Helper()
	raw, err := b.Marshal()
	require.NoError(tb, err)
	return raw
}
