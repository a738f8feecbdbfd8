package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoffDelay(t *testing.T) {
	const lo, hi = time.Second, 40 * time.Second
	for _, tc := range []struct {
		n        int
		r        float64
		want     time.Duration
		wantLow  time.Duration
		wantHigh time.Duration
	}{
		{n: 1, r: 0, want: 500 * time.Millisecond},
		{n: 1, r: 0.999999, wantLow: 999 * time.Millisecond, wantHigh: time.Second},
		{n: 2, r: 0, want: time.Second},
		{n: 3, r: 0.5, want: 3 * time.Second},
		{n: 6, r: 0, want: 16 * time.Second},
		{n: 7, r: 0, want: 20 * time.Second}, // capped at 40 s
		{n: 1000, r: 0.999999, wantLow: 39 * time.Second, wantHigh: hi},
	} {
		got := backoffDelay(tc.n, lo, hi, tc.r)
		if tc.want != 0 && got != tc.want {
			t.Errorf("backoffDelay(%d, r=%v) = %v, want %v", tc.n, tc.r, got, tc.want)
		}
		if tc.want == 0 && (got < tc.wantLow || got > tc.wantHigh) {
			t.Errorf("backoffDelay(%d, r=%v) = %v, want within [%v, %v]", tc.n, tc.r, got, tc.wantLow, tc.wantHigh)
		}
	}
}

// watchOrg is a coordinator and Kari's laptop, both assigned to Mina; the
// worker's laptop reaches the relay through a switchable front.
type watchOrg struct {
	relay *loopbackRelay
	coord *Device
	kari  *Device
	down  atomic.Bool // the front drops every connection
	front string
}

func newWatchOrg(t *testing.T) *watchOrg {
	ctx := context.Background()
	o := &watchOrg{relay: startLoopbackRelay(t)}
	root := t.TempDir()
	o.coord = relNewOrg(t, o.relay, filepath.Join(root, "coord"), "Enhet W")
	t.Cleanup(func() { o.coord.Close() })
	_, err := o.coord.WorkerAdd(ctx, "Kari Nordmann")
	require.NoError(t, err)
	home := filepath.Join(root, "kari")
	w, code, err := DeviceInit(ctx, relOptions(t, home), DeviceInitParams{RelayURL: o.relay.URL, Org: o.coord.Org(), Name: "kari-laptop"})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = o.coord.Approve(ctx, ApproveParams{Code: code, Worker: "Kari Nordmann"})
	require.NoError(t, err)
	_, err = o.coord.ResidentAdd(ctx, ResidentAddParams{Pseudonym: "Mina", Arrived: "2026-11-01"})
	require.NoError(t, err)
	require.NoError(t, o.coord.Assign(ctx, "Mina", "Kari Nordmann"))
	o.kari, err = Open(relOptions(t, home))
	require.NoError(t, err)
	t.Cleanup(func() { o.kari.Close() })
	_, err = o.kari.Sync(ctx)
	require.NoError(t, err)

	target, err := url.Parse(o.relay.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	o.front = s.URL
	o.kari.viaRelay(o.front)
	return o
}

// watchRun runs Watch on Kari's laptop and reports every sync.
type watchRun struct {
	mu      sync.Mutex // the device's lock, shared with the test
	syncs   chan watchSync
	retries chan [2]int64
	nudge   chan struct{}
	done    chan error
	cancel  context.CancelFunc
}

type watchSync struct {
	res SyncResult
	err error
}

func startWatch(t *testing.T, d *Device, wo WatchOptions) *watchRun {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watchRun{syncs: make(chan watchSync, 100), retries: make(chan [2]int64, 100),
		nudge: make(chan struct{}, 1), done: make(chan error, 1), cancel: cancel}
	wo.Lock = &w.mu
	wo.Nudge = w.nudge
	wo.OnSync = func(r SyncResult, err error) { w.syncs <- watchSync{r, err} }
	wo.OnRetry = func(n int, p time.Duration) { w.retries <- [2]int64{int64(n), int64(p)} }
	go func() { w.done <- d.Watch(ctx, wo) }()
	t.Cleanup(func() {
		cancel()
		<-w.done
	})
	return w
}

// next waits for the next sync that satisfies ok, failing after a
// generous bound so that a broken loop fails the test instead of hanging.
func (w *watchRun) next(t *testing.T, what string, ok func(watchSync) bool) watchSync {
	t.Helper()
	bound := time.After(2 * time.Minute)
	for {
		select {
		case s := <-w.syncs:
			if ok(s) {
				return s
			}
		case err := <-w.done:
			t.Fatalf("watch ended (%v) while waiting for %s", err, what)
		case <-bound:
			t.Fatalf("no sync with %s", what)
		}
	}
}

// TestWatchLive: a laptop running Watch receives another device's edit as
// soon as it lands (long-poll), sends its own at a nudge, and stops when
// its context ends.
func TestWatchLive(t *testing.T) {
	ctx := context.Background()
	o := newWatchOrg(t)
	w := startWatch(t, o.kari, WatchOptions{Wait: 30 * time.Second})
	w.next(t, "the first sync", func(s watchSync) bool { return s.err == nil })

	// The coordinator writes; Kari's laptop is waiting at the relay.
	_, err := o.coord.LogAdd("Mina", "practical", 5, "live from the office")
	require.NoError(t, err)
	_, err = o.coord.Sync(ctx)
	require.NoError(t, err)
	w.next(t, "the coordinator's edit", func(s watchSync) bool { return s.err == nil && s.res.Pulled > 0 })
	w.mu.Lock()
	require.Contains(t, watchLogTexts(t, o.kari), "live from the office")

	// Kari writes in the same process and nudges: it goes out at once.
	_, err = o.kari.LogAdd("Mina", "support_conversation", 20, "from the laptop")
	require.NoError(t, err)
	w.mu.Unlock()
	w.nudge <- struct{}{}
	w.next(t, "Kari's edit sent", func(s watchSync) bool { return s.err == nil && s.res.Pushed > 0 })
	_, err = o.coord.Sync(ctx)
	require.NoError(t, err)
	require.Contains(t, watchLogTexts(t, o.coord), "from the laptop")

	w.cancel()
	require.NoError(t, <-w.done, "a watch stopped by its context ends without error")
	w.done <- nil
}

// TestWatchBackoff: with the relay unreachable the loop retries with
// growing, jittered pauses and never gives up; when the relay is back the
// queued edit goes out and the backoff starts over.
func TestWatchBackoff(t *testing.T) {
	o := newWatchOrg(t)
	_, err := o.kari.LogAdd("Mina", "practical", 5, "written offline")
	require.NoError(t, err)
	o.down.Store(true)
	const lo, hi = 20 * time.Millisecond, 80 * time.Millisecond
	w := startWatch(t, o.kari, WatchOptions{MinBackoff: lo, MaxBackoff: hi, Wait: 30 * time.Second})
	for want := int64(1); want <= 4; want++ {
		s := w.next(t, "a failed sync", func(watchSync) bool { return true })
		require.Error(t, s.err)
		require.Contains(t, s.err.Error(), "1 edit(s) pending")
		r := <-w.retries
		require.Equal(t, want, r[0], "failures in a row")
		step := min(lo<<(want-1), hi)
		require.GreaterOrEqual(t, time.Duration(r[1]), step/2, "pause after failure %d", want)
		require.LessOrEqual(t, time.Duration(r[1]), step, "pause after failure %d", want)
	}
	o.down.Store(false)
	w.next(t, "the queued edit sent", func(s watchSync) bool { return s.err == nil && s.res.Pushed == 1 })
	require.Empty(t, w.retries, "a retry after the sync that succeeded")
}

// TestWatchEndsOnWipe: a laptop revoked while it watches is refused on its
// next request, verifies the revocation, wipes itself and the loop ends
// with ErrWiped.
func TestWatchEndsOnWipe(t *testing.T) {
	ctx := context.Background()
	o := newWatchOrg(t)
	w := startWatch(t, o.kari, WatchOptions{Wait: 30 * time.Second})
	w.next(t, "the first sync", func(s watchSync) bool { return s.err == nil })
	_, err := o.coord.Revoke(ctx, RevokeParams{Device: o.kari.ID().String()})
	require.NoError(t, err)
	select {
	case err := <-w.done:
		require.True(t, errors.Is(err, ErrWiped), "watch ended with %v, want ErrWiped", err)
		w.done <- nil
	case <-time.After(2 * time.Minute):
		t.Fatal("the revoked laptop's watch did not end")
	}
}

func watchLogTexts(t *testing.T, d *Device) []string {
	t.Helper()
	v, err := d.ResidentShow("Mina", false)
	require.NoError(t, err)
	var out []string
	for _, e := range v.Log {
		out = append(out, e.Text)
	}
	return out
}

// TestSyncWatchCLI: `fristed sync --watch` run as a real process prints a
// line when another laptop's edit arrives and exits 0 on Ctrl-C; bad flag
// combinations are one error line.
func TestSyncWatchCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	ctx := context.Background()
	o := newWatchOrg(t)
	home := o.kari.opts.Home
	require.NoError(t, o.kari.Close())
	root := t.TempDir()
	cli := &relCLI{bin: fristedBinary(t), home: home, passFile: relPassFile(t), tmp: root, dir: root}

	for _, bad := range [][]string{{"sync", "--wait", "5"}, {"sync", "--watch", "--wait", "0"}, {"sync", "--watch", "--wait", "61"}} {
		_, stderr, code := cli.run(t, "", bad...)
		require.Equal(t, 2, code, "fristed %v", bad)
		require.Equal(t, 1, strings.Count(stderr, "\n"), "fristed %v: %q", bad, stderr)
	}

	cmd := cli.command("", "sync", "--watch", "--wait", "20")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// The watcher holds the laptop; the coordinator writes twice, a pause
	// apart, so that at least one edit lands while it waits at the relay.
	received := 0
	for i := range 2 {
		_, err := o.coord.LogAdd("Mina", "practical", 5, "note "+strconv.Itoa(i))
		require.NoError(t, err)
		_, err = o.coord.Sync(ctx)
		require.NoError(t, err)
		bound := time.After(2 * time.Minute)
	wait:
		for {
			select {
			case l, ok := <-lines:
				require.True(t, ok, "the watcher exited: %s", stderr.String())
				t.Logf("stdout: %s", l)
				if strings.Contains(l, "synced:") && !strings.Contains(l, " 0 received") {
					received++
					break wait
				}
			case <-bound:
				t.Fatalf("no 'synced' line for edit %d; stderr:\n%s", i, stderr.String())
			}
		}
	}
	require.Equal(t, 2, received)
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	require.NoError(t, cmd.Wait(), "exit after Ctrl-C; stderr:\n%s", stderr.String())
	require.Contains(t, stderr.String(), "stopped")
	got := cli.mustRun(t, "", "resident", "show", "Mina", "--json")
	require.Contains(t, got, "note 0")
	require.Contains(t, got, "note 1")
}
