package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store"
)

// ledger returns what the env's store ledger holds once the client's
// queue has been written.
func (e *env) ledger() []store.LedgerEntry {
	e.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		s := e.client.Stats()
		if s.LedgerQueued == 0 {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatal("the ledger queue did not drain")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(150 * time.Millisecond) // a batch taken off the queue is written
	var out []store.LedgerEntry
	if err := e.mem.ScanLedger(context.Background(), time.Time{}, time.Time{}, func(l store.LedgerEntry) error {
		out = append(out, l)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func TestPushEvents(t *testing.T) {
	e := newEnv(t)
	want(t, e.do(call{method: "PUT", path: "/v1/users/otto/consent/channels/sms", key: e.app(), body: map[string]any{"refused": true}}), 200)
	ann := e.getCanPush("ann", "sms", true)
	otto := e.getCanPush("otto", "sms", false)
	dec := e.getDecision("ann")
	at := ann.DecidedAt.Add(time.Second)
	post := func(req conformance, evs ...map[string]any) result {
		t.Helper()
		return e.do(call{method: "POST", path: "/v1/events", key: e.app(), body: map[string]any{"events": evs}, req: req})
	}
	push := func(user, ch string, targeted bool, id string) map[string]any {
		m := map[string]any{"kind": "push", "user": user, "time": at, "channel": ch, "targeted": targeted, "campaign": "spring-26"}
		if id != "" {
			m["decision_id"] = id
		}
		return m
	}
	outcome := map[string]any{"user": "ann", "item": "sku1", "time": at, "mode": "non_personalized"}

	// Bad pushes: 400 naming the member, nothing of the batch recorded
	// (the valid outcome event beside them neither).
	for _, c := range []struct {
		what, field string
		ev          map[string]any
		req         conformance
	}{
		{"unknown channel", "events.1.channel", push("ann", "fax", false, ""), conforms},
		{"missing user", "events.1.user", without(push("ann", "sms", false, ""), "user"), violates},
		{"missing time", "events.1.time", without(push("ann", "sms", false, ""), "time"), violates},
		{"missing channel", "events.1.channel", without(push("ann", "sms", false, ""), "channel"), violates},
		{"missing targeted", "events.1.targeted", without(push("ann", "sms", false, ""), "targeted"), violates},
		{"bad user", "events.1.user", push("a b", "sms", false, ""), violates},
		{"bad campaign", "events.1.campaign", with(push("ann", "sms", false, ""), "campaign", "spring sale"), violates},
		{"unknown member", "events.1", with(push("ann", "sms", false, ""), "item", "sku1"), violates},
		{"targeted not a boolean", "events.1.targeted", with(push("ann", "sms", false, ""), "targeted", "yes"), violates},
		{"unknown kind", "events.1.kind", with(push("ann", "sms", false, ""), "kind", "email"), violates},
		{"a decision's ID, not a push answer's", "events.1.decision_id", push("ann", "sms", true, dec.DecisionID), conforms},
		{"another user's push answer", "events.1.decision_id", push("otto", "sms", true, ann.DecisionID), conforms},
		{"a push answer for another channel", "events.1.decision_id", push("ann", "push", true, ann.DecisionID), conforms},
		{"a forged decision_id", "events.1.decision_id", push("ann", "sms", true, ann.DecisionID[:20]+"AAAA"+ann.DecisionID[24:]), conforms},
		{"before its decision", "events.1.time", with(push("ann", "sms", true, ann.DecisionID), "time", ann.DecidedAt.Add(-time.Hour)), conforms},
	} {
		t.Run(c.what, func(t *testing.T) {
			p := e.rejected(call{method: "POST", path: "/v1/events", key: e.app(), body: map[string]any{"events": []any{outcome, c.ev}}, req: c.req}, 400, "malformed-request", "ann", "otto")
			if p.Field != c.field {
				t.Errorf("field %q, want %q (%s)", p.Field, c.field, p.Detail)
			}
		})
	}
	if n := len(e.ledger()); n != 0 {
		t.Fatalf("after bad pushes the ledger holds %d entries", n)
	}
	if n := len(e.outcomes()); n != 0 {
		t.Fatalf("after bad pushes the outcome log holds %d events", n)
	}

	// Good ones: a decided push on an allowed channel, an undecided one, a
	// push on a refused channel under its (refusing) answer, and an outcome
	// event (an exposure in the ledger).
	r := post(conforms, push("ann", "sms", true, ann.DecisionID), push("ann", "email", false, ""), push("otto", "sms", false, otto.DecisionID), outcome)
	want(t, r, 202)
	got := decode[server.EventsResponse](t, r)
	if got.Accepted != 4 || got.Pushes != 3 || got.Decided != 2 || got.LedgerDropped != 0 {
		t.Fatalf("answer %+v, want 4 accepted, 3 pushes, 2 decided", got)
	}
	led := e.ledger()
	if len(led) != 4 {
		t.Fatalf("the ledger holds %d entries, want 4: %+v", len(led), led)
	}
	by := map[string]store.LedgerEntry{}
	for _, l := range led {
		by[l.Kind.String()+"/"+l.UserID+"/"+l.Channel] = l
	}
	if p := by["push/ann/sms"]; !p.Decided || p.Mode != store.ModeAllowed || !p.Targeted || p.Campaign != "spring-26" || p.Surface != "http" || p.DecisionID.IsZero() || !p.At.Equal(at) {
		t.Errorf("ann's decided push = %+v", p)
	}
	if p := by["push/ann/email"]; p.Decided || p.Mode != "" {
		t.Errorf("ann's undecided push = %+v", p)
	}
	if p := by["push/otto/sms"]; !p.Decided || p.Mode != store.ModeRefused || p.Reason != consent.ReasonChannelRefused {
		t.Errorf("otto's push on a refused channel = %+v, want recorded as refused", p)
	}
	if x := by["exposure/ann/"]; x.Decided || x.Mode != store.ModeNonPersonalized || x.Items != 1 || x.Surface != "http" {
		t.Errorf("the outcome event's exposure = %+v", x)
	}
	// The user's export holds them.
	r = e.do(call{method: "GET", path: "/v1/users/ann/export", key: e.app(), header: map[string]string{"X-Identity-Verification": "password"}})
	want(t, r, 200)
	if !strings.Contains(string(r.Body), `"ledger":[`) || !strings.Contains(string(r.Body), `"campaign":"spring-26"`) {
		t.Errorf("ann's export lacks her ledger entries: %s", r.Body)
	}
	// Metrics.
	r = e.do(call{method: "GET", path: "/metrics"})
	for _, m := range []string{`recguard_ledger_dropped_total{kind="push"} 0`, "recguard_ledger_written_total 4", "recguard_ledger_queued 0"} {
		if !strings.Contains(string(r.Body), m) {
			t.Errorf("metrics lack %q", m)
		}
	}
}

func TestPushEventsWithoutLedger(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.noLedger = true })
	e.rejected(call{method: "POST", path: "/v1/events", key: e.app(), body: map[string]any{"events": []any{
		map[string]any{"kind": "push", "user": "ann", "time": time.Now(), "channel": "sms", "targeted": false},
	}}}, 501, "unavailable", "ann")
}

func TestAudienceExportIsAProvision(t *testing.T) {
	e := newEnv(t)
	for _, u := range []string{"a1", "a2", "a3"} {
		want(t, e.do(call{method: "POST", path: "/v1/users/" + u + "/tags", key: e.app(), body: map[string]any{"tag": "interest:ski", "source": "declared"}}), 201)
	}
	for deadline := time.Now().Add(3 * time.Second); ; {
		r := e.do(call{method: "GET", path: "/v1/admin/audience?segment=interest:ski&channel=sms&limit=0", key: e.admin()})
		if decode[server.AudienceResponse](t, r).Count == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the audience did not reach 3 users")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A count only hands nothing out: no provision.
	if n := len(e.ledger()); n != 0 {
		t.Fatalf("a count made %d ledger entries", n)
	}
	r := e.do(call{method: "GET", path: "/v1/admin/audience?segment=interest:ski&channel=sms&limit=2&recipient=vendor-x&purpose=spring-campaign", key: e.admin()})
	want(t, r, 200)
	a := decode[server.AudienceResponse](t, r)
	r = e.do(call{method: "GET", path: "/v1/admin/audience?segment=interest:ski&channel=sms&limit=2&cursor=" + a.Next, key: e.admin()})
	want(t, r, 200)
	led := e.ledger()
	if len(led) != 2 {
		t.Fatalf("two pages made %d provision records, want 2: %+v", len(led), led)
	}
	p0, p1 := led[0], led[1]
	if p0.Kind != store.LedgerProvision || p0.Recipient != "vendor-x" || p0.Purpose != "spring-campaign" || p0.Count != 2 || p0.Segment != "interest:ski" || p0.Channel != "sms" || !p0.Targeted || p0.UserID != "" {
		t.Errorf("first page's provision = %+v", p0)
	}
	if p1.Count != 1 || p1.Recipient != "key_"+e.keyIDs[server.RoleAdmin] || p1.Purpose != "push" {
		t.Errorf("second page's provision (defaults) = %+v", p1)
	}
	p := e.rejected(call{method: "GET", path: "/v1/admin/audience?segment=interest:ski&channel=sms&recipient=a%20b", key: e.admin(), req: violates}, 422, "invalid-value")
	if p.Field != "recipient" {
		t.Errorf("field %q, want recipient", p.Field)
	}
}

func with(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

func without(m map[string]any, k string) map[string]any {
	out := map[string]any{}
	for a, b := range m {
		if a != k {
			out[a] = b
		}
	}
	return out
}

// Events may report the tags a recommendation or a push was chosen by: the
// ledger keeps them (the outcome log does not), for the enforcement audit.
// A malformed list is 400 naming events.<i>.tags, and nothing of the batch
// is recorded.
func TestEventTags(t *testing.T) {
	e := newEnv(t)
	at := time.Now().UTC().Truncate(time.Millisecond)
	post := func(req conformance, evs ...map[string]any) result {
		t.Helper()
		return e.do(call{method: "POST", path: "/v1/events", key: e.app(), body: map[string]any{"events": evs}, req: req})
	}
	outcome := func(ts any) map[string]any {
		m := map[string]any{"user": "ann", "item": "sku1", "time": at, "mode": "personalized"}
		if ts != nil {
			m["tags"] = ts
		}
		return m
	}
	push := func(ts any) map[string]any {
		m := map[string]any{"kind": "push", "user": "ann", "time": at, "channel": "sms", "targeted": true}
		if ts != nil {
			m["tags"] = ts
		}
		return m
	}
	for _, c := range []struct {
		what  string
		bad   map[string]any
		field string
		req   conformance
	}{
		{"an outcome's tag of bad syntax", outcome([]string{"Not A Tag"}), "events.1.tags", conforms},
		{"an outcome's tags not a list", outcome("interest:ski"), "events.1.tags", violates},
		{"an outcome with 65 tags", outcome(make([]string, 65)), "events.1.tags", violates},
		{"a push's tag of bad syntax", push([]string{"interest:"}), "events.1.tags", conforms},
		{"a push's tags not strings", push([]int{1}), "events.1.tags", violates},
	} {
		p := wantProblem(t, post(c.req, outcome(nil), c.bad), 400, "malformed-request")
		if p.Field != c.field {
			t.Errorf("%s: field %q, want %q", c.what, p.Field, c.field)
		}
	}
	if n := len(e.outcomes()); n != 0 {
		t.Fatalf("after refused batches %d outcome events are stored", n)
	}
	if n := len(e.ledger()); n != 0 {
		t.Fatalf("after refused batches the ledger holds %d entries", n)
	}
	want(t, post(conforms, outcome([]string{"interest:ski", "health:diabetes"}), push([]string{"interest:golf"})), 202)
	led := e.ledger()
	if len(led) != 2 {
		t.Fatalf("ledger: %d entries, want 2", len(led))
	}
	got := map[store.LedgerKind]string{}
	for _, x := range led {
		got[x.Kind] = fmt.Sprint(x.Tags)
	}
	if got[store.LedgerExposure] != "[interest:ski health:diabetes]" || got[store.LedgerPush] != "[interest:golf]" {
		t.Errorf("ledger tags %v", got)
	}
	// The outcome log keeps the event without its tags.
	if evs := e.outcomes(); len(evs) != 1 || evs[0]["tags"] != nil {
		t.Errorf("outcome log: %v, want one event without tags", evs)
	}
}
