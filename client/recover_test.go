package client

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOrgRecoverVerifiesChain: org recover reads the whole chain with the
// root key and verifies it from the genesis against the org fingerprint
// before the root signs anything on it. A relay that alters, drops or
// reorders a statement is refused: no device is made and the chain is
// unchanged. An honest relay's chain lets the recovery through.
func TestOrgRecoverVerifiesChain(t *testing.T) {
	ctx := context.Background()
	r := startLoopbackRelay(t)
	root := t.TempDir()
	recPath, recPass := filepath.Join(root, "recovery.age"), []byte("recovery passphrase")
	c, err := OrgInit(ctx, relOptions(t, filepath.Join(root, "coordinator")), OrgInitParams{RelayURL: r.URL, Invite: r.Invite,
		Name: "Enhet R", RecoveryOut: recPath, RecoveryPass: recPass})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.WorkerAdd(ctx, "Kari Nordmann")
	require.NoError(t, err)
	_, err = c.ResidentAdd(ctx, ResidentAddParams{Pseudonym: "Mina", Arrived: "2026-11-01"})
	require.NoError(t, err)
	rec, err := OpenRecovery(recPath, recPass)
	require.NoError(t, err)
	chainLen := func() int {
		t.Helper()
		require.NoError(t, c.refreshChain(ctx))
		return c.chain.Len()
	}
	before := chainLen()

	// The lies change the first page only (the whole chain here); the
	// client may ask for more pages after a shortened one.
	rewrite := func(f func(ss []any) []any) func(m map[string]any) {
		return func(m map[string]any) {
			if ss, _ := m["statements"].([]any); len(ss) == before {
				m["statements"] = f(ss)
			}
		}
	}
	for _, tc := range []struct {
		name string
		lie  func(m map[string]any)
		want string
	}{
		{"altered statement", rewrite(func(ss []any) []any {
			b, _ := base64.StdEncoding.DecodeString(ss[len(ss)-1].(string))
			b[len(b)-1] ^= 1
			ss[len(ss)-1] = base64.StdEncoding.EncodeToString(b)
			return ss
		}), "does not verify at statement"},
		{"dropped statement", rewrite(func(ss []any) []any { return append(ss[:2:2], ss[3:]...) }), "does not verify at statement 2"},
		{"reordered statements", rewrite(func(ss []any) []any { ss[1], ss[2] = ss[2], ss[1]; return ss }), "does not verify at statement 1"},
		{"no chain", rewrite(func([]any) []any { return []any{} }), "the relay sent no chain for this org"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := filepath.Join(root, "recovered-"+strings.ReplaceAll(tc.name, " ", "-"))
			proxy := hostileProxy(t, r.URL, "/chain/root-read", tc.lie)
			_, err := OrgRecover(ctx, relOptions(t, home), proxy, c.Org(), rec)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "org recover: ") {
				t.Fatalf("org recover through a relay that lies (%s): got %v, want %q", tc.name, err, tc.want)
			}
			if Exists(home) {
				t.Fatalf("a refused recovery left a device behind")
			}
			if got := chainLen(); got != before {
				t.Fatalf("chain length after a refused recovery: got %d, want %d", got, before)
			}
		})
	}

	d, err := OrgRecover(ctx, relOptions(t, filepath.Join(root, "recovered")), r.URL, c.Org(), rec)
	require.NoError(t, err, "org recover through an honest relay")
	defer d.Close()
	if got := chainLen(); got <= before {
		t.Fatalf("chain length after the recovery: got %d, want more than %d", got, before)
	}
}
