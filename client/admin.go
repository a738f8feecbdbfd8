package client

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fristed/fristed/syncproto"
)

// WorkerAdd registers a worker: a random id in the chain, the name only in
// the encrypted directory.
func (d *Device) WorkerAdd(ctx context.Context, name string) (syncproto.WorkerID, error) {
	if err := d.requireCoordinator(); err != nil {
		return syncproto.WorkerID{}, err
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 || strings.ContainsAny(name, "\n\r\t") {
		return syncproto.WorkerID{}, errors.New("worker add: a name of 1 to 200 characters on one line is required")
	}
	if err := d.refreshChain(ctx); err != nil {
		return syncproto.WorkerID{}, err
	}
	if err := d.pullDirectory(ctx); err != nil {
		return syncproto.WorkerID{}, err
	}
	if _, err := d.workerByName(name); err == nil {
		return syncproto.WorkerID{}, fmt.Errorf("worker add: a worker named %q exists", name)
	}
	id := syncproto.NewWorkerID()
	if _, err := d.postStatement(ctx, &syncproto.WorkerAdded{Worker: id}, nil); err != nil {
		return syncproto.WorkerID{}, err
	}
	if err := d.setDirectory(kindWorker, syncproto.DeltaID(id), map[string]string{"name": name}); err != nil {
		return syncproto.WorkerID{}, err
	}
	var res SyncResult
	if err := d.push(ctx, &res); err != nil {
		return syncproto.WorkerID{}, err
	}
	return id, d.save()
}

// pullDirectory brings the directory up to date before a name lookup.
func (d *Device) pullDirectory(ctx context.Context) error {
	if err := d.fetchKeys(ctx); err != nil {
		return err
	}
	var res SyncResult
	return d.pull(ctx, &res)
}

// WorkerInfo is one row of `worker list`.
type WorkerInfo struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Devices   int      `json:"devices"`
	Residents []string `json:"residents"`
	Removed   bool     `json:"removed"`
}

// WorkerList lists workers from the local replica.
func (d *Device) WorkerList() ([]WorkerInfo, error) {
	ls, err := d.labels(kindWorker)
	if err != nil {
		return nil, err
	}
	st := d.chain.State()
	var out []WorkerInfo
	for _, l := range ls {
		w := syncproto.WorkerID(l.ID)
		info := st.Workers[w]
		if info == nil {
			continue
		}
		wi := WorkerInfo{ID: w.String(), Name: l.Fields["name"], Devices: len(st.WorkerDevices(w)), Removed: info.Removed, Residents: []string{}}
		for sid, s := range st.Streams {
			if s.Assigned[w] {
				wi.Residents = append(wi.Residents, sid.String())
			}
		}
		sort.Strings(wi.Residents)
		out = append(out, wi)
	}
	return out, nil
}

// ResidentAddParams are the inputs of ResidentAdd.
type ResidentAddParams struct {
	Pseudonym string
	Arrived   string // YYYY-MM-DD
	Unit      string
	// Description is the physical description without a photo (sealed).
	Description string
}

// ResidentAdd opens a case: a new stream keyed to the coordinators, with
// the resident's first fields.
func (d *Device) ResidentAdd(ctx context.Context, p ResidentAddParams) (syncproto.StreamID, error) {
	if err := d.requireCoordinator(); err != nil {
		return syncproto.StreamID{}, err
	}
	fields := map[string]string{"pseudonym": p.Pseudonym, "arrived": p.Arrived}
	if p.Unit != "" {
		fields["unit"] = p.Unit
	}
	if p.Description != "" {
		fields["description"] = p.Description
	}
	if strings.TrimSpace(p.Pseudonym) == "" {
		return syncproto.StreamID{}, errors.New("resident add: --pseudonym is required")
	}
	if strings.ContainsAny(p.Pseudonym+p.Unit, "\r\n\t") {
		return syncproto.StreamID{}, errors.New("resident add: --pseudonym and --unit must be one line")
	}
	if _, err := time.Parse("2006-01-02", p.Arrived); err != nil {
		return syncproto.StreamID{}, fmt.Errorf("resident add: --arrived %q: want YYYY-MM-DD", p.Arrived)
	}
	id := syncproto.NewStreamID()
	// Validate before anything reaches the relay.
	if _, err := d.rep.SetOps(id, "resident", syncproto.DeltaID{}, fields); err != nil {
		return syncproto.StreamID{}, err
	}
	if _, err := d.postStatement(ctx, &syncproto.StreamCreated{Stream: id, Kind: syncproto.StreamResident}, nil); err != nil {
		return syncproto.StreamID{}, err
	}
	if _, err := d.startEpoch(ctx, id, desiredDevices(d.chain.State(), id)); err != nil {
		return syncproto.StreamID{}, err
	}
	ops, err := d.rep.SetOps(id, "resident", syncproto.DeltaID{}, fields)
	if err != nil {
		return syncproto.StreamID{}, err
	}
	if _, err := d.commit(id, ops); err != nil {
		return syncproto.StreamID{}, err
	}
	var res SyncResult
	if err := d.push(ctx, &res); err != nil {
		return syncproto.StreamID{}, err
	}
	return id, d.save()
}

// resolveResident accepts a resident id or a unique pseudonym.
func (d *Device) resolveResident(ref string) (syncproto.StreamID, error) {
	st := d.chain.State()
	if id, err := syncproto.ParseStreamID(ref); err == nil {
		if s := st.Streams[id]; s != nil && s.Kind == syncproto.StreamResident && !s.Purged {
			return id, nil
		}
		return id, fmt.Errorf("%w %s", ErrUnknownRes, ref)
	}
	list, err := d.rep.Residents()
	if err != nil {
		return syncproto.StreamID{}, err
	}
	var found []syncproto.StreamID
	for _, r := range list {
		if strings.EqualFold(r.Pseudonym, ref) {
			found = append(found, r.ID)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return syncproto.StreamID{}, fmt.Errorf("%w %q (see `fristed resident list`)", ErrUnknownRes, ref)
	}
	return syncproto.StreamID{}, fmt.Errorf("pseudonym %q is ambiguous: use the resident id", ref)
}

// Assign gives a worker access to a resident: an assignment statement and
// a new epoch wrapped to the worker's devices.
func (d *Device) Assign(ctx context.Context, resident, worker string) error {
	return d.assignment(ctx, resident, worker, true)
}

// Unassign removes a worker from a resident: a new epoch without the
// worker's devices, so nothing written from now on is readable by them.
func (d *Device) Unassign(ctx context.Context, resident, worker string) error {
	return d.assignment(ctx, resident, worker, false)
}

func (d *Device) assignment(ctx context.Context, resident, worker string, assign bool) error {
	if err := d.requireCoordinator(); err != nil {
		return err
	}
	if err := d.refreshChain(ctx); err != nil {
		return err
	}
	if err := d.pullDirectory(ctx); err != nil {
		return err
	}
	sid, err := d.resolveResident(resident)
	if err != nil {
		return err
	}
	w, err := d.workerByName(worker)
	if err != nil {
		return err
	}
	assigned := d.chain.State().Streams[sid].Assigned[w]
	var body syncproto.Body
	switch {
	case assign && assigned:
		return fmt.Errorf("assign: %s is already assigned to this resident", worker)
	case !assign && !assigned:
		return fmt.Errorf("unassign: %s is not assigned to this resident", worker)
	case assign:
		body = &syncproto.Assigned{Stream: sid, Worker: w}
	default:
		body = &syncproto.Unassigned{Stream: sid, Worker: w}
	}
	if _, err := d.postStatement(ctx, body, nil); err != nil {
		return err
	}
	if err := d.rekey(ctx, sid, false); err != nil {
		return err
	}
	return d.save()
}

// DeviceInfo is one row of `device list`.
type DeviceInfo struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Worker   string `json:"worker"`
	Role     string `json:"role"`
	LastSeen string `json:"last_seen"`
	Revoked  bool   `json:"revoked"`
}

// DeviceList lists the tenant's devices, with last-seen days from the
// relay when it can be reached.
func (d *Device) DeviceList(ctx context.Context) ([]DeviceInfo, error) {
	if err := d.requireCoordinator(); err != nil {
		return nil, err
	}
	seen := map[syncproto.DeviceID]string{}
	if err := d.refreshChain(ctx); err == nil {
		d.pullDirectory(ctx)
		if c, err := d.client(); err == nil {
			if s, err := c.LastSeen(ctx); err == nil {
				seen = s
			}
		}
	}
	st := d.chain.State()
	var out []DeviceInfo
	for id, dev := range st.Devices {
		di := DeviceInfo{ID: id.String(), Name: d.labelOf(kindDevice, syncproto.DeltaID(id)), Role: dev.Role.String(),
			LastSeen: seen[id], Revoked: dev.Revoked}
		if dev.Role == syncproto.RoleWorker {
			di.Worker = d.labelOf(kindWorker, syncproto.DeltaID(dev.Worker))
		}
		if id == d.pc.device && di.Name == "" {
			di.Name = d.cfg.Name
		}
		out = append(out, di)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Role != out[j].Role {
			return out[i].Role < out[j].Role
		}
		return out[i].Name+out[i].ID < out[j].Name+out[j].ID
	})
	return out, d.save()
}
