package audit

import (
	"math"

	"github.com/recguard/recguard/audit/stats"
)

// Materiality (issue 13). A finding needs an effect that matters as well as
// significance after the correction for many tests: on large data sets a
// tiny gap (a 0.07% price difference, a 0.3 ms latency gap) is
// "significant" and means nothing, and an effect of zero must never be a
// finding. A comparison is material when its estimate lies outside the
// tolerance of its kind:
//
//   - rates: the ratio group / reference outside [0.8, 1.25] (the
//     four-fifths rule of disparate-impact practice, symmetric on the log
//     scale);
//   - means and distributions (medians): the ratio outside [0.95, 1/0.95],
//     or, when the reference value is not positive, any non-zero
//     difference; a stratified distribution (compared by percentiles
//     within strata): a shift of at least 5 percentile points;
//   - same-item prices: a mean excess of at least 1% of the reference
//     price, either way.
//
// The estimate, not the interval, is compared with the tolerance: the
// interval's job (excluding no effect) is the significance test's.
type Tolerance struct {
	// RateRatio and MeanRatio are the ratios within which a rate or a
	// mean (or median) difference is not material: [1/x, x] for x > 1.
	RateRatio float64 `json:"rate_ratio"`
	MeanRatio float64 `json:"mean_ratio"`
	// PricePct is the smallest material same-item price excess, in
	// percent of the reference price.
	PricePct float64 `json:"price_pct"`
	// PercentileShift is the smallest material shift of a stratified
	// distribution: the group's mean percentile within strata minus the
	// reference's (0.05: five percentile points, about a Cliff's delta of
	// 0.1).
	PercentileShift float64 `json:"percentile_shift"`
}

// DefaultTolerance is the tolerance of a spec that sets none.
var DefaultTolerance = Tolerance{RateRatio: 1.25, MeanRatio: 1 / 0.95, PricePct: 1, PercentileShift: 0.05}

// material reports whether a test's effect is outside the tolerance.
func (tol Tolerance) material(kind MetricKind, t *TestResult) bool {
	if kind == Distribution && t.Adjustment == AdjustMantelHaenszel {
		// A stratified distribution's effect is a shift of percentiles.
		d := math.Abs(t.Difference)
		return d > 0 && d >= tol.PercentileShift
	}
	x := tol.MeanRatio
	if kind == Rate {
		x = tol.RateRatio
	}
	if t.Difference == 0 || math.IsNaN(t.Difference) {
		return false
	}
	switch r := t.Ratio; {
	case math.IsNaN(r):
		return false
	case math.IsInf(r, 0), r <= 0:
		// The reference value is zero (or not positive): any difference
		// in a rate or mean of positive quantities matters.
		return true
	default:
		return r > x || r < 1/x
	}
}

// materialPrice reports whether a same-item price excess is material.
func (tol Tolerance) materialPrice(p *PriceResult) bool {
	return !math.IsNaN(p.MeanExcessPct) && math.Abs(p.MeanExcessPct) >= tol.PricePct
}

// cmpArgs are the inputs of one group test, kept to recompute its intervals
// at the adjusted level.
type cmpArgs struct {
	m      *metricDef
	a, b   *metricAcc
	ma, mb moments
}

// adjustIntervals recomputes the intervals of the report's group tests,
// same-item prices and parity tests at the level conf.
func (e *engine) adjustIntervals(r *Report, cmps []cmpArgs, conf float64, stTests, stParity []*stratCmp) {
	old := e.conf
	e.conf = conf
	defer func() { e.conf = old }()
	// set gives test t the crude intervals dci, rci, and its adjusted
	// ones when it was adjusted (st).
	set := func(t *TestResult, dci, rci Interval, st *stratCmp) {
		if t.Crude == nil {
			t.DifferenceCI, t.RatioCI = dci, rci
			return
		}
		t.Crude.DifferenceCI, t.Crude.RatioCI = dci, rci
		if st != nil {
			t.DifferenceCI, t.RatioCI = st.intervalsAt(conf)
		}
	}
	for i, c := range cmps {
		if t, ok := e.compareUsers(c.m, c.a, c.b, c.ma, c.mb); ok {
			set(&r.Tests[i], t.DifferenceCI, t.RatioCI, stTests[i])
		}
	}
	for i := range r.Prices {
		p := &r.Prices[i]
		if ex, ok := e.priceExcess[p.Group]; ok && p.Pairs >= 2 {
			p.MeanExcessCI = toInterval(stats.MeanCI(ex, conf))
		}
		if c, ok := e.priceCmps[p.Group]; ok {
			p.MeanExcessPctCI = pctInterval(c, conf)
		}
	}
	if len(r.Parity) > 0 {
		pm := e.parityMoments()
		for i := range r.Parity {
			for j := range parityMetrics {
				if parityMetrics[j].spec.Name != r.Parity[i].Metric {
					continue
				}
				if t, ok := e.compareUsers(&parityMetrics[j], &e.parity[1].metrics[j], &e.parity[0].metrics[j], pm[1][j], pm[0][j]); ok {
					set(&r.Parity[i], t.DifferenceCI, t.RatioCI, stParity[i])
				}
			}
		}
	}
}

// kindOf is the kind of the spec's metric named name.
func (e *engine) kindOf(name string) MetricKind {
	for _, m := range e.metrics {
		if m.spec.Name == name {
			return m.spec.Kind
		}
	}
	return Mean
}

// parityKind is the kind of the parity metric named name.
func parityKind(name string) MetricKind {
	for _, m := range parityMetrics {
		if m.spec.Name == name {
			return m.spec.Kind
		}
	}
	return Mean
}

// tolerance is the spec's tolerance with defaults filled in.
func (s *Spec) tolerance() Tolerance {
	t := DefaultTolerance
	if s.Tolerance != nil {
		if s.Tolerance.RateRatio > 1 {
			t.RateRatio = s.Tolerance.RateRatio
		}
		if s.Tolerance.MeanRatio > 1 {
			t.MeanRatio = s.Tolerance.MeanRatio
		}
		if s.Tolerance.PricePct > 0 {
			t.PricePct = s.Tolerance.PricePct
		}
		if s.Tolerance.PercentileShift > 0 {
			t.PercentileShift = s.Tolerance.PercentileShift
		}
	}
	return t
}
