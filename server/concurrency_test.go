package server_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/server/relaytest"
	"github.com/fristed/fristed/syncproto"
)

func TestConcurrentDevicesSQLite(t *testing.T) { testConcurrentDevices(t) }

func TestConcurrentDevicesPostgres(t *testing.T) { testConcurrentDevices(t, withPostgres) }

// testConcurrentDevices runs 50 devices (10 workers, 5 devices each, one
// stream per worker) pushing and pulling at once, then checks that every
// stream holds each pushed batch exactly once, in a gap-free sequence,
// each author's batches in the order it sent them, and that every
// device's cursor only ever moved forward.
func testConcurrentDevices(t *testing.T, opts ...envOpt) {
	const (
		workers   = 10
		perWorker = 5
		batches   = 8
		deltas    = 5
	)
	e := startEnv(t, opts...)
	g := newOrg(t, e)
	type member struct {
		dev    *relaytest.Device
		sess   *relaytest.Session
		stream syncproto.StreamID
		epoch  syncproto.Epoch
	}
	var members []member
	for i := 0; i < workers; i++ {
		w, devs, sess := g.worker(perWorker)
		s, ep := g.stream([]syncproto.WorkerID{w}, devs...)
		for j := range devs {
			members = append(members, member{devs[j], sess[j], s, ep})
		}
	}
	head := g.o.Head()

	type pushed struct {
		hash    syncproto.Hash
		seq     syncproto.Seq
		author  syncproto.DeviceID
		counter uint64
	}
	var mu sync.Mutex
	all := map[syncproto.StreamID][]pushed{}
	pulls := map[syncproto.DeviceID][]relaytest.Pulled{}
	errs := make(chan error, len(members))
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func(m member) {
			defer wg.Done()
			err := func() error {
				au := &relaytest.Author{Dev: m.dev, Stream: m.stream}
				var cursor syncproto.Seq
				var got []relaytest.Pulled
				pull := func(wait time.Duration) error {
					p, _, err := m.sess.Pull(m.stream, cursor, 7, wait)
					if err != nil {
						return fmt.Errorf("pull: %w", err)
					}
					for _, b := range p {
						if b.Seq <= cursor {
							return fmt.Errorf("cursor went from %d to %d", cursor, b.Seq)
						}
						cursor = b.Seq
					}
					got = append(got, p...)
					return nil
				}
				for i := 0; i < batches; i++ {
					vals := make([][]byte, deltas)
					for k := range vals {
						vals[k] = bytes.Repeat([]byte{byte(i), byte(k)}, 128)
					}
					b, raw, err := au.Batch(g.o, m.epoch, head, vals...)
					if err != nil {
						return err
					}
					seq, rc, err := m.sess.Push(m.stream, raw)
					if err != nil {
						return fmt.Errorf("push %d: %w", i, err)
					}
					r, err := syncproto.UnmarshalReceipt(rc)
					if err != nil {
						return err
					}
					h, _ := b.Hash()
					if r.Verify(e.relayKey) != nil || r.Seq != seq || r.Batch != h || r.Stream != m.stream {
						return fmt.Errorf("push %d: receipt does not match", i)
					}
					mu.Lock()
					all[m.stream] = append(all[m.stream], pushed{h, seq, m.dev.ID, b.Counter})
					mu.Unlock()
					if err := pull(0); err != nil {
						return err
					}
				}
				want := syncproto.Seq(perWorker * batches)
				deadline := time.Now().Add(60 * time.Second)
				for cursor < want {
					if time.Now().After(deadline) {
						return fmt.Errorf("pulled up to %d of %d", cursor, want)
					}
					if err := pull(5 * time.Second); err != nil {
						return err
					}
				}
				mu.Lock()
				pulls[m.dev.ID] = got
				mu.Unlock()
				return nil
			}()
			if err != nil {
				errs <- fmt.Errorf("device %s: %w", m.dev.ID, err)
			}
		}(m)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	for s, ps := range all {
		bySeq := map[syncproto.Seq]pushed{}
		for _, p := range ps {
			if q, dup := bySeq[p.seq]; dup {
				t.Fatalf("stream %s: seq %d given to two batches (%v, %v)", s, p.seq, q.hash, p.hash)
			}
			bySeq[p.seq] = p
		}
		if len(bySeq) != perWorker*batches {
			t.Fatalf("stream %s: %d batches stored, want %d", s, len(bySeq), perWorker*batches)
		}
		last := map[syncproto.DeviceID]uint64{}
		for seq := syncproto.Seq(1); seq <= perWorker*batches; seq++ {
			p, ok := bySeq[seq]
			if !ok {
				t.Fatalf("stream %s: gap at seq %d", s, seq)
			}
			if p.counter <= last[p.author] {
				t.Fatalf("stream %s: author %s's batch %d stored after its batch %d", s, p.author, p.counter, last[p.author])
			}
			last[p.author] = p.counter
		}
	}
	for _, m := range members {
		got := pulls[m.dev.ID]
		if len(got) != perWorker*batches {
			t.Fatalf("device %s pulled %d batches, want %d", m.dev.ID, len(got), perWorker*batches)
		}
		for i, p := range got {
			want := all[m.stream]
			var match *pushed
			for j := range want {
				if want[j].seq == p.Seq {
					match = &want[j]
				}
			}
			b, err := syncproto.UnmarshalBatch(p.Raw)
			require.NoError(t, err)
			h, _ := b.Hash()
			if p.Seq != syncproto.Seq(i+1) || match == nil || match.hash != h {
				t.Fatalf("device %s: pulled #%d is seq %d, not the batch pushed at that seq", m.dev.ID, i, p.Seq)
			}
		}
	}
}

// TestTwoRelaysLongPoll runs two relay processes on one PostgreSQL
// database and data directory: a pull waiting on one wakes when a batch
// lands on the other.
func TestTwoRelaysLongPoll(t *testing.T) {
	e1 := startEnv(t, withPostgres)
	e2 := startEnv(t, withData(e1.data), withStore(e1.store))
	require.Equal(t, e1.relayKey, e2.relayKey, "both relays sign with the shared key")
	g := newOrg(t, e1)
	w, devs, sess := g.worker(2)
	s, ep := g.stream([]syncproto.WorkerID{w}, devs...)
	// B is logged in through relay 1 and waits on relay 2 with the same
	// token: the token key is shared too.
	b := &relaytest.Session{C: e2.c, Tenant: g.tenant, Dev: devs[1], Token: sess[1].Token}
	type result struct {
		p   []relaytest.Pulled
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		p, _, err := b.Pull(s, 0, 10, 30*time.Second)
		done <- result{p, err, time.Now()}
	}()
	time.Sleep(500 * time.Millisecond)
	_, raw, err := (&relaytest.Author{Dev: devs[0], Stream: s}).Batch(g.o, ep, g.o.Head(), []byte("hello"))
	require.NoError(t, err)
	pushedAt := time.Now()
	_, _, err = sess[0].Push(s, raw)
	require.NoError(t, err)
	select {
	case r := <-done:
		require.NoError(t, r.err)
		require.Len(t, r.p, 1)
		require.Equal(t, raw, r.p[0].Raw)
		if d := r.at.Sub(pushedAt); d > 4*time.Second {
			t.Errorf("long-poll on the other relay woke %v after the push, want a notification, not a timeout", d)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("long-poll on the other relay did not wake")
	}
}
