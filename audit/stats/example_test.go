package stats_test

import (
	"fmt"

	"github.com/recguard/recguard/audit/stats"
)

// A sample sorted once serves several tests and quantiles: here the prices
// two groups paid (value -> how many times), compared with Mann-Whitney
// and the Hodges-Lehmann shift.
func ExampleSorted() {
	gold := stats.SortedOf([]float64{10, 12, 13, 15}, []int64{3, 5, 4, 2})
	other := stats.Counts{9: 4, 10: 6, 12: 3, 13: 1}.Sorted()

	u, _, p := stats.MannWhitneySorted(gold, other)
	shift := stats.HodgesLehmannSorted(gold, other, 0.95)
	median := stats.QuantilesOfSorted(gold, []float64{0.5})[0]
	fmt.Printf("U %.0f, p %.4f; shift %.1f [%.1f, %.1f]; gold's median %.1f\n",
		u, p, shift.Estimate, shift.CI.Lo, shift.CI.Hi, median)
	// Output: U 160, p 0.0032; shift 2.0 [1.0, 3.0]; gold's median 12.0
}
