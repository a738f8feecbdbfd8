package replica

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/fristed/fristed/syncproto"
)

// Record is one record or entry as it reads now: each field's shown value
// (the greatest head of its register, or the entry's body). Empty fields
// are left out.
type Record struct {
	Kind   string
	ID     syncproto.DeltaID
	Fields map[string]string
}

// Conflict is a field with more than one head: concurrent writes that no
// later write has superseded. Values are all heads' values, greatest
// version (the one shown) first. For the resident's own fields Kind is
// "resident" and Record is zero.
type Conflict struct {
	Kind   string
	Record syncproto.DeltaID
	Field  string
	Values []string
}

// ResidentView is one resident's case as shown to a worker. Sealed values
// are Masked unless the view was made with reveal.
type ResidentView struct {
	ID syncproto.StreamID
	// Fields of the resident record, by name. planned_move_out is filled
	// in from arrived when it is not set (PlannedMoveOutDefault).
	Fields                map[string]string
	PlannedMoveOutDefault bool
	Records               map[string][]Record // record and entry kinds except the log, by kind, each in id order
	Log                   []LogEntry          // by At, then id
	Conflicts             []Conflict          // resident fields first, then records by kind and id
	Revealed              bool
}

// ResidentSummary is one row of a resident list.
type ResidentSummary struct {
	ID        syncproto.StreamID
	Pseudonym string
	Unit      string
	Arrived   string
	Closed    bool
}

// head is one head value of a register.
type head struct {
	kind, field string
	record      syncproto.DeltaID
	value       string
}

type recKey struct {
	kind string
	id   syncproto.DeltaID
}

// streamState is what a view reads: every live record's register heads
// and every live element, for the kinds the schema knows.
type streamState struct {
	heads map[recKey]map[string][]string // values newest first
	elems map[recKey][]byte
	keys  []recKey // every record, sorted by schema kind order, then id
}

func (r *Replica) load(stream syncproto.StreamID, kind string) (*streamState, error) {
	s := &streamState{heads: map[recKey]map[string][]string{}, elems: map[recKey][]byte{}}
	args := []any{stream[:]}
	filter := ""
	if kind != "" {
		args, filter = append(args, kind), ` AND kind = ?`
	}
	rows, err := r.db.Query(`SELECT kind, record, field, value FROM writes WHERE stream = ? AND head = 1`+filter+
		` ORDER BY kind, record, field, version DESC, delta DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	for rows.Next() {
		var k, field string
		var rec, value []byte
		if err := rows.Scan(&k, &rec, &field, &value); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		key := recKey{kind: k}
		copy(key.id[:], rec)
		m := s.heads[key]
		if m == nil {
			m = map[string][]string{}
			s.heads[key] = m
		}
		m[field] = append(m[field], string(value))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	rows, err = r.db.Query(`SELECT kind, id, body FROM elements WHERE stream = ?`+filter, args...)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	for rows.Next() {
		var k string
		var id, body []byte
		if err := rows.Scan(&k, &id, &body); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		key := recKey{kind: k}
		copy(key.id[:], id)
		s.elems[key] = body
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	seen := map[recKey]bool{}
	for _, m := range []map[recKey]bool{keysOf(s.heads), keysOf(s.elems)} {
		for k := range m {
			if !seen[k] {
				if _, known := kindIndex[k.kind]; known {
					seen[k] = true
					s.keys = append(s.keys, k)
				}
			}
		}
	}
	slices.SortFunc(s.keys, func(a, b recKey) int {
		if c := cmp.Compare(kindOrder(a.kind), kindOrder(b.kind)); c != 0 {
			return c
		}
		return bytes.Compare(a.id[:], b.id[:])
	})
	return s, nil
}

func keysOf[V any](m map[recKey]V) map[recKey]bool {
	out := make(map[recKey]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func kindOrder(name string) int {
	return slices.IndexFunc(schema, func(k Kind) bool { return k.Name == name })
}

// record reads one record: shown values and conflicts, masked as asked.
// ok is false for an entry whose body cannot be read.
func (s *streamState) record(key recKey, reveal bool) (rec Record, conflicts []Conflict, ok bool) {
	k := kindIndex[key.kind]
	rec = Record{Kind: key.kind, ID: key.id, Fields: map[string]string{}}
	mask := func(field, v string) string {
		if !reveal && isSealed(key.kind, field) {
			return Masked
		}
		return v
	}
	if k.Class == ClassEntry {
		m, ok := decodeEntry(s.elems[key])
		if !ok {
			return rec, nil, false
		}
		for _, f := range k.Fields {
			if v := m[f.Name]; v != "" {
				rec.Fields[f.Name] = mask(f.Name, v)
			}
		}
		return rec, nil, true
	}
	heads := s.heads[key]
	for _, f := range k.Fields {
		vs := heads[f.Name]
		if len(vs) == 0 {
			continue
		}
		if vs[0] != "" {
			rec.Fields[f.Name] = mask(f.Name, vs[0])
		}
		if len(vs) > 1 {
			c := Conflict{Kind: key.kind, Record: key.id, Field: f.Name}
			for _, v := range vs {
				c.Values = append(c.Values, mask(f.Name, v))
			}
			conflicts = append(conflicts, c)
		}
	}
	return rec, conflicts, true
}

// Resident returns a resident's case. Sealed values (in fields, records
// and conflicts) are Masked unless reveal; auditing a reveal is the
// caller's job. It fails with ErrNotFound when the stream has no resident
// record.
func (r *Replica) Resident(stream syncproto.StreamID, reveal bool) (*ResidentView, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, err := r.load(stream, "")
	if err != nil {
		return nil, err
	}
	self := recKey{kind: KindResident}
	if _, ok := s.heads[self]; !ok {
		return nil, fmt.Errorf("resident %s: %w", stream, ErrNotFound)
	}
	v := &ResidentView{ID: stream, Records: map[string][]Record{}, Log: []LogEntry{}, Conflicts: []Conflict{}, Revealed: reveal}
	for _, key := range s.keys {
		if k := kindIndex[key.kind]; k.Stream != StreamResident {
			continue
		}
		rec, conflicts, ok := s.record(key, reveal)
		if !ok {
			continue
		}
		v.Conflicts = append(v.Conflicts, conflicts...)
		switch key.kind {
		case KindResident:
			v.Fields = rec.Fields
		case KindLog:
			if e, ok := logEntry(key.id, rec.Fields); ok {
				v.Log = append(v.Log, e)
			}
		default:
			v.Records[key.kind] = append(v.Records[key.kind], rec)
		}
	}
	if _, set := v.Fields["planned_move_out"]; !set {
		if p, ok := plannedMoveOut(v.Fields["arrived"]); ok {
			v.Fields["planned_move_out"] = p
			v.PlannedMoveOutDefault = true
		}
	}
	sortLog(v.Log)
	return v, nil
}

func sortLog(l []LogEntry) {
	slices.SortFunc(l, func(a, b LogEntry) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
}

func logEntry(id syncproto.DeltaID, f map[string]string) (LogEntry, bool) {
	n, err := strconv.Atoi(f["minutes"])
	if err != nil || n <= 0 {
		return LogEntry{}, false
	}
	at, err := time.Parse(time.RFC3339, f["at"])
	if err != nil {
		return LogEntry{}, false
	}
	return LogEntry{ID: id, Category: f["category"], Minutes: n, Text: f["text"], Author: f["author"], At: at.UTC()}, true
}

// Log returns a stream's follow-up log, by At, then id.
func (r *Replica) Log(stream syncproto.StreamID) ([]LogEntry, error) {
	recs, err := r.Records(stream, KindLog)
	if err != nil {
		return nil, err
	}
	out := make([]LogEntry, 0, len(recs))
	for _, rec := range recs {
		if e, ok := logEntry(rec.ID, rec.Fields); ok {
			out = append(out, e)
		}
	}
	sortLog(out)
	return out, nil
}

// AuditEvents returns an audit stream's events, by At, then id.
func (r *Replica) AuditEvents(stream syncproto.StreamID) ([]AuditEvent, error) {
	recs, err := r.Records(stream, KindAudit)
	if err != nil {
		return nil, err
	}
	out := make([]AuditEvent, 0, len(recs))
	for _, rec := range recs {
		at, err := time.Parse(time.RFC3339, rec.Fields["at"])
		if err != nil {
			continue
		}
		out = append(out, AuditEvent{ID: rec.ID, Event: rec.Fields["event"], Detail: rec.Fields["detail"], Resident: rec.Fields["resident"],
			Device: rec.Fields["device"], At: at.UTC()})
	}
	slices.SortFunc(out, func(a, b AuditEvent) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	return out, nil
}

// Records returns the live records (or entries) of one kind in a stream,
// in id order, with their shown values unmasked: it is for the client's
// own use (the directory, reports), not for display of a case.
func (r *Replica) Records(stream syncproto.StreamID, kind string) ([]Record, error) {
	if _, err := lookupKind(kind); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s, err := r.load(stream, kind)
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(s.keys))
	for _, key := range s.keys {
		if rec, _, ok := s.record(key, true); ok {
			out = append(out, rec)
		}
	}
	return out, nil
}

// Residents lists the streams that hold a resident record, by pseudonym,
// then id.
func (r *Replica) Residents() ([]ResidentSummary, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var zero syncproto.DeltaID
	rows, err := r.db.Query(`SELECT stream, field, value FROM writes
		WHERE kind = ? AND record = ? AND head = 1
		ORDER BY stream, field, version DESC, delta DESC`, KindResident, zero[:])
	if err != nil {
		return nil, fmt.Errorf("list residents: %w", err)
	}
	defer rows.Close()
	out := []ResidentSummary{}
	var last, field string
	for rows.Next() {
		var stream []byte
		var f, value string
		if err := rows.Scan(&stream, &f, &value); err != nil {
			return nil, fmt.Errorf("list residents: %w", err)
		}
		if string(stream) != last {
			var id syncproto.StreamID
			copy(id[:], stream)
			out = append(out, ResidentSummary{ID: id})
			last, field = string(stream), ""
		} else if f == field {
			continue // a losing head of the same field
		}
		field = f
		s := &out[len(out)-1]
		switch f {
		case "pseudonym":
			s.Pseudonym = value
		case "unit":
			s.Unit = value
		case "arrived":
			s.Arrived = value
		case "closed":
			s.Closed = value == "yes"
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list residents: %w", err)
	}
	slices.SortFunc(out, func(a, b ResidentSummary) int {
		if c := cmp.Compare(a.Pseudonym, b.Pseudonym); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	return out, nil
}

// MarshalJSON writes the contract's shape: {"id", "pseudonym", "unit", ...}
func (s ResidentSummary) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ID        string `json:"id"`
		Pseudonym string `json:"pseudonym"`
		Unit      string `json:"unit"`
		Arrived   string `json:"arrived"`
		Closed    bool   `json:"closed"`
	}{s.ID.String(), s.Pseudonym, s.Unit, s.Arrived, s.Closed})
}

// MarshalJSON writes {"id", "category", "minutes", "text", "author", "at"}.
func (e LogEntry) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ID       string `json:"id"`
		Category string `json:"category"`
		Minutes  int    `json:"minutes"`
		Text     string `json:"text"`
		Author   string `json:"author"`
		At       string `json:"at"`
	}{e.ID.String(), e.Category, e.Minutes, e.Text, e.Author, formatTime(e.At)})
}

// MarshalJSON writes {"id", then the fields in schema order}.
func (rec Record) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"id":`)
	writeJSON(&b, rec.ID.String())
	writeFields(&b, rec.Kind, rec.Fields)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// MarshalJSON writes {"field", "values"}, with "kind" and "record" first
// for a field of a record other than the resident's own.
func (c Conflict) MarshalJSON() ([]byte, error) {
	values := c.Values
	if values == nil {
		values = []string{}
	}
	if c.Kind == KindResident || c.Kind == "" {
		return json.Marshal(struct {
			Field  string   `json:"field"`
			Values []string `json:"values"`
		}{c.Field, values})
	}
	return json.Marshal(struct {
		Kind   string   `json:"kind"`
		Record string   `json:"record"`
		Field  string   `json:"field"`
		Values []string `json:"values"`
	}{c.Kind, c.Record.String(), c.Field, values})
}

// MarshalJSON writes the contract of `resident show --json`: one object
// with "id", the resident's fields as top-level keys (schema order, unset
// ones left out), "records" (kind -> list of {"id", fields...}), "log"
// (entries by at, then id) and "conflicts".
func (v *ResidentView) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"id":`)
	writeJSON(&b, v.ID.String())
	writeFields(&b, KindResident, v.Fields)
	b.WriteString(`,"records":{`)
	first := true
	for _, k := range schema {
		recs := v.Records[k.Name]
		if len(recs) == 0 {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeJSON(&b, k.Name)
		b.WriteByte(':')
		writeJSON(&b, recs)
	}
	b.WriteString(`},"log":`)
	writeJSON(&b, nonNil(v.Log))
	b.WriteString(`,"conflicts":`)
	writeJSON(&b, nonNil(v.Conflicts))
	b.WriteByte('}')
	return b.Bytes(), nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// writeFields writes ,"name":"value" for each field of kind present in
// fields, in schema order.
func writeFields(b *bytes.Buffer, kind string, fields map[string]string) {
	k := kindIndex[kind]
	if k == nil {
		return
	}
	for _, f := range k.Fields {
		v, ok := fields[f.Name]
		if !ok {
			continue
		}
		b.WriteByte(',')
		writeJSON(b, f.Name)
		b.WriteByte(':')
		writeJSON(b, v)
	}
}

func writeJSON(b *bytes.Buffer, v any) {
	out, err := json.Marshal(v)
	if err != nil {
		panic("replica: encode view: " + err.Error()) // strings and our own types always encode
	}
	b.Write(out)
}
