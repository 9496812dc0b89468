package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/audit"
)

// TestEvents: outcome events posted by an app land in the store's outcome
// log, and an audit with no inline events reads them from there; a batch
// with one bad event is rejected whole and records nothing.
func TestEvents(t *testing.T) {
	e := newEnv(t)
	read := func() int {
		n := 0
		if err := e.mem.ReadOutcomes(context.Background(), func([]byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	var evs []map[string]any
	for i := 0; i < 120; i++ {
		evs = append(evs, map[string]any{"user": fmt.Sprintf("e%d", i%60), "item": "sku1", "time": at.Add(time.Duration(i) * time.Minute),
			"mode": "personalized", "price": 100 + i%3, "clicked": i%4 == 0})
	}
	r := e.do(call{method: "POST", path: "/v1/events", key: e.app(), body: map[string]any{"events": evs}})
	want(t, r, 202)
	var got struct{ Accepted int }
	if err := json.Unmarshal(r.Body, &got); err != nil || got.Accepted != 120 {
		t.Fatalf("answer %s, want accepted 120", r.Body)
	}
	if n := read(); n != 120 {
		t.Fatalf("outcome log holds %d events, want 120", n)
	}

	bad := append(append([]map[string]any{}, evs[:3]...), map[string]any{"user": "e1", "item": "sku1", "time": at, "mode": "sideways"})
	p := wantProblem(t, e.do(call{method: "POST", path: "/v1/events", key: e.app(), body: map[string]any{"events": bad}, req: violates}), 422, "invalid-value")
	if p.Field != "events" || !strings.Contains(p.Detail, "events[3]") {
		t.Fatalf("problem %+v, want field events naming events[3]", p)
	}
	wantProblem(t, e.do(call{method: "POST", path: "/v1/events", key: e.app(), body: map[string]any{"events": []any{}}, req: violates}), 422, "invalid-value")
	wantProblem(t, e.do(call{method: "POST", path: "/v1/events", key: e.admin(), body: map[string]any{"events": evs[:1]}}), 403, "forbidden")
	if n := read(); n != 120 {
		t.Fatalf("after rejected batches the log holds %d events, want 120", n)
	}

	// An audit without inline events reads the store's.
	spec := audit.Spec{Name: "from the store", Reference: "all", Groups: []audit.GroupSpec{{Name: "all", Segment: "*"}}, MinGroupSize: 5}
	users := []map[string]any{}
	for i := 0; i < 60; i++ {
		users = append(users, map[string]any{"id": fmt.Sprintf("e%d", i)})
	}
	r = e.do(call{method: "POST", path: "/v1/audits", key: e.auditor(), body: map[string]any{"spec": spec, "users": users}})
	want(t, r, 201)
	var rep struct{ Report audit.Report }
	if err := json.Unmarshal(r.Body, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Report.Used != 120 || len(rep.Report.Groups) != 1 || rep.Report.Groups[0].Events != 120 || rep.Report.Groups[0].Users != 60 {
		t.Fatalf("audit of the store's events: used %d, groups %+v; want 120 events of 60 users", rep.Report.Used, rep.Report.Groups)
	}
}
