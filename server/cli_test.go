package server_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/relaytest"
)

// TestInviteWhileServing: invite works on the data directory of a running
// relay (both open the SQLite database), and the running relay accepts the
// token once.
func TestInviteWhileServing(t *testing.T) {
	e := startEnv(t)
	tok := e.invite()
	require.Regexp(t, `^fri_[A-Za-z0-9_-]{43}$`, tok)
	o, err := relaytest.NewOrg(e.relayKey)
	require.NoError(t, err)
	_, err = e.c.CreateTenant(tok, o.Genesis())
	require.NoError(t, err, "create a tenant with an invite made while serving")
	o2, err := relaytest.NewOrg(e.relayKey)
	require.NoError(t, err)
	_, err = e.c.CreateTenant(tok, o2.Genesis())
	require.Equal(t, "unauthorized", string(relaytest.CodeOf(err)), "second use of an invite")
	got, err := e.c.LookupOrg(o.Fingerprint())
	require.NoError(t, err)
	require.Equal(t, o.Tenant, got)
	db, err := os.ReadFile(filepath.Join(e.data, "relay.db"))
	require.NoError(t, err)
	wal, _ := os.ReadFile(filepath.Join(e.data, "relay.db-wal"))
	if hits := relaytest.Find(append(db, wal...), [][]byte{[]byte(tok)}); len(hits) > 0 {
		t.Errorf("invite token stored in clear: %v", hits)
	}
}

// TestTLSPin: without TLS flags the relay makes a self-signed certificate
// in its data directory, prints its pin, keeps it across restarts, and a
// client pinning it connects while one pinning another key cannot.
func TestTLSPin(t *testing.T) {
	dir := t.TempDir()
	p := relaytest.StartRelay(t, relayBin, "--listen", "127.0.0.1:0", "--data", dir)
	require.True(t, strings.HasPrefix(p.URL, "https://127.0.0.1:"), "url %q", p.URL)
	require.Regexp(t, `^sha256/[A-Za-z0-9+/]{43}=$`, p.Pin)
	require.FileExists(t, filepath.Join(dir, "tls-cert.pem"))
	fi, err := os.Stat(filepath.Join(dir, "tls-key.pem"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "tls key mode")

	c := relaytest.NewClient(p.URL, p.Pin)
	resp, err := c.Do(http.MethodGet, "/healthz", nil, nil)
	require.NoError(t, err, "pinned client")
	require.Equal(t, 200, resp.Status)
	_, err = c.RelayKey()
	require.NoError(t, err)

	wrong := relaytest.NewClient(p.URL, "sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	_, err = wrong.Do(http.MethodGet, "/healthz", nil, nil)
	require.Error(t, err, "client pinning another key")

	pin := p.Pin
	p.Stop(t)
	p = relaytest.StartRelay(t, relayBin, "--listen", "127.0.0.1:0", "--data", dir)
	require.Equal(t, pin, p.Pin, "pin after restart")
}

// TestMetrics: the metrics listener serves the Prometheus text format
// with no tenant, device or stream ids in it.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	p := relaytest.StartRelay(t, relayBin, "--listen", "127.0.0.1:0", "--data", dir, "--insecure-loopback", "--metrics-listen", "127.0.0.1:0")
	require.NotEmpty(t, p.Metrics)
	e := &env{t: t, data: dir, proc: p, c: relaytest.NewClient(p.URL, "")}
	k, err := e.c.RelayKey()
	require.NoError(t, err)
	e.relayKey = k
	g := newOrg(t, e)
	w, devs, sess := g.worker(1)
	s, ep := g.stream(nil, devs...)
	_ = w
	_, raw, err := (&relaytest.Author{Dev: devs[0], Stream: s}).Batch(g.o, ep, g.o.Head(), []byte("m"))
	require.NoError(t, err)
	_, _, err = sess[0].Push(s, raw)
	require.NoError(t, err)
	_, _, err = sess[0].Pull(s, 0, 10, 0)
	require.NoError(t, err)

	resp, err := http.Get(p.Metrics)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	m := string(body)
	for _, want := range []string{
		`fristed_relay_requests_total{route="/v1/t/:tenant/streams/:stream/batches",method="POST",class="2xx"} 1`,
		"fristed_relay_batches_accepted_total 1",
		"# TYPE fristed_relay_request_duration_seconds histogram",
	} {
		require.Contains(t, m, want)
	}
	for _, id := range []string{g.tenant.String(), s.String(), devs[0].ID.String(), g.coord.ID.String()} {
		require.NotContains(t, m, id)
	}
	require.NotContains(t, m, "127.0.0.1")
}

// TestGracefulShutdown: SIGTERM ends a waiting long-poll with an answer at
// once and the relay exits 0.
func TestGracefulShutdown(t *testing.T) {
	e := startEnv(t)
	g := newOrg(t, e)
	_, devs, sess := g.worker(1)
	s, _ := g.stream(nil, devs...)
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, _, err := sess[0].Pull(s, 0, 10, 50*time.Second)
		done <- result{len(p), err}
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	e.proc.Stop(t) // fails the test on a non-zero exit
	select {
	case r := <-done:
		require.NoError(t, r.err, "long-poll during shutdown")
		require.Zero(t, r.n)
	case <-time.After(10 * time.Second):
		t.Fatal("long-poll still waiting after shutdown")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	require.Contains(t, string(e.proc.Stderr()), `"msg":"relay stopped"`)
}
