//go:build !(amd64 || arm64) || purego

package prefetch

import "unsafe"

func addrs([]uintptr) {}

func linesForWrite(unsafe.Pointer, uintptr) {}
