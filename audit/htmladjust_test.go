package audit

import (
	"math"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// adjustedReport is sampleReport as an engine comparing within strata
// makes it: rates and means adjusted by Mantel-Haenszel over item and time
// with their crude figures, the distribution by percentiles within strata
// (its crude comparison Mann-Whitney's), one comparison whose sides share
// no stratum, and the parity of the click rate compared within users.
func adjustedReport() *Report {
	r := sampleReport()
	r.Spec.Strata = []string{StratumItem, StratumTime}
	r.Spec.StrataBucket = Duration(24 * time.Hour)
	r.IntervalConfidence = 0.99
	nan := math.NaN()
	for i := range r.Tests {
		t := &r.Tests[i]
		t.Material = t.Significant
		switch {
		case t.Metric == "price":
			t.Crude = &CrudeResult{Difference: t.Difference, DifferenceCI: t.DifferenceCI, Ratio: t.Ratio, RatioCI: t.RatioCI, Test: t.Test, P: t.P}
			t.Adjustment, t.Strata, t.Test = AdjustMantelHaenszel, 48, "cluster_robust_t"
			t.Difference, t.DifferenceCI, t.Ratio, t.RatioCI, t.P = 0.12, Interval{0.09, 0.15}, nan, Interval{nan, nan}, 1e-40
		case t.Metric == "discount_rate" && t.Group == "loyal":
			t.Test, t.Users, t.ReferenceUsers = "cluster_robust_t", 3120, 4210
			t.Adjustment, t.Strata = "mantel_haenszel", 48
			t.Crude = &CrudeResult{Difference: -0.12, DifferenceCI: Interval{-0.124, -0.116}, Ratio: 0.48,
				RatioCI: Interval{0.466, 0.494}, Test: "cluster_robust_t", P: 1e-250}
		case t.Metric == "click_rate" && t.Group == "ios":
			t.Adjustment, t.Strata, t.Test = "not_comparable", 0, "none"
			t.Difference, t.DifferenceCI, t.Ratio, t.RatioCI = nan, Interval{nan, nan}, nan, Interval{nan, nan}
			t.Statistic, t.P, t.Q = nan, nan, nan
			t.Crude = &CrudeResult{Difference: 0.0025, DifferenceCI: Interval{-0.0021, 0.0075}, Ratio: 1.06,
				RatioCI: Interval{0.95, 1.18}, Test: "cluster_robust_t", P: 0.31}
		default:
			t.Adjustment, t.Strata = "mantel_haenszel", 12
			t.Crude = &CrudeResult{Difference: t.Difference * 1.5, DifferenceCI: Interval{t.DifferenceCI.Lo * 1.5, t.DifferenceCI.Hi * 1.5},
				Ratio: t.Ratio, RatioCI: t.RatioCI, Test: "cluster_robust_t", P: 0.02}
		}
	}
	r.Parity = []TestResult{
		{Metric: "click_rate", Group: ModeNonPersonalized, Reference: ModePersonalized, Difference: -0.004, DifferenceCI: Interval{-0.006, -0.002},
			Ratio: 0.9, RatioCI: Interval{0.85, 0.95}, Test: "cluster_robust_t", Statistic: -3.9, P: 0.0001, Q: 0.0003,
			Users: 1840, ReferenceUsers: 5120, Adjustment: "within_user", Strata: 1310, Material: true, Significant: true,
			Crude: &CrudeResult{Difference: -0.006, DifferenceCI: Interval{-0.009, -0.003}, Ratio: 0.86, RatioCI: Interval{0.8, 0.92}, Test: "cluster_robust_t", P: 0.00002}},
		{Metric: "rank_distribution", Group: ModeNonPersonalized, Reference: ModePersonalized, Difference: 0, DifferenceCI: Interval{-1, 1},
			Ratio: 1, RatioCI: Interval{nan, nan}, Test: "mann_whitney", Statistic: 0.4, P: 0.69, Q: 0.75,
			Users: 1790, ReferenceUsers: 5003, Adjustment: "none"},
		{Metric: "latency_mean", Group: ModeNonPersonalized, Reference: ModePersonalized, Difference: nan, DifferenceCI: Interval{nan, nan},
			Ratio: nan, RatioCI: Interval{nan, nan}, Test: "cluster_robust_t", Statistic: nan, P: nan, Q: nan,
			Users: 1702, ReferenceUsers: 4987, Adjustment: "not_comparable"},
	}
	return r
}

// tableRow finds the row of metric and group in the tables of class class.
func tableRow(t *testing.T, doc *html.Node, class, metric, group string) *html.Node {
	t.Helper()
	for _, tb := range findAll(doc, func(n *html.Node) bool { return elem("table")(n) && hasClass(n, class) }) {
		for _, tr := range findAll(tb, elem("tr")) {
			m, _ := attr(tr, "data-metric")
			g, _ := attr(tr, "data-group")
			if m == metric && g == group {
				return tr
			}
		}
	}
	t.Fatalf("no row %s/%s in table.%s", metric, group, class)
	return nil
}

// cellOf is the row's cell of class class ("" if none).
func cellOf(tr *html.Node, class string) string {
	for _, td := range findAll(tr, elem("td")) {
		if hasClass(td, class) {
			return squash(textOf(td))
		}
	}
	return ""
}

func squash(s string) string { return strings.Join(strings.Fields(s), " ") }

// headerOf is the header texts of the table holding tr.
func headerOf(tr *html.Node) []string {
	tb := tr
	for tb != nil && !elem("table")(tb) {
		tb = tb.Parent
	}
	var out []string
	for _, th := range findAll(tb, elem("th")) {
		out = append(out, squash(textOf(th)))
	}
	return out
}

// An adjusted comparison shows its adjusted figures, which decide, with
// the crude ones beside them under a labelled column, and a tag saying
// how it was adjusted; the summary quotes both; the methods say how.
func TestHTMLAdjustedBesideCrude(t *testing.T) {
	r := adjustedReport()
	doc, raw := parseHTML(t, r)
	tr := tableRow(t, doc, "tests", "discount_rate", "loyal")
	if a, _ := attr(tr, "data-adjustment"); a != "mantel_haenszel" {
		t.Errorf("data-adjustment %q", a)
	}
	if got := cellOf(tr, "diff"); got != "-11.3 pp-11.7 to -10.9 pp" {
		t.Errorf("adjusted difference cell %q", got)
	}
	if got := cellOf(tr, "crude"); got != "-12.0 pp-12.4 to -11.6 ppratio 0.480p < 0.0001" {
		t.Errorf("crude cell %q", got)
	}
	if got := cellOf(tr, "test"); !strings.Contains(got, "adjusted: item, time · 48 strata") {
		t.Errorf("test cell %q lacks the adjustment tag", got)
	}
	hdr := strings.Join(headerOf(tr), " | ")
	if !strings.Contains(hdr, "Crude (unadjusted)") || !strings.Contains(hdr, "Difference (99% interval)") {
		t.Errorf("header %q", hdr)
	}
	// The crude column sits right after the adjusted figures.
	if h := headerOf(tr); len(h) < 5 || h[4] != "Crude (unadjusted)" {
		t.Errorf("columns %q", h)
	}
	// A distribution within strata shifts by percentile points; its crude
	// comparison (Mann-Whitney's) is in the metric's unit.
	pr := tableRow(t, doc, "tests", "price", "loyal")
	if got := cellOf(pr, "diff"); got != "+12.0 percentile points+9.00 to +15.0 percentile points" {
		t.Errorf("distribution difference %q", got)
	}
	if got := cellOf(pr, "crude"); got != "+6.00+5.10 to +6.90ratio 1.130p < 0.0001" {
		t.Errorf("distribution crude %q", got)
	}

	// The summary quotes the adjusted effect and the crude one, labelled.
	sig := findAll(doc, func(n *html.Node) bool { return elem("table")(n) && hasClass(n, "significant") })
	var effect string
	for _, row := range findAll(sig[0], elem("tr")) {
		if txt := squash(textOf(row)); strings.HasPrefix(txt, "discount_rate") {
			effect = txt
		}
	}
	for _, want := range []string{"difference -11.3 pp (-11.7 to -10.9 pp), ratio 0.511", "adjusted: item, time · 48 strata",
		"crude (unadjusted): difference -12.0 pp (-12.4 to -11.6 pp), ratio 0.480 (0.466 to 0.494), p < 0.0001"} {
		if !strings.Contains(effect, want) {
			t.Errorf("summary %q lacks %q", effect, want)
		}
	}

	// The methods say how.
	var methods string
	walk(doc, func(n *html.Node) {
		if id, _ := attr(n, "id"); id == "methods" {
			methods = squash(textOf(n))
		}
	})
	for _, want := range []string{"Mantel-Haenszel weights n1·n0/(n1+n0)", "one fixed effect per stratum",
		"cluster-robust by user", "item (the event's item), time (the event's time, in buckets of 24h)",
		"within users (within_user)", "its percentile within its stratum", "shift in percentile points", "crude (unadjusted) comparison",
		"a shift of a distribution within strata of at least 5 percentile points"} {
		if !strings.Contains(methods, want) {
			t.Errorf("methods lack %q", want)
		}
	}
	if strings.Contains(methods, "do not record an adjustment") {
		t.Error("methods say the adjustment is not recorded")
	}
	if !strings.Contains(raw, "item, time (time in buckets of 24h): rates, means and distributions are compared within them") {
		t.Error("the spec does not list the strata")
	}
}

// A comparison that could not be made says so, in words, instead of
// figures; a page with NaN comparisons shows no NaN.
func TestHTMLNotComparable(t *testing.T) {
	r := adjustedReport()
	doc, raw := parseHTML(t, r)
	if strings.Contains(raw, "NaN") {
		t.Error("NaN in the page")
	}
	tr := tableRow(t, doc, "tests", "click_rate", "ios")
	if got := cellOf(tr, "nc"); got != "not comparable: the two sides share no item/time stratum with at least two users a side" {
		t.Errorf("not comparable cell %q", got)
	}
	if got := cellOf(tr, "test"); got != "not comparable: no test" {
		t.Errorf("not comparable test cell %q", got)
	}
	if cellOf(tr, "diff") != "" || cellOf(tr, "ratio") != "" {
		t.Error("a not comparable row shows adjusted figures")
	}
	if got := cellOf(tr, "crude"); !strings.Contains(got, "+0.25 pp") || !strings.Contains(got, "p 0.31") {
		t.Errorf("its crude figures: %q", got)
	}
	tds := findAll(tr, elem("td"))
	if n := len(tds); n < 3 || textOf(tds[n-3]) != "n/a" || textOf(tds[n-2]) != "n/a" || textOf(tds[n-1]) != "no" {
		t.Errorf("p, q and finding of a not comparable row: %q", squash(textOf(tr)))
	}
	// Parity: a mean within strata, and the click rate within users.
	lt := tableRow(t, doc, "parity", "latency_mean", ModeNonPersonalized)
	if got := cellOf(lt, "nc"); got != "not comparable: the two sides share no item/time stratum with at least two users a side" {
		t.Errorf("parity latency cell %q", got)
	}
	r.Parity[0].Adjustment, r.Parity[0].Strata = "not_comparable", 12
	doc, _ = parseHTML(t, r)
	ct := tableRow(t, doc, "parity", "click_rate", ModeNonPersonalized)
	if got := cellOf(ct, "nc"); got != "not comparable: too few users were seen in both modes (12)" {
		t.Errorf("parity click rate cell %q", got)
	}
}

// Strata ["none"]: the page says every figure is crude and describes no
// adjustment; without crude figures there is no crude column.
func TestHTMLStrataNone(t *testing.T) {
	r := sampleReport()
	r.Spec.Strata = []string{StratumNone}
	for i := range r.Tests {
		r.Tests[i].Adjustment = "none"
	}
	doc, raw := parseHTML(t, r)
	if !strings.Contains(raw, "none: every figure is crude (not adjusted)") {
		t.Error("the spec does not say the figures are crude")
	}
	if !strings.Contains(raw, "The spec names no strata (strata: none): every figure is crude") {
		t.Error("the methods do not say the figures are crude")
	}
	if strings.Contains(raw, "Mantel-Haenszel") || strings.Contains(raw, "Crude (unadjusted)") {
		t.Error("a crude report describes an adjustment or a crude column")
	}
	tr := tableRow(t, doc, "tests", "discount_rate", "loyal")
	if got := cellOf(tr, "test"); !strings.Contains(got, "not adjusted (crude)") {
		t.Errorf("test cell %q", got)
	}
}

// The parity table gives each mode's size: non-personalized users
// (TestResult.Users), then personalized users (ReferenceUsers).
func TestHTMLParityModeSizes(t *testing.T) {
	doc, _ := parseHTML(t, adjustedReport())
	tr := tableRow(t, doc, "parity", "click_rate", ModeNonPersonalized)
	h := headerOf(tr)
	if len(h) < 3 || h[1] != "Non-personalized users" || h[2] != "Personalized users" {
		t.Fatalf("parity header %q", h)
	}
	tds := findAll(tr, elem("td"))
	if got := []string{squash(textOf(tds[1])), squash(textOf(tds[2]))}; got[0] != "1,840" || got[1] != "5,120" {
		t.Errorf("mode sizes %q, want 1,840 and 5,120", got)
	}
	if got := cellOf(tr, "test"); !strings.Contains(got, "adjusted: within users seen in both modes · 1,310 users") {
		t.Errorf("parity click rate test cell %q", got)
	}
	if got := cellOf(tr, "diff"); got != "-0.4 pp-0.6 to -0.2 pp" {
		t.Errorf("a parity rate's difference is in points: %q", got)
	}
}
