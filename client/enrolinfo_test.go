package client

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/syncproto"
)

// TestDeviceInitHiddenRevocation: a relay that leaves a coordinator's
// revocation out of enrol-info gets the new device's name sealed to that
// laptop (nothing can show it before sealing), but the device says so as
// soon as it is approved and holds the verified chain. A device that went
// through the honest relay says nothing; root statements out of chain
// order are refused at device init.
func TestDeviceInitHiddenRevocation(t *testing.T) {
	ctx := context.Background()
	r := startLoopbackRelay(t)
	root := t.TempDir()
	recPath, recPass := filepath.Join(root, "recovery.age"), []byte("recovery passphrase")
	c, err := OrgInit(ctx, relOptions(t, filepath.Join(root, "coordinator")), OrgInitParams{RelayURL: r.URL, Invite: r.Invite,
		Name: "Enhet I", RecoveryOut: recPath, RecoveryPass: recPass})
	require.NoError(t, err)
	defer c.Close()
	rec, err := OpenRecovery(recPath, recPass)
	require.NoError(t, err)
	_, err = c.WorkerAdd(ctx, "Kari Nordmann")
	require.NoError(t, err)

	// A second coordinator laptop, later lost and revoked with the root.
	c2, code, err := DeviceInit(ctx, relOptions(t, filepath.Join(root, "coordinator2")), DeviceInitParams{RelayURL: r.URL, Org: c.Org(), Name: "coord-2"})
	require.NoError(t, err)
	require.NoError(t, c2.Close())
	lost, err := c.Approve(ctx, ApproveParams{Code: code, Coordinator: true, Recovery: rec})
	require.NoError(t, err)
	_, err = c.Revoke(ctx, RevokeParams{Device: lost.String(), Recovery: rec})
	require.NoError(t, err)

	// The new laptops ask an hour later (by their clocks).
	later := func() time.Time { return time.Now().Add(time.Hour) }
	enrol := func(name, relayURL string) (*noticeLog, syncproto.DeviceID, error) {
		t.Helper()
		notices := &noticeLog{}
		opts := relOptions(t, filepath.Join(root, name))
		opts.Now, opts.Notice = later, notices.add
		d, code, err := DeviceInit(ctx, opts, DeviceInitParams{RelayURL: relayURL, Org: c.Org(), Name: name})
		if err != nil {
			return nil, syncproto.DeviceID{}, err
		}
		require.NoError(t, d.Close())
		id, err := c.Approve(ctx, ApproveParams{Code: code, Worker: "Kari Nordmann"})
		require.NoError(t, err)
		d, err = Open(opts)
		require.NoError(t, err)
		defer d.Close()
		_, err = d.Sync(ctx)
		require.NoError(t, err)
		require.Empty(t, d.cfg.SealedTo, "the check runs once")
		return notices, id, nil
	}
	rootStatements := func(m map[string]any) []any { ss, _ := m["statements"].([]any); return ss }
	isRevocation := func(s any) bool {
		b, _ := base64.StdEncoding.DecodeString(s.(string))
		st, err := syncproto.UnmarshalStatement(b)
		require.NoError(t, err)
		_, ok := st.Body.(*syncproto.DeviceRevoked)
		return ok
	}

	hiding := hostileProxy(t, r.URL, "/enrol-info", func(m map[string]any) {
		m["statements"] = slices.DeleteFunc(rootStatements(m), isRevocation)
	})
	notices, _, err := enrol("hidden", hiding)
	require.NoError(t, err)
	if got := notices.matching("the relay hid the revocation of coordinator laptop " + lost.String()); len(got) != 1 {
		t.Fatalf("notices after approval through a relay that hid a revocation: got %q, want one naming %s", notices.all, lost)
	}

	notices, _, err = enrol("honest", r.URL)
	require.NoError(t, err)
	if got := notices.matching("hid the revocation"); len(got) != 0 {
		t.Fatalf("notices after approval through an honest relay: got %q, want none", got)
	}

	reordering := hostileProxy(t, r.URL, "/enrol-info", func(m map[string]any) {
		ss := rootStatements(m)
		slices.Reverse(ss[1:])
	})
	_, _, err = enrol("reordered", reordering)
	if err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Fatalf("device init with root statements out of order: got %v, want it refused", err)
	}
	if Exists(filepath.Join(root, "reordered")) {
		t.Fatalf("a refused device init left a device behind")
	}
}
