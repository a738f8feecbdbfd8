package client

// Lost answers and duplicate deliveries around admin actions, one at a
// time: each would leave a laptop without a key, a statement twice on the
// chain, or a fork, before the sync engine learnt to cope.

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/syncproto"
)

// countStatements counts the statements of type T on dev's chain.
func countStatements[T syncproto.Body](d *Device) int {
	n := 0
	for pos := 0; pos < d.chain.Len(); pos++ {
		if _, ok := d.chain.Statement(syncproto.ChainPos(pos)).Body.(T); ok {
			n++
		}
	}
	return n
}

// TestStatementDeliveredTwice: the relay gets an assignment twice; the
// second copy is refused as a chain conflict, which is the only answer the
// coordinator sees. It finds its statement on the chain and does not sign
// it again.
func TestStatementDeliveredTwice(t *testing.T) {
	w := newHostileWorld(t, false)
	coord := w.devs["coord"]
	before := countStatements[*syncproto.Assigned](coord)
	w.fault("coord", &netFault{action: "dup", method: "POST", suffix: "/chain", body: isStatement[*syncproto.Assigned]()})
	require.NoError(t, coord.Assign(context.Background(), "Mina", "Cy"))
	require.Empty(t, w.faults["coord"], "the fault did not happen")
	w.mustSync("coord")
	if got := countStatements[*syncproto.Assigned](coord); got != before+1 {
		t.Errorf("got %d assignments, want %d", got, before+1)
	}
}

// TestEpochAnswerLost: the relay appends a coordinator's "epoch started"
// but the answer is lost. The key, kept before the statement left, is
// found by its commitment: the coordinator writes under the new epoch and
// the other laptops read it.
func TestEpochAnswerLost(t *testing.T) {
	w := newHostileWorld(t, false)
	coord := w.devs["coord"]
	ctx := context.Background()
	w.fault("coord", &netFault{action: "lose", method: "POST", suffix: "/chain", body: isStatement[*syncproto.EpochStarted]()})
	err := coord.Assign(ctx, "Mina", "Cy")
	require.ErrorContains(t, err, "unreachable")
	w.mustSync("coord")
	str := coord.chain.State().Streams[w.resident]
	require.True(t, str.Current().Has(w.devs["ada"].ID()), "the lost epoch is on the chain")
	_, err = coord.epochKey(w.resident, str.Current().Epoch)
	require.NoError(t, err, "the coordinator holds the key of the epoch whose answer was lost")
	w.coordWrites("under the epoch whose answer was lost")
	w.mustSync("ada")
	require.Equal(t, []string{"under the epoch whose answer was lost"}, w.logTexts("ada"))
}

// TestWrappedKeyLost: a new epoch's key never reaches the relay for one
// laptop (the coordinator was cut off half-way). The coordinator's next
// sync sends it; until then the laptop's edits wait, with a notice.
func TestWrappedKeyLost(t *testing.T) {
	w := newHostileWorld(t, false)
	coord, ada := w.devs["coord"], w.devs["ada"]
	ctx := context.Background()
	w.mustSync("ada")
	adaID := ada.ID()
	// The keys of the new epoch go in one batch: dropping it drops ada's.
	w.fault("coord", &netFault{action: "drop", method: "POST", suffix: "/keys/batch", body: func(body []byte) bool {
		var req struct{ Keys [][]byte }
		if json.Unmarshal(body, &req) != nil {
			return false
		}
		for _, raw := range req.Keys {
			if wk, err := syncproto.UnmarshalWrappedKey(raw); err == nil && wk.Device == adaID {
				return true
			}
		}
		return false
	}})
	require.ErrorContains(t, coord.Assign(ctx, "Mina", "Cy"), "unreachable")
	_, err := ada.LogAdd("Mina", "practical", 5, "written before the key came")
	require.NoError(t, err)
	res, err := w.sync("ada")
	require.NoError(t, err)
	require.Equal(t, 1, res.Pending, "the edit waits for the key")
	require.Contains(t, w.noticesOf("ada"), "wait for the case key")

	w.mustSync("coord") // sends the missing key
	w.mustSync("ada")
	w.mustSync("coord")
	require.Contains(t, w.logTexts("coord"), "written before the key came")
}

// TestReassignedAfterPurge: Bo is unassigned (his laptop deletes the case
// and its keys) and assigned again. The laptop gets every key again, reads
// the whole history including its own earlier edits, and its next batch
// follows its earlier ones (no fork at the others).
func TestReassignedAfterPurge(t *testing.T) {
	w := newHostileWorld(t, false)
	coord, bo := w.devs["coord"], w.devs["bo"]
	ctx := context.Background()
	_, err := bo.LogAdd("Mina", "practical", 5, "bo before")
	require.NoError(t, err)
	w.mustSync("bo")
	require.NoError(t, coord.Unassign(ctx, "Mina", "Bo"))
	w.mustSync("bo")
	require.Contains(t, w.noticesOf("bo"), "removed a case")
	w.coordWrites("while bo was away")
	require.NoError(t, coord.Assign(ctx, "Mina", "Bo"))
	w.mustSync("bo")
	require.ElementsMatch(t, []string{"bo before", "while bo was away"}, w.logTexts("bo"))
	_, err = bo.LogAdd("Mina", "practical", 5, "bo after")
	require.NoError(t, err)
	w.mustSync("bo")
	w.mustSync("coord")
	w.mustSync("ada")
	for _, h := range []string{"coord", "ada"} {
		require.ElementsMatch(t, []string{"bo before", "while bo was away", "bo after"}, w.logTexts(h), h)
		require.NotContains(t, w.noticesOf(h), "inconsistent")
	}
	require.Equal(t, w.dump("coord"), w.dump("bo"))
	require.False(t, strings.Contains(w.noticesOf("bo"), "no key"), "bo lacked a key: %s", w.noticesOf("bo"))
}
