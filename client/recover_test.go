package client

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/syncproto"
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

// TestRecoveryFileRemembersRoot: each statement the root signs is recorded
// in the recovery file, and org recover refuses a chain without it, so a
// relay cannot roll the chain back to before a coordinator's revocation
// (where the lost laptop is still a coordinator) even when what it shows
// verifies. A file that cannot be rewritten only costs a notice.
func TestRecoveryFileRemembersRoot(t *testing.T) {
	ctx := context.Background()
	r := startLoopbackRelay(t)
	root := t.TempDir()
	recPath, recPass := filepath.Join(root, "recovery.age"), []byte("recovery passphrase")
	notices := &noticeLog{}
	copts := relOptions(t, filepath.Join(root, "coordinator"))
	copts.Notice = notices.add
	c, err := OrgInit(ctx, copts, OrgInitParams{RelayURL: r.URL, Invite: r.Invite,
		Name: "Enhet L", RecoveryOut: recPath, RecoveryPass: recPass})
	require.NoError(t, err)
	defer c.Close()
	rec, err := OpenRecovery(recPath, recPass)
	require.NoError(t, err)
	require.Nil(t, rec.meta.LastRoot, "a new recovery file names no statement")

	c2, code, err := DeviceInit(ctx, relOptions(t, filepath.Join(root, "coordinator2")), DeviceInitParams{RelayURL: r.URL, Org: c.Org(), Name: "coord-2"})
	require.NoError(t, err)
	require.NoError(t, c2.Close())
	lost, err := c.Approve(ctx, ApproveParams{Code: code, Coordinator: true, Recovery: rec})
	require.NoError(t, err)
	_, err = c.Revoke(ctx, RevokeParams{Device: lost.String(), Recovery: rec})
	require.NoError(t, err)
	require.NoError(t, c.refreshChain(ctx))
	var revokedAt syncproto.ChainPos
	for pos := 0; pos < c.chain.Len(); pos++ {
		if rv, ok := c.chain.Statement(syncproto.ChainPos(pos)).Body.(*syncproto.DeviceRevoked); ok && rv.Device == lost {
			revokedAt = syncproto.ChainPos(pos)
		}
	}
	require.NotZero(t, revokedAt)
	rec, err = OpenRecovery(recPath, recPass)
	require.NoError(t, err)
	if lr := rec.meta.LastRoot; lr == nil || lr.Pos != uint64(revokedAt) || lr.Hash != mustHash(c.chain, revokedAt).String() {
		t.Fatalf("recovery file's last root statement: got %+v, want the revocation at %d", lr, revokedAt)
	}
	before := c.chain.Len()

	// The relay shows the chain as it was before the revocation: every
	// statement verifies, but the revocation is gone.
	rollback := hostileProxy(t, r.URL, "/chain/root-read", func(m map[string]any) {
		if ss, _ := m["statements"].([]any); len(ss) > int(revokedAt) {
			m["statements"], m["head"] = ss[:revokedAt], int(revokedAt)-1
		}
	})
	home := filepath.Join(root, "rolled-back")
	_, err = OrgRecover(ctx, relOptions(t, home), rollback, c.Org(), rec)
	if !errors.Is(err, syncproto.ErrRollback) || !strings.Contains(err.Error(), "lacks the root statement this recovery file signed") {
		t.Fatalf("org recover through a relay that rolled the chain back: got %v, want ErrRollback", err)
	}
	if Exists(home) {
		t.Fatalf("a refused recovery left a device behind")
	}
	require.NoError(t, c.refreshChain(ctx))
	require.Equal(t, before, c.chain.Len(), "chain after a refused recovery")

	// Through the honest relay it goes through and is remembered in turn.
	d, err := OrgRecover(ctx, relOptions(t, filepath.Join(root, "recovered")), r.URL, c.Org(), rec)
	require.NoError(t, err)
	defer d.Close()
	rec, err = OpenRecovery(recPath, recPass)
	require.NoError(t, err)
	if lr := rec.meta.LastRoot; lr == nil || lr.Pos <= uint64(revokedAt) {
		t.Fatalf("recovery file after org recover: got %+v, want the new delegation", lr)
	}

	// A recovery file that cannot be rewritten: the statement stands, a
	// notice says what is lost.
	blocker := filepath.Join(root, "not-a-dir")
	require.NoError(t, os.WriteFile(blocker, nil, 0o600))
	rec.path = filepath.Join(blocker, "recovery.age")
	c3, code, err := DeviceInit(ctx, relOptions(t, filepath.Join(root, "coordinator3")), DeviceInitParams{RelayURL: r.URL, Org: c.Org(), Name: "coord-3"})
	require.NoError(t, err)
	require.NoError(t, c3.Close())
	_, err = c.Approve(ctx, ApproveParams{Code: code, Coordinator: true, Recovery: rec})
	require.NoError(t, err)
	if got := notices.matching("could not record chain position"); len(got) != 1 {
		t.Fatalf("notices after a failed rewrite of the recovery file: got %q, want one", notices.all)
	}
}

// TestOpenRecoveryMalformedLastRoot: a recovery file whose recorded root
// statement does not parse is refused, not trusted or ignored.
func TestOpenRecoveryMalformedLastRoot(t *testing.T) {
	root, err := fcrypto.GenerateSigningKey()
	require.NoError(t, err)
	meta := `{"version":1,"tenant":"t","org":"o","relay_url":"u","relay_pin":"","relay_key":"k","last_root":{"pos":3,"hash":"not-a-hash"}}`
	enc, err := fcrypto.EncryptKeyFile(&fcrypto.KeyFile{Kind: fcrypto.KindRoot, Sign: root, Meta: []byte(meta)}, []byte("pass"), relWorkFactor)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "recovery.age")
	require.NoError(t, os.WriteFile(path, enc, 0o600))
	if _, err := OpenRecovery(path, []byte("pass")); err == nil || err.Error() != "open recovery file: malformed" {
		t.Fatalf("open a recovery file with a malformed last root: got %v, want it refused", err)
	}
}
