package client

import (
	"context"
	"errors"

	"github.com/fristed/fristed/syncproto"
)

// Settings are the org's settings as the chain holds them. Zero means the
// default.
type Settings struct {
	RetentionDays      uint32 `json:"retention_days"`
	EnvelopeExpiryDays uint32 `json:"envelope_expiry_days"`
	AutoLockMinutes    uint32 `json:"auto_lock_minutes"`
}

// Defaults for settings never set.
const (
	DefaultRetentionDays      = syncproto.DefaultRetentionDays
	DefaultEnvelopeExpiryDays = 180
	DefaultAutoLockMinutes    = 10
)

// Settings returns the org's settings with defaults filled in.
func (d *Device) Settings() Settings {
	s := d.chain.State().Settings
	out := Settings{RetentionDays: s.RetentionDays, EnvelopeExpiryDays: s.EnvelopeExpiryDays, AutoLockMinutes: s.AutoLockMinutes}
	if out.RetentionDays == 0 {
		out.RetentionDays = DefaultRetentionDays
	}
	if out.EnvelopeExpiryDays == 0 {
		out.EnvelopeExpiryDays = DefaultEnvelopeExpiryDays
	}
	if out.AutoLockMinutes == 0 {
		out.AutoLockMinutes = DefaultAutoLockMinutes
	}
	return out
}

// SetSettings changes the settings given (nil leaves one as it is) with a
// signed statement.
func (d *Device) SetSettings(ctx context.Context, retention, expiry, autoLock *uint32) (Settings, error) {
	if err := d.requireCoordinator(); err != nil {
		return Settings{}, err
	}
	if err := d.refreshChain(ctx); err != nil {
		return Settings{}, err
	}
	cur := d.Settings()
	next := cur
	if retention != nil {
		next.RetentionDays = *retention
	}
	if expiry != nil {
		next.EnvelopeExpiryDays = *expiry
	}
	if autoLock != nil {
		next.AutoLockMinutes = *autoLock
	}
	if next.RetentionDays < 1 || next.RetentionDays > 365*50 || next.EnvelopeExpiryDays < 1 || next.EnvelopeExpiryDays > 3650 ||
		next.AutoLockMinutes < 1 || next.AutoLockMinutes > 24*60 {
		return cur, errors.New("settings out of range: retention 1-18250 days, envelope expiry 1-3650 days, auto-lock 1-1440 minutes")
	}
	if next == cur {
		return cur, nil
	}
	body := &syncproto.SettingsChanged{RetentionDays: next.RetentionDays, EnvelopeExpiryDays: next.EnvelopeExpiryDays, AutoLockMinutes: next.AutoLockMinutes}
	if _, err := d.postStatement(ctx, body, nil); err != nil {
		return cur, err
	}
	return d.Settings(), d.save()
}
