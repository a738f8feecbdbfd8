//go:build !unix

package server

import "sync"

var lockMu sync.RWMutex

// lockFile falls back to an in-process lock where flock does not exist:
// there, several relay processes must not share a KEK directory.
func lockFile(path string, exclusive bool) (func(), error) {
	if exclusive {
		lockMu.Lock()
		return lockMu.Unlock, nil
	}
	lockMu.RLock()
	return lockMu.RUnlock, nil
}
