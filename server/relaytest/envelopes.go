package relaytest

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// SecretHash is what a coordinator sends for a release credential's
// secret.
func SecretHash(secret []byte) syncproto.Hash { return syncproto.Hash(sha256.Sum256(secret)) }

// ReleaseKey asks for a release recipient for the alarm's next generation
// (coordinators).
func (s *Session) ReleaseKey(alarm syncproto.AlarmID) (fcrypto.BoxRecipient, uint32, error) {
	var out struct {
		Recipient  string `json:"recipient"`
		Generation uint32 `json:"generation"`
	}
	if _, err := s.Call(http.MethodPost, "/envelopes/"+alarm.String()+"/release-key", "", nil, &out); err != nil {
		return fcrypto.BoxRecipient{}, 0, err
	}
	r, err := fcrypto.ParseBoxRecipient(out.Recipient)
	return r, out.Generation, err
}

// PutEnvelope uploads an outer layer (coordinators).
func (s *Session) PutEnvelope(alarm syncproto.AlarmID, generation uint32, outer []byte, secretHash syncproto.Hash) error {
	body, _ := json.Marshal(map[string]any{"generation": generation, "outer": b64(outer), "secret_hash": secretHash.String()})
	_, err := s.Call(http.MethodPut, "/envelopes/"+alarm.String(), "application/json", body, nil)
	return err
}

// Released is a release answer.
type Released struct {
	Inner      []byte
	Sealed     []byte   // the coordinator-signed "envelope sealed" statement
	Proof      [][]byte // the chain from genesis up to and including the released fact
	SealedAt   time.Time
	ReleasedAt time.Time
	Retry      bool
}

// ReleaseBody is the JSON body of a release request.
func ReleaseBody(secret, nonce []byte) []byte {
	body, _ := json.Marshal(map[string]string{"secret": b64(secret), "nonce": b64(nonce)})
	return body
}

// Release asks the relay to release an envelope; no login, the secret is
// the credential.
func (c *Client) Release(t syncproto.TenantID, alarm syncproto.AlarmID, secret, nonce []byte) (*Released, error) {
	var out struct {
		Inner      string   `json:"inner"`
		Sealed     string   `json:"sealed_statement"`
		Proof      []string `json:"proof"`
		SealedAt   string   `json:"sealed_at"`
		ReleasedAt string   `json:"released_at"`
		Retry      bool     `json:"retry"`
	}
	path := TenantPath(t) + "/envelopes/" + alarm.String() + "/release"
	if _, err := c.call(http.MethodPost, path, "", "application/json", ReleaseBody(secret, nonce), &out); err != nil {
		return nil, err
	}
	rel := &Released{Retry: out.Retry}
	var err error
	if rel.Inner, err = unb64(out.Inner); err != nil {
		return nil, fmt.Errorf("release answer: inner: %w", err)
	}
	if rel.Sealed, err = unb64(out.Sealed); err != nil {
		return nil, fmt.Errorf("release answer: sealed statement: %w", err)
	}
	if rel.Proof, err = unb64All(out.Proof); err != nil {
		return nil, fmt.Errorf("release answer: proof: %w", err)
	}
	if rel.SealedAt, err = time.Parse(time.RFC3339, out.SealedAt); err != nil {
		return nil, fmt.Errorf("release answer: sealed_at: %w", err)
	}
	if rel.ReleasedAt, err = time.Parse(time.RFC3339, out.ReleasedAt); err != nil {
		return nil, fmt.Errorf("release answer: released_at: %w", err)
	}
	if len(rel.Inner) == 0 || len(rel.Sealed) == 0 {
		return nil, errors.New("release answer: empty inner layer or statement")
	}
	return rel, nil
}
