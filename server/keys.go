package server

import (
	"context"
	"encoding/base64"
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
	if wk.Tenant != s.t.id {
		return wire(syncproto.CodeBadRequest, "wrapped key is for another tenant")
	}
	var refusal error
	s.t.read(func(ch *syncproto.Chain) {
		st := ch.State()
		str := st.Streams[wk.Stream]
		switch {
		case str == nil || str.Purged:
			refusal = wire(syncproto.CodeNotFound, "unknown stream")
		case str.Epoch(wk.Epoch) == nil:
			// An epoch a voided statement started (a compromised
			// coordinator laptop's re-key): honest devices may have
			// sealed batches under it, so its key may go to a device
			// in the current epoch, to read that history.
			if !voidEpoch(ch, wk.Stream, wk.Epoch) {
				refusal = wire(syncproto.CodeUnknownEpoch, "the stream has no such epoch")
			} else if cur := str.Current(); cur == nil || !cur.Has(wk.Device) {
				refusal = wire(syncproto.CodeNotAssigned, "the device is not in the current epoch")
			} else if !st.Devices[wk.Device].Active() {
				refusal = wire(syncproto.CodeForbidden, "the device is revoked")
			}
		case !str.Epoch(wk.Epoch).Has(wk.Device) && !str.Current().Has(wk.Device):
			// A device new to a stream may receive older epochs' keys to
			// read the history, but only once it is in the current epoch.
			refusal = wire(syncproto.CodeNotAssigned, "the device is not in that epoch nor the current one")
		case !st.Devices[wk.Device].Active():
			refusal = wire(syncproto.CodeForbidden, "the device is revoked")
		}
	})
	if refusal != nil {
		return refusal
	}
	sec := store.Secret{Tenant: s.t.id, Stream: wk.Stream, Kind: KindWrapped, Name: WrappedName(wk.Stream, wk.Epoch, wk.Device)}
	if err := r.kek.Put(ctx, r.st, sec, raw); err != nil {
		return storeError(err)
	}
	r.metrics.secretsStore.Add(1)
	return c.JSON(http.StatusCreated, map[string]string{})
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
