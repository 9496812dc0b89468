//go:build !(amd64 || arm64) || purego

package prefetch

func addrs([]uintptr) {}

// Enabled says whether this build issues prefetch instructions.
const Enabled = false
