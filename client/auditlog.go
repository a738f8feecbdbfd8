package client

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/fristed/fristed/client/transport"
	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// The audit log's integrity (see syncproto/audit.go for the format).
//
// Order: one log order, the relay's sequence numbers of the audit
// stream's batches. Per-author chains (each batch's counter and previous
// hash) already exist and catch a withheld batch of one author, but not
// the newest batches of the log as a whole, and a per-author head would
// need one checkpoint per device; a single order gives one link that a
// single signed checkpoint commits to. The relay cannot rewrite that order
// unseen: every coordinator laptop keeps its own copy of the links
// (local_audit, in its encrypted replica) and the admin chain carries the
// signed checkpoints.

// epochRecipients returns whom an audit entry under epoch ep is sealed
// to: the epoch's audit recipient once a signed statement named it, else
// the box recipients of the epoch's devices.
func (d *Device) epochRecipients(ep *syncproto.EpochInfo) ([]fcrypto.BoxRecipient, error) {
	if ep.AuditRecipient != "" {
		r, err := fcrypto.ParseBoxRecipient(ep.AuditRecipient)
		if err != nil {
			return nil, fmt.Errorf("audit log: epoch %d recipient: %w", ep.Epoch, err)
		}
		return []fcrypto.BoxRecipient{r}, nil
	}
	st := d.chain.State()
	out := make([]fcrypto.BoxRecipient, 0, len(ep.Devices))
	for _, id := range ep.Devices {
		info := st.Devices[id]
		if info == nil {
			return nil, fmt.Errorf("audit log: unknown device %s in epoch %d", id, ep.Epoch)
		}
		r, err := fcrypto.ParseBoxRecipient(info.Box)
		if err != nil {
			return nil, fmt.Errorf("audit log: device %s: %w", id, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// auditIdentity returns the identity of an audit epoch, derived from its
// key, if this device holds the key.
func (d *Device) auditIdentity(stream syncproto.StreamID, e syncproto.Epoch) (*fcrypto.BoxIdentity, bool) {
	k, err := d.epochKey(stream, e)
	if err != nil {
		return nil, false
	}
	defer k.Destroy()
	id, err := syncproto.AuditIdentity(k, d.pc.tenant, stream, e)
	return id, err == nil
}

// holdsAuditKey reports whether b was sealed to its epoch's audit
// recipient and this device holds the epoch key to open it.
func (d *Device) holdsAuditKey(stream syncproto.StreamID, ep *syncproto.EpochInfo, b *syncproto.Batch) bool {
	if !sealedToRecipient(ep, b) {
		return false
	}
	_, err := d.epochKey(stream, b.Epoch)
	return err == nil
}

// sealedToRecipient reports whether an audit batch was sealed to its
// epoch's audit recipient: written under a chain head that already held
// the statement naming it.
func sealedToRecipient(ep *syncproto.EpochInfo, b *syncproto.Batch) bool {
	return ep.AuditRecipient != "" && b.ChainHead.Pos >= ep.AuditRecipientAt
}

// keyHeldElsewhere reports whether an active device other than this one
// holds an epoch's key, so it will share it (shareHistory).
func (d *Device) keyHeldElsewhere(ep *syncproto.EpochInfo) bool {
	st := d.chain.State()
	for _, id := range ep.Devices {
		if id != d.pc.device && st.Devices[id].Active() {
			return true
		}
	}
	return false
}

// nameAuditRecipient signs the statement naming the current audit epoch's
// recipient when none names it yet and this coordinator laptop holds the
// epoch key (right after starting the epoch, and at each sync to heal an
// interrupted start or an org from before audit recipients).
func (d *Device) nameAuditRecipient(ctx context.Context) error {
	as, ok := d.streamOfKind(syncproto.StreamAudit)
	if !ok || d.cfg.Role != RoleCoordinator {
		return nil
	}
	cur := d.chain.State().Streams[as].Current()
	if cur == nil || cur.AuditRecipient != "" {
		return nil
	}
	id, ok := d.auditIdentity(as, cur.Epoch)
	if !ok {
		return nil // another coordinator laptop started it and will name it
	}
	_, err := d.postStatement(ctx, &syncproto.AuditRecipient{Stream: as, Epoch: cur.Epoch, Recipient: id.Recipient().String()}, nil)
	if err != nil && syncproto.CodeOf(err) == syncproto.CodeInvalidStatement {
		// Another coordinator laptop named it, or started a newer epoch,
		// meanwhile.
		return d.refreshChain(ctx)
	}
	return err
}

// openPulled opens another device's batch: an audit batch with this
// device's box identity if its epoch names this device, with the epoch's
// audit identity if it was sealed to it and this device holds the epoch
// key (a coordinator laptop enrolled later is given the older keys); one
// sealed to other laptops before this one existed is verified but cannot
// be read. Any other batch opens with the epoch key.
func (d *Device) openPulled(stream syncproto.StreamID, b *syncproto.Batch, author *syncproto.DeviceInfo) ([]*syncproto.Delta, error) {
	str := d.chain.State().Streams[stream]
	if str != nil && str.Kind == syncproto.StreamAudit {
		ep := str.Epoch(b.Epoch)
		switch {
		case ep == nil:
			return nil, b.Verify(author.SignPub)
		case sealedToRecipient(ep, b) && !ep.Has(d.pc.device):
			if _, err := d.epochKey(stream, b.Epoch); err != nil {
				if d.keyHeldElsewhere(ep) {
					return nil, err // ErrNoKey: the stream waits for the older keys
				}
				return nil, b.Verify(author.SignPub) // lost with the laptops that held it
			}
		case !ep.Has(d.pc.device):
			return nil, b.Verify(author.SignPub)
		}
		deltas, err := d.openAudit(stream, b, author.SignPub)
		if err != nil {
			// Signed by its author but sealed so that this laptop cannot
			// open it (a faulty author, or a recipient a stolen
			// coordinator laptop named): the log goes on, and audit
			// verify names the entry.
			if verr := b.Verify(author.SignPub); verr != nil {
				return nil, verr
			}
			d.opts.notice("an audit entry by %s does not open on this laptop: run fristed audit verify", d.deviceLabel(b.Author.String()))
			return nil, nil
		}
		return deltas, nil
	}
	key, err := d.epochKey(stream, b.Epoch)
	if err != nil {
		return nil, err
	}
	return syncproto.OpenBatch(b, key, author.SignPub)
}

// openAudit opens an audit batch sealed to this device or to its epoch's
// audit identity. An entry written before audit entries were sealed to
// the coordinator laptops was sealed under the epoch key, which every
// device then held: it opens with that key. Under an epoch of coordinators
// only, no other device holds the key, so the fallback opens nothing a
// worker could have written.
func (d *Device) openAudit(stream syncproto.StreamID, b *syncproto.Batch, author fcrypto.PublicKey) ([]*syncproto.Delta, error) {
	if id, ok := d.auditIdentity(stream, b.Epoch); ok {
		if deltas, err := syncproto.OpenAuditBatch(b, id, author); err == nil {
			return deltas, nil
		}
	}
	deltas, err := syncproto.OpenAuditBatch(b, d.kf.Box, author)
	if err == nil {
		return deltas, nil
	}
	if key, kerr := d.epochKey(stream, b.Epoch); kerr == nil {
		if old, oerr := syncproto.OpenBatch(b, key, author); oerr == nil {
			return old, nil
		}
	}
	return nil, err
}

// auditLink is this device's copy of one link of the audit log.
type auditLink struct {
	seq     syncproto.Seq
	batch   syncproto.Hash
	author  syncproto.DeviceID
	created time.Time
	link    syncproto.Hash
}

func (d *Device) auditLinks() (map[syncproto.Seq]auditLink, syncproto.Seq, error) {
	rows, err := d.db().Query(`SELECT seq, batch, author, created_ms, link FROM local_audit ORDER BY seq`)
	if err != nil {
		return nil, 0, fmt.Errorf("read audit links: %w", err)
	}
	defer rows.Close()
	out := map[syncproto.Seq]auditLink{}
	var last syncproto.Seq
	for rows.Next() {
		var l auditLink
		var seq, ms int64
		var bh, au, lk []byte
		if err := rows.Scan(&seq, &bh, &au, &ms, &lk); err != nil {
			return nil, 0, fmt.Errorf("read audit links: %w", err)
		}
		l.seq, l.created = syncproto.Seq(seq), time.UnixMilli(ms).UTC()
		copy(l.batch[:], bh)
		copy(l.author[:], au)
		copy(l.link[:], lk)
		out[l.seq] = l
		last = l.seq
	}
	return out, last, rows.Err()
}

// linkAudit extends this device's copy of the audit log's links with a
// pulled batch whose receipt was checked, and compares the link with the
// newest signed checkpoint when it reaches it.
func (d *Device) linkAudit(p transport.Pulled) error {
	rc, err := syncproto.UnmarshalReceipt(p.Receipt)
	if err != nil {
		return fmt.Errorf("audit entry %d: receipt: %w", p.Seq, err)
	}
	b, err := syncproto.UnmarshalBatch(p.Raw)
	if err != nil {
		return fmt.Errorf("audit entry %d: %w", p.Seq, err)
	}
	var prev syncproto.Hash
	if p.Seq > 1 {
		var lk []byte
		err := d.db().QueryRow(`SELECT link FROM local_audit WHERE seq = ?`, int64(p.Seq-1)).Scan(&lk)
		if errors.Is(err, sql.ErrNoRows) {
			// This laptop did not link the entries before (it started
			// the stream past them): it keeps no copy of the log and
			// leaves checkpoints to the coordinator laptops that do.
			return nil
		}
		if err != nil {
			return fmt.Errorf("read audit links: %w", err)
		}
		copy(prev[:], lk)
	}
	link := syncproto.AuditLink(prev, p.Seq, rc.Batch)
	if cp := d.chain.State().Checkpoint; cp != nil && cp.Seq == p.Seq && cp.Head != link {
		return fmt.Errorf("%w: audit entry %d does not match the signed audit checkpoint", ErrHistory, p.Seq)
	}
	if _, err := d.db().Exec(`INSERT OR REPLACE INTO local_audit (seq, batch, author, created_ms, link) VALUES (?, ?, ?, ?, ?)`,
		int64(p.Seq), rc.Batch[:], b.Author[:], int64(b.CreatedMS), link[:]); err != nil {
		return fmt.Errorf("write audit link: %w", err)
	}
	d.dirty = true
	return nil
}

// checkAuditReceipts catches the deletion of this laptop's newest audit
// entries on a laptop that does not read the audit stream (a worker's):
// the relay signed a receipt for each entry it accepted, with its
// position, and the stream's head must not be below the highest of them.
// Entries a coordinator laptop has pulled are covered by its copy and the
// signed checkpoints; this covers those it has not pulled yet. The
// receipts stay in the replica, so the laptop goes on reporting until the
// relay shows the entries again. (A coordinator laptop reads the stream:
// pull makes the same comparison for it.)
func (d *Device) checkAuditReceipts(ctx context.Context) error {
	as, ok := d.streamOfKind(syncproto.StreamAudit)
	if !ok || slices.Contains(d.readableStreams(), as) {
		return nil
	}
	var maxReceipt int64
	if err := d.db().QueryRow(`SELECT COALESCE(MAX(seq), 0) FROM local_receipts WHERE stream = ?`, as[:]).Scan(&maxReceipt); err != nil {
		return fmt.Errorf("read audit receipts: %w", err)
	}
	if maxReceipt == 0 {
		return nil
	}
	c, err := d.client()
	if err != nil {
		return err
	}
	h, err := c.StreamHead(ctx, as)
	if err != nil {
		return err
	}
	if int64(h.Head) < maxReceipt {
		return fmt.Errorf("%w: the relay shows %d audit log entries but signed a receipt for this laptop's entry %d: entries were deleted",
			ErrHistory, h.Head, maxReceipt)
	}
	return nil
}

// checkpointAudit signs a checkpoint of the audit log into the admin chain
// when this coordinator laptop has linked entries past the newest one.
func (d *Device) checkpointAudit(ctx context.Context) error {
	as, ok := d.streamOfKind(syncproto.StreamAudit)
	if !ok {
		return nil
	}
	links, last, err := d.auditLinks()
	if err != nil || last == 0 || len(links) != int(last) {
		return err // nothing linked, or not from the first entry on
	}
	if cp := d.chain.State().Checkpoint; cp != nil && cp.Seq >= last {
		return nil
	}
	_, err = d.postStatement(ctx, &syncproto.AuditCheckpoint{Stream: as, Seq: last, Head: links[last].link}, nil)
	if err != nil && syncproto.CodeOf(err) == syncproto.CodeInvalidStatement {
		// Another coordinator laptop may have checkpointed further
		// meanwhile: then there is nothing to add.
		if rerr := d.refreshChain(ctx); rerr != nil {
			return rerr
		}
		if cp := d.chain.State().Checkpoint; cp != nil && cp.Seq >= last {
			return nil
		}
	}
	return err
}

// Kinds of audit log damage that AuditVerify names.
const (
	AuditEdited    = "edited"
	AuditMissing   = "missing"
	AuditReordered = "out of order"
	AuditTruncated = "newest entries deleted"
	AuditChain     = "admin chain" // the relay's chain was rolled back or forked; no entry named
)

// AuditProblem is the first bad entry AuditVerify found. Seq is the
// entry's position in the log (the relay's sequence number of its batch).
type AuditProblem struct {
	Seq    syncproto.Seq
	Author string    // who recorded it, where known
	At     time.Time // when it was recorded, where known
	Kind   string    // AuditEdited, AuditMissing, AuditReordered, AuditTruncated, AuditChain
	Detail string
}

func (p *AuditProblem) Error() string {
	if p.Seq == 0 {
		return fmt.Sprintf("audit log damaged: %s: %s", p.Kind, p.Detail)
	}
	who := ""
	switch {
	case p.Author != "" && !p.At.IsZero():
		who = fmt.Sprintf(" (recorded by %s at %s)", p.Author, p.At.UTC().Format("2006-01-02 15:04:05 UTC"))
	case p.Author != "":
		who = fmt.Sprintf(" (recorded by %s)", p.Author)
	}
	return fmt.Sprintf("audit log damaged: entry %d%s: %s: %s", p.Seq, who, p.Kind, p.Detail)
}

// AuditReport is what AuditVerify checked.
type AuditReport struct {
	Entries       int           // entries (batches) on the relay, all checked
	Events        int           // access events this laptop could open
	Checkpoint    syncproto.Seq // newest signed checkpoint: entries it covers
	CheckpointPos syncproto.ChainPos
	Problem       *AuditProblem // nil when the log is intact
}

// Summary is the one-line result for an intact log.
func (r *AuditReport) Summary() string {
	cp := "no signed checkpoint yet"
	if r.Checkpoint > 0 {
		cp = fmt.Sprintf("signed checkpoint at chain position %d covers entries 1-%d", r.CheckpointPos, r.Checkpoint)
	}
	return fmt.Sprintf("audit log intact: %s (%s readable here), relay and this laptop agree; %s",
		plural(r.Entries, "entry", "entries"), plural(r.Events, "access event", "access events"), cp)
}

type auditCheckpoint struct {
	pos  syncproto.ChainPos
	seq  syncproto.Seq
	head syncproto.Hash
}

// AuditVerify checks the audit log end to end: the admin chain from the
// relay against this laptop's (fork or rollback), then every audit entry
// the relay holds, in order - its decoding, the relay's signed receipt,
// the author's signature and per-author chain, the entry's opening where
// this laptop is a recipient, the log's links - against this laptop's own
// copy of the links and against every signed checkpoint. It returns the
// report with the first bad entry in Problem; an error means the check
// could not be made (relay unreachable, not a coordinator).
func (d *Device) AuditVerify(ctx context.Context) (*AuditReport, error) {
	if err := d.requireCoordinator(); err != nil {
		return nil, err
	}
	// A relay that dropped or rewrote admin statements (checkpoints among
	// them) is refused by refreshChain; the check goes on against this
	// laptop's own chain, so the report can still name the first entry
	// that went with them.
	chainErr := d.refreshChain(ctx)
	if chainErr != nil && !errors.Is(chainErr, syncproto.ErrRollback) && !errors.Is(chainErr, syncproto.ErrFork) {
		return nil, chainErr
	}
	rep := &AuditReport{}
	defer func() {
		if chainErr != nil && rep.Problem == nil {
			rep.Problem = &AuditProblem{Kind: AuditChain, Detail: chainErr.Error()}
		}
	}()
	as, ok := d.streamOfKind(syncproto.StreamAudit)
	if !ok {
		return rep, nil
	}
	local, localLast, err := d.auditLinks()
	if err != nil {
		return nil, err
	}
	byBatch := make(map[syncproto.Hash]syncproto.Seq, len(local))
	for seq, l := range local {
		byBatch[l.batch] = seq
	}
	var cps []auditCheckpoint
	for pos := 0; pos < d.chain.Len(); pos++ {
		st := d.chain.Statement(syncproto.ChainPos(pos))
		if cp, ok := st.Body.(*syncproto.AuditCheckpoint); ok && cp.Stream == as && !d.chain.IsVoid(st.Pos) {
			cps = append(cps, auditCheckpoint{pos: st.Pos, seq: cp.Seq, head: cp.Head})
		}
	}
	if n := len(cps); n > 0 {
		rep.Checkpoint, rep.CheckpointPos = cps[n-1].seq, cps[n-1].pos
	}
	c, err := d.client()
	if err != nil {
		return nil, err
	}
	var pulled []transport.Pulled
	for after := syncproto.Seq(0); ; {
		page, _, err := c.PullBatches(ctx, as, after, pullPage, 0)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			break
		}
		pulled = append(pulled, page...)
		after = page[len(page)-1].Seq
	}
	rep.Entries = len(pulled)

	st := d.chain.State()
	str := st.Streams[as]
	fromLocal := func(seq syncproto.Seq, kind, detail string, args ...any) *AuditProblem {
		p := &AuditProblem{Seq: seq, Kind: kind, Detail: fmt.Sprintf(detail, args...)}
		if l, ok := local[seq]; ok {
			p.Author, p.At = d.deviceLabel(l.author.String()), l.created
		}
		return p
	}
	type authorHead struct {
		n uint64
		h syncproto.Hash
	}
	authors := map[syncproto.DeviceID]authorHead{}
	var link syncproto.Hash
	var goodUpTo syncproto.Seq // the newest checkpoint that held
	expect := syncproto.Seq(1)
	for _, p := range pulled {
		if p.Seq > expect {
			rep.Problem = fromLocal(expect, AuditMissing, "the relay has no entry %d (its next is %d)", expect, p.Seq)
			return rep, nil
		}
		if p.Seq < expect {
			rep.Problem = fromLocal(p.Seq, AuditReordered, "the relay returned entry %d again after entry %d", p.Seq, expect-1)
			return rep, nil
		}
		b, err := syncproto.UnmarshalBatch(p.Raw)
		if err != nil {
			rep.Problem = fromLocal(p.Seq, AuditEdited, "its bytes no longer decode (%v)", err)
			return rep, nil
		}
		h, _ := b.Hash()
		bad := func(kind, detail string, args ...any) *AuditProblem {
			pr := &AuditProblem{Seq: p.Seq, Kind: kind, Detail: fmt.Sprintf(detail, args...),
				Author: d.deviceLabel(b.Author.String()), At: time.UnixMilli(int64(b.CreatedMS)).UTC()}
			if l, ok := local[p.Seq]; ok {
				// This laptop's copy says who recorded the entry that
				// belongs here, whatever the relay now shows.
				pr.Author, pr.At = d.deviceLabel(l.author.String()), l.created
			}
			return pr
		}
		if other, ok := byBatch[h]; ok && other != p.Seq {
			rep.Problem = bad(AuditReordered, "the relay shows here the entry that was number %d", other)
			return rep, nil
		}
		rc, err := syncproto.UnmarshalReceipt(p.Receipt)
		if err != nil || rc.Verify(d.pc.relayKey) != nil || rc.Stream != as || b.Stream != as || b.Tenant != d.pc.tenant {
			rep.Problem = bad(AuditEdited, "the relay's signed receipt does not verify")
			return rep, nil
		}
		if rc.Seq != p.Seq {
			rep.Problem = bad(AuditReordered, "the relay signed it as entry %d", rc.Seq)
			return rep, nil
		}
		if rc.Batch != h {
			rep.Problem = bad(AuditEdited, "it does not match the batch the relay signed a receipt for")
			return rep, nil
		}
		if l, ok := local[p.Seq]; ok && l.batch != h {
			rep.Problem = bad(AuditEdited, "it differs from this laptop's copy")
			return rep, nil
		}
		var authorKey fcrypto.PublicKey
		author := st.Devices[b.Author]
		if author != nil {
			authorKey = author.SignPub
		} else if k, ok := d.voidedDeviceKey(b.Author); ok {
			// A laptop whose enrolment a compromised-since revocation
			// voided: its entries are void (sync skips them) but still
			// part of the log, and still signed.
			authorKey = k
		} else {
			rep.Problem = bad(AuditEdited, "its author is not a device of this org")
			return rep, nil
		}
		if err := b.Verify(authorKey); err != nil {
			rep.Problem = bad(AuditEdited, "the author's signature does not verify")
			return rep, nil
		}
		ah := authors[b.Author]
		switch {
		case b.Counter <= ah.n:
			rep.Problem = bad(AuditReordered, "it is the author's entry %d, after its entry %d", b.Counter, ah.n)
			return rep, nil
		case b.Counter != ah.n+1 || b.Prev != ah.h:
			rep.Problem = bad(AuditMissing, "the author's entry %d before it is missing", ah.n+1)
			return rep, nil
		}
		authors[b.Author] = authorHead{b.Counter, h}
		if ep := str.Epoch(b.Epoch); author != nil && ep != nil && (ep.Has(d.pc.device) || d.holdsAuditKey(as, ep, b)) {
			deltas, err := d.openAudit(as, b, authorKey)
			if err != nil {
				// Only that it failed: age's message may quote the bytes.
				rep.Problem = bad(AuditEdited, "it does not open on this laptop, which holds the key it is sealed to")
				return rep, nil
			}
			rep.Events += len(deltas)
		}
		link = syncproto.AuditLink(link, p.Seq, h)
		for _, cp := range cps {
			if cp.seq != p.Seq {
				continue
			}
			if cp.head != link {
				// Without a copy of its own for these entries (a laptop
				// that became coordinator later), this laptop can only
				// say which entries the failed checkpoint covers beyond
				// the last one that held.
				if goodUpTo+1 == p.Seq {
					rep.Problem = fromLocal(p.Seq, AuditEdited, "it does not match the checkpoint signed at chain position %d", cp.pos)
				} else {
					rep.Problem = fromLocal(goodUpTo+1, AuditEdited,
						"entries %d to %d do not match the checkpoint signed at chain position %d: one of them was edited, removed or moved",
						goodUpTo+1, p.Seq, cp.pos)
				}
				return rep, nil
			}
			goodUpTo = p.Seq
		}
		expect++
	}
	last := expect - 1
	if localLast > last {
		rep.Problem = fromLocal(last+1, AuditTruncated, "this laptop saw %d entries, the relay now has %d", localLast, last)
		return rep, nil
	}
	if rep.Checkpoint > last {
		rep.Problem = fromLocal(last+1, AuditTruncated, "the checkpoint signed at chain position %d covers %d entries, the relay now has %d",
			rep.CheckpointPos, rep.Checkpoint, last)
		return rep, nil
	}
	return rep, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// voidedDeviceKey returns the signing key that a voided enrolment gave a
// device (see voidedDevice).
func (d *Device) voidedDeviceKey(dev syncproto.DeviceID) (fcrypto.PublicKey, bool) {
	for pos := 0; pos < d.chain.Len(); pos++ {
		if !d.chain.IsVoid(syncproto.ChainPos(pos)) {
			continue
		}
		switch b := d.chain.Statement(syncproto.ChainPos(pos)).Body.(type) {
		case *syncproto.DeviceEnrolled:
			if b.Device == dev {
				return b.SignPub, true
			}
		case *syncproto.CoordinatorDelegated:
			if b.Device == dev {
				return b.SignPub, true
			}
		}
	}
	return fcrypto.PublicKey{}, false
}
