package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// tamperProxy sits between the laptops and the relay (both on loopback)
// and, when told to, does what a malicious or failing relay would: it
// rewrites the enrolment requests a coordinator fetches, or refuses the
// ones new laptops post. It keeps the requests it passed on.
type tamperProxy struct {
	srv *httptest.Server

	mu       sync.Mutex
	rewrite  func(e *syncproto.Enrolment) error // nil: pass through
	tampered int                                // answers rewritten
	posted   [][]byte                           // enrolment requests posted through it
	refuse   bool                               // answer enrolment posts 503
}

var enrolmentPath = regexp.MustCompile(`^/v1/t/[^/]+/enrolments/[^/]+$`)

func newTamperProxy(t *testing.T, relayURL string) *tamperProxy {
	target, err := url.Parse(relayURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &tamperProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		req := resp.Request
		if req.Method != http.MethodGet || !enrolmentPath.MatchString(req.URL.Path) || resp.StatusCode != http.StatusOK {
			return nil
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.rewrite == nil {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		e, err := syncproto.UnmarshalEnrolment(body)
		if err != nil {
			return err
		}
		if err := p.rewrite(e); err != nil {
			return err
		}
		body = e.Marshal()
		p.tampered++
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/enrolments") {
			body, err := io.ReadAll(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			p.mu.Lock()
			refuse := p.refuse
			if !refuse {
				p.posted = append(p.posted, body)
			}
			p.mu.Unlock()
			if refuse {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `{"code":"unavailable","message":"try again later"}`)
				return
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		rp.ServeHTTP(w, req)
	})) // on 127.0.0.1
	t.Cleanup(p.srv.Close)
	return p
}

func (p *tamperProxy) set(rewrite func(e *syncproto.Enrolment) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rewrite, p.tampered = rewrite, 0
}

func (p *tamperProxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tampered
}

// substituteKeys puts another device's keys into the request, self-signed
// by the substituted key so that the request on its own looks genuine.
func substituteKeys(e *syncproto.Enrolment) error {
	keys, err := fcrypto.NewDeviceKeys()
	if err != nil {
		return err
	}
	e.SignPub = keys.Sign.Public()
	e.Box = keys.Box.Recipient().String()
	return e.Sign(keys.Sign)
}

// TestEnrolment: device approve signs nothing unless the keys the relay
// hands over are the ones the enrolment code commits to, and refuses
// unknown, reused and unknown-worker codes; the chain is unchanged after
// every refusal.
func TestEnrolment(t *testing.T) {
	t.Parallel()
	r := newRunner(t)
	proxy := newTamperProxy(t, r.URL())
	via := proxy.srv.URL

	r.As("coordinator")
	org := r.RunID(reFingerprint, "org", "init", "--relay", via, "--invite", r.Invite(), "--name", "Enhet A",
		"--recovery-out", r.work+"/recovery.age", "--recovery-passphrase-file", r.pass)
	r.Run("worker", "add", "Kari Nordmann")
	r.As("kari-laptop")
	code := r.RunID(reCode, "device", "init", "--relay", via, "--org", org, "--name", "kari-laptop")
	r.As("coordinator")
	before := r.Devices()
	r.Check()

	// unchanged ends a refusal: the step's own failures are reported on t
	// (and cleared, so the next step runs), then the chain is compared.
	unchanged := func(t *testing.T, want string) {
		t.Helper()
		if err := r.Take(); err != nil {
			t.Error(err)
		}
		r.As("coordinator")
		if after := r.Devices(); r.err == nil && after != want {
			t.Errorf("device list changed:\nbefore %safter  %s", want, after)
		}
		if err := r.Take(); err != nil {
			t.Error(err)
		}
	}

	t.Run("substituted keys", func(t *testing.T) {
		proxy.set(substituteKeys)
		r.Fail(`enrolment code does not match the device's keys: do not approve`, "device", "approve", code, "--worker", "Kari Nordmann")
		if n := proxy.count(); n == 0 {
			t.Errorf("the proxy rewrote %d answers, want at least 1", n)
		}
		proxy.set(nil)
		unchanged(t, before)
	})

	t.Run("another laptop's request", func(t *testing.T) {
		// A genuine, self-signed request of another laptop (which the
		// relay could have made itself) in place of Kari's.
		r.As("other-laptop")
		r.RunID(reCode, "device", "init", "--relay", via, "--org", org, "--name", "other-laptop")
		proxy.mu.Lock()
		other := proxy.posted[len(proxy.posted)-1]
		proxy.mu.Unlock()
		proxy.set(func(e *syncproto.Enrolment) error {
			o, err := syncproto.UnmarshalEnrolment(other)
			*e = *o
			return err
		})
		r.As("coordinator")
		r.Fail(`enrolment code does not match the device's keys: do not approve`, "device", "approve", code, "--worker", "Kari Nordmann")
		if n := proxy.count(); n == 0 {
			t.Errorf("the proxy rewrote %d answers, want at least 1", n)
		}
		proxy.set(nil)
		unchanged(t, before)
	})

	t.Run("tampered request", func(t *testing.T) {
		// The device's keys, but another name for it: the relay cannot
		// re-sign that.
		proxy.set(func(e *syncproto.Enrolment) error {
			e.Sealed = append(e.Sealed[:len(e.Sealed):len(e.Sealed)], 0)
			return nil
		})
		r.Fail(`verify enrolment: signature does not verify`, "device", "approve", code, "--worker", "Kari Nordmann")
		if n := proxy.count(); n == 0 {
			t.Errorf("the proxy rewrote %d answers, want at least 1", n)
		}
		proxy.set(nil)
		unchanged(t, before)
	})

	t.Run("unknown code", func(t *testing.T) {
		req := make([]byte, 16)
		var commit [32]byte
		rand.Read(req)
		rand.Read(commit[:])
		r.Fail(`unknown or already used enrolment code`, "device", "approve", fcrypto.EnrolmentCode(req, commit), "--worker", "Kari Nordmann")
		unchanged(t, before)
	})

	t.Run("malformed code", func(t *testing.T) {
		r.Fail(`malformed enrolment code`, "device", "approve", code[:len(code)-1], "--worker", "Kari Nordmann")
		unchanged(t, before)
	})

	t.Run("unknown worker", func(t *testing.T) {
		r.Fail(`unknown worker "Ola Hansen"`, "device", "approve", code, "--worker", "Ola Hansen")
		unchanged(t, before)
	})

	// None of the refusals used the request up: the genuine approval
	// works, and the laptop becomes Kari's.
	r.As("coordinator")
	dev := r.RunID(reDeviceID, "device", "approve", code, "--worker", "Kari Nordmann")
	r.As("kari-laptop")
	r.Sync()
	r.As("coordinator")
	approved := r.Devices()
	r.Check()
	if !bytes.Contains([]byte(approved), []byte(`"id":"`+dev+`","name":"kari-laptop","worker":"Kari Nordmann","role":"worker"`)) {
		t.Errorf("device list after approval: %s, want %s as kari-laptop, Kari Nordmann's worker laptop", approved, dev)
	}

	t.Run("reused code", func(t *testing.T) {
		r.As("coordinator")
		r.Fail(`unknown or already used enrolment code`, "device", "approve", code, "--worker", "Kari Nordmann")
		unchanged(t, approved)
	})
}

// TestDeviceInitRetry: a device init whose enrolment request did not reach
// the relay leaves nothing behind, so running it again works.
func TestDeviceInitRetry(t *testing.T) {
	t.Parallel()
	r := newRunner(t)
	proxy := newTamperProxy(t, r.URL())
	r.As("coordinator")
	org := r.OrgInit()
	r.Run("worker", "add", "Kari Nordmann")
	r.Check()

	proxy.mu.Lock()
	proxy.refuse = true
	proxy.mu.Unlock()
	r.As("kari-laptop")
	r.Fail(`post enrolment`, "device", "init", "--relay", proxy.srv.URL, "--org", org, "--name", "kari-laptop")
	r.Check()
	proxy.mu.Lock()
	proxy.refuse = false
	proxy.mu.Unlock()

	code := r.RunID(reCode, "device", "init", "--relay", proxy.srv.URL, "--org", org, "--name", "kari-laptop")
	r.As("coordinator")
	r.RunID(reDeviceID, "device", "approve", code, "--worker", "Kari Nordmann")
	r.As("kari-laptop")
	r.Sync()
	r.Check()
}
