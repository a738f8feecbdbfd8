package client

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// Role of this device as the device itself records it.
type Role string

const (
	RolePending     Role = "pending" // device init done, not approved yet
	RoleWorker      Role = "worker"
	RoleCoordinator Role = "coordinator"
)

// Config is what a device remembers about its org and relay. It is kept
// inside identity.age (KeyFile.Meta), so a stolen laptop does not even
// reveal which relay or org it belongs to.
type Config struct {
	Version   int    `json:"version"`
	Tenant    string `json:"tenant"`
	Org       string `json:"org"` // org fingerprint
	Device    string `json:"device"`
	Name      string `json:"name"`
	Role      Role   `json:"role"`
	RelayURL  string `json:"relay_url"`
	RelayPin  string `json:"relay_pin"` // TLS public-key pin ("" for loopback http)
	RelayKey  string `json:"relay_key"` // relay signing key
	RequestID string `json:"request_id,omitempty"`
	// While pending: the coordinator devices the name was sealed to and
	// the request's time, checked against the verified chain once approved.
	SealedTo  []string `json:"sealed_to,omitempty"`
	RequestMS uint64   `json:"request_ms,omitempty"`
}

func (c *Config) marshal() []byte {
	b, _ := json.Marshal(c)
	return b
}

func parseConfig(b []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("identity: malformed configuration")
	}
	if c.Version != 1 {
		return nil, fmt.Errorf("identity: configuration version %d (newer version?)", c.Version)
	}
	return &c, nil
}

type parsedConfig struct {
	tenant   syncproto.TenantID
	org      fcrypto.Fingerprint
	device   syncproto.DeviceID
	relayKey fcrypto.PublicKey
}

func (c *Config) parse() (*parsedConfig, error) {
	var p parsedConfig
	var err error
	if p.org, err = fcrypto.ParseFingerprint(c.Org); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if p.device, err = syncproto.ParseDeviceID(c.Device); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if c.Tenant != "" {
		if p.tenant, err = syncproto.ParseTenantID(c.Tenant); err != nil {
			return nil, fmt.Errorf("identity: %w", err)
		}
	}
	if p.relayKey, err = fcrypto.ParsePublicKey(c.RelayKey); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return &p, nil
}

// Paths inside FRISTED_HOME.
const (
	identityFile = "identity.age"
	vaultDir     = "vault"
)

// DefaultHome returns FRISTED_HOME or ~/.fristed.
func DefaultHome() string {
	if h := os.Getenv("FRISTED_HOME"); h != "" {
		return h
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".fristed"
	}
	return filepath.Join(home, ".fristed")
}
