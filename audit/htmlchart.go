package audit

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Charts: inline SVG, geometry computed here, drawn by the template.
//
// A chart colours only what is a finding: a group's dot, box or bars take
// the highlight colour (class "sig") only when its comparison with the
// reference is Significant, q <= alpha and a material effect; every other
// group is neutral grey (class "ns"), however small its p or q. The
// reference is drawn in ink on a band. The legend says so (findingLegend).

const (
	chartW      = 760
	chartLeft   = 190 // labels
	chartRight  = 110 // value labels
	chartTop    = 12
	chartRowH   = 30
	chartAxisH  = 34
	chartLabelN = 26 // characters of a label before it is cut
)

type chart struct {
	Kind   string // "dot", "box", "share"
	Title  string
	W, H   int
	PlotX0 string
	PlotX1 string
	PlotY0 string
	PlotY1 string
	AxisY  string
	TickY  string
	Ticks  []tick
	Rows   []chartRow
	RefX   string // dashed line at the reference's value; "" for none
	Legend []legendItem
	LegY   string
}

type tick struct{ X, Label string }

type legendItem struct {
	X, Label, Class string
}

type chartRow struct {
	Label     string // cut to fit
	FullLabel string
	Y         string // row centre
	BandY     string
	BandH     string
	TextY     string
	Ref       bool
	Sig       bool
	Note      string // "suppressed (...)" or "no data"
	Tooltip   string
	// dot-and-whisker
	Dot     bool
	X       string
	Whisker bool
	X1, X2  string
	CapY1   string
	CapY2   string
	Value   string
	ValueX  string
	// box
	Box        bool
	BoxX, BoxW string
	BoxY, BoxH string
	Median     bool
	MedX       string
	Strip      []stripDot
	StripLine  bool
	// share bars
	Bars []bar
}

type stripDot struct{ X, Title string }

type bar struct{ X, W, Class, Title string }

// scale maps a domain onto [x0, x1]. A zero-width or non-finite domain is
// widened so nothing divides by zero.
type scale struct {
	lo, hi, x0, x1 float64
}

func (s scale) at(v float64) float64 {
	if v < s.lo {
		v = s.lo
	}
	if v > s.hi {
		v = s.hi
	}
	return s.x0 + (v-s.lo)/(s.hi-s.lo)*(s.x1-s.x0)
}

func (s scale) px(v float64) string { return px(s.at(v)) }

func px(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

// niceDomain widens [lo, hi] to round tick steps and returns the ticks. It
// copes with lo == hi, reversed and non-finite input.
func niceDomain(lo, hi float64, nTicks int) (float64, float64, []float64) {
	if !isFinite(lo) || !isFinite(hi) {
		lo, hi = 0, 1
	}
	if lo > hi {
		lo, hi = hi, lo
	}
	if hi-lo < 1e-12*math.Max(1, math.Abs(hi)) {
		d := math.Abs(lo) * 0.1
		if d == 0 {
			d = 1
		}
		lo, hi = lo-d, hi+d
	}
	step := niceStep((hi - lo) / float64(max(nTicks, 1)))
	lo = math.Floor(lo/step) * step
	hi = math.Ceil(hi/step) * step
	var ticks []float64
	for i := 0; i <= 100; i++ {
		v := lo + float64(i)*step
		if v > hi+step/2 {
			break
		}
		// Clean floating-point noise (0.30000000000000004).
		v = math.Round(v/step) * step
		ticks = append(ticks, v)
	}
	return lo, hi, ticks
}

func niceStep(raw float64) float64 {
	if raw <= 0 || !isFinite(raw) {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	f := raw / mag
	switch {
	case f <= 1:
		f = 1
	case f <= 2:
		f = 2
	case f <= 2.5:
		f = 2.5
	case f <= 5:
		f = 5
	default:
		f = 10
	}
	return f * mag
}

func cut(s string) string {
	rs := []rune(s)
	if len(rs) <= chartLabelN {
		return s
	}
	return string(rs[:chartLabelN-1]) + "…"
}

// newChart lays out n rows and the axis.
func newChart(kind, title string, n int, lo, hi float64, ticks []float64, pct bool) (*chart, scale) {
	plotH := n * chartRowH
	c := &chart{
		Kind: kind, Title: title, W: chartW,
		PlotX0: px(chartLeft), PlotX1: px(chartW - chartRight),
		PlotY0: px(chartTop), PlotY1: px(float64(chartTop + plotH)),
		AxisY: px(float64(chartTop + plotH)),
		TickY: px(float64(chartTop + plotH + 16)),
	}
	c.LegY = px(float64(chartTop + plotH + chartAxisH - 2))
	c.H = chartTop + plotH + chartAxisH + 8
	sc := scale{lo: lo, hi: hi, x0: chartLeft, x1: chartW - chartRight}
	step := hi - lo
	if len(ticks) > 1 {
		step = ticks[1] - ticks[0]
	}
	label := tickLabel(step, pct)
	for _, t := range ticks {
		c.Ticks = append(c.Ticks, tick{X: sc.px(t), Label: label(t)})
	}
	return c, sc
}

func rowGeometry(row *chartRow, i int) {
	y := float64(chartTop + i*chartRowH + chartRowH/2)
	row.Y = px(y)
	row.TextY = px(y + 4)
	row.BandY = px(float64(chartTop + i*chartRowH))
	row.BandH = px(chartRowH)
	row.CapY1 = px(y - 6)
	row.CapY2 = px(y + 6)
	row.BoxY = px(y - 8)
	row.BoxH = px(16)
	row.ValueX = px(chartW - chartRight + 8)
}

func groupLabel(name string, ref bool, t *pageText) string {
	if ref {
		return name + " " + t.RefMark
	}
	return name
}

// dotChart draws a rate or mean per group with its interval.
func dotChart(r *Report, name string, k MetricKind, sig map[[2]string]bool, suppressedText, conf string, t *pageText) *chart {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, g := range r.Groups {
		if g.Suppressed {
			continue
		}
		if m, ok := findMetric(g, name); ok {
			for _, v := range []float64{m.Value, m.CI.Lo, m.CI.Hi} {
				if isFinite(v) {
					lo, hi = math.Min(lo, v), math.Max(hi, v)
				}
			}
		}
	}
	if k == Rate {
		if !isFinite(lo) { // no data at all
			lo, hi = 0, 1
		}
		lo = 0 // rates start at zero: an honest scale
		hi = math.Min(math.Max(hi, 0), 1)
		if hi == 0 {
			hi = 0.01
		}
	} else if !isFinite(lo) {
		lo, hi = 0, 1
	} else if lo > 0 && lo < hi*0.5 {
		lo = 0
	}
	lo, hi, ticks := niceDomain(lo, hi, 5)
	if k == Rate {
		lo, hi = math.Max(lo, 0), math.Min(hi, 1)
		ticks = slices.DeleteFunc(ticks, func(t float64) bool { return t < -1e-12 || t > 1+1e-12 })
	}
	c, sc := newChart("dot", t.dotTitle(name, k, conf), len(r.Groups), lo, hi, ticks, k == Rate)
	val := fmtValue(k)
	for i, g := range r.Groups {
		ref := g.Name == r.Spec.Reference
		row := chartRow{Label: cut(groupLabel(g.Name, ref, t)), FullLabel: groupLabel(g.Name, ref, t), Ref: ref}
		rowGeometry(&row, i)
		switch m, ok := findMetric(g, name); {
		case g.Suppressed:
			row.Note = suppressedText
		case !ok || !isFinite(m.Value):
			row.Note = t.NoData
		default:
			row.Sig = sig[[2]string{name, g.Name}]
			row.Dot = true
			row.X = sc.px(m.Value)
			row.Value = t.tr(val(m.Value))
			row.Tooltip = t.tooltip(g.Name, t.tr(val(m.Value)), conf, t.tr(fmtCI(m.CI, val)), fmtInt(m.N))
			if isFinite(m.CI.Lo) && isFinite(m.CI.Hi) {
				row.Whisker = true
				row.X1, row.X2 = sc.px(math.Min(m.CI.Lo, m.CI.Hi)), sc.px(math.Max(m.CI.Lo, m.CI.Hi))
			}
			if ref {
				row.Sig = false
				c.RefX = row.X
			}
		}
		c.Rows = append(c.Rows, row)
	}
	c.Legend = findingLegend(t)
	return c
}

// boxChart draws a distribution per group from its quantiles: a box from
// the 25th to the 75th percentile with the median, whiskers to the
// outermost quantiles; without both quartiles, a strip of the quantiles.
func boxChart(r *Report, name string, sig map[[2]string]bool, suppressedText string, t *pageText) (*chart, string) {
	lo, hi := math.Inf(1), math.Inf(-1)
	var qsSeen []float64
	for _, g := range r.Groups {
		if g.Suppressed {
			continue
		}
		if m, ok := findMetric(g, name); ok {
			for _, q := range m.Quantiles {
				if isFinite(q.Value) {
					lo, hi = math.Min(lo, q.Value), math.Max(hi, q.Value)
					if !slices.Contains(qsSeen, q.Q) {
						qsSeen = append(qsSeen, q.Q)
					}
				}
			}
		}
	}
	if !isFinite(lo) {
		lo, hi = 0, 1
	} else if lo > 0 && lo < hi*0.5 {
		lo = 0
	}
	lo, hi, ticks := niceDomain(lo, hi, 5)
	c, sc := newChart("box", t.boxTitle(name), len(r.Groups), lo, hi, ticks, false)
	for i, g := range r.Groups {
		ref := g.Name == r.Spec.Reference
		row := chartRow{Label: cut(groupLabel(g.Name, ref, t)), FullLabel: groupLabel(g.Name, ref, t), Ref: ref}
		rowGeometry(&row, i)
		m, ok := findMetric(g, name)
		var qs []Quantile
		if ok {
			for _, q := range m.Quantiles {
				if isFinite(q.Value) && isFinite(q.Q) {
					qs = append(qs, q)
				}
			}
		}
		slices.SortFunc(qs, func(a, b Quantile) int { return cmp.Compare(a.Q, b.Q) })
		switch {
		case g.Suppressed:
			row.Note = suppressedText
		case len(qs) == 0:
			row.Note = t.NoData
		default:
			row.Sig = sig[[2]string{name, g.Name}] && !ref
			parts := make([]string, len(qs))
			for j, q := range qs {
				parts[j] = t.quantileName(q.Q) + " " + t.tr(fmtNum(q.Value))
			}
			row.Tooltip = g.Name + ": " + strings.Join(parts, ", ")
			q25, ok25 := quantileAt(qs, 0.25)
			q75, ok75 := quantileAt(qs, 0.75)
			if med, ok := quantileAt(qs, 0.5); ok {
				row.Median, row.MedX = true, sc.px(med)
				row.Value = t.median + " " + t.tr(fmtNum(med))
				if ref {
					c.RefX = row.MedX
				}
			}
			if ok25 && ok75 {
				row.Box = true
				x1, x2 := sc.at(math.Min(q25, q75)), sc.at(math.Max(q25, q75))
				row.BoxX, row.BoxW = px(x1), px(math.Max(x2-x1, 1))
				if len(qs) > 1 {
					row.Whisker = true
					row.X1, row.X2 = sc.px(qs[0].Value), sc.px(qs[len(qs)-1].Value)
				}
			} else {
				for _, q := range qs {
					row.Strip = append(row.Strip, stripDot{X: sc.px(q.Value), Title: t.quantileName(q.Q) + " " + t.tr(fmtNum(q.Value))})
				}
				row.StripLine = len(qs) > 1
				if len(qs) > 1 {
					row.X1, row.X2 = sc.px(qs[0].Value), sc.px(qs[len(qs)-1].Value)
				}
			}
		}
		c.Rows = append(c.Rows, row)
	}
	slices.Sort(qsSeen)
	note := t.quantDots
	if slices.Contains(qsSeen, 0.25) && slices.Contains(qsSeen, 0.75) {
		note = t.boxNote
		if len(qsSeen) > 2 {
			note += fmt.Sprintf(t.whiskers, t.quantileName(qsSeen[0]), t.quantileName(qsSeen[len(qsSeen)-1]))
		}
		note += "."
	}
	c.Legend = findingLegend(t)
	return c, note
}

// legendFinding is the highlight colour's meaning, in every chart's legend.
const legendFinding = "finding (q ≤ α and material)"

// findingLegend is the legend of the dot and box charts: the reference, a
// finding, everything else.
func findingLegend(t *pageText) []legendItem {
	return []legendItem{
		{X: px(chartLeft), Label: t.legendRef, Class: "ref"},
		{X: px(chartLeft + 90), Label: t.legendSig, Class: "sig"},
		{X: px(chartLeft + 300), Label: t.legendNS, Class: "ns"},
	}
}

func quantileAt(qs []Quantile, q float64) (float64, bool) {
	for _, x := range qs {
		if math.Abs(x.Q-q) < 1e-9 {
			return x.Value, true
		}
	}
	return 0, false
}

// shareChart draws, per group, the share of same-item comparisons where
// the group paid more, the same, or less than the reference. The bars of
// a group whose comparison is a finding are in the highlight colours, the
// others in greys (the template's CSS, by the row's class).
func shareChart(prices []PriceResult, refName string, suppressed map[string]bool, suppressedText string, t *pageText) *chart {
	_, _, ticks := niceDomain(0, 1, 4)
	c, sc := newChart("share", t.shareTitle, len(prices), 0, 1, ticks, true)
	for i, p := range prices {
		label := p.Group
		if p.Reference != refName {
			label += t.versus + p.Reference
		}
		row := chartRow{Label: cut(label), FullLabel: label}
		rowGeometry(&row, i)
		hi, lo := p.ShareHigher, p.ShareLower
		switch {
		case suppressed[p.Group] || suppressed[p.Reference]:
			row.Note = suppressedText
		case p.Pairs == 0 || !isFinite(hi) || !isFinite(lo):
			row.Note = t.noPairs
		default:
			hi, lo = math.Max(0, math.Min(hi, 1)), math.Max(0, math.Min(lo, 1))
			if hi+lo > 1 {
				lo = 1 - hi
			}
			eq := 1 - hi - lo
			row.Sig = p.Significant
			x := 0.0
			for _, s := range []struct {
				v     float64
				class string
				what  string
			}{{hi, "higher", t.higher}, {eq, "same", t.same}, {lo, "lower", t.lower}} {
				if s.v > 0 {
					x0, x1 := sc.at(x), sc.at(x+s.v)
					row.Bars = append(row.Bars, bar{X: px(x0), W: px(math.Max(x1-x0, 0.5)), Class: s.class,
						Title: t.shareTip(p.Group, s.what, t.tr(fmtPct(s.v)), fmtInt(p.Pairs))})
				}
				x += s.v
			}
			row.Value = t.tr("↑" + fmtPct(hi) + " ↓" + fmtPct(lo))
		}
		c.Rows = append(c.Rows, row)
	}
	c.RefX = sc.px(0.5)
	c.Legend = []legendItem{
		{X: px(chartLeft), Label: t.higher, Class: "higher"},
		{X: px(chartLeft + 90), Label: t.sameLegend, Class: "same"},
		{X: px(chartLeft + 190), Label: t.lower, Class: "lower"},
		{X: px(chartLeft + 290), Label: t.legendSig, Class: "sig"},
	}
	return c
}

// tickLabel formats ticks with as many decimals as their step needs.
func tickLabel(step float64, pct bool) func(float64) string {
	if pct {
		step *= 100
	}
	dec := 0
	if step > 0 && isFinite(step) {
		dec = max(0, int(math.Ceil(-math.Log10(step)-1e-9)))
		// 2.5-steps need one more.
		if f := step * math.Pow(10, float64(dec)); math.Abs(f-math.Round(f)) > 1e-6 {
			dec++
		}
	}
	dec = min(dec, 10)
	return func(v float64) string {
		if pct {
			v *= 100
		}
		if math.Abs(v) < step*1e-9 {
			v = 0
		}
		s := strconv.FormatFloat(v, 'f', dec, 64)
		if pct {
			s += "%"
		}
		return s
	}
}
