package client

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/fristed/fristed/syncproto"
)

// The directory stream holds the human labels the chain must not: the org
// name, worker and device names, police contacts. It is encrypted to every
// active device of the tenant.
const (
	kindOrg    = "org"
	kindWorker = "worker"
	kindDevice = "device"
	kindPolice = "police"
)

var orgRecord = syncproto.DeltaID{}

func (d *Device) directory() (syncproto.StreamID, error) {
	id, ok := d.streamOfKind(syncproto.StreamDirectory)
	if !ok {
		return id, errors.New("the org has no directory yet: sync first")
	}
	return id, nil
}

// setDirectory writes fields of a directory record as a local edit.
func (d *Device) setDirectory(kind string, record syncproto.DeltaID, fields map[string]string) error {
	dir, err := d.directory()
	if err != nil {
		return err
	}
	ops, err := d.rep.SetOps(dir, kind, record, fields)
	if err != nil {
		return err
	}
	_, err = d.commit(dir, ops)
	return err
}

// label is one directory record.
type label struct {
	ID     syncproto.DeltaID
	Fields map[string]string
}

func (d *Device) labels(kind string) ([]label, error) {
	dir, ok := d.streamOfKind(syncproto.StreamDirectory)
	if !ok {
		return nil, nil
	}
	recs, err := d.rep.Records(dir, kind)
	if err != nil {
		return nil, fmt.Errorf("read directory: %w", err)
	}
	out := make([]label, 0, len(recs))
	for _, r := range recs {
		out = append(out, label{ID: r.ID, Fields: r.Fields})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Fields["name"] < out[j].Fields["name"] })
	return out, nil
}

// workerByName finds an active worker by the name in the directory.
func (d *Device) workerByName(name string) (syncproto.WorkerID, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return syncproto.WorkerID{}, errors.New("a worker name is required (--worker NAME)")
	}
	ls, err := d.labels(kindWorker)
	if err != nil {
		return syncproto.WorkerID{}, err
	}
	st := d.chain.State()
	for _, l := range ls {
		if strings.EqualFold(l.Fields["name"], name) {
			w := syncproto.WorkerID(l.ID)
			if info := st.Workers[w]; info != nil && !info.Removed {
				return w, nil
			}
		}
	}
	return syncproto.WorkerID{}, fmt.Errorf("%w %q (see `fristed worker list`)", ErrUnknownWorker, name)
}

func (d *Device) labelOf(kind string, id syncproto.DeltaID) string {
	dir, ok := d.streamOfKind(syncproto.StreamDirectory)
	if !ok {
		return ""
	}
	recs, err := d.rep.Records(dir, kind)
	if err != nil {
		return ""
	}
	for _, r := range recs {
		if r.ID == id {
			return r.Fields["name"]
		}
	}
	return ""
}

// OrgName returns the organisation's name from the directory.
func (d *Device) OrgName() string { return d.labelOf(kindOrg, orgRecord) }
