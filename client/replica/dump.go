package replica

import (
	"bytes"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/fristed/fristed/syncproto"
)

// Dump returns a canonical text of everything the replica holds for a
// stream, merge state included: applied deltas, every register write
// (version, delta, bases, head or superseded, and a head's value), the
// versions named as bases, conflicts, elements and tombstones. Lines are
// sorted and strings quoted (strconv.Quote), so replicas that applied the
// same deltas, in whatever order, give byte-identical dumps. It shows
// sealed values: it is for tests and diagnosis, never for display.
func (r *Replica) Dump(stream syncproto.StreamID) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b bytes.Buffer
	fmt.Fprintf(&b, "replica-dump v1 %s\n", stream)
	q := func(query string, line func(*sql.Rows) error) error {
		rows, err := r.db.Query(query, stream[:])
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := line(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	var conflicts []string
	var lastReg string
	var regHeads []string
	flush := func() {
		if len(regHeads) > 1 {
			conflicts = append(conflicts, fmt.Sprintf("conflict %s [%s]\n", lastReg, strings.Join(regHeads, " ")))
		}
		regHeads = regHeads[:0]
	}
	steps := []struct {
		query string
		line  func(*sql.Rows) error
	}{
		{`SELECT id, hash FROM deltas WHERE stream = ? ORDER BY id`, func(rows *sql.Rows) error {
			var id, hash []byte
			if err := rows.Scan(&id, &hash); err != nil {
				return err
			}
			fmt.Fprintf(&b, "delta %s %s\n", deltaID(id), hex.EncodeToString(hash))
			return nil
		}},
		// Writes in version order; a register with more than one head also
		// gets a conflict line, listed after everything else.
		{`SELECT kind, record, field, version, delta, bases, head, value FROM writes WHERE stream = ?
			ORDER BY kind, record, field, version, delta`, func(rows *sql.Rows) error {
			var kind, field string
			var rec, ver, delta, bases, value []byte
			var head bool
			if err := rows.Scan(&kind, &rec, &field, &ver, &delta, &bases, &head, &value); err != nil {
				return err
			}
			reg := fmt.Sprintf("%q %s %q", kind, deltaID(rec), field)
			if reg != lastReg {
				flush()
				lastReg = reg
			}
			fmt.Fprintf(&b, "write %s %s %s bases=[%s]", reg, versionOf(ver), deltaID(delta), basesString(bases))
			if head {
				fmt.Fprintf(&b, " head %s\n", strconv.Quote(string(value)))
				// Collected oldest first; conflicts list them newest first.
				regHeads = append([]string{strconv.Quote(string(value))}, regHeads...)
			} else {
				b.WriteString(" superseded\n")
			}
			return nil
		}},
		{`SELECT kind, record, field, version FROM superseded WHERE stream = ? ORDER BY kind, record, field, version`, func(rows *sql.Rows) error {
			var kind, field string
			var rec, ver []byte
			if err := rows.Scan(&kind, &rec, &field, &ver); err != nil {
				return err
			}
			fmt.Fprintf(&b, "supersedes %q %s %q %s\n", kind, deltaID(rec), field, versionOf(ver))
			return nil
		}},
		{`SELECT kind, id, body FROM elements WHERE stream = ? ORDER BY kind, id`, func(rows *sql.Rows) error {
			var kind string
			var id, body []byte
			if err := rows.Scan(&kind, &id, &body); err != nil {
				return err
			}
			fmt.Fprintf(&b, "element %q %s %s\n", kind, deltaID(id), strconv.Quote(string(body)))
			return nil
		}},
		{`SELECT kind, id FROM tombstones WHERE stream = ? ORDER BY kind, id`, func(rows *sql.Rows) error {
			var kind string
			var id []byte
			if err := rows.Scan(&kind, &id); err != nil {
				return err
			}
			fmt.Fprintf(&b, "tombstone %q %s\n", kind, deltaID(id))
			return nil
		}},
	}
	for _, s := range steps {
		if err := q(s.query, s.line); err != nil {
			return nil, fmt.Errorf("dump stream %s: %w", stream, err)
		}
	}
	flush()
	for _, c := range conflicts {
		b.WriteString(c)
	}
	return b.Bytes(), nil
}

func deltaID(b []byte) syncproto.DeltaID {
	var id syncproto.DeltaID
	copy(id[:], b)
	return id
}

func versionOf(b []byte) version {
	var v version
	copy(v[:], b)
	return v
}

func basesString(raw []byte) string {
	vs := splitBases(raw)
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.String()
	}
	return strings.Join(parts, " ")
}
