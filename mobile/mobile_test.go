package mobile

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/client"
	"github.com/fristed/fristed/server"
	"github.com/fristed/fristed/server/store/sqlite"
)

// startRelay runs a relay with SQLite on a loopback port for the test.
func startRelay(t *testing.T) (url, invite string) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "relay.db"))
	require.NoError(t, err)
	rl, err := server.New(context.Background(), server.Config{Dir: dir, Store: st})
	require.NoError(t, err)
	invite = "fri_mobile_test_invite"
	require.NoError(t, st.PutInvite(context.Background(), server.InviteHash(invite), time.Now().Add(time.Hour)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := server.NewHTTPServer(rl.Handler(), nil)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); rl.Close(); st.Close() })
	return "http://" + ln.Addr().String(), invite
}

func TestFacade(t *testing.T) {
	url, invite := startRelay(t)
	home := filepath.Join(t.TempDir(), "coord")
	const pass = "mobile test passphrase"
	opts := client.Options{Home: home, WorkFactor: 10, Passphrase: func(bool) ([]byte, error) { return []byte(pass), nil }}
	d, err := client.OrgInit(context.Background(), opts, client.OrgInitParams{RelayURL: url, Invite: invite, Name: "Enhet M",
		RecoveryOut: filepath.Join(t.TempDir(), "rec.age"), RecoveryPass: []byte("recovery")})
	require.NoError(t, err)
	_, err = d.ResidentAdd(context.Background(), client.ResidentAddParams{Pseudonym: "Mina", Arrived: "2026-11-01"})
	require.NoError(t, err)
	require.NoError(t, d.Close())

	_, err = Open(home, "wrong")
	if err == nil {
		t.Fatal("got nil error for a wrong passphrase, want one")
	}
	m, err := Open(home, pass)
	require.NoError(t, err)
	id, err := m.AddLog("Mina", "leisure", 40, "Walk in the park")
	require.NoError(t, err)
	if n, _ := m.Pending(); n != 1 {
		t.Errorf("got %d pending, want 1", n)
	}
	require.NoError(t, m.SetField("Mina", "language", "Dari"))
	if _, err := m.AddLog("Mina", "nonsense", 5, "x"); err == nil {
		t.Error("got nil error for a bad category, want one")
	}
	js, err := m.Sync()
	require.NoError(t, err)
	var res map[string]int
	require.NoError(t, json.Unmarshal([]byte(js), &res))
	if res["pending"] != 0 || res["pushed"] != 2 {
		t.Errorf("got sync %v, want pushed 2, pending 0", res)
	}
	list, err := m.ResidentsJSON()
	require.NoError(t, err)
	var rs []map[string]any
	require.NoError(t, json.Unmarshal([]byte(list), &rs))
	if len(rs) != 1 || rs[0]["pseudonym"] != "Mina" {
		t.Fatalf("got residents %s, want Mina alone", list)
	}
	show, err := m.ResidentJSON("Mina", false)
	require.NoError(t, err)
	var v struct {
		Language string `json:"language"`
		Log      []struct {
			ID string `json:"id"`
		} `json:"log"`
	}
	require.NoError(t, json.Unmarshal([]byte(show), &v))
	if v.Language != "Dari" || len(v.Log) != 1 || v.Log[0].ID != id {
		t.Errorf("got %s, want language Dari and log entry %s", show, id)
	}
	require.NoError(t, m.Close())
	if _, err := m.Pending(); err == nil {
		t.Error("got nil error after Close, want one")
	}
	if _, err := os.Stat(filepath.Join(home, "identity.age")); err != nil {
		t.Errorf("identity gone after close: %v", err)
	}
}
