package server_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/recguard/recguard/consent"
)

// TestDuplicateKeys (issue 11, item 7): a body with an object that names a
// member twice, anywhere, is 400 malformed-request naming the member, on
// every route with a body, and changes nothing. encoding/json alone keeps
// the last copy: an opt-out sent as {"enabled":false,"enabled":true} would
// have become an opt-in, a pipeline tag {"source":"inferred","source":
// "declared"} a user declaration lifting a suppression.
func TestDuplicateKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const u = "u1"
	U := "/v1/users/" + u
	// The user opted out, and deleted a tag.
	want(t, e.do(call{method: "PUT", path: U + "/consent/personalization", key: e.app(), body: `{"enabled":false}`}), 200)
	want(t, e.do(call{method: "DELETE", path: U + "/tags/interest:ski", key: e.app()}), 200)
	set, err := e.mem.Settings(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	setBody := fmt.Sprintf(`{"version":%d,"channels":["sms"],"reask_cooldown":"720h","reask_cooldown":"0s"}`, set.Version)
	taxBody := fmt.Sprintf(`{"version":%d,"channels":["sms"],"reask_cooldown":"720h","taxonomy":{"health":{"sensitive":"medical_health"},"health":{}}}`, set.Version)
	ev := `{"user":"u1","item":"i1","time":"2026-01-02T03:04:05Z","mode":"personalized"}`
	for _, tc := range []struct {
		method, path, key, body, field string
	}{
		{"PUT", U + "/consent/personalization", e.app(), `{"enabled":false,"enabled":true}`, "enabled"},
		{"PUT", U + "/consent/personalization", e.app(), `{"enabled":false,"\u0065nabled":true}`, "enabled"},
		{"PUT", U + "/consent/personalization", e.app(), `{"enabled":false,"Enabled":true}`, "Enabled"},
		{"PUT", U + "/consent/personalization", e.app(), `{"surface":"web","enabled":false,"surface":"web"}`, "surface"},
		{"PUT", U + "/consent/channels/sms", e.app(), `{"refused":true,"refused":false}`, "refused"},
		{"PUT", U + "/consent/sensitive/religion", e.app(), `{"granted":false,"granted":true,"purpose":"personalization"}`, "granted"},
		{"POST", U + "/tags", e.app(), `{"tag":"interest:ski","source":"inferred","source":"declared"}`, "source"},
		{"POST", U + "/tags", e.app(), `{"tag":"interest:golf","tag":"interest:ski","source":"inferred"}`, "tag"},
		{"PUT", "/v1/admin/settings", e.admin(), setBody, "reask_cooldown"},
		{"PUT", "/v1/admin/settings", e.admin(), taxBody, "taxonomy.health"},
		{"PUT", "/v1/admin/suspension", e.admin(), `{"suspended":true,"reason":"order 1","suspended":false}`, "suspended"},
		{"POST", "/v1/events", e.app(), `{"events":[` + ev + `,{"user":"u1","user":"u2","item":"i1","time":"2026-01-02T03:04:05Z","mode":"personalized"}]}`, "events.1.user"},
		{"POST", "/v1/events", e.app(), `{"events":[` + ev + `],"events":[]}`, "events"},
		{"POST", "/v1/audits", e.auditor(), `{"spec":{"groups":[{"name":"all","segment":"*"}],"reference":"all","reference":"x"},"events":[` + ev + `]}`, "spec.reference"},
	} {
		before := outcomes(t, e)
		p := e.rejected(call{method: tc.method, path: tc.path, key: tc.key, body: tc.body, req: maybeViolate}, 400, "malformed-request", u)
		if p.Field != tc.field || !strings.Contains(p.Detail, "duplicate key") {
			t.Errorf("%s %s %s: field %q detail %q, want field %q", tc.method, tc.path, tc.body, p.Field, p.Detail, tc.field)
		}
		if after := outcomes(t, e); after != before {
			t.Errorf("%s %s: %d outcome events recorded by a rejected body", tc.method, tc.path, after-before)
		}
	}
	if d := e.decision(u); d.Personalized || d.Reason != consent.ReasonOptedOut {
		t.Errorf("decision after the rejected bodies: %+v, want opted out", d)
	}
	// The same member in different objects is fine.
	want(t, e.do(call{method: "POST", path: "/v1/events", key: e.app(), body: `{"events":[` + ev + `,` + ev + `]}`}), 202)
}

// outcomes counts the events in the outcome log.
func outcomes(t *testing.T, e *env) int {
	t.Helper()
	n := 0
	if err := e.mem.ReadOutcomes(context.Background(), func([]byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestEventsBadNumbers (issue 11, item 7): a negative or non-finite rank,
// price, discount or latency, or a user that is not a valid user ID, in one
// event rejects the whole batch with 422 (field events, the detail naming
// the event) and records nothing.
func TestEventsBadNumbers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const u = "u1"
	good := `{"user":"u1","item":"i1","time":"2026-01-02T03:04:05Z","mode":"personalized","rank":0,"price":0,"discount":0,"latency_ms":0}`
	for _, tc := range []struct {
		bad    string
		detail string
		docOK  bool // the document cannot tell
		status int
	}{
		{`"rank":-1`, "rank -1 is negative", false, 422},
		{`"rank":-0.5`, "rank -0.5 is negative", false, 422},
		{`"price":-100`, "price -100 is negative", false, 422},
		{`"discount":-0.1`, "discount -0.1 is negative", false, 422},
		{`"latency_ms":-3`, "latency_ms -3 is negative", false, 422},
		{`"price":-1e308`, "negative", false, 422},
		{`"price":1e400`, "", true, 422}, // out of float64's range: not a finite number
		{`"price":NaN`, "", false, 400},  // not JSON at all
		{`"rank":Infinity`, "", false, 400},
		{`"user":"."`, "user", false, 422},
		{`"user":".."`, "user", false, 422},
		{`"user":"a b"`, "user", false, 422},
	} {
		bad := `{"item":"i1","time":"2026-01-02T03:04:05Z","mode":"personalized",` + tc.bad
		if !strings.HasPrefix(tc.bad, `"user"`) {
			bad += `,"user":"u2"`
		}
		bad += "}"
		body := `{"events":[` + good + `,` + good + `,` + bad + `]}`
		c := call{method: "POST", path: "/v1/events", key: e.app(), body: body, req: violates}
		if tc.docOK {
			c.req = maybeViolate
		}
		before := outcomes(t, e)
		if tc.status == 400 {
			e.rejected(c, 400, "malformed-request", u)
		} else {
			p := e.rejected(c, 422, "invalid-value", u)
			if p.Field != "events" || !strings.Contains(p.Detail, "events[2]") || !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("%s: problem %+v, want field events naming events[2] and %q", tc.bad, p, tc.detail)
			}
		}
		if after := outcomes(t, e); after != before {
			t.Errorf("%s: %d events recorded from a rejected batch", tc.bad, after-before)
		}
	}
	// Zero and positive numbers are fine.
	want(t, e.do(call{method: "POST", path: "/v1/events", key: e.app(), body: `{"events":[` + good + `]}`}), 202)
}

// TestDotUserIDs (issue 11, item 7): the user IDs "." and ".." (which a
// path or a file name would take for a directory), sent as they are or
// percent-encoded, are 422 (field user_id) on every user route and change
// nothing; IDs that merely contain dots are fine.
func TestDotUserIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, id := range []string{".", "..", "%2E", "%2e%2E"} {
		for _, rt := range allRoutes(e, id, "none") {
			if !strings.HasPrefix(rt.c.path, "/v1/users/") {
				continue
			}
			c := rt.c
			c.key = e.app()
			c.req = violates
			if c.method == "POST" && strings.HasSuffix(c.path, "/tags") {
				c.body = map[string]any{"tag": "interest:chess", "source": "declared"}
			}
			before := e.snapshot() // every changelog tail, the settings and keys: any change moves a tail
			r := e.do(c)
			// 422 user_id: the route was reached (no 404 or a redirect to
			// another path) and refused the ID.
			if p := wantProblem(t, r, 422, "invalid-value"); p.Field != "user_id" {
				t.Errorf("%s %s: field %q", c.method, c.path, p.Field)
			}
			if after := e.snapshot(); !reflect.DeepEqual(before, after) {
				t.Errorf("%s %s (%d) changed the store", c.method, c.path, r.Status)
			}
		}
	}
	for _, id := range []string{"...", ".a", "a..b", "a."} {
		want(t, e.do(call{method: "PUT", path: "/v1/users/" + id + "/consent/personalization", key: e.app(), body: `{"enabled":false}`}), 200)
	}
}

// TestTagSourceRequired (issue 11, item 1): POST /v1/users/{id}/tags
// without a source (absent, empty, or not declared/inferred) is 422 with
// field source and changes nothing, even for a tag the user deleted (it
// stays suppressed); before, a missing source was taken for the user's own
// declaration and lifted the suppression.
func TestTagSourceRequired(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const u = "u1"
	U := "/v1/users/" + u
	want(t, e.do(call{method: "POST", path: U + "/tags", key: e.app(), body: `{"tag":"interest:ski","source":"inferred"}`}), 201)
	want(t, e.do(call{method: "DELETE", path: U + "/tags/interest:ski", key: e.app()}), 200)
	for _, body := range []string{
		`{"tag":"interest:ski"}`,
		`{"tag":"interest:ski","surface":"web"}`,
		`{"tag":"interest:ski","source":""}`,
		`{"tag":"interest:ski","source":null}`,
		`{"tag":"interest:ski","source":"user"}`,
		`{"tag":"interest:ski","lift_suppression":true}`,
		`{"tag":"interest:golf"}`,
	} {
		if p := e.rejected(call{method: "POST", path: U + "/tags", key: e.app(), body: body, req: violates}, 422, "invalid-value", u); p.Field != "source" {
			t.Errorf("%s: field %q, want source", body, p.Field)
		}
	}
	tv := e.tagsOf(u)
	if len(tv.Tags) != 0 || len(tv.Suppressed) != 1 || tv.Suppressed[0].Tag != "interest:ski" {
		t.Errorf("tags after the rejected requests: %+v", tv)
	}
}

// TestInferenceRefused (issue 11, item 6, over HTTP): an inferred tag while
// the user turned personalization off, or while the service is suspended,
// is 409 inference-refused and changes nothing; the user's own declaration
// is not refused.
func TestInferenceRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const u = "u1"
	U := "/v1/users/" + u
	want(t, e.do(call{method: "PUT", path: U + "/consent/personalization", key: e.app(), body: `{"enabled":false}`}), 200)
	e.rejected(call{method: "POST", path: U + "/tags", key: e.app(), body: `{"tag":"interest:ski","source":"inferred"}`}, 409, "inference-refused", u)
	want(t, e.do(call{method: "POST", path: U + "/tags", key: e.app(), body: `{"tag":"interest:ski","source":"declared"}`}), 201)
	want(t, e.do(call{method: "PUT", path: U + "/consent/personalization", key: e.app(), body: `{"enabled":true}`}), 200)
	want(t, e.do(call{method: "PUT", path: "/v1/admin/suspension", key: e.admin(), body: `{"suspended":true,"reason":"order 3"}`}), 200)
	e.rejected(call{method: "POST", path: U + "/tags", key: e.app(), body: `{"tag":"interest:golf","source":"inferred"}`}, 409, "inference-refused", u)
}
