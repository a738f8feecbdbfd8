package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server"
	"github.com/fristed/fristed/server/store/sqlite"
	"github.com/fristed/fristed/syncproto"
)

// startDrillRelay runs a relay in this process on a loopback port, with
// SQLite in a temp directory, and returns its URL and a tenant invite. It
// counts the requests it serves in requests.
// Its rate limits are lifted: a benchmark enrols laptops as fast as it
// can, and setting up its later iterations (each new laptop is handed every
// older key of every stream) would exceed a device's default burst.
func startDrillRelay(tb testing.TB, requests *atomic.Int64) (relayURL, invite string) {
	tb.Helper()
	return startDrillRelayWith(tb, requests, false, nil)
}

// startDrillRelayWith is startDrillRelay; with oneKeyPerRequest the relay
// answers as one without the batch key endpoints (POST /keys/batch and
// /keys/ack: "no such endpoint"), so clients send and acknowledge keys
// one per request, as they did before those endpoints. seen, if not nil,
// hears the method and path of every request.
func startDrillRelayWith(tb testing.TB, requests *atomic.Int64, oneKeyPerRequest bool, seen func(method, path string)) (relayURL, invite string) {
	tb.Helper()
	dir := tb.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "relay.db"))
	require.NoError(tb, err)
	ctx := context.Background()
	rl, err := server.New(ctx, server.Config{Dir: dir, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Limits: server.Limits{AddrRate: 1e6, AddrBurst: 1e6, DeviceRate: 1e6, DeviceBurst: 1e6}})
	if err != nil {
		st.Close()
	}
	require.NoError(tb, err)
	b := make([]byte, 24)
	rand.Read(b)
	invite = "fri_drill_" + base64.RawURLEncoding.EncodeToString(b)
	require.NoError(tb, st.PutInvite(ctx, server.InviteHash(invite), time.Now().Add(time.Hour)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	h := rl.Handler()
	srv := server.NewHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if seen != nil {
			seen(r.Method, r.URL.Path)
		}
		if oneKeyPerRequest && r.Method == http.MethodPost && (strings.HasSuffix(r.URL.Path, "/keys/batch") || strings.HasSuffix(r.URL.Path, "/keys/ack")) {
			r.URL.Path += "-unknown"
		}
		h.ServeHTTP(w, r)
	}), nil)
	go srv.Serve(ln)
	tb.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rl.Close()
		srv.Shutdown(c)
		st.Close()
	})
	return "http://" + ln.Addr().String(), invite
}

// BenchmarkRevokeRekey measures Revoke on a coordinator laptop, from the
// call to every affected stream re-keyed (the new epochs signed, their
// keys wrapped to the remaining devices and posted): one laptop of a
// worker with 5 residents and 10 laptops, so 6 streams (the residents and
// the directory; the audit log is keyed to coordinator laptops only) move
// to an epoch wrapped to the 9 other laptops and the coordinator. Between iterations, untimed, the worker
// gets a new laptop so that there are always 10. "batched" sends the keys
// in batches (POST /keys/batch); "one-per-key" runs against a relay
// without that endpoint, so every key is its own PUT, as before it.
//
//	go test ./client -run '^$' -bench BenchmarkRevokeRekey -benchtime 20x
func BenchmarkRevokeRekey(b *testing.B) {
	b.Run("batched", func(b *testing.B) { benchRevokeRekey(b, false) })
	b.Run("one-per-key", func(b *testing.B) { benchRevokeRekey(b, true) })
}

func benchRevokeRekey(b *testing.B, oneKeyPerRequest bool) {
	const residents, laptops = 5, 10
	ctx := context.Background()
	var requests atomic.Int64
	relayURL, invite := startDrillRelayWith(b, &requests, oneKeyPerRequest, nil)
	dir := b.TempDir()
	opts := func(home string) Options {
		return Options{Home: filepath.Join(dir, home), WorkFactor: drillWorkFactor,
			Passphrase: func(bool) ([]byte, error) { return []byte(drillPassphrase), nil }}
	}
	coord, err := OrgInit(ctx, opts("coord"), OrgInitParams{RelayURL: relayURL, Invite: invite, Name: "Enhet Bench",
		RecoveryOut: filepath.Join(dir, "recovery.age"), RecoveryPass: []byte(drillRecovery)})
	require.NoError(b, err)
	defer coord.Close()
	_, err = coord.WorkerAdd(ctx, "Kari Nordmann")
	require.NoError(b, err)
	n := 0
	newLaptop := func() syncproto.DeviceID {
		n++
		d, code, err := DeviceInit(ctx, opts(fmt.Sprintf("laptop-%d", n)), DeviceInitParams{RelayURL: relayURL, Org: coord.Org(), Name: fmt.Sprintf("laptop-%d", n)})
		require.NoError(b, err)
		require.NoError(b, d.Close())
		id, err := coord.Approve(ctx, ApproveParams{Code: code, Worker: "Kari Nordmann"})
		require.NoError(b, err)
		return id
	}
	var fleet []syncproto.DeviceID
	for range laptops {
		fleet = append(fleet, newLaptop())
	}
	for i := range residents {
		name := fmt.Sprintf("Resident %d", i)
		_, err := coord.ResidentAdd(ctx, ResidentAddParams{Pseudonym: name, Arrived: "2026-11-01"})
		require.NoError(b, err)
		require.NoError(b, coord.Assign(ctx, name, "Kari Nordmann"))
	}

	rekeyed, reqs, approveReqs := 0, int64(0), int64(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n0 := requests.Load()
		res, err := coord.Revoke(ctx, RevokeParams{Device: fleet[0].String()})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		reqs += requests.Load() - n0
		rekeyed += res.Rekeyed
		if res.Rekeyed != residents+1 {
			b.Fatalf("re-keyed %d streams, want %d", res.Rekeyed, residents+1)
		}
		st := coord.chain.State()
		for sid, s := range st.Streams {
			if cur := s.Current(); cur.Has(fleet[0]) {
				b.Fatalf("stream %s: revoked laptop still in the current epoch", sid)
			}
		}
		n1 := requests.Load()
		fleet = append(fleet[1:], newLaptop())
		approveReqs += requests.Load() - n1
		b.StartTimer()
	}
	// Approving the new laptop (untimed) sends it every key of the
	// worker's streams' history, which grows with each iteration.
	b.ReportMetric(float64(approveReqs)/float64(b.N), "approve-requests/op")
	b.ReportMetric(float64(rekeyed)/float64(b.N), "streams/op")
	b.ReportMetric(float64(reqs)/float64(b.N), "requests/op")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(rekeyed)/1000, "ms/stream")
}
