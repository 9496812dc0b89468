package server

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// The Art. 44 rights report as HTML (GET /v1/admin/reports/rights with
// format=html or Accept: text/html): one self-contained page, in English
// or Simplified Chinese (?lang=en|zh-CN), rendered by writeRightsHTML
// from rights.html.tmpl. Every word of it is in rightsStrings.

// The languages of the HTML reports (?lang=).
const (
	langEN = "en"    // English, the default
	langZH = "zh-CN" // Simplified Chinese, with the regulation's own terms
)

// reportCSP is the Content-Security-Policy of every HTML report the
// server answers: the page is self-contained, nothing may load or run.
const reportCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// reportLang reads the lang query parameter of a report: en (also when it
// is absent) or zh-CN, in any letter case. Anything else is answered 422
// (field lang) and reportLang returns false: the caller answers nothing
// more.
func reportLang(c *gin.Context) (string, bool) {
	l, given := c.GetQuery("lang")
	switch {
	case !given || strings.EqualFold(l, langEN):
		return langEN, true
	case strings.EqualFold(l, langZH):
		return langZH, true
	}
	failCode(c, 422, codeInvalid, "lang", "lang %q: want en or zh-CN", clipID(l))
	return "", false
}

// rightsStrings is every string of the HTML rights report: for each key,
// its English and its Simplified Chinese text (the regulation's terms:
// 个人信息权利请求, 查阅、复制, 更正, 删除, 撤回同意, 转移, 个性化推荐,
// 用户标签, 年度报告). Keys "kind.<kind>" name the kinds of request the
// rights log records (see setKind); "desc.<kind>" say what each is. Texts
// with a verb (%d, %s) are format strings.
var rightsStrings = map[string][2]string{
	"title":     {"Art. 44 yearly report of personal information rights requests, %d", "%d 年度个人信息权利请求报告（第四十四条）"},
	"heading":   {"Personal information rights requests: yearly report %d", "个人信息权利请求年度报告（%d 年）"},
	"basis":     {"Network Data Security Management Regulations, Art. 44: the rights requests received in the year, by kind and outcome, and how long they took to handle.", "依据《网络数据安全管理条例》第四十四条：本年度收到的个人信息权利请求，按请求类型和处理结果统计，以及处理用时。"},
	"generated": {"Generated %s (UTC) · requests received 1 January to 31 December %d (UTC)", "生成时间 %s（UTC）· 统计期间 %d 年 1 月 1 日至 12 月 31 日（UTC）"},

	"summary":      {"Summary", "概要"},
	"total":        {"Requests received", "收到的请求"},
	"fulfilled":    {"Fulfilled", "已办理"},
	"rejected":     {"Rejected", "已拒绝"},
	"failed":       {"Failed", "处理失败"},
	"none":         {"No rights requests were received in %d.", "%d 年未收到个人信息权利请求。"},
	"kindsHeading": {"Requests by kind", "按请求类型统计"},
	"chartHeading": {"Requests by kind and outcome", "各类请求的处理结果"},
	"chartLabel":   {"Bar chart: requests of each kind, split into fulfilled, rejected and failed.", "条形图：各类请求数，按已办理、已拒绝、处理失败分段。"},
	"kind":         {"Kind of request", "请求类型"},
	"requests":     {"Requests", "请求数"},
	"median":       {"Median handling time (ms)", "处理用时中位数（毫秒）"},
	"p95":          {"95th percentile handling time (ms)", "处理用时第 95 百分位（毫秒）"},
	"sum":          {"All kinds", "合计"},

	"methodHeading": {"How the figures are counted", "统计口径"},
	"methodOutcome": {"Fulfilled: the request was carried out (answered 2xx). Rejected: it was refused, for instance as invalid or not allowed (4xx). Failed: the service could not handle it then (5xx); the requester may send it again.", "已办理：请求已执行（应答 2xx）。已拒绝：请求被拒绝，例如无效或不被允许（4xx）。处理失败：服务当时无法处理（5xx），请求人可以重新提出。"},
	"methodTime":    {"Handling time runs from receiving a request to answering it, in milliseconds; median and 95th percentile by nearest rank, per kind.", "处理用时自收到请求起至作出应答止，单位为毫秒；按请求类型分别计算中位数和第 95 百分位（最近秩法）。"},
	"methodScope":   {"Only figures are shown: no user, request or tag appears in this report.", "本报告仅含统计数字，不含任何用户、请求或标签。"},

	"kindsListHeading": {"Kinds of request", "请求类型说明"},
	"footer":           {"recguard · Art. 44 yearly report", "recguard · 第四十四条年度报告"},

	"kind.access":      {"Access and copy", "查阅、复制"},
	"kind.consent":     {"Give consent", "同意"},
	"kind.correct":     {"Correct", "更正"},
	"kind.delete":      {"Delete a user tag", "删除用户标签"},
	"kind.erase":       {"Delete all personal information", "删除全部个人信息"},
	"kind.opt_out":     {"Turn off personalized recommendation", "关闭个性化推荐"},
	"kind.portability": {"Portability (transfer a copy)", "转移"},
	"kind.refuse_push": {"Refuse pushes", "拒绝推送"},
	"kind.restrict":    {"Restrict processing", "限制处理"},
	"kind.withdraw":    {"Withdraw consent", "撤回同意"},

	"desc.access":      {"Reading one's consent state or user tags, or a copy of one's consent receipts.", "查阅本人的同意状态或用户标签，或复制本人的同意凭证。"},
	"desc.consent":     {"Giving a consent, turning personalized recommendation or pushes back on, or lifting a restriction.", "作出同意，重新开启个性化推荐或推送，或解除限制处理。"},
	"desc.correct":     {"Correcting or adding a user tag, or correcting whether the user is a minor.", "更正或补充用户标签，或更正是否为未成年人。"},
	"desc.delete":      {"Deleting one user tag (it stays deleted).", "删除一个用户标签（删除后不再恢复）。"},
	"desc.erase":       {"Deleting the user's personal information altogether.", "删除用户的全部个人信息。"},
	"desc.opt_out":     {"Turning off personalized recommendation (recommendation not based on personal characteristics).", "关闭个性化推荐（不针对个人特征的推荐）。"},
	"desc.portability": {"A copy of one's personal information in a machine-readable form, to transfer it.", "以可机读的形式获取本人个人信息副本，以便转移。"},
	"desc.refuse_push": {"Refusing pushes on a channel.", "拒绝某一渠道的推送。"},
	"desc.restrict":    {"Restricting the processing of one's personal information.", "限制对本人个人信息的处理。"},
	"desc.withdraw":    {"Withdrawing a consent (sensitive personal information, a guardian's consent).", "撤回同意（敏感个人信息、监护人同意）。"},
}

// rightsKinds are the kinds of request the rights log records, in the
// order the report explains them.
var rightsKinds = []string{"access", "correct", "delete", "erase", "portability", "withdraw", "consent", "opt_out", "refuse_push", "restrict"}

// rightsText looks up key in lang (en or zh-CN).
func rightsText(lang, key string) string {
	s, ok := rightsStrings[key]
	if !ok {
		return key
	}
	if lang == langZH {
		return s[1]
	}
	return s[0]
}

// rightsKindLabel is the name of a kind of request in lang; a kind the
// table does not know is shown as it is.
func rightsKindLabel(lang, kind string) string {
	if _, ok := rightsStrings["kind."+kind]; ok {
		return rightsText(lang, "kind."+kind)
	}
	return kind
}

// rightsPage is what rights.html.tmpl shows, every text already in the
// page's language and every number formatted.
type rightsPage struct {
	Lang    string
	T       map[string]string // rightsStrings in Lang
	Title   string
	Heading string
	Meta    string
	None    string // the sentence for a year without requests
	Empty   bool
	Totals  rightsRow
	Rows    []rightsRow
	Chart   rightsChart
	Kinds   []rightsKindDesc
}

// rightsRow is one row of the table (or the totals).
type rightsRow struct {
	Kind, Label                           string
	Requests, Fulfilled, Rejected, Failed int
	Median, P95                           string
}

// rightsKindDesc explains one kind of request.
type rightsKindDesc struct{ Kind, Label, Desc string }

// rightsChart is the inline SVG bar chart: one stacked bar per kind.
type rightsChart struct {
	Width, Height int
	Bars          []rightsBar
	Ticks         []rightsTick
	Legend        []rightsLegend
	// AxisX..AxisX2 at AxisY is the count axis under the bars; TickY the
	// baseline of its labels.
	AxisX, AxisX2, AxisY, TickY int
}

// rightsBar is one kind's bar: its label and up to three segments.
type rightsBar struct {
	Y, TextY int
	Label    string
	Total    int
	TotalX   int
	Segs     []rightsSeg
}

// rightsSeg is one outcome's part of a bar.
type rightsSeg struct {
	X, Y, W, H int
	Class      string
	Title      string
}

// rightsTick is a mark of the count axis.
type rightsTick struct {
	X     int
	Label string
}

// rightsLegend is one entry of the chart's legend.
type rightsLegend struct {
	X     int
	Class string
	Label string
}

// The chart's geometry, in px.
const (
	chartLabelW = 240 // the kinds' names, left of the bars
	chartBarsW  = 560 // the longest bar
	chartRowH   = 28
	chartBarH   = 18
	chartTop    = 34 // the legend
)

// buildRightsPage makes the page of rep in lang, generated at now.
func buildRightsPage(rep RightsReport, lang string, now time.Time) rightsPage {
	t := make(map[string]string, len(rightsStrings))
	for k := range rightsStrings {
		t[k] = rightsText(lang, k)
	}
	p := rightsPage{
		Lang:    lang,
		T:       t,
		Title:   fmt.Sprintf(t["title"], rep.Year),
		Heading: fmt.Sprintf(t["heading"], rep.Year),
		Meta:    fmt.Sprintf(t["generated"], now.UTC().Format("2006-01-02 15:04:05"), rep.Year),
		None:    fmt.Sprintf(t["none"], rep.Year),
		Empty:   len(rep.Kinds) == 0,
		Totals:  rightsRow{Label: t["sum"], Requests: rep.Total},
	}
	for _, k := range rep.Kinds {
		p.Rows = append(p.Rows, rightsRow{Kind: k.Kind, Label: rightsKindLabel(lang, k.Kind),
			Requests: k.Requests, Fulfilled: k.Fulfilled, Rejected: k.Rejected, Failed: k.Failed,
			Median: formatMS(k.MedianMS), P95: formatMS(k.P95MS)})
		p.Totals.Fulfilled += k.Fulfilled
		p.Totals.Rejected += k.Rejected
		p.Totals.Failed += k.Failed
	}
	for _, k := range rightsKinds {
		p.Kinds = append(p.Kinds, rightsKindDesc{Kind: k, Label: t["kind."+k], Desc: t["desc."+k]})
	}
	p.Chart = buildRightsChart(p.Rows, t)
	return p
}

// formatMS writes a handling time as the CSV form does (ms, 3 decimals).
func formatMS(ms float64) string { return strconv.FormatFloat(ms, 'f', 3, 64) }

// buildRightsChart lays out one stacked bar per row, scaled to the
// largest count.
func buildRightsChart(rows []rightsRow, t map[string]string) rightsChart {
	ch := rightsChart{Width: chartLabelW + chartBarsW + 60}
	most := 0
	for _, r := range rows {
		most = max(most, r.Requests)
	}
	scale := niceCeil(most)
	for i, r := range rows {
		y := chartTop + i*chartRowH
		b := rightsBar{Y: y, TextY: y + chartBarH - 4, Label: r.Label, Total: r.Requests}
		x := chartLabelW
		for _, s := range []struct {
			n          int
			class, key string
		}{{r.Fulfilled, "ok", "fulfilled"}, {r.Rejected, "rej", "rejected"}, {r.Failed, "fail", "failed"}} {
			if s.n == 0 {
				continue
			}
			w := max(1, s.n*chartBarsW/scale)
			b.Segs = append(b.Segs, rightsSeg{X: x, Y: y, W: w, H: chartBarH, Class: s.class, Title: fmt.Sprintf("%s · %s: %d", r.Label, t[s.key], s.n)})
			x += w
		}
		b.TotalX = x + 6
		ch.Bars = append(ch.Bars, b)
	}
	ch.AxisX, ch.AxisX2 = chartLabelW, chartLabelW+chartBarsW
	ch.AxisY = chartTop + len(rows)*chartRowH
	ch.TickY = ch.AxisY + 16
	for i := 0; i <= 4; i++ {
		ch.Ticks = append(ch.Ticks, rightsTick{X: chartLabelW + i*chartBarsW/4, Label: strconv.Itoa(scale * i / 4)})
	}
	for i, l := range []struct{ class, key string }{{"ok", "fulfilled"}, {"rej", "rejected"}, {"fail", "failed"}} {
		ch.Legend = append(ch.Legend, rightsLegend{X: chartLabelW + i*150, Class: l.class, Label: t[l.key]})
	}
	ch.Height = ch.AxisY + 24
	return ch
}

// niceCeil is the axis' end for a largest count n: four times a round
// step (1, 2, 3, 4, 5, 6 or 8 times a power of ten), so the five ticks
// are whole numbers, at least n.
func niceCeil(n int) int {
	for pow := 1; ; pow *= 10 {
		for _, m := range []int{1, 2, 3, 4, 5, 6, 8} {
			if 4*m*pow >= n {
				return 4 * m * pow
			}
		}
	}
}

// writeRightsHTML writes rep as one self-contained HTML page in lang (en
// or zh-CN): the year, the totals, a table and an inline SVG bar chart
// of the requests by kind and outcome, how the figures are counted and
// what each kind is. It loads nothing and runs nothing.
func writeRightsHTML(w io.Writer, rep RightsReport, lang string, now time.Time) error {
	if lang != langEN && lang != langZH {
		return fmt.Errorf("rights report: unknown language %q", lang)
	}
	return rightsTemplate.Execute(w, buildRightsPage(rep, lang, now))
}

// rightsHTML is the page's html/template, embedded (edit
// server/rights.html.tmpl; no build step).
//
//go:embed rights.html.tmpl
var rightsHTML string

var rightsTemplate = template.Must(template.New("rights").Option("missingkey=error").Parse(rightsHTML))
