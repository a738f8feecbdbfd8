package client

import (
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/fristed/fristed/syncproto"
)

// Clock skew. Every device refuses a batch that holds a delta whose clock
// is more than MaxClockSkew ahead of the relay's signed receipt time (a
// clock set ahead would otherwise win every concurrent edit for as long as
// it runs ahead). All devices see the same receipt, so all refuse alike;
// the author too. Its replica took its own edits when they were made, so
// when the receipt for its own batch shows the rule broken, the stream is
// rebuilt from its verified history (rebuild.go) with that batch skipped,
// as any other device skips it, and the worker is told which case lost
// how many edits. The edits are not re-stamped and sent again: see
// docs/ARCHITECTURE.md, "Clock skew".

// skewWarnAt is how far this laptop's clock may run ahead of the relay's
// receipt time before a sync says so: half the allowed skew, so there is
// time to fix the clock before edits are refused.
const skewWarnAt = MaxClockSkew / 2

// tooFarAhead reports whether any delta's clock is more than MaxClockSkew
// ahead of a receipt time, and by how much the furthest one is ahead.
func tooFarAhead(deltas []*syncproto.Delta, receivedMS uint64) (time.Duration, bool) {
	limit := receivedMS + uint64(MaxClockSkew.Milliseconds())
	var ahead uint64
	refused := false
	for _, dl := range deltas {
		if dl.Clock.WallMS > limit {
			refused = true
		}
		if dl.Clock.WallMS > receivedMS && dl.Clock.WallMS-receivedMS > ahead {
			ahead = dl.Clock.WallMS - receivedMS
		}
	}
	return time.Duration(ahead) * time.Millisecond, refused
}

// openOwn opens one of this device's own batches. ok is false for a batch
// under a key this device no longer holds.
func (d *Device) openOwn(stream syncproto.StreamID, b *syncproto.Batch, self *syncproto.DeviceInfo) (deltas []*syncproto.Delta, ok bool, err error) {
	if str := d.chain.State().Streams[stream]; str != nil && str.Kind == syncproto.StreamAudit {
		// Audit entries are sealed to the epoch's devices, not under its key.
		deltas, err = d.openPulled(stream, b, self)
		return deltas, err == nil, err
	}
	key, kerr := d.epochKey(stream, b.Epoch)
	if kerr != nil {
		return nil, false, nil
	}
	deltas, err = syncproto.OpenBatch(b, key, self.SignPub)
	return deltas, err == nil, err
}

// outboxDeltas reads the deltas of one of this device's batches from the
// outbox, where they wait until the relay's receipt for it checks out.
func (d *Device) outboxDeltas(b *syncproto.Batch) ([]*syncproto.Delta, error) {
	var out []*syncproto.Delta
	for _, sd := range b.Deltas {
		var raw []byte
		err := d.db().QueryRow(`SELECT delta FROM local_outbox WHERE id = ?`, sd.ID[:]).Scan(&raw)
		if errors.Is(err, sql.ErrNoRows) {
			continue // left the outbox with an earlier receipt
		}
		if err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		dl, err := syncproto.UnmarshalDelta(raw)
		if err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		out = append(out, dl)
	}
	return out, nil
}

// checkOwnSkew applies the skew rule to the deltas of one of this
// device's batches once the relay's receipt for it checked out. It also
// warns, once per sync, when this laptop's clock runs ahead of the
// relay's by more than skewWarnAt, before edits are refused.
func (d *Device) checkOwnSkew(stream syncproto.StreamID, deltas []*syncproto.Delta, rc *syncproto.Receipt) error {
	received := time.UnixMilli(int64(rc.ReceivedMS))
	if ahead := d.opts.now().Sub(received); ahead > skewWarnAt && !d.skewWarned {
		d.skewWarned = true
		d.opts.notice("warning: this laptop's clock is %s ahead of the relay's: edits made more than %s ahead are refused by every device; fix the clock",
			minutes(ahead), minutes(MaxClockSkew))
	}
	ahead, refused := tooFarAhead(deltas, rc.ReceivedMS)
	if !refused {
		return nil
	}
	// The clock that stamped them must not stamp the next edits too: a
	// laptop whose clock was fixed since would go on writing edits every
	// device refuses. No delta any device accepted runs past the limit of
	// the newest receipt, so the clock may come back to it.
	if limit := rc.ReceivedMS + uint64(MaxClockSkew.Milliseconds()); d.hlc.WallMS > limit {
		d.hlc = syncproto.HLC{WallMS: limit}
		d.dirty = true
	}
	readable := d.chain.State().CanRead(d.pc.device, stream)
	if str := d.chain.State().Streams[stream]; !readable && str != nil && str.Kind == syncproto.StreamAudit {
		// The audit log on a worker's laptop: the coordinators' laptops
		// refuse the entries; this laptop never reads that stream back.
		d.opts.notice("this laptop's clock was %s ahead of the relay's when %d audit entries were written: every device refuses them; fix the clock",
			minutes(ahead), len(deltas))
		return nil
	}
	d.opts.notice("this laptop's clock was %s ahead of the relay's when %d edit(s) to %s were made: they were refused by every device and are taken out of this laptop too; fix the clock and enter them again",
		minutes(ahead), len(deltas), d.residentLabel(stream))
	if !readable {
		return nil // last edits of a case this laptop was removed from: it leaves after the push
	}
	return d.startRebuild(stream, "edits made while this laptop's clock ran ahead of the relay's are taken out")
}

// minutes prints a duration to the nearest minute, or in seconds below
// one.
func minutes(t time.Duration) string {
	if t < time.Minute {
		return t.Round(time.Second).String()
	}
	return fmt.Sprintf("%d minutes", int(t.Round(time.Minute)/time.Minute))
}
