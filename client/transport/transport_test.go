package transport

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fristed/fristed/syncproto"
)

// TestRetriesRateLimited: a request refused as rate limited is retried
// with backoff until it succeeds; a client error is not retried.
func TestRetriesRateLimited(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch {
		case r.URL.Path == "/v1/relay" && n <= 2:
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"code":"rate_limited","message":"slow down"}`))
		case r.URL.Path == "/v1/relay":
			w.Write([]byte(`{"relay_key":"fpub1AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","version":1}`))
		default:
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"code":"bad_request","message":"no"}`))
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.RelayKey(context.Background())
	// The key above is the zero key, which ParsePublicKey refuses: what
	// matters is that the third call got through.
	if got := calls.Load(); got != 3 {
		t.Fatalf("got %d calls, want 3 (two refusals, then success); err %v", got, err)
	}
	if time.Since(start) < 250*time.Millisecond {
		t.Errorf("retried after %v, want a backoff of at least 250 ms in all", time.Since(start))
	}
	calls.Store(0)
	_, err = c.LookupOrg(context.Background(), [32]byte{1})
	var we *syncproto.Error
	if !errors.As(err, &we) || we.Code != syncproto.CodeBadRequest || calls.Load() != 1 {
		t.Errorf("got %v after %d calls, want bad_request after 1", err, calls.Load())
	}
}

func TestBackoffBounds(t *testing.T) {
	for a := 0; a < 40; a++ {
		d := backoff(a)
		if d <= 0 || d > 8*time.Second {
			t.Fatalf("attempt %d: got %v, want within (0, 8s]", a, d)
		}
	}
}

func TestHTTPOnlyForLoopback(t *testing.T) {
	for _, u := range []string{"http://192.0.2.1:8080", "http://example.org", "ftp://127.0.0.1"} {
		if _, err := New(u, Options{}); err == nil {
			t.Errorf("%s: got nil error, want a refusal", u)
		}
	}
	for _, u := range []string{"http://127.0.0.1:1", "http://[::1]:1", "http://localhost:1", "https://relay.example"} {
		if _, err := New(u, Options{}); err != nil {
			t.Errorf("%s: got %v, want accepted", u, err)
		}
	}
}
