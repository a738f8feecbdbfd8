package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// hostileProxy sits between a device and the relay and rewrites JSON
// answers to paths ending in suffix.
func hostileProxy(t *testing.T, relayURL, suffix string, rewrite func(m map[string]any)) string {
	t.Helper()
	target, err := url.Parse(relayURL)
	require.NoError(t, err)
	p := httputil.NewSingleHostReverseProxy(target)
	p.ModifyResponse = func(resp *http.Response) error {
		if !strings.HasSuffix(resp.Request.URL.Path, suffix) || resp.StatusCode != http.StatusOK {
			return nil
		}
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		rewrite(m)
		raw, _ = json.Marshal(m)
		resp.Body = io.NopCloser(bytes.NewReader(raw))
		resp.ContentLength = int64(len(raw))
		resp.Header.Del("Content-Length")
		return nil
	}
	s := httptest.NewServer(p)
	t.Cleanup(s.Close)
	return s.URL
}

// viaRelay points an open device at another relay URL (a proxy).
func (d *Device) viaRelay(u string) {
	d.cfg.RelayURL = u
	d.relay = nil
}

// TestWithheldBatchReported: a relay that drops a batch from a pull (a
// gap in its own sequence numbers) is reported, the stream is not
// advanced past the gap, and the sync fails with ErrHistory.
func TestWithheldBatchReported(t *testing.T) {
	ctx := context.Background()
	r := startLoopbackRelay(t)
	d := relNewOrg(t, r, filepath.Join(t.TempDir(), "coord"), "Enhet H")
	defer d.Close()
	sid, err := d.ResidentAdd(ctx, ResidentAddParams{Pseudonym: "Mina", Arrived: "2026-11-01"})
	require.NoError(t, err)
	for _, text := range []string{"one", "two", "three"} {
		_, err := d.LogAdd("Mina", "practical", 5, text)
		require.NoError(t, err)
		_, err = d.Sync(ctx)
		require.NoError(t, err)
	}
	// Forget what was pulled, so the next pull reads the stream again.
	_, err = d.db().Exec(`DELETE FROM local_cursor WHERE stream = ?`, sid[:])
	require.NoError(t, err)
	_, err = d.db().Exec(`DELETE FROM local_receipts WHERE stream = ?`, sid[:])
	require.NoError(t, err)

	d.viaRelay(hostileProxy(t, r.URL, "/batches", func(m map[string]any) {
		bs, _ := m["batches"].([]any)
		if len(bs) > 2 {
			m["batches"] = append(bs[:1:1], bs[2:]...) // drop the second
		}
	}))
	var notices []string
	d.opts.Notice = func(s string) { notices = append(notices, s) }
	_, err = d.Sync(ctx)
	if !errors.Is(err, ErrHistory) {
		t.Fatalf("got %v, want ErrHistory", err)
	}
	cur, err := d.cursor(sid)
	require.NoError(t, err)
	if cur != 1 {
		t.Errorf("got cursor %d, want 1 (not past the gap)", cur)
	}
	if len(notices) == 0 || !strings.Contains(strings.Join(notices, "\n"), "skipped") {
		t.Errorf("got notices %q, want one naming the gap", notices)
	}

	// Through the honest relay the stream catches up.
	d.viaRelay(r.URL)
	_, err = d.Sync(ctx)
	require.NoError(t, err)
}

// TestRolledBackHeadReported: a relay that shows a stream head below a
// receipt it signed for this device is reported.
func TestRolledBackHeadReported(t *testing.T) {
	ctx := context.Background()
	r := startLoopbackRelay(t)
	d := relNewOrg(t, r, filepath.Join(t.TempDir(), "coord"), "Enhet R")
	defer d.Close()
	sid, err := d.ResidentAdd(ctx, ResidentAddParams{Pseudonym: "Mina", Arrived: "2026-11-01"})
	require.NoError(t, err)
	_, err = d.LogAdd("Mina", "practical", 5, "kept by the relay?")
	require.NoError(t, err)
	_, err = d.Sync(ctx)
	require.NoError(t, err)

	d.viaRelay(hostileProxy(t, r.URL, "/heads", func(m map[string]any) {
		ss, _ := m["streams"].(map[string]any)
		if h, ok := ss[sid.String()].(map[string]any); ok {
			h["head"] = 0
		}
	}))
	_, err = d.Sync(ctx)
	if !errors.Is(err, ErrHistory) || !strings.Contains(err.Error(), "signed a receipt") {
		t.Fatalf("got %v, want ErrHistory about a signed receipt", err)
	}
}
