package relaytest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildRelay builds the fristed-relay binary into dir and returns its
// path. With FRISTED_TEST_RACE set, the binary is built with the race
// detector.
func BuildRelay(dir string) (string, error) {
	bin := filepath.Join(dir, "fristed-relay")
	args := []string{"build", "-o", bin}
	if os.Getenv("FRISTED_TEST_RACE") != "" {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "github.com/fristed/fristed/server/cmd/fristed-relay")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build fristed-relay: %v\n%s", err, out)
	}
	return bin, nil
}

// Proc is a running fristed-relay serve.
type Proc struct {
	Cmd      *exec.Cmd
	URL      string // http(s)://127.0.0.1:PORT
	RelayKey string
	Pin      string // "sha256/..." when serving TLS
	Metrics  string // metrics URL when --metrics-listen was given

	stdout, stderr *lockedBuffer
	done           chan struct{}
	waitErr        error
	stopOnce       sync.Once
}

// lockedBuffer is a bytes.Buffer safe for a writer and readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.b.Bytes()...)
}

// StartRelay runs bin with "serve" and args, waits until it prints the
// address it listens on, and stops it when the test ends.
func StartRelay(tb testing.TB, bin string, args ...string) *Proc {
	tb.Helper()
	p := &Proc{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	p.Cmd = exec.Command(bin, append([]string{"serve"}, args...)...)
	p.Cmd.Env = os.Environ()
	pr, pw := io.Pipe()
	p.Cmd.Stdout = io.MultiWriter(p.stdout, pw)
	p.Cmd.Stderr = p.stderr
	if err := p.Cmd.Start(); err != nil {
		tb.Fatalf("start relay: %v", err)
	}
	go func() {
		p.waitErr = p.Cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	tb.Cleanup(func() { p.Stop(tb) })

	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "relay key: "):
				p.RelayKey = strings.TrimPrefix(line, "relay key: ")
			case strings.HasPrefix(line, "tls pin: "):
				p.Pin = strings.TrimPrefix(line, "tls pin: ")
			case strings.HasPrefix(line, "metrics on "):
				p.Metrics = strings.TrimPrefix(line, "metrics on ")
			case strings.HasPrefix(line, "listening on "):
				p.URL = strings.TrimPrefix(line, "listening on ")
				ready <- nil
				io.Copy(io.Discard, pr)
				return
			}
		}
		ready <- fmt.Errorf("relay exited before listening")
	}()
	select {
	case err := <-ready:
		if err != nil {
			<-p.done
			tb.Fatalf("start relay: %v (%v)\nstderr:\n%s", err, p.waitErr, p.stderr.Bytes())
		}
	case <-time.After(30 * time.Second):
		tb.Fatalf("start relay: no address after 30s\nstderr:\n%s", p.stderr.Bytes())
	}
	return p
}

// Stop sends SIGTERM and waits for the relay to exit (killing it after
// 20s). It reports a non-zero exit as a test error.
func (p *Proc) Stop(tb testing.TB) {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
		default:
			p.Cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(20 * time.Second):
				p.Cmd.Process.Kill()
				<-p.done
				tb.Errorf("relay did not stop within 20s of SIGTERM")
			}
		}
		if p.waitErr != nil {
			tb.Errorf("relay exited with %v\nstderr:\n%s", p.waitErr, p.stderr.Bytes())
		}
	})
}

// Stdout returns what the relay printed on stdout so far.
func (p *Proc) Stdout() []byte { return p.stdout.Bytes() }

// Stderr returns the relay's log so far.
func (p *Proc) Stderr() []byte { return p.stderr.Bytes() }
