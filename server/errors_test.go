package server_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

// writes lists one valid write per write route, for user u.
func writes(e *env, u string) []call {
	set, err := e.mem.Settings(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	U := "/v1/users/" + u
	return []call{
		{method: "PUT", path: U + "/consent/personalization", key: e.app(), body: map[string]any{"enabled": false}},
		{method: "PUT", path: U + "/consent/channels/sms", key: e.app(), body: map[string]any{"refused": true}},
		{method: "PUT", path: U + "/consent/sensitive/religion", key: e.app(), body: map[string]any{"granted": true, "purpose": "personalization"}},
		{method: "POST", path: U + "/tags", key: e.app(), body: map[string]any{"tag": "interest:ski", "source": "declared"}},
		{method: "DELETE", path: U + "/tags/interest:golf", key: e.app()},
		{method: "DELETE", path: U, key: e.app()},
		{method: "PUT", path: "/v1/admin/settings", key: e.admin(), body: settingsDoc(e.t, set)},
		{method: "PUT", path: "/v1/admin/suspension", key: e.admin(), body: map[string]any{"suspended": true, "reason": "order 1"}},
		{method: "PATCH", path: "/v1/admin/settings", key: e.admin(), ctype: mergePatch, body: map[string]any{"version": set.Version, "channels": []string{"email", "push", "sms"}}},
		{method: "PUT", path: U + "/minor", key: e.app(), body: map[string]any{"minor": true, "ref": "age-check-1"}},
		{method: "PUT", path: U + "/consent/guardian", key: e.app(), body: map[string]any{"granted": false}},
	}
}

// TestUnauthenticated: no key, a malformed key, an unknown key, a wrong
// secret and a revoked key are 401 on every /v1 route, and change nothing.
func TestUnauthenticated(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	e := newEnv(t, func(c *envConfig) { c.srv.KeyCacheTTL, c.srv.Now = 30*time.Second, clock.Now })
	const u = "u1"
	app := e.app()
	id, secret, _ := strings.Cut(strings.TrimPrefix(app, "rg_"), "_")
	// The wrong secret differs from the real one in its first character,
	// certainly (a fixed replacement would equal it 1 time in 64).
	wrong := "x"
	if secret[0] == 'x' {
		wrong = "y"
	}
	badKeys := map[string]string{
		"none":         "",
		"not rg_":      "sk_" + id + "_" + secret,
		"short id":     "rg_abc_" + secret,
		"unknown id":   "rg_0123456789ab_" + secret,
		"wrong secret": "rg_" + id + "_" + wrong + secret[1:],
		"long secret":  "rg_" + id + "_" + strings.Repeat("a", 65),
	}
	if badKeys["wrong secret"] == app {
		t.Fatal("the wrong secret is the right one")
	}
	for name, key := range badKeys {
		for _, c := range append(writes(e, u), call{method: "GET", path: "/v1/users/u1/decision"}, call{method: "GET", path: "/v1/admin/settings"}) {
			c.key = key
			if key == "" {
				c.req = violates // the document requires the bearer scheme
			}
			e.rejected(c, 401, "unauthenticated", u)
			if ah := e.last.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ah, `Bearer realm="recguard"`) ||
				(key != "") != strings.Contains(ah, `error="invalid_token"`) {
				t.Errorf("%s: WWW-Authenticate %q", name, ah)
			}
		}
	}
	// "Authorization: Bearer" with nothing after it, and another scheme.
	e.rejected(call{method: "GET", path: "/v1/users/u1/consent", header: map[string]string{"Authorization": "Bearer "}, req: violates}, 401, "unauthenticated", u)
	e.rejected(call{method: "GET", path: "/v1/users/u1/consent", header: map[string]string{"Authorization": "Basic " + app}, req: violates}, 401, "unauthenticated", u)

	// A revoked key works until the key cache TTL is over (on the
	// server's clock), and not a moment after.
	want(t, e.do(call{method: "GET", path: "/v1/users/u1/decision", key: app}), 200)
	if err := server.RevokeKey(e.ctx, e.mem, e.keyIDs[server.RoleApp], time.Now()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(29 * time.Second)
	want(t, e.do(call{method: "GET", path: "/v1/users/u1/decision", key: app}), 200) // cached
	clock.Advance(time.Second)
	wantProblem(t, e.do(call{method: "GET", path: "/v1/users/u1/decision", key: app}), 401, "unauthenticated")
	for _, c := range writes(e, u)[:6] {
		e.rejected(c, 401, "unauthenticated", u)
	}
	// The other keys still work.
	want(t, e.do(call{method: "GET", path: "/v1/admin/settings", key: e.admin()}), 200)
}

// route is one operation with a valid request and the role it admits.
type route struct {
	c    call
	role server.Role
	ok   int
}

func allRoutes(e *env, u, auditID string) []route {
	U := "/v1/users/" + u
	set, err := e.mem.Settings(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return []route{
		{call{method: "GET", path: U + "/decision"}, server.RoleApp, 200},
		{call{method: "GET", path: U + "/can-push?channel=push&targeted=false"}, server.RoleApp, 200},
		{call{method: "GET", path: U + "/should-ask?kind=personalization"}, server.RoleApp, 200},
		// An adult stays one (a minor would change what the routes below answer).
		{call{method: "PUT", path: U + "/minor", body: map[string]any{"minor": false, "by": "user"}}, server.RoleApp, 200},
		{call{method: "PUT", path: U + "/consent/guardian", body: map[string]any{"granted": false}}, server.RoleApp, 200},
		{call{method: "GET", path: U + "/consent"}, server.RoleApp, 200},
		{call{method: "PUT", path: U + "/consent/personalization", body: map[string]any{"enabled": true}}, server.RoleApp, 200},
		{call{method: "PUT", path: U + "/consent/channels/email", body: map[string]any{"refused": false}}, server.RoleApp, 200},
		{call{method: "PUT", path: U + "/consent/sensitive/whereabouts", body: map[string]any{"granted": false}}, server.RoleApp, 200},
		{call{method: "GET", path: U + "/tags"}, server.RoleApp, 200},
		{call{method: "POST", path: U + "/tags", body: map[string]any{"tag": "interest:chess", "source": "declared"}}, server.RoleApp, 201},
		{call{method: "DELETE", path: U + "/tags/interest:golf"}, server.RoleApp, 200},
		{call{method: "GET", path: U + "/receipts"}, server.RoleApp, 200},
		{call{method: "GET", path: U + "/export", header: verified}, server.RoleApp, 200},
		{call{method: "PUT", path: U + "/restriction", body: map[string]any{"restricted": false}}, server.RoleApp, 200},
		{call{method: "POST", path: U + "/tags/interest:chess/correct", body: map[string]any{"replacement": "interest:go"}}, server.RoleApp, 200},
		{call{method: "DELETE", path: U}, server.RoleApp, 200},
		{call{method: "POST", path: "/v1/events", body: map[string]any{"events": []map[string]any{
			{"user": u, "item": "i1", "time": "2026-01-02T03:04:05Z", "mode": "personalized"}}}}, server.RoleApp, 202},
		{call{method: "GET", path: "/v1/admin/settings"}, server.RoleAdmin, 200},
		{call{method: "PUT", path: "/v1/admin/settings", body: settingsDoc(e.t, set)}, server.RoleAdmin, 200},
		// After the PUT above (which makes the next version), as admin.
		{call{method: "PATCH", path: "/v1/admin/settings", ctype: mergePatch, body: map[string]any{"version": set.Version + 1}}, server.RoleAdmin, 200},
		{call{method: "GET", path: "/v1/admin/settings/history"}, server.RoleAdmin, 200},
		{call{method: "PUT", path: "/v1/admin/suspension", body: map[string]any{"suspended": false}}, server.RoleAdmin, 200},
		{call{method: "GET", path: "/v1/admin/audience?segment=*&channel=push"}, server.RoleAdmin, 200},
		{call{method: "GET", path: fmt.Sprintf("/v1/admin/reports/rights?year=%d", time.Now().UTC().Year())}, server.RoleAdmin, 200},
		{call{method: "POST", path: "/v1/audits", body: auditBody}, server.RoleAuditor, 201},
		{call{method: "GET", path: "/v1/audits/" + auditID}, server.RoleAuditor, 200},
		{call{method: "GET", path: "/v1/audit/users/" + u + "/receipts"}, server.RoleAuditor, 200},
		{call{method: "POST", path: "/v1/audits/verification?max_findings=5"}, server.RoleAuditor, 200},
		{call{method: "GET", path: "/v1/audits/consent-timeline?bucket=24h"}, server.RoleAuditor, 200},
		{call{method: "POST", path: "/v1/audits/enforcement", body: map[string]any{"allowance": "1s"}}, server.RoleAuditor, 201},
		// An id no POST answered: the route is reached, the report is not kept.
		{call{method: "GET", path: "/v1/audits/enforcement/" + strings.Repeat("0", 32)}, server.RoleAuditor, 404},
		{call{method: "POST", path: "/v1/admin/keys", body: map[string]any{"role": "app", "name": "matrix"}}, server.RoleAdmin, 201},
		{call{method: "GET", path: "/v1/admin/keys"}, server.RoleAdmin, 200},
		// A key made for this line (each call of allRoutes makes one).
		{call{method: "DELETE", path: "/v1/admin/keys/" + matrixKey(e)}, server.RoleAdmin, 200},
	}
}

// matrixKey makes an app key for the role matrix's revocation and returns
// its ID.
func matrixKey(e *env) string {
	_, k, err := server.NewKey(e.ctx, e.st.(store.KeyStore), server.RoleApp, "matrix revoke", time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return k.ID
}

// routeMatches reports whether a request path (its query cut off) fits a
// gin route template (":name" matches one segment, "*name" the rest).
func routeMatches(template, path string) bool {
	path, _, _ = strings.Cut(path, "?")
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	for i, seg := range ts {
		if strings.HasPrefix(seg, "*") {
			return true
		}
		if i >= len(ps) || (!strings.HasPrefix(seg, ":") && seg != ps[i]) || (strings.HasPrefix(seg, ":") && ps[i] == "") {
			return false
		}
	}
	return len(ts) == len(ps)
}

// auditBody is a small valid POST /v1/audits body.
var auditBody = map[string]any{
	"spec":   map[string]any{"groups": []map[string]string{{"name": "all", "segment": "*"}}, "reference": "all"},
	"events": []map[string]any{{"user": "u1", "item": "i1", "time": "2026-01-02T03:04:05Z", "mode": "personalized", "clicked": true}},
}

// TestRoleMatrix: each role against each /v1 route is 2xx or 403 exactly
// as routes() says (app: users and events; admin: admin; auditor: audits),
// and a 403 changes nothing. The routes are those the server registers:
// one it registers that allRoutes does not list fails the test, so a new
// route cannot be left out of the matrix.
func TestRoleMatrix(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const u = "matrix"
	ar := e.postAudit(auditBody)
	engine, ok := e.srv.Handler().(*gin.Engine)
	if !ok {
		t.Fatalf("Handler is a %T, not a *gin.Engine", e.srv.Handler())
	}
	listed := allRoutes(e, u, ar.ID)
	n := 0
	for _, ri := range engine.Routes() {
		if !strings.HasPrefix(ri.Path, "/v1/") {
			continue // public: /healthz, /readyz, /metrics, /openapi.json
		}
		n++
		found := false
		for _, rt := range listed {
			found = found || rt.c.method == ri.Method && routeMatches(ri.Path, rt.c.path)
		}
		if !found {
			t.Errorf("%s %s is registered but not in allRoutes: add it to the role matrix", ri.Method, ri.Path)
		}
	}
	if n != len(listed) {
		t.Errorf("%d /v1 routes registered, %d in allRoutes", n, len(listed))
	}
	for _, role := range []server.Role{server.RoleApp, server.RoleAdmin, server.RoleAuditor} {
		for _, rt := range allRoutes(e, u, ar.ID) {
			c := rt.c
			c.key = e.keys[role]
			if role == rt.role {
				r := e.do(c)
				if r.Status != rt.ok {
					t.Errorf("%s %s as %s: %s, want %d", c.method, c.path, role, r, rt.ok)
				}
				continue
			}
			p := e.rejected(c, 403, "forbidden", u)
			if !strings.Contains(p.Detail, string(role)) {
				t.Errorf("403 detail %q does not name the role", p.Detail)
			}
		}
	}
}

// TestNoRoute: unknown paths are 404 and known paths with another method
// 405, both as problems (validated against the document's NotFound and
// MethodNotAllowed responses).
func TestNoRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{"/", "/nope", "/v1", "/v1/nope", "/v1/users/u1/nope", "/v1/admin/nope", "/v2/users/u1/decision", "/v1/users/u1/tags/a:b/c"} {
		for _, key := range []string{"", e.app(), e.admin()} {
			p := wantProblem(t, e.do(call{method: "GET", path: path, key: key, noRoute: true}), 404, "not-found")
			if !strings.Contains(p.Detail, path) {
				t.Errorf("404 detail %q", p.Detail)
			}
		}
	}
	for _, c := range []call{
		{method: "POST", path: "/v1/users/u1/decision"},
		{method: "DELETE", path: "/v1/users/u1/consent"},
		{method: "GET", path: "/v1/users/u1/consent/personalization"},
		{method: "DELETE", path: "/v1/admin/settings"},
		{method: "PATCH", path: "/v1/admin/settings/history"},
		{method: "POST", path: "/v1/users/u1/should-ask"},
		{method: "POST", path: "/healthz"},
	} {
		c.key, c.noRoute = e.app(), true
		wantProblem(t, e.do(c), 405, "not-allowed")
	}
}

// TestMalformedBodies: bodies that are not valid JSON for the route are
// 400 on every route with a body, and change nothing.
func TestMalformedBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const u = "u1"
	for _, c := range writes(e, u) {
		if c.body == nil {
			continue
		}
		bodies := []struct {
			body  string
			field string
			req   conformance
		}{
			{`{"enabled":`, "", violates},
			{`{`, "", violates},
			{`not json`, "", violates},
			{``, "", violates},
			{`[]`, "", violates},
			{`"x"`, "", violates},
			{`{"bogus":true}`, "", violates},
			{`{} {}`, "", maybeViolate},
			{`{}x`, "", maybeViolate},
		}
		for _, b := range bodies {
			c := c
			c.body, c.req = b.body, b.req
			p := e.rejected(c, 400, "malformed-request", u)
			if p.Field != b.field {
				t.Errorf("%s %s %q: field %q", c.method, c.path, b.body, p.Field)
			}
		}
	}
	// A wrong type names the field.
	for _, tc := range []struct {
		path, body, field string
	}{
		{"/v1/users/u1/consent/personalization", `{"enabled":"yes"}`, "enabled"},
		{"/v1/users/u1/consent/channels/sms", `{"refused":1}`, "refused"},
		{"/v1/users/u1/consent/sensitive/religion", `{"granted":true,"by_guardian":"no"}`, "by_guardian"},
		{"/v1/users/u1/tags", `{"tag":7}`, "tag"},
		{"/v1/admin/settings", `{"version":"1"}`, "version"},
		{"/v1/admin/settings", `{"version":1,"retention":"3y"}`, "retention"}, // consent.Settings.UnmarshalJSON names the field
		{"/v1/admin/settings", `{"version":1,"retention":true}`, "retention"},
		{"/v1/admin/suspension", `{"suspended":"true"}`, "suspended"},
	} {
		method, key := "PUT", e.app()
		if tc.path == "/v1/users/u1/tags" {
			method = "POST"
		}
		if strings.HasPrefix(tc.path, "/v1/admin/") {
			key = e.admin()
		}
		p := e.rejected(call{method: method, path: tc.path, key: key, body: tc.body, req: violates}, 400, "malformed-request", u)
		if p.Field != tc.field {
			t.Errorf("%s %s: field %q, want %q", tc.path, tc.body, p.Field, tc.field)
		}
	}
	// Unknown fields nested in the settings too.
	set, _ := e.mem.Settings(e.ctx)
	body := fmt.Sprintf(`{"version":%d,"channels":["sms"],"taxonomy":{"health":{"sensitive":"medical_health","color":"red"}}}`, set.Version)
	e.rejected(call{method: "PUT", path: "/v1/admin/settings", key: e.admin(), body: body, req: violates}, 400, "malformed-request", u)
}

// TestBodyTooLarge: a body over Config.MaxBody is 413 and changes nothing,
// also when the JSON value itself fits and the rest is whitespace.
func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.srv.MaxBody = 128 })
	const u = "u1"
	for _, c := range writes(e, u) {
		if c.body == nil {
			continue
		}
		if c.path == "/v1/admin/settings" {
			c.body = `{"version":1,"channels":["` + strings.Repeat("a", 200) + `"]}`
		} else {
			c.body = `{"surface":"` + strings.Repeat("a", 200) + `"}`
		}
		c.req = violates
		e.rejected(c, 413, "body-too-large", u)
	}
	// The value fits the limit; the whitespace after it does not.
	padded := `{"enabled":false}` + strings.Repeat(" ", 300)
	e.rejected(call{method: "PUT", path: "/v1/users/u1/consent/personalization", key: e.app(), body: padded}, 413, "body-too-large", u)
	// Exactly at the limit is fine.
	exact := `{"enabled":false}`
	exact += strings.Repeat(" ", 128-len(exact))
	want(t, e.do(call{method: "PUT", path: "/v1/users/u1/consent/personalization", key: e.app(), body: exact}), 200)
}

// TestUnsupportedMediaType: a body not sent as application/json is 415.
func TestUnsupportedMediaType(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const u = "u1"
	for _, c := range writes(e, u) {
		if c.body == nil {
			continue
		}
		for _, ct := range []string{"text/plain", "-", "application/x-www-form-urlencoded", "application/jsonx", "application/problem+json"} {
			c := c
			c.ctype, c.req = ct, violates
			e.rejected(c, 415, "unsupported-media-type", u)
		}
	}
	// Parameters are fine.
	r := e.do(call{method: "PUT", path: "/v1/users/u1/consent/personalization", key: e.app(),
		body: `{"enabled":false}`, ctype: "application/json; charset=utf-8"})
	want(t, r, 200)
}

// TestInvalidValues: every 422 the routes answer, with the field at fault,
// changing nothing.
func TestInvalidValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const u = "u1"
	U := "/v1/users/" + u
	// Prohibit a namespace, for the prohibited-tag case.
	set, err := e.mem.Settings(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	set.Taxonomy["banned"] = tags.Namespace{Prohibited: true}
	want(t, e.do(call{method: "PUT", path: "/v1/admin/settings", key: e.admin(), body: settingsDoc(e.t, set)}), 200)
	set, _ = e.mem.Settings(e.ctx)
	year := time.Now().UTC().Year()
	// sd is the current settings as a complete document, with some
	// members replaced.
	sd := func(over map[string]any) map[string]any {
		m := settingsDoc(t, set)
		for k, v := range over {
			m[k] = v
		}
		return m
	}

	long := strings.Repeat("a", 129)
	cases := []struct {
		c     call
		field string
		docOK bool // the document cannot tell (e.g. what the settings configure)
	}{
		// User IDs, on every user route.
		{call{method: "GET", path: "/v1/users/" + long + "/decision"}, "user_id", false},
		{call{method: "GET", path: "/v1/users/bad%7Bid%7D/can-push?channel=sms"}, "user_id", false},
		{call{method: "GET", path: "/v1/users/b%20d/consent"}, "user_id", false},
		{call{method: "PUT", path: "/v1/users/" + long + "/consent/personalization", body: `{"enabled":true}`}, "user_id", false},
		{call{method: "PUT", path: "/v1/users/" + long + "/consent/channels/sms", body: `{"refused":true}`}, "user_id", false},
		{call{method: "PUT", path: "/v1/users/" + long + "/consent/sensitive/religion", body: `{"granted":false}`}, "user_id", false},
		{call{method: "GET", path: "/v1/users/" + long + "/tags"}, "user_id", false},
		{call{method: "POST", path: "/v1/users/" + long + "/tags", body: `{"tag":"a:b","source":"declared"}`}, "user_id", false},
		{call{method: "DELETE", path: "/v1/users/" + long + "/tags/a:b"}, "user_id", false},
		{call{method: "GET", path: "/v1/users/" + long + "/receipts"}, "user_id", false},
		{call{method: "GET", path: "/v1/users/" + long + "/export", header: verified}, "user_id", false},
		{call{method: "DELETE", path: "/v1/users/" + long}, "user_id", false},
		{call{method: "DELETE", path: "/v1/users/%C3%A9"}, "user_id", false},
		// Required booleans.
		{call{method: "PUT", path: U + "/consent/personalization", body: `{}`}, "enabled", false},
		{call{method: "PUT", path: U + "/consent/personalization", body: `{"enabled":null}`}, "enabled", false},
		{call{method: "PUT", path: U + "/consent/channels/sms", body: `{"surface":"web"}`}, "refused", false},
		{call{method: "PUT", path: U + "/consent/sensitive/religion", body: `{"purpose":"personalization"}`}, "granted", false},
		// Surfaces.
		{call{method: "PUT", path: U + "/consent/personalization", body: `{"enabled":true,"surface":"Web"}`}, "surface", false},
		{call{method: "POST", path: U + "/tags", body: `{"tag":"a:b","source":"declared","surface":"a b"}`}, "surface", false},
		// Channels: bad syntax, and not configured.
		{call{method: "PUT", path: U + "/consent/channels/SMS", body: `{"refused":true}`}, "channel", false},
		{call{method: "PUT", path: U + "/consent/channels/fax", body: `{"refused":true}`}, "channel", true},
		{call{method: "GET", path: U + "/can-push"}, "channel", false},
		{call{method: "GET", path: U + "/can-push?channel=S-M-S"}, "channel", false},
		{call{method: "GET", path: U + "/can-push?channel=sms&targeted=maybe"}, "targeted", false},
		// Categories and purposes.
		{call{method: "PUT", path: U + "/consent/sensitive/astrology", body: `{"granted":true,"purpose":"personalization"}`}, "category", false},
		{call{method: "PUT", path: U + "/consent/sensitive/religion", body: `{"granted":true}`}, "purpose", false},
		{call{method: "PUT", path: U + "/consent/sensitive/religion", body: `{"granted":true,"purpose":"Bad"}`}, "purpose", false},
		{call{method: "PUT", path: U + "/consent/sensitive/religion", body: `{"granted":true,"purpose":"marketing"}`}, "purpose", true},
		// Tags.
		{call{method: "POST", path: U + "/tags", body: `{}`}, "tag", false},
		{call{method: "POST", path: U + "/tags", body: `{"tag":"Inter est:Ski","source":"declared"}`}, "tag", false},
		{call{method: "POST", path: U + "/tags", body: `{"tag":" Consent : x","source":"declared"}`}, "tag", false},
		{call{method: "POST", path: U + "/tags", body: `{"tag":"interest","source":"declared"}`}, "tag", false},
		{call{method: "POST", path: U + "/tags", body: `{"tag":"consent:x","source":"declared"}`}, "tag", false},
		{call{method: "POST", path: U + "/tags", body: `{"tag":"banned:x","source":"inferred"}`}, "tag", true},
		{call{method: "POST", path: U + "/tags", body: `{"tag":"banned:x","source":"declared"}`}, "tag", true},
		{call{method: "POST", path: U + "/tags", body: `{"tag":"a:b","source":"guessed"}`}, "source", false},
		{call{method: "DELETE", path: U + "/tags/Ba%20d:Tag"}, "tag", false},
		{call{method: "DELETE", path: U + "/tags/%20Refused%20:%20sms"}, "tag", false},
		{call{method: "DELETE", path: U + "/tags/refused:sms"}, "tag", false},
		{call{method: "DELETE", path: U + "/tags/nocolon"}, "tag", false},
		// Settings: a complete document with one member wrong.
		{call{method: "PUT", path: "/v1/admin/settings", body: sd(map[string]any{"channels": []string{"SMS"}})}, "channel", false},
		{call{method: "PUT", path: "/v1/admin/settings", body: sd(map[string]any{"channels": []string{"sms", "sms"}})}, "channels", false},
		{call{method: "PUT", path: "/v1/admin/settings", body: sd(map[string]any{"retention": 1})}, "retention", false},
		{call{method: "PUT", path: "/v1/admin/settings", body: sd(map[string]any{"retention": "8760h"})}, "retention", true},
		{call{method: "PUT", path: "/v1/admin/settings", body: sd(map[string]any{"reask_cooldown": -1})}, "reask_cooldown", false},
		{call{method: "PUT", path: "/v1/admin/settings", body: sd(map[string]any{"reask_cooldown": "1h"})}, "reask_cooldown", true},
		{call{method: "PUT", path: "/v1/admin/settings", body: sd(map[string]any{"reask_cooldown": "23h59m59s"})}, "reask_cooldown", true},
		{call{method: "PUT", path: "/v1/admin/settings", body: sd(map[string]any{"reask_cooldown": "0s"})}, "reask_cooldown", true},
		{call{method: "PUT", path: "/v1/admin/settings", body: sd(map[string]any{"policies": map[string]int{"push": 1}, "keep_on_bump": []string{"guardian"}})}, "keep_on_bump", true},
		{call{method: "PUT", path: "/v1/admin/settings", body: sd(map[string]any{"policies": map[string]int{"Bad": 1}})}, "policies", false},
		{call{method: "PUT", path: "/v1/admin/settings", body: sd(map[string]any{"policies": map[string]int{"push": -1}})}, "policies", false},
		{call{method: "PUT", path: "/v1/admin/settings", body: sd(map[string]any{"taxonomy": map[string]any{"Bad": map[string]any{}}})}, "taxonomy", false},
		{call{method: "PUT", path: "/v1/admin/settings", body: sd(map[string]any{"taxonomy": map[string]any{"x": map[string]any{"sensitive": "astrology"}}})}, "taxonomy", false},
		{call{method: "PUT", path: "/v1/admin/settings", body: sd(map[string]any{"suspend_reason": strings.Repeat("r", 513)})}, "suspend_reason", false},
		{call{method: "PUT", path: "/v1/admin/settings?allow_weakening=perhaps", body: sd(nil)}, "allow_weakening", false},
		// The same through PATCH, and what only a patch can get wrong.
		{call{method: "PATCH", path: "/v1/admin/settings", ctype: mergePatch, body: map[string]any{"version": set.Version, "reask_cooldown": "1h"}}, "reask_cooldown", true},
		{call{method: "PATCH", path: "/v1/admin/settings", ctype: mergePatch, body: map[string]any{"version": set.Version, "reask_cooldown": nil}}, "reask_cooldown", true},
		{call{method: "PATCH", path: "/v1/admin/settings", ctype: mergePatch, body: map[string]any{"version": set.Version, "retention": "8760h"}}, "retention", true},
		{call{method: "PATCH", path: "/v1/admin/settings", ctype: mergePatch, body: map[string]any{"version": set.Version, "channels": []string{"SMS"}}}, "channel", false},
		{call{method: "PATCH", path: "/v1/admin/settings", ctype: mergePatch, body: map[string]any{"version": set.Version, "taxonomy": map[string]any{"x": map[string]any{"sensitive": "astrology"}}}}, "taxonomy", false},
		{call{method: "PATCH", path: "/v1/admin/settings", ctype: mergePatch, body: map[string]any{"version": set.Version, "keep_on_bump": []string{"marketing"}}}, "keep_on_bump", true},
		{call{method: "PATCH", path: "/v1/admin/settings", ctype: mergePatch, body: map[string]any{"channels": []string{"sms"}}}, "version", false},
		{call{method: "PATCH", path: "/v1/admin/settings", ctype: mergePatch, body: map[string]any{"version": nil, "channels": []string{"sms"}}}, "version", false},
		{call{method: "PATCH", path: "/v1/admin/settings?allow_weakening=1x", ctype: mergePatch, body: map[string]any{"version": set.Version}}, "allow_weakening", false},
		// Minors and guardians.
		{call{method: "PUT", path: "/v1/users/" + long + "/minor", body: `{"minor":true}`}, "user_id", false},
		{call{method: "PUT", path: U + "/minor", body: `{}`}, "minor", false},
		{call{method: "PUT", path: U + "/minor", body: `{"minor":false,"by":"parent"}`}, "by", false},
		{call{method: "PUT", path: U + "/minor", body: `{"minor":true,"ref":"a b"}`}, "ref", false},
		{call{method: "PUT", path: U + "/minor", body: `{"minor":true,"surface":"Web"}`}, "surface", false},
		{call{method: "PUT", path: "/v1/users/" + long + "/consent/guardian", body: `{"granted":false}`}, "user_id", false},
		{call{method: "PUT", path: U + "/consent/guardian", body: `{"ref":"g-1"}`}, "granted", false},
		{call{method: "PUT", path: U + "/consent/guardian", body: `{"granted":true}`}, "ref", false},
		{call{method: "PUT", path: U + "/consent/guardian", body: `{"granted":true,"ref":""}`}, "ref", false},
		{call{method: "PUT", path: U + "/consent/guardian", body: `{"granted":true,"ref":"g/1"}`}, "ref", false},
		// Should-ask.
		{call{method: "GET", path: "/v1/users/" + long + "/should-ask?kind=personalization"}, "user_id", false},
		{call{method: "GET", path: U + "/should-ask"}, "kind", false},
		{call{method: "GET", path: U + "/should-ask?kind=Personalization"}, "kind", false},
		{call{method: "GET", path: U + "/should-ask?kind=channel:"}, "kind", false},
		{call{method: "GET", path: U + "/should-ask?kind=channel:SMS"}, "kind", false},
		{call{method: "GET", path: U + "/should-ask?kind=channel:fax"}, "kind", true},
		{call{method: "GET", path: U + "/should-ask?kind=sensitive:astrology"}, "kind", false},
		{call{method: "GET", path: U + "/should-ask?kind=tag:interest"}, "kind", false},
		// Suspension.
		{call{method: "PUT", path: "/v1/admin/suspension", body: `{}`}, "suspended", false},
		{call{method: "PUT", path: "/v1/admin/suspension", body: `{"suspended":true}`}, "reason", false},
		{call{method: "PUT", path: "/v1/admin/suspension", body: `{"suspended":true,"reason":""}`}, "reason", false},
		{call{method: "PUT", path: "/v1/admin/suspension", body: fmt.Sprintf(`{"suspended":true,"reason":"%s"}`, strings.Repeat("r", 513))}, "suspend_reason", false},
		// Audiences.
		{call{method: "GET", path: "/v1/admin/audience?channel=push"}, "segment", false},
		{call{method: "GET", path: "/v1/admin/audience?segment=&channel=push"}, "segment", false},
		{call{method: "GET", path: "/v1/admin/audience?segment=interest:ski%20%26&channel=push"}, "segment", true},
		{call{method: "GET", path: "/v1/admin/audience?segment=consent:bogus&channel=push"}, "segment", true},
		{call{method: "GET", path: "/v1/admin/audience?segment=*"}, "channel", false},
		{call{method: "GET", path: "/v1/admin/audience?segment=*&channel=Push"}, "channel", false},
		{call{method: "GET", path: "/v1/admin/audience?segment=*&channel=push&targeted=maybe"}, "targeted", false},
		{call{method: "GET", path: "/v1/admin/audience?segment=*&channel=push&limit=10001"}, "limit", false},
		{call{method: "GET", path: "/v1/admin/audience?segment=*&channel=push&limit=-1"}, "limit", false},
		{call{method: "GET", path: "/v1/admin/audience?segment=*&channel=push&limit=ten"}, "limit", false},
		{call{method: "GET", path: "/v1/admin/audience?segment=*&channel=push&cursor=abc"}, "cursor", false},
		{call{method: "GET", path: "/v1/admin/audience?segment=*&channel=push&cursor=-1"}, "cursor", false},
		{call{method: "GET", path: "/v1/admin/audience?segment=*&channel=push&cursor=99999999999"}, "cursor", false},
		// The rights report.
		{call{method: "GET", path: "/v1/admin/reports/rights"}, "year", false},
		{call{method: "GET", path: "/v1/admin/reports/rights?year=1999"}, "year", false},
		{call{method: "GET", path: "/v1/admin/reports/rights?year=10000"}, "year", false},
		{call{method: "GET", path: "/v1/admin/reports/rights?year=twenty"}, "year", false},
		{call{method: "GET", path: fmt.Sprintf("/v1/admin/reports/rights?year=%d.5", year)}, "year", false},
	}
	for _, tc := range cases {
		c := tc.c
		if !tc.docOK {
			c.req = violates
		}
		c.key = e.app()
		if strings.HasPrefix(c.path, "/v1/admin/") {
			c.key = e.admin()
		}
		p := e.rejected(c, 422, "invalid-value", u)
		if p.Field != tc.field {
			t.Errorf("%s %s: field %q, want %q (%s)", c.method, c.path, p.Field, tc.field, p.Detail)
		}
	}

	// A channel the settings do not list, for audiences.
	p := e.rejected(call{method: "GET", path: "/v1/admin/audience?segment=*&channel=fax", key: e.admin()}, 422, "invalid-value", u)
	if !strings.Contains(p.Detail, "fax") {
		t.Errorf("unknown audience channel: %+v", p)
	}
}

// TestConflicts: the 409s of the routes, each changing nothing.
func TestConflicts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const u = "u1"
	U := "/v1/users/" + u

	// Stale settings version.
	set, err := e.mem.Settings(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	stale := set
	stale.Version--
	e.rejected(call{method: "PUT", path: "/v1/admin/settings", key: e.admin(), body: settingsDoc(e.t, stale)}, 409, "conflict", u)
	want(t, e.do(call{method: "PUT", path: "/v1/admin/settings", key: e.admin(), body: settingsDoc(e.t, set)}), 200)
	e.rejected(call{method: "PUT", path: "/v1/admin/settings", key: e.admin(), body: settingsDoc(e.t, set)}, 409, "conflict", u) // read before the save above
	future := set
	future.Version += 10
	e.rejected(call{method: "PUT", path: "/v1/admin/settings", key: e.admin(), body: settingsDoc(e.t, future)}, 409, "conflict", u)

	// The pipeline re-adding a tag the user deleted.
	want(t, e.do(call{method: "POST", path: U + "/tags", key: e.app(), body: `{"tag":"interest:ski","source":"inferred"}`}), 201)
	want(t, e.do(call{method: "DELETE", path: U + "/tags/interest:ski", key: e.app()}), 200)
	e.rejected(call{method: "POST", path: U + "/tags", key: e.app(), body: `{"tag":"interest:ski","source":"inferred"}`}, 409, "tag-suppressed", u)
	e.rejected(call{method: "POST", path: U + "/tags", key: e.app(), body: `{"tag":"interest:ski","source":"inferred","surface":"batch"}`}, 409, "tag-suppressed", u)

	// A sensitive tag without the category's consent, by the user or the pipeline.
	e.rejected(call{method: "POST", path: U + "/tags", key: e.app(), body: `{"tag":"medical_health:asthma","source":"declared"}`}, 409, "consent-required", u)
	e.rejected(call{method: "POST", path: U + "/tags", key: e.app(), body: `{"tag":"whereabouts:home","source":"inferred"}`}, 409, "consent-required", u)

	// A guardian acting for an adult.
	e.rejected(call{method: "PUT", path: U + "/consent/sensitive/biometrics", key: e.app(),
		body: `{"granted":true,"purpose":"personalization","by_guardian":true}`}, 409, "not-allowed", u)

	// The pipeline tagging an erased user.
	want(t, e.do(call{method: "DELETE", path: U, key: e.app()}), 200)
	e.rejected(call{method: "POST", path: U + "/tags", key: e.app(), body: `{"tag":"interest:golf","source":"inferred"}`}, 409, "not-allowed", u)
}

// TestRateLimited: over its rate a key gets 429 with Retry-After, and the
// request changes nothing; other keys have their own bucket.
func TestRateLimited(t *testing.T) {
	t.Parallel()
	// One token every 4 s on the server's clock, which only the test moves.
	clock := newFakeClock()
	e := newEnv(t, func(c *envConfig) { c.srv.RateLimit, c.srv.RateBurst, c.srv.Now = 0.25, 1, clock.Now })
	const u = "u1"
	// Each key spends its one token on a route it may use.
	want(t, e.do(call{method: "GET", path: "/v1/users/u1/decision", key: e.app()}), 200)
	want(t, e.do(call{method: "GET", path: "/v1/admin/settings", key: e.admin()}), 200)
	for _, c := range writes(e, u) {
		p := e.rejected(c, 429, "rate-limited", u)
		if ra := e.last.Header.Get("Retry-After"); ra != "4" { // seconds to the next token
			t.Errorf("Retry-After %q", ra)
		}
		if !strings.Contains(p.Detail, "over its rate") {
			t.Errorf("429 detail %q", p.Detail)
		}
	}
	e.rejected(call{method: "GET", path: "/v1/users/u1/decision", key: e.app()}, 429, "rate-limited", u)
	e.rejected(call{method: "GET", path: "/v1/admin/reports/rights?year=2026", key: e.admin()}, 429, "rate-limited", u)
	// The auditor's bucket is untouched: its request gets as far as 403.
	wantProblem(t, e.do(call{method: "GET", path: "/v1/users/u1/decision", key: e.auditor()}), 403, "forbidden")
	// The bucket refills: not before 4 s, then with one token.
	clock.Advance(3900 * time.Millisecond)
	e.rejected(call{method: "GET", path: "/v1/users/u1/decision", key: e.app()}, 429, "rate-limited", u)
	clock.Advance(200 * time.Millisecond)
	want(t, e.do(call{method: "GET", path: "/v1/users/u1/decision", key: e.app()}), 200)
	e.rejected(call{method: "GET", path: "/v1/users/u1/decision", key: e.app()}, 429, "rate-limited", u)
}

// TestUnavailable: a closed client is 503 on every route that needs it, a
// store that cannot be read 503, and a client that cannot confirm it is
// current fails closed (200 unverified decisions, 503 readiness and
// audiences).
func TestUnavailable(t *testing.T) {
	t.Parallel()
	t.Run("closed client", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		const u = "u1"
		want(t, e.do(call{method: "POST", path: "/v1/users/u1/tags", key: e.app(), body: `{"tag":"interest:ski","source":"declared"}`}), 201)
		want(t, e.do(call{method: "GET", path: "/v1/users/u1/decision", key: e.app()}), 200) // cached
		if err := e.client.Close(); err != nil {
			t.Fatal(err)
		}
		for _, c := range []call{
			{method: "GET", path: "/v1/users/u1/decision", key: e.app()},
			{method: "GET", path: "/v1/users/u2/decision", key: e.app()},
			{method: "GET", path: "/v1/users/u1/can-push?channel=sms", key: e.app()},
			{method: "GET", path: "/v1/users/u1/tags", key: e.app()},
			{method: "GET", path: "/v1/users/u1/should-ask?kind=personalization", key: e.app()},
			{method: "GET", path: "/v1/admin/audience?segment=*&channel=push", key: e.admin()},
		} {
			p := e.rejected(c, 503, "unavailable", u)
			if !strings.Contains(p.Detail, "closed") {
				t.Errorf("%s: detail %q", c.path, p.Detail)
			}
		}
		for _, c := range writes(e, u) {
			e.rejected(c, 503, "unavailable", u)
		}
		// Routes that read the store directly still answer.
		want(t, e.do(call{method: "GET", path: "/v1/users/u1/consent", key: e.app()}), 200)
		want(t, e.do(call{method: "GET", path: "/v1/admin/settings", key: e.admin()}), 200)
	})
	t.Run("unverified", func(t *testing.T) {
		t.Parallel()
		var fs *flakyStore
		e := newEnv(t, func(c *envConfig) {
			c.sdk.Lease = 100 * time.Millisecond
			c.wrap = func(m *memory.Store) store.Store { fs = &flakyStore{Store: m}; return fs }
		})
		const u = "u1"
		want(t, e.do(call{method: "GET", path: "/readyz"}), 200)
		fs.logsDown.Store(true)
		deadline := time.Now().Add(5 * time.Second)
		for {
			r := e.do(call{method: "GET", path: "/readyz"})
			if r.Status == 503 {
				p := wantProblem(t, r, 503, "unavailable")
				if !strings.Contains(p.Detail, "not current") {
					t.Errorf("readyz detail %q", p.Detail)
				}
				break
			}
			want(t, r, 200)
			if time.Now().After(deadline) {
				t.Fatal("readyz stays ready with the changelog down")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Each log's lease runs from its own last confirmation: the user's
		// shard may lapse a few milliseconds after the first one did.
		d := e.decision(u)
		for end := time.Now().Add(2 * time.Second); d.Reason != consent.ReasonUnverified && time.Now().Before(end); d = e.decision(u) {
			time.Sleep(10 * time.Millisecond)
		}
		if d.Personalized || d.Reason != consent.ReasonUnverified || d.PushBlock != consent.ReasonUnverified || len(d.Channels) != 0 {
			t.Errorf("unverified decision %+v", d)
		}
		if p := e.canPush(u, "push", false); p.Allowed || p.Reason != consent.ReasonUnverified {
			t.Errorf("unverified push %+v", p)
		}
		// Should-ask fails closed too: no prompt while the state is unsure
		// (also when the store read for the reason fails).
		if a := e.shouldAsk(u, "sensitive:religion"); a.Ask || a.Reason != server.AskUnverified {
			t.Errorf("unverified should-ask %+v", a)
		}
		getErr := fmt.Errorf("%w: test", store.ErrUnavailable)
		fs.getErr.Store(&getErr)
		if a := e.shouldAsk(u, "sensitive:religion"); a.Ask || a.Reason != server.AskUnverified {
			t.Errorf("unverified should-ask, store down %+v", a)
		}
		fs.getErr.Store(nil)
		e.rejected(call{method: "GET", path: "/v1/admin/audience?segment=*&channel=push", key: e.admin()}, 503, "unavailable", u)
		fs.logsDown.Store(false)
		deadline = time.Now().Add(5 * time.Second)
		for e.do(call{method: "GET", path: "/readyz"}).Status != 200 {
			if time.Now().After(deadline) {
				t.Fatal("readyz does not recover")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Decisions follow (with a 100 ms lease on a loaded machine, one may
		// still fail closed between two confirmations: that is the point).
		for d := e.decision(u); !d.Personalized; d = e.decision(u) {
			if time.Now().After(deadline) {
				t.Fatalf("decision after recovery %+v", d)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("store down", func(t *testing.T) {
		t.Parallel()
		var fs *flakyStore
		clock := newFakeClock()
		e := newEnv(t, func(c *envConfig) {
			c.srv.KeyCacheTTL, c.srv.Now = time.Second, clock.Now
			c.srv.KeyGrace = -1 // no grace: a key that cannot be read is 503 (TestKeyGrace has the grace)
			c.wrap = func(m *memory.Store) store.Store { fs = &flakyStore{Store: m}; return fs }
		})
		const u = "u1"
		down := fmt.Errorf("%w: test: connection refused", store.ErrUnavailable)
		fs.getErr.Store(&down)
		e.rejected(call{method: "GET", path: "/v1/users/u1/consent", key: e.app()}, 503, "unavailable", u)
		e.rejected(call{method: "GET", path: "/v1/users/u1/export", key: e.app(), header: verified}, 503, "unavailable", u)
		e.rejected(call{method: "GET", path: "/v1/users/u1/tags", key: e.app()}, 503, "unavailable", u)
		fs.getErr.Store(nil)
		fs.keyErr.Store(&down)
		clock.Advance(time.Second) // past the key cache TTL
		e.rejected(call{method: "GET", path: "/v1/users/u1/consent", key: e.app()}, 503, "unavailable", u)
		e.rejected(call{method: "GET", path: "/v1/admin/settings", key: e.admin()}, 503, "unavailable", u)
		fs.keyErr.Store(nil)
		want(t, e.do(call{method: "GET", path: "/v1/users/u1/consent", key: e.app()}), 200)
		// A closed store: not ready.
		e.mem.Close()
		p := wantProblem(t, e.do(call{method: "GET", path: "/readyz"}), 503, "unavailable")
		if !strings.Contains(p.Detail, "store unreachable") {
			t.Errorf("readyz detail %q", p.Detail)
		}
		wantProblem(t, e.do(call{method: "GET", path: "/v1/users/u1/consent", key: e.app()}), 503, "unavailable")
	})
}

// TestInternal: an error the server does not know is 500 without its text;
// a store without a rights log answers the report 501; a client without
// audiences answers audiences 500.
func TestInternal(t *testing.T) {
	t.Parallel()
	t.Run("unknown store error", func(t *testing.T) {
		t.Parallel()
		var fs *flakyStore
		clock := newFakeClock()
		e := newEnv(t, func(c *envConfig) {
			c.srv.KeyCacheTTL, c.srv.Now = time.Second, clock.Now
			c.wrap = func(m *memory.Store) store.Store { fs = &flakyStore{Store: m}; return fs }
		})
		const u = "u1"
		boom := errors.New("secret disk path /var/lib/x is on fire")
		fs.getErr.Store(&boom)
		for _, path := range []string{"/v1/users/u1/consent", "/v1/users/u1/export", "/v1/users/u1/tags"} {
			p := e.rejected(call{method: "GET", path: path, key: e.app(), header: verified}, 500, "internal", u)
			if p.Detail != "" || strings.Contains(string(e.last.Body), "fire") {
				t.Errorf("500 shows the error: %s", e.last.Body)
			}
		}
		fs.getErr.Store(nil)
		fs.keyErr.Store(&boom)
		clock.Advance(time.Second) // past the key cache TTL
		e.rejected(call{method: "GET", path: "/v1/users/u1/decision", key: e.app()}, 500, "internal", u)
		fs.keyErr.Store(nil)
	})
	t.Run("bare store", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, func(c *envConfig) {
			c.sdk.Audiences = false
			c.wrap = func(m *memory.Store) store.Store { return bareStore{Store: m, KeyStore: m} }
		})
		const u = "u1"
		year := time.Now().UTC().Year()
		p := e.rejected(call{method: "GET", path: fmt.Sprintf("/v1/admin/reports/rights?year=%d", year), key: e.admin()}, 501, "unavailable", u)
		if !strings.Contains(p.Detail, "rights log") {
			t.Errorf("501 detail %q", p.Detail)
		}
		e.rejected(call{method: "GET", path: "/v1/admin/audience?segment=*&channel=push", key: e.admin()}, 501, "unavailable", u)
		// Everything else works; rights requests are simply not logged.
		want(t, e.do(call{method: "GET", path: "/v1/users/u1/consent", key: e.app()}), 200)
		want(t, e.do(call{method: "PUT", path: "/v1/users/u1/consent/personalization", key: e.app(), body: `{"enabled":false}`}), 200)
		if d := e.decision(u); d.Reason != consent.ReasonOptedOut {
			t.Errorf("decision %+v", d)
		}
	})
}

// TestNotPropagated: with the SDK's WaitForAll, a change another live
// instance does not confirm in time is 202: recorded, a not-propagated
// problem that carries the state and receipt.
func TestNotPropagated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) {
		c.sdk.WaitForAll = true
		c.sdk.PropagationTimeout = 50 * time.Millisecond
	})
	// A live instance that never applies anything.
	if err := e.mem.Announce(e.ctx, "ghost", make([]store.Position, e.mem.Shards()+1), time.Minute); err != nil {
		t.Fatal(err)
	}
	cr := e.pendingChange(call{method: "PUT", path: "/v1/users/u1/consent/personalization", body: `{"enabled":false}`}, "not-propagated")
	if cr.Version != 1 || !cr.State.PersonalizationOff || cr.Receipt == nil {
		t.Fatalf("202 answer %+v", cr)
	}
	cr = e.pendingChange(call{method: "POST", path: "/v1/users/u1/tags", body: `{"tag":"interest:ski","source":"declared"}`}, "not-propagated")
	if cr.Version != 2 {
		t.Fatalf("202 answer %+v", cr)
	}
	// The change stands.
	if d := e.decision("u1"); d.Reason != consent.ReasonOptedOut {
		t.Fatalf("decision %+v", d)
	}
	// A no-op waits for nothing.
	e.change(call{method: "PUT", path: "/v1/users/u1/consent/personalization", body: `{"enabled":false}`}, 200, false)
}

// pendingChange sends a change that must be answered 202 with a problem of
// type code that carries the change's state, and returns that state.
func (e *env) pendingChange(c call, code string) server.ConsentResponse {
	e.t.Helper()
	if c.key == "" {
		c.key = e.app()
	}
	r := e.do(c)
	p := wantProblem(e.t, r, 202, code)
	if p.Detail == "" {
		e.t.Errorf("202 without a detail: %s", r.Body)
	}
	return decode[server.ConsentResponse](e.t, r)
}
