package stats

import "math"

// Shift is a Hodges-Lehmann estimate of the shift in location between two
// samples with its confidence interval; see HodgesLehmann.
type Shift struct {
	Estimate float64  // median of the m n differences x_i - y_j
	CI       Interval // [D_(k), D_(mn+1-k)] (see HodgesLehmann)
	// Level is the confidence level the interval achieves: for the exact
	// interval 1 - 2 P(U <= k-1), at least the conf asked for unless the
	// samples are too small to reach it; for the normal approximation the
	// conf asked for.
	Level float64
	Exact bool // CI from the exact distribution of U, not the normal
}

// HodgesLehmann returns the Hodges-Lehmann (1963) estimate of the shift of
// x relative to y, the median of the m n pairwise differences
// D_ij = x_i - y_j (m, n the sample sizes), and the distribution-free
// confidence interval obtained by inverting the two-sided Mann-Whitney
// test (Moses 1965; Hollander and Wolfe 1999, "Nonparametric Statistical
// Methods", 2nd ed., section 4.3): with D_(1) <= ... <= D_(mn) the ordered
// differences,
//
//	CI = [D_(k), D_(mn+1-k)]
//
// where k is chosen the way R's wilcox.test(x, y, conf.int = TRUE) does:
//
//   - Exact (both samples under 50 observations and no tied values, R's
//     default): k is the alpha/2 quantile of the null distribution of U,
//     the smallest k with P(U <= k) >= (1-conf)/2 (R's qwilcox), raised to
//     1 if it is 0. The same interval and estimate as R.
//   - Otherwise the normal approximation with continuity correction: k is
//     the smallest rank whose shift the test does not reject,
//     k = ceil(mn/2 - 0.5 - z sigma), at least 1, with z the normal
//     quantile at (1+conf)/2 and sigma the standard deviation of U with the
//     tie correction for the ties within x and within y (the ties the
//     shifted samples x - d and y keep at every d but the D_ij
//     themselves). R finds the same bounds by root-finding on the shift
//     (uniroot, tolerance 1e-4), so its bounds agree with these to about
//     1e-4. Its estimate in this case is a root of the corrected
//     statistic, some point between the D_ij next to the median, rather
//     than the median itself.
//
// The estimate is always the median of the D_ij (the mean of the two
// middle ones when mn is even).
//
// Cost: the D_ij are never formed. Each order statistic is found by
// bisection on the float64 values (at most 64 steps), counting the D_ij <= t
// for a trial t with one merge-like walk over the two sorted samples
// (Johnson and Mizoguchi 1978 select in X+Y by a related partition scheme).
// Time is O(d log d) to sort plus O(64 d) to select, memory O(d), with d the
// number of distinct values of x and y; 10^5 values per sample take a few
// milliseconds. The exact interval adds the null distribution of U, a few
// ms at most (sizes under 50). Inputs are Counts (value -> multiplicity),
// so per-user medians, means or raw values are all fine; the caller decides
// what one observation is (for user-level inference, one value per user).
//
// Degenerate input: an empty sample, a non-finite value, more than 2^62
// pairs or an invalid conf gives NaN for everything (the estimate is
// still given for an invalid conf).
func HodgesLehmann(x, y Counts, conf float64) Shift {
	return HodgesLehmannSorted(x.Sorted(), y.Sorted(), conf)
}

// HodgesLehmannSorted is HodgesLehmann of samples already sorted.
func HodgesLehmannSorted(x, y Sorted, conf float64) Shift {
	out := Shift{Estimate: nan, CI: nanInterval, Level: nan}
	xs, ys := x.vc, y.vc
	var nx, ny int64
	for _, e := range xs {
		if math.IsInf(e.v, 0) {
			return out
		}
		nx += e.k
	}
	for _, e := range ys {
		if math.IsInf(e.v, 0) {
			return out
		}
		ny += e.k
	}
	if nx == 0 || ny == 0 || nx > (1<<62)/ny {
		return out
	}
	d := newDiffs(xs, ys)
	total := nx * ny
	if total%2 == 1 {
		out.Estimate = d.kth((total + 1) / 2)
	} else {
		out.Estimate = (d.kth(total/2) + d.kth(total/2+1)) / 2
	}
	if !validConf(conf) {
		return out
	}
	alpha := 1 - conf
	ties := hlHasTies(xs, ys)
	var k int64
	if !ties && nx < mwExactMax && ny < mwExactMax {
		pmf := mwDist(int(nx), int(ny))
		// qwilcox: the smallest q with P(U <= q) >= alpha/2, compared with
		// R's allowance of 10 epsilon for rounding in the sum.
		var cdf float64
		q := int64(0)
		for ; q < int64(len(pmf)); q++ {
			cdf += pmf[q]
			if cdf >= alpha/2-10*epsilon {
				break
			}
		}
		k = max(q, 1)
		var below float64 // P(U <= k-1)
		for i := int64(0); i < k; i++ {
			below += pmf[i]
		}
		out.Level = 1 - 2*below
		out.Exact = true
	} else {
		var tsum float64
		for _, s := range [][]valueCount{xs, ys} {
			for _, e := range s {
				t := float64(e.k)
				tsum += t*t*t - t
			}
		}
		fx, fy := float64(nx), float64(ny)
		nt := fx + fy
		sigma := math.Sqrt(fx * fy / 12 * ((nt + 1) - tsum/(nt*(nt-1))))
		if !(sigma > 0) {
			return out
		}
		kf := math.Ceil(float64(total)/2 - 0.5 - zCrit(conf)*sigma)
		k = int64(max(kf, 1))
		out.Level = conf
	}
	out.CI = Interval{Lo: d.kth(k), Hi: d.kth(total + 1 - k)}
	return out
}

// hlHasTies reports whether a value occurs more than once in the two
// sorted samples together.
func hlHasTies(xs, ys []valueCount) bool {
	for _, s := range [][]valueCount{xs, ys} {
		for _, e := range s {
			if e.k > 1 {
				return true
			}
		}
	}
	i, j := 0, 0
	for i < len(xs) && j < len(ys) {
		switch {
		case xs[i].v < ys[j].v:
			i++
		case ys[j].v < xs[i].v:
			j++
		default:
			return true
		}
	}
	return false
}

// diffs is the implicit sorted multiset of the differences x_i - y_j of two
// sorted samples with multiplicities.
type diffs struct {
	xs, ys []valueCount
	ysuf   []int64 // ysuf[j] = multiplicity of ys[j:]
}

func newDiffs(xs, ys []valueCount) *diffs {
	suf := make([]int64, len(ys)+1)
	for j := len(ys) - 1; j >= 0; j-- {
		suf[j] = suf[j+1] + ys[j].k
	}
	return &diffs{xs: xs, ys: ys, ysuf: suf}
}

// countLE returns the number of pairs with fl(x_i - y_j) <= t. Floating
// subtraction is monotone in each argument, so for x ascending the set of
// y_j with x - y_j <= t is a suffix of ys whose start only moves right.
func (d *diffs) countLE(t float64) int64 {
	var n int64
	j := 0
	for _, e := range d.xs {
		for j < len(d.ys) && e.v-d.ys[j].v > t {
			j++
		}
		n += e.k * d.ysuf[j]
	}
	return n
}

// kth returns the k-th smallest difference, 1 <= k <= m n: the smallest t
// with countLE(t) >= k. t is searched over the float64 values between the
// smallest and largest difference through their order-preserving integer
// keys, so at most 64 halvings find it exactly; it is always one of the
// differences, since countLE only steps at them.
func (d *diffs) kth(k int64) float64 {
	lo := floatKey(d.xs[0].v - d.ys[len(d.ys)-1].v)
	hi := floatKey(d.xs[len(d.xs)-1].v - d.ys[0].v)
	// Invariant: countLE(key hi) >= k; every key < lo has count < k.
	for lo < hi {
		mid := lo + int64(uint64(hi-lo)/2) // hi-lo may exceed MaxInt64
		if d.countLE(keyFloat(mid)) >= k {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return keyFloat(lo)
}

// floatKey maps a finite float64 to an int64 with the same order (-0 and
// +0 both map to 0); keyFloat is its inverse (0 maps to +0).
func floatKey(f float64) int64 {
	b := math.Float64bits(f)
	if b>>63 == 1 {
		return -int64(b &^ (1 << 63))
	}
	return int64(b)
}

func keyFloat(k int64) float64 {
	if k < 0 {
		return math.Float64frombits(uint64(-k) | 1<<63)
	}
	return math.Float64frombits(uint64(k))
}
