package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// The tests drive the real programs: "fristed" is this test binary, which
// runs main when it is invoked under that name (testscript.Main puts a copy
// on PATH), and "fristed-relay" is built once by TestMain. Every relay
// listens on 127.0.0.1 only.

// testScryptCost is the scrypt cost (log2 N) of the identity and recovery
// files the tests make: the default takes most of a second per command.
const testScryptCost = 10

// relayBin is the fristed-relay binary built by TestMain.
var relayBin string

var testCommands = map[string]func(){
	"fristed": func() {
		testWorkFactor = testScryptCost
		main()
	},
}

func TestMain(m *testing.M) {
	if _, ok := testCommands[filepath.Base(os.Args[0])]; ok {
		testscript.Main(m, testCommands) // runs the command and exits
	}
	dir, err := os.MkdirTemp("", "fristed-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := buildRelay(dir); err != nil {
		os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("PATH", dir+string(filepath.ListSeparator)+os.Getenv("PATH"))
	testscript.Main(cleanupM{m, func() { os.RemoveAll(dir) }}, testCommands)
}

// cleanupM runs a clean-up after the tests: testscript.Main exits the
// process itself, so a defer in TestMain would not run.
type cleanupM struct {
	m       *testing.M
	cleanup func()
}

func (c cleanupM) Run() int {
	defer c.cleanup()
	return c.m.Run()
}

func buildRelay(dir string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(gobin, "build", "-o", dir+string(filepath.Separator), "github.com/fristed/fristed/server/cmd/fristed-relay")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build fristed-relay: %v\n%s", err, out)
	}
	relayBin = filepath.Join(dir, "fristed-relay")
	return nil
}

// relayProc is a running `fristed-relay serve --insecure-loopback`.
type relayProc struct {
	data string // --data
	addr string // host:port it listens on
	logf string // its stderr (JSON log lines)
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, once done is closed
}

// startRelay starts a relay on data. An empty addr means a free port on
// 127.0.0.1; a relay restarted on the same data directory passes the
// previous one, so devices find it where they left it.
func startRelay(data, addr, logf string) (*relayProc, error) {
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	listen := addr
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	var lastErr error
	// The port of a relay that was just stopped is free again at once
	// (SO_REUSEADDR); the retries are for another process that took it.
	for try := 0; try < 20; try++ {
		r, err := startRelayOnce(data, listen, logf)
		if err == nil {
			return r, nil
		}
		lastErr = err
		if addr == "" || !strings.Contains(err.Error(), "address already in use") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	return nil, lastErr
}

func startRelayOnce(data, listen, logf string) (*relayProc, error) {
	lf, err := os.OpenFile(logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	addrc := make(chan string, 1)
	cmd := exec.Command(relayBin, "serve", "--listen", listen, "--data", data, "--insecure-loopback")
	cmd.Stderr = lf
	cmd.Stdout = &addrWriter{c: addrc}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &relayProc{data: data, logf: logf, cmd: cmd, done: make(chan struct{})}
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	select {
	case r.addr = <-addrc:
		return r, nil
	case <-r.done:
		b, _ := os.ReadFile(logf)
		return nil, fmt.Errorf("relay on %s exited: %v: %s", listen, r.err, lastLines(string(b), 3))
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-r.done
		return nil, fmt.Errorf("relay on %s did not start in 30s", listen)
	}
}

// addrWriter is the relay's stdout: it passes on the address from the
// "listening on" line, which the relay prints once its listener is bound.
type addrWriter struct {
	mu   sync.Mutex
	line []byte
	c    chan string
	sent bool
}

func (w *addrWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range p {
		if b != '\n' {
			w.line = append(w.line, b)
			continue
		}
		if a, ok := strings.CutPrefix(string(w.line), "listening on http://"); ok && !w.sent {
			w.c <- a
			w.sent = true
		}
		w.line = w.line[:0]
	}
	return len(p), nil
}

// URL is the relay's base URL.
func (r *relayProc) URL() string { return "http://" + r.addr }

// Stop shuts the relay down gracefully (SIGTERM) and waits for it.
func (r *relayProc) Stop() error {
	select {
	case <-r.done:
		return fmt.Errorf("relay had already exited: %v", r.err)
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
		return errors.New("relay did not stop in 20s after SIGTERM")
	}
	return r.err
}

// relayInvite runs `fristed-relay invite` on a data directory and returns
// the token from the last line of its stdout.
func relayInvite(data string) (string, error) {
	var stdout, stderr strings.Builder
	cmd := exec.Command(relayBin, "invite", "--data", data)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("fristed-relay invite: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	tok := lastLine(stdout.String())
	if tok == "" {
		return "", errors.New("fristed-relay invite printed no token")
	}
	return tok, nil
}

// lastLine returns the last non-empty line of s, trimmed.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
