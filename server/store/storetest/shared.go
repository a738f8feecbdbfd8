package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// SharedOptions says what a shared store does not promise.
type SharedOptions struct {
	// LocalSubscribe: Subscribe hears only of appends made through the
	// same Store (SQLite), so the cross-process Subscribe test is skipped.
	LocalSubscribe bool
}

// RunSharedStoreTests runs the tests for a database shared by several relay
// processes. newStores must return two independent stores (separate
// connections, as two processes would have) on one new, empty database,
// and close them when the test ends.
func RunSharedStoreTests(t *testing.T, newStores func(t *testing.T) (store.Store, store.Store), opts SharedOptions) {
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b store.Store)
	}{
		{"SubscribeAcross", func(t *testing.T, a, b store.Store) {
			if opts.LocalSubscribe {
				t.Skip("Subscribe hears only of appends through the same store")
			}
			testSubscribeAcross(t, a, b)
		}},
		{"ConcurrentReleaseAcross", func(t *testing.T, a, b store.Store) {
			runConcurrentRelease(t, []store.Store{a, b})
		}},
		{"ConcurrentSameBatchAcross", func(t *testing.T, a, b store.Store) {
			runConcurrentSameBatch(t, []store.Store{a, b})
		}},
		{"ConcurrentAppendAcross", func(t *testing.T, a, b store.Store) {
			runConcurrentAppends(t, []store.Store{a, b}, 2)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := newStores(t)
			tc.fn(t, a, b)
		})
	}
}

// testSubscribeAcross appends through one store and waits for the other's
// subscriber to wake, both ways.
func testSubscribeAcross(t *testing.T, a, b store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tenant := newChainTenant(t, a)

	type key struct {
		tenant syncproto.TenantID
		stream syncproto.StreamID
	}
	subscribe := func(s store.Store) chan key {
		ch := make(chan key, 1000)
		noErr(t, s.Subscribe(ctx, func(tenant syncproto.TenantID, stream syncproto.StreamID) {
			select {
			case ch <- key{tenant, stream}:
			default:
			}
		}), "subscribe")
		return ch
	}
	gotA, gotB := subscribe(a), subscribe(b)

	for _, tc := range []struct {
		name string
		from store.Store
		wake chan key
	}{
		{"append through b wakes a", b, gotA},
		{"append through a wakes b", a, gotB},
	} {
		stream := syncproto.NewStreamID()
		appendBatches(t, tc.from, tenant, stream, 1)
		want := key{tenant, stream}
		timeout := time.After(10 * time.Second)
	wait:
		for {
			select {
			case k := <-tc.wake:
				if k == want {
					break wait
				}
			case <-timeout:
				t.Fatalf("%s: got no call for %v/%v within 10s, want one", tc.name, tenant, stream)
			}
		}
	}
}
