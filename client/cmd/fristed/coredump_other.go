//go:build !unix

package main

func disableCoreDumps() {}
