package client

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/fristed/fristed/client/transport"
	"github.com/fristed/fristed/syncproto"
)

// Batching limits: a batch is signed once, so larger batches amortise the
// signature; 100 deltas keeps a batch well under the relay's size limit.
const (
	maxBatchDeltas = 100
	pullPage       = 200
)

// SyncResult says what a sync did.
type SyncResult struct {
	Pushed  int // deltas accepted by the relay
	Pulled  int // deltas applied from other devices
	Pending int // deltas still waiting (0 after a full sync)
}

// Sync pushes pending edits and pulls what other devices wrote. If the
// relay cannot be reached, the edits stay queued and the error says how
// many are pending.
func (d *Device) Sync(ctx context.Context) (SyncResult, error) {
	var res SyncResult
	if d.cfg.Role == RolePending {
		if err := d.checkApproved(ctx); err != nil {
			return res, err
		}
	}
	err := d.sync(ctx, &res)
	if errors.Is(err, ErrWiped) {
		return res, err
	}
	if serr := d.save(); err == nil {
		err = serr
	}
	res.Pending, _ = d.Pending()
	if err != nil && errors.Is(err, transport.ErrUnreachable) {
		return res, fmt.Errorf("%w; %d edit(s) pending, they stay saved on this device", err, res.Pending)
	}
	return res, err
}

func (d *Device) sync(ctx context.Context, res *SyncResult) error {
	d.skewWarned = false
	if err := d.refreshChain(ctx); err != nil {
		return err
	}
	if d.relayKeyMismatch {
		return errors.New("the relay's signing key differs from the one registered for this org: refusing to sync (possible impersonation)")
	}
	if err := d.checkVoids(); err != nil {
		return err
	}
	if err := d.fetchKeys(ctx); err != nil {
		return err
	}
	if d.cfg.Role == RoleCoordinator {
		if err := d.purgeDue(ctx); err != nil {
			return err
		}
	}
	if err := d.shredPurged(); err != nil {
		return err
	}
	if d.cfg.Role == RoleCoordinator {
		// Heal what an interrupted admin action left: every stream keyed
		// to exactly the devices that should hold it.
		if err := d.rekeyAll(ctx); err != nil {
			return err
		}
		if err := d.shareAllHistory(ctx); err != nil {
			return err
		}
		if err := d.nameAuditRecipient(ctx); err != nil {
			return err
		}
		d.noticeExpiredEnvelopes()
	}
	if err := d.push(ctx, res); err != nil {
		return err
	}
	if err := d.purgeRemoved(ctx); err != nil {
		return err
	}
	if err := d.pull(ctx, res); err != nil {
		return err
	}
	if err := d.checkAuditReceipts(ctx); err != nil {
		return err
	}
	if d.cfg.Role == RoleCoordinator {
		d.resealNotices(ctx, nil)
		if err := d.checkpointAudit(ctx); err != nil {
			return err
		}
	}
	return d.snapshots(ctx)
}

// push seals and sends the outbox, stream by stream, in batches.
func (d *Device) push(ctx context.Context, res *SyncResult) error {
	// First anything sealed but not confirmed: it must go out byte for
	// byte the same, so the relay's idempotency recognises it.
	if err := d.pushInflight(ctx, res); err != nil {
		return err
	}
	streams, err := d.outboxStreams()
	if err != nil {
		return err
	}
	if streams, err = d.deliverable(streams); err != nil {
		return err
	}
	for _, s := range streams {
		for {
			n, err := d.pushOne(ctx, s, res)
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
		}
	}
	return nil
}

func (d *Device) outboxStreams() ([]syncproto.StreamID, error) {
	rows, err := d.db().Query(`SELECT DISTINCT stream FROM local_outbox ORDER BY stream`)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []syncproto.StreamID
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		var s syncproto.StreamID
		copy(s[:], b)
		out = append(out, s)
	}
	return out, rows.Err()
}

// pushOne seals up to maxBatchDeltas pending deltas of a stream under the
// newest epoch key and sends them; it returns how many it sent.
func (d *Device) pushOne(ctx context.Context, stream syncproto.StreamID, res *SyncResult) (int, error) {
	rows, err := d.db().Query(`SELECT delta, head_pos, head_hash FROM local_outbox WHERE stream = ? ORDER BY n LIMIT ?`, stream[:], maxBatchDeltas)
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	var deltas []*syncproto.Delta
	var written syncproto.Head // the newest head any of these was written under
	for rows.Next() {
		var raw, hh []byte
		var hp int64
		if err := rows.Scan(&raw, &hp, &hh); err != nil {
			rows.Close()
			return 0, err
		}
		if syncproto.ChainPos(hp) >= written.Pos {
			written.Pos = syncproto.ChainPos(hp)
			copy(written.Hash[:], hh)
		}
		dl, err := syncproto.UnmarshalDelta(raw)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("read outbox: %w", err)
		}
		deltas = append(deltas, dl)
	}
	rows.Close()
	if len(deltas) == 0 {
		return 0, nil
	}
	str := d.chain.State().Streams[stream]
	if str == nil || str.Current() == nil {
		return 0, fmt.Errorf("push: stream %s has no key epoch yet", stream)
	}
	epoch := str.Current().Epoch
	head, _ := d.chain.Head()
	audit := str.Kind == syncproto.StreamAudit
	if !audit && !str.Current().Has(d.pc.device) {
		// Removed from the stream: seal under the last epoch this device
		// had, naming the chain head the edits were written under; the
		// relay accepts them if that was before the removal.
		for i := len(str.Epochs) - 1; i >= 0; i-- {
			if str.Epochs[i].Has(d.pc.device) {
				epoch = str.Epochs[i].Epoch
				break
			}
		}
		head = written
	}
	for _, dl := range deltas {
		dl.Epoch = epoch
	}
	counter, prev, err := d.authorState(stream, d.pc.device)
	if err != nil {
		return 0, err
	}
	hdr := syncproto.Batch{Tenant: d.pc.tenant, Stream: stream, Epoch: epoch, Author: d.pc.device,
		Counter: counter + 1, Prev: prev, ChainHead: head, CreatedMS: uint64(d.opts.now().UnixMilli())}
	var b *syncproto.Batch
	if audit {
		recipients, err := d.epochRecipients(str.Current())
		if err != nil {
			return 0, err
		}
		b, err = syncproto.SealAuditBatch(hdr, recipients, d.kf.Sign, deltas)
		if err != nil {
			return 0, err
		}
	} else {
		key, err := d.epochKey(stream, epoch)
		if err != nil {
			return 0, err
		}
		if b, err = syncproto.SealBatch(hdr, key, d.kf.Sign, deltas); err != nil {
			return 0, err
		}
	}
	raw, err := b.Marshal()
	if err != nil {
		return 0, err
	}
	// Journal the sealed batch before it leaves: after a crash the very
	// same bytes are resent.
	if err := d.vault.Append(append([]byte{frameInflight}, raw...)); err != nil {
		return 0, fmt.Errorf("save batch: %w", err)
	}
	if err := d.recordInflight(b, raw); err != nil {
		return 0, err
	}
	return d.sendInflight(ctx, stream, b, raw, res)
}

func (d *Device) recordInflight(b *syncproto.Batch, raw []byte) error {
	var ids bytes.Buffer
	for _, sd := range b.Deltas {
		ids.Write(sd.ID[:])
	}
	// A batch is sealed only after the previous one of the stream was
	// accepted (or refused as superseded, when the new one reuses its
	// counter). So on journal replay, an earlier in-flight batch with a
	// lower counter was accepted: its deltas leave the outbox, as they did
	// before the crash.
	var prevRaw []byte
	err := d.db().QueryRow(`SELECT raw FROM local_inflight WHERE stream = ?`, b.Stream[:]).Scan(&prevRaw)
	if err == nil {
		if prev, perr := syncproto.UnmarshalBatch(prevRaw); perr == nil && prev.Counter < b.Counter {
			for _, sd := range prev.Deltas {
				if _, err := d.db().Exec(`DELETE FROM local_outbox WHERE id = ?`, sd.ID[:]); err != nil {
					return fmt.Errorf("record batch: %w", err)
				}
			}
		}
	} else if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("record batch: %w", err)
	}
	if _, err := d.db().Exec(`INSERT OR REPLACE INTO local_inflight (stream, raw, ids) VALUES (?, ?, ?)`,
		b.Stream[:], raw, ids.Bytes()); err != nil {
		return fmt.Errorf("record batch: %w", err)
	}
	h, err := b.Hash()
	if err != nil {
		return err
	}
	d.dirty = true
	return d.setAuthorState(b.Stream, b.Author, b.Counter, h)
}

func (d *Device) pushInflight(ctx context.Context, res *SyncResult) error {
	rows, err := d.db().Query(`SELECT stream, raw FROM local_inflight`)
	if err != nil {
		return fmt.Errorf("read batches: %w", err)
	}
	type pending struct {
		stream syncproto.StreamID
		raw    []byte
	}
	var ps []pending
	for rows.Next() {
		var p pending
		var s []byte
		if err := rows.Scan(&s, &p.raw); err != nil {
			rows.Close()
			return err
		}
		copy(p.stream[:], s)
		ps = append(ps, p)
	}
	rows.Close()
	for _, p := range ps {
		b, err := syncproto.UnmarshalBatch(p.raw)
		if err != nil {
			return fmt.Errorf("read batch: %w", err)
		}
		if _, err := d.sendInflight(ctx, p.stream, b, p.raw, res); err != nil {
			return err
		}
	}
	return nil
}

// sendInflight sends a sealed batch and, once the relay's signed receipt
// checks out, removes its deltas from the outbox.
func (d *Device) sendInflight(ctx context.Context, stream syncproto.StreamID, b *syncproto.Batch, raw []byte, res *SyncResult) (int, error) {
	c, err := d.client()
	if err != nil {
		return 0, err
	}
	seq, rcRaw, err := c.PushBatch(ctx, stream, raw)
	if err != nil {
		var we *syncproto.Error
		if errors.As(err, &we) && we.Code == syncproto.CodeEpochSuperseded {
			// A new epoch started: drop this sealing and re-seal the same
			// deltas under the new key on the next round.
			return d.dropInflight(ctx, b)
		}
		return 0, d.refused(err)
	}
	rc, err := syncproto.UnmarshalReceipt(rcRaw)
	if err != nil {
		return 0, fmt.Errorf("receipt: %w", err)
	}
	h, _ := b.Hash()
	if err := rc.Verify(d.pc.relayKey); err != nil || rc.Batch != h || rc.Stream != stream || rc.Seq != seq {
		return 0, errors.New("push: the relay's receipt does not match the batch")
	}
	// Read before they leave the outbox: the skew rule is checked on them
	// below (the audit entries of a worker's laptop do not open here).
	sent, err := d.outboxDeltas(b)
	if err != nil {
		return 0, err
	}
	tx, err := d.db().Begin()
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	for _, sd := range b.Deltas {
		if _, err := tx.Exec(`DELETE FROM local_outbox WHERE id = ?`, sd.ID[:]); err != nil {
			return 0, err
		}
	}
	if _, err := tx.Exec(`DELETE FROM local_inflight WHERE stream = ?`, stream[:]); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(`INSERT OR REPLACE INTO local_receipts (stream, seq, raw) VALUES (?, ?, ?)`, stream[:], int64(seq), rcRaw); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	d.dirty = true
	res.Pushed += len(b.Deltas)
	// The relay accepted the batch, but every device refuses it if its
	// clocks run too far ahead of the receipt: so must this one.
	return len(b.Deltas), d.checkOwnSkew(stream, sent, rc)
}

// dropInflight forgets a sealing the relay refused as superseded and
// refreshes chain and keys so the deltas are re-sealed under the new epoch.
// The author counter is rolled back: the relay never accepted that batch.
func (d *Device) dropInflight(ctx context.Context, b *syncproto.Batch) (int, error) {
	if _, err := d.db().Exec(`DELETE FROM local_inflight WHERE stream = ?`, b.Stream[:]); err != nil {
		return 0, err
	}
	if err := d.setAuthorState(b.Stream, b.Author, b.Counter-1, b.Prev); err != nil {
		return 0, err
	}
	if err := d.refreshChain(ctx); err != nil {
		return 0, err
	}
	if err := d.fetchKeys(ctx); err != nil {
		return 0, err
	}
	str := d.chain.State().Streams[b.Stream]
	if str != nil && str.Current() != nil && (str.Kind == syncproto.StreamAudit || str.Current().Has(d.pc.device)) && str.Current().Epoch > b.Epoch {
		return 1, nil // a newer epoch of ours exists: re-seal under it
	}
	// This device was removed from the stream and the relay no longer
	// accepts its old epoch: the edits cannot be delivered to anyone.
	res, err := d.db().Exec(`DELETE FROM local_outbox WHERE stream = ?`, b.Stream[:])
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	d.opts.notice("%d edit(s) to %s could not be delivered: this device no longer has access to that case", n, b.Stream)
	return 0, nil
}

func (d *Device) authorState(stream syncproto.StreamID, dev syncproto.DeviceID) (uint64, syncproto.Hash, error) {
	var counter int64
	var last []byte
	err := d.db().QueryRow(`SELECT counter, last FROM local_authors WHERE stream = ? AND device = ?`, stream[:], dev[:]).Scan(&counter, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, syncproto.Hash{}, nil
	}
	if err != nil {
		return 0, syncproto.Hash{}, fmt.Errorf("read author state: %w", err)
	}
	var h syncproto.Hash
	copy(h[:], last)
	return uint64(counter), h, nil
}

func (d *Device) setAuthorState(stream syncproto.StreamID, dev syncproto.DeviceID, counter uint64, last syncproto.Hash) error {
	_, err := d.db().Exec(`INSERT OR REPLACE INTO local_authors (stream, device, counter, last) VALUES (?, ?, ?, ?)`,
		stream[:], dev[:], int64(counter), last[:])
	if err != nil {
		return fmt.Errorf("write author state: %w", err)
	}
	d.dirty = true
	return nil
}

func (d *Device) cursor(stream syncproto.StreamID) (syncproto.Seq, error) {
	var n int64
	err := d.db().QueryRow(`SELECT seq FROM local_cursor WHERE stream = ?`, stream[:]).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read cursor: %w", err)
	}
	return syncproto.Seq(n), nil
}

// readableStreams lists the streams this device is in the current epoch of.
func (d *Device) readableStreams() []syncproto.StreamID {
	st := d.chain.State()
	var out []syncproto.StreamID
	for id := range st.Streams {
		if st.CanRead(d.pc.device, id) {
			out = append(out, id)
		}
	}
	return out
}

// pull fetches and applies new batches of every readable stream.
func (d *Device) pull(ctx context.Context, res *SyncResult) error {
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
	heads, _, err := c.Heads(ctx, known, syncproto.ChainPos(d.chain.Len()), 0)
	if err != nil {
		return err
	}
	total, done := 0, 0
	for s, h := range heads {
		if h.Head > known[s] {
			total += int(h.Head - known[s])
		}
	}
	// An inconsistent stream is reported and skipped; the others still
	// sync, and the first such error is returned at the end.
	var historyErr error
	for _, s := range sortedStreamIDs(heads) {
		h := heads[s]
		if _, ok := known[s]; !ok {
			continue
		}
		// The relay signed receipts up to some sequence number: a head
		// below it means batches it accepted are now withheld.
		var maxReceipt int64
		if err := d.db().QueryRow(`SELECT COALESCE(MAX(seq), 0) FROM local_receipts WHERE stream = ?`, s[:]).Scan(&maxReceipt); err != nil {
			return err
		}
		if int64(h.Head) < maxReceipt {
			err := fmt.Errorf("%w: stream %s: the relay shows %d batches but signed a receipt for batch %d", ErrHistory, s, h.Head, maxReceipt)
			d.opts.notice("%v", err)
			if historyErr == nil {
				historyErr = err
			}
			continue
		}
		// A stream new to this device, or pruned past its cursor, starts
		// from the countersigned snapshot (snapshot.go). One the relay
		// serves wrong is refused and reported, and the stream waits.
		from, err := d.startFromSnapshot(ctx, c, s, known[s], h)
		switch {
		case errors.Is(err, ErrSnapshot) || errors.Is(err, ErrNoKey) || errors.Is(err, errNoUsableSnapshot):
			d.opts.notice("%v", err)
			if errors.Is(err, ErrSnapshot) && historyErr == nil {
				historyErr = err
			}
			continue
		case err != nil:
			return err
		}
		known[s] = from
		if h.Head <= known[s] {
			if err := d.endRebuild(s); err != nil {
				return err
			}
			continue
		}
		after := known[s]
	stream:
		for after < h.Head {
			page, _, err := c.PullBatches(ctx, s, after, pullPage, 0)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				// The relay named a head it then does not serve.
				err := fmt.Errorf("%w: stream %s: the relay shows %d batches but serves none after %d (withheld)", ErrHistory, s, h.Head, after)
				d.opts.notice("%v", err)
				if historyErr == nil {
					historyErr = err
				}
				break
			}
			for _, p := range page {
				var n int
				if p.Seq != after+1 {
					err = fmt.Errorf("%w: stream %s: batch %d follows %d (the relay skipped some)", ErrHistory, s, p.Seq, after)
				} else {
					n, err = d.applyPulled(s, p)
				}
				if errors.Is(err, errChainBehind) {
					// Written under admin statements this device has not
					// fetched yet (perhaps appended since this sync
					// began): fetch them and try once more.
					if err = d.refreshChain(ctx); err != nil {
						return err
					}
					if n, err = d.applyPulled(s, p); errors.Is(err, errChainBehind) {
						err = fmt.Errorf("%w: %v, which the relay does not show (withheld admin statements)", ErrHistory, err)
					}
				}
				if errors.Is(err, ErrNoKey) {
					// Without the key the stream cannot advance; the rest
					// of the sync goes on and the next one retries.
					d.opts.notice("%v; skipping the rest of that stream for now", err)
					break stream
				}
				if errors.Is(err, ErrHistory) {
					d.opts.notice("%v", err)
					if historyErr == nil {
						historyErr = err
					}
					break stream
				}
				if err != nil {
					return err
				}
				res.Pulled += n
				after = p.Seq
				done++
				if d.opts.Progress != nil {
					d.opts.Progress(done, total, "batches")
				}
			}
		}
		if after >= h.Head {
			if err := d.endRebuild(s); err != nil {
				return err
			}
		}
	}
	return historyErr
}

// sortedStreamIDs returns the keys of m in byte order, so that a sync
// makes its requests in the same order every time.
func sortedStreamIDs[V any](m map[syncproto.StreamID]V) []syncproto.StreamID {
	out := make([]syncproto.StreamID, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b syncproto.StreamID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// applyPulled verifies and applies one batch: the relay's receipt, the
// author's signature and key rights from the chain, every AEAD tag; only
// then are its deltas merged.
func (d *Device) applyPulled(stream syncproto.StreamID, p transport.Pulled) (int, error) {
	// Whatever the relay serves that does not check out is its fault (or
	// an attacker's between it and the author): reported as ErrHistory,
	// so the stream stops there and the others go on.
	b, err := syncproto.UnmarshalBatch(p.Raw)
	if err != nil {
		return 0, fmt.Errorf("%w: batch %d of %s: %v", ErrHistory, p.Seq, stream, err)
	}
	rc, err := syncproto.UnmarshalReceipt(p.Receipt)
	if err != nil {
		return 0, fmt.Errorf("%w: batch %d of %s: receipt: %v", ErrHistory, p.Seq, stream, err)
	}
	h, _ := b.Hash()
	if err := rc.Verify(d.pc.relayKey); err != nil || rc.Batch != h || rc.Seq != p.Seq || rc.Stream != stream || b.Stream != stream || b.Tenant != d.pc.tenant {
		return 0, fmt.Errorf("%w: batch %d of %s: receipt does not match the batch", ErrHistory, p.Seq, stream)
	}
	if err := d.checkReceipt(stream, rc, p); err != nil {
		return 0, err
	}
	author := d.chain.State().Devices[b.Author]
	// The admin chain head the batch was written under must be on the
	// chain this device was shown, with the same hash.
	if err := d.checkBatchHead(stream, b, author, p.Seq); err != nil {
		return 0, err
	}
	if author == nil {
		if d.voidedDevice(b.Author) {
			// Enrolled by a coordinator laptop after the point it was
			// compromised since: the device never existed, its batches
			// are void like the compromised laptop's own.
			d.opts.notice("ignored batch %d of %s: written by a device whose enrolment was voided", p.Seq, stream)
			return 0, d.advanceCursor(stream, p)
		}
		return 0, fmt.Errorf("batch %d of %s: unknown author", p.Seq, stream)
	}
	if b.Author == d.pc.device && d.rebuilding(stream) {
		return d.reapplyOwn(stream, b, author, rc, p)
	}
	// Each author's batches must arrive in the author's order: the counter
	// one past the last one seen and the previous hash matching. A replay
	// is ignored; a gap means the relay withheld a batch, a different
	// batch under a counter already seen means the relay (or the author)
	// forked the history. Both stop this stream and are reported.
	lastN, lastH, err := d.authorState(stream, b.Author)
	if err != nil {
		return 0, err
	}
	own := b.Author == d.pc.device
	reapply := false // our own batch, whose deltas this replica lost
	switch {
	case own && b.Counter <= lastN:
		// Our own batch: its deltas were applied when they were written,
		// unless the case was purged here (an unassignment) and this
		// device was assigned it again: then they are applied like
		// anyone's.
		if reapply, err = d.lacksDeltas(b); err != nil {
			return 0, err
		}
		if !reapply {
			return 0, d.advanceCursor(stream, p)
		}
	case b.Counter <= lastN:
		if b.Counter < lastN || h == lastH {
			// An honest relay keeps one copy of a batch: the same batch
			// under a new sequence number is a replay. It is not applied,
			// and the stream stays before it: the relay may have put it
			// in place of a batch this device has yet to see.
			return 0, fmt.Errorf("%w: batch %d of %s is a replay of batch %d of device %s (already seen; replayed or reordered)", ErrHistory, p.Seq, stream, b.Counter, b.Author)
		}
		return 0, fmt.Errorf("%w: batch %d of %s: device %s has two batches numbered %d", ErrHistory, p.Seq, stream, b.Author, b.Counter)
	case b.Counter != lastN+1 || b.Prev != lastH:
		return 0, fmt.Errorf("%w: batch %d of %s: batch %d of device %s is missing (the relay withheld it)", ErrHistory, p.Seq, stream, lastN+1, b.Author)
	}
	// A batch written after its author's compromised-since point is void.
	if author.HasCompromisedSince && d.afterPoint(b, rc, author) {
		d.opts.notice("ignored batch %d of %s: written by a device after it was compromised", p.Seq, stream)
		return 0, d.acceptAuthor(stream, b, h, p)
	}
	n := 0
	if !own || reapply {
		deltas, err := d.openPulled(stream, b, author)
		if errors.Is(err, ErrNoKey) {
			return 0, fmt.Errorf("batch %d of %s: %w", p.Seq, stream, err)
		}
		if err != nil {
			return 0, fmt.Errorf("%w: batch %d of %s: %v", ErrHistory, p.Seq, stream, err)
		}
		// A clock too far ahead of the relay's signed receipt time is
		// refused by every device alike, since all see the same receipt
		// (the author too: skew.go).
		if ahead, refused := tooFarAhead(deltas, rc.ReceivedMS); refused {
			d.opts.notice("ignored batch %d of %s: its clock is %s ahead of the relay's receipt", p.Seq, stream, minutes(ahead))
			return 0, d.acceptAuthor(stream, b, h, p)
		}
		// The whole batch or nothing.
		if err := d.rep.ApplyBatch(deltas); err != nil {
			return 0, fmt.Errorf("batch %d of %s: %w", p.Seq, stream, err)
		}
		for _, dl := range deltas {
			d.observe(dl.Clock)
		}
		n = len(deltas)
	}
	return n, d.acceptAuthor(stream, b, h, p)
}

// afterPoint reports whether a batch by a device revoked as compromised
// since a chain position counts as written after it. The chain head a batch
// names is its author's claim, and a thief holding the device's key can
// name an old one; so a batch also counts as after the point if the relay
// received it (by its signed receipt) after the signed time of the
// statement at the point. Both are signed data every device sees alike, so
// every device voids the same batches. An honest edit made before the
// theft but delivered after that time is voided too: the safe side.
func (d *Device) afterPoint(b *syncproto.Batch, rc *syncproto.Receipt, author *syncproto.DeviceInfo) bool {
	if b.ChainHead.Pos > author.CompromisedSince {
		return true
	}
	s := d.chain.Statement(author.CompromisedSince)
	return s == nil || rc.ReceivedMS > s.TimeMS
}

// errChainBehind means a batch names an admin chain position past the
// chain this device holds.
var errChainBehind = errors.New("written under a later admin chain")

// checkBatchHead compares the admin chain head a batch was written under
// with the chain this device was shown: a position past its end means the
// device has not seen statements the author saw (errChainBehind: fetched
// once more, then reported as withheld); a different hash at a position it
// has means the relay showed the two devices different chains.
func (d *Device) checkBatchHead(stream syncproto.StreamID, b *syncproto.Batch, author *syncproto.DeviceInfo, seq syncproto.Seq) error {
	have, ok := d.chain.Head()
	if ok && b.ChainHead.Pos <= have.Pos {
		if hh, _ := d.chain.HashAt(b.ChainHead.Pos); hh == b.ChainHead.Hash {
			return nil
		}
	}
	// Only an author's signature makes the header evidence.
	if author != nil {
		if err := b.Verify(author.SignPub); err != nil {
			return fmt.Errorf("%w: batch %d of %s: %v", ErrHistory, seq, stream, err)
		}
	}
	if !ok || b.ChainHead.Pos > have.Pos {
		return fmt.Errorf("%w: batch %d of %s names admin chain statement %d; this device holds %d", errChainBehind, seq, stream, b.ChainHead.Pos, d.chain.Len())
	}
	if author == nil {
		return fmt.Errorf("%w: batch %d of %s: unknown author", ErrHistory, seq, stream)
	}
	return fmt.Errorf("%w: batch %d of %s was written under admin chain statement %d with another hash than this device was shown (a forked chain)", ErrHistory, seq, stream, b.ChainHead.Pos)
}

// checkReceipt compares a pulled receipt with the ones this device holds:
// a receipt it kept for the same sequence number (from pushing) must be
// the very same, and receipt times must not run backwards by more than
// the allowed skew.
func (d *Device) checkReceipt(stream syncproto.StreamID, rc *syncproto.Receipt, p transport.Pulled) error {
	var held []byte
	err := d.db().QueryRow(`SELECT raw FROM local_receipts WHERE stream = ? AND seq = ?`, stream[:], int64(p.Seq)).Scan(&held)
	switch {
	case err == nil && !bytes.Equal(held, p.Receipt):
		return fmt.Errorf("%w: stream %s: the relay signed two different receipts for batch %d (a forked stream)", ErrHistory, stream, p.Seq)
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("read receipts: %w", err)
	}
	var prevRaw []byte
	err = d.db().QueryRow(`SELECT raw FROM local_receipts WHERE stream = ? AND seq = ?`, stream[:], int64(p.Seq)-1).Scan(&prevRaw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read receipts: %w", err)
	}
	prev, err := syncproto.UnmarshalReceipt(prevRaw)
	if err != nil {
		return nil // kept before, checked then
	}
	if prev.ReceivedMS > rc.ReceivedMS+uint64(MaxClockSkew.Milliseconds()) {
		return fmt.Errorf("%w: stream %s: the relay's receipt for batch %d is dated %s before the one for batch %d", ErrHistory, stream, p.Seq,
			time.Duration(prev.ReceivedMS-rc.ReceivedMS)*time.Millisecond, p.Seq-1)
	}
	return nil
}

// lacksDeltas reports whether any delta of b is missing from the replica.
func (d *Device) lacksDeltas(b *syncproto.Batch) (bool, error) {
	for _, sd := range b.Deltas {
		var n int
		if err := d.db().QueryRow(`SELECT COUNT(*) FROM deltas WHERE stream = ? AND id = ?`, b.Stream[:], sd.ID[:]).Scan(&n); err != nil {
			return false, fmt.Errorf("read deltas: %w", err)
		}
		if n == 0 {
			return true, nil
		}
	}
	return false, nil
}

// voidedDevice reports whether dev was enrolled only by chain statements
// that a compromised-since revocation voided.
func (d *Device) voidedDevice(dev syncproto.DeviceID) bool {
	for pos := 0; pos < d.chain.Len(); pos++ {
		var enrolled syncproto.DeviceID
		switch b := d.chain.Statement(syncproto.ChainPos(pos)).Body.(type) {
		case *syncproto.DeviceEnrolled:
			enrolled = b.Device
		case *syncproto.CoordinatorDelegated:
			enrolled = b.Device
		default:
			continue
		}
		if enrolled == dev && d.chain.IsVoid(syncproto.ChainPos(pos)) {
			return true
		}
	}
	return false
}

// MaxClockSkew is how far a delta's clock may run ahead of the relay's
// receipt time.
const MaxClockSkew = 10 * time.Minute

// ErrHistory means the relay's history of a stream is inconsistent with
// what the authors signed: a withheld, reordered or forked batch.
var ErrHistory = errors.New("the relay's history is inconsistent")

// acceptAuthor records a batch as the author's latest and moves the cursor.
func (d *Device) acceptAuthor(stream syncproto.StreamID, b *syncproto.Batch, h syncproto.Hash, p transport.Pulled) error {
	if b.Author != d.pc.device {
		if err := d.setAuthorState(stream, b.Author, b.Counter, h); err != nil {
			return err
		}
	}
	return d.advanceCursor(stream, p)
}

func (d *Device) advanceCursor(stream syncproto.StreamID, p transport.Pulled) error {
	if str := d.chain.State().Streams[stream]; str != nil && str.Kind == syncproto.StreamAudit {
		if err := d.linkAudit(p); err != nil {
			return err
		}
	}
	if _, err := d.db().Exec(`INSERT OR REPLACE INTO local_cursor (stream, seq) VALUES (?, ?)`, stream[:], int64(p.Seq)); err != nil {
		return err
	}
	if _, err := d.db().Exec(`INSERT OR REPLACE INTO local_receipts (stream, seq, raw) VALUES (?, ?, ?)`, stream[:], int64(p.Seq), p.Receipt); err != nil {
		return err
	}
	d.dirty = true
	return nil
}

// noticeExpiredEnvelopes lists sealed envelopes older than the org's
// envelope expiry, for re-sealing. An expired envelope stays releasable.
func (d *Device) noticeExpiredEnvelopes() {
	limit := time.Duration(d.Settings().EnvelopeExpiryDays) * 24 * time.Hour
	now := d.opts.now()
	for id, env := range d.chain.State().Envelopes {
		sealed := time.UnixMilli(int64(env.SealedMS))
		if !env.Released && now.Sub(sealed) > limit {
			d.opts.notice("alarm envelope %s was sealed %s, more than %d days ago: re-seal it (fristed envelope seal)",
				id, sealed.UTC().Format("2006-01-02"), d.Settings().EnvelopeExpiryDays)
		}
	}
}
