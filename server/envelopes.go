package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	fcrypto "github.com/fristed/fristed/crypto"
	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// Sealed alarm envelopes, relay side.
//
// A coordinator asks for a one-time release key for the next generation
// of an alarm (the relay keeps its identity sealed under the KEK, named
// "<alarm>/<generation>"), appends a coordinator-signed "envelope sealed"
// statement committing to the inner layer, and uploads the outer layer
// with the hash of the release credential's secret. Whoever holds the
// secret (an alarm centre) may then release the envelope, once: the relay
// strips the outer layer, destroys the release identity, signs an
// "envelope released" fact into the chain and returns the inner layer,
// which only the police contact can open, with the coordinator's statement
// and the chain that proves it.

const (
	// releaseRetryWindow is how long the winner of a release may repeat
	// its request (same nonce) and get the same inner layer; after it the
	// kept inner layer is dropped.
	releaseRetryWindow = 10 * time.Minute
	// forgetEvery spaces the sweeps that drop kept inner layers.
	forgetEvery       = time.Minute
	minReleaseNonce   = 16
	maxReleaseNonce   = 32
	releaseSecretSize = 32
)

// Release calls come from anyone who can reach the relay, so they have
// their own, strict, per-address budget: a burst for an alarm centre's
// retries and little more.
var (
	releaseRate  = rate.Every(6 * time.Second)
	releaseBurst = 30
)

// envelopeState is the relay's bookkeeping for envelopes.
type envelopeState struct {
	limit      *limiter
	lastForget atomic.Int64 // unix ms of the last ForgetInner sweep

	sizeOnce  sync.Once
	outerSize int
	sizeErr   error
}

func newEnvelopeState() *envelopeState {
	return &envelopeState{limit: newLimiter(releaseRate, releaseBurst)}
}

// envelopeRoutes registers the envelope routes.
func (r *Relay) envelopeRoutes(e *echo.Echo, tenantPath string) {
	r.env = newEnvelopeState()
	coord := true
	e.POST(tenantPath+"/envelopes/:alarm/release-key", r.authed(coord, r.releaseKey))
	e.PUT(tenantPath+"/envelopes/:alarm", r.authed(coord, r.putEnvelope))
	e.POST(tenantPath+"/envelopes/:alarm/release", r.releaseEnvelope)
}

// ReleaseName is the store name of an alarm's release identity for one
// generation.
func ReleaseName(alarm syncproto.AlarmID, generation uint32) string {
	return alarm.String() + "/" + strconv.FormatUint(uint64(generation), 10)
}

func alarmParam(c echo.Context) (syncproto.AlarmID, error) {
	id, err := syncproto.ParseAlarmID(c.Param("alarm"))
	if err != nil {
		return id, wire(syncproto.CodeBadRequest, "malformed alarm id")
	}
	return id, nil
}

// expectedOuterSize is the size of every outer layer: the padded inner layer
// encrypted to one hybrid release recipient.
func (r *Relay) expectedOuterSize() (int, error) {
	s := r.env
	s.sizeOnce.Do(func() {
		id, err := fcrypto.GenerateBoxIdentity()
		if err != nil {
			s.sizeErr = err
			return
		}
		outer, err := fcrypto.SealOuter([]byte{0}, id.Recipient())
		if err != nil {
			s.sizeErr = err
			return
		}
		s.outerSize = len(outer)
	})
	return s.outerSize, s.sizeErr
}

// envelopeInfo returns a copy of what the chain says about an alarm.
func envelopeInfo(t *tenant, alarm syncproto.AlarmID) (syncproto.EnvelopeInfo, bool) {
	var info syncproto.EnvelopeInfo
	var ok bool
	t.read(func(ch *syncproto.Chain) {
		if e := ch.State().Envelopes[alarm]; e != nil {
			info, ok = *e, true
		}
	})
	return info, ok
}

// releaseKey answers POST /v1/t/{tenant}/envelopes/{alarm}/release-key
// (coordinators): a fresh release identity for the alarm's next
// generation. Every earlier release identity of the alarm is destroyed
// first, so an outer layer sealed to one of them can never be opened.
func (r *Relay) releaseKey(c echo.Context, s *session) error {
	ctx := c.Request().Context()
	alarm, err := alarmParam(c)
	if err != nil {
		return err
	}
	next := uint32(1)
	if info, ok := envelopeInfo(s.t, alarm); ok {
		next = info.Generation + 1
	}
	old, err := r.st.ListSecrets(ctx, s.t.id, KindRelease, alarm.String()+"/")
	if err != nil {
		return storeError(err)
	}
	if len(old) > 0 {
		for _, sec := range old {
			if err := r.st.DeleteSecret(ctx, s.t.id, KindRelease, sec.Name); err != nil {
				return storeError(err)
			}
		}
		if err := r.kek.Rotate(ctx, r.st); err != nil {
			return err
		}
	}
	id, err := fcrypto.GenerateBoxIdentity()
	if err != nil {
		return err
	}
	plain := []byte(id.Marshal())
	defer clear(plain)
	sec := store.Secret{Tenant: s.t.id, Kind: KindRelease, Name: ReleaseName(alarm, next)}
	if err := r.kek.Put(ctx, r.st, sec, plain); err != nil {
		return storeError(err)
	}
	r.metrics.secretsStore.Add(1)
	return c.JSON(http.StatusOK, map[string]any{"recipient": id.Recipient().String(), "generation": next})
}

// errReleaseKeyGone: the release identity an outer layer needs does not
// exist (destroyed by a release or a re-seal, or never made).
var errReleaseKeyGone = errors.New("release identity gone")

// releaseIdentity opens an alarm generation's release identity.
func (r *Relay) releaseIdentity(ctx context.Context, tenant syncproto.TenantID, alarm syncproto.AlarmID, gen uint32) (*fcrypto.BoxIdentity, error) {
	sec, err := r.st.GetSecret(ctx, tenant, KindRelease, ReleaseName(alarm, gen))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errReleaseKeyGone
	} else if err != nil {
		return nil, err
	}
	plain, err := r.kek.Open(sec)
	if errors.Is(err, ErrSecretGone) {
		return nil, errReleaseKeyGone
	} else if err != nil {
		return nil, err
	}
	defer clear(plain)
	id, err := fcrypto.ParseBoxIdentity(string(plain))
	if err != nil {
		return nil, fmt.Errorf("stored release identity: %w", err)
	}
	return id, nil
}

// putEnvelope answers PUT /v1/t/{tenant}/envelopes/{alarm}
// (coordinators): {"generation": N, "outer": b64, "secret_hash": "h_..."}.
func (r *Relay) putEnvelope(c echo.Context, s *session) error {
	ctx := c.Request().Context()
	alarm, err := alarmParam(c)
	if err != nil {
		return err
	}
	var req struct {
		Generation uint32 `json:"generation"`
		Outer      string `json:"outer"`
		SecretHash string `json:"secret_hash"`
	}
	if err := readJSON(c, &req); err != nil {
		return err
	}
	if req.Generation == 0 {
		return wire(syncproto.CodeBadRequest, "generation must be at least 1")
	}
	outer, err := base64.StdEncoding.DecodeString(req.Outer)
	if err != nil || len(outer) == 0 {
		return wire(syncproto.CodeBadRequest, "outer must be the outer layer in base64")
	}
	secretHash, err := syncproto.ParseHash(req.SecretHash)
	if err != nil || secretHash.IsZero() {
		return wire(syncproto.CodeBadRequest, "malformed secret_hash")
	}
	size, err := r.expectedOuterSize()
	if err != nil {
		return err
	}
	if len(outer) != size {
		return wire(syncproto.CodeBadRequest, fmt.Sprintf("outer layer is %d bytes; every outer layer is %d", len(outer), size))
	}
	info, ok := envelopeInfo(s.t, alarm)
	switch {
	case !ok:
		return wire(syncproto.CodeNotFound, "the chain has no envelope sealed statement for this alarm")
	case info.Generation != req.Generation:
		return wire(syncproto.CodeConflict, fmt.Sprintf("the chain's envelope sealed statement for this alarm is generation %d", info.Generation))
	case info.Released:
		return wire(syncproto.CodeConflict, "this generation was released; seal a new one")
	}
	sealedAt := time.UnixMilli(int64(min(info.SealedMS, 1<<62))).UTC()
	stored, err := r.st.GetEnvelope(ctx, s.t.id, alarm)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return storeError(err)
	case stored.SealedAt.Equal(sealedAt) && !stored.ReleasedAt.IsZero():
		return wire(syncproto.CodeConflict, "this generation was released; seal a new one")
	case stored.SealedAt.Equal(sealedAt) && bytes.Equal(stored.Outer, outer) && stored.SecretHash == secretHash:
		return c.JSON(http.StatusCreated, map[string]any{"generation": info.Generation})
	}
	id, err := r.releaseIdentity(ctx, s.t.id, alarm, req.Generation)
	if errors.Is(err, errReleaseKeyGone) {
		return wire(syncproto.CodeConflict, "no release key for this generation; request one")
	} else if err != nil {
		return err
	}
	inner, err := fcrypto.OpenOuter(outer, id)
	if errors.Is(err, fcrypto.ErrEnvelopeMalformed) {
		return wire(syncproto.CodeInvalidStatement, "outer layer is malformed")
	} else if err != nil {
		return wire(syncproto.CodeInvalidStatement, "outer layer is not sealed to this generation's release key")
	}
	if fcrypto.CheckInner(inner, info.Inner) != nil {
		return wire(syncproto.CodeInvalidStatement, "the inner layer does not match the envelope sealed statement")
	}
	e := store.Envelope{Tenant: s.t.id, Alarm: alarm, SecretHash: secretHash, Outer: outer, SealedAt: sealedAt}
	if err := r.st.PutEnvelope(ctx, e); err != nil {
		return storeError(err)
	}
	return c.JSON(http.StatusCreated, map[string]any{"generation": info.Generation})
}

// releaseNotFound is the one answer to an unknown tenant, an unknown alarm
// and a wrong secret.
func releaseNotFound() error {
	return wire(syncproto.CodeNotFound, "no envelope with this alarm id and secret")
}

// dummySecretHash is compared against when there is no envelope, so an
// unknown alarm costs what a wrong secret does.
var dummySecretHash = syncproto.Hash(sha256.Sum256([]byte("fristed/v1/no-envelope")))

// releaseEnvelope answers POST /v1/t/{tenant}/envelopes/{alarm}/release:
// {"secret": b64 32 bytes, "nonce": b64 16-32 bytes}, without a login.
func (r *Relay) releaseEnvelope(c echo.Context) error {
	host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
	if err != nil {
		host = c.Request().RemoteAddr
	}
	if !r.env.limit.allow(r.now(), []byte("release"), []byte(host)) {
		return wire(syncproto.CodeRateLimited, "too many release requests; slow down")
	}
	ctx := c.Request().Context()
	tid, err := tenantParam(c)
	if err != nil {
		return err
	}
	alarm, err := alarmParam(c)
	if err != nil {
		return err
	}
	var req struct {
		Secret string `json:"secret"`
		Nonce  string `json:"nonce"`
	}
	if err := readJSON(c, &req); err != nil {
		return err
	}
	secret, err := base64.StdEncoding.DecodeString(req.Secret)
	if err != nil || len(secret) != releaseSecretSize {
		return wire(syncproto.CodeBadRequest, "secret must be 32 bytes in base64")
	}
	nonce, err := base64.StdEncoding.DecodeString(req.Nonce)
	if err != nil || len(nonce) < minReleaseNonce || len(nonce) > maxReleaseNonce {
		return wire(syncproto.CodeBadRequest, "nonce must be 16 to 32 bytes in base64")
	}
	given := syncproto.Hash(sha256.Sum256(secret))
	clear(secret)
	nonceHash := syncproto.ReleaseRequestHash(nonce)
	r.forgetInner(ctx)

	t, err := r.tenants.get(ctx, tid)
	if errors.Is(err, errUnknownTenant) {
		subtle.ConstantTimeCompare(given[:], dummySecretHash[:])
		return releaseNotFound()
	} else if err != nil {
		return err
	}
	env, err := r.st.GetEnvelope(ctx, tid, alarm)
	if errors.Is(err, store.ErrNotFound) {
		subtle.ConstantTimeCompare(given[:], dummySecretHash[:])
		return releaseNotFound()
	} else if err != nil {
		return storeError(err)
	}
	if subtle.ConstantTimeCompare(given[:], env.SecretHash[:]) != 1 {
		return releaseNotFound()
	}
	if !env.ReleasedAt.IsZero() {
		return r.answerReleased(c, t, env, nonceHash)
	}

	info, ok := envelopeInfo(t, alarm)
	if !ok {
		return wire(syncproto.CodeInternal, "envelope without a sealed statement")
	}
	inner, err := r.stripOuter(ctx, t, env, info)
	if errors.Is(err, errReleaseKeyGone) {
		// Released by a concurrent request (whose winner destroyed the
		// identity), or the envelope is being re-sealed.
		if env, err = r.st.GetEnvelope(ctx, tid, alarm); err != nil {
			return storeError(err)
		}
		if !env.ReleasedAt.IsZero() {
			return r.answerReleased(c, t, env, nonceHash)
		}
		return wire(syncproto.CodeConflict, "the envelope is being re-sealed and cannot be released now; use the emergency card")
	} else if err != nil {
		return err
	}
	stored, retry, err := r.st.Release(ctx, tid, alarm, nonceHash, inner, r.now())
	if errors.Is(err, store.ErrAlreadyReleased) {
		return alreadyReleased(stored)
	} else if err != nil {
		return storeError(err)
	}
	if err := r.finishRelease(ctx, t, alarm, info, stored); err != nil {
		return err
	}
	if retry {
		r.log.LogAttrs(ctx, levelInfo, "envelope release retried")
	} else {
		r.log.LogAttrs(ctx, levelInfo, "envelope released")
	}
	return r.releaseAnswer(c, t, alarm, stored, retry)
}

// stripOuter opens the stored outer layer with the release identity of
// the chain's current generation and checks the inner layer against that
// generation's commitment.
func (r *Relay) stripOuter(ctx context.Context, t *tenant, env store.Envelope, info syncproto.EnvelopeInfo) ([]byte, error) {
	if env.SealedAt.UnixMilli() != int64(min(info.SealedMS, 1<<62)) {
		// The stored outer layer belongs to an earlier generation, whose
		// identity a re-seal destroyed.
		return nil, errReleaseKeyGone
	}
	id, err := r.releaseIdentity(ctx, t.id, info.Alarm, info.Generation)
	if err != nil {
		return nil, err
	}
	inner, err := fcrypto.OpenOuter(env.Outer, id)
	if err != nil {
		return nil, errReleaseKeyGone
	}
	if fcrypto.CheckInner(inner, info.Inner) != nil {
		return nil, errReleaseKeyGone
	}
	return inner, nil
}

func alreadyReleased(e store.Envelope) error {
	return wire(syncproto.CodeAlreadyReleased, "already released at "+e.ReleasedAt.UTC().Format(time.RFC3339))
}

// answerReleased answers a request for an envelope already released: the
// winner's retry (same nonce, within the retry window) gets the same inner
// layer, anyone else "already released".
func (r *Relay) answerReleased(c echo.Context, t *tenant, env store.Envelope, nonceHash syncproto.Hash) error {
	if subtle.ConstantTimeCompare(env.NonceHash[:], nonceHash[:]) != 1 || len(env.Inner) == 0 ||
		r.now().Sub(env.ReleasedAt) >= releaseRetryWindow {
		return alreadyReleased(env)
	}
	ctx := c.Request().Context()
	info, ok := envelopeInfo(t, env.Alarm)
	if ok {
		// The winner may have failed half way: finish what it left.
		if err := r.finishRelease(ctx, t, env.Alarm, info, env); err != nil {
			return err
		}
	}
	r.log.LogAttrs(ctx, levelInfo, "envelope release retried")
	return r.releaseAnswer(c, t, env.Alarm, env, true)
}

var errReleaseRecorded = errors.New("release already recorded")

// finishRelease does, idempotently, what follows a release: destroy the
// release identity, record the relay-signed "envelope released" fact in
// the chain, and note its position. A retry of the same request repeats
// it, so a failure half way is repaired by the retry.
func (r *Relay) finishRelease(ctx context.Context, t *tenant, alarm syncproto.AlarmID, info syncproto.EnvelopeInfo, env store.Envelope) error {
	ctx = context.WithoutCancel(ctx)
	if env.SealedAt.UnixMilli() != int64(min(info.SealedMS, 1<<62)) {
		// The chain has moved on to a later generation.
		return nil
	}
	gen := info.Generation
	name := ReleaseName(alarm, gen)
	if _, err := r.st.GetSecret(ctx, t.id, KindRelease, name); err == nil {
		if err := r.kek.Destroy(ctx, r.st, t.id, KindRelease, name); err != nil {
			return err
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return storeError(err)
	}
	pos, recorded := syncproto.ChainPos(0), false
	for attempt := 0; !recorded && attempt < 5; attempt++ {
		_, rec, err := t.appendStatement(ctx, r.st, func(ch *syncproto.Chain) ([]byte, error) {
			cur := ch.State().Envelopes[alarm]
			if cur == nil || cur.Generation != gen || cur.Released {
				if cur != nil && cur.Generation == gen {
					pos = cur.ReleasedAt
				}
				return nil, errReleaseRecorded
			}
			s := ch.Next(t.id, syncproto.SignerRelay, syncproto.DeviceID{}, uint64(r.now().UnixMilli()),
				&syncproto.EnvelopeReleased{Alarm: alarm, Generation: gen, ReleasedMS: uint64(env.ReleasedAt.UnixMilli()), Request: env.NonceHash})
			if err := s.Sign(r.signer); err != nil {
				return nil, err
			}
			return s.Marshal()
		})
		switch {
		case err == nil:
			r.metrics.statements.Add(1)
			r.hub.notify(t.id, syncproto.StreamID{})
			pos, recorded = rec.Pos, true
		case errors.Is(err, errReleaseRecorded):
			recorded = true
		case syncproto.CodeOf(err) == syncproto.CodeChainConflict:
			continue
		default:
			return err
		}
	}
	if !recorded {
		return wire(syncproto.CodeUnavailable, "could not record the release; retry with the same nonce")
	}
	if pos != 0 && env.ReleasePos != pos {
		if err := r.st.SetReleasePos(ctx, t.id, alarm, pos); err != nil {
			return storeError(err)
		}
	}
	return nil
}

// releaseAnswer is the answer to the winning release and its retries: the
// inner layer, the coordinator-signed "envelope sealed" statement that
// commits to it, and the chain from genesis up to and including the
// relay-signed "envelope released" fact for this request (which names the
// generation and the request's nonce hash). The client accepts only a proof
// that ends with the fact for its own nonce, so an answer recorded for an
// earlier request - a superseded generation's - is refused.
func (r *Relay) releaseAnswer(c echo.Context, t *tenant, alarm syncproto.AlarmID, env store.Envelope, retry bool) error {
	sealedRaw, proof, sealedMS, ok := releasedProof(t, alarm, env.NonceHash, env.Inner)
	if !ok {
		return wire(syncproto.CodeInternal, "no envelope released fact matches the request")
	}
	enc := base64.StdEncoding
	out := make([]string, len(proof))
	for i, raw := range proof {
		out[i] = enc.EncodeToString(raw)
	}
	return c.JSON(http.StatusOK, map[string]any{
		"inner":            enc.EncodeToString(env.Inner),
		"sealed_statement": enc.EncodeToString(sealedRaw),
		"proof":            out,
		"sealed_at":        time.UnixMilli(int64(min(sealedMS, 1<<62))).UTC().Format(time.RFC3339),
		"released_at":      env.ReleasedAt.UTC().Format(time.RFC3339),
		"retry":            retry,
	})
}

// releasedProof finds the "envelope released" fact of alarm recorded for
// the request with nonce hash request, the "envelope sealed" statement it
// released (which must commit to inner), and the chain from genesis up to
// and including the released fact.
func releasedProof(t *tenant, alarm syncproto.AlarmID, request syncproto.Hash, inner []byte) (sealed []byte, proof [][]byte, sealedMS uint64, ok bool) {
	want := syncproto.Hash(fcrypto.InnerCommitment(inner))
	t.read(func(ch *syncproto.Chain) {
		relPos := -1
		var gen uint32
		for pos := len(t.raws) - 1; pos >= 0 && relPos < 0; pos-- {
			s, err := syncproto.UnmarshalStatement(t.raws[pos])
			if err != nil {
				return
			}
			if b, isRel := s.Body.(*syncproto.EnvelopeReleased); isRel && b.Alarm == alarm && b.Request == request {
				relPos, gen = pos, b.Generation
			}
		}
		for pos := relPos - 1; pos >= 0; pos-- {
			s, err := syncproto.UnmarshalStatement(t.raws[pos])
			if err != nil {
				return
			}
			if b, isSealed := s.Body.(*syncproto.EnvelopeSealed); isSealed && b.Alarm == alarm && b.Generation == gen {
				if b.Inner != want {
					return
				}
				sealed, sealedMS, ok = t.raws[pos], b.SealedMS, true
				proof = append([][]byte(nil), t.raws[:relPos+1]...)
				return
			}
		}
	})
	return
}

// forgetInner drops kept inner layers whose retry window has passed, at
// most once every forgetEvery per process.
func (r *Relay) forgetInner(ctx context.Context) {
	now := r.now()
	last := r.env.lastForget.Load()
	if now.UnixMilli()-last < forgetEvery.Milliseconds() || !r.env.lastForget.CompareAndSwap(last, now.UnixMilli()) {
		return
	}
	if err := r.st.ForgetInner(context.WithoutCancel(ctx), now.Add(-releaseRetryWindow)); err != nil {
		r.log.LogAttrs(ctx, levelWarn, "dropping kept inner layers failed", errAttr(err))
	}
}
