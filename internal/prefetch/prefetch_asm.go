//go:build (amd64 || arm64) && !purego

package prefetch

import "unsafe"

// addrs prefetches the cache line of each address (prefetch_amd64.s,
// prefetch_arm64.s).
//
//go:noescape
func addrs(a []uintptr)

// linesForWrite prefetches for writing the lines of the n bytes at p
// (n > 0).
//
//go:noescape
func linesForWrite(p unsafe.Pointer, n uintptr)
