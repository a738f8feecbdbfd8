package client

// The sync engine's convergence property test: three laptops (a
// coordinator and two workers' laptops assigned to the same resident) edit
// one case concurrently, go offline, are unassigned and reassigned while
// epochs change, and sync through the real relay handler in-process, with
// requests dropped, answers lost (so the client resends), requests sent
// twice and requests held back and delivered late. At the end every laptop
// syncs until nothing moves, and the canonical dumps of the case (every
// applied delta, every register write with its clock and device, the
// superseded versions, elements, tombstones and conflicts) must be
// byte-identical.
//
// FRISTED_CONV_SCHEDULES sets how many seeded schedules run in-process
// (default 2000), FRISTED_CONV_LOOPBACK how many through a relay on a
// loopback port (default 24), FRISTED_CONV_SEED runs one seed only, in both
// modes, with its trace.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/client/replica"
	"github.com/fristed/fristed/client/transport"
	"github.com/fristed/fristed/syncproto"
)

// convEnvInt reads a non-negative integer knob.
func convEnvInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

// convTemplate is the org every schedule starts from: made once, copied
// per schedule (the relay's data directory and the laptops' homes).
type convTemplate struct {
	dir      string // holds relay/, coord/, ada/, bo/, cy/
	resident syncproto.StreamID
}

var (
	convOnce sync.Once
	convTmpl *convTemplate
	convErr  error
)

// convLaptops are the homes of the three replicas compared; "cy" is a
// fourth laptop, of a worker assigned and unassigned only to change
// epochs.
var convLaptops = []string{"coord", "ada", "bo"}

func convSetup(t *testing.T) *convTemplate {
	convOnce.Do(func() { convTmpl, convErr = buildConvTemplate(t) })
	require.NoError(t, convErr, "build the convergence template")
	return convTmpl
}

func buildConvTemplate(t *testing.T) (*convTemplate, error) {
	ctx := context.Background()
	tm := &convTemplate{dir: filepath.Join(relRunDir, "conv-template")}
	r, err := openInprocRelay(filepath.Join(tm.dir, "relay"))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	inv, err := r.invite()
	if err != nil {
		return nil, err
	}
	rt := plainRT{handlerServe(r.h)}
	opts := func(name string) Options {
		o := relOptions(t, filepath.Join(tm.dir, name))
		o.RoundTripper = rt
		o.Notice = nil
		return o
	}
	c, err := OrgInit(ctx, opts("coord"), OrgInitParams{RelayURL: inprocURL, Invite: inv, Name: "Enhet K",
		RecoveryOut: filepath.Join(tm.dir, "recovery.age"), RecoveryPass: []byte("recovery " + relPassphrase)})
	if err != nil {
		return nil, fmt.Errorf("org init: %w", err)
	}
	defer c.Close()
	for _, w := range []string{"Ada", "Bo", "Cy"} {
		if _, err := c.WorkerAdd(ctx, w); err != nil {
			return nil, err
		}
		home := strings.ToLower(w)
		d, code, err := DeviceInit(ctx, opts(home), DeviceInitParams{RelayURL: inprocURL, Org: c.Org(), Name: home + "s laptop"})
		if err != nil {
			return nil, fmt.Errorf("device init %s: %w", home, err)
		}
		if _, err := c.Approve(ctx, ApproveParams{Code: code, Worker: w}); err != nil {
			return nil, fmt.Errorf("approve %s: %w", home, err)
		}
		if _, err := d.Sync(ctx); err != nil {
			return nil, fmt.Errorf("first sync of %s: %w", home, err)
		}
		if err := d.Close(); err != nil {
			return nil, err
		}
	}
	if tm.resident, err = c.ResidentAdd(ctx, ResidentAddParams{Pseudonym: "Mina", Arrived: "2026-11-01"}); err != nil {
		return nil, err
	}
	for _, w := range []string{"Ada", "Bo"} {
		if err := c.Assign(ctx, "Mina", w); err != nil {
			return nil, err
		}
	}
	if _, err := c.Sync(ctx); err != nil {
		return nil, err
	}
	for _, home := range []string{"ada", "bo", "cy"} {
		o := opts(home)
		d, err := Open(o)
		if err != nil {
			return nil, err
		}
		_, err = d.Sync(ctx)
		if cerr := d.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("sync %s: %w", home, err)
		}
	}
	return tm, nil
}

// TestConvergenceInproc runs the seeded schedules through the relay's
// handler in-process.
func TestConvergenceInproc(t *testing.T) {
	runConvergence(t, convEnvInt(t, "FRISTED_CONV_SCHEDULES", 2000), false)
}

// TestConvergenceLoopback runs schedules through the relay on a loopback
// port: real HTTP, the same faults.
func TestConvergenceLoopback(t *testing.T) {
	runConvergence(t, convEnvInt(t, "FRISTED_CONV_LOOPBACK", 24), true)
}

func runConvergence(t *testing.T, n int, loopback bool) {
	tm := convSetup(t)
	mode := "TestConvergenceInproc"
	if loopback {
		mode = "TestConvergenceLoopback"
	}
	seeds := make(chan uint64)
	go func() {
		defer close(seeds)
		if s := os.Getenv("FRISTED_CONV_SEED"); s != "" {
			seed, err := strconv.ParseUint(s, 10, 64)
			if err == nil {
				seeds <- seed
			}
			return
		}
		for s := range uint64(n) {
			seeds <- s + 1
		}
	}()
	one := os.Getenv("FRISTED_CONV_SEED") != ""
	if one {
		if _, err := strconv.ParseUint(os.Getenv("FRISTED_CONV_SEED"), 10, 64); err != nil {
			t.Fatalf("FRISTED_CONV_SEED=%q: want a number", os.Getenv("FRISTED_CONV_SEED"))
		}
	}
	// The schedules' files (a relay database and four laptop homes each)
	// go to a memory file system where there is one: the same SQLite and
	// vault files, without waiting for the disk on every fsync.
	base := t.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() && os.Getenv("FRISTED_CONV_DISK") == "" {
		if d, err := os.MkdirTemp("/dev/shm", "fristed-conv-"); err == nil {
			base = d
			defer os.RemoveAll(d)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	ran := 0
	totals := map[string]int{}
	for w := range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range seeds {
				dir := filepath.Join(base, fmt.Sprintf("w%d-%d", w, seed))
				s := &convSchedule{t: t, tm: tm, seed: seed, dir: dir, loopback: loopback}
				err := s.run()
				os.RemoveAll(dir)
				mu.Lock()
				ran++
				if s.net != nil {
					for k, v := range s.net.counts {
						totals[k] += v
					}
				}
				if s.refusals > 0 {
					totals["clock ahead"]++
				}
				if err != nil {
					failed = append(failed, fmt.Sprintf("seed %d: %v\n%s\nrerun: FRISTED_CONV_SEED=%d go test ./client -run '^%s$' -count=1 -v",
						seed, err, s.traceTail(one), seed, mode))
				} else if one {
					t.Logf("seed %d converged\n%s", seed, s.traceTail(true))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for i, f := range failed {
		if i == 3 {
			t.Errorf("... and %d more failing seeds", len(failed)-3)
			break
		}
		t.Error(f)
	}
	t.Logf("%d schedules, %d failed; requests dropped %d, answers lost %d, duplicated %d, held %d, refused offline %d; schedules with edits refused for a clock ahead %d",
		ran, len(failed), totals["drop"], totals["lose"], totals["dup"], totals["hold"], totals["offline"], totals["clock ahead"])
	// Enough schedules must have met every fault, or the run proves less
	// than it says.
	if ran >= 20 && len(failed) == 0 {
		for _, k := range []string{"drop", "lose", "dup", "hold", "offline"} {
			if totals[k] == 0 {
				t.Errorf("no schedule met a fault of kind %q", k)
			}
		}
		if ran >= 200 && totals["clock ahead"] == 0 {
			t.Errorf("no schedule had an edit refused for a clock ahead")
		}
	}
}

// convSchedule is one seeded run.
type convSchedule struct {
	t        *testing.T
	tm       *convTemplate
	seed     uint64
	dir      string
	loopback bool

	rng     *mrand.Rand
	net     *faultNet
	relay   *inprocRelay
	stopLB  func()
	clock   time.Time
	devs    map[string]*Device
	offline map[string]*bool
	skew    map[string]time.Duration
	trace   []string
	notices []string
	// ahead is the laptop whose clock jumps an hour ahead of the relay
	// between steps aheadFrom and aheadTo ("" in most schedules); its
	// edits of that time are refused by every laptop, its own included.
	ahead              string
	aheadFrom, aheadTo int
	refusals           int // notices of the clock jump
}

func (s *convSchedule) logf(format string, args ...any) {
	s.trace = append(s.trace, fmt.Sprintf(format, args...))
}

func (s *convSchedule) traceTail(all bool) string {
	tr := s.trace
	if !all && len(tr) > 60 {
		tr = append([]string{fmt.Sprintf("... %d earlier steps", len(tr)-60)}, tr[len(tr)-60:]...)
	}
	return "  " + strings.Join(tr, "\n  ")
}

func (s *convSchedule) options(home string) Options {
	o := Options{
		Home:       filepath.Join(s.dir, home),
		Passphrase: func(bool) ([]byte, error) { return []byte(relPassphrase), nil },
		WorkFactor: relWorkFactor,
		// Each laptop's clock is off by its own skew (under the allowed
		// one), so concurrent edits order by clock and device.
		Now:          func() time.Time { return s.clock.Add(s.skew[home]) },
		Notice:       func(msg string) { s.notices = append(s.notices, home+": "+msg); s.logf("  notice %s: %s", home, msg) },
		RoundTripper: s.net.device(s.offline[home]),
	}
	return o
}

func (s *convSchedule) open(home string) error {
	d, err := Open(s.options(home))
	if err != nil {
		return fmt.Errorf("open %s: %w", home, err)
	}
	s.devs[home] = d
	return nil
}

func (s *convSchedule) close() {
	for _, d := range s.devs {
		d.Close()
	}
	if s.stopLB != nil {
		s.stopLB()
	}
	if s.relay != nil {
		s.relay.Close()
	}
}

func (s *convSchedule) run() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	s.rng = mrand.New(mrand.NewPCG(s.seed, 0x5eed))
	if err := copyTree(s.tm.dir, s.dir); err != nil {
		return err
	}
	if s.relay, err = openInprocRelay(filepath.Join(s.dir, "relay")); err != nil {
		return err
	}
	defer s.close()
	serve := handlerServe(s.relay.h)
	var overHTTP atomic.Int64
	if s.loopback {
		var u string
		counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			overHTTP.Add(1)
			s.relay.h.ServeHTTP(w, r)
		})
		if u, s.stopLB, err = serveLoopback(counted); err != nil {
			return err
		}
		serve = loopbackServe(u)
		defer func() {
			if err == nil && overHTTP.Load() == 0 {
				err = errors.New("no request reached the relay over loopback HTTP")
			}
		}()
	}
	s.net = newFaultNet(s.rng, serve)
	// Some schedules meet a calm network, some a very lossy one.
	scale := []float64{0.5, 1, 2, 4}[s.rng.IntN(4)]
	s.net.pDrop, s.net.pLose, s.net.pDup, s.net.pHold = s.net.pDrop*scale, s.net.pLose*scale, s.net.pDup*scale, s.net.pHold*scale
	// Laptop clocks start an hour in the past (receipts carry the relay's
	// real time; a clock ahead of it would be refused).
	s.clock = time.Now().Add(-time.Hour)
	s.devs, s.offline, s.skew = map[string]*Device{}, map[string]*bool{}, map[string]time.Duration{}
	for _, h := range convLaptops {
		s.offline[h] = new(bool)
		s.skew[h] = time.Duration(s.rng.IntN(240)-120) * time.Second
		if err := s.open(h); err != nil {
			return err
		}
	}
	s.logf("seed %d: skews %v, fault rates x%v", s.seed, s.skew, scale)
	// One schedule in eight has a laptop whose clock jumps ahead for a
	// while. Its own generator leaves the other schedules as they were.
	if jr := mrand.New(mrand.NewPCG(s.seed, 0xc10c)); jr.IntN(8) == 0 {
		s.ahead = convLaptops[jr.IntN(len(convLaptops))]
		s.aheadFrom = jr.IntN(10)
		s.aheadTo = s.aheadFrom + 2 + jr.IntN(8)
		s.logf("%s's clock runs an hour ahead of the relay's from step %d to %d", s.ahead, s.aheadFrom, s.aheadTo)
	}

	steps := 12 + s.rng.IntN(20)
	for i := 0; i < steps; i++ {
		s.clock = s.clock.Add(time.Duration(s.rng.IntN(3000)) * time.Millisecond)
		if s.ahead != "" && (i == s.aheadFrom || i == s.aheadTo) {
			// The laptops' clocks run an hour behind the relay's: two
			// hours on puts this one an hour ahead of it.
			s.skew[s.ahead] += map[bool]time.Duration{true: 2 * time.Hour, false: -2 * time.Hour}[i == s.aheadFrom]
			s.logf("%s's clock moves to skew %v", s.ahead, s.skew[s.ahead])
		}
		home := convLaptops[s.rng.IntN(len(convLaptops))]
		var err error
		switch x := s.rng.IntN(100); {
		case x < 40:
			err = s.edit(home)
		case x < 70:
			err = s.sync(home)
		case x < 78:
			*s.offline[home] = !*s.offline[home]
			s.logf("%s offline=%v", home, *s.offline[home])
		case x < 88:
			err = s.epochChange()
		case x < 94:
			s.logf("deliver %d held requests", len(s.net.held))
			s.net.deliverHeld()
		default:
			// Quit and start again: the journal and in-flight batches
			// are replayed from disk.
			s.logf("%s restarts", home)
			if err = s.devs[home].Close(); err == nil {
				err = s.open(home)
			}
		}
		if err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
	}

	// Heal: no more faults, everyone online, held requests delivered, Bo
	// assigned again, then sync until nothing moves.
	s.logf("heal (%s)", s.net)
	s.net.deliverHeld()
	s.net.off = true
	for _, h := range convLaptops {
		*s.offline[h] = false
	}
	c := s.devs["coord"]
	if err := c.refreshChain(context.Background()); err != nil {
		return err
	}
	if !s.assigned("Bo") {
		s.logf("coord assigns Bo")
		if err := c.Assign(context.Background(), "Mina", "Bo"); err != nil {
			return fmt.Errorf("assign Bo: %w", err)
		}
	}
	quiet := false
	for round := 0; round < 8 && !quiet; round++ {
		quiet = true
		order := s.rng.Perm(len(convLaptops))
		for _, i := range order {
			h := convLaptops[i]
			res, err := s.devs[h].Sync(context.Background())
			s.logf("final sync %s: %+v %v", h, res, err)
			if err != nil {
				return fmt.Errorf("final sync of %s: %w", h, err)
			}
			if res.Pushed > 0 || res.Pulled > 0 || res.Pending > 0 {
				quiet = false
			}
		}
	}
	if !quiet {
		return errors.New("no quiescence after 8 rounds of syncing")
	}
	for _, n := range s.notices {
		if s.ahead != "" && strings.Contains(n, "ahead of the relay") {
			// The clock jump's warning, refusals and rebuild.
			if strings.Contains(n, "ignored batch") {
				s.refusals++
			}
			continue
		}
		if strings.Contains(n, "could not be delivered") || strings.Contains(n, "ignored") ||
			strings.Contains(n, "inconsistent") || strings.Contains(n, "refused") {
			return fmt.Errorf("an honest relay caused a notice: %s", n)
		}
	}
	return s.compare()
}

// compare requires identical dumps of the case on every laptop.
func (s *convSchedule) compare() error {
	sid := s.tm.resident
	var first []byte
	for _, h := range convLaptops {
		d, err := s.devs[h].rep.Dump(sid)
		if err != nil {
			return err
		}
		if first == nil {
			first = d
			if bytes.Count(d, []byte("\n")) < 2 {
				return errors.New("the case is empty on coord")
			}
			continue
		}
		if !bytes.Equal(first, d) {
			return fmt.Errorf("dump of %s differs from coord's:\n%s", h, dumpDiff(first, d))
		}
	}
	return nil
}

// dumpDiff lists the lines only in a and only in b.
func dumpDiff(a, b []byte) string {
	set := func(x []byte) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(string(x), "\n") {
			m[l] = true
		}
		return m
	}
	sa, sb := set(a), set(b)
	var out []string
	for l := range sa {
		if !sb[l] {
			out = append(out, "- "+l)
		}
	}
	for l := range sb {
		if !sa[l] {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func (s *convSchedule) assigned(worker string) bool {
	c := s.devs["coord"]
	w, err := c.workerByName(worker)
	if err != nil {
		return false
	}
	return c.chain.State().Streams[s.tm.resident].Assigned[w]
}

// sync syncs one laptop (offline, it fails at its first request); only a
// failure of the network is expected.
func (s *convSchedule) sync(home string) error {
	logins := s.net.dupLogins()
	res, err := s.devs[home].Sync(context.Background())
	s.logf("sync %s: %+v %v", home, res, err)
	if err != nil && !errors.Is(err, transport.ErrUnreachable) && !s.spentLogin(err, logins) {
		return fmt.Errorf("sync %s: %w", home, err)
	}
	return nil
}

// spentLogin reports whether err is a login refused because the network
// delivered token requests twice, three logins in a row (at the highest
// fault rate it happens): the client gives up after three, as it should.
func (s *convSchedule) spentLogin(err error, before int) bool {
	var we *syncproto.Error
	return errors.As(err, &we) && we.Code == syncproto.CodeUnauthorized && s.net.dupLogins()-before >= 3
}

// epochChange has the coordinator assign or unassign Cy (an epoch change
// for a fourth laptop) or Bo (whose laptop is one of the replicas).
func (s *convSchedule) epochChange() error {
	if *s.offline["coord"] {
		return nil
	}
	c := s.devs["coord"]
	w := "Cy"
	if s.rng.IntN(2) == 0 {
		w = "Bo"
	}
	ctx := context.Background()
	logins := s.net.dupLogins()
	if err := c.refreshChain(ctx); err != nil {
		s.logf("coord refresh: %v", err)
		if s.spentLogin(err, logins) {
			return nil
		}
		return okNet(err)
	}
	var err error
	if s.assigned(w) {
		s.logf("coord unassigns %s", w)
		err = c.Unassign(ctx, "Mina", w)
	} else {
		s.logf("coord assigns %s", w)
		err = c.Assign(ctx, "Mina", w)
	}
	if err != nil {
		s.logf("  -> %v", err)
	}
	if s.spentLogin(err, logins) {
		return nil
	}
	return okNet(err)
}

func okNet(err error) error {
	if err == nil || errors.Is(err, transport.ErrUnreachable) {
		return nil
	}
	return err
}

var (
	convFields = []string{"aliases", "language", "flat", "address_code"}
	convValues = map[string][]string{
		"aliases":      {"Mia", "Mina K", "M."},
		"language":     {"urdu", "norsk", "engelsk"},
		"flat":         {"A1", "B2"},
		"address_code": {"6", "7", "none"},
	}
)

// edit makes one random edit on a laptop that holds the case.
func (s *convSchedule) edit(home string) error {
	d := s.devs[home]
	sid := s.tm.resident
	if _, err := d.residentForEdit("Mina"); err != nil {
		s.logf("%s cannot edit: %v", home, err)
		return nil
	}
	var err error
	switch x := s.rng.IntN(100); {
	case x < 35:
		f := convFields[s.rng.IntN(len(convFields))]
		v := convValues[f][s.rng.IntN(len(convValues[f]))]
		s.logf("%s sets %s=%s", home, f, v)
		err = d.ResidentSet("Mina", map[string]string{f: v})
	case x < 60:
		s.logf("%s adds a log entry", home)
		_, err = d.LogAdd("Mina", "practical", 1+s.rng.IntN(90), fmt.Sprintf("entry %d by %s", s.rng.IntN(1000), home))
	case x < 72:
		log, lerr := d.rep.Log(sid)
		if lerr != nil || len(log) == 0 {
			return lerr
		}
		id := log[s.rng.IntN(len(log))].ID
		s.logf("%s removes log entry %s", home, id)
		ops, oerr := d.rep.RemoveOps(sid, replica.KindLog, id)
		if oerr != nil {
			return oerr
		}
		_, err = d.commit(sid, ops)
	case x < 82:
		s.logf("%s adds a goal", home)
		_, err = d.RecordAdd("Mina", "goal", map[string]string{"title": fmt.Sprintf("goal %d", s.rng.IntN(100))})
	default:
		goals, gerr := d.rep.Records(sid, "goal")
		if gerr != nil || len(goals) == 0 {
			return gerr
		}
		g := goals[s.rng.IntN(len(goals))]
		if s.rng.IntN(4) == 0 {
			s.logf("%s removes goal %s", home, g.ID)
			ops, oerr := d.rep.RemoveOps(sid, "goal", g.ID)
			if oerr != nil {
				return oerr
			}
			_, err = d.commit(sid, ops)
		} else {
			st := []string{"open", "in_progress", "achieved"}[s.rng.IntN(3)]
			s.logf("%s sets goal %s status=%s", home, g.ID, st)
			err = d.RecordSet("Mina", "goal", g.ID.String(), map[string]string{"status": st})
		}
	}
	if errors.Is(err, ErrNoKey) {
		// Refused up front: the newest epoch's key has not reached this
		// laptop yet (the edit would wait unsealable).
		s.logf("  -> %v", err)
		return nil
	}
	return err
}
