package client

import (
	"fmt"

	"github.com/fristed/fristed/syncproto"
)

// deliverable sorts the streams with queued edits before a push. Edits to a
// resident's case are sealed under the newest epoch this device is in (or,
// once removed, the last one it was in), so they can go out only if that
// epoch's key is here:
//   - in the current epoch without its key (a relay that withholds the
//     wrapped key, an interrupted assignment): the edits stay queued and
//     the stream is skipped, so the rest of the sync goes on; the key may
//     still come;
//   - in no epoch of the case whose key this device holds (an edit queued
//     by id to a case it never held, or removed and the key gone): the
//     edits can never be sealed, are dropped, and a notice says how many.
//
// Streams of other kinds go to push unchanged.
func (d *Device) deliverable(streams []syncproto.StreamID) ([]syncproto.StreamID, error) {
	st := d.chain.State()
	out := streams[:0:0]
	for _, s := range streams {
		str := st.Streams[s]
		if str == nil || str.Kind != syncproto.StreamResident {
			out = append(out, s)
			continue
		}
		if cur := str.Current(); cur != nil && cur.Has(d.pc.device) {
			ok, err := d.hasKey(s, cur.Epoch)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, s)
				continue
			}
			n, err := d.pendingFor(s)
			if err != nil {
				return nil, fmt.Errorf("read outbox: %w", err)
			}
			d.opts.notice("%d edit(s) to %s wait for the case key, which has not reached this laptop; they stay queued", n, s)
			continue
		}
		held := false
		for i := len(str.Epochs) - 1; i >= 0; i-- {
			if str.Epochs[i].Has(d.pc.device) {
				ok, err := d.hasKey(s, str.Epochs[i].Epoch)
				if err != nil {
					return nil, err
				}
				held = ok
				break
			}
		}
		if held {
			out = append(out, s)
			continue
		}
		res, err := d.db().Exec(`DELETE FROM local_outbox WHERE stream = ?`, s[:])
		if err != nil {
			return nil, fmt.Errorf("drop undeliverable edits: %w", err)
		}
		n, _ := res.RowsAffected()
		d.dirty = true
		d.opts.notice("dropped %d edit(s) to %s: this laptop holds no key for that case, so they can never be delivered", n, s)
	}
	return out, nil
}

// hasKey reports whether this device holds the key of a stream's epoch.
func (d *Device) hasKey(s syncproto.StreamID, e syncproto.Epoch) (bool, error) {
	var n int
	if err := d.db().QueryRow(`SELECT COUNT(*) FROM local_keys WHERE stream = ? AND epoch = ?`, s[:], int64(e)).Scan(&n); err != nil {
		return false, fmt.Errorf("read keys: %w", err)
	}
	if n == 0 {
		// A key this coordinator made for an epoch whose answer was lost.
		k, err := d.pendingKey(s, e)
		return k != nil, err
	}
	return true, nil
}
