package client

import (
	"context"
	"testing"
	"time"

	"github.com/fristed/fristed/client/replica"
	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
	"github.com/stretchr/testify/require"
)

// The one line `audit verify` prints, for each shape of report.
func TestAuditReportLines(t *testing.T) {
	at := time.Date(2026, 11, 29, 10, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		got, want string
	}{
		{(&AuditProblem{Seq: 3, Author: "Kari Nordmann (kari-laptop)", At: at, Kind: AuditEdited, Detail: "it differs from this laptop's copy"}).Error(),
			"audit log damaged: entry 3 (recorded by Kari Nordmann (kari-laptop) at 2026-11-29 10:04:05 UTC): edited: it differs from this laptop's copy"},
		{(&AuditProblem{Seq: 4, Author: "relay", Kind: AuditMissing, Detail: "x"}).Error(),
			"audit log damaged: entry 4 (recorded by relay): missing: x"},
		{(&AuditProblem{Seq: 5, Kind: AuditTruncated, Detail: "y"}).Error(),
			"audit log damaged: entry 5: newest entries deleted: y"},
		{(&AuditProblem{Kind: "admin chain", Detail: "chain rolled back"}).Error(),
			"audit log damaged: admin chain: chain rolled back"},
		{(&AuditReport{}).Summary(),
			"audit log intact: 0 entries (0 access events readable here), relay and this laptop agree; no signed checkpoint yet"},
		{(&AuditReport{Entries: 1, Events: 1, Checkpoint: 1, CheckpointPos: 9}).Summary(),
			"audit log intact: 1 entry (1 access event readable here), relay and this laptop agree; signed checkpoint at chain position 9 covers entries 1-1"},
	} {
		if tc.got != tc.want {
			t.Errorf("got  %q\nwant %q", tc.got, tc.want)
		}
	}
}

// An audit entry sealed the way entries were before they were sealed to
// the coordinator laptops - under the epoch key - still opens and
// verifies, so an org's older log does not read as tampered.
func TestAuditVerifyEpochKeySealedEntry(t *testing.T) {
	r := startLoopbackRelay(t)
	d := relNewOrg(t, r, t.TempDir(), "Enhet A")
	defer d.Close()
	ctx := context.Background()
	as, ok := d.streamOfKind(syncproto.StreamAudit)
	require.True(t, ok)
	ep := d.chain.State().Streams[as].Current().Epoch
	key, err := d.epochKey(as, ep)
	require.NoError(t, err)
	ops, err := d.rep.AuditOps(as, replica.AuditEvent{Event: "reveal", Resident: as.String(),
		Device: d.pc.device.String(), At: d.opts.now().Truncate(time.Second)})
	require.NoError(t, err)
	dl := &syncproto.Delta{Tenant: d.pc.tenant, Stream: as, Epoch: ep, Author: d.pc.device,
		ID: syncproto.NewDeltaID(), Clock: d.tick(), Ops: ops}
	head, _ := d.chain.Head()
	b, err := syncproto.SealBatch(syncproto.Batch{Tenant: d.pc.tenant, Stream: as, Epoch: ep, Author: d.pc.device,
		Counter: 1, ChainHead: head, CreatedMS: uint64(d.opts.now().UnixMilli())}, key, d.kf.Sign, []*syncproto.Delta{dl})
	require.NoError(t, err)
	raw, err := b.Marshal()
	require.NoError(t, err)
	c, err := d.client()
	require.NoError(t, err)
	_, _, err = c.PushBatch(ctx, as, raw)
	require.NoError(t, err)

	rep, err := d.AuditVerify(ctx)
	require.NoError(t, err)
	if rep.Problem != nil || rep.Entries != 1 || rep.Events != 1 {
		t.Fatalf("got entries %d, events %d, problem %v; want 1, 1, none", rep.Entries, rep.Events, rep.Problem)
	}
	// A sealing under another key is still named.
	other, err := fcrypto.NewKey()
	require.NoError(t, err)
	b2, err := syncproto.SealBatch(syncproto.Batch{Tenant: d.pc.tenant, Stream: as, Epoch: ep, Author: d.pc.device,
		Counter: 2, Prev: batchHash(t, b), ChainHead: head, CreatedMS: uint64(d.opts.now().UnixMilli())}, other, d.kf.Sign,
		[]*syncproto.Delta{{Tenant: d.pc.tenant, Stream: as, Epoch: ep, Author: d.pc.device, ID: syncproto.NewDeltaID(), Clock: d.tick(), Ops: ops}})
	require.NoError(t, err)
	raw2, err := b2.Marshal()
	require.NoError(t, err)
	_, _, err = c.PushBatch(ctx, as, raw2)
	require.NoError(t, err)
	rep, err = d.AuditVerify(ctx)
	require.NoError(t, err)
	if rep.Problem == nil || rep.Problem.Seq != 2 || rep.Problem.Kind != AuditEdited {
		t.Fatalf("got problem %v, want entry 2 edited", rep.Problem)
	}
}

func batchHash(t *testing.T, b *syncproto.Batch) syncproto.Hash {
	t.Helper()
	h, err := b.Hash()
	require.NoError(t, err)
	return h
}
