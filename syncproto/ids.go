package syncproto

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"log/slog"
	"strings"
)

// idEncoding is lower-case base32 without padding: ids appear on command
// lines and in URLs, so they avoid case and padding ambiguity.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// rawID is the 16 random bytes behind every identifier. Identifiers carry no
// meaning: the relay learns nothing from them but equality.
type rawID [16]byte

func newRawID() rawID {
	var id rawID
	if _, err := rand.Read(id[:]); err != nil {
		panic("syncproto: crypto/rand failed: " + err.Error())
	}
	return id
}

func (id rawID) format(prefix string) string { return prefix + idEncoding.EncodeToString(id[:]) }

// parseRawID parses prefix followed by the id's canonical base32. Errors
// wrap ErrMalformed, so a bad id in a request maps to CodeBadRequest.
func parseRawID(prefix, s string) (rawID, error) {
	var id rawID
	if !strings.HasPrefix(s, prefix) {
		return id, fmt.Errorf("parse id %q: want prefix %q: %w", s, prefix, ErrMalformed)
	}
	b, err := idEncoding.DecodeString(s[len(prefix):])
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("parse id %q: %w", s, ErrMalformed)
	}
	copy(id[:], b)
	// Reject non-canonical trailing bits (and the newlines base32 skips)
	// so one id has exactly one spelling.
	if id.format(prefix) != s {
		return id, fmt.Errorf("parse id %q: not canonical: %w", s, ErrMalformed)
	}
	return id, nil
}

// TenantID names one organisation (unit) on a relay.
type TenantID rawID

// DeviceID names one enrolled laptop or phone.
type DeviceID rawID

// WorkerID names one care worker; the name itself lives only in the
// encrypted directory stream.
type WorkerID rawID

// StreamID names one encrypted stream: a resident's case, the directory or
// the audit log.
type StreamID rawID

// AlarmID names one sealed alarm envelope; it stays the same across re-seals.
type AlarmID rawID

// DeltaID names one encrypted edit.
type DeltaID rawID

// RequestID names one enrolment request.
type RequestID rawID

// ContactID names one police contact in the directory.
type ContactID rawID

// Epoch numbers the case keys of a stream, starting at 1.
type Epoch uint32

// ChainPos is the position of a statement in a tenant's admin chain; the
// genesis statement is at position 0.
type ChainPos uint64

// Seq is the relay-assigned sequence number of a batch within a stream,
// starting at 1.
type Seq uint64

func NewTenantID() TenantID   { return TenantID(newRawID()) }
func NewDeviceID() DeviceID   { return DeviceID(newRawID()) }
func NewWorkerID() WorkerID   { return WorkerID(newRawID()) }
func NewStreamID() StreamID   { return StreamID(newRawID()) }
func NewAlarmID() AlarmID     { return AlarmID(newRawID()) }
func NewDeltaID() DeltaID     { return DeltaID(newRawID()) }
func NewRequestID() RequestID { return RequestID(newRawID()) }
func NewContactID() ContactID { return ContactID(newRawID()) }

const (
	tenantPrefix  = "t_"
	devicePrefix  = "d_"
	workerPrefix  = "w_"
	streamPrefix  = "s_"
	alarmPrefix   = "a_"
	deltaPrefix   = "x_"
	requestPrefix = "r_"
	contactPrefix = "p_"
)

func (id TenantID) String() string  { return rawID(id).format(tenantPrefix) }
func (id DeviceID) String() string  { return rawID(id).format(devicePrefix) }
func (id WorkerID) String() string  { return rawID(id).format(workerPrefix) }
func (id StreamID) String() string  { return rawID(id).format(streamPrefix) }
func (id AlarmID) String() string   { return rawID(id).format(alarmPrefix) }
func (id DeltaID) String() string   { return rawID(id).format(deltaPrefix) }
func (id RequestID) String() string { return rawID(id).format(requestPrefix) }
func (id ContactID) String() string { return rawID(id).format(contactPrefix) }

func (id TenantID) LogValue() slog.Value { return slog.StringValue(id.String()) }
func (id DeviceID) LogValue() slog.Value { return slog.StringValue(id.String()) }
func (id StreamID) LogValue() slog.Value { return slog.StringValue(id.String()) }

func (id TenantID) IsZero() bool { return id == TenantID{} }
func (id DeviceID) IsZero() bool { return id == DeviceID{} }
func (id StreamID) IsZero() bool { return id == StreamID{} }
func (id WorkerID) IsZero() bool { return id == WorkerID{} }

func ParseTenantID(s string) (TenantID, error) {
	r, err := parseRawID(tenantPrefix, s)
	return TenantID(r), err
}
func ParseDeviceID(s string) (DeviceID, error) {
	r, err := parseRawID(devicePrefix, s)
	return DeviceID(r), err
}
func ParseWorkerID(s string) (WorkerID, error) {
	r, err := parseRawID(workerPrefix, s)
	return WorkerID(r), err
}
func ParseStreamID(s string) (StreamID, error) {
	r, err := parseRawID(streamPrefix, s)
	return StreamID(r), err
}
func ParseAlarmID(s string) (AlarmID, error) {
	r, err := parseRawID(alarmPrefix, s)
	return AlarmID(r), err
}
func ParseDeltaID(s string) (DeltaID, error) {
	r, err := parseRawID(deltaPrefix, s)
	return DeltaID(r), err
}
func ParseRequestID(s string) (RequestID, error) {
	r, err := parseRawID(requestPrefix, s)
	return RequestID(r), err
}
func ParseContactID(s string) (ContactID, error) {
	r, err := parseRawID(contactPrefix, s)
	return ContactID(r), err
}

// Hash is a SHA-256 digest: of a statement, a batch, a snapshot or an
// envelope's inner layer.
type Hash [32]byte

func (h Hash) String() string { return "h_" + idEncoding.EncodeToString(h[:]) }
func (h Hash) IsZero() bool   { return h == Hash{} }

// ParseHash parses the form printed by Hash.String.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if !strings.HasPrefix(s, "h_") {
		return h, fmt.Errorf("parse hash %q: %w", s, ErrMalformed)
	}
	b, err := idEncoding.DecodeString(s[2:])
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("parse hash %q: %w", s, ErrMalformed)
	}
	copy(h[:], b)
	if h.String() != s {
		return h, fmt.Errorf("parse hash %q: not canonical: %w", s, ErrMalformed)
	}
	return h, nil
}

// Head names a point in a chain: the position of its last statement and
// that statement's hash.
type Head struct {
	Pos  ChainPos
	Hash Hash
}
