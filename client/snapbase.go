package client

// Which countersigned snapshot a stream may start from. The chain names
// every countersigned snapshot of a stream by hash ("snapshot
// countersigned" statements), and the relay keeps the older ones for a
// while (server/doc.go, "Snapshot retention"), so after a compromised-since
// revocation a stream whose newest snapshot can no longer be trusted starts
// from an older one and the verified history after it.
//
// A countersignature at chain position Q is usable when:
//   - the statement is not void (the chain voids a countersignature by a
//     coordinator device after its compromised-since point, and one that
//     only stood because of such statements), and
//   - no author of the snapshot is a device revoked as compromised since a
//     point P by a revocation at R with P < Q <= R: such a snapshot was
//     countersigned after the point, by a coordinator that did not yet know
//     of the revocation, so it may hold the batches every replica must now
//     do without. Countersigned at or before P, every batch in it was
//     received before the statement at P (the same afterPoint rule the
//     pull applies, with the clock margin it has); countersigned after R,
//     the coordinator's rebuild skipped the void batches (checkSnapshot
//     refuses to post a countersignature if a revocation arrived during
//     its check). An author whose enrolment the chain voids counts as
//     revoked at the first compromised-since revocation after it.
//
// The newest usable one whose batches after it the relay still holds wins.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/fristed/fristed/client/transport"
	"github.com/fristed/fristed/syncproto"
)

// errNoUsableSnapshot means the relay pruned a stream's history and none
// of the countersigned snapshots it still holds may be started from. The
// stream waits; the rest of the sync goes on.
var errNoUsableSnapshot = errors.New("no usable snapshot")

// snapshotBaseKey is the local_meta key recording the countersignature a
// stream was last started from: its chain position, 8 bytes big-endian.
func snapshotBaseKey(s syncproto.StreamID) string { return "snapshot-base/" + s.String() }

// countersignature is one "snapshot countersigned" statement and its place.
type countersignature struct {
	pos syncproto.ChainPos
	cs  *syncproto.SnapshotCountersigned
}

// countersignatures lists the non-void countersignatures of stream s,
// newest first.
func (d *Device) countersignatures(s syncproto.StreamID) []countersignature {
	var out []countersignature
	for pos := d.chain.Len() - 1; pos >= 0; pos-- {
		p := syncproto.ChainPos(pos)
		cs, ok := d.chain.Statement(p).Body.(*syncproto.SnapshotCountersigned)
		if ok && cs.Stream == s && !d.chain.IsVoid(p) {
			out = append(out, countersignature{p, cs})
		}
	}
	return out
}

// taintedBy returns an author of content that makes a countersignature at
// pos unusable (see the file comment), or false.
func (d *Device) taintedBy(pos syncproto.ChainPos, content *syncproto.SnapshotContent) (syncproto.DeviceID, bool) {
	st := d.chain.State()
	for _, a := range content.Authors {
		info := st.Devices[a.Device]
		switch {
		case info == nil:
			r, ok := d.voidedEnrolmentRevoked(a.Device)
			if !ok || pos <= r {
				return a.Device, true
			}
		case info.HasCompromisedSince:
			if pos > info.CompromisedSince && pos <= info.RevokedAt {
				return a.Device, true
			}
		}
	}
	return syncproto.DeviceID{}, false
}

// voidedEnrolmentRevoked returns, for a device whose enrolment the chain
// voids, the position of the first compromised-since revocation after
// that enrolment: from then on a coordinator's rebuild skips its batches.
func (d *Device) voidedEnrolmentRevoked(dev syncproto.DeviceID) (syncproto.ChainPos, bool) {
	enrolled := syncproto.ChainPos(0)
	found := false
	for pos := 0; pos < d.chain.Len() && !found; pos++ {
		switch b := d.chain.Statement(syncproto.ChainPos(pos)).Body.(type) {
		case *syncproto.DeviceEnrolled:
			found = b.Device == dev
		case *syncproto.CoordinatorDelegated:
			found = b.Device == dev
		}
		if found {
			enrolled = syncproto.ChainPos(pos)
		}
	}
	if !found || !d.chain.IsVoid(enrolled) {
		return 0, false
	}
	first, ok := syncproto.ChainPos(0), false
	for _, info := range d.chain.State().Devices {
		if info.HasCompromisedSince && info.CompromisedSince < enrolled && info.RevokedAt > enrolled && (!ok || info.RevokedAt < first) {
			first, ok = info.RevokedAt, true
		}
	}
	return first, ok
}

// usableSnapshot finds the newest usable countersigned snapshot of stream
// s with lo <= Seq <= hi, fetched and opened. It returns
// errNoUsableSnapshot if there is none; a refusal of a candidate the relay
// should hold (ErrSnapshot: hidden, forged) is returned only if no older
// one is usable either.
func (d *Device) usableSnapshot(ctx context.Context, c *transport.Client, s syncproto.StreamID, lo, hi syncproto.Seq) (countersignature, *syncproto.SnapshotContent, error) {
	var hostile error // a candidate hidden or forged: the relay misbehaves
	var tainted error // a candidate holding edits that are now void
	for _, cand := range d.countersignatures(s) {
		if cand.cs.Seq > hi {
			continue
		}
		if cand.cs.Seq < lo {
			break // the chain refuses a countersignature going back, so the rest are older
		}
		content, err := d.countersigned(ctx, c, s, cand.cs)
		if errors.Is(err, ErrSnapshot) {
			if hostile == nil {
				hostile = err
			}
			continue
		} else if err != nil {
			return countersignature{}, nil, err
		}
		if dev, bad := d.taintedBy(cand.pos, content); bad {
			if tainted == nil {
				tainted = fmt.Errorf("the one after batch %d holds edits by device %s, since revoked as compromised", cand.cs.Seq, dev)
			}
			continue
		}
		return cand, content, nil
	}
	if hostile != nil {
		return countersignature{}, nil, hostile
	}
	if tainted == nil {
		tainted = errors.New("none is held from there on")
	}
	return countersignature{}, nil, fmt.Errorf("%w of stream %s to start from (%v)", errNoUsableSnapshot, s, tainted)
}

// recordBase remembers the countersignature stream s started from.
func (d *Device) recordBase(s syncproto.StreamID, pos syncproto.ChainPos) error {
	return d.putMeta(snapshotBaseKey(s), binary.BigEndian.AppendUint64(nil, uint64(pos)))
}

// forgetBase drops that record (the stream is rebuilt).
func (d *Device) forgetBase(s syncproto.StreamID) error {
	if _, err := d.db().Exec(`DELETE FROM local_meta WHERE key = ?`, snapshotBaseKey(s)); err != nil {
		return fmt.Errorf("rebuild %s: %w", s, err)
	}
	return nil
}

// voidBases returns the streams this device started from a countersigned
// snapshot that the chain now voids: its content was vouched for by no
// one, so the stream is rebuilt.
func (d *Device) voidBases() ([]syncproto.StreamID, error) {
	rows, err := d.db().Query(`SELECT key, value FROM local_meta WHERE key LIKE 'snapshot-base/%'`)
	if err != nil {
		return nil, fmt.Errorf("read snapshot bases: %w", err)
	}
	defer rows.Close()
	var out []syncproto.StreamID
	for rows.Next() {
		var key string
		var v []byte
		if err := rows.Scan(&key, &v); err != nil {
			return nil, err
		}
		s, err := syncproto.ParseStreamID(key[len("snapshot-base/"):])
		if err != nil || len(v) != 8 {
			continue
		}
		if d.chain.IsVoid(syncproto.ChainPos(binary.BigEndian.Uint64(v))) {
			out = append(out, s)
		}
	}
	return out, rows.Err()
}

// postCountersignature posts a countersignature checked under the void
// positions mark: if the chain's void statements changed since (a
// compromised-since revocation arrived during the check), nothing is
// posted and false is returned, so a countersignature after a revocation
// always comes from a check that knew of it.
func (d *Device) postCountersignature(ctx context.Context, cs *syncproto.SnapshotCountersigned, mark []byte) (bool, error) {
	c, err := d.client()
	if err != nil {
		return false, err
	}
	for attempt := 0; attempt < 5; attempt++ {
		if err := d.refreshChain(ctx); err != nil {
			return false, err
		}
		if !bytes.Equal(voidMark(d.chain), mark) {
			return false, nil
		}
		st := d.chain.Next(d.pc.tenant, syncproto.SignerDevice, d.pc.device, uint64(d.opts.now().UnixMilli()), cs)
		if err := st.Sign(d.kf.Sign); err != nil {
			return false, err
		}
		raw, err := st.Marshal()
		if err != nil {
			return false, err
		}
		if _, err = c.PostStatement(ctx, raw); err != nil {
			var we *syncproto.Error
			if errors.As(err, &we) && we.Code == syncproto.CodeChainConflict {
				continue
			}
			return false, err
		}
		_, err = d.appendChain(raw)
		return err == nil, err
	}
	return false, errors.New("post statement: the chain kept moving; try again")
}
