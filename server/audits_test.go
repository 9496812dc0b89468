package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/audit"
	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

// auditTestEnv is a server on a memory store with one key per role.
type auditTestEnv struct {
	t      *testing.T
	ts     *httptest.Server
	client *sdk.Client
	st     *memory.Store
	keys   map[Role]string
}

func newAuditTestEnv(t *testing.T, maxBody int64) *auditTestEnv {
	t.Helper()
	return newAuditTestEnvCfg(t, Config{MaxBody: maxBody})
}

// newAuditTestEnvCfg is newAuditTestEnv with cfg's fields (Client, Store
// and RateLimit are set here).
func newAuditTestEnvCfg(t *testing.T, cfg Config) *auditTestEnv {
	t.Helper()
	ctx := context.Background()
	mem, err := memory.Open(ctx, memory.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	client, err := sdk.New(ctx, mem, sdk.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	cfg.Client, cfg.Store, cfg.RateLimit = client, mem, -1
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	e := &auditTestEnv{t: t, ts: ts, client: client, st: mem, keys: map[Role]string{}}
	for _, r := range []Role{RoleApp, RoleAdmin, RoleAuditor} {
		key, _, err := NewKey(ctx, mem, r, "test", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		e.keys[r] = key
	}
	return e
}

type auditAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (e *auditTestEnv) do(method, path string, role Role, body any, header ...string) auditAnswer {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				e.t.Fatal(err)
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+e.keys[role])
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return auditAnswer{resp.StatusCode, resp.Header, rb}
}

func wantAuditProblem(t *testing.T, a auditAnswer, status int, code, field string) Problem {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q", ct)
	}
	var p Problem
	if err := json.Unmarshal(a.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != problemTypeBase+code || p.Status != status || p.Title == "" {
		t.Errorf("problem %+v, want code %s", p, code)
	}
	if field != "" && p.Field != field {
		t.Errorf("problem field %q, want %q (%s)", p.Field, field, p.Detail)
	}
	return p
}

var auditTestSpec = map[string]any{
	"name": "loyalty pricing",
	"groups": []map[string]string{
		{"name": "new", "segment": "loyalty:new"},
		{"name": "gold", "segment": "loyalty:gold"},
		{"name": "silver", "segment": "loyalty:silver"},
	},
	"reference": "new",
}

// auditData synthesizes events (with a 10% price gap for gold) and users.
func auditData(t *testing.T, users, events int) ([]json.RawMessage, []AuditUser, []string) {
	t.Helper()
	var ev, us bytes.Buffer
	if err := audit.Synthesize(audit.SynthConfig{Seed: 3, Users: users, Events: events, Items: 60, Groups: 3, PriceGap: 0.1}, &ev, &us); err != nil {
		t.Fatal(err)
	}
	var evs []json.RawMessage
	sc := bufio.NewScanner(&ev)
	for sc.Scan() {
		evs = append(evs, json.RawMessage(bytes.Clone(sc.Bytes())))
	}
	var list []AuditUser
	var ids []string
	sc = bufio.NewScanner(&us)
	for sc.Scan() {
		var u AuditUser
		if err := json.Unmarshal(sc.Bytes(), &u); err != nil {
			t.Fatal(err)
		}
		list = append(list, u)
		ids = append(ids, u.ID)
	}
	return evs, list, ids
}

// noUserIDs fails when body holds any of the users' IDs.
func noUserIDs(t *testing.T, what string, body []byte, ids []string) {
	t.Helper()
	if regexp.MustCompile(`u[0-9]{7}`).Match(body) {
		t.Errorf("%s holds a user ID: %s", what, regexp.MustCompile(`u[0-9]{7}`).Find(body))
	}
	for _, id := range ids {
		if bytes.Contains(body, []byte(id)) {
			t.Fatalf("%s holds user ID %q", what, id)
		}
	}
}

func TestAuditRoutes(t *testing.T) {
	t.Parallel()
	e := newAuditTestEnv(t, 16<<20)
	events, users, ids := auditData(t, 300, 6000)

	a := e.do("POST", "/v1/audits", RoleAuditor, map[string]any{"spec": auditTestSpec, "events": events, "users": users})
	if a.status != http.StatusCreated {
		t.Fatalf("POST /v1/audits: %d %s", a.status, a.body)
	}
	var created AuditResponse
	if err := json.Unmarshal(a.body, &created); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(created.ID) {
		t.Errorf("id %q is not random hex", created.ID)
	}
	if loc := a.header.Get("Location"); loc != "/v1/audits/"+created.ID {
		t.Errorf("Location %q", loc)
	}
	rep := created.Report
	if rep == nil || rep.Events != 6000 || rep.Skipped != 0 || len(rep.Groups) != 3 {
		t.Fatalf("report: %+v", rep)
	}
	gold := false
	for _, p := range rep.Prices {
		if p.Group == "gold" && p.Significant && p.ShareHigher > 0.9 {
			gold = true
		}
	}
	if !gold {
		t.Errorf("the planted price gap is not significant: %+v", rep.Prices)
	}
	noUserIDs(t, "the POST answer", a.body, ids)

	// GET: JSON by default and on request.
	path := "/v1/audits/" + created.ID
	for _, h := range [][]string{nil, {"Accept", "application/json"}, {"Accept", "*/*"}} {
		g := e.do("GET", path, RoleAuditor, nil, h...)
		if g.status != 200 || !strings.HasPrefix(g.header.Get("Content-Type"), "application/json") {
			t.Fatalf("GET %v: %d %s %s", h, g.status, g.header.Get("Content-Type"), g.body)
		}
		var got audit.Report
		if err := json.Unmarshal(g.body, &got); err != nil {
			t.Fatal(err)
		}
		if got.Events != rep.Events || len(got.Findings) != len(rep.Findings) || got.Findings[0] != rep.Findings[0] {
			t.Errorf("GET %v: a different report", h)
		}
		noUserIDs(t, "the JSON report", g.body, ids)
	}

	// CSV.
	for _, c := range []struct {
		q string
		h []string
	}{{"?format=csv", nil}, {"", []string{"Accept", "text/csv"}}, {"?format=CSV", []string{"Accept", "text/html"}}} {
		g := e.do("GET", path+c.q, RoleAuditor, nil, c.h...)
		if g.status != 200 || !strings.HasPrefix(g.header.Get("Content-Type"), "text/csv") {
			t.Fatalf("GET csv %v: %d %s", c, g.status, g.header.Get("Content-Type"))
		}
		recs, err := csv.NewReader(bytes.NewReader(g.body)).ReadAll()
		if err != nil {
			t.Fatalf("the CSV does not parse: %v", err)
		}
		prices := 0
		for _, r := range recs {
			if r[0] == "prices" {
				prices++
			}
		}
		if prices != len(rep.Prices) {
			t.Errorf("%d price rows, want %d", prices, len(rep.Prices))
		}
		noUserIDs(t, "the CSV report", g.body, ids)
	}

	// HTML.
	for _, c := range []struct {
		q string
		h []string
	}{{"?format=html", nil}, {"", []string{"Accept", "text/html,application/xhtml+xml,*/*;q=0.8"}}} {
		g := e.do("GET", path+c.q, RoleAuditor, nil, c.h...)
		if g.status != 200 || !strings.HasPrefix(g.header.Get("Content-Type"), "text/html") {
			t.Fatalf("GET html %v: %d %s", c, g.status, g.header.Get("Content-Type"))
		}
		if !bytes.HasPrefix(g.body, []byte("<!DOCTYPE html>")) || bytes.Contains(g.body, []byte("<script")) {
			t.Error("not a self-contained HTML report")
		}
		if csp := g.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("CSP %q", csp)
		}
		noUserIDs(t, "the HTML report", g.body, ids)
	}

	wantAuditProblem(t, e.do("GET", path+"?format=pdf", RoleAuditor, nil), 422, codeInvalid, "format")
	wantAuditProblem(t, e.do("GET", "/v1/audits/0123456789abcdef0123456789abcdef", RoleAuditor, nil), 404, codeNotFound, "")
	wantAuditProblem(t, e.do("GET", "/v1/audits/nope", RoleAuditor, nil), 404, codeNotFound, "")
}

func TestAuditRoutesAuth(t *testing.T) {
	t.Parallel()
	e := newAuditTestEnv(t, 0)
	body := map[string]any{"spec": auditTestSpec, "events": []any{}, "users": []any{}}
	for _, r := range []Role{RoleApp, RoleAdmin} {
		p := wantAuditProblem(t, e.do("POST", "/v1/audits", r, body), 403, codeForbidden, "")
		if !strings.Contains(p.Detail, string(r)) {
			t.Errorf("403 detail %q", p.Detail)
		}
		wantAuditProblem(t, e.do("GET", "/v1/audits/abc", r, nil), 403, codeForbidden, "")
	}
	wantAuditProblem(t, e.do("POST", "/v1/audits", "", body), 401, codeUnauth, "")
	wantAuditProblem(t, e.do("GET", "/v1/audits/abc", "", nil), 401, codeUnauth, "")
	// The auditor may: an empty audit is a report with every group suppressed.
	a := e.do("POST", "/v1/audits", RoleAuditor, body)
	if a.status != 201 {
		t.Fatalf("auditor: %d %s", a.status, a.body)
	}
}

func TestAuditRoutesInvalid(t *testing.T) {
	t.Parallel()
	e := newAuditTestEnv(t, 0)
	spec := func(mod func(map[string]any)) map[string]any {
		s := map[string]any{}
		b, _ := json.Marshal(auditTestSpec)
		json.Unmarshal(b, &s)
		mod(s)
		return s
	}
	for _, c := range []struct {
		name  string
		body  any
		field string
	}{
		{"no spec", map[string]any{"events": []any{}}, "spec"},
		{"bad segment", map[string]any{"spec": spec(func(s map[string]any) {
			s["groups"] = []map[string]string{{"name": "a", "segment": "loyalty:new &"}}
			s["reference"] = "a"
		})}, "spec.groups[0].segment"},
		{"unknown reference", map[string]any{"spec": spec(func(s map[string]any) { s["reference"] = "nobody" })}, "spec.reference"},
		{"unknown spec field", map[string]any{"spec": spec(func(s map[string]any) { s["colour"] = "red" })}, "spec"},
		{"bad user tag", map[string]any{"spec": auditTestSpec, "users": []map[string]any{{"id": "x", "tags": []string{"not a tag"}}}}, "users"},
		{"duplicate user", map[string]any{"spec": auditTestSpec, "users": []map[string]any{{"id": "x"}, {"id": "x"}}}, "users"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := wantAuditProblem(t, e.do("POST", "/v1/audits", RoleAuditor, c.body), 422, codeInvalid, c.field)
			if strings.HasPrefix(c.field, "spec") && !strings.Contains(p.Detail, "invalid spec") {
				t.Errorf("detail %q", p.Detail)
			}
		})
	}
	// Malformed bodies are 400, not 422.
	wantAuditProblem(t, e.do("POST", "/v1/audits", RoleAuditor, []byte(`{"spec": {}, "evnts": []}`)), 400, codeMalformed, "")
	wantAuditProblem(t, e.do("POST", "/v1/audits", RoleAuditor, []byte(`{"spec": {}, "events": [1,`)), 400, codeMalformed, "")
	// Bounded by MaxBody (1 MiB by default).
	big := `{"spec": {}, "events": [` + strings.Repeat(`{"user":"a","item":"b"},`, 60000) + `{}]}`
	wantAuditProblem(t, e.do("POST", "/v1/audits", RoleAuditor, []byte(big)), 413, codeTooLarge, "")
}

// TestAuditRoutesMalformedEvents: a few malformed events are skipped and
// listed as events[i]; strict fails at the first; more than 10% malformed,
// or all, is 422 naming how many and the first ones, with no report.
func TestAuditRoutesMalformedEvents(t *testing.T) {
	t.Parallel()
	e := newAuditTestEnv(t, 0)
	good := json.RawMessage(`{"user":"u1","item":"i","time":"2025-03-01T00:00:00Z","mode":"personalized","price":1,"clicked":1}`)
	noTime := json.RawMessage(`{"user":"u1","item":"i"}`)
	sideways := json.RawMessage("{\n \"user\": \"u2\",\n \"item\": \"i\", \"time\": \"2025-03-01T00:00:00Z\", \"mode\": \"sideways\"}")
	quoted := json.RawMessage(`{"user":"u1","item":"i","time":"2025-03-01T00:00:00Z","mode":"personalized","clicked":"true"}`)
	events := []json.RawMessage{good, noTime, good, sideways}
	for range 18 {
		events = append(events, good)
	}
	users := []AuditUser{{ID: "u1", Tags: []string{"loyalty:new"}}}
	body := map[string]any{"spec": auditTestSpec, "events": events, "users": users}

	// 2 of 22 (9.1%): skipped.
	a := e.do("POST", "/v1/audits", RoleAuditor, body)
	if a.status != 201 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	var created AuditResponse
	if err := json.Unmarshal(a.body, &created); err != nil {
		t.Fatal(err)
	}
	r := created.Report
	if r.Events != 20 || r.Skipped != 2 || len(r.Problems) != 2 ||
		r.Problems[0].File != "events[1]" || r.Problems[1].File != "events[3]" || !strings.Contains(r.Problems[1].Reason, "mode") {
		t.Errorf("events %d skipped %d problems %+v", r.Events, r.Skipped, r.Problems)
	}
	body["strict"] = true
	p := wantAuditProblem(t, e.do("POST", "/v1/audits", RoleAuditor, body), 422, codeInvalid, "events")
	if !strings.HasPrefix(p.Detail, "events[1]: ") {
		t.Errorf("strict detail %q", p.Detail)
	}
	delete(body, "strict")

	// 3 of 23 (13%): no report.
	body["events"] = append(append([]json.RawMessage{}, events...), quoted)
	p = wantAuditProblem(t, e.do("POST", "/v1/audits", RoleAuditor, body), 422, codeInvalid, "events")
	want := "3 of 23 events are malformed (13%), more than the 10% allowed, so there is no report; the first: events[1]: missing time; events[3]: mode \"sideways\""
	if !strings.HasPrefix(p.Detail, want) || !strings.HasSuffix(p.Detail, `events[22]: clicked "true" is a string: write true, false, 1 or 0, without quotes`) {
		t.Errorf("detail %q, want it to start %q", p.Detail, want)
	}
	// All malformed: no report either, whatever the share.
	body["events"] = []json.RawMessage{noTime, sideways}
	p = wantAuditProblem(t, e.do("POST", "/v1/audits", RoleAuditor, body), 422, codeInvalid, "events")
	if !strings.HasPrefix(p.Detail, "all 2 events are malformed, so there is no report; the first: events[0]: missing time; events[1]: ") {
		t.Errorf("all malformed: %q", p.Detail)
	}
	body["events"] = []json.RawMessage{noTime}
	p = wantAuditProblem(t, e.do("POST", "/v1/audits", RoleAuditor, body), 422, codeInvalid, "events")
	if !strings.HasPrefix(p.Detail, "the only event is malformed") {
		t.Errorf("one malformed: %q", p.Detail)
	}

	// The store's events: the same, with no field (nothing in the request
	// to fix). The store keeps what it is given; /v1/events checks first.
	ctx := context.Background()
	if err := e.st.AppendOutcomes(ctx, []string{"u1", "u1"}, [][]byte{[]byte(`{"item":"x"}`), []byte(`not json`)}); err != nil {
		t.Fatal(err)
	}
	p = wantAuditProblem(t, e.do("POST", "/v1/audits", RoleAuditor, map[string]any{"spec": auditTestSpec, "users": users}), 422, codeInvalid, "")
	if !strings.HasPrefix(p.Detail, "all 2 events are malformed, so there is no report; the first: store:") {
		t.Errorf("store events: %q", p.Detail)
	}
}

// TestAuditMinGroupSizeFloor: a spec under the server's floor runs with
// the floor and the report says so (JSON, CSV, a note); one over it keeps
// its size; the floor is configurable, never under 10.
func TestAuditMinGroupSizeFloor(t *testing.T) {
	t.Parallel()
	events, users, _ := auditData(t, 300, 3000) // 100 users a group
	withSize := func(size int) map[string]any {
		s := map[string]any{}
		b, _ := json.Marshal(auditTestSpec)
		json.Unmarshal(b, &s)
		if size != 0 {
			s["min_group_size"] = size
		}
		return s
	}
	for _, c := range []struct {
		floor, size int // 0: the default
		want, asked int
	}{
		{0, 5, 50, 5},
		{0, 0, 50, 0},
		{0, 80, 80, 0},
		{10, 5, 10, 5},
		{10, 20, 20, 0},
		{150, 0, 150, 50}, // every group (100 users) suppressed
	} {
		e := newAuditTestEnvCfg(t, Config{MaxBody: 16 << 20, AuditMinGroupSize: c.floor})
		a := e.do("POST", "/v1/audits", RoleAuditor, map[string]any{"spec": withSize(c.size), "events": events, "users": users})
		if a.status != 201 {
			t.Fatalf("floor %d spec %d: %d %s", c.floor, c.size, a.status, a.body)
		}
		var created AuditResponse
		if err := json.Unmarshal(a.body, &created); err != nil {
			t.Fatal(err)
		}
		r := created.Report
		if r.Spec.MinGroupSize != c.want || r.MinGroupSizeAsked != c.asked {
			t.Errorf("floor %d spec %d: ran with %d (asked %d), want %d (asked %d)", c.floor, c.size, r.Spec.MinGroupSize, r.MinGroupSizeAsked, c.want, c.asked)
		}
		noted := false
		for _, f := range r.Findings {
			noted = noted || strings.Contains(f.Text, "privacy floor")
		}
		if noted != (c.asked > 0) || bytes.Contains(a.body, []byte("min_group_size_asked")) != (c.asked > 0) {
			t.Errorf("floor %d spec %d: noted %v: %s", c.floor, c.size, noted, a.body)
		}
		for _, g := range r.Groups {
			if g.Suppressed != (c.want > 100) {
				t.Errorf("floor %d spec %d: group %s suppressed %v", c.floor, c.size, g.Name, g.Suppressed)
			}
		}
		if c.asked > 0 {
			got := e.do("GET", "/v1/audits/"+created.ID+"?format=csv", RoleAuditor, nil)
			if !bytes.Contains(got.body, []byte(fmt.Sprintf("report,min_group_size_asked,%d", c.asked))) {
				t.Errorf("the CSV does not say what was asked:\n%s", got.body)
			}
		}
	}

	// Configuration: 10 and over; under 10 refused, by Validate and New.
	if d := DefaultConfig(); d.AuditMinGroupSize != 50 {
		t.Errorf("default floor %d", d.AuditMinGroupSize)
	}
	for floor, ok := range map[int]bool{10: true, 50: true, 500: true, 9: false, 1: false, -1: false} {
		err := Config{AuditMinGroupSize: floor}.Validate()
		var ce *ConfigError
		if ok != (err == nil) || !ok && (!errors.As(err, &ce) || ce.Field != "AuditMinGroupSize" || !strings.Contains(err.Error(), "under 10")) {
			t.Errorf("AuditMinGroupSize %d: %v", floor, err)
		}
	}
	if _, err := New(Config{AuditMinGroupSize: 5}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New with floor 5: %v", err)
	}
}

// TestAuditRoutesStoreFacts: without "users" the facts come from the
// server's store.
func TestAuditRoutesStoreFacts(t *testing.T) {
	t.Parallel()
	e := newAuditTestEnv(t, 16<<20)
	events, users, ids := auditData(t, 300, 6000)
	ctx := context.Background()
	for _, u := range users {
		for _, s := range u.Tags {
			tg, err := tags.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.client.Apply(ctx, consent.InferTag(u.ID, tg)); err != nil {
				t.Fatalf("tagging %s: %v", u.ID, err)
			}
		}
	}
	a := e.do("POST", "/v1/audits", RoleAuditor, map[string]any{"spec": auditTestSpec, "events": events})
	if a.status != 201 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	var created AuditResponse
	if err := json.Unmarshal(a.body, &created); err != nil {
		t.Fatal(err)
	}
	for _, g := range created.Report.Groups {
		if g.Suppressed || g.Users != 100 {
			t.Errorf("group %s: suppressed %v, %d users (want 100 from the store)", g.Name, g.Suppressed, g.Users)
		}
	}
	gold := false
	for _, p := range created.Report.Prices {
		gold = gold || (p.Group == "gold" && p.Significant)
	}
	if !gold {
		t.Errorf("the price gap is not found with the store's facts: %+v", created.Report.Prices)
	}
	noUserIDs(t, "the report", a.body, ids)
}

func TestAuditLRU(t *testing.T) {
	t.Parallel()
	l := newAuditLRU(3)
	for i := range 4 {
		l.put(fmt.Sprint(i), &audit.Report{Events: int64(i)})
	}
	if _, ok := l.get("0"); ok {
		t.Error("the oldest report was not evicted")
	}
	// Reading "1" makes it recent: the next put evicts "2".
	if r, ok := l.get("1"); !ok || r.Events != 1 {
		t.Fatal("report 1 missing")
	}
	l.put("4", &audit.Report{})
	if _, ok := l.get("2"); ok {
		t.Error("report 2 should have been evicted")
	}
	for _, id := range []string{"1", "3", "4"} {
		if _, ok := l.get(id); !ok {
			t.Errorf("report %s missing", id)
		}
	}
	if l.order.Len() != 3 || len(l.byID) != 3 {
		t.Errorf("size %d/%d", l.order.Len(), len(l.byID))
	}
}
