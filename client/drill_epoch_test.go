package client

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
)

// drillOfflineEpochChange: Kari's laptop is offline while the case's
// assignment changes twice (Ola is assigned, Nils is unassigned). Kari
// keeps writing. When it syncs, every edit it made - before and after the
// changes, all waiting in its journal - is sealed under the newest epoch,
// which every device of that epoch can read and no other device's keys
// can open: not Nils's, captured just before his unassignment.
func drillOfflineEpochChange(t *testing.T, bins drillBins) {
	o := newDrillOrg(t, bins, nil)
	for _, w := range []string{"Kari Nordmann", "Ola Hansen", "Nils Berg"} {
		o.must(o.coord, "worker", "add", w)
	}
	k1, o1, n1 := o.home("k1"), o.home("o1"), o.home("n1")
	k1ID := o.enrol(o.coord, k1, "kari-laptop", "Kari Nordmann")
	o1ID := o.enrol(o.coord, o1, "ola-laptop", "Ola Hansen")
	n1ID := o.enrol(o.coord, n1, "nils-laptop", "Nils Berg")
	var coordID syncproto.DeviceID
	o.with(o.coord, func(d *Device) { coordID = d.ID() })
	mina := o.residentAdd("Mina")
	o.must(o.coord, "assign", "Mina", "--worker", "Kari Nordmann")
	o.must(o.coord, "assign", "Mina", "--worker", "Nils Berg")
	o.must(k1, "sync")
	o.must(n1, "sync")

	// Kari goes offline and writes.
	o.must(k1, "log", "add", "Mina", "--category", "support_conversation", "--minutes", "30", "--text", "k1 offline before the change")
	// Nils's laptop is imaged now: every key it will ever legitimately hold for Mina.
	var nilsKeys map[syncproto.StreamID]map[syncproto.Epoch]*fcrypto.Key
	o.with(n1, func(d *Device) { nilsKeys = drillEpochKeys(t, d) })
	require.NotEmpty(t, nilsKeys[mina], "Nils's laptop holds no key of Mina's stream")

	o.must(o.coord, "assign", "Mina", "--worker", "Ola Hansen")
	o.must(o.coord, "unassign", "Mina", "--worker", "Nils Berg")
	o.must(o.coord, "sync")
	o.must(k1, "log", "add", "Mina", "--category", "practical", "--minutes", "10", "--text", "k1 offline after the change")

	// Kari's laptop comes back and syncs once.
	_, se, code := o.run(k1, "", "sync")
	require.Equal(t, 0, code, "Kari's sync: %s", se)

	st := o.chain().State()
	cur := st.Streams[mina].Current()
	require.NotNil(t, cur)
	require.ElementsMatch(t, []syncproto.DeviceID{coordID, k1ID, o1ID}, cur.Devices, "the newest epoch's devices")
	require.False(t, cur.Has(n1ID))

	keysOf := map[string]map[syncproto.StreamID]map[syncproto.Epoch]*fcrypto.Key{}
	for _, h := range []string{o.coord, o1} {
		o.must(h, "sync")
	}
	for _, h := range []string{o.coord, k1, o1} {
		o.with(h, func(d *Device) { keysOf[filepath.Base(h)] = drillEpochKeys(t, d) })
	}
	var kariBatches int
	var texts []string
	for _, b := range o.batches() {
		if b.Stream != mina || b.Batch.Author != k1ID {
			continue
		}
		kariBatches++
		require.Equal(t, cur.Epoch, b.Batch.Epoch, "Kari's batch %d is sealed under epoch %d, not the newest", b.Seq, b.Batch.Epoch)
		for _, sd := range b.Batch.Deltas {
			for name, keys := range keysOf {
				dl, ok := drillOpenDelta(b.Batch, sd, keys)
				require.True(t, ok, "%s cannot read Kari's delta in batch %d", name, b.Seq)
				for _, op := range dl.Ops {
					for _, m := range []string{"k1 offline before the change", "k1 offline after the change"} {
						if strings.Contains(string(op.Value), m) {
							texts = append(texts, m)
						}
					}
				}
			}
			_, ok := drillOpenDelta(b.Batch, sd, nilsKeys)
			require.False(t, ok, "Nils's captured keys open Kari's delta in batch %d", b.Seq)
		}
	}
	require.Positive(t, kariBatches, "Kari's edits never reached the relay")
	require.Contains(t, texts, "k1 offline before the change")
	require.Contains(t, texts, "k1 offline after the change")

	// Every device of the epoch shows both entries; Nils's laptop has
	// purged the case.
	for _, h := range []string{o.coord, k1, o1} {
		got := o.logTexts(h, "Mina")
		require.Contains(t, got, "k1 offline before the change", filepath.Base(h))
		require.Contains(t, got, "k1 offline after the change", filepath.Base(h))
	}
	o.must(n1, "sync")
	o.with(n1, func(d *Device) {
		_, held := drillEpochKeys(t, d)[mina]
		require.False(t, held, "Nils's laptop still holds Mina's keys after unassignment")
	})
}
