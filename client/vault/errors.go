package vault

import (
	"errors"
	"fmt"
)

// Errors callers branch on. They are wrapped with the step that failed.
var (
	// ErrExists is returned by Create when the directory already holds a
	// vault.
	ErrExists = errors.New("a vault already exists")
	// ErrNoVault is returned by Open when the directory holds no snapshot.
	// It matches fs.ErrNotExist too.
	ErrNoVault = errors.New("no vault")
	// ErrWrongKey means the snapshot is not encrypted to the identity
	// given (or its key stanza is damaged). Retrying with another identity
	// may help; retrying with the same one will not.
	ErrWrongKey = errors.New("not encrypted to this identity (wrong key)")
	// ErrCorrupt is matched by every *CorruptError.
	ErrCorrupt = errors.New("vault is damaged")
	// ErrVersion means a file was written by a newer version of Fristed.
	ErrVersion = errors.New("unsupported vault format version (newer version?)")
	// ErrFrameTooLarge is returned by Append for a frame over MaxFrameSize.
	ErrFrameTooLarge = errors.New("journal frame too large")
	// ErrClosed is returned by methods of a closed Vault.
	ErrClosed = errors.New("vault is closed")
)

// CorruptError reports damage that Open will not repair because repairing
// it could drop a committed edit. Retrying does not help; the file needs a
// person (or a restore from the relay). It never holds plaintext.
type CorruptError struct {
	// File is the path of the damaged file.
	File string
	// Offset is the byte offset of the damaged header or frame, or -1 when
	// the file as a whole fails (an age file that does not decrypt).
	Offset int64
	// Reason says what failed, without any content.
	Reason string
}

func (e *CorruptError) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("%s is damaged: %s", e.File, e.Reason)
	}
	return fmt.Sprintf("%s is damaged at offset %d: %s", e.File, e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }
