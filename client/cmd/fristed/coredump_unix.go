//go:build unix

package main

import "syscall"

// disableCoreDumps keeps keys and case data out of core files.
func disableCoreDumps() {
	_ = syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{Cur: 0, Max: 0})
	disableDumpable()
}
