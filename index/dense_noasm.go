//go:build !amd64 || purego

package index

// andCountFast is andCount (no assembly on this platform).
func andCountFast(a, b []uint64) uint64 { return andCount(a, b) }

// vectorAndCount says whether andCountFast uses vector instructions.
const vectorAndCount = false
