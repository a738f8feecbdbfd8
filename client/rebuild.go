package client

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/fristed/fristed/client/transport"
	"github.com/fristed/fristed/syncproto"
)

// Rebuilding after a compromised-since revocation. Until a device learns
// of the revocation, the batches of the compromised device (written after
// its point) and of the devices it enrolled are valid to it, and it merges
// them. Once the chain voids them, every replica must lose them, or the
// replicas that applied them before and those that never did would differ
// for good. Merged state cannot be taken apart write by write, so each
// stream that holds a batch of a voided author is rebuilt: its rows go,
// the edits still pending on this device are applied again, and the whole
// history is pulled anew from the relay, verified, with the void batches
// skipped as for any device that never saw them. This device's own batches
// are applied again on the way (ordinarily its own batches are not, since
// its edits are already in the replica).

// voidMarkKey is the local_meta key of the void positions last acted on.
const voidMarkKey = "void_mark"

// voidMark encodes the positions of the chain's void statements and the
// compromised-since points of revoked devices: a worker device revoked as
// compromised signed no statement, yet its batches after the point are
// void.
func voidMark(c *syncproto.Chain) []byte {
	var b []byte
	for pos := 0; pos < c.Len(); pos++ {
		if c.IsVoid(syncproto.ChainPos(pos)) {
			b = binary.BigEndian.AppendUint64(b, uint64(pos))
		}
	}
	var compromised []syncproto.DeviceID
	for id, info := range c.State().Devices {
		if info.HasCompromisedSince {
			compromised = append(compromised, id)
		}
	}
	for _, id := range syncproto.SortDevices(compromised) {
		b = append(b, id[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(c.State().Devices[id].CompromisedSince))
	}
	return b
}

// checkVoids compares what the chain voids with what this device last
// acted on and, if it changed, marks each affected stream for a rebuild.
func (d *Device) checkVoids() error {
	mark := voidMark(d.chain)
	old, _ := d.getMeta(voidMarkKey)
	if bytes.Equal(mark, old) {
		return nil
	}
	st := d.chain.State()
	rows, err := d.db().Query(`SELECT stream, device FROM local_authors`)
	if err != nil {
		return fmt.Errorf("read authors: %w", err)
	}
	affected := map[syncproto.StreamID]bool{}
	for rows.Next() {
		var sb, db []byte
		if err := rows.Scan(&sb, &db); err != nil {
			rows.Close()
			return err
		}
		var sid syncproto.StreamID
		var dev syncproto.DeviceID
		copy(sid[:], sb)
		copy(dev[:], db)
		if dev == d.pc.device {
			continue
		}
		if a := st.Devices[dev]; a == nil || a.HasCompromisedSince {
			affected[sid] = true
		}
	}
	rows.Close()
	// A stream started from a countersigned snapshot the chain now voids
	// holds whatever that snapshot held, vouched for by no one.
	bases, err := d.voidBases()
	if err != nil {
		return err
	}
	for _, sid := range bases {
		affected[sid] = true
	}
	for sid := range affected {
		if err := d.startRebuild(sid, "a revocation voided some of its edits"); err != nil {
			return err
		}
	}
	return d.putMeta(voidMarkKey, mark)
}

// startRebuild empties a stream's merged state and bookkeeping, keeping
// its keys and this device's pending edits, which it applies again; the
// next pull replays the stream's history.
func (d *Device) startRebuild(sid syncproto.StreamID, why string) error {
	if err := d.rep.PurgeStream(sid); err != nil {
		return err
	}
	if _, err := d.db().Exec(`DELETE FROM local_cursor WHERE stream = ?`, sid[:]); err != nil {
		return fmt.Errorf("rebuild %s: %w", sid, err)
	}
	if err := d.forgetBase(sid); err != nil {
		return err
	}
	if _, err := d.db().Exec(`DELETE FROM local_authors WHERE stream = ? AND device != ?`, sid[:], d.pc.device[:]); err != nil {
		return fmt.Errorf("rebuild %s: %w", sid, err)
	}
	if _, err := d.db().Exec(`INSERT OR IGNORE INTO local_rebuild (stream) VALUES (?)`, sid[:]); err != nil {
		return fmt.Errorf("rebuild %s: %w", sid, err)
	}
	rows, err := d.db().Query(`SELECT delta FROM local_outbox WHERE stream = ? ORDER BY n`, sid[:])
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", sid, err)
	}
	var pending []*syncproto.Delta
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			rows.Close()
			return err
		}
		dl, err := syncproto.UnmarshalDelta(raw)
		if err != nil {
			rows.Close()
			return fmt.Errorf("rebuild %s: %w", sid, err)
		}
		pending = append(pending, dl)
	}
	rows.Close()
	for _, dl := range pending {
		if err := d.rep.Apply(dl); err != nil {
			return fmt.Errorf("rebuild %s: %w", sid, err)
		}
	}
	d.dirty = true
	d.opts.notice("rebuilding %s from its verified history: %s", sid, why)
	return nil
}

// rebuilding reports whether a stream's history is being replayed.
func (d *Device) rebuilding(sid syncproto.StreamID) bool {
	var n int
	d.db().QueryRow(`SELECT COUNT(*) FROM local_rebuild WHERE stream = ?`, sid[:]).Scan(&n)
	return n > 0
}

// endRebuild ends a stream's rebuild once its pull reached the head.
func (d *Device) endRebuild(sid syncproto.StreamID) error {
	res, err := d.db().Exec(`DELETE FROM local_rebuild WHERE stream = ?`, sid[:])
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", sid, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		d.dirty = true
	}
	return nil
}

// reapplyOwn applies one of this device's own batches again during a
// rebuild. A batch under a key this device no longer holds is passed over;
// one whose clocks run too far ahead of its receipt is skipped, as every
// device skips it (skew.go).
func (d *Device) reapplyOwn(stream syncproto.StreamID, b *syncproto.Batch, self *syncproto.DeviceInfo, rc *syncproto.Receipt, p transport.Pulled) (int, error) {
	deltas, _, err := d.openOwn(stream, b, self)
	if err != nil {
		return 0, fmt.Errorf("batch %d of %s: %w", p.Seq, stream, err)
	}
	if _, refused := tooFarAhead(deltas, rc.ReceivedMS); refused {
		// Said when its receipt came (checkOwnSkew).
		return 0, d.advanceCursor(stream, p)
	}
	if len(deltas) > 0 {
		if err := d.rep.ApplyBatch(deltas); err != nil {
			return 0, fmt.Errorf("batch %d of %s: %w", p.Seq, stream, err)
		}
	}
	return len(deltas), d.advanceCursor(stream, p)
}
