package audit

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/net/html"
)

func renderLang(t *testing.T, r *Report, lang string) (*html.Node, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := r.WriteHTMLLang(&buf, lang); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return doc, buf.String()
}

// engineReport runs the engine over synthetic data with a planted price
// gap and a small group: real findings and notes to translate.
func engineReport(t *testing.T) *Report {
	t.Helper()
	var ev, us bytes.Buffer
	if err := Synthesize(SynthConfig{Seed: 11, Users: 600, Events: 30000, Items: 100, Groups: 3, PriceGap: 0.1, ClickGap: 0.05}, &ev, &us); err != nil {
		t.Fatal(err)
	}
	spec, err := LoadSpec([]byte("name: zh <audit>\ngroups:\n  - name: new\n    segment: loyalty:new\n  - name: gold\n    segment: loyalty:gold\n  - name: silver\n    segment: loyalty:silver\n  - name: nobody\n    segment: loyalty:nobody\nreference: new\n"))
	if err != nil {
		t.Fatal(err)
	}
	facts, _, err := UsersFile(&us, "users.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), spec, ReadJSONL(&ev, "events.jsonl"), facts, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.NoteMinGroupSizeFloor(10, 50)
	return r
}

// headingTexts are the texts of the page's headings, header cells,
// contents entries, legends, badges and captions.
func headingTexts(doc *html.Node) []string {
	var out []string
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		switch n.Data {
		case "title", "h1", "h2", "h3", "th", "dt", "figcaption", "footer", "a", "strong":
		case "span":
			if !hasClass(n, "badge") {
				return
			}
		case "p":
			if !hasClass(n, "muted") {
				return
			}
		default:
			return
		}
		if s := strings.Join(strings.Fields(textOf(n)), " "); s != "" {
			out = append(out, s)
		}
	})
	return out
}

var asciiWord = regexp.MustCompile(`[A-Za-z]{3,}`)

// pageWords are the text nodes of the page (not its style), each apart.
func pageWords(doc *html.Node) string {
	var b strings.Builder
	var rec func(n *html.Node)
	rec = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "style" {
			return
		}
		if n.Type == html.TextNode {
			b.WriteString(n.Data + " ")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			rec(c)
		}
	}
	rec(doc)
	return b.String()
}

func TestHTMLLangZH(t *testing.T) {
	for name, r := range map[string]*Report{"sample": sampleReport(), "adjusted": adjustedReport(), "engine": engineReport(t), "empty": {}} {
		_, en := renderLang(t, r, LangEN)
		enDoc, _ := html.Parse(strings.NewReader(en))
		doc, zh := renderLang(t, r, LangZH)
		if !strings.Contains(zh, `<html lang="zh-CN">`) {
			t.Errorf("%s: no lang=\"zh-CN\"", name)
		}
		text := strings.Join(strings.Fields(pageWords(doc)), " ")
		// The data's names (metrics, groups) may head a section or a column.
		data := map[string]bool{}
		for _, g := range r.Groups {
			data[g.Name] = true
			for _, m := range g.Metrics {
				data[m.Metric] = true
			}
		}
		for _, tr := range slices.Concat(r.Tests, r.Parity) {
			data[tr.Metric] = true
		}
		for _, w := range []string{"审计", "参照组", "显著", "置信区间", "分层", "目录", "方法说明"} {
			if !strings.Contains(text, w) {
				t.Errorf("%s: the zh-CN page lacks %q", name, w)
			}
		}
		// No English heading, header cell, caption or badge is left.
		heads := headingTexts(enDoc)
		if len(heads) < 15 {
			t.Fatalf("%s: only %d headings in the English page", name, len(heads))
		}
		zhHeads := map[string]bool{}
		for _, h := range headingTexts(doc) {
			zhHeads[h] = true
		}
		for _, h := range heads {
			if !asciiWord.MatchString(h) || data[h] || strings.Contains(h, "recguard") || strings.Contains(r.Spec.Name, h) {
				continue
			}
			// Not as a heading, nor (a phrase of some words) anywhere.
			if zhHeads[h] || (strings.Count(h, " ") >= 1 && strings.Contains(text, h)) {
				t.Errorf("%s: the zh-CN page holds the English %q", name, h)
			}
		}
		// Self-contained, escaped.
		if strings.Contains(zh, "<script") || strings.Contains(zh, "<review>") || strings.Contains(zh, "<audit>") {
			t.Errorf("%s: hostile input not escaped", name)
		}
		walk(doc, func(n *html.Node) {
			for _, a := range n.Attr {
				if (a.Key == "href" && !strings.HasPrefix(a.Val, "#")) || a.Key == "src" || strings.HasPrefix(a.Key, "on") {
					t.Errorf("%s: <%s %s=%q>", name, n.Data, a.Key, a.Val)
				}
			}
		})
	}
}

// An engine's report in Chinese holds no English word but the data's,
// the codes' and the methods' proper names.
func TestHTMLLangZHNoEnglish(t *testing.T) {
	r := engineReport(t)
	if len(r.Findings) < 3 {
		t.Fatalf("only %d findings", len(r.Findings))
	}
	doc, _ := renderLang(t, r, LangZH)
	allowed := map[string]bool{}
	for _, s := range []string{
		"recguard UTC SHA Wilson Benjamini Hochberg Yekutieli Kish Newcombe Fisher Welch Mann Whitney Hodges Lehmann Mantel Haenszel van Elteren Wilcoxon",
		"strata none within_user non_personalized personalized rate mean distribution item time",
		r.Spec.Name, r.Spec.Reference,
	} {
		for _, w := range asciiWord.FindAllString(s, -1) {
			allowed[w] = true
		}
	}
	for _, g := range r.Groups {
		for _, w := range asciiWord.FindAllString(g.Name+" "+g.Segment, -1) {
			allowed[w] = true
		}
		for _, m := range g.Metrics {
			for _, w := range asciiWord.FindAllString(m.Metric, -1) {
				allowed[w] = true
			}
		}
	}
	for _, m := range append(DefaultMetrics(), r.Spec.Metrics...) {
		for _, w := range asciiWord.FindAllString(m.Name+" "+m.Field, -1) {
			allowed[w] = true
		}
	}
	for _, tr := range r.Parity {
		for _, w := range asciiWord.FindAllString(tr.Metric, -1) {
			allowed[w] = true
		}
	}
	seen := map[string]bool{}
	for _, w := range asciiWord.FindAllString(pageWords(doc), -1) {
		if !allowed[w] && !seen[w] {
			seen[w] = true
			t.Errorf("the zh-CN page holds the English word %q", w)
		}
	}
	// Every finding is in Chinese.
	for _, f := range findingsZH(r) {
		if !hasHan(f.Text) {
			t.Errorf("finding not translated: %q", f.Text)
		}
	}
}

func hasHan(s string) bool {
	for _, c := range s {
		if unicode.Is(unicode.Han, c) {
			return true
		}
	}
	return false
}

func TestHTMLLangEN(t *testing.T) {
	for _, r := range []*Report{sampleReport(), adjustedReport(), {}} {
		var a, b bytes.Buffer
		if err := r.WriteHTML(&a); err != nil {
			t.Fatal(err)
		}
		if err := r.WriteHTMLLang(&b, LangEN); err != nil {
			t.Fatal(err)
		}
		if a.String() != b.String() || !strings.Contains(a.String(), `<html lang="en">`) {
			t.Error(`WriteHTML is not WriteHTMLLang "en"`)
		}
	}
}

func TestHTMLLangUnknown(t *testing.T) {
	for _, lang := range []string{"", "zh", "zh-TW", "EN", "fr"} {
		var b bytes.Buffer
		if err := sampleReport().WriteHTMLLang(&b, lang); !errors.Is(err, ErrUnknownLang) || b.Len() != 0 {
			t.Errorf("%q: %v, %d bytes", lang, err, b.Len())
		}
	}
}

// Every note the engine writes has its Chinese.
func TestNoteZH(t *testing.T) {
	for _, s := range []string{
		"Group gold is suppressed so that no figure can be told apart by differencing: x",
		"The reference group new has fewer than 1,000 users and is suppressed: no group is compared with it, and the report shows no figures for it.",
		"Group gold has fewer than 50 users and is suppressed: the report shows no figures for it and leaves it out of every comparison.",
		"No event in the window has mode personalized, so the parity check is not run.",
		"The parity check of non-personalized against personalized results is suppressed: one of the two modes has fewer than 50 users.",
		"The parity check of non-personalized against personalized results is suppressed so that no figure can be told apart by differencing: x",
		"Group gold and the reference new were never offered the same item in the same hour, so their prices are not compared.",
		"Group gold and the reference new are not compared on click_rate: they have no item and day in common with at least two users a side, so their figures cannot be told apart from what each chose to browse.",
		"The parity check does not judge click_rate: it is what users do, and users who turn personalization off may differ as people; it is compared within the users seen in both modes, and fewer than 50 were (3).",
		"The parity check does not compare price: the two modes have no item in common with at least two users a side.",
		"1 malformed input line was skipped.",
		"1,234 malformed input lines were skipped (the first 100 are listed).",
		"1 event fell outside the audit window and was not used.",
		"5 events of users who restricted processing of their data or were erased were left out of the audit (Art. 23, 24).",
		"7 events in the window matched no group.",
		"The same-item price comparison keeps at most 1,000 item-time cells; 3 events with a price fell in cells beyond that and were left out of it.",
		"No event in the groups records price, so metric p has no data.",
		"The spec asked to suppress groups of fewer than 10 users; this audit's privacy floor is 50, so groups of fewer than 50 users are suppressed.",
	} {
		if zh := noteZH(s); zh == s || !hasHan(zh) {
			t.Errorf("not translated: %q", s)
		}
	}
}
