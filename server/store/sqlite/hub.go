package sqlite

import (
	"context"
	"sync"

	"github.com/fristed/fristed/syncproto"
)

// hub broadcasts appends to the subscribers of this process.
type hub struct {
	mu   sync.Mutex
	next uint64
	subs map[uint64]func(syncproto.TenantID, syncproto.StreamID)
}

// add registers fn until ctx ends.
func (h *hub) add(ctx context.Context, fn func(syncproto.TenantID, syncproto.StreamID)) {
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[uint64]func(syncproto.TenantID, syncproto.StreamID){}
	}
	id := h.next
	h.next++
	h.subs[id] = fn
	h.mu.Unlock()
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		delete(h.subs, id)
		h.mu.Unlock()
	})
}

// notify calls every subscriber; they must not block.
func (h *hub) notify(tenant syncproto.TenantID, stream syncproto.StreamID) {
	h.mu.Lock()
	fns := make([]func(syncproto.TenantID, syncproto.StreamID), 0, len(h.subs))
	for _, fn := range h.subs {
		fns = append(fns, fn)
	}
	h.mu.Unlock()
	for _, fn := range fns {
		fn(tenant, stream)
	}
}
