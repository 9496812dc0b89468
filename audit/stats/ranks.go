package stats

import (
	"cmp"
	"math"
	"slices"
	"sort"
)

// Counts is a sample stored as value -> multiplicity, so that a metric with
// few distinct values (prices, ranks) takes memory bounded by the number of
// distinct values rather than by the number of observations. Entries with a
// multiplicity <= 0 and NaN values are ignored by every function here.
type Counts map[float64]int64

// valueCount is one distinct value of a Counts with its multiplicity.
type valueCount struct {
	v float64
	k int64
}

// Sorted is a sample as its distinct values in increasing order, each
// with its multiplicity: the form every function on Counts works from.
// Made once (Counts.Sorted, or SortedOf from values already in order), it
// serves several tests and quantiles without sorting again; the functions
// named ...Sorted give the same results as their Counts forms.
type Sorted struct{ vc []valueCount }

// Sorted returns c's usable entries (multiplicity > 0, not NaN) in order.
func (c Counts) Sorted() Sorted { return Sorted{c.sorted()} }

// SortedOf returns the sample with values vals[i] seen counts[i] times,
// keeping the usable entries. Values in increasing order are taken as they
// are; otherwise they are sorted and equal ones added together. It panics
// when counts is shorter than vals (a caller's mistake, as an index out of
// range is).
func SortedOf(vals []float64, counts []int64) Sorted {
	if len(counts) < len(vals) {
		panic("stats: SortedOf: fewer counts than values")
	}
	vc := make([]valueCount, 0, len(vals))
	inOrder := true
	for i, v := range vals {
		if k := counts[i]; k > 0 && !math.IsNaN(v) {
			if n := len(vc); n > 0 && !(vc[n-1].v < v) {
				inOrder = false
			}
			vc = append(vc, valueCount{v, k})
		}
	}
	if !inOrder {
		slices.SortFunc(vc, func(a, b valueCount) int { return cmp.Compare(a.v, b.v) })
		w := 0
		for _, e := range vc {
			if w > 0 && vc[w-1].v == e.v {
				vc[w-1].k += e.k
				continue
			}
			vc[w] = e
			w++
		}
		vc = vc[:w]
	}
	return Sorted{vc}
}

// Len is the number of distinct values.
func (s Sorted) Len() int { return len(s.vc) }

// Counts returns the sample as Counts.
func (s Sorted) Counts() Counts {
	c := make(Counts, len(s.vc))
	for _, e := range s.vc {
		c[e.v] = e.k
	}
	return c
}

// sorted returns the usable entries of c in increasing order of value.
func (c Counts) sorted() []valueCount {
	out := make([]valueCount, 0, len(c))
	for v, k := range c {
		if k > 0 && !math.IsNaN(v) {
			out = append(out, valueCount{v, k})
		}
	}
	slices.SortFunc(out, func(a, b valueCount) int { return cmp.Compare(a.v, b.v) })
	return out
}

// mwExactMax is the sample size below which, with no ties, MannWhitney
// uses the exact null distribution of U: R's wilcox.test default.
const mwExactMax = 50

// MannWhitney is the Mann-Whitney U (Wilcoxon rank-sum) test of x against
// y, two-sided, giving the same u and p as R's wilcox.test(x, y) with its
// default arguments:
//
//   - u is U of x: the number of pairs (x_i, y_j) with x_i > y_j, plus half
//     the number of ties; this is R's W. u > n_x n_y / 2 means x tends to be
//     larger.
//   - When both samples have fewer than 50 observations and there are no
//     ties, p is exact, from the permutation distribution of U (computed
//     afresh each call: a few milliseconds at the largest sizes).
//   - Otherwise p comes from the normal approximation with the tie
//     correction to the variance and a continuity correction of 0.5 towards
//     the mean (R's correct = TRUE), i.e. wilcox.test(x, y, exact = FALSE).
//
// z is always the normal-approximation statistic (tie- and
// continuity-corrected), (u - n_x n_y/2 - sign * 0.5) / sigma, even when p
// is exact; it is positive when x tends to be larger.
//
// When either sample is empty all three results are NaN. When every
// observation has the same value (sigma = 0) u is n_x n_y / 2 and z and p
// are NaN, as in R.
func MannWhitney(x, y Counts) (u, z, p float64) {
	return MannWhitneySorted(x.Sorted(), y.Sorted())
}

// MannWhitneySorted is MannWhitney of samples already sorted.
func MannWhitneySorted(x, y Sorted) (u, z, p float64) {
	xs, ys := x.vc, y.vc
	var nx, ny int64
	for _, e := range xs {
		nx += e.k
	}
	for _, e := range ys {
		ny += e.k
	}
	if nx == 0 || ny == 0 {
		return nan, nan, nan
	}
	// Merge the two sorted lists; at each distinct value, x's count there
	// beats every y below plus half of the y's tied with it.
	var below int64 // y observations strictly below the current value
	var ties float64
	i, j := 0, 0
	for i < len(xs) || j < len(ys) {
		var v float64
		switch {
		case j == len(ys) || (i < len(xs) && xs[i].v < ys[j].v):
			v = xs[i].v
		default:
			v = ys[j].v
		}
		var kx, ky int64
		if i < len(xs) && xs[i].v == v {
			kx = xs[i].k
			i++
		}
		if j < len(ys) && ys[j].v == v {
			ky = ys[j].k
			j++
		}
		u += float64(kx) * (float64(below) + float64(ky)/2)
		below += ky
		t := float64(kx + ky)
		ties += t*t*t - t
	}
	fx, fy := float64(nx), float64(ny)
	nt := fx + fy
	d := u - fx*fy/2
	corr := 0.0
	if d > 0 {
		corr = 0.5
	} else if d < 0 {
		corr = -0.5
	}
	sigma := math.Sqrt(fx * fy / 12 * ((nt + 1) - ties/(nt*(nt-1))))
	if !(sigma > 0) {
		return u, nan, nan
	}
	z = (d - corr) / sigma
	if ties == 0 && nx < mwExactMax && ny < mwExactMax {
		return u, z, mwExactP(int(u), int(nx), int(ny))
	}
	return u, z, normTwoSided(z)
}

// mwExactP is the exact two-sided p-value of an untied U = u for samples of
// m and n, computed as R's wilcox.test does: twice the smaller tail
// (P(U >= u) above the mean, P(U <= u) otherwise), capped at 1.
func mwExactP(u, m, n int) float64 {
	pmf := mwDist(m, n)
	var tail float64
	if 2*u > m*n {
		for k := u; k <= m*n; k++ {
			tail += pmf[k]
		}
	} else {
		for k := 0; k <= u; k++ {
			tail += pmf[k]
		}
	}
	return min(2*tail, 1)
}

// mwDist is the null distribution of U for samples of m and n without ties,
// P(U = k) for k = 0..m*n, by the recurrence on the largest observation:
// P_{i,j}(k) = i/(i+j) P_{i-1,j}(k-j) + j/(i+j) P_{i,j-1}(k). Two flat
// buffers hold rows i-1 and i, one stretch of m*n+1 per j: O(m^2 n^2) time
// (a few ms at m = n = 49), O(m n^2) memory.
func mwDist(m, n int) []float64 {
	w := m*n + 1
	prev := make([]float64, (n+1)*w) // prev[j*w+k] = P_{i-1,j}(k)
	cur := make([]float64, (n+1)*w)
	for j := 0; j <= n; j++ {
		prev[j*w] = 1 // i = 0: U is 0
	}
	for i := 1; i <= m; i++ {
		cur[0] = 1 // j = 0: U is 0
		for j := 1; j <= n; j++ {
			fx := float64(i) / float64(i+j)
			fy := float64(j) / float64(i+j)
			d := cur[j*w : j*w+i*j+1]
			clear(d)
			// The largest is an x: it beats all j y's.
			for k, q := range prev[j*w : j*w+(i-1)*j+1] {
				d[k+j] += fx * q
			}
			// The largest is a y.
			for k, q := range cur[(j-1)*w : (j-1)*w+i*(j-1)+1] {
				d[k] += fy * q
			}
		}
		prev, cur = cur, prev
	}
	return prev[n*w : n*w+w]
}

// QuantilesOf returns the quantiles qs of the sample c by R's default
// definition (type 7 of Hyndman and Fan 1996, quantile(x, qs) in R): with
// the n observations sorted as x[0] <= ... <= x[n-1] and h = (n-1)q, the
// value x[floor(h)] + (h - floor(h)) (x[floor(h)+1] - x[floor(h)]).
//
// The result has one entry per q, in the order given. A q outside [0, 1]
// or NaN, and every q of an empty sample, gives NaN.
func QuantilesOf(c Counts, qs []float64) []float64 {
	return QuantilesOfSorted(c.Sorted(), qs)
}

// QuantilesOfSorted is QuantilesOf of a sample already sorted.
func QuantilesOfSorted(c Sorted, qs []float64) []float64 {
	vs := c.vc
	// cum[i] is the number of observations with index < end of entry i.
	cum := make([]int64, len(vs))
	var n int64
	for i, e := range vs {
		n += e.k
		cum[i] = n
	}
	// at returns the order statistic x[k], 0 <= k < n.
	at := func(k int64) float64 {
		return vs[sort.Search(len(cum), func(i int) bool { return cum[i] > k })].v
	}
	out := make([]float64, len(qs))
	for i, q := range qs {
		if n == 0 || !(q >= 0 && q <= 1) {
			out[i] = nan
			continue
		}
		h := float64(n-1) * q
		lo := int64(math.Floor(h))
		lo = min(max(lo, 0), n-1)
		hi := min(lo+1, n-1)
		g := h - float64(lo)
		xl, xh := at(lo), at(hi)
		if g == 0 || xl == xh {
			out[i] = xl
		} else {
			out[i] = (1-g)*xl + g*xh
		}
	}
	return out
}
