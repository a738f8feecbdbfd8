// Package transport is the client's side of the relay's HTTP API (see
// server/doc.go): it moves canonical syncproto messages over HTTPS with a
// pinned relay certificate, logs in with the device key, and turns error
// bodies back into syncproto wire errors. It holds no case data and never
// logs bodies, tokens or keys.
package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// ErrUnreachable wraps network failures: the relay could not be reached.
// Edits stay queued; retrying later helps.
var ErrUnreachable = errors.New("relay unreachable")

// RevokedError is the relay's answer to a revoked device: the signed
// revocation and the chain that proves it. The device must verify both
// against its pinned org fingerprint before it obeys.
type RevokedError struct {
	Revocation []byte
	Chain      [][]byte
}

func (e *RevokedError) Error() string { return "relay refused this device: device_revoked" }

// Client talks to one relay for one device. It is safe for concurrent use.
type Client struct {
	base   *url.URL
	http   *http.Client
	pin    string // SHA-256 of the relay certificate's public key, base64; empty for loopback http
	tenant syncproto.TenantID

	mu       sync.Mutex
	device   syncproto.DeviceID
	signer   *fcrypto.SigningKey
	relayKey fcrypto.PublicKey
	token    string
	tokenExp time.Time
	now      func() time.Time
}

// Options configure a Client.
type Options struct {
	// Pin is the relay certificate's public-key pin ("sha256/<base64>").
	// Empty means trust on first use: Client.Pin reports what was seen.
	Pin     string
	Timeout time.Duration
	// Now is the clock login proofs are dated by; nil means time.Now.
	Now func() time.Time
	// RoundTripper, if set, carries every request instead of a network
	// connection: for tests (the relay's handler called in-process, with
	// faults injected) and for embedding a relay in the same process.
	// The certificate pin is then not checked: whoever supplies the
	// RoundTripper vouches for what is at its other end. Signed receipts,
	// statements and batches are verified as always.
	RoundTripper http.RoundTripper
}

// New returns a client for relayURL. An http:// URL is accepted only for a
// loopback address (the relay's --insecure-loopback mode).
func New(relayURL string, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(relayURL, "/"))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("relay url %q: malformed", relayURL)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("relay url %q: http is allowed only for a loopback address; use https", relayURL)
		}
	default:
		return nil, fmt.Errorf("relay url %q: want https://", relayURL)
	}
	c := &Client{base: u, pin: opts.Pin, now: time.Now}
	if opts.Now != nil {
		c.now = opts.Now
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 90 * time.Second
	}
	tr := &http.Transport{
		Proxy:               nil, // never send case traffic through an environment proxy
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     60 * time.Second,
	}
	if u.Scheme == "https" {
		tr.TLSClientConfig = &tls.Config{
			MinVersion: tls.VersionTLS13,
			// The relay's certificate is self-signed by default: the pin,
			// not a CA, authenticates it.
			InsecureSkipVerify: true,
			VerifyConnection:   c.verifyPin,
		}
	}
	c.http = &http.Client{Transport: tr, Timeout: timeout}
	if opts.RoundTripper != nil {
		c.http.Transport = opts.RoundTripper
	}
	return c, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// PinOf returns the pin of a certificate: SHA-256 of its public key.
func PinOf(cert *x509.Certificate) string {
	h := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256/" + base64.StdEncoding.EncodeToString(h[:])
}

func (c *Client) verifyPin(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("relay presented no certificate")
	}
	got := PinOf(cs.PeerCertificates[0])
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pin == "" {
		c.pin = got // first contact: remember what we saw
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(c.pin)) != 1 {
		return errors.New("relay certificate does not match the pinned key")
	}
	return nil
}

// Pin returns the certificate pin in use (after first contact for TOFU).
func (c *Client) Pin() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pin
}

// URL returns the relay URL.
func (c *Client) URL() string { return c.base.String() }

// SetTenant selects the tenant for tenant-scoped calls.
func (c *Client) SetTenant(t syncproto.TenantID) { c.tenant = t }

// SetDevice sets the device credentials used to log in, and the relay key
// the device pinned (the auth proof names it).
func (c *Client) SetDevice(d syncproto.DeviceID, signer *fcrypto.SigningKey, relayKey fcrypto.PublicKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.device, c.signer, c.relayKey = d, signer, relayKey
	c.token = ""
}

type errorBody struct {
	Code       string   `json:"code"`
	Message    string   `json:"message"`
	Revocation string   `json:"revocation,omitempty"`
	Chain      []string `json:"chain,omitempty"`
}

// do sends one request and decodes a JSON answer into out (if non-nil) or
// returns the raw body.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte, ctype string, auth bool, out any) ([]byte, http.Header, error) {
	for attempt := 0; ; attempt++ {
		raw, hdr, status, err := c.once(ctx, method, path, query, body, ctype, auth)
		if err != nil {
			return nil, nil, err
		}
		if status >= 200 && status < 300 {
			if out != nil {
				if err := json.Unmarshal(raw, out); err != nil {
					return nil, nil, fmt.Errorf("%s %s: malformed relay answer", method, path)
				}
			}
			return raw, hdr, nil
		}
		werr := decodeError(status, raw)
		var se *syncproto.Error
		if auth && attempt == 0 && errors.As(werr, &se) && se.Code == syncproto.CodeUnauthorized {
			c.mu.Lock()
			c.token = "" // expired or rotated: log in again once
			c.mu.Unlock()
			continue
		}
		// Refused before any work was done (rate limited, relay shutting
		// down): wait and try again, with exponential backoff and jitter.
		if errors.As(werr, &se) && (se.Code == syncproto.CodeRateLimited || se.Code == syncproto.CodeUnavailable) && attempt < maxRetries {
			if err := sleepCtx(ctx, backoff(attempt)); err != nil {
				return nil, nil, werr
			}
			continue
		}
		return nil, nil, werr
	}
}

// maxRetries bounds the retries of a request the relay refused before
// doing any work.
const maxRetries = 6

// backoff returns a random wait in [d/2, d) for d = 250 ms doubling per
// attempt up to 8 s ("equal jitter"), so many clients do not retry in step.
func backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond << attempt
	if d > 8*time.Second || d <= 0 {
		d = 8 * time.Second
	}
	return d/2 + time.Duration(mrand.Int64N(int64(d/2)))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (c *Client) once(ctx context.Context, method, path string, query url.Values, body []byte, ctype string, auth bool) ([]byte, http.Header, int, error) {
	u := *c.base
	u.Path = c.base.Path + path
	if query != nil {
		u.RawQuery = query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	if auth {
		tok, err := c.ensureToken(ctx)
		if err != nil {
			return nil, nil, 0, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, 0, ctx.Err()
		}
		var uerr *url.Error
		if errors.As(err, &uerr) && strings.Contains(uerr.Err.Error(), "pinned") {
			return nil, nil, 0, fmt.Errorf("%s %s: relay certificate does not match the pinned key (possible interception)", method, path)
		}
		return nil, nil, 0, fmt.Errorf("%w: %s", ErrUnreachable, shortNetErr(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, 0, fmt.Errorf("%w: reading answer: %s", ErrUnreachable, shortNetErr(err))
	}
	return raw, resp.Header, resp.StatusCode, nil
}

func shortNetErr(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

func decodeError(status int, raw []byte) error {
	var eb errorBody
	if json.Unmarshal(raw, &eb) != nil || eb.Code == "" {
		return &syncproto.Error{Code: syncproto.CodeInternal, Message: fmt.Sprintf("relay answered HTTP %d", status)}
	}
	if eb.Code == string(syncproto.CodeDeviceRevoked) && eb.Revocation != "" {
		re := &RevokedError{}
		re.Revocation, _ = base64.StdEncoding.DecodeString(eb.Revocation)
		for _, s := range eb.Chain {
			b, err := base64.StdEncoding.DecodeString(s)
			if err == nil {
				re.Chain = append(re.Chain, b)
			}
		}
		return re
	}
	code := syncproto.Code(eb.Code)
	if !code.Known() {
		code = syncproto.CodeInternal
	}
	return &syncproto.Error{Code: code, Message: eb.Message}
}

func (c *Client) ensureToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	if c.token != "" && c.now().Before(c.tokenExp) {
		t := c.token
		c.mu.Unlock()
		return t, nil
	}
	dev, signer, relayKey := c.device, c.signer, c.relayKey
	c.mu.Unlock()
	if signer == nil {
		return "", errors.New("log in: this device has no credentials yet")
	}
	// A login answer lost on the way, or a token request delivered twice
	// (a retrying proxy), spends the one-time challenge: the relay then
	// refuses the proof. A fresh challenge costs one round trip; a device
	// the relay really refuses gets the same answer each time.
	var se *syncproto.Error
	for attempt := 0; ; attempt++ {
		tok, err := c.login(ctx, dev, signer, relayKey)
		if attempt == 2 || !errors.As(err, &se) || se.Code != syncproto.CodeUnauthorized {
			return tok, err
		}
	}
}

func (c *Client) login(ctx context.Context, dev syncproto.DeviceID, signer *fcrypto.SigningKey, relayKey fcrypto.PublicKey) (string, error) {
	var ch struct {
		Nonce string `json:"nonce"`
	}
	req, _ := json.Marshal(map[string]string{"device": dev.String()})
	if _, _, err := c.do(ctx, http.MethodPost, c.tpath("/auth/challenge"), nil, req, "application/json", false, &ch); err != nil {
		return "", fmt.Errorf("log in: %w", err)
	}
	nb, err := base64.StdEncoding.DecodeString(ch.Nonce)
	if err != nil || len(nb) != 32 {
		return "", errors.New("log in: malformed challenge")
	}
	proof := &syncproto.AuthProof{Tenant: c.tenant, Device: dev, Relay: relayKey, SignedMS: uint64(c.now().UnixMilli())}
	copy(proof.Nonce[:], nb)
	if err := proof.Sign(signer); err != nil {
		return "", err
	}
	var tok struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if _, _, err := c.do(ctx, http.MethodPost, c.tpath("/auth/token"), nil, proof.Marshal(), "application/octet-stream", false, &tok); err != nil {
		return "", fmt.Errorf("log in: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.token = tok.Token
	life := time.Duration(tok.ExpiresIn) * time.Second
	if life > 30*time.Second {
		life -= 15 * time.Second // refresh a little early
	}
	c.tokenExp = c.now().Add(life)
	return c.token, nil
}

func (c *Client) tpath(p string) string { return "/v1/t/" + c.tenant.String() + p }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func unb64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("malformed relay answer: bad base64")
	}
	return b, nil
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

// RelayKey fetches the relay's signing key (first contact; the TLS pin is
// recorded by the same call).
func (c *Client) RelayKey(ctx context.Context) (fcrypto.PublicKey, error) {
	var info struct {
		RelayKey string `json:"relay_key"`
	}
	if _, _, err := c.do(ctx, http.MethodGet, "/v1/relay", nil, nil, "", false, &info); err != nil {
		return fcrypto.PublicKey{}, fmt.Errorf("contact relay: %w", err)
	}
	k, err := fcrypto.ParsePublicKey(info.RelayKey)
	if err != nil {
		return fcrypto.PublicKey{}, fmt.Errorf("contact relay: %w", err)
	}
	return k, nil
}

// LookupOrg finds the tenant of an org fingerprint on this relay.
func (c *Client) LookupOrg(ctx context.Context, org fcrypto.Fingerprint) (syncproto.TenantID, error) {
	var out struct {
		Tenant string `json:"tenant"`
	}
	if _, _, err := c.do(ctx, http.MethodGet, "/v1/orgs/"+org.String(), nil, nil, "", false, &out); err != nil {
		return syncproto.TenantID{}, fmt.Errorf("look up org: %w", err)
	}
	return syncproto.ParseTenantID(out.Tenant)
}

// CreateTenant consumes an invite and registers a tenant with its first
// statements (genesis first).
func (c *Client) CreateTenant(ctx context.Context, invite string, statements [][]byte) (syncproto.TenantID, error) {
	req := map[string]any{"invite": invite, "genesis": b64(statements[0])}
	var rest []string
	for _, s := range statements[1:] {
		rest = append(rest, b64(s))
	}
	if len(rest) > 0 {
		req["statements"] = rest
	}
	body, _ := json.Marshal(req)
	var out struct {
		Tenant string `json:"tenant"`
	}
	if _, _, err := c.do(ctx, http.MethodPost, "/v1/tenants", nil, body, "application/json", false, &out); err != nil {
		return syncproto.TenantID{}, fmt.Errorf("create tenant: %w", err)
	}
	return syncproto.ParseTenantID(out.Tenant)
}

// EnrolInfo returns the root-signed statements a new device needs.
func (c *Client) EnrolInfo(ctx context.Context) ([][]byte, error) {
	st, _, err := c.EnrolInfoHead(ctx)
	return st, err
}

// EnrolInfoHead is EnrolInfo plus the chain head, which a root-signed
// statement must extend.
func (c *Client) EnrolInfoHead(ctx context.Context) ([][]byte, syncproto.Head, error) {
	var out struct {
		Statements []string `json:"statements"`
		Head       struct {
			Pos  uint64 `json:"pos"`
			Hash string `json:"hash"`
		} `json:"head"`
	}
	if _, _, err := c.do(ctx, http.MethodGet, c.tpath("/enrol-info"), nil, nil, "", false, &out); err != nil {
		return nil, syncproto.Head{}, fmt.Errorf("fetch enrolment info: %w", err)
	}
	st, err := unb64All(out.Statements)
	if err != nil {
		return nil, syncproto.Head{}, err
	}
	var head syncproto.Head
	head.Pos = syncproto.ChainPos(out.Head.Pos)
	if out.Head.Hash != "" {
		if head.Hash, err = syncproto.ParseHash(out.Head.Hash); err != nil {
			return nil, syncproto.Head{}, errors.New("fetch enrolment info: malformed head")
		}
	}
	return st, head, nil
}

// PostRootStatement appends a root-signed statement without a device
// login: the root signature is the credential (org recover).
func (c *Client) PostRootStatement(ctx context.Context, raw []byte) (syncproto.ChainPos, error) {
	var out struct {
		Pos uint64 `json:"pos"`
	}
	if _, _, err := c.do(ctx, http.MethodPost, c.tpath("/chain/root"), nil, raw, "application/octet-stream", false, &out); err != nil {
		return 0, fmt.Errorf("post root statement: %w", err)
	}
	return syncproto.ChainPos(out.Pos), nil
}

// PostEnrolment posts a new device's enrolment request.
func (c *Client) PostEnrolment(ctx context.Context, raw []byte) error {
	if _, _, err := c.do(ctx, http.MethodPost, c.tpath("/enrolments"), nil, raw, "application/octet-stream", false, nil); err != nil {
		return fmt.Errorf("post enrolment: %w", err)
	}
	return nil
}

// GetEnrolment fetches an enrolment request (coordinators).
func (c *Client) GetEnrolment(ctx context.Context, req syncproto.RequestID) ([]byte, error) {
	raw, _, err := c.do(ctx, http.MethodGet, c.tpath("/enrolments/"+req.String()), nil, nil, "", true, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch enrolment: %w", err)
	}
	return raw, nil
}

// DeleteEnrolment removes an enrolment request after approval.
func (c *Client) DeleteEnrolment(ctx context.Context, req syncproto.RequestID) error {
	_, _, err := c.do(ctx, http.MethodDelete, c.tpath("/enrolments/"+req.String()), nil, nil, "", true, nil)
	return err
}

// Chain fetches statements from position from on.
func (c *Client) Chain(ctx context.Context, from syncproto.ChainPos) ([][]byte, error) {
	var all [][]byte
	for {
		q := url.Values{"from": {strconv.FormatUint(uint64(from), 10)}, "limit": {"1000"}}
		var out struct {
			Statements []string `json:"statements"`
			Head       uint64   `json:"head"`
		}
		if _, _, err := c.do(ctx, http.MethodGet, c.tpath("/chain"), q, nil, "", true, &out); err != nil {
			return nil, fmt.Errorf("fetch chain: %w", err)
		}
		page, err := unb64All(out.Statements)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) == 0 || uint64(from)+uint64(len(page)) > out.Head {
			return all, nil
		}
		from += syncproto.ChainPos(len(page))
	}
}

// RootChain fetches the whole chain as the holder of the org root key,
// which has no device: each page is read with an auth proof for the zero
// device id, signed by root over a fresh nonce (org recover).
func (c *Client) RootChain(ctx context.Context, root *fcrypto.SigningKey, relayKey fcrypto.PublicKey) ([][]byte, error) {
	var all [][]byte
	var from syncproto.ChainPos
	for {
		var ch struct {
			Nonce string `json:"nonce"`
		}
		req, _ := json.Marshal(map[string]string{"device": syncproto.DeviceID{}.String()})
		if _, _, err := c.do(ctx, http.MethodPost, c.tpath("/auth/challenge"), nil, req, "application/json", false, &ch); err != nil {
			return nil, fmt.Errorf("fetch chain: %w", err)
		}
		nb, err := base64.StdEncoding.DecodeString(ch.Nonce)
		if err != nil || len(nb) != 32 {
			return nil, errors.New("fetch chain: malformed challenge")
		}
		proof := &syncproto.AuthProof{Tenant: c.tenant, Relay: relayKey, SignedMS: uint64(c.now().UnixMilli())}
		copy(proof.Nonce[:], nb)
		if err := proof.Sign(root); err != nil {
			return nil, err
		}
		q := url.Values{"from": {strconv.FormatUint(uint64(from), 10)}, "limit": {"1000"}}
		var out struct {
			Statements []string `json:"statements"`
			Head       uint64   `json:"head"`
		}
		if _, _, err := c.do(ctx, http.MethodPost, c.tpath("/chain/root-read"), q, proof.Marshal(), "application/octet-stream", false, &out); err != nil {
			return nil, fmt.Errorf("fetch chain: %w", err)
		}
		page, err := unb64All(out.Statements)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) == 0 || uint64(from)+uint64(len(page)) > out.Head {
			return all, nil
		}
		from += syncproto.ChainPos(len(page))
	}
}

// PostStatement appends a statement to the chain.
func (c *Client) PostStatement(ctx context.Context, raw []byte) (syncproto.ChainPos, error) {
	var out struct {
		Pos uint64 `json:"pos"`
	}
	if _, _, err := c.do(ctx, http.MethodPost, c.tpath("/chain"), nil, raw, "application/octet-stream", true, &out); err != nil {
		return 0, fmt.Errorf("post statement: %w", err)
	}
	return syncproto.ChainPos(out.Pos), nil
}

// PushBatch appends a batch and returns the relay's signed receipt.
func (c *Client) PushBatch(ctx context.Context, stream syncproto.StreamID, raw []byte) (syncproto.Seq, []byte, error) {
	var out struct {
		Seq     uint64 `json:"seq"`
		Receipt string `json:"receipt"`
	}
	if _, _, err := c.do(ctx, http.MethodPost, c.tpath("/streams/"+stream.String()+"/batches"), nil, raw, "application/octet-stream", true, &out); err != nil {
		return 0, nil, fmt.Errorf("push batch: %w", err)
	}
	rc, err := unb64(out.Receipt)
	if err != nil {
		return 0, nil, err
	}
	return syncproto.Seq(out.Seq), rc, nil
}

// Pulled is one batch as pulled, with its receipt.
type Pulled struct {
	Seq     syncproto.Seq
	Raw     []byte
	Receipt []byte
}

// PullBatches fetches batches after a cursor; wait > 0 long-polls.
func (c *Client) PullBatches(ctx context.Context, stream syncproto.StreamID, after syncproto.Seq, limit int, wait time.Duration) ([]Pulled, syncproto.Seq, error) {
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
	if _, _, err := c.do(ctx, http.MethodGet, c.tpath("/streams/"+stream.String()+"/batches"), q, nil, "", true, &out); err != nil {
		return nil, 0, fmt.Errorf("pull batches: %w", err)
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

// Heads returns the heads of every stream the device can read and the
// chain head; with wait > 0 it returns early when anything differs from
// known/chain.
func (c *Client) Heads(ctx context.Context, known map[syncproto.StreamID]syncproto.Seq, chain syncproto.ChainPos, wait time.Duration) (map[syncproto.StreamID]StreamHead, syncproto.ChainPos, error) {
	ks := map[string]uint64{}
	for s, n := range known {
		ks[s.String()] = uint64(n)
	}
	body, _ := json.Marshal(map[string]any{"streams": ks, "chain": uint64(chain), "wait": int(wait / time.Second)})
	var out struct {
		Streams map[string]StreamHead `json:"streams"`
		Chain   uint64                `json:"chain"`
	}
	if _, _, err := c.do(ctx, http.MethodPost, c.tpath("/heads"), nil, body, "application/json", true, &out); err != nil {
		return nil, 0, fmt.Errorf("fetch heads: %w", err)
	}
	res := make(map[syncproto.StreamID]StreamHead, len(out.Streams))
	for s, h := range out.Streams {
		id, err := syncproto.ParseStreamID(s)
		if err != nil {
			return nil, 0, errors.New("fetch heads: malformed stream id")
		}
		res[id] = h
	}
	return res, syncproto.ChainPos(out.Chain), nil
}

// StreamHead returns one stream's head: a stream the device reads, or the
// tenant's audit stream, whose head every active device may see.
func (c *Client) StreamHead(ctx context.Context, stream syncproto.StreamID) (StreamHead, error) {
	var out StreamHead
	if _, _, err := c.do(ctx, http.MethodGet, c.tpath("/streams/"+stream.String()+"/head"), nil, nil, "", true, &out); err != nil {
		return StreamHead{}, fmt.Errorf("fetch stream head: %w", err)
	}
	return out, nil
}

// PutSnapshot uploads an encrypted snapshot.
func (c *Client) PutSnapshot(ctx context.Context, stream syncproto.StreamID, raw []byte) error {
	_, _, err := c.do(ctx, http.MethodPut, c.tpath("/streams/"+stream.String()+"/snapshot"), nil, raw, "application/octet-stream", true, nil)
	if err != nil {
		return fmt.Errorf("put snapshot: %w", err)
	}
	return nil
}

// GetSnapshot downloads the newest snapshot of a stream.
func (c *Client) GetSnapshot(ctx context.Context, stream syncproto.StreamID) ([]byte, error) {
	raw, _, err := c.do(ctx, http.MethodGet, c.tpath("/streams/"+stream.String()+"/snapshot"), nil, nil, "", true, nil)
	if err != nil {
		return nil, fmt.Errorf("get snapshot: %w", err)
	}
	return raw, nil
}

// GetSnapshotByHash downloads the snapshot of a stream with this hash (the
// one a countersignature names).
func (c *Client) GetSnapshotByHash(ctx context.Context, stream syncproto.StreamID, h syncproto.Hash) ([]byte, error) {
	q := url.Values{"hash": {h.String()}}
	raw, _, err := c.do(ctx, http.MethodGet, c.tpath("/streams/"+stream.String()+"/snapshot"), q, nil, "", true, nil)
	if err != nil {
		return nil, fmt.Errorf("get snapshot: %w", err)
	}
	return raw, nil
}

// PutKey uploads one wrapped epoch key for one device (coordinators).
func (c *Client) PutKey(ctx context.Context, raw []byte) error {
	if _, _, err := c.do(ctx, http.MethodPut, c.tpath("/keys"), nil, raw, "application/octet-stream", true, nil); err != nil {
		return fmt.Errorf("put wrapped key: %w", err)
	}
	return nil
}

// MaxKeyBatch is how many wrapped keys one batch upload or batch
// acknowledgement carries (the relay's limit).
const MaxKeyBatch = 256

// PutKeys uploads wrapped keys in batches of up to MaxKeyBatch, each
// stored all or nothing (coordinators). A relay without the batch endpoint
// is sent the keys one by one.
func (c *Client) PutKeys(ctx context.Context, raws [][]byte) error {
	for len(raws) > 0 {
		n := min(len(raws), MaxKeyBatch)
		req := struct {
			Keys []string `json:"keys"`
		}{Keys: make([]string, n)}
		for i, raw := range raws[:n] {
			req.Keys[i] = base64.StdEncoding.EncodeToString(raw)
		}
		body, err := json.Marshal(req)
		if err != nil {
			return fmt.Errorf("put wrapped keys: %w", err)
		}
		_, _, err = c.do(ctx, http.MethodPost, c.tpath("/keys/batch"), nil, body, "application/json", true, nil)
		if noEndpoint(err) {
			for _, raw := range raws[:n] {
				if err := c.PutKey(ctx, raw); err != nil {
					return err
				}
			}
		} else if err != nil {
			return fmt.Errorf("put wrapped keys: %w", err)
		}
		raws = raws[n:]
	}
	return nil
}

// KeyRef names one epoch key of a stream.
type KeyRef struct {
	Stream syncproto.StreamID
	Epoch  syncproto.Epoch
}

// AckKeys tells the relay this device holds these keys, so its copies are
// destroyed, in requests of up to MaxKeyBatch (one KEK rotation each). A
// relay without the batch endpoint is told one key at a time.
func (c *Client) AckKeys(ctx context.Context, keys []KeyRef) error {
	type entry struct {
		Stream string `json:"stream"`
		Epoch  uint32 `json:"epoch"`
	}
	for len(keys) > 0 {
		n := min(len(keys), MaxKeyBatch)
		req := struct {
			Keys []entry `json:"keys"`
		}{Keys: make([]entry, n)}
		for i, k := range keys[:n] {
			req.Keys[i] = entry{Stream: k.Stream.String(), Epoch: uint32(k.Epoch)}
		}
		body, err := json.Marshal(req)
		if err != nil {
			return fmt.Errorf("acknowledge wrapped keys: %w", err)
		}
		_, _, err = c.do(ctx, http.MethodPost, c.tpath("/keys/ack"), nil, body, "application/json", true, nil)
		if noEndpoint(err) {
			for _, k := range keys[:n] {
				if err := c.AckKey(ctx, k.Stream, k.Epoch); err != nil {
					return err
				}
			}
		} else if err != nil {
			return fmt.Errorf("acknowledge wrapped keys: %w", err)
		}
		keys = keys[n:]
	}
	return nil
}

// noEndpoint reports whether the relay does not know the route asked
// for (an older relay).
func noEndpoint(err error) bool {
	var se *syncproto.Error
	return errors.As(err, &se) && se.Code == syncproto.CodeNotFound && se.Message == "no such endpoint"
}

// Keys fetches every wrapped key addressed to this device.
func (c *Client) Keys(ctx context.Context) ([][]byte, error) {
	var out struct {
		Keys []string `json:"keys"`
	}
	if _, _, err := c.do(ctx, http.MethodGet, c.tpath("/keys"), nil, nil, "", true, &out); err != nil {
		return nil, fmt.Errorf("fetch wrapped keys: %w", err)
	}
	return unb64All(out.Keys)
}

// AckKey tells the relay this device holds the key, so its copy is
// destroyed.
func (c *Client) AckKey(ctx context.Context, stream syncproto.StreamID, epoch syncproto.Epoch) error {
	p := fmt.Sprintf("/keys/%s/%d", stream, epoch)
	if _, _, err := c.do(ctx, http.MethodDelete, c.tpath(p), nil, nil, "", true, nil); err != nil {
		return fmt.Errorf("acknowledge wrapped key: %w", err)
	}
	return nil
}

// LastSeen returns the day each device was last seen (coordinators).
func (c *Client) LastSeen(ctx context.Context) (map[syncproto.DeviceID]string, error) {
	var out map[string]string
	if _, _, err := c.do(ctx, http.MethodGet, c.tpath("/devices/last-seen"), nil, nil, "", true, &out); err != nil {
		return nil, fmt.Errorf("fetch last seen: %w", err)
	}
	res := make(map[syncproto.DeviceID]string, len(out))
	for k, v := range out {
		id, err := syncproto.ParseDeviceID(k)
		if err == nil {
			res[id] = v
		}
	}
	return res, nil
}

// ReleaseKey asks for a fresh release recipient for an alarm's next
// envelope generation (coordinators).
func (c *Client) ReleaseKey(ctx context.Context, alarm syncproto.AlarmID) (fcrypto.BoxRecipient, uint32, error) {
	var out struct {
		Recipient  string `json:"recipient"`
		Generation uint32 `json:"generation"`
	}
	if _, _, err := c.do(ctx, http.MethodPost, c.tpath("/envelopes/"+alarm.String()+"/release-key"), nil, nil, "", true, &out); err != nil {
		return fcrypto.BoxRecipient{}, 0, fmt.Errorf("ask for a release key: %w", err)
	}
	r, err := fcrypto.ParseBoxRecipient(out.Recipient)
	if err != nil || out.Generation == 0 {
		return fcrypto.BoxRecipient{}, 0, errors.New("ask for a release key: malformed relay answer")
	}
	return r, out.Generation, nil
}

// PutEnvelope uploads an envelope's outer layer with the hash of its
// release credential's secret (coordinators).
func (c *Client) PutEnvelope(ctx context.Context, alarm syncproto.AlarmID, generation uint32, outer []byte, secretHash syncproto.Hash) error {
	body, err := json.Marshal(map[string]any{"generation": generation, "outer": b64(outer), "secret_hash": secretHash.String()})
	if err != nil {
		return err
	}
	if _, _, err := c.do(ctx, http.MethodPut, c.tpath("/envelopes/"+alarm.String()), nil, body, "application/json", true, nil); err != nil {
		return fmt.Errorf("upload envelope: %w", err)
	}
	return nil
}

// Released is the relay's answer to a release; nothing in it is checked
// yet.
type Released struct {
	Inner      []byte
	Sealed     []byte   // the coordinator-signed "envelope sealed" statement
	Proof      [][]byte // the chain from genesis up to and including Sealed
	SealedAt   time.Time
	ReleasedAt time.Time
	Retry      bool
}

// Release asks the relay to release an envelope. No login: the secret is
// the credential. A retry after a lost answer must reuse the nonce.
func (c *Client) Release(ctx context.Context, alarm syncproto.AlarmID, secret, nonce []byte) (*Released, error) {
	body, err := json.Marshal(map[string]string{"secret": b64(secret), "nonce": b64(nonce)})
	if err != nil {
		return nil, err
	}
	var out struct {
		Inner      string   `json:"inner"`
		Sealed     string   `json:"sealed_statement"`
		Proof      []string `json:"proof"`
		SealedAt   string   `json:"sealed_at"`
		ReleasedAt string   `json:"released_at"`
		Retry      bool     `json:"retry"`
	}
	if _, _, err := c.do(ctx, http.MethodPost, c.tpath("/envelopes/"+alarm.String()+"/release"), nil, body, "application/json", false, &out); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	rel := &Released{Retry: out.Retry}
	if rel.Inner, err = unb64(out.Inner); err != nil {
		return nil, err
	}
	if rel.Sealed, err = unb64(out.Sealed); err != nil {
		return nil, err
	}
	if rel.Proof, err = unb64All(out.Proof); err != nil {
		return nil, err
	}
	rel.SealedAt, _ = time.Parse(time.RFC3339, out.SealedAt)
	rel.ReleasedAt, _ = time.Parse(time.RFC3339, out.ReleasedAt)
	if len(rel.Inner) == 0 || len(rel.Sealed) == 0 || len(rel.Proof) == 0 {
		return nil, errors.New("release: malformed relay answer")
	}
	return rel, nil
}
