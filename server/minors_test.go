package server_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/tags"
)

// rightsRequests is the number of rights requests of kind in this year's
// Art. 44 report.
func (e *env) rightsRequests(kind string) int {
	e.t.Helper()
	r := e.do(call{method: "GET", path: fmt.Sprintf("/v1/admin/reports/rights?year=%d", time.Now().UTC().Year()), key: e.admin()})
	want(e.t, r, 200)
	for _, k := range decode[server.RightsReport](e.t, r).Kinds {
		if k.Kind == kind {
			return k.Requests
		}
	}
	return 0
}

// TestMinorsAndGuardians (issue 11 item 3): a minor is marked over HTTP
// (by the system unless the body says who, with a reference in the
// receipt); only the user or the guardian may make a minor an adult; the
// guardian's consent is recorded with the guardian's reference, after
// which by_guardian on the sensitive consent route works for the minor
// (it was always 409 before, as no route could mark a minor); the
// guardian's withdrawal stops personalization again.
func TestMinorsAndGuardians(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const u = "kid"
	U := "/v1/users/" + u
	grantByGuardian := `{"granted":true,"purpose":"personalization","by_guardian":true}`

	// An adult: the guardian has nothing to consent to.
	e.rejected(call{method: "PUT", path: U + "/consent/sensitive/religion", key: e.app(), body: grantByGuardian}, 409, "not-allowed", u)
	e.rejected(call{method: "PUT", path: U + "/consent/guardian", key: e.app(), body: `{"granted":true,"ref":"guardian-7"}`}, 409, "not-allowed", u)
	// Withdrawing a guardian consent an adult never needed changes nothing.
	e.change(call{method: "PUT", path: U + "/consent/guardian", body: `{"granted":false}`}, 200, false)

	// The system marks a minor; the receipt keeps the reference.
	correct := e.rightsRequests("correct")
	cr := e.change(call{method: "PUT", path: U + "/minor", body: `{"minor":true,"ref":"age-check-42"}`}, 200, true)
	if rc := cr.Receipt; !cr.State.Minor || rc.Op != consent.OpSetMinor || rc.Actor != consent.ActorSystem || rc.Ref != "age-check-42" ||
		rc.Old != "adult" || rc.New != "minor" {
		t.Fatalf("marking a minor: %+v %+v", cr.State, rc)
	}
	if n := e.rightsRequests("correct"); n != correct {
		t.Errorf("the system marking a minor was logged as a rights request (%d -> %d)", correct, n)
	}
	if d := e.decision(u); d.Personalized || d.Reason != consent.ReasonMinorNoGuardian {
		t.Fatalf("a minor without guardian consent: %+v", d)
	}
	if a := e.shouldAsk(u, "guardian"); !a.Ask || a.Reason != server.AskMayAsk {
		t.Errorf("should-ask guardian for a minor without it: %+v", a)
	}
	// The minor's own sensitive consent does not count; an admin or the
	// system may not make the minor an adult.
	e.rejected(call{method: "PUT", path: U + "/consent/sensitive/religion", key: e.app(), body: `{"granted":true,"purpose":"personalization"}`}, 409, "consent-required", u)
	for _, by := range []string{`"by":"admin",`, `"by":"system",`, ``} {
		e.rejected(call{method: "PUT", path: U + "/minor", key: e.app(), body: `{` + by + `"minor":false}`}, 409, "not-allowed", u)
	}

	// The guardian consents, with the guardian's reference.
	cr = e.change(call{method: "PUT", path: U + "/consent/guardian", body: `{"granted":true,"ref":"guardian-7","surface":"web"}`}, 200, true)
	if g, rc := cr.State.Guardian, cr.Receipt; g == nil || !g.Granted || !g.ByGuardian || rc.Actor != consent.ActorGuardian ||
		rc.Ref != "guardian-7" || rc.Op != consent.OpSetGuardian || rc.Surface != "web" || rc.Purpose != consent.PurposeGuardian {
		t.Fatalf("guardian consent: %+v %+v", g, rc)
	}
	if d := e.decision(u); !d.Personalized {
		t.Fatalf("a minor with guardian consent: %+v", d)
	}
	if a := e.shouldAsk(u, "guardian"); a.Ask || a.Reason != server.AskInForce {
		t.Errorf("should-ask guardian once given: %+v", a)
	}
	// by_guardian now works for the minor (it always got 409 before).
	cr = e.change(call{method: "PUT", path: U + "/consent/sensitive/religion", body: grantByGuardian}, 200, true)
	if g, ok := cr.State.SensitiveGrant(tags.Religion); !ok || !g.Granted || !g.ByGuardian || cr.Receipt.Actor != consent.ActorGuardian {
		t.Fatalf("the guardian's sensitive consent: %+v %+v", cr.State, cr.Receipt)
	}
	e.change(call{method: "POST", path: U + "/tags", body: `{"tag":"religion:buddhism","source":"declared"}`}, 201, true)
	if d := e.decision(u); !d.Personalized || !slices.Contains(d.Tags, tags.MustParse("religion:buddhism")) {
		t.Fatalf("the minor's sensitive tag with the guardian's consent: %+v", d)
	}

	// The guardian withdraws: nothing is personalized, and not asked again
	// within the cooldown.
	cr = e.change(call{method: "PUT", path: U + "/consent/guardian", body: `{"granted":false,"ref":"guardian-7"}`}, 200, true)
	if rc := cr.Receipt; rc.New != "withdrawn" || rc.Ref != "guardian-7" || rc.Actor != consent.ActorGuardian {
		t.Fatalf("withdrawal receipt %+v", rc)
	}
	if d := e.decision(u); d.Personalized || d.Reason != consent.ReasonMinorNoGuardian {
		t.Fatalf("after the guardian's withdrawal: %+v", d)
	}
	if a := e.shouldAsk(u, "guardian"); a.Ask || a.Reason != server.AskCooldown || a.NextAskAt == nil {
		t.Errorf("should-ask guardian after the withdrawal: %+v", a)
	}
	// Marking a minor twice changes nothing.
	e.change(call{method: "PUT", path: U + "/minor", body: `{"minor":true}`}, 200, false)

	// The user, now 14, makes themself an adult: a correction (Art. 44).
	correct = e.rightsRequests("correct")
	cr = e.change(call{method: "PUT", path: U + "/minor", body: `{"minor":false,"by":"user","ref":"id-check-9"}`}, 200, true)
	if rc := cr.Receipt; cr.State.Minor || rc.Actor != consent.ActorUser || rc.Ref != "id-check-9" || rc.New != "adult" {
		t.Fatalf("the user's own change: %+v %+v", cr.State, rc)
	}
	if n := e.rightsRequests("correct"); n != correct+1 {
		t.Errorf("the user's correction: %d correct requests, want %d", n, correct+1)
	}
	if a := e.shouldAsk(u, "guardian"); a.Ask || a.Reason != server.AskInForce {
		t.Errorf("should-ask guardian for an adult: %+v", a)
	}

	// The guardian may make a minor an adult too.
	e.change(call{method: "PUT", path: "/v1/users/kid2/minor", body: `{"minor":true,"by":"admin"}`}, 200, true)
	cr = e.change(call{method: "PUT", path: "/v1/users/kid2/minor", body: `{"minor":false,"by":"guardian","ref":"guardian-8"}`}, 200, true)
	if cr.State.Minor || cr.Receipt.Actor != consent.ActorGuardian {
		t.Fatalf("the guardian's change: %+v %+v", cr.State, cr.Receipt)
	}
}
