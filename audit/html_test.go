package audit

import (
	"bytes"
	"math"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// sampleReport is a report as the engine would make it: a reference group,
// a group treated differently, a suppressed group, rates, a mean, two
// distributions (one with quartiles, one without), prices, parity,
// findings (one trying to inject a script) and malformed lines.
func sampleReport() *Report {
	q := func(qs ...float64) []Quantile {
		var out []Quantile
		for i := 0; i+1 < len(qs); i += 2 {
			out = append(out, Quantile{Q: qs[i], Value: qs[i+1]})
		}
		return out
	}
	return &Report{
		Spec: Spec{
			Name: "Q3 loyalty pricing <review>",
			Groups: []GroupSpec{
				{Name: "new", Segment: "not tag:loyal"},
				{Name: "loyal", Segment: "tag:loyal"},
				{Name: "ios", Segment: "device:ios"},
				{Name: "minors", Segment: "flag:minor"},
			},
			Reference: "new",
			Metrics: []MetricSpec{
				{Name: "click_rate", Kind: Rate, Field: "clicked"},
				{Name: "discount_rate", Kind: Rate, Field: "discount"},
				{Name: "mean_price", Kind: Mean, Field: "price"},
				{Name: "price", Kind: Distribution, Field: "price"},
				{Name: "rank", Kind: Distribution, Field: "rank", Quantiles: []float64{0.1, 0.5, 0.9}},
			},
			From:         time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC),
			To:           time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC),
			MinGroupSize: 50,
			Alpha:        0.05,
		},
		Generated: time.Date(2025, 10, 2, 9, 30, 0, 0, time.UTC),
		Events:    120000, Used: 118500, Skipped: 3,
		Problems: []LineProblem{
			{File: "events.jsonl", Line: 17, Reason: "invalid JSON: unexpected end"},
			{File: "events.jsonl", Line: 99, Reason: `bad "time" <field>`},
		},
		Groups: []GroupResult{
			{Name: "new", Segment: "not tag:loyal", Users: 4210, Events: 61234, Metrics: []MetricResult{
				{Metric: "click_rate", Kind: Rate, N: 61234, Value: 0.0412, CI: Interval{0.0397, 0.0428}},
				{Metric: "discount_rate", Kind: Rate, N: 61234, Value: 0.231, CI: Interval{0.2277, 0.2343}},
				{Metric: "mean_price", Kind: Mean, N: 61234, Value: 48.20, CI: Interval{47.9, 48.5}, SD: 20.1},
				{Metric: "price", Kind: Distribution, N: 61234, Value: 48.20, CI: Interval{47.9, 48.5}, SD: 20.1,
					Quantiles: q(0.1, 22, 0.25, 33, 0.5, 46, 0.75, 61, 0.9, 77)},
				{Metric: "rank", Kind: Distribution, N: 61234, Value: 5.1, CI: Interval{5.0, 5.2}, SD: 3,
					Quantiles: q(0.1, 1, 0.5, 4, 0.9, 10)},
			}},
			{Name: "loyal", Segment: "tag:loyal", Users: 3120, Events: 50211, Metrics: []MetricResult{
				{Metric: "click_rate", Kind: Rate, N: 50211, Value: 0.0405, CI: Interval{0.0388, 0.0423}},
				{Metric: "discount_rate", Kind: Rate, N: 50211, Value: 0.118, CI: Interval{0.1152, 0.1208}},
				{Metric: "mean_price", Kind: Mean, N: 50211, Value: 53.90, CI: Interval{53.5, 54.3}, SD: 22.4},
				{Metric: "price", Kind: Distribution, N: 50211, Value: 53.90, CI: Interval{53.5, 54.3}, SD: 22.4,
					Quantiles: q(0.1, 25, 0.25, 37, 0.5, 52, 0.75, 68, 0.9, 86)},
				{Metric: "rank", Kind: Distribution, N: 50211, Value: 5.0, CI: Interval{4.9, 5.1}, SD: 3,
					Quantiles: q(0.1, 1, 0.5, 4, 0.9, 10)},
			}},
			{Name: "ios", Segment: "device:ios", Users: 812, Events: 7055, Metrics: []MetricResult{
				{Metric: "click_rate", Kind: Rate, N: 7055, Value: 0.0437, CI: Interval{0.0393, 0.0486}},
				{Metric: "discount_rate", Kind: Rate, N: 7055, Value: math.NaN(), CI: Interval{math.NaN(), math.Inf(1)}},
				{Metric: "mean_price", Kind: Mean, N: 7055, Value: 48.6, CI: Interval{47.7, 49.5}, SD: 19.8},
				{Metric: "price", Kind: Distribution, N: 7055, Value: 48.6, CI: Interval{47.7, 49.5}, SD: 19.8,
					Quantiles: q(0.1, 22, 0.25, 34, 0.5, 47, 0.75, 61, 0.9, math.Inf(1))},
			}},
			{Name: "minors", Segment: "flag:minor", Suppressed: true},
		},
		Tests: []TestResult{
			{Metric: "click_rate", Group: "loyal", Reference: "new", Difference: -0.0007, DifferenceCI: Interval{-0.0030, 0.0016},
				Ratio: 0.983, RatioCI: Interval{0.93, 1.04}, Test: "two_proportion_z", Statistic: -0.59, P: 0.55, Q: 0.61},
			{Metric: "click_rate", Group: "ios", Reference: "new", Difference: 0.0025, DifferenceCI: Interval{-0.0021, 0.0075},
				Ratio: 1.06, RatioCI: Interval{0.95, 1.18}, Test: "two_proportion_z", Statistic: 1.02, P: 0.31, Q: 0.45},
			{Metric: "discount_rate", Group: "loyal", Reference: "new", Difference: -0.113, DifferenceCI: Interval{-0.117, -0.109},
				Ratio: 0.511, RatioCI: Interval{0.497, 0.525}, Test: "two_proportion_z", Statistic: -50.2, P: 1e-300, Q: 1e-299, Significant: true},
			{Metric: "discount_rate", Group: "ios", Reference: "new", Difference: math.NaN(), DifferenceCI: Interval{math.NaN(), math.NaN()},
				Ratio: math.Inf(1), RatioCI: Interval{math.NaN(), math.Inf(1)}, Test: "fisher_exact", Statistic: math.NaN(), P: 1, Q: 1},
			{Metric: "mean_price", Group: "loyal", Reference: "new", Difference: 5.7, DifferenceCI: Interval{5.2, 6.2},
				Ratio: 1.118, RatioCI: Interval{1.107, 1.129}, Test: "welch_t", Statistic: 22.1, P: 2e-107, Q: 1e-106, Significant: true},
			{Metric: "price", Group: "loyal", Reference: "new", Difference: 6, DifferenceCI: Interval{5.1, 6.9},
				Ratio: 1.13, RatioCI: Interval{1.11, 1.15}, Test: "mann_whitney", Statistic: 19.4, P: 3e-80, Q: 1e-79, Significant: true},
		},
		Prices: []PriceResult{
			{Group: "loyal", Reference: "new", Pairs: 8123, ShareHigher: 0.62, ShareLower: 0.21, MeanExcess: 4.1,
				MeanExcessCI: Interval{3.8, 4.4}, MeanExcessPct: 8.5, P: 1e-200, Q: 1e-199, Significant: true},
			{Group: "ios", Reference: "new", Pairs: 1400, ShareHigher: 0.31, ShareLower: 0.30, MeanExcess: 0.1,
				MeanExcessCI: Interval{-0.2, 0.4}, MeanExcessPct: 0.2, P: 0.71, Q: 0.75},
		},
		Parity: []TestResult{
			{Metric: "click_rate", Group: "non_personalized", Reference: "personalized", Difference: -0.004, DifferenceCI: Interval{-0.006, -0.002},
				Ratio: 0.9, RatioCI: Interval{0.85, 0.95}, Test: "two_proportion_z", Statistic: -3.9, P: 0.0001, Q: 0.0003, Significant: true},
		},
		Findings: []Finding{
			{Severity: "note", Text: "Group minors has fewer than 50 users and is suppressed."},
			{Severity: "significant", Text: "Loyal users pay more: same item, same time, they paid more in 62% of 8,123 comparisons (q < 0.0001)."},
			{Severity: "significant", Text: "Loyal users are offered discounts half as often as new users (11.8% vs 23.1%, q < 0.0001). <script>alert(1)</script>"},
			{Severity: "note", Text: "No difference in click rate (q = 0.61)."},
		},
	}
}

func parseHTML(t *testing.T, r *Report) (*html.Node, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return doc, buf.String()
}

func walk(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func hasClass(n *html.Node, class string) bool {
	v, _ := attr(n, "class")
	for _, c := range strings.Fields(v) {
		if c == class {
			return true
		}
	}
	return false
}

func textOf(n *html.Node) string {
	var b strings.Builder
	walk(n, func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
	})
	return b.String()
}

func findAll(root *html.Node, pred func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	walk(root, func(n *html.Node) {
		if pred(n) {
			out = append(out, n)
		}
	})
	return out
}

func elem(tag string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == tag }
}

func TestHTMLSelfContained(t *testing.T) {
	doc, raw := parseHTML(t, sampleReport())
	if out := os.Getenv("RECGUARD_AUDIT_HTML"); out != "" {
		// RECGUARD_AUDIT_HTML=/tmp/report.html keeps the page to look at.
		if err := os.WriteFile(out, []byte(raw), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		switch n.Data {
		case "script", "iframe", "object", "embed", "link", "img", "image", "use", "foreignObject", "base":
			t.Errorf("the report holds a <%s>", n.Data)
		}
		for _, a := range n.Attr {
			k := strings.ToLower(a.Key)
			switch {
			case k == "src" || k == "srcset" || k == "xlink:href" || k == "action" || k == "formaction":
				t.Errorf("<%s %s=%q>: the report must load nothing", n.Data, a.Key, a.Val)
			case k == "href" && !strings.HasPrefix(a.Val, "#"):
				t.Errorf("<%s href=%q>: only in-page anchors are allowed", n.Data, a.Val)
			case strings.HasPrefix(k, "on"):
				t.Errorf("<%s %s>: event handler attribute", n.Data, a.Key)
			}
		}
	})
	if strings.Contains(raw, "url(") || strings.Contains(raw, "@import") || strings.Contains(raw, "@font-face") {
		t.Error("the CSS refers to something outside the page")
	}
	// Every in-page anchor points at an element that exists.
	ids := map[string]bool{}
	walk(doc, func(n *html.Node) {
		if id, ok := attr(n, "id"); ok {
			ids[id] = true
		}
	})
	walk(doc, func(n *html.Node) {
		if h, ok := attr(n, "href"); ok && !ids[strings.TrimPrefix(h, "#")] {
			t.Errorf("anchor %q points nowhere", h)
		}
	})
}

func TestHTMLFindings(t *testing.T) {
	r := sampleReport()
	doc, raw := parseHTML(t, r)
	if strings.Contains(raw, "<script>alert(1)</script>") {
		t.Fatal("a finding's text was not escaped")
	}
	if !strings.Contains(raw, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("the escaped <script> of the finding is missing")
	}
	if strings.Contains(raw, "Q3 loyalty pricing <review>") {
		t.Error("the spec's name was not escaped")
	}
	items := findAll(doc, func(n *html.Node) bool { return elem("li")(n) && hasClass(n, "finding") })
	if len(items) != len(r.Findings) {
		t.Fatalf("%d findings shown, want %d", len(items), len(r.Findings))
	}
	// Significant first, each kind in the report's order.
	want := []Finding{r.Findings[1], r.Findings[2], r.Findings[0], r.Findings[3]}
	for i, li := range items {
		var got string
		walk(li, func(n *html.Node) {
			if hasClass(n, "text") {
				got = textOf(n)
			}
		})
		if got != want[i].Text {
			t.Errorf("finding %d: %q, want %q", i, got, want[i].Text)
		}
		if !hasClass(li, want[i].Severity) {
			t.Errorf("finding %d lacks class %q", i, want[i].Severity)
		}
	}
	// The findings come first, and the significant results table shows
	// q-values.
	sections := findAll(doc, elem("section"))
	if id, _ := attr(sections[0], "id"); id != "findings" {
		t.Errorf("first section is %q, want findings", id)
	}
	sig := findAll(doc, func(n *html.Node) bool { return elem("table")(n) && hasClass(n, "significant") })
	if len(sig) != 1 {
		t.Fatalf("%d significant tables, want 1", len(sig))
	}
	rows := findAll(sig[0], elem("tr"))
	// header + discount, mean_price, price, prices(loyal), parity
	if len(rows) != 6 {
		t.Errorf("significant table has %d rows, want 6:\n%s", len(rows), textOf(sig[0]))
	}
	if !strings.Contains(textOf(sig[0]), "< 0.0001") || !strings.Contains(textOf(sig[0]), "0.0003") {
		t.Errorf("significant table lacks q-values:\n%s", textOf(sig[0]))
	}
}

func TestHTMLCharts(t *testing.T) {
	r := sampleReport()
	doc, _ := parseHTML(t, r)
	metrics := findAll(doc, func(n *html.Node) bool { return elem("section")(n) && hasClass(n, "metric") })
	if len(metrics) != len(r.Spec.Metrics) {
		t.Fatalf("%d metric sections, want %d", len(metrics), len(r.Spec.Metrics))
	}
	rates := 0
	for _, sec := range metrics {
		kind, _ := attr(sec, "data-kind")
		name, _ := attr(sec, "data-metric")
		svgs := findAll(sec, elem("svg"))
		if len(svgs) != 1 {
			t.Errorf("metric %s: %d <svg>, want 1", name, len(svgs))
			continue
		}
		if kind == "rate" {
			rates++
			if !hasClass(svgs[0], "chart-dot") {
				t.Errorf("rate metric %s: chart is not a dot-and-whisker chart", name)
			}
			// A dot per group with a finite value; the reference's row is
			// highlighted.
			dots := findAll(svgs[0], func(n *html.Node) bool { return elem("circle")(n) && hasClass(n, "dot") })
			wantDots := 3
			if name == "discount_rate" {
				wantDots = 2 // ios is NaN: no dot
			}
			if len(dots) != wantDots {
				t.Errorf("metric %s: %d dots, want %d", name, len(dots), wantDots)
			}
			if len(findAll(svgs[0], func(n *html.Node) bool { return elem("rect")(n) && hasClass(n, "band") })) != 1 {
				t.Errorf("metric %s: the reference is not highlighted", name)
			}
		}
		if kind == "distribution" && !hasClass(svgs[0], "chart-box") {
			t.Errorf("distribution %s: chart is not a box plot", name)
		}
	}
	if rates != 2 {
		t.Errorf("%d rate sections, want 2", rates)
	}
	// Prices: a bar chart of shares.
	var priceSVGs []*html.Node
	walk(doc, func(n *html.Node) {
		if id, _ := attr(n, "id"); id == "prices" {
			priceSVGs = findAll(n, elem("svg"))
		}
	})
	if len(priceSVGs) != 1 || !hasClass(priceSVGs[0], "chart-share") {
		t.Fatalf("prices: %d charts, want one share chart", len(priceSVGs))
	}
	if n := len(findAll(priceSVGs[0], func(n *html.Node) bool { return hasClass(n, "higher") && elem("rect")(n) })); n != 3 {
		t.Errorf("prices: %d 'higher' rects, want 2 bars + 1 legend key", n)
	}
	// No coordinate is NaN or Inf.
	bad := regexp.MustCompile(`(?i)nan|inf`)
	for _, svg := range findAll(doc, elem("svg")) {
		walk(svg, func(n *html.Node) {
			for _, a := range n.Attr {
				switch a.Key {
				case "x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "width", "height", "viewbox":
					if bad.MatchString(a.Val) || a.Val == "" {
						t.Errorf("<%s %s=%q>", n.Data, a.Key, a.Val)
					}
				}
			}
		})
	}
}

func TestHTMLSuppressedShowsNoFigures(t *testing.T) {
	doc, _ := parseHTML(t, sampleReport())
	rows := findAll(doc, func(n *html.Node) bool {
		g, _ := attr(n, "data-group")
		return elem("tr")(n) && g == "minors"
	})
	if len(rows) < 2 { // groups table + each metric table
		t.Fatalf("suppressed group in %d rows", len(rows))
	}
	digits := regexp.MustCompile(`[0-9]`)
	for _, tr := range rows {
		txt := strings.Join(strings.Fields(textOf(tr)), " ")
		if !strings.Contains(txt, "suppressed (fewer than 50 users)") {
			t.Errorf("row %q does not say it is suppressed", txt)
		}
		if rest := strings.ReplaceAll(txt, "fewer than 50 users", ""); digits.MatchString(rest) {
			t.Errorf("suppressed row shows a figure: %q", txt)
		}
	}
	// Its chart rows carry no mark either.
	for _, svg := range findAll(doc, elem("svg")) {
		for _, g := range findAll(svg, func(n *html.Node) bool { return elem("g")(n) && hasClass(n, "row") }) {
			if !strings.Contains(textOf(g), "minors") {
				continue
			}
			if len(findAll(g, elem("circle")))+len(findAll(g, elem("rect")))+len(findAll(g, elem("line"))) != 0 {
				t.Errorf("the suppressed group has marks in a chart: %q", textOf(g))
			}
		}
	}
}

func TestHTMLEmptyReport(t *testing.T) {
	// Nothing at all, and a report where every value is degenerate: the
	// renderer must not fail or draw NaN.
	for _, r := range []*Report{
		{},
		{Spec: Spec{Reference: "a", Metrics: []MetricSpec{{Name: "x", Kind: Rate}, {Name: "p", Kind: Distribution}}},
			Groups: []GroupResult{{Name: "a", Metrics: []MetricResult{
				{Metric: "x", Kind: Rate, Value: 0, CI: Interval{0, 0}},
				{Metric: "p", Kind: Distribution, Quantiles: []Quantile{{0.5, 3}, {0.25, 3}, {0.75, 3}}},
			}}},
			Prices: []PriceResult{{Group: "a", Reference: "a", Pairs: 0, ShareHigher: math.NaN()}},
		},
	} {
		doc, raw := parseHTML(t, r)
		if strings.Contains(raw, "NaN") || strings.Contains(raw, "Inf") {
			t.Errorf("NaN or Inf in the page")
		}
		if len(findAll(doc, elem("h1"))) != 1 {
			t.Error("no title")
		}
	}
}

func TestNiceDomain(t *testing.T) {
	for _, c := range []struct{ lo, hi float64 }{
		{0, 0}, {5, 5}, {0, 1}, {0.0397, 0.0486}, {-3, 2}, {math.NaN(), 1}, {2, 1}, {1e9, 1e9 + 1}, {0, math.Inf(1)},
	} {
		lo, hi, ticks := niceDomain(c.lo, c.hi, 5)
		if !(lo < hi) || !isFinite(lo) || !isFinite(hi) || len(ticks) < 2 || len(ticks) > 101 {
			t.Errorf("niceDomain(%v, %v) = %v, %v, %d ticks", c.lo, c.hi, lo, hi, len(ticks))
		}
		s := scale{lo: lo, hi: hi, x0: 10, x1: 20}
		for _, v := range []float64{c.lo, c.hi} {
			if x := s.at(v); isFinite(v) && !(x >= 10 && x <= 20) {
				t.Errorf("scale(%v) = %v on [%v, %v]", v, x, lo, hi)
			}
		}
	}
}
