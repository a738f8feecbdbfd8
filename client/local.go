package client

import (
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/fristed/fristed/syncproto"
)

// Local bookkeeping tables, kept in the replica beside the case data so
// they are encrypted and saved with it.
const localSchema = `
CREATE TABLE IF NOT EXISTS local_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS local_chain (pos INTEGER PRIMARY KEY, raw BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS local_keys (stream BLOB NOT NULL, epoch INTEGER NOT NULL, key BLOB NOT NULL,
	PRIMARY KEY (stream, epoch));
CREATE TABLE IF NOT EXISTS local_outbox (n INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB NOT NULL UNIQUE,
	stream BLOB NOT NULL, delta BLOB NOT NULL, head_pos INTEGER NOT NULL, head_hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS local_inflight (stream BLOB PRIMARY KEY, raw BLOB NOT NULL, ids BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS local_cursor (stream BLOB PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS local_authors (stream BLOB NOT NULL, device BLOB NOT NULL, counter INTEGER NOT NULL,
	last BLOB NOT NULL, PRIMARY KEY (stream, device));
CREATE TABLE IF NOT EXISTS local_shared (stream BLOB NOT NULL, epoch INTEGER NOT NULL, device BLOB NOT NULL,
	PRIMARY KEY (stream, epoch, device));
CREATE TABLE IF NOT EXISTS local_keyed (stream BLOB NOT NULL, device BLOB NOT NULL, epoch INTEGER NOT NULL,
	PRIMARY KEY (stream, device));
CREATE TABLE IF NOT EXISTS local_pending_keys (stream BLOB NOT NULL, commitment BLOB NOT NULL, key BLOB NOT NULL,
	PRIMARY KEY (stream, commitment));
CREATE TABLE IF NOT EXISTS local_receipts (stream BLOB NOT NULL, seq INTEGER NOT NULL, raw BLOB NOT NULL,
	PRIMARY KEY (stream, seq));
CREATE TABLE IF NOT EXISTS local_rebuild (stream BLOB PRIMARY KEY);
CREATE TABLE IF NOT EXISTS local_audit (seq INTEGER PRIMARY KEY, batch BLOB NOT NULL, author BLOB NOT NULL,
	created_ms INTEGER NOT NULL, link BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS local_opened (stream BLOB PRIMARY KEY, at_ms INTEGER NOT NULL);
`

func (d *Device) init() error {
	if _, err := d.db().Exec(localSchema); err != nil {
		return fmt.Errorf("prepare replica: %w", err)
	}
	if b, err := d.getMeta("hlc"); err == nil {
		d.hlc = decodeHLC(b)
	}
	return d.loadChain()
}

func (d *Device) getMeta(key string) ([]byte, error) {
	var v []byte
	err := d.db().QueryRow(`SELECT value FROM local_meta WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return v, nil
}

func (d *Device) putMeta(key string, v []byte) error {
	if _, err := d.db().Exec(`INSERT INTO local_meta (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, v); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	d.dirty = true
	return nil
}

func encodeHLC(h syncproto.HLC) []byte {
	b := binary.BigEndian.AppendUint64(nil, h.WallMS)
	return binary.BigEndian.AppendUint32(b, h.Logical)
}

func decodeHLC(b []byte) syncproto.HLC {
	if len(b) != 12 {
		return syncproto.HLC{}
	}
	return syncproto.HLC{WallMS: binary.BigEndian.Uint64(b), Logical: binary.BigEndian.Uint32(b[8:])}
}

// tick returns a new clock reading for a local event.
func (d *Device) tick() syncproto.HLC {
	now := uint64(d.opts.now().UnixMilli())
	if now > d.hlc.WallMS {
		d.hlc = syncproto.HLC{WallMS: now}
	} else {
		d.hlc.Logical++
	}
	return d.hlc
}

// observe moves the clock past a remote reading.
func (d *Device) observe(h syncproto.HLC) {
	if d.hlc.Less(h) {
		d.hlc = h
	}
}

// Journal frames. Each acknowledged local change is one frame, fsynced
// before the call returns; replay re-applies them over the snapshot. Every
// frame is idempotent, because a frame may be replayed over a snapshot
// that already contains it.
const (
	frameDelta    = 1 // a local edit: chain head pos (8) | head hash (32) | marshalled delta (epoch 0)
	frameInflight = 2 // a sealed batch about to be pushed: stream | raw batch
)

func (d *Device) replay(f []byte) error {
	if len(f) < 1 {
		return errors.New("empty frame")
	}
	switch f[0] {
	case frameDelta:
		if len(f) < 1+8+32 {
			return errors.New("short frame")
		}
		var head syncproto.Head
		head.Pos = syncproto.ChainPos(binary.BigEndian.Uint64(f[1:]))
		copy(head.Hash[:], f[9:41])
		dl, err := syncproto.UnmarshalDelta(f[41:])
		if err != nil {
			return err
		}
		return d.applyLocal(dl, f[41:], head)
	case frameInflight:
		b, err := syncproto.UnmarshalBatch(f[1:])
		if err != nil {
			return err
		}
		return d.recordInflight(b, f[1:])
	}
	return fmt.Errorf("unknown frame kind %d", f[0])
}

// commit makes a local edit durable and applies it: the journal frame is
// fsynced first, so an edit reported as saved survives a crash.
func (d *Device) commit(stream syncproto.StreamID, ops []syncproto.Op) (*syncproto.Delta, error) {
	if len(ops) == 0 {
		return nil, errors.New("nothing to save")
	}
	dl := &syncproto.Delta{Tenant: d.pc.tenant, Stream: stream, Author: d.pc.device,
		ID: syncproto.NewDeltaID(), Clock: d.tick(), Ops: ops}
	raw, err := dl.Marshal()
	if err != nil {
		return nil, err
	}
	// The chain head the edit was written under travels with it: a device
	// removed from the case later can still deliver it (see push).
	head, _ := d.chain.Head()
	frame := []byte{frameDelta}
	frame = binary.BigEndian.AppendUint64(frame, uint64(head.Pos))
	frame = append(frame, head.Hash[:]...)
	frame = append(frame, raw...)
	if err := d.vault.Append(frame); err != nil {
		return nil, fmt.Errorf("save edit: %w", err)
	}
	if err := d.applyLocal(dl, raw, head); err != nil {
		return nil, err
	}
	return dl, nil
}

func (d *Device) applyLocal(dl *syncproto.Delta, raw []byte, head syncproto.Head) error {
	d.observe(dl.Clock)
	if err := d.rep.Apply(dl); err != nil {
		return fmt.Errorf("apply edit: %w", err)
	}
	if _, err := d.db().Exec(`INSERT OR IGNORE INTO local_outbox (id, stream, delta, head_pos, head_hash) VALUES (?, ?, ?, ?, ?)`,
		dl.ID[:], dl.Stream[:], raw, int64(head.Pos), head.Hash[:]); err != nil {
		return fmt.Errorf("queue edit: %w", err)
	}
	d.dirty = true
	return nil
}

// Pending returns the number of local edits not yet accepted by the relay.
func (d *Device) Pending() (int, error) {
	var n int
	if err := d.db().QueryRow(`SELECT COUNT(*) FROM local_outbox`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count pending edits: %w", err)
	}
	return n, nil
}
