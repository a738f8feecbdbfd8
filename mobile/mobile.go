// Package mobile is a facade over the client library shaped for gomobile
// bindings: only strings, ints, bools and errors cross it, and structured
// answers are JSON with the same shapes as the CLI's --json output.
package mobile

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/fristed/fristed/client"
)

// Device is an unlocked device. Its methods are safe for concurrent use;
// calls are serialised.
type Device struct {
	mu sync.Mutex
	d  *client.Device
}

// Open unlocks the device in home with its passphrase.
func Open(home, passphrase string) (*Device, error) {
	if passphrase == "" {
		return nil, errors.New("empty passphrase")
	}
	d, err := client.Open(client.Options{
		Home:       home,
		Passphrase: func(bool) ([]byte, error) { return []byte(passphrase), nil },
	})
	if err != nil {
		return nil, err
	}
	return &Device{d: d}, nil
}

// Close saves and locks the device; later calls fail.
func (m *Device) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.d == nil {
		return nil
	}
	err := m.d.Close()
	m.d = nil
	return err
}

func (m *Device) with(fn func(d *client.Device) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.d == nil {
		return errors.New("device is locked")
	}
	return fn(m.d)
}

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
}

// ResidentsJSON lists the residents on this device, as `resident list --json`.
func (m *Device) ResidentsJSON() (string, error) {
	var out []byte
	err := m.with(func(d *client.Device) error {
		rs, err := d.ResidentList()
		if err != nil {
			return err
		}
		out, err = json.Marshal(rs)
		return err
	})
	return string(out), err
}

// ResidentJSON returns one case, as `resident show --json`; reveal shows
// sealed fields and is recorded in the audit log.
func (m *Device) ResidentJSON(resident string, reveal bool) (string, error) {
	var out []byte
	err := m.with(func(d *client.Device) error {
		v, err := d.ResidentShow(resident, reveal)
		if err != nil {
			return err
		}
		out, err = json.Marshal(v)
		return err
	})
	return string(out), err
}

// AddLog adds a follow-up log entry and returns its id. The entry is saved
// on the device before the call returns; it reaches the relay at the next
// Sync.
func (m *Device) AddLog(resident, category string, minutes int, text string) (string, error) {
	var id string
	err := m.with(func(d *client.Device) error {
		var err error
		id, err = d.LogAdd(resident, category, minutes, text)
		return err
	})
	return id, err
}

// SetField sets one field of a resident's case.
func (m *Device) SetField(resident, field, value string) error {
	return m.with(func(d *client.Device) error {
		return d.ResidentSet(resident, map[string]string{field: value})
	})
}

// Pending returns the number of edits not yet accepted by the relay.
func (m *Device) Pending() (int, error) {
	var n int
	err := m.with(func(d *client.Device) error {
		var err error
		n, err = d.Pending()
		return err
	})
	return n, err
}

// Sync pushes and pulls, and returns {"pushed","pulled","pending"}.
func (m *Device) Sync() (string, error) {
	var out []byte
	err := m.with(func(d *client.Device) error {
		c, cancel := ctx()
		defer cancel()
		res, err := d.Sync(c)
		if err != nil {
			return err
		}
		out, err = json.Marshal(map[string]int{"pushed": res.Pushed, "pulled": res.Pulled, "pending": res.Pending})
		return err
	})
	return string(out), err
}
