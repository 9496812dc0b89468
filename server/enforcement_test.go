package server_test

import (
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/enforce"
	"github.com/recguard/recguard/server"
)

// POST /v1/audits/enforcement replays the receipts against the ledger and
// answers the violations with their evidence; the report is kept for GET
// /v1/audits/enforcement/{id} as JSON, CSV and HTML. A personalized
// exposure a minute after the user's opt-out is listed; one within the
// allowance is counted there, not listed; an opted-in user's is fine.
func TestEnforcementAudit(t *testing.T) {
	e := newEnv(t)
	want(t, e.do(call{method: "PUT", path: "/v1/users/otto/consent/personalization", key: e.app(), body: map[string]any{"enabled": false}}), 200)
	optedOut := time.Now().UTC()
	post := func(evs ...map[string]any) {
		t.Helper()
		want(t, e.do(call{method: "POST", path: "/v1/events", key: e.app(), body: map[string]any{"events": evs}}), 202)
	}
	exposure := func(user string, at time.Time) map[string]any {
		return map[string]any{"user": user, "item": "sku1", "time": at, "mode": "personalized"}
	}
	late := optedOut.Add(time.Minute)
	post(exposure("otto", late), exposure("otto", optedOut.Add(-time.Hour)), exposure("ann", late))
	post(exposure("otto", optedOut.Add(500*time.Millisecond)))
	if n := len(e.ledger()); n != 4 {
		t.Fatalf("ledger: %d entries, want 4", n)
	}

	r := e.do(call{method: "POST", path: "/v1/audits/enforcement", key: e.auditor(), body: map[string]any{"allowance": "2s"}})
	want(t, r, 201)
	resp := decode[server.EnforcementResponse](t, r)
	rep := resp.Report
	if rep.Exposures != 4 || rep.Users != 2 || len(rep.Violations) != 1 || rep.Totals.All != 1 {
		t.Fatalf("report: %d exposures, %d users, %d violations (%+v), want 4, 2, 1", rep.Exposures, rep.Users, len(rep.Violations), rep.Violations)
	}
	v := rep.Violations[0]
	if v.Kind != enforce.PersonalizedAfterOptOut || v.User != "otto" || !v.At.Equal(late) || v.ReceiptID == "" || v.Surface != "http" {
		t.Errorf("violation %+v: want personalized_after_opt_out of otto at %v with its receipt", v, late)
	}
	if rep.WithinAllowance.ByKind[enforce.PersonalizedAfterOptOut] != 1 {
		t.Errorf("within allowance %+v, want the exposure 500 ms after the opt-out", rep.WithinAllowance)
	}
	if loc := r.Header.Get("Location"); loc != "/v1/audits/enforcement/"+resp.ID {
		t.Errorf("Location %q", loc)
	}

	// Kept: CSV and HTML.
	c := e.do(call{method: "GET", path: "/v1/audits/enforcement/" + resp.ID + "?format=csv", key: e.auditor()})
	want(t, c, 200)
	rows, err := csv.NewReader(strings.NewReader(string(c.Body))).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][0] != string(enforce.PersonalizedAfterOptOut) || rows[1][1] != "otto" {
		t.Errorf("CSV: %v %q", err, rows)
	}
	h := e.do(call{method: "GET", path: "/v1/audits/enforcement/" + resp.ID, key: e.auditor(), header: map[string]string{"Accept": "text/html"}})
	want(t, h, 200)
	if !strings.Contains(string(h.Body), "personalized_after_opt_out") || !strings.Contains(h.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("HTML report: CSP %q, %d bytes", h.Header.Get("Content-Security-Policy"), len(h.Body))
	}

	// A window that leaves the late exposure out finds nothing.
	r = e.do(call{method: "POST", path: "/v1/audits/enforcement", key: e.auditor(), body: map[string]any{"to": late}})
	want(t, r, 201)
	if rep := decode[server.EnforcementResponse](t, r).Report; len(rep.Violations) != 0 || rep.Exposures != 2 {
		t.Errorf("before the late exposure: %d violations, %d exposures; want 0, 2", len(rep.Violations), rep.Exposures)
	}

	// No body at all: every member has its default.
	r = e.do(call{method: "POST", path: "/v1/audits/enforcement", key: e.auditor()})
	want(t, r, 201)
	if rep := decode[server.EnforcementResponse](t, r).Report; rep.Allowance != enforce.DefaultAllowance.String() || len(rep.Violations) != 1 {
		t.Errorf("no body: allowance %s, %d violations; want the default and the late exposure", rep.Allowance, len(rep.Violations))
	}

	// Bad requests.
	for _, b := range []struct {
		body   any
		status int
		field  string
		req    conformance
	}{
		{map[string]any{"allowance": "25h"}, 422, "allowance", conforms},
		{map[string]any{"settings_allowance": "soon"}, 422, "settings_allowance", conforms},
		{map[string]any{"allowance": "-1s"}, 422, "allowance", conforms},
		{map[string]any{"from": late, "to": optedOut}, 422, "to", conforms},
		{map[string]any{"max_violations": 0}, 422, "max_violations", violates},
		{map[string]any{"surprise": true}, 400, "", violates},
	} {
		code := "invalid-value"
		if b.status == 400 {
			code = "malformed-request"
		}
		p := wantProblem(t, e.do(call{method: "POST", path: "/v1/audits/enforcement", key: e.auditor(), body: b.body, req: b.req}), b.status, code)
		if p.Field != b.field {
			t.Errorf("%v: field %q, want %q", b.body, p.Field, b.field)
		}
	}
	wantProblem(t, e.do(call{method: "GET", path: "/v1/audits/enforcement/" + resp.ID + "?format=pdf", key: e.auditor(), req: violates}), 422, "invalid-value")
	wantProblem(t, e.do(call{method: "GET", path: "/v1/audits/enforcement/nope", key: e.auditor()}), 404, "not-found")
	if r := e.do(call{method: "POST", path: "/v1/audits/enforcement", key: e.admin()}); r.Status != 403 {
		t.Errorf("an admin key: %d, want 403", r.Status)
	}
}
