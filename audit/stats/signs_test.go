package stats

import (
	"math"
	"testing"
)

func TestSignTestClosedForm(t *testing.T) {
	// binom.test(k, n, p = 0.5) two-sided, by hand: p = 2 sum_{i<=k} C(n,i) / 2^n.
	//   R's sleep data, paired differences group 2 - group 1: 9 positive,
	//   1 zero (dropped): binom.test(9, 9) p = 2 * 1/512 = 0.00390625
	//   (R prints p-value = 0.003906).
	near(t, "9 vs 0", SignTest(9, 0), 2.0/512, 1e-15)
	near(t, "0 vs 9", SignTest(0, 9), 2.0/512, 1e-15)
	//   binom.test(1, 10): 2 * (1 + 10)/1024 = 22/1024 = 0.02148438.
	near(t, "1 vs 9", SignTest(1, 9), 22.0/1024, 1e-15)
	//   binom.test(7, 20): 2 * (1+20+190+1140+4845+15504+38760+77520)/2^20
	//   = 2 * 137980/1048576 = 0.2631760.
	near(t, "7 vs 13", SignTest(7, 13), 2*137980.0/1048576, 1e-14)
	//   Balanced and near-balanced samples: p = 1 (capped).
	near(t, "5 vs 5", SignTest(5, 5), 1, 0)
	near(t, "5 vs 6", SignTest(5, 6), 1, 0)
	//   n = 1: p = 2 * 1/2 = 1.
	near(t, "1 vs 0", SignTest(1, 0), 1, 0)
}

// Against the binomial sum computed independently, term by term in log
// space, for n up to the exact limit.
func TestSignTestBinomialSum(t *testing.T) {
	for _, c := range [][2]int64{{950, 1050}, {480, 520}, {40, 3000}, {49_000, 51_000}} {
		k, n := c[0], c[0]+c[1]
		var s float64
		for i := int64(0); i <= k; i++ {
			s += math.Exp(lfact(n) - lfact(i) - lfact(n-i) - float64(n)*math.Ln2)
		}
		near(t, "binomial sum", SignTest(c[0], c[1]), 2*s, 1e-10*2*s+1e-300)
	}
}

func TestSignTestLargeN(t *testing.T) {
	// P(X <= k), X ~ Binomial(n, 1/2), from a 30-digit summation of the
	// binomial probabilities (mpmath: log C(n,k) via loggamma, then the
	// recurrence P(i-1) = P(i) i/(n-i+1) down to 1e-25 of the sum):
	//   n = 1e6, k = 499500: 0.158897345681653
	//   n = 1e6, k = 498000: 3.18046687504124e-5
	//   n = 3e6, k = 1499000: 0.124224831807905
	//   n = 1e7, k = 4998000: 0.103008301397514
	// Up to n = 1e6 SignTest is exact; beyond, the continuity-corrected
	// normal approximation must be within 1e-6.
	cases := []struct {
		k, n int64
		cdf  float64
		tol  float64
	}{
		{499_500, 1_000_000, 0.158897345681653, 1e-9},
		{498_000, 1_000_000, 3.18046687504124e-5, 1e-12},
		{1_499_000, 3_000_000, 0.124224831807905, 1e-6},
		{4_998_000, 10_000_000, 0.103008301397514, 1e-6},
	}
	for _, c := range cases {
		near(t, "large n", SignTest(c.k, c.n-c.k), 2*c.cdf, c.tol)
	}
	// Near the centre for n = 1e9 (where the incomplete beta would fail):
	// Φ(-999.5/15811.388) doubled = 0.949596.
	near(t, "n = 1e9", SignTest(500_001_000, 499_999_000), 0.949596, 1e-6)
}

func TestSignTestDegenerate(t *testing.T) {
	near(t, "n = 0", SignTest(0, 0), math.NaN(), 0)
	near(t, "negative", SignTest(-1, 5), math.NaN(), 0)
	near(t, "negative", SignTest(5, -1), math.NaN(), 0)
}
