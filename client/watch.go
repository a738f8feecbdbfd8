package client

import (
	"context"
	"errors"
	"maps"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/fristed/fristed/client/transport"
	"github.com/fristed/fristed/syncproto"
)

// Watch defaults.
const (
	// DefaultWatchWait is how long one long-poll waits at the relay; the
	// relay caps it at 60 s.
	DefaultWatchWait = 55 * time.Second
	// DefaultMinBackoff and DefaultMaxBackoff bound the pause after a
	// failed sync.
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 5 * time.Minute
)

// WatchOptions configure Watch. The zero value is usable.
type WatchOptions struct {
	// Wait is how long one long-poll waits for news at the relay; zero
	// means DefaultWatchWait.
	Wait time.Duration
	// MinBackoff and MaxBackoff bound the pause after a failed sync:
	// it doubles with each failure in a row, with random jitter, and is
	// reset by a sync that succeeds. Zero means the defaults.
	MinBackoff, MaxBackoff time.Duration
	// Nudge wakes the loop for a sync at once: a local edit made in the
	// same process (the web UI) sends on it so the edit goes out without
	// waiting for news from the relay.
	Nudge <-chan struct{}
	// Lock, if set, is held around every use of the device, so that a UI
	// can share the Device with the loop; it is not held while the loop
	// waits.
	Lock sync.Locker
	// OnSync is called after every sync with its result and error; a nil
	// error with nothing sent or received is a quiet sync.
	OnSync func(SyncResult, error)
	// OnRetry is called before a pause after a failed sync.
	OnRetry func(failures int, pause time.Duration)
	// Rand returns a number in [0, 1) for the jitter; nil means math/rand.
	Rand func() float64
}

// Watch keeps the device in sync until ctx ends: it syncs, then waits at
// the relay (long-poll) until another device writes, a chain statement
// lands or Nudge fires, and syncs again. A failed sync is retried after
// an exponential backoff with jitter; the relay being unreachable is
// expected and never ends the loop. Watch returns nil when ctx ends, and
// the error when this device was revoked and wiped (ErrWiped) or the
// relay showed a signing key other than the org's.
func (d *Device) Watch(ctx context.Context, wo WatchOptions) error {
	wo.defaults()
	failures := 0
	var seen map[syncproto.StreamID]syncproto.Seq // heads after the previous sync
	for {
		res, err := d.locked(wo.Lock, func() (SyncResult, error) { return d.Sync(ctx) })
		if ctx.Err() != nil {
			return nil
		}
		if wo.OnSync != nil {
			wo.OnSync(res, err)
		}
		if err != nil {
			if watchFatal(d, err) {
				return err
			}
			failures++
			pause := backoffDelay(failures, wo.MinBackoff, wo.MaxBackoff, wo.Rand())
			if wo.OnRetry != nil {
				wo.OnRetry(failures, pause)
			}
			if !waitOrNudge(ctx, pause, wo.Nudge) {
				return nil
			}
			continue
		}
		failures = 0

		// What the relay holds now. Anything past this device's cursors
		// that is new since the last look arrived while it synced: sync
		// again at once. A stream that stays behind (a key not yet
		// shared) does not make the loop spin: it waits for a change.
		c, cursors, chainPos, err := d.watchCursors(wo.Lock)
		if err != nil {
			return err
		}
		heads, err := waitHeads(ctx, c, cursors, chainPos, 0, nil)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			continue // the next sync reports it and backs off
		}
		if !maps.Equal(heads, cursors) && !maps.Equal(heads, seen) {
			seen = heads
			continue
		}
		seen = heads
		if _, err := waitHeads(ctx, c, heads, chainPos, wo.Wait, wo.Nudge); ctx.Err() != nil {
			return nil
		} else if err != nil && !errors.Is(err, errNudged) {
			// The relay went away mid-wait: the sync after this says so.
			if !waitOrNudge(ctx, backoffDelay(1, wo.MinBackoff, wo.MaxBackoff, wo.Rand()), wo.Nudge) {
				return nil
			}
		}
	}
}

func (wo *WatchOptions) defaults() {
	if wo.Wait <= 0 {
		wo.Wait = DefaultWatchWait
	}
	if wo.MinBackoff <= 0 {
		wo.MinBackoff = DefaultMinBackoff
	}
	if wo.MaxBackoff <= 0 {
		wo.MaxBackoff = DefaultMaxBackoff
	}
	if wo.MaxBackoff < wo.MinBackoff {
		wo.MaxBackoff = wo.MinBackoff
	}
	if wo.Rand == nil {
		wo.Rand = mrand.Float64
	}
}

// watchFatal reports whether a failed sync ends the loop: retrying cannot
// help, or must not happen.
func watchFatal(d *Device, err error) bool {
	return errors.Is(err, ErrWiped) || d.relayKeyMismatch
}

func (d *Device) locked(l sync.Locker, fn func() (SyncResult, error)) (SyncResult, error) {
	if l != nil {
		l.Lock()
		defer l.Unlock()
	}
	return fn()
}

// watchCursors returns the relay client and this device's position in
// every readable stream and in the chain.
func (d *Device) watchCursors(l sync.Locker) (*transport.Client, map[syncproto.StreamID]syncproto.Seq, syncproto.ChainPos, error) {
	if l != nil {
		l.Lock()
		defer l.Unlock()
	}
	c, err := d.client()
	if err != nil {
		return nil, nil, 0, err
	}
	out := map[syncproto.StreamID]syncproto.Seq{}
	for _, s := range d.readableStreams() {
		n, err := d.cursor(s)
		if err != nil {
			return nil, nil, 0, err
		}
		out[s] = n
	}
	return c, out, syncproto.ChainPos(d.chain.Len()), nil
}

var errNudged = errors.New("nudged")

// waitHeads asks the relay for the heads of every readable stream,
// waiting up to wait for any to differ from known (or the chain from
// chainPos). A nudge ends the wait with errNudged.
func waitHeads(ctx context.Context, c *transport.Client, known map[syncproto.StreamID]syncproto.Seq, chainPos syncproto.ChainPos, wait time.Duration, nudge <-chan struct{}) (map[syncproto.StreamID]syncproto.Seq, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nudged := make(chan struct{})
	if nudge != nil {
		go func() {
			select {
			case <-nudge:
				close(nudged)
				cancel()
			case <-wctx.Done():
			}
		}()
	}
	heads, _, err := c.Heads(wctx, known, chainPos, wait)
	if err != nil {
		select {
		case <-nudged:
			return nil, errNudged
		default:
		}
		return nil, err
	}
	out := make(map[syncproto.StreamID]syncproto.Seq, len(heads))
	for s, h := range heads {
		out[s] = syncproto.Seq(h.Head)
	}
	return out, nil
}

// waitOrNudge pauses for d, or until a nudge; false when ctx ended.
func waitOrNudge(ctx context.Context, d time.Duration, nudge <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-nudge:
	}
	return true
}

// backoffDelay is the pause after the n-th failure in a row (n >= 1):
// min doubled n-1 times, capped at max, of which the upper half is random
// (r in [0, 1)), so that laptops coming back together do not retry in
// step.
func backoffDelay(n int, min, max time.Duration, r float64) time.Duration {
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + time.Duration(r*float64(d-half))
}
