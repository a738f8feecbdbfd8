package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "github.com/mattn/go-sqlite3"
	"github.com/stretchr/testify/require"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server/relaytest"
	"github.com/fristed/fristed/syncproto"
)

// relayBin is the fristed-relay binary built for these tests.
var relayBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fristed-relay-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	relayBin, err = relaytest.BuildRelay(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const postgresEnv = "FRISTED_TEST_POSTGRES_URL"

// env is one relay process on a fresh data directory, with a client.
type env struct {
	t        *testing.T
	data     string
	store    []string // store flags
	serve    []string // more serve flags
	pgBase   string   // base URL and schema, for postgres
	pgSchema string
	proc     *relaytest.Proc
	c        *relaytest.Client
	relayKey fcrypto.PublicKey
}

type envOpt func(*env)

// withPostgres runs the relay on a fresh schema of the test database, or
// skips the test when there is none.
func withPostgres(e *env) {
	base := os.Getenv(postgresEnv)
	if base == "" {
		e.t.Skip(postgresEnv + " not set: PostgreSQL relay test skipped (scripts/test.sh starts a server)")
	}
	schema := newSchema(e.t, base)
	e.pgBase, e.pgSchema = base, schema
	e.store = []string{"--store", "postgres", "--postgres-url", withSearchPath(e.t, base, schema)}
}

// withData shares a data directory (two relays on one database).
func withData(dir string) envOpt { return func(e *env) { e.data = dir } }

func withStore(flags []string) envOpt { return func(e *env) { e.store = flags } }

func startEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t}
	for _, o := range opts {
		o(e)
	}
	if e.data == "" {
		e.data = t.TempDir()
	}
	e.start()
	return e
}

func (e *env) start() {
	e.t.Helper()
	args := append([]string{"--listen", "127.0.0.1:0", "--data", e.data, "--insecure-loopback"}, e.store...)
	args = append(args, e.serve...)
	e.proc = relaytest.StartRelay(e.t, relayBin, args...)
	e.c = relaytest.NewClient(e.proc.URL, "")
	k, err := e.c.RelayKey()
	require.NoError(e.t, err, "relay key")
	e.relayKey = k
}

// restart stops the relay and starts it again on the same data.
func (e *env) restart() {
	e.t.Helper()
	e.proc.Stop(e.t)
	e.start()
}

// invite runs fristed-relay invite and returns the token on its last line.
func (e *env) invite() string {
	e.t.Helper()
	out, err := exec.Command(relayBin, append([]string{"invite", "--data", e.data}, e.store...)...).Output()
	require.NoError(e.t, err, "fristed-relay invite")
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return lines[len(lines)-1]
}

func newSchema(t *testing.T, base string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	require.NoError(t, err, "connect to "+postgresEnv)
	defer conn.Close(ctx)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema := "relay_test_" + hex.EncodeToString(b)
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err, "create schema")
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return schema
}

func withSearchPath(t *testing.T, base, schema string) string {
	t.Helper()
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		require.NoError(t, err)
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return base + " search_path=" + schema
}

// org is a tenant on the relay: a coordinator device logged in, and
// helpers to grow the org.
type org struct {
	t      *testing.T
	e      *env
	o      *relaytest.Org
	coord  *relaytest.Device
	cs     *relaytest.Session
	tenant syncproto.TenantID
}

func newOrg(t *testing.T, e *env) *org {
	t.Helper()
	o, err := relaytest.NewOrg(e.relayKey)
	require.NoError(t, err)
	coord, err := relaytest.NewDevice()
	require.NoError(t, err)
	del, err := o.Delegate(coord)
	require.NoError(t, err)
	tenant, err := e.c.CreateTenant(e.invite(), o.Genesis(), del)
	require.NoError(t, err, "create tenant")
	require.Equal(t, o.Tenant, tenant)
	cs, err := e.c.Login(tenant, coord, e.relayKey)
	require.NoError(t, err, "coordinator login")
	return &org{t: t, e: e, o: o, coord: coord, cs: cs, tenant: tenant}
}

// post posts statements as the coordinator.
func (g *org) post(raws ...[]byte) {
	g.t.Helper()
	for _, raw := range raws {
		_, err := g.cs.PostStatement(raw)
		require.NoError(g.t, err, "post statement")
	}
}

func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		require.NoError(t, err)
		return v
	}
}

// worker adds a worker with n enrolled devices, each logged in.
func (g *org) worker(n int) (syncproto.WorkerID, []*relaytest.Device, []*relaytest.Session) {
	g.t.Helper()
	w, raw, err := g.o.AddWorker(g.coord)
	require.NoError(g.t, err)
	g.post(raw)
	var devs []*relaytest.Device
	var sess []*relaytest.Session
	for i := 0; i < n; i++ {
		d := must[*relaytest.Device](g.t)(relaytest.NewDevice())
		g.post(must[[]byte](g.t)(g.o.Enrol(g.coord, d, w)))
		devs = append(devs, d)
	}
	for _, d := range devs {
		s, err := g.e.c.Login(g.tenant, d, g.e.relayKey)
		require.NoError(g.t, err, "login")
		sess = append(sess, s)
	}
	return w, devs, sess
}

// stream creates a resident stream assigned to workers, with a first
// epoch for the coordinator and devs.
func (g *org) stream(workers []syncproto.WorkerID, devs ...*relaytest.Device) (syncproto.StreamID, syncproto.Epoch) {
	g.t.Helper()
	s, raw, err := g.o.CreateStream(g.coord, syncproto.StreamResident)
	require.NoError(g.t, err)
	g.post(raw)
	for _, w := range workers {
		g.post(must[[]byte](g.t)(g.o.Assign(g.coord, s, w)))
	}
	ids := []syncproto.DeviceID{g.coord.ID}
	for _, d := range devs {
		ids = append(ids, d.ID)
	}
	e, _, raw, err := g.o.StartEpoch(g.coord, s, ids...)
	require.NoError(g.t, err)
	g.post(raw)
	return s, e
}

// dbCounts counts the rows of every table of a SQLite relay database.
func dbCounts(t *testing.T, dir string) map[string]int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "relay.db")+"?mode=ro&_busy_timeout=5000")
	require.NoError(t, err)
	defer db.Close()
	out := map[string]int{}
	for _, tbl := range []string{"tenants", "statements", "streams", "batches", "deltas", "snapshots", "secrets", "enrolments", "invites", "token_versions"} {
		var n int
		require.NoError(t, db.QueryRow("SELECT count(*) FROM "+tbl).Scan(&n), "count "+tbl)
		out[tbl] = n
	}
	return out
}

// canaryHits scans everything the relay kept, logged or answered.
func canaryHits(t *testing.T, e *env, canaries [][]byte) []string {
	t.Helper()
	hits, err := relaytest.FindInDir(e.data, canaries)
	require.NoError(t, err)
	for _, h := range relaytest.Find(e.proc.Stderr(), canaries) {
		hits = append(hits, "log: "+h)
	}
	for _, h := range relaytest.Find(e.proc.Stdout(), canaries) {
		hits = append(hits, "stdout: "+h)
	}
	for i, b := range e.c.Bodies() {
		for _, h := range relaytest.Find(b, canaries) {
			hits = append(hits, fmt.Sprintf("response %d: %s", i, h))
		}
	}
	return hits
}

// noClientAddress checks the relay never wrote a client address: its log
// has no loopback address at all, and stdout names one only as the
// address it listens on.
func noClientAddress(t *testing.T, e *env) {
	t.Helper()
	if bytes.Contains(e.proc.Stderr(), []byte("127.0.0.1")) {
		t.Errorf("relay log holds 127.0.0.1:\n%s", e.proc.Stderr())
	}
	for _, line := range strings.Split(string(e.proc.Stdout()), "\n") {
		if strings.Contains(line, "127.0.0.1") && !strings.HasPrefix(line, "listening on ") && !strings.HasPrefix(line, "metrics on ") {
			t.Errorf("relay stdout names 127.0.0.1 outside its listen lines: %q", line)
		}
	}
}
