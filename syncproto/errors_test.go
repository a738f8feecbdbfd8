package syncproto

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	fcrypto "github.com/fristed/fristed/crypto"
)

func TestCodeOf(t *testing.T) {
	tests := []struct {
		err  error
		want Code
	}{
		{ErrVersion, CodeUnknownVersion},
		{ErrType, CodeBadRequest},
		{ErrTruncated, CodeBadRequest},
		{ErrTrailing, CodeBadRequest},
		{ErrMalformed, CodeBadRequest},
		{ErrTooLarge, CodeTooLarge},
		{ErrBatchHash, CodeBadRequest},
		{ErrBatchMismatch, CodeBadRequest},
		{ErrDuplicateDelta, CodeBadRequest},
		{ErrChainBroken, CodeChainConflict},
		{ErrFingerprint, CodeInvalidStatement},
		{ErrUnknownSigner, CodeInvalidStatement},
		{ErrRevokedSigner, CodeDeviceRevoked},
		{ErrUnauthorized, CodeInvalidStatement},
		{ErrInvalid, CodeInvalidStatement},
		{ErrLastCoord, CodeInvalidStatement},
		{ErrNotAssigned, CodeNotAssigned},
		{ErrEpochSuperseded, CodeEpochSuperseded},
		{ErrUnknownEpoch, CodeUnknownEpoch},
		{ErrDeviceRevoked, CodeDeviceRevoked},
		{fcrypto.ErrBadSignature, CodeBadSignature},
		// Found by clients about the relay; never sent.
		{ErrFork, CodeInternal},
		{ErrRollback, CodeInternal},
		{errors.New("disk on fire"), CodeInternal},
		{nil, CodeInternal},
	}
	for _, tt := range tests {
		if got := CodeOf(tt.err); got != tt.want {
			t.Errorf("CodeOf(%v): got %s, want %s", tt.err, got, tt.want)
		}
		if tt.err == nil {
			continue
		}
		wrapped := fmt.Errorf("push batch 3 of s_x: %w", tt.err)
		if got := CodeOf(wrapped); got != tt.want {
			t.Errorf("CodeOf(wrapped %v): got %s, want %s", tt.err, got, tt.want)
		}
	}

	// What the package's own steps return maps as their sentinel does.
	o := newBaseOrg(t)
	s := o.next(as(o.c), &WorkerAdded{Worker: testWorkerID("w3")})
	s.Sig[0] ^= 1
	_, err := o.chain.Append(mustMarshal(t, s))
	if got := CodeOf(err); got != CodeBadSignature {
		t.Errorf("badly signed statement (%v): got %s, want %s", err, got, CodeBadSignature)
	}
	_, err = UnmarshalBatch([]byte{2})
	if got := CodeOf(err); got != CodeUnknownVersion {
		t.Errorf("newer batch (%v): got %s, want %s", err, got, CodeUnknownVersion)
	}
	_, err = ParseStreamID("s_!")
	if got := CodeOf(err); got != CodeBadRequest {
		t.Errorf("bad stream id (%v): got %s, want %s", err, got, CodeBadRequest)
	}

	// An *Error carries its code; an unknown code falls back to internal.
	for _, c := range allCodes {
		if got := CodeOf(fmt.Errorf("wrapped: %w", Errorf(c, "x"))); got != c {
			t.Errorf("CodeOf(*Error %s): got %s, want %s", c, got, c)
		}
	}
	if got := CodeOf(&Error{Code: "from_the_future"}); got != CodeInternal {
		t.Errorf("unknown code: got %s, want %s", got, CodeInternal)
	}
	// An *Error wins over a sentinel deeper in the chain.
	both := fmt.Errorf("%w: %w", Errorf(CodePruned, "gone"), ErrMalformed)
	if got := CodeOf(both); got != CodePruned {
		t.Errorf("*Error and sentinel: got %s, want %s", got, CodePruned)
	}
}

var allCodes = []Code{
	CodeBadRequest, CodeUnknownVersion, CodeTooLarge, CodeUnauthorized, CodeDeviceRevoked, CodeForbidden,
	CodeNotAssigned, CodeEpochSuperseded, CodeUnknownEpoch, CodeChainConflict, CodeInvalidStatement,
	CodeBadSignature, CodeConflict, CodeNotFound, CodePruned, CodeAlreadyReleased, CodeRateLimited,
	CodeUnavailable, CodeInternal,
}

func TestCodeStatus(t *testing.T) {
	tests := []struct {
		code      Code
		status    int
		retryable bool
	}{
		{CodeBadRequest, http.StatusBadRequest, false},
		{CodeUnknownVersion, http.StatusBadRequest, false},
		{CodeTooLarge, http.StatusRequestEntityTooLarge, false},
		{CodeUnauthorized, http.StatusUnauthorized, false},
		{CodeDeviceRevoked, http.StatusForbidden, false},
		{CodeForbidden, http.StatusForbidden, false},
		{CodeNotAssigned, http.StatusForbidden, false},
		{CodeEpochSuperseded, http.StatusConflict, false},
		{CodeUnknownEpoch, http.StatusConflict, false},
		{CodeChainConflict, http.StatusConflict, false},
		{CodeInvalidStatement, http.StatusUnprocessableEntity, false},
		{CodeBadSignature, http.StatusUnprocessableEntity, false},
		{CodeConflict, http.StatusConflict, false},
		{CodeNotFound, http.StatusNotFound, false},
		{CodePruned, http.StatusGone, false},
		{CodeAlreadyReleased, http.StatusConflict, false},
		{CodeRateLimited, http.StatusTooManyRequests, true},
		{CodeUnavailable, http.StatusServiceUnavailable, true},
		{CodeInternal, http.StatusInternalServerError, true},
	}
	if len(tests) != len(allCodes) || len(codeStatus) != len(allCodes) {
		t.Fatalf("got %d codes in the table and %d with a status, want %d", len(tests), len(codeStatus), len(allCodes))
	}
	for i, tt := range tests {
		if tt.code != allCodes[i] {
			t.Fatalf("table row %d: got %s, want %s", i, tt.code, allCodes[i])
		}
		if got := tt.code.Status(); got != tt.status {
			t.Errorf("%s: got status %d, want %d", tt.code, got, tt.status)
		}
		if got := tt.code.Retryable(); got != tt.retryable {
			t.Errorf("%s: got retryable %v, want %v", tt.code, got, tt.retryable)
		}
		if !tt.code.Known() {
			t.Errorf("%s: got unknown, want known", tt.code)
		}
	}
	unknown := Code("from_the_future")
	if unknown.Known() || unknown.Status() != http.StatusInternalServerError || unknown.Retryable() {
		t.Errorf("unknown code: got known %v, status %d, retryable %v; want false, 500, false",
			unknown.Known(), unknown.Status(), unknown.Retryable())
	}
}

// TestCodeStrings pins the wire strings: never rename one.
func TestCodeStrings(t *testing.T) {
	want := []string{
		"bad_request", "unknown_version", "too_large", "unauthorized", "device_revoked", "forbidden",
		"not_assigned", "epoch_superseded", "unknown_epoch", "chain_conflict", "invalid_statement",
		"bad_signature", "conflict", "not_found", "pruned", "already_released", "rate_limited",
		"unavailable", "internal",
	}
	for i, c := range allCodes {
		if string(c) != want[i] {
			t.Errorf("got %q, want %q", c, want[i])
		}
	}
}

func TestError(t *testing.T) {
	e := Errorf(CodeEpochSuperseded, "stream %s is at epoch %d", "s_x", 3)
	if got, want := e.Error(), "epoch_superseded: stream s_x is at epoch 3"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := (&Error{Code: CodeNotFound}).Error(), "not_found"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("push: %w", e)
	if !errors.Is(wrapped, Errorf(CodeEpochSuperseded, "")) {
		t.Error("errors.Is with the same code: got false, want true")
	}
	if errors.Is(wrapped, Errorf(CodeUnknownEpoch, "")) {
		t.Error("errors.Is with another code: got true, want false")
	}
	if errors.Is(wrapped, ErrEpochSuperseded) {
		t.Error("errors.Is with a sentinel: got true, want false")
	}
}
