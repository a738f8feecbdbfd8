package syncproto

import (
	"crypto/subtle"
	"errors"
	"fmt"

	fcrypto "github.com/fristed/fristed/crypto"
)

// Chain verification errors. Callers branch on them.
var (
	ErrChainBroken     = errors.New("statement does not extend the chain")
	ErrFingerprint     = errors.New("chain genesis does not match the pinned org fingerprint")
	ErrUnknownSigner   = errors.New("statement signed by an unknown device")
	ErrRevokedSigner   = errors.New("statement signed by a revoked device")
	ErrUnauthorized    = errors.New("signer has no authority for this statement")
	ErrInvalid         = errors.New("statement contradicts the chain")
	ErrLastCoord       = errors.New("would revoke the last coordinator device")
	ErrFork            = errors.New("chain forked: the relay shows a different history than this device saw")
	ErrRollback        = errors.New("chain rolled back: the relay shows less history than this device saw")
	ErrNotAssigned     = errors.New("device is not in the stream's current epoch")
	ErrEpochSuperseded = errors.New("batch sealed under a superseded epoch")
	ErrUnknownEpoch    = errors.New("batch sealed under an epoch that does not exist")
	ErrDeviceRevoked   = errors.New("device revoked")
)

// Role is a device's role.
type Role byte

const (
	RoleCoordinator Role = 1
	RoleWorker      Role = 2
)

func (r Role) String() string {
	if r == RoleCoordinator {
		return "coordinator"
	}
	return "worker"
}

// DeviceInfo is what the chain says about a device.
type DeviceInfo struct {
	ID                  DeviceID
	Role                Role
	Worker              WorkerID // zero for coordinator devices
	SignPub             fcrypto.PublicKey
	Box                 string
	EnrolledAt          ChainPos
	Revoked             bool
	RevokedAt           ChainPos
	HasCompromisedSince bool
	CompromisedSince    ChainPos
}

// Active reports whether the device is enrolled and not revoked.
func (d *DeviceInfo) Active() bool { return d != nil && !d.Revoked }

// WorkerInfo is what the chain says about a worker.
type WorkerInfo struct {
	ID      WorkerID
	AddedAt ChainPos
	Removed bool
}

// EpochInfo is one key epoch of a stream.
type EpochInfo struct {
	Epoch      Epoch
	Devices    []DeviceID
	Commitment Hash
	Pos        ChainPos
	// AuditRecipient is, for an audit stream's epoch, the recipient its
	// entries are sealed to once an AuditRecipient statement named it, at
	// AuditRecipientAt (empty before: entries are sealed to the epoch's
	// devices). A batch written under a chain head at or past
	// AuditRecipientAt was sealed to it.
	AuditRecipient   string
	AuditRecipientAt ChainPos
}

// Has reports whether d is one of the epoch's devices.
func (e *EpochInfo) Has(d DeviceID) bool {
	for _, x := range e.Devices {
		if x == d {
			return true
		}
	}
	return false
}

// StreamInfo is what the chain says about a stream.
type StreamInfo struct {
	ID        StreamID
	Kind      StreamKind
	CreatedAt ChainPos
	Epochs    []EpochInfo // ascending
	Assigned  map[WorkerID]bool
	// RemovedAt records, per device, the position of the epoch statement
	// that last dropped it from the stream.
	RemovedAt        map[DeviceID]ChainPos
	Countersigned    *SnapshotCountersigned
	DeletionReceipts map[DeviceID]ChainPos
	Closed           bool
	ClosedAt         ChainPos
	ClosedMS         uint64 // the signed time of the "case closed" statement
	Purged           bool
}

// Current returns the newest epoch, or nil before the first.
func (s *StreamInfo) Current() *EpochInfo {
	if len(s.Epochs) == 0 {
		return nil
	}
	return &s.Epochs[len(s.Epochs)-1]
}

// Epoch returns epoch e, or nil.
func (s *StreamInfo) Epoch(e Epoch) *EpochInfo {
	for i := range s.Epochs {
		if s.Epochs[i].Epoch == e {
			return &s.Epochs[i]
		}
	}
	return nil
}

// EnvelopeInfo is what the chain says about an alarm envelope.
type EnvelopeInfo struct {
	Alarm      AlarmID
	Generation uint32
	Inner      Hash
	SealedMS   uint64
	SealedPos  ChainPos
	Sealer     DeviceID
	Released   bool // the current generation was released
	ReleasedMS uint64
	ReleasedAt ChainPos
}

// State is a tenant's access-control state, derived from its chain alone.
type State struct {
	Tenant      TenantID
	Root        fcrypto.PublicKey
	Relay       fcrypto.PublicKey
	Devices     map[DeviceID]*DeviceInfo
	Workers     map[WorkerID]*WorkerInfo
	Streams     map[StreamID]*StreamInfo
	Envelopes   map[AlarmID]*EnvelopeInfo
	Contacts    map[ContactID]ChainPos
	Settings    SettingsChanged
	Checkpoint  *AuditCheckpoint
	Emergencies []EmergencyCardWritten
}

func newState() *State {
	return &State{
		Devices:   map[DeviceID]*DeviceInfo{},
		Workers:   map[WorkerID]*WorkerInfo{},
		Streams:   map[StreamID]*StreamInfo{},
		Envelopes: map[AlarmID]*EnvelopeInfo{},
		Contacts:  map[ContactID]ChainPos{},
	}
}

// ActiveCoordinators returns the ids of unrevoked coordinator devices.
func (st *State) ActiveCoordinators() []DeviceID {
	var out []DeviceID
	for id, d := range st.Devices {
		if d.Role == RoleCoordinator && !d.Revoked {
			out = append(out, id)
		}
	}
	return SortDevices(out)
}

// WorkerDevices returns the ids of a worker's unrevoked devices.
func (st *State) WorkerDevices(w WorkerID) []DeviceID {
	var out []DeviceID
	for id, d := range st.Devices {
		if d.Role == RoleWorker && d.Worker == w && !d.Revoked {
			out = append(out, id)
		}
	}
	return SortDevices(out)
}

// CanRead reports whether device d may read and write stream s now: it is
// active and one of the current epoch's devices.
func (st *State) CanRead(d DeviceID, s StreamID) bool {
	dev := st.Devices[d]
	str := st.Streams[s]
	if !dev.Active() || str == nil || str.Purged {
		return false
	}
	cur := str.Current()
	return cur != nil && cur.Has(d)
}

// CheckBatch decides whether a batch from device d for stream s sealed
// under epoch e, written when the author's chain head was at writtenAt,
// may be accepted. A superseded epoch is accepted only from an unrevoked
// device that was in that epoch and wrote before the statement that removed
// it from the stream, so its last edits are not lost; and only while the
// exception cannot leak an edit:
//   - e was still the newest epoch at writtenAt (a device that had seen a
//     newer epoch of its own must seal under it), and
//   - no device that holds e's key has been revoked: a revocation
//     promises that nothing written after it is readable with the revoked
//     device's keys, and this edit is written now.
//
// An audit stream is append-only for every active device: see
// checkAuditBatch.
//
// writtenAt is the batch's ChainHead.Pos; the caller checks that the head
// is in its chain (Chain.CheckHead).
func (st *State) CheckBatch(d DeviceID, s StreamID, e Epoch, writtenAt ChainPos) error {
	dev := st.Devices[d]
	if dev == nil {
		return ErrUnknownSigner
	}
	if dev.Revoked {
		return ErrDeviceRevoked
	}
	str := st.Streams[s]
	if str == nil || str.Purged {
		return ErrNotAssigned
	}
	cur := str.Current()
	if cur == nil {
		return ErrNotAssigned
	}
	if str.Kind == StreamAudit {
		return checkAuditBatch(str, e)
	}
	if e == cur.Epoch {
		if !cur.Has(d) {
			return ErrNotAssigned
		}
		return nil
	}
	if e > cur.Epoch {
		return ErrUnknownEpoch
	}
	old := str.Epoch(e)
	if old == nil {
		return ErrUnknownEpoch
	}
	if !old.Has(d) {
		return ErrNotAssigned
	}
	removed, ok := str.RemovedAt[d]
	if !ok || cur.Has(d) || writtenAt >= removed {
		return ErrEpochSuperseded
	}
	if next := str.epochAfter(e); next != nil && writtenAt >= next.Pos {
		return ErrEpochSuperseded
	}
	for _, x := range old.Devices {
		if !st.Devices[x].Active() {
			return ErrEpochSuperseded
		}
	}
	return nil
}

// epochAfter returns the epoch that followed e, or nil.
func (s *StreamInfo) epochAfter(e Epoch) *EpochInfo {
	for i := range s.Epochs {
		if s.Epochs[i].Epoch > e {
			return &s.Epochs[i]
		}
	}
	return nil
}

// Chain verifies a tenant's admin chain statement by statement and keeps
// the state it implies. The zero value is not usable; use NewChain.
type Chain struct {
	org    fcrypto.Fingerprint
	stmts  []*Statement
	hashes []Hash
	void   []bool
	// voidFrom maps a device to the position after which its statements
	// are void (a revocation's compromised-since point), for as long as
	// that revocation itself stands.
	voidFrom map[DeviceID]voidPoint
	state    *State
}

// NewChain returns an empty chain pinned to an org fingerprint.
func NewChain(org fcrypto.Fingerprint) *Chain {
	return &Chain{org: org, state: newState(), voidFrom: map[DeviceID]voidPoint{}}
}

// Len returns the number of statements.
func (c *Chain) Len() int { return len(c.stmts) }

// Head returns the position and hash of the last statement; ok is false
// for an empty chain.
func (c *Chain) Head() (h Head, ok bool) {
	if len(c.stmts) == 0 {
		return Head{}, false
	}
	n := len(c.stmts) - 1
	return Head{Pos: ChainPos(n), Hash: c.hashes[n]}, true
}

// HashAt returns the hash of the statement at pos.
func (c *Chain) HashAt(pos ChainPos) (Hash, bool) {
	if uint64(pos) >= uint64(len(c.hashes)) {
		return Hash{}, false
	}
	return c.hashes[pos], true
}

// Statement returns the statement at pos, or nil.
func (c *Chain) Statement(pos ChainPos) *Statement {
	if uint64(pos) >= uint64(len(c.stmts)) {
		return nil
	}
	return c.stmts[pos]
}

// IsVoid reports whether the statement at pos was voided by a later
// revocation's compromised-since point (or by depending on one that was).
func (c *Chain) IsVoid(pos ChainPos) bool {
	return uint64(pos) < uint64(len(c.void)) && c.void[pos]
}

// State returns the current state. Callers must not modify it.
func (c *Chain) State() *State { return c.state }

// Org returns the pinned fingerprint.
func (c *Chain) Org() fcrypto.Fingerprint { return c.org }

// CheckHead compares the chain with a head this device saw before: the
// chain must contain it. Less history is a rollback, a different statement
// at that position is a fork.
func (c *Chain) CheckHead(seen Head) error {
	if uint64(seen.Pos) >= uint64(len(c.hashes)) {
		return fmt.Errorf("%w (saw position %d, relay has %d statements)", ErrRollback, seen.Pos, len(c.hashes))
	}
	h := c.hashes[seen.Pos]
	if subtle.ConstantTimeCompare(h[:], seen.Hash[:]) != 1 {
		return fmt.Errorf("%w (at position %d)", ErrFork, seen.Pos)
	}
	return nil
}

// Append verifies raw as the next statement and applies it. On error the
// chain is unchanged.
func (c *Chain) Append(raw []byte) (*Statement, error) {
	s, err := UnmarshalStatement(raw)
	if err != nil {
		return nil, err
	}
	if err := c.AppendStatement(s); err != nil {
		return nil, err
	}
	return s, nil
}

// AppendStatement is Append for a decoded statement.
func (c *Chain) AppendStatement(s *Statement) error {
	raw, err := s.Marshal()
	if err != nil {
		return err
	}
	pos := ChainPos(len(c.stmts))
	if s.Pos != pos {
		return fmt.Errorf("%w: position %d, want %d", ErrChainBroken, s.Pos, pos)
	}
	var prev Hash
	if pos > 0 {
		prev = c.hashes[pos-1]
		if s.Tenant != c.state.Tenant {
			return fmt.Errorf("%w: another tenant", ErrChainBroken)
		}
	}
	if subtle.ConstantTimeCompare(prev[:], s.Prev[:]) != 1 {
		return fmt.Errorf("%w: parent hash mismatch at %d", ErrChainBroken, pos)
	}
	key, err := c.signerKey(s)
	if err != nil {
		return err
	}
	if err := s.VerifySig(key); err != nil {
		return err
	}
	if err := authorise(c.state, s); err != nil {
		return err
	}
	// apply checks everything before it changes anything, so a failing
	// statement leaves the state untouched.
	if err := apply(c.state, s, pos); err != nil {
		return err
	}
	c.stmts = append(c.stmts, s)
	c.hashes = append(c.hashes, HashStatement(raw))
	c.void = append(c.void, false)
	if r, ok := s.Body.(*DeviceRevoked); ok && r.HasCompromisedSince {
		c.voidFrom[r.Device] = voidPoint{from: r.CompromisedSince, by: pos}
		c.rebuild()
	}
	return nil
}

func (c *Chain) signerKey(s *Statement) (fcrypto.PublicKey, error) {
	if s.Pos == 0 {
		tc, ok := s.Body.(*TenantCreated)
		if !ok || s.Signer != SignerRoot {
			return fcrypto.PublicKey{}, fmt.Errorf("%w: genesis must be a root-signed tenant creation", ErrInvalid)
		}
		if !fcrypto.OrgFingerprint(tc.Root).Equal(c.org) {
			return fcrypto.PublicKey{}, ErrFingerprint
		}
		return tc.Root, nil
	}
	switch s.Signer {
	case SignerRoot:
		return c.state.Root, nil
	case SignerRelay:
		return c.state.Relay, nil
	}
	dev := c.state.Devices[s.SignerDevice]
	if dev == nil {
		return fcrypto.PublicKey{}, fmt.Errorf("%w: %s", ErrUnknownSigner, s.SignerDevice)
	}
	if dev.Revoked {
		return fcrypto.PublicKey{}, fmt.Errorf("%w: %s", ErrRevokedSigner, s.SignerDevice)
	}
	return dev.SignPub, nil
}

// authorise checks that the signer may make this kind of statement.
func authorise(st *State, s *Statement) error {
	t := s.Body.Type()
	deny := func() error {
		return fmt.Errorf("%w: %s may not sign %q", ErrUnauthorized, s.Signer, t)
	}
	if t == StTenantCreated {
		if s.Pos != 0 {
			return fmt.Errorf("%w: tenant created after genesis", ErrInvalid)
		}
		return nil
	}
	switch s.Signer {
	case SignerRoot:
		switch t {
		case StCoordinatorDelegated, StDeviceRevoked:
			return nil
		}
		return deny()
	case SignerRelay:
		switch t {
		case StEnvelopeReleased, StDeviceRefused:
			return nil
		}
		return deny()
	}
	dev := st.Devices[s.SignerDevice]
	if dev == nil {
		return fmt.Errorf("%w: %s", ErrUnknownSigner, s.SignerDevice)
	}
	switch t {
	case StDeletionReceipt:
		if s.Body.(*DeletionReceipt).Device != s.SignerDevice {
			return deny()
		}
		return nil
	case StEmergencyCardWritten:
		return nil
	case StCoordinatorDelegated, StEnvelopeReleased, StDeviceRefused:
		return deny()
	}
	if dev.Role != RoleCoordinator {
		return deny()
	}
	if r, ok := s.Body.(*DeviceRevoked); ok {
		if target := st.Devices[r.Device]; target != nil && target.Role == RoleCoordinator {
			return fmt.Errorf("%w: revoking a coordinator device needs the root key", ErrUnauthorized)
		}
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// checkKeyUnused refuses a signing key that another device (revoked or
// not) already has: revoking one id must stop the key everywhere.
func checkKeyUnused(st *State, pub fcrypto.PublicKey) error {
	for _, d := range st.Devices {
		if d.SignPub.Equal(pub) {
			return invalid("signing key already belongs to device %s", d.ID)
		}
	}
	return nil
}

func checkBox(box string) error {
	if _, err := fcrypto.ParseBoxRecipient(box); err != nil {
		return invalid("device age recipient: %v", err)
	}
	return nil
}

// apply checks a statement against the state and, only if every check
// passes, applies its effects: each case checks before it mutates.
func apply(st *State, s *Statement, pos ChainPos) error {
	switch b := s.Body.(type) {
	case *TenantCreated:
		if b.Root.IsZero() || b.Relay.IsZero() {
			return invalid("zero key at genesis")
		}
		st.Tenant, st.Root, st.Relay = s.Tenant, b.Root, b.Relay
	case *CoordinatorDelegated:
		if _, ok := st.Devices[b.Device]; ok || b.Device.IsZero() || b.SignPub.IsZero() {
			return invalid("device %s already known", b.Device)
		}
		if err := checkBox(b.Box); err != nil {
			return err
		}
		if err := checkKeyUnused(st, b.SignPub); err != nil {
			return err
		}
		st.Devices[b.Device] = &DeviceInfo{ID: b.Device, Role: RoleCoordinator, SignPub: b.SignPub, Box: b.Box, EnrolledAt: pos}
	case *DeviceEnrolled:
		if _, ok := st.Devices[b.Device]; ok || b.Device.IsZero() || b.SignPub.IsZero() {
			return invalid("device %s already known", b.Device)
		}
		if w := st.Workers[b.Worker]; w == nil || w.Removed {
			return invalid("unknown worker %s", b.Worker)
		}
		if err := checkBox(b.Box); err != nil {
			return err
		}
		if err := checkKeyUnused(st, b.SignPub); err != nil {
			return err
		}
		st.Devices[b.Device] = &DeviceInfo{ID: b.Device, Role: RoleWorker, Worker: b.Worker, SignPub: b.SignPub, Box: b.Box, EnrolledAt: pos}
	case *DeviceRevoked:
		d := st.Devices[b.Device]
		if d == nil {
			return invalid("unknown device %s", b.Device)
		}
		if d.Revoked {
			return invalid("device %s already revoked", b.Device)
		}
		if b.HasCompromisedSince && b.CompromisedSince >= pos {
			return invalid("compromised-since %d is not before the revocation", b.CompromisedSince)
		}
		if d.Role == RoleCoordinator && len(st.ActiveCoordinators()) <= 1 {
			return ErrLastCoord
		}
		d.Revoked, d.RevokedAt = true, pos
		d.HasCompromisedSince, d.CompromisedSince = b.HasCompromisedSince, b.CompromisedSince
	case *WorkerAdded:
		if _, ok := st.Workers[b.Worker]; ok || b.Worker.IsZero() {
			return invalid("worker %s already known", b.Worker)
		}
		st.Workers[b.Worker] = &WorkerInfo{ID: b.Worker, AddedAt: pos}
	case *WorkerRemoved:
		w := st.Workers[b.Worker]
		if w == nil || w.Removed {
			return invalid("unknown worker %s", b.Worker)
		}
		w.Removed = true
		for _, str := range st.Streams {
			delete(str.Assigned, b.Worker)
		}
	case *StreamCreated:
		if _, ok := st.Streams[b.Stream]; ok || b.Stream.IsZero() {
			return invalid("stream %s already known", b.Stream)
		}
		st.Streams[b.Stream] = &StreamInfo{ID: b.Stream, Kind: b.Kind, CreatedAt: pos,
			Assigned: map[WorkerID]bool{}, RemovedAt: map[DeviceID]ChainPos{}, DeletionReceipts: map[DeviceID]ChainPos{}}
	case *EpochStarted:
		str := st.Streams[b.Stream]
		if str == nil || str.Purged {
			return invalid("unknown stream %s", b.Stream)
		}
		var prev *EpochInfo
		if cur := str.Current(); cur != nil {
			prev = cur
			if b.Epoch <= cur.Epoch {
				return invalid("epoch %d does not follow %d", b.Epoch, cur.Epoch)
			}
		} else if b.Epoch == 0 {
			return invalid("epoch 0")
		}
		if len(b.Devices) == 0 || b.Commitment.IsZero() {
			return invalid("epoch without devices or key commitment")
		}
		for _, d := range b.Devices {
			if !st.Devices[d].Active() {
				return invalid("epoch names inactive device %s", d)
			}
		}
		ep := EpochInfo{Epoch: b.Epoch, Devices: append([]DeviceID(nil), b.Devices...), Commitment: b.Commitment, Pos: pos}
		if prev != nil {
			for _, d := range prev.Devices {
				if !ep.Has(d) {
					str.RemovedAt[d] = pos
				}
			}
		}
		for _, d := range ep.Devices {
			delete(str.RemovedAt, d)
		}
		str.Epochs = append(str.Epochs, ep)
	case *Assigned:
		str := st.Streams[b.Stream]
		if str == nil || str.Purged || str.Kind != StreamResident {
			return invalid("unknown resident stream %s", b.Stream)
		}
		if w := st.Workers[b.Worker]; w == nil || w.Removed {
			return invalid("unknown worker %s", b.Worker)
		}
		if str.Assigned[b.Worker] {
			return invalid("worker %s already assigned", b.Worker)
		}
		str.Assigned[b.Worker] = true
	case *Unassigned:
		str := st.Streams[b.Stream]
		if str == nil || !str.Assigned[b.Worker] {
			return invalid("worker %s is not assigned to %s", b.Worker, b.Stream)
		}
		delete(str.Assigned, b.Worker)
	case *SnapshotCountersigned:
		str := st.Streams[b.Stream]
		if str == nil || str.Purged || b.Seq == 0 || b.Snapshot.IsZero() {
			return invalid("countersignature for unknown stream or empty snapshot")
		}
		if str.Countersigned != nil && b.Seq < str.Countersigned.Seq {
			return invalid("countersigned snapshot older than the last one")
		}
		cs := *b
		str.Countersigned = &cs
	case *DeletionReceipt:
		str := st.Streams[b.Stream]
		if str == nil {
			return invalid("unknown stream %s", b.Stream)
		}
		str.DeletionReceipts[b.Device] = pos
	case *StreamPurged:
		str := st.Streams[b.Stream]
		if str == nil || str.Purged {
			return invalid("unknown stream %s", b.Stream)
		}
		if str.Kind != StreamResident || !str.Closed {
			return invalid("purge of stream %s, which is not a closed case", b.Stream)
		}
		if due := PurgeDue(st, str); s.TimeMS < due {
			return invalid("purge of case %s before its retention period ends", b.Stream)
		}
		str.Purged = true
	case *PoliceContactAdded:
		if _, ok := st.Contacts[b.Contact]; ok {
			return invalid("police contact %s already known", b.Contact)
		}
		st.Contacts[b.Contact] = pos
	case *EnvelopeSealed:
		env := st.Envelopes[b.Alarm]
		want := uint32(1)
		if env != nil {
			want = env.Generation + 1
		}
		if b.Generation != want || b.Inner.IsZero() {
			return invalid("envelope %s generation %d, want %d", b.Alarm, b.Generation, want)
		}
		st.Envelopes[b.Alarm] = &EnvelopeInfo{Alarm: b.Alarm, Generation: b.Generation, Inner: b.Inner,
			SealedMS: b.SealedMS, SealedPos: pos, Sealer: s.SignerDevice}
	case *EnvelopeReleased:
		env := st.Envelopes[b.Alarm]
		if env == nil || env.Generation != b.Generation || env.Released {
			return invalid("release of unknown or released envelope %s", b.Alarm)
		}
		if b.Request.IsZero() {
			// The releasing client checks the fact against its own nonce.
			return invalid("release of envelope %s names no request", b.Alarm)
		}
		env.Released, env.ReleasedMS, env.ReleasedAt = true, b.ReleasedMS, pos
	case *EmergencyCardWritten:
		if b.Card.IsZero() {
			return invalid("emergency card without hash")
		}
		st.Emergencies = append(st.Emergencies, *b)
	case *DeviceRefused:
		if d := st.Devices[b.Device]; d == nil || !d.Revoked {
			return invalid("refusal of a device that is not revoked")
		}
	case *AuditCheckpoint:
		str := st.Streams[b.Stream]
		if str == nil || str.Kind != StreamAudit {
			return invalid("checkpoint of a stream that is not an audit stream")
		}
		if st.Checkpoint != nil && b.Seq < st.Checkpoint.Seq {
			return invalid("audit checkpoint goes backwards")
		}
		cp := *b
		st.Checkpoint = &cp
	case *AuditRecipient:
		str := st.Streams[b.Stream]
		if str == nil || str.Purged || str.Kind != StreamAudit {
			return invalid("audit recipient of a stream that is not an audit stream")
		}
		cur := str.Current()
		if cur == nil || cur.Epoch != b.Epoch {
			return invalid("audit recipient for epoch %d, not the current one", b.Epoch)
		}
		if cur.AuditRecipient != "" {
			return invalid("audit recipient of epoch %d already named", b.Epoch)
		}
		if _, err := fcrypto.ParseBoxRecipient(b.Recipient); err != nil {
			return invalid("audit recipient: %v", err)
		}
		cur.AuditRecipient, cur.AuditRecipientAt = b.Recipient, pos
	case *CaseClosed:
		str := st.Streams[b.Stream]
		if str == nil || str.Kind != StreamResident || str.Closed {
			return invalid("close of unknown or closed case %s", b.Stream)
		}
		str.Closed, str.ClosedAt, str.ClosedMS = true, pos, s.TimeMS
	case *SettingsChanged:
		st.Settings = *b
	default:
		return invalid("unknown statement")
	}
	return nil
}

// DefaultRetentionDays is the retention period of a closed case while the
// org's settings name none.
const DefaultRetentionDays = 365 * 5

// PurgeDue returns the earliest signed time (Unix milliseconds) at which a
// closed case may be purged: its signed closing time plus the org's
// retention period as the chain holds it now. It is meaningless for a
// stream that is not closed.
func PurgeDue(st *State, str *StreamInfo) uint64 {
	days := uint64(st.Settings.RetentionDays)
	if days == 0 {
		days = DefaultRetentionDays
	}
	return str.ClosedMS + days*24*60*60*1000
}

// VoidEpochs returns, per stream, the epochs that only void "epoch
// started" statements gave it (a compromised coordinator device's re-keys
// after its compromised-since point), with the commitments they signed.
// Honest devices may have sealed batches under such an epoch before the
// revocation; its key is checked against that commitment before it is
// used to read them. An epoch number a valid statement also uses is left
// out, so a key is never taken for the wrong epoch.
func (c *Chain) VoidEpochs() map[StreamID][]EpochInfo {
	out := map[StreamID][]EpochInfo{}
	for pos, s := range c.stmts {
		es, ok := s.Body.(*EpochStarted)
		if !ok || !c.void[pos] {
			continue
		}
		if str := c.state.Streams[es.Stream]; str == nil || str.Purged || str.Epoch(es.Epoch) != nil {
			continue
		}
		out[es.Stream] = append(out[es.Stream], EpochInfo{Epoch: es.Epoch, Devices: append([]DeviceID(nil), es.Devices...),
			Commitment: es.Commitment, Pos: ChainPos(pos)})
	}
	return out
}

// voidPoint is a compromised-since revocation: the device's statements
// after from are void; by is the revocation's position.
type voidPoint struct{ from, by ChainPos }

// rebuild recomputes the state from genesis after a compromised-since
// revocation: statements signed by a compromised device after its point
// are void, and so is any later statement that only made sense because of
// them (it no longer verifies against the rebuilt state). A revocation
// that is itself voided (a compromised coordinator "revoking" an honest
// worker device as compromised) voids nothing: its point is dropped and
// the state rebuilt again. Points are only ever dropped, so this ends.
func (c *Chain) rebuild() {
	for {
		c.replay()
		dropped := false
		for dev, vp := range c.voidFrom {
			if c.void[vp.by] {
				delete(c.voidFrom, dev)
				dropped = true
			}
		}
		if !dropped {
			return
		}
	}
}

// replay recomputes the state and the void marks under c.voidFrom.
func (c *Chain) replay() {
	st := newState()
	for i, s := range c.stmts {
		pos := ChainPos(i)
		c.void[i] = false
		if s.Signer == SignerDevice {
			if vp, ok := c.voidFrom[s.SignerDevice]; ok && pos > vp.from {
				c.void[i] = true
				continue
			}
			if d := st.Devices[s.SignerDevice]; d == nil || d.Revoked {
				c.void[i] = true
				continue
			}
		}
		if authorise(st, s) != nil {
			c.void[i] = true
			continue
		}
		if err := apply(st, s, pos); err != nil {
			c.void[i] = true
		}
	}
	c.state = st
}

// Clone deep-copies the state, for readers that must not see it change.
func (st *State) Clone() *State {
	n := &State{Tenant: st.Tenant, Root: st.Root, Relay: st.Relay, Settings: st.Settings,
		Devices:     make(map[DeviceID]*DeviceInfo, len(st.Devices)),
		Workers:     make(map[WorkerID]*WorkerInfo, len(st.Workers)),
		Streams:     make(map[StreamID]*StreamInfo, len(st.Streams)),
		Envelopes:   make(map[AlarmID]*EnvelopeInfo, len(st.Envelopes)),
		Contacts:    make(map[ContactID]ChainPos, len(st.Contacts)),
		Emergencies: append([]EmergencyCardWritten(nil), st.Emergencies...),
	}
	if st.Checkpoint != nil {
		cp := *st.Checkpoint
		n.Checkpoint = &cp
	}
	for k, v := range st.Devices {
		d := *v
		n.Devices[k] = &d
	}
	for k, v := range st.Workers {
		w := *v
		n.Workers[k] = &w
	}
	for k, v := range st.Streams {
		s := *v
		s.Epochs = append([]EpochInfo(nil), v.Epochs...)
		s.Assigned = make(map[WorkerID]bool, len(v.Assigned))
		for a, b := range v.Assigned {
			s.Assigned[a] = b
		}
		s.RemovedAt = make(map[DeviceID]ChainPos, len(v.RemovedAt))
		for a, b := range v.RemovedAt {
			s.RemovedAt[a] = b
		}
		s.DeletionReceipts = make(map[DeviceID]ChainPos, len(v.DeletionReceipts))
		for a, b := range v.DeletionReceipts {
			s.DeletionReceipts[a] = b
		}
		if v.Countersigned != nil {
			cs := *v.Countersigned
			s.Countersigned = &cs
		}
		n.Streams[k] = &s
	}
	for k, v := range st.Envelopes {
		e := *v
		n.Envelopes[k] = &e
	}
	for k, v := range st.Contacts {
		n.Contacts[k] = v
	}
	return n
}

// Next returns an unsigned statement that would extend the chain: tenant,
// position and parent filled in. For genesis, tenant must be given.
func (c *Chain) Next(tenant TenantID, signer SignerKind, device DeviceID, timeMS uint64, body Body) *Statement {
	s := &Statement{Tenant: tenant, Signer: signer, SignerDevice: device, TimeMS: timeMS, Body: body}
	if h, ok := c.Head(); ok {
		s.Tenant, s.Pos, s.Prev = c.state.Tenant, h.Pos+1, h.Hash
	}
	return s
}
