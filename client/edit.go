package client

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fristed/fristed/client/replica"
	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// residentForEdit checks that this device is in the resident's current
// epoch (the emergency card needs no more).
func (d *Device) residentForEdit(ref string) (syncproto.StreamID, error) {
	if d.cfg.Role == RolePending {
		return syncproto.StreamID{}, ErrNotApproved
	}
	sid, err := d.resolveResident(ref)
	if err != nil {
		return sid, err
	}
	if s := d.chain.State().Streams[sid]; s == nil || s.Current() == nil || !d.chain.State().CanRead(d.pc.device, sid) {
		return sid, fmt.Errorf("%w %s (not assigned to this laptop)", ErrUnknownRes, ref)
	}
	return sid, nil
}

// residentForWrite is residentForEdit for an edit that will be sealed to
// the case: it also needs the current epoch's key on this device. Without
// it the edit could never be sealed (a relay that withholds the wrapped
// key, an interrupted assignment), so it is refused now rather than queued.
func (d *Device) residentForWrite(ref string) (syncproto.StreamID, error) {
	sid, err := d.residentForEdit(ref)
	if err != nil {
		return sid, err
	}
	cur := d.chain.State().Streams[sid].Current()
	if _, err := d.epochKey(sid, cur.Epoch); err != nil {
		if errors.Is(err, ErrNoKey) {
			return sid, fmt.Errorf("%w: the key of %s's case has not reached this laptop; run fristed sync, and if this persists tell a coordinator", ErrNoKey, ref)
		}
		return sid, err
	}
	return sid, nil
}

// ResidentSet sets fields of the resident record.
func (d *Device) ResidentSet(ref string, fields map[string]string) error {
	sid, err := d.residentForWrite(ref)
	if err != nil {
		return err
	}
	ops, err := d.rep.SetOps(sid, replica.KindResident, syncproto.DeltaID{}, fields)
	if err != nil {
		return err
	}
	_, err = d.commit(sid, ops)
	return err
}

// checkHandKind refuses record kinds that only Fristed itself writes.
func checkHandKind(kind string) error {
	if kind == kindAlarmCard {
		return fmt.Errorf("record kind %q is written by envelope seal and the automatic re-seal, not by hand", kind)
	}
	return nil
}

// RecordAdd adds a record of kind to a case and returns its id.
func (d *Device) RecordAdd(ref, kind string, fields map[string]string) (string, error) {
	if err := checkHandKind(kind); err != nil {
		return "", err
	}
	sid, err := d.residentForWrite(ref)
	if err != nil {
		return "", err
	}
	id, ops, err := d.rep.NewRecordOps(sid, kind, fields)
	if err != nil {
		return "", err
	}
	if _, err := d.commit(sid, ops); err != nil {
		return "", err
	}
	return id.String(), nil
}

// RecordSet changes fields of an existing record.
func (d *Device) RecordSet(ref, kind, id string, fields map[string]string) error {
	if err := checkHandKind(kind); err != nil {
		return err
	}
	sid, err := d.residentForWrite(ref)
	if err != nil {
		return err
	}
	rid, err := syncproto.ParseDeltaID(id)
	if err != nil {
		return fmt.Errorf("record id: %w", err)
	}
	ops, err := d.rep.SetOps(sid, kind, rid, fields)
	if err != nil {
		return err
	}
	_, err = d.commit(sid, ops)
	return err
}

// LogAdd adds a follow-up log entry written by this device now.
func (d *Device) LogAdd(ref, category string, minutes int, text string) (string, error) {
	sid, err := d.residentForWrite(ref)
	if err != nil {
		return "", err
	}
	e := replica.LogEntry{Category: category, Minutes: minutes, Text: text,
		Author: d.pc.device.String(), At: d.opts.now().Truncate(time.Second)}
	id, ops, err := d.rep.LogOps(sid, e)
	if err != nil {
		return "", err
	}
	if _, err := d.commit(sid, ops); err != nil {
		return "", err
	}
	return id.String(), nil
}

// ResidentShow returns a resident's case. Showing a case is an access
// event: it is recorded in the audit log first, as "reveal" with reveal
// (sealed fields shown; the opening is part of it) and as "open" without
// (see auditOpen for repeated opens). Nothing is shown if the event cannot
// be recorded.
func (d *Device) ResidentShow(ref string, reveal bool) (*replica.ResidentView, error) {
	sid, err := d.resolveResident(ref)
	if err != nil {
		return nil, err
	}
	// A case this laptop does not hold is not opened: nothing to record.
	v, err := d.rep.Resident(sid, reveal)
	if err != nil {
		return nil, err
	}
	if reveal {
		if err := d.audit(auditReveal, sid); err != nil {
			return nil, fmt.Errorf("record the reveal in the audit log: %w", err)
		}
	} else if err := d.auditOpen(sid); err != nil {
		return nil, fmt.Errorf("record the case opening in the audit log: %w", err)
	}
	return v, nil
}

// ResidentList lists the residents this device holds.
func (d *Device) ResidentList() ([]replica.ResidentSummary, error) {
	rs, err := d.rep.Residents()
	if err != nil {
		return nil, err
	}
	st := d.chain.State()
	out := make([]replica.ResidentSummary, 0, len(rs))
	for _, r := range rs {
		if s := st.Streams[r.ID]; s != nil && !s.Purged && s.Kind == syncproto.StreamResident {
			out = append(out, r)
		}
	}
	return out, nil
}

// Access events recorded on the devices (the audit entry's "event").
const (
	auditOpen      = "open"           // a case's content shown
	auditReveal    = "reveal"         // a case shown with its sealed fields
	auditExport    = "export"         // case data written out of the replica
	auditEmergency = "emergency card" // written before exports were named as such
)

// OpenWindow is how long repeated openings of one case on one laptop
// count as one access: the first opening is recorded, the others within
// the window after it are not. Who, what and when stay in the log (the
// first opening names the laptop, the case and the time; a later opening
// outside the window is a new event), while a worker paging back and forth
// through a case during one conversation does not write an entry per
// command. Reveals and exports are never collapsed.
const OpenWindow = 10 * time.Minute

// auditOpen records that this device opened a case, unless it recorded an
// opening of the same case less than OpenWindow ago.
func (d *Device) auditOpen(sid syncproto.StreamID) error {
	now := d.opts.now().Truncate(time.Second)
	var last int64
	err := d.db().QueryRow(`SELECT at_ms FROM local_opened WHERE stream = ?`, sid[:]).Scan(&last)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("read openings: %w", err)
	default:
		// A clock set back (last in the future) records anew.
		if at := time.UnixMilli(last); !at.After(now) && now.Sub(at) < OpenWindow {
			return nil
		}
	}
	if err := d.audit(auditOpen, sid); err != nil {
		return err
	}
	if _, err := d.db().Exec(`INSERT OR REPLACE INTO local_opened (stream, at_ms) VALUES (?, ?)`, sid[:], now.UnixMilli()); err != nil {
		return fmt.Errorf("write openings: %w", err)
	}
	d.dirty = true
	return nil
}

// audit records an access event in the audit stream, as a local edit that
// syncs to the coordinators like any other.
func (d *Device) audit(event string, resident syncproto.StreamID) error {
	return d.auditEvent(replica.AuditEvent{Event: event, Resident: resident.String()})
}

// recordExport records that case data was written out of this laptop:
// what names the export in plain language ("sealed alarm envelope for the
// police", "annual report 2026"); resident is the case it came from, or
// zero for an export across cases (the annual report). Call it before the
// data is written, and write nothing if it fails.
func (d *Device) recordExport(resident syncproto.StreamID, what string) error {
	ev := replica.AuditEvent{Event: auditExport, Detail: what}
	if !resident.IsZero() {
		ev.Resident = resident.String()
	}
	if err := d.auditEvent(ev); err != nil {
		return fmt.Errorf("record the export in the audit log: %w", err)
	}
	return nil
}

func (d *Device) auditEvent(ev replica.AuditEvent) error {
	as, ok := d.streamOfKind(syncproto.StreamAudit)
	if !ok {
		return errors.New("the org has no audit log yet: sync first")
	}
	ev.Device, ev.At = d.pc.device.String(), d.opts.now().Truncate(time.Second)
	ops, err := d.rep.AuditOps(as, ev)
	if err != nil {
		return err
	}
	_, err = d.commit(as, ops)
	return err
}

// RenderResident writes a case as readable text.
func RenderResident(w io.Writer, v *replica.ResidentView) error {
	return v.Render(w)
}

// RenderResident writes a case as readable text, with log authors shown
// by their worker's name from the directory where this device knows it.
func (d *Device) RenderResident(w io.Writer, v *replica.ResidentView) error {
	c := *v
	c.Log = append([]replica.LogEntry(nil), v.Log...)
	for i, e := range c.Log {
		if n := d.authorName(e.Author); n != "" {
			c.Log[i].Author = n
		}
	}
	return c.Render(w)
}

// authorName returns the worker (or "coordinator") behind a device id.
func (d *Device) authorName(device string) string {
	id, err := syncproto.ParseDeviceID(device)
	if err != nil {
		return ""
	}
	dev := d.chain.State().Devices[id]
	if dev == nil {
		return ""
	}
	if dev.Role == syncproto.RoleCoordinator {
		return "coordinator"
	}
	return d.labelOf(kindWorker, syncproto.DeltaID(dev.Worker))
}

// ChangePassphrase re-encrypts the identity file under a new passphrase.
func ChangePassphrase(opts Options, newPass []byte) error {
	path := filepath.Join(opts.Home, identityFile)
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return ErrNoDevice
	}
	if err != nil {
		return fmt.Errorf("read identity: %w", err)
	}
	if strings.TrimSpace(string(newPass)) == "" {
		return errors.New("the new passphrase is empty")
	}
	unlock, err := lockHome(opts.Home)
	if err != nil {
		return err
	}
	defer unlock()
	old, err := opts.Passphrase(false)
	if err != nil {
		return err
	}
	defer clear(old)
	enc, err := fcrypto.ChangePassphrase(data, old, newPass, fcrypto.KindDevice, opts.WorkFactor)
	if err != nil {
		return fmt.Errorf("change passphrase: %w", err)
	}
	return writeFileAtomic(path, enc)
}
