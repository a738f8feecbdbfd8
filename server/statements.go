package server

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// maxPurgeSkew is how far a purge's signed time may run ahead of the
// relay's clock.
const maxPurgeSkew = 10 * time.Minute

// statementError maps a chain verifier's refusal to its wire code:
// chain_conflict when the statement does not extend the head,
// bad_signature, invalid_statement for missing authority or a statement
// that contradicts the chain.
func statementError(err error) error {
	var we *syncproto.Error
	if errors.As(err, &we) {
		return err
	}
	switch code := syncproto.CodeOf(err); code {
	case syncproto.CodeBadRequest, syncproto.CodeUnknownVersion, syncproto.CodeTooLarge:
		return decodeError("statement", err)
	case syncproto.CodeInternal:
		return err
	case syncproto.CodeDeviceRevoked:
		return wire(syncproto.CodeInvalidStatement, oneLine(err.Error()))
	default:
		return wire(code, oneLine(err.Error()))
	}
}

// getChain answers GET /v1/t/{tenant}/chain?from=N&limit=M.
func (r *Relay) getChain(c echo.Context, s *session) error {
	from, err := uintQuery(c, "from", 0)
	if err != nil {
		return err
	}
	limit, err := uintQuery(c, "limit", maxChainLimit)
	if err != nil {
		return err
	}
	if limit == 0 || limit > maxChainLimit {
		limit = maxChainLimit
	}
	raws, head := s.t.statements(syncproto.ChainPos(from), int(limit))
	out := make([]string, len(raws))
	for i, raw := range raws {
		out[i] = base64.StdEncoding.EncodeToString(raw)
	}
	return c.JSON(http.StatusOK, map[string]any{"statements": out, "head": uint64(head)})
}

// postStatement answers POST /v1/t/{tenant}/chain. A device-signed
// statement must be signed by the logged-in device; a root-signed one may
// be posted by any coordinator device; relay facts only the relay makes.
func (r *Relay) postStatement(c echo.Context, s *session) error {
	return r.appendPosted(c, s.t, func(st *syncproto.Statement) error {
		switch st.Signer {
		case syncproto.SignerDevice:
			if st.SignerDevice != s.device {
				return wire(syncproto.CodeForbidden, "statement is signed by another device")
			}
		case syncproto.SignerRoot:
			if !s.coordinator() {
				return wire(syncproto.CodeForbidden, "only coordinator devices may post root-signed statements")
			}
		default:
			return wire(syncproto.CodeForbidden, "only the relay signs relay facts")
		}
		return nil
	})
}

// postRootStatement answers POST /v1/t/{tenant}/chain/root: a root-signed
// statement (a coordinator delegation, when the last coordinator device is
// lost) posted without a login; the root signature is the credential.
func (r *Relay) postRootStatement(c echo.Context) error {
	tid, err := tenantParam(c)
	if err != nil {
		return err
	}
	t, err := r.tenants.get(c.Request().Context(), tid)
	if err != nil {
		return tenantError(err)
	}
	return r.appendPosted(c, t, func(st *syncproto.Statement) error {
		if st.Signer != syncproto.SignerRoot {
			return wire(syncproto.CodeUnauthorized, "only root-signed statements may be posted without a login")
		}
		return nil
	})
}

func (r *Relay) appendPosted(c echo.Context, t *tenant, allow func(*syncproto.Statement) error) error {
	ctx := c.Request().Context()
	raw, err := readBody(c, maxStatementBody)
	if err != nil {
		return err
	}
	st, err := syncproto.UnmarshalStatement(raw)
	if err != nil {
		return decodeError("statement", err)
	}
	if st.Tenant != t.id {
		return wire(syncproto.CodeBadRequest, "statement is for another tenant")
	}
	if err := allow(st); err != nil {
		return err
	}
	// A purge destroys a case for good, and the chain allows it from a
	// time the signer states: the relay's clock must agree that time has
	// come, so a coordinator laptop with a clock set ahead cannot purge a
	// case early.
	if _, ok := st.Body.(*syncproto.StreamPurged); ok && st.TimeMS > uint64(r.now().Add(maxPurgeSkew).UnixMilli()) {
		return wire(syncproto.CodeInvalidStatement, "the purge is dated after the relay's clock: check this laptop's clock")
	}
	if _, ok := st.Body.(*syncproto.SnapshotCountersigned); ok && st.TimeMS < uint64(r.now().Add(-maxCountersignSkew).UnixMilli()) {
		return wire(syncproto.CodeInvalidStatement, "the countersignature is dated before the relay's clock: check this laptop's clock")
	}
	s, rec, err := t.appendStatement(ctx, r.st, func(*syncproto.Chain) ([]byte, error) { return raw, nil })
	if err != nil {
		return statementError(err)
	}
	r.metrics.statements.Add(1)
	r.afterStatement(ctx, t, s)
	return c.JSON(http.StatusCreated, map[string]any{"pos": uint64(rec.Pos), "hash": rec.Hash.String()})
}

// afterStatement carries out what an appended statement asks of the relay.
// The statement is already in the chain, whose state is what access
// control reads, so a failure here is logged and does not undo it: a
// missed token version bump still leaves the revoked device refused by the
// chain check, and a missed prune is done at the next snapshot upload.
func (r *Relay) afterStatement(ctx context.Context, t *tenant, s *syncproto.Statement) {
	ctx = context.WithoutCancel(ctx)
	var err error
	switch b := s.Body.(type) {
	case *syncproto.DeviceRevoked:
		_, err = r.st.BumpTokenVersion(ctx, t.id, b.Device)
		if err == nil {
			err = r.destroyDeviceKeys(ctx, t.id, b.Device)
		}
	case *syncproto.SnapshotCountersigned:
		err = r.pruneStream(ctx, t, b.Stream)
	case *syncproto.StreamPurged:
		// The stream's wrapped keys go with it: rotate, as for any
		// destroyed secret.
		if err = r.st.PurgeStream(ctx, t.id, b.Stream); err == nil {
			err = r.kek.Rotate(ctx, r.st)
		}
	}
	if err != nil {
		r.log.LogAttrs(ctx, levelWarn, "statement follow-up failed", errAttr(err))
	}
	r.hub.notify(t.id, syncproto.StreamID{})
}

// maxCountersignSkew is how far a countersignature's signed time may run
// behind the relay's clock: the keep window is measured from it, so a
// backdated one would make the relay prune early.
const maxCountersignSkew = 10 * time.Minute

// pruneStream prunes a stream to the newest countersigned snapshot that
// has stood for the keep window, if the relay holds that snapshot: the
// batches up to it and the snapshots before it go; it and every later
// snapshot stay, served by hash. Only countersignatures the chain does not
// void count, and the window is measured from the countersignature's
// signed time (not backdated, see appendPosted), and none signed between a
// device's compromised-since point and its revocation. So for the keep window
// after a countersignature the previous countersigned snapshot and the
// history after it stay, and a compromised-since revocation made within
// the window leaves every stream a snapshot countersigned before the
// compromise to start from (client/snapbase.go), however many
// countersignatures the thief signed.
func (r *Relay) pruneStream(ctx context.Context, t *tenant, stream syncproto.StreamID) error {
	settled := uint64(r.now().Add(-r.keep).UnixMilli())
	var cands []*syncproto.SnapshotCountersigned
	t.read(func(ch *syncproto.Chain) {
		// A countersignature signed after a device's compromised-since
		// point and before its revocation may vouch for that device's void
		// edits (the relay cannot see the snapshot's authors): it never
		// counts, so the one before it stays until a later one has stood.
		var windows [][2]syncproto.ChainPos
		for _, d := range ch.State().Devices {
			if d.HasCompromisedSince {
				windows = append(windows, [2]syncproto.ChainPos{d.CompromisedSince, d.RevokedAt})
			}
		}
	next:
		for pos := ch.Len() - 1; pos >= 0; pos-- {
			p := syncproto.ChainPos(pos)
			s := ch.Statement(p)
			cs, ok := s.Body.(*syncproto.SnapshotCountersigned)
			if !ok || cs.Stream != stream || ch.IsVoid(p) || s.TimeMS > settled {
				continue
			}
			for _, w := range windows {
				if p > w[0] && p <= w[1] {
					continue next
				}
			}
			c := *cs
			cands = append(cands, &c)
		}
	})
	for _, cs := range cands {
		sn, err := r.st.GetSnapshot(ctx, t.id, cs.Stream, cs.Snapshot)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return err
		}
		if sn.Seq != cs.Seq {
			continue
		}
		if err := r.st.Prune(ctx, t.id, cs.Stream, sn.Seq); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
		return nil
	}
	return nil
}

// rootReadChain answers POST /v1/t/{tenant}/chain/root-read: a page of the
// chain for the holder of the org root key, who has no device yet (org
// recover verifies the whole chain before the root signs on its head). The
// body is an AuthProof for the zero device id, signed by the root key over
// a nonce from /auth/challenge; a nonce serves one page.
func (r *Relay) rootReadChain(c echo.Context) error {
	ctx := c.Request().Context()
	tid, err := tenantParam(c)
	if err != nil {
		return err
	}
	from, err := uintQuery(c, "from", 0)
	if err != nil {
		return err
	}
	limit, err := uintQuery(c, "limit", maxChainLimit)
	if err != nil {
		return err
	}
	if limit == 0 || limit > maxChainLimit {
		limit = maxChainLimit
	}
	raw, err := readBody(c, maxAuthBody)
	if err != nil {
		return err
	}
	proof, err := syncproto.UnmarshalAuthProof(raw)
	if err != nil {
		return decodeError("auth proof", err)
	}
	denied := wire(syncproto.CodeUnauthorized, "chain read refused")
	if proof.Tenant != tid || proof.Device != (syncproto.DeviceID{}) || !proof.Relay.Equal(r.signer.Public()) {
		return denied
	}
	t, err := r.proofTenant(ctx, tid, proof.Nonce, denied)
	if err != nil {
		return err
	}
	var root fcrypto.PublicKey
	t.read(func(ch *syncproto.Chain) { root = ch.State().Root })
	if proof.Verify(root) != nil {
		return denied
	}
	signed := time.UnixMilli(int64(min(proof.SignedMS, 1<<62)))
	if d := r.now().Sub(signed); d > authSkew || d < -authSkew {
		return wire(syncproto.CodeUnauthorized, "chain read refused: check this laptop's clock")
	}
	raws, head := t.statements(syncproto.ChainPos(from), int(limit))
	out := make([]string, len(raws))
	for i, raw := range raws {
		out[i] = base64.StdEncoding.EncodeToString(raw)
	}
	return c.JSON(http.StatusOK, map[string]any{"statements": out, "head": uint64(head)})
}
