package audit

import (
	"strconv"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/net/html"
)

// The page fits a 1280 px wide window without scrolling sideways. Without
// a browser at hand, the test holds the page to what makes that so:
//
//   - the page is at most 1040 px wide, its tables fixed-layout at 100% of
//     it, their columns sized in percent adding up to at most 100%, so
//     that no content can widen a table; cells break what does not fit;
//   - nothing scrolls sideways (no overflow-x, no nowrap) and the charts
//     scale to the page;
//   - at 1280 px every word of the page's own (headers, figures, tests,
//     tags) fits its column, measured with Helvetica's widths and a margin,
//     so nothing needs breaking inside a word.
func TestHTMLFits1280(t *testing.T) {
	wide := adjustedReport()
	wide.IntervalConfidence = 0.996875 // the longest level: "99.6875%"
	wide.Groups[1].Users, wide.Groups[1].Events = 1234567, 123456789
	wide.Tests[2].Users, wide.Tests[2].ReferenceUsers, wide.Tests[2].Statistic = 1234567, 7654321, -123.45
	wide.Prices[0].Pairs, wide.Prices[0].Test, wide.Prices[0].MeanExcessPctCI = 1234567, "cluster_robust_t", Interval{-12.5, 123.4}
	wide.Parity[0].Users, wide.Parity[0].ReferenceUsers = 1234567, 7654321
	wide.Tests[1].Test = "cluster_permutation"
	for _, r := range []*Report{sampleReport(), adjustedReport(), wide} {
		doc, raw := parseHTML(t, r)
		rules := pageCSS(t, doc)

		if mw := cssDecl(rules, "main", "max-width"); mw != "1040px" {
			t.Errorf("main max-width %q, want 1040px", mw)
		}
		if cssDecl(rules, "table", "table-layout") != "fixed" || cssDecl(rules, "table", "width") != "100%" {
			t.Error("tables are not fixed-layout at 100% of the page")
		}
		if cssDecl(rules, "td", "overflow-wrap") != "anywhere" || cssDecl(rules, "th", "overflow-wrap") != "anywhere" ||
			cssDecl(rules, "code", "overflow-wrap") != "anywhere" {
			t.Error("cells and code do not break what does not fit")
		}
		if cssDecl(rules, "svg.chart", "width") != "100%" || cssDecl(rules, "svg.chart", "max-width") != "100%" {
			t.Error("charts do not scale to the page")
		}
		if g := cssDecl(rules, "dl.spec", "grid-template-columns"); !strings.Contains(g, "minmax(0, 1fr)") {
			t.Errorf("the spec's grid %q can be widened by its content", g)
		}
		for _, rule := range rules {
			if rule.Decl["white-space"] == "nowrap" || rule.Decl["overflow-x"] != "" || rule.Decl["overflow"] != "" {
				t.Errorf("CSS %v: %v", rule.Selectors, rule.Decl)
			}
		}
		if strings.Contains(raw, `class="scroll"`) {
			t.Error("a table scrolls sideways")
		}

		for _, tb := range findAll(doc, elem("table")) {
			checkTableFits(t, tb)
		}
	}
}

// The content width of the page at 1280 px: main's 1040 px less its
// padding.
const contentWidth1280 = 1040 - 2*36

func checkTableFits(t *testing.T, tb *html.Node) {
	t.Helper()
	class, _ := attr(tb, "class")
	cols := findAll(tb, elem("col"))
	if len(cols) == 0 {
		t.Errorf("table.%s has no colgroup", class)
		return
	}
	ths := findAll(findAll(tb, elem("thead"))[0], elem("th"))
	n := len(ths)
	var widths []float64
	sum := 0.0
	for _, c := range cols {
		st, _ := attr(c, "style")
		v, ok := strings.CutPrefix(st, "width: ")
		pct, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		if !ok || !strings.HasSuffix(v, "%") || err != nil {
			t.Errorf("table.%s: col style %q", class, st)
			return
		}
		widths = append(widths, pct)
		sum += pct
	}
	if sum > 100.001 || len(cols) > n || len(cols) == n && sum < 99.999 {
		t.Errorf("table.%s: %d cols adding up to %v%% for %d columns", class, len(cols), sum, n)
	}
	for len(widths) < n { // the rest share what is left
		widths = append(widths, (100-sum)/float64(n-len(cols)))
	}
	pad, font := 16.0, 13.5
	switch class {
	case "tests", "tests parity", "prices", "significant":
		pad, font = 12, 13
	}
	for _, tr := range findAll(tb, elem("tr")) {
		col := 0
		for c := tr.FirstChild; c != nil; c = c.NextSibling {
			if c.Type != html.ElementNode || (c.Data != "td" && c.Data != "th") {
				continue
			}
			span := 1
			if s, ok := attr(c, "colspan"); ok {
				span, _ = strconv.Atoi(s)
			}
			w := 0.0
			for i := col; i < col+span && i < n; i++ {
				w += widths[i]
			}
			col += span
			room := w/100*contentWidth1280 - pad
			for _, word := range fitWords(c, font) {
				if word.px > room-word.inset {
					t.Errorf("table.%s: %q (%.0f px) does not fit its column (%.0f px) at 1280 px", class, word.text, word.px, room-word.inset)
				}
			}
		}
	}
}

type fitWord struct {
	text      string
	px, inset float64
}

// fitWords are the unbreakable words of a cell, each with its width in
// pixels (Helvetica's widths, bold a tenth wider, plus a twentieth) and
// the inset of its box (a tag's padding).
func fitWords(cell *html.Node, font float64) []fitWord {
	var out []fitWord
	var visit func(n *html.Node, size float64, bold, mono bool, inset float64)
	visit = func(n *html.Node, size float64, bold, mono bool, inset float64) {
		if n.Type == html.ElementNode {
			switch {
			case n.Data == "th" || n.Data == "strong" || hasClass(n, "yes"):
				bold = true
			case n.Data == "code":
				mono, size = true, 13
			case hasClass(n, "ci"):
				size = 12
			case hasClass(n, "tag"):
				size, inset = 11, 10
			}
		}
		if n.Type == html.TextNode {
			for _, w := range fitBreaks(n.Data) {
				px := 0.0
				for _, r := range w {
					em := 0.6
					if !mono {
						em = fitEm(r)
					}
					px += em * size
				}
				if bold {
					px *= 1.1
				}
				out = append(out, fitWord{w, px * 1.05, inset})
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			visit(c, size, bold, mono, inset)
		}
	}
	visit(cell, font, false, false, 0)
	return out
}

// fitBreaks splits text where a browser may break a line: at spaces and
// after a hyphen between letters.
func fitBreaks(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		rs := []rune(f)
		start := 0
		for i := 1; i+1 < len(rs); i++ {
			if rs[i] == '-' && unicode.IsLetter(rs[i-1]) && unicode.IsLetter(rs[i+1]) {
				out = append(out, string(rs[start:i+1]))
				start = i + 1
			}
		}
		out = append(out, string(rs[start:]))
	}
	return out
}

// fitEm is a character's width in Helvetica, in em.
func fitEm(r rune) float64 {
	switch {
	case strings.ContainsRune("ijl|", r):
		return 0.222
	case strings.ContainsRune("ft/.,:;!'I[] ", r):
		return 0.278
	case strings.ContainsRune("r()-", r):
		return 0.333
	case r == 'm':
		return 0.833
	case r == 'w':
		return 0.722
	case strings.ContainsRune("ckvxyzsJ", r):
		return 0.5
	case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		return 0.556
	case r == '%':
		return 0.889
	case r == 'M':
		return 0.833
	case r == 'W':
		return 0.944
	case r >= 'A' && r <= 'Z':
		return 0.722
	}
	return 0.6 // +, <, ≤, α, –, ·, …
}
