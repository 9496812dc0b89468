package audit

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSortFloats checks sortFloats against slices.Sort on values of every
// kind (negative, zero of both signs, subnormal, huge, infinite, repeated)
// and that the integer keys round-trip every value bit for bit.
func TestSortFloats(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	special := []float64{0, math.Copysign(0, -1), math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64,
		math.MaxFloat64, -math.MaxFloat64, math.Inf(1), math.Inf(-1), 1, -1, 0.5, -0.5}
	var keys []uint64
	for trial := range 300 {
		n := rng.IntN(5000)
		b := make([]float64, n)
		for i := range b {
			switch rng.IntN(4) {
			case 0:
				b[i] = special[rng.IntN(len(special))]
			case 1:
				b[i] = float64(rng.IntN(20) - 10) // many repeats
			default:
				b[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20))
			}
		}
		want := slices.Clone(b)
		slices.Sort(want)
		keys = sortFloats(b, keys)
		for i := range b {
			if b[i] != want[i] { // -0 == +0: their order among themselves is free
				t.Fatalf("trial %d: at %d got %v, want %v", trial, i, b[i], want[i])
			}
		}
		for _, v := range want {
			if back := unordered64(ordered64(v)); math.Float64bits(back) != math.Float64bits(v) {
				t.Fatalf("%v round-trips to %v", v, back)
			}
		}
	}
}
