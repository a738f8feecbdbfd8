package server

import (
	"context"
	"encoding/base64"
	"errors"
	"math"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// pushBatch answers POST /v1/t/{tenant}/streams/{stream}/batches.
func (r *Relay) pushBatch(c echo.Context, s *session) error {
	stream, err := streamParam(c)
	if err != nil {
		return err
	}
	raw, err := readBody(c, maxBatchBody)
	if err != nil {
		return err
	}
	stored, dup, err := r.ingest(c.Request().Context(), s.t, s.device, stream, raw)
	if err != nil {
		return err
	}
	if dup {
		r.metrics.duplicates.Add(1)
	} else {
		r.metrics.batches.Add(1)
		r.metrics.deltas.Add(uint64(len(stored.DeltaIDs)))
		r.metrics.batchBytes.Add(uint64(len(raw)))
	}
	rc, err := r.receipt(stored)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"seq": uint64(stored.Seq), "receipt": base64.StdEncoding.EncodeToString(rc)})
}

// probeHead is a chain head no tenant has: AppendBatch against it stores
// nothing, but still finds a batch stored before (it is idempotent whatever
// the head).
const probeHead = syncproto.ChainPos(math.MaxInt64)

// ingest checks one batch from device dev and appends it: the signature
// against the author's key from the chain, then State.CheckBatch, then an
// append conditional on the chain head the check used, retried if another
// statement slipped in. A batch already stored is answered as it was the
// first time.
func (r *Relay) ingest(ctx context.Context, t *tenant, dev syncproto.DeviceID, stream syncproto.StreamID, raw []byte) (store.Batch, bool, error) {
	b, err := syncproto.UnmarshalBatch(raw)
	if err != nil {
		return store.Batch{}, false, decodeError("batch", err)
	}
	if len(b.Deltas) > MaxDeltasPerBatch {
		return store.Batch{}, false, wire(syncproto.CodeTooLarge, "too many deltas in one batch")
	}
	if b.Tenant != t.id || b.Stream != stream {
		return store.Batch{}, false, wire(syncproto.CodeBadRequest, "batch is for another tenant or stream")
	}
	if b.Author != dev {
		return store.Batch{}, false, wire(syncproto.CodeForbidden, "batch author is not this device")
	}
	id, err := b.Hash()
	if err != nil {
		return store.Batch{}, false, decodeError("batch", err)
	}
	rec := store.Batch{Tenant: t.id, Stream: stream, ID: id, Author: dev, Epoch: b.Epoch, Raw: raw,
		DeltaIDs: make([]syncproto.DeltaID, len(b.Deltas))}
	for i, d := range b.Deltas {
		rec.DeltaIDs[i] = d.ID
	}

	verified := false
	for attempt := 0; attempt < 8; attempt++ {
		var (
			head     syncproto.Head
			knownAt  bool
			checkErr error
			key      fcrypto.PublicKey
		)
		t.read(func(ch *syncproto.Chain) {
			st := ch.State()
			if d := st.Devices[dev]; d != nil {
				key = d.SignPub
			}
			h, ok := ch.HashAt(b.ChainHead.Pos)
			knownAt = ok && h == b.ChainHead.Hash
			checkErr = st.CheckBatch(dev, stream, b.Epoch, b.ChainHead.Pos)
			head, _ = ch.Head()
		})
		if !verified {
			if err := b.Verify(key); err != nil {
				return store.Batch{}, false, wire(syncproto.CodeBadSignature, "batch signature does not verify")
			}
			verified = true
		}
		if !knownAt {
			if attempt == 0 {
				// The device may have seen a statement another relay
				// process appended after this one last looked.
				if err := t.sync(ctx, r.st); err != nil {
					return store.Batch{}, false, err
				}
				continue
			}
			return store.Batch{}, false, wire(syncproto.CodeBadRequest, "batch names a chain head that is not in this tenant's chain")
		}
		if checkErr != nil {
			if errors.Is(checkErr, syncproto.ErrDeviceRevoked) {
				return store.Batch{}, false, r.refuseRevoked(ctx, t, dev)
			}
			// A batch accepted before the chain changed is answered as
			// it was then (a retry after a lost reply).
			if stored, dup, err := r.st.AppendBatch(ctx, rec, probeHead, r.now()); err == nil && dup {
				return stored, true, nil
			}
			return store.Batch{}, false, wire(syncproto.CodeOf(checkErr), oneLine(checkErr.Error()))
		}
		stored, dup, err := r.st.AppendBatch(ctx, rec, head.Pos, r.now())
		switch {
		case err == nil:
			return stored, dup, nil
		case errors.Is(err, store.ErrChainMoved):
			if err := t.sync(ctx, r.st); err != nil {
				return store.Batch{}, false, err
			}
			continue
		case errors.Is(err, store.ErrConflict):
			return store.Batch{}, false, wire(syncproto.CodeConflict, "a delta id in this batch is already in the stream")
		default:
			return store.Batch{}, false, storeError(err)
		}
	}
	return store.Batch{}, false, wire(syncproto.CodeUnavailable, "the admin chain kept moving; retry")
}

// receipt signs the relay's receipt for a stored batch. Ed25519 is
// deterministic, so the same batch always gets the same receipt bytes.
func (r *Relay) receipt(b store.Batch) ([]byte, error) {
	rc := &syncproto.Receipt{Tenant: b.Tenant, Stream: b.Stream, Seq: b.Seq, Batch: b.ID, ReceivedMS: uint64(b.ReceivedAt.UnixMilli())}
	if err := rc.Sign(r.signer); err != nil {
		return nil, err
	}
	return rc.Marshal(), nil
}

// readable returns nil if the device may read the stream now: device
// revoked gets the revocation, anyone else not in the current epoch
// not_assigned.
func (r *Relay) readable(ctx context.Context, s *session, stream syncproto.StreamID) error {
	var ok, revoked bool
	s.t.read(func(ch *syncproto.Chain) {
		st := ch.State()
		revoked = st.Devices[s.device] == nil || st.Devices[s.device].Revoked
		ok = st.CanRead(s.device, stream)
	})
	switch {
	case revoked:
		return r.refuseRevoked(ctx, s.t, s.device)
	case !ok:
		return wire(syncproto.CodeNotAssigned, "this device may not read the stream")
	}
	return nil
}

type pulledJSON struct {
	Seq     uint64 `json:"seq"`
	Raw     string `json:"raw"`
	Receipt string `json:"receipt"`
}

// pullBatches answers GET /v1/t/{tenant}/streams/{stream}/batches
// ?after=N&limit=M[&wait=S].
func (r *Relay) pullBatches(c echo.Context, s *session) error {
	ctx := c.Request().Context()
	stream, err := streamParam(c)
	if err != nil {
		return err
	}
	after, err := uintQuery(c, "after", 0)
	if err != nil {
		return err
	}
	limit, err := uintQuery(c, "limit", defaultPullLimit)
	if err != nil {
		return err
	}
	if limit == 0 || limit > maxPullLimit {
		limit = min(max(limit, defaultPullLimit), maxPullLimit)
	}
	wait, err := waitQuery(c)
	if err != nil {
		return err
	}
	var wake <-chan struct{}
	if wait > 0 {
		ch, cancel := r.hub.wait(s.t.id, stream)
		defer cancel()
		wake = ch
		r.metrics.waiting.Add(1)
		defer r.metrics.waiting.Add(-1)
	}
	deadline := time.Now().Add(wait)
	for {
		if err := r.readable(ctx, s, stream); err != nil {
			return err
		}
		batches, err := r.batches(ctx, s.t.id, stream, syncproto.Seq(after), int(limit))
		if err != nil {
			return err
		}
		if len(batches) > 0 || !r.sleep(ctx, wake, deadline) {
			return r.writeBatches(c, s.t.id, stream, batches)
		}
		if err := s.t.sync(ctx, r.st); err != nil {
			return err
		}
	}
}

// sleep waits for a wake-up, a periodic re-check (a notification from
// another process can be lost), the deadline or shutdown. It reports
// whether the caller should look again.
func (r *Relay) sleep(ctx context.Context, wake <-chan struct{}, deadline time.Time) bool {
	left := time.Until(deadline)
	if wake == nil || left <= 0 {
		return false
	}
	tm := time.NewTimer(min(left, 5*time.Second))
	defer tm.Stop()
	select {
	case <-wake:
	case <-tm.C:
	case <-ctx.Done():
		return false
	case <-r.stopping:
		return false
	}
	return true
}

func waitQuery(c echo.Context) (time.Duration, error) {
	w, err := uintQuery(c, "wait", 0)
	if err != nil {
		return 0, err
	}
	return min(time.Duration(min(w, 3600))*time.Second, MaxWait), nil
}

// batches reads up to limit batches after a cursor, and stops early once
// maxPullBytes are gathered (at least one batch is always returned).
func (r *Relay) batches(ctx context.Context, tenant syncproto.TenantID, stream syncproto.StreamID, after syncproto.Seq, limit int) ([]store.Batch, error) {
	var out []store.Batch
	total, n := 0, min(limit, 16)
	for len(out) < limit {
		bs, err := r.st.Batches(ctx, tenant, stream, after, n)
		if err != nil {
			if len(out) > 0 {
				return out, nil
			}
			return nil, storeError(err)
		}
		for _, b := range bs {
			if len(out) > 0 && total+len(b.Raw) > maxPullBytes {
				return out, nil
			}
			out = append(out, b)
			total += len(b.Raw)
			after = b.Seq
		}
		if len(bs) < n || total >= maxPullBytes {
			break
		}
		avg := total/len(out) + 1
		n = max(1, min((maxPullBytes-total)/avg, limit-len(out)))
	}
	return out, nil
}

func (r *Relay) writeBatches(c echo.Context, tenant syncproto.TenantID, stream syncproto.StreamID, batches []store.Batch) error {
	head, _, err := r.st.StreamHead(c.Request().Context(), tenant, stream)
	if err != nil {
		return storeError(err)
	}
	out := make([]pulledJSON, len(batches))
	for i, b := range batches {
		rc, err := r.receipt(b)
		if err != nil {
			return err
		}
		out[i] = pulledJSON{Seq: uint64(b.Seq), Raw: base64.StdEncoding.EncodeToString(b.Raw), Receipt: base64.StdEncoding.EncodeToString(rc)}
		head = max(head, b.Seq)
	}
	return c.JSON(http.StatusOK, map[string]any{"batches": out, "head": uint64(head)})
}

type streamHeadJSON struct {
	Head   uint64 `json:"head"`
	Pruned uint64 `json:"pruned"`
}

// streamHead answers GET /v1/t/{tenant}/streams/{stream}/head.
func (r *Relay) streamHead(c echo.Context, s *session) error {
	ctx := c.Request().Context()
	stream, err := streamParam(c)
	if err != nil {
		return err
	}
	// The audit stream's head is also given to every active device of the
	// tenant: each appends to the log (CheckBatch) and keeps the receipts
	// for its own entries, and comparing them with the head is how an
	// author laptop sees its entries deleted before a coordinator laptop
	// pulled them. The head is a count of entries, which the device's own
	// receipts already bound; the entries stay unreadable to it (pulls are
	// refused).
	var auditHead bool
	s.t.read(func(ch *syncproto.Chain) {
		st := ch.State()
		str := st.Streams[stream]
		auditHead = str != nil && str.Kind == syncproto.StreamAudit && st.Devices[s.device].Active()
	})
	if !auditHead {
		if err := r.readable(ctx, s, stream); err != nil {
			return err
		}
	}
	head, pruned, err := r.st.StreamHead(ctx, s.t.id, stream)
	if err != nil {
		return storeError(err)
	}
	return c.JSON(http.StatusOK, streamHeadJSON{Head: uint64(head), Pruned: uint64(pruned)})
}

// heads answers POST /v1/t/{tenant}/heads: the head of every stream the
// device can read and the chain head; with wait > 0 it returns as soon as
// anything differs from what the device sent.
func (r *Relay) heads(c echo.Context, s *session) error {
	ctx := c.Request().Context()
	var req struct {
		Streams map[string]uint64 `json:"streams"`
		Chain   uint64            `json:"chain"`
		Wait    int64             `json:"wait"`
	}
	if err := readJSON(c, &req); err != nil {
		return err
	}
	known := make(map[syncproto.StreamID]syncproto.Seq, len(req.Streams))
	for k, v := range req.Streams {
		id, err := syncproto.ParseStreamID(k)
		if err != nil {
			return wire(syncproto.CodeBadRequest, "malformed stream id")
		}
		known[id] = syncproto.Seq(v)
	}
	wait := min(time.Duration(min(max(req.Wait, 0), 3600))*time.Second, MaxWait)
	var wake <-chan struct{}
	if wait > 0 {
		ch, cancel := r.hub.wait(s.t.id, syncproto.StreamID{})
		defer cancel()
		wake = ch
		r.metrics.waiting.Add(1)
		defer r.metrics.waiting.Add(-1)
	}
	deadline := time.Now().Add(wait)
	for {
		var (
			streams []syncproto.StreamID
			chain   syncproto.Head
			revoked bool
		)
		s.t.read(func(ch *syncproto.Chain) {
			st := ch.State()
			revoked = st.Devices[s.device] == nil || st.Devices[s.device].Revoked
			chain, _ = ch.Head()
			for id := range st.Streams {
				if st.CanRead(s.device, id) {
					streams = append(streams, id)
				}
			}
		})
		if revoked {
			return r.refuseRevoked(ctx, s.t, s.device)
		}
		out := make(map[string]streamHeadJSON, len(streams))
		differs := uint64(chain.Pos) != req.Chain
		seen := 0
		for _, id := range streams {
			head, pruned, err := r.st.StreamHead(ctx, s.t.id, id)
			if err != nil {
				return storeError(err)
			}
			out[id.String()] = streamHeadJSON{Head: uint64(head), Pruned: uint64(pruned)}
			if k, ok := known[id]; ok {
				seen++
				differs = differs || k != head
			} else {
				differs = differs || head != 0
			}
		}
		differs = differs || seen != len(known)
		if differs || !r.sleep(ctx, wake, deadline) {
			return c.JSON(http.StatusOK, map[string]any{"streams": out, "chain": uint64(chain.Pos)})
		}
		if err := s.t.sync(ctx, r.st); err != nil {
			return err
		}
	}
}
