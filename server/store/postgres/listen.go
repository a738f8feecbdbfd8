package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fristed/fristed/syncproto"
)

// channel is the NOTIFY channel for appended batches. The payload is
// "<tenant hex>/<stream hex>".
const channel = "fristed_batches"

// listenWait bounds how long Subscribe waits for the LISTEN connection.
const listenWait = 10 * time.Second

func payload(tenant syncproto.TenantID, stream syncproto.StreamID) string {
	return hex.EncodeToString(tenant[:]) + "/" + hex.EncodeToString(stream[:])
}

func parsePayload(p string) (syncproto.TenantID, syncproto.StreamID, bool) {
	var tenant syncproto.TenantID
	var stream syncproto.StreamID
	t, st, ok := strings.Cut(p, "/")
	if !ok || hex.DecodedLen(len(t)) != len(tenant) || hex.DecodedLen(len(st)) != len(stream) {
		return tenant, stream, false
	}
	if _, err := hex.Decode(tenant[:], []byte(t)); err != nil {
		return tenant, stream, false
	}
	if _, err := hex.Decode(stream[:], []byte(st)); err != nil {
		return tenant, stream, false
	}
	return tenant, stream, true
}

// listener holds the subscribers of one Store and the dedicated connection
// that LISTENs for other processes' appends.
type listener struct {
	cfg *pgx.ConnConfig

	mu      sync.Mutex
	subs    map[uint64]func(syncproto.TenantID, syncproto.StreamID)
	next    uint64
	running bool
	ready   chan struct{} // closed while LISTENing; replaced when the connection breaks
	lastErr error
	ctx     context.Context // ends at close
	cancel  context.CancelFunc
	done    chan struct{} // closed when the loop has returned
}

func newListener(cfg *pgx.ConnConfig) *listener {
	ctx, cancel := context.WithCancel(context.Background())
	return &listener{
		cfg:    cfg,
		subs:   map[uint64]func(syncproto.TenantID, syncproto.StreamID){},
		ready:  make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
}

// subscribe registers fn until ctx ends and waits until the connection
// listens, so that no append committed after it returns is missed.
func (l *listener) subscribe(ctx context.Context, fn func(syncproto.TenantID, syncproto.StreamID)) error {
	l.mu.Lock()
	if l.ctx.Err() != nil {
		l.mu.Unlock()
		return errors.New("store closed")
	}
	id := l.next
	l.next++
	l.subs[id] = fn
	if !l.running {
		l.running = true
		go l.loop()
	}
	ready := l.ready
	l.mu.Unlock()
	remove := func() {
		l.mu.Lock()
		delete(l.subs, id)
		l.mu.Unlock()
	}
	stop := context.AfterFunc(ctx, remove)

	timer := time.NewTimer(listenWait)
	defer timer.Stop()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
	case <-l.ctx.Done():
	}
	stop()
	remove()
	l.mu.Lock()
	err := l.lastErr
	l.mu.Unlock()
	if err == nil {
		err = errors.New("timed out")
	}
	return fmt.Errorf("listen: %w", err)
}

// notify calls every subscriber; they must not block.
func (l *listener) notify(tenant syncproto.TenantID, stream syncproto.StreamID) {
	l.mu.Lock()
	fns := make([]func(syncproto.TenantID, syncproto.StreamID), 0, len(l.subs))
	for _, fn := range l.subs {
		fns = append(fns, fn)
	}
	l.mu.Unlock()
	for _, fn := range fns {
		fn(tenant, stream)
	}
}

// loop keeps a connection LISTENing until close, reconnecting with
// backoff. Appends committed while it is down are not heard of; waiters
// re-check on a timeout.
func (l *listener) loop() {
	defer close(l.done)
	backoff := 100 * time.Millisecond
	for l.ctx.Err() == nil {
		err := l.listenOnce()
		if l.ctx.Err() != nil {
			return
		}
		l.mu.Lock()
		l.lastErr = err
		select {
		case <-l.ready:
			l.ready = make(chan struct{})
			backoff = 100 * time.Millisecond
		default:
		}
		l.mu.Unlock()
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (l *listener) listenOnce() error {
	conn, err := pgx.ConnectConfig(l.ctx, l.cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(l.ctx, "LISTEN "+channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	l.mu.Lock()
	l.lastErr = nil
	close(l.ready)
	l.mu.Unlock()
	for {
		n, err := conn.WaitForNotification(l.ctx)
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		if tenant, stream, ok := parsePayload(n.Payload); ok {
			l.notify(tenant, stream)
		}
	}
}

// close stops the loop and waits for it.
func (l *listener) close() {
	l.mu.Lock()
	running := l.running
	l.cancel()
	l.mu.Unlock()
	if running {
		<-l.done
	}
}
