package replica

import (
	"database/sql"
	"fmt"

	"github.com/fristed/fristed/syncproto"
)

// Export returns a stream's state and merge metadata as snapshot content:
// applied deltas, register writes (versions, bases, head flags, heads'
// values), superseded versions, elements and tombstones. The caller fills
// in the tenant, the sequence number, the head batch and the authors.
func (r *Replica) Export(stream syncproto.StreamID) (*syncproto.SnapshotContent, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := &syncproto.SnapshotContent{Stream: stream}
	q := func(query string, row func(*sql.Rows) error) error {
		rows, err := r.db.Query(query, stream[:])
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := row(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	steps := []struct {
		query string
		row   func(*sql.Rows) error
	}{
		{`SELECT id, hash FROM deltas WHERE stream = ? ORDER BY id`, func(rows *sql.Rows) error {
			var id, hash []byte
			if err := rows.Scan(&id, &hash); err != nil {
				return err
			}
			var d syncproto.SnapshotDelta
			copy(d.ID[:], id)
			copy(d.Hash[:], hash)
			c.Deltas = append(c.Deltas, d)
			return nil
		}},
		{`SELECT kind, record, field, version, delta, bases, head, value FROM writes WHERE stream = ?
			ORDER BY kind, record, field, version, delta`, func(rows *sql.Rows) error {
			var w syncproto.SnapshotWrite
			var rec, ver, delta, bases, value []byte
			if err := rows.Scan(&w.Kind, &rec, &w.Field, &ver, &delta, &bases, &w.Head, &value); err != nil {
				return err
			}
			copy(w.Record[:], rec)
			copy(w.Version[:], ver)
			copy(w.Delta[:], delta)
			w.Bases = bases
			if w.Head {
				w.Value = value
				if w.Value == nil {
					w.Value = []byte{}
				}
			}
			c.Writes = append(c.Writes, w)
			return nil
		}},
		{`SELECT kind, record, field, version FROM superseded WHERE stream = ? ORDER BY kind, record, field, version`, func(rows *sql.Rows) error {
			var s syncproto.SnapshotSuperseded
			var rec, ver []byte
			if err := rows.Scan(&s.Kind, &rec, &s.Field, &ver); err != nil {
				return err
			}
			copy(s.Record[:], rec)
			copy(s.Version[:], ver)
			c.Superseded = append(c.Superseded, s)
			return nil
		}},
		{`SELECT kind, id, body FROM elements WHERE stream = ? ORDER BY kind, id`, func(rows *sql.Rows) error {
			var e syncproto.SnapshotElement
			var id []byte
			if err := rows.Scan(&e.Kind, &id, &e.Body); err != nil {
				return err
			}
			copy(e.ID[:], id)
			c.Elements = append(c.Elements, e)
			return nil
		}},
		{`SELECT kind, id FROM tombstones WHERE stream = ? ORDER BY kind, id`, func(rows *sql.Rows) error {
			var t syncproto.SnapshotTombstone
			var id []byte
			if err := rows.Scan(&t.Kind, &id); err != nil {
				return err
			}
			copy(t.ID[:], id)
			c.Tombstones = append(c.Tombstones, t)
			return nil
		}},
	}
	for _, s := range steps {
		if err := q(s.query, s.row); err != nil {
			return nil, fmt.Errorf("export stream %s: %w", stream, err)
		}
	}
	return c, nil
}

// Import merges snapshot content into the replica, in one transaction: the
// result is the state of having applied both the deltas this replica had
// and the snapshot's. It is the state-based form of Apply's rules: the
// union of applied deltas, writes, superseded versions, elements (the
// greater body on a clash) and tombstones; then a tombstone deletes its
// element and its record's writes and superseded versions, and a write
// whose version is superseded stops being a head and loses its value. Into
// an empty stream it loads the snapshot as it is. A delta id known here
// with another hash keeps this replica's, as Apply would.
func (r *Replica) Import(c *syncproto.SnapshotContent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.db.Begin()
	if err != nil {
		return fmt.Errorf("import snapshot of %s: %w", c.Stream, err)
	}
	defer tx.Rollback()
	if err := importContent(tx, c); err != nil {
		return fmt.Errorf("import snapshot of %s: %w", c.Stream, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("import snapshot of %s: %w", c.Stream, err)
	}
	return nil
}

func importContent(tx *sql.Tx, c *syncproto.SnapshotContent) error {
	s := c.Stream[:]
	exec := func(query string, rows int, args func(i int) []any) error {
		st, err := tx.Prepare(query)
		if err != nil {
			return err
		}
		defer st.Close()
		for i := 0; i < rows; i++ {
			if _, err := st.Exec(args(i)...); err != nil {
				return err
			}
		}
		return nil
	}
	if err := exec(`INSERT INTO deltas (stream, id, hash) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, len(c.Deltas), func(i int) []any {
		d := &c.Deltas[i]
		return []any{s, d.ID[:], d.Hash[:]}
	}); err != nil {
		return err
	}
	if err := exec(`INSERT OR IGNORE INTO tombstones (stream, kind, id) VALUES (?, ?, ?)`, len(c.Tombstones), func(i int) []any {
		t := &c.Tombstones[i]
		return []any{s, t.Kind, t.ID[:]}
	}); err != nil {
		return err
	}
	if err := exec(`INSERT OR IGNORE INTO superseded (stream, kind, record, field, version) VALUES (?, ?, ?, ?, ?)`, len(c.Superseded), func(i int) []any {
		x := &c.Superseded[i]
		return []any{s, x.Kind, x.Record[:], x.Field, x.Version[:]}
	}); err != nil {
		return err
	}
	if err := exec(`INSERT OR IGNORE INTO writes (stream, kind, record, field, version, delta, bases, head, value)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, len(c.Writes), func(i int) []any {
		w := &c.Writes[i]
		head, value := 0, []byte(nil)
		if w.Head {
			head, value = 1, w.Value
			if value == nil {
				value = []byte{}
			}
		}
		bases := w.Bases
		if bases == nil {
			bases = []byte{}
		}
		return []any{s, w.Kind, w.Record[:], w.Field, w.Version[:], w.Delta[:], bases, head, value}
	}); err != nil {
		return err
	}
	if err := exec(`INSERT INTO elements (stream, kind, id, body) VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (stream, kind, id) DO UPDATE SET body = excluded.body WHERE excluded.body > body`, len(c.Elements), func(i int) []any {
		e := &c.Elements[i]
		body := e.Body
		if body == nil {
			body = []byte{}
		}
		return []any{s, e.Kind, e.ID[:], body}
	}); err != nil {
		return err
	}
	// What the union implies, as Apply does it op by op.
	for _, q := range []string{
		`DELETE FROM elements WHERE stream = ?1 AND EXISTS (SELECT 1 FROM tombstones t
			WHERE t.stream = ?1 AND t.kind = elements.kind AND t.id = elements.id)`,
		`DELETE FROM writes WHERE stream = ?1 AND EXISTS (SELECT 1 FROM tombstones t
			WHERE t.stream = ?1 AND t.kind = writes.kind AND t.id = writes.record)`,
		`DELETE FROM superseded WHERE stream = ?1 AND EXISTS (SELECT 1 FROM tombstones t
			WHERE t.stream = ?1 AND t.kind = superseded.kind AND t.id = superseded.record)`,
		`UPDATE writes SET head = 0, value = NULL WHERE stream = ?1 AND head = 1 AND EXISTS (SELECT 1 FROM superseded x
			WHERE x.stream = ?1 AND x.kind = writes.kind AND x.record = writes.record AND x.field = writes.field AND x.version = writes.version)`,
	} {
		if _, err := tx.Exec(q, s); err != nil {
			return err
		}
	}
	return nil
}
