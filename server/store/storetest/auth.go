package storetest

import (
	"bytes"
	"context"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

func testChallenges(t *testing.T, s store.Store) {
	ctx := context.Background()
	n1 := randHash()
	noErr(t, s.PutChallenge(ctx, n1, t0.Add(time.Minute)), "put challenge")
	wantErr(t, s.PutChallenge(ctx, n1, t0.Add(time.Minute)), store.ErrConflict, "put a known challenge")
	noErr(t, s.ConsumeChallenge(ctx, n1, t0), "consume challenge")
	wantErr(t, s.ConsumeChallenge(ctx, n1, t0), store.ErrNotFound, "consume a used challenge")

	n2 := randHash()
	noErr(t, s.PutChallenge(ctx, n2, t0), "put challenge")
	wantErr(t, s.ConsumeChallenge(ctx, n2, t0.Add(time.Second)), store.ErrNotFound, "consume an expired challenge")
	wantErr(t, s.ConsumeChallenge(ctx, randHash(), t0), store.ErrNotFound, "consume an unknown challenge")
}

// testConcurrentChallenge consumes one challenge from many goroutines.
func testConcurrentChallenge(t *testing.T, s store.Store) {
	ctx := context.Background()
	nonce := randHash()
	require.NoError(t, s.PutChallenge(ctx, nonce, t0.Add(time.Minute)))
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.ConsumeChallenge(ctx, nonce, t0)
		}()
	}
	wg.Wait()
	var ok int
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			wantErr(t, err, store.ErrNotFound, "consume a challenge another goroutine consumed")
		}
	}
	if ok != 1 {
		t.Fatalf("concurrent consumes of one challenge: got %d successes, want 1", ok)
	}
}

func testTokenVersions(t *testing.T, s store.Store) {
	ctx := context.Background()
	tenant, other := newTenant(t, s), newTenant(t, s)
	dev := syncproto.NewDeviceID()
	check := func(tenant syncproto.TenantID, dev syncproto.DeviceID, want uint64) {
		t.Helper()
		got, err := s.TokenVersion(ctx, tenant, dev)
		noErr(t, err, "token version")
		if got != want {
			t.Fatalf("token version: got %d, want %d", got, want)
		}
	}
	check(tenant, dev, 0)
	for want := uint64(1); want <= 3; want++ {
		got, err := s.BumpTokenVersion(ctx, tenant, dev)
		noErr(t, err, "bump token version")
		if got != want {
			t.Fatalf("bump token version: got %d, want %d", got, want)
		}
	}
	check(tenant, dev, 3)
	check(tenant, syncproto.NewDeviceID(), 0)
	check(other, dev, 0)
	_, err := s.BumpTokenVersion(ctx, syncproto.NewTenantID(), dev)
	wantErr(t, err, store.ErrNotFound, "bump token version for an unknown tenant")
}

func testLastSeen(t *testing.T, s store.Store) {
	ctx := context.Background()
	tenant, other := newTenant(t, s), newTenant(t, s)
	d1, d2 := syncproto.NewDeviceID(), syncproto.NewDeviceID()
	day := func(n int) time.Time { return time.Date(2031, 3, n, 0, 0, 0, 0, time.UTC) }

	got, err := s.LastSeen(ctx, tenant)
	noErr(t, err, "last seen of a new tenant")
	if len(got) != 0 {
		t.Fatalf("last seen of a new tenant: got %v, want none", got)
	}
	noErr(t, s.TouchDevice(ctx, tenant, d1, day(1)), "touch device")
	noErr(t, s.TouchDevice(ctx, tenant, d2, day(2)), "touch device")
	noErr(t, s.TouchDevice(ctx, tenant, d1, day(3)), "touch device again")
	noErr(t, s.TouchDevice(ctx, tenant, d1, day(2)), "touch device with an older day")
	noErr(t, s.TouchDevice(ctx, other, d2, day(9)), "touch device in another tenant")

	got, err = s.LastSeen(ctx, tenant)
	noErr(t, err, "last seen")
	want := map[syncproto.DeviceID]time.Time{d1: day(3), d2: day(2)}
	if !maps.EqualFunc(got, want, time.Time.Equal) {
		t.Fatalf("last seen: got %v, want %v", got, want)
	}
	for _, at := range got {
		checkTime(t, "last seen", at, at)
	}
	wantErr(t, s.TouchDevice(ctx, syncproto.NewTenantID(), d1, day(1)), store.ErrNotFound, "touch device in an unknown tenant")
}

func testEnrolments(t *testing.T, s store.Store) {
	ctx := context.Background()
	tenant := newTenant(t, s)
	req := syncproto.NewRequestID()
	raw := randBytes(120)
	noErr(t, s.PutEnrolment(ctx, tenant, req, raw, t0.Add(time.Hour)), "put enrolment")
	noErr(t, s.PutEnrolment(ctx, tenant, req, raw, t0.Add(time.Hour)), "put the same enrolment again")
	wantErr(t, s.PutEnrolment(ctx, tenant, req, randBytes(120), t0.Add(time.Hour)), store.ErrConflict, "put another enrolment with a known request id")

	got, err := s.GetEnrolment(ctx, tenant, req, t0)
	noErr(t, err, "get enrolment")
	if !bytes.Equal(got, raw) {
		t.Fatalf("get enrolment: got %d bytes, want the %d bytes put", len(got), len(raw))
	}
	_, err = s.GetEnrolment(ctx, tenant, req, t0.Add(2*time.Hour))
	wantErr(t, err, store.ErrNotFound, "get an expired enrolment")
	_, err = s.GetEnrolment(ctx, tenant, syncproto.NewRequestID(), t0)
	wantErr(t, err, store.ErrNotFound, "get an unknown enrolment")

	noErr(t, s.DeleteEnrolment(ctx, tenant, req), "delete enrolment")
	_, err = s.GetEnrolment(ctx, tenant, req, t0)
	wantErr(t, err, store.ErrNotFound, "get a deleted enrolment")
	noErr(t, s.DeleteEnrolment(ctx, tenant, req), "delete a deleted enrolment")

	wantErr(t, s.PutEnrolment(ctx, syncproto.NewTenantID(), req, raw, t0.Add(time.Hour)), store.ErrNotFound, "put an enrolment for an unknown tenant")
}
