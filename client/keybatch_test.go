package client

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/syncproto"
)

// keyRoutes counts the requests to the relay's key routes.
type keyRoutes struct {
	mu    sync.Mutex
	n     map[string]int
	onAck func() // called as the relay receives an acknowledgement
}

func (k *keyRoutes) seen(method, path string) {
	i := strings.Index(path, "/keys")
	if i < 0 {
		return
	}
	route := method + " " + path[i:]
	if method == http.MethodDelete {
		route = "DELETE /keys/{stream}/{epoch}"
	}
	k.mu.Lock()
	k.n[route]++
	onAck := k.onAck
	k.mu.Unlock()
	if onAck != nil && (route == "POST /keys/ack" || method == http.MethodDelete) {
		onAck()
	}
}

func (k *keyRoutes) setOnAck(f func()) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.onAck = f
}

func (k *keyRoutes) take() map[string]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.n
	k.n = map[string]int{}
	return n
}

// TestKeysBatched: approving a laptop for a worker with several cases
// sends all its keys in one batch request; the laptop's sync acknowledges
// them all in one request, after which the relay holds none for it. A
// relay without the batch routes gets one request per key, and the same
// outcome.
func TestKeysBatched(t *testing.T) {
	for _, old := range []bool{false, true} {
		t.Run(fmt.Sprintf("oneKeyPerRequest=%v", old), func(t *testing.T) {
			const residents = 4
			ctx := context.Background()
			var requests atomic.Int64
			routes := &keyRoutes{n: map[string]int{}}
			relayURL, invite := startDrillRelayWith(t, &requests, old, routes.seen)
			dir := t.TempDir()
			opts := func(home string) Options {
				return Options{Home: filepath.Join(dir, home), WorkFactor: drillWorkFactor,
					Passphrase: func(bool) ([]byte, error) { return []byte(drillPassphrase), nil }}
			}
			coord, err := OrgInit(ctx, opts("coord"), OrgInitParams{RelayURL: relayURL, Invite: invite, Name: "Enhet Nøkkel",
				RecoveryOut: filepath.Join(dir, "recovery.age"), RecoveryPass: []byte(drillRecovery)})
			require.NoError(t, err)
			defer coord.Close()
			_, err = coord.WorkerAdd(ctx, "Kari Nordmann")
			require.NoError(t, err)
			var ids []syncproto.StreamID
			for i := range residents {
				name := fmt.Sprintf("Resident %d", i)
				id, err := coord.ResidentAdd(ctx, ResidentAddParams{Pseudonym: name, Arrived: "2026-11-01"})
				require.NoError(t, err)
				ids = append(ids, id)
				require.NoError(t, coord.Assign(ctx, name, "Kari Nordmann"))
			}
			d, code, err := DeviceInit(ctx, opts("laptop"), DeviceInitParams{RelayURL: relayURL, Org: coord.Org(), Name: "laptop"})
			require.NoError(t, err)
			defer d.Close()
			routes.take()
			_, err = coord.Approve(ctx, ApproveParams{Code: code, Worker: "Kari Nordmann"})
			require.NoError(t, err)
			got := routes.take()
			if old {
				// One refused batch request, then a PUT per key: one
				// new epoch for each resident and the directory.
				require.Equal(t, 1, got["POST /keys/batch"], "%v", got)
				require.GreaterOrEqual(t, got["PUT /keys"], residents+1, "%v", got)
			} else {
				require.Equal(t, map[string]int{"POST /keys/batch": 1}, got, "approval sends its keys in one request")
			}

			// What is on disk when the relay hears the acknowledgement is
			// what a crash then would leave: it must hold the keys.
			crashed := filepath.Join(dir, "crashed")
			var copied atomic.Bool
			routes.setOnAck(func() {
				if copied.CompareAndSwap(false, true) {
					require.NoError(t, copyTree(filepath.Join(dir, "laptop"), crashed))
				}
			})
			_, err = d.Sync(ctx)
			require.NoError(t, err)
			routes.setOnAck(nil)
			got = routes.take()
			require.True(t, copied.Load(), "the relay heard no acknowledgement")
			c2, err := Open(opts("crashed"))
			require.NoError(t, err)
			for i, id := range ids {
				str := c2.chain.State().Streams[id]
				require.NotNil(t, str, "after a crash at the acknowledgement, the laptop knows nothing of resident %d", i)
				_, err := c2.epochKey(id, str.Current().Epoch)
				require.NoError(t, err, "after a crash at the acknowledgement, the laptop holds the key of resident %d", i)
			}
			require.NoError(t, c2.Close())
			held := 0
			for i, id := range ids {
				str := d.chain.State().Streams[id]
				require.NotNil(t, str)
				_, err := d.epochKey(id, str.Current().Epoch)
				require.NoError(t, err, "the laptop holds the key of resident %d", i)
				held++
			}
			if old {
				require.Equal(t, 1, got["POST /keys/ack"], "%v", got)
				require.GreaterOrEqual(t, got["DELETE /keys/{stream}/{epoch}"], held+1, "%v", got)
			} else {
				require.Equal(t, 1, got["POST /keys/ack"], "one acknowledgement per sync: %v", got)
				require.Zero(t, got["DELETE /keys/{stream}/{epoch}"], "%v", got)
			}
			c, err := d.client()
			require.NoError(t, err)
			left, err := c.Keys(ctx)
			require.NoError(t, err)
			require.Empty(t, left, "keys left on the relay after the laptop acknowledged them")
			_, err = d.Sync(ctx)
			require.NoError(t, err)
			got = routes.take()
			require.Zero(t, got["POST /keys/ack"]+got["DELETE /keys/{stream}/{epoch}"], "a sync with no keys acknowledges nothing: %v", got)
		})
	}
}
