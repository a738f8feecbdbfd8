package server

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// putSnapshot answers PUT /v1/t/{tenant}/streams/{stream}/snapshot: an
// encrypted snapshot signed by the logged-in device, which must be able to
// read the stream. The stream is then pruned as far as the retention rule
// allows (pruneStream): an upload may be the countersigned one it waited for.
func (r *Relay) putSnapshot(c echo.Context, s *session) error {
	ctx := c.Request().Context()
	stream, err := streamParam(c)
	if err != nil {
		return err
	}
	raw, err := readBody(c, maxSnapshotBody)
	if err != nil {
		return err
	}
	sn, err := syncproto.UnmarshalSnapshot(raw)
	if err != nil {
		return decodeError("snapshot", err)
	}
	if sn.Tenant != s.t.id || sn.Stream != stream {
		return wire(syncproto.CodeBadRequest, "snapshot is for another tenant or stream")
	}
	if sn.Author != s.device {
		return wire(syncproto.CodeForbidden, "snapshot author is not this device")
	}
	if err := r.readable(ctx, s, stream); err != nil {
		return err
	}
	var key fcrypto.PublicKey
	var epochKnown bool
	s.t.read(func(ch *syncproto.Chain) {
		st := ch.State()
		key = st.Devices[s.device].SignPub
		if str := st.Streams[stream]; str != nil {
			epochKnown = str.Epoch(sn.Epoch) != nil
		}
	})
	if err := sn.Verify(key); err != nil {
		return wire(syncproto.CodeBadSignature, "snapshot signature does not verify")
	}
	if !epochKnown {
		return wire(syncproto.CodeUnknownEpoch, "snapshot names an epoch that does not exist")
	}
	head, _, err := r.st.StreamHead(ctx, s.t.id, stream)
	if err != nil {
		return storeError(err)
	}
	if sn.Seq == 0 || sn.Seq > head {
		return wire(syncproto.CodeBadRequest, "snapshot sequence number is not in the stream")
	}
	id := sn.Hash()
	if err := r.st.PutSnapshot(ctx, store.Snapshot{Tenant: s.t.id, Stream: stream, Seq: sn.Seq, ID: id, Raw: raw}); err != nil {
		return storeError(err)
	}
	if err := r.pruneStream(ctx, s.t, stream); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]string{"hash": id.String()})
}

// getSnapshot answers GET /v1/t/{tenant}/streams/{stream}/snapshot: the
// latest snapshot's bytes (or, with ?hash=h_..., that snapshot's), its
// sequence number in X-Fristed-Seq.
func (r *Relay) getSnapshot(c echo.Context, s *session) error {
	ctx := c.Request().Context()
	stream, err := streamParam(c)
	if err != nil {
		return err
	}
	if err := r.readable(ctx, s, stream); err != nil {
		return err
	}
	var sn store.Snapshot
	if q := c.QueryParam("hash"); q != "" {
		h, perr := syncproto.ParseHash(q)
		if perr != nil {
			return wire(syncproto.CodeBadRequest, "malformed snapshot hash")
		}
		sn, err = r.st.GetSnapshot(ctx, s.t.id, stream, h)
	} else {
		sn, err = r.st.LatestSnapshot(ctx, s.t.id, stream)
	}
	if errors.Is(err, store.ErrNotFound) {
		return wire(syncproto.CodeNotFound, "no snapshot of this stream")
	} else if err != nil {
		return storeError(err)
	}
	c.Response().Header().Set("X-Fristed-Seq", strconv.FormatUint(uint64(sn.Seq), 10))
	return c.Blob(http.StatusOK, "application/octet-stream", sn.Raw)
}
