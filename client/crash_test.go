package client

// Crash safety at the level of the device and the CLI (DESIGN-NOTES
// property 6: "an edit that was acknowledged to the user survives a crash
// or power loss"). The vault's own tests (client/vault TestPowerCut,
// TestAppendFaults, TestCompactFaults) cut power and inject faults between
// every write and fsync of one vault; these tests check that the device and
// the binary built on it keep the promise end to end. docs/RELIABILITY.md
// explains the protocol and lists the figures.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/syncproto"
)

// crashTrials is how many times TestKillLogAdd starts `fristed log add`;
// FRISTED_CRASH_TRIALS overrides it for longer campaigns.
const crashTrials = 200

// crashMaxDelay bounds the random delay before the kill. The delay is
// drawn from [0, min(crashMaxDelay, 1.25 × the median of a few runs left
// to finish first)], so on a fast machine (a `log add` takes about 10 ms
// here) as on a slow one the kills spread over the whole life of the
// process: before the unlock, during it, around the journal append, during
// the compaction on close, and a few after the exit.
const crashMaxDelay = 40 * time.Millisecond

// calibrationRuns are the runs left to finish, to time a whole `log add`.
const calibrationRuns = 5

// TestKillLogAdd runs `fristed log add` again and again, SIGKILLing it after
// a random delay (or letting it finish), with the relay down: edits are
// local. Every edit the CLI acknowledged (exit 0 with the entry's id on
// stdout) must be in the case afterwards, and every run must find a
// replica it can open. The seed (FRISTED_CRASH_SEED to replay one) fixes
// the schedule of delays; where in the program each kill lands still
// depends on the machine's timing.
func TestKillLogAdd(t *testing.T) {
	bin := fristedBinary(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FRISTED_CRASH_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "FRISTED_CRASH_SEED")
	}
	trials := crashTrials
	if s := os.Getenv("FRISTED_CRASH_TRIALS"); s != "" {
		var err error
		trials, err = strconv.Atoi(s)
		require.NoError(t, err, "FRISTED_CRASH_TRIALS")
	}
	t.Logf("seed %d (FRISTED_CRASH_SEED=%d replays this schedule), %d trials", seed, seed, trials)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("failing seed: FRISTED_CRASH_SEED=%d", seed)
		}
	})
	rng := rand.New(rand.NewPCG(seed, 0x6672697374656421))

	// Set the device up once with a relay, then take the relay away.
	root := t.TempDir()
	relay := startLoopbackRelay(t)
	home := filepath.Join(root, "home")
	d := relNewOrg(t, relay, home, "Crash Test Unit")
	sid, err := d.ResidentAdd(context.Background(), ResidentAddParams{Pseudonym: "Mina", Arrived: "2026-11-01"})
	require.NoError(t, err, "resident add")
	require.NoError(t, d.Close())
	relay.Stop()
	resident := sid.String()

	c := &relCLI{bin: bin, home: home, passFile: relPassFile(t), tmp: filepath.Join(root, "tmp"), dir: filepath.Join(root, "cwd")}
	require.NoError(t, os.Mkdir(c.tmp, 0o700))
	require.NoError(t, os.Mkdir(c.dir, 0o700))

	acked := map[string]string{}   // entry id -> text: exit 0 and the id printed
	printed := map[string]string{} // entry id -> text: the id printed, then killed before exit
	texts := map[string]bool{}
	var stats struct{ finished, killed, printedThenKilled, tornTails int }
	start := time.Now()
	window, timed := crashMaxDelay, []time.Duration(nil)
	for i := range calibrationRuns + trials {
		text := fmt.Sprintf("entry-%d", i)
		texts[text] = true
		if i == calibrationRuns {
			slices.Sort(timed)
			mid := timed[len(timed)/2]
			window = min(crashMaxDelay, mid*5/4)
			t.Logf("a whole run takes %v (median); kills fall in [0, %v]", mid.Round(time.Millisecond), window.Round(time.Millisecond))
		}
		finish := i < calibrationRuns || rng.IntN(5) == 0
		delay := time.Duration(rng.Int64N(int64(window) + 1))
		runStart := time.Now()

		cmd := c.command("", "log", "add", resident, "--category", "practical", "--minutes", "5", "--text", text)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Start(), "trial %d: start fristed", i)
		var timer *time.Timer
		if !finish {
			timer = time.AfterFunc(delay, func() { cmd.Process.Kill() })
		}
		err := cmd.Wait()
		if timer != nil {
			timer.Stop()
		}
		if i < calibrationRuns {
			timed = append(timed, time.Since(runStart))
		}
		if strings.Contains(stderr.String(), "dropped") {
			stats.tornTails++
		}
		killed := false
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			ws, ok := ee.Sys().(syscall.WaitStatus)
			killed = ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
		}
		switch {
		case err == nil:
			stats.finished++
			id := relLastLine(stdout.String())
			_, perr := syncproto.ParseDeltaID(id)
			require.NoError(t, perr, "trial %d (delay %v): exit 0 but stdout %q holds no entry id", i, delay, stdout.String())
			acked[id] = text
		case killed:
			stats.killed++
			if out := strings.TrimSpace(stdout.String()); out != "" {
				id := relLastLine(out)
				if _, perr := syncproto.ParseDeltaID(id); perr == nil {
					stats.printedThenKilled++
					printed[id] = text
				}
			}
		default:
			// Not killed and not successful: a crash left something this
			// run could not open or use. That is the bug this test hunts.
			t.Fatalf("trial %d (delay %v): fristed log add failed without being killed: %v\nstderr: %s", i, delay, err, stderr.String())
		}
	}
	elapsed := time.Since(start)
	t.Logf("%d runs in %v: %d finished, %d killed (%d after printing the id), %d torn journal tails dropped on the next open",
		calibrationRuns+trials, elapsed.Round(time.Millisecond), stats.finished, stats.killed, stats.printedThenKilled, stats.tornTails)
	require.NotZero(t, stats.finished, "no run finished: the test acknowledged nothing")
	require.NotZero(t, stats.killed, "no run was killed")

	// The case as the CLI shows it.
	out := c.mustRun(t, "", "resident", "show", resident, "--json")
	var view struct {
		Log []struct {
			ID   string `json:"id"`
			Text string `json:"text"`
		} `json:"log"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &view), "resident show --json")
	have := map[string]string{}
	seen := map[string]bool{}
	for _, e := range view.Log {
		if !texts[e.Text] {
			t.Errorf("log entry %s: got text %q, want one of the texts written", e.ID, e.Text)
		}
		if seen[e.Text] {
			t.Errorf("log entry text %q: got it twice, want it once", e.Text)
		}
		seen[e.Text] = true
		have[e.ID] = e.Text
	}
	for id, text := range acked {
		if got, ok := have[id]; !ok || got != text {
			t.Errorf("acknowledged entry %s (%s): got %q (present %v), want it in the case", id, text, got, ok)
		}
	}
	// An id is printed only after the edit's journal frame was fsynced, so
	// an edit whose run was killed after printing must survive as well.
	for id, text := range printed {
		if got, ok := have[id]; !ok || got != text {
			t.Errorf("entry %s (%s) printed before the kill: got %q (present %v), want it in the case", id, text, got, ok)
		}
	}
	t.Logf("case holds %d of %d attempted entries; checked %d acknowledged and %d printed then killed",
		len(view.Log), calibrationRuns+trials, len(acked), len(printed))

	// And through the library: the replica opens and agrees.
	d, err = Open(relOptions(t, home))
	require.NoError(t, err, "open the device after the crashes")
	entries, err := d.rep.Log(sid)
	require.NoError(t, err)
	require.NoError(t, d.Close())
	if len(entries) != len(view.Log) {
		t.Errorf("library: got %d log entries, want %d as the CLI showed", len(entries), len(view.Log))
	}

	// Whatever the kills left behind (temp files, torn frames) holds no
	// entry text in the clear.
	leaks, _ := scanForCanaries(t, []string{home, c.tmp, c.dir}, []string{"entry-"})
	for _, l := range leaks {
		t.Errorf("%s: got %q in the clear, want ciphertext only", l.path, l.form)
	}
}

// TestEditDurableBeforeReturn: once LogAdd, ResidentSet or RecordAdd has
// returned, the edit is in the journal on disk, not only in memory. A copy
// of FRISTED_HOME taken at that moment, before Close compacts, is what a
// power cut would leave (the old snapshot plus the journal), and opening
// the copy shows the edit. (A copy reads the page cache, so it proves the
// write happened before the return; that the write was also fsynced before
// the return is proved at the vault layer by TestPowerCut, which drops
// every unsynced write.)
func TestEditDurableBeforeReturn(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	relay := startLoopbackRelay(t)
	home := filepath.Join(root, "home")
	d := relNewOrg(t, relay, home, "Durable Unit")
	sid, err := d.ResidentAdd(ctx, ResidentAddParams{Pseudonym: "Mina", Arrived: "2026-11-01"})
	require.NoError(t, err, "resident add")
	require.NoError(t, d.Close())
	relay.Stop()
	resident := sid.String()

	d, err = Open(relOptions(t, home))
	require.NoError(t, err)
	defer d.Close()
	snapshot := relFileHash(t, filepath.Join(home, vaultDir, "replica.age"))

	var ids []string
	for i := range 3 {
		id, err := d.LogAdd(resident, "practical", 5, fmt.Sprintf("durable-%d", i))
		require.NoError(t, err, "log add %d", i)
		ids = append(ids, id)
		check := func(t *testing.T, c *Device) {
			entries, err := c.rep.Log(sid)
			require.NoError(t, err)
			got := map[string]bool{}
			for _, e := range entries {
				got[e.ID.String()] = true
			}
			for _, id := range ids {
				if !got[id] {
					t.Errorf("copy after log add %d: entry %s missing, want all %d entries", i, id, len(ids))
				}
			}
		}
		copyAndOpen(t, home, filepath.Join(root, fmt.Sprintf("copy-log-%d", i)), snapshot, check)
	}

	require.NoError(t, d.ResidentSet(resident, map[string]string{"language": "Dari"}))
	goal, err := d.RecordAdd(resident, "goal", map[string]string{"title": "Norsk B1"})
	require.NoError(t, err)
	copyAndOpen(t, home, filepath.Join(root, "copy-set"), snapshot, func(t *testing.T, c *Device) {
		v, err := c.ResidentShow(resident, false)
		require.NoError(t, err)
		b, err := json.Marshal(v)
		require.NoError(t, err)
		var got struct {
			Language string `json:"language"`
			Log      []any  `json:"log"`
		}
		require.NoError(t, json.Unmarshal(b, &got))
		if got.Language != "Dari" {
			t.Errorf("copy: language: got %q, want %q", got.Language, "Dari")
		}
		if len(got.Log) != len(ids) {
			t.Errorf("copy: got %d log entries, want %d", len(got.Log), len(ids))
		}
		if !strings.Contains(string(b), goal) {
			t.Errorf("copy: goal %s missing from the case", goal)
		}
	})

	// Close compacts: the snapshot changes and the journal is empty again.
	require.NoError(t, d.Close())
	if relFileHash(t, filepath.Join(home, vaultDir, "replica.age")) == snapshot {
		t.Errorf("snapshot after close: got the old one, want a new one holding the edits")
	}
}

// copyAndOpen copies the device directory src to dst as it is now (the
// device in src stays open), checks that the copy still has the snapshot
// with hash snapshot (so only the journal can carry the new edits), opens
// the copy and runs check on it.
func copyAndOpen(t *testing.T, src, dst string, snapshot [32]byte, check func(*testing.T, *Device)) {
	t.Helper()
	require.NoError(t, relCopyTree(src, dst))
	if got := relFileHash(t, filepath.Join(dst, vaultDir, "replica.age")); got != snapshot {
		t.Fatalf("copy %s: snapshot changed before Close, want the edit in the journal only", filepath.Base(dst))
	}
	c, err := Open(relOptions(t, dst))
	require.NoError(t, err, "open copy %s", filepath.Base(dst))
	check(t, c)
	require.NoError(t, c.Close())
}

func relFileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return sha256.Sum256(b)
}

// relCopyTree copies the regular files and directories under src to dst.
func relCopyTree(src, dst string) error {
	return filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_EXCL, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// syncTrials is how many times TestKillSync kills or finishes a sync;
// FRISTED_SYNC_TRIALS overrides it.
const syncTrials = 40

// TestKillSync adds a log entry on a worker's laptop and then runs `fristed
// sync`, SIGKILLed after a random delay or left to finish, again and again
// against a live relay. A sync killed after the relay accepted a batch but
// before the laptop recorded it must neither lose the batch nor send it
// twice, and must not leave the laptop unable to sync: afterwards one
// clean sync empties the outbox, and the coordinator sees every entry
// exactly once.
func TestKillSync(t *testing.T) {
	bin := fristedBinary(t)
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FRISTED_CRASH_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "FRISTED_CRASH_SEED")
	}
	t.Logf("seed %d (FRISTED_CRASH_SEED=%d replays this schedule)", seed, seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("failing seed: FRISTED_CRASH_SEED=%d", seed)
		}
	})
	rng := rand.New(rand.NewPCG(seed, 0x73796e63))
	trials := syncTrials
	if s := os.Getenv("FRISTED_SYNC_TRIALS"); s != "" {
		var err error
		trials, err = strconv.Atoi(s)
		require.NoError(t, err, "FRISTED_SYNC_TRIALS")
	}

	root := t.TempDir()
	relay := startLoopbackRelay(t)
	coordHome, workerHome := filepath.Join(root, "coordinator"), filepath.Join(root, "worker")
	c := relNewOrg(t, relay, coordHome, "Sync Crash Unit")
	_, err := c.WorkerAdd(ctx, "Kari Nordmann")
	require.NoError(t, err)
	w, code, err := DeviceInit(ctx, relOptions(t, workerHome), DeviceInitParams{RelayURL: relay.URL, Org: c.Org(), Name: "kari-laptop"})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = c.Approve(ctx, ApproveParams{Code: code, Worker: "Kari Nordmann"})
	require.NoError(t, err)
	sid, err := c.ResidentAdd(ctx, ResidentAddParams{Pseudonym: "Mina", Arrived: "2026-11-01"})
	require.NoError(t, err)
	require.NoError(t, c.Assign(ctx, sid.String(), "Kari Nordmann"))
	require.NoError(t, c.Close())
	w, err = Open(relOptions(t, workerHome))
	require.NoError(t, err)
	_, err = w.Sync(ctx)
	require.NoError(t, err, "worker's first sync")
	require.NoError(t, w.Close())
	resident := sid.String()

	pass := relPassFile(t)
	tmp, cwd := filepath.Join(root, "tmp"), filepath.Join(root, "cwd")
	require.NoError(t, os.Mkdir(tmp, 0o700))
	require.NoError(t, os.Mkdir(cwd, 0o700))
	worker := &relCLI{bin: bin, home: workerHome, passFile: pass, tmp: tmp, dir: cwd}
	coord := &relCLI{bin: bin, home: coordHome, passFile: pass, tmp: tmp, dir: cwd}

	acked := map[string]string{} // entry id -> text, every one acknowledged
	var timed []time.Duration
	window := crashMaxDelay
	var stats struct{ finished, killed int }
	start := time.Now()
	for i := range calibrationRuns + trials {
		text := fmt.Sprintf("synced-%d", i)
		acked[relLastLine(worker.mustRun(t, "", "log", "add", resident, "--category", "practical", "--minutes", "5", "--text", text))] = text
		if i == calibrationRuns {
			slices.Sort(timed)
			window = min(crashMaxDelay, timed[len(timed)/2]*5/4)
			t.Logf("a whole sync takes %v (median); kills fall in [0, %v]", timed[len(timed)/2].Round(time.Millisecond), window.Round(time.Millisecond))
		}
		finish := i < calibrationRuns || rng.IntN(4) == 0
		delay := time.Duration(rng.Int64N(int64(window) + 1))
		cmd := worker.command("", "sync")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		began := time.Now()
		require.NoError(t, cmd.Start())
		var timer *time.Timer
		if !finish {
			timer = time.AfterFunc(delay, func() { cmd.Process.Kill() })
		}
		err := cmd.Wait()
		if timer != nil {
			timer.Stop()
		}
		if i < calibrationRuns {
			timed = append(timed, time.Since(began))
		}
		var ee *exec.ExitError
		switch {
		case err == nil:
			stats.finished++
		case errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled():
			stats.killed++
		default:
			// Say whether the laptop is stuck or the failure passes.
			var later []string
			for range 3 {
				_, serr, code := worker.run(t, "", "sync")
				later = append(later, fmt.Sprintf("exit %d %s", code, strings.TrimSpace(serr)))
			}
			t.Fatalf("trial %d (delay %v): fristed sync failed without being killed: %v\nstderr: %s\nthe next three syncs: %q",
				i, delay, err, stderr.String(), later)
		}
		if i%10 == 9 {
			coord.mustRun(t, "", "sync")
		}
	}
	t.Logf("%d syncs in %v: %d finished, %d killed", calibrationRuns+trials, time.Since(start).Round(time.Millisecond), stats.finished, stats.killed)

	// One clean sync on each side settles everything.
	worker.mustRun(t, "", "sync")
	coord.mustRun(t, "", "sync")
	w, err = Open(relOptions(t, workerHome))
	require.NoError(t, err)
	pending, err := w.Pending()
	require.NoError(t, err)
	require.NoError(t, w.Close())
	if pending != 0 {
		t.Errorf("worker after a clean sync: got %d edits pending, want 0", pending)
	}
	var view struct {
		Log []struct {
			ID   string `json:"id"`
			Text string `json:"text"`
		} `json:"log"`
	}
	require.NoError(t, json.Unmarshal([]byte(coord.mustRun(t, "", "resident", "show", resident, "--json")), &view))
	seen := map[string]int{}
	for _, e := range view.Log {
		seen[e.ID]++
		if want, ok := acked[e.ID]; !ok || want != e.Text {
			t.Errorf("coordinator: entry %s %q: got it, want only the worker's entries", e.ID, e.Text)
		}
	}
	for id, text := range acked {
		if seen[id] != 1 {
			t.Errorf("coordinator: entry %s (%s): got it %d times, want once", id, text, seen[id])
		}
	}
	t.Logf("coordinator holds %d of %d entries", len(view.Log), len(acked))
}

// TestReplayAfterTwoPushes is TestKillSync's failure made deterministic.
// A push journals each sealed batch (frameInflight) before sending it, but
// not the relay's acceptance. Two pushes interrupted by crashes:
//
//  1. batch B1 = {E1} is journaled and accepted; crash before Close.
//     Reopening replays B1 as in flight; a later edit E2 and Close put
//     "B1 in flight, outbox {E1, E2}" into the snapshot.
//  2. the next push resends B1 (the relay recognises it) and removes E1
//     from the outbox in memory, then journals and sends B2 = {E2};
//     crash before Close.
//
// Reopening replays B2 over that snapshot: B2 replaces B1 as the stream's
// one batch in flight, E1 is still in the outbox, and nothing records that
// B1 was accepted. The next sync resends B2, then seals E1 into a new batch,
// which the relay refuses for good: "a delta id in this batch is already
// in the stream".
func TestReplayAfterTwoPushes(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	relay := startLoopbackRelay(t)
	home := filepath.Join(root, "home")
	d := relNewOrg(t, relay, home, "Replay Unit")
	sid, err := d.ResidentAdd(ctx, ResidentAddParams{Pseudonym: "Mina", Arrived: "2026-11-01"})
	require.NoError(t, err)
	require.NoError(t, d.Close())
	resident := sid.String()

	// crashAfterPush opens the device, pushes, and leaves home as a crash
	// would: the journal written, no compaction.
	crashAfterPush := func(step string) {
		t.Helper()
		d, err := Open(relOptions(t, home))
		require.NoError(t, err)
		var res SyncResult
		require.NoError(t, d.push(ctx, &res), "%s: push", step)
		crashed := filepath.Join(root, "crashed-"+step)
		require.NoError(t, relCopyTree(home, crashed))
		d.abandon() // no Close: nothing more reaches the disk
		require.NoError(t, os.RemoveAll(home))
		require.NoError(t, os.Rename(crashed, home))
	}
	logAdd := func(text string) string {
		t.Helper()
		d, err := Open(relOptions(t, home))
		require.NoError(t, err)
		id, err := d.LogAdd(resident, "practical", 5, text)
		require.NoError(t, err)
		require.NoError(t, d.Close())
		return id
	}

	logAdd("E1")
	crashAfterPush("B1")
	logAdd("E2")
	crashAfterPush("B2")

	d, err = Open(relOptions(t, home))
	require.NoError(t, err)
	_, err = d.Sync(ctx)
	pending, _ := d.Pending()
	require.NoError(t, d.Close())
	if err != nil {
		t.Errorf("sync after two interrupted pushes: got %v (%d edits pending), want success", err, pending)
	}
}
