package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestScripts checks the command-line contract (DESIGN-NOTES "Contract"):
// ids, codes and fingerprints alone on the last line of stdout, the --json
// shapes, one `fristed: error:` line on stderr and a non-zero exit for bad
// input, with nothing stored.
//
// Besides testscript's own commands the scripts have:
//
//	relay start|stop|invite  run fristed-relay serve on $WORK/relay-data
//	                         (a restart keeps its address); start sets
//	                         $RELAY, invite sets $INVITE
//	relay drop-keys          (relay stopped) delete every wrapped key the
//	                         relay holds, as a relay withholding them would
//	setlast NAME [REGEXP]    set $NAME to the last line of stdout, which
//	                         must match REGEXP entirely
//	errline [REGEXP]         stderr is one line, `fristed: error: ...`,
//	                         matching REGEXP
//	json keys PATH KEY...    the object at PATH in stdout has exactly KEYs
//	json has PATH KEY...     ... has at least these KEYs
//	json len PATH N          the array at PATH has N elements
//	json eq PATH VALUE       every value at PATH is VALUE (strings as is,
//	                         anything else as JSON)
//	json in PATH VALUE       some value at PATH is VALUE
//	relaysql STATEMENT       run an SQL statement on the relay's database,
//	                         as someone with its disk would; it must
//	                         change at least one row
//
// A PATH is "." or a chain of .name and [index] steps; [*] means every
// element, e.g. `json keys .log[*] id category minutes text author at`.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			r := &scriptRelay{data: filepath.Join(env.WorkDir, "relay-data"), logf: filepath.Join(env.WorkDir, "relay.log")}
			env.Values[scriptRelayKey{}] = r
			env.Defer(func() {
				if r.proc != nil {
					r.proc.Stop()
				}
			})
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"relay":     cmdRelay,
			"setlast":   cmdSetLast,
			"setstderr": cmdSetStderr,
			"errline":   cmdErrLine,
			"relaysql":  cmdRelaySQL,
			"json":      cmdJSON,
		},
	})
}

type scriptRelayKey struct{}

type scriptRelay struct {
	data, logf, addr string
	proc             *relayProc
}

func cmdRelay(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: relay start|stop|invite|drop-keys")
	}
	r := ts.Value(scriptRelayKey{}).(*scriptRelay)
	switch args[0] {
	case "start":
		if r.proc != nil {
			ts.Fatalf("relay already running")
		}
		p, err := startRelay(r.data, r.addr, r.logf)
		ts.Check(err)
		r.proc, r.addr = p, p.addr
		ts.Setenv("RELAY", p.URL())
	case "stop":
		if r.proc == nil {
			ts.Fatalf("relay not running")
		}
		err := r.proc.Stop()
		r.proc = nil
		ts.Check(err)
	case "invite":
		tok, err := relayInvite(r.data)
		ts.Check(err)
		ts.Setenv("INVITE", tok)
	case "drop-keys":
		if r.proc != nil {
			ts.Fatalf("stop the relay first")
		}
		db, err := sql.Open("sqlite3", "file:"+filepath.Join(r.data, "relay.db")+"?_busy_timeout=5000")
		ts.Check(err)
		defer db.Close()
		res, err := db.Exec(`DELETE FROM secrets WHERE kind = 'wrapped'`)
		ts.Check(err)
		if n, _ := res.RowsAffected(); n == 0 {
			ts.Fatalf("the relay holds no wrapped key")
		}
	default:
		ts.Fatalf("usage: relay start|stop|invite|drop-keys")
	}
}

func cmdSetLast(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: setlast NAME [REGEXP]")
	}
	line := lastLine(ts.ReadFile("stdout"))
	if len(args) == 2 {
		re, err := regexp.Compile(`^(?:` + args[1] + `)$`)
		ts.Check(err)
		if !re.MatchString(line) {
			ts.Fatalf("last line of stdout is %q, want a match for %s", line, args[1])
		}
	}
	ts.Setenv(args[0], line)
}

// cmdSetStderr sets NAME to the first group of REGEXP's match in stderr.
func cmdSetStderr(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: setstderr NAME REGEXP")
	}
	re, err := regexp.Compile(args[1])
	ts.Check(err)
	m := re.FindStringSubmatch(ts.ReadFile("stderr"))
	if len(m) < 2 {
		ts.Fatalf("stderr has no match with a group for %s", args[1])
	}
	ts.Setenv(args[0], m[1])
}

const errPrefix = "fristed: error: "

func cmdErrLine(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) > 1 {
		ts.Fatalf("usage: errline [REGEXP]")
	}
	stderr := ts.ReadFile("stderr")
	if err := checkErrLine(stderr); err != nil {
		ts.Fatalf("%v", err)
	}
	if len(args) == 1 {
		re, err := regexp.Compile(args[0])
		ts.Check(err)
		if line := strings.TrimSuffix(stderr, "\n"); !re.MatchString(line) {
			ts.Fatalf("stderr %q does not match %s", line, args[0])
		}
	}
}

// checkErrLine checks the contract's error output: exactly one line,
// starting with "fristed: error: ".
func checkErrLine(stderr string) error {
	if !strings.HasSuffix(stderr, "\n") || strings.Count(stderr, "\n") != 1 {
		return fmt.Errorf("stderr is %q, want exactly one line", stderr)
	}
	if !strings.HasPrefix(stderr, errPrefix) {
		return fmt.Errorf("stderr is %q, want it to start with %q", stderr, errPrefix)
	}
	return nil
}

func cmdJSON(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: json keys|has|len|eq PATH ...")
	}
	doc, err := decodeJSON([]byte(ts.ReadFile("stdout")))
	if err != nil {
		ts.Fatalf("stdout: %v", err)
	}
	vals, err := jsonPath(doc, args[1])
	if err != nil {
		ts.Fatalf("%v", err)
	}
	if len(vals) == 0 && !neg {
		ts.Fatalf("%s: no values", args[1])
	}
	if args[0] == "in" {
		// Some value at PATH is VALUE.
		found := false
		for _, v := range vals {
			ok, err := jsonCheck("eq", v, args[2:])
			if err != nil {
				ts.Fatalf("%s: %v", args[1], err)
			}
			found = found || ok
		}
		if found == neg {
			b, _ := json.Marshal(vals)
			ts.Fatalf("json in %s: got %s", strings.Join(args[1:], " "), b)
		}
		return
	}
	for _, v := range vals {
		ok, err := jsonCheck(args[0], v, args[2:])
		if err != nil {
			ts.Fatalf("%s: %v", args[1], err)
		}
		if ok == neg {
			b, _ := json.Marshal(v)
			ts.Fatalf("json %s %s: got %s", args[0], strings.Join(args[1:], " "), b)
		}
	}
}

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if d.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	return v, nil
}

// jsonPath evaluates a PATH (see TestScripts) on v.
func jsonPath(v any, path string) ([]any, error) {
	if !strings.HasPrefix(path, ".") {
		return nil, fmt.Errorf("path %q: want a leading dot", path)
	}
	cur := []any{v}
	p := path
	wild := false // after [*], an element without the key is skipped
	if p == "." {
		return cur, nil
	}
	for p != "" {
		var next []any
		switch {
		case p[0] == '.':
			end := strings.IndexAny(p[1:], ".[")
			if end < 0 {
				end = len(p) - 1
			}
			name := p[1 : end+1]
			p = p[end+1:]
			if name == "" && strings.HasPrefix(p, "[") {
				continue // ".[0]"
			}
			for _, c := range cur {
				m, ok := c.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("path %q: .%s of a non-object", path, name)
				}
				x, ok := m[name]
				if !ok && wild {
					continue
				}
				if !ok {
					return nil, fmt.Errorf("path %q: no key %q", path, name)
				}
				next = append(next, x)
			}
		case p[0] == '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return nil, fmt.Errorf("path %q: unclosed [", path)
			}
			idx := p[1:end]
			p = p[end+1:]
			for _, c := range cur {
				a, ok := c.([]any)
				if !ok {
					return nil, fmt.Errorf("path %q: [%s] of a non-array", path, idx)
				}
				if idx == "*" {
					wild = true
					next = append(next, a...)
					continue
				}
				i, err := strconv.Atoi(idx)
				if err != nil || i < 0 || i >= len(a) {
					return nil, fmt.Errorf("path %q: index %s of an array of %d", path, idx, len(a))
				}
				next = append(next, a[i])
			}
		default:
			return nil, fmt.Errorf("path %q: bad step at %q", path, p)
		}
		cur = next
	}
	return cur, nil
}

// jsonCheck applies one check to v; the error is for a malformed check.
func jsonCheck(op string, v any, args []string) (bool, error) {
	switch op {
	case "keys", "has":
		m, ok := v.(map[string]any)
		if !ok {
			return false, fmt.Errorf("not an object")
		}
		for _, k := range args {
			if _, ok := m[k]; !ok {
				return false, nil
			}
		}
		if op == "keys" {
			for k := range m {
				if !slices.Contains(args, k) {
					return false, nil
				}
			}
		}
		return true, nil
	case "len":
		if len(args) != 1 {
			return false, fmt.Errorf("want: json len PATH N")
		}
		n, err := strconv.Atoi(args[0])
		if err != nil {
			return false, err
		}
		a, ok := v.([]any)
		if !ok {
			return false, fmt.Errorf("not an array")
		}
		return len(a) == n, nil
	case "eq":
		if len(args) != 1 {
			return false, fmt.Errorf("want: json eq PATH VALUE")
		}
		if s, ok := v.(string); ok {
			return s == args[0], nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return false, err
		}
		return string(b) == args[0], nil
	}
	return false, fmt.Errorf("unknown check %q", op)
}

func cmdRelaySQL(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: relaysql STATEMENT")
	}
	r := ts.Value(scriptRelayKey{}).(*scriptRelay)
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(r.data, "relay.db")+"?_busy_timeout=5000")
	ts.Check(err)
	defer db.Close()
	res, err := db.Exec(args[0])
	ts.Check(err)
	n, err := res.RowsAffected()
	ts.Check(err)
	if n == 0 {
		ts.Fatalf("relaysql: %s changed no row", args[0])
	}
}
