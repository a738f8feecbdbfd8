package server

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fristed/fristed/server/store"
	"github.com/fristed/fristed/syncproto"
)

// errorBody is the JSON body of every error answer. Revocation and Chain
// are set only for device_revoked.
type errorBody struct {
	Code       syncproto.Code `json:"code"`
	Message    string         `json:"message"`
	Revocation string         `json:"revocation,omitempty"`
	Chain      []string       `json:"chain,omitempty"`
}

// revokedError is the answer to a revoked device: the signed revocation
// and the chain from genesis that proves it, the only wipe order a device
// obeys (it verifies both against its pinned org fingerprint).
type revokedError struct {
	revocation []byte
	chain      [][]byte
}

func (e *revokedError) Error() string { return "device revoked" }

// wire builds a wire error. Messages are one line and never hold
// plaintext, keys or tokens.
func wire(code syncproto.Code, msg string) error { return &syncproto.Error{Code: code, Message: msg} }

// decodeError turns a syncproto decoding or verification failure into a
// wire error with the code its sentinel maps to: a malformed or truncated
// message is bad_request, another version unknown_version.
func decodeError(what string, err error) error {
	code := syncproto.CodeOf(err)
	switch code {
	case syncproto.CodeUnknownVersion:
		return wire(code, what+": unknown format version")
	case syncproto.CodeTooLarge:
		return wire(code, what+": too large")
	case syncproto.CodeBadSignature:
		return wire(code, what+": signature does not verify")
	case syncproto.CodeInternal:
		return wire(syncproto.CodeBadRequest, what+": malformed")
	}
	return wire(code, what+": malformed")
}

// storeError maps the store's sentinels to wire errors; anything else is
// the relay's problem (internal, or unavailable when the store timed out).
func storeError(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return wire(syncproto.CodeNotFound, "not found")
	case errors.Is(err, store.ErrPruned):
		return wire(syncproto.CodePruned, "history before the latest snapshot is pruned; start from the snapshot")
	case errors.Is(err, store.ErrConflict):
		return wire(syncproto.CodeConflict, "conflicts with stored state")
	case errors.Is(err, context.DeadlineExceeded):
		return wire(syncproto.CodeUnavailable, "store did not answer in time; retry")
	}
	return err
}

// handleError is Echo's error handler: every error leaves as the JSON
// error body with the status its code maps to. Only the relay's own
// failures are 5xx; they are logged with ids and addresses redacted.
func (r *Relay) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	body := errorBody{}
	var (
		rev *revokedError
		we  *syncproto.Error
		he  *echo.HTTPError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &rev):
		body.Code = syncproto.CodeDeviceRevoked
		body.Message = "this device is revoked; verify the revocation and wipe"
		body.Revocation = base64.StdEncoding.EncodeToString(rev.revocation)
		body.Chain = make([]string, len(rev.chain))
		for i, raw := range rev.chain {
			body.Chain[i] = base64.StdEncoding.EncodeToString(raw)
		}
	case errors.As(err, &we):
		body.Code, body.Message = we.Code, we.Message
		if !body.Code.Known() {
			body.Code = syncproto.CodeInternal
		}
	case errors.As(err, &mbe):
		body.Code, body.Message = syncproto.CodeTooLarge, "request body too large"
	case errors.As(err, &he):
		body.Code, body.Message = httpErrorCode(he.Code)
	case errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil:
		// The client went away; nobody reads the answer.
		body.Code, body.Message = syncproto.CodeUnavailable, "request cancelled"
	default:
		body.Code, body.Message = syncproto.CodeInternal, "internal error"
	}
	status := body.Code.Status()
	if status >= 500 && body.Code != syncproto.CodeUnavailable {
		r.log.LogAttrs(c.Request().Context(), levelError, "request failed",
			routeAttr(c), errAttr(err))
	}
	if status < 500 {
		r.metrics.refusal(body.Code)
	}
	body.Message = oneLine(body.Message)
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, body)
}

// httpErrorCode maps Echo's own errors (no route, wrong method, bad
// header) to wire codes; none of them is the relay's fault.
func httpErrorCode(status int) (syncproto.Code, string) {
	switch status {
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return syncproto.CodeNotFound, "no such endpoint"
	case http.StatusRequestEntityTooLarge:
		return syncproto.CodeTooLarge, "request too large"
	case http.StatusUnauthorized:
		return syncproto.CodeUnauthorized, "unauthorized"
	case http.StatusTooManyRequests:
		return syncproto.CodeRateLimited, "too many requests"
	case http.StatusServiceUnavailable:
		return syncproto.CodeUnavailable, "unavailable"
	}
	if status >= 500 {
		return syncproto.CodeInternal, "internal error"
	}
	return syncproto.CodeBadRequest, "bad request"
}

func oneLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return s
}
