package client

// The drill's environment: the real fristed and fristed-relay binaries, a
// relay process per scenario on a loopback port, devices whose identity
// files are made through the library at a low scrypt cost (age records
// the cost in the file, so the binary unlocks them cheaply too), and
// read-only access to the relay's SQLite file, where the test looks at
// what the relay holds as an outsider with a copy of its disk would.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/stretchr/testify/require"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server/relaytest"
	"github.com/fristed/fristed/syncproto"
)

const (
	// drillWorkFactor is the scrypt cost (log2 N) of every identity and
	// recovery file the drill makes.
	drillWorkFactor = 10
	drillPassphrase = "drill passphrase: lost laptops happen"
	drillRecovery   = "drill recovery passphrase: kept in the safe"
)

// drillBins are the built binaries.
type drillBins struct{ fristed, relay string }

// buildDrillBinaries builds both binaries into dir.
func buildDrillBinaries(t *testing.T, dir string) drillBins {
	t.Helper()
	b := drillBins{fristed: filepath.Join(dir, "fristed")}
	cmd := exec.Command("go", "build", "-o", b.fristed, "github.com/fristed/fristed/client/cmd/fristed")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build fristed:\n%s", out)
	b.relay, err = relaytest.BuildRelay(dir)
	require.NoError(t, err)
	return b
}

// drillOrg is one organisation on its own relay process.
type drillOrg struct {
	t        *testing.T
	bins     drillBins
	dir      string // everything of this scenario lives under it
	data     string // the relay's data directory
	relay    *relaytest.Proc
	url      string // the URL devices use (the relay, or a proxy before it)
	passFile string
	recovery string // the recovery file
	recPass  string // file holding its passphrase
	org      string // org fingerprint
	fp       fcrypto.Fingerprint
	coord    string // home of the first coordinator laptop
}

// newDrillOrg starts a relay and creates an org whose first coordinator
// laptop lives in the home "coord". If front is set, devices reach the
// relay through the URL it returns (a proxy), from org init on.
func newDrillOrg(t *testing.T, bins drillBins, front func(relayURL string) string) *drillOrg {
	t.Helper()
	o := &drillOrg{t: t, bins: bins, dir: t.TempDir()}
	o.data = filepath.Join(o.dir, "relay-data")
	require.NoError(t, os.Mkdir(o.data, 0o700))
	o.relay = relaytest.StartRelay(t, bins.relay, "--listen", "127.0.0.1:0", "--data", o.data, "--insecure-loopback")
	o.url = o.relay.URL
	if front != nil {
		o.url = front(o.relay.URL)
	}
	out, err := exec.Command(bins.relay, "invite", "--data", o.data).CombinedOutput()
	require.NoError(t, err, "fristed-relay invite:\n%s", out)
	invite := drillLastLine(string(out))

	o.passFile = filepath.Join(o.dir, "passphrase")
	require.NoError(t, os.WriteFile(o.passFile, []byte(drillPassphrase+"\n"), 0o600))
	o.recPass = filepath.Join(o.dir, "recovery-passphrase")
	require.NoError(t, os.WriteFile(o.recPass, []byte(drillRecovery+"\n"), 0o600))
	o.recovery = filepath.Join(o.dir, "recovery.age")
	o.coord = o.home("coord")
	ctx := context.Background()
	d, err := OrgInit(ctx, o.options(o.coord), OrgInitParams{RelayURL: o.url, Invite: invite, Name: "Enhet Drill",
		RecoveryOut: o.recovery, RecoveryPass: []byte(drillRecovery)})
	require.NoError(t, err, "org init")
	o.fp = d.Org()
	o.org = o.fp.String()
	require.NoError(t, d.Close())
	return o
}

// as returns the org for use in a subtest.
func (o *drillOrg) as(t *testing.T) *drillOrg {
	c := *o
	c.t = t
	return &c
}

// home returns the FRISTED_HOME of a laptop.
func (o *drillOrg) home(name string) string { return filepath.Join(o.dir, "laptops", name) }

func (o *drillOrg) options(home string) Options {
	return Options{
		Home:       home,
		Passphrase: func(bool) ([]byte, error) { return []byte(drillPassphrase), nil },
		WorkFactor: drillWorkFactor,
		Notice:     func(s string) { o.t.Logf("notice [%s]: %s", filepath.Base(home), s) },
	}
}

// open unlocks a laptop through the library; the caller closes it.
func (o *drillOrg) open(home string) *Device {
	o.t.Helper()
	d, err := Open(o.options(home))
	require.NoError(o.t, err, "open %s", filepath.Base(home))
	return d
}

// with runs fn on a laptop opened through the library.
func (o *drillOrg) with(home string, fn func(d *Device)) {
	o.t.Helper()
	d := o.open(home)
	defer func() { require.NoError(o.t, d.Close()) }()
	fn(d)
}

// run runs the fristed binary as the laptop in home.
func (o *drillOrg) run(home string, stdin string, args ...string) (stdout, stderr string, code int) {
	o.t.Helper()
	cmd := exec.Command(o.bins.fristed, args...)
	tmp := filepath.Join(o.dir, "tmp")
	os.MkdirAll(tmp, 0o700)
	cmd.Env = []string{"FRISTED_HOME=" + home, "FRISTED_PASSPHRASE_FILE=" + o.passFile,
		"HOME=" + o.dir, "TMPDIR=" + tmp, "PATH=" + os.Getenv("PATH")}
	cmd.Dir = o.dir
	cmd.Stdin = strings.NewReader(stdin)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		o.t.Fatalf("run fristed %s: %v", strings.Join(args, " "), err)
	}
	return so.String(), se.String(), code
}

// must runs fristed and requires success; it returns stdout.
func (o *drillOrg) must(home string, args ...string) string {
	o.t.Helper()
	so, se, code := o.run(home, "", args...)
	require.Equal(o.t, 0, code, "fristed %s [%s]: stderr:\n%s", strings.Join(args, " "), filepath.Base(home), se)
	return so
}

// fail runs fristed, requires a non-zero exit with exactly one line on
// stderr, the contract's "fristed: error: ...", and returns that line.
func (o *drillOrg) fail(home string, args ...string) string {
	o.t.Helper()
	so, se, code := o.run(home, "", args...)
	require.NotEqual(o.t, 0, code, "fristed %s [%s] succeeded, stdout:\n%s", strings.Join(args, " "), filepath.Base(home), so)
	line := strings.TrimRight(se, "\n")
	require.NotContains(o.t, line, "\n", "fristed %s: want one line on stderr, got:\n%s", strings.Join(args, " "), se)
	require.True(o.t, strings.HasPrefix(line, "fristed: error: "), "fristed %s: stderr %q", strings.Join(args, " "), line)
	return line
}

// recoveryFlags are the flags that hand a command the recovery file.
func (o *drillOrg) recoveryFlags() []string {
	return []string{"--recovery", o.recovery, "--recovery-passphrase-file", o.recPass}
}

// enrol makes a laptop through the library (device init, at the drill's
// scrypt cost), has the coordinator in approver approve it with the CLI
// (as a device of worker, or as a coordinator if worker is ""), and runs
// the laptop's first sync through the library, which turns it from pending
// into an enrolled device and re-encrypts its identity file. It returns
// the device id.
func (o *drillOrg) enrol(approver, home, name, worker string) syncproto.DeviceID {
	o.t.Helper()
	ctx := context.Background()
	d, code, err := DeviceInit(ctx, o.options(home), DeviceInitParams{RelayURL: o.url, Org: o.fp, Name: name})
	require.NoError(o.t, err, "device init %s", name)
	id := d.ID()
	require.NoError(o.t, d.Close())
	args := []string{"device", "approve", code}
	if worker == "" {
		args = append(append(args, "--coordinator"), o.recoveryFlags()...)
	} else {
		args = append(args, "--worker", worker)
	}
	o.must(approver, args...)
	o.with(home, func(d *Device) {
		_, err := d.Sync(ctx)
		require.NoError(o.t, err, "first sync of %s", name)
		want := RoleWorker
		if worker == "" {
			want = RoleCoordinator
		}
		require.Equal(o.t, want, d.Role())
	})
	return id
}

// residentAdd adds a resident with the CLI and returns its stream id.
func (o *drillOrg) residentAdd(pseudonym string) syncproto.StreamID {
	o.t.Helper()
	out := o.must(o.coord, "resident", "add", "--pseudonym", pseudonym, "--arrived", "2026-11-01", "--unit", "A")
	sid, err := syncproto.ParseStreamID(drillLastLine(out))
	require.NoError(o.t, err, "resident add printed %q", out)
	return sid
}

// drillShowJSON is `resident show --json` as far as the drill reads it.
type drillShowJSON struct {
	Log []struct {
		Text   string `json:"text"`
		Author string `json:"author"`
	} `json:"log"`
}

// logTexts returns the texts of a resident's log as the laptop sees it.
func (o *drillOrg) logTexts(home, resident string) []string {
	o.t.Helper()
	var v drillShowJSON
	require.NoError(o.t, json.Unmarshal([]byte(o.must(home, "resident", "show", resident, "--json")), &v))
	var out []string
	for _, e := range v.Log {
		out = append(out, e.Text)
	}
	return out
}

// relayDB opens the relay's database read-only, as the relay runs; the
// caller closes it.
func (o *drillOrg) relayDB() *sql.DB {
	o.t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(o.data, "relay.db")+"?mode=ro&_busy_timeout=5000")
	require.NoError(o.t, err)
	return db
}

// chainRaws returns the tenant's admin chain as the relay stores it.
func (o *drillOrg) chainRaws() [][]byte {
	o.t.Helper()
	db := o.relayDB()
	defer db.Close()
	rows, err := db.Query(`SELECT raw FROM statements ORDER BY pos`)
	require.NoError(o.t, err)
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var raw []byte
		require.NoError(o.t, rows.Scan(&raw))
		out = append(out, raw)
	}
	require.NoError(o.t, rows.Err())
	return out
}

// chain verifies the relay's chain from genesis against the org
// fingerprint, as every device does.
func (o *drillOrg) chain() *syncproto.Chain {
	o.t.Helper()
	c := syncproto.NewChain(o.fp)
	for i, raw := range o.chainRaws() {
		_, err := c.Append(raw)
		require.NoError(o.t, err, "relay chain statement %d", i)
	}
	return c
}

// head returns the relay's chain head.
func (o *drillOrg) head() syncproto.Head {
	o.t.Helper()
	h, ok := o.chain().Head()
	require.True(o.t, ok)
	return h
}

// drillBatch is one batch as the relay stores it.
type drillBatch struct {
	Stream     syncproto.StreamID
	Seq        syncproto.Seq
	ReceivedMS int64
	Batch      *syncproto.Batch
}

// batches returns every batch the relay holds, in stream and seq order.
func (o *drillOrg) batches() []drillBatch {
	o.t.Helper()
	db := o.relayDB()
	defer db.Close()
	rows, err := db.Query(`SELECT stream, seq, received_ms, raw FROM batches ORDER BY stream, seq`)
	require.NoError(o.t, err)
	defer rows.Close()
	var out []drillBatch
	for rows.Next() {
		var s, raw []byte
		var b drillBatch
		require.NoError(o.t, rows.Scan(&s, &b.Seq, &b.ReceivedMS, &raw))
		copy(b.Stream[:], s)
		b.Batch, err = syncproto.UnmarshalBatch(raw)
		require.NoError(o.t, err)
		out = append(out, b)
	}
	require.NoError(o.t, rows.Err())
	return out
}

// streamHeads returns each stream's last sequence number on the relay.
func (o *drillOrg) streamHeads() map[syncproto.StreamID]syncproto.Seq {
	heads := map[syncproto.StreamID]syncproto.Seq{}
	for _, b := range o.batches() {
		if b.Seq > heads[b.Stream] {
			heads[b.Stream] = b.Seq
		}
	}
	return heads
}

// drillEpochKeys returns every epoch key a replica holds, per stream.
func drillEpochKeys(t *testing.T, d *Device) map[syncproto.StreamID]map[syncproto.Epoch]*fcrypto.Key {
	t.Helper()
	rows, err := d.db().Query(`SELECT stream, epoch, key FROM local_keys`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[syncproto.StreamID]map[syncproto.Epoch]*fcrypto.Key{}
	for rows.Next() {
		var s, kb []byte
		var e int64
		require.NoError(t, rows.Scan(&s, &e, &kb))
		var sid syncproto.StreamID
		copy(sid[:], s)
		k, err := fcrypto.KeyFromBytes(kb)
		require.NoError(t, err)
		if out[sid] == nil {
			out[sid] = map[syncproto.Epoch]*fcrypto.Key{}
		}
		out[sid][syncproto.Epoch(e)] = k
	}
	require.NoError(t, rows.Err())
	return out
}

// drillOpenDelta tries to decrypt one sealed delta of b with every key in keys,
// of any stream and epoch, as a thief with those keys would. It returns the
// delta if any key opens it.
func drillOpenDelta(b *syncproto.Batch, sd syncproto.SealedDelta, keys map[syncproto.StreamID]map[syncproto.Epoch]*fcrypto.Key) (*syncproto.Delta, bool) {
	for _, byEpoch := range keys {
		for _, k := range byEpoch {
			plain, err := fcrypto.Open(k, syncproto.DeltaAD(b.Tenant, b.Stream, b.Epoch, sd.ID), sd.Ciphertext)
			if err != nil {
				continue
			}
			dl, err := syncproto.UnmarshalDelta(plain)
			if err != nil {
				continue
			}
			return dl, true
		}
	}
	return nil, false
}

// drillCopyDir copies a laptop's home, as a thief imaging its disk would.
func drillCopyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if e.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o600)
	})
	require.NoError(t, err)
}

// drillHomeFiles lists the files in a laptop's home, relative to it.
func drillHomeFiles(t *testing.T, home string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(home, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			rel, _ := filepath.Rel(home, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// deviceList is `device list --json` on a coordinator laptop.
func (o *drillOrg) deviceList(home string) []DeviceInfo {
	o.t.Helper()
	var list []DeviceInfo
	require.NoError(o.t, json.Unmarshal([]byte(o.must(home, "device", "list", "--json")), &list))
	return list
}

// drillElapsed logs how long a step took, for the report.
func drillElapsed(t *testing.T, what string, start time.Time) {
	t.Logf("%s: %s", what, time.Since(start).Round(time.Millisecond))
}

// drillLastLine is the last non-empty line of out: where the contract puts
// a printed id, code or fingerprint.
func drillLastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
