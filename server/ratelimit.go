package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"net"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/fristed/fristed/syncproto"
)

// Limits for the rate limiters: per client address on the routes anyone
// may call, per device on the authenticated ones.
type Limits struct {
	AddrRate    rate.Limit
	AddrBurst   int
	DeviceRate  rate.Limit
	DeviceBurst int
}

// DefaultLimits allow a whole office behind one address to log in at
// once, and a device to sync hundreds of streams in a burst.
var DefaultLimits = Limits{AddrRate: 20, AddrBurst: 300, DeviceRate: 200, DeviceBurst: 2000}

// limiter is a set of token buckets keyed by an HMAC, under a random key
// that lives only in memory, of what identifies the caller. No address is
// stored: only the HMAC, in memory, and only while its bucket is not full.
type limiter struct {
	key   [32]byte
	rate  rate.Limit
	burst int

	mu        sync.Mutex
	buckets   map[[32]byte]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newLimiter(r rate.Limit, burst int) *limiter {
	l := &limiter{rate: r, burst: burst, buckets: map[[32]byte]*bucket{}}
	if _, err := rand.Read(l.key[:]); err != nil {
		panic("server: crypto/rand failed: " + err.Error())
	}
	return l
}

// idle is how long a bucket must be unused before it is dropped; by then
// it has refilled, so dropping it changes nothing.
func (l *limiter) idle() time.Duration {
	if l.rate <= 0 {
		return time.Minute
	}
	return time.Duration(float64(l.burst)/float64(l.rate)*float64(time.Second)) + time.Minute
}

// allow takes a token from the bucket of the caller identified by parts.
func (l *limiter) allow(now time.Time, parts ...[]byte) bool {
	if l.rate == rate.Inf {
		return true
	}
	mac := hmac.New(sha256.New, l.key[:])
	for _, p := range parts {
		mac.Write([]byte{byte(len(p))})
		mac.Write(p)
	}
	var k [32]byte
	mac.Sum(k[:0])

	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > time.Minute {
		idle := l.idle()
		for key, b := range l.buckets {
			if now.Sub(b.last) > idle {
				delete(l.buckets, key)
			}
		}
		l.lastSweep = now
	}
	b := l.buckets[k]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[k] = b
	}
	b.last = now
	return b.lim.AllowN(now, 1)
}

// byAddr limits a public route per client address.
func (r *Relay) byAddr(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := r.allowAddr(c); err != nil {
			return err
		}
		return next(c)
	}
}

// allowAddr takes a token from the caller's address bucket. The address is
// read from the connection (never from a forwarding header), hashed, and
// forgotten.
func (r *Relay) allowAddr(c echo.Context) error {
	host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
	if err != nil {
		host = c.Request().RemoteAddr
	}
	if !r.addrLimit.allow(r.now(), []byte("addr"), []byte(host)) {
		return wire(syncproto.CodeRateLimited, "too many requests; slow down")
	}
	return nil
}

// allowDevice limits an authenticated device.
func (r *Relay) allowDevice(tenant syncproto.TenantID, device syncproto.DeviceID) error {
	if !r.deviceLimit.allow(r.now(), []byte("device"), tenant[:], device[:]) {
		return wire(syncproto.CodeRateLimited, "too many requests; slow down")
	}
	return nil
}
