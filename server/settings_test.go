package server_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/tags"
)

// mergePatch is the media type of PATCH /v1/admin/settings.
const mergePatch = "application/merge-patch+json"

// settingsDoc is set as the complete document PUT /v1/admin/settings
// takes: every member, as GET answers (consent.Settings' own JSON leaves
// the empty ones out).
func settingsDoc(t testing.TB, set consent.Settings) map[string]any {
	t.Helper()
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"taxonomy": map[string]any{}, "policies": map[string]any{}, "keep_on_bump": []any{},
		"allow_inference_while_off": false, "suspended": false, "suspend_reason": ""} {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	return m
}

// patchSettings sends a merge patch and returns the answer.
func (e *env) patchSettings(query string, patch any) result {
	e.t.Helper()
	return e.do(call{method: "PATCH", path: "/v1/admin/settings" + query, key: e.admin(), ctype: mergePatch, body: patch})
}

// saved checks a 200 settings answer and returns it.
func (e *env) saved(r result) server.SettingsResponse {
	e.t.Helper()
	want(e.t, r, 200)
	return decode[server.SettingsResponse](e.t, r)
}

// TestPartialSettingsPutRefused (issue 11 item 2): a partial PUT, the way
// a product manager adds one channel, used to clear the taxonomy, every
// policy and the cooldown, after which a medical_health tag was accepted
// without its separate consent. Now it is 422 naming the first missing
// member and changes nothing; every member, missing alone, is named; the
// same edit as a merge patch adds the channel and keeps every rule, and
// its receipt lists exactly that difference.
func TestPartialSettingsPutRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const u = "pm"
	set, err := e.mem.Settings(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	partial := map[string]any{"version": set.Version, "channels": append(slices.Clone(set.Channels), "wechat")}
	p := e.rejected(call{method: "PUT", path: "/v1/admin/settings", key: e.admin(), body: partial, req: violates}, 422, "invalid-value", u)
	if p.Field != "taxonomy" || !strings.Contains(p.Detail, "PATCH") {
		t.Errorf("partial PUT: %+v", p)
	}
	// allow_weakening does not make a partial document complete.
	e.rejected(call{method: "PUT", path: "/v1/admin/settings?allow_weakening=true", key: e.admin(), body: partial, req: violates}, 422, "invalid-value", u)
	for _, m := range []string{"version", "channels", "taxonomy", "policies", "keep_on_bump", "reask_cooldown",
		"allow_inference_while_off", "retention", "suspended", "suspend_reason"} {
		doc := settingsDoc(t, set)
		delete(doc, m)
		if p := e.rejected(call{method: "PUT", path: "/v1/admin/settings", key: e.admin(), body: doc, req: violates}, 422, "invalid-value", u); p.Field != m {
			t.Errorf("PUT without %s: field %q", m, p.Field)
		}
	}
	// Art. 22 still holds.
	e.rejected(call{method: "POST", path: "/v1/users/" + u + "/tags", key: e.app(), body: `{"tag":"medical_health:diabetes","source":"declared"}`}, 409, "consent-required", u)

	sr := e.saved(e.patchSettings("", map[string]any{"version": set.Version, "channels": append(slices.Clone(set.Channels), "wechat")}))
	got := sr.Settings
	if !got.HasChannel("wechat") || !reflect.DeepEqual(got.Taxonomy, set.Taxonomy) || !reflect.DeepEqual(got.Policies, set.Policies) ||
		got.ReaskCooldown != set.ReaskCooldown || got.Retention != set.Retention || got.Version != set.Version+1 {
		t.Fatalf("after the patch %+v, before %+v", got, set)
	}
	if !slices.Equal(sr.Receipt.Diff, []string{"channels: +wechat"}) || sr.Receipt.Actor != consent.ActorAdmin || sr.Receipt.Op != consent.OpSetSettings {
		t.Errorf("receipt %+v", sr.Receipt)
	}
	e.rejected(call{method: "POST", path: "/v1/users/" + u + "/tags", key: e.app(), body: `{"tag":"medical_health:diabetes","source":"declared"}`}, 409, "consent-required", u)
	// The GET answer is a complete document: PUT takes it back as it is.
	r := e.do(call{method: "GET", path: "/v1/admin/settings", key: e.admin()})
	want(t, r, 200)
	if m := decode[map[string]any](t, r); len(m) != 10 {
		t.Errorf("GET answers %d members: %s", len(m), r.Body)
	}
	sr = e.saved(e.do(call{method: "PUT", path: "/v1/admin/settings", key: e.admin(), body: r.Body}))
	if sr.Receipt.Diff != nil || sr.Settings.Version != got.Version+1 {
		t.Errorf("PUT of what GET answered: %+v", sr)
	}
}

// TestSettingsMergePatch: PATCH is an RFC 7396 merge patch of the
// settings document: members replace, null deletes, objects (taxonomy,
// a namespace, policies) merge recursively, arrays replace; the patch
// names its version (422 without, 409 when stale); it goes through the
// validation of a PUT; duplicate and unknown members are 400; only
// application/merge-patch+json is taken. Durations are Go duration
// strings. Each answer's receipt lists every difference.
func TestSettingsMergePatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const u = "u1"
	set, err := e.mem.Settings(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	v := set.Version
	anyDiff := []string{"(any)"}
	step := func(patch map[string]any, diff ...string) consent.Settings {
		t.Helper()
		patch["version"] = v
		sr := e.saved(e.patchSettings("", patch))
		if !slices.Equal(diff, anyDiff) && !slices.Equal(sr.Receipt.Diff, diff) {
			t.Errorf("patch %v: diff %q, want %q", patch, sr.Receipt.Diff, diff)
		}
		v = sr.Settings.Version
		return sr.Settings
	}
	// A namespace added, merged into, a member of it deleted: the others stay.
	s := step(map[string]any{"taxonomy": map[string]any{"diet": map[string]any{"category": "food"}}}, "taxonomy diet: added (ordinary, category food)")
	if len(s.Taxonomy) != len(set.Taxonomy)+1 || s.Taxonomy["religion"] != set.Taxonomy["religion"] {
		t.Fatalf("taxonomy %v", s.Taxonomy)
	}
	s = step(map[string]any{"taxonomy": map[string]any{"diet": map[string]any{"prohibited": true}}}, "taxonomy diet: ordinary, category food -> prohibited, category food")
	if s.Taxonomy["diet"] != (tags.Namespace{Category: "food", Prohibited: true}) {
		t.Fatalf("diet %+v", s.Taxonomy["diet"])
	}
	s = step(map[string]any{"taxonomy": map[string]any{"diet": map[string]any{"category": nil}}}, anyDiff...)
	if s.Taxonomy["diet"] != (tags.Namespace{Prohibited: true}) {
		t.Fatalf("diet %+v", s.Taxonomy["diet"])
	}
	// A policy bumped, one added; arrays replace; durations both ways.
	s = step(map[string]any{"policies": map[string]any{"push": 2, "ads": 1}}, "policies ads: added at v1", "policies push: v1 -> v2")
	if s.Policies["personalization"] != 1 || s.Policies["guardian"] != 1 {
		t.Fatalf("policies %v", s.Policies)
	}
	s = step(map[string]any{"channels": []string{"sms", "push"}, "reask_cooldown": "1440h"}, "channels: -email", "channels: -in_app", "reask_cooldown: 720h0m0s -> 1440h0m0s")
	if !slices.Equal(s.Channels, []string{"push", "sms"}) || s.ReaskCooldown != 60*24*time.Hour {
		t.Fatalf("settings %+v", s)
	}
	r := e.do(call{method: "GET", path: "/v1/admin/settings", key: e.admin()})
	if m := decode[map[string]any](t, r); m["reask_cooldown"] != "1440h0m0s" || m["retention"] != "26280h0m0s" {
		t.Errorf("durations %s", r.Body)
	}
	// A patch naming only the version changes nothing but still leaves a receipt.
	step(map[string]any{})

	// Refused, changing nothing.
	cases := []struct {
		name   string
		query  string
		body   any
		ctype  string
		status int
		code   string
		field  string
		req    conformance
	}{
		{"no version", "", map[string]any{"channels": []string{"sms"}}, "", 422, "invalid-value", "version", violates},
		{"stale", "", map[string]any{"version": v - 1, "channels": []string{"sms"}}, "", 409, "conflict", "version", conforms},
		{"future", "", map[string]any{"version": v + 1}, "", 409, "conflict", "version", conforms},
		{"version not a number", "", `{"version":"3"}`, "", 400, "malformed-request", "version", violates},
		{"negative version", "", `{"version":-1}`, "", 400, "malformed-request", "version", violates},
		{"unknown member", "", map[string]any{"version": v, "reask_cooldwn": "720h"}, "", 400, "malformed-request", "", violates},
		{"unknown member deleted", "", map[string]any{"version": v, "reask_cooldwn": nil}, "", 400, "malformed-request", "", violates},
		{"unknown nested member", "", map[string]any{"version": v, "taxonomy": map[string]any{"diet": map[string]any{"colour": "red"}}}, "", 400, "malformed-request", "", violates},
		{"duplicate member", "", fmt.Sprintf(`{"version":%d,"reask_cooldown":"720h","reask_cooldown":"24h"}`, v), "", 400, "malformed-request", "reask_cooldown", maybeViolate},
		{"duplicate nested member", "", fmt.Sprintf(`{"version":%d,"policies":{"push":3,"push":null}}`, v), "", 400, "malformed-request", "policies.push", maybeViolate},
		{"wrong type", "", map[string]any{"version": v, "channels": "sms"}, "", 400, "malformed-request", "channels", violates},
		{"bad duration", "", map[string]any{"version": v, "retention": "3y"}, "", 400, "malformed-request", "retention", violates},
		{"not an object", "", `[{"op":"add","path":"/channels/-","value":"fax"}]`, "", 400, "malformed-request", "", violates},
		{"cooldown deleted", "", map[string]any{"version": v, "reask_cooldown": nil}, "", 422, "invalid-value", "reask_cooldown", conforms},
		{"cooldown under 24h", "?allow_weakening=true", map[string]any{"version": v, "reask_cooldown": "23h59m"}, "", 422, "invalid-value", "reask_cooldown", conforms},
		{"retention under 3 years", "", map[string]any{"version": v, "retention": "8760h"}, "", 422, "invalid-value", "retention", conforms},
		{"keep_on_bump without a policy", "", map[string]any{"version": v, "keep_on_bump": []string{"marketing"}}, "", 422, "invalid-value", "keep_on_bump", conforms},
		{"as application/json", "", map[string]any{"version": v}, "application/json", 415, "unsupported-media-type", "", violates},
		{"as json-patch", "", map[string]any{"version": v}, "application/json-patch+json", 415, "unsupported-media-type", "", violates},
	}
	for _, tc := range cases {
		ct := tc.ctype
		if ct == "" {
			ct = mergePatch
		}
		p := e.rejected(call{method: "PATCH", path: "/v1/admin/settings" + tc.query, key: e.admin(), ctype: ct, body: tc.body, req: tc.req}, tc.status, tc.code, u)
		if p.Field != tc.field {
			t.Errorf("%s: field %q, want %q (%s)", tc.name, p.Field, tc.field, p.Detail)
		}
	}
}

// TestSettingsWeakening: PUT and PATCH refuse a change that loosens a
// consent rule (consent.Weakens: a sensitive or prohibited namespace
// removed or made ordinary, a policy removed, the cooldown shortened, a
// purpose added to keep_on_bump, inference allowed while off) with 409
// weakens-consent-rules listing each line, changing nothing; with
// allow_weakening=true it is made, its receipt's diff lists it, and the
// admin action log records what it loosened.
func TestSettingsWeakening(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	e := newEnv(t, func(c *envConfig) { c.srv.Logger = logTo(&logs) })
	const u = "u1"
	cur := func() consent.Settings {
		t.Helper()
		s, err := e.mem.Settings(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	set := cur()
	// What each change loosens (as a patch; the PUT is the patched document).
	cases := []struct {
		name    string
		patch   map[string]any
		weakens []string
	}{
		{"sensitive namespace removed", map[string]any{"taxonomy": map[string]any{"medical_health": nil}},
			[]string{"taxonomy medical_health: no longer needs the separate consent for medical_health"}},
		{"sensitive namespace made ordinary", map[string]any{"taxonomy": map[string]any{"religion": map[string]any{"sensitive": nil}}},
			[]string{"taxonomy religion: no longer needs the separate consent for religion"}},
		{"taxonomy dropped", map[string]any{"taxonomy": nil}, nil}, // every sensitive namespace: checked below
		{"policy removed", map[string]any{"policies": map[string]any{"guardian": nil}}, []string{"policies guardian: removed (was v1)"}},
		{"cooldown shortened", map[string]any{"reask_cooldown": "24h"}, []string{"reask_cooldown: shortened 720h0m0s -> 24h0m0s"}},
		{"keep on bump", map[string]any{"keep_on_bump": []string{"push"}}, []string{"keep_on_bump: +push (policy bumps stop voiding its consents)"}},
		{"inference while off", map[string]any{"allow_inference_while_off": true}, []string{"allow_inference_while_off: false -> true"}},
	}
	for _, tc := range cases {
		for _, method := range []string{"PATCH", "PUT"} {
			c := call{method: method, path: "/v1/admin/settings", key: e.admin()}
			patch := maps.Clone(tc.patch)
			patch["version"] = set.Version
			if method == "PATCH" {
				c.ctype, c.body = mergePatch, patch
			} else {
				doc := applyPatch(t, settingsDoc(t, set), patch)
				for k, v := range patch {
					if v == nil {
						doc[k] = nil // a PUT names every member: null for none
					}
				}
				c.body = doc
			}
			e.rejected(c, 409, "weakens-consent-rules", u)
			w := decode[server.WeakensProblem](t, e.last).Weakens
			switch {
			case tc.weakens != nil && !slices.Equal(w, tc.weakens):
				t.Errorf("%s %s: weakens %q, want %q", method, tc.name, w, tc.weakens)
			case tc.weakens == nil && len(w) != len(tags.Categories()):
				t.Errorf("%s %s: weakens %q, want one line per sensitive namespace", method, tc.name, w)
			}
		}
	}
	// Asked explicitly: made, in the receipt and the log.
	before := len(logs.lines(t, "admin action"))
	sr := e.saved(e.patchSettings("?allow_weakening=true", map[string]any{"version": set.Version, "taxonomy": map[string]any{"medical_health": nil}}))
	if _, ok := sr.Settings.Taxonomy["medical_health"]; ok || !slices.Equal(sr.Receipt.Diff, []string{"taxonomy medical_health: removed (was sensitive: medical_health, category sensitive)"}) {
		t.Fatalf("allowed weakening: %+v", sr)
	}
	set = sr.Settings
	doc := settingsDoc(t, set)
	doc["reask_cooldown"] = "48h"
	sr = e.saved(e.do(call{method: "PUT", path: "/v1/admin/settings?allow_weakening=true", key: e.admin(), body: doc}))
	if sr.Settings.ReaskCooldown != 48*time.Hour || !slices.Equal(sr.Receipt.Diff, []string{"reask_cooldown: 720h0m0s -> 48h0m0s"}) {
		t.Fatalf("allowed PUT: %+v", sr)
	}
	lines := logs.lines(t, "admin action")[before:]
	if len(lines) != 2 {
		t.Fatalf("%d admin action lines, want 2:\n%s", len(lines), logs.String())
	}
	for i, want := range []string{"taxonomy medical_health: no longer needs", "reask_cooldown: shortened 720h0m0s -> 48h0m0s"} {
		if l := lines[i]; l["outcome"] != "applied" || l["allow_weakening"] != true || !strings.Contains(fmt.Sprint(l["weakens"]), want) {
			t.Errorf("line %d: %v", i, l)
		}
	}
	// A refused weakening is logged too, with what it would have loosened.
	e.rejected(call{method: "PATCH", path: "/v1/admin/settings", key: e.admin(), ctype: mergePatch,
		body: map[string]any{"version": sr.Settings.Version, "policies": nil}}, 409, "weakens-consent-rules", u)
	l := logs.lines(t, "admin action")
	if last := l[len(l)-1]; last["outcome"] != "refused" || last["allow_weakening"] != false || !strings.Contains(fmt.Sprint(last["weakens"]), "policies push: removed") {
		t.Errorf("refused weakening line %v", last)
	}
	// Tightening needs no permission: a longer cooldown, a new sensitive namespace.
	e.saved(e.patchSettings("", map[string]any{"version": sr.Settings.Version, "reask_cooldown": "2160h",
		"taxonomy": map[string]any{"medical_health": map[string]any{"category": "sensitive", "sensitive": "medical_health"}}}))
}

// applyPatch merges patch into doc (RFC 7396), for the tests' PUT bodies.
func applyPatch(t testing.TB, doc, patch map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	var merge func(dst map[string]any, p map[string]any)
	merge = func(dst map[string]any, p map[string]any) {
		for k, v := range p {
			switch pv := v.(type) {
			case nil:
				delete(dst, k)
			case map[string]any:
				sub, ok := dst[k].(map[string]any)
				if !ok {
					sub = map[string]any{}
				}
				merge(sub, pv)
				dst[k] = sub
			default:
				dst[k] = v
			}
		}
	}
	merge(out, patch)
	return out
}

// TestSettingsHistory: GET /v1/admin/settings/history lists every
// settings receipt oldest first, each with its change's diff, and says
// the chain verifies.
func TestSettingsHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do(call{method: "GET", path: "/v1/admin/settings/history", key: e.admin()})
	want(t, r, 200)
	h := decode[server.SettingsHistoryResponse](t, r)
	if len(h.Receipts) != 0 || !h.ChainValid || !strings.Contains(string(r.Body), `"receipts":[]`) {
		t.Fatalf("history of a new installation: %s", r.Body)
	}
	set, _ := e.mem.Settings(e.ctx)
	var made []consent.Receipt
	sr := e.saved(e.patchSettings("", map[string]any{"version": set.Version, "channels": []string{"push", "sms"}}))
	made = append(made, sr.Receipt)
	want(t, e.do(call{method: "PUT", path: "/v1/admin/suspension", key: e.admin(), body: `{"suspended":true,"reason":"order 5"}`}), 200)
	sr = e.saved(e.patchSettings("", map[string]any{"version": sr.Settings.Version + 1, "suspended": false, "suspend_reason": nil, "policies": map[string]any{"push": 2}}))
	made = append(made, sr.Receipt)
	r = e.do(call{method: "GET", path: "/v1/admin/settings/history", key: e.admin()})
	want(t, r, 200)
	h = decode[server.SettingsHistoryResponse](t, r)
	if len(h.Receipts) != 3 || !h.ChainValid {
		t.Fatalf("history %s", r.Body)
	}
	for i, rc := range h.Receipts {
		if rc.Seq != uint64(i+1) || rc.Op != consent.OpSetSettings || rc.Actor != consent.ActorAdmin || len(rc.Diff) == 0 {
			t.Errorf("receipt %d: %+v", i, rc)
		}
	}
	if !reflect.DeepEqual(h.Receipts[0], made[0]) || !reflect.DeepEqual(h.Receipts[2], made[1]) {
		t.Errorf("history %+v, answers %+v", h.Receipts, made)
	}
	if !slices.Equal(h.Receipts[2].Diff, []string{"policies push: v1 -> v2", "suspended: true -> false", `suspend_reason: "order 5" -> ""`}) {
		t.Errorf("diff %q", h.Receipts[2].Diff)
	}
	if err := consent.VerifyLinks(h.Receipts, testChainKey); err != nil {
		t.Error(err)
	}
}
