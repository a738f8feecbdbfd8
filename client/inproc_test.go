package client

// The in-process transport: the real relay (server package, SQLite in a
// directory) called through an http.RoundTripper, without sockets, and a
// fault injector in front of it driven by a seeded RNG.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fristed/fristed/server"
	"github.com/fristed/fristed/server/store/sqlite"
)

// inprocURL is the relay URL devices on an in-process relay record. It is
// never dialled: the RoundTripper answers.
const inprocURL = "http://127.0.0.1:1"

// inprocRelay is the real relay over a data directory, reached through
// its handler.
type inprocRelay struct {
	rl *server.Relay
	st *sqlite.Store
	h  http.Handler
}

func openInprocRelay(dir string) (*inprocRelay, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	st, err := sqlite.Open(filepath.Join(dir, "relay.db"))
	if err != nil {
		return nil, err
	}
	rl, err := server.New(context.Background(), server.Config{Dir: dir, Store: st,
		Limits: server.Limits{AddrRate: 1e6, AddrBurst: 1e6, DeviceRate: 1e6, DeviceBurst: 1e6}})
	if err != nil {
		st.Close()
		return nil, err
	}
	return &inprocRelay{rl: rl, st: st, h: rl.Handler()}, nil
}

// invite stores a one-time tenant invite and returns it.
func (r *inprocRelay) invite() (string, error) {
	b := make([]byte, 24)
	rand.Read(b)
	inv := "fri_test_" + base64.RawURLEncoding.EncodeToString(b)
	return inv, r.st.PutInvite(context.Background(), server.InviteHash(inv), time.Now().Add(time.Hour))
}

func (r *inprocRelay) Close() {
	r.rl.Close()
	r.st.Close()
}

// serveFunc sends one request (its body given separately, so it can be
// sent again) and returns the relay's answer.
type serveFunc func(req *http.Request, body []byte) (*http.Response, error)

// handlerServe calls h in-process, as the relay's HTTP server would.
func handlerServe(h http.Handler) serveFunc {
	return func(req *http.Request, body []byte) (*http.Response, error) {
		sreq := req.Clone(context.Background())
		sreq.RequestURI = req.URL.RequestURI()
		sreq.RemoteAddr = "127.0.0.1:7"
		sreq.Host = req.URL.Host
		sreq.Body = io.NopCloser(bytes.NewReader(body))
		sreq.ContentLength = int64(len(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, sreq)
		resp := rec.Result()
		resp.Request = req
		return resp, nil
	}
}

// loopbackServe sends requests over real HTTP to a relay listening on
// base (http://127.0.0.1:PORT), whatever host the device recorded.
func loopbackServe(base string) serveFunc {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}
	return func(req *http.Request, body []byte) (*http.Response, error) {
		u := *req.URL
		u.Scheme, u.Host = "http", base[len("http://"):]
		out, err := http.NewRequestWithContext(context.Background(), req.Method, u.String(), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		out.Header = req.Header.Clone()
		resp, err := tr.RoundTrip(out)
		if err != nil {
			return nil, err
		}
		// Read it whole here, so a response "lost" after the relay
		// answered is still fully handled by the relay.
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(raw))
		resp.Request = req
		return resp, nil
	}
}

// plainRT carries requests to serve without faults.
type plainRT struct{ serve serveFunc }

func (p plainRT) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := readBody(req)
	if err != nil {
		return nil, err
	}
	return p.serve(req, body)
}

func readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil {
		return nil, nil
	}
	defer req.Body.Close()
	return io.ReadAll(req.Body)
}

// errFault is what a device sees when the injector drops something: to
// the client it is a network failure (transport.ErrUnreachable).
var errFault = errors.New("connection reset (injected fault)")

// faultNet is the network of one schedule: every device's requests go
// through it, so one seeded RNG decides every fault.
type faultNet struct {
	mu    sync.Mutex
	rng   *mrand.Rand
	serve serveFunc
	// Probabilities per request: dropped before the relay sees it,
	// handled by the relay but its answer lost (the client retries: a
	// duplicate delivery), sent twice, held back and delivered later
	// (after the client gave up on it: a late duplicate that changes
	// which request the relay sees first).
	pDrop, pLose, pDup, pHold float64
	off                       bool // no faults (quiescence)
	held                      []heldReq
	counts                    map[string]int
}

type heldReq struct {
	req  *http.Request
	body []byte
}

func newFaultNet(rng *mrand.Rand, serve serveFunc) *faultNet {
	return &faultNet{rng: rng, serve: serve, pDrop: 0.03, pLose: 0.03, pDup: 0.03, pHold: 0.02, counts: map[string]int{}}
}

// device returns the RoundTripper of one device; while offline is true
// every request of that device fails before leaving it.
func (n *faultNet) device(offline *bool) http.RoundTripper {
	return faultRT{n: n, offline: offline}
}

type faultRT struct {
	n       *faultNet
	offline *bool
}

func (f faultRT) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := readBody(req)
	if err != nil {
		return nil, err
	}
	n := f.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if *f.offline {
		n.counts["offline"]++
		return nil, errFault
	}
	if n.off {
		return n.serve(req, body)
	}
	x := n.rng.Float64()
	switch {
	case x < n.pDrop:
		n.counts["drop"]++
		return nil, errFault
	case x < n.pDrop+n.pLose:
		n.counts["lose"]++
		if resp, err := n.serve(req, body); err == nil {
			resp.Body.Close()
		}
		return nil, errFault
	case x < n.pDrop+n.pLose+n.pDup:
		n.counts["dup"]++
		if strings.HasSuffix(req.URL.Path, "/auth/token") {
			// The second copy finds its one-time challenge spent.
			n.counts["dup-login"]++
		}
		if resp, err := n.serve(req, body); err == nil {
			resp.Body.Close()
		}
		return n.serve(req, body)
	case x < n.pDrop+n.pLose+n.pDup+n.pHold:
		n.counts["hold"]++
		n.held = append(n.held, heldReq{req.Clone(context.Background()), body})
		return nil, errFault
	}
	return n.serve(req, body)
}

// deliverHeld sends the held requests, in a random order, answering
// nobody.
func (n *faultNet) deliverHeld() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rng.Shuffle(len(n.held), func(i, j int) { n.held[i], n.held[j] = n.held[j], n.held[i] })
	for _, h := range n.held {
		if resp, err := n.serve(h.req, h.body); err == nil {
			resp.Body.Close()
		}
	}
	n.held = nil
}

// dupLogins is how many token requests were delivered twice so far.
func (n *faultNet) dupLogins() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.counts["dup-login"]
}

func (n *faultNet) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return fmt.Sprintf("faults: drop %d, lose %d, dup %d, hold %d, offline %d",
		n.counts["drop"], n.counts["lose"], n.counts["dup"], n.counts["hold"], n.counts["offline"])
}

// serveLoopback serves a relay's handler on a loopback port; it returns
// the URL and a stop function.
func serveLoopback(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := server.NewHTTPServer(h, nil)
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(c)
	}, nil
}

// copyTree copies the regular files and directories under src to dst,
// keeping their modes.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		info, err := e.Info()
		if err != nil {
			return err
		}
		if e.IsDir() {
			return os.MkdirAll(to, info.Mode().Perm())
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, info.Mode().Perm())
	})
}

// TestInprocTransport: a device made and synced entirely through the
// in-process transport talks to the real relay handler: org init, a
// resident, an edit, a sync with a signed receipt.
func TestInprocTransport(t *testing.T) {
	dir := t.TempDir()
	r, err := openInprocRelay(filepath.Join(dir, "relay"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	inv, err := r.invite()
	if err != nil {
		t.Fatal(err)
	}
	opts := relOptions(t, filepath.Join(dir, "coord"))
	opts.RoundTripper = plainRT{handlerServe(r.h)}
	ctx := context.Background()
	d, err := OrgInit(ctx, opts, OrgInitParams{RelayURL: inprocURL, Invite: inv, Name: "Enhet I",
		RecoveryOut: filepath.Join(dir, "recovery.age"), RecoveryPass: []byte("recovery " + relPassphrase)})
	if err != nil {
		t.Fatalf("org init in-process: %v", err)
	}
	defer d.Close()
	if _, err := d.ResidentAdd(ctx, ResidentAddParams{Pseudonym: "Mina", Arrived: "2026-11-01"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.LogAdd("Mina", "practical", 5, "in-process"); err != nil {
		t.Fatal(err)
	}
	res, err := d.Sync(ctx)
	if err != nil {
		t.Fatalf("sync in-process: %v", err)
	}
	if res.Pushed == 0 || res.Pending != 0 {
		t.Errorf("got %+v, want the edit pushed and nothing pending", res)
	}
	var n int
	if err := d.db().QueryRow(`SELECT COUNT(*) FROM local_receipts`).Scan(&n); err != nil || n == 0 {
		t.Errorf("got %d receipts (%v), want the relay's signed receipts kept", n, err)
	}
}
