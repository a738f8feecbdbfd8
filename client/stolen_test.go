package client

// The stolen laptop (DESIGN-NOTES property 6): with the app closed, nothing
// on disk reveals a case without the passphrase, and a wrong passphrase
// changes nothing.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	fcrypto "github.com/fristed/fristed/crypto"
)

// Canaries: each is set in one place of a case or the org and must never
// appear on the laptop's disk in any encoding.
const (
	canaryOrg      = "Krisesenteret Nordlys canary-org"
	canaryWorker   = "Ingrid Canaryworker Solberg"
	canaryDevice   = "ingrids-canary-laptop"
	canaryPseudo   = "Pseudonym Canary Mina"
	canaryAddress  = "Fjellveien 17B canary-address, 2. etasje"
	canaryLegal    = "Amina Canarylegal Rahimi"
	canaryLog      = "Talked about safe routes to school canary-log"
	canaryJournal  = "Journal frame canary-unflushed entry"
	wrongPassword  = "not the passphrase"
	stolenArrived  = "2026-11-01"
	stolenCategory = "safety"
)

// TestStolenLaptop sets up an org, a worker laptop and a resident whose
// legal name, secret address and log text are canaries, sets them through
// the library, the CLI's arguments and FIELD=@- on stdin, syncs both ways
// so each replica holds everything, closes every device, and then looks
// for each canary, raw, hex or base64, in FRISTED_HOME, TMPDIR and the
// working directory of every process.
func TestStolenLaptop(t *testing.T) {
	bin := fristedBinary(t)
	ctx := context.Background()
	root := t.TempDir()
	tmp := filepath.Join(root, "tmp")
	cwd := filepath.Join(root, "cwd")
	require.NoError(t, os.Mkdir(tmp, 0o700))
	require.NoError(t, os.Mkdir(cwd, 0o700))
	// The library code in this process uses the same TMPDIR as the CLI.
	t.Setenv("TMPDIR", tmp)
	relay := startLoopbackRelay(t)
	pass := relPassFile(t)
	coordHome := filepath.Join(root, "coordinator")
	workerHome := filepath.Join(root, "worker")
	coord := &relCLI{bin: bin, home: coordHome, passFile: pass, tmp: tmp, dir: cwd}
	worker := &relCLI{bin: bin, home: workerHome, passFile: pass, tmp: tmp, dir: cwd}

	// Devices are created through the library at a cheap scrypt cost;
	// everything else goes through the binary where it can.
	d := relNewOrg(t, relay, coordHome, canaryOrg)
	org := d.Org()
	require.NoError(t, d.Close())
	coord.mustRun(t, "", "worker", "add", canaryWorker)
	w, code, err := DeviceInit(ctx, relOptions(t, workerHome), DeviceInitParams{RelayURL: relay.URL, Org: org, Name: canaryDevice})
	require.NoError(t, err, "device init")
	require.NoError(t, w.Close())
	coord.mustRun(t, "", "device", "approve", code, "--worker", canaryWorker)
	// The first sync learns of the approval and re-encrypts the identity
	// file with the new role, at the opener's scrypt cost: through the
	// library, so the file keeps the cheap one.
	w, err = Open(relOptions(t, workerHome))
	require.NoError(t, err)
	_, err = w.Sync(ctx)
	require.NoError(t, err, "worker's first sync")
	require.NoError(t, w.Close())

	resident := relLastLine(coord.mustRun(t, "", "resident", "add", "--pseudonym", canaryPseudo, "--arrived", stolenArrived))
	coord.mustRun(t, canaryAddress+"\n", "resident", "set", resident, "secret_address=@-")
	d, err = Open(relOptions(t, coordHome))
	require.NoError(t, err)
	require.NoError(t, d.ResidentSet(resident, map[string]string{"legal_name": canaryLegal, "address_code": "6"}))
	require.NoError(t, d.Close())
	coord.mustRun(t, "", "assign", resident, "--worker", canaryWorker)
	coord.mustRun(t, "", "sync")
	worker.mustRun(t, "", "sync")
	worker.mustRun(t, canaryLog+"\n", "log", "add", resident, "--category", stolenCategory, "--minutes", "30", "--text", "@-")
	worker.mustRun(t, "", "sync")
	coord.mustRun(t, "", "sync")

	// Positive control: the canaries really are in both replicas, so a
	// clean scan below means they are encrypted, not missing.
	for _, c := range []*relCLI{coord, worker} {
		shown := c.mustRun(t, "", "resident", "show", resident, "--reveal", "--json")
		for _, want := range []string{canaryPseudo, canaryAddress, canaryLegal, canaryLog} {
			if !strings.Contains(shown, want) {
				t.Errorf("%s: resident show --reveal: %q missing, want every canary in the replica", filepath.Base(c.home), want)
			}
		}
	}
	if workers := coord.mustRun(t, "", "worker", "list", "--json"); !strings.Contains(workers, canaryWorker) {
		t.Errorf("coordinator: worker list: got %s, want %q in it", workers, canaryWorker)
	}
	d, err = Open(relOptions(t, workerHome))
	require.NoError(t, err)
	if got := d.OrgName(); got != canaryOrg {
		t.Errorf("worker: org name: got %q, want %q", got, canaryOrg)
	}
	require.NoError(t, d.Close())
	relay.Stop()

	// The laptop is stolen with the app closed.
	canaries := []string{canaryOrg, canaryWorker, canaryDevice, canaryPseudo, canaryAddress, canaryLegal, canaryLog}
	dirs := []string{coordHome, workerHome, tmp, cwd}
	leaks, scanned := scanForCanaries(t, dirs, canaries)
	for _, l := range leaks {
		t.Errorf("%s: got canary %q (as %q) on disk, want none", l.path, l.canary, l.form)
	}
	t.Logf("scanned %d bytes in FRISTED_HOME (two devices), TMPDIR and the working directory for %d canaries in %d forms each: %d found",
		scanned, len(canaries), len(canaryForms(canaryLog)), len(leaks))
	// Nothing needs a temp file: the replica and SQLite's temp store live
	// in memory.
	for _, dir := range []string{tmp, cwd} {
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range entries {
			t.Errorf("%s: got %s, want nothing written here", dir, e.Name())
		}
	}

	// Stolen after a power cut, with an edit only in the journal: the
	// frame is sealed too. The copy is what the disk holds before Close.
	d, err = Open(relOptions(t, workerHome))
	require.NoError(t, err)
	_, err = d.LogAdd(resident, "practical", 5, canaryJournal)
	require.NoError(t, err)
	cut := filepath.Join(root, "power-cut")
	require.NoError(t, relCopyTree(workerHome, cut))
	require.NoError(t, d.Close())
	journal, err := os.ReadFile(filepath.Join(cut, vaultDir, "journal"))
	require.NoError(t, err)
	if len(journal) < len(canaryJournal) {
		t.Fatalf("journal of the power-cut copy: got %d bytes, want the unfolded frame in it", len(journal))
	}
	leaks, _ = scanForCanaries(t, []string{cut, tmp, cwd}, append(canaries, canaryJournal))
	for _, l := range leaks {
		t.Errorf("after a power cut: %s: got canary %q (as %q) on disk, want none", l.path, l.canary, l.form)
	}
	// And the copy does hold the entry, for the right passphrase.
	c, err := Open(relOptions(t, cut))
	require.NoError(t, err)
	v, err := c.ResidentShow(resident, false)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	found := false
	for _, e := range v.Log {
		found = found || e.Text == canaryJournal
	}
	if !found {
		t.Errorf("power-cut copy: the journal's entry is missing, want it replayed")
	}
}

// TestWrongPassphrase: a wrong passphrase fails with one clear line and
// exit code 1, through the CLI and the library, and leaves every file of
// the device as it was.
func TestWrongPassphrase(t *testing.T) {
	bin := fristedBinary(t)
	root := t.TempDir()
	relay := startLoopbackRelay(t)
	home := filepath.Join(root, "home")
	d := relNewOrg(t, relay, home, "Wrong Passphrase Unit")
	sid, err := d.ResidentAdd(context.Background(), ResidentAddParams{Pseudonym: "Mina", Arrived: stolenArrived})
	require.NoError(t, err)
	_, err = d.LogAdd(sid.String(), "practical", 5, "before")
	require.NoError(t, err)
	require.NoError(t, d.Close())
	relay.Stop()

	wrong := filepath.Join(root, "wrong")
	require.NoError(t, os.WriteFile(wrong, []byte(wrongPassword+"\n"), 0o600))
	c := &relCLI{bin: bin, home: home, passFile: wrong, tmp: filepath.Join(root, "tmp"), dir: filepath.Join(root, "cwd")}
	require.NoError(t, os.Mkdir(c.tmp, 0o700))
	require.NoError(t, os.Mkdir(c.dir, 0o700))

	before := relTreeState(t, home)
	for _, args := range [][]string{
		{"resident", "list"},
		{"log", "add", sid.String(), "--category", "practical", "--minutes", "5", "--text", "after"},
		{"resident", "set", sid.String(), "language=Dari"},
		{"sync"},
	} {
		stdout, stderr, code := c.run(t, "", args...)
		name := strings.Join(args[:min(2, len(args))], " ")
		t.Logf("%s: exit %d, stderr %q", name, code, stderr)
		if code != 1 {
			t.Errorf("%s with a wrong passphrase: got exit code %d, want 1", name, code)
		}
		if stdout != "" {
			t.Errorf("%s with a wrong passphrase: got stdout %q, want nothing", name, stdout)
		}
		lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "fristed: error: ") || !strings.Contains(lines[0], "wrong passphrase") {
			t.Errorf("%s with a wrong passphrase: got stderr %q, want one line \"fristed: error: ...wrong passphrase...\"", name, stderr)
		}
		if after := relTreeState(t, home); !relEqualTree(before, after) {
			t.Errorf("%s with a wrong passphrase changed the device directory:\nbefore %v\nafter  %v", name, before, after)
		}
	}

	// The library says why, in a way a caller can branch on.
	opts := relOptions(t, home)
	opts.Passphrase = func(bool) ([]byte, error) { return []byte(wrongPassword), nil }
	_, err = Open(opts)
	if !errors.Is(err, fcrypto.ErrWrongPassphrase) {
		t.Errorf("Open with a wrong passphrase: got %v, want ErrWrongPassphrase", err)
	}
	if after := relTreeState(t, home); !relEqualTree(before, after) {
		t.Errorf("Open with a wrong passphrase changed the device directory")
	}
	// The lock is released: the right passphrase still works, and the
	// case is as it was.
	d, err = Open(relOptions(t, home))
	require.NoError(t, err, "open with the right passphrase after wrong ones")
	entries, err := d.rep.Log(sid)
	require.NoError(t, err)
	require.NoError(t, d.Close())
	if len(entries) != 1 || entries[0].Text != "before" {
		t.Errorf("log after the wrong attempts: got %d entries, want only %q", len(entries), "before")
	}
}

// relFileState is what relTreeState records of a file.
type relFileState struct {
	Size  int64
	Mode  os.FileMode
	MTime time.Time
	Hash  [32]byte
}

func relTreeState(t *testing.T, dir string) map[string]relFileState {
	t.Helper()
	out := map[string]relFileState{}
	require.NoError(t, filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		st := relFileState{Size: info.Size(), Mode: info.Mode(), MTime: info.ModTime()}
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			st.Hash = sha256.Sum256(b)
		}
		if info.IsDir() {
			st.Size, st.MTime = 0, time.Time{} // a directory's own times say nothing of its files
		}
		out[rel] = st
		return nil
	}))
	return out
}

func relEqualTree(a, b map[string]relFileState) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || v.Size != w.Size || v.Mode != w.Mode || !v.MTime.Equal(w.MTime) || v.Hash != w.Hash {
			return false
		}
	}
	return true
}

// TestCanaryScanner checks the scanner itself, so that a clean scan in
// TestStolenLaptop means something: each encoding of a canary, at each
// offset, is found.
func TestCanaryScanner(t *testing.T) {
	dir := t.TempDir()
	canary := canaryAddress
	var files []string
	for i, enc := range []func([]byte) string{
		func(b []byte) string { return string(b) },
		func(b []byte) string { return strings.ToUpper(relHex(b)) },
		relHex,
		base64.StdEncoding.EncodeToString,
		base64.URLEncoding.EncodeToString,
	} {
		for shift := range 3 {
			pre := append(bytes.Repeat([]byte{0xfb}, shift), canary...)
			p := filepath.Join(dir, "f", string(rune('a'+i)), string(rune('0'+shift)))
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
			require.NoError(t, os.WriteFile(p, []byte("xx"+enc(pre)+"yy"), 0o600))
			files = append(files, p)
		}
	}
	leaks, _ := scanForCanaries(t, []string{dir}, []string{canary})
	hit := map[string]bool{}
	for _, l := range leaks {
		hit[l.path] = true
	}
	for _, f := range files {
		if !hit[f] {
			t.Errorf("%s: got no hit, want the canary found", f)
		}
	}
	if clean, _ := scanForCanaries(t, []string{dir}, []string{"absent canary string"}); len(clean) != 0 {
		t.Errorf("got %d hits for an absent canary, want 0", len(clean))
	}
}

func relHex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// TestPassphraseChangeLeavesNoOldCopy: a crash while the identity file is
// being replaced (SIGKILL during the fsync of the temp file, as a delayed
// fsync under strace shows) leaves .identity.age.tmp-N, a whole copy of the
// keys under the passphrase of the time. The next replacement of the
// identity file, such as a passphrase change, shreds it, so no copy under
// an old passphrase stays in FRISTED_HOME.
func TestPassphraseChangeLeavesNoOldCopy(t *testing.T) {
	relay := startLoopbackRelay(t)
	home := filepath.Join(t.TempDir(), "home")
	d := relNewOrg(t, relay, home, "Passphrase Unit")
	require.NoError(t, d.Close())
	relay.Stop()
	id, err := os.ReadFile(filepath.Join(home, identityFile))
	require.NoError(t, err)
	stray := filepath.Join(home, "."+identityFile+".tmp-2795659771")
	require.NoError(t, os.WriteFile(stray, id, 0o600))

	newPass := []byte("a new passphrase after the old one leaked")
	require.NoError(t, ChangePassphrase(relOptions(t, home), newPass))
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Errorf("%s after a passphrase change: got %v, want it gone", filepath.Base(stray), err)
	}
	entries, err := os.ReadDir(home)
	require.NoError(t, err)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("FRISTED_HOME after a passphrase change: got %s, want no temp files", e.Name())
		}
	}
	opts := relOptions(t, home)
	_, err = Open(opts)
	if !errors.Is(err, fcrypto.ErrWrongPassphrase) {
		t.Errorf("open with the old passphrase: got %v, want ErrWrongPassphrase", err)
	}
	opts.Passphrase = func(bool) ([]byte, error) { return append([]byte(nil), newPass...), nil }
	d, err = Open(opts)
	require.NoError(t, err, "open with the new passphrase")
	require.NoError(t, d.Close())
}
