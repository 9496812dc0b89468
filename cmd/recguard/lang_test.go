package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/recguard/recguard/store"
)

// checkZHPage checks a report page is the Chinese one: lang="zh-CN" and
// the words given.
func checkZHPage(t *testing.T, name, page string, words ...string) {
	t.Helper()
	if !strings.HasPrefix(page, "<!DOCTYPE html>") || !strings.Contains(page, `<html lang="zh-CN">`) {
		t.Errorf("%s: not a zh-CN page:\n%.300s", name, page)
	}
	for _, w := range words {
		if !strings.Contains(page, w) {
			t.Errorf("%s: the page lacks %q", name, w)
		}
	}
}

func TestReportLang(t *testing.T) {
	for in, want := range map[string]string{"en": "en", "EN": "en", "zh-CN": "zh-CN", "zh-cn": "zh-CN"} {
		if got, err := reportLang(in); err != nil || got != want {
			t.Errorf("reportLang(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "zh", "zh-TW", "fr", "cn"} {
		if _, err := reportLang(in); err == nil || !strings.Contains(err.Error(), "want en or zh-CN") {
			t.Errorf("reportLang(%q): %v", in, err)
		}
	}
}

func TestEnforcementLang(t *testing.T) {
	dir := enforcementStore(t, true)
	code, stdout, stderr := enforceRun(t, "--data", dir, "--format", "html", "--lang", "zh-CN")
	if code != enforceViolations {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	checkZHPage(t, "--lang zh-CN", stdout, "同意执行情况审计", "个性化推荐", "撤回个性化推荐同意后仍推送个性化内容 (personalized_after_opt_out)")
	if code, stdout, _ := enforceRun(t, "--data", dir, "--format", "html"); code != enforceViolations || !strings.Contains(stdout, `<html lang="en">`) {
		t.Errorf("default: exit %d, not English", code)
	}
	// The environment variable, and --lang ignored by JSON.
	out := filepath.Join(t.TempDir(), "report.html")
	if _, stderr, err := runCLIEnv(t, []string{"RECGUARD_LANG=zh-CN"}, "audit", "enforcement", "--data", dir, "--out", out); exitCode(err) != 1 {
		t.Fatalf("RECGUARD_LANG: exit %d\n%s", exitCode(err), stderr)
	}
	page, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	checkZHPage(t, "RECGUARD_LANG", string(page), "审计")
	if code, stdout, stderr := enforceRun(t, "--data", dir, "--format", "json", "--lang", "zh-CN"); code != enforceViolations || !json.Valid([]byte(stdout)) {
		t.Errorf("json with --lang: exit %d\n%s", code, stderr)
	}
	// A bad value: exit 2, no report.
	for _, env := range [][]string{nil, {"RECGUARD_LANG=fr"}} {
		args := []string{"audit", "enforcement", "--data", dir, "--out", out + ".bad.html"}
		if env == nil {
			args = append(args, "--lang", "fr")
		}
		if _, stderr, err := runCLIEnv(t, env, args...); exitCode(err) != 2 || !strings.Contains(stderr, `"fr": want en or zh-CN`) {
			t.Errorf("bad lang %v: exit %d\n%s", env, exitCode(err), stderr)
		}
	}
	if _, err := os.Stat(out + ".bad.html"); !os.IsNotExist(err) {
		t.Errorf("a report was written: %v", err)
	}
	if _, stderr, _ := runCLI(t, "audit", "enforcement", "--help"); !strings.Contains(stderr, "--lang") || !strings.Contains(stderr, "environment: RECGUARD_LANG") {
		t.Errorf("--help does not list --lang:\n%s", stderr)
	}
}

func TestVerifyLang(t *testing.T) {
	dir := verifyStore(t, 5)
	out := filepath.Join(t.TempDir(), "report.html")
	if _, stderr, err := runCLI(t, "verify", "--data", dir, "--out", out, "--lang", "zh-CN"); exitCode(err) != 0 {
		t.Fatalf("exit %d\n%s", exitCode(err), stderr)
	}
	page, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	checkZHPage(t, "verify", string(page), "合规校验", "全部校验通过。", "敏感个人信息用户标签未取得该类别的单独同意", "用户标签")
	for _, en := range []string{"Totals", "Users checked", "Broken receipt chains by kind", "Findings", "Everything verifies."} {
		if strings.Contains(string(page), en) {
			t.Errorf("the zh-CN page holds %q", en)
		}
	}
	if stdout, stderr, err := runCLI(t, "verify", "--data", dir, "--lang", "zh-CN"); exitCode(err) != 0 || !json.Valid([]byte(stdout)) {
		t.Errorf("json with --lang: exit %d\n%s", exitCode(err), stderr)
	}
	if _, stderr, err := runCLI(t, "verify", "--data", dir, "--format", "html", "--lang", "de"); exitCode(err) != 2 || !strings.Contains(stderr, `--lang "de": want en or zh-CN`) {
		t.Errorf("bad lang: exit %d\n%s", exitCode(err), stderr)
	}
	if _, stderr, _ := runCLI(t, "verify", "--help"); !strings.Contains(stderr, "environment: RECGUARD_LANG") {
		t.Errorf("--help does not list --lang:\n%s", stderr)
	}
}

func TestAuditLang(t *testing.T) {
	t.Parallel()
	dir, spec, events, users := auditFixture(t)
	base := []string{"--spec", spec, "--events", events, "--users", users}
	stdout, stderr, err := runAudit(t, append(base, "--format", "html", "--lang", "zh-CN")...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	checkZHPage(t, "audit", stdout, "审计", "显著", "参照组")
	if stdout, _, err := runAudit(t, append(base, "--format", "html")...); err != nil || !strings.Contains(stdout, `<html lang="en">`) {
		t.Errorf("default: %v, not English", err)
	}
	if stdout, _, err := runAudit(t, append(base, "--format", "json", "--lang", "zh-CN")...); err != nil || !json.Valid([]byte(stdout)) {
		t.Errorf("json with --lang: %v", err)
	}
	_, _, err = runAudit(t, append(base, "--format", "html", "--lang", "jp")...)
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), `--lang "jp": want en or zh-CN`) {
		t.Errorf("bad lang: %v, want a usage error", err)
	}
	out := filepath.Join(dir, "bad.html")
	if _, stderr, err := runCLI(t, append([]string{"audit", "--out", out, "--lang", "jp"}, base...)...); exitCode(err) != 2 || !strings.Contains(stderr, "want en or zh-CN") {
		t.Errorf("bad lang: exit %d\n%s", exitCode(err), stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a report was written: %v", err)
	}
	if _, stderr, _ := runCLI(t, "audit", "--help"); !strings.Contains(stderr, "environment: RECGUARD_LANG") {
		t.Errorf("--help does not list --lang:\n%s", stderr)
	}
}

// TestVerifyHTMLLang: the Chinese verification page escapes what it
// shows, loads nothing, translates its headings and the known hints,
// and keeps the English page as it was; an unknown language is an error.
func TestVerifyHTMLLang(t *testing.T) {
	rep := &store.VerifyReport{Complete: true, Retention: "26280h0m0s", PurgeGrace: "24h0m0s", Users: 3, FindingsTotal: 2,
		BrokenByKind: map[store.FindingKind]int64{store.FindingEdited: 1},
		Findings:     []store.Finding{{UserID: "<img src=x onerror=alert(1)>", Kind: store.FindingEdited, Detail: "<script>x</script>"}, {Kind: store.FindingSettingsChain, Detail: "d"}},
		Hints:        []string{"receipts past their retention are kept: is the periodic purge (recguard serve runs it hourly) running?"}}
	var en, zh bytes.Buffer
	if err := writeVerifyHTML(&en, rep, "en"); err != nil {
		t.Fatal(err)
	}
	if err := writeVerifyHTML(&zh, rep, "zh-CN"); err != nil {
		t.Fatal(err)
	}
	page := zh.String()
	checkZHPage(t, "verify", page, "发现 2 个问题。", "回执保存期限 1095 天", "定期清除", "（设置）", "回执被篡改或伪造")
	if strings.Contains(page, "<img") || strings.Contains(page, "<script") || !strings.Contains(page, "&lt;img src=x") || strings.Contains(page, "://") {
		t.Error("the page is not escaped or not self-contained")
	}
	for _, h := range regexp.MustCompile(`<(?:h1|h2|th)>([^<]+)</`).FindAllStringSubmatch(en.String(), -1) {
		if strings.Contains(page, ">"+h[1]+"<") {
			t.Errorf("the zh-CN page holds the English %q", h[1])
		}
	}
	if err := writeVerifyHTML(&en, rep, "fr"); err == nil {
		t.Error("fr: no error")
	}
}
