package stats

import "math"

// BenjaminiYekutieli returns the Benjamini-Yekutieli (2001) adjusted
// p-values of p, in the input order, as R's p.adjust(p, method = "BY"):
// the Benjamini-Hochberg q-values multiplied by c(m) = 1 + 1/2 + ... + 1/m
// and capped at 1, which control the false discovery rate under any
// dependence between the tests ("The control of the false discovery rate
// in multiple testing under dependency", Annals of Statistics
// 29:1165-1188, Theorem 1.3). NaN p-values stay NaN and are not counted in
// m. p is not modified.
func BenjaminiYekutieli(p []float64) []float64 {
	q := BenjaminiHochberg(p)
	c := harmonic(countNonNaN(p))
	for i, v := range q {
		if !math.IsNaN(v) {
			q[i] = min(1, c*v)
		}
	}
	return q
}

// harmonic is 1 + 1/2 + ... + 1/m (0 for m <= 0).
func harmonic(m int) float64 {
	var c float64
	for i := m; i >= 1; i-- { // smallest terms first
		c += 1 / float64(i)
	}
	return c
}

func countNonNaN(p []float64) int {
	m := 0
	for _, v := range p {
		if !math.IsNaN(v) {
			m++
		}
	}
	return m
}

// FDRProcedure is a false discovery rate procedure: the q-values that
// select, and the matching confidence level of FCRIntervals.
type FDRProcedure int

const (
	// FDRBH is Benjamini-Hochberg: valid for independent or positively
	// dependent tests.
	FDRBH FDRProcedure = iota
	// FDRBY is Benjamini-Yekutieli: valid under any dependence, at the
	// cost of the factor c(m) = 1 + 1/2 + ... + 1/m.
	FDRBY
)

// Estimate is one comparison to be tested against 0 and given an interval:
// an estimate with its standard error. DF is the degrees of freedom of its
// Student's t reference distribution; 0 (or +Inf, or NaN) means the
// normal. For a ratio pass the log ratio and its SE and exponentiate the
// interval.
type Estimate struct{ Est, SE, DF float64 }

// FCRInterval is one comparison's result from FCRIntervals.
type FCRInterval struct {
	P        float64  // two-sided p-value of Est = 0
	Q        float64  // its BH or BY q-value over all the comparisons
	Selected bool     // Q <= q: a discovery
	Level    float64  // confidence level of CI
	CI       Interval // Est ± crit(Level) SE
}

// FCRIntervals returns, for each of the m comparisons in ests, its p-value,
// its q-value under proc, whether it is selected (Q <= q) and a confidence
// interval whose level is adjusted for the selection, so that the interval
// shown always agrees with the decision:
//
//   - a selected comparison gets the Benjamini-Yekutieli (2005)
//     FCR-adjusted interval at level 1 - R q / m (R the number selected):
//     "False discovery rate-adjusted multiple confidence intervals for
//     selected parameters", JASA 100:71-81. Over the selected intervals
//     the expected share that miss their parameter (the false
//     coverage-statement rate) is at most q for independent estimates
//     (BH selection), and under any dependence when the level is
//     1 - R q / (m c(m)), which FDRBY uses. The selected comparison's
//     p-value is at most R q / m (resp. R q / (m c(m))), so its interval
//     excludes 0: it is the interval dual to the test.
//   - a comparison not selected gets the interval at level
//     1 - (R+1) q / m (resp. with c(m)), the level at which the step-up
//     procedure would have needed its p-value to select it: its p-value is
//     above that (no p-value ranked after the R-th passes its threshold),
//     so its interval contains 0. These intervals carry no FCR guarantee;
//     they are the ones consistent with "not significant".
//
// The p-values come from Est/SE against the normal or Student's t(DF), and
// the intervals use the same distribution's quantile, so the agreement is
// exact up to rounding at a p-value lying exactly on its threshold.
//
// An estimate whose Est or SE is NaN, or whose SE is <= 0 or infinite, has
// a NaN p-value: it is not counted in m, is never selected, and gets a NaN
// interval and level. An invalid q (not in (0, 1)) or proc gives NaN
// q-values, levels and intervals and selects nothing.
func FCRIntervals(ests []Estimate, q float64, proc FDRProcedure) []FCRInterval {
	out := make([]FCRInterval, len(ests))
	p := make([]float64, len(ests))
	for i, e := range ests {
		p[i] = nan
		if e.SE > 0 && !math.IsInf(e.SE, 0) && !math.IsNaN(e.Est) {
			z := e.Est / e.SE
			if normalDF(e.DF) {
				p[i] = normTwoSided(z)
			} else {
				p[i] = tTwoSided(z, e.DF)
			}
		}
		out[i] = FCRInterval{P: p[i], Q: nan, Level: nan, CI: nanInterval}
	}
	if !(q > 0 && q < 1) || (proc != FDRBH && proc != FDRBY) {
		return out
	}
	var qs []float64
	c := 1.0
	if proc == FDRBY {
		qs = BenjaminiYekutieli(p)
		c = harmonic(countNonNaN(p))
	} else {
		qs = BenjaminiHochberg(p)
	}
	m := float64(countNonNaN(p))
	r := 0
	for i := range out {
		out[i].Q = qs[i]
		if qs[i] <= q {
			out[i].Selected = true
			r++
		}
	}
	for i, e := range ests {
		if math.IsNaN(p[i]) {
			continue
		}
		k := float64(r)
		if !out[i].Selected {
			k++
		}
		level := 1 - k*q/(m*c)
		out[i].Level = level
		var crit float64
		if normalDF(e.DF) {
			crit = zCrit(level)
		} else {
			crit = tCrit(level, e.DF)
		}
		h := crit * e.SE
		out[i].CI = Interval{Lo: e.Est - h, Hi: e.Est + h}
	}
	return out
}

// normalDF reports whether df selects the normal rather than Student's t.
func normalDF(df float64) bool { return !(df > 0) || math.IsInf(df, 1) }
