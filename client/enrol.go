package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
	"unicode/utf8"

	"filippo.io/age"

	"github.com/fristed/fristed/client/transport"
	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// DeviceInitParams are the inputs of DeviceInit.
type DeviceInitParams struct {
	RelayURL string
	Org      fcrypto.Fingerprint
	Name     string // the device's name, sealed to the coordinators
}

// DeviceInit makes keys for a new device, posts its enrolment request and
// returns the device (role pending) and its enrolment code. The code
// commits to the device's public keys, so a coordinator typing it detects a
// relay that swapped them.
func DeviceInit(ctx context.Context, opts Options, p DeviceInitParams) (*Device, string, error) {
	if Exists(opts.Home) {
		return nil, "", ErrDeviceExists
	}
	if p.Name == "" {
		return nil, "", errors.New("device init: --name is required")
	}
	if len(p.Name) > syncproto.MaxEnrolName || !utf8.ValidString(p.Name) {
		return nil, "", fmt.Errorf("device init: --name must be UTF-8 text of at most %d bytes", syncproto.MaxEnrolName)
	}
	c, err := transport.New(p.RelayURL, opts.transportOptions(""))
	if err != nil {
		return nil, "", err
	}
	relayKey, err := c.RelayKey(ctx)
	if err != nil {
		return nil, "", err
	}
	tenant, err := c.LookupOrg(ctx, p.Org)
	if err != nil {
		return nil, "", err
	}
	c.SetTenant(tenant)
	info, err := c.EnrolInfo(ctx)
	if err != nil {
		return nil, "", err
	}
	coords, sealedTo, err := coordinatorRecipients(info, p.Org, tenant)
	if err != nil {
		return nil, "", fmt.Errorf("device init: %w", err)
	}
	// The relay key this device pins must be the one the org registered.
	if g, _ := syncproto.UnmarshalStatement(info[0]); !g.Body.(*syncproto.TenantCreated).Relay.Equal(relayKey) {
		return nil, "", errors.New("device init: the relay's key is not the one registered for this org (possible impersonation)")
	}
	keys, err := fcrypto.NewDeviceKeys()
	if err != nil {
		return nil, "", err
	}
	// The name travels in a fixed-size message: the relay sees the age
	// file's length, which must say nothing about the name.
	nameMsg, err := syncproto.MarshalEnrolName(p.Name)
	if err != nil {
		return nil, "", fmt.Errorf("device init: --name: %w", err)
	}
	sealed, err := sealTo(nameMsg, coords)
	if err != nil {
		return nil, "", err
	}
	req := &syncproto.Enrolment{Tenant: tenant, Request: syncproto.NewRequestID(), SignPub: keys.Sign.Public(),
		Box: keys.Box.Recipient().String(), CreatedMS: uint64(opts.now().UnixMilli()), Sealed: sealed}
	if err := req.Sign(keys.Sign); err != nil {
		return nil, "", err
	}
	devID := syncproto.DeviceIDFromKey(keys.Sign.Public())
	cfg := &Config{Tenant: tenant.String(), Org: p.Org.String(), Device: devID.String(), Name: p.Name,
		Role: RolePending, RelayURL: c.URL(), RelayPin: c.Pin(), RelayKey: relayKey.String(), RequestID: req.Request.String(),
		SealedTo: sealedTo, RequestMS: req.CreatedMS}
	d, err := create(opts, keys, cfg)
	if err != nil {
		return nil, "", err
	}
	if err := c.PostEnrolment(ctx, req.Marshal()); err != nil {
		// The relay never got the request: leave nothing behind, so the
		// command can simply be run again.
		d.Close()
		os.Remove(filepath.Join(opts.Home, identityFile))
		os.RemoveAll(filepath.Join(opts.Home, vaultDir))
		return nil, "", err
	}
	return d, req.Code(), nil
}

// coordinatorRecipients verifies the root-signed statements a relay gave a
// new device against the org fingerprint and returns the recipients of the
// coordinator devices that are not revoked, and their ids.
//
// The statements are not hash-linked (a device that is not enrolled may not
// read the rest of the chain), so a relay can leave out a coordinator's
// revocation here. That cannot be seen before sealing; the device checks it
// once approved, against the whole verified chain (checkSealedTo).
func coordinatorRecipients(info [][]byte, org fcrypto.Fingerprint, tenant syncproto.TenantID) ([]age.Recipient, []string, error) {
	if err := checkEnrolInfo(info, org, tenant); err != nil {
		return nil, nil, err
	}
	g, _ := syncproto.UnmarshalStatement(info[0])
	root := g.Body.(*syncproto.TenantCreated).Root
	boxes := map[syncproto.DeviceID]string{}
	last := g.Pos
	for _, raw := range info[1:] {
		st, err := syncproto.UnmarshalStatement(raw)
		if err != nil || st.Signer != syncproto.SignerRoot || st.Tenant != tenant {
			return nil, nil, errors.New("malformed enrolment info")
		}
		if err := st.VerifySig(root); err != nil {
			return nil, nil, err
		}
		// In chain order, each once: a relay may not replay an old
		// delegation after the revocation that ended it.
		if st.Pos <= last {
			return nil, nil, errors.New("the relay sent the org's root statements out of order")
		}
		last = st.Pos
		switch b := st.Body.(type) {
		case *syncproto.CoordinatorDelegated:
			boxes[b.Device] = b.Box
		case *syncproto.DeviceRevoked:
			delete(boxes, b.Device)
		}
	}
	var out []age.Recipient
	var ids []string
	for id, box := range boxes {
		r, err := fcrypto.ParseBoxRecipient(box)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, r.Recipient())
		ids = append(ids, id.String())
	}
	if len(out) == 0 {
		return nil, nil, errors.New("the org has no coordinator device")
	}
	sort.Strings(ids)
	return out, ids, nil
}

// checkSealedTo runs once the device is approved and holds the verified
// chain: a coordinator device it sealed its name to that a root-signed
// revocation dated before the request had already revoked means the relay
// hid that revocation at device init, and whoever holds that laptop may
// have read this device's name. Said in a notice; nothing else leaked
// (the approval itself came through the verified chain).
func (d *Device) checkSealedTo() {
	if len(d.cfg.SealedTo) == 0 {
		return
	}
	sealed := map[syncproto.DeviceID]bool{}
	for _, s := range d.cfg.SealedTo {
		if id, err := syncproto.ParseDeviceID(s); err == nil {
			sealed[id] = true
		}
	}
	for pos := 0; pos < d.chain.Len(); pos++ {
		st := d.chain.Statement(syncproto.ChainPos(pos))
		rv, ok := st.Body.(*syncproto.DeviceRevoked)
		if !ok || !sealed[rv.Device] || st.TimeMS+uint64(MaxClockSkew.Milliseconds()) >= d.cfg.RequestMS {
			continue
		}
		d.opts.notice("warning: at device init the relay hid the revocation of coordinator laptop %s (revoked %s), and this laptop's name was sealed to it: tell a coordinator",
			rv.Device, time.UnixMilli(int64(st.TimeMS)).UTC().Format(time.RFC3339))
	}
}

func sealTo(plain []byte, rs []age.Recipient) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rs...)
	if err != nil {
		return nil, err
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkApproved turns a pending device into a worker device once its
// enrolment is in the chain.
func (d *Device) checkApproved(ctx context.Context) error {
	c, err := d.client()
	if err != nil {
		return err
	}
	if _, err := c.Chain(ctx, 0); err != nil {
		var we *syncproto.Error
		if errors.As(err, &we) && (we.Code == syncproto.CodeUnauthorized || we.Code == syncproto.CodeNotFound) {
			return ErrNotApproved
		}
		return err
	}
	if err := d.refreshChain(ctx); err != nil {
		return err
	}
	info := d.chain.State().Devices[d.pc.device]
	if info == nil {
		return ErrNotApproved
	}
	if !info.SignPub.Equal(d.kf.Sign.Public()) || info.Box != d.kf.Box.Recipient().String() {
		return errors.New("the chain enrolled this device id with other keys: refusing to use it")
	}
	d.cfg.Role = RoleWorker
	if info.Role == syncproto.RoleCoordinator {
		d.cfg.Role = RoleCoordinator
	}
	d.checkSealedTo()
	d.cfg.RequestID, d.cfg.SealedTo, d.cfg.RequestMS = "", nil, 0
	return d.updateConfig()
}

// ApproveParams are the inputs of Approve.
type ApproveParams struct {
	Code        string
	Worker      string    // worker name, for a worker device
	Coordinator bool      // enrol as a coordinator device (needs Recovery)
	Recovery    *Recovery // the org root key, for coordinator devices
	// Confirm, if set, is shown the device name and short code and must
	// return true to go ahead (a terminal prompt in the CLI).
	Confirm func(name, shortCode string) bool
}

// Approve enrols the device behind an enrolment code. It fetches the
// request from the relay and checks the keys against the code before
// anything is signed.
func (d *Device) Approve(ctx context.Context, p ApproveParams) (syncproto.DeviceID, error) {
	if err := d.requireCoordinator(); err != nil {
		return syncproto.DeviceID{}, err
	}
	reqID, _, err := fcrypto.ParseEnrolmentCode(p.Code)
	if err != nil {
		return syncproto.DeviceID{}, err
	}
	var rid syncproto.RequestID
	copy(rid[:], reqID)
	c, err := d.client()
	if err != nil {
		return syncproto.DeviceID{}, err
	}
	if err := d.refreshChain(ctx); err != nil {
		return syncproto.DeviceID{}, err
	}
	var worker syncproto.WorkerID
	switch {
	case p.Coordinator && p.Recovery == nil:
		return syncproto.DeviceID{}, errors.New("approving a coordinator device needs --recovery FILE")
	case p.Coordinator:
		if !p.Recovery.Fingerprint().Equal(d.pc.org) {
			return syncproto.DeviceID{}, errors.New("the recovery file belongs to another org")
		}
	default:
		if worker, err = d.workerByName(p.Worker); err != nil {
			return syncproto.DeviceID{}, err
		}
	}
	raw, err := c.GetEnrolment(ctx, rid)
	if err != nil {
		var we *syncproto.Error
		if errors.As(err, &we) && we.Code == syncproto.CodeNotFound {
			return syncproto.DeviceID{}, errors.New("unknown or already used enrolment code")
		}
		return syncproto.DeviceID{}, err
	}
	req, err := syncproto.UnmarshalEnrolment(raw)
	if err != nil {
		return syncproto.DeviceID{}, fmt.Errorf("enrolment request: %w", err)
	}
	if req.Request != rid || req.Tenant != d.pc.tenant {
		return syncproto.DeviceID{}, fcrypto.ErrEnrolmentMismatch
	}
	if err := fcrypto.CheckEnrolment(p.Code, req.SignPub, req.Box); err != nil {
		return syncproto.DeviceID{}, err
	}
	if err := req.Verify(); err != nil {
		return syncproto.DeviceID{}, err
	}
	name := "(unnamed)"
	if plain, err := openSealed(req.Sealed, d.kf.Box.Identity()); err == nil {
		if n, err := syncproto.UnmarshalEnrolName(plain); err == nil {
			name = n
		}
	}
	if p.Confirm != nil && !p.Confirm(name, fcrypto.ShortCode(req.Commitment())) {
		return syncproto.DeviceID{}, errors.New("not approved")
	}
	devID := syncproto.DeviceIDFromKey(req.SignPub)
	if d.chain.State().Devices[devID] != nil {
		return syncproto.DeviceID{}, errors.New("this device is already enrolled")
	}
	if p.Coordinator {
		body := &syncproto.CoordinatorDelegated{Device: devID, SignPub: req.SignPub, Box: req.Box}
		s, err := d.postStatement(ctx, body, p.Recovery.root)
		if err != nil {
			return syncproto.DeviceID{}, err
		}
		p.Recovery.remember(&d.opts, s.Pos, mustHash(d.chain, s.Pos))
	} else {
		c := req.Commitment()
		body := &syncproto.DeviceEnrolled{Device: devID, Worker: worker, SignPub: req.SignPub, Box: req.Box, Commitment: syncproto.Hash(c)}
		if _, err := d.postStatement(ctx, body, nil); err != nil {
			return syncproto.DeviceID{}, err
		}
	}
	if err := d.setDirectory(kindDevice, syncproto.DeltaID(devID), map[string]string{"name": name}); err != nil {
		return syncproto.DeviceID{}, err
	}
	// The new device joins every stream it should read: new epochs wrapped
	// to it, with the older keys so it can read the history.
	if err := d.rekeyAll(ctx); err != nil {
		return syncproto.DeviceID{}, err
	}
	_ = c.DeleteEnrolment(ctx, rid)
	var res SyncResult
	if err := d.push(ctx, &res); err != nil {
		return syncproto.DeviceID{}, err
	}
	return devID, d.save()
}

func openSealed(sealed []byte, id age.Identity) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(sealed), id)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// rekeyAll starts a new epoch on every stream whose key holders differ
// from who should hold it now, sending the keys in batches.
func (d *Device) rekeyAll(ctx context.Context) error {
	return d.sendingKeys(ctx, func() error {
		for _, id := range sortedStreamIDs(d.chain.State().Streams) {
			if err := d.rekey(ctx, id, false); err != nil {
				return err
			}
		}
		return nil
	})
}

func (d *Device) requireCoordinator() error {
	if d.cfg.Role != RoleCoordinator {
		return ErrNotCoord
	}
	return nil
}
