package stats

import (
	"math"

	"gonum.org/v1/gonum/mathext"
)

// signExactMax is the largest n for which SignTest evaluates the binomial
// tail exactly. gonum's incomplete beta (Cephes incbet) loses accuracy
// when both parameters are huge and x is near their ratio: checked against
// 30-digit summation, its error is below 1e-9 up to n = 1e6 but 5e-6 at
// n = 3e6 and 1e-3 at n = 1e7.
const signExactMax = 1_000_000

// SignTest is the two-sided sign test: the p-value of R's
// binom.test(higher, higher + lower, p = 0.5), where higher and lower count
// the pairs whose difference is positive and negative (pairs with no
// difference are dropped before calling).
//
// With k = min(higher, lower) and n = higher + lower, p = min(1, 2 P(X <= k))
// for X ~ Binomial(n, 1/2), which for p = 0.5 is exactly R's rule of summing
// the outcomes no more likely than the observed one. For n <= 1,000,000,
// P(X <= k) is computed exactly as the regularized incomplete beta function
// I_{1/2}(n-k, k+1). For larger n it is the normal approximation with
// continuity correction, Φ((k + 0.5 - n/2) / (sqrt(n)/2)), whose absolute
// error for the symmetric binomial is of order 1/n (below 1e-6 there).
//
// n == 0, or a negative count, gives NaN.
func SignTest(higher, lower int64) (p float64) {
	if higher < 0 || lower < 0 || higher+lower == 0 {
		return nan
	}
	n := higher + lower
	k := min(higher, lower)
	if 2*k >= n {
		return 1
	}
	fn, fk := float64(n), float64(k)
	var tail float64
	if n <= signExactMax {
		tail = mathext.RegIncBeta(fn-fk, fk+1, 0.5)
	} else {
		z := (fk + 0.5 - fn/2) / (math.Sqrt(fn) / 2)
		tail = 0.5 * math.Erfc(-z/math.Sqrt2)
	}
	return min(1, 2*tail)
}
