//go:build !race

// (The race detector maps shadow memory on first access, so page faults
// counted under -race say nothing about the application's memory.)

package audit

import (
	"syscall"
	"testing"
)

func minorFaults(t *testing.T) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return ru.Minflt
}

// TestZeroedIsWritten checks that zeroed's memory is zero and already
// mapped: reading a page of it takes no fault (a plain make of fresh
// memory faults on the first read of every page, which is what the check
// would count).
func TestZeroedIsWritten(t *testing.T) {
	const n = 64 << 20
	s := zeroed[byte](n)
	f0 := minorFaults(t)
	var sum byte
	for i := 0; i < n; i += 4096 {
		sum |= s[i]
	}
	faults := minorFaults(t) - f0
	if sum != 0 {
		t.Fatal("zeroed returned memory that is not zero")
	}
	if faults > n/4096/10 {
		t.Fatalf("reading zeroed's %d pages took %d page faults: its memory was not written", n/4096, faults)
	}
}
