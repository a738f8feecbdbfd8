package client

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fristed/fristed/client/transport"
	"github.com/fristed/fristed/client/vault"
	"github.com/fristed/fristed/syncproto"
)

const wipedMarker = "WIPED"

// ErrForgedWipe means the relay refused this device but could not prove a
// revocation: nothing was wiped.
var ErrForgedWipe = fmt.Errorf("the relay refused this device without a valid signed revocation; nothing was wiped")

// refused turns the relay's refusal of this device into what the device
// does about it: a revocation that verifies wipes it; the device_revoked
// code without one (which anyone can send) wipes nothing and says so,
// instead of repeating the relay's word that the device is revoked. Other
// errors pass through.
func (d *Device) refused(err error) error {
	var rev *transport.RevokedError
	if errors.As(err, &rev) {
		return d.handleRevoked(rev)
	}
	var we *syncproto.Error
	if errors.As(err, &we) && we.Code == syncproto.CodeDeviceRevoked {
		return fmt.Errorf("%w (it sent no revocation)", ErrForgedWipe)
	}
	return err
}

// handleRevoked obeys a wipe order only if it verifies: the chain the relay
// sent must verify from genesis against this device's pinned org
// fingerprint, contain the history this device saw, and revoke this
// device. Anything else is ignored and reported.
func (d *Device) handleRevoked(rev *transport.RevokedError) error {
	chain := syncproto.NewChain(d.pc.org)
	for _, raw := range rev.Chain {
		if _, err := chain.Append(raw); err != nil {
			return fmt.Errorf("%w (%v)", ErrForgedWipe, err)
		}
	}
	if head, ok := d.chain.Head(); ok {
		if err := chain.CheckHead(head); err != nil {
			return fmt.Errorf("%w (%v)", ErrForgedWipe, err)
		}
	}
	dev := chain.State().Devices[d.pc.device]
	if dev == nil || !dev.Revoked {
		return ErrForgedWipe
	}
	if err := d.wipe(); err != nil {
		return fmt.Errorf("this device was revoked, but wiping it failed: %w", err)
	}
	return ErrWiped
}

// wipe crypto-shreds the device: the identity file (and with it every key)
// and the replica files are overwritten and removed. A marker records that
// the wipe happened, so the next command can say so.
func (d *Device) wipe() error {
	d.abandon()
	d.rep, d.vault = nil, nil
	errID := shredFile(filepath.Join(d.home, identityFile))
	// A crash during an identity rewrite can leave a temp copy of it.
	if entries, err := os.ReadDir(d.home); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "."+identityFile+".tmp-") {
				shredFile(filepath.Join(d.home, e.Name()))
			}
		}
	}
	errV := vault.Destroy(vault.OSFS{}, filepath.Join(d.home, vaultDir))
	os.WriteFile(filepath.Join(d.home, wipedMarker), []byte("revoked by a coordinator; wiped\n"), 0o600)
	syncDir(d.home)
	if errID != nil {
		return errID
	}
	return errV
}
