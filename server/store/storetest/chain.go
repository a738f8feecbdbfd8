package storetest

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

func testInvites(t *testing.T, s store.Store) {
	ctx := context.Background()
	tenants, err := s.Tenants(ctx)
	noErr(t, err, "tenants of an empty store")
	if len(tenants) != 0 {
		t.Fatalf("tenants of an empty store: got %v, want none", tenants)
	}

	tok := randHash()
	require.NoError(t, s.PutInvite(ctx, tok, t0.Add(time.Hour)))
	wantErr(t, s.PutInvite(ctx, tok, t0.Add(2*time.Hour)), store.ErrConflict, "put a known invite")

	t1 := syncproto.NewTenantID()
	noErr(t, s.ConsumeInvite(ctx, tok, t1, t0), "consume invite")
	wantErr(t, s.ConsumeInvite(ctx, tok, syncproto.NewTenantID(), t0), store.ErrNotFound, "consume a used invite")
	wantErr(t, s.ConsumeInvite(ctx, randHash(), syncproto.NewTenantID(), t0), store.ErrNotFound, "consume an unknown invite")

	expired := randHash()
	require.NoError(t, s.PutInvite(ctx, expired, t0))
	t3 := syncproto.NewTenantID()
	wantErr(t, s.ConsumeInvite(ctx, expired, t3, t0.Add(time.Second)), store.ErrNotFound, "consume an expired invite")

	// An invite naming an existing tenant fails and stays usable.
	tok2 := randHash()
	require.NoError(t, s.PutInvite(ctx, tok2, t0.Add(time.Hour)))
	wantErr(t, s.ConsumeInvite(ctx, tok2, t1, t0), store.ErrConflict, "consume invite for an existing tenant")
	t4 := syncproto.NewTenantID()
	noErr(t, s.ConsumeInvite(ctx, tok2, t4, t0), "consume invite after a tenant conflict")

	tenants, err = s.Tenants(ctx)
	noErr(t, err, "tenants")
	want := []syncproto.TenantID{t1, t4}
	sortTenants(tenants)
	sortTenants(want)
	if !slices.Equal(tenants, want) {
		t.Fatalf("tenants: got %v, want %v", tenants, want)
	}
}

func sortTenants(ts []syncproto.TenantID) {
	slices.SortFunc(ts, func(a, b syncproto.TenantID) int { return bytes.Compare(a[:], b[:]) })
}

func testChain(t *testing.T, s store.Store) {
	ctx := context.Background()
	tenant := newTenant(t, s)

	_, err := s.ChainHead(ctx, tenant)
	wantErr(t, err, store.ErrNotFound, "chain head of an empty chain")
	got, err := s.Statements(ctx, tenant, 0, 10)
	noErr(t, err, "statements of an empty chain")
	if len(got) != 0 {
		t.Fatalf("statements of an empty chain: got %d, want 0", len(got))
	}

	wantErr(t, s.AppendStatement(ctx, tenant, newStatement(1)), store.ErrConflict, "append at 1 to an empty chain")
	sts := appendStatements(t, s, tenant, 1)
	head, err := s.ChainHead(ctx, tenant)
	noErr(t, err, "chain head")
	if head != (syncproto.Head{Pos: 0, Hash: sts[0].Hash}) {
		t.Fatalf("chain head: got %v, want {0 %v}", head, sts[0].Hash)
	}
	wantErr(t, s.AppendStatement(ctx, tenant, newStatement(0)), store.ErrConflict, "append at a taken position")
	wantErr(t, s.AppendStatement(ctx, tenant, newStatement(2)), store.ErrConflict, "append past head+1")

	sts = append(sts, appendStatements(t, s, tenant, 9)...)
	head, err = s.ChainHead(ctx, tenant)
	noErr(t, err, "chain head")
	if head != (syncproto.Head{Pos: 9, Hash: sts[9].Hash}) {
		t.Fatalf("chain head: got %v, want {9 %v}", head, sts[9].Hash)
	}

	for _, tc := range []struct {
		from  syncproto.ChainPos
		limit int
		want  []store.Statement
	}{
		{0, 0, sts},
		{0, -1, sts},
		{3, 4, sts[3:7]},
		{8, 10, sts[8:]},
		{9, 1, sts[9:]},
		{10, 5, nil},
		{1000, 5, nil},
	} {
		got, err := s.Statements(ctx, tenant, tc.from, tc.limit)
		noErr(t, err, "statements")
		if len(got) != len(tc.want) {
			t.Fatalf("statements from %d limit %d: got %d, want %d", tc.from, tc.limit, len(got), len(tc.want))
		}
		for i := range got {
			if got[i].Pos != tc.want[i].Pos || got[i].Hash != tc.want[i].Hash || !bytes.Equal(got[i].Raw, tc.want[i].Raw) {
				t.Fatalf("statements from %d limit %d: got [%d] at pos %d, want pos %d with the bytes put", tc.from, tc.limit, i, got[i].Pos, tc.want[i].Pos)
			}
		}
	}

	unknown := syncproto.NewTenantID()
	wantErr(t, s.AppendStatement(ctx, unknown, newStatement(0)), store.ErrNotFound, "append to an unknown tenant")
	_, err = s.ChainHead(ctx, unknown)
	wantErr(t, err, store.ErrNotFound, "chain head of an unknown tenant")
	got, err = s.Statements(ctx, unknown, 0, 0)
	noErr(t, err, "statements of an unknown tenant")
	if len(got) != 0 {
		t.Fatalf("statements of an unknown tenant: got %d, want 0", len(got))
	}
}

// testChainRace appends the same position from many goroutines: exactly
// one wins, the rest get ErrConflict.
func testChainRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	tenant := newChainTenant(t, s)
	const n = 10
	errs := make([]error, n)
	sts := make([]store.Statement, n)
	var wg sync.WaitGroup
	for i := range n {
		sts[i] = newStatement(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.AppendStatement(ctx, tenant, sts[i])
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("racing appends at 1: got winners %d and %d, want one", winner, i)
		case err == nil:
			winner = i
		default:
			wantErr(t, err, store.ErrConflict, "racing append that lost")
		}
	}
	if winner < 0 {
		t.Fatalf("racing appends at 1: got no winner, want one")
	}
	head, err := s.ChainHead(ctx, tenant)
	noErr(t, err, "chain head")
	if head != (syncproto.Head{Pos: 1, Hash: sts[winner].Hash}) {
		t.Fatalf("chain head after race: got %v, want {1 %v}", head, sts[winner].Hash)
	}
}
