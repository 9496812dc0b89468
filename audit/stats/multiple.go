package stats

import (
	"math"
	"slices"
)

// BenjaminiHochberg returns the Benjamini-Hochberg (1995) adjusted p-values
// (q-values) of p, in the input order, as R's p.adjust(p, method = "BH"):
// for the i-th smallest of m p-values, q = min over j >= i of
// min(1, m p_(j) / j). A NaN p-value stays NaN in the output and is not
// counted in m (R's treatment of NA). p is not modified.
func BenjaminiHochberg(p []float64) []float64 {
	out := make([]float64, len(p))
	idx := make([]int, 0, len(p))
	for i, v := range p {
		if math.IsNaN(v) {
			out[i] = nan
			continue
		}
		idx = append(idx, i)
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case p[a] < p[b]:
			return -1
		case p[a] > p[b]:
			return 1
		}
		return 0
	})
	m := float64(len(idx))
	run := math.Inf(1)
	for r := len(idx) - 1; r >= 0; r-- {
		i := idx[r]
		run = min(run, m*p[i]/float64(r+1))
		// q >= p holds exactly in arithmetic; keep it against rounding
		// (m*p/m need not round back to p).
		out[i] = min(max(run, p[i]), 1)
	}
	return out
}
