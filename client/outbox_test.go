package client

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fristed/fristed/client/replica"
	"github.com/fristed/fristed/syncproto"
)

// noticeLog collects a device's notices.
type noticeLog struct {
	mu  sync.Mutex
	all []string
}

func (l *noticeLog) add(s string) { l.mu.Lock(); l.all = append(l.all, s); l.mu.Unlock() }

func (l *noticeLog) matching(sub string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.all {
		if strings.Contains(s, sub) {
			out = append(out, s)
		}
	}
	return out
}

// outboxOrg is a coordinator and one worker laptop (Kari's), with
// residents added by the coordinator; the worker's notices are collected.
func outboxOrg(t *testing.T, residents ...string) (c, w *Device, sids map[string]syncproto.StreamID, notices *noticeLog, r *loopbackRelay) {
	t.Helper()
	ctx := context.Background()
	r = startLoopbackRelay(t)
	root := t.TempDir()
	c = relNewOrg(t, r, filepath.Join(root, "coordinator"), "Enhet O")
	t.Cleanup(func() { c.Close() })
	_, err := c.WorkerAdd(ctx, "Kari Nordmann")
	require.NoError(t, err)
	notices = &noticeLog{}
	wopts := relOptions(t, filepath.Join(root, "kari"))
	wopts.Notice = notices.add
	w, code, err := DeviceInit(ctx, wopts, DeviceInitParams{RelayURL: r.URL, Org: c.Org(), Name: "kari-laptop"})
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	_, err = c.Approve(ctx, ApproveParams{Code: code, Worker: "Kari Nordmann"})
	require.NoError(t, err)
	sids = map[string]syncproto.StreamID{}
	for _, p := range residents {
		sids[p], err = c.ResidentAdd(ctx, ResidentAddParams{Pseudonym: p, Arrived: "2026-11-01"})
		require.NoError(t, err)
	}
	return c, w, sids, notices, r
}

// TestEditRefusedWithoutCaseKey: a laptop in a case's current epoch whose
// key the relay withholds cannot queue an edit to it (the edit could never
// be sealed); nothing is stored, and once the key arrives the edit goes
// through.
func TestEditRefusedWithoutCaseKey(t *testing.T) {
	ctx := context.Background()
	c, w, sids, _, r := outboxOrg(t, "Mina")
	require.NoError(t, c.Assign(ctx, "Mina", "Kari Nordmann"))

	// The relay withholds every wrapped key from the worker's sync.
	w.viaRelay(hostileProxy(t, r.URL, "/keys", func(m map[string]any) { m["keys"] = []any{} }))
	_, err := w.Sync(ctx)
	require.NoError(t, err)
	require.True(t, w.chain.State().CanRead(w.pc.device, sids["Mina"]), "the worker is in Mina's current epoch")

	for name, edit := range map[string]func() error{
		"log add":      func() error { _, err := w.LogAdd(sids["Mina"].String(), "practical", 5, "withheld"); return err },
		"resident set": func() error { return w.ResidentSet(sids["Mina"].String(), map[string]string{"language": "Urdu"}) },
		"record add": func() error {
			_, err := w.RecordAdd(sids["Mina"].String(), "goal", map[string]string{"title": "x"})
			return err
		},
	} {
		err := edit()
		if !errors.Is(err, ErrNoKey) {
			t.Fatalf("%s without the case key: got %v, want ErrNoKey", name, err)
		}
		if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "run fristed sync") {
			t.Fatalf("%s: error %q is not one line saying what to do", name, err)
		}
	}
	n, err := w.Pending()
	require.NoError(t, err)
	if n != 0 {
		t.Fatalf("pending after refused edits: got %d, want 0", n)
	}

	// The honest relay still holds the key (never acknowledged): it arrives.
	w.viaRelay(r.URL)
	_, err = w.Sync(ctx)
	require.NoError(t, err)
	_, err = w.LogAdd(sids["Mina"].String(), "practical", 5, "with the key")
	require.NoError(t, err)
	res, err := w.Sync(ctx)
	require.NoError(t, err)
	if res.Pushed != 1 || res.Pending != 0 {
		t.Fatalf("sync after the key arrived: got %+v, want 1 pushed, 0 pending", res)
	}
}

// TestUndeliverableEditsDoNotBlockSync: edits already queued that cannot be
// sealed no longer stop the sync. One to a case this laptop never held
// (queued by id before the edit commands checked) is dropped with a notice
// saying how many and why; one to a case whose current key is missing
// stays queued with a notice; the other cases push and pull as usual.
func TestUndeliverableEditsDoNotBlockSync(t *testing.T) {
	ctx := context.Background()
	c, w, sids, notices, _ := outboxOrg(t, "Mina", "Lea", "Sara")
	require.NoError(t, c.Assign(ctx, "Mina", "Kari Nordmann"))
	require.NoError(t, c.Assign(ctx, "Lea", "Kari Nordmann"))
	_, err := w.Sync(ctx)
	require.NoError(t, err)

	// Queue edits past the edit commands' checks, as an older version did.
	queue := func(sid syncproto.StreamID, text string) {
		t.Helper()
		_, ops, err := w.rep.LogOps(sid, replica.LogEntry{Category: "practical", Minutes: 5, Text: text,
			Author: w.pc.device.String(), At: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)})
		require.NoError(t, err)
		_, err = w.commit(sid, ops)
		require.NoError(t, err)
	}
	queue(sids["Sara"], "never held")
	queue(sids["Sara"], "never held either")
	queue(sids["Lea"], "key lost")
	leaID := sids["Lea"]
	lea := w.chain.State().Streams[leaID].Current().Epoch
	_, err = w.db().Exec(`DELETE FROM local_keys WHERE stream = ? AND epoch = ?`, leaID[:], int64(lea))
	require.NoError(t, err)
	_, err = w.LogAdd("Mina", "practical", 5, "delivered")
	require.NoError(t, err)
	// Something to pull, written by the coordinator.
	_, err = c.LogAdd("Mina", "safety", 10, "from the coordinator")
	require.NoError(t, err)
	_, err = c.Sync(ctx)
	require.NoError(t, err)

	res, err := w.Sync(ctx)
	require.NoError(t, err, "undeliverable edits must not fail the sync")
	if res.Pushed != 1 || res.Pending != 1 || res.Pulled == 0 {
		t.Fatalf("sync: got %+v, want 1 pushed (Mina), 1 pending (Lea), something pulled", res)
	}
	if got := notices.matching(fmt.Sprintf("dropped 2 edit(s) to %s", sids["Sara"])); len(got) != 1 {
		t.Fatalf("drop notices for Sara: got %q, want one", notices.matching("dropped"))
	}
	if got := notices.matching(fmt.Sprintf("1 edit(s) to %s wait for the case key", sids["Lea"])); len(got) != 1 {
		t.Fatalf("wait notices for Lea: got %q, want one", notices.matching("wait"))
	}
	if texts := logTextsOf(t, w, sids["Mina"]); !slices.Contains(texts, "from the coordinator") {
		t.Fatalf("worker's Mina log: got %q, want the coordinator's entry pulled", texts)
	}
	// The dropped edits left with the case this laptop never held.
	if rs, _ := w.rep.Streams(); slices.Contains(rs, sids["Sara"]) {
		t.Fatalf("Sara's case is still in the worker's replica after its edits were dropped")
	}
	_, err = c.Sync(ctx)
	require.NoError(t, err)
	if texts := logTextsOf(t, c, sids["Mina"]); !slices.Contains(texts, "delivered") {
		t.Fatalf("coordinator's Mina log: got %q, want the worker's entry", texts)
	}
	if texts := logTextsOf(t, c, sids["Sara"]); len(texts) != 0 {
		t.Fatalf("coordinator's Sara log: got %q, want nothing", texts)
	}

	// The next sync neither fails nor drops again; Lea's edit still waits.
	res, err = w.Sync(ctx)
	require.NoError(t, err)
	if res.Pending != 1 || len(notices.matching("dropped")) != 1 {
		t.Fatalf("second sync: got %+v and drop notices %q, want Lea's edit pending and no new drop", res, notices.matching("dropped"))
	}
}

func logTextsOf(t *testing.T, d *Device, sid syncproto.StreamID) []string {
	t.Helper()
	v, err := d.rep.Resident(sid, false)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range v.Log {
		out = append(out, e.Text)
	}
	return out
}
