package stats

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// TestSortedOfMatchesCounts: a sample given as values and counts, in
// order or not, with repeats, NaN and non-positive counts, gives the same
// Sorted as the Counts it stands for, and the tests and quantiles of the
// Sorted forms equal those of the Counts forms.
func TestSortedOfMatchesCounts(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	sample := func() ([]float64, []int64, Counts) {
		n := rng.IntN(60)
		vals, cnts := make([]float64, n), make([]int64, n)
		c := Counts{}
		for i := range n {
			v := float64(rng.IntN(30)) / 4
			if rng.IntN(20) == 0 {
				v = math.NaN()
			}
			k := int64(rng.IntN(5)) - 1
			vals[i], cnts[i] = v, k
			if k > 0 && !math.IsNaN(v) {
				c[v] += k
			}
		}
		return vals, cnts, c
	}
	for trial := range 500 {
		vx, kx, cx := sample()
		vy, ky, cy := sample()
		if trial%2 == 0 { // in order, distinct: taken as they are
			s := cx.Sorted()
			vx, kx = vx[:0], kx[:0]
			for _, e := range s.vc {
				vx, kx = append(vx, e.v), append(kx, e.k)
			}
		}
		sx, sy := SortedOf(vx, kx), SortedOf(vy, ky)
		if !reflect.DeepEqual(slices.Clip(sx.vc), slices.Clip(cx.Sorted().vc)) && (sx.Len() > 0 || cx.Sorted().Len() > 0) {
			t.Fatalf("trial %d: SortedOf %v, Counts.Sorted %v", trial, sx.vc, cx.Sorted().vc)
		}
		same := func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }
		u1, z1, p1 := MannWhitney(cx, cy)
		u2, z2, p2 := MannWhitneySorted(sx, sy)
		if !same(u1, u2) || !same(z1, z2) || !same(p1, p2) {
			t.Fatalf("trial %d: MannWhitney %v %v %v, Sorted %v %v %v", trial, u1, z1, p1, u2, z2, p2)
		}
		h1, h2 := HodgesLehmann(cx, cy, 0.95), HodgesLehmannSorted(sx, sy, 0.95)
		if !same(h1.Estimate, h2.Estimate) || !same(h1.CI.Lo, h2.CI.Lo) || !same(h1.CI.Hi, h2.CI.Hi) {
			t.Fatalf("trial %d: HodgesLehmann %+v, Sorted %+v", trial, h1, h2)
		}
		qs := []float64{0, 0.1, 0.5, 0.9, 1, math.NaN()}
		q1, q2 := QuantilesOf(cx, qs), QuantilesOfSorted(sx, qs)
		for i := range qs {
			if !same(q1[i], q2[i]) {
				t.Fatalf("trial %d: quantile %v: %v vs %v", trial, qs[i], q1[i], q2[i])
			}
		}
	}
}
