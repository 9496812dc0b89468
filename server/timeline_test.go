package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/recguard/recguard/store"
)

// The consent timeline over HTTP: auditors only, counts only (no user ID
// in the answer), bad parameters refused with problem+json.
func TestConsentTimelineRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ids := verifyUsers(t, e.mem, 12) // each: personalization off, sms refused, a tag declared
	r := e.do(call{method: "GET", path: "/v1/audits/consent-timeline?bucket=1h", key: e.auditor()})
	if r.Status != 200 {
		t.Fatalf("timeline: %s", r)
	}
	var tl store.Timeline
	if err := json.Unmarshal(r.Body, &tl); err != nil {
		t.Fatal(err)
	}
	var off, sms int64
	for _, b := range tl.Buckets {
		off += b.PersonalizationOff
		sms += b.Refused["sms"]
	}
	if tl.Users != 12 || tl.Receipts != 36 || off != 12 || sms != 12 || tl.Now.PersonalizationOff != 12 || tl.Now.Refused["sms"] != 12 {
		t.Errorf("timeline %+v", tl)
	}
	for _, id := range ids {
		if strings.Contains(string(r.Body), id) {
			t.Fatalf("the timeline names user %s: %s", id, r.Body)
		}
	}
	if strings.Contains(string(r.Body), "chess") {
		t.Fatalf("the timeline shows a tag: %s", r.Body)
	}
	for _, c := range []struct {
		query, field string
		req          conformance
	}{
		{"?bucket=1m", "bucket", 0},
		{"?bucket=soon", "bucket", 0},
		{"?from=yesterday", "from", violates},
		{"?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to", 0},
	} {
		r := e.do(call{method: "GET", path: "/v1/audits/consent-timeline" + c.query, key: e.auditor(), req: c.req})
		if r.Status != 422 || !strings.Contains(string(r.Body), `"field":"`+c.field+`"`) {
			t.Errorf("%s: %s", c.query, r)
		}
	}
	if r := e.do(call{method: "GET", path: "/v1/audits/consent-timeline", key: e.admin()}); r.Status != 403 {
		t.Errorf("admin key: %s", r)
	}
	if r := e.do(call{method: "GET", path: "/v1/audits/consent-timeline", req: violates}); r.Status != 401 {
		t.Errorf("no key: %s", r)
	}
}
