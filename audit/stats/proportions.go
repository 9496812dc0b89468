package stats

import "math"

// Wilson returns the Wilson score interval (Wilson 1927; method 3 of
// Newcombe 1998, "Two-sided confidence intervals for the single
// proportion", Statistics in Medicine 17:857-872) for successes out of n
// trials, without continuity correction: the interval R's
// prop.test(successes, n, correct = FALSE) reports.
//
// n == 0 gives the whole range [0, 1]. Counts outside 0 <= successes <= n,
// or an invalid conf, give a NaN interval. The interval always lies in
// [0, 1] and contains successes/n; it is exactly 0 at its lower end when
// successes == 0 and exactly 1 at its upper end when successes == n.
func Wilson(successes, n int64, conf float64) Interval {
	if !validConf(conf) || n < 0 || successes < 0 || successes > n {
		return nanInterval
	}
	if n == 0 {
		return Interval{Lo: 0, Hi: 1}
	}
	z := zCrit(conf)
	nf := float64(n)
	p := float64(successes) / nf
	z2n := z * z / nf
	center := (p + z2n/2) / (1 + z2n)
	half := z / (1 + z2n) * math.Sqrt(p*(1-p)/nf+z2n/(4*nf))
	ci := Interval{Lo: center - half, Hi: center + half}
	if successes == 0 || ci.Lo < 0 {
		ci.Lo = 0
	}
	if successes == n || ci.Hi > 1 {
		ci.Hi = 1
	}
	// Keep p-hat inside the interval against the last bit of rounding.
	ci.Lo = math.Min(ci.Lo, p)
	ci.Hi = math.Max(ci.Hi, p)
	return ci
}

// NewcombeDiff returns the difference p1 - p2 of the proportions x1/n1 and
// x2/n2 and its hybrid score interval, method 10 of Newcombe (1998),
// "Interval estimation for the difference between independent proportions:
// comparison of eleven methods", Statistics in Medicine 17:873-890. With
// (l1, u1) and (l2, u2) the Wilson intervals of the two proportions:
//
//	Lo = diff - sqrt((p1-l1)^2 + (u2-p2)^2)
//	Hi = diff + sqrt((u1-p1)^2 + (p2-l2)^2)
//
// When n1 == 0 or n2 == 0 the difference is NaN and the interval is the
// whole range [-1, 1]. Invalid counts (negative, or x > n) or conf give
// NaN and a NaN interval.
func NewcombeDiff(x1, n1, x2, n2 int64, conf float64) (diff float64, ci Interval) {
	if !validConf(conf) || !validCounts(x1, n1) || !validCounts(x2, n2) {
		return nan, nanInterval
	}
	if n1 == 0 || n2 == 0 {
		return nan, Interval{Lo: -1, Hi: 1}
	}
	p1 := float64(x1) / float64(n1)
	p2 := float64(x2) / float64(n2)
	w1 := Wilson(x1, n1, conf)
	w2 := Wilson(x2, n2, conf)
	diff = p1 - p2
	ci.Lo = diff - math.Hypot(p1-w1.Lo, w2.Hi-p2)
	ci.Hi = diff + math.Hypot(w1.Hi-p1, p2-w2.Lo)
	ci.Lo = math.Max(ci.Lo, -1)
	ci.Hi = math.Min(ci.Hi, 1)
	return diff, ci
}

// RatioCI returns the ratio p1/p2 of the proportions x1/n1 and x2/n2 (a
// risk ratio, or relative rate) with the log interval of Katz et al. (1978,
// Biometrics 34:469-474):
//
//	exp(log(ratio) ± z * sqrt(1/x1 - 1/n1 + 1/x2 - 1/n2))
//
// with z the normal quantile at (1+conf)/2.
//
// Zero counts: the log interval is undefined when x1 or x2 is 0, so then,
// and only then, 0.5 is added to each of the four cells of the 2x2 table
// (x1, n1-x1, x2, n2-x2; so n1 and n2 each grow by 1), and both the ratio
// and its interval are computed from the corrected table (Haldane's
// correction). The returned ratio is therefore finite and lies inside the
// interval. A zero count of failures (x = n) needs no correction and gets
// none; note that RevMan-style tools correct whenever any cell is zero.
//
// When n1 == 0 or n2 == 0 the ratio is NaN and the interval is the whole
// range [0, +Inf]. Invalid counts or conf give NaN and a NaN interval.
func RatioCI(x1, n1, x2, n2 int64, conf float64) (ratio float64, ci Interval) {
	if !validConf(conf) || !validCounts(x1, n1) || !validCounts(x2, n2) {
		return nan, nanInterval
	}
	if n1 == 0 || n2 == 0 {
		return nan, Interval{Lo: 0, Hi: math.Inf(1)}
	}
	a, m1 := float64(x1), float64(n1)
	b, m2 := float64(x2), float64(n2)
	if x1 == 0 || x2 == 0 {
		a, m1 = a+0.5, m1+1
		b, m2 = b+0.5, m2+1
	}
	ratio = (a / m1) / (b / m2)
	se := math.Sqrt(1/a - 1/m1 + 1/b - 1/m2)
	w := zCrit(conf) * se
	lr := math.Log(ratio)
	return ratio, Interval{Lo: math.Exp(lr - w), Hi: math.Exp(lr + w)}
}

// TwoProportionZ is the pooled two-sample z test of p1 = x1/n1 against
// p2 = x2/n2, two-sided:
//
//	z = (p1 - p2) / sqrt(p(1-p)(1/n1 + 1/n2)),  p = (x1+x2)/(n1+n2)
//
// z^2 is the X-squared of R's prop.test(c(x1, x2), c(n1, n2),
// correct = FALSE), and p its p-value. z is positive when p1 > p2.
//
// When n1 or n2 is 0, or the pooled proportion is 0 or 1 (no variance to
// test against: all successes or all failures), z and p are NaN, as in R.
// Invalid counts also give NaN.
func TwoProportionZ(x1, n1, x2, n2 int64) (z, p float64) {
	if !validCounts(x1, n1) || !validCounts(x2, n2) || n1 == 0 || n2 == 0 {
		return nan, nan
	}
	f1, f2 := float64(n1), float64(n2)
	pool := float64(x1+x2) / (f1 + f2)
	v := pool * (1 - pool) * (1/f1 + 1/f2)
	if !(v > 0) {
		return nan, nan
	}
	z = (float64(x1)/f1 - float64(x2)/f2) / math.Sqrt(v)
	return z, normTwoSided(z)
}

// UseFisher reports whether the 2x2 table of x1/n1 against x2/n2 is too
// sparse for the z test: true when any expected cell count
// (row total * column total / grand total) is below 5 (Cochran's rule), in
// which case FisherExact should be used instead of TwoProportionZ. It is
// also true for an empty group or invalid counts, where the z test is
// undefined.
func UseFisher(x1, n1, x2, n2 int64) bool {
	if !validCounts(x1, n1) || !validCounts(x2, n2) || n1 == 0 || n2 == 0 {
		return true
	}
	n := float64(n1) + float64(n2)
	succ := float64(x1) + float64(x2)
	fail := n - succ
	for _, r := range [2]float64{float64(n1), float64(n2)} {
		for _, c := range [2]float64{succ, fail} {
			if r*c/n < 5 {
				return true
			}
		}
	}
	return false
}

// FisherExact returns the two-sided p-value of Fisher's exact test on the
// 2x2 table [[a, b], [c, d]], as R's fisher.test computes it: the sum of the
// hypergeometric probabilities (margins fixed) of every table whose
// probability is at most the observed one's times 1 + 1e-7 (R's relative
// tolerance, so tables tied with the observed one count despite rounding).
//
// Probabilities are formed from log-factorials (math.Lgamma) relative to
// the mode, so counts in the thousands or millions are fine (the relative
// error of p is about 1e-9 at counts of a million, growing with the
// magnitude of log(n!) to about 1e-5 at a billion); tables far in the tails
// whose probability underflows add nothing, and a p-value below about
// 1e-300 is returned as 0. The cost grows with the spread of the
// distribution (about the square root of the counts), not with the counts.
//
// A negative count gives NaN; an all-zero table gives 1.
func FisherExact(a, b, c, d int64) (p float64) {
	if a < 0 || b < 0 || c < 0 || d < 0 {
		return nan
	}
	r1, r2, c1 := a+b, c+d, a+c
	n := r1 + r2
	lo := max(0, c1-r2)
	hi := min(r1, c1)
	if lo == hi {
		return 1
	}
	// logd(k) is the log of the probability of a = k, up to a constant.
	logd := func(k int64) float64 {
		return -lfact(k) - lfact(r1-k) - lfact(c1-k) - lfact(r2-c1+k)
	}
	// The hypergeometric mode, floor((r1+1)(c1+1)/(n+2)), clamped.
	mode := int64(math.Floor((float64(r1) + 1) * (float64(c1) + 1) / (float64(n) + 2)))
	mode = min(max(mode, lo), hi)
	ref := logd(mode)
	obs := math.Exp(logd(a) - ref)
	cut := obs * (1 + 1e-7)
	var total, tail float64
	add := func(k int64) bool {
		e := math.Exp(logd(k) - ref)
		total += e
		if e <= cut {
			tail += e
		}
		return e > 0
	}
	// The distribution is unimodal: walk out from the mode each way until
	// the terms underflow to zero; every term beyond is zero as well.
	for k := mode; k <= hi && add(k); k++ {
	}
	for k := mode - 1; k >= lo && add(k); k-- {
	}
	p = tail / total
	return min(p, 1)
}

// lfact is log(k!) for k >= 0.
func lfact(k int64) float64 {
	v, _ := math.Lgamma(float64(k) + 1)
	return v
}

// validCounts reports whether 0 <= x <= n.
func validCounts(x, n int64) bool { return x >= 0 && n >= 0 && x <= n }
