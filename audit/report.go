package audit

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/recguard/recguard/audit/stats"
)

// The report: figures per group, the comparisons, the same-item prices,
// the decision across the report.

func toInterval(i stats.Interval) Interval { return Interval{Lo: i.Lo, Hi: i.Hi} }

var nanIv = Interval{Lo: math.NaN(), Hi: math.NaN()}

func (e *engine) report() *Report {
	now := time.Now
	if e.opts.Now != nil {
		now = e.opts.Now
	}
	r := &Report{
		Spec:      e.spec,
		Generated: now().UTC(),
		Events:    e.events,
		Used:      e.used,
		Skipped:   e.skipped,
		Excluded:  e.excluded,
		Problems:  e.problems,
		Groups:    []GroupResult{},
		Tests:     []TestResult{},
		Findings:  []Finding{},
	}
	// Distinct users per group and per mode.
	users := make([]int64, len(e.groups))
	var modeUsers [2]int64
	for i := range e.ustate {
		u := &e.ustate[i]
		for m := u.seen; m != 0; m &= m - 1 {
			users[bits.TrailingZeros64(m)]++
		}
		for k := range 2 {
			if u.modes&(1<<k) != 0 {
				modeUsers[k]++
			}
		}
	}
	minSize := int64(e.spec.MinGroupSize)
	// Privacy: no group under the minimum size, and no two released
	// populations (groups, the parity check's modes) whose difference
	// would single out fewer users (see privacy.go).
	var cc ClassCounter
	for i := range e.ustate {
		u := &e.ustate[i]
		if u.excluded || u.modes == 0 {
			continue
		}
		cc.Add(u.seen, u.seen&^u.missed, u.modes)
	}
	names := make([]string, len(e.spec.Groups))
	for i, g := range e.spec.Groups {
		names[i] = g.Name
	}
	sup := SuppressForDifferencing(DifferencingInput{Classes: cc.Classes(), Names: names, Reference: e.ref,
		Floor: int(max(minSize, 1)), Parity: modeUsers[0] > 0 && modeUsers[1] > 0})
	suppressed := make([]bool, len(e.groups))
	differenced := make([]string, len(e.groups)) // why a group of enough users is suppressed
	for i, g := range e.spec.Groups {
		gr := GroupResult{Name: g.Name, Segment: g.Segment}
		if users[i] < minSize || (i < len(sup.Groups) && sup.Groups[i]) {
			suppressed[i] = true
			if users[i] >= minSize {
				differenced[i] = sup.Reasons[i]
			}
			gr.Suppressed = true
			r.Groups = append(r.Groups, gr)
			continue
		}
		gr.Users, gr.Events = users[i], e.groups[i].events
		for j := range e.metrics {
			if mr, ok := e.metricResult(&e.metrics[j], &e.groups[i].metrics[j]); ok {
				gr.Metrics = append(gr.Metrics, mr)
			}
		}
		r.Groups = append(r.Groups, gr)
	}
	var notes []Finding
	note := func(format string, args ...any) {
		notes = append(notes, Finding{Severity: "note", Text: fmt.Sprintf(format, args...)})
	}
	refName := e.spec.Reference
	refOK := !suppressed[e.ref]
	var cmps []cmpArgs // how each of r.Tests was computed, to adjust its intervals
	for i, g := range e.spec.Groups {
		if !suppressed[i] {
			continue
		}
		if differenced[i] != "" {
			note("Group %s is suppressed so that no figure can be told apart by differencing: %s", g.Name, differenced[i])
			continue
		}
		if i == e.ref {
			note("The reference group %s has fewer than %s users and is suppressed: no group is compared with it, and the report shows no figures for it.", g.Name, findingCount(minSize))
		} else {
			note("Group %s has fewer than %s users and is suppressed: the report shows no figures for it and leaves it out of every comparison.", g.Name, findingCount(minSize))
		}
	}
	// The same-item prices run beside the crude tests, the parity check
	// and the strata (they share nothing but what is read only).
	pricesDone := make(chan []PriceResult, 1)
	if refOK {
		go func() { pricesDone <- e.prices(suppressed) }()
	} else {
		pricesDone <- nil
	}
	if refOK {
		ref := &e.groups[e.ref]
		mo := e.clusterMoments()
		for i := range e.groups {
			if i == e.ref || suppressed[i] {
				continue
			}
			for j := range e.metrics {
				if t, ok := e.compareUsers(&e.metrics[j], &e.groups[i].metrics[j], &ref.metrics[j], mo[i][j], mo[e.ref][j]); ok {
					t.Group, t.Reference = e.spec.Groups[i].Name, refName
					r.Tests = append(r.Tests, t)
					cmps = append(cmps, cmpArgs{&e.metrics[j], &e.groups[i].metrics[j], &ref.metrics[j], mo[i][j], mo[e.ref][j]})
				}
			}
		}
	}
	// Parity.
	if modeUsers[0] > 0 || modeUsers[1] > 0 {
		if modeUsers[0] == 0 || modeUsers[1] == 0 {
			missing := ModeNonPersonalized
			if modeUsers[0] == 0 {
				missing = ModePersonalized
			}
			note("No event in the window has mode %s, so the parity check is not run.", missing)
		} else if modeUsers[0] < minSize || modeUsers[1] < minSize {
			note("The parity check of non-personalized against personalized results is suppressed: one of the two modes has fewer than %s users.", findingCount(minSize))
		} else if sup.Parity {
			note("The parity check of non-personalized against personalized results is suppressed so that no figure can be told apart by differencing: %s", sup.ParityReason)
		} else {
			pm := e.parityMoments()
			for j := range parityMetrics {
				if t, ok := e.compareUsers(&parityMetrics[j], &e.parity[1].metrics[j], &e.parity[0].metrics[j], pm[1][j], pm[0][j]); ok {
					t.Group, t.Reference = ModeNonPersonalized, ModePersonalized
					r.Parity = append(r.Parity, t)
				}
			}
		}
	}
	// Rates and means compared within strata (stratify.go).
	stTests, stParity := e.stratifyTests(r, suppressed)
	r.Prices = <-pricesDone
	if refOK && e.nCells > 0 {
		for i, g := range e.spec.Groups {
			if i == e.ref || suppressed[i] {
				continue
			}
			if !slices.ContainsFunc(r.Prices, func(p PriceResult) bool { return p.Group == g.Name }) {
				note("Group %s and the reference %s were never offered the same item in the same %s, so their prices are not compared.", g.Name, refName, bucketWord(e.spec.PriceBucket))
			}
		}
	}
	for _, t := range r.Tests {
		if t.Adjustment == AdjustNotComparable {
			note("Group %s and the reference %s are not compared on %s: they have no %s in common with at least two users a side, so their figures cannot be told apart from what each chose to browse.", t.Group, refName, t.Metric, strataWords(e.spec))
		}
	}
	for _, t := range r.Parity {
		if t.Adjustment == AdjustNotComparable {
			if t.Crude != nil && parityDef(t.Metric) != nil && behaviour(parityDef(t.Metric)) {
				note("The parity check does not judge %s: it is what users do, and users who turn personalization off may differ as people; it is compared within the users seen in both modes, and fewer than %s were (%d).", t.Metric, findingCount(minSize), t.Strata)
			} else {
				note("The parity check does not compare %s: the two modes have no %s in common with at least two users a side.", t.Metric, strataWords(e.spec))
			}
		}
	}
	// Benjamini-Hochberg over every p-value.
	var ps []float64
	for _, t := range r.Tests {
		ps = append(ps, t.P)
	}
	for _, p := range r.Prices {
		ps = append(ps, p.P)
	}
	for _, t := range r.Parity {
		ps = append(ps, t.P)
	}
	qs := stats.BenjaminiHochberg(ps)
	sig := func(q float64) bool { return q <= e.spec.Alpha }
	// The intervals shown match the decision: false coverage-rate
	// adjusted intervals (Benjamini and Yekutieli 2005) at the level
	// 1 - R alpha / m, R the tests with q <= alpha (at least 1), m all the
	// tests: an interval excludes "no difference" exactly when (for the
	// t and z tests) its test is selected.
	selected := 0
	for _, q := range qs {
		if sig(q) {
			selected++
		}
	}
	r.IntervalConfidence = 1 - e.spec.Alpha
	if len(qs) > 0 {
		r.IntervalConfidence = 1 - float64(max(selected, 1))*e.spec.Alpha/float64(len(qs))
		e.adjustIntervals(r, cmps, r.IntervalConfidence, stTests, stParity)
	}
	tol := e.spec.tolerance()
	k := 0
	for i := range r.Tests {
		t := &r.Tests[i]
		t.Q = qs[k]
		t.Material = tol.material(e.kindOf(t.Metric), t)
		t.Significant = sig(t.Q) && t.Material
		k++
	}
	for i := range r.Prices {
		p := &r.Prices[i]
		p.Q = qs[k]
		p.Material = tol.materialPrice(p)
		p.Significant = sig(p.Q) && p.Material
		k++
	}
	for i := range r.Parity {
		t := &r.Parity[i]
		t.Q = qs[k]
		t.Material = tol.material(parityKind(t.Metric), t)
		t.Significant = sig(t.Q) && t.Material
		k++
	}
	r.Findings = append(e.findings(r), r.Findings...)
	// Notes on the input.
	if e.skipped > 0 {
		listed := ""
		if e.skipped > MaxProblems {
			listed = fmt.Sprintf(" (the first %d are listed)", MaxProblems)
		}
		note("%s malformed input %s skipped%s.", findingCount(e.skipped), plural(e.skipped, "line was", "lines were"), listed)
	}
	if e.outside > 0 {
		note("%s %s outside the audit window and %s not used.", findingCount(e.outside), plural(e.outside, "event fell", "events fell"), plural(e.outside, "was", "were"))
	}
	if e.excluded > 0 {
		note("%s %s of users who restricted processing of their data or were erased %s left out of the audit (Art. 23, 24).", findingCount(e.excluded), plural(e.excluded, "event", "events"), plural(e.excluded, "was", "were"))
	}
	if e.noGroup > 0 {
		note("%s %s in the window matched no group.", findingCount(e.noGroup), plural(e.noGroup, "event", "events"))
	}
	if e.leftOut > 0 {
		note("The same-item price comparison keeps at most %s item-time cells; %s %s with a price fell in cells beyond that and %s left out of it.", findingCount(int64(e.maxCells)), findingCount(e.leftOut), plural(e.leftOut, "event", "events"), plural(e.leftOut, "was", "were"))
	}
	for j, m := range e.metrics {
		if e.seenM[j] == 0 && e.used > 0 {
			note("No event in the groups records %s, so metric %s has no data.", m.spec.Field, m.spec.Name)
		}
	}
	r.Findings = append(r.Findings, notes...)
	return r
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// metricResult is one metric of one group; false when it has no data.
func (e *engine) metricResult(m *metricDef, a *metricAcc) (MetricResult, bool) {
	kind := m.spec.Kind
	n := a.count(kind)
	if n == 0 {
		return MetricResult{}, false
	}
	mr := MetricResult{Metric: m.spec.Name, Kind: kind, N: n}
	switch kind {
	case Rate:
		mr.Value = float64(a.x) / float64(a.n)
		mr.CI = toInterval(stats.Wilson(a.x, a.n, e.conf))
	case Mean:
		mr.Value = a.sum.Mean()
		mr.CI = toInterval(stats.MeanCI(a.sum, e.conf))
		mr.SD = a.sum.SD()
	case Distribution:
		qs := m.spec.Quantiles
		z := zQuantile(e.conf)
		half := z * 0.5 / math.Sqrt(float64(n))
		all := append([]float64{0.5, math.Max(0, 0.5-half), math.Min(1, 0.5+half)}, qs...)
		vs := stats.QuantilesOfSorted(a.dist.sample(), all)
		mr.Value = vs[0]
		a.med, a.medOK = vs[0], true
		mr.CI = Interval{Lo: vs[1], Hi: vs[2]}
		mr.SD = a.sum.SD()
		for i, q := range qs {
			mr.Quantiles = append(mr.Quantiles, Quantile{Q: q, Value: vs[3+i]})
		}
	}
	return mr, true
}

// zQuantile is the two-sided normal critical value for conf.
func zQuantile(conf float64) float64 {
	return math.Sqrt2 * math.Erfinv(conf)
}

// compare tests metric m of group a against the reference b.
func (e *engine) compare(m *metricDef, a, b *metricAcc) (TestResult, bool) {
	t := TestResult{Metric: m.spec.Name}
	switch m.spec.Kind {
	case Rate:
		if a.n == 0 || b.n == 0 {
			return t, false
		}
		var ci stats.Interval
		t.Difference, ci = stats.NewcombeDiff(a.x, a.n, b.x, b.n, e.conf)
		t.DifferenceCI = toInterval(ci)
		t.Ratio, ci = stats.RatioCI(a.x, a.n, b.x, b.n, e.conf)
		t.RatioCI = toInterval(ci)
		if stats.UseFisher(a.x, a.n, b.x, b.n) {
			t.Test = "fisher_exact"
			t.P = stats.FisherExact(a.x, a.n-a.x, b.x, b.n-b.x)
			t.Statistic = float64(a.x) * float64(b.n-b.x) / (float64(a.n-a.x) * float64(b.x))
		} else {
			t.Test = "two_proportion_z"
			t.Statistic, t.P = stats.TwoProportionZ(a.x, a.n, b.x, b.n)
		}
	case Mean:
		if a.sum.N() < 2 || b.sum.N() < 2 {
			return t, false
		}
		var ci stats.Interval
		t.Difference, ci = stats.WelchDiffCI(a.sum, b.sum, e.conf)
		t.DifferenceCI = toInterval(ci)
		t.Ratio, ci = stats.MeanRatioCI(a.sum, b.sum, e.conf)
		t.RatioCI = toInterval(ci)
		t.Test = "welch_t"
		t.Statistic, _, t.P = stats.Welch(a.sum, b.sum)
	case Distribution:
		if a.sum.N() == 0 || b.sum.N() == 0 {
			return t, false
		}
		ma, mb := a.median(), b.median()
		ca, cb := a.dist.sample(), b.dist.sample()
		// The effect is the Hodges-Lehmann shift (the median of the
		// pairwise differences) with its interval, which agrees with the
		// Mann-Whitney test; the ratio is the medians'.
		sh := stats.HodgesLehmannSorted(ca, cb, e.conf)
		t.Difference, t.DifferenceCI = sh.Estimate, toInterval(sh.CI)
		t.Ratio, t.RatioCI = ma/mb, nanIv
		t.Test = "mann_whitney"
		_, t.Statistic, t.P = stats.MannWhitneySorted(ca, cb)
	}
	return t, true
}

// prices runs the same-item, same-time comparison.
func (e *engine) prices(suppressed []bool) []PriceResult {
	if e.nCells == 0 {
		return nil
	}
	type acc struct {
		pairs, higher, lower int64
		excess               stats.Summary
		refSum               float64
	}
	accs := make([]acc, len(e.groups))
	refBit := uint64(1) << e.ref
	for c := range e.nCells {
		ci := e.cellInfo(c)
		if ci.mask&refBit == 0 {
			continue
		}
		blk := e.block(ci.off, int32(bits.OnesCount64(ci.mask)))
		r := blk[bits.OnesCount64(ci.mask&(refBit-1))]
		refMean := r.sum / float64(r.n)
		i := 0
		for m := ci.mask; m != 0; m &= m - 1 {
			g := bits.TrailingZeros64(m)
			en := blk[i]
			i++
			if g == e.ref || suppressed[g] {
				continue
			}
			a := &accs[g]
			d := en.sum/float64(en.n) - refMean
			a.pairs++
			switch tol := 1e-9 * math.Max(1, math.Abs(refMean)); {
			case d > tol:
				a.higher++
			case d < -tol:
				a.lower++
			}
			a.excess.Add(d)
			a.refSum += refMean
		}
	}
	var out []PriceResult
	for i := range accs {
		a := &accs[i]
		if i == e.ref || suppressed[i] || a.pairs == 0 {
			continue
		}
		pr := PriceResult{
			Group:        e.spec.Groups[i].Name,
			Reference:    e.spec.Reference,
			Pairs:        a.pairs,
			ShareHigher:  float64(a.higher) / float64(a.pairs),
			ShareLower:   float64(a.lower) / float64(a.pairs),
			MeanExcess:   a.excess.Mean(),
			MeanExcessCI: toInterval(stats.MeanCI(a.excess, e.conf)),
			P:            stats.SignTest(a.higher, a.lower),
		}
		if a.pairs < 2 {
			pr.MeanExcessCI = nanIv
		}
		if refMean := a.refSum / float64(a.pairs); refMean != 0 {
			pr.MeanExcessPct = 100 * pr.MeanExcess / refMean
		} else {
			pr.MeanExcessPct = math.NaN()
		}
		pr.Test, pr.MeanExcessPctCI = "sign_test", nanIv
		if e.priceExcess == nil {
			e.priceExcess = map[string]stats.Summary{}
		}
		e.priceExcess[pr.Group] = a.excess
		out = append(out, pr)
	}
	e.userPrices(out) // suppressed groups have no PriceResult in out
	return out
}
