package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/fristed/fristed/client/transport"
	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// recoveryMeta is kept inside the recovery file beside the root key.
type recoveryMeta struct {
	Version  int    `json:"version"`
	Tenant   string `json:"tenant"`
	Org      string `json:"org"`
	RelayURL string `json:"relay_url"`
	RelayPin string `json:"relay_pin"`
	RelayKey string `json:"relay_key"`
	// LastRoot is the newest root-signed statement made with this file
	// (chain position and hash): org recover refuses a chain without it,
	// so a relay cannot roll the chain back past, say, a coordinator's
	// revocation. Absent until the file is first used.
	LastRoot *recoveryHead `json:"last_root,omitempty"`
}

type recoveryHead struct {
	Pos  uint64 `json:"pos"`
	Hash string `json:"hash"`
}

// Recovery is an opened recovery file: the org root key.
type Recovery struct {
	root *fcrypto.SigningKey
	meta recoveryMeta
	kf   *fcrypto.KeyFile
	path string // where to record LastRoot; "" for none
	pass []byte
	work int // the file's scrypt cost, kept when it is rewritten
}

// OpenRecovery decrypts a recovery file.
func OpenRecovery(path string, pass []byte) (*Recovery, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read recovery file: %w", err)
	}
	kf, err := fcrypto.DecryptKeyFile(data, pass, fcrypto.KindRoot)
	if err != nil {
		return nil, fmt.Errorf("open recovery file: %w", err)
	}
	var m recoveryMeta
	if err := json.Unmarshal(kf.Meta, &m); err != nil || m.Version != 1 {
		return nil, errors.New("open recovery file: malformed")
	}
	if m.LastRoot != nil {
		if _, err := syncproto.ParseHash(m.LastRoot.Hash); err != nil {
			return nil, errors.New("open recovery file: malformed")
		}
	}
	work, err := fcrypto.KeyFileWorkFactor(data)
	if err != nil {
		return nil, fmt.Errorf("open recovery file: %w", err)
	}
	return &Recovery{root: kf.Sign, meta: m, kf: kf, path: path, pass: append([]byte(nil), pass...), work: work}, nil
}

// remember records a root-signed statement just appended as the file's
// LastRoot (rewritten atomically, same passphrase and cost). The statement
// stands either way: a file that cannot be written (read-only media) only
// weakens a later org recover's rollback check, which the notice says.
func (r *Recovery) remember(opts *Options, pos syncproto.ChainPos, h syncproto.Hash) {
	if r.path == "" || (r.meta.LastRoot != nil && r.meta.LastRoot.Pos > uint64(pos)) {
		return
	}
	m := r.meta
	m.LastRoot = &recoveryHead{Pos: uint64(pos), Hash: h.String()}
	mb, _ := json.Marshal(m)
	kf := *r.kf
	kf.Meta = mb
	enc, err := fcrypto.EncryptKeyFile(&kf, r.pass, r.work)
	if err == nil {
		err = writeFileAtomic(r.path, enc)
	}
	if err != nil {
		opts.notice("could not record chain position %d in the recovery file (%v): org recover will not detect a rollback past it", pos, err)
		return
	}
	r.meta = m
}

// checkLastRoot refuses a chain that lacks the newest root statement this
// recovery file made.
func (r *Recovery) checkLastRoot(ch *syncproto.Chain) error {
	lr := r.meta.LastRoot
	if lr == nil {
		return nil
	}
	want, _ := syncproto.ParseHash(lr.Hash)
	if got, ok := ch.HashAt(syncproto.ChainPos(lr.Pos)); !ok || got != want {
		return fmt.Errorf("%w: the relay's chain lacks the root statement this recovery file signed at position %d (a rollback or fork)",
			syncproto.ErrRollback, lr.Pos)
	}
	return nil
}

// Fingerprint returns the org fingerprint the recovery file belongs to.
func (r *Recovery) Fingerprint() fcrypto.Fingerprint { return fcrypto.OrgFingerprint(r.root.Public()) }

// OrgInitParams are the inputs of OrgInit.
type OrgInitParams struct {
	RelayURL     string
	Invite       string
	Name         string // the organisation's (unit's) name: kept only in the encrypted directory
	RecoveryOut  string
	RecoveryPass []byte
}

// OrgInit creates an organisation: an org root key written only to the
// recovery file, this device as its first coordinator, the tenant on the
// relay, and the directory and audit streams.
func OrgInit(ctx context.Context, opts Options, p OrgInitParams) (*Device, error) {
	if Exists(opts.Home) {
		return nil, ErrDeviceExists
	}
	if p.Name == "" {
		return nil, errors.New("org init: --name is required")
	}
	if len(p.RecoveryPass) == 0 {
		return nil, errors.New("org init: empty recovery passphrase")
	}
	if _, err := os.Stat(p.RecoveryOut); err == nil {
		return nil, fmt.Errorf("org init: %s exists; refusing to overwrite a recovery file", p.RecoveryOut)
	}
	c, err := transport.New(p.RelayURL, opts.transportOptions(""))
	if err != nil {
		return nil, err
	}
	relayKey, err := c.RelayKey(ctx)
	if err != nil {
		return nil, err
	}
	root, err := fcrypto.GenerateSigningKey()
	if err != nil {
		return nil, err
	}
	org := fcrypto.OrgFingerprint(root.Public())
	tenant := syncproto.NewTenantID()
	meta := recoveryMeta{Version: 1, Tenant: tenant.String(), Org: org.String(), RelayURL: c.URL(), RelayPin: c.Pin(), RelayKey: relayKey.String()}
	mb, _ := json.Marshal(meta)
	// The recovery file is written before anything reaches the relay, so
	// the root key cannot be lost half-way.
	enc, err := fcrypto.EncryptKeyFile(&fcrypto.KeyFile{Kind: fcrypto.KindRoot, Sign: root, Meta: mb}, p.RecoveryPass, opts.WorkFactor)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(p.RecoveryOut, enc); err != nil {
		return nil, fmt.Errorf("write recovery file: %w", err)
	}
	keys, err := fcrypto.NewDeviceKeys()
	if err != nil {
		return nil, err
	}
	devID := syncproto.DeviceIDFromKey(keys.Sign.Public())

	chain := syncproto.NewChain(org)
	now := uint64(opts.now().UnixMilli())
	var raws [][]byte
	for _, b := range []syncproto.Body{
		&syncproto.TenantCreated{Root: root.Public(), Relay: relayKey},
		&syncproto.CoordinatorDelegated{Device: devID, SignPub: keys.Sign.Public(), Box: keys.Box.Recipient().String()},
	} {
		st := chain.Next(tenant, syncproto.SignerRoot, syncproto.DeviceID{}, now, b)
		if err := st.Sign(root); err != nil {
			return nil, err
		}
		raw, err := st.Marshal()
		if err != nil {
			return nil, err
		}
		if _, err := chain.Append(raw); err != nil {
			return nil, err
		}
		raws = append(raws, raw)
	}
	got, err := c.CreateTenant(ctx, p.Invite, raws)
	if err != nil {
		var we *syncproto.Error
		if errors.As(err, &we) {
			// Refused outright: no org exists for this root key, so its
			// recovery file is worthless; remove it so a retry can write one.
			shredFile(p.RecoveryOut)
		}
		return nil, err
	}
	if got != tenant {
		return nil, errors.New("org init: relay registered another tenant id")
	}
	cfg := &Config{Tenant: tenant.String(), Org: org.String(), Device: devID.String(), Name: "coordinator",
		Role: RoleCoordinator, RelayURL: c.URL(), RelayPin: c.Pin(), RelayKey: relayKey.String()}
	d, err := create(opts, keys, cfg)
	if err != nil {
		return nil, err
	}
	for _, raw := range raws {
		if _, err := d.appendChain(raw); err != nil {
			d.Close()
			return nil, err
		}
	}
	if err := d.setupStreams(ctx, p.Name); err != nil {
		d.Close()
		return nil, fmt.Errorf("org init: %w", err)
	}
	return d, d.save()
}

// setupStreams creates the directory and audit streams if missing and
// records the org name in the directory.
func (d *Device) setupStreams(ctx context.Context, orgName string) error {
	for _, kind := range []syncproto.StreamKind{syncproto.StreamDirectory, syncproto.StreamAudit} {
		if _, ok := d.streamOfKind(kind); ok {
			continue
		}
		id := syncproto.NewStreamID()
		if _, err := d.postStatement(ctx, &syncproto.StreamCreated{Stream: id, Kind: kind}, nil); err != nil {
			return err
		}
		if _, err := d.startEpoch(ctx, id, desiredDevices(d.chain.State(), id)); err != nil {
			return err
		}
	}
	if orgName != "" {
		if err := d.setDirectory(kindOrg, orgRecord, map[string]string{"name": orgName}); err != nil {
			return err
		}
		if err := d.setDirectory(kindDevice, syncproto.DeltaID(d.pc.device), map[string]string{"name": d.cfg.Name}); err != nil {
			return err
		}
	}
	var res SyncResult
	return d.push(ctx, &res)
}

func (d *Device) streamOfKind(kind syncproto.StreamKind) (syncproto.StreamID, bool) {
	var best *syncproto.StreamInfo
	for _, s := range d.chain.State().Streams {
		if s.Kind == kind && !s.Purged && (best == nil || s.CreatedAt < best.CreatedAt) {
			best = s
		}
	}
	if best == nil {
		return syncproto.StreamID{}, false
	}
	return best.ID, true
}

// OrgRecover enrols a new coordinator device through the root key, for
// when the last coordinator laptop is lost.
func OrgRecover(ctx context.Context, opts Options, relayURL string, org fcrypto.Fingerprint, rec *Recovery) (*Device, error) {
	if Exists(opts.Home) {
		return nil, ErrDeviceExists
	}
	if !rec.Fingerprint().Equal(org) {
		return nil, errors.New("org recover: the recovery file belongs to another org")
	}
	if relayURL == "" {
		relayURL = rec.meta.RelayURL
	}
	c, err := transport.New(relayURL, opts.transportOptions(rec.meta.RelayPin))
	if err != nil {
		return nil, err
	}
	relayKey, err := fcrypto.ParsePublicKey(rec.meta.RelayKey)
	if err != nil {
		return nil, err
	}
	tenant, err := syncproto.ParseTenantID(rec.meta.Tenant)
	if err != nil {
		return nil, err
	}
	c.SetTenant(tenant)
	// The root signs only on a head it has verified; this first check
	// refuses a lying relay before anything is made.
	if _, err := rootVerifiedChain(ctx, c, rec, tenant, relayKey); err != nil {
		return nil, fmt.Errorf("org recover: %w", err)
	}
	keys, err := fcrypto.NewDeviceKeys()
	if err != nil {
		return nil, err
	}
	devID := syncproto.DeviceIDFromKey(keys.Sign.Public())
	cfg := &Config{Tenant: tenant.String(), Org: org.String(), Device: devID.String(), Name: "coordinator",
		Role: RoleCoordinator, RelayURL: c.URL(), RelayPin: rec.meta.RelayPin, RelayKey: relayKey.String()}
	// The new device cannot read the chain until it is delegated; the root
	// signs its delegation on top of the relay's head, which the relay
	// checks. Posting goes through a temporary login-less path: the
	// statement is root-signed, so the relay accepts it from the enrolment
	// endpoint for root statements.
	d, err := create(opts, keys, cfg)
	if err != nil {
		return nil, err
	}
	if err := d.recoverDelegate(ctx, rec, relayKey); err != nil {
		d.Close()
		os.RemoveAll(opts.Home)
		return nil, fmt.Errorf("org recover: %w", err)
	}
	if err := d.refreshChain(ctx); err != nil {
		d.Close()
		return nil, err
	}
	if !d.chain.State().Relay.Equal(relayKey) {
		d.Close()
		return nil, errors.New("org recover: the relay's key is not the one registered for this org")
	}
	// Join every stream: new epochs wrapped to the remaining devices and
	// this one. History written before is readable only where a device
	// that holds the old keys shares them.
	if err := d.rekeyAll(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("org recover: %w", err)
	}
	return d, d.save()
}

func checkEnrolInfo(info [][]byte, org fcrypto.Fingerprint, tenant syncproto.TenantID) error {
	if len(info) == 0 {
		return errors.New("relay sent no genesis")
	}
	g, err := syncproto.UnmarshalStatement(info[0])
	if err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	tc, ok := g.Body.(*syncproto.TenantCreated)
	if !ok || g.Pos != 0 || g.Tenant != tenant {
		return errors.New("relay sent a bad genesis")
	}
	if !fcrypto.OrgFingerprint(tc.Root).Equal(org) {
		return syncproto.ErrFingerprint
	}
	if err := g.VerifySig(tc.Root); err != nil {
		return err
	}
	return nil
}

// rootVerifiedChain reads the whole chain with the root key (the new
// device cannot log in yet) and verifies it from the genesis against the
// org fingerprint, as every device does: a relay that names a head it
// forged, or a chain that does not verify up to it, is refused before the
// root signs anything on it.
func rootVerifiedChain(ctx context.Context, c *transport.Client, rec *Recovery, tenant syncproto.TenantID, relayKey fcrypto.PublicKey) (*syncproto.Chain, error) {
	raws, err := c.RootChain(ctx, rec.root, relayKey)
	if err != nil {
		return nil, err
	}
	ch := syncproto.NewChain(rec.Fingerprint())
	for i, raw := range raws {
		if _, err := ch.Append(raw); err != nil {
			return nil, fmt.Errorf("the relay's chain does not verify at statement %d: %w", i, err)
		}
	}
	if ch.Len() == 0 || ch.Statement(0).Tenant != tenant {
		return nil, errors.New("the relay sent no chain for this org")
	}
	if !ch.State().Relay.Equal(relayKey) {
		return nil, errors.New("the relay's key is not the one registered for this org")
	}
	if err := rec.checkLastRoot(ch); err != nil {
		return nil, err
	}
	return ch, nil
}

// recoverDelegate has the root delegate this (new) device as a
// coordinator, on top of the head of the chain it has just verified; the
// statement must verify on that chain before it is sent.
func (d *Device) recoverDelegate(ctx context.Context, rec *Recovery, relayKey fcrypto.PublicKey) error {
	c, err := d.client()
	if err != nil {
		return err
	}
	body := &syncproto.CoordinatorDelegated{Device: d.pc.device, SignPub: d.kf.Sign.Public(), Box: d.kf.Box.Recipient().String()}
	for attempt := 0; attempt < 5; attempt++ {
		ch, err := rootVerifiedChain(ctx, c, rec, d.pc.tenant, relayKey)
		if err != nil {
			return err
		}
		head, _ := ch.Head()
		st := &syncproto.Statement{Tenant: d.pc.tenant, Pos: head.Pos + 1, Prev: head.Hash, Signer: syncproto.SignerRoot,
			TimeMS: uint64(d.opts.now().UnixMilli()), Body: body}
		if err := st.Sign(rec.root); err != nil {
			return err
		}
		raw, err := st.Marshal()
		if err != nil {
			return err
		}
		if _, err := ch.Append(raw); err != nil {
			return fmt.Errorf("the delegation does not verify on the chain: %w", err)
		}
		if _, err := c.PostRootStatement(ctx, raw); err != nil {
			var we *syncproto.Error
			if errors.As(err, &we) && we.Code == syncproto.CodeChainConflict {
				continue
			}
			return err
		}
		rec.remember(&d.opts, st.Pos, syncproto.HashStatement(raw))
		return nil
	}
	return errors.New("the chain kept moving; try again")
}
