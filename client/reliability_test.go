package client

// Helpers for the reliability tests (crash_test.go, stolen_test.go) and the
// unlock benchmark (bench_test.go): an in-process relay on loopback, devices
// made through the library with a cheap scrypt cost, and the real fristed
// binary, built once per test run, for the tests that kill it or inspect
// what it leaves on disk.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server"
	"github.com/fristed/fristed/server/store/sqlite"
)

// relWorkFactor is the scrypt cost (log2 N) of the identity files these
// tests write. age records it in the file, so the fristed binary unlocks
// them at this cost too, without a flag.
const relWorkFactor = 10

// relPassphrase is every test device's passphrase.
const relPassphrase = "reliability test passphrase: correct horse battery staple"

var (
	relRunDir  string // made and removed by TestMain: the built binary, the unlock fixture
	relBinOnce sync.Once
	relBinPath string
	relBinErr  error
)

// TestMain is the package's: it makes one directory for the whole run (the
// built binary, the unlock benchmark's fixture) and removes it at the end.
// Other per-run set-up belongs here too; a package has one TestMain.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fristed-client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	relRunDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fristedBinary builds client/cmd/fristed once per run (only when a test
// needs it, so benchmarks do not pay for it) and returns its path.
func fristedBinary(t testing.TB) string {
	t.Helper()
	relBinOnce.Do(func() {
		relBinPath = filepath.Join(relRunDir, "fristed")
		cmd := exec.Command("go", "build", "-o", relBinPath, "github.com/fristed/fristed/client/cmd/fristed")
		out, err := cmd.CombinedOutput()
		if err != nil {
			relBinErr = fmt.Errorf("go build fristed: %v\n%s", err, out)
		}
	})
	require.NoError(t, relBinErr)
	return relBinPath
}

// loopbackRelay is a relay on a loopback port with SQLite in a temp directory,
// started the way `fristed demo` starts its own.
type loopbackRelay struct {
	URL    string
	Invite string
	Dir    string        // the relay's data directory (its signing key)
	Store  *sqlite.Store // the relay's store, for benchmarks that fill it directly
	stop   func()
	once   sync.Once
}

func startLoopbackRelay(t testing.TB) *loopbackRelay { return startLoopbackRelayWith(t, nil) }

// startLoopbackRelayWith is startLoopbackRelay with the relay's
// configuration adjusted by adjust.
func startLoopbackRelayWith(t testing.TB, adjust func(*server.Config)) *loopbackRelay {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "relay.db"))
	require.NoError(t, err)
	ctx := context.Background()
	// The crash tests log in from one address many times a second, far
	// more than any office; the rate limits are not what they test.
	cfg := server.Config{Dir: dir, Store: st,
		Limits: server.Limits{AddrRate: 1e6, AddrBurst: 1e6, DeviceRate: 1e6, DeviceBurst: 1e6}}
	if adjust != nil {
		adjust(&cfg)
	}
	rl, err := server.New(ctx, cfg)
	if err != nil {
		st.Close()
	}
	require.NoError(t, err)
	inviteBytes := make([]byte, 24)
	rand.Read(inviteBytes)
	invite := "fri_test_" + base64.RawURLEncoding.EncodeToString(inviteBytes)
	require.NoError(t, st.PutInvite(ctx, server.InviteHash(invite), time.Now().Add(time.Hour)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := server.NewHTTPServer(rl.Handler(), nil)
	go srv.Serve(ln)
	r := &loopbackRelay{URL: "http://" + ln.Addr().String(), Invite: invite, Dir: dir, Store: st}
	r.stop = func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rl.Close()
		srv.Shutdown(c)
		st.Close()
	}
	t.Cleanup(r.Stop)
	return r
}

// Stop shuts the relay down; later requests fail as if it were unreachable.
func (r *loopbackRelay) Stop() { r.once.Do(r.stop) }

// relOptions are library options for a device in home, unlocked with
// relPassphrase and created at relWorkFactor.
func relOptions(t testing.TB, home string) Options {
	return Options{
		Home:       home,
		Passphrase: func(bool) ([]byte, error) { return []byte(relPassphrase), nil },
		WorkFactor: relWorkFactor,
		Notice:     func(s string) { t.Logf("notice [%s]: %s", filepath.Base(home), s) },
	}
}

// relNewOrg creates an org whose first coordinator lives in home and
// returns it open.
func relNewOrg(t testing.TB, r *loopbackRelay, home, orgName string) *Device {
	t.Helper()
	d, err := OrgInit(context.Background(), relOptions(t, home), OrgInitParams{RelayURL: r.URL, Invite: r.Invite,
		Name: orgName, RecoveryOut: filepath.Join(t.TempDir(), "recovery.age"), RecoveryPass: []byte("recovery " + relPassphrase)})
	require.NoError(t, err, "org init")
	return d
}

// relPassFile writes relPassphrase to a file for
// FRISTED_PASSPHRASE_FILE.
func relPassFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "passphrase")
	require.NoError(t, os.WriteFile(p, []byte(relPassphrase+"\n"), 0o600))
	return p
}

// relCLI runs the fristed binary for one device.
type relCLI struct {
	bin, home, passFile, tmp, dir string
}

// env is the whole environment of a fristed process: nothing of the test
// runner's own is inherited, so the process cannot write anywhere the test
// does not look.
func (c *relCLI) env() []string {
	return []string{
		"FRISTED_HOME=" + c.home,
		"FRISTED_PASSPHRASE_FILE=" + c.passFile,
		"TMPDIR=" + c.tmp,
		"HOME=" + c.dir,
		"PATH=" + os.Getenv("PATH"),
	}
}

func (c *relCLI) command(stdin string, args ...string) *exec.Cmd {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env()
	cmd.Dir = c.dir
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	return cmd
}

// run runs fristed to completion and returns stdout, stderr and the exit
// code.
func (c *relCLI) run(t testing.TB, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := c.command(stdin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	t.Logf("fristed %s: %v", strings.Join(args, " "), time.Since(began).Round(time.Millisecond))
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	require.NoError(t, err, "run fristed %s", strings.Join(args, " "))
	return "", "", -1
}

// mustRun runs fristed and requires it to succeed.
func (c *relCLI) mustRun(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	stdout, stderr, code := c.run(t, stdin, args...)
	require.Equal(t, 0, code, "fristed %s: exit code %d, stderr:\n%s", strings.Join(args, " "), code, stderr)
	return stdout
}

// relLastLine returns the last non-empty line of out: where the contract puts
// a printed id.
func relLastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// canaryForms returns s as it might appear if it leaked: raw, hex in both
// cases, and base64 (standard and URL alphabets) at each of the three
// alignments, with the characters that depend on neighbouring bytes
// trimmed. It mirrors what `fristed demo` looks for in the relay's files.
func canaryForms(s string) [][]byte {
	b := []byte(s)
	out := [][]byte{b, []byte(fmt.Sprintf("%x", b)), []byte(fmt.Sprintf("%X", b))}
	for shift := 0; shift < 3; shift++ {
		pre := append(make([]byte, shift), b...)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			e := enc.EncodeToString(pre)
			start, end := (shift*4+2)/3, len(e)-4
			if end-start >= 8 {
				out = append(out, []byte(e[start:end]))
			}
		}
	}
	return out
}

// relLeak is one canary found on disk.
type relLeak struct {
	path, canary, form string
}

// scanForCanaries reads every file under each dir and reports every
// canary found in any of its forms, and the number of bytes read.
func scanForCanaries(t testing.TB, dirs []string, canaries []string) ([]relLeak, int64) {
	t.Helper()
	type form struct {
		canary string
		b      []byte
	}
	var forms []form
	for _, c := range canaries {
		for _, f := range canaryForms(c) {
			forms = append(forms, form{c, f})
		}
	}
	var found []relLeak
	var total int64
	for _, dir := range dirs {
		err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			if !info.Mode().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			total += int64(len(b))
			for _, f := range forms {
				if bytes.Contains(b, f.b) {
					found = append(found, relLeak{path, f.canary, string(f.b)})
				}
			}
			return nil
		})
		require.NoError(t, err, "scan %s", dir)
	}
	return found, total
}
