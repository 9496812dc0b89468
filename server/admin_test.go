package server_test

import (
	"encoding/csv"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/server"
)

// TestOpsRoutes: health, readiness, the document and metrics need no key.
func TestOpsRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do(call{method: "GET", path: "/healthz"})
	want(t, r, 200)
	if h := decode[server.HealthResponse](t, r); h.Status != "ok" || h.Detail != "" {
		t.Errorf("healthz %+v", h)
	}
	r = e.do(call{method: "GET", path: "/readyz"})
	want(t, r, 200)
	if h := decode[server.HealthResponse](t, r); h.Status != "ready" {
		t.Errorf("readyz %+v", h)
	}
	r = e.do(call{method: "GET", path: "/openapi.json", key: e.auditor()})
	want(t, r, 200)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("openapi.json Content-Type %q", ct)
	}
	r = e.do(call{method: "GET", path: "/metrics"})
	want(t, r, 200)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("metrics Content-Type %q", ct)
	}
	for _, g := range []string{"recguard_cache_users", "recguard_cache_hit_ratio", "recguard_cache_evictions",
		"recguard_follower_lag_seconds", "recguard_followers_unverified", "recguard_propagation_p99_seconds",
		"recguard_rights_log_errors_total"} {
		if !strings.Contains(string(r.Body), "\n"+g+" ") {
			t.Errorf("metrics lack %s", g)
		}
	}
}

// TestSettingsAndSuspension: settings are read and replaced with
// optimistic concurrency, and the kill switch stops everything.
func TestSettingsAndSuspension(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const u = "u1"
	r := e.do(call{method: "GET", path: "/v1/admin/settings", key: e.admin()})
	want(t, r, 200)
	set := decode[consent.Settings](t, r)
	if set.Version != 1 || !slices.Equal(set.Channels, []string{"email", "in_app", "push", "sms"}) ||
		set.Retention != consent.DefaultRetention || set.ReaskCooldown != consent.DefaultReaskCooldown || set.Suspended {
		t.Fatalf("default settings %+v", set)
	}

	// Add a channel (out of order: the store sorts).
	set.Channels = []string{"whatsapp", "email", "in_app", "push", "sms"}
	r = e.do(call{method: "PUT", path: "/v1/admin/settings", key: e.admin(), body: settingsDoc(e.t, set)})
	want(t, r, 200)
	sr := decode[server.SettingsResponse](t, r)
	if sr.Settings.Version != 2 || !slices.Equal(sr.Settings.Channels, []string{"email", "in_app", "push", "sms", "whatsapp"}) ||
		sr.Receipt.Op != consent.OpSetSettings || sr.Receipt.Actor != consent.ActorAdmin || sr.Receipt.UserID != "" ||
		string(sr.Receipt.Surface) != "key_"+e.keyIDs[server.RoleAdmin] || sr.Receipt.Seq != 1 {
		t.Fatalf("saved %+v", sr)
	}
	want(t, e.do(call{method: "PUT", path: "/v1/users/u1/consent/channels/whatsapp", key: e.app(), body: `{"refused":true}`}), 200)
	if d := e.decision(u); !slices.Equal(d.Refused, []string{"whatsapp"}) {
		t.Fatalf("decision after the new channel %+v", d)
	}

	// No channels at all: stored as null.
	none := sr.Settings
	none.Channels = []string{}
	r = e.do(call{method: "PUT", path: "/v1/admin/settings", key: e.admin(), body: settingsDoc(t, none)})
	want(t, r, 200)
	if !strings.Contains(string(r.Body), `"channels":null`) {
		t.Errorf("empty channels: %s", r.Body)
	}
	r = e.do(call{method: "GET", path: "/v1/admin/settings", key: e.admin()})
	want(t, r, 200)
	set = decode[consent.Settings](t, r)
	if set.Version != 3 || set.Channels != nil {
		t.Fatalf("settings %+v", set)
	}
	// A document without a cooldown: 422 (PUT takes complete documents);
	// a shorter cooldown loosens a consent rule: 409 unless allowed; zero
	// retention defaults. Durations are Go duration strings both ways,
	// and every member is answered.
	doc := settingsDoc(t, set)
	delete(doc, "reask_cooldown")
	e.rejected(call{method: "PUT", path: "/v1/admin/settings", key: e.admin(), body: doc, req: violates}, 422, "invalid-value", u)
	doc = settingsDoc(t, set)
	doc["channels"], doc["reask_cooldown"], doc["retention"] = []string{"push", "sms"}, "24h", "0s"
	p := e.rejected(call{method: "PUT", path: "/v1/admin/settings", key: e.admin(), body: doc}, 409, "weakens-consent-rules", u)
	if w := decode[server.WeakensProblem](t, e.last).Weakens; !slices.Equal(w, []string{"reask_cooldown: shortened 720h0m0s -> 24h0m0s"}) {
		t.Fatalf("weakens %q (%s)", w, p.Detail)
	}
	r = e.do(call{method: "PUT", path: "/v1/admin/settings?allow_weakening=true", key: e.admin(), body: doc})
	want(t, r, 200)
	sr = decode[server.SettingsResponse](t, r)
	raw := decode[map[string]map[string]any](t, r)["settings"]
	if sr.Settings.Retention != consent.DefaultRetention || sr.Settings.ReaskCooldown != 24*time.Hour || len(sr.Settings.Taxonomy) == 0 ||
		raw["suspended"] != false || raw["suspend_reason"] != "" || raw["allow_inference_while_off"] != false ||
		raw["reask_cooldown"] != "24h0m0s" || raw["retention"] != "26280h0m0s" || len(raw) != 10 {
		t.Fatalf("settings %s", r.Body)
	}
	set = sr.Settings

	// The kill switch.
	r = e.do(call{method: "PUT", path: "/v1/admin/suspension", key: e.admin(), body: `{"suspended":true,"reason":"order 2026-17"}`})
	want(t, r, 200)
	sr = decode[server.SettingsResponse](t, r)
	if !sr.Settings.Suspended || sr.Settings.SuspendReason != "order 2026-17" || sr.Settings.Version != set.Version+1 ||
		!strings.Contains(sr.Receipt.New, "suspended=true") {
		t.Fatalf("suspend %+v", sr)
	}
	if d := e.decision(u); d.Personalized || d.Reason != consent.ReasonSuspended || d.PushBlock != consent.ReasonSuspended {
		t.Fatalf("decision while suspended %+v", d)
	}
	if p := e.canPush(u, "push", false); p.Allowed || p.Reason != consent.ReasonSuspended {
		t.Fatalf("push while suspended %+v", p)
	}
	r = e.do(call{method: "GET", path: "/v1/admin/audience?segment=*&channel=push&targeted=false", key: e.admin()})
	want(t, r, 200)
	if a := decode[server.AudienceResponse](t, r); a.Count != 0 || len(a.Users) != 0 {
		t.Fatalf("audience while suspended %+v", a)
	}
	r = e.do(call{method: "PUT", path: "/v1/admin/suspension", key: e.admin(), body: `{"suspended":false}`})
	want(t, r, 200)
	sr = decode[server.SettingsResponse](t, r)
	raw = decode[map[string]map[string]any](t, r)["settings"]
	if sr.Settings.Suspended || sr.Settings.SuspendReason != "" || raw["suspended"] != false || raw["suspend_reason"] != "" {
		t.Fatalf("resume %s", r.Body)
	}
	if d := e.decision(u); !d.Personalized {
		t.Fatalf("decision after resuming %+v", d)
	}
	// The suspension re-reads the version: a settings PUT at the old version now conflicts.
	e.rejected(call{method: "PUT", path: "/v1/admin/settings", key: e.admin(), body: settingsDoc(e.t, set)}, 409, "conflict", u)
	e.rejected(call{method: "PATCH", path: "/v1/admin/settings", key: e.admin(), ctype: mergePatch, body: map[string]any{"version": set.Version}}, 409, "conflict", u)
}

// TestAudience: counting and paging an audience, its rules, and its
// canonical segment.
func TestAudience(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, u := range []string{"a1", "a2", "a3", "a4", "a5"} {
		want(t, e.do(call{method: "POST", path: "/v1/users/" + u + "/tags", key: e.app(), body: `{"tag":"interest:ski","source":"declared"}`}), 201)
	}
	want(t, e.do(call{method: "POST", path: "/v1/users/b1/tags", key: e.app(), body: `{"tag":"interest:golf","source":"declared"}`}), 201)
	want(t, e.do(call{method: "PUT", path: "/v1/users/a3/consent/channels/push", key: e.app(), body: `{"refused":true}`}), 200)
	want(t, e.do(call{method: "PUT", path: "/v1/users/a4/consent/personalization", key: e.app(), body: `{"enabled":false}`}), 200)
	want(t, e.do(call{method: "DELETE", path: "/v1/users/a5", key: e.app()}), 200)

	audience := func(q string) server.AudienceResponse {
		t.Helper()
		r := e.do(call{method: "GET", path: "/v1/admin/audience?" + q, key: e.admin()})
		want(t, r, 200)
		return decode[server.AudienceResponse](t, r)
	}
	// The index follows the changelog: wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for audience("segment=*&channel=push&targeted=false").Count != 4 { // a1 a2 a4 b1
		if time.Now().After(deadline) {
			t.Fatalf("audience never reached 4: %+v", audience("segment=*&channel=push&targeted=false"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	a := audience("segment=interest:ski&channel=push")
	if a.Count != 2 || !slices.Equal(a.Users, []string{"a1", "a2"}) || a.Next != "" || a.Segment != "interest:ski" ||
		a.Channel != "push" || !a.Targeted {
		t.Fatalf("ski audience %+v", a)
	}
	if a := audience("segment=interest:ski&channel=sms&targeted=false"); a.Count != 3 || a.Targeted { // a3 refused push only
		t.Fatalf("ski audience on sms %+v", a)
	}
	a = audience("segment=interest:ski%26!refused:sms&channel=push&limit=1")
	if a.Segment != "interest:ski & !refused:sms" || a.Count != 2 || len(a.Users) != 1 || a.Next == "" {
		t.Fatalf("page 1 %+v", a)
	}
	b := audience("segment=interest:ski%26!refused:sms&channel=push&limit=1&cursor=" + a.Next)
	if b.Count != 2 || len(b.Users) != 1 || b.Users[0] == a.Users[0] || b.Next != "" {
		t.Fatalf("page 2 %+v after %+v", b, a)
	}
	if a := audience("segment=interest:ski&channel=push&limit=0"); a.Count != 2 || a.Users == nil || len(a.Users) != 0 {
		t.Fatalf("count only %+v", a)
	}
	if a := audience("segment=interest:ski&channel=push&cursor=4294967295"); a.Count != 2 || len(a.Users) != 0 {
		t.Fatalf("past the end %+v", a)
	}
}

// TestMetrics: /metrics counts requests by route template, method and
// status, and decisions by reason.
func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.decision("m1")
	e.decision("m1")
	e.canPush("m1", "sms", false)
	want(t, e.do(call{method: "PUT", path: "/v1/users/m1/consent/personalization", key: e.app(), body: `{"enabled":false}`}), 200)
	e.decision("m1")
	wantProblem(t, e.do(call{method: "GET", path: "/v1/users/m1/decision", req: violates}), 401, "unauthenticated")
	wantProblem(t, e.do(call{method: "GET", path: "/v1/users/m1/decision", key: e.admin()}), 403, "forbidden")
	wantProblem(t, e.do(call{method: "GET", path: "/nope", noRoute: true}), 404, "not-found")
	want(t, e.do(call{method: "GET", path: "/v1/admin/settings", key: e.admin()}), 200)

	r := e.do(call{method: "GET", path: "/metrics"})
	want(t, r, 200)
	body := string(r.Body)
	for _, line := range []string{
		`recguard_http_requests_total{method="GET",route="/v1/users/:id/decision",status="200"} 3`,
		`recguard_http_requests_total{method="GET",route="/v1/users/:id/decision",status="401"} 1`,
		`recguard_http_requests_total{method="GET",route="/v1/users/:id/decision",status="403"} 1`,
		`recguard_http_requests_total{method="GET",route="/v1/users/:id/can-push",status="200"} 1`,
		`recguard_http_requests_total{method="PUT",route="/v1/users/:id/consent/personalization",status="200"} 1`,
		`recguard_http_requests_total{method="GET",route="/v1/admin/settings",status="200"} 1`,
		`recguard_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`recguard_decisions_total{reason="personalized"} 2`,
		`recguard_decisions_total{reason="allowed"} 1`,
		`recguard_decisions_total{reason="personalization_off"} 1`,
	} {
		if !strings.Contains(body, "\n"+line+"\n") {
			t.Errorf("metrics lack %s", line)
		}
	}
	if !regexp.MustCompile(`\nrecguard_http_request_duration_seconds_count\{route="/v1/users/:id/decision"\} 5\n`).MatchString(body) {
		t.Error("no latency histogram for the decision route")
	}
	// The metrics route counts itself too, next time.
	r = e.do(call{method: "GET", path: "/metrics"})
	if !strings.Contains(string(r.Body), `recguard_http_requests_total{method="GET",route="/metrics",status="200"} 1`) {
		t.Error("metrics do not count /metrics")
	}
}

// TestRightsReport: rights requests are counted by kind and outcome in the
// yearly report, as JSON and as CSV with the same numbers.
func TestRightsReport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const U = "/v1/users/r1"
	app := e.app()
	seq := []struct {
		c      call
		status int
	}{
		{call{method: "GET", path: U + "/consent"}, 200},                                                                          // access
		{call{method: "GET", path: U + "/tags"}, 200},                                                                             // access
		{call{method: "GET", path: U + "/receipts"}, 200},                                                                         // access
		{call{method: "PUT", path: U + "/consent/personalization", body: `{"enabled":false}`}, 200},                               // opt_out
		{call{method: "PUT", path: U + "/consent/personalization", body: `{"enabled":true}`}, 200},                                // consent
		{call{method: "PUT", path: U + "/consent/channels/sms", body: `{"refused":true}`}, 200},                                   // refuse_push
		{call{method: "PUT", path: U + "/consent/channels/sms", body: `{"refused":false}`}, 200},                                  // consent
		{call{method: "PUT", path: U + "/consent/channels/fax", body: `{"refused":true}`}, 422},                                   // refuse_push, rejected
		{call{method: "PUT", path: U + "/consent/sensitive/religion", body: `{"granted":true,"purpose":"personalization"}`}, 200}, // consent
		{call{method: "PUT", path: U + "/consent/sensitive/religion", body: `{"granted":false}`}, 200},                            // withdraw
		{call{method: "POST", path: U + "/tags", body: `{"tag":"interest:ski","source":"declared"}`}, 201},                        // correct
		{call{method: "POST", path: U + "/tags", body: `{"tag":"interest:golf","source":"inferred"}`}, 201},                       // not a rights request
		{call{method: "DELETE", path: U + "/tags/interest:ski"}, 200},                                                             // delete
		{call{method: "DELETE", path: U + "/tags/Bad", req: violates}, 422},                                                       // delete, rejected
		{call{method: "GET", path: U + "/export", header: verified}, 200},                                                         // portability
		{call{method: "DELETE", path: U}, 200},                                                                                    // erase
		{call{method: "GET", path: U + "/decision"}, 200},                                                                         // not a rights request
		{call{method: "GET", path: U + "/can-push?channel=sms"}, 200},                                                             // not a rights request
	}
	for _, s := range seq {
		c := s.c
		c.key = app
		if r := e.do(c); r.Status != s.status {
			t.Fatalf("%s %s: %s", c.method, c.path, r)
		}
	}
	// Not authenticated: not a handled rights request.
	wantProblem(t, e.do(call{method: "GET", path: U + "/consent", req: violates}), 401, "unauthenticated")
	// A request the service fails: close the client, then opt out.
	if err := e.client.Close(); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, e.do(call{method: "PUT", path: U + "/consent/personalization", key: app, body: `{"enabled":false}`}), 503, "unavailable")

	year := time.Now().UTC().Year()
	wantKinds := map[string][4]int{ // requests, fulfilled, rejected, failed
		"access":      {3, 3, 0, 0},
		"consent":     {3, 3, 0, 0},
		"correct":     {1, 1, 0, 0},
		"delete":      {2, 1, 1, 0},
		"erase":       {1, 1, 0, 0},
		"opt_out":     {2, 1, 0, 1},
		"portability": {1, 1, 0, 0},
		"refuse_push": {2, 1, 1, 0},
		"withdraw":    {1, 1, 0, 0},
	}
	r := e.do(call{method: "GET", path: fmt.Sprintf("/v1/admin/reports/rights?year=%d", year), key: e.admin()})
	want(t, r, 200)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || r.Header.Get("Content-Disposition") != "" {
		t.Errorf("JSON report headers %v", r.Header)
	}
	rep := decode[server.RightsReport](t, r)
	if rep.Year != year || rep.Total != 16 || len(rep.Kinds) != len(wantKinds) {
		t.Fatalf("report %+v", rep)
	}
	for i, k := range rep.Kinds {
		w, ok := wantKinds[k.Kind]
		if !ok || [4]int{k.Requests, k.Fulfilled, k.Rejected, k.Failed} != w {
			t.Errorf("kind %+v, want %v", k, w)
		}
		if i > 0 && rep.Kinds[i-1].Kind >= k.Kind {
			t.Errorf("kinds not sorted: %s before %s", rep.Kinds[i-1].Kind, k.Kind)
		}
		if k.MedianMS < 0 || k.P95MS < k.MedianMS {
			t.Errorf("kind %s: median %v p95 %v", k.Kind, k.MedianMS, k.P95MS)
		}
	}

	// CSV, by format=csv and by Accept.
	for _, c := range []call{
		{method: "GET", path: fmt.Sprintf("/v1/admin/reports/rights?year=%d&format=csv", year)},
		{method: "GET", path: fmt.Sprintf("/v1/admin/reports/rights?year=%d", year), header: map[string]string{"Accept": "text/csv"}},
	} {
		c.key = e.admin()
		r := e.do(c)
		want(t, r, 200)
		if ct := r.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
			t.Errorf("CSV Content-Type %q", ct)
		}
		if cd := r.Header.Get("Content-Disposition"); cd != fmt.Sprintf(`attachment; filename="rights-%d.csv"`, year) {
			t.Errorf("CSV Content-Disposition %q", cd)
		}
		rows, err := csv.NewReader(strings.NewReader(string(r.Body))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1+len(rep.Kinds) || !slices.Equal(rows[0], []string{"year", "kind", "requests", "fulfilled", "rejected", "failed", "median_ms", "p95_ms"}) {
			t.Fatalf("CSV %q", rows)
		}
		for i, k := range rep.Kinds {
			want := []string{strconv.Itoa(year), k.Kind, strconv.Itoa(k.Requests), strconv.Itoa(k.Fulfilled), strconv.Itoa(k.Rejected),
				strconv.Itoa(k.Failed), fmt.Sprintf("%.3f", k.MedianMS), fmt.Sprintf("%.3f", k.P95MS)}
			if !slices.Equal(rows[1+i], want) {
				t.Errorf("CSV row %q, want %q", rows[1+i], want)
			}
		}
	}

	// Another year has nothing.
	r = e.do(call{method: "GET", path: fmt.Sprintf("/v1/admin/reports/rights?year=%d", year-1), key: e.admin()})
	want(t, r, 200)
	if rep := decode[server.RightsReport](t, r); rep.Total != 0 || rep.Kinds == nil || len(rep.Kinds) != 0 {
		t.Fatalf("empty year %s", r.Body)
	}
	r = e.do(call{method: "GET", path: fmt.Sprintf("/v1/admin/reports/rights?year=%d&format=csv", year-1), key: e.admin()})
	want(t, r, 200)
	if string(r.Body) != "year,kind,requests,fulfilled,rejected,failed,median_ms,p95_ms\n" {
		t.Fatalf("empty CSV %q", r.Body)
	}
}
