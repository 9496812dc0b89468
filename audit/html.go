package audit

import (
	"cmp"
	_ "embed"
	"html/template"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The HTML report lives in these files: html.go (WriteHTML, the page
// model and building it), htmlcompare.go (the comparisons' rows: adjusted
// and crude figures, the adjustment), htmlformat.go (the one vocabulary of
// numbers), htmlchart.go (the inline SVG charts), htmllang.go and
// htmllangmethods.go (every word of the page per language: WriteHTMLLang)
// and report.html.tmpl (the html/template page, embedded).

// WriteHTML writes the report as one self-contained HTML page: a summary of
// the findings first (significant ones first, with their q-values), the
// spec, the groups, one section per metric with a chart drawn as inline SVG
// and its tables, the same-item price comparison and the
// personalized/non-personalized parity. A comparison adjusted for what
// each side was shown (TestResult.Adjustment) shows its adjusted figures,
// which decide, with the crude (unadjusted) ones beside them; the methods
// say how. It loads nothing from anywhere (no scripts, fonts, styles or
// images) so it can be archived and handed on as it is, and its tables fit
// a 1280 px wide window without scrolling sideways. Every text from the
// spec or the data is escaped. Suppressed groups show no figures.
//
// WriteHTML is WriteHTMLLang in English.
func (r *Report) WriteHTML(w io.Writer) error {
	return r.WriteHTMLLang(w, LangEN)
}

var reportTemplate = template.Must(template.New("report").Parse(reportHTML))

// reportHTML is the report's template, an html/template file embedded in
// the binary (edit audit/report.html.tmpl; no build step).
//
//go:embed report.html.tmpl
var reportHTML string

// ---------------------------------------------------------------------------
// The page model: everything the template shows, already formatted.

type htmlPage struct {
	// T is the page's static text in its language.
	T           *pageText
	Title       string
	Name        string
	Generated   string
	Provenance  *Provenance
	Events      string
	Used        string
	Skipped     string
	Findings    []findingView
	Significant []sigRow
	Spec        specView
	Method      methodView
	Groups      []groupRow
	Metrics     []metricView
	Prices      *priceView
	Parity      testsView
	Problems    []LineProblem
	MoreProbs   int64
	Suppressed  string // "suppressed (fewer than N users)"
	// Conf is the confidence of the groups' intervals, "95%" for alpha
	// 0.05; TestConf that of the comparisons' (false coverage-rate
	// adjusted); RateLo..PctShift the materiality tolerance.
	Conf, TestConf                                     string
	RateLo, RateHi, MeanLo, MeanHi, PricePct, PctShift string
	// Meta, ProblemsLine and Methods are sentences in the page's language.
	Meta, ProblemsLine string
	Methods            []methodItem
}

// findingView is a finding as the page shows it: Severity its class,
// Label the word for it.
type findingView struct {
	Severity, Label, Text string
}

type sigRow struct {
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
	Strata       string
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

// methodView is what the methods say of the adjustment.
type methodView struct {
	// Stratified: rates and means are compared within Strata (each
	// described), "time" in buckets of Bucket.
	Stratified bool
	Strata     []string
	Bucket     string
	// Unrecorded: no comparison of the report says how it was adjusted
	// (a report made before stratified comparisons).
	Unrecorded bool
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
	// ValueHead heads the value column; Caption is under the chart.
	ValueHead, Caption string
	Field              string
	Chart              *chart
	Note               string // under the chart
	Rows               []metricRow
	QCols              []string // quantile column headers (Distribution)
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

type priceView struct {
	Chart  *chart
	Rows   []priceRow
	Bucket string
	Text   string // the section's opening sentence
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
	ExcessPctCI string
	Test        string
	P, Q        string
	Significant bool
	Verdict     string
}

// ---------------------------------------------------------------------------
// Building the page.

// specDefaults are the spec's settings with the defaults a zero field
// means (see Spec), so that no renderer shows a bare zero.
func specDefaults(s Spec) (minSize int, alpha float64, bucket time.Duration) {
	minSize, alpha, bucket = s.MinGroupSize, s.Alpha, time.Duration(s.PriceBucket)
	if minSize <= 0 {
		minSize = DefaultMinGroupSize
	}
	if alpha <= 0 {
		alpha = DefaultAlpha
	}
	if bucket <= 0 {
		bucket = time.Duration(DefaultPriceBucket)
	}
	return minSize, alpha, bucket
}

// specStrata are the spec's strata with the defaults a nil list or a zero
// bucket means, and whether rates and means are compared within them
// (false for ["none"]).
func specStrata(s Spec) (strata []string, bucket time.Duration, stratified bool) {
	strata = s.Strata
	if len(strata) == 0 {
		strata = DefaultStrata()
	}
	bucket = time.Duration(s.StrataBucket)
	if bucket <= 0 {
		bucket = time.Duration(DefaultStrataBucket)
	}
	stratified = !(len(strata) == 1 && strata[0] == StratumNone)
	return strata, bucket, stratified
}

func buildPage(r *Report, t *pageText) *htmlPage {
	minSize, alpha, bucket := specDefaults(r.Spec)
	p := &htmlPage{
		T:          t,
		Name:       r.Spec.Name,
		Generated:  t.timeText(r.Generated),
		Provenance: r.Provenance,
		Events:     fmtInt(r.Events),
		Used:       fmtInt(r.Used),
		Skipped:    fmtInt(r.Skipped),
		Problems:   r.Problems,
		Suppressed: t.suppressed(fmtInt(int64(minSize))),
		Conf:       fmtLevel(1 - alpha),
	}
	p.TestConf = p.Conf
	if r.IntervalConfidence > 0 {
		p.TestConf = fmtLevel(r.IntervalConfidence)
	}
	tol := r.Spec.tolerance()
	p.RateLo, p.RateHi = fmtRatio(1/tol.RateRatio), fmtRatio(tol.RateRatio)
	p.MeanLo, p.MeanHi = fmtRatio(1/tol.MeanRatio), fmtRatio(tol.MeanRatio)
	p.PricePct = fmtG(tol.PricePct)
	p.PctShift = fmtG(tol.PercentileShift * 100)
	p.Title = t.title(r.Spec.Name)
	p.Meta = t.meta(p.Generated, p.Events, p.Used, p.Skipped)
	if n := r.Skipped - int64(len(r.Problems)); n > 0 {
		p.MoreProbs = n
	}
	p.ProblemsLine = t.problems(len(r.Problems), p.MoreProbs)

	// Findings: significant ones first, otherwise in the report's order.
	fs := r.Findings
	if t.findings != nil {
		fs = t.findings(r)
	}
	fs = slices.Clone(fs)
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Compare(severityRank(a.Severity), severityRank(b.Severity))
	})
	for _, f := range fs {
		label := f.Severity
		if s, ok := t.severity[f.Severity]; ok {
			label = s
		}
		p.Findings = append(p.Findings, findingView{Severity: f.Severity, Label: label, Text: f.Text})
	}

	strata, strataBucket, stratified := specStrata(r.Spec)
	p.Spec = buildSpecView(r.Spec, minSize, alpha, bucket, t)
	p.Method = methodView{Stratified: stratified, Bucket: t.duration(strataBucket), Unrecorded: true}
	if stratified {
		for _, k := range strata {
			p.Method.Strata = append(p.Method.Strata, t.stratum(k, t.duration(strataBucket)))
		}
	}
	for _, t := range slices.Concat(r.Tests, r.Parity) {
		if t.Adjustment != "" {
			p.Method.Unrecorded = false
		}
	}

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
	cc := &compareCtx{alpha: alpha, conf: p.TestConf, strata: strata, suppressed: suppressed, suppressedText: p.Suppressed, t: t}

	// Metrics, in the spec's order, then any others the report holds.
	order, kinds, fields := metricOrder(r)
	sigOf := map[[2]string]bool{} // metric, group -> a finding
	for _, t := range r.Tests {
		if t.Significant {
			sigOf[[2]string{t.Metric, t.Group}] = true
		}
	}
	for i, name := range order {
		mv := metricView{ID: "metric-" + strconv.Itoa(i+1), Name: name, Kind: kinds[name], Field: fields[name]}
		mv.KindTxt = t.kindText(mv.Kind)
		mv.ValueHead = t.valueHead(mv.Kind)
		mv.Rows, mv.QCols = metricRows(r, name, mv.Kind, t)
		mv.SuppCols = 3
		if mv.Kind != Rate {
			mv.SuppCols = 4 + len(mv.QCols)
		}
		var ts []TestResult
		for _, t := range r.Tests {
			if t.Metric == name {
				ts = append(ts, t)
			}
		}
		mv.Tests = cc.testsView(ts, func(TestResult) MetricKind { return mv.Kind }, false)
		switch mv.Kind {
		case Rate, Mean:
			mv.Chart = dotChart(r, name, mv.Kind, sigOf, p.Suppressed, p.Conf, t)
			mv.Note = t.dotNote(mv.Kind == Rate, p.Conf)
		case Distribution:
			mv.Chart, mv.Note = boxChart(r, name, sigOf, p.Suppressed, t)
		}
		mv.Caption = t.caption(mv.Note, mv.Kind == Distribution)
		p.Metrics = append(p.Metrics, mv)

		// Significant results, with their q-values, for the summary.
		for _, t := range ts {
			if t.Significant && !suppressed[t.Group] && !suppressed[t.Reference] {
				p.Significant = append(p.Significant, cc.sigRow(t, mv.Kind, mv.ID, name))
			}
		}
	}

	if len(r.Prices) > 0 {
		pv := &priceView{Bucket: t.duration(bucket)}
		pv.Text = t.pricesText(pv.Bucket)
		for _, pr := range r.Prices {
			row := priceRow{Group: pr.Group, Ref: pr.Reference, Suppressed: suppressed[pr.Group] || suppressed[pr.Reference]}
			if !row.Suppressed {
				row.Pairs = fmtInt(pr.Pairs)
				row.Higher, row.Lower = t.tr(fmtPct(pr.ShareHigher)), t.tr(fmtPct(pr.ShareLower))
				row.Excess = t.tr(fmtSigned(pr.MeanExcess))
				row.ExcessCI = t.tr(fmtCI(pr.MeanExcessCI, fmtSigned))
				row.ExcessPct = t.tr(fmtSignedPercent(pr.MeanExcessPct))
				if pr.Test == "cluster_robust_t" {
					row.ExcessPctCI = t.tr(fmtCI(pr.MeanExcessPctCI, fmtSignedPercent))
				}
				row.Test = t.testName(priceTestName(pr.Test))
				row.P, row.Q = t.tr(fmtP(pr.P)), t.tr(fmtP(pr.Q))
				row.Significant = pr.Significant
				row.Verdict = verdictIn(pr.Significant, pr.Material, pr.Q, alpha, t)
				if pr.Significant {
					p.Significant = append(p.Significant, sigRow{
						Anchor: "prices", Metric: t.sameItem,
						Group: pr.Group, Ref: pr.Reference,
						Effect: t.tr(t.priceSig(fmtPct(pr.ShareHigher), fmtPct(pr.ShareLower), fmtInt(pr.Pairs), fmtSigned(pr.MeanExcess), fmtSignedPercent(pr.MeanExcessPct))),
						P:      row.P, Q: row.Q, TestName: row.Test,
					})
				}
			}
			pv.Rows = append(pv.Rows, row)
		}
		pv.Chart = shareChart(r.Prices, r.Spec.Reference, suppressed, p.Suppressed, t)
		p.Prices = pv
	}

	kindOf := func(t TestResult) MetricKind {
		if k := kinds[t.Metric]; k != "" {
			return k
		}
		return parityKind(t.Metric)
	}
	p.Parity = cc.testsView(r.Parity, kindOf, true)
	for _, t := range r.Parity {
		if t.Significant {
			p.Significant = append(p.Significant, cc.sigRow(t, kindOf(t), "parity", t.Metric))
		}
	}
	p.Methods = t.methods(p)
	return p
}

func buildSpecView(s Spec, minSize int, alpha float64, bucket time.Duration, t *pageText) specView {
	sv := specView{
		Name:         s.Name,
		Reference:    s.Reference,
		Window:       t.windowText(s.From, s.To),
		MinGroupSize: t.minSize(fmtInt(int64(minSize))),
		Alpha:        fmtG(alpha),
		PriceBucket:  t.duration(bucket),
		DefaultMet:   len(s.Metrics) == 0,
	}
	strata, strataBucket, stratified := specStrata(s)
	if stratified {
		tb := ""
		if slices.Contains(strata, StratumTime) {
			tb = t.duration(strataBucket)
		}
		sv.Strata = t.strataOn(strings.Join(strata, ", "), tb)
	} else {
		sv.Strata = t.strataOff
	}
	for _, g := range s.Groups {
		sv.Groups = append(sv.Groups, specGroup{Name: g.Name, Segment: g.Segment, Ref: g.Name == s.Reference})
	}
	for _, m := range s.Metrics {
		sm := specMetric{Name: m.Name, Kind: string(m.Kind), Field: m.Field}
		if k, ok := t.kindName[m.Kind]; ok {
			sm.Kind = k
		}
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
	return sv
}

// metricOrder lists the report's metrics, the spec's first in its order,
// with their kinds and fields.
func metricOrder(r *Report) (order []string, kinds map[string]MetricKind, fields map[string]string) {
	kinds, fields = map[string]MetricKind{}, map[string]string{}
	seen := map[string]bool{}
	add := func(name string, k MetricKind) {
		if name == "" {
			return
		}
		if kinds[name] == "" {
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
	return order, kinds, fields
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

func metricRows(r *Report, name string, k MetricKind, t *pageText) ([]metricRow, []string) {
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
		cols = append(cols, t.quantileName(q))
	}
	val := fmtValue(k)
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
		row.Value = t.tr(val(m.Value))
		row.CI = t.tr(fmtCI(m.CI, val))
		if m.Kind != Rate && m.SD != 0 {
			row.SD = t.tr(fmtNum(m.SD))
		}
		for _, q := range qs {
			cell := "–"
			for _, mq := range m.Quantiles {
				if mq.Q == q {
					cell = t.tr(fmtNum(mq.Value))
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
	return "p" + fmtG(q*100)
}
