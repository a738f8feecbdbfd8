package server

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// maxFirstStatements caps the statements a tenant may be created with.
const maxFirstStatements = 64

// InviteHash is how an invite token is stored: only its hash.
func InviteHash(token string) syncproto.Hash { return syncproto.Hash(sha256.Sum256([]byte(token))) }

// createTenant answers POST /v1/tenants: a one-time invite and the new
// tenant's genesis (root-signed, naming this relay's key), optionally
// followed by more statements (the first coordinator's delegation).
func (r *Relay) createTenant(c echo.Context) error {
	ctx := c.Request().Context()
	var req struct {
		Invite     string   `json:"invite"`
		Genesis    string   `json:"genesis"`
		Statements []string `json:"statements"`
	}
	if err := readJSON(c, &req); err != nil {
		return err
	}
	if len(req.Statements) > maxFirstStatements {
		return wire(syncproto.CodeTooLarge, "too many statements")
	}
	raws := make([][]byte, 0, 1+len(req.Statements))
	for _, s := range append([]string{req.Genesis}, req.Statements...) {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) == 0 {
			return wire(syncproto.CodeBadRequest, "malformed statement encoding")
		}
		raws = append(raws, b)
	}
	t, err := newTenant(raws)
	if err != nil {
		return statementError(err)
	}
	var relay fcrypto.PublicKey
	t.read(func(ch *syncproto.Chain) { relay = ch.State().Relay })
	if !relay.Equal(r.signer.Public()) {
		return wire(syncproto.CodeInvalidStatement, "genesis names another relay's key")
	}
	if _, err := r.tenants.byFingerprint(ctx, t.org); err == nil {
		return wire(syncproto.CodeConflict, "this org already has a tenant here")
	} else if !errors.Is(err, errUnknownTenant) {
		return err
	}
	if err := r.st.ConsumeInvite(ctx, InviteHash(req.Invite), t.id, r.now()); errors.Is(err, store.ErrNotFound) {
		return wire(syncproto.CodeUnauthorized, "invite unknown, used or expired")
	} else if errors.Is(err, store.ErrConflict) {
		return wire(syncproto.CodeConflict, "tenant exists")
	} else if err != nil {
		return storeError(err)
	}
	for i, raw := range raws {
		rec := store.Statement{Pos: syncproto.ChainPos(i), Hash: syncproto.HashStatement(raw), Raw: raw}
		if err := r.st.AppendStatement(ctx, t.id, rec); err != nil {
			return err
		}
		r.metrics.statements.Add(1)
	}
	r.tenants.add(t)
	return c.JSON(http.StatusCreated, map[string]string{"tenant": t.id.String()})
}

// lookupOrg answers GET /v1/orgs/{fingerprint}: the tenant of an org, for
// a new device that knows only the relay and the org fingerprint.
func (r *Relay) lookupOrg(c echo.Context) error {
	org, err := fcrypto.ParseFingerprint(c.Param("org"))
	if err != nil {
		return wire(syncproto.CodeBadRequest, "malformed org fingerprint")
	}
	id, err := r.tenants.byFingerprint(c.Request().Context(), org)
	if err != nil {
		return tenantError(err)
	}
	return c.JSON(http.StatusOK, map[string]string{"tenant": id.String()})
}

type headJSON struct {
	Pos  uint64 `json:"pos"`
	Hash string `json:"hash"`
}

// enrolInfo answers GET /v1/t/{tenant}/enrol-info: the genesis and every
// root-signed statement, which is what a new device needs to verify the
// coordinators' keys before it seals its name to them, and the head a
// root-signed statement must extend.
func (r *Relay) enrolInfo(c echo.Context) error {
	tid, err := tenantParam(c)
	if err != nil {
		return err
	}
	t, err := r.tenants.get(c.Request().Context(), tid)
	if err != nil {
		return tenantError(err)
	}
	out := []string{}
	var head syncproto.Head
	t.read(func(ch *syncproto.Chain) {
		head, _ = ch.Head()
		for i, raw := range t.raws {
			if s := ch.Statement(syncproto.ChainPos(i)); s != nil && s.Signer == syncproto.SignerRoot {
				out = append(out, base64.StdEncoding.EncodeToString(raw))
			}
		}
	})
	return c.JSON(http.StatusOK, map[string]any{
		"statements": out,
		"head":       headJSON{Pos: uint64(head.Pos), Hash: head.Hash.String()},
	})
}

// postEnrolment answers POST /v1/t/{tenant}/enrolments: a new device's
// self-signed request, kept for coordinators for enrolmentTTL.
func (r *Relay) postEnrolment(c echo.Context) error {
	ctx := c.Request().Context()
	tid, err := tenantParam(c)
	if err != nil {
		return err
	}
	raw, err := readBody(c, maxEnrolmentBody)
	if err != nil {
		return err
	}
	req, err := syncproto.UnmarshalEnrolment(raw)
	if err != nil {
		return decodeError("enrolment", err)
	}
	if req.Tenant != tid {
		return wire(syncproto.CodeBadRequest, "enrolment is for another tenant")
	}
	if err := req.Verify(); err != nil {
		return decodeError("enrolment", err)
	}
	if _, err := r.tenants.lookup(ctx, tid); err != nil {
		return tenantError(err)
	}
	if err := r.st.PutEnrolment(ctx, tid, req.Request, raw, r.now().Add(enrolmentTTL)); errors.Is(err, store.ErrConflict) {
		return wire(syncproto.CodeConflict, "request id already used by another enrolment")
	} else if err != nil {
		return storeError(err)
	}
	return c.JSON(http.StatusCreated, map[string]string{"request": req.Request.String()})
}

func requestParam(c echo.Context) (syncproto.RequestID, error) {
	id, err := syncproto.ParseRequestID(c.Param("request"))
	if err != nil {
		return id, wire(syncproto.CodeBadRequest, "malformed request id")
	}
	return id, nil
}

// getEnrolment answers GET /v1/t/{tenant}/enrolments/{request}
// (coordinators): the raw enrolment.
func (r *Relay) getEnrolment(c echo.Context, s *session) error {
	req, err := requestParam(c)
	if err != nil {
		return err
	}
	raw, err := r.st.GetEnrolment(c.Request().Context(), s.t.id, req, r.now())
	if err != nil {
		return storeError(err)
	}
	return c.Blob(http.StatusOK, "application/octet-stream", raw)
}

// deleteEnrolment answers DELETE /v1/t/{tenant}/enrolments/{request}.
func (r *Relay) deleteEnrolment(c echo.Context, s *session) error {
	req, err := requestParam(c)
	if err != nil {
		return err
	}
	if err := r.st.DeleteEnrolment(c.Request().Context(), s.t.id, req); err != nil {
		return storeError(err)
	}
	return c.NoContent(http.StatusNoContent)
}

// lastSeen answers GET /v1/t/{tenant}/devices/last-seen (coordinators):
// the day each device last logged in.
func (r *Relay) lastSeen(c echo.Context, s *session) error {
	seen, err := r.st.LastSeen(c.Request().Context(), s.t.id)
	if err != nil {
		return storeError(err)
	}
	out := make(map[string]string, len(seen))
	for d, t := range seen {
		out[d.String()] = t.UTC().Format(time.DateOnly)
	}
	return c.JSON(http.StatusOK, out)
}
