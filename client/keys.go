package client

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/fristed/fristed/client/transport"
	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// ErrNoKey means the device lacks the key for an epoch it needs.
var ErrNoKey = errors.New("no key for this epoch on this device")

func (d *Device) epochKey(stream syncproto.StreamID, epoch syncproto.Epoch) (*fcrypto.Key, error) {
	var b []byte
	err := d.db().QueryRow(`SELECT key FROM local_keys WHERE stream = ? AND epoch = ?`, stream[:], int64(epoch)).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		if k, perr := d.pendingKey(stream, epoch); perr != nil || k != nil {
			return k, perr
		}
		return nil, fmt.Errorf("%w (stream %s, epoch %d)", ErrNoKey, stream, epoch)
	}
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	return fcrypto.KeyFromBytes(b)
}

func (d *Device) storeKey(stream syncproto.StreamID, epoch syncproto.Epoch, k *fcrypto.Key) error {
	if _, err := d.db().Exec(`INSERT OR REPLACE INTO local_keys (stream, epoch, key) VALUES (?, ?, ?)`,
		stream[:], int64(epoch), k.Bytes()); err != nil {
		return fmt.Errorf("store key: %w", err)
	}
	d.dirty = true
	return nil
}

// fetchKeys takes every wrapped key the relay holds for this device,
// accepts each only if it matches the commitment in the coordinator-signed
// epoch statement, stores it, saves the replica, and then tells the relay,
// in one request, to destroy its copies of the keys accepted.
func (d *Device) fetchKeys(ctx context.Context) error {
	c, err := d.client()
	if err != nil {
		return err
	}
	raws, err := c.Keys(ctx)
	if err != nil {
		return err
	}
	st := d.chain.State()
	var voids map[syncproto.StreamID][]syncproto.EpochInfo
	if len(raws) > 0 {
		voids = d.chain.VoidEpochs()
	}
	var held []transport.KeyRef
	for _, raw := range raws {
		wk, err := syncproto.UnmarshalWrappedKey(raw)
		if err != nil {
			d.opts.notice("refused a malformed wrapped key from the relay")
			continue
		}
		str := st.Streams[wk.Stream]
		var ep *syncproto.EpochInfo
		if str != nil {
			ep = str.Epoch(wk.Epoch)
			if ep == nil {
				ep = voidEpochOf(voids, wk.Stream, wk.Epoch)
			}
		}
		if wk.Tenant != d.pc.tenant || wk.Device != d.pc.device || ep == nil {
			d.opts.notice("refused a wrapped key for an epoch the chain does not know")
			continue
		}
		k, err := fcrypto.UnwrapKey(wk.Wrapped, syncproto.EpochKeyContext(d.pc.tenant, wk.Stream, wk.Epoch),
			ep.Commitment, d.kf.Box.Identity())
		if err != nil {
			// A key that does not match its signed commitment was planted.
			d.opts.notice("refused a wrapped key for %s epoch %d: %v", wk.Stream, wk.Epoch, err)
			continue
		}
		if err := d.storeKey(wk.Stream, wk.Epoch, k); err != nil {
			return err
		}
		held = append(held, transport.KeyRef{Stream: wk.Stream, Epoch: wk.Epoch})
	}
	if len(held) == 0 {
		return nil
	}
	// The keys are on disk before the relay destroys its copies: a crash
	// after the acknowledgement must not lose them.
	if err := d.save(); err != nil {
		return err
	}
	// One acknowledgement for every key taken: the relay destroys the
	// copies and rotates its KEK once, not once per key.
	return c.AckKeys(ctx, held)
}

// voidEpochOf returns the epoch only a void statement gave stream, or nil.
// Its key may still open batches honest devices sealed under it before the
// revocation that voided it; it is accepted against the commitment that
// statement signed, and used for nothing else (nothing is sealed under an
// epoch the chain does not hold).
func voidEpochOf(voids map[syncproto.StreamID][]syncproto.EpochInfo, stream syncproto.StreamID, e syncproto.Epoch) *syncproto.EpochInfo {
	for i := range voids[stream] {
		if voids[stream][i].Epoch == e {
			return &voids[stream][i]
		}
	}
	return nil
}

// desiredDevices is who should hold a stream's key now: every coordinator
// device, and for a resident the devices of its assigned workers; the
// directory stream goes to every active device. The audit stream goes to
// the coordinator devices only: every device appends to it, sealing each
// entry to the current epoch's devices (syncproto.SealAuditBatch), but
// only they read it.
func desiredDevices(st *syncproto.State, stream syncproto.StreamID) []syncproto.DeviceID {
	str := st.Streams[stream]
	if str == nil {
		return nil
	}
	devs := st.ActiveCoordinators()
	switch str.Kind {
	case syncproto.StreamAudit:
	case syncproto.StreamResident:
		for w := range str.Assigned {
			devs = append(devs, st.WorkerDevices(w)...)
		}
	default:
		for id, dev := range st.Devices {
			if dev.Active() {
				devs = append(devs, id)
			}
		}
	}
	return syncproto.SortDevices(devs)
}

// startEpoch gives a stream a new key, wrapped to devices: the signed
// statement carries a commitment to it; each device gets its own wrapped
// copy through the relay (shareHistory), and devices that were not in
// older epochs get those keys too, so they can read the history.
func (d *Device) startEpoch(ctx context.Context, stream syncproto.StreamID, devices []syncproto.DeviceID) (syncproto.Epoch, error) {
	devices = syncproto.SortDevices(devices)
	for attempt := 0; ; attempt++ {
		if d.chain.State().Streams[stream] == nil {
			return 0, fmt.Errorf("start epoch: unknown stream %s", stream)
		}
		// Epoch numbers are never reused, not even those of epochs a
		// compromised-since revocation voided: batches sealed under a
		// voided key must not be mistaken for the new one's.
		next := d.maxEpochEver(stream) + 1
		key, err := fcrypto.NewKey()
		if err != nil {
			return 0, err
		}
		commitment := key.Commitment(syncproto.EpochKeyContext(d.pc.tenant, stream, next))
		// The key is kept before the statement leaves: if the answer is
		// lost but the statement lands, the epoch's key is still here
		// (epochKey finds it by its commitment).
		if err := d.keepPendingKey(stream, commitment, key); err != nil {
			return 0, err
		}
		body := &syncproto.EpochStarted{Stream: stream, Epoch: next, Devices: devices, Commitment: commitment}
		s, err := d.postStatement(ctx, body, nil)
		var we *syncproto.Error
		if err != nil && attempt < 2 && errors.As(err, &we) && we.Code == syncproto.CodeInvalidStatement {
			// Another epoch of the stream landed first, perhaps this
			// device's own whose answer was lost: if it has these
			// devices, it is the epoch wanted; else start one after it.
			if rerr := d.refreshChain(ctx); rerr != nil {
				return 0, fmt.Errorf("start epoch: %w", rerr)
			}
			// The chain moved past the position that statement was
			// signed for: unless it is the one that landed, its key can
			// never be needed.
			if _, perr := d.pendingKey(stream, next); perr != nil {
				return 0, perr
			}
			if err := d.dropPendingKey(stream, commitment); err != nil {
				return 0, err
			}
			if cur := d.chain.State().Streams[stream].Current(); cur != nil && cur.Epoch >= next && sameDevices(cur.Devices, devices) {
				return cur.Epoch, d.finishEpoch(ctx, stream)
			}
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("start epoch: %w", err)
		}
		next = s.Body.(*syncproto.EpochStarted).Epoch
		if err := d.storeKey(stream, next, key); err != nil {
			return 0, err
		}
		if err := d.dropPendingKey(stream, commitment); err != nil {
			return 0, err
		}
		if err := d.finishEpoch(ctx, stream); err != nil {
			return 0, err
		}
		return next, nil
	}
}

// finishEpoch sends the new key, and older ones to devices new to the
// stream; an audit epoch also gets its recipient named.
func (d *Device) finishEpoch(ctx context.Context, stream syncproto.StreamID) error {
	if err := d.sendingKeys(ctx, func() error { return d.shareHistory(ctx, stream) }); err != nil {
		return err
	}
	if str := d.chain.State().Streams[stream]; str != nil && str.Kind == syncproto.StreamAudit {
		return d.nameAuditRecipient(ctx)
	}
	return nil
}

// keepPendingKey keeps a key made for an epoch statement not yet on the
// chain, under its commitment.
func (d *Device) keepPendingKey(stream syncproto.StreamID, commitment syncproto.Hash, k *fcrypto.Key) error {
	if _, err := d.db().Exec(`INSERT OR REPLACE INTO local_pending_keys (stream, commitment, key) VALUES (?, ?, ?)`,
		stream[:], commitment[:], k.Bytes()); err != nil {
		return fmt.Errorf("store key: %w", err)
	}
	d.dirty = true
	return nil
}

// pendingKey returns the key this device made for an epoch whose
// statement landed on the chain although the relay's answer never came
// back, and moves it to the keys; nil if there is none.
func (d *Device) pendingKey(stream syncproto.StreamID, epoch syncproto.Epoch) (*fcrypto.Key, error) {
	str := d.chain.State().Streams[stream]
	if str == nil || str.Epoch(epoch) == nil {
		return nil, nil
	}
	commitment := str.Epoch(epoch).Commitment
	var b []byte
	err := d.db().QueryRow(`SELECT key FROM local_pending_keys WHERE stream = ? AND commitment = ?`, stream[:], commitment[:]).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	k, err := fcrypto.KeyFromBytes(b)
	if err != nil {
		return nil, err
	}
	if k.Commitment(syncproto.EpochKeyContext(d.pc.tenant, stream, epoch)) != commitment {
		return nil, nil
	}
	if err := d.storeKey(stream, epoch, k); err != nil {
		return nil, err
	}
	return k, d.dropPendingKey(stream, commitment)
}

// dropPendingKey forgets a pending key: stored as the epoch's, or never
// to be needed.
func (d *Device) dropPendingKey(stream syncproto.StreamID, commitment syncproto.Hash) error {
	if _, err := d.db().Exec(`DELETE FROM local_pending_keys WHERE stream = ? AND commitment = ?`, stream[:], commitment[:]); err != nil {
		return fmt.Errorf("store key: %w", err)
	}
	d.dirty = true
	return nil
}

// shareHistory makes sure every device of a stream's current epoch was
// sent every epoch key it needs: the current one, and the older ones it
// was not part of (a device new to the stream, back after an
// unassignment, or a coordinator enrolled by recovery), so it can read
// the history. A device back after an unassignment gets every older key
// again, since it deleted the case and its keys when it was removed.
//
// What was sent is kept per device as the epoch up to which its keys are
// complete (local_keyed), and written only after every wrap of that
// device reached the relay: an admin action interrupted half-way (a key
// posted to some devices and not others) is finished by the next sync
// of any coordinator. A device that stayed in the stream since that
// epoch gets only the newer keys; a device this coordinator has no
// record of gets every key once more (another coordinator may have sent
// them; a duplicate costs one wrap and is stored idempotently).
func (d *Device) shareHistory(ctx context.Context, stream syncproto.StreamID) error {
	return d.shareHistoryWith(ctx, stream, d.chain.VoidEpochs())
}

func (d *Device) shareHistoryWith(ctx context.Context, stream syncproto.StreamID, voids map[syncproto.StreamID][]syncproto.EpochInfo) error {
	str := d.chain.State().Streams[stream]
	if str == nil || str.Purged || str.Current() == nil {
		return nil
	}
	cur := str.Current()
	for _, dv := range cur.Devices {
		if dv == d.pc.device {
			continue
		}
		done := int64(-1)
		err := d.db().QueryRow(`SELECT epoch FROM local_keyed WHERE stream = ? AND device = ?`, stream[:], dv[:]).Scan(&done)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read shared keys: %w", err)
		}
		if done != int64(cur.Epoch) {
			from := 0
			for i := range str.Epochs {
				if int64(str.Epochs[i].Epoch) == done && continuous(str.Epochs[i:], dv) {
					from = i + 1
				}
			}
			for _, e := range str.Epochs[from:] {
				if err := d.shareKey(ctx, stream, e, dv); err != nil {
					return err
				}
			}
			dv, epoch := dv, cur.Epoch
			if err := d.afterKeysSent(ctx, func() error {
				if _, err := d.db().Exec(`INSERT OR REPLACE INTO local_keyed (stream, device, epoch) VALUES (?, ?, ?)`,
					stream[:], dv[:], int64(epoch)); err != nil {
					return fmt.Errorf("record shared keys: %w", err)
				}
				d.dirty = true
				return nil
			}); err != nil {
				return err
			}
		}
		// The epochs only void statements started, once per device that
		// was not in them: an honest device may have sealed batches under
		// one before the compromised-since revocation that voided it, and
		// whoever reads the case now is entitled to them. The key was
		// known to the compromised device, so sharing it reveals nothing
		// new.
		for _, e := range voids[stream] {
			if e.Has(dv) {
				continue
			}
			var n int
			if err := d.db().QueryRow(`SELECT COUNT(*) FROM local_shared WHERE stream = ? AND epoch = ? AND device = ?`,
				stream[:], int64(e.Epoch), dv[:]).Scan(&n); err != nil {
				return fmt.Errorf("read shared keys: %w", err)
			}
			if n > 0 {
				continue
			}
			if err := d.shareKey(ctx, stream, e, dv); err != nil {
				return err
			}
			dv, epoch := dv, e.Epoch
			if err := d.afterKeysSent(ctx, func() error {
				if _, err := d.db().Exec(`INSERT OR IGNORE INTO local_shared (stream, epoch, device) VALUES (?, ?, ?)`,
					stream[:], int64(epoch), dv[:]); err != nil {
					return fmt.Errorf("record shared key: %w", err)
				}
				d.dirty = true
				return nil
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// shareKey wraps the key of epoch e to dev, if this coordinator holds it
// and it is the key the epoch committed to.
func (d *Device) shareKey(ctx context.Context, stream syncproto.StreamID, e syncproto.EpochInfo, dev syncproto.DeviceID) error {
	k, err := d.epochKey(stream, e.Epoch)
	if err != nil {
		return nil // an epoch this coordinator never held
	}
	if k.Commitment(syncproto.EpochKeyContext(d.pc.tenant, stream, e.Epoch)) != e.Commitment {
		return nil // not the key that epoch committed to: never pass it on
	}
	return d.wrapTo(ctx, stream, e.Epoch, k, dev)
}

// continuous reports whether dev is in every one of epochs.
func continuous(epochs []syncproto.EpochInfo, dev syncproto.DeviceID) bool {
	for i := range epochs {
		if !epochs[i].Has(dev) {
			return false
		}
	}
	return true
}

// shareAllHistory runs shareHistory on every stream (coordinators, at
// sync), sending the keys in batches.
func (d *Device) shareAllHistory(ctx context.Context) error {
	return d.sendingKeys(ctx, func() error {
		voids := d.chain.VoidEpochs()
		for _, id := range sortedStreamIDs(d.chain.State().Streams) {
			if err := d.shareHistoryWith(ctx, id, voids); err != nil {
				return err
			}
		}
		return nil
	})
}

// keyQueue holds wrapped keys on their way to the relay, and what to
// record once they have reached it.
type keyQueue struct {
	raws  [][]byte
	after []func() error // each runs once every key queued before it is stored
}

// sendingKeys runs fn with the wrapped keys it makes queued, and sends
// them in batches of up to transport.MaxKeyBatch: an approval or a
// revocation that re-keys many streams costs a few requests, not one per
// key. Inside an outer sendingKeys, fn's keys join the outer queue. A
// record of keys sent (local_keyed, local_shared) is written only after
// its keys reached the relay, so an action interrupted before that is
// finished by the next sync. The keys queued are sent even if fn fails
// half-way.
func (d *Device) sendingKeys(ctx context.Context, fn func() error) error {
	if d.keyq != nil {
		return fn()
	}
	q := &keyQueue{}
	d.keyq = q
	err := fn()
	d.keyq = nil
	if ferr := d.flushKeys(ctx, q); err == nil {
		err = ferr
	}
	return err
}

// queueKey sends a wrapped key: at once outside sendingKeys, else into
// the queue, which is sent when full.
func (d *Device) queueKey(ctx context.Context, raw []byte) error {
	c, err := d.client()
	if err != nil {
		return err
	}
	q := d.keyq
	if q == nil {
		return c.PutKey(ctx, raw)
	}
	q.raws = append(q.raws, raw)
	if len(q.raws) >= transport.MaxKeyBatch {
		return d.flushKeys(ctx, q)
	}
	return nil
}

// afterKeysSent runs record once every key queued so far reached the
// relay: at once outside sendingKeys.
func (d *Device) afterKeysSent(ctx context.Context, record func() error) error {
	q := d.keyq
	if q == nil {
		return record()
	}
	if len(q.raws) == 0 {
		return record()
	}
	q.after = append(q.after, record)
	return nil
}

// flushKeys sends the queued keys, then writes the records waiting on
// them.
func (d *Device) flushKeys(ctx context.Context, q *keyQueue) error {
	// What a failed upload was to record stays unrecorded, and is sent
	// again by the next sync.
	raws, after := q.raws, q.after
	q.raws, q.after = nil, nil
	if len(raws) > 0 {
		c, err := d.client()
		if err != nil {
			return err
		}
		if err := c.PutKeys(ctx, raws); err != nil {
			return err
		}
	}
	for _, record := range after {
		if err := record(); err != nil {
			return err
		}
	}
	return nil
}

func (d *Device) wrapTo(ctx context.Context, stream syncproto.StreamID, epoch syncproto.Epoch, k *fcrypto.Key, dev syncproto.DeviceID) error {
	info := d.chain.State().Devices[dev]
	if info == nil {
		return fmt.Errorf("wrap key: unknown device %s", dev)
	}
	r, err := fcrypto.ParseBoxRecipient(info.Box)
	if err != nil {
		return fmt.Errorf("wrap key: %w", err)
	}
	wrapped, err := fcrypto.WrapKey(k, r.Recipient())
	if err != nil {
		return err
	}
	wk := &syncproto.WrappedKey{Tenant: d.pc.tenant, Stream: stream, Epoch: epoch, Device: dev, Wrapped: wrapped}
	return d.queueKey(ctx, wk.Marshal())
}

// rekey starts a new epoch on a stream if its current device set differs
// from who should hold it.
func (d *Device) rekey(ctx context.Context, stream syncproto.StreamID, force bool) error {
	st := d.chain.State()
	str := st.Streams[stream]
	if str == nil || str.Purged {
		return nil
	}
	want := desiredDevices(st, stream)
	if cur := str.Current(); !force && cur != nil && sameDevices(cur.Devices, want) {
		return nil
	}
	_, err := d.startEpoch(ctx, stream, want)
	return err
}

func sameDevices(a, b []syncproto.DeviceID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// maxEpochEver is the highest epoch number any statement of the chain,
// void or not, ever gave the stream.
func (d *Device) maxEpochEver(stream syncproto.StreamID) syncproto.Epoch {
	var max syncproto.Epoch
	for pos := 0; pos < d.chain.Len(); pos++ {
		if es, ok := d.chain.Statement(syncproto.ChainPos(pos)).Body.(*syncproto.EpochStarted); ok && es.Stream == stream && es.Epoch > max {
			max = es.Epoch
		}
	}
	return max
}
