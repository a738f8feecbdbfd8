// Package relaytest is a small client of the relay's HTTP API and a
// builder of test organisations (genesis, coordinators, workers, devices,
// streams, epochs), for tests that run a real relay over loopback HTTP. It
// is built on crypto and syncproto only, as a device is, and never on the
// client packages. It also starts a relay binary and scans bytes for
// canaries in every common encoding.
package relaytest

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// Client talks to one relay. It records every response body it receives,
// so a test can scan them.
type Client struct {
	Base string
	HTTP *http.Client

	mu     sync.Mutex
	bodies [][]byte
}

// NewClient returns a client for base (http://127.0.0.1:PORT or https://).
// For https, pin is the certificate pin the relay printed ("sha256/...");
// the connection fails unless the relay's certificate matches it.
func NewClient(base, pin string) *Client {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
	if pin != "" {
		tr.TLSClientConfig = &tls.Config{
			MinVersion:         tls.VersionTLS13,
			InsecureSkipVerify: true, // the pin authenticates the relay
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("no certificate")
				}
				h := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
				got := "sha256/" + base64.StdEncoding.EncodeToString(h[:])
				if subtle.ConstantTimeCompare([]byte(got), []byte(pin)) != 1 {
					return errors.New("relay certificate does not match the pin")
				}
				return nil
			},
		}
	}
	return &Client{Base: base, HTTP: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

// Bodies returns every response body received so far.
func (c *Client) Bodies() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.bodies...)
}

// Response is a raw answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Error is the relay's error answer.
type Error struct {
	Status     int
	Code       syncproto.Code
	Message    string
	Revocation []byte
	Chain      [][]byte
}

func (e *Error) Error() string {
	return fmt.Sprintf("relay answered %d %s: %s", e.Status, e.Code, e.Message)
}

// CodeOf returns the wire code of an *Error, or "" for another error.
func CodeOf(err error) syncproto.Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Do sends one request and returns the answer whatever its status; only a
// network failure is an error.
func (c *Client) Do(method, path string, header http.Header, body []byte) (*Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.bodies = append(c.bodies, b)
	c.mu.Unlock()
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// call sends a request and decodes a 2xx JSON answer into out; other
// answers become an *Error.
func (c *Client) call(method, path, token, ctype string, body []byte, out any) (*Response, error) {
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		h.Set("Content-Type", ctype)
	}
	resp, err := c.Do(method, path, h, body)
	if err != nil {
		return nil, err
	}
	if resp.Status < 200 || resp.Status > 299 {
		return resp, ParseError(resp)
	}
	if out != nil {
		if err := json.Unmarshal(resp.Body, out); err != nil {
			return resp, fmt.Errorf("%s %s: malformed answer: %w", method, path, err)
		}
	}
	return resp, nil
}

// ParseError decodes an error answer.
func ParseError(resp *Response) *Error {
	var eb struct {
		Code       string   `json:"code"`
		Message    string   `json:"message"`
		Revocation string   `json:"revocation"`
		Chain      []string `json:"chain"`
	}
	e := &Error{Status: resp.Status}
	if err := json.Unmarshal(resp.Body, &eb); err != nil {
		e.Message = "not a JSON error body: " + strconv.Quote(string(resp.Body))
		return e
	}
	e.Code, e.Message = syncproto.Code(eb.Code), eb.Message
	e.Revocation, _ = base64.StdEncoding.DecodeString(eb.Revocation)
	for _, s := range eb.Chain {
		b, _ := base64.StdEncoding.DecodeString(s)
		e.Chain = append(e.Chain, b)
	}
	return e
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func unb64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

// TenantPath returns /v1/t/{tenant}.
func TenantPath(t syncproto.TenantID) string { return "/v1/t/" + t.String() }

// RelayKey fetches the relay's signing key.
func (c *Client) RelayKey() (fcrypto.PublicKey, error) {
	var out struct {
		RelayKey string `json:"relay_key"`
		Version  int    `json:"version"`
	}
	if _, err := c.call(http.MethodGet, "/v1/relay", "", "", nil, &out); err != nil {
		return fcrypto.PublicKey{}, err
	}
	return fcrypto.ParsePublicKey(out.RelayKey)
}

// CreateTenant registers a tenant with its first statements.
func (c *Client) CreateTenant(invite string, raws ...[]byte) (syncproto.TenantID, error) {
	req := map[string]any{"invite": invite, "genesis": b64(raws[0])}
	var rest []string
	for _, r := range raws[1:] {
		rest = append(rest, b64(r))
	}
	if len(rest) > 0 {
		req["statements"] = rest
	}
	body, _ := json.Marshal(req)
	var out struct {
		Tenant string `json:"tenant"`
	}
	if _, err := c.call(http.MethodPost, "/v1/tenants", "", "application/json", body, &out); err != nil {
		return syncproto.TenantID{}, err
	}
	return syncproto.ParseTenantID(out.Tenant)
}

// LookupOrg finds the tenant of an org fingerprint.
func (c *Client) LookupOrg(org fcrypto.Fingerprint) (syncproto.TenantID, error) {
	var out struct {
		Tenant string `json:"tenant"`
	}
	if _, err := c.call(http.MethodGet, "/v1/orgs/"+org.String(), "", "", nil, &out); err != nil {
		return syncproto.TenantID{}, err
	}
	return syncproto.ParseTenantID(out.Tenant)
}

// EnrolInfo returns the genesis and root-signed statements.
func (c *Client) EnrolInfo(t syncproto.TenantID) ([][]byte, error) {
	var out struct {
		Statements []string `json:"statements"`
	}
	if _, err := c.call(http.MethodGet, TenantPath(t)+"/enrol-info", "", "", nil, &out); err != nil {
		return nil, err
	}
	return unb64All(out.Statements)
}

// PostEnrolment posts an enrolment request.
func (c *Client) PostEnrolment(t syncproto.TenantID, raw []byte) error {
	_, err := c.call(http.MethodPost, TenantPath(t)+"/enrolments", "", "application/octet-stream", raw, nil)
	return err
}

// PostRootStatement posts a root-signed statement without a login.
func (c *Client) PostRootStatement(t syncproto.TenantID, raw []byte) (syncproto.ChainPos, error) {
	var out struct {
		Pos uint64 `json:"pos"`
	}
	_, err := c.call(http.MethodPost, TenantPath(t)+"/chain/root", "", "application/octet-stream", raw, &out)
	return syncproto.ChainPos(out.Pos), err
}

// Challenge asks for a login nonce.
func (c *Client) Challenge(t syncproto.TenantID, dev syncproto.DeviceID) (syncproto.Hash, error) {
	body, _ := json.Marshal(map[string]string{"device": dev.String()})
	var out struct {
		Nonce string `json:"nonce"`
	}
	var n syncproto.Hash
	if _, err := c.call(http.MethodPost, TenantPath(t)+"/auth/challenge", "", "application/json", body, &out); err != nil {
		return n, err
	}
	b, err := unb64(out.Nonce)
	if err != nil || len(b) != len(n) {
		return n, errors.New("malformed nonce")
	}
	copy(n[:], b)
	return n, nil
}

// Token exchanges a signed auth proof for an access token.
func (c *Client) Token(t syncproto.TenantID, proof []byte) (string, error) {
	var out struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if _, err := c.call(http.MethodPost, TenantPath(t)+"/auth/token", "", "application/octet-stream", proof, &out); err != nil {
		return "", err
	}
	return out.Token, nil
}

// Login logs a device in and returns its session.
func (c *Client) Login(t syncproto.TenantID, dev *Device, relay fcrypto.PublicKey) (*Session, error) {
	nonce, err := c.Challenge(t, dev.ID)
	if err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	p := &syncproto.AuthProof{Tenant: t, Device: dev.ID, Relay: relay, Nonce: nonce, SignedMS: uint64(time.Now().UnixMilli())}
	if err := p.Sign(dev.Sign); err != nil {
		return nil, err
	}
	tok, err := c.Token(t, p.Marshal())
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return &Session{C: c, Tenant: t, Dev: dev, Token: tok}, nil
}

func unb64All(ss []string) ([][]byte, error) {
	out := make([][]byte, 0, len(ss))
	for _, s := range ss {
		b, err := unb64(s)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// Session is a logged-in device.
type Session struct {
	C      *Client
	Tenant syncproto.TenantID
	Dev    *Device
	Token  string
}

func (s *Session) path(p string) string { return TenantPath(s.Tenant) + p }

// Call sends an authenticated request and decodes a JSON answer.
func (s *Session) Call(method, p, ctype string, body []byte, out any) (*Response, error) {
	return s.C.call(method, s.path(p), s.Token, ctype, body, out)
}

// Chain fetches statements from a position on, one page.
func (s *Session) Chain(from syncproto.ChainPos) ([][]byte, syncproto.ChainPos, error) {
	var out struct {
		Statements []string `json:"statements"`
		Head       uint64   `json:"head"`
	}
	if _, err := s.Call(http.MethodGet, "/chain?from="+strconv.FormatUint(uint64(from), 10), "", nil, &out); err != nil {
		return nil, 0, err
	}
	raws, err := unb64All(out.Statements)
	return raws, syncproto.ChainPos(out.Head), err
}

// PostStatement appends a statement.
func (s *Session) PostStatement(raw []byte) (syncproto.ChainPos, error) {
	var out struct {
		Pos  uint64 `json:"pos"`
		Hash string `json:"hash"`
	}
	_, err := s.Call(http.MethodPost, "/chain", "application/octet-stream", raw, &out)
	return syncproto.ChainPos(out.Pos), err
}

// Push appends a batch and returns its sequence number and receipt.
func (s *Session) Push(stream syncproto.StreamID, raw []byte) (syncproto.Seq, []byte, error) {
	var out struct {
		Seq     uint64 `json:"seq"`
		Receipt string `json:"receipt"`
	}
	if _, err := s.Call(http.MethodPost, "/streams/"+stream.String()+"/batches", "application/octet-stream", raw, &out); err != nil {
		return 0, nil, err
	}
	rc, err := unb64(out.Receipt)
	return syncproto.Seq(out.Seq), rc, err
}

// Pulled is one pulled batch.
type Pulled struct {
	Seq     syncproto.Seq
	Raw     []byte
	Receipt []byte
}

// Pull fetches batches after a cursor; wait > 0 long-polls.
func (s *Session) Pull(stream syncproto.StreamID, after syncproto.Seq, limit int, wait time.Duration) ([]Pulled, syncproto.Seq, error) {
	q := url.Values{"after": {strconv.FormatUint(uint64(after), 10)}, "limit": {strconv.Itoa(limit)}}
	if wait > 0 {
		q.Set("wait", strconv.Itoa(int(wait/time.Second)))
	}
	var out struct {
		Batches []struct {
			Seq     uint64 `json:"seq"`
			Raw     string `json:"raw"`
			Receipt string `json:"receipt"`
		} `json:"batches"`
		Head uint64 `json:"head"`
	}
	if _, err := s.Call(http.MethodGet, "/streams/"+stream.String()+"/batches?"+q.Encode(), "", nil, &out); err != nil {
		return nil, 0, err
	}
	res := make([]Pulled, 0, len(out.Batches))
	for _, b := range out.Batches {
		raw, err := unb64(b.Raw)
		if err != nil {
			return nil, 0, err
		}
		rc, err := unb64(b.Receipt)
		if err != nil {
			return nil, 0, err
		}
		res = append(res, Pulled{Seq: syncproto.Seq(b.Seq), Raw: raw, Receipt: rc})
	}
	return res, syncproto.Seq(out.Head), nil
}

// StreamHead is a stream's head and pruned point.
type StreamHead struct {
	Head   syncproto.Seq `json:"head"`
	Pruned syncproto.Seq `json:"pruned"`
}

// Head returns one stream's head.
func (s *Session) Head(stream syncproto.StreamID) (StreamHead, error) {
	var out StreamHead
	_, err := s.Call(http.MethodGet, "/streams/"+stream.String()+"/head", "", nil, &out)
	return out, err
}

// Heads asks for the heads of every readable stream.
func (s *Session) Heads(known map[syncproto.StreamID]syncproto.Seq, chain syncproto.ChainPos, wait time.Duration) (map[syncproto.StreamID]StreamHead, syncproto.ChainPos, error) {
	ks := map[string]uint64{}
	for k, v := range known {
		ks[k.String()] = uint64(v)
	}
	body, _ := json.Marshal(map[string]any{"streams": ks, "chain": uint64(chain), "wait": int(wait / time.Second)})
	var out struct {
		Streams map[string]StreamHead `json:"streams"`
		Chain   uint64                `json:"chain"`
	}
	if _, err := s.Call(http.MethodPost, "/heads", "application/json", body, &out); err != nil {
		return nil, 0, err
	}
	res := map[syncproto.StreamID]StreamHead{}
	for k, v := range out.Streams {
		id, err := syncproto.ParseStreamID(k)
		if err != nil {
			return nil, 0, err
		}
		res[id] = v
	}
	return res, syncproto.ChainPos(out.Chain), nil
}

// PutSnapshot uploads a snapshot.
func (s *Session) PutSnapshot(stream syncproto.StreamID, raw []byte) error {
	_, err := s.Call(http.MethodPut, "/streams/"+stream.String()+"/snapshot", "application/octet-stream", raw, nil)
	return err
}

// GetSnapshot downloads the latest snapshot and its sequence number.
func (s *Session) GetSnapshot(stream syncproto.StreamID) ([]byte, syncproto.Seq, error) {
	resp, err := s.Call(http.MethodGet, "/streams/"+stream.String()+"/snapshot", "", nil, nil)
	if err != nil {
		return nil, 0, err
	}
	seq, _ := strconv.ParseUint(resp.Header.Get("X-Fristed-Seq"), 10, 64)
	return resp.Body, syncproto.Seq(seq), nil
}

// PutKey uploads a wrapped key (coordinators).
func (s *Session) PutKey(raw []byte) error {
	_, err := s.Call(http.MethodPut, "/keys", "application/octet-stream", raw, nil)
	return err
}

// Keys fetches the wrapped keys addressed to this device.
func (s *Session) Keys() ([][]byte, error) {
	var out struct {
		Keys []string `json:"keys"`
	}
	if _, err := s.Call(http.MethodGet, "/keys", "", nil, &out); err != nil {
		return nil, err
	}
	return unb64All(out.Keys)
}

// AckKey acknowledges (destroys) this device's copy of an epoch key.
func (s *Session) AckKey(stream syncproto.StreamID, epoch syncproto.Epoch) error {
	_, err := s.Call(http.MethodDelete, fmt.Sprintf("/keys/%s/%d", stream, epoch), "", nil, nil)
	return err
}

// PutKeys uploads wrapped keys in one batch (coordinators).
func (s *Session) PutKeys(raws ...[]byte) error {
	req := struct {
		Keys []string `json:"keys"`
	}{Keys: []string{}}
	for _, raw := range raws {
		req.Keys = append(req.Keys, base64.StdEncoding.EncodeToString(raw))
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	_, err = s.Call(http.MethodPost, "/keys/batch", "application/json", body, nil)
	return err
}

// KeyRef names one epoch key of a stream.
type KeyRef struct {
	Stream syncproto.StreamID
	Epoch  syncproto.Epoch
}

// AckKeys acknowledges (destroys) this device's copies of several epoch
// keys in one request.
func (s *Session) AckKeys(keys ...KeyRef) error {
	type entry struct {
		Stream string `json:"stream"`
		Epoch  uint32 `json:"epoch"`
	}
	req := struct {
		Keys []entry `json:"keys"`
	}{Keys: []entry{}}
	for _, k := range keys {
		req.Keys = append(req.Keys, entry{Stream: k.Stream.String(), Epoch: uint32(k.Epoch)})
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	_, err = s.Call(http.MethodPost, "/keys/ack", "application/json", body, nil)
	return err
}

// LastSeen returns the day each device was last seen (coordinators).
func (s *Session) LastSeen() (map[string]string, error) {
	var out map[string]string
	_, err := s.Call(http.MethodGet, "/devices/last-seen", "", nil, &out)
	return out, err
}

// GetEnrolment fetches an enrolment request (coordinators).
func (s *Session) GetEnrolment(req syncproto.RequestID) ([]byte, error) {
	resp, err := s.Call(http.MethodGet, "/enrolments/"+req.String(), "", nil, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
