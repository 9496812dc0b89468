package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/recguard/recguard/audit"
	"github.com/recguard/recguard/server"
)

func init() {
	// kin-openapi decodes no HTML bodies by itself; the document gives the
	// page a string schema.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
}

// synthAudit makes events and users with audit.Synthesize.
func synthAudit(t *testing.T, users, events int) ([]json.RawMessage, []server.AuditUser) {
	t.Helper()
	var ev, us bytes.Buffer
	if err := audit.Synthesize(audit.SynthConfig{Seed: 7, Users: users, Events: events, Items: 20, Groups: 3, PriceGap: 0.1}, &ev, &us); err != nil {
		t.Fatal(err)
	}
	var evs []json.RawMessage
	sc := bufio.NewScanner(&ev)
	for sc.Scan() {
		evs = append(evs, json.RawMessage(bytes.Clone(sc.Bytes())))
	}
	var list []server.AuditUser
	sc = bufio.NewScanner(&us)
	for sc.Scan() {
		var u server.AuditUser
		if err := json.Unmarshal(sc.Bytes(), &u); err != nil {
			t.Fatal(err)
		}
		list = append(list, u)
	}
	return evs, list
}

var auditSpec = map[string]any{
	"name": "loyalty pricing",
	"groups": []map[string]string{
		{"name": "new", "segment": "loyalty:new"},
		{"name": "gold", "segment": "loyalty:gold"},
		{"name": "silver", "segment": "loyalty:silver"},
	},
	"reference":      "new",
	"min_group_size": 5,
}

// postAudit runs an audit as the auditor and returns its answer.
func (e *env) postAudit(body any) server.AuditResponse {
	e.t.Helper()
	r := e.do(call{method: "POST", path: "/v1/audits", key: e.auditor(), body: body})
	want(e.t, r, 201)
	ar := decode[server.AuditResponse](e.t, r)
	if loc := r.Header.Get("Location"); loc != "/v1/audits/"+ar.ID {
		e.t.Errorf("Location %q for id %q", loc, ar.ID)
	}
	return ar
}

// TestAuditRoutesOpenAPI: POST /v1/audits and GET /v1/audits/{id} in every form,
// every answer validated against the document.
func TestAuditRoutesOpenAPI(t *testing.T) {
	t.Parallel()
	// The lowest privacy floor a server may set: the spec's 5 is raised
	// to it.
	e := newEnv(t, func(c *envConfig) { c.srv.MaxBody, c.srv.AuditMinGroupSize = 8<<20, 10 })
	events, users := synthAudit(t, 120, 3000)

	ar := e.postAudit(map[string]any{"spec": auditSpec, "events": events, "users": users})
	rep := ar.Report
	if rep == nil || rep.Events != 3000 || rep.Skipped != 0 || len(rep.Groups) != 3 || len(rep.Tests) == 0 || len(rep.Findings) == 0 ||
		rep.Spec.MinGroupSize != 10 || rep.MinGroupSizeAsked != 5 || rep.Spec.Alpha != audit.DefaultAlpha || len(rep.Spec.Metrics) == 0 {
		t.Fatalf("report %+v", rep)
	}
	// What was audited: recguard's version, the auditor's key, the
	// fingerprints of the events and users sent.
	if pv := rep.Provenance; pv == nil || pv.Version == "" || pv.RunBy != "key "+e.keyIDs[server.RoleAuditor] || len(pv.Inputs) != 2 ||
		len(pv.Inputs[0].SHA256) != 64 || pv.Inputs[0].Kind != "events" || pv.Inputs[1].Kind != "users" || pv.Inputs[0].Bytes == 0 {
		t.Errorf("provenance %+v", rep.Provenance)
	}

	// The kept report, as JSON, CSV and HTML, by format and by Accept.
	get := func(q string, header map[string]string) result {
		t.Helper()
		r := e.do(call{method: "GET", path: "/v1/audits/" + ar.ID + q, key: e.auditor(), header: header})
		want(t, r, 200)
		if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("Vary") != "Accept" {
			t.Errorf("headers %v", r.Header)
		}
		return r
	}
	r := get("", nil)
	if got := decode[audit.Report](t, r); got.Events != rep.Events || len(got.Groups) != len(rep.Groups) {
		t.Errorf("kept report differs: %+v", got)
	}
	for _, tc := range []struct {
		q      string
		header map[string]string
		ctype  string
	}{
		{"?format=json", nil, "application/json"},
		{"?format=JSON", nil, "application/json"},
		{"?format=csv", nil, "text/csv"},
		{"", map[string]string{"Accept": "text/csv"}, "text/csv"},
		{"?format=html", nil, "text/html"},
		{"", map[string]string{"Accept": "text/html"}, "text/html"},
		{"?format=json", map[string]string{"Accept": "text/html"}, "application/json"},
	} {
		q := tc.q
		if q == "?format=JSON" { // case-insensitive, but not in the document's enum
			r := e.do(call{method: "GET", path: "/v1/audits/" + ar.ID + q, key: e.auditor(), req: violates})
			want(t, r, 200)
			continue
		}
		r := get(q, tc.header)
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.ctype) {
			t.Errorf("%s %v: Content-Type %q, want %s", q, tc.header, ct, tc.ctype)
		}
		switch tc.ctype {
		case "text/csv":
			if cd := r.Header.Get("Content-Disposition"); cd != `attachment; filename="audit-`+ar.ID+`.csv"` {
				t.Errorf("CSV Content-Disposition %q", cd)
			}
		case "text/html":
			if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("HTML CSP %q", csp)
			}
		}
	}

	// Without users the store gives the facts: tag two users through the
	// app routes and audit their events.
	var gold, fresh []string
	for i := range 12 {
		gold = append(gold, fmt.Sprintf("s%d", i))
		fresh = append(fresh, fmt.Sprintf("n%d", i))
	}
	for _, u := range gold {
		want(t, e.do(call{method: "POST", path: "/v1/users/" + u + "/tags", key: e.app(), body: `{"tag":"loyalty:gold","source":"declared"}`}), 201)
	}
	for _, u := range fresh[:10] {
		want(t, e.do(call{method: "POST", path: "/v1/users/" + u + "/tags", key: e.app(), body: `{"tag":"loyalty:new","source":"declared"}`}), 201)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	var evs []map[string]any
	for i, u := range append(append([]string{}, gold...), fresh[:10]...) {
		evs = append(evs, map[string]any{"user": u, "item": "i1", "time": now, "mode": "personalized",
			"price": 10 + i%3, "clicked": i%2 == 0, "attrs": []string{"device:ios"}, "fields": map[string]float64{"dwell": 1.5}})
	}
	ar2 := e.postAudit(map[string]any{"spec": map[string]any{
		"groups":         []map[string]string{{"name": "new", "segment": "loyalty:new"}, {"name": "gold", "segment": "loyalty:gold & device:ios"}},
		"reference":      "new",
		"min_group_size": 1,
		"metrics":        []map[string]any{{"kind": "rate", "field": "clicked"}, {"name": "dwell", "kind": "distribution", "field": "dwell"}},
		"price_bucket":   "30m",
	}, "events": evs})
	if g := ar2.Report.Groups; len(g) != 2 || g[0].Users != 10 || g[1].Users != 12 || g[1].Suppressed {
		t.Fatalf("store facts: %+v", g)
	}
	if ar2.ID == ar.ID {
		t.Error("two audits, one id")
	}

	// A few malformed events (up to 10%) are skipped and reported, not
	// fatal.
	bad := []any{evs[0], map[string]any{"user": "s1", "item": "i1", "time": now, "mode": "sometimes"}, map[string]any{"user": "s2"}}
	for _, ev := range evs[1:] {
		bad = append(bad, ev)
	}
	r = e.do(call{method: "POST", path: "/v1/audits", key: e.auditor(), req: violates,
		body: map[string]any{"spec": ar2.Report.Spec, "events": bad}})
	want(t, r, 201)
	ar3 := decode[server.AuditResponse](t, r)
	if ar3.Report.Skipped != 2 || len(ar3.Report.Problems) != 2 || ar3.Report.Problems[0].File != "events[1]" {
		t.Fatalf("skipped: %+v", ar3.Report)
	}
}

// TestAuditErrorsOpenAPI: the problems the audit routes answer.
func TestAuditErrorsOpenAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.srv.MaxBody = 64 << 10 })
	const u = "u1"
	now := time.Now().UTC().Format(time.RFC3339)
	ev := map[string]any{"user": "s1", "item": "i1", "time": now, "mode": "personalized"}
	spec := map[string]any{"groups": []map[string]string{{"name": "all", "segment": "*"}}, "reference": "all"}
	post := func(body any, req conformance, status int, code, field string) {
		t.Helper()
		p := e.rejected(call{method: "POST", path: "/v1/audits", key: e.auditor(), body: body, req: req}, status, code, u)
		if p.Field != field {
			t.Errorf("%v: field %q, want %q (%s)", body, p.Field, field, p.Detail)
		}
	}
	// 422: the spec, strict events, users.
	post(map[string]any{"events": []any{ev}}, violates, 422, "invalid-value", "spec")
	post(map[string]any{"spec": map[string]any{"groups": []any{}, "reference": "all"}}, violates, 422, "invalid-value", "spec.groups")
	post(map[string]any{"spec": map[string]any{"groups": spec["groups"], "reference": "none"}}, conforms, 422, "invalid-value", "spec.reference")
	post(map[string]any{"spec": map[string]any{"groups": []map[string]string{{"name": "a", "segment": "x:y &"}}, "reference": "a"}}, conforms, 422, "invalid-value", "spec.groups[0].segment")
	post(map[string]any{"spec": map[string]any{"groups": spec["groups"], "reference": "all", "metrics": []map[string]string{{"kind": "median", "field": "price"}}}}, violates, 422, "invalid-value", "spec.metrics[0].kind")
	post(map[string]any{"spec": map[string]any{"groups": spec["groups"], "reference": "all", "alpha": 2}}, violates, 422, "invalid-value", "spec.alpha")
	post(map[string]any{"spec": map[string]any{"groups": spec["groups"], "reference": "all", "price_bucket": "soon"}}, violates, 422, "invalid-value", "spec")
	post(map[string]any{"spec": map[string]any{"groups": spec["groups"], "reference": "all", "colour": "red"}}, violates, 422, "invalid-value", "spec")
	post(map[string]any{"spec": spec, "strict": true, "events": []any{ev, map[string]any{"user": "s1"}}}, violates, 422, "invalid-value", "events")
	post(map[string]any{"spec": spec, "events": []any{ev}, "users": []map[string]any{{"id": "s1", "flags": []string{"vip"}}}}, violates, 422, "invalid-value", "users")
	post(map[string]any{"spec": spec, "events": []any{ev}, "users": []map[string]any{{"tags": []string{"a:b"}}}}, violates, 422, "invalid-value", "users")
	// 400, 415, 413.
	post(`{"spec":`, violates, 400, "malformed-request", "")
	post(map[string]any{"spec": spec, "events": []any{ev}, "extra": 1}, violates, 400, "malformed-request", "")
	post(map[string]any{"spec": spec, "events": []any{ev}, "users": []map[string]any{{"id": "s1", "age": 3}}}, violates, 400, "malformed-request", "")
	post(map[string]any{"spec": spec, "strict": "yes"}, violates, 400, "malformed-request", "strict")
	e.rejected(call{method: "POST", path: "/v1/audits", key: e.auditor(), body: `{"spec":{}}`, ctype: "text/plain", req: violates}, 415, "unsupported-media-type", u)
	big := make([]any, 2000)
	for i := range big {
		big[i] = ev
	}
	post(map[string]any{"spec": spec, "events": big}, conforms, 413, "body-too-large", "")

	// GET: unknown id, bad format.
	p := e.rejected(call{method: "GET", path: "/v1/audits/0123456789abcdef0123456789abcdef", key: e.auditor()}, 404, "not-found", u)
	if !strings.Contains(p.Detail, "no audit") {
		t.Errorf("404 detail %q", p.Detail)
	}
	ar := e.postAudit(map[string]any{"spec": spec, "events": []any{ev}})
	e.rejected(call{method: "GET", path: "/v1/audits/" + ar.ID + "?format=pdf", key: e.auditor(), req: violates}, 422, "invalid-value", u)

	// Other roles, no key.
	for _, key := range []string{e.app(), e.admin()} {
		e.rejected(call{method: "POST", path: "/v1/audits", key: key, body: map[string]any{"spec": spec}}, 403, "forbidden", u)
		e.rejected(call{method: "GET", path: "/v1/audits/" + ar.ID, key: key}, 403, "forbidden", u)
	}
	e.rejected(call{method: "GET", path: "/v1/audits/" + ar.ID, req: violates}, 401, "unauthenticated", u)
}
