package audit

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The findings: each result a regulator reads first, in words.

func bucketWord(d Duration) string {
	switch time.Duration(d) {
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day"
	case time.Minute:
		return "minute"
	}
	return time.Duration(d).String() + " period"
}

func cellWord(d Duration) string {
	switch time.Duration(d) {
	case time.Hour:
		return "item-hours"
	case 24 * time.Hour:
		return "item-days"
	case time.Minute:
		return "item-minutes"
	}
	return "item-" + time.Duration(d).String() + " cells"
}

// findingCount writes n with thousands separators: 1,204.
func findingCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func findingQ(q float64) string {
	if q < 0.0001 {
		return "q < 0.0001"
	}
	return "q = " + strconv.FormatFloat(q, 'g', 2, 64)
}

// findingNum writes a figure with 4 significant digits.
func findingNum(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	if v != 0 && (math.Abs(v) >= 1e6 || math.Abs(v) < 1e-3) {
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	return strconv.FormatFloat(v, 'f', max(0, 3-int(math.Floor(math.Log10(math.Max(math.Abs(v), 1e-3))))), 64)
}

// findingPctNum writes a percentage figure: one decimal from 1 up, two
// significant digits below (0.011).
func findingPctNum(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	if math.Abs(v) >= 1 || v == 0 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

func findingSigned(v float64) string {
	s := findingNum(v)
	if v > 0 {
		return "+" + s
	}
	return s
}

func findingPct(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(100*v, 'f', 1, 64) + "%"
}

func findingPts(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	s := strconv.FormatFloat(100*v, 'f', 1, 64)
	if v > 0 {
		s = "+" + s
	}
	return s
}

// confWord is the level of the comparisons' intervals, in percent: the
// report's false coverage-rate level (Report.IntervalConfidence).
func (e *engine) confWord(r *Report) string {
	c := r.IntervalConfidence
	if c == 0 {
		c = e.conf
	}
	return strconv.FormatFloat(math.Round(c*1e4)/1e2, 'f', -1, 64) + "%"
}

func metricPhrase(m MetricSpec) string {
	switch m.Kind {
	case Rate:
		switch m.Field {
		case FieldClicked:
			return "click rate"
		case FieldConverted:
			return "conversion rate"
		case FieldShown:
			return "shown rate"
		case FieldDiscount:
			return "rate of discounts offered"
		}
		return "rate of " + m.Field + " > 0"
	case Mean:
		if m.Field == FieldLatency {
			return "mean latency (ms)"
		}
		return "mean " + m.Field
	}
	return "median " + m.Field
}

// testWord names a test in a finding, as the HTML report does.
func testWord(t string) string { return testName(t) }

// findings words each significant result, most significant first.
func (e *engine) findings(r *Report) []Finding {
	type sigF struct {
		q    float64
		text string
	}
	var fs []sigF
	specOf := map[string]MetricSpec{}
	for _, m := range e.metrics {
		specOf[m.spec.Name] = m.spec
	}
	effect := func(t TestResult, kind MetricKind) string {
		// Stratified figures say within what, and the crude one beside.
		within, crude := "", ""
		switch t.Adjustment {
		case AdjustMantelHaenszel:
			within = "within " + strataWords(e.spec) + ", "
		case AdjustWithinUser:
			within = "within the users seen in both modes, "
		}
		if t.Crude != nil && kind != Distribution {
			f := findingSigned
			if kind == Rate {
				f = findingPts
			}
			crude = "; crude difference " + f(t.Crude.Difference)
			if kind == Rate {
				crude += " points"
			}
		}
		if kind == Distribution && t.Adjustment == AdjustMantelHaenszel {
			return fmt.Sprintf("%sa shift of %s percentile points, %s CI %s to %s", within,
				findingPts(t.Difference), e.confWord(r), findingPts(t.DifferenceCI.Lo), findingPts(t.DifferenceCI.Hi))
		}
		if kind == Rate {
			return fmt.Sprintf("%sdifference %s points, %s CI %s to %s%s", within, findingPts(t.Difference), e.confWord(r), findingPts(t.DifferenceCI.Lo), findingPts(t.DifferenceCI.Hi), crude)
		}
		if kind == Mean {
			return fmt.Sprintf("%sdifference %s, %s CI %s to %s%s", within, findingSigned(t.Difference), e.confWord(r), findingSigned(t.DifferenceCI.Lo), findingSigned(t.DifferenceCI.Hi), crude)
		}
		return "difference " + findingSigned(t.Difference)
	}
	for _, t := range r.Tests {
		if !t.Significant {
			continue
		}
		m := specOf[t.Metric]
		gv, rv := findingValues(r.groupValue(t.Group, t.Metric), r.groupValue(t.Reference, t.Metric), m.Kind)
		fs = append(fs, sigF{t.Q, fmt.Sprintf("Group %s had a %s of %s against %s for %s (%s; %s, %s).",
			t.Group, metricPhrase(m), gv, rv, t.Reference, effect(t, m.Kind), testWord(t.Test), findingQ(t.Q))})
	}
	for _, p := range r.Prices {
		if !p.Significant {
			continue
		}
		more, share := "more", p.ShareHigher
		if p.MeanExcess < 0 {
			more, share = "less", p.ShareLower
		}
		dir := "higher"
		if more == "less" {
			dir = "lower"
		}
		n := int64(math.Round(share * float64(p.Pairs)))
		fs = append(fs, sigF{p.Q, fmt.Sprintf("Group %s paid %s%% %s than %s for the same item at the same time (%s in %s of %s %s, mean difference %s, %s).",
			p.Group, findingPctNum(math.Abs(p.MeanExcessPct)), more, p.Reference,
			dir, findingCount(n), findingCount(p.Pairs), cellWord(e.spec.PriceBucket), findingSigned(p.MeanExcess), findingQ(p.Q))})
	}
	for _, t := range r.Parity {
		if !t.Significant {
			continue
		}
		i := slices.IndexFunc(parityMetrics, func(d metricDef) bool { return d.spec.Name == t.Metric })
		m := parityMetrics[i].spec
		a, b := &e.parity[1].metrics[i], &e.parity[0].metrics[i]
		var gv, rv float64
		switch m.Kind {
		case Rate:
			gv, rv = float64(a.x)/float64(a.n), float64(b.x)/float64(b.n)
		case Mean:
			gv, rv = a.sum.Mean(), b.sum.Mean()
		default:
			gv, rv = a.median(), b.median()
		}
		gs, rs := findingValues(gv, rv, m.Kind)
		fs = append(fs, sigF{t.Q, fmt.Sprintf("Non-personalized results differ from personalized ones in %s: %s against %s (%s; %s, %s).",
			metricPhrase(m), gs, rs, effect(t, m.Kind), testWord(t.Test), findingQ(t.Q))})
	}
	slices.SortStableFunc(fs, func(a, b sigF) int {
		switch {
		case a.q < b.q:
			return -1
		case a.q > b.q:
			return 1
		}
		return 0
	})
	out := make([]Finding, len(fs))
	for i, f := range fs {
		out[i] = Finding{Severity: "significant", Text: f.text}
	}
	return out
}

// strataWords names a stratified spec's strata in words: "item and day",
// "item, day and region".
func strataWords(s Spec) string {
	var ws []string
	for _, k := range s.Strata {
		switch k {
		case StratumItem:
			ws = append(ws, "item")
		case StratumTime:
			ws = append(ws, bucketWord(s.StrataBucket))
		default:
			ws = append(ws, k)
		}
	}
	switch len(ws) {
	case 0:
		return "stratum"
	case 1:
		return ws[0]
	}
	return strings.Join(ws[:len(ws)-1], ", ") + " and " + ws[len(ws)-1]
}

// findingValues formats a group's and its reference's value of a metric
// for a finding's sentence: percentages for rates, numbers otherwise.
func findingValues(groupVal, refVal float64, kind MetricKind) (string, string) {
	if kind == Rate {
		return findingPct(groupVal), findingPct(refVal)
	}
	return findingNum(groupVal), findingNum(refVal)
}

// groupValue returns group name's value of metric in r, or NaN.
func (r *Report) groupValue(name, metric string) float64 {
	for _, g := range r.Groups {
		if g.Name == name {
			for _, m := range g.Metrics {
				if m.Metric == metric {
					return m.Value
				}
			}
		}
	}
	return math.NaN()
}
