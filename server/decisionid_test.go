package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store"
)

// getDecision asks GET /v1/users/{user}/decision.
func (e *env) getDecision(user string) server.DecisionResponse {
	e.t.Helper()
	r := e.do(call{method: "GET", path: "/v1/users/" + user + "/decision", key: e.app()})
	want(e.t, r, 200)
	return decode[server.DecisionResponse](e.t, r)
}

// getCanPush asks GET /v1/users/{user}/can-push.
func (e *env) getCanPush(user, channel string, targeted bool) server.CanPushResponse {
	e.t.Helper()
	r := e.do(call{method: "GET", path: fmt.Sprintf("/v1/users/%s/can-push?channel=%s&targeted=%t", user, channel, targeted), key: e.app()})
	want(e.t, r, 200)
	return decode[server.CanPushResponse](e.t, r)
}

// outcomes returns the events the store's outcome log holds.
func (e *env) outcomes() []map[string]any {
	e.t.Helper()
	var out []map[string]any
	if err := e.mem.ReadOutcomes(context.Background(), func(b []byte) error {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		out = append(out, m)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// Decisions and push answers carry their basis over HTTP: the record and
// settings versions, the reason, when, and a decision ID signed under the
// key derived from the chain key, which says the same.
func TestDecisionBasisOverHTTP(t *testing.T) {
	e := newEnv(t)
	key := consent.DecisionKey(testChainKey)
	sv := e.client.Settings().Version

	d := e.getDecision("dora")
	if !d.Personalized || d.RecordVersion != 0 || d.SettingsVersion != sv || d.DecisionID == "" || d.DecidedAt.IsZero() {
		t.Fatalf("new user: %+v; want personalized on record v0, settings v%d, with an ID and a time", d, sv)
	}
	sd, err := consent.VerifyDecisionID(key, "dora", d.DecisionID)
	if err != nil || sd.Kind != consent.DecisionRecommend || !sd.Personalized || sd.Reason != consent.ReasonPersonalized ||
		sd.RecordVersion != 0 || sd.SettingsVersion != sv || !sd.At.Equal(d.DecidedAt) || sd.ID.IsZero() {
		t.Fatalf("decision_id says %+v (%v); want the answer's basis", sd, err)
	}
	if again := e.getDecision("dora"); again.DecisionID == d.DecisionID {
		t.Fatal("two answers share a decision_id")
	}

	want(t, e.do(call{method: "PUT", path: "/v1/users/dora/consent/personalization", key: e.app(), body: map[string]any{"enabled": false}}), 200)
	d = e.getDecision("dora")
	sd, err = consent.VerifyDecisionID(key, "dora", d.DecisionID)
	if d.Personalized || d.Reason != consent.ReasonOptedOut || d.RecordVersion != 1 || err != nil || sd.Personalized || sd.Reason != consent.ReasonOptedOut || sd.RecordVersion != 1 {
		t.Fatalf("after the opt-out: %+v, ID says %+v (%v); want personalization_off on record v1", d, sd, err)
	}

	// A settings change moves the settings version of every answer.
	r := e.do(call{method: "PATCH", path: "/v1/admin/settings", key: e.admin(), ctype: "application/merge-patch+json", body: map[string]any{"version": sv, "channels": []string{"push", "sms", "email", "wechat"}}})
	want(t, r, 200)
	if d = e.getDecision("dora"); d.SettingsVersion != sv+1 {
		t.Fatalf("after a settings change: settings version %d, want %d", d.SettingsVersion, sv+1)
	}

	p := e.getCanPush("dora", "push", true)
	sd, err = consent.VerifyDecisionID(key, "dora", p.DecisionID)
	if p.Allowed || p.Reason != consent.ReasonOptedOut || p.RecordVersion != 1 || p.SettingsVersion != sv+1 || err != nil ||
		sd.Kind != consent.DecisionPush || sd.Allowed || sd.Channel != "push" || !sd.Targeted || sd.RecordVersion != 1 || sd.SettingsVersion != sv+1 || !sd.At.Equal(p.DecidedAt) {
		t.Fatalf("targeted push after the opt-out: %+v, ID says %+v (%v)", p, sd, err)
	}
	p = e.getCanPush("dora", "sms", false)
	if sd, err = consent.VerifyDecisionID(key, "dora", p.DecisionID); !p.Allowed || err != nil || !sd.Allowed || sd.Channel != "sms" || sd.Targeted {
		t.Fatalf("untargeted sms push: %+v, ID says %+v (%v)", p, sd, err)
	}
	if _, err := consent.VerifyDecisionID(key, "dora2", p.DecisionID); err == nil {
		t.Fatal("dora's decision_id verified for dora2")
	}
}

// POST /v1/events verifies the decision_id an event carries: a valid one
// makes the event decided (its mode filled in when absent), a forged,
// altered, malformed one or one issued for another user is 400
// problem+json, and nothing of the batch is stored.
func TestEventsDecisionID(t *testing.T) {
	e := newEnv(t)
	want(t, e.do(call{method: "PUT", path: "/v1/users/otto/consent/personalization", key: e.app(), body: map[string]any{"enabled": false}}), 200)
	ann, otto := e.getDecision("ann"), e.getDecision("otto")
	push := e.getCanPush("ann", "push", true)
	at := ann.DecidedAt.Add(time.Second)
	ev := func(user, id string, mode string) map[string]any {
		m := map[string]any{"user": user, "item": "sku1", "time": at, "rank": 1}
		if id != "" {
			m["decision_id"] = id
		}
		if mode != "" {
			m["mode"] = mode
		}
		return m
	}
	post := func(req conformance, evs ...map[string]any) result {
		t.Helper()
		return e.do(call{method: "POST", path: "/v1/events", key: e.app(), body: map[string]any{"events": evs}, req: req})
	}
	stored := func(n int) {
		t.Helper()
		if got := len(e.outcomes()); got != n {
			t.Fatalf("the outcome log holds %d events, want %d", got, n)
		}
	}

	// Valid: decided, the mode taken from the decision when absent, the ID
	// itself not stored.
	r := post(conforms, ev("ann", ann.DecisionID, ""), ev("ann", ann.DecisionID, "non_personalized"), ev("otto", otto.DecisionID, "non_personalized"), ev("otto", "", "non_personalized"))
	want(t, r, 202)
	if got := decode[server.EventsResponse](t, r); got.Accepted != 4 || got.Decided != 3 {
		t.Fatalf("answer %+v, want 4 accepted, 3 decided", got)
	}
	out := e.outcomes()
	if len(out) != 4 {
		t.Fatalf("%d events stored, want 4", len(out))
	}
	modes := map[string]int{}
	for _, o := range out {
		if _, ok := o["decision_id"]; ok {
			t.Fatalf("stored event %v keeps its decision_id", o)
		}
		modes[fmt.Sprint(o["user"], " ", o["mode"])]++
	}
	if modes["ann personalized"] != 1 || modes["ann non_personalized"] != 1 || modes["otto non_personalized"] != 2 {
		t.Fatalf("stored modes %v", modes)
	}

	// Refused with 400, nothing of the batch stored.
	flip := func(id string, i int) string {
		b := []byte(id)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(ann.DecisionID)
	raw[len(raw)-17] ^= 1 // the last byte of the answer's ID
	forged := base64.RawURLEncoding.EncodeToString(raw)
	for _, c := range []struct {
		what string
		ev   map[string]any
		req  conformance
	}{
		{"replayed for another user", ev("otto", ann.DecisionID, "personalized"), conforms},
		{"replayed for another user, mode from the decision", ev("otto", ann.DecisionID, ""), conforms},
		{"tampered (a character changed)", ev("ann", flip(ann.DecisionID, 10), ""), conforms},
		{"tampered (the answer's ID changed)", ev("ann", forged, ""), conforms},
		{"forged (an opt-out's ID turned personalized)", ev("otto", strings.Replace(otto.DecisionID, otto.DecisionID[:4], "AQEB", 1), "personalized"), conforms},
		{"truncated", ev("ann", ann.DecisionID[:len(ann.DecisionID)-3], ""), conforms},
		{"random", ev("ann", base64.RawURLEncoding.EncodeToString(make([]byte, 46)), ""), conforms},
		{"not base64url", ev("ann", strings.Repeat("!", 60), ""), violates},
		{"not a string", ev("ann", "", "personalized"), violates},
	} {
		if c.what == "not a string" {
			c.ev["decision_id"] = 12345
		}
		// The bad event second, after a good one: the batch is refused whole.
		p := wantProblem(t, post(c.req, ev("ann", ann.DecisionID, ""), c.ev), 400, "malformed-request")
		if p.Field != "events.1.decision_id" || !strings.Contains(p.Detail, "events[1]") {
			t.Errorf("%s: problem %+v, want field events.1.decision_id naming events[1]", c.what, p)
		}
		stored(4)
	}

	// Valid IDs the event misuses: 422, nothing stored.
	for _, c := range []struct {
		what string
		ev   map[string]any
	}{
		{"a push answer's ID", ev("ann", push.DecisionID, "")},
		{"an event long before its decision", func() map[string]any {
			m := ev("ann", ann.DecisionID, "")
			m["time"] = ann.DecidedAt.Add(-server.DecisionSkew - time.Second)
			return m
		}()},
	} {
		p := wantProblem(t, post(conforms, ev("ann", ann.DecisionID, ""), c.ev), 422, "invalid-value")
		if p.Field != "events" || !strings.Contains(p.Detail, "events[1]") {
			t.Errorf("%s: problem %+v, want field events naming events[1]", c.what, p)
		}
		stored(4)
	}
	// Within the allowed skew: accepted.
	m := ev("ann", ann.DecisionID, "")
	m["time"] = ann.DecidedAt.Add(-server.DecisionSkew + time.Second)
	want(t, post(conforms, m), 202)
	stored(5)
	// An event with neither mode nor decision_id is not valid.
	wantProblem(t, post(violates, ev("ann", "", "")), 422, "invalid-value")
	stored(5)

	// A personalized exposure declared under a decision that was not
	// (otto opted out): the app's own word against the decision. It is
	// recorded as declared, counted as contradicted (not decided), and the
	// ledger marks it for the enforcement audit.
	before := len(e.ledger())
	r = post(conforms, ev("otto", otto.DecisionID, "personalized"))
	want(t, r, 202)
	er := decode[server.EventsResponse](t, r)
	if er.Accepted != 1 || er.Decided != 0 || er.Contradicted != 1 {
		t.Errorf("contradicting event: %+v, want accepted 1, decided 0, contradicted 1", er)
	}
	stored(6)
	led := e.ledger()
	if len(led) != before+1 {
		t.Fatalf("ledger: %d entries, want %d", len(led), before+1)
	}
	x := led[len(led)-1]
	if !x.Contradicted || x.Decided || x.Mode != store.ModePersonalized || x.UserID != "otto" || x.Reason != consent.ReasonOptedOut || x.DecisionID.IsZero() {
		t.Errorf("contradicting event's ledger entry %+v: want contradicted, not decided, personalized, otto, reason personalization_off, with its decision ID", x)
	}
}

// An ID verifies on every instance that shares the deployment secret (the
// chain key, or a DecisionSecret of its own), and on no other deployment.
// Without either, each process signs under a random secret of its own.
func TestDecisionIDAcrossInstances(t *testing.T) {
	a, b := newEnv(t), newEnv(t) // the same chain key
	other := newEnv(t, func(c *envConfig) { c.chainKey = []byte("another deployment's chain key!!") })
	own := newEnv(t, func(c *envConfig) { c.srv.DecisionSecret = []byte("a decision secret of its own....") })
	unkeyed := newEnv(t, func(c *envConfig) { c.srv.ChainKey = []byte{} })
	unkeyed2 := newEnv(t, func(c *envConfig) { c.srv.ChainKey = []byte{} })

	post := func(e *env, id string) result {
		t.Helper()
		return e.do(call{method: "POST", path: "/v1/events", key: e.app(), body: map[string]any{"events": []map[string]any{
			{"user": "ivy", "item": "sku9", "time": time.Now().UTC(), "decision_id": id}}}})
	}
	fromA := a.getDecision("ivy").DecisionID
	want(t, post(b, fromA), 202)
	wantProblem(t, post(other, fromA), 400, "malformed-request")
	wantProblem(t, post(own, fromA), 400, "malformed-request")

	fromOwn := own.getDecision("ivy").DecisionID
	if _, err := consent.VerifyDecisionID(consent.DecisionKey([]byte("a decision secret of its own....")), "ivy", fromOwn); err != nil {
		t.Fatalf("an ID of the instance with its own secret does not verify under it: %v", err)
	}
	want(t, post(own, fromOwn), 202)
	wantProblem(t, post(a, fromOwn), 400, "malformed-request")

	fromUnkeyed := unkeyed.getDecision("ivy").DecisionID
	want(t, post(unkeyed, fromUnkeyed), 202)
	wantProblem(t, post(unkeyed2, fromUnkeyed), 400, "malformed-request")

	if err := (server.Config{DecisionSecret: []byte("short")}).Validate(); err == nil {
		t.Fatal("a 5-byte DecisionSecret validated")
	}
}
