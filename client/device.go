package client

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/fristed/fristed/client/replica"
	"github.com/fristed/fristed/client/transport"
	"github.com/fristed/fristed/client/vault"
	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// Errors callers branch on.
var (
	ErrNoDevice      = errors.New("no device here: run `fristed org init` or `fristed device init` first")
	ErrDeviceExists  = errors.New("a device already exists in this FRISTED_HOME")
	ErrNotApproved   = errors.New("this device is waiting for a coordinator to approve it")
	ErrNotCoord      = errors.New("only a coordinator device can do this")
	ErrUnknownWorker = errors.New("unknown worker")
	ErrUnknownRes    = errors.New("unknown resident")
	ErrWiped         = errors.New("this device was revoked by a coordinator and has been wiped")
)

// Options configure how a device is opened or created.
type Options struct {
	// Home is the device directory (FRISTED_HOME).
	Home string
	// Passphrase returns the device passphrase; confirm is true when a new
	// one is being chosen.
	Passphrase func(confirm bool) ([]byte, error)
	// WorkFactor is the scrypt cost (log2 N) for new identity files; zero
	// means the default. Tests use a low one.
	WorkFactor int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Notice receives one-line notices for the user (stderr in the CLI).
	Notice func(string)
	// Progress receives progress of long operations (sync).
	Progress func(done, total int, what string)
	// SnapshotEvery is how many batches past a stream's newest
	// countersigned snapshot make a worker device post a new one; zero
	// means DefaultSnapshotEvery. Tests use a small one.
	SnapshotEvery int

	// loginNow dates the relay login proofs (nil: the wall clock), for
	// tests that move the relay's clock and the devices' together.
	loginNow func() time.Time
	// RoundTripper, if set, carries every request to the relay instead of
	// the network. It is for tests (the real relay handler called
	// in-process, with faults injected) and for embedding a relay in the
	// same process; the relay's certificate pin is not checked through it.
	RoundTripper http.RoundTripper
}

// transportOptions are the transport options for a relay pinned as pin.
func (o *Options) transportOptions(pin string) transport.Options {
	return transport.Options{Pin: pin, Now: o.loginNow, RoundTripper: o.RoundTripper}
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now().UTC()
	}
	return time.Now().UTC()
}

func (o *Options) notice(format string, args ...any) {
	if o.Notice != nil {
		o.Notice(fmt.Sprintf(format, args...))
	}
}

// Device is an unlocked device. It is not safe for concurrent use; the web
// UI serialises calls.
type Device struct {
	opts   Options
	home   string
	kf     *fcrypto.KeyFile
	cfg    *Config
	pc     *parsedConfig
	vault  *vault.Vault
	rep    *replica.Replica
	chain  *syncproto.Chain
	relay  *transport.Client
	hlc    syncproto.HLC
	dirty  bool
	unlock func() // releases the lock on the device directory
	// relayKeyMismatch is set when the chain names another relay key than
	// the one pinned; every sync then fails.
	relayKeyMismatch bool
	// resealFailed is the last automatic re-seal failure told, so a
	// watching device does not repeat it at every sync.
	resealFailed string
	// keyq, while an admin action runs, gathers the wrapped keys it
	// sends, so they reach the relay in batches (sendingKeys).
	keyq *keyQueue
	// skewWarned is set once a sync said this laptop's clock runs ahead.
	skewWarned bool

	// CardPreview, if set, is shown an alarm card before it is sealed and
	// must return true to go ahead (a terminal prompt in the CLI).
	CardPreview func(card []byte) bool
}

// Exists reports whether home holds a device.
func Exists(home string) bool {
	_, err := os.Stat(filepath.Join(home, identityFile))
	return err == nil
}

// Open unlocks the device in opts.Home.
func Open(opts Options) (*Device, error) {
	home := opts.Home
	if !Exists(home) {
		if _, serr := os.Stat(filepath.Join(home, wipedMarker)); serr == nil {
			return nil, ErrWiped
		}
		return nil, ErrNoDevice
	}
	unlock, err := lockHome(home)
	if err != nil {
		return nil, err
	}
	d, err := open(opts)
	if err != nil {
		unlock()
		return nil, err
	}
	d.unlock = unlock
	return d, nil
}

func open(opts Options) (*Device, error) {
	home := opts.Home
	data, err := os.ReadFile(filepath.Join(home, identityFile))
	if os.IsNotExist(err) {
		if _, serr := os.Stat(filepath.Join(home, wipedMarker)); serr == nil {
			return nil, ErrWiped
		}
		return nil, ErrNoDevice
	}
	if err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	if opts.Passphrase == nil {
		return nil, errors.New("unlock: no passphrase source")
	}
	pass, err := opts.Passphrase(false)
	if err != nil {
		return nil, err
	}
	defer clear(pass)
	kf, err := fcrypto.DecryptKeyFile(data, pass, fcrypto.KindDevice)
	if err != nil {
		return nil, fmt.Errorf("unlock identity: %w", err)
	}
	return openWithKeys(opts, kf)
}

func openWithKeys(opts Options, kf *fcrypto.KeyFile) (*Device, error) {
	cfg, err := parseConfig(kf.Meta)
	if err != nil {
		return nil, err
	}
	pc, err := cfg.parse()
	if err != nil {
		return nil, err
	}
	d := &Device{opts: opts, home: opts.Home, kf: kf, cfg: cfg, pc: pc}
	v, state, frames, err := vault.Open(vault.OSFS{}, filepath.Join(d.home, vaultDir),
		kf.Box.Recipient().Recipient(), kf.Box.Identity(), vault.Options{Warn: func(s string) { opts.notice("%s", s) }})
	if err != nil {
		return nil, fmt.Errorf("open replica: %w", err)
	}
	d.vault = v
	if d.rep, err = replica.Load(state); err != nil {
		v.Close()
		return nil, fmt.Errorf("open replica: %w", err)
	}
	if err := d.init(); err != nil {
		d.abandon()
		return nil, err
	}
	for i, f := range frames {
		if err := d.replay(f); err != nil {
			d.abandon()
			return nil, fmt.Errorf("replay journal frame %d: %w", i+1, err)
		}
	}
	if len(frames) > 0 {
		d.dirty = true
	}
	return d, nil
}

// create makes a new device directory with keys kf and an empty replica.
func create(opts Options, kf *fcrypto.KeyFile, cfg *Config) (*Device, error) {
	if Exists(opts.Home) {
		return nil, ErrDeviceExists
	}
	cfg.Version = 1
	kf.Meta = cfg.marshal()
	pc, err := cfg.parse()
	if err != nil {
		return nil, err
	}
	unlock, err := lockHome(opts.Home)
	if err != nil {
		return nil, err
	}
	if opts.Passphrase == nil {
		return nil, errors.New("create identity: no passphrase source")
	}
	pass, err := opts.Passphrase(true)
	if err != nil {
		unlock()
		return nil, err
	}
	defer clear(pass)
	d := &Device{opts: opts, home: opts.Home, kf: kf, cfg: cfg, pc: pc, unlock: unlock}
	if d.rep, err = replica.New(); err != nil {
		unlock()
		return nil, err
	}
	if err := d.init(); err != nil {
		d.abandon()
		return nil, err
	}
	state, err := d.rep.Serialize()
	if err != nil {
		d.abandon()
		return nil, err
	}
	vdir := filepath.Join(d.home, vaultDir)
	os.RemoveAll(vdir) // leftovers of an interrupted earlier attempt hold nothing readable
	if d.vault, err = vault.Create(vault.OSFS{}, vdir, kf.Box.Recipient().Recipient(), kf.Box.Identity(), state); err != nil {
		d.abandon()
		return nil, fmt.Errorf("create replica: %w", err)
	}
	// The identity file is written last: its presence means "a device lives here".
	enc, err := fcrypto.EncryptKeyFile(kf, pass, opts.WorkFactor)
	if err != nil {
		d.abandon()
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(d.home, identityFile), enc); err != nil {
		d.abandon()
		return nil, err
	}
	return d, nil
}

// saveConfig re-encrypts the identity file with the current config.
func (d *Device) saveConfig(pass []byte) error {
	d.kf.Meta = d.cfg.marshal()
	enc, err := fcrypto.EncryptKeyFile(d.kf, pass, d.opts.WorkFactor)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(d.home, identityFile), enc)
}

// updateConfig persists a config change; it needs the passphrase again
// because the identity file is re-encrypted.
func (d *Device) updateConfig() error {
	pass, err := d.opts.Passphrase(false)
	if err != nil {
		return err
	}
	defer clear(pass)
	// Check the passphrase against the file before overwriting it.
	data, err := os.ReadFile(filepath.Join(d.home, identityFile))
	if err != nil {
		return fmt.Errorf("read identity: %w", err)
	}
	if _, err := fcrypto.DecryptKeyFile(data, pass, fcrypto.KindDevice); err != nil {
		return fmt.Errorf("update identity: %w", err)
	}
	return d.saveConfig(pass)
}

func (d *Device) abandon() {
	if d.rep != nil {
		d.rep.Close()
	}
	if d.vault != nil {
		d.vault.Close()
	}
	if d.unlock != nil {
		d.unlock()
		d.unlock = nil
	}
}

// Close folds the journal into a new snapshot if anything changed and
// releases the replica.
func (d *Device) Close() error {
	if d.rep == nil {
		return nil
	}
	err := d.save()
	d.abandon()
	d.rep, d.vault = nil, nil
	return err
}

// save compacts: the whole replica becomes the new snapshot.
func (d *Device) save() error {
	if !d.dirty {
		return nil
	}
	if err := d.putMeta("hlc", encodeHLC(d.hlc)); err != nil {
		return err
	}
	state, err := d.rep.Serialize()
	if err != nil {
		return fmt.Errorf("save replica: %w", err)
	}
	if err := d.vault.Compact(state); err != nil {
		return fmt.Errorf("save replica: %w", err)
	}
	d.dirty = false
	return nil
}

// ID returns the device id.
func (d *Device) ID() syncproto.DeviceID { return d.pc.device }

// Config returns a copy of the device configuration.
func (d *Device) Config() Config { return *d.cfg }

// Role returns the device's role.
func (d *Device) Role() Role { return d.cfg.Role }

// Org returns the pinned org fingerprint.
func (d *Device) Org() fcrypto.Fingerprint { return d.pc.org }

func (d *Device) db() *sql.DB { return d.rep.DB() }

func (d *Device) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
}
