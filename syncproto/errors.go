package syncproto

import (
	"errors"
	"fmt"
	"net/http"

	fcrypto "github.com/fristed/fristed/crypto"
)

// Code is an error code that travels on the wire, in a JSON error body
// {"code": "...", "message": "..."}. The set is closed and append-only:
// never rename or reuse a code. A code a client does not know maps to
// CodeInternal's generic handling.
type Code string

// Do not rename: these strings are on the wire.
const (
	CodeBadRequest       Code = "bad_request"       // malformed body, query or header
	CodeUnknownVersion   Code = "unknown_version"   // a message version this relay does not speak
	CodeTooLarge         Code = "too_large"         // body or header over the limit
	CodeUnauthorized     Code = "unauthorized"      // no, bad or expired token or credential
	CodeDeviceRevoked    Code = "device_revoked"    // the device is revoked; body carries the proof
	CodeForbidden        Code = "forbidden"         // authenticated but not allowed
	CodeNotAssigned      Code = "not_assigned"      // device is not in the stream's current epoch
	CodeEpochSuperseded  Code = "epoch_superseded"  // re-seal under the newest epoch and retry
	CodeUnknownEpoch     Code = "unknown_epoch"     // batch names an epoch that does not exist
	CodeChainConflict    Code = "chain_conflict"    // statement does not extend the head; refetch and re-sign
	CodeInvalidStatement Code = "invalid_statement" // statement contradicts the chain or lacks authority
	CodeBadSignature     Code = "bad_signature"     // a signature does not verify
	CodeConflict         Code = "conflict"          // id reused with different content
	CodeNotFound         Code = "not_found"         // unknown thing (or not yours: same answer)
	CodePruned           Code = "pruned"            // history before a snapshot is gone; start from the snapshot
	CodeAlreadyReleased  Code = "already_released"  // an envelope was released before
	CodeRateLimited      Code = "rate_limited"      // slow down and retry
	CodeUnavailable      Code = "unavailable"       // relay shutting down or store unavailable; retry
	CodeInternal         Code = "internal"          // relay bug; retry may help
)

var codeStatus = map[Code]int{
	CodeBadRequest:       http.StatusBadRequest,
	CodeUnknownVersion:   http.StatusBadRequest,
	CodeTooLarge:         http.StatusRequestEntityTooLarge,
	CodeUnauthorized:     http.StatusUnauthorized,
	CodeDeviceRevoked:    http.StatusForbidden,
	CodeForbidden:        http.StatusForbidden,
	CodeNotAssigned:      http.StatusForbidden,
	CodeEpochSuperseded:  http.StatusConflict,
	CodeUnknownEpoch:     http.StatusConflict,
	CodeChainConflict:    http.StatusConflict,
	CodeInvalidStatement: http.StatusUnprocessableEntity,
	CodeBadSignature:     http.StatusUnprocessableEntity,
	CodeConflict:         http.StatusConflict,
	CodeNotFound:         http.StatusNotFound,
	CodePruned:           http.StatusGone,
	CodeAlreadyReleased:  http.StatusConflict,
	CodeRateLimited:      http.StatusTooManyRequests,
	CodeUnavailable:      http.StatusServiceUnavailable,
	CodeInternal:         http.StatusInternalServerError,
}

// Known reports whether c is in the closed set.
func (c Code) Known() bool { _, ok := codeStatus[c]; return ok }

// Status returns the HTTP status a code is sent with.
func (c Code) Status() int {
	if s, ok := codeStatus[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Retryable reports whether repeating the same request later may succeed.
func (c Code) Retryable() bool {
	switch c {
	case CodeRateLimited, CodeUnavailable, CodeInternal:
		return true
	}
	return false
}

// Error is an error with a wire code. Message is one line for humans and
// never holds plaintext, keys or tokens.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Is matches another *Error with the same code, so callers can write
// errors.Is(err, syncproto.Errorf(CodeEpochSuperseded, "")).
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// Errorf builds an *Error.
func Errorf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the wire code for err: the code of an *Error in its chain,
// or the code for a known sentinel of this package (or a signature failure
// from crypto), else CodeInternal. ErrFork and ErrRollback are found by
// clients about the relay and have no code of their own.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		if e.Code.Known() {
			return e.Code
		}
		return CodeInternal
	}
	switch {
	case errors.Is(err, ErrVersion):
		return CodeUnknownVersion
	case errors.Is(err, ErrTooLarge):
		return CodeTooLarge
	case errors.Is(err, ErrTruncated), errors.Is(err, ErrTrailing), errors.Is(err, ErrMalformed),
		errors.Is(err, ErrType), errors.Is(err, ErrBatchHash), errors.Is(err, ErrDuplicateDelta),
		errors.Is(err, ErrBatchMismatch):
		return CodeBadRequest
	case errors.Is(err, fcrypto.ErrBadSignature):
		return CodeBadSignature
	case errors.Is(err, ErrDeviceRevoked), errors.Is(err, ErrRevokedSigner):
		return CodeDeviceRevoked
	case errors.Is(err, ErrNotAssigned):
		return CodeNotAssigned
	case errors.Is(err, ErrEpochSuperseded):
		return CodeEpochSuperseded
	case errors.Is(err, ErrUnknownEpoch):
		return CodeUnknownEpoch
	case errors.Is(err, ErrChainBroken):
		return CodeChainConflict
	case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrInvalid), errors.Is(err, ErrUnknownSigner),
		errors.Is(err, ErrLastCoord), errors.Is(err, ErrFingerprint):
		return CodeInvalidStatement
	}
	return CodeInternal
}
