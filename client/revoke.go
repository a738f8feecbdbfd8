package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/fristed/fristed/syncproto"
)

// RevokeParams are the inputs of Revoke.
type RevokeParams struct {
	Device string // device id, or a unique device name from the directory
	// Recovery is the org root key; required to revoke a coordinator device.
	Recovery *Recovery
	// CompromisedSince, if set, voids the device's own statements after
	// that chain position (a stolen, unlocked coordinator laptop).
	CompromisedSince *syncproto.ChainPos
}

// RevokeResult says what a revocation did.
type RevokeResult struct {
	Device  syncproto.DeviceID
	Rekeyed int // streams moved to a new epoch
}

// Revoke revokes a device: the signed statement makes the relay refuse it
// on its next request, and every stream it could read moves to a new epoch
// wrapped only to the devices still allowed, so nothing written from now
// on is readable with its keys.
func (d *Device) Revoke(ctx context.Context, p RevokeParams) (RevokeResult, error) {
	var res RevokeResult
	if err := d.requireCoordinator(); err != nil {
		return res, err
	}
	if err := d.refreshChain(ctx); err != nil {
		return res, err
	}
	if err := d.pullDirectory(ctx); err != nil {
		return res, err
	}
	id, err := d.resolveDevice(p.Device)
	if err != nil {
		return res, err
	}
	st := d.chain.State()
	target := st.Devices[id]
	if target.Revoked {
		return res, fmt.Errorf("device %s is already revoked", id)
	}
	if id == d.pc.device {
		return res, errors.New("a coordinator cannot revoke its own laptop from it: use another coordinator laptop, or `fristed org recover`")
	}
	var root = p.Recovery
	if target.Role == syncproto.RoleCoordinator {
		if root == nil {
			return res, errors.New("revoking a coordinator laptop needs the org recovery file (--recovery FILE)")
		}
		if len(st.ActiveCoordinators()) <= 1 {
			return res, errors.New("this is the last coordinator laptop: enrol another first (`fristed device approve CODE --coordinator --recovery FILE` or `fristed org recover`)")
		}
	}
	if root != nil && !root.Fingerprint().Equal(d.pc.org) {
		return res, errors.New("the recovery file belongs to another org")
	}
	body := &syncproto.DeviceRevoked{Device: id}
	if p.CompromisedSince != nil {
		body.HasCompromisedSince, body.CompromisedSince = true, *p.CompromisedSince
	}
	var s *syncproto.Statement
	if root != nil {
		s, err = d.postStatement(ctx, body, root.root)
	} else {
		s, err = d.postStatement(ctx, body, nil)
	}
	if err != nil {
		return res, err
	}
	if root != nil {
		root.remember(&d.opts, s.Pos, mustHash(d.chain, s.Pos))
	}
	res.Device = id
	// Re-key every stream the device held a key of, and with a
	// compromised-since point every stream (what it granted is void). The
	// new keys go to the relay in batches.
	err = d.sendingKeys(ctx, func() error {
		for sid, s := range d.chain.State().Streams {
			if s.Purged {
				continue
			}
			held := false
			for _, e := range s.Epochs {
				if e.Has(id) {
					held = true
					break
				}
			}
			if !held && p.CompromisedSince == nil {
				continue
			}
			if err := d.rekey(ctx, sid, true); err != nil {
				return fmt.Errorf("re-key %s: %w", sid, err)
			}
			res.Rekeyed++
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	var sr SyncResult
	if err := d.push(ctx, &sr); err != nil {
		return res, err
	}
	return res, d.save()
}

// resolveDevice accepts a device id or a unique name.
func (d *Device) resolveDevice(ref string) (syncproto.DeviceID, error) {
	st := d.chain.State()
	if id, err := syncproto.ParseDeviceID(ref); err == nil {
		if st.Devices[id] == nil {
			return id, fmt.Errorf("unknown device %s", ref)
		}
		return id, nil
	}
	var found []syncproto.DeviceID
	for id := range st.Devices {
		if strings.EqualFold(d.labelOf(kindDevice, syncproto.DeltaID(id)), ref) {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return syncproto.DeviceID{}, fmt.Errorf("unknown device %q (see `fristed device list`)", ref)
	}
	return syncproto.DeviceID{}, fmt.Errorf("device name %q is ambiguous: use the device id", ref)
}

// WorkerRemove revokes all of a worker's devices, unassigns the worker
// everywhere and removes the worker.
func (d *Device) WorkerRemove(ctx context.Context, name string) error {
	if err := d.requireCoordinator(); err != nil {
		return err
	}
	if err := d.refreshChain(ctx); err != nil {
		return err
	}
	if err := d.pullDirectory(ctx); err != nil {
		return err
	}
	w, err := d.workerByName(name)
	if err != nil {
		return err
	}
	for _, dev := range d.chain.State().WorkerDevices(w) {
		if _, err := d.postStatement(ctx, &syncproto.DeviceRevoked{Device: dev}, nil); err != nil {
			return err
		}
	}
	for sid, s := range d.chain.State().Streams {
		if s.Assigned[w] {
			if _, err := d.postStatement(ctx, &syncproto.Unassigned{Stream: sid, Worker: w}, nil); err != nil {
				return err
			}
		}
	}
	if _, err := d.postStatement(ctx, &syncproto.WorkerRemoved{Worker: w}, nil); err != nil {
		return err
	}
	if err := d.rekeyAll(ctx); err != nil {
		return err
	}
	return d.save()
}

// purgeRemoved deletes every stream this device no longer belongs to:
// after its last edits went out, the case's rows and keys are removed and
// a signed deletion receipt tells the coordinators.
func (d *Device) purgeRemoved(ctx context.Context) error {
	if d.cfg.Role != RoleWorker {
		return nil
	}
	streams, err := d.rep.Streams()
	if err != nil {
		return err
	}
	st := d.chain.State()
	for _, sid := range streams {
		s := st.Streams[sid]
		if s == nil || s.Kind != syncproto.StreamResident || st.CanRead(d.pc.device, sid) {
			continue
		}
		if n, _ := d.pendingFor(sid); n > 0 {
			continue // not delivered yet; the next sync tries again
		}
		if err := d.purgeLocal(sid); err != nil {
			return err
		}
		if _, ok := s.DeletionReceipts[d.pc.device]; !ok && !s.Purged {
			if _, err := d.postStatement(ctx, &syncproto.DeletionReceipt{Stream: sid, Device: d.pc.device}, nil); err != nil {
				return err
			}
		}
		d.opts.notice("removed a case this laptop is no longer assigned to (%s)", sid)
	}
	return nil
}

func (d *Device) pendingFor(sid syncproto.StreamID) (int, error) {
	var n int
	err := d.db().QueryRow(`SELECT COUNT(*) FROM local_outbox WHERE stream = ?`, sid[:]).Scan(&n)
	return n, err
}

// purgeLocal removes a stream's rows, keys and bookkeeping from the replica.
func (d *Device) purgeLocal(sid syncproto.StreamID) error {
	if err := d.rep.PurgeStream(sid); err != nil {
		return err
	}
	for _, q := range []string{
		`DELETE FROM local_keys WHERE stream = ?`, `DELETE FROM local_outbox WHERE stream = ?`,
		`DELETE FROM local_inflight WHERE stream = ?`, `DELETE FROM local_cursor WHERE stream = ?`,
		`DELETE FROM local_receipts WHERE stream = ?`, `DELETE FROM local_pending_keys WHERE stream = ?`,
		`DELETE FROM local_rebuild WHERE stream = ?`, `DELETE FROM local_keyed WHERE stream = ?`,
	} {
		if _, err := d.db().Exec(q, sid[:]); err != nil {
			return fmt.Errorf("purge %s: %w", sid, err)
		}
	}
	// This device's own counter stays: if it is assigned the case again,
	// its next batch must follow the ones it already wrote, or the others
	// would see two batches under one number (a fork).
	if _, err := d.db().Exec(`DELETE FROM local_authors WHERE stream = ? AND device != ?`, sid[:], d.pc.device[:]); err != nil {
		return fmt.Errorf("purge %s: %w", sid, err)
	}
	d.dirty = true
	return nil
}
