package enforce

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

	"golang.org/x/net/html"
)

const hostileTag = `<script>alert("tag")</script>`

// zhSample is renderSample with the engine's own notes (which the page
// translates), a violation of every kind, and a hostile tag.
func zhSample() *Report {
	r := renderSample()
	r.Violations = append(r.Violations,
		Violation{Kind: TargetedPushAfterOptOut, User: "dave", At: renderT0.Add(3 * time.Minute), Event: "push", Channel: "app", Mode: "allowed"},
		Violation{Kind: WhileSuspended, User: "erin", At: renderT0.Add(4 * time.Minute), Event: "exposure", Mode: "personalized"},
		Violation{Kind: WhileRestricted, User: "frank", At: renderT0.Add(5 * time.Minute), Event: "exposure", Mode: "personalized"},
		Violation{Kind: MinorWithoutGuardian, User: "gina", At: renderT0.Add(6 * time.Minute), Event: "exposure", Mode: "personalized"},
		Violation{Kind: TagAfterDeletion, User: "hank", At: renderT0.Add(7 * time.Minute), Event: "exposure", Mode: "personalized", Tag: hostileTag},
		Violation{Kind: SensitiveWithoutConsent, User: "ivy", At: renderT0.Add(8 * time.Minute), Event: "exposure", Mode: "personalized", Tag: "health:diabetes"},
		Violation{Kind: PushOnRefusedChannel, User: "jack", At: renderT0.Add(9 * time.Minute), Event: "push", Channel: "sms", Mode: "refused",
			Decided: true, DecisionReason: "channel_refused"},
	)
	r.ViolationsOmitted = 3
	r.Notes = notes(r)
	return r
}

func renderHTMLLang(t *testing.T, r *Report, lang string) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.WriteHTMLLang(&b, lang); err != nil {
		t.Fatal(err)
	}
	if _, err := html.Parse(bytes.NewReader(b.Bytes())); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// pageHeadings are the texts of the page's headings, header cells,
// contents entries and big lines: the English words a Chinese page must
// not show.
func pageHeadings(t *testing.T, page string) []string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var text func(n *html.Node) string
	text = func(n *html.Node) string {
		if n.Type == html.TextNode {
			return n.Data
		}
		var b strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			b.WriteString(text(c))
		}
		return b.String()
	}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "title", "h1", "h2", "th", "a", "strong", "footer":
				if s := strings.Join(strings.Fields(text(n)), " "); s != "" {
					out = append(out, s)
				}
			}
			if n.Data == "p" {
				for _, a := range n.Attr {
					if a.Key == "class" && (a.Val == "big" || a.Val == "muted") {
						out = append(out, strings.Join(strings.Fields(text(n)), " "))
					}
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out
}

// textNodes is the page's text with a space between any two text nodes.
func textNodes(t *testing.T, page string) string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "style" {
			return
		}
		if n.Type == html.TextNode {
			b.WriteString(n.Data + " ")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return b.String()
}

// englishWords are the runs of three or more ASCII letters in s.
var englishWords = regexp.MustCompile(`[A-Za-z]{3,}`)

func TestWriteHTMLLangZH(t *testing.T) {
	r := zhSample()
	en := renderHTMLLang(t, r, LangEN)
	zh := renderHTMLLang(t, r, LangZH)
	checkRenderSelfContained(t, zh)
	checkRenderTables(t, zh)
	if !strings.Contains(zh, `<html lang="zh-CN">`) {
		t.Error(`no lang="zh-CN"`)
	}
	if strings.Contains(zh, hostileTag) || strings.Contains(zh, `"http://evil`) || strings.Contains(zh, "<script") {
		t.Error("hostile input is not escaped")
	}
	text := renderText(t, zh)
	for _, want := range []string{
		"同意执行情况审计", "发现 3 起违规。", "撤回个性化推荐同意后仍推送个性化内容 (personalized_after_opt_out)",
		"个性化推荐", "用户标签", "敏感个人信息", "单独同意", "不满十四周岁未成年人", "监护人同意", "推送",
		"用户关闭个性化推荐后仍进行个性化推荐展示（第四十二条）", "用户拒绝该渠道后仍在渠道「sms」上推送（第四十二条）",
		"依据用户已删除的用户标签 " + hostileTag, "其决策已拒绝该推送（原因 channel_refused），仍在渠道「sms」上推送",
		"1,234,567", "97.5%", "2025-03-04 10:00:10.123 UTC", "条目晚于该回执 10.1 秒", "最长延迟 850 毫秒", "用户变更后 2 秒",
		"另有 3 起违规计入合计", "用户标签的敏感个人信息类别按当前的标签分类判定。",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the zh-CN page lacks %q", want)
		}
	}
	// No English heading, header cell or sentence of the page is left.
	heads := pageHeadings(t, en)
	if len(heads) < 30 {
		t.Fatalf("only %d headings found in the English page", len(heads))
	}
	for _, h := range heads {
		if englishWords.MatchString(h) && strings.Contains(text, h) && h != "#" {
			t.Errorf("the zh-CN page holds the English %q", h)
		}
	}
	// No English word at all, but the data's and the codes'.
	allowed := map[string]bool{"UTC": true, "SDK": true, "JSON": true, "CSV": true, "recguard": true, "sdk": true, "http": true}
	for _, k := range Kinds() {
		for _, w := range englishWords.FindAllString(string(k), -1) {
			allowed[w] = true
		}
	}
	for _, v := range r.Violations {
		for _, s := range []string{v.User, v.Event, v.Mode, v.Channel, v.Campaign, v.Tag, v.DecisionID, v.DecisionReason, v.ReceiptID, v.Surface} {
			for _, w := range englishWords.FindAllString(s, -1) {
				allowed[w] = true
			}
		}
	}
	for k := range r.Drops {
		allowed[k] = true
	}
	for _, w := range []string{"adnet", "ads", "within", "allowance", "script", "alert", "tag"} {
		allowed[w] = true
	}
	for _, w := range englishWords.FindAllString(textNodes(t, zh), -1) {
		if !allowed[w] {
			t.Errorf("the zh-CN page holds the English word %q", w)
		}
	}
}

func TestWriteHTMLLangEN(t *testing.T) {
	for _, r := range []*Report{renderSample(), zhSample(), renderEmpty(), {}} {
		var a, b bytes.Buffer
		if err := r.WriteHTML(&a); err != nil {
			t.Fatal(err)
		}
		if err := r.WriteHTMLLang(&b, "en"); err != nil {
			t.Fatal(err)
		}
		if a.String() != b.String() {
			t.Error(`WriteHTML and WriteHTMLLang "en" differ`)
		}
		if !strings.Contains(a.String(), `<html lang="en">`) {
			t.Error(`no lang="en"`)
		}
	}
}

func TestWriteHTMLLangUnknown(t *testing.T) {
	for _, lang := range []string{"", "zh", "zh-TW", "EN", "fr", "zh-cn"} {
		var b bytes.Buffer
		err := renderSample().WriteHTMLLang(&b, lang)
		if !errors.Is(err, ErrUnknownLang) {
			t.Errorf("%q: %v, want ErrUnknownLang", lang, err)
		}
		if b.Len() != 0 {
			t.Errorf("%q: %d bytes written", lang, b.Len())
		}
	}
}

func TestWriteHTMLLangZHEmpty(t *testing.T) {
	for name, r := range map[string]*Report{"run": renderEmpty(), "zero": {}} {
		page := renderHTMLLang(t, r, LangZH)
		checkRenderSelfContained(t, page)
		checkRenderTables(t, page)
		text := renderText(t, page)
		for _, want := range []string{"未发现违规。", "无记录", "没有记录到写入台账前被丢弃的条目。", "保存的全部条目（无时间范围）"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: the zh-CN page lacks %q", name, want)
			}
		}
	}
}

func TestWriteHTMLLangZHManyRows(t *testing.T) {
	r := renderSample()
	n := HTMLMaxRows + 234
	r.Violations = nil
	for range n {
		r.Violations = append(r.Violations, Violation{Kind: TagAfterDeletion, User: "u", At: renderT0, Event: "exposure", Tag: "interest:golf"})
	}
	r.ViolationsOmitted = 5000
	text := renderText(t, renderHTMLLang(t, r, LangZH))
	for _, want := range []string{"列出的 1,234 起违规中的前 1,000 起，按时间先后排列；其余 234 起见 JSON 和 CSV 报告。", "另有 5,000 起违规计入合计"} {
		if !strings.Contains(text, want) {
			t.Errorf("the zh-CN page lacks %q", want)
		}
	}
}

// Every kind has a Chinese name and meaning, and every detail and note
// the engine writes has a Chinese sentence.
func TestZHCoverage(t *testing.T) {
	han := func(s string) bool {
		for _, c := range s {
			if unicode.Is(unicode.Han, c) {
				return true
			}
		}
		return false
	}
	for _, k := range Kinds() {
		if i, ok := kindInfoZH[k]; !ok || !han(i[0]) || !han(i[1]) {
			t.Errorf("%s: no Chinese name", k)
		}
		for _, ev := range []string{"exposure", "push"} {
			v := Violation{Kind: k, Event: ev, Detail: "english"}
			if d := detailZH(&v); d == "english" || !han(d) {
				t.Errorf("%s %s: detail %q", k, ev, d)
			}
		}
	}
	r := renderSample()
	r.ViolationsOmitted = 9
	r.Notes = notes(r)
	zh := notesZH(r)
	if len(zh) != len(r.Notes) {
		t.Fatalf("%d notes, want %d", len(zh), len(r.Notes))
	}
	for i, n := range zh {
		if !han(n) || englishWords.MatchString(strings.ReplaceAll(n, "within_allowance", "")) {
			t.Errorf("note %d %q is not Chinese", i, n)
		}
	}
	for in, want := range map[string]string{"2s": "2 秒", "1m0s": "1 分钟", "1h30m0s": "1 小时 30 分钟", "0s": "无", "150ms": "150 毫秒"} {
		if got := fmtAllowanceIn(in, &textZH); got != want {
			t.Errorf("fmtAllowanceIn(%q, zh) = %q, want %q", in, got, want)
		}
	}
}
