package console_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/recguard/recguard/console"
)

var wantAssets = []string{"index.html", "app.js", "api.js", "dom.js", "settings.js", "app.css", "i18n.json"}

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// strict checks the headers every console answer carries.
func strict(t *testing.T, what string, w *httptest.ResponseRecorder) {
	t.Helper()
	h := w.Result().Header
	if got := h.Get("Content-Security-Policy"); got != "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'" {
		t.Errorf("%s: Content-Security-Policy %q", what, got)
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q", what, got)
	}
	if got := h.Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("%s: Referrer-Policy %q", what, got)
	}
	if got := h.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("%s: X-Frame-Options %q", what, got)
	}
	if h.Get("Cache-Control") == "" {
		t.Errorf("%s: no Cache-Control", what)
	}
}

// TestAssets: every asset is embedded and served with its type, the strict
// headers and an ETag that revalidates; / is index.html; /console
// redirects to /console/.
func TestAssets(t *testing.T) {
	h := console.Handler()
	names := console.Assets()
	for _, n := range wantAssets {
		if !slices.Contains(names, n) {
			t.Errorf("%s is not embedded (embedded: %v)", n, names)
		}
	}
	types := map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8", ".json": "application/json; charset=utf-8"}
	for _, n := range names {
		w := get(t, h, "GET", "/console/"+n, nil)
		if w.Code != 200 {
			t.Errorf("GET /console/%s: %d", n, w.Code)
			continue
		}
		strict(t, n, w)
		body, _ := console.Asset(n)
		if w.Body.String() != string(body) {
			t.Errorf("GET /console/%s does not answer the embedded file", n)
		}
		ext := n[strings.LastIndex(n, "."):]
		if got := w.Header().Get("Content-Type"); got != types[ext] {
			t.Errorf("%s: Content-Type %q, want %q", n, got, types[ext])
		}
		if got := w.Header().Get("Cache-Control"); got != "no-cache" {
			t.Errorf("%s: Cache-Control %q, want no-cache (revalidate: an upgrade must not mix old and new files)", n, got)
		}
		etag := w.Header().Get("ETag")
		if etag == "" {
			t.Errorf("%s: no ETag", n)
			continue
		}
		if w2 := get(t, h, "GET", "/console/"+n, map[string]string{"If-None-Match": etag}); w2.Code != http.StatusNotModified {
			t.Errorf("%s with its ETag: %d, want 304", n, w2.Code)
		}
		if w3 := get(t, h, "HEAD", "/console/"+n, nil); w3.Code != 200 || w3.Body.Len() != 0 {
			t.Errorf("HEAD /console/%s: %d with %d bytes", n, w3.Code, w3.Body.Len())
		}
	}
	w := get(t, h, "GET", "/console/", nil)
	index, _ := console.Asset("index.html")
	if w.Code != 200 || w.Body.String() != string(index) {
		t.Errorf("GET /console/: %d, index.html: %v", w.Code, w.Body.String() == string(index))
	}
	strict(t, "/console/", w)
	w = get(t, h, "GET", "/console", nil)
	if w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != "/console/" {
		t.Errorf("GET /console: %d to %q, want 301 to /console/", w.Code, w.Header().Get("Location"))
	}
	strict(t, "/console", w)
}

// TestNotFound: anything but an embedded file is 404 (no directory
// listing, no path out of the assets), and only GET and HEAD are allowed.
func TestNotFound(t *testing.T) {
	h := console.Handler()
	for _, p := range []string{"/console/nope.js", "/console/assets/app.js", "/console/../go.mod", "/console/%2e%2e/console.go",
		"/console/app.js/", "/console/.", "/console//app.js", "/consoleX", "/", "/v1/admin/settings"} {
		w := get(t, h, "GET", p, nil)
		if w.Code != 404 {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		}
		strict(t, p, w)
		if strings.Contains(w.Body.String(), "<") {
			t.Errorf("GET %s: the 404 body is markup: %q", p, w.Body.String())
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		w := get(t, h, m, "/console/", nil)
		if w.Code != 405 || w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /console/: %d, Allow %q", m, w.Code, w.Header().Get("Allow"))
		}
		strict(t, m, w)
	}
	if console.Owns("/consoles") || !console.Owns("/console") || !console.Owns("/console/x") || console.Owns("/v1/console") {
		t.Error("Owns claims the wrong paths")
	}
}

// TestNoExternalOrInline: no asset names another origin (the API explorer
// reads /openapi.json, same origin), loads a script or style inline (the
// CSP forbids them), parses markup from strings, or keeps anything outside
// sessionStorage.
func TestNoExternalOrInline(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	for _, n := range console.Assets() {
		b, _ := console.Asset(n)
		s := string(b)
		// The SVG namespace is a name, never fetched.
		for _, m := range external.FindAllString(strings.ReplaceAll(s, `"http://www.w3.org/2000/svg"`, ""), -1) {
			t.Errorf("%s names another origin: %q", n, m)
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
			"localStorage.", "document.cookie", "setAttribute(\"style\"", "style=", "<style", "javascript:", "@import"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s uses %q", n, bad)
			}
		}
	}
	index, _ := console.Asset("index.html")
	scripts := regexp.MustCompile(`<script[^>]*>`).FindAllString(string(index), -1)
	if len(scripts) != 1 || !strings.Contains(scripts[0], `src="app.js"`) {
		t.Errorf("index.html scripts %v, want only <script type=module src=app.js>", scripts)
	}
	if regexp.MustCompile(`<script[^>]*>[^<]+</script>`).Match(index) {
		t.Error("index.html has an inline script")
	}
	if regexp.MustCompile(`\son[a-z]+=`).Match(index) {
		t.Error("index.html has an inline event handler")
	}
	api, _ := console.Asset("api.js")
	if !strings.Contains(string(api), `sessionStorage.setItem(KEY, key)`) || !strings.Contains(string(api), `credentials: "omit"`) {
		t.Error("api.js no longer keeps the key in sessionStorage or no longer omits credentials")
	}
}

// TestStrings: Chinese and English hold the same strings, none empty but
// the ones meant to be, and every key the code names exists.
func TestStrings(t *testing.T) {
	b, _ := console.Asset("i18n.json")
	var all map[string]map[string]string
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	en, zh := all["en"], all["zh-CN"]
	if len(all) != 2 || len(en) < 300 || len(zh) < 300 {
		t.Fatalf("i18n.json has languages %d, en %d strings, zh-CN %d", len(all), len(en), len(zh))
	}
	for k, v := range en {
		z, ok := zh[k]
		if !ok {
			t.Errorf("%s: no Chinese", k)
		}
		if (v == "") != (z == "") {
			t.Errorf("%s: en %q, zh-CN %q", k, v, z)
		}
		if v != "" && v == z && !strings.HasPrefix(k, "audits.dl.") && k != "audits.col.id" {
			t.Errorf("%s: not translated: %q", k, z)
		}
		if strings.Count(v, "{") != strings.Count(z, "{") {
			t.Errorf("%s: placeholders differ: %q / %q", k, v, z)
		}
	}
	for k := range zh {
		if _, ok := en[k]; !ok {
			t.Errorf("%s: no English", k)
		}
	}
	// Legal terms as the Regulations' Chinese text has them.
	for k, term := range map[string]string{"users.personalization": "个性化推荐", "users.tags": "用户标签",
		"users.minor": "不满十四周岁", "users.sensitive": "敏感个人信息", "kind.restrict": "限制处理", "page.audits": "第四十六条"} {
		if !strings.Contains(zh[k], term) {
			t.Errorf("%s = %q, want the term %q", k, zh[k], term)
		}
	}
	prefixes := map[string]bool{}
	for k := range en {
		prefixes[k[:strings.Index(k, ".")]] = true
	}
	lit := regexp.MustCompile(`"([a-z]+)\.([A-Za-z_.]*[A-Za-z_])"`)
	for _, n := range []string{"app.js", "settings.js"} {
		src, _ := console.Asset(n)
		for _, m := range lit.FindAllStringSubmatch(string(src), -1) {
			if !prefixes[m[1]] {
				continue // not a string key (a file name, a storage key)
			}
			if _, ok := en[m[0][1:len(m[0])-1]]; !ok && !strings.HasPrefix(m[0], `"recguard.`) {
				t.Errorf("%s names the string %s, which i18n.json lacks", n, m[0])
			}
		}
	}
	// Keys built at run time.
	dyn := map[string][]string{
		"page":   {"settings", "suspension", "audience", "rights", "history", "users", "audits", "api"},
		"role":   {"admin", "app", "auditor"},
		"kind":   {"access", "copy", "correct", "delete", "withdraw", "portability", "refuse_push", "opt_out", "consent", "restrict", "erase"},
		"op":     {"set_personalization", "set_channel", "set_sensitive", "set_minor", "set_guardian", "declare_tag", "infer_tag", "delete_tag", "restrict", "correct_tag", "erase", "set_settings"},
		"cat":    {"biometrics", "religion", "specific_identity", "medical_health", "financial_account", "whereabouts"},
		"actor":  {"user", "guardian", "admin", "system"},
		"source": {"declared", "inferred"},
		"ns":     {"ordinary", "prohibited", "sensitive"},
		"rights": {"kind", "requests", "fulfilled", "rejected", "failed", "median", "p95"},
	}
	for p, vs := range dyn {
		for _, v := range vs {
			if _, ok := en[p+"."+v]; !ok {
				t.Errorf("no string %s.%s", p, v)
			}
		}
	}
}

// TestServedByServer: the server serves the console at /console without
// a key, beside the API, whose routes and problems are unchanged.
func TestServedByServer(t *testing.T) {
	rs := startServer(t)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Get(rs.URL + "/console")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 301 || res.Header.Get("Location") != "/console/" {
		t.Errorf("GET /console: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	for _, p := range []string{"/console/", "/console/app.js"} {
		res, err := c.Get(rs.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") ||
			res.Header.Get("X-Request-Id") == "" {
			t.Errorf("GET %s: %d, CSP %q, request ID %q", p, res.StatusCode, res.Header.Get("Content-Security-Policy"), res.Header.Get("X-Request-Id"))
		}
	}
	res, err = c.Get(rs.URL + "/console/nope")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 || res.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("GET /console/nope: %d", res.StatusCode)
	}
	// The API around it is unchanged: its 404 is still a problem, and a
	// /v1 route still needs a key.
	res, err = c.Get(rs.URL + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 || res.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("GET /nope: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if st := rs.api(t, "", "GET", "/v1/admin/settings", nil, nil); st != 401 {
		t.Errorf("GET /v1/admin/settings without a key: %d", st)
	}
}
