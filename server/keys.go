package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// Secret kinds in the store.
const (
	KindWrapped = "wrapped" // one epoch key wrapped to one device, named WrappedName
	KindRelease = "release" // an alarm envelope's release identity
)

// WrappedName is the store name of the copy of a stream's epoch key
// wrapped to one device.
func WrappedName(stream syncproto.StreamID, epoch syncproto.Epoch, device syncproto.DeviceID) string {
	return fmt.Sprintf("%s/%d/%s", stream, epoch, device)
}

// putKey answers PUT /v1/t/{tenant}/keys (coordinators): one wrapped epoch
// key for one device of that epoch, kept sealed under the KEK until the
// device acknowledges it.
func (r *Relay) putKey(c echo.Context, s *session) error {
	ctx := c.Request().Context()
	raw, err := readBody(c, maxWrappedKeyBody)
	if err != nil {
		return err
	}
	wk, err := syncproto.UnmarshalWrappedKey(raw)
	if err != nil {
		return decodeError("wrapped key", err)
	}
	var refusal error
	s.t.read(func(ch *syncproto.Chain) { refusal = checkWrappedKey(ch, s.t.id, wk) })
	if refusal != nil {
		return refusal
	}
	if err := r.kek.Put(ctx, r.st, wrappedSecret(wk), raw); err != nil {
		return storeError(err)
	}
	r.metrics.secretsStore.Add(1)
	return c.JSON(http.StatusCreated, map[string]string{})
}

// MaxKeyBatch is how many wrapped keys one batch upload or batch
// acknowledgement may carry.
const MaxKeyBatch = 256

// putKeys answers POST /v1/t/{tenant}/keys/batch (coordinators): up to
// MaxKeyBatch wrapped keys, each checked exactly as putKey checks one, and
// stored all in one transaction. One refused key refuses the batch, with
// putKey's code and the key's index in the message; nothing is stored.
func (r *Relay) putKeys(c echo.Context, s *session) error {
	ctx := c.Request().Context()
	b, err := readBody(c, maxKeyBatchBody)
	if err != nil {
		return err
	}
	var req struct {
		Keys []string `json:"keys"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return wire(syncproto.CodeBadRequest, "malformed JSON body")
	}
	switch {
	case len(req.Keys) == 0:
		return wire(syncproto.CodeBadRequest, "empty key batch")
	case len(req.Keys) > MaxKeyBatch:
		return wire(syncproto.CodeTooLarge, fmt.Sprintf("key batch of %d keys, over %d", len(req.Keys), MaxKeyBatch))
	}
	raws := make([][]byte, len(req.Keys))
	wks := make([]*syncproto.WrappedKey, len(req.Keys))
	secs := make([]store.Secret, len(req.Keys))
	seen := make(map[string]int, len(req.Keys))
	for i, enc := range req.Keys {
		raw, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return wire(syncproto.CodeBadRequest, fmt.Sprintf("key %d: malformed base64", i))
		}
		if len(raw) > maxWrappedKeyBody {
			return wire(syncproto.CodeTooLarge, fmt.Sprintf("key %d: over %d bytes", i, maxWrappedKeyBody))
		}
		wk, err := syncproto.UnmarshalWrappedKey(raw)
		if err != nil {
			return atIndex(i, decodeError("wrapped key", err))
		}
		sec := wrappedSecret(wk)
		if j, dup := seen[sec.Name]; dup {
			return wire(syncproto.CodeBadRequest, fmt.Sprintf("key %d: same stream, epoch and device as key %d", i, j))
		}
		seen[sec.Name] = i
		raws[i], wks[i], secs[i] = raw, wk, sec
	}
	var refusal error
	s.t.read(func(ch *syncproto.Chain) {
		for i, wk := range wks {
			if err := checkWrappedKey(ch, s.t.id, wk); err != nil {
				refusal = atIndex(i, err)
				return
			}
		}
	})
	if refusal != nil {
		return refusal
	}
	if err := r.kek.PutAll(ctx, r.st, secs, raws); err != nil {
		return storeError(err)
	}
	r.metrics.secretsStore.Add(uint64(len(secs)))
	return c.JSON(http.StatusCreated, map[string]int{"stored": len(secs)})
}

// atIndex prefixes a wire error's message with the index of the batch
// entry it is about, keeping its code.
func atIndex(i int, err error) error {
	var we *syncproto.Error
	if errors.As(err, &we) {
		return wire(we.Code, fmt.Sprintf("key %d: %s", i, we.Message))
	}
	return err
}

func wrappedSecret(wk *syncproto.WrappedKey) store.Secret {
	return store.Secret{Tenant: wk.Tenant, Stream: wk.Stream, Kind: KindWrapped, Name: WrappedName(wk.Stream, wk.Epoch, wk.Device)}
}

// checkWrappedKey decides whether a wrapped key may be stored for tenant
// on the chain ch: nil, or the wire error refusing it.
func checkWrappedKey(ch *syncproto.Chain, tenant syncproto.TenantID, wk *syncproto.WrappedKey) error {
	if wk.Tenant != tenant {
		return wire(syncproto.CodeBadRequest, "wrapped key is for another tenant")
	}
	st := ch.State()
	str := st.Streams[wk.Stream]
	switch {
	case str == nil || str.Purged:
		return wire(syncproto.CodeNotFound, "unknown stream")
	case str.Epoch(wk.Epoch) == nil:
		// An epoch a voided statement started (a compromised
		// coordinator laptop's re-key): honest devices may have
		// sealed batches under it, so its key may go to a device
		// in the current epoch, to read that history.
		if !voidEpoch(ch, wk.Stream, wk.Epoch) {
			return wire(syncproto.CodeUnknownEpoch, "the stream has no such epoch")
		} else if cur := str.Current(); cur == nil || !cur.Has(wk.Device) {
			return wire(syncproto.CodeNotAssigned, "the device is not in the current epoch")
		} else if !st.Devices[wk.Device].Active() {
			return wire(syncproto.CodeForbidden, "the device is revoked")
		}
	case !str.Epoch(wk.Epoch).Has(wk.Device) && !str.Current().Has(wk.Device):
		// A device new to a stream may receive older epochs' keys to
		// read the history, but only once it is in the current epoch.
		return wire(syncproto.CodeNotAssigned, "the device is not in that epoch nor the current one")
	case !st.Devices[wk.Device].Active():
		return wire(syncproto.CodeForbidden, "the device is revoked")
	}
	return nil
}

// voidEpoch reports whether only a void statement started epoch e of stream.
func voidEpoch(ch *syncproto.Chain, stream syncproto.StreamID, e syncproto.Epoch) bool {
	for _, ep := range ch.VoidEpochs()[stream] {
		if ep.Epoch == e {
			return true
		}
	}
	return false
}

// getKeys answers GET /v1/t/{tenant}/keys: every wrapped key addressed to
// the calling device that still exists.
func (r *Relay) getKeys(c echo.Context, s *session) error {
	secs, err := r.st.ListSecrets(c.Request().Context(), s.t.id, KindWrapped, "")
	if err != nil {
		return storeError(err)
	}
	suffix := "/" + s.device.String()
	out := []string{}
	for _, sec := range secs {
		if !strings.HasSuffix(sec.Name, suffix) {
			continue
		}
		raw, err := r.kek.Open(sec)
		if errors.Is(err, ErrSecretGone) {
			continue
		} else if err != nil {
			return err
		}
		out = append(out, base64.StdEncoding.EncodeToString(raw))
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": out})
}

// ackKey answers DELETE /v1/t/{tenant}/keys/{stream}/{epoch}: the device
// holds the key, so its copy is destroyed, then the KEK rotates so that no
// backup of the database can bring it back.
func (r *Relay) ackKey(c echo.Context, s *session) error {
	ctx := c.Request().Context()
	stream, err := streamParam(c)
	if err != nil {
		return err
	}
	ep, err := strconv.ParseUint(c.Param("epoch"), 10, 32)
	if err != nil {
		return wire(syncproto.CodeBadRequest, "malformed epoch")
	}
	name := WrappedName(stream, syncproto.Epoch(ep), s.device)
	if _, err := r.st.GetSecret(ctx, s.t.id, KindWrapped, name); errors.Is(err, store.ErrNotFound) {
		return c.NoContent(http.StatusNoContent)
	} else if err != nil {
		return storeError(err)
	}
	if err := r.kek.Destroy(ctx, r.st, s.t.id, KindWrapped, name); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// ackKeys answers POST /v1/t/{tenant}/keys/ack: the device holds every
// listed key (up to MaxKeyBatch), so all its copies are destroyed in one
// transaction, then the KEK rotates once for all of them. Copies already
// gone are no error; a malformed or repeated entry refuses the whole
// request, with its index, and destroys nothing.
func (r *Relay) ackKeys(c echo.Context, s *session) error {
	ctx := c.Request().Context()
	var req struct {
		Keys []struct {
			Stream string `json:"stream"`
			Epoch  uint32 `json:"epoch"`
		} `json:"keys"`
	}
	if err := readJSON(c, &req); err != nil {
		return err
	}
	switch {
	case len(req.Keys) == 0:
		return wire(syncproto.CodeBadRequest, "empty acknowledgement")
	case len(req.Keys) > MaxKeyBatch:
		return wire(syncproto.CodeTooLarge, fmt.Sprintf("acknowledgement of %d keys, over %d", len(req.Keys), MaxKeyBatch))
	}
	names := make([]string, len(req.Keys))
	seen := make(map[string]int, len(req.Keys))
	for i, k := range req.Keys {
		stream, err := syncproto.ParseStreamID(k.Stream)
		if err != nil {
			return wire(syncproto.CodeBadRequest, fmt.Sprintf("key %d: malformed stream id", i))
		}
		name := WrappedName(stream, syncproto.Epoch(k.Epoch), s.device)
		if j, dup := seen[name]; dup {
			return wire(syncproto.CodeBadRequest, fmt.Sprintf("key %d: same stream and epoch as key %d", i, j))
		}
		seen[name] = i
		names[i] = name
	}
	if _, err := r.kek.DestroyAll(ctx, r.st, s.t.id, KindWrapped, names); err != nil {
		return storeError(err)
	}
	return c.NoContent(http.StatusNoContent)
}

// destroyDeviceKeys destroys every wrapped key waiting for a device that
// was revoked: nobody may fetch them any more.
func (r *Relay) destroyDeviceKeys(ctx context.Context, tenant syncproto.TenantID, device syncproto.DeviceID) error {
	secs, err := r.st.ListSecrets(ctx, tenant, KindWrapped, "")
	if err != nil {
		return err
	}
	suffix := "/" + device.String()
	n := 0
	for _, sec := range secs {
		if strings.HasSuffix(sec.Name, suffix) {
			if err := r.st.DeleteSecret(ctx, tenant, KindWrapped, sec.Name); err != nil {
				return err
			}
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return r.kek.Rotate(ctx, r.st)
}
