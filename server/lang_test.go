package server_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/recguard/recguard/server"
)

// han matches a Chinese character.
var han = regexp.MustCompile(`\p{Han}`)

// checkReportLangs checks GET path (a kept audit or enforcement report)
// in each language: the HTML page's lang attribute and words, JSON and
// CSV unchanged by lang, an unknown lang 422 (field lang).
func checkReportLangs(t *testing.T, e *env, path string) {
	t.Helper()
	get := func(q string, header map[string]string) result {
		t.Helper()
		r := e.do(call{method: "GET", path: path + q, key: e.auditor(), header: header})
		want(t, r, 200)
		return r
	}
	html := map[string]string{}
	for _, c := range []struct {
		q      string
		header map[string]string
		lang   string
	}{
		{"?format=html", nil, "en"},
		{"?format=html&lang=en", nil, "en"},
		{"?format=html&lang=zh-CN", nil, "zh-CN"},
		{"?lang=zh-CN", map[string]string{"Accept": "text/html"}, "zh-CN"},
	} {
		r := get(c.q, c.header)
		page := string(r.Body)
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Fatalf("%s: Content-Type %q", c.q, ct)
		}
		if !strings.HasPrefix(page, "<!DOCTYPE html>") || !strings.Contains(page[:min(len(page), 200)], `<html lang="`+c.lang+`"`) {
			t.Errorf("%s: page starts %q, want lang %q", c.q, page[:min(len(page), 80)], c.lang)
		}
		if strings.Contains(page, "<script") {
			t.Errorf("%s: a script", c.q)
		}
		if csp := r.Header.Get("Content-Security-Policy"); csp != reportCSP {
			t.Errorf("%s: CSP %q", c.q, csp)
		}
		if c.lang == "zh-CN" && !han.MatchString(page) {
			t.Errorf("%s: no Chinese on the page", c.q)
		}
		html[c.lang] = page
	}
	if html["en"] == html["zh-CN"] {
		t.Error("the English and Chinese pages are the same")
	}
	// JSON and CSV ignore lang.
	for _, f := range []string{"json", "csv"} {
		a, b := get("?format="+f, nil), get("?format="+f+"&lang=zh-CN", nil)
		if string(a.Body) != string(b.Body) || a.Header.Get("Content-Type") != b.Header.Get("Content-Type") {
			t.Errorf("%s with lang=zh-CN differs", f)
		}
	}
	// An unknown lang: 422, field lang, whatever the format.
	for _, q := range []string{"?lang=fr", "?format=html&lang=zh", "?format=csv&lang=zh-Hans", "?format=json&lang=", "?format=html&lang=en-GB"} {
		p := e.rejected(call{method: "GET", path: path + q, key: e.auditor(), req: violates}, 422, "invalid-value")
		if p.Field != "lang" {
			t.Errorf("%s: field %q, want lang", q, p.Field)
		}
		if h := e.last.Header; h.Get("Content-Security-Policy") != "" || h.Get("Content-Disposition") != "" {
			t.Errorf("%s: report headers on a problem: %v", q, h)
		}
	}
	// Another letter case is accepted (not the document's spelling).
	r := e.do(call{method: "GET", path: path + "?format=html&lang=zh-cn", key: e.auditor(), req: violates})
	want(t, r, 200)
	if !strings.Contains(string(r.Body[:min(len(r.Body), 200)]), `<html lang="zh-CN"`) {
		t.Error("lang=zh-cn is not zh-CN")
	}
	// A bad format is still the format's fault.
	if p := e.rejected(call{method: "GET", path: path + "?format=pdf&lang=zh-CN", key: e.auditor(), req: violates}, 422, "invalid-value"); p.Field != "format" {
		t.Errorf("format=pdf: field %q", p.Field)
	}
}

// TestAuditReportLang: GET /v1/audits/{id} in English and Simplified
// Chinese.
func TestAuditReportLang(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.srv.MaxBody, c.srv.AuditMinGroupSize = 8<<20, 10 })
	events, users := synthAudit(t, 120, 3000)
	ar := e.postAudit(map[string]any{"spec": auditSpec, "events": events, "users": users})
	checkReportLangs(t, e, "/v1/audits/"+ar.ID)
}

// TestEnforcementReportLang: GET /v1/audits/enforcement/{id} in English
// and Simplified Chinese.
func TestEnforcementReportLang(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	want(t, e.do(call{method: "PUT", path: "/v1/users/otto/consent/personalization", key: e.app(), body: map[string]any{"enabled": false}}), 200)
	r := e.do(call{method: "POST", path: "/v1/audits/enforcement", key: e.auditor(), body: map[string]any{}})
	want(t, r, 201)
	checkReportLangs(t, e, "/v1/audits/enforcement/"+decode[server.EnforcementResponse](t, r).ID)
}
