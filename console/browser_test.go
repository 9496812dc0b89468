package console_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/recguard/recguard/server"
)

// chromium finds a Chromium or Chrome binary on PATH (CHROMIUM names one
// explicitly), or skips the test saying how to get one.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium on PATH (chromium, chromium-browser, google-chrome): install it with `apt-get install chromium` " +
		"(.ci/run does) to run the console's end-to-end test")
	return ""
}

// screenshotDir is RECGUARD_SCREENSHOTS, else a temporary directory.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("RECGUARD_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	t.Logf("console screenshots in %s (set RECGUARD_SCREENSHOTS to keep them)", abs)
	return abs
}

// browser drives one headless Chromium tab.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string

	mu       sync.Mutex
	problems []string // exceptions, console errors, CSP violations
	shots    []string
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	bin := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // root in a container
		chromedp.Flag("headless", "new"),
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1280, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 100*time.Second)
	t.Cleanup(cancelT)
	b := &browser{t: t, ctx: ctx, base: base, dir: screenshotDir(t)}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	consoles := chromedp.Events(ctx, runtime.ConsoleAPICalled)
	logs := chromedp.Events(ctx, cdplog.EntryAdded)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			b.problem("exception: %s %v", ev.ExceptionDetails.Text, ev.ExceptionDetails.Exception)
		}
	}()
	go func() {
		for ev, err := range consoles {
			if err != nil {
				return
			}
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.problem("console.%s: %s", ev.Type, strings.Join(args, " "))
			}
		}
	}()
	go func() {
		for ev, err := range logs {
			if err != nil {
				return
			}
			// The console's own API errors (403 probes, a 422 segment)
			// are network entries; anything else at error level (a CSP
			// violation, a failed asset) is a fault.
			if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source != cdplog.EntrySourceNetwork {
				b.problem("log %s: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
			}
		}
	}()
	return b
}

func (b *browser) problem(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.fail(what, err)
	}
}

func (b *browser) fail(what string, err error) {
	b.t.Helper()
	html, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector("main") ? document.querySelector("main").innerText.slice(0, 1500) : document.body.innerText.slice(0, 1500)`))
	b.shot("failure")
	b.t.Fatalf("%s: %v\npage text:\n%s", what, err, html)
}

// eval evaluates a JavaScript expression in the page and decodes its value.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fail("evaluating "+expr, err)
	}
	return v
}

// waitFor waits until the expression is truthy.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		b.fail("waiting for "+what+" ("+expr+")", err)
	}
}

// text is the visible text of the element with this id.
func (b *browser) text(id string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.getElementById(%q) || {innerText: ""}).innerText`, id))
}

// typeInto replaces the value of the input with id by typing s, and
// checks the input then holds s.
func (b *browser) typeInto(id, s string) {
	b.t.Helper()
	b.retrying("typing into #"+id, func() error {
		err := chromedp.Do(b.ctx,
			chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById(%q).value = ""`, id)),
			chromedp.SendKeys(chromedp.ID(id), s))
		if err != nil {
			return err
		}
		if got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.getElementById(%q) || {value: ""}).value`, id))); err != nil || got != s {
			return fmt.Errorf("%w: the input holds %q after typing (%v)", errStaleNode, got, err)
		}
		return nil
	})
}

func (b *browser) click(id string) {
	b.t.Helper()
	b.retrying("clicking #"+id, func() error {
		return chromedp.Do(b.ctx, chromedp.Click(chromedp.ID(id), chromedp.NodeVisible))
	})
}

// errStaleNode marks a step that found its element replaced under it.
var errStaleNode = errors.New("the element was replaced")

// retrying runs step, again (at most 5 times, 100 ms apart) when the page
// replaced the element between finding it and acting on it: a page that
// renders twice (after a sign-out, a language switch) can swap an input
// for an equal new one while chromedp holds the old one's node ID
// ("Could not find node with given id"). Any other error fails at once.
func (b *browser) retrying(what string, step func() error) {
	b.t.Helper()
	var err error
	for range 5 {
		if err = step(); err == nil {
			return
		}
		if !errors.Is(err, errStaleNode) && !strings.Contains(err.Error(), "Could not find node with given id") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.fail(what, err)
}

// page opens a page of the console through its navigation and waits for
// the element wantID.
func (b *browser) page(name, wantID string) {
	b.t.Helper()
	b.click("nav-" + name)
	b.waitFor(name+" page", fmt.Sprintf(`document.querySelector("main").dataset.page === %q && document.getElementById(%q)`, name, wantID))
}

// setLang switches the console's language with its selector.
func (b *browser) setLang(lang string) {
	b.t.Helper()
	b.do("switching to "+lang, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const s = document.getElementById("lang"); s.value = %q; s.dispatchEvent(new Event("change")); })()`, lang)))
	b.waitFor("language "+lang, fmt.Sprintf(`document.documentElement.lang === %q`, lang))
}

// shot writes a full-page screenshot to the directory as console-<name>.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)); err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.dir, "console-"+name+".png")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	b.shots = append(b.shots, p)
}

// signIn signs in with key on the sign-in page and waits for the first page.
func (b *browser) signIn(key, firstPage string) {
	b.t.Helper()
	b.waitFor("the sign-in form", `document.getElementById("key")`)
	b.typeInto("key", key)
	b.click("signin")
	b.waitFor("the "+firstPage+" page", fmt.Sprintf(`document.querySelector("main") && document.querySelector("main").dataset.page === %q`, firstPage))
}

func (b *browser) signOut() {
	b.t.Helper()
	b.click("signout")
	b.waitFor("the sign-in form", `document.getElementById("key")`)
}

// keyStorage checks the key is in session storage only (and gone after
// sign-out when want is "").
func (b *browser) keyStorage(want string) {
	b.t.Helper()
	got := eval[string](b, `sessionStorage.getItem("recguard.console.key") || ""`)
	if got != want {
		b.t.Errorf("session storage holds key %q, want %q", got, want)
	}
	if n := eval[int](b, `localStorage.length`); n != 0 {
		b.t.Errorf("local storage holds %d items, want none", n)
	}
	if c := eval[string](b, `document.cookie`); c != "" {
		b.t.Errorf("document.cookie = %q, want none", c)
	}
}

// TestConsoleInBrowser drives the console in headless Chromium against
// the real server on the embedded store: sign in, change a setting with
// the preview and its confirmation, flip and lift the kill switch, count
// an audience, read the rights report and the history, look up a user
// with an app key and act for them, and run audits with an auditor key;
// each page is shot in English and Chinese. Every effect is checked
// through the API, and the page must raise no exception, console error or
// CSP violation.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the browser test takes about 10 s")
	}
	chromium(t)
	start := time.Now()
	rs := startServer(t)
	rs.seed(t)
	admin, app, auditor := rs.keys[server.RoleAdmin], rs.keys[server.RoleApp], rs.keys[server.RoleAuditor]
	// Rights requests for the Art. 44 report, through the API.
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"PUT", "/v1/users/henry/consent/personalization", map[string]any{"enabled": false}},
		{"PUT", "/v1/users/ivan/consent/channels/sms", map[string]any{"refused": true}},
		{"DELETE", "/v1/users/alice/tags/region:sh", nil},
		{"GET", "/v1/users/bob/receipts", nil},
		{"GET", "/v1/users/bob/export", nil},
		{"PUT", "/v1/users/henry/consent/personalization", map[string]any{"enabled": true}},
	} {
		if st := rs.api(t, app, c.method, c.path, c.body, nil); st >= 300 {
			t.Fatalf("%s %s: %d", c.method, c.path, st)
		}
	}

	b := newBrowser(t, rs.URL)
	b.do("opening /console", chromedp.Navigate(rs.URL+"/console"))
	b.waitFor("the console", `document.body.dataset.ready === "true"`)
	if loc := eval[string](b, `location.pathname`); loc != "/console/" {
		t.Errorf("/console went to %q, want /console/", loc)
	}
	if lang := eval[string](b, `document.documentElement.lang`); lang != "en" {
		t.Errorf("lang %q with an en-US browser, want en", lang)
	}
	b.shot("signin-en")

	// A wrong key is refused inline.
	b.typeInto("key", "rg_000000000000_nope")
	b.click("signin")
	b.waitFor("the sign-in error", `document.getElementById("key").getAttribute("aria-invalid") === "true"`)
	b.keyStorage("")

	// ---- admin, in English ----
	b.signIn(admin, "settings")
	b.keyStorage(admin)
	if got := b.text("role"); !strings.Contains(got, "admin") {
		t.Errorf("role shown %q", got)
	}
	for _, p := range []string{"settings", "suspension", "audience", "rights", "history", "api"} {
		if eval[bool](b, fmt.Sprintf(`!document.getElementById("nav-%s")`, p)) {
			t.Errorf("admin: no %s page in the navigation", p)
		}
	}
	if eval[bool](b, `!!document.getElementById("nav-users") || !!document.getElementById("nav-audits")`) {
		t.Error("admin: the navigation offers app or auditor pages")
	}

	// Settings: shorten the re-ask cooldown, a loosening change.
	b.waitFor("the settings form", `document.getElementById("s-reask")`)
	b.typeInto("s-reask", "480h")
	b.click("s-preview-btn")
	b.waitFor("the preview", `document.getElementById("s-diff")`)
	if d := b.text("s-diff"); !strings.Contains(d, "720h0m0s") || !strings.Contains(d, "480h0m0s") {
		t.Errorf("preview %q does not show 720h0m0s -> 480h0m0s", d)
	}
	if n := b.text("s-narrows"); !strings.Contains(n, "shortened") {
		t.Errorf("preview does not warn that the cooldown is shortened: %q", n)
	}
	b.shot("settings-en")
	// Cancelling the confirmation changes nothing.
	b.click("s-save")
	b.waitFor("the confirmation", `document.getElementById("confirm-dialog") && document.getElementById("confirm-dialog").open`)
	if l := b.text("confirm-list"); !strings.Contains(l, "480h0m0s") {
		t.Errorf("confirmation lists %q", l)
	}
	b.shot("settings-confirm-en")
	b.do("cancelling", chromedp.Click(chromedp.CSS("#confirm-dialog .actions button:first-child")))
	b.waitFor("the dialog to close", `!document.getElementById("confirm-dialog")`)
	var set struct {
		Version       int    `json:"version"`
		ReaskCooldown string `json:"reask_cooldown"`
		Suspended     bool   `json:"suspended"`
		SuspendReason string `json:"suspend_reason"`
		Channels      []string
	}
	rs.api(t, admin, "GET", "/v1/admin/settings", nil, &set)
	if set.ReaskCooldown != "720h0m0s" || set.Version != 1 {
		t.Fatalf("after a cancelled confirmation the settings are %+v", set)
	}
	b.click("s-save")
	b.waitFor("the confirmation", `document.getElementById("confirm-dialog") && document.getElementById("confirm-dialog").open`)
	b.click("dialog-ok")
	b.waitFor("the saved settings", `document.getElementById("s-result")`)
	rs.api(t, admin, "GET", "/v1/admin/settings", nil, &set)
	if set.ReaskCooldown != "480h0m0s" || set.Version != 2 {
		t.Fatalf("after the confirmed change the settings are %+v, want reask_cooldown 480h0m0s at version 2", set)
	}
	if r := b.text("s-result"); !strings.Contains(r, "480h0m0s") || !strings.Contains(r, "version 2") {
		t.Errorf("result %q", r)
	}

	// Kill switch: a wrong word changes nothing; SUSPEND with a reason flips it.
	b.page("suspension", "k-form")
	if st := eval[string](b, `document.getElementById("k-state").dataset.suspended`); st != "false" {
		t.Fatalf("kill switch shown as %s", st)
	}
	b.typeInto("k-reason", "order 17")
	b.typeInto("k-confirm", "suspend")
	b.click("k-submit")
	b.waitFor("the word error", `document.getElementById("k-confirm").getAttribute("aria-invalid") === "true"`)
	rs.api(t, admin, "GET", "/v1/admin/settings", nil, &set)
	if set.Suspended {
		t.Fatal("suspended without the typed word")
	}
	b.typeInto("k-confirm", "SUSPEND")
	b.click("k-submit")
	b.waitFor("the suspended state", `document.getElementById("k-state") && document.getElementById("k-state").dataset.suspended === "true"`)
	rs.api(t, admin, "GET", "/v1/admin/settings", nil, &set)
	if !set.Suspended || set.SuspendReason != "order 17" {
		t.Fatalf("after the flip the settings are %+v, want suspended for order 17", set)
	}
	var dec struct {
		Personalized bool   `json:"personalized"`
		Reason       string `json:"reason"`
	}
	rs.api(t, app, "GET", "/v1/users/alice/decision", nil, &dec)
	if dec.Personalized || dec.Reason != "suspended" {
		t.Errorf("decision while suspended: %+v", dec)
	}
	b.shot("suspension-en")
	b.typeInto("k-confirm", "RESUME")
	b.click("k-submit")
	b.waitFor("the running state", `document.getElementById("k-state") && document.getElementById("k-state").dataset.suspended === "false"`)
	rs.api(t, admin, "GET", "/v1/admin/settings", nil, &set)
	if set.Suspended {
		t.Fatal("still suspended after the lift")
	}

	// Audience: an inline parse error, then a count equal to the API's.
	b.page("audience", "a-segment")
	b.typeInto("a-segment", "interest:ski & (region:sh |")
	b.waitFor("the parse error", `document.getElementById("a-segment").getAttribute("aria-invalid") === "true" && document.querySelector("#a-segment-parse mark")`)
	if e := b.text("a-segment-error"); !strings.Contains(e, "invalid segment expression at") {
		t.Errorf("parse error shown %q", e)
	}
	b.shot("audience-error-en")
	segment := "interest:ski & !refused:sms"
	b.typeInto("a-segment", segment)
	b.waitFor("the count", `document.getElementById("a-segment").getAttribute("aria-invalid") === null && document.getElementById("a-count").dataset.count !== undefined`)
	var aud struct {
		Count int      `json:"count"`
		Users []string `json:"users"`
	}
	rs.api(t, admin, "GET", "/v1/admin/audience?limit=0&channel=push&targeted=true&segment="+url.QueryEscape(segment), nil, &aud)
	if got := eval[string](b, `document.getElementById("a-count").dataset.count`); got != fmt.Sprint(aud.Count) || aud.Count == 0 {
		t.Errorf("console counts %s, the API %d", got, aud.Count)
	}
	b.click("a-sample-btn")
	b.waitFor("the sample page", `document.getElementById("a-ids")`)
	if n := eval[int](b, `document.querySelectorAll("#a-ids li").length`); n != aud.Count {
		t.Errorf("sample page lists %d IDs, want %d", n, aud.Count)
	}
	b.shot("audience-en")

	// Rights report: the chart and the table hold the API's figures.
	b.page("rights", "r-year")
	b.waitFor("the report", `document.getElementById("r-table")`)
	var rep struct {
		Total int `json:"total"`
		Kinds []struct {
			Kind string `json:"kind"`
		} `json:"kinds"`
	}
	rs.api(t, admin, "GET", fmt.Sprintf("/v1/admin/reports/rights?year=%d", time.Now().UTC().Year()), nil, &rep)
	if n := eval[int](b, `document.querySelectorAll("#r-table tbody tr").length`); n != len(rep.Kinds) || n == 0 {
		t.Errorf("report table has %d rows, the API %d kinds", n, len(rep.Kinds))
	}
	if n := eval[int](b, `document.querySelectorAll("#r-chart rect").length`); n < len(rep.Kinds) {
		t.Errorf("chart has %d bars for %d kinds", n, len(rep.Kinds))
	}
	if tot := b.text("r-total"); !strings.Contains(tot, fmt.Sprint(rep.Total)) {
		t.Errorf("total shown %q, want %d", tot, rep.Total)
	}
	b.shot("rights-en")

	// History: the three settings changes, newest first.
	b.page("history", "h-table")
	if n := eval[int](b, `document.querySelectorAll("#h-table tbody tr").length`); n != 3 {
		t.Errorf("history lists %d changes, want 3", n)
	}
	if c := b.text("h-chain"); !strings.Contains(c, "verifies") {
		t.Errorf("history chain status %q", c)
	}
	b.shot("history-en")

	b.page("api", "x-list")
	b.waitFor("the operations", `document.querySelectorAll("#x-list details").length > 30`)
	b.shot("api-en")

	// ---- admin, in Chinese ----
	b.page("settings", "s-reask")
	b.setLang("zh-CN")
	if nav := b.text("nav-settings"); nav != "设置" {
		t.Errorf("settings in Chinese is %q", nav)
	}
	b.typeInto("s-channels", "email, in_app, push, sms, wechat")
	b.click("s-preview-btn")
	b.waitFor("the preview", `document.getElementById("s-diff")`)
	if eval[bool](b, `!!document.getElementById("s-narrows")`) {
		t.Error("adding a channel is shown as loosening")
	}
	b.shot("settings-zh")
	b.click("s-save") // no loosening: no confirmation
	b.waitFor("the saved settings", `document.getElementById("s-result")`)
	rs.api(t, admin, "GET", "/v1/admin/settings", nil, &set)
	if strings.Join(set.Channels, ",") != "email,in_app,push,sms,wechat" {
		t.Errorf("channels %v after adding wechat", set.Channels)
	}
	b.page("suspension", "k-form")
	b.typeInto("k-reason", "第17号指令")
	b.typeInto("k-confirm", "暂停")
	b.click("k-submit")
	b.waitFor("the suspended state", `document.getElementById("k-state").dataset.suspended === "true"`)
	rs.api(t, admin, "GET", "/v1/admin/settings", nil, &set)
	if !set.Suspended || set.SuspendReason != "第17号指令" {
		t.Fatalf("after the flip in Chinese the settings are %+v", set)
	}
	b.shot("suspension-zh")
	b.typeInto("k-confirm", "恢复")
	b.click("k-submit")
	b.waitFor("the running state", `document.getElementById("k-state").dataset.suspended === "false"`)
	rs.api(t, admin, "GET", "/v1/admin/settings", nil, &set)
	if set.Suspended {
		t.Fatal("still suspended after the lift in Chinese")
	}
	b.page("audience", "a-segment")
	b.waitFor("the count", `document.getElementById("a-count").dataset.count !== undefined`)
	b.click("a-sample-btn")
	b.waitFor("the sample page", `document.getElementById("a-ids")`)
	b.shot("audience-zh")
	b.page("rights", "r-year")
	b.waitFor("the report", `document.getElementById("r-table")`)
	b.shot("rights-zh")
	b.page("history", "h-table")
	b.shot("history-zh")
	b.page("api", "x-list")
	b.shot("api-zh")
	b.signOut()
	b.keyStorage("")
	b.shot("signin-zh")

	// ---- support staff with an app key (the language stays) ----
	b.signIn(app, "users")
	if eval[bool](b, `!!document.getElementById("nav-settings")`) {
		t.Error("app key: the navigation offers the settings")
	}
	b.typeInto("u-id", "carol")
	b.click("u-lookup")
	b.waitFor("the user", `document.getElementById("u-chain")`)
	if on := eval[string](b, `document.getElementById("u-personalization").dataset.on`); on != "false" {
		t.Errorf("carol's personalization shown on=%s, she turned it off", on)
	}
	if v := eval[string](b, `document.getElementById("u-chain").dataset.valid`); v != "true" {
		t.Errorf("carol's chain shown valid=%s", v)
	}
	if n := eval[int](b, `document.querySelectorAll("#u-tags tbody tr").length`); n != 2 {
		t.Errorf("carol has %d tags shown, want 2", n)
	}
	b.shot("users-zh")
	b.click("u-toggle-personalization")
	b.waitFor("the new state", `document.getElementById("u-personalization") && document.getElementById("u-personalization").dataset.on === "true"`)
	var cs struct {
		State map[string]any `json:"state"`
	}
	rs.api(t, app, "GET", "/v1/users/carol/consent", nil, &cs)
	if cs.State["personalization_off"] == true {
		t.Errorf("carol's personalization still off through the API: %v", cs.State)
	}
	b.setLang("en")
	b.waitFor("the user", `document.getElementById("u-chain")`)
	b.shot("users-en")
	b.signOut()

	// ---- auditor ----
	b.signIn(auditor, "audits")
	b.click("v-run")
	b.waitFor("the verification", `document.getElementById("v-done")`)
	if v := b.text("v-done"); !strings.Contains(v, "Verified") {
		t.Errorf("verification shows %q", v)
	}
	b.click("e-run")
	b.waitFor("the enforcement report", `document.getElementById("e-done")`)
	if n := eval[int](b, `document.querySelectorAll("#d-table tbody tr").length`); n != 1 {
		t.Errorf("report list has %d rows after one enforcement audit", n)
	}
	b.shot("audits-en")
	b.setLang("zh-CN")
	b.waitFor("the list", `document.getElementById("d-table")`)
	b.shot("audits-zh")
	b.signOut()

	// The key went nowhere but the Authorization header.
	for _, k := range []string{admin, app, auditor} {
		secret := k[strings.LastIndex(k, "_")+1:]
		for _, r := range rs.requests() {
			if strings.Contains(r.URL, secret) || strings.Contains(r.Referer, secret) || strings.Contains(r.Cookie, secret) {
				t.Errorf("a key's secret reached the server outside the Authorization header: %+v", r)
			}
		}
	}
	for _, r := range rs.requests() {
		if r.Referer != "" || r.Cookie != "" {
			t.Errorf("request %s %s sent Referer %q, Cookie %q", r.Method, r.URL, r.Referer, r.Cookie)
		}
		if strings.HasPrefix(r.URL, "/console") && r.Auth {
			t.Errorf("the key was sent for a console asset: %s", r.URL)
		}
	}
	b.mu.Lock()
	for _, p := range b.problems {
		t.Errorf("page: %s", p)
	}
	b.mu.Unlock()
	names := make([]string, len(b.shots))
	for i, p := range b.shots {
		names[i] = filepath.Base(p)
	}
	t.Logf("%d screenshots in %s: %s (%.1fs)", len(names), b.dir, strings.Join(names, ", "), time.Since(start).Seconds())

}
