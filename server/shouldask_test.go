package server_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/server"
)

// shouldAsk asks GET /v1/users/{user}/should-ask?kind=kind.
func (e *env) shouldAsk(user, kind string) server.ShouldAskResponse {
	e.t.Helper()
	r := e.do(call{method: "GET", path: "/v1/users/" + user + "/should-ask?kind=" + url.QueryEscape(kind), key: e.app()})
	want(e.t, r, 200)
	a := decode[server.ShouldAskResponse](e.t, r)
	if a.UserID != user || string(a.Kind) != kind || a.Ask != (a.Reason == server.AskMayAsk) || (a.NextAskAt != nil) != (a.Reason == server.AskCooldown) {
		e.t.Fatalf("should-ask %s: %s", kind, r.Body)
	}
	return a
}

// TestDeclinesAndShouldAsk (issue 11 item 5, Art. 22(5)): declining a
// consent never given answers 200 with a receipt and starts the re-ask
// cooldown (should-ask says no, cooldown, until when); a repeated "no"
// within the cooldown is a no-op; once it ran out the app may ask again,
// and a "no" then restarts it. Every kind is served; each answer is
// counted by kind class and logged without the user ID.
func TestDeclinesAndShouldAsk(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	var logs logBuffer
	e := newEnv(t, func(c *envConfig) {
		c.memNow, c.sdk.Now, c.srv.Now = clock.Now, clock.Now, clock.Now
		c.srv.Logger = logTo(&logs)
	})
	const u = "decliner-7"
	U := "/v1/users/" + u
	cooldown := consent.DefaultReaskCooldown

	// Never asked: the app may ask for a separate consent; what is in
	// force (personalization on, no channel refused, no guardian needed
	// for an adult) is not asked for.
	if a := e.shouldAsk(u, "sensitive:religion"); !a.Ask {
		t.Fatalf("a consent never asked for: %+v", a)
	}
	for _, k := range []string{"personalization", "channel:sms", "guardian"} {
		if a := e.shouldAsk(u, k); a.Ask || a.Reason != server.AskInForce {
			t.Errorf("%s in force: %+v", k, a)
		}
	}

	// The user declines a consent never given: recorded.
	decline := call{method: "PUT", path: U + "/consent/sensitive/religion", body: `{"granted":false,"surface":"app_settings"}`}
	t0 := clock.Now()
	cr := e.change(decline, 200, true)
	if rc := cr.Receipt; rc.Op != consent.OpSetSensitive || rc.Subject != "religion" || rc.Old != "none" || rc.New != "declined" || rc.Actor != consent.ActorUser {
		t.Fatalf("decline receipt %+v", rc)
	}
	if at, ok := cr.State.LastRefusal(consent.SensitiveKind("religion")); !ok || !at.Equal(t0) {
		t.Fatalf("decline state %+v", cr.State)
	}
	a := e.shouldAsk(u, "sensitive:religion")
	if a.Ask || a.Reason != server.AskCooldown || !a.NextAskAt.Equal(t0.Add(cooldown)) {
		t.Fatalf("right after the decline: %+v", a)
	}

	// A repeated "no" within the cooldown changes nothing and does not
	// restart it.
	clock.Advance(24 * time.Hour)
	before := e.snapshot(u)
	e.change(decline, 200, false)
	if after := e.snapshot(u); after.Records[u].Version != before.Records[u].Version || len(after.Receipts[u]) != len(before.Receipts[u]) {
		t.Fatalf("a repeated no within the cooldown wrote something: %+v -> %+v", before.Records[u], after.Records[u])
	}
	if a := e.shouldAsk(u, "sensitive:religion"); a.Ask || !a.NextAskAt.Equal(t0.Add(cooldown)) {
		t.Fatalf("after a repeated no: %+v", a)
	}

	// Until the cooldown ends, not a second before.
	clock.Advance(cooldown - 24*time.Hour - time.Second)
	if a := e.shouldAsk(u, "sensitive:religion"); a.Ask {
		t.Fatalf("a second before the cooldown ends: %+v", a)
	}
	clock.Advance(time.Second)
	if a := e.shouldAsk(u, "sensitive:religion"); !a.Ask || a.Reason != server.AskMayAsk {
		t.Fatalf("when the cooldown ends: %+v", a)
	}
	// A "no" after the cooldown is recorded and restarts it.
	t1 := clock.Now()
	e.change(decline, 200, true)
	if a := e.shouldAsk(u, "sensitive:religion"); a.Ask || !a.NextAskAt.Equal(t1.Add(cooldown)) {
		t.Fatalf("after a second no: %+v", a)
	}

	// The same for personalization and a channel, through their routes.
	e.change(call{method: "PUT", path: U + "/consent/personalization", body: `{"enabled":false}`}, 200, true)
	e.change(call{method: "PUT", path: U + "/consent/channels/sms", body: `{"refused":true}`}, 200, true)
	for _, k := range []string{"personalization", "channel:sms"} {
		if a := e.shouldAsk(u, k); a.Ask || a.Reason != server.AskCooldown {
			t.Errorf("%s after a no: %+v", k, a)
		}
	}
	e.change(call{method: "PUT", path: U + "/consent/personalization", body: `{"enabled":false}`}, 200, false)
	// A longer cooldown in the settings applies to the "no"s already given.
	set, _ := e.mem.Settings(e.ctx)
	e.saved(e.patchSettings("", map[string]any{"version": set.Version, "reask_cooldown": "2160h"}))
	if a := e.shouldAsk(u, "personalization"); !a.NextAskAt.Equal(clock.Now().Add(90 * 24 * time.Hour)) {
		t.Errorf("after a longer cooldown: %+v", a)
	}

	// While suspended nothing is asked.
	want(t, e.do(call{method: "PUT", path: "/v1/admin/suspension", key: e.admin(), body: `{"suspended":true,"reason":"order 3"}`}), 200)
	if a := e.shouldAsk(u, "sensitive:whereabouts"); a.Ask || a.Reason != server.AskSuspended {
		t.Errorf("while suspended: %+v", a)
	}
	want(t, e.do(call{method: "PUT", path: "/v1/admin/suspension", key: e.admin(), body: `{"suspended":false}`}), 200)

	// Counted by kind class, never by the raw kind; logged without the user.
	r := e.do(call{method: "GET", path: "/metrics"})
	want(t, r, 200)
	for _, line := range []string{
		`recguard_should_ask_total{answer="cooldown",kind_class="sensitive"} 4`,
		`recguard_should_ask_total{answer="may_ask",kind_class="sensitive"} 2`,
		`recguard_should_ask_total{answer="in_force",kind_class="channel"} 1`,
		`recguard_should_ask_total{answer="cooldown",kind_class="personalization"} 2`,
		`recguard_should_ask_total{answer="suspended",kind_class="sensitive"} 1`,
	} {
		if !strings.Contains(string(r.Body), line) {
			t.Errorf("metrics lack %s", line)
		}
	}
	if strings.Contains(string(r.Body), "religion") || strings.Contains(string(r.Body), "sms\"") {
		t.Errorf("a raw kind in the metrics")
	}
	lines := logs.lines(t, "should-ask")
	if len(lines) != 13 {
		t.Errorf("%d should-ask lines, want one per answer (13)", len(lines))
	}
	for _, l := range lines {
		if l["key_id"] != e.keyIDs[server.RoleApp] || l["kind"] == nil || l["ask"] == nil || l["reason"] == nil || l["request_id"] == "" {
			t.Errorf("should-ask line %v", l)
		}
	}
	if strings.Contains(logs.String(), u) {
		t.Errorf("the user ID is in the log:\n%s", logs.String())
	}
}

// TestReaskCooldownMinimum: settings refuse a re-ask cooldown under 24h
// (422, field reask_cooldown), through PUT and PATCH, also with
// allow_weakening; 24h itself is accepted (with it, as it shortens the
// default).
func TestReaskCooldownMinimum(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	set, _ := e.mem.Settings(e.ctx)
	for _, d := range []string{"0s", "1h", "23h59m59s"} {
		for _, q := range []string{"", "?allow_weakening=true"} {
			doc := settingsDoc(t, set)
			doc["reask_cooldown"] = d
			if p := e.rejected(call{method: "PUT", path: "/v1/admin/settings" + q, key: e.admin(), body: doc}, 422, "invalid-value"); p.Field != "reask_cooldown" {
				t.Errorf("PUT %s: %+v", d, p)
			}
			if p := e.rejected(call{method: "PATCH", path: "/v1/admin/settings" + q, key: e.admin(), ctype: mergePatch,
				body: map[string]any{"version": set.Version, "reask_cooldown": d}}, 422, "invalid-value"); p.Field != "reask_cooldown" {
				t.Errorf("PATCH %s: %+v", d, p)
			}
		}
	}
	e.rejected(call{method: "PATCH", path: "/v1/admin/settings", key: e.admin(), ctype: mergePatch,
		body: map[string]any{"version": set.Version, "reask_cooldown": "24h"}}, 409, "weakens-consent-rules")
	sr := e.saved(e.patchSettings("?allow_weakening=true", map[string]any{"version": set.Version, "reask_cooldown": "24h"}))
	if sr.Settings.ReaskCooldown != consent.MinReaskCooldown {
		t.Fatalf("%+v", sr.Settings)
	}
}
