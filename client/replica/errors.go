package replica

import (
	"errors"
	"fmt"
	"strings"
)

// Errors callers branch on. Messages never carry a field's value: values
// may be sealed, and errors end up on terminals and in logs.
var (
	// ErrInvalid: a local edit does not fit the schema. The error is a
	// *ValidationError naming the kind, the field and what is allowed.
	ErrInvalid = errors.New("invalid edit")
	// ErrNotFound: the resident, record or entry is not in this replica.
	ErrNotFound = errors.New("not found")
	// ErrRemoved: the record or entry was removed; removal is final.
	ErrRemoved = errors.New("removed")
	// ErrMalformed: a delta breaks the op encoding (a set value without a
	// well-formed list of bases, a register set twice in one delta). Apply
	// changes nothing for such a delta, on every replica alike, so
	// skipping it keeps replicas converged. Retrying does not help.
	ErrMalformed = errors.New("malformed delta")
	// ErrDeltaConflict: a delta id that was applied before arrived with
	// other content. Only a faulty or malicious author can cause it; the
	// first content stays. Retrying does not help.
	ErrDeltaConflict = errors.New("delta id reused with other content")
	// ErrSchemaTooNew: Load was given a replica written by a newer build.
	ErrSchemaTooNew = errors.New("replica schema is newer than this build")
)

// ValidationError says which part of a local edit does not fit the schema
// and what would. It unwraps to ErrInvalid.
type ValidationError struct {
	Kind    string   // the record kind; empty when the kind itself is unknown
	Field   string   // the field; empty when the problem is the kind or the record
	Problem string   // what is wrong, e.g. "want a date YYYY-MM-DD"
	Allowed []string // allowed values, kinds or fields, when there is a closed set
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	switch {
	case e.Kind != "" && e.Field != "":
		fmt.Fprintf(&b, "%s: field %q: %s", e.Kind, e.Field, e.Problem)
	case e.Kind != "":
		fmt.Fprintf(&b, "%s: %s", e.Kind, e.Problem)
	default:
		b.WriteString(e.Problem)
	}
	if len(e.Allowed) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(e.Allowed, ", "))
	}
	return b.String()
}

func (e *ValidationError) Unwrap() error { return ErrInvalid }
