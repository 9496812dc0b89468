package stats

import "math"

// MeanCI returns the Student t interval for the mean of s,
// mean ± t(n-1) * sd / sqrt(n), the interval R's t.test(x) reports.
//
// With fewer than two observations, or an invalid conf, the interval is
// NaN. A sample with zero variance gives the zero-width interval
// [mean, mean].
func MeanCI(s Summary, conf float64) Interval {
	if !validConf(conf) || s.n < 2 {
		return nanInterval
	}
	m := s.Mean()
	se := s.SD() / math.Sqrt(float64(s.n))
	if se == 0 {
		return Interval{Lo: m, Hi: m}
	}
	w := tCrit(conf, float64(s.n-1)) * se
	return Interval{Lo: m - w, Hi: m + w}
}

// welch holds the pieces of Welch's test shared by Welch and WelchDiffCI.
// ok is false when the test is undefined.
func welch(a, b Summary) (diff, se, df float64, ok bool) {
	if a.n < 2 || b.n < 2 {
		return nan, nan, nan, false
	}
	va := a.Variance() / float64(a.n)
	vb := b.Variance() / float64(b.n)
	v := va + vb
	if !(v > 0) {
		return a.Mean() - b.Mean(), 0, nan, false
	}
	df = v * v / (va*va/float64(a.n-1) + vb*vb/float64(b.n-1))
	return a.Mean() - b.Mean(), math.Sqrt(v), df, true
}

// Welch is Welch's unequal-variance two-sample t test of mean(a) = mean(b),
// two-sided, with the Welch-Satterthwaite degrees of freedom: the t, df and
// p-value of R's t.test(a, b, var.equal = FALSE). t is positive when
// mean(a) > mean(b).
//
// The test is undefined, and all three results are NaN, when either sample
// has fewer than two observations or both samples have zero variance (R
// stops with "data are essentially constant" there).
func Welch(a, b Summary) (t, df, p float64) {
	diff, se, df, ok := welch(a, b)
	if !ok {
		return nan, nan, nan
	}
	t = diff / se
	return t, df, tTwoSided(t, df)
}

// WelchDiffCI returns mean(a) - mean(b) and its Welch interval,
// diff ± t(df) * se with Welch-Satterthwaite df, the confidence interval of
// R's t.test(a, b, var.equal = FALSE).
//
// diff is NaN when either sample is empty. The interval is NaN whenever
// Welch's test is undefined (see Welch) or conf is invalid.
func WelchDiffCI(a, b Summary, conf float64) (diff float64, ci Interval) {
	diff = a.Mean() - b.Mean()
	_, se, df, ok := welch(a, b)
	if !ok || !validConf(conf) {
		return diff, nanInterval
	}
	w := tCrit(conf, df) * se
	return diff, Interval{Lo: diff - w, Hi: diff + w}
}

// MeanRatioCI returns mean(a)/mean(b) and a confidence interval for it by
// the delta method on the log scale:
//
//	var(log ratio) ≈ var(a)/(n_a mean(a)^2) + var(b)/(n_b mean(b)^2)
//	interval = exp(log(ratio) ± z * sqrt(var(log ratio)))
//
// with z the normal quantile at (1+conf)/2 (a large-sample interval: no t
// correction). The interval is NaN when either mean is <= 0 (the log is
// undefined), when either sample has fewer than two observations, or when
// conf is invalid; the ratio itself is NaN only when a sample is empty
// (and ±Inf or NaN when mean(b) is 0). Two samples of zero variance give
// the zero-width interval [ratio, ratio].
func MeanRatioCI(a, b Summary, conf float64) (ratio float64, ci Interval) {
	ma, mb := a.Mean(), b.Mean()
	ratio = ma / mb
	if !validConf(conf) || a.n < 2 || b.n < 2 || !(ma > 0) || !(mb > 0) {
		return ratio, nanInterval
	}
	v := a.Variance()/(float64(a.n)*ma*ma) + b.Variance()/(float64(b.n)*mb*mb)
	w := zCrit(conf) * math.Sqrt(v)
	lr := math.Log(ratio)
	return ratio, Interval{Lo: math.Exp(lr - w), Hi: math.Exp(lr + w)}
}
