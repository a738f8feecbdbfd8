package replica

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/fristed/fristed/syncproto"
)

// statements are prepared once per replica; Apply runs them inside its
// transaction with tx.Stmt, which reuses them on the one connection.
type statements struct {
	deltaHash, deltaPut                  *sql.Stmt
	tombstoned, tombstonePut             *sql.Stmt
	supersedePut, supersedeWrite, isSupd *sql.Stmt
	writePut                             *sql.Stmt
	elementPut                           *sql.Stmt
	dropElement, dropWrites, dropSupd    *sql.Stmt
	heads                                *sql.Stmt
}

func prepare(db *sql.DB) (*statements, error) {
	st := &statements{}
	for _, p := range []struct {
		s   **sql.Stmt
		sql string
	}{
		{&st.deltaHash, `SELECT hash FROM deltas WHERE stream = ? AND id = ?`},
		{&st.deltaPut, `INSERT INTO deltas (stream, id, hash) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`},
		{&st.tombstoned, `SELECT EXISTS (SELECT 1 FROM tombstones WHERE stream = ? AND kind = ? AND id = ?)`},
		{&st.tombstonePut, `INSERT OR IGNORE INTO tombstones (stream, kind, id) VALUES (?, ?, ?)`},
		{&st.supersedePut, `INSERT OR IGNORE INTO superseded (stream, kind, record, field, version) VALUES (?, ?, ?, ?, ?)`},
		{&st.supersedeWrite, `UPDATE writes SET head = 0, value = NULL
			WHERE stream = ? AND kind = ? AND record = ? AND field = ? AND version = ? AND head = 1`},
		{&st.isSupd, `SELECT EXISTS (SELECT 1 FROM superseded
			WHERE stream = ? AND kind = ? AND record = ? AND field = ? AND version = ?)`},
		{&st.writePut, `INSERT OR IGNORE INTO writes (stream, kind, record, field, version, delta, bases, head, value)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		// Two adds of one element with different bodies can only come from a
		// faulty author; keeping the greater body keeps replicas converged.
		// A removed element is not added again.
		{&st.elementPut, `INSERT INTO elements (stream, kind, id, body)
			SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM tombstones WHERE stream = ?1 AND kind = ?2 AND id = ?3)
			ON CONFLICT (stream, kind, id) DO UPDATE SET body = excluded.body WHERE excluded.body > body`},
		{&st.dropElement, `DELETE FROM elements WHERE stream = ? AND kind = ? AND id = ?`},
		{&st.dropWrites, `DELETE FROM writes WHERE stream = ? AND kind = ? AND record = ?`},
		{&st.dropSupd, `DELETE FROM superseded WHERE stream = ? AND kind = ? AND record = ?`},
		{&st.heads, `SELECT version FROM writes
			WHERE stream = ? AND kind = ? AND record = ? AND field = ? AND head = 1 ORDER BY version, delta`},
	} {
		s, err := db.Prepare(p.sql)
		if err != nil {
			st.close()
			return nil, fmt.Errorf("prepare: %w", err)
		}
		*p.s = s
	}
	return st, nil
}

func (st *statements) close() {
	for _, s := range []*sql.Stmt{st.deltaHash, st.deltaPut, st.tombstoned, st.tombstonePut, st.supersedePut,
		st.supersedeWrite, st.isSupd, st.writePut, st.elementPut, st.dropElement, st.dropWrites, st.dropSupd, st.heads} {
		if s != nil {
			s.Close()
		}
	}
}

// checkedOp is an op that passed the structural checks, with a set's
// value split from its bases.
type checkedOp struct {
	syncproto.Op
	bases []byte // OpSet: raw concatenation of versions
	value []byte // OpSet: the value proper
}

// Apply merges a delta into the replica. It is idempotent (a delta applied
// twice changes nothing the second time) and commutative (any delivery
// order of the same deltas gives the same state, byte for byte in Dump);
// see the package documentation for the rules. Apply does not check a
// value against the schema: a field or kind a newer build wrote is kept,
// and merged like any other. It refuses, changing nothing, a delta that
// breaks the op encoding (ErrMalformed) and one whose id was applied with
// other content (ErrDeltaConflict); both are deterministic, so skipping
// such a delta keeps replicas converged.
func (r *Replica) Apply(d *syncproto.Delta) error {
	ops, hash, err := checkDelta(d)
	if err != nil {
		return fmt.Errorf("apply delta %s: %w", d.ID, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.db.Begin()
	if err != nil {
		return fmt.Errorf("apply delta %s: %w", d.ID, err)
	}
	defer tx.Rollback()
	if err := r.apply(tx, d, ops, hash); err != nil {
		return fmt.Errorf("apply delta %s: %w", d.ID, err)
	}
	return tx.Commit()
}

// ApplyBatch applies the deltas of one batch in one transaction: all of
// them or, if any is malformed or the database fails, none. A delta whose
// id was applied before with other content is skipped, as Apply refuses
// it, so the rest of the batch still applies identically everywhere.
func (r *Replica) ApplyBatch(ds []*syncproto.Delta) error {
	type checked struct {
		ops  []checkedOp
		hash [32]byte
	}
	cs := make([]checked, len(ds))
	for i, d := range ds {
		ops, hash, err := checkDelta(d)
		if err != nil {
			return fmt.Errorf("apply delta %s: %w", d.ID, err)
		}
		cs[i] = checked{ops, hash}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.db.Begin()
	if err != nil {
		return fmt.Errorf("apply batch: %w", err)
	}
	defer tx.Rollback()
	for i, d := range ds {
		if err := r.apply(tx, d, cs[i].ops, cs[i].hash); err != nil && !errors.Is(err, ErrDeltaConflict) {
			return fmt.Errorf("apply delta %s: %w", d.ID, err)
		}
	}
	return tx.Commit()
}

func (r *Replica) apply(tx *sql.Tx, d *syncproto.Delta, ops []checkedOp, hash [32]byte) error {
	stmt := func(s *sql.Stmt) *sql.Stmt { return tx.Stmt(s) }
	stream := d.Stream[:]

	res, err := stmt(r.st.deltaPut).Exec(stream, d.ID[:], hash[:])
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		// Applied before: a no-op if it is the same delta.
		var seen []byte
		if err := stmt(r.st.deltaHash).QueryRow(stream, d.ID[:]).Scan(&seen); err != nil {
			return err
		}
		if !bytes.Equal(seen, hash[:]) {
			return ErrDeltaConflict
		}
		return nil
	}

	ver := makeVersion(d.Clock, d.Author)
	for _, op := range ops {
		switch op.Type {
		case syncproto.OpSet:
			var gone bool
			if err := stmt(r.st.tombstoned).QueryRow(stream, op.Kind, op.Record[:]).Scan(&gone); err != nil {
				return err
			}
			if gone {
				continue // the record was removed: the removal wins
			}
			key := []any{stream, op.Kind, op.Record[:], op.Field}
			for _, b := range splitBases(op.bases) {
				if _, err := stmt(r.st.supersedePut).Exec(append(key, b[:])...); err != nil {
					return err
				}
				if _, err := stmt(r.st.supersedeWrite).Exec(append(key, b[:])...); err != nil {
					return err
				}
			}
			var superseded bool
			if err := stmt(r.st.isSupd).QueryRow(append(key, ver[:])...).Scan(&superseded); err != nil {
				return err
			}
			head, value := 1, op.value
			if superseded {
				head, value = 0, nil
			}
			if value == nil && head == 1 {
				value = []byte{} // a head always has a value, if only the empty one
			}
			if _, err := stmt(r.st.writePut).Exec(append(key, ver[:], d.ID[:], op.bases, head, value)...); err != nil {
				return err
			}
		case syncproto.OpAdd:
			body := op.Value
			if body == nil {
				body = []byte{}
			}
			if _, err := stmt(r.st.elementPut).Exec(stream, op.Kind, op.Record[:], body); err != nil {
				return err
			}
		case syncproto.OpRemove:
			// Idempotent: a second removal finds nothing left to delete.
			key := []any{stream, op.Kind, op.Record[:]}
			for _, s := range []*sql.Stmt{r.st.tombstonePut, r.st.dropElement, r.st.dropWrites, r.st.dropSupd} {
				if _, err := stmt(s).Exec(key...); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkDelta checks a delta's ops for the structure the merge relies on
// and hashes what the delta does: author, clock and ops. The hash leaves
// out the tenant and epoch: a local edit is applied before it is sealed
// under an epoch, and is the same edit afterwards.
func checkDelta(d *syncproto.Delta) ([]checkedOp, [32]byte, error) {
	var zero [32]byte
	if len(d.Ops) == 0 || len(d.Ops) > syncproto.MaxOpsPerDelta {
		return nil, zero, fmt.Errorf("%d ops: %w", len(d.Ops), ErrMalformed)
	}
	h := sha256.New()
	var buf []byte
	buf = append(buf, "fristed/v1/replica-delta"...)
	buf = append(buf, d.Author[:]...)
	buf = binary.BigEndian.AppendUint64(buf, d.Clock.WallMS)
	buf = binary.BigEndian.AppendUint32(buf, d.Clock.Logical)
	h.Write(buf)
	type register struct{ kind, record, field string }
	sets := map[register]bool{}
	out := make([]checkedOp, len(d.Ops))
	for i, op := range d.Ops {
		if op.Type < syncproto.OpSet || op.Type > syncproto.OpRemove || op.Kind == "" ||
			(op.Type == syncproto.OpSet) != (op.Field != "") || (op.Type == syncproto.OpRemove && len(op.Value) != 0) {
			return nil, zero, fmt.Errorf("op %d: %w", i, ErrMalformed)
		}
		c := checkedOp{Op: op}
		if op.Type == syncproto.OpSet {
			reg := register{op.Kind, string(op.Record[:]), op.Field}
			if sets[reg] {
				return nil, zero, fmt.Errorf("op %d: field %q set twice: %w", i, op.Field, ErrMalformed)
			}
			sets[reg] = true
			var err error
			if c.bases, c.value, err = decodeSetValue(op.Value); err != nil {
				return nil, zero, fmt.Errorf("op %d: %w", i, err)
			}
		}
		out[i] = c
		buf = buf[:0]
		buf = append(buf, byte(op.Type))
		for _, s := range [][]byte{[]byte(op.Kind), op.Record[:], []byte(op.Field), op.Value} {
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
			buf = append(buf, s...)
		}
		h.Write(buf)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return out, sum, nil
}
