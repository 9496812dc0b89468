//go:build (amd64 || arm64) && !purego

package prefetch

// addrs prefetches the cache line of each address (prefetch_amd64.s,
// prefetch_arm64.s).
//
//go:noescape
func addrs(a []uintptr)

// Enabled says whether this build issues prefetch instructions.
const Enabled = true
