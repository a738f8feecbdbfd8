package storetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

func checkSecret(t *testing.T, what string, got, want store.Secret) {
	t.Helper()
	if got.Tenant != want.Tenant || got.Stream != want.Stream || got.Kind != want.Kind || got.Name != want.Name || got.KEKGen != want.KEKGen {
		t.Fatalf("%s: got secret %v/%v %q %q gen %d, want %v/%v %q %q gen %d", what,
			got.Tenant, got.Stream, got.Kind, got.Name, got.KEKGen,
			want.Tenant, want.Stream, want.Kind, want.Name, want.KEKGen)
	}
	if !bytes.Equal(got.Sealed, want.Sealed) {
		t.Fatalf("%s: got %d sealed bytes, want the %d bytes put", what, len(got.Sealed), len(want.Sealed))
	}
}

func secretNames(ss []store.Secret) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name)
	}
	return out
}

func testSecrets(t *testing.T, s store.Store) {
	ctx := context.Background()
	tenant := newTenant(t, s)
	stream := syncproto.NewStreamID()
	release := store.Secret{Tenant: tenant, Kind: "release", Name: "a_1", KEKGen: 1, Sealed: randBytes(40)}
	wrapped := []store.Secret{
		{Tenant: tenant, Stream: stream, Kind: "wrapped", Name: "s/1/x", KEKGen: 1, Sealed: randBytes(40)},
		{Tenant: tenant, Stream: stream, Kind: "wrapped", Name: "s/1/y", KEKGen: 2, Sealed: randBytes(40)},
		{Tenant: tenant, Stream: stream, Kind: "wrapped", Name: "s/2/z", KEKGen: 1, Sealed: randBytes(40)},
		{Tenant: tenant, Kind: "wrapped", Name: "p%q", KEKGen: 1, Sealed: randBytes(40)},
		{Tenant: tenant, Kind: "wrapped", Name: "pXq_", KEKGen: 1, Sealed: randBytes(40)},
	}
	for _, sec := range append([]store.Secret{release}, wrapped...) {
		noErr(t, s.PutSecret(ctx, sec), "put secret")
	}
	got, err := s.GetSecret(ctx, tenant, "release", "a_1")
	noErr(t, err, "get secret")
	checkSecret(t, "get secret", got, release)

	// Put replaces.
	release.KEKGen = 2
	release.Sealed = randBytes(48)
	noErr(t, s.PutSecret(ctx, release), "replace secret")
	got, err = s.GetSecret(ctx, tenant, "release", "a_1")
	noErr(t, err, "get replaced secret")
	checkSecret(t, "get replaced secret", got, release)

	_, err = s.GetSecret(ctx, tenant, "wrapped", "a_1")
	wantErr(t, err, store.ErrNotFound, "get a secret of another kind")
	_, err = s.GetSecret(ctx, tenant, "release", "nope")
	wantErr(t, err, store.ErrNotFound, "get an unknown secret")

	for _, tc := range []struct {
		kind, prefix string
		want         []string
	}{
		{"wrapped", "s/1/", []string{"s/1/x", "s/1/y"}},
		{"wrapped", "s/", []string{"s/1/x", "s/1/y", "s/2/z"}},
		{"wrapped", "", []string{"p%q", "pXq_", "s/1/x", "s/1/y", "s/2/z"}},
		{"wrapped", "p%", []string{"p%q"}},    // no pattern matching
		{"wrapped", "pXq_", []string{"pXq_"}}, // nor here
		{"wrapped", "p_", nil},
		{"release", "", []string{"a_1"}},
		{"release", "a_1", []string{"a_1"}},
		{"release", "a_12", nil},
		{"other", "", nil},
	} {
		list, err := s.ListSecrets(ctx, tenant, tc.kind, tc.prefix)
		noErr(t, err, "list secrets")
		if got := secretNames(list); !slices.Equal(got, tc.want) {
			t.Fatalf("list secrets %q prefix %q: got %q, want %q", tc.kind, tc.prefix, got, tc.want)
		}
	}
	list, err := s.ListSecrets(ctx, tenant, "wrapped", "s/1/")
	noErr(t, err, "list secrets")
	checkSecret(t, "list secrets", list[0], wrapped[0])
	checkSecret(t, "list secrets", list[1], wrapped[1])

	noErr(t, s.DeleteSecret(ctx, tenant, "release", "a_1"), "delete secret")
	_, err = s.GetSecret(ctx, tenant, "release", "a_1")
	wantErr(t, err, store.ErrNotFound, "get a deleted secret")
	noErr(t, s.DeleteSecret(ctx, tenant, "release", "a_1"), "delete a deleted secret")
	noErr(t, s.DeleteSecret(ctx, tenant, "release", "never"), "delete an unknown secret")
	got, err = s.GetSecret(ctx, tenant, "wrapped", "s/1/x")
	noErr(t, err, "get a secret after deleting another")
	checkSecret(t, "get a secret after deleting another", got, wrapped[0])

	unknown := release
	unknown.Tenant = syncproto.NewTenantID()
	wantErr(t, s.PutSecret(ctx, unknown), store.ErrNotFound, "put a secret for an unknown tenant")
}

func testRewrapSecrets(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b := newTenant(t, s), newTenant(t, s)
	secs := []store.Secret{
		{Tenant: a, Kind: "release", Name: "1", KEKGen: 1, Sealed: randBytes(32)},
		{Tenant: a, Kind: "wrapped", Name: "2", KEKGen: 2, Sealed: randBytes(32)},
		{Tenant: b, Kind: "wrapped", Name: "3", KEKGen: 1, Sealed: randBytes(32)},
		{Tenant: b, Kind: "release", Name: "4", KEKGen: 3, Sealed: randBytes(32)},
	}
	for _, sec := range secs {
		require.NoError(t, s.PutSecret(ctx, sec))
	}
	checkAll := func(what string, want []store.Secret) {
		t.Helper()
		for _, w := range want {
			got, err := s.GetSecret(ctx, w.Tenant, w.Kind, w.Name)
			noErr(t, err, what)
			checkSecret(t, what, got, w)
		}
	}
	rewrap := func(sec store.Secret) ([]byte, error) {
		return append([]byte("rewrapped:"), sec.Sealed...), nil
	}

	// An error from fn rolls back every secret, including those already
	// rewrapped.
	boom := errors.New("boom")
	var called int
	n, err := s.RewrapSecrets(ctx, 2, func(sec store.Secret) ([]byte, error) {
		if called++; called == 2 {
			return nil, boom
		}
		return rewrap(sec)
	})
	wantErr(t, err, boom, "rewrap with a failing fn")
	if n != 0 {
		t.Fatalf("rewrap with a failing fn: got count %d, want 0", n)
	}
	checkAll("secret after a failed rewrap", secs)

	var seen []string
	n, err = s.RewrapSecrets(ctx, 2, func(sec store.Secret) ([]byte, error) {
		if sec.KEKGen == 2 {
			t.Errorf("rewrap to 2: fn got secret %q already at generation 2", sec.Name)
		}
		seen = append(seen, sec.Name)
		return rewrap(sec)
	})
	noErr(t, err, "rewrap")
	slices.Sort(seen)
	if n != 3 || !slices.Equal(seen, []string{"1", "3", "4"}) {
		t.Fatalf("rewrap to 2: got count %d for %q, want 3 for [1 3 4]", n, seen)
	}
	want := slices.Clone(secs)
	for _, i := range []int{0, 2, 3} {
		want[i].Sealed, _ = rewrap(secs[i])
		want[i].KEKGen = 2
	}
	checkAll("secret after rewrap", want)

	n, err = s.RewrapSecrets(ctx, 2, rewrap)
	noErr(t, err, "rewrap again")
	if n != 0 {
		t.Fatalf("rewrap to the current generation: got count %d, want 0", n)
	}
	checkAll("secret after a second rewrap", want)
}

func checkEnvelope(t *testing.T, what string, got, want store.Envelope) {
	t.Helper()
	if got.Tenant != want.Tenant || got.Alarm != want.Alarm || got.SecretHash != want.SecretHash ||
		got.NonceHash != want.NonceHash || got.ReleasePos != want.ReleasePos || got.Generation != want.Generation {
		t.Fatalf("%s: got envelope %v/%v secret %v nonce %v pos %d gen %d, want %v/%v secret %v nonce %v pos %d gen %d", what,
			got.Tenant, got.Alarm, got.SecretHash, got.NonceHash, got.ReleasePos, got.Generation,
			want.Tenant, want.Alarm, want.SecretHash, want.NonceHash, want.ReleasePos, want.Generation)
	}
	if !bytes.Equal(got.Outer, want.Outer) {
		t.Fatalf("%s: got %d outer bytes, want %d other bytes", what, len(got.Outer), len(want.Outer))
	}
	if !bytes.Equal(got.Inner, want.Inner) {
		t.Fatalf("%s: got %d inner bytes, want %d other bytes", what, len(got.Inner), len(want.Inner))
	}
	checkTime(t, what+": sealed at", got.SealedAt, want.SealedAt)
	checkTime(t, what+": released at", got.ReleasedAt, want.ReleasedAt)
}

func testEnvelopes(t *testing.T, s store.Store) {
	ctx := context.Background()
	tenant := newTenant(t, s)
	alarm := syncproto.NewAlarmID()
	put := store.Envelope{
		Tenant:     tenant,
		Alarm:      alarm,
		SecretHash: randHash(),
		Outer:      randBytes(64),
		SealedAt:   t0,
		// Ignored: the store keeps the release state itself.
		ReleasedAt: t0,
		NonceHash:  randHash(),
		Inner:      randBytes(8),
		ReleasePos: 9,
		Generation: 7,
	}
	noErr(t, s.PutEnvelope(ctx, put), "put envelope")
	want := store.Envelope{Tenant: tenant, Alarm: alarm, SecretHash: put.SecretHash, Outer: put.Outer, SealedAt: ms(t0), Generation: 1}
	got, err := s.GetEnvelope(ctx, tenant, alarm)
	noErr(t, err, "get envelope")
	checkEnvelope(t, "get envelope", got, want)

	n1, inner1 := randHash(), randBytes(80)
	t1 := t0.Add(time.Hour)
	got, retry, err := s.Release(ctx, tenant, alarm, n1, inner1, t1)
	noErr(t, err, "release")
	if retry {
		t.Fatalf("first release: got retry=true, want false")
	}
	want.ReleasedAt, want.NonceHash, want.Inner = ms(t1), n1, inner1
	checkEnvelope(t, "first release", got, want)

	got, retry, err = s.Release(ctx, tenant, alarm, n1, randBytes(80), t1.Add(time.Minute))
	noErr(t, err, "retry release")
	if !retry {
		t.Fatalf("retry release: got retry=false, want true")
	}
	checkEnvelope(t, "retry release", got, want)

	got, _, err = s.Release(ctx, tenant, alarm, randHash(), randBytes(80), t1.Add(time.Minute))
	wantErr(t, err, store.ErrAlreadyReleased, "release with another nonce")
	checkEnvelope(t, "release with another nonce", got, want)
	got, err = s.GetEnvelope(ctx, tenant, alarm)
	noErr(t, err, "get released envelope")
	checkEnvelope(t, "get released envelope", got, want)

	noErr(t, s.SetReleasePos(ctx, tenant, alarm, 12), "set release pos")
	want.ReleasePos = 12
	got, err = s.GetEnvelope(ctx, tenant, alarm)
	noErr(t, err, "get envelope after set release pos")
	checkEnvelope(t, "get envelope after set release pos", got, want)

	// ForgetInner drops the inner layer of envelopes released before t.
	noErr(t, s.ForgetInner(ctx, t1), "forget inner released before the release")
	got, err = s.GetEnvelope(ctx, tenant, alarm)
	noErr(t, err, "get envelope")
	checkEnvelope(t, "inner kept", got, want)
	noErr(t, s.ForgetInner(ctx, t1.Add(time.Millisecond)), "forget inner")
	want.Inner = nil
	got, err = s.GetEnvelope(ctx, tenant, alarm)
	noErr(t, err, "get envelope after forget inner")
	checkEnvelope(t, "get envelope after forget inner", got, want)
	got, retry, err = s.Release(ctx, tenant, alarm, n1, inner1, t1.Add(time.Hour))
	noErr(t, err, "retry release after forget inner")
	if !retry {
		t.Fatalf("retry release after forget inner: got retry=false, want true")
	}
	checkEnvelope(t, "retry release after forget inner", got, want)

	// Re-seal: new outer layer, next generation, release cleared.
	reseal := store.Envelope{Tenant: tenant, Alarm: alarm, SecretHash: put.SecretHash, Outer: randBytes(64), SealedAt: t1.Add(2 * time.Hour)}
	noErr(t, s.PutEnvelope(ctx, reseal), "re-seal envelope")
	want = store.Envelope{Tenant: tenant, Alarm: alarm, SecretHash: put.SecretHash, Outer: reseal.Outer, SealedAt: ms(reseal.SealedAt), Generation: 2}
	got, err = s.GetEnvelope(ctx, tenant, alarm)
	noErr(t, err, "get re-sealed envelope")
	checkEnvelope(t, "get re-sealed envelope", got, want)
	n2, inner2 := randHash(), randBytes(80)
	t2 := t1.Add(3 * time.Hour)
	got, retry, err = s.Release(ctx, tenant, alarm, n2, inner2, t2)
	noErr(t, err, "release re-sealed envelope")
	if retry {
		t.Fatalf("release re-sealed envelope: got retry=true, want false")
	}
	want.ReleasedAt, want.NonceHash, want.Inner = ms(t2), n2, inner2
	checkEnvelope(t, "release re-sealed envelope", got, want)
	_, _, err = s.Release(ctx, tenant, alarm, n1, inner1, t2)
	wantErr(t, err, store.ErrAlreadyReleased, "release re-sealed envelope with the old nonce")

	unknown := syncproto.NewAlarmID()
	_, err = s.GetEnvelope(ctx, tenant, unknown)
	wantErr(t, err, store.ErrNotFound, "get an unknown envelope")
	_, _, err = s.Release(ctx, tenant, unknown, n1, inner1, t2)
	wantErr(t, err, store.ErrNotFound, "release an unknown envelope")
	wantErr(t, s.SetReleasePos(ctx, tenant, unknown, 3), store.ErrNotFound, "set release pos of an unknown envelope")
	noTenant := put
	noTenant.Tenant = syncproto.NewTenantID()
	wantErr(t, s.PutEnvelope(ctx, noTenant), store.ErrNotFound, "put an envelope for an unknown tenant")
}

// testSecretBatches: PutSecrets stores a batch in one transaction (a
// secret for an unknown tenant at its end stores none of it, and leaves a
// secret it would have replaced as it was); DeleteSecrets deletes the
// named secrets of one tenant and kind only, counting those that existed.
func testSecretBatches(t *testing.T, s store.Store) {
	ctx := context.Background()
	tenant, other := newTenant(t, s), newTenant(t, s)
	stream := syncproto.NewStreamID()
	noErr(t, s.PutSecrets(ctx, nil), "put no secrets")
	var batch []store.Secret
	for _, name := range []string{"s/1/a", "s/1/b", "s/2/a"} {
		batch = append(batch, store.Secret{Tenant: tenant, Stream: stream, Kind: "wrapped", Name: name, KEKGen: 1, Sealed: randBytes(40)})
	}
	keep := store.Secret{Tenant: other, Stream: stream, Kind: "wrapped", Name: "s/1/a", KEKGen: 1, Sealed: randBytes(40)}
	release := store.Secret{Tenant: tenant, Kind: "release", Name: "s/1/a", KEKGen: 1, Sealed: randBytes(40)}
	noErr(t, s.PutSecrets(ctx, append(slices.Clone(batch), keep, release)), "put a batch of secrets")
	for _, want := range append(slices.Clone(batch), keep, release) {
		got, err := s.GetSecret(ctx, want.Tenant, want.Kind, want.Name)
		noErr(t, err, "get a secret of a batch")
		checkSecret(t, "get a secret of a batch", got, want)
	}

	// All or nothing.
	replaced := batch[0]
	replaced.KEKGen, replaced.Sealed = 2, randBytes(40)
	fresh := store.Secret{Tenant: tenant, Stream: stream, Kind: "wrapped", Name: "s/3/a", KEKGen: 2, Sealed: randBytes(40)}
	lost := store.Secret{Tenant: syncproto.NewTenantID(), Kind: "wrapped", Name: "s/1/a", KEKGen: 2, Sealed: randBytes(40)}
	wantErr(t, s.PutSecrets(ctx, []store.Secret{replaced, fresh, lost}), store.ErrNotFound, "put a batch with a secret of an unknown tenant")
	got, err := s.GetSecret(ctx, tenant, "wrapped", batch[0].Name)
	noErr(t, err, "get a secret a refused batch would have replaced")
	checkSecret(t, "get a secret a refused batch would have replaced", got, batch[0])
	_, err = s.GetSecret(ctx, tenant, "wrapped", fresh.Name)
	wantErr(t, err, store.ErrNotFound, "get a secret of a refused batch")

	n, err := s.DeleteSecrets(ctx, tenant, "wrapped", []string{"s/1/a", "s/2/a", "s/9/z"})
	noErr(t, err, "delete a batch of secrets")
	if n != 2 {
		t.Fatalf("delete a batch of secrets: %d deleted, want 2", n)
	}
	list, err := s.ListSecrets(ctx, tenant, "wrapped", "")
	noErr(t, err, "list after deleting a batch")
	if names := secretNames(list); !slices.Equal(names, []string{"s/1/b"}) {
		t.Fatalf("list after deleting a batch: %q, want [s/1/b]", names)
	}
	for _, want := range []store.Secret{keep, release} {
		got, err := s.GetSecret(ctx, want.Tenant, want.Kind, want.Name)
		noErr(t, err, "another tenant's or kind's secret after deleting a batch")
		checkSecret(t, "another tenant's or kind's secret after deleting a batch", got, want)
	}
	n, err = s.DeleteSecrets(ctx, tenant, "wrapped", []string{"s/1/a", "s/2/a"})
	noErr(t, err, "delete a batch again")
	if n != 0 {
		t.Fatalf("delete a batch again: %d deleted, want 0", n)
	}
	n, err = s.DeleteSecrets(ctx, tenant, "wrapped", nil)
	noErr(t, err, "delete no secrets")
	if n != 0 {
		t.Fatalf("delete no secrets: %d deleted, want 0", n)
	}
}
