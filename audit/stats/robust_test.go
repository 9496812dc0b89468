package stats

import (
	"math"
	"testing"
)

// Degenerate and hostile inputs must not panic or hang anywhere.
func TestNoPanic(t *testing.T) {
	inf, nan := math.Inf(1), math.NaN()
	confs := []float64{0.95, 0, 1, -1, 2, nan, inf, 1e-300, 1 - 1e-16}
	counts := []int64{0, 1, 2, -1, 1 << 40, math.MaxInt32}
	for _, conf := range confs {
		for _, x := range counts {
			for _, n := range counts {
				Wilson(x, n, conf)
				NewcombeDiff(x, n, 1, 2, conf)
				RatioCI(x, n, 1, 2, conf)
				TwoProportionZ(x, n, 1, 2)
				UseFisher(x, n, 1, 2)
				SignTest(x, n)
				if x < 1<<20 && n < 1<<20 {
					FisherExact(x, n, 1, 2)
				}
			}
		}
	}
	sums := []Summary{{}, summaryOf(1), summaryOf(1, 1), summaryOf(1, inf), summaryOf(nan, 1), summaryOf(-inf, inf), summaryOf(-1, -2), summaryOf(0, 0, 0)}
	for _, a := range sums {
		for _, b := range sums {
			for _, conf := range confs {
				MeanCI(a, conf)
				WelchDiffCI(a, b, conf)
				MeanRatioCI(a, b, conf)
			}
			Welch(a, b)
		}
	}
	MannWhitney(Counts{inf: 1, -inf: 1}, Counts{0: 1})
	QuantilesOf(Counts{inf: 1, -inf: 1}, []float64{0.5})
	BenjaminiHochberg([]float64{nan, inf, -1, 2})
	tTwoSided(nan, 3)
	tTwoSided(1, 0)
	tTwoSided(inf, 3)
}

func TestTTwoSided(t *testing.T) {
	// Cauchy (1 df): 1 - (2/pi) atan(1) = 0.5; infinite t: 0; bad df: NaN.
	near(t, "t 1 df", tTwoSided(1, 1), 0.5, 1e-12)
	near(t, "inf", tTwoSided(math.Inf(-1), 5), 0, 0)
	near(t, "df 0", tTwoSided(1, 0), math.NaN(), 0)
	near(t, "t NaN", tTwoSided(math.NaN(), 4), math.NaN(), 0)
}
