package server

import (
	"sync"

	"github.com/fristed/fristed/syncproto"
)

// hub wakes long-polls. The store calls notify after every batch append
// (for a shared database, by any relay process); the relay calls it after
// appending a statement, with the zero stream. A waiter on a stream is
// woken by appends to it; a waiter on the zero stream by anything in the
// tenant.
type hub struct {
	mu      sync.Mutex
	waiters map[waitKey]map[chan struct{}]struct{}
}

type waitKey struct {
	tenant syncproto.TenantID
	stream syncproto.StreamID
}

func newHub() *hub { return &hub{waiters: map[waitKey]map[chan struct{}]struct{}{}} }

// wait registers a waiter; the channel receives (coalesced) wake-ups until
// cancel is called.
func (h *hub) wait(tenant syncproto.TenantID, stream syncproto.StreamID) (<-chan struct{}, func()) {
	k := waitKey{tenant, stream}
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.waiters[k] == nil {
		h.waiters[k] = map[chan struct{}]struct{}{}
	}
	h.waiters[k][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.waiters[k], ch)
		if len(h.waiters[k]) == 0 {
			delete(h.waiters, k)
		}
		h.mu.Unlock()
	}
}

// notify never blocks: it is called from the store's subscription.
func (h *hub) notify(tenant syncproto.TenantID, stream syncproto.StreamID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	wake := func(k waitKey) {
		for ch := range h.waiters[k] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	wake(waitKey{tenant, stream})
	if !stream.IsZero() {
		wake(waitKey{tenant: tenant})
	}
}
