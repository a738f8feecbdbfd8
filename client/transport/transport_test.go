package transport

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	fcrypto "github.com/fristed/fristed/crypto"
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

// TestLoginRetriedOnSpentChallenge: a token request refused as
// unauthorized (its one-time challenge spent by a lost answer or a
// duplicate delivery) is retried with a fresh challenge, at most three
// logins in all; a relay that keeps refusing gets its refusal returned.
func TestLoginRetriedOnSpentChallenge(t *testing.T) {
	for _, tt := range []struct {
		refusals   int32
		wantTokens int32
		wantErr    bool
	}{{0, 1, false}, {1, 2, false}, {2, 3, false}, {5, 3, true}} {
		var tokens atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasSuffix(r.URL.Path, "/auth/challenge"):
				w.Write([]byte(`{"nonce":"` + base64.StdEncoding.EncodeToString(make([]byte, 32)) + `"}`))
			case strings.HasSuffix(r.URL.Path, "/auth/token"):
				if tokens.Add(1) <= tt.refusals {
					w.WriteHeader(http.StatusUnauthorized)
					w.Write([]byte(`{"code":"unauthorized","message":"login refused"}`))
					return
				}
				w.Write([]byte(`{"token":"t","expires_in":300}`))
			case r.Header.Get("Authorization") == "Bearer t":
				w.Write([]byte(`{"keys":[]}`))
			default:
				w.WriteHeader(http.StatusBadRequest)
				w.Write([]byte(`{"code":"bad_request","message":"no"}`))
			}
		}))
		c, err := New(srv.URL, Options{})
		if err != nil {
			t.Fatal(err)
		}
		k, err := fcrypto.GenerateSigningKey()
		if err != nil {
			t.Fatal(err)
		}
		c.SetDevice(syncproto.DeviceID{1}, k, k.Public())
		_, err = c.Keys(context.Background())
		var we *syncproto.Error
		if tt.wantErr != (err != nil) || (err != nil && (!errors.As(err, &we) || we.Code != syncproto.CodeUnauthorized)) {
			t.Errorf("%d refusals: got %v, want error %v (unauthorized)", tt.refusals, err, tt.wantErr)
		}
		if got := tokens.Load(); got != tt.wantTokens {
			t.Errorf("%d refusals: got %d token requests, want %d", tt.refusals, got, tt.wantTokens)
		}
		srv.Close()
	}
}

type countingRT struct{ n atomic.Int32 }

func (c *countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return nil, errors.New("no network here")
}

// TestRoundTripperOption: an injected RoundTripper carries every request
// (nothing is dialled), and its failures read as an unreachable relay.
func TestRoundTripperOption(t *testing.T) {
	rt := &countingRT{}
	c, err := New("http://127.0.0.1:1", Options{RoundTripper: rt})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.RelayKey(context.Background())
	if !errors.Is(err, ErrUnreachable) || rt.n.Load() != 1 {
		t.Errorf("got %v after %d round trips, want ErrUnreachable after 1", err, rt.n.Load())
	}
}
