package server_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/server"
)

// reportCSP is the Content-Security-Policy every HTML report is answered
// with (the audit's, see TestAuditRoutes).
const reportCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// rightsRequests makes rights requests of every kind the log records, one
// of them rejected, and returns the year they fall in.
func rightsRequests(t *testing.T, e *env) int {
	t.Helper()
	const U = "/v1/users/h1"
	for _, s := range []struct {
		c      call
		status int
	}{
		{call{method: "GET", path: U + "/consent"}, 200},                                                                          // access
		{call{method: "GET", path: U + "/receipts"}, 200},                                                                         // access
		{call{method: "PUT", path: U + "/consent/personalization", body: `{"enabled":false}`}, 200},                               // opt_out
		{call{method: "PUT", path: U + "/consent/personalization", body: `{"enabled":true}`}, 200},                                // consent
		{call{method: "PUT", path: U + "/consent/channels/sms", body: `{"refused":true}`}, 200},                                   // refuse_push
		{call{method: "PUT", path: U + "/consent/sensitive/religion", body: `{"granted":true,"purpose":"personalization"}`}, 200}, // consent
		{call{method: "PUT", path: U + "/consent/sensitive/religion", body: `{"granted":false}`}, 200},                            // withdraw
		{call{method: "POST", path: U + "/tags", body: `{"tag":"interest:ski","source":"declared"}`}, 201},                        // correct
		{call{method: "DELETE", path: U + "/tags/interest:ski"}, 200},                                                             // delete
		{call{method: "DELETE", path: U + "/tags/Bad", req: violates}, 422},                                                       // delete, rejected
		{call{method: "PUT", path: U + "/restriction", body: `{"restricted":true}`}, 200},                                         // restrict
		{call{method: "GET", path: U + "/export", header: verified}, 200},                                                         // portability
		{call{method: "DELETE", path: U}, 200},                                                                                    // erase
	} {
		c := s.c
		c.key = e.app()
		if r := e.do(c); r.Status != s.status {
			t.Fatalf("%s %s: %s", c.method, c.path, r)
		}
	}
	return time.Now().UTC().Year()
}

// rightsRow finds the table row of kind in an HTML rights report and
// returns its cells' text.
func rightsRow(t *testing.T, page, kind string) []string {
	t.Helper()
	m := regexp.MustCompile(`<tr data-kind="` + regexp.QuoteMeta(kind) + `">(.*?)</tr>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no row for kind %s", kind)
	}
	var cells []string
	for _, c := range regexp.MustCompile(`<td[^>]*>(.*?)</td>`).FindAllStringSubmatch(m[1], -1) {
		cells = append(cells, c[1])
	}
	return cells
}

// TestRightsReportHTML: the Art. 44 report as a self-contained HTML page,
// in English and in Simplified Chinese, with the JSON report's numbers.
func TestRightsReportHTML(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	year := rightsRequests(t, e)
	base := fmt.Sprintf("/v1/admin/reports/rights?year=%d", year)
	r := e.do(call{method: "GET", path: base, key: e.admin()})
	want(t, r, 200)
	rep := decode[server.RightsReport](t, r)
	if rep.Total != 13 || len(rep.Kinds) != 10 {
		t.Fatalf("JSON report %+v: want 13 requests of 10 kinds", rep)
	}

	zhTerms := []string{"个人信息权利请求", "年度报告", "查阅、复制", "更正", "删除用户标签", "撤回同意", "转移", "关闭个性化推荐", "用户标签", "个性化推荐"}
	for _, c := range []struct {
		name     string
		query    string
		accept   string
		lang     string
		terms    []string
		notTerms []string
	}{
		{"format=html", "&format=html", "", "en", []string{"Art. 44", "Personal information rights requests", "Access and copy", "Turn off personalized recommendation", "Delete a user tag", "Withdraw consent", "Portability"}, zhTerms[:2]},
		{"format=html&lang=en", "&format=html&lang=en", "", "en", []string{"Access and copy"}, zhTerms[:2]},
		{"format=html&lang=zh-CN", "&format=html&lang=zh-CN", "", "zh-CN", zhTerms, []string{"Access and copy", "Withdraw consent"}},
		{"Accept text/html", "&lang=zh-CN", "text/html", "zh-CN", zhTerms, nil},
		{"a browser's Accept", "", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "en", []string{"Access and copy"}, nil},
		{"format over Accept", "&format=html", "application/json", "en", nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := call{method: "GET", path: base + c.query, key: e.admin()}
			if c.accept != "" {
				cl.header = map[string]string{"Accept": c.accept}
			}
			r := e.do(cl)
			want(t, r, 200)
			if ct := r.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Fatalf("Content-Type %q", ct)
			}
			if csp := r.Header.Get("Content-Security-Policy"); csp != reportCSP {
				t.Errorf("CSP %q, want %q", csp, reportCSP)
			}
			if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("Content-Disposition") != "" {
				t.Errorf("headers %v", r.Header)
			}
			page := string(r.Body)
			if !strings.HasPrefix(page, "<!DOCTYPE html>\n<html lang=\""+c.lang+"\">") {
				t.Errorf("page starts %q, want lang %q", page[:min(len(page), 60)], c.lang)
			}
			for _, bad := range []string{"<script", "http://", "https://", "src=", "href=", "url(", "@import", "<no value>"} {
				if strings.Contains(page, bad) {
					t.Errorf("the page holds %q: not self-contained", bad)
				}
			}
			if !strings.Contains(page, "<svg ") || strings.Count(page, "<rect ") < len(rep.Kinds) {
				t.Error("no bar chart")
			}
			if !strings.Contains(page, strconv.Itoa(year)) {
				t.Errorf("the year %d is not on the page", year)
			}
			for _, term := range c.terms {
				if !strings.Contains(page, term) {
					t.Errorf("%q is not on the page", term)
				}
			}
			for _, term := range c.notTerms {
				if strings.Contains(page, term) {
					t.Errorf("%q is on the page", term)
				}
			}
			// The numbers are the JSON report's.
			var ful, rej, failed int
			for _, k := range rep.Kinds {
				cells := rightsRow(t, page, k.Kind)
				want := []string{strconv.Itoa(k.Requests), strconv.Itoa(k.Fulfilled), strconv.Itoa(k.Rejected), strconv.Itoa(k.Failed),
					fmt.Sprintf("%.3f", k.MedianMS), fmt.Sprintf("%.3f", k.P95MS)}
				if len(cells) != 7 || fmt.Sprint(cells[1:]) != fmt.Sprint(want) || !strings.Contains(cells[0], "<code>"+k.Kind+"</code>") {
					t.Errorf("row %s: %q, want %q", k.Kind, cells, want)
				}
				ful, rej, failed = ful+k.Fulfilled, rej+k.Rejected, failed+k.Failed
			}
			for id, n := range map[string]int{"total": rep.Total, "fulfilled": ful, "rejected": rej, "failed": failed} {
				if w := fmt.Sprintf(`<dd id="%s">%d</dd>`, id, n); !strings.Contains(page, w) {
					t.Errorf("no %s", w)
				}
			}
		})
	}

	// lang is ignored by JSON and CSV.
	j := e.do(call{method: "GET", path: base + "&lang=zh-CN", key: e.admin()})
	want(t, j, 200)
	if string(j.Body) != string(r.Body) {
		t.Errorf("JSON with lang=zh-CN differs: %s", j.Body)
	}
	csv1 := e.do(call{method: "GET", path: base + "&format=csv", key: e.admin()})
	csv2 := e.do(call{method: "GET", path: base + "&format=csv&lang=zh-CN", key: e.admin()})
	want(t, csv2, 200)
	if string(csv1.Body) != string(csv2.Body) || csv2.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Errorf("CSV with lang=zh-CN differs: %s", csv2.Body)
	}
	// format=json wins over Accept.
	j = e.do(call{method: "GET", path: base + "&format=json", key: e.admin(), header: map[string]string{"Accept": "text/html"}})
	want(t, j, 200)
	if !strings.HasPrefix(j.Header.Get("Content-Type"), "application/json") || j.Header.Get("Vary") != "Accept" {
		t.Errorf("format=json with Accept text/html: %v", j.Header)
	}
	// lang in another letter case (not the document's spelling).
	h := e.do(call{method: "GET", path: base + "&format=html&lang=ZH-cn", key: e.admin(), req: violates})
	want(t, h, 200)
	if !strings.Contains(string(h.Body), `<html lang="zh-CN">`) {
		t.Error("lang=ZH-cn is not zh-CN")
	}
}

// TestRightsReportHTMLEmptyYear: a year without requests says so, in each
// language, with zero totals and no table or chart.
func TestRightsReportHTMLEmptyYear(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for lang, sentence := range map[string]string{"en": "No rights requests were received in 2001.", "zh-CN": "2001 年未收到个人信息权利请求。"} {
		r := e.do(call{method: "GET", path: "/v1/admin/reports/rights?year=2001&format=html&lang=" + lang, key: e.admin()})
		want(t, r, 200)
		page := string(r.Body)
		if !strings.Contains(page, `<html lang="`+lang+`">`) || !strings.Contains(page, sentence) || !strings.Contains(page, `<dd id="total">0</dd>`) {
			t.Errorf("%s: empty year page without %q", lang, sentence)
		}
		if strings.Contains(page, "<svg") || strings.Contains(page, "data-kind=") {
			t.Errorf("%s: a chart or rows for an empty year", lang)
		}
	}
}

// TestRightsReportLangInvalid: an unknown lang is 422 (field lang), in
// every format, before the store is read; nothing changes.
func TestRightsReportLangInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	year := time.Now().UTC().Year()
	for _, q := range []string{"&lang=fr", "&format=html&lang=zh", "&format=csv&lang=zh-TW", "&format=json&lang=", "&lang=en-US"} {
		p := e.rejected(call{method: "GET", path: fmt.Sprintf("/v1/admin/reports/rights?year=%d%s", year, q), key: e.admin(), req: violates}, 422, "invalid-value")
		if p.Field != "lang" {
			t.Errorf("%s: field %q, want lang", q, p.Field)
		}
		if e.last.Header.Get("Content-Security-Policy") != "" || e.last.Header.Get("Content-Disposition") != "" {
			t.Errorf("%s: report headers on a problem: %v", q, e.last.Header)
		}
	}
	// The year is checked first.
	if p := e.rejected(call{method: "GET", path: "/v1/admin/reports/rights?year=1999&lang=fr", key: e.admin(), req: violates}, 422, "invalid-value"); p.Field != "year" {
		t.Errorf("field %q, want year", p.Field)
	}
}
