package server

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/server/store/sqlite"
	"github.com/fristed/fristed/syncproto"
)

// TestKeystoreBatch: PutAll seals and stores every secret under the
// current generation; DestroyAll deletes the named ones and rotates once,
// and the survivors open under the new generation; a DestroyAll that
// finds nothing does not rotate.
func TestKeystoreBatch(t *testing.T) {
	st, tid := kekStore(t)
	ctx := context.Background()
	k, err := OpenKeystore(filepath.Join(t.TempDir(), "kek"))
	require.NoError(t, err)
	var secs []store.Secret
	var plains [][]byte
	for i := range 6 {
		secs = append(secs, secret(tid, fmt.Sprintf("n%d", i)))
		plains = append(plains, []byte(fmt.Sprintf("plain %d", i)))
	}
	require.Error(t, k.PutAll(ctx, st, secs, plains[:5]), "values do not match the secrets")
	require.NoError(t, k.PutAll(ctx, st, secs, plains))
	gen := k.Generation()
	for i, sec := range secs {
		got := getSecret(t, st, tid, sec.Name)
		require.Equal(t, gen, got.KEKGen)
		plain, err := k.Open(got)
		require.NoError(t, err)
		require.Equal(t, plains[i], plain)
	}
	n, err := k.DestroyAll(ctx, st, tid, KindRelease, []string{"n0", "n2", "n4", "missing"})
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Equal(t, gen+1, k.Generation(), "one rotation for the batch")
	gens, err := k.Generations()
	require.NoError(t, err)
	require.Equal(t, []uint32{gen + 1}, gens)
	for i, sec := range secs {
		got, err := st.GetSecret(ctx, tid, KindRelease, sec.Name)
		if i%2 == 0 {
			require.ErrorIs(t, err, store.ErrNotFound, sec.Name)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, gen+1, got.KEKGen, sec.Name)
		plain, err := k.Open(got)
		require.NoError(t, err)
		require.Equal(t, plains[i], plain)
	}
	n, err = k.DestroyAll(ctx, st, tid, KindRelease, []string{"n0", "n2"})
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, gen+1, k.Generation(), "nothing destroyed, no rotation")
}

// TestKeystoreBatchConcurrent: two keystores on one directory and one
// store (two relay processes) put and destroy batches concurrently; at the
// end every secret kept opens to its value under the one generation left,
// and every destroyed one is gone.
func TestKeystoreBatchConcurrent(t *testing.T) {
	ctx := context.Background()
	st, tid := kekStore(t)
	dir := filepath.Join(t.TempDir(), "kek")
	ks := make([]*Keystore, 2)
	for i := range ks {
		k, err := OpenKeystore(dir)
		require.NoError(t, err)
		ks[i] = k
	}
	const workers, rounds, per = 4, 5, 8
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			k := ks[w%len(ks)]
			for r := range rounds {
				var secs []store.Secret
				var plains [][]byte
				var gone []string
				for i := range per {
					name := fmt.Sprintf("w%d/r%d/%d", w, r, i)
					secs = append(secs, secret(tid, name))
					plains = append(plains, []byte(name))
					if i%2 == 0 {
						gone = append(gone, name)
					}
				}
				if err := k.PutAll(ctx, st, secs, plains); err != nil {
					errs <- err
					return
				}
				if _, err := k.DestroyAll(ctx, st, tid, KindRelease, gone); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		require.NoError(t, <-errs)
	}
	gens, err := ks[0].Generations()
	require.NoError(t, err)
	require.Len(t, gens, 1, "generations left")
	secs, err := st.ListSecrets(ctx, tid, KindRelease, "")
	require.NoError(t, err)
	require.Len(t, secs, workers*rounds*per/2)
	for _, sec := range secs {
		require.Equal(t, gens[0], sec.KEKGen, sec.Name)
		plain, err := ks[1].Open(sec)
		require.NoError(t, err, sec.Name)
		require.Equal(t, sec.Name, string(plain))
		var i int
		_, err = fmt.Sscanf(sec.Name[strings.LastIndex(sec.Name, "/")+1:], "%d", &i)
		require.NoError(t, err)
		require.Equal(t, 1, i%2, "destroyed secret %s still stored", sec.Name)
	}
}

// BenchmarkAckKeys measures acknowledging 64 of the 256 wrapped keys a
// relay holds: one Destroy per key (a KEK rotation each, rewrapping every
// remaining secret: what 64 DELETE /keys/{stream}/{epoch} cost) against
// one DestroyAll (one transaction, one rotation: POST /keys/ack), in the
// same run; it reports the ratio.
//
//	go test ./server -run '^$' -bench BenchmarkAckKeys -benchtime 5x
func BenchmarkAckKeys(b *testing.B) {
	const held, acked = 256, 64
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "relay.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	tid := syncproto.NewTenantID()
	inv := InviteHash("kek-bench")
	if err := st.PutInvite(ctx, inv, time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	if err := st.ConsumeInvite(ctx, inv, tid, time.Now()); err != nil {
		b.Fatal(err)
	}
	k, err := OpenKeystore(filepath.Join(b.TempDir(), "kek"))
	if err != nil {
		b.Fatal(err)
	}
	fill := func() []string {
		secs := make([]store.Secret, held)
		plains := make([][]byte, held)
		for i := range secs {
			secs[i] = store.Secret{Tenant: tid, Kind: KindWrapped, Name: fmt.Sprintf("s/%d/d", i)}
			plains[i] = make([]byte, 1600) // about a hybrid wrapped key
		}
		if err := k.PutAll(ctx, st, secs, plains); err != nil {
			b.Fatal(err)
		}
		names := make([]string, acked)
		for i := range names {
			names[i] = secs[i].Name
		}
		return names
	}
	var one, batch time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		names := fill()
		b.StartTimer()
		t0 := time.Now()
		for _, name := range names {
			if err := k.Destroy(ctx, st, tid, KindWrapped, name); err != nil {
				b.Fatal(err)
			}
		}
		one += time.Since(t0)
		b.StopTimer()
		names = fill()
		b.StartTimer()
		t0 = time.Now()
		if _, err := k.DestroyAll(ctx, st, tid, KindWrapped, names); err != nil {
			b.Fatal(err)
		}
		batch += time.Since(t0)
	}
	b.ReportMetric(float64(one.Milliseconds())/float64(b.N), "one-per-key-ms/op")
	b.ReportMetric(float64(batch.Milliseconds())/float64(b.N), "batch-ms/op")
	b.ReportMetric(float64(one)/float64(batch), "speedup")
}
