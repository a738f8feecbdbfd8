package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// claims are an access token's claims: issuer (this relay), audience (the
// tenant), subject (the device), issued-at, expiry, and the device's token
// version, compared with the store on every request so that a revocation
// ends every token at once.
type claims struct {
	jwt.RegisteredClaims
	Ver uint64 `json:"ver"`
}

// session is an authenticated request's device.
type session struct {
	t      *tenant
	device syncproto.DeviceID
	role   syncproto.Role
}

func (s *session) coordinator() bool { return s.role == syncproto.RoleCoordinator }

// challenge answers POST /v1/t/{tenant}/auth/challenge with a fresh
// single-use nonce. The answer is the same whether or not the tenant or
// device exists.
func (r *Relay) challenge(c echo.Context) error {
	if _, err := tenantParam(c); err != nil {
		return err
	}
	var req struct {
		Device string `json:"device"`
	}
	if err := readJSON(c, &req); err != nil {
		return err
	}
	if _, err := syncproto.ParseDeviceID(req.Device); err != nil {
		return wire(syncproto.CodeBadRequest, "malformed device id")
	}
	var nonce syncproto.Hash
	if _, err := rand.Read(nonce[:]); err != nil {
		return err
	}
	if err := r.st.PutChallenge(c.Request().Context(), nonce, r.now().Add(challengeTTL)); err != nil {
		return storeError(err)
	}
	return c.JSON(http.StatusOK, map[string]string{"nonce": base64.StdEncoding.EncodeToString(nonce[:])})
}

// token answers POST /v1/t/{tenant}/auth/token: the body is an AuthProof,
// the device's signature over the nonce, the tenant, its id and this
// relay's key.
func (r *Relay) token(c echo.Context) error {
	ctx := c.Request().Context()
	tid, err := tenantParam(c)
	if err != nil {
		return err
	}
	raw, err := readBody(c, maxAuthBody)
	if err != nil {
		return err
	}
	proof, err := syncproto.UnmarshalAuthProof(raw)
	if err != nil {
		return decodeError("auth proof", err)
	}
	denied := wire(syncproto.CodeUnauthorized, "login refused")
	if proof.Tenant != tid || !proof.Relay.Equal(r.signer.Public()) {
		return denied
	}
	t, err := r.proofTenant(ctx, tid, proof.Nonce, denied)
	if err != nil {
		return err
	}
	var dev syncproto.DeviceInfo
	var known bool
	t.read(func(ch *syncproto.Chain) {
		if d := ch.State().Devices[proof.Device]; d != nil {
			dev, known = *d, true
		}
	})
	if !known || proof.Verify(dev.SignPub) != nil {
		return denied
	}
	signed := time.UnixMilli(int64(min(proof.SignedMS, 1<<62)))
	if d := r.now().Sub(signed); d > authSkew || d < -authSkew {
		return wire(syncproto.CodeUnauthorized, "login refused: check this device's clock")
	}
	if dev.Revoked {
		return r.refuseRevoked(ctx, t, proof.Device)
	}
	ver, err := r.st.TokenVersion(ctx, tid, proof.Device)
	if err != nil {
		return storeError(err)
	}
	tok, err := r.mintToken(tid, proof.Device, ver)
	if err != nil {
		return err
	}
	day := r.now().UTC().Truncate(24 * time.Hour)
	if err := r.st.TouchDevice(ctx, tid, proof.Device, day); err != nil {
		return storeError(err)
	}
	r.metrics.tokens.Add(1)
	return c.JSON(http.StatusOK, map[string]any{"token": tok, "expires_in": int(r.tokenTTL / time.Second)})
}

func (r *Relay) mintToken(tenant syncproto.TenantID, device syncproto.DeviceID, ver uint64) (string, error) {
	now := r.now()
	cl := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    r.issuer,
			Subject:   device.String(),
			Audience:  jwt.ClaimStrings{tenant.String()},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(r.tokenTTL)),
		},
		Ver: ver,
	}
	return jwt.NewWithClaims(jwt.SigningMethodEdDSA, cl).SignedString(r.tokenKey)
}

// parseToken checks a token's signature (EdDSA with the token key only),
// issuer, audience, issue and expiry times.
func (r *Relay) parseToken(tok string, tenant syncproto.TenantID) (*claims, error) {
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{"EdDSA"}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithAudience(tenant.String()),
		jwt.WithIssuer(r.issuer),
		jwt.WithLeeway(jwtLeeway),
		jwt.WithTimeFunc(r.now),
	)
	var cl claims
	_, err := p.ParseWithClaims(tok, &cl, func(*jwt.Token) (any, error) { return r.tokenKey.Public(), nil })
	if err != nil {
		return nil, err
	}
	return &cl, nil
}

// authed wraps a handler that needs a logged-in device (a coordinator
// device if coordOnly). Every request re-checks the token version and the
// chain: a revoked device gets the revocation at once.
func (r *Relay) authed(coordOnly bool, h func(echo.Context, *session) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		tid, err := tenantParam(c)
		if err != nil {
			return err
		}
		// The header's size is checked before anything parses it.
		hdrs := c.Request().Header.Values("Authorization")
		total := 0
		for _, h := range hdrs {
			total += len(h)
		}
		if total > maxAuthHeader {
			return wire(syncproto.CodeTooLarge, "authorization header too large")
		}
		tok, ok := "", false
		if len(hdrs) == 1 {
			tok, ok = strings.CutPrefix(hdrs[0], "Bearer ")
		}
		if !ok || tok == "" {
			if err := r.allowAddr(c); err != nil {
				return err
			}
			return wire(syncproto.CodeUnauthorized, "a bearer token is required")
		}
		cl, err := r.parseToken(tok, tid)
		var dev syncproto.DeviceID
		if err == nil {
			dev, err = syncproto.ParseDeviceID(cl.Subject)
		}
		if err != nil {
			// A request without a good token counts against its
			// address, as a public route's does.
			if err := r.allowAddr(c); err != nil {
				return err
			}
			return wire(syncproto.CodeUnauthorized, "token refused; log in again")
		}
		if err := r.allowDevice(tid, dev); err != nil {
			return err
		}
		t, err := r.tenants.get(ctx, tid)
		if errors.Is(err, errUnknownTenant) {
			return wire(syncproto.CodeUnauthorized, "token refused; log in again")
		} else if err != nil {
			return err
		}
		var info syncproto.DeviceInfo
		var known bool
		t.read(func(ch *syncproto.Chain) {
			if d := ch.State().Devices[dev]; d != nil {
				info, known = *d, true
			}
		})
		if !known {
			return wire(syncproto.CodeUnauthorized, "token refused; log in again")
		}
		if info.Revoked {
			return r.refuseRevoked(ctx, t, dev)
		}
		ver, err := r.st.TokenVersion(ctx, tid, dev)
		if err != nil {
			return storeError(err)
		}
		if ver != cl.Ver {
			return wire(syncproto.CodeUnauthorized, "token refused; log in again")
		}
		if coordOnly && info.Role != syncproto.RoleCoordinator {
			return wire(syncproto.CodeForbidden, "only coordinator devices may do this")
		}
		return h(c, &session{t: t, device: dev, role: info.Role})
	}
}

// refuseRevoked answers a revoked device with its signed revocation and
// the chain that proves it, after recording (once per device) a relay
// "device refused" fact in the chain for the coordinators to see.
func (r *Relay) refuseRevoked(ctx context.Context, t *tenant, dev syncproto.DeviceID) error {
	var done bool
	t.read(func(*syncproto.Chain) { done = t.refused[dev] })
	for attempt := 0; !done && attempt < 3; attempt++ {
		_, _, err := t.appendStatement(ctx, r.st, func(ch *syncproto.Chain) ([]byte, error) {
			if t.refused[dev] {
				return nil, errAlreadyRefused
			}
			s := ch.Next(t.id, syncproto.SignerRelay, syncproto.DeviceID{}, uint64(r.now().UnixMilli()), &syncproto.DeviceRefused{Device: dev})
			if err := s.Sign(r.signer); err != nil {
				return nil, err
			}
			return s.Marshal()
		})
		switch {
		case err == nil:
			r.metrics.statements.Add(1)
			r.hub.notify(t.id, syncproto.StreamID{})
			done = true
		case errors.Is(err, errAlreadyRefused):
			done = true
		case syncproto.CodeOf(err) == syncproto.CodeChainConflict:
			continue
		default:
			return err
		}
	}
	rev := &revokedError{}
	t.read(func(ch *syncproto.Chain) {
		d := ch.State().Devices[dev]
		if d == nil || !d.Revoked {
			return
		}
		rev.revocation = t.raws[d.RevokedAt]
		rev.chain = append([][]byte(nil), t.raws...)
	})
	if rev.revocation == nil {
		return wire(syncproto.CodeUnauthorized, "token refused; log in again")
	}
	return rev
}

var errAlreadyRefused = errors.New("device already refused")

// readJSON decodes a JSON body of at most maxJSONBody bytes.
func readJSON(c echo.Context, v any) error {
	b, err := readBody(c, maxJSONBody)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return wire(syncproto.CodeBadRequest, "malformed JSON body")
	}
	return nil
}

// proofTenant spends the one-time challenge an auth proof answers and
// returns the proof's tenant. An unknown or spent challenge and an unknown
// tenant get the same answer, denied.
func (r *Relay) proofTenant(ctx context.Context, tid syncproto.TenantID, nonce syncproto.Hash, denied error) (*tenant, error) {
	if err := r.st.ConsumeChallenge(ctx, nonce, r.now()); errors.Is(err, store.ErrNotFound) {
		return nil, denied
	} else if err != nil {
		return nil, storeError(err)
	}
	t, err := r.tenants.get(ctx, tid)
	if errors.Is(err, errUnknownTenant) {
		return nil, denied
	}
	return t, err
}
