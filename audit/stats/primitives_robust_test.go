package stats

import (
	"math"
	"testing"
)

// The primitives of cluster.go, strata.go, hl.go, fdr_intervals.go,
// permutation.go and materiality.go must not panic or hang on degenerate
// or hostile input.
func TestPrimitivesNoPanic(t *testing.T) {
	inf, nan := math.Inf(1), math.NaN()
	vals := []float64{0, 1, -1, 2.5, 1e300, -1e300, inf, -inf, nan, 5e-324}
	confs := []float64{0.95, 0, 1, -1, nan, 1e-300, 1 - 1e-16}
	var sums []ClusterSummary
	for _, y := range vals {
		for _, n := range vals {
			var s ClusterSummary
			s.Add(y, n)
			s.Add(1, 2)
			s.Add(y, 3)
			sums = append(sums, s)
		}
	}
	sums = append(sums, ClusterSummary{})
	for i, a := range sums {
		b := sums[(i*7+3)%len(sums)]
		for _, conf := range confs {
			ClusterMeanCI(a, conf)
			CompareClustered(a, b, conf)
			for _, w := range []StratumWeight{WeightMH, WeightSize, WeightInverseVariance} {
				StratifiedDiff([]Stratum{{A: a, B: b}, {A: b, B: a}}, w, conf)
			}
		}
	}
	for _, conf := range confs {
		MantelHaenszelRD([]RateStratum{{1, 2, 3, 4}, {0, 0, 0, 0}, {1 << 40, 1 << 41, 1, 1 << 41}}, conf)
		HodgesLehmann(Counts{1e308: 2, -1e308: 1}, Counts{1e308: 1, -1e308: 3}, conf)
		HodgesLehmann(Counts{5e-324: 1, -0.0: 2}, Counts{0: 1}, conf)
	}
	ests := []Estimate{{nan, 1, 0}, {1, nan, 3}, {inf, 1, 0}, {1, 1, -2}, {1, 1, inf}, {1, 1, nan}, {-inf, 1, 4}}
	for _, q := range []float64{0.05, 0, 1, nan, -1} {
		FCRIntervals(ests, q, FDRBH)
		FCRIntervals(ests, q, FDRBY)
	}
	BenjaminiYekutieli([]float64{nan, inf, -1, 2})
	users := []UserSum{{nan, 1}, {inf, 2}, {1, inf}, {1, 1}, {2, 3}}
	PermutationTest(users, users, 50, 1)
	PermutationTest(users[:1], users[1:], 50, 1)
	for _, v := range vals {
		DiffTolerance(v).Judge(v, Interval{v, v}, true)
		RatioTolerance(v, 1).Judge(1, Interval{-v, v}, true)
	}
}
