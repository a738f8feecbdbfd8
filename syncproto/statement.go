package syncproto

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strings"

	fcrypto "github.com/fristed/fristed/crypto"
)

// SignerKind says which key signed a statement.
type SignerKind byte

// Do not reorder: these values are on the wire.
const (
	SignerRoot   SignerKind = 1 // the org root key (from the recovery file)
	SignerDevice SignerKind = 2 // an enrolled device (SignerDevice field)
	SignerRelay  SignerKind = 3 // the relay's key registered at genesis
)

func (s SignerKind) String() string {
	switch s {
	case SignerRoot:
		return "root"
	case SignerDevice:
		return "device"
	case SignerRelay:
		return "relay"
	}
	return fmt.Sprintf("signer(%d)", byte(s))
}

// StatementType names a kind of admin statement.
type StatementType byte

// Do not reorder: these values are on the wire. Append only.
const (
	StTenantCreated         StatementType = 1
	StCoordinatorDelegated  StatementType = 2
	StDeviceEnrolled        StatementType = 3
	StDeviceRevoked         StatementType = 4
	StWorkerAdded           StatementType = 5
	StWorkerRemoved         StatementType = 6
	StStreamCreated         StatementType = 7
	StEpochStarted          StatementType = 8
	StAssigned              StatementType = 9
	StUnassigned            StatementType = 10
	StSnapshotCountersigned StatementType = 11
	StDeletionReceipt       StatementType = 12
	StStreamPurged          StatementType = 13
	StPoliceContactAdded    StatementType = 14
	StEnvelopeSealed        StatementType = 15
	StEnvelopeReleased      StatementType = 16
	StEmergencyCardWritten  StatementType = 17
	StDeviceRefused         StatementType = 18
	StAuditCheckpoint       StatementType = 19
	StCaseClosed            StatementType = 20
	StSettingsChanged       StatementType = 21
	StAuditRecipient        StatementType = 22
	stLast                                = StAuditRecipient
)

var statementNames = [...]string{
	StTenantCreated: "tenant created", StCoordinatorDelegated: "coordinator delegated",
	StDeviceEnrolled: "device enrolled", StDeviceRevoked: "device revoked",
	StWorkerAdded: "worker added", StWorkerRemoved: "worker removed",
	StStreamCreated: "stream created", StEpochStarted: "epoch started",
	StAssigned: "assigned", StUnassigned: "unassigned",
	StSnapshotCountersigned: "snapshot countersigned", StDeletionReceipt: "deletion receipt",
	StStreamPurged: "stream purged", StPoliceContactAdded: "police contact added",
	StEnvelopeSealed: "envelope sealed", StEnvelopeReleased: "envelope released",
	StEmergencyCardWritten: "emergency card written", StDeviceRefused: "device refused",
	StAuditCheckpoint: "audit checkpoint", StCaseClosed: "case closed",
	StSettingsChanged: "settings changed", StAuditRecipient: "audit recipient",
}

func (t StatementType) String() string {
	if t >= 1 && t <= stLast {
		return statementNames[t]
	}
	return fmt.Sprintf("statement(%d)", byte(t))
}

// StreamKind says what a stream holds.
type StreamKind byte

// Do not reorder: these values are on the wire.
const (
	StreamResident  StreamKind = 1 // one resident's case file
	StreamDirectory StreamKind = 2 // human labels: worker, unit and police names, alarm links
	StreamAudit     StreamKind = 3 // access events, readable by coordinators
)

func (k StreamKind) String() string {
	switch k {
	case StreamResident:
		return "resident"
	case StreamDirectory:
		return "directory"
	case StreamAudit:
		return "audit"
	}
	return fmt.Sprintf("stream-kind(%d)", byte(k))
}

// Body is the type-specific part of a statement. Bodies carry only random
// ids, hashes, numbers and public keys: never a name, an address or a
// police key.
type Body interface {
	Type() StatementType
	encode(e *enc)
	decode(d *dec)
}

type (
	// TenantCreated is the genesis statement, signed by the root key it
	// names; the org fingerprint is the hash of that key.
	TenantCreated struct {
		Root  fcrypto.PublicKey
		Relay fcrypto.PublicKey
	}
	// CoordinatorDelegated certifies a coordinator device; root-signed.
	CoordinatorDelegated struct {
		Device  DeviceID
		SignPub fcrypto.PublicKey
		Box     string
	}
	// DeviceEnrolled adds a worker device.
	DeviceEnrolled struct {
		Device     DeviceID
		Worker     WorkerID
		SignPub    fcrypto.PublicKey
		Box        string
		Commitment Hash // the enrolment commitment the code carried
	}
	// DeviceRevoked revokes a device. With HasCompromisedSince, the
	// device's own statements after CompromisedSince are void.
	DeviceRevoked struct {
		Device              DeviceID
		HasCompromisedSince bool
		CompromisedSince    ChainPos
	}
	WorkerAdded   struct{ Worker WorkerID }
	WorkerRemoved struct{ Worker WorkerID }
	StreamCreated struct {
		Stream StreamID
		Kind   StreamKind
	}
	// EpochStarted names a stream's new key by its commitment and the
	// devices it is wrapped to (sorted, no duplicates).
	EpochStarted struct {
		Stream     StreamID
		Epoch      Epoch
		Devices    []DeviceID
		Commitment Hash
	}
	Assigned struct {
		Stream StreamID
		Worker WorkerID
	}
	Unassigned struct {
		Stream StreamID
		Worker WorkerID
	}
	SnapshotCountersigned struct {
		Stream   StreamID
		Seq      Seq
		Snapshot Hash
	}
	// DeletionReceipt is signed by a device that purged a stream after
	// losing access to it.
	DeletionReceipt struct {
		Stream StreamID
		Device DeviceID
	}
	StreamPurged       struct{ Stream StreamID }
	PoliceContactAdded struct{ Contact ContactID }
	// EnvelopeSealed commits to an envelope's inner layer.
	EnvelopeSealed struct {
		Alarm      AlarmID
		Generation uint32
		Inner      Hash
		SealedMS   uint64
	}
	// EnvelopeReleased is a relay fact. Request is the labelled hash of
	// the winning release request's client nonce (ReleaseRequestHash):
	// the releasing client accepts only a proof that ends with the fact
	// for its own request, so a relay cannot answer with a release
	// recorded earlier (for a superseded generation).
	EnvelopeReleased struct {
		Alarm      AlarmID
		Generation uint32
		ReleasedMS uint64
		Request    Hash
	}
	EmergencyCardWritten struct {
		Alarm AlarmID
		Card  Hash
	}
	// DeviceRefused is a relay fact: a revoked device tried to connect.
	DeviceRefused   struct{ Device DeviceID }
	AuditCheckpoint struct {
		Stream StreamID
		Seq    Seq
		Head   Hash
	}
	// AuditRecipient names the age recipient that audit entries under an
	// audit stream's epoch are sealed to (see syncproto/audit.go).
	AuditRecipient struct {
		Stream    StreamID
		Epoch     Epoch
		Recipient string
	}
	CaseClosed      struct{ Stream StreamID }
	SettingsChanged struct {
		RetentionDays      uint32
		EnvelopeExpiryDays uint32
		AutoLockMinutes    uint32
	}
)

func (*TenantCreated) Type() StatementType         { return StTenantCreated }
func (*CoordinatorDelegated) Type() StatementType  { return StCoordinatorDelegated }
func (*DeviceEnrolled) Type() StatementType        { return StDeviceEnrolled }
func (*DeviceRevoked) Type() StatementType         { return StDeviceRevoked }
func (*WorkerAdded) Type() StatementType           { return StWorkerAdded }
func (*WorkerRemoved) Type() StatementType         { return StWorkerRemoved }
func (*StreamCreated) Type() StatementType         { return StStreamCreated }
func (*EpochStarted) Type() StatementType          { return StEpochStarted }
func (*Assigned) Type() StatementType              { return StAssigned }
func (*Unassigned) Type() StatementType            { return StUnassigned }
func (*SnapshotCountersigned) Type() StatementType { return StSnapshotCountersigned }
func (*DeletionReceipt) Type() StatementType       { return StDeletionReceipt }
func (*StreamPurged) Type() StatementType          { return StStreamPurged }
func (*PoliceContactAdded) Type() StatementType    { return StPoliceContactAdded }
func (*EnvelopeSealed) Type() StatementType        { return StEnvelopeSealed }
func (*EnvelopeReleased) Type() StatementType      { return StEnvelopeReleased }
func (*EmergencyCardWritten) Type() StatementType  { return StEmergencyCardWritten }
func (*DeviceRefused) Type() StatementType         { return StDeviceRefused }
func (*AuditCheckpoint) Type() StatementType       { return StAuditCheckpoint }
func (*CaseClosed) Type() StatementType            { return StCaseClosed }
func (*SettingsChanged) Type() StatementType       { return StSettingsChanged }
func (*AuditRecipient) Type() StatementType        { return StAuditRecipient }

func (b *TenantCreated) encode(e *enc) { e.raw(b.Root[:]); e.raw(b.Relay[:]) }
func (b *TenantCreated) decode(d *dec) { d.fixed(b.Root[:]); d.fixed(b.Relay[:]) }
func (b *CoordinatorDelegated) encode(e *enc) {
	e.raw(b.Device[:])
	e.raw(b.SignPub[:])
	e.str(b.Box)
}
func (b *CoordinatorDelegated) decode(d *dec) {
	d.fixed(b.Device[:])
	d.fixed(b.SignPub[:])
	b.Box = d.str()
}
func (b *DeviceEnrolled) encode(e *enc) {
	e.raw(b.Device[:])
	e.raw(b.Worker[:])
	e.raw(b.SignPub[:])
	e.str(b.Box)
	e.raw(b.Commitment[:])
}
func (b *DeviceEnrolled) decode(d *dec) {
	d.fixed(b.Device[:])
	d.fixed(b.Worker[:])
	d.fixed(b.SignPub[:])
	b.Box = d.str()
	d.fixed(b.Commitment[:])
}
func (b *DeviceRevoked) encode(e *enc) {
	e.raw(b.Device[:])
	e.bool(b.HasCompromisedSince)
	e.u64(uint64(b.CompromisedSince))
}
func (b *DeviceRevoked) decode(d *dec) {
	d.fixed(b.Device[:])
	b.HasCompromisedSince = d.bool()
	b.CompromisedSince = ChainPos(d.u64())
	if !b.HasCompromisedSince && b.CompromisedSince != 0 {
		d.fail(ErrMalformed)
	}
}
func (b *WorkerAdded) encode(e *enc)   { e.raw(b.Worker[:]) }
func (b *WorkerAdded) decode(d *dec)   { d.fixed(b.Worker[:]) }
func (b *WorkerRemoved) encode(e *enc) { e.raw(b.Worker[:]) }
func (b *WorkerRemoved) decode(d *dec) { d.fixed(b.Worker[:]) }
func (b *StreamCreated) encode(e *enc) { e.raw(b.Stream[:]); e.u8(byte(b.Kind)) }
func (b *StreamCreated) decode(d *dec) {
	d.fixed(b.Stream[:])
	b.Kind = StreamKind(d.u8())
	if d.err == nil && (b.Kind < StreamResident || b.Kind > StreamAudit) {
		d.fail(ErrMalformed)
	}
}
func (b *EpochStarted) encode(e *enc) {
	e.raw(b.Stream[:])
	e.u32(uint32(b.Epoch))
	e.u16(uint16(len(b.Devices)))
	for _, id := range b.Devices {
		e.raw(id[:])
	}
	e.raw(b.Commitment[:])
}
func (b *EpochStarted) decode(d *dec) {
	d.fixed(b.Stream[:])
	b.Epoch = Epoch(d.u32())
	n := int(d.u16())
	if n > MaxDevicesInEpoch {
		d.fail(ErrTooLarge)
		return
	}
	for i := 0; i < n && d.err == nil; i++ {
		var id DeviceID
		d.fixed(id[:])
		b.Devices = append(b.Devices, id)
	}
	d.fixed(b.Commitment[:])
	if d.err == nil && !sortedDevices(b.Devices) {
		d.fail(ErrMalformed)
	}
}
func (b *Assigned) encode(e *enc)   { e.raw(b.Stream[:]); e.raw(b.Worker[:]) }
func (b *Assigned) decode(d *dec)   { d.fixed(b.Stream[:]); d.fixed(b.Worker[:]) }
func (b *Unassigned) encode(e *enc) { e.raw(b.Stream[:]); e.raw(b.Worker[:]) }
func (b *Unassigned) decode(d *dec) { d.fixed(b.Stream[:]); d.fixed(b.Worker[:]) }
func (b *SnapshotCountersigned) encode(e *enc) {
	e.raw(b.Stream[:])
	e.u64(uint64(b.Seq))
	e.raw(b.Snapshot[:])
}
func (b *SnapshotCountersigned) decode(d *dec) {
	d.fixed(b.Stream[:])
	b.Seq = Seq(d.u64())
	d.fixed(b.Snapshot[:])
}
func (b *DeletionReceipt) encode(e *enc)    { e.raw(b.Stream[:]); e.raw(b.Device[:]) }
func (b *DeletionReceipt) decode(d *dec)    { d.fixed(b.Stream[:]); d.fixed(b.Device[:]) }
func (b *StreamPurged) encode(e *enc)       { e.raw(b.Stream[:]) }
func (b *StreamPurged) decode(d *dec)       { d.fixed(b.Stream[:]) }
func (b *PoliceContactAdded) encode(e *enc) { e.raw(b.Contact[:]) }
func (b *PoliceContactAdded) decode(d *dec) { d.fixed(b.Contact[:]) }
func (b *EnvelopeSealed) encode(e *enc) {
	e.raw(b.Alarm[:])
	e.u32(b.Generation)
	e.raw(b.Inner[:])
	e.u64(b.SealedMS)
}
func (b *EnvelopeSealed) decode(d *dec) {
	d.fixed(b.Alarm[:])
	b.Generation = d.u32()
	d.fixed(b.Inner[:])
	b.SealedMS = d.u64()
}
func (b *EnvelopeReleased) encode(e *enc) {
	e.raw(b.Alarm[:])
	e.u32(b.Generation)
	e.u64(b.ReleasedMS)
	e.raw(b.Request[:])
}
func (b *EnvelopeReleased) decode(d *dec) {
	d.fixed(b.Alarm[:])
	b.Generation = d.u32()
	b.ReleasedMS = d.u64()
	d.fixed(b.Request[:])
}
func (b *EmergencyCardWritten) encode(e *enc) { e.raw(b.Alarm[:]); e.raw(b.Card[:]) }
func (b *EmergencyCardWritten) decode(d *dec) { d.fixed(b.Alarm[:]); d.fixed(b.Card[:]) }
func (b *DeviceRefused) encode(e *enc)        { e.raw(b.Device[:]) }
func (b *DeviceRefused) decode(d *dec)        { d.fixed(b.Device[:]) }
func (b *AuditCheckpoint) encode(e *enc) {
	e.raw(b.Stream[:])
	e.u64(uint64(b.Seq))
	e.raw(b.Head[:])
}
func (b *AuditCheckpoint) decode(d *dec) {
	d.fixed(b.Stream[:])
	b.Seq = Seq(d.u64())
	d.fixed(b.Head[:])
}
func (b *CaseClosed) encode(e *enc) { e.raw(b.Stream[:]) }
func (b *CaseClosed) decode(d *dec) { d.fixed(b.Stream[:]) }
func (b *SettingsChanged) encode(e *enc) {
	e.u32(b.RetentionDays)
	e.u32(b.EnvelopeExpiryDays)
	e.u32(b.AutoLockMinutes)
}
func (b *SettingsChanged) decode(d *dec) {
	b.RetentionDays = d.u32()
	b.EnvelopeExpiryDays = d.u32()
	b.AutoLockMinutes = d.u32()
}

func (b *AuditRecipient) encode(e *enc) {
	e.raw(b.Stream[:])
	e.u32(uint32(b.Epoch))
	e.str(b.Recipient)
}
func (b *AuditRecipient) decode(d *dec) {
	d.fixed(b.Stream[:])
	b.Epoch = Epoch(d.u32())
	b.Recipient = d.str()
}

func newBody(t StatementType) Body {
	switch t {
	case StTenantCreated:
		return &TenantCreated{}
	case StCoordinatorDelegated:
		return &CoordinatorDelegated{}
	case StDeviceEnrolled:
		return &DeviceEnrolled{}
	case StDeviceRevoked:
		return &DeviceRevoked{}
	case StWorkerAdded:
		return &WorkerAdded{}
	case StWorkerRemoved:
		return &WorkerRemoved{}
	case StStreamCreated:
		return &StreamCreated{}
	case StEpochStarted:
		return &EpochStarted{}
	case StAssigned:
		return &Assigned{}
	case StUnassigned:
		return &Unassigned{}
	case StSnapshotCountersigned:
		return &SnapshotCountersigned{}
	case StDeletionReceipt:
		return &DeletionReceipt{}
	case StStreamPurged:
		return &StreamPurged{}
	case StPoliceContactAdded:
		return &PoliceContactAdded{}
	case StEnvelopeSealed:
		return &EnvelopeSealed{}
	case StEnvelopeReleased:
		return &EnvelopeReleased{}
	case StEmergencyCardWritten:
		return &EmergencyCardWritten{}
	case StDeviceRefused:
		return &DeviceRefused{}
	case StAuditCheckpoint:
		return &AuditCheckpoint{}
	case StCaseClosed:
		return &CaseClosed{}
	case StSettingsChanged:
		return &SettingsChanged{}
	case StAuditRecipient:
		return &AuditRecipient{}
	}
	return nil
}

func sortedDevices(ids []DeviceID) bool {
	for i := 1; i < len(ids); i++ {
		if bytes.Compare(ids[i-1][:], ids[i][:]) >= 0 {
			return false
		}
	}
	return true
}

// SortDevices sorts device ids into the canonical order EpochStarted
// requires and drops duplicates.
func SortDevices(ids []DeviceID) []DeviceID {
	out := append([]DeviceID(nil), ids...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && bytes.Compare(out[j-1][:], out[j][:]) > 0; j-- {
			out[j-1], out[j] = out[j], out[j-1]
		}
	}
	w := 0
	for i := range out {
		if i == 0 || out[i] != out[w-1] {
			out[w] = out[i]
			w++
		}
	}
	return out[:w]
}

// Statement is one signed entry of a tenant's admin chain.
type Statement struct {
	Tenant       TenantID
	Pos          ChainPos
	Prev         Hash // hash of the statement at Pos-1; zero at genesis
	Signer       SignerKind
	SignerDevice DeviceID // set for SignerDevice, zero otherwise
	TimeMS       uint64
	Body         Body
	Sig          []byte
}

func (s *Statement) signedBody() ([]byte, error) {
	if s.Body == nil {
		return nil, fmt.Errorf("encode statement: no body: %w", ErrMalformed)
	}
	if s.Signer < SignerRoot || s.Signer > SignerRelay || (s.Signer == SignerDevice) == s.SignerDevice.IsZero() {
		return nil, fmt.Errorf("encode statement: signer: %w", ErrMalformed)
	}
	e := &enc{}
	e.header(MsgStatement)
	e.raw(s.Tenant[:])
	e.u64(uint64(s.Pos))
	e.raw(s.Prev[:])
	e.u8(byte(s.Signer))
	e.raw(s.SignerDevice[:])
	e.u64(s.TimeMS)
	e.u8(byte(s.Body.Type()))
	start := len(e.b)
	s.Body.encode(e)
	if es, ok := s.Body.(*EpochStarted); ok && !sortedDevices(es.Devices) {
		return nil, fmt.Errorf("encode statement: epoch devices not sorted: %w", ErrMalformed)
	}
	for _, str := range bodyStrings(s.Body) {
		if len(str) > MaxStringLen || strings.ContainsRune(str, 0) {
			return nil, fmt.Errorf("encode statement: %w", ErrMalformed)
		}
	}
	// Never sign what UnmarshalStatement would refuse (an out-of-range
	// stream kind, a compromised-since point without its flag, more devices
	// than an epoch may name, a length that does not fit its prefix):
	// decode the body back and require it to take exactly these bytes.
	if err := checkBody(s.Body.Type(), e.b[start:]); err != nil {
		return nil, fmt.Errorf("encode statement: %s body: %w", s.Body.Type(), err)
	}
	return e.b, nil
}

// checkBody decodes an encoded body of type t and reports whether the
// decoder accepts it whole.
func checkBody(t StatementType, b []byte) error {
	body := newBody(t)
	if body == nil {
		return ErrMalformed
	}
	d := &dec{b: b}
	body.decode(d)
	if d.err == nil && len(d.b) != 0 {
		return ErrTrailing
	}
	return d.err
}

func bodyStrings(b Body) []string {
	switch b := b.(type) {
	case *CoordinatorDelegated:
		return []string{b.Box}
	case *DeviceEnrolled:
		return []string{b.Box}
	case *AuditRecipient:
		return []string{b.Recipient}
	}
	return nil
}

// Sign signs the statement under LabelStatement.
func (s *Statement) Sign(k *fcrypto.SigningKey) error {
	body, err := s.signedBody()
	if err != nil {
		return err
	}
	sig, err := k.Sign(fcrypto.LabelStatement, body)
	if err != nil {
		return fmt.Errorf("sign statement: %w", err)
	}
	s.Sig = sig
	return nil
}

// VerifySig checks the signature against key; authority is the chain
// verifier's job.
func (s *Statement) VerifySig(key fcrypto.PublicKey) error {
	body, err := s.signedBody()
	if err != nil {
		return err
	}
	if err := key.Verify(fcrypto.LabelStatement, body, s.Sig); err != nil {
		return fmt.Errorf("verify %s statement at %d: %w", s.Body.Type(), s.Pos, err)
	}
	return nil
}

// Marshal returns the wire form: signed body then signature.
func (s *Statement) Marshal() ([]byte, error) {
	body, err := s.signedBody()
	if err != nil {
		return nil, err
	}
	if len(s.Sig) != fcrypto.SignatureSize {
		return nil, fmt.Errorf("encode statement: unsigned: %w", ErrMalformed)
	}
	return append(body, s.Sig...), nil
}

// HashStatement returns the hash that the next statement's Prev names.
func HashStatement(raw []byte) Hash { return Hash(sha256.Sum256(raw)) }

// UnmarshalStatement decodes a statement; it does not verify it.
func UnmarshalStatement(raw []byte) (*Statement, error) {
	d := &dec{b: raw}
	d.header(MsgStatement)
	s := &Statement{}
	d.fixed(s.Tenant[:])
	s.Pos = ChainPos(d.u64())
	d.fixed(s.Prev[:])
	s.Signer = SignerKind(d.u8())
	d.fixed(s.SignerDevice[:])
	s.TimeMS = d.u64()
	t := StatementType(d.u8())
	if d.err == nil {
		if s.Signer < SignerRoot || s.Signer > SignerRelay || (s.Signer == SignerDevice) == s.SignerDevice.IsZero() {
			d.fail(ErrMalformed)
		}
		s.Body = newBody(t)
		if s.Body == nil {
			d.fail(fmt.Errorf("%w: unknown statement type %d (newer version?)", ErrMalformed, t))
		}
	}
	if d.err == nil {
		s.Body.decode(d)
	}
	s.Sig = append([]byte(nil), d.take(fcrypto.SignatureSize)...)
	if err := d.finish("statement"); err != nil {
		return nil, err
	}
	for _, str := range bodyStrings(s.Body) {
		if strings.ContainsRune(str, 0) {
			return nil, fmt.Errorf("decode statement: %w", ErrMalformed)
		}
	}
	return s, nil
}
