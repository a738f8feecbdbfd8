package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runner drives laptops through the fristed command, each laptop a
// FRISTED_HOME under one work directory, against one relay process. Its
// error is sticky: after the first failure every step is skipped, so a
// scenario reads as a story and checks r.Failed() where it matters.
//
//	r.As("kari")
//	r.Run("log", "add", "Mina", ...)
//	r.Sync()
//	if r.Failed() { t.Fatal(r.Err()) }
type runner struct {
	t      *testing.T
	work   string
	pass   string // FRISTED_PASSPHRASE_FILE
	bin    string // fristed
	relay  *relayProc
	addr   string // where the relay listens, kept across restarts
	home   string // the current laptop
	who    string
	err    error
	stdout string // of the last command
	stderr string
}

var (
	reFingerprint = regexp.MustCompile(`^fristed-org1[a-z2-7]{52}$`)
	reWorkerID    = regexp.MustCompile(`^w_[a-z2-7]{26}$`)
	reDeviceID    = regexp.MustCompile(`^d_[a-z2-7]{26}$`)
	reResidentID  = regexp.MustCompile(`^s_[a-z2-7]{26}$`)
	reRecordID    = regexp.MustCompile(`^x_[a-z2-7]{26}$`)
	reCode        = regexp.MustCompile(`^E[A-Z2-7]{5}(-[A-Z2-7]{5}){8}$`)
)

// newRunner makes a work directory and starts a relay on a free loopback
// port; both go away when the test ends.
func newRunner(t *testing.T) *runner {
	t.Helper()
	bin, err := exec.LookPath("fristed")
	if err != nil {
		t.Fatalf("fristed is not on PATH (TestMain puts it there): %v", err)
	}
	work := t.TempDir()
	r := &runner{t: t, work: work, bin: bin, pass: filepath.Join(work, "pass")}
	if err := os.WriteFile(r.pass, []byte("device passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.StartRelay()
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() {
		if r.relay != nil {
			r.relay.Stop()
		}
		if t.Failed() {
			if b, err := os.ReadFile(r.relayLog()); err == nil {
				t.Logf("relay log (last lines):\n%s", lastLines(string(b), 20))
			}
		}
	})
	return r
}

func (r *runner) relayData() string { return filepath.Join(r.work, "relay-data") }
func (r *runner) relayLog() string  { return filepath.Join(r.work, "relay.log") }

// URL is the relay's URL.
func (r *runner) URL() string { return "http://" + r.addr }

// StartRelay starts the relay, on the address it had before if it ran
// already.
func (r *runner) StartRelay() {
	if r.err != nil {
		return
	}
	if r.relay != nil {
		r.fail(fmt.Errorf("relay already running"))
		return
	}
	p, err := startRelay(r.relayData(), r.addr, r.relayLog())
	if err != nil {
		r.fail(err)
		return
	}
	r.relay, r.addr = p, p.addr
}

// StopRelay stops the relay: the laptops are offline.
func (r *runner) StopRelay() {
	if r.err != nil {
		return
	}
	if r.relay == nil {
		r.fail(fmt.Errorf("relay not running"))
		return
	}
	err := r.relay.Stop()
	r.relay = nil
	if err != nil {
		r.fail(fmt.Errorf("stop relay: %w", err))
	}
}

// Invite returns a one-time tenant invite from the relay.
func (r *runner) Invite() string {
	if r.err != nil {
		return ""
	}
	tok, err := relayInvite(r.relayData())
	if err != nil {
		r.fail(err)
	}
	return tok
}

// As switches to a laptop (a FRISTED_HOME of that name).
func (r *runner) As(laptop string) {
	r.who = laptop
	r.home = filepath.Join(r.work, laptop)
}

func (r *runner) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// Failed reports whether a step failed.
func (r *runner) Failed() bool { return r.err != nil }

// Err is the first failure.
func (r *runner) Err() error { return r.err }

// Take returns the first failure and clears it, for steps that are
// reported one by one.
func (r *runner) Take() error {
	err := r.err
	r.err = nil
	return err
}

// Check ends the test if a step failed.
func (r *runner) Check() {
	r.t.Helper()
	if r.err != nil {
		r.t.Fatal(r.err)
	}
}

func (r *runner) exec(stdin string, args ...string) error {
	cmd := exec.Command(r.bin, args...)
	cmd.Env = append(filteredEnv(), "FRISTED_HOME="+r.home, "FRISTED_PASSPHRASE_FILE="+r.pass, "TMPDIR="+r.work)
	cmd.Dir = r.work
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r.stdout, r.stderr = stdout.String(), stderr.String()
	return err
}

// filteredEnv is the test's environment without FRISTED_ variables.
func filteredEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FRISTED_") {
			env = append(env, kv)
		}
	}
	return env
}

// Run runs fristed on the current laptop, which must succeed, and returns
// the last line of its stdout.
func (r *runner) Run(args ...string) string { return r.RunStdin("", args...) }

// RunStdin is Run with stdin.
func (r *runner) RunStdin(stdin string, args ...string) string {
	if r.err != nil {
		return ""
	}
	if err := r.exec(stdin, args...); err != nil {
		r.fail(fmt.Errorf("%s: fristed %s: %v\nstdout:\n%s\nstderr:\n%s", r.who, strings.Join(args, " "), err, r.stdout, r.stderr))
		return ""
	}
	return lastLine(r.stdout)
}

// RunID is Run for a command that prints an id, code or fingerprint: it
// must be alone on the last line and match re.
func (r *runner) RunID(re *regexp.Regexp, args ...string) string {
	v := r.Run(args...)
	if r.err == nil && !re.MatchString(v) {
		r.fail(fmt.Errorf("%s: fristed %s: last line of stdout %q, want a match for %s", r.who, strings.Join(args, " "), v, re))
	}
	return v
}

// RunStdinID is RunID with stdin.
func (r *runner) RunStdinID(re *regexp.Regexp, stdin string, args ...string) string {
	v := r.RunStdin(stdin, args...)
	if r.err == nil && !re.MatchString(v) {
		r.fail(fmt.Errorf("%s: fristed %v: last line of stdout %q, want a match for %s", r.who, args, v, re))
	}
	return v
}

// Fail runs fristed on the current laptop, which must fail with a non-zero
// exit, nothing on stdout and one `fristed: error:` line on stderr matching
// want; it returns that line.
func (r *runner) Fail(want string, args ...string) string {
	if r.err != nil {
		return ""
	}
	err := r.exec("", args...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		r.fail(fmt.Errorf("%s: fristed %s succeeded, want an error matching %q; stdout:\n%s", r.who, strings.Join(args, " "), want, r.stdout))
	case !asExitError(err, &ee):
		r.fail(fmt.Errorf("%s: fristed %s: %v", r.who, strings.Join(args, " "), err))
	case r.stdout != "":
		r.fail(fmt.Errorf("%s: fristed %s failed with stdout %q, want none", r.who, strings.Join(args, " "), r.stdout))
	default:
		if cerr := checkErrLine(r.stderr); cerr != nil {
			r.fail(fmt.Errorf("%s: fristed %s: %v", r.who, strings.Join(args, " "), cerr))
		} else if !regexp.MustCompile(want).MatchString(r.stderr) {
			r.fail(fmt.Errorf("%s: fristed %s: stderr %q, want a match for %q", r.who, strings.Join(args, " "), r.stderr, want))
		}
	}
	return strings.TrimSpace(r.stderr)
}

func asExitError(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok && e.ExitCode() > 0
}

// Stdout and Stderr are the last command's output.
func (r *runner) Stdout() string { return r.stdout }
func (r *runner) Stderr() string { return r.stderr }

// Sync runs fristed sync on the current laptop.
func (r *runner) Sync() {
	out := r.Run("sync")
	if r.err == nil && !regexp.MustCompile(`^synced: \d+ sent, \d+ received, 0 pending$`).MatchString(out) {
		r.fail(fmt.Errorf("%s: sync printed %q", r.who, out))
	}
}

// OrgInit creates the org from the current laptop and returns its
// fingerprint.
func (r *runner) OrgInit() string {
	return r.RunID(reFingerprint, "org", "init", "--relay", r.URL(), "--invite", r.Invite(), "--name", "Enhet A",
		"--recovery-out", filepath.Join(r.work, "recovery.age"), "--recovery-passphrase-file", r.pass)
}

// Enrol enrols laptop for worker: device init there, device approve on the
// coordinator's laptop, and a first sync. It returns the device id and
// leaves the runner on laptop.
func (r *runner) Enrol(laptop, coordinator, worker, org string) string {
	r.As(laptop)
	code := r.RunID(reCode, "device", "init", "--relay", r.URL(), "--org", org, "--name", laptop)
	r.As(coordinator)
	id := r.RunID(reDeviceID, "device", "approve", code, "--worker", worker)
	r.As(laptop)
	r.Sync()
	return id
}

// residentJSON is `resident show --json` as the contract has it.
type residentJSON struct {
	ID        string                         `json:"id"`
	Pseudonym string                         `json:"pseudonym"`
	Language  string                         `json:"language"`
	Records   map[string][]map[string]string `json:"records"`
	Log       []logJSON                      `json:"log"`
	Conflicts []conflictJSON                 `json:"conflicts"`
}

type logJSON struct {
	ID       string `json:"id"`
	Category string `json:"category"`
	Minutes  int    `json:"minutes"`
	Text     string `json:"text"`
	Author   string `json:"author"`
	At       string `json:"at"`
}

type conflictJSON struct {
	Field  string   `json:"field"`
	Values []string `json:"values"`
}

// Show returns the current laptop's view of a resident and the raw JSON.
func (r *runner) Show(resident string) (residentJSON, string) {
	var v residentJSON
	r.Run("resident", "show", resident, "--json")
	if r.err != nil {
		return v, ""
	}
	raw := r.stdout
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		r.fail(fmt.Errorf("%s: resident show --json: %v: %s", r.who, err, raw))
	}
	return v, raw
}

// Devices returns `device list --json` on the current laptop.
func (r *runner) Devices() string {
	r.Run("device", "list", "--json")
	return r.stdout
}

// TestHelpEveryCommand: every registered command answers --help and
// `fristed help NAME` on stdout with exit 0, and is listed by `fristed
// help`.
func TestHelpEveryCommand(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("fristed")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "help").Output()
	if err != nil {
		t.Fatalf("fristed help: %v", err)
	}
	for name, c := range commands {
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(name) + ` +` + regexp.QuoteMeta(c.summary) + `$`).Match(out) {
			t.Errorf("fristed help does not list %q", name)
		}
		for _, args := range [][]string{
			append(strings.Fields(name), "--help"),
			append([]string{"help"}, strings.Fields(name)...),
		} {
			cmd := exec.Command(bin, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil || stderr.Len() > 0 {
				t.Errorf("fristed %s: %v, stderr %q", strings.Join(args, " "), err, stderr.String())
				continue
			}
			if want := "Usage: fristed " + name + " "; !strings.HasPrefix(stdout.String(), want) {
				t.Errorf("fristed %s: stdout starts %q, want %q", strings.Join(args, " "), firstLine(stdout.String()), want)
			}
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
