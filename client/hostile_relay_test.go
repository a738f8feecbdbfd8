package client

// A hostile relay: the real relay behind a RoundTripper that rewrites what
// it serves to one device, holding the relay's own signing key (the relay
// itself is the adversary, so receipts it re-signs verify). Each attack
// must be refused or reported by the client (an error or notice naming
// the stream and the problem), never applied silently; the replica stays
// as it was where it must.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server"
	"github.com/fristed/fristed/syncproto"
)

// hostileWorld is a copy of the convergence template: coord, and the
// laptops of Ada and Bo assigned to Mina (and Cy's, assigned to nobody),
// on one or two relays.
type hostileWorld struct {
	t        *testing.T
	dir      string
	resident syncproto.StreamID
	relays   []*inprocRelay
	relayKey *fcrypto.SigningKey

	mu      sync.Mutex
	faults  map[string][]*netFault // laptop -> faults still to happen
	route   map[string]int         // laptop -> index of the relay it reaches
	rewrite map[string]func(path string, m map[string]any)
	devs    map[string]*Device
	notices map[string][]string
}

// newHostileWorld copies the template; with forked, the relay's data is
// copied twice and each laptop can be routed to either copy: one relay
// showing two histories, with one signing key.
func newHostileWorld(t *testing.T, forked bool) *hostileWorld {
	tm := convSetup(t)
	w := &hostileWorld{t: t, dir: t.TempDir(), resident: tm.resident, route: map[string]int{}, faults: map[string][]*netFault{},
		rewrite: map[string]func(string, map[string]any){}, devs: map[string]*Device{}, notices: map[string][]string{}}
	require.NoError(t, copyTree(tm.dir, w.dir))
	dirs := []string{filepath.Join(w.dir, "relay")}
	if forked {
		dirs = append(dirs, filepath.Join(w.dir, "relay-b"))
		require.NoError(t, copyTree(dirs[0], dirs[1]))
	}
	for _, d := range dirs {
		r, err := openInprocRelay(d)
		require.NoError(t, err)
		t.Cleanup(r.Close)
		w.relays = append(w.relays, r)
	}
	var err error
	w.relayKey, err = server.LoadRelayKey(dirs[0])
	require.NoError(t, err)
	for _, h := range []string{"coord", "ada", "bo"} {
		o := relOptions(t, filepath.Join(w.dir, h))
		h := h
		o.Notice = func(s string) {
			t.Logf("notice [%s]: %s", h, s)
			w.mu.Lock()
			w.notices[h] = append(w.notices[h], s)
			w.mu.Unlock()
		}
		o.RoundTripper = hostileRT{w: w, dev: h}
		d, err := Open(o)
		require.NoError(t, err)
		t.Cleanup(func() { d.Close() })
		w.devs[h] = d
	}
	return w
}

type hostileRT struct {
	w   *hostileWorld
	dev string
}

func (h hostileRT) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := readBody(req)
	if err != nil {
		return nil, err
	}
	h.w.mu.Lock()
	relay := h.w.relays[h.w.route[h.dev]]
	rw := h.w.rewrite[h.dev]
	var fault *netFault
	for i, f := range h.w.faults[h.dev] {
		if f.matches(req, body) {
			fault = f
			h.w.faults[h.dev] = append(h.w.faults[h.dev][:i:i], h.w.faults[h.dev][i+1:]...)
			break
		}
	}
	h.w.mu.Unlock()
	serve := handlerServe(relay.h)
	switch {
	case fault == nil:
	case fault.action == "drop":
		return nil, errFault
	case fault.action == "lose":
		if resp, err := serve(req, body); err == nil {
			resp.Body.Close()
		}
		return nil, errFault
	case fault.action == "dup":
		if resp, err := serve(req, body); err == nil {
			resp.Body.Close()
		}
	}
	resp, err := serve(req, body)
	if err != nil || rw == nil || resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		return resp, err
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) == nil {
		rw(req.Method+" "+req.URL.Path, m)
		raw, _ = json.Marshal(m)
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	resp.ContentLength = int64(len(raw))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// netFault is one network fault on the first request that matches:
// "drop" (the relay never sees it), "lose" (the relay handles it, the
// answer is lost) or "dup" (the relay gets it twice).
type netFault struct {
	action, method, suffix string
	body                   func([]byte) bool // nil: any body
}

func (f *netFault) matches(req *http.Request, body []byte) bool {
	return req.Method == f.method && strings.HasSuffix(req.URL.Path, f.suffix) && (f.body == nil || f.body(body))
}

// fault queues a network fault for dev's requests.
func (w *hostileWorld) fault(dev string, f *netFault) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.faults[dev] = append(w.faults[dev], f)
}

// isStatement returns a body matcher for a statement of body type T.
func isStatement[T syncproto.Body]() func([]byte) bool {
	return func(raw []byte) bool {
		st, err := syncproto.UnmarshalStatement(raw)
		if err != nil {
			return false
		}
		_, ok := st.Body.(T)
		return ok
	}
}

// attack sets how the relay rewrites JSON answers to dev; nil stops.
func (w *hostileWorld) attack(dev string, fn func(path string, m map[string]any)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rewrite[dev] = fn
}

func (w *hostileWorld) routeTo(dev string, relay int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.route[dev] = relay
}

func (w *hostileWorld) noticesOf(dev string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.notices[dev], "\n")
}

func (w *hostileWorld) sync(dev string) (SyncResult, error) {
	return w.devs[dev].Sync(context.Background())
}

func (w *hostileWorld) mustSync(dev string) {
	w.t.Helper()
	_, err := w.sync(dev)
	require.NoError(w.t, err, "sync %s", dev)
}

// logTexts is the texts of Mina's log on dev.
func (w *hostileWorld) logTexts(dev string) []string {
	w.t.Helper()
	log, err := w.devs[dev].rep.Log(w.resident)
	require.NoError(w.t, err)
	var out []string
	for _, e := range log {
		out = append(out, e.Text)
	}
	return out
}

func (w *hostileWorld) dump(dev string) []byte {
	w.t.Helper()
	b, err := w.devs[dev].rep.Dump(w.resident)
	require.NoError(w.t, err)
	return b
}

// coordWrites has coord add one log entry per text, each synced as its
// own batch (texts joined by "+" go in one batch).
func (w *hostileWorld) coordWrites(texts ...string) {
	w.t.Helper()
	for _, tx := range texts {
		for _, part := range strings.Split(tx, "+") {
			_, err := w.devs["coord"].LogAdd("Mina", "practical", 5, part)
			require.NoError(w.t, err)
		}
		w.mustSync("coord")
	}
}

// isBatches reports whether path is a pull of the resident's batches.
func (w *hostileWorld) isBatches(path string) bool {
	return strings.HasPrefix(path, "GET ") && strings.HasSuffix(path, "/streams/"+w.resident.String()+"/batches")
}

type pulledJSON struct {
	seq          uint64
	raw, receipt []byte
}

func pageOf(t *testing.T, m map[string]any) []pulledJSON {
	var out []pulledJSON
	bs, _ := m["batches"].([]any)
	for _, b := range bs {
		o := b.(map[string]any)
		raw, err := base64.StdEncoding.DecodeString(o["raw"].(string))
		require.NoError(t, err)
		rc, err := base64.StdEncoding.DecodeString(o["receipt"].(string))
		require.NoError(t, err)
		out = append(out, pulledJSON{uint64(o["seq"].(float64)), raw, rc})
	}
	return out
}

func setPage(m map[string]any, page []pulledJSON) {
	bs := make([]any, 0, len(page))
	for _, p := range page {
		bs = append(bs, map[string]any{"seq": p.seq, "raw": base64.StdEncoding.EncodeToString(p.raw),
			"receipt": base64.StdEncoding.EncodeToString(p.receipt)})
	}
	m["batches"] = bs
}

// resign makes the relay sign a receipt for raw at seq, with change
// applied to it first.
func (w *hostileWorld) resign(p pulledJSON, seq uint64, change func(*syncproto.Receipt)) pulledJSON {
	w.t.Helper()
	rc, err := syncproto.UnmarshalReceipt(p.receipt)
	require.NoError(w.t, err)
	b, err := syncproto.UnmarshalBatch(p.raw)
	require.NoError(w.t, err)
	rc.Seq = syncproto.Seq(seq)
	if rc.Batch, err = b.Hash(); err != nil {
		rc.Batch = syncproto.Hash{}
	}
	if change != nil {
		change(rc)
	}
	require.NoError(w.t, rc.Sign(w.relayKey))
	return pulledJSON{seq, p.raw, rc.Marshal()}
}

// TestHostileBatches: a relay that drops, reorders, replays or truncates
// the batches it serves, or names a head it then does not serve, is
// reported (ErrHistory and a notice naming the stream); nothing from the
// faulty batch on is applied; an honest relay afterwards brings the
// laptop up to date.
func TestHostileBatches(t *testing.T) {
	type attack func(w *hostileWorld, page []pulledJSON) []pulledJSON
	tests := []struct {
		name    string
		texts   []string // coord's batches
		attack  attack
		want    string   // in the error
		applied []string // what ada may apply before the fault
	}{
		{"drop", []string{"one", "two", "three"}, func(w *hostileWorld, p []pulledJSON) []pulledJSON {
			return append(p[:1:1], p[2:]...)
		}, "skipped", []string{"one"}},
		{"reorder", []string{"one", "two", "three"}, func(w *hostileWorld, p []pulledJSON) []pulledJSON {
			p[0], p[1] = p[1], p[0]
			return p
		}, "skipped", nil},
		{"replay under a new number", []string{"one", "two", "three"}, func(w *hostileWorld, p []pulledJSON) []pulledJSON {
			// Batch "one" again in place of "two", with a receipt the
			// relay signs for the new number.
			return []pulledJSON{p[0], w.resign(p[0], p[1].seq, nil), p[2]}
		}, "replay", []string{"one"}},
		{"truncated bytes", []string{"one", "two", "three"}, func(w *hostileWorld, p []pulledJSON) []pulledJSON {
			p[1].raw = p[1].raw[:len(p[1].raw)/2]
			return p
		}, "batch", []string{"one"}},
		{"a delta cut from a batch", []string{"one+one more", "two"}, func(w *hostileWorld, p []pulledJSON) []pulledJSON {
			b, err := syncproto.UnmarshalBatch(p[0].raw)
			require.NoError(w.t, err)
			require.Len(w.t, b.Deltas, 2)
			b.Deltas = b.Deltas[:1]
			raw, err := b.Marshal()
			require.NoError(w.t, err)
			p[0] = w.resign(pulledJSON{p[0].seq, raw, p[0].receipt}, p[0].seq, nil)
			return p
		}, "verify batch", nil},
		{"head not served", []string{"one", "two"}, func(w *hostileWorld, p []pulledJSON) []pulledJSON {
			return nil
		}, "serves none", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newHostileWorld(t, false)
			w.mustSync("ada")
			before := w.dump("ada")
			w.coordWrites(tt.texts...)
			w.attack("ada", func(path string, m map[string]any) {
				if w.isBatches(path) {
					setPage(m, tt.attack(w, pageOf(t, m)))
				}
			})
			_, err := w.sync("ada")
			if !errors.Is(err, ErrHistory) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), w.resident.String()) {
				t.Fatalf("got %v, want ErrHistory naming %s and %q", err, w.resident, tt.want)
			}
			if n := w.noticesOf("ada"); !strings.Contains(n, w.resident.String()) {
				t.Errorf("got notices %q, want one naming the stream", n)
			}
			got := w.logTexts("ada")
			if strings.Join(got, ",") != strings.Join(tt.applied, ",") {
				t.Errorf("got log %q applied, want %q", got, tt.applied)
			}
			if tt.applied == nil && !bytes.Equal(before, w.dump("ada")) {
				t.Errorf("the replica changed:\n%s", dumpDiff(before, w.dump("ada")))
			}
			w.attack("ada", nil)
			w.mustSync("ada")
			if got, want := len(w.logTexts("ada")), strings.Count(strings.Join(tt.texts, "+"), "+")+1; got != want {
				t.Errorf("after an honest sync: got %d log entries, want %d", got, want)
			}
		})
	}
}

// TestHostileForkedViews: the relay shows Ada's laptop one history and the
// coordinator another (two copies of its data, one signing key). As soon
// as a later batch of either author reaches the other, the missing batch
// is reported on both sides, and nothing after the gap is applied.
func TestHostileForkedViews(t *testing.T) {
	w := newHostileWorld(t, true)
	w.routeTo("ada", 1)
	w.coordWrites("coord one")
	_, err := w.devs["ada"].LogAdd("Mina", "practical", 5, "ada one")
	require.NoError(t, err)
	w.mustSync("ada")
	// Each side sees a consistent history of its own.
	require.Equal(t, []string{"ada one"}, w.logTexts("ada"))

	// The relay now shows Ada the coordinator's history.
	w.routeTo("ada", 0)
	w.coordWrites("coord two")
	_, err = w.devs["ada"].LogAdd("Mina", "practical", 5, "ada two")
	require.NoError(t, err)
	_, err = w.sync("ada")
	if !errors.Is(err, ErrHistory) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("ada: got %v, want ErrHistory about a missing batch", err)
	}
	if got := w.logTexts("ada"); strings.Contains(strings.Join(got, ","), "coord two") {
		t.Errorf("ada applied a batch after the gap: %q", got)
	}
	_, err = w.sync("coord")
	if !errors.Is(err, ErrHistory) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("coord: got %v, want ErrHistory about a missing batch", err)
	}
	if got := w.logTexts("coord"); strings.Contains(strings.Join(got, ","), "ada two") {
		t.Errorf("coord applied a batch after the gap: %q", got)
	}
}

// TestHostilePlantedKey: the relay serves Ada's laptop, for a new epoch,
// a key it made itself (wrapped to the laptop's public key, which anyone
// can do) instead of the coordinator's. The laptop refuses it because it
// does not match the signed commitment, says so, reads nothing under it,
// and does not acknowledge it, so the genuine key stays on the relay.
func TestHostilePlantedKey(t *testing.T) {
	w := newHostileWorld(t, false)
	ctx := context.Background()
	require.NoError(t, w.devs["coord"].Assign(ctx, "Mina", "Cy"))
	str := w.devs["coord"].chain.State().Streams[w.resident]
	epoch := str.Current().Epoch
	w.coordWrites("under the new key")
	ada := w.devs["ada"]
	box, err := fcrypto.ParseBoxRecipient(w.devs["coord"].chain.State().Devices[ada.ID()].Box)
	require.NoError(t, err)
	w.attack("ada", func(path string, m map[string]any) {
		if !strings.HasSuffix(path, "/keys") || !strings.HasPrefix(path, "GET") {
			return
		}
		ks, _ := m["keys"].([]any)
		for i, k := range ks {
			raw, _ := base64.StdEncoding.DecodeString(k.(string))
			wk, err := syncproto.UnmarshalWrappedKey(raw)
			require.NoError(t, err)
			if wk.Stream != w.resident || wk.Epoch != epoch {
				continue
			}
			planted, err := fcrypto.NewKey()
			require.NoError(t, err)
			wk.Wrapped, err = fcrypto.WrapKey(planted, box.Recipient())
			require.NoError(t, err)
			ks[i] = base64.StdEncoding.EncodeToString(wk.Marshal())
		}
	})
	_, err = w.sync("ada")
	require.NoError(t, err, "a refused key and a stream waiting for its key are notices, not errors")
	n := w.noticesOf("ada")
	if !strings.Contains(n, "refused a wrapped key for "+w.resident.String()) || !strings.Contains(n, "commitment") {
		t.Errorf("got notices %q, want the planted key refused, naming the stream", n)
	}
	if _, err := ada.epochKey(w.resident, epoch); !errors.Is(err, ErrNoKey) {
		t.Fatalf("got %v, want no key stored for epoch %d", err, epoch)
	}
	if got := w.logTexts("ada"); len(got) != 0 {
		t.Errorf("got %q, want nothing read under the planted epoch", got)
	}
	w.attack("ada", nil)
	w.mustSync("ada")
	require.Equal(t, []string{"under the new key"}, w.logTexts("ada"))
}

// TestHostileReceiptTimes: the relay lies about when it received batches.
// A receipt dated before the previous one, or a receipt for a batch that
// differs from the one the pushing laptop was given, is reported and the
// batch is not applied.
func TestHostileReceiptTimes(t *testing.T) {
	t.Run("backdated", func(t *testing.T) {
		w := newHostileWorld(t, false)
		w.mustSync("ada")
		before := w.dump("ada")
		w.coordWrites("one")
		w.attack("ada", func(path string, m map[string]any) {
			if w.isBatches(path) {
				p := pageOf(t, m)
				for i := range p {
					p[i] = w.resign(p[i], p[i].seq, func(rc *syncproto.Receipt) { rc.ReceivedMS -= uint64(time.Hour.Milliseconds()) })
				}
				setPage(m, p)
			}
		})
		_, err := w.sync("ada")
		if !errors.Is(err, ErrHistory) || !strings.Contains(err.Error(), "dated") {
			t.Fatalf("got %v, want ErrHistory about receipt dates", err)
		}
		require.Equal(t, before, w.dump("ada"), "the replica changed")
	})
	t.Run("two receipts for one batch", func(t *testing.T) {
		w := newHostileWorld(t, false)
		_, err := w.devs["coord"].LogAdd("Mina", "practical", 5, "one")
		require.NoError(t, err)
		// The pusher is given one receipt; the pull serves another.
		w.attack("coord", func(path string, m map[string]any) {
			if w.isBatches(path) {
				p := pageOf(t, m)
				for i := range p {
					p[i] = w.resign(p[i], p[i].seq, func(rc *syncproto.Receipt) { rc.ReceivedMS += 1000 })
				}
				setPage(m, p)
			}
		})
		_, err = w.sync("coord")
		if !errors.Is(err, ErrHistory) || !strings.Contains(err.Error(), "two different receipts") {
			t.Fatalf("got %v, want ErrHistory about two receipts", err)
		}
	})
}

// TestHostileWithheldRevocation: the coordinator revokes Bo's laptop; the
// relay keeps the revocation (and everything after it) from Ada's laptop.
// The coordinator's next batch names the chain head it was written under,
// past anything Ada's laptop was shown: the laptop fetches the chain once
// more, is refused the statements again, and reports withheld admin
// statements; the batch is not applied, nor is a key for the epoch the
// revocation started accepted.
func TestHostileWithheldRevocation(t *testing.T) {
	w := newHostileWorld(t, false)
	ctx := context.Background()
	w.mustSync("ada")
	coord := w.devs["coord"]
	cut := coord.chain.Len() // the revocation lands here
	_, err := coord.Revoke(ctx, RevokeParams{Device: w.devs["bo"].ID().String()})
	require.NoError(t, err)
	require.Greater(t, coord.chain.Len(), cut)
	w.attack("ada", func(path string, m map[string]any) {
		if !strings.HasSuffix(path, "/chain") || !strings.HasPrefix(path, "GET") {
			return
		}
		// Answer as if the chain ended before the revocation.
		m["head"] = float64(cut)
		ss, _ := m["statements"].([]any)
		var kept []any
		for _, s := range ss {
			raw, _ := base64.StdEncoding.DecodeString(s.(string))
			st, err := syncproto.UnmarshalStatement(raw)
			require.NoError(t, err)
			if int(st.Pos) < cut {
				kept = append(kept, s)
			}
		}
		m["statements"] = kept
	})
	before := w.dump("ada")
	w.coordWrites("after the revocation")
	_, err = w.sync("ada")
	if !errors.Is(err, ErrHistory) || !strings.Contains(err.Error(), "withheld") || !strings.Contains(err.Error(), w.resident.String()) {
		t.Fatalf("got %v, want ErrHistory about withheld admin statements naming the stream", err)
	}
	require.Equal(t, cut, w.devs["ada"].chain.Len(), "ada's chain")
	require.Equal(t, before, w.dump("ada"), "the replica changed")

	w.attack("ada", nil)
	w.mustSync("ada")
	require.Equal(t, []string{"after the revocation"}, w.logTexts("ada"))
}

// TestHostileForkedChainHead: a batch whose author signed a chain head
// with another hash at a position this laptop holds (the relay showed the
// author a different admin chain) is reported as a fork, not applied.
func TestHostileForkedChainHead(t *testing.T) {
	w := newHostileWorld(t, false)
	w.mustSync("ada")
	before := w.dump("ada")
	w.coordWrites("one")
	coord := w.devs["coord"]
	w.attack("ada", func(path string, m map[string]any) {
		if !w.isBatches(path) {
			return
		}
		p := pageOf(t, m)
		b, err := syncproto.UnmarshalBatch(p[0].raw)
		require.NoError(t, err)
		// What the author would have signed had it been shown another
		// statement at that position.
		b.ChainHead.Hash[0] ^= 1
		require.NoError(t, b.Sign(coord.kf.Sign))
		raw, err := b.Marshal()
		require.NoError(t, err)
		p[0] = w.resign(pulledJSON{p[0].seq, raw, p[0].receipt}, p[0].seq, nil)
		setPage(m, p)
	})
	_, err := w.sync("ada")
	if !errors.Is(err, ErrHistory) || !strings.Contains(err.Error(), "forked chain") {
		t.Fatalf("got %v, want ErrHistory about a forked chain", err)
	}
	require.Equal(t, before, w.dump("ada"), "the replica changed")
}
