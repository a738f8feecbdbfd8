// Package store defines what the relay keeps durably, as one small interface
// with an implementation per database (store/sqlite, store/postgres) and one
// conformance suite (storetest) that every implementation must pass.
//
// A store holds opaque bytes: sealed batches, signed statements, encrypted
// snapshots, sealed secrets. It never parses them and never sees plaintext.
// Access control is the relay's job (it derives it from the admin chain);
// the store only guarantees atomicity, ordering and idempotency.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/fristed/fristed/syncproto"
)

// Errors callers branch on. Implementations wrap them with %w.
var (
	// ErrNotFound: the thing asked for does not exist (or no longer does).
	ErrNotFound = errors.New("not found")
	// ErrConflict: a write lost a race or contradicts stored state
	// (statement position taken, delta id reused by another batch,
	// invite already used, tenant exists). Not retryable as is.
	ErrConflict = errors.New("conflict")
	// ErrChainMoved: AppendBatch was made against a chain head that is no
	// longer the tenant's head. The relay re-checks access and retries.
	ErrChainMoved = errors.New("chain head moved")
	// ErrPruned: a pull asked for batches at or before the stream's pruned
	// point; the client must start from the snapshot.
	ErrPruned = errors.New("history pruned")
	// ErrAlreadyReleased: an envelope was released before (see Release).
	ErrAlreadyReleased = errors.New("already released")
)

// Statement is one entry of a tenant's admin chain as stored.
type Statement struct {
	Pos  syncproto.ChainPos
	Hash syncproto.Hash // hash of Raw, computed by the relay
	Raw  []byte         // the signed statement's canonical bytes
}

// Batch is one sealed batch as stored.
type Batch struct {
	Tenant   syncproto.TenantID
	Stream   syncproto.StreamID
	ID       syncproto.Hash // batch hash: idempotency key within a tenant
	Author   syncproto.DeviceID
	Epoch    syncproto.Epoch
	DeltaIDs []syncproto.DeltaID // unique within a stream
	Raw      []byte              // the signed batch's canonical bytes
	// Set by the store on append.
	Seq        syncproto.Seq
	ReceivedAt time.Time // relay receipt time (UTC, millisecond precision)
}

// Snapshot is an encrypted snapshot of a stream at a sequence number.
type Snapshot struct {
	Tenant syncproto.TenantID
	Stream syncproto.StreamID
	Seq    syncproto.Seq  // last batch folded into it
	ID     syncproto.Hash // hash of Raw
	Raw    []byte
}

// Secret is key material the relay must be able to destroy for good
// (release identities, wrapped case keys). Sealed is already encrypted
// under the relay's key-encryption key generation KEKGen; the store keeps
// it and deletes it with secure_delete, the KEK makes the deletion final.
type Secret struct {
	Tenant syncproto.TenantID
	// Stream is the stream the secret belongs to (a wrapped case key), or
	// zero for none (a release identity); PurgeStream deletes by it.
	Stream syncproto.StreamID
	Kind   string // "release", "wrapped"
	Name   string // opaque, unique per tenant and kind
	KEKGen uint32
	Sealed []byte
}

// Envelope is a sealed alarm envelope's relay-side record.
type Envelope struct {
	Tenant     syncproto.TenantID
	Alarm      syncproto.AlarmID
	SecretHash syncproto.Hash // hash of the release credential's secret
	Outer      []byte         // outer layer, encrypted to the release identity
	SealedAt   time.Time
	ReleasedAt time.Time // zero until released
	NonceHash  syncproto.Hash
	Inner      []byte // kept after release for retries of the same request
	ReleasePos syncproto.ChainPos
	Generation uint32 // 1 when first sealed, bumped by each re-seal
}

// Store is the relay's durable state. Every method takes a context and is
// safe for concurrent use by many goroutines and, for shared databases, by
// several relay processes.
//
// A write that stores something for a tenant that does not exist gives
// ErrNotFound; reads and deletes there find nothing (ErrNotFound where one
// thing is asked for). A limit <= 0 means no limit. Times come back in UTC
// at millisecond precision.
type Store interface {
	// Invites: one-time tokens, stored as hashes. An invite is valid while
	// now is before its expiry; putting a known hash gives ErrConflict.
	PutInvite(ctx context.Context, tokenHash syncproto.Hash, expires time.Time) error
	// ConsumeInvite atomically marks the invite used and creates the tenant.
	// Unknown, expired or used invites give ErrNotFound; an existing tenant
	// id gives ErrConflict.
	ConsumeInvite(ctx context.Context, tokenHash syncproto.Hash, tenant syncproto.TenantID, now time.Time) error
	Tenants(ctx context.Context) ([]syncproto.TenantID, error)

	// AppendStatement appends st at position st.Pos, which must be exactly
	// one past the current head (0 for an empty chain); otherwise
	// ErrConflict. It bumps nothing else.
	AppendStatement(ctx context.Context, tenant syncproto.TenantID, st Statement) error
	// Statements returns up to limit statements with Pos >= from, in order.
	Statements(ctx context.Context, tenant syncproto.TenantID, from syncproto.ChainPos, limit int) ([]Statement, error)
	// ChainHead returns the last statement's position and hash;
	// ErrNotFound for a tenant with an empty chain.
	ChainHead(ctx context.Context, tenant syncproto.TenantID) (syncproto.Head, error)

	// AppendBatch appends b as the stream's next batch if the tenant's chain
	// head is still expectHead (else ErrChainMoved, also for an empty
	// chain), atomically: no appended statement can slip in between the
	// check and the append. It is idempotent by b.ID: a batch already
	// stored returns the stored record with dup=true, whatever the head. A
	// delta id already used in the stream by another batch (including one
	// since pruned) or twice in b gives ErrConflict and stores nothing. On
	// success b.Seq and b.ReceivedAt are set from now.
	AppendBatch(ctx context.Context, b Batch, expectHead syncproto.ChainPos, now time.Time) (stored Batch, dup bool, err error)
	// Batches returns up to limit batches of the stream with Seq > after, in
	// order. after below the pruned point gives ErrPruned.
	Batches(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID, after syncproto.Seq, limit int) ([]Batch, error)
	// StreamHead returns the last sequence number (0 when empty) and the
	// pruned point (batches with Seq <= pruned are gone).
	StreamHead(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID) (head, pruned syncproto.Seq, err error)

	// PutSnapshot stores a snapshot; idempotent by (stream, ID).
	PutSnapshot(ctx context.Context, s Snapshot) error
	// LatestSnapshot returns the snapshot with the highest Seq; ErrNotFound
	// if there is none.
	LatestSnapshot(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID) (Snapshot, error)
	GetSnapshot(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID, id syncproto.Hash) (Snapshot, error)
	// Prune deletes batches with Seq <= upTo and snapshots with Seq < upTo,
	// and records upTo as the pruned point. Pruning to or below the current
	// pruned point is a no-op; pruning past the stream's head gives
	// ErrConflict.
	Prune(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID, upTo syncproto.Seq) error
	// PurgeStream deletes every batch, snapshot and secret (by
	// Secret.Stream) of a stream. The stream's head is kept, as its pruned
	// point, so a sequence number is never handed out twice.
	PurgeStream(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID) error

	// Secrets. Put replaces; Delete of a missing secret is not an error.
	PutSecret(ctx context.Context, s Secret) error
	GetSecret(ctx context.Context, tenant syncproto.TenantID, kind, name string) (Secret, error)
	ListSecrets(ctx context.Context, tenant syncproto.TenantID, kind, namePrefix string) ([]Secret, error)
	DeleteSecret(ctx context.Context, tenant syncproto.TenantID, kind, name string) error
	// PutSecrets puts every secret in one transaction: all are stored, or
	// (on any error, such as an unknown tenant) none is.
	PutSecrets(ctx context.Context, secs []Secret) error
	// DeleteSecrets deletes the named secrets of one tenant and kind in one
	// transaction and returns how many existed; missing names are not an
	// error.
	DeleteSecrets(ctx context.Context, tenant syncproto.TenantID, kind string, names []string) (int, error)
	// RewrapSecrets calls fn for every secret with KEKGen != toGen and stores
	// what it returns with KEKGen = toGen, all in one transaction, and
	// returns how many it rewrapped; used to rotate the key-encryption key.
	// An error from fn rolls everything back. fn must not call the store.
	RewrapSecrets(ctx context.Context, toGen uint32, fn func(Secret) ([]byte, error)) (int, error)

	// Envelopes.
	// PutEnvelope inserts e or re-seals it: a re-seal replaces SecretHash,
	// Outer and SealedAt, bumps Generation and clears the release (and the
	// kept Inner). e's release fields and Generation are ignored.
	PutEnvelope(ctx context.Context, e Envelope) error
	GetEnvelope(ctx context.Context, tenant syncproto.TenantID, alarm syncproto.AlarmID) (Envelope, error)
	// Release marks the envelope released exactly once across all relay
	// processes: the first caller wins and stores nonceHash and inner; a
	// caller with the same nonceHash later gets the stored record back with
	// retry=true; anyone else gets ErrAlreadyReleased with the record.
	Release(ctx context.Context, tenant syncproto.TenantID, alarm syncproto.AlarmID, nonceHash syncproto.Hash, inner []byte, now time.Time) (e Envelope, retry bool, err error)
	SetReleasePos(ctx context.Context, tenant syncproto.TenantID, alarm syncproto.AlarmID, pos syncproto.ChainPos) error
	// ForgetInner drops kept inner layers of envelopes released before t.
	ForgetInner(ctx context.Context, before time.Time) error

	// Auth challenges: single use across processes; putting a known nonce
	// gives ErrConflict.
	PutChallenge(ctx context.Context, nonce syncproto.Hash, expires time.Time) error
	ConsumeChallenge(ctx context.Context, nonce syncproto.Hash, now time.Time) error // ErrNotFound if unknown, used or expired

	// Per-device token version, bumped on revocation; 0 when never bumped.
	TokenVersion(ctx context.Context, tenant syncproto.TenantID, device syncproto.DeviceID) (uint64, error)
	BumpTokenVersion(ctx context.Context, tenant syncproto.TenantID, device syncproto.DeviceID) (uint64, error)
	// Last-seen times, kept at day precision by the caller. TouchDevice
	// keeps the later of day and the stored time.
	TouchDevice(ctx context.Context, tenant syncproto.TenantID, device syncproto.DeviceID, day time.Time) error
	LastSeen(ctx context.Context, tenant syncproto.TenantID) (map[syncproto.DeviceID]time.Time, error)

	// Enrolment requests posted by new devices, fetched by coordinators.
	// Putting the same request again is a no-op if raw is the same and
	// ErrConflict if not; GetEnrolment gives ErrNotFound once expired.
	PutEnrolment(ctx context.Context, tenant syncproto.TenantID, req syncproto.RequestID, raw []byte, expires time.Time) error
	GetEnrolment(ctx context.Context, tenant syncproto.TenantID, req syncproto.RequestID, now time.Time) ([]byte, error)
	DeleteEnrolment(ctx context.Context, tenant syncproto.TenantID, req syncproto.RequestID) error

	// Subscribe registers fn and returns; fn is then called after any batch
	// is appended to any stream, by this process or (for shared databases)
	// another one, until ctx ends. fn must not block. Delivery is at least
	// once, possibly coalesced, and may include spurious calls; a waiter
	// still re-checks StreamHead after a timeout, since a notification
	// from another process can be lost while the database is unreachable.
	Subscribe(ctx context.Context, fn func(tenant syncproto.TenantID, stream syncproto.StreamID)) error

	Close() error
}
