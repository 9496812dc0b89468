package audit

import (
	"cmp"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults a zero Spec field means (see Spec). The renderers show them so a
// reader never sees a bare zero.
const (
	defaultMinGroupSize = 50
	defaultAlpha        = 0.05
	defaultPriceBucket  = time.Hour
)

// WriteHTML writes the report as one self-contained HTML page: a summary of
// the findings first (significant ones first, with their q-values), the
// spec, the groups, one section per metric with a chart drawn as inline SVG
// and its tables, the same-item price comparison and the
// personalized/non-personalized parity. It loads nothing from anywhere (no
// scripts, fonts, styles or images) so it can be archived and handed on as
// it is. Every text from the spec or the data is escaped. Suppressed groups
// show no figures.
func (r *Report) WriteHTML(w io.Writer) error {
	return reportTemplate.Execute(w, buildPage(r))
}

// ---------------------------------------------------------------------------
// The page model: everything the template shows, already formatted.

type htmlPage struct {
	Title       string
	Name        string
	Generated   string
	Provenance  *Provenance
	Events      string
	Used        string
	Skipped     string
	Findings    []Finding
	Significant []sigRow
	Spec        specView
	Groups      []groupRow
	Metrics     []metricView
	Prices      *priceView
	Parity      testsView
	Problems    []LineProblem
	MoreProbs   int64
	Suppressed  string // "suppressed (fewer than N users)"
	// Conf is the confidence of the groups' intervals, "95%" for alpha
	// 0.05; TestConf that of the comparisons' (false coverage-rate
	// adjusted); RateLo..PricePct the materiality tolerance.
	Conf, TestConf                           string
	RateLo, RateHi, MeanLo, MeanHi, PricePct string
}

type testsView struct {
	Rows []testRow
	Conf string
	// ShowMetric adds the metric column (parity: several metrics).
	ShowMetric bool
}

type sigRow struct {
	Section  string // "metric click_rate", "same-item prices", "parity"
	Anchor   string
	Metric   string
	Group    string
	Ref      string
	Effect   string
	Q        string
	P        string
	TestName string
}

type specView struct {
	Name         string
	Groups       []specGroup
	Reference    string
	Window       string
	MinGroupSize string
	Alpha        string
	PriceBucket  string
	Metrics      []specMetric
	DefaultMet   bool
}

type specGroup struct {
	Name, Segment string
	Ref           bool
}

type specMetric struct {
	Name, Kind, Field, Quantiles string
}

type groupRow struct {
	Name, Segment string
	Ref           bool
	Suppressed    bool
	Users, Events string
}

type metricView struct {
	ID      string
	Name    string
	Kind    MetricKind
	KindTxt string
	Field   string
	Chart   *chart
	Note    string // under the chart
	Rows    []metricRow
	QCols   []string // quantile column headers (Distribution)
	// SuppCols is how many value columns a suppressed row spans.
	SuppCols int
	Tests    testsView
}

type metricRow struct {
	Group      string
	Ref        bool
	Suppressed bool
	NoData     bool
	N          string
	Value      string
	CI         string
	SD         string
	Quantiles  []string
}

type testRow struct {
	Metric      string
	Group       string
	Ref         string
	Suppressed  bool
	Diff        string
	DiffCI      string
	Ratio       string
	RatioCI     string
	Test        string
	Users       string // "group / reference" users, for user-level tests
	Stat        string
	P           string
	Q           string
	Significant bool
}

type priceView struct {
	Chart  *chart
	Rows   []priceRow
	Bucket string
}

type priceRow struct {
	Group       string
	Ref         string
	Suppressed  bool
	Pairs       string
	Higher      string
	Lower       string
	Excess      string
	ExcessCI    string
	ExcessPct   string
	P, Q        string
	Significant bool
}

// ---------------------------------------------------------------------------
// Building the page.

func specDefaults(s Spec) (minSize int, alpha float64, bucket time.Duration) {
	minSize, alpha, bucket = s.MinGroupSize, s.Alpha, time.Duration(s.PriceBucket)
	if minSize <= 0 {
		minSize = defaultMinGroupSize
	}
	if alpha <= 0 {
		alpha = defaultAlpha
	}
	if bucket <= 0 {
		bucket = defaultPriceBucket
	}
	return minSize, alpha, bucket
}

func buildPage(r *Report) *htmlPage {
	minSize, alpha, bucket := specDefaults(r.Spec)
	p := &htmlPage{
		Name:       r.Spec.Name,
		Generated:  fmtTime(r.Generated),
		Provenance: r.Provenance,
		Events:     fmtInt(r.Events),
		Used:       fmtInt(r.Used),
		Skipped:    fmtInt(r.Skipped),
		Problems:   r.Problems,
		Suppressed: fmt.Sprintf("suppressed (fewer than %d users)", minSize),
		Conf:       strconv.FormatFloat(math.Round((1-alpha)*1e6)/1e4, 'f', -1, 64) + "%",
	}
	p.TestConf = p.Conf
	if r.IntervalConfidence > 0 {
		p.TestConf = strconv.FormatFloat(math.Round(r.IntervalConfidence*1e6)/1e4, 'f', -1, 64) + "%"
	}
	tol := r.Spec.tolerance()
	p.RateLo, p.RateHi = fmtRatio(1/tol.RateRatio), fmtRatio(tol.RateRatio)
	p.MeanLo, p.MeanHi = fmtRatio(1/tol.MeanRatio), fmtRatio(tol.MeanRatio)
	p.PricePct = strconv.FormatFloat(tol.PricePct, 'f', -1, 64)
	p.Title = "Audit report"
	if r.Spec.Name != "" {
		p.Title = "Audit report: " + r.Spec.Name
	}
	if n := r.Skipped - int64(len(r.Problems)); n > 0 {
		p.MoreProbs = n
	}

	// Findings: significant ones first, otherwise in the report's order.
	p.Findings = slices.Clone(r.Findings)
	slices.SortStableFunc(p.Findings, func(a, b Finding) int {
		return cmp.Compare(severityRank(a.Severity), severityRank(b.Severity))
	})

	// The spec.
	sv := specView{
		Name:         r.Spec.Name,
		Reference:    r.Spec.Reference,
		Window:       fmtWindow(r.Spec.From, r.Spec.To),
		MinGroupSize: fmt.Sprintf("%d distinct users", minSize),
		Alpha:        fmtG(alpha),
		PriceBucket:  fmtDuration(bucket),
		DefaultMet:   len(r.Spec.Metrics) == 0,
	}
	for _, g := range r.Spec.Groups {
		sv.Groups = append(sv.Groups, specGroup{Name: g.Name, Segment: g.Segment, Ref: g.Name == r.Spec.Reference})
	}
	for _, m := range r.Spec.Metrics {
		sm := specMetric{Name: m.Name, Kind: string(m.Kind), Field: m.Field}
		if m.Kind == Distribution {
			qs := m.Quantiles
			if len(qs) == 0 {
				qs = []float64{0.1, 0.25, 0.5, 0.75, 0.9}
			}
			parts := make([]string, len(qs))
			for i, q := range qs {
				parts[i] = fmtG(q)
			}
			sm.Quantiles = strings.Join(parts, ", ")
		}
		sv.Metrics = append(sv.Metrics, sm)
	}
	p.Spec = sv

	suppressed := map[string]bool{}
	for _, g := range r.Groups {
		if g.Suppressed {
			suppressed[g.Name] = true
		}
		gr := groupRow{Name: g.Name, Segment: g.Segment, Ref: g.Name == r.Spec.Reference, Suppressed: g.Suppressed}
		if !g.Suppressed {
			gr.Users, gr.Events = fmtInt(g.Users), fmtInt(g.Events)
		}
		p.Groups = append(p.Groups, gr)
	}

	// Metrics, in the spec's order, then any others the report holds.
	kinds := map[string]MetricKind{}
	fields := map[string]string{}
	var order []string
	seen := map[string]bool{}
	add := func(name string, k MetricKind) {
		if name == "" {
			return
		}
		if _, ok := kinds[name]; !ok || kinds[name] == "" {
			kinds[name] = k
		}
		if !seen[name] {
			seen[name] = true
			order = append(order, name)
		}
	}
	for _, m := range r.Spec.Metrics {
		add(m.Name, m.Kind)
		fields[m.Name] = m.Field
	}
	for _, g := range r.Groups {
		for _, m := range g.Metrics {
			add(m.Metric, m.Kind)
		}
	}
	for _, t := range r.Tests {
		add(t.Metric, "")
	}
	sigOf := map[[2]string]bool{} // metric, group -> significant
	for _, t := range r.Tests {
		if t.Significant {
			sigOf[[2]string{t.Metric, t.Group}] = true
		}
	}
	for i, name := range order {
		mv := metricView{ID: "metric-" + strconv.Itoa(i+1), Name: name, Kind: kinds[name], Field: fields[name]}
		mv.Tests.Conf = p.TestConf
		mv.KindTxt = kindText(mv.Kind)
		mv.Rows, mv.QCols = metricRows(r, name, mv.Kind)
		mv.SuppCols = 3
		if mv.Kind != Rate {
			mv.SuppCols = 4 + len(mv.QCols)
		}
		for _, t := range r.Tests {
			if t.Metric == name {
				mv.Tests.Rows = append(mv.Tests.Rows, makeTestRow(t, mv.Kind, suppressed))
			}
		}
		switch mv.Kind {
		case Rate, Mean:
			mv.Chart = dotChart(r, name, mv.Kind, sigOf, p.Suppressed, p.Conf)
			if mv.Kind == Rate {
				mv.Note = "Dots: the share of events in each group; whiskers: " + p.Conf + " Wilson score intervals."
			} else {
				mv.Note = "Dots: the mean in each group; whiskers: " + p.Conf + " confidence intervals."
			}
		case Distribution:
			mv.Chart, mv.Note = boxChart(r, name, sigOf, p.Suppressed)
		}
		p.Metrics = append(p.Metrics, mv)
	}

	// Significant results, with their q-values, for the summary.
	for i, name := range order {
		for _, t := range r.Tests {
			if t.Metric == name && t.Significant && !suppressed[t.Group] {
				p.Significant = append(p.Significant, sigRow{
					Section: "metric", Anchor: "metric-" + strconv.Itoa(i+1), Metric: name,
					Group: t.Group, Ref: t.Reference, Effect: effectText(t, kinds[name]),
					P: fmtP(t.P), Q: fmtP(t.Q), TestName: testName(t.Test),
				})
			}
		}
	}

	if len(r.Prices) > 0 {
		pv := &priceView{Bucket: fmtDuration(bucket)}
		for _, pr := range r.Prices {
			row := priceRow{Group: pr.Group, Ref: pr.Reference, Suppressed: suppressed[pr.Group] || suppressed[pr.Reference]}
			if !row.Suppressed {
				row.Pairs = fmtInt(pr.Pairs)
				row.Higher, row.Lower = fmtPct(pr.ShareHigher), fmtPct(pr.ShareLower)
				row.Excess = fmtSigned(pr.MeanExcess)
				row.ExcessCI = fmtCI(pr.MeanExcessCI, fmtNum)
				row.ExcessPct = fmtSignedPercent(pr.MeanExcessPct)
				if pr.Test == "cluster_robust_t" {
					row.ExcessPct += " [" + fmtSignedPercent(pr.MeanExcessPctCI.Lo) + ", " + fmtSignedPercent(pr.MeanExcessPctCI.Hi) + "] (users)"
				}
				row.P, row.Q = fmtP(pr.P), fmtP(pr.Q)
				row.Significant = pr.Significant
				if pr.Significant {
					p.Significant = append(p.Significant, sigRow{
						Section: "prices", Anchor: "prices", Metric: "same-item price",
						Group: pr.Group, Ref: pr.Reference,
						Effect: fmt.Sprintf("paid more in %s and less in %s of %s same-item, same-time comparisons (mean excess %s, %s)",
							fmtPct(pr.ShareHigher), fmtPct(pr.ShareLower), fmtInt(pr.Pairs), fmtSigned(pr.MeanExcess), fmtSignedPercent(pr.MeanExcessPct)),
						P: fmtP(pr.P), Q: fmtP(pr.Q), TestName: "sign test",
					})
				}
			}
			pv.Rows = append(pv.Rows, row)
		}
		pv.Chart = shareChart(r.Prices, r.Spec.Reference, suppressed, p.Suppressed)
		p.Prices = pv
	}

	p.Parity.Conf, p.Parity.ShowMetric = p.TestConf, true
	for _, t := range r.Parity {
		k := kinds[t.Metric]
		if k == "" {
			k = kindOfTest(t.Test)
		}
		row := makeTestRow(t, k, suppressed)
		p.Parity.Rows = append(p.Parity.Rows, row)
		if t.Significant && !row.Suppressed {
			p.Significant = append(p.Significant, sigRow{
				Section: "parity", Anchor: "parity", Metric: t.Metric,
				Group: t.Group, Ref: t.Reference, Effect: effectText(t, k),
				P: fmtP(t.P), Q: fmtP(t.Q), TestName: testName(t.Test),
			})
		}
	}
	return p
}

// kindOfTest tells a metric's kind from its test, for metrics the spec does
// not name (parity).
func kindOfTest(test string) MetricKind {
	switch test {
	case "two_proportion_z", "fisher_exact":
		return Rate
	case "mann_whitney":
		return Distribution
	}
	return Mean
}

func severityRank(s string) int {
	if s == "significant" {
		return 0
	}
	return 1
}

func kindText(k MetricKind) string {
	switch k {
	case Rate:
		return "rate (share of events)"
	case Mean:
		return "mean"
	case Distribution:
		return "distribution (quantiles)"
	}
	return string(k)
}

func testName(t string) string {
	switch t {
	case "two_proportion_z":
		return "two-proportion z-test"
	case "fisher_exact":
		return "Fisher's exact test"
	case "welch_t":
		return "Welch's t-test"
	case "cluster_robust_t":
		return "user-level t-test"
	case "cluster_permutation":
		return "user-level permutation test"
	case "mann_whitney":
		return "Mann-Whitney U test"
	case "sign_test", "sign":
		return "sign test"
	}
	return t
}

func effectText(t TestResult, k MetricKind) string {
	var diff string
	if k == Rate {
		diff = fmtPP(t.Difference) + " (" + fmtCIPP(t.DifferenceCI) + ")"
	} else {
		diff = fmtSigned(t.Difference) + " (" + fmtCI(t.DifferenceCI, fmtNum) + ")"
	}
	s := "difference " + strings.TrimSuffix(diff, " (n/a)")
	if isFinite(t.Ratio) {
		s += ", ratio " + fmtRatio(t.Ratio)
		if isFinite(t.RatioCI.Lo) && isFinite(t.RatioCI.Hi) {
			s += " (" + fmtCI(t.RatioCI, fmtRatio) + ")"
		}
	}
	return s
}

func metricRows(r *Report, name string, k MetricKind) ([]metricRow, []string) {
	// Quantile columns: the union of every group's, in order.
	var qs []float64
	for _, g := range r.Groups {
		if g.Suppressed {
			continue
		}
		for _, m := range g.Metrics {
			if m.Metric != name {
				continue
			}
			for _, q := range m.Quantiles {
				if !slices.Contains(qs, q.Q) {
					qs = append(qs, q.Q)
				}
			}
		}
	}
	slices.Sort(qs)
	var cols []string
	for _, q := range qs {
		cols = append(cols, quantileName(q))
	}
	val := fmtNum
	if k == Rate {
		val = fmtPct
	}
	var rows []metricRow
	for _, g := range r.Groups {
		row := metricRow{Group: g.Name, Ref: g.Name == r.Spec.Reference, Suppressed: g.Suppressed}
		if g.Suppressed {
			rows = append(rows, row)
			continue
		}
		m, ok := findMetric(g, name)
		if !ok {
			row.NoData = true
			rows = append(rows, row)
			continue
		}
		row.N = fmtInt(m.N)
		row.Value = val(m.Value)
		row.CI = fmtCI(m.CI, val)
		if m.Kind != Rate && m.SD != 0 {
			row.SD = fmtNum(m.SD)
		}
		for _, q := range qs {
			cell := "–"
			for _, mq := range m.Quantiles {
				if mq.Q == q {
					cell = fmtNum(mq.Value)
				}
			}
			row.Quantiles = append(row.Quantiles, cell)
		}
		rows = append(rows, row)
	}
	return rows, cols
}

func findMetric(g GroupResult, name string) (MetricResult, bool) {
	for _, m := range g.Metrics {
		if m.Metric == name {
			return m, true
		}
	}
	return MetricResult{}, false
}

func quantileName(q float64) string {
	switch q {
	case 0.5:
		return "median"
	}
	return "p" + strconv.FormatFloat(q*100, 'f', -1, 64)
}

func makeTestRow(t TestResult, k MetricKind, suppressed map[string]bool) testRow {
	row := testRow{Metric: t.Metric, Group: t.Group, Ref: t.Reference,
		Suppressed: suppressed[t.Group] || suppressed[t.Reference]}
	if row.Suppressed {
		return row
	}
	if k == Rate {
		row.Diff = fmtPP(t.Difference)
		row.DiffCI = fmtCIPP(t.DifferenceCI)
	} else {
		row.Diff = fmtSigned(t.Difference)
		row.DiffCI = fmtCI(t.DifferenceCI, fmtNum)
	}
	row.Ratio = fmtRatio(t.Ratio)
	row.RatioCI = fmtCI(t.RatioCI, fmtRatio)
	row.Test = testName(t.Test)
	if t.Users > 0 {
		row.Users = fmtInt(t.Users) + " / " + fmtInt(t.ReferenceUsers)
	}
	row.Stat = fmtNum(t.Statistic)
	row.P, row.Q = fmtP(t.P), fmtP(t.Q)
	row.Significant = t.Significant
	return row
}

// ---------------------------------------------------------------------------
// Number formatting. Non-finite values show as "n/a".

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtNum shows a number with about three significant digits, never in
// exponent form for ordinary magnitudes.
func fmtNum(v float64) string {
	if !isFinite(v) {
		return "n/a"
	}
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a >= 0.0001:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	return strconv.FormatFloat(v, 'e', 2, 64)
}

func fmtG(v float64) string {
	if !isFinite(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func fmtSigned(v float64) string {
	s := fmtNum(v)
	if isFinite(v) && v > 0 {
		return "+" + s
	}
	return s
}

// fmtPercentage shows p (already in percent): one decimal from 10, two
// from 1, two significant digits below.
func fmtPercentage(p float64) string {
	a := math.Abs(p)
	switch {
	case !isFinite(p):
		return "n/a"
	case p == 0:
		return "0"
	case a >= 10:
		return strconv.FormatFloat(p, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(p, 'f', 2, 64)
	case a >= 0.001:
		return strconv.FormatFloat(p, 'g', 2, 64)
	}
	return "≈0"
}

func signed(s string, v float64) string {
	if isFinite(v) && v > 0 {
		return "+" + s
	}
	return s
}

func fmtPct(v float64) string {
	if !isFinite(v) {
		return "n/a"
	}
	return fmtPercentage(v*100) + "%"
}

// fmtSignedPercent shows p, already in percent, with its sign.
func fmtSignedPercent(p float64) string {
	if !isFinite(p) {
		return "n/a"
	}
	return signed(fmtPercentage(p), p) + "%"
}

// fmtPP shows a difference of rates in percentage points.
func fmtPP(v float64) string {
	if !isFinite(v) {
		return "n/a"
	}
	return signed(fmtPercentage(v*100), v) + " pp"
}

// fmtDuration writes 1h rather than 1h0m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
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

func fmtRatio(v float64) string {
	if !isFinite(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

func fmtP(v float64) string {
	switch {
	case !isFinite(v):
		return "n/a"
	case v < 0.0001:
		return "< 0.0001"
	case v >= 0.1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

func fmtCI(ci Interval, f func(float64) string) string {
	if !isFinite(ci.Lo) && !isFinite(ci.Hi) {
		return "n/a"
	}
	return f(ci.Lo) + " to " + f(ci.Hi)
}

// fmtCIPP shows an interval of rate differences: "-1.2 to +0.4 pp".
func fmtCIPP(ci Interval) string {
	if !isFinite(ci.Lo) && !isFinite(ci.Hi) {
		return "n/a"
	}
	f := func(v float64) string {
		if !isFinite(v) {
			return "n/a"
		}
		return signed(fmtPercentage(v*100), v)
	}
	return f(ci.Lo) + " to " + f(ci.Hi) + " pp"
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func fmtWindow(from, to time.Time) string {
	switch {
	case from.IsZero() && to.IsZero():
		return "every event (no window)"
	case from.IsZero():
		return "every event before " + fmtTime(to)
	case to.IsZero():
		return "every event from " + fmtTime(from)
	}
	return "from " + fmtTime(from) + " to " + fmtTime(to)
}

// ---------------------------------------------------------------------------
// Charts: inline SVG, geometry computed here, drawn by the template.

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

func groupLabel(name string, ref bool) string {
	if ref {
		return name + " (reference)"
	}
	return name
}

// dotChart draws a rate or mean per group with its interval.
func dotChart(r *Report, name string, k MetricKind, sig map[[2]string]bool, suppressedText, conf string) *chart {
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
	title := name + ": " + map[MetricKind]string{Rate: "rate", Mean: "mean"}[k] + " per group with " + conf + " interval"
	c, sc := newChart("dot", title, len(r.Groups), lo, hi, ticks, k == Rate)
	val := fmtNum
	if k == Rate {
		val = fmtPct
	}
	for i, g := range r.Groups {
		ref := g.Name == r.Spec.Reference
		row := chartRow{Label: cut(groupLabel(g.Name, ref)), FullLabel: groupLabel(g.Name, ref), Ref: ref}
		rowGeometry(&row, i)
		switch m, ok := findMetric(g, name); {
		case g.Suppressed:
			row.Note = suppressedText
		case !ok || !isFinite(m.Value):
			row.Note = "no data"
		default:
			row.Sig = sig[[2]string{name, g.Name}]
			row.Dot = true
			row.X = sc.px(m.Value)
			row.Value = val(m.Value)
			row.Tooltip = fmt.Sprintf("%s: %s (%s interval %s, n = %s)", g.Name, val(m.Value), conf, fmtCI(m.CI, val), fmtInt(m.N))
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
	c.Legend = []legendItem{
		{X: px(chartLeft), Label: "reference", Class: "ref"},
		{X: px(chartLeft + 110), Label: "significantly different (q ≤ α)", Class: "sig"},
		{X: px(chartLeft + 340), Label: "not significant", Class: "ns"},
	}
	return c
}

// boxChart draws a distribution per group from its quantiles: a box from
// the 25th to the 75th percentile with the median, whiskers to the
// outermost quantiles; without both quartiles, a strip of the quantiles.
func boxChart(r *Report, name string, sig map[[2]string]bool, suppressedText string) (*chart, string) {
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
	c, sc := newChart("box", name+": distribution per group", len(r.Groups), lo, hi, ticks, false)
	for i, g := range r.Groups {
		ref := g.Name == r.Spec.Reference
		row := chartRow{Label: cut(groupLabel(g.Name, ref)), FullLabel: groupLabel(g.Name, ref), Ref: ref}
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
			row.Note = "no data"
		default:
			row.Sig = sig[[2]string{name, g.Name}] && !ref
			parts := make([]string, len(qs))
			for j, q := range qs {
				parts[j] = quantileName(q.Q) + " " + fmtNum(q.Value)
			}
			row.Tooltip = g.Name + ": " + strings.Join(parts, ", ")
			q25, ok25 := quantileAt(qs, 0.25)
			q75, ok75 := quantileAt(qs, 0.75)
			if med, ok := quantileAt(qs, 0.5); ok {
				row.Median, row.MedX = true, sc.px(med)
				row.Value = "median " + fmtNum(med)
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
					row.Strip = append(row.Strip, stripDot{X: sc.px(q.Value), Title: quantileName(q.Q) + " " + fmtNum(q.Value)})
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
	note := "Dots: the quantiles of each group."
	if slices.Contains(qsSeen, 0.25) && slices.Contains(qsSeen, 0.75) {
		note = "Boxes: 25th to 75th percentile; line: median"
		if len(qsSeen) > 2 {
			note += fmt.Sprintf("; whiskers: %s to %s", quantileName(qsSeen[0]), quantileName(qsSeen[len(qsSeen)-1]))
		}
		note += "."
	}
	c.Legend = []legendItem{
		{X: px(chartLeft), Label: "reference", Class: "ref"},
		{X: px(chartLeft + 110), Label: "significantly different (q ≤ α)", Class: "sig"},
		{X: px(chartLeft + 340), Label: "not significant", Class: "ns"},
	}
	return c, note
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
// the group paid more, the same, or less than the reference.
func shareChart(prices []PriceResult, refName string, suppressed map[string]bool, suppressedText string) *chart {
	_, _, ticks := niceDomain(0, 1, 4)
	c, sc := newChart("share", "same item, same time: share of comparisons where each group paid more or less than the reference", len(prices), 0, 1, ticks, true)
	for i, p := range prices {
		label := p.Group
		if p.Reference != refName {
			label += " vs " + p.Reference
		}
		row := chartRow{Label: cut(label), FullLabel: label}
		rowGeometry(&row, i)
		hi, lo := p.ShareHigher, p.ShareLower
		switch {
		case suppressed[p.Group] || suppressed[p.Reference]:
			row.Note = suppressedText
		case p.Pairs == 0 || !isFinite(hi) || !isFinite(lo):
			row.Note = "no comparable pairs"
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
			}{{hi, "higher", "paid more"}, {eq, "same", "paid the same"}, {lo, "lower", "paid less"}} {
				if s.v > 0 {
					x0, x1 := sc.at(x), sc.at(x+s.v)
					row.Bars = append(row.Bars, bar{X: px(x0), W: px(math.Max(x1-x0, 0.5)), Class: s.class,
						Title: fmt.Sprintf("%s %s in %s of %s comparisons", p.Group, s.what, fmtPct(s.v), fmtInt(p.Pairs))})
				}
				x += s.v
			}
			row.Value = "↑" + fmtPct(hi) + " ↓" + fmtPct(lo)
		}
		c.Rows = append(c.Rows, row)
	}
	c.RefX = sc.px(0.5)
	c.Legend = []legendItem{
		{X: px(chartLeft), Label: "group paid more", Class: "higher"},
		{X: px(chartLeft + 150), Label: "same price", Class: "same"},
		{X: px(chartLeft + 260), Label: "group paid less", Class: "lower"},
	}
	return c
}

// ---------------------------------------------------------------------------
// The template.

var reportTemplate = template.Must(template.New("report").Parse(reportHTML))

// reportHTML is the report's template, an html/template file embedded in
// the binary (edit audit/report.html.tmpl; no build step).
//
//go:embed report.html.tmpl
var reportHTML string
