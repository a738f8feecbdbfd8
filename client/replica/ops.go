package replica

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/fristed/fristed/syncproto"
)

// The ops builders turn a local edit into ops, checked against the schema
// and the replica's current state. They change nothing: the caller wraps
// the ops in a delta with its own clock and applies it (with Apply) once
// it is durable. Errors wrap ErrInvalid (a *ValidationError), ErrNotFound
// or ErrRemoved.

// SetOps returns the ops that set fields of a record: one OpSet per field,
// in field-name order. Each carries as its bases the versions of the
// register's current heads, so the write supersedes every value this
// replica knows - and resolves a conflict there. The empty value clears an
// optional field. kind must be a record kind; record is the zero id for a
// singleton kind (the resident, the org) and the record's id otherwise.
// Records of kinds named by an outside id (worker, device, police, alarm)
// come into being with their first set; others must exist (NewRecordOps).
func (r *Replica) SetOps(stream syncproto.StreamID, kind string, record syncproto.DeltaID, fields map[string]string) ([]syncproto.Op, error) {
	k, err := lookupKind(kind)
	if err != nil {
		return nil, err
	}
	if k.Class == ClassEntry {
		return nil, &ValidationError{Kind: kind, Problem: "entries cannot be changed: remove the entry and add a new one"}
	}
	if len(fields) == 0 {
		return nil, &ValidationError{Kind: kind, Problem: "no fields to set", Allowed: k.fieldNames()}
	}
	if k.Singleton != (record == syncproto.DeltaID{}) {
		if k.Singleton {
			return nil, &ValidationError{Kind: kind, Problem: "has one record per stream, with no id"}
		}
		return nil, &ValidationError{Kind: kind, Problem: "a record id is required"}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkFields(stream, k, record, fields, false); err != nil {
		return nil, err
	}
	if !k.Singleton {
		switch exists, removed, err := r.recordState(stream, kind, record); {
		case err != nil:
			return nil, err
		case removed:
			return nil, fmt.Errorf("%s %s: %w", kind, record, ErrRemoved)
		case !exists && !k.NamedByID:
			return nil, fmt.Errorf("%s %s: %w", kind, record, ErrNotFound)
		}
	}
	names := sortedKeys(fields)
	ops := make([]syncproto.Op, 0, len(names))
	for _, name := range names {
		heads, err := r.heads(stream, kind, record, name)
		if err != nil {
			return nil, err
		}
		v, err := encodeSetValue(heads, fields[name])
		if err != nil {
			return nil, &ValidationError{Kind: kind, Field: name, Problem: err.Error()}
		}
		ops = append(ops, syncproto.Op{Type: syncproto.OpSet, Kind: kind, Record: record, Field: name, Value: v})
	}
	return ops, nil
}

// NewRecordOps returns a new id and the ops that add a record or an entry
// of kind with fields. For a record kind that is an OpAdd (an empty marker
// that makes the record exist) followed by one OpSet per non-empty field;
// for an entry kind, one OpAdd whose body is the canonical encoding of the
// fields (see encodeEntry). Required fields must be given.
func (r *Replica) NewRecordOps(stream syncproto.StreamID, kind string, fields map[string]string) (syncproto.DeltaID, []syncproto.Op, error) {
	k, err := lookupKind(kind)
	if err != nil {
		return syncproto.DeltaID{}, nil, err
	}
	if k.Singleton {
		return syncproto.DeltaID{}, nil, &ValidationError{Kind: kind, Problem: "has one record per stream: set its fields instead"}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkFields(stream, k, syncproto.DeltaID{}, fields, true); err != nil {
		return syncproto.DeltaID{}, nil, err
	}
	id := r.newID()
	if k.Class == ClassEntry {
		return id, []syncproto.Op{{Type: syncproto.OpAdd, Kind: kind, Record: id, Value: encodeEntry(fields)}}, nil
	}
	ops := []syncproto.Op{{Type: syncproto.OpAdd, Kind: kind, Record: id}}
	for _, name := range sortedKeys(fields) {
		if fields[name] == "" {
			continue
		}
		v, _ := encodeSetValue(nil, fields[name])
		ops = append(ops, syncproto.Op{Type: syncproto.OpSet, Kind: kind, Record: id, Field: name, Value: v})
	}
	return id, ops, nil
}

// RemoveOps returns the op that removes a record or an entry. Removal is
// final: it wins over any concurrent or later set or add of the same id.
func (r *Replica) RemoveOps(stream syncproto.StreamID, kind string, id syncproto.DeltaID) ([]syncproto.Op, error) {
	k, err := lookupKind(kind)
	if err != nil {
		return nil, err
	}
	if k.Singleton {
		return nil, &ValidationError{Kind: kind, Problem: "cannot be removed"}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch exists, removed, err := r.recordState(stream, kind, id); {
	case err != nil:
		return nil, err
	case removed:
		return nil, fmt.Errorf("%s %s: %w", kind, id, ErrRemoved)
	case !exists:
		return nil, fmt.Errorf("%s %s: %w", kind, id, ErrNotFound)
	}
	return []syncproto.Op{{Type: syncproto.OpRemove, Kind: kind, Record: id}}, nil
}

// LogEntry is one follow-up log entry.
type LogEntry struct {
	ID       syncproto.DeltaID // set by LogOps; ignored on input
	Category string            // one of the log kind's categories
	Minutes  int               // time spent, > 0
	Text     string
	Author   string    // the writing device's id (d_...)
	At       time.Time // when; kept to the second, in UTC
}

func (e LogEntry) fields() map[string]string {
	return map[string]string{
		"category": e.Category,
		"minutes":  strconv.Itoa(e.Minutes),
		"text":     e.Text,
		"author":   e.Author,
		"at":       formatTime(e.At),
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// LogOps returns the new entry's id and the op that adds it to the
// stream's follow-up log.
func (r *Replica) LogOps(stream syncproto.StreamID, e LogEntry) (syncproto.DeltaID, []syncproto.Op, error) {
	return r.NewRecordOps(stream, KindLog, e.fields())
}

// AuditEvent is one entry of the audit stream.
type AuditEvent struct {
	ID       syncproto.DeltaID // set when read; ignored on input
	Event    string            // what happened, e.g. "reveal"
	Detail   string            // for an export, what was written out
	Resident string            // the resident's stream id, if any
	Device   string            // the device it happened on
	At       time.Time
}

// AuditOps returns the op that adds an event to an audit stream.
func (r *Replica) AuditOps(stream syncproto.StreamID, ev AuditEvent) ([]syncproto.Op, error) {
	_, ops, err := r.NewRecordOps(stream, KindAudit, map[string]string{
		"event": ev.Event, "detail": ev.Detail, "resident": ev.Resident, "device": ev.Device, "at": formatTime(ev.At),
	})
	return ops, err
}

// encodeEntry is the canonical body of an entry: a JSON object of the
// non-empty fields with string values, keys sorted (encoding/json sorts
// map keys), no insignificant space.
func encodeEntry(fields map[string]string) []byte {
	m := make(map[string]string, len(fields))
	for k, v := range fields {
		if v != "" {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic("replica: encode entry: " + err.Error()) // a map of strings always encodes
	}
	return b
}

// decodeEntry reads an entry body. A body that is not a JSON object of
// strings (from a faulty author) reads as nothing.
func decodeEntry(b []byte) (map[string]string, bool) {
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, false
	}
	return m, true
}

// checkFields validates fields against kind k. adding: a new record, so
// required fields must be present. Unknown fields, bad values and
// references to records that are not in the stream are refused.
func (r *Replica) checkFields(stream syncproto.StreamID, k *Kind, self syncproto.DeltaID, fields map[string]string, adding bool) error {
	for _, name := range sortedKeys(fields) {
		f, err := k.lookupField(name)
		if err != nil {
			return err
		}
		v := fields[name]
		if err := f.validate(k.Name, v); err != nil {
			return err
		}
		if f.Type == TypeRef && v != "" {
			id, _ := syncproto.ParseDeltaID(v)
			if id == self && f.Ref == k.Name {
				return &ValidationError{Kind: k.Name, Field: name, Problem: "a record cannot refer to itself"}
			}
			exists, removed, err := r.recordState(stream, f.Ref, id)
			if err != nil {
				return err
			}
			if !exists || removed {
				return &ValidationError{Kind: k.Name, Field: name, Problem: "no " + f.Ref + " with that id in this stream"}
			}
		}
	}
	if adding {
		for _, f := range k.Fields {
			if f.Required && fields[f.Name] == "" {
				return &ValidationError{Kind: k.Name, Field: f.Name, Problem: "required"}
			}
		}
	}
	return nil
}

// recordState says whether a record or entry exists (it has an element or
// a register write) and whether it was removed.
func (r *Replica) recordState(stream syncproto.StreamID, kind string, id syncproto.DeltaID) (exists, removed bool, err error) {
	err = r.db.QueryRow(`SELECT
		EXISTS (SELECT 1 FROM elements WHERE stream = ?1 AND kind = ?2 AND id = ?3)
		OR EXISTS (SELECT 1 FROM writes WHERE stream = ?1 AND kind = ?2 AND record = ?3),
		EXISTS (SELECT 1 FROM tombstones WHERE stream = ?1 AND kind = ?2 AND id = ?3)`,
		stream[:], kind, id[:]).Scan(&exists, &removed)
	if err != nil {
		return false, false, fmt.Errorf("read %s %s: %w", kind, id, err)
	}
	return exists, removed, nil
}

// heads returns the versions of a register's heads, in version order.
func (r *Replica) heads(stream syncproto.StreamID, kind string, record syncproto.DeltaID, field string) ([]version, error) {
	rows, err := r.st.heads.Query(stream[:], kind, record[:], field)
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", kind, field, err)
	}
	defer rows.Close()
	var out []version
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		var v version
		copy(v[:], b)
		out = append(out, v)
	}
	return out, rows.Err()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
