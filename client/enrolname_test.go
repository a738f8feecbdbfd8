package client

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/syncproto"
)

// TestEnrolNamePadded: the device name an enrolment request seals to the
// coordinators is padded to one size, so the request the relay stores is
// as long for a one-letter name as for the longest; the coordinator still
// reads the name; a name too long or not UTF-8 is refused before anything
// is made.
func TestEnrolNamePadded(t *testing.T) {
	ctx := context.Background()
	r := startLoopbackRelay(t)
	root := t.TempDir()
	c := relNewOrg(t, r, filepath.Join(root, "coordinator"), "Enhet P")
	defer c.Close()
	_, err := c.WorkerAdd(ctx, "Kari Nordmann")
	require.NoError(t, err)
	cl, err := c.client()
	require.NoError(t, err)

	longest := strings.Repeat("ø", syncproto.MaxEnrolName/2)
	sizes := map[string]int{}
	codes := map[string]string{}
	for i, name := range []string{"a", "kari-laptop", longest} {
		d, code, err := DeviceInit(ctx, relOptions(t, filepath.Join(root, "dev", string(rune('a'+i)))),
			DeviceInitParams{RelayURL: r.URL, Org: c.Org(), Name: name})
		require.NoError(t, err, "device init %q", name)
		rid, err := syncproto.ParseRequestID(d.cfg.RequestID)
		require.NoError(t, err)
		require.NoError(t, d.Close())
		raw, err := cl.GetEnrolment(ctx, rid)
		require.NoError(t, err)
		req, err := syncproto.UnmarshalEnrolment(raw)
		require.NoError(t, err)
		sizes[name], codes[name] = len(req.Sealed), code
	}
	if sizes["a"] != sizes[longest] || sizes["a"] != sizes["kari-laptop"] {
		t.Fatalf("sealed name sizes: got %v, want one size for every name", sizes)
	}

	dev, err := c.Approve(ctx, ApproveParams{Code: codes[longest], Worker: "Kari Nordmann"})
	require.NoError(t, err)
	list, err := c.DeviceList(ctx)
	require.NoError(t, err)
	found := false
	for _, di := range list {
		if di.ID == dev.String() {
			found = true
			if di.Name != longest {
				t.Fatalf("approved device's name: got %q, want the 250-byte name", di.Name)
			}
		}
	}
	require.True(t, found, "approved device listed")

	for _, name := range []string{longest + "x", "bad\xffname"} {
		home := filepath.Join(root, "refused")
		_, _, err := DeviceInit(ctx, relOptions(t, home), DeviceInitParams{RelayURL: r.URL, Org: c.Org(), Name: name})
		if err == nil || !strings.Contains(err.Error(), "--name must be UTF-8 text of at most 250 bytes") {
			t.Fatalf("device init with name %q: got %v, want the name refused", name, err)
		}
		if Exists(home) {
			t.Fatalf("device init with name %q left a device behind", name)
		}
	}
}
