package audit

import (
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// cssRule is one rule of the page's stylesheet: its @media (or ""), its
// selectors and declarations.
type cssRule struct {
	Media     string
	Selectors []string
	Decl      map[string]string
}

// pageCSS parses the page's <style> (rules and @media blocks of rules,
// which is all the page uses).
func pageCSS(t *testing.T, doc *html.Node) []cssRule {
	t.Helper()
	styles := findAll(doc, elem("style"))
	if len(styles) != 1 {
		t.Fatalf("%d <style> elements, want 1", len(styles))
	}
	rest := textOf(styles[0])
	var rules []cssRule
	media := ""
	for {
		rest = strings.TrimSpace(rest)
		if rest == "" {
			break
		}
		if strings.HasPrefix(rest, "}") {
			media, rest = "", rest[1:]
			continue
		}
		open := strings.Index(rest, "{")
		if open < 0 {
			t.Fatalf("CSS: stray text %q", rest)
		}
		head := strings.TrimSpace(rest[:open])
		if strings.HasPrefix(head, "@media") {
			media, rest = head, rest[open+1:]
			continue
		}
		end := strings.Index(rest, "}")
		decl := map[string]string{}
		for _, d := range strings.Split(rest[open+1:end], ";") {
			if k, v, ok := strings.Cut(d, ":"); ok {
				decl[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
		var sels []string
		for _, s := range strings.Split(head, ",") {
			sels = append(sels, strings.Join(strings.Fields(s), " "))
		}
		rules = append(rules, cssRule{Media: media, Selectors: sels, Decl: decl})
		rest = rest[end+1:]
	}
	return rules
}

// cssDecl is the declaration prop of the screen rule with selector sel.
func cssDecl(rules []cssRule, sel, prop string) string {
	v := ""
	for _, r := range rules {
		if r.Media == "" {
			for _, s := range r.Selectors {
				if s == sel {
					if d, ok := r.Decl[prop]; ok {
						v = d
					}
				}
			}
		}
	}
	return v
}

// chartRowClass is the class of the chart row of group label in the chart
// of the section with id (or data-metric) key.
func chartRowClass(t *testing.T, doc *html.Node, key, label string) string {
	t.Helper()
	for _, sec := range findAll(doc, elem("section")) {
		id, _ := attr(sec, "id")
		m, _ := attr(sec, "data-metric")
		if id != key && m != key {
			continue
		}
		for _, g := range findAll(sec, func(n *html.Node) bool { return elem("g")(n) && hasClass(n, "row") }) {
			for _, tx := range findAll(g, func(n *html.Node) bool { return elem("text")(n) && hasClass(n, "label") }) {
				if strings.TrimSpace(textOf(tx)) == label {
					c, _ := attr(g, "class")
					return c
				}
			}
		}
	}
	t.Fatalf("no chart row %q in %s", label, key)
	return ""
}

// Charts colour only findings: a comparison with q <= alpha whose effect is
// not material is drawn like any other (neutral), a finding in the
// highlight colour; the legend says what the colour means; the stylesheet
// gives the highlight colour to finding rows only.
func TestHTMLChartsColourOnlyFindings(t *testing.T) {
	r := sampleReport()
	for i := range r.Tests {
		r.Tests[i].Material = r.Tests[i].Significant
	}
	// click_rate, loyal: q <= alpha, not material: no finding.
	r.Tests[0].P, r.Tests[0].Q, r.Tests[0].Material, r.Tests[0].Significant = 0.001, 0.01, false, false
	// price (a distribution), loyal: q tiny, not material.
	r.Tests[5].Material, r.Tests[5].Significant = false, false
	// Same-item prices, loyal: q tiny, excess not material.
	r.Prices[0].Material, r.Prices[0].Significant = false, false
	r.Prices[1].Material, r.Prices[1].Significant = true, true
	doc, _ := parseHTML(t, r)

	for _, c := range []struct{ key, label, want string }{
		{"click_rate", "loyal", "row ns"},
		{"click_rate", "new (reference)", "row ref"},
		{"discount_rate", "loyal", "row sig"},
		{"mean_price", "loyal", "row sig"},
		{"mean_price", "ios", "row ns"},
		{"price", "loyal", "row ns"},
		{"prices", "loyal", "row ns"},
		{"prices", "ios", "row sig"},
	} {
		if got := chartRowClass(t, doc, c.key, c.label); got != c.want {
			t.Errorf("%s chart, %s: class %q, want %q", c.key, c.label, got, c.want)
		}
	}
	// Its table row is not marked either, and says why it is no finding.
	tr := tableRow(t, doc, "tests", "click_rate", "loyal")
	if hasClass(tr, "sig") {
		t.Error("the click_rate/loyal row is marked as a finding")
	}
	if tds := findAll(tr, elem("td")); textOf(tds[len(tds)-1]) != "no: not material" {
		t.Errorf("finding cell %q", textOf(tds[len(tds)-1]))
	}

	// Every chart's legend names the highlight colour a finding.
	for _, svg := range findAll(doc, elem("svg")) {
		var legend []string
		for _, g := range findAll(svg, func(n *html.Node) bool { return elem("g")(n) && hasClass(n, "legend") }) {
			keys := findAll(g, func(n *html.Node) bool { return elem("rect")(n) && hasClass(n, "key") })
			if len(keys) == 1 && hasClass(keys[0], "sig") {
				legend = append(legend, textOf(g))
			}
		}
		if len(legend) != 1 || legend[0] != "finding (q ≤ α and material)" {
			t.Errorf("chart %q: highlight legend %q", func() string { v, _ := attr(svg, "aria-label"); return v }(), legend)
		}
	}

	// The stylesheet: in a chart, only a finding's row (.sig) or the
	// legend's finding key take the highlight colours; the others' marks
	// are neutral.
	rules := pageCSS(t, doc)
	for _, rule := range rules {
		hot := false
		for _, v := range rule.Decl {
			hot = hot || strings.Contains(v, "--sig")
		}
		for _, s := range rule.Selectors {
			if hot && strings.HasPrefix(s, "svg.chart") && !strings.Contains(s, ".sig") {
				t.Errorf("CSS %q colours a chart mark that is no finding with the highlight colour", s)
			}
		}
	}
	for sel, want := range map[string]string{
		"svg.chart .ns .dot": "var(--neutral)", "svg.chart .ns .higher": "var(--neutral-dark)", "svg.chart .ns .lower": "var(--neutral)",
		"svg.chart .sig .dot": "var(--sig)", "svg.chart .sig .higher": "var(--sig)",
	} {
		if got := cssDecl(rules, sel, "fill"); got != want {
			t.Errorf("CSS %s fill %q, want %q", sel, got, want)
		}
	}
	if got := cssDecl(rules, "svg.chart .ns .whisker", "stroke"); got != "var(--neutral)" {
		t.Errorf("CSS .ns whisker stroke %q", got)
	}
}
