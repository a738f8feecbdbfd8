package client

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fristed/fristed/client/replica"
	"github.com/fristed/fristed/syncproto"
)

// AuditEntry is one line of `audit show`: who did what, when, in plain
// language. Source is "chain" for signed admin statements and relay facts,
// "device" for access events recorded on the devices (case opened, sealed
// fields revealed, export made).
type AuditEntry struct {
	At       time.Time `json:"at"`
	Who      string    `json:"who"`
	What     string    `json:"what"`
	Resident string    `json:"resident,omitempty"`
	Source   string    `json:"source"`
}

// AuditShow lists admin statements, relay facts and access events from
// this device's replica, oldest first; resident (an id or pseudonym)
// filters to one case, since to events at or after it.
func (d *Device) AuditShow(resident string, since time.Time) ([]AuditEntry, error) {
	if err := d.requireCoordinator(); err != nil {
		return nil, err
	}
	var filter syncproto.StreamID
	if resident != "" {
		sid, err := d.resolveResident(resident)
		if err != nil {
			return nil, err
		}
		filter = sid
	}
	var out []AuditEntry
	for pos := 0; pos < d.chain.Len(); pos++ {
		st := d.chain.Statement(syncproto.ChainPos(pos))
		e, stream, ok := d.describeStatement(st)
		if !ok {
			continue
		}
		if d.chain.IsVoid(st.Pos) {
			e.What += " (void: signed by a compromised device)"
		}
		if !filter.IsZero() && stream != filter {
			continue
		}
		if !stream.IsZero() {
			e.Resident = d.residentLabel(stream)
		}
		out = append(out, e)
	}
	if as, ok := d.streamOfKind(syncproto.StreamAudit); ok {
		evs, err := d.rep.AuditEvents(as)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			sid, _ := syncproto.ParseStreamID(ev.Resident)
			if !filter.IsZero() && sid != filter {
				continue
			}
			e := AuditEntry{At: ev.At.UTC(), Who: d.deviceLabel(ev.Device), Source: "device"}
			e.What = describeEvent(ev)
			if !sid.IsZero() {
				e.Resident = d.residentLabel(sid)
			}
			out = append(out, e)
		}
	}
	kept := out[:0]
	for _, e := range out {
		if since.IsZero() || !e.At.Before(since) {
			kept = append(kept, e)
		}
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].At.Before(kept[j].At) })
	return kept, nil
}

// describeEvent puts an access event in plain language.
func describeEvent(ev replica.AuditEvent) string {
	switch ev.Event {
	case auditOpen:
		return "opened the case"
	case auditReveal:
		return "opened the case and revealed the sealed fields"
	case auditExport:
		if ev.Detail == "" {
			return "exported case data"
		}
		return "exported " + ev.Detail
	case auditEmergency:
		return "exported an emergency card for the police"
	}
	return "recorded " + strconv.Quote(ev.Event) // from a newer version
}

// describeStatement puts a statement in plain language.
func (d *Device) describeStatement(st *syncproto.Statement) (AuditEntry, syncproto.StreamID, bool) {
	e := AuditEntry{At: time.UnixMilli(int64(st.TimeMS)).UTC(), Source: "chain"}
	switch st.Signer {
	case syncproto.SignerRoot:
		e.Who = "org root key (recovery file)"
	case syncproto.SignerRelay:
		e.Who = "relay"
	default:
		e.Who = d.deviceLabel(st.SignerDevice.String())
	}
	var stream syncproto.StreamID
	switch b := st.Body.(type) {
	case *syncproto.TenantCreated:
		e.What = "created the organisation"
	case *syncproto.CoordinatorDelegated:
		e.What = "made " + d.deviceLabel(b.Device.String()) + " a coordinator laptop"
	case *syncproto.DeviceEnrolled:
		e.What = fmt.Sprintf("enrolled %s for %s", d.deviceLabel(b.Device.String()), d.labelOf(kindWorker, syncproto.DeltaID(b.Worker)))
	case *syncproto.DeviceRevoked:
		e.What = "revoked " + d.deviceLabel(b.Device.String())
		if b.HasCompromisedSince {
			e.What += fmt.Sprintf(", compromised since chain position %d", b.CompromisedSince)
		}
	case *syncproto.WorkerAdded:
		e.What = "added worker " + d.labelOf(kindWorker, syncproto.DeltaID(b.Worker))
	case *syncproto.WorkerRemoved:
		e.What = "removed worker " + d.labelOf(kindWorker, syncproto.DeltaID(b.Worker))
	case *syncproto.StreamCreated:
		if b.Kind != syncproto.StreamResident {
			return e, stream, false
		}
		e.What, stream = "created the case", b.Stream
	case *syncproto.Assigned:
		e.What, stream = "assigned "+d.labelOf(kindWorker, syncproto.DeltaID(b.Worker)), b.Stream
	case *syncproto.Unassigned:
		e.What, stream = "unassigned "+d.labelOf(kindWorker, syncproto.DeltaID(b.Worker)), b.Stream
	case *syncproto.DeletionReceipt:
		e.What, stream = "deleted the case from its laptop after unassignment", b.Stream
	case *syncproto.CaseClosed:
		e.What, stream = "closed the case", b.Stream
	case *syncproto.StreamPurged:
		e.What, stream = "purged the case everywhere", b.Stream
	case *syncproto.EnvelopeSealed:
		e.What = fmt.Sprintf("sealed alarm envelope %s (generation %d)", b.Alarm, b.Generation)
	case *syncproto.EnvelopeReleased:
		e.What = fmt.Sprintf("released alarm envelope %s to the police", b.Alarm)
		if raw, err := st.Marshal(); err == nil {
			e.What += fmt.Sprintf(" (release code %s)", syncproto.ReleaseCode(syncproto.HashStatement(raw)))
		}
	case *syncproto.EmergencyCardWritten:
		e.What = fmt.Sprintf("wrote an emergency card for alarm %s", b.Alarm)
	case *syncproto.DeviceRefused:
		e.What = "refused revoked laptop " + d.deviceLabel(b.Device.String())
	case *syncproto.SettingsChanged:
		e.What = fmt.Sprintf("changed settings: retention %d days, envelope expiry %d days, auto-lock %d minutes",
			b.RetentionDays, b.EnvelopeExpiryDays, b.AutoLockMinutes)
	case *syncproto.PoliceContactAdded:
		e.What = "added a police contact"
	default:
		return e, stream, false // epochs, snapshots, checkpoints: mechanics, not acts
	}
	return e, stream, true
}

// deviceLabel names a device as "worker (laptop name)" where known.
func (d *Device) deviceLabel(id string) string {
	dev, err := syncproto.ParseDeviceID(id)
	if err != nil {
		return id
	}
	name := d.labelOf(kindDevice, syncproto.DeltaID(dev))
	owner := d.authorName(id)
	switch {
	case name != "" && owner != "":
		return owner + " (" + name + ")"
	case owner != "":
		return owner + " (" + id + ")"
	case name != "":
		return name
	}
	return id
}

func (d *Device) residentLabel(sid syncproto.StreamID) string {
	if v, err := d.rep.Resident(sid, false); err == nil {
		if p := v.Fields["pseudonym"]; p != "" {
			return p + " (" + sid.String() + ")"
		}
	}
	return sid.String()
}

// FormatAudit writes entries one per line.
func FormatAudit(entries []AuditEntry) string {
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "%s  %s %s", e.At.Format("2006-01-02 15:04"), e.Who, e.What)
		if e.Resident != "" {
			fmt.Fprintf(&b, " - %s", e.Resident)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
