package client

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/fristed/fristed/syncproto"
)

// Retention and crypto-shredding. A closed case is kept for the org's
// retention period from its signed closing time; then a coordinator device
// signs a "stream purged" statement. The chain accepts it only for a closed
// resident stream whose period has passed (by the statement's signed time),
// and the relay only if that time is not ahead of its own clock. The relay
// then deletes the stream's batches, snapshots and wrapped keys for good,
// and every device that learns of the statement deletes the stream's rows,
// keys and bookkeeping from its replica and compacts its journal. Without
// an epoch key anywhere, a copy of the ciphertext that survives somewhere
// (a backup, a freed disk block) is useless. The closed-case summary lives
// in the directory stream and stays, for the annual report.

// ErrNotDue means a case cannot be purged yet, or not at all.
var ErrNotDue = errors.New("cannot purge")

// PurgeDue returns when a closed case may be purged. ok is false for an open
// or purged case.
func (d *Device) PurgeDue(sid syncproto.StreamID) (due time.Time, ok bool) {
	st := d.chain.State()
	str := st.Streams[sid]
	if str == nil || str.Purged || !str.Closed || str.Kind != syncproto.StreamResident {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(syncproto.PurgeDue(st, str))), true
}

// Purge purges closed cases whose retention period has passed: those named
// by refs (a resident id or pseudonym; each must be a closed case past its
// period, or nothing is purged), or with no refs every such case. It
// returns the purged streams.
func (d *Device) Purge(ctx context.Context, refs []string) ([]syncproto.StreamID, error) {
	if err := d.requireCoordinator(); err != nil {
		return nil, err
	}
	if err := d.refreshChain(ctx); err != nil {
		return nil, err
	}
	var todo []syncproto.StreamID
	if len(refs) == 0 {
		todo = d.dueForPurge()
	}
	now := d.opts.now()
	for _, ref := range refs {
		if id, err := syncproto.ParseStreamID(ref); err == nil {
			if s := d.chain.State().Streams[id]; s != nil && s.Purged {
				return nil, fmt.Errorf("%w %s: the case was purged already", ErrNotDue, ref)
			}
		}
		sid, err := d.resolveResident(ref)
		if err != nil {
			return nil, err
		}
		due, ok := d.PurgeDue(sid)
		switch {
		case !ok:
			return nil, fmt.Errorf("%w %s: the case is open (close it first: fristed resident close)", ErrNotDue, ref)
		case now.Before(due):
			return nil, fmt.Errorf("%w %s before its retention period ends on %s (fristed org settings --retention)",
				ErrNotDue, ref, due.UTC().Format("2006-01-02 15:04 MST"))
		}
		todo = append(todo, sid)
	}
	var done []syncproto.StreamID
	for _, sid := range todo {
		if err := d.purgeCase(ctx, sid); err != nil {
			return done, err
		}
		done = append(done, sid)
	}
	if err := d.shredPurged(); err != nil {
		return done, err
	}
	// Alarm envelopes of purged cases keep nothing of them either.
	d.resealNotices(ctx, nil)
	return done, d.save()
}

// dueForPurge lists the closed cases whose retention period has passed.
func (d *Device) dueForPurge() []syncproto.StreamID {
	now := d.opts.now()
	var out []syncproto.StreamID
	for sid := range d.chain.State().Streams {
		if due, ok := d.PurgeDue(sid); ok && !now.Before(due) {
			out = append(out, sid)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// purgeCase signs the purge of one case; another coordinator device may
// have purged it meanwhile, which is as good.
func (d *Device) purgeCase(ctx context.Context, sid syncproto.StreamID) error {
	if _, err := d.postStatement(ctx, &syncproto.StreamPurged{Stream: sid}, nil); err != nil {
		if s := d.chain.State().Streams[sid]; s != nil && s.Purged {
			return nil
		}
		return fmt.Errorf("purge %s: %w", sid, err)
	}
	return nil
}

// purgeDue is the coordinators' part of sync: every closed case past its
// retention period is purged, and said so. A purge the relay refuses (this
// laptop's clock ahead of the relay's, say) is reported and left for a
// later sync; it does not stop the sync.
func (d *Device) purgeDue(ctx context.Context) error {
	for _, sid := range d.dueForPurge() {
		if err := d.purgeCase(ctx, sid); err != nil {
			if syncproto.CodeOf(err) == syncproto.CodeInvalidStatement {
				d.opts.notice("could not purge closed case %s yet: %v", sid, err)
				continue
			}
			return err
		}
		d.opts.notice("purged closed case %s: its retention period (%d days) has passed; its summary stays", sid, d.Settings().RetentionDays)
	}
	return nil
}

// shredPurged deletes from this device everything of every purged stream
// it still holds: the replica's rows, the epoch keys, pending edits, the
// cursor and author bookkeeping. Pending edits cannot be delivered any
// more, and are said to be dropped. The caller saves, which compacts the
// journal into a new snapshot under a new vault key, so no older frame
// holds them either.
func (d *Device) shredPurged() error {
	held, err := d.heldStreams()
	if err != nil {
		return err
	}
	st := d.chain.State()
	for _, sid := range held {
		if s := st.Streams[sid]; s == nil || !s.Purged {
			continue
		}
		n, err := d.pendingFor(sid)
		if err != nil {
			return err
		}
		if err := d.purgeLocal(sid); err != nil {
			return err
		}
		// Purged for good: this device's own batch counter goes too.
		for _, q := range []string{`DELETE FROM local_shared WHERE stream = ?`, `DELETE FROM local_authors WHERE stream = ?`} {
			if _, err := d.db().Exec(q, sid[:]); err != nil {
				return fmt.Errorf("purge %s: %w", sid, err)
			}
		}
		if n > 0 {
			d.opts.notice("%d edit(s) to %s were dropped: the case was purged after its retention period", n, sid)
		}
		d.opts.notice("deleted purged case %s from this device", sid)
	}
	return nil
}

// heldStreams lists every stream this device holds anything of.
func (d *Device) heldStreams() ([]syncproto.StreamID, error) {
	streams, err := d.rep.Streams()
	if err != nil {
		return nil, err
	}
	seen := map[syncproto.StreamID]bool{}
	for _, s := range streams {
		seen[s] = true
	}
	rows, err := d.db().Query(`SELECT stream FROM local_keys UNION SELECT stream FROM local_outbox
		UNION SELECT stream FROM local_cursor UNION SELECT stream FROM local_authors
		UNION SELECT stream FROM local_inflight UNION SELECT stream FROM local_shared
		UNION SELECT stream FROM local_receipts`)
	if err != nil {
		return nil, fmt.Errorf("list held streams: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		var s syncproto.StreamID
		copy(s[:], b)
		seen[s] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]syncproto.StreamID, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	return out, nil
}
