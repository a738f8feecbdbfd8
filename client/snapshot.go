package client

// Snapshots: an up-to-date worker device posts a sealed, signed image of a
// stream when its history past the newest countersigned snapshot grows
// past Options.SnapshotEvery batches; a coordinator device rebuilds the
// stream up to that point from verified history and countersigns the
// snapshot only if the two are byte-identical; a device new to a stream
// starts from the countersigned snapshot and pulls only what follows.
// docs/ARCHITECTURE.md ("Snapshots") has the design.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/fristed/fristed/client/replica"
	"github.com/fristed/fristed/client/transport"
	"github.com/fristed/fristed/syncproto"
)

// DefaultSnapshotEvery is how many batches past the newest countersigned
// snapshot make an up-to-date worker device post a new one. A batch holds 1
// to 100 deltas, so this is 1,000 deltas and up.
const DefaultSnapshotEvery = 1000

// ErrSnapshot means a snapshot served by the relay was refused: unsigned or
// wrongly signed, not the one a coordinator countersigned, undecryptable,
// not matching the history, or holding edits of a device since revoked as
// compromised. It is never applied.
var ErrSnapshot = errors.New("snapshot refused")

func (o *Options) snapshotEvery() syncproto.Seq {
	if o.SnapshotEvery > 0 {
		return syncproto.Seq(o.SnapshotEvery)
	}
	return DefaultSnapshotEvery
}

func snapshotRefused(stream syncproto.StreamID, format string, args ...any) error {
	return fmt.Errorf("%w: stream %s: %s", ErrSnapshot, stream, fmt.Sprintf(format, args...))
}

func isSnapshotNotFound(err error) bool {
	var we *syncproto.Error
	return errors.As(err, &we) && we.Code == syncproto.CodeNotFound
}

// snapshots runs after a successful pull: worker devices post what is due,
// coordinator devices check and countersign what was posted.
func (d *Device) snapshots(ctx context.Context) error {
	if d.cfg.Role != RoleWorker && d.cfg.Role != RoleCoordinator {
		return nil
	}
	c, err := d.client()
	if err != nil {
		return err
	}
	known := map[syncproto.StreamID]syncproto.Seq{}
	for _, s := range d.readableStreams() {
		if known[s], err = d.cursor(s); err != nil {
			return err
		}
	}
	if len(known) == 0 {
		return nil
	}
	heads, _, err := c.Heads(ctx, known, syncproto.ChainPos(d.chain.Len()), 0)
	if err != nil {
		return err
	}
	streams := make([]syncproto.StreamID, 0, len(known))
	for s := range known {
		streams = append(streams, s)
	}
	slices.SortFunc(streams, func(a, b syncproto.StreamID) int { return bytes.Compare(a[:], b[:]) })
	every := d.opts.snapshotEvery()
	for _, s := range streams {
		h, ok := heads[s]
		str := d.chain.State().Streams[s]
		if !ok || str == nil || str.Purged {
			continue
		}
		if str.Kind == syncproto.StreamAudit {
			// The audit log is checked link by link from its first batch
			// (auditlog.go): it is kept whole, never snapshotted.
			continue
		}
		var base syncproto.Seq
		if str.Countersigned != nil {
			base = str.Countersigned.Seq
		}
		if h.Head <= base+every {
			continue
		}
		// Workers post and coordinators check; a stream no worker device
		// reads is posted by a coordinator device (checked by another one
		// if there is another, see checkSnapshot).
		if d.cfg.Role == RoleWorker || workerless(d.chain.State(), str) {
			err = d.postSnapshot(ctx, c, s, known[s], h.Head)
			if errors.Is(err, ErrNoKey) {
				d.opts.notice("%v; no snapshot of that stream for now", err)
				continue
			}
			if err != nil {
				return err
			}
		}
		if d.cfg.Role == RoleCoordinator {
			err = d.checkSnapshot(ctx, c, s, base, h.Pruned)
			if errors.Is(err, ErrNoKey) {
				d.opts.notice("%v; no snapshot of that stream for now", err)
				continue
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// workerless reports whether no worker device is in a stream's current
// epoch (a resident nobody is assigned to, say): only coordinator devices
// can post its snapshots.
func workerless(st *syncproto.State, str *syncproto.StreamInfo) bool {
	cur := str.Current()
	if cur == nil {
		return false
	}
	for _, dev := range cur.Devices {
		if info := st.Devices[dev]; info != nil && info.Role == syncproto.RoleWorker {
			return false
		}
	}
	return true
}

// postSnapshot posts a snapshot of stream at head if this device is up to
// date there (everything pulled, nothing of its own waiting) and no
// snapshot near head is waiting for a countersignature already.
func (d *Device) postSnapshot(ctx context.Context, c *transport.Client, s syncproto.StreamID, cursor, head syncproto.Seq) error {
	if cursor != head {
		return nil
	}
	var pending int
	if err := d.db().QueryRow(`SELECT (SELECT COUNT(*) FROM local_outbox WHERE stream = ?1) + (SELECT COUNT(*) FROM local_inflight WHERE stream = ?1)`,
		s[:]).Scan(&pending); err != nil {
		return fmt.Errorf("read outbox: %w", err)
	}
	if pending > 0 {
		return nil
	}
	raw, err := c.GetSnapshot(ctx, s)
	switch {
	case err == nil:
		if sn, err := syncproto.UnmarshalSnapshot(raw); err == nil && sn.Stream == s && head <= sn.Seq+d.opts.snapshotEvery() {
			return nil // a recent one waits for its countersignature
		}
	case !isSnapshotNotFound(err):
		return err
	}
	cur := d.chain.State().Streams[s].Current()
	if cur == nil || !cur.Has(d.pc.device) {
		return nil
	}
	key, err := d.epochKey(s, cur.Epoch)
	if err != nil {
		return err
	}
	content, err := d.snapshotContent(s, head)
	if err != nil || content == nil {
		return err
	}
	plain, err := content.Marshal()
	if err != nil {
		return fmt.Errorf("snapshot of %s: %w", s, err)
	}
	sealed, err := syncproto.SealSnapshotContent(key, d.pc.tenant, s, cur.Epoch, head, plain)
	clear(plain)
	if err != nil {
		return fmt.Errorf("snapshot of %s: %w", s, err)
	}
	sn := &syncproto.Snapshot{Tenant: d.pc.tenant, Stream: s, Epoch: cur.Epoch, Author: d.pc.device, Seq: head,
		CreatedMS: uint64(d.opts.now().UnixMilli()), Content: sealed}
	if err := sn.Sign(d.kf.Sign); err != nil {
		return err
	}
	if err := c.PutSnapshot(ctx, s, sn.Marshal()); err != nil {
		var we *syncproto.Error
		if errors.As(err, &we) && we.Code != syncproto.CodeDeviceRevoked {
			// Refused (access changed since the pull, say): the edits are
			// all delivered; another device, or a later sync, posts one.
			d.opts.notice("snapshot of %s not posted: %v", s, err)
			return nil
		}
		return d.refused(err)
	}
	return nil
}

// snapshotContent is this device's state of stream s after batch seq, or
// nil if it lacks the receipt naming that batch.
func (d *Device) snapshotContent(s syncproto.StreamID, seq syncproto.Seq) (*syncproto.SnapshotContent, error) {
	var rcRaw []byte
	if err := d.db().QueryRow(`SELECT raw FROM local_receipts WHERE stream = ? AND seq = ?`, s[:], int64(seq)).Scan(&rcRaw); err != nil {
		return nil, nil
	}
	rc, err := syncproto.UnmarshalReceipt(rcRaw)
	if err != nil || rc.Seq != seq || rc.Stream != s {
		return nil, nil
	}
	content, err := d.rep.Export(s)
	if err != nil {
		return nil, err
	}
	content.Tenant, content.Seq, content.Head = d.pc.tenant, seq, rc.Batch
	rows, err := d.db().Query(`SELECT device, counter, last FROM local_authors WHERE stream = ?`, s[:])
	if err != nil {
		return nil, fmt.Errorf("read author state: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var dev, last []byte
		var n int64
		if err := rows.Scan(&dev, &n, &last); err != nil {
			return nil, err
		}
		a := syncproto.SnapshotAuthor{Counter: uint64(n)}
		copy(a.Device[:], dev)
		copy(a.Last[:], last)
		content.Authors = append(content.Authors, a)
	}
	return content, rows.Err()
}

// openSnapshot checks a snapshot of stream s against the chain (a known
// author, in the epoch it names, whose signature verifies), opens it and
// decodes its content. Every refusal is ErrSnapshot; a missing epoch key
// is ErrNoKey.
func (d *Device) openSnapshot(sn *syncproto.Snapshot, s syncproto.StreamID) (*syncproto.SnapshotContent, error) {
	if sn.Tenant != d.pc.tenant || sn.Stream != s {
		return nil, snapshotRefused(s, "the snapshot is of another stream")
	}
	st := d.chain.State()
	author := st.Devices[sn.Author]
	if author == nil {
		return nil, snapshotRefused(s, "snapshot by unknown device %s", sn.Author)
	}
	if err := sn.Verify(author.SignPub); err != nil {
		return nil, snapshotRefused(s, "the author's signature does not verify")
	}
	str := st.Streams[s]
	if ep := str.Epoch(sn.Epoch); ep == nil || !ep.Has(sn.Author) {
		return nil, snapshotRefused(s, "the author was not in the epoch the snapshot names")
	}
	key, err := d.epochKey(s, sn.Epoch)
	if err != nil {
		return nil, err
	}
	plain, err := syncproto.OpenSnapshotContent(key, sn.Tenant, s, sn.Epoch, sn.Seq, sn.Content)
	if err != nil {
		return nil, snapshotRefused(s, "the content does not decrypt: %v", err)
	}
	content, err := syncproto.UnmarshalSnapshotContent(plain)
	clear(plain)
	if err != nil {
		return nil, snapshotRefused(s, "%v", err)
	}
	if content.Tenant != sn.Tenant || content.Stream != s || content.Seq != sn.Seq {
		return nil, snapshotRefused(s, "the content is of another stream or point")
	}
	return content, nil
}

// countersigned fetches and opens the snapshot the chain's newest
// countersignature of stream s names, refusing anything else.
func (d *Device) countersigned(ctx context.Context, c *transport.Client, s syncproto.StreamID, cs *syncproto.SnapshotCountersigned) (*syncproto.SnapshotContent, error) {
	raw, err := c.GetSnapshotByHash(ctx, s, cs.Snapshot)
	if isSnapshotNotFound(err) {
		return nil, snapshotRefused(s, "the relay does not serve the countersigned snapshot")
	} else if err != nil {
		return nil, err
	}
	sn, err := syncproto.UnmarshalSnapshot(raw)
	if err != nil {
		return nil, snapshotRefused(s, "%v", err)
	}
	if sn.Hash() != cs.Snapshot || sn.Seq != cs.Seq {
		return nil, snapshotRefused(s, "the relay served a snapshot that is not the countersigned one")
	}
	return d.openSnapshot(sn, s)
}

// startFromSnapshot loads the newest usable countersigned snapshot of
// stream s (snapbase.go) when this device has nothing of the stream yet
// (new to it, or rebuilding it), or the relay pruned past its cursor; it
// returns the cursor to pull from. With the history there and no usable
// snapshot, it is replayed from the start; with the history pruned and no
// usable snapshot, errNoUsableSnapshot says so and the stream waits.
func (d *Device) startFromSnapshot(ctx context.Context, c *transport.Client, s syncproto.StreamID, cursor syncproto.Seq, h transport.StreamHead) (syncproto.Seq, error) {
	if cursor > 0 && h.Pruned <= cursor {
		return cursor, nil
	}
	if str := d.chain.State().Streams[s]; str == nil || str.Countersigned == nil {
		return cursor, nil // the newest non-void countersignature: there is none
	}
	from := max(h.Pruned, cursor+1)
	cand, content, err := d.usableSnapshot(ctx, c, s, from, ^syncproto.Seq(0))
	if (errors.Is(err, errNoUsableSnapshot) || errors.Is(err, ErrSnapshot)) && h.Pruned <= cursor {
		return cursor, nil // the whole history is there: replay it
	}
	if err != nil {
		return cursor, err
	}
	cs := cand.cs
	// Merged, not replaced: whatever this device already holds of the
	// stream (its own edits included) stays, as if the history had been
	// replayed.
	if err := d.rep.Import(content); err != nil {
		return cursor, err
	}
	for _, a := range content.Authors {
		n, _, err := d.authorState(s, a.Device)
		if err != nil {
			return cursor, err
		}
		if a.Counter > n {
			if err := d.setAuthorState(s, a.Device, a.Counter, a.Last); err != nil {
				return cursor, err
			}
		}
	}
	for _, w := range content.Writes {
		d.observe(syncproto.HLC{WallMS: binary.BigEndian.Uint64(w.Version[0:8]), Logical: binary.BigEndian.Uint32(w.Version[8:12])})
	}
	if _, err := d.db().Exec(`INSERT OR REPLACE INTO local_cursor (stream, seq) VALUES (?, ?)`, s[:], int64(cs.Seq)); err != nil {
		return cursor, err
	}
	if err := d.recordBase(s, cand.pos); err != nil {
		return cursor, err
	}
	d.dirty = true
	return cs.Seq, nil
}

// checkSnapshot checks the newest snapshot of stream s, if it is past the
// last countersigned one and not checked before: it rebuilds the stream up
// to the snapshot from verified history and countersigns the snapshot if
// the canonical contents are identical. A snapshot that does not match is
// reported and remembered, never countersigned. A coordinator device
// checks its own snapshot only if it is the only active one; a check
// during which a compromised-since revocation arrived is not posted (it
// is done again at the next sync).
func (d *Device) checkSnapshot(ctx context.Context, c *transport.Client, s syncproto.StreamID, base, pruned syncproto.Seq) error {
	vm := voidMark(d.chain)
	raw, err := c.GetSnapshot(ctx, s)
	if isSnapshotNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	sn, err := syncproto.UnmarshalSnapshot(raw)
	if err != nil {
		d.opts.notice("%v", snapshotRefused(s, "%v", err))
		return nil
	}
	if sn.Seq <= base {
		return nil
	}
	if sn.Author == d.pc.device && len(d.chain.State().ActiveCoordinators()) > 1 {
		return nil // another coordinator device checks it
	}
	h := sn.Hash()
	mark := "snapshot-checked/" + h.String()
	if _, err := d.getMeta(mark); err == nil {
		return nil
	}
	verdict := func(err error) error {
		d.opts.notice("%v; not countersigned", err)
		return d.putMeta(mark, []byte{0})
	}
	got, err := d.openSnapshot(sn, s)
	if errors.Is(err, ErrSnapshot) {
		return verdict(err)
	} else if err != nil {
		return err
	}
	want, err := d.rebuild(ctx, c, s, sn.Seq, pruned)
	if errors.Is(err, errNoUsableSnapshot) {
		d.opts.notice("snapshot of %s after batch %d not checked: the history is pruned and there is %v", s, sn.Seq, err)
		return nil
	}
	if errors.Is(err, ErrSnapshot) || errors.Is(err, ErrHistory) {
		return verdict(fmt.Errorf("%w: stream %s: the history does not rebuild: %v", ErrSnapshot, s, err))
	} else if err != nil {
		return err
	}
	gotRaw, err := got.Marshal()
	if err != nil {
		return verdict(snapshotRefused(s, "%v", err))
	}
	wantRaw, err := want.Marshal()
	if err != nil {
		return err
	}
	if !bytes.Equal(gotRaw, wantRaw) {
		return verdict(snapshotRefused(s, "the snapshot by device %s after batch %d does not match the history", sn.Author, sn.Seq))
	}
	posted, err := d.postCountersignature(ctx, &syncproto.SnapshotCountersigned{Stream: s, Seq: sn.Seq, Snapshot: h}, vm)
	if err != nil {
		return fmt.Errorf("countersign snapshot of %s: %w", s, err)
	}
	if !posted {
		return nil
	}
	return d.putMeta(mark, []byte{1})
}

// authorPos is an author's last batch in a stream.
type authorPos struct {
	n uint64
	h syncproto.Hash
}

// rebuild makes the state of stream s after batch upto in a scratch
// replica: from the newest usable countersigned snapshot before it
// (snapbase.go, checked as an onboarding device checks it) or, if the
// relay has not pruned, from the start, plus every batch after it, each
// verified and applied by the rules pull uses (applyPulled).
func (d *Device) rebuild(ctx context.Context, c *transport.Client, s syncproto.StreamID, upto, pruned syncproto.Seq) (*syncproto.SnapshotContent, error) {
	scratch, err := replica.New()
	if err != nil {
		return nil, err
	}
	defer scratch.Close()
	authors := map[syncproto.DeviceID]authorPos{}
	var after syncproto.Seq
	if d.chain.State().Streams[s].Countersigned != nil {
		cand, prev, err := d.usableSnapshot(ctx, c, s, pruned, upto-1)
		if (errors.Is(err, errNoUsableSnapshot) || errors.Is(err, ErrSnapshot)) && pruned == 0 {
			prev, err = nil, nil // the whole history is there
		} else if err != nil {
			return nil, err
		}
		if prev != nil {
			if err := scratch.Import(prev); err != nil {
				return nil, err
			}
			for _, a := range prev.Authors {
				authors[a.Device] = authorPos{a.Counter, a.Last}
			}
			after = cand.cs.Seq
		}
	}
	var head syncproto.Hash
	for after < upto {
		page, _, err := c.PullBatches(ctx, s, after, pullPage, 0)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return nil, fmt.Errorf("%w: stream %s: the relay has no batch %d", ErrHistory, s, after+1)
		}
		for _, p := range page {
			if p.Seq != after+1 {
				return nil, fmt.Errorf("%w: stream %s: batch %d follows %d", ErrHistory, s, p.Seq, after)
			}
			deltas, h, err := d.verifyPulled(s, p, authors)
			if err != nil {
				return nil, err
			}
			if len(deltas) > 0 {
				if err := scratch.ApplyBatch(deltas); err != nil {
					return nil, fmt.Errorf("batch %d of %s: %w", p.Seq, s, err)
				}
			}
			after, head = p.Seq, h
			if after == upto {
				break
			}
		}
	}
	out, err := scratch.Export(s)
	if err != nil {
		return nil, err
	}
	out.Tenant, out.Seq, out.Head = d.pc.tenant, upto, head
	for dev, a := range authors {
		out.Authors = append(out.Authors, syncproto.SnapshotAuthor{Device: dev, Counter: a.n, Last: a.h})
	}
	return out, nil
}

// verifyPulled checks one batch as applyPulled does, against the author
// positions in authors (which it advances), and returns the deltas to
// apply: none for a replay, a voided author's batch or one whose clock
// runs ahead of its receipt. Keep it in step with applyPulled: a rule in
// one and not the other makes every snapshot mismatch, which is reported,
// never silently accepted.
func (d *Device) verifyPulled(s syncproto.StreamID, p transport.Pulled, authors map[syncproto.DeviceID]authorPos) ([]*syncproto.Delta, syncproto.Hash, error) {
	b, err := syncproto.UnmarshalBatch(p.Raw)
	if err != nil {
		return nil, syncproto.Hash{}, fmt.Errorf("%w: batch %d of %s: %v", ErrHistory, p.Seq, s, err)
	}
	h, _ := b.Hash()
	rc, err := syncproto.UnmarshalReceipt(p.Receipt)
	if err != nil || rc.Verify(d.pc.relayKey) != nil || rc.Batch != h || rc.Seq != p.Seq || rc.Stream != s || b.Stream != s || b.Tenant != d.pc.tenant {
		return nil, h, fmt.Errorf("%w: batch %d of %s: receipt does not match the batch", ErrHistory, p.Seq, s)
	}
	author := d.chain.State().Devices[b.Author]
	if author == nil {
		if d.voidedDevice(b.Author) {
			return nil, h, nil
		}
		return nil, h, fmt.Errorf("%w: batch %d of %s: unknown author", ErrHistory, p.Seq, s)
	}
	last := authors[b.Author]
	switch {
	case b.Counter <= last.n:
		if b.Counter < last.n || h == last.h {
			return nil, h, nil
		}
		return nil, h, fmt.Errorf("%w: batch %d of %s: device %s has two batches numbered %d", ErrHistory, p.Seq, s, b.Author, b.Counter)
	case b.Counter != last.n+1 || b.Prev != last.h:
		return nil, h, fmt.Errorf("%w: batch %d of %s: batch %d of device %s is missing", ErrHistory, p.Seq, s, last.n+1, b.Author)
	}
	authors[b.Author] = authorPos{b.Counter, h}
	if author.HasCompromisedSince && d.afterPoint(b, rc, author) {
		return nil, h, nil
	}
	key, err := d.epochKey(s, b.Epoch)
	if err != nil {
		return nil, h, fmt.Errorf("batch %d of %s: %w", p.Seq, s, err)
	}
	deltas, err := syncproto.OpenBatch(b, key, author.SignPub)
	if err != nil {
		return nil, h, fmt.Errorf("%w: batch %d of %s: %v", ErrHistory, p.Seq, s, err)
	}
	for _, dl := range deltas {
		if dl.Clock.WallMS > rc.ReceivedMS+uint64(MaxClockSkew/time.Millisecond) {
			return nil, h, nil
		}
	}
	return deltas, h, nil
}
