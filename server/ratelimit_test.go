package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/store/sqlite"
	"github.com/fristed/fristed/syncproto"
)

func TestLimiter(t *testing.T) {
	l := newLimiter(1, 2)
	now := time.Unix(1000, 0)
	a, b := []byte("10.0.0.1"), []byte("10.0.0.2")
	require.True(t, l.allow(now, a))
	require.True(t, l.allow(now, a))
	require.False(t, l.allow(now, a), "third request in the same instant")
	require.True(t, l.allow(now, b), "another caller has its own bucket")
	require.True(t, l.allow(now.Add(time.Second), a), "a token refills after a second")
	// Idle buckets are dropped, and with them the (hashed) address.
	l.allow(now.Add(time.Hour), b)
	l.mu.Lock()
	n := len(l.buckets)
	l.mu.Unlock()
	require.Equal(t, 1, n, "buckets kept after an hour idle")
}

// TestRateLimitedAnswer: over the limit, a public route answers 429
// rate_limited in the usual error body.
func TestRateLimitedAnswer(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "relay.db"))
	require.NoError(t, err)
	defer st.Close()
	r, err := New(context.Background(), Config{Dir: dir, Store: st, Limits: Limits{AddrRate: 0.001, AddrBurst: 2, DeviceRate: 1, DeviceBurst: 1}})
	require.NoError(t, err)
	defer r.Close()
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	path := srv.URL + "/v1/t/" + syncproto.NewTenantID().String() + "/enrol-info"
	var codes []int
	for i := 0; i < 3; i++ {
		resp, err := http.Get(path)
		require.NoError(t, err)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	require.Equal(t, []int{404, 404, 429}, codes)
}
