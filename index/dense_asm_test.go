package index

import (
	"math/rand/v2"
	"testing"
)

// andCountFast (AVX-512 where the CPU has it) equals andCount on every
// length (the tail past a multiple of 16 words included) and on slices of
// different lengths.
func TestAndCountFast(t *testing.T) {
	t.Logf("vector path: %v", vectorAndCount)
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		x, y := make([]uint64, n), make([]uint64, n+r.IntN(40))
		for i := range x {
			x[i] = r.Uint64()
		}
		for i := range y {
			y[i] = r.Uint64()
		}
		if got, want := andCountFast(x, y), andCount(x, y); got != want {
			t.Fatalf("%d words: andCountFast %d, andCount %d", n, got, want)
		}
		if got, want := andCountFast(y, x), andCount(x, y); got != want {
			t.Fatalf("%d words, swapped: andCountFast %d, andCount %d", n, got, want)
		}
	}
}
