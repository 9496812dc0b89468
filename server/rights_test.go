package server_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

// rightsKinds returns the kind and status of every rights request logged
// so far, oldest first.
func (e *env) rightsKinds() []string {
	e.t.Helper()
	rs, err := e.mem.RightsRequests(e.ctx, time.Time{}, time.Now().Add(100*365*24*time.Hour))
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.Kind+" "+strconv.Itoa(r.Status))
	}
	return out
}

// TestRestriction: the Art. 23 restriction of processing. Restricted, the
// user gets no personalization and no push (reason restricted), the
// pipeline stores no inferred tag; anyone may restrict, only the user
// lifts; bad input and other roles change nothing.
func TestRestriction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const u = "r1"
	U := "/v1/users/" + u
	e.change(call{method: "POST", path: U + "/tags", body: map[string]any{"tag": "interest:ski", "source": "declared"}}, 201, true)
	if d := e.decision(u); !d.Personalized {
		t.Fatalf("before: %+v", d)
	}
	before := len(e.rightsKinds())

	cr := e.change(call{method: "PUT", path: U + "/restriction", body: map[string]any{"restricted": true, "surface": "app_settings", "ref": "ticket-42"}}, 200, true)
	if !cr.State.Restricted || cr.Receipt.Op != consent.OpRestrict || cr.Receipt.Old != "unrestricted" || cr.Receipt.New != "restricted" ||
		cr.Receipt.Actor != consent.ActorUser || cr.Receipt.Surface != "app_settings" || cr.Receipt.Ref != "ticket-42" {
		t.Fatalf("restrict: %+v receipt %+v", cr, cr.Receipt)
	}
	// Storage only: no personalization, no push of any kind.
	if d := e.decision(u); d.Personalized || d.Reason != consent.ReasonRestricted || d.PushBlock != consent.ReasonRestricted || len(d.Tags) != 0 {
		t.Fatalf("decision while restricted: %+v", d)
	}
	for _, targeted := range []bool{false, true} {
		if p := e.canPush(u, "push", targeted); p.Allowed || p.Reason != consent.ReasonRestricted {
			t.Errorf("push (targeted %v) while restricted: %+v", targeted, p)
		}
	}
	// The user's data is stored as it was: the tags stay, none usable.
	if tv := e.tagsOf(u); len(tv.Tags) != 1 || tv.Tags[0].Usable {
		t.Errorf("tags while restricted: %+v", tv)
	}
	// No inference while restricted.
	if p := e.rejected(call{method: "POST", path: U + "/tags", key: e.app(), body: map[string]any{"tag": "region:sh", "source": "inferred"}},
		409, "inference-refused", u); p.Field != "tag" || !strings.Contains(p.Detail, "restricted") {
		t.Errorf("inference while restricted: %+v", p)
	}
	// No audience holds the user.
	r := e.do(call{method: "GET", path: "/v1/admin/audience?segment=*&channel=push&targeted=false", key: e.admin()})
	want(t, r, 200)
	if a := decode[server.AudienceResponse](t, r); slices.Contains(a.Users, u) {
		t.Errorf("a restricted user is in an audience: %+v", a)
	}
	// Again: nothing changes.
	e.change(call{method: "PUT", path: U + "/restriction", body: map[string]any{"restricted": true}}, 200, false)
	// Only the user (or the guardian of a minor) lifts it.
	for _, by := range []string{"admin", "system"} {
		if p := e.rejected(call{method: "PUT", path: U + "/restriction", key: e.app(), body: map[string]any{"restricted": false, "by": by}},
			409, "not-allowed", u); p.Field != "actor" {
			t.Errorf("lift by %s: %+v", by, p)
		}
	}
	cr = e.change(call{method: "PUT", path: U + "/restriction", body: map[string]any{"restricted": false}}, 200, true)
	if cr.State.Restricted || cr.Receipt.New != "unrestricted" {
		t.Fatalf("lift: %+v", cr)
	}
	if d := e.decision(u); !d.Personalized || d.Reason != consent.ReasonPersonalized {
		t.Fatalf("decision after the lift: %+v", d)
	}
	// An admin restricts on the user's behalf; the receipt says so.
	cr = e.change(call{method: "PUT", path: U + "/restriction", body: map[string]any{"restricted": true, "by": "admin", "ref": "support-7"}}, 200, true)
	if cr.Receipt.Actor != consent.ActorAdmin || !cr.State.Restricted {
		t.Fatalf("restrict by admin: %+v", cr.Receipt)
	}
	// A guardian lifts only for a minor.
	e.rejected(call{method: "PUT", path: U + "/restriction", key: e.app(), body: map[string]any{"restricted": false, "by": "guardian"}}, 409, "not-allowed", u)

	// Bad input changes nothing.
	for _, tc := range []struct {
		body   any
		status int
		code   string
		field  string
		req    conformance
	}{
		{map[string]any{}, 422, "invalid-value", "restricted", violates},
		{map[string]any{"restricted": nil}, 422, "invalid-value", "restricted", violates},
		{map[string]any{"restricted": false, "by": "robot"}, 422, "invalid-value", "by", violates},
		{map[string]any{"restricted": false, "ref": "a name with spaces"}, 422, "invalid-value", "ref", violates},
		{map[string]any{"restricted": false, "surface": "Bad Surface"}, 422, "invalid-value", "surface", violates},
		{map[string]any{"restricted": "no"}, 400, "malformed-request", "restricted", violates},
		{map[string]any{"restricted": false, "why": "x"}, 400, "malformed-request", "", violates},
		{`{"restricted":false,"restricted":true}`, 400, "malformed-request", "restricted", maybeViolate},
	} {
		p := e.rejected(call{method: "PUT", path: U + "/restriction", key: e.app(), body: tc.body, req: tc.req}, tc.status, tc.code, u)
		if p.Field != tc.field {
			t.Errorf("%v: field %q, want %q (%s)", tc.body, p.Field, tc.field, p.Detail)
		}
	}
	e.rejected(call{method: "PUT", path: U + "/restriction", key: e.app(), body: `{"restricted":false}`, ctype: "text/plain", req: violates}, 415, "unsupported-media-type", u)
	e.rejected(call{method: "PUT", path: "/v1/users/a%20b/restriction", key: e.app(), body: map[string]any{"restricted": false}, req: violates}, 422, "invalid-value", u)
	for _, key := range []string{e.admin(), e.auditor()} {
		e.rejected(call{method: "PUT", path: U + "/restriction", key: key, body: map[string]any{"restricted": false}}, 403, "forbidden", u)
	}
	wantProblem(t, e.do(call{method: "PUT", path: U + "/restriction", body: map[string]any{"restricted": false}, req: violates}), 401, "unauthenticated")

	got := e.rightsKinds()[before:]
	wantKinds := []string{
		"restrict 200", "access 200", "restrict 200", // restricted, the tags read, restricted again (no-op)
		"consent 409", "consent 200", // lifts: by admin (refused, not logged as the system's: that one is none) and by the user
		"restrict 200", // by the admin on the user's behalf
		"consent 409",  // the guardian's lift of an adult's restriction
		"restrict 422", "restrict 422", "restrict 422", "consent 422", "consent 422", "restrict 400", "restrict 400", "restrict 400",
		"restrict 415", // media type (a bad user ID is no request about a user: not logged)
	}
	if !slices.Equal(got, wantKinds) {
		t.Errorf("rights log %q\nwant        %q", got, wantKinds)
	}
}

// TestCorrection: POST /v1/users/{id}/tags/{tag}/correct replaces a tag
// with the right one in one change with one receipt; the wrong tag stays
// deleted; bad input and other roles change nothing.
func TestCorrection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const u = "c1"
	U := "/v1/users/" + u
	set, err := e.mem.Settings(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	set.Taxonomy["banned"] = tags.Namespace{Prohibited: true}
	want(t, e.do(call{method: "PUT", path: "/v1/admin/settings", key: e.admin(), body: settingsDoc(t, set)}), 200)
	e.change(call{method: "POST", path: U + "/tags", body: map[string]any{"tag": "interest:ski", "source": "declared"}}, 201, true)
	e.change(call{method: "POST", path: U + "/tags", body: map[string]any{"tag": "region:sh", "source": "inferred"}}, 201, true)
	before := len(e.rightsKinds())

	cr := e.change(call{method: "POST", path: U + "/tags/Interest:Ski/correct", body: map[string]any{"replacement": " Interest : Snowboard", "surface": "web"}}, 200, true)
	if cr.Receipt.Op != consent.OpCorrectTag || cr.Receipt.Subject != "interest:ski" || cr.Receipt.Old != "declared" ||
		cr.Receipt.New != "corrected to interest:snowboard (declared)" || cr.Receipt.Actor != consent.ActorUser || cr.Receipt.Surface != "web" {
		t.Fatalf("correct: %+v", cr.Receipt)
	}
	tv := e.tagsOf(u)
	if len(tv.Tags) != 2 || tv.Tags[0].Tag != "interest:snowboard" || tv.Tags[0].Source != tags.Declared ||
		len(tv.Suppressed) != 1 || tv.Suppressed[0].Tag != "interest:ski" {
		t.Fatalf("tags after the correction: %+v", tv)
	}
	if d := e.decision(u); !slices.Equal(d.Tags, []tags.Tag{"interest:snowboard", "region:sh"}) {
		t.Fatalf("decision tags: %+v", d)
	}
	// The wrong tag stays deleted: the pipeline cannot bring it back.
	e.rejected(call{method: "POST", path: U + "/tags", key: e.app(), body: map[string]any{"tag": "interest:ski", "source": "inferred"}}, 409, "tag-suppressed", u)
	// An inferred tag is corrected too: the replacement is the user's.
	cr = e.change(call{method: "POST", path: U + "/tags/region:sh/correct", body: map[string]any{"replacement": "region:bj"}}, 200, true)
	if cr.Receipt.Old != "inferred" || cr.Receipt.Surface != consent.SurfaceAPI {
		t.Fatalf("correct an inferred tag: %+v", cr.Receipt)
	}

	// Bad input and states that forbid it change nothing.
	for _, tc := range []struct {
		path   string
		body   any
		status int
		code   string
		field  string
		req    conformance
	}{
		{"/tags/interest:ski/correct", map[string]any{"replacement": "interest:skating"}, 422, "invalid-value", "tag", conforms},   // not one of the user's tags (suppressed)
		{"/tags/interest:golf/correct", map[string]any{"replacement": "interest:skating"}, 422, "invalid-value", "tag", conforms},  // never had it
		{"/tags/region:bj/correct", map[string]any{"replacement": "Region:BJ"}, 422, "invalid-value", "replacement", conforms},     // the tag itself
		{"/tags/region:bj/correct", map[string]any{"replacement": "religion:x"}, 409, "consent-required", "replacement", conforms}, // sensitive, no consent
		{"/tags/region:bj/correct", map[string]any{"replacement": "banned:x"}, 422, "invalid-value", "replacement", conforms},      // prohibited
		{"/tags/region:bj/correct", map[string]any{"replacement": "sensitive:x"}, 422, "invalid-value", "replacement", violates},   // reserved namespace
		{"/tags/region:bj/correct", map[string]any{"replacement": "nope"}, 422, "invalid-value", "replacement", violates},          // malformed
		{"/tags/region:bj/correct", map[string]any{}, 422, "invalid-value", "replacement", violates},                               // missing
		{"/tags/region:bj/correct", map[string]any{"replacement": 7}, 400, "malformed-request", "replacement", violates},           // not a string
		{"/tags/region:bj/correct", map[string]any{"replacement": "region:x", "tag": "y"}, 400, "malformed-request", "", violates}, // unknown field
		{"/tags/Bad/correct", map[string]any{"replacement": "region:x"}, 422, "invalid-value", "tag", violates},                    // malformed path tag
		{"/tags/region:bj/correct", map[string]any{"replacement": "region:x", "surface": "No!"}, 422, "invalid-value", "surface", violates},
	} {
		p := e.rejected(call{method: "POST", path: U + tc.path, key: e.app(), body: tc.body, req: tc.req}, tc.status, tc.code, u)
		if p.Field != tc.field {
			t.Errorf("%s %v: field %q, want %q (%s)", tc.path, tc.body, p.Field, tc.field, p.Detail)
		}
	}
	e.rejected(call{method: "POST", path: U + "/tags/region:bj/correct", key: e.app(), body: `{"replacement":"region:x"}`, ctype: "-", req: violates}, 415, "unsupported-media-type", u)
	for _, key := range []string{e.admin(), e.auditor()} {
		e.rejected(call{method: "POST", path: U + "/tags/region:bj/correct", key: key, body: map[string]any{"replacement": "region:x"}}, 403, "forbidden", u)
	}
	// A minor without guardian consent: no tag is stored, corrections included.
	e.change(call{method: "PUT", path: U + "/minor", body: map[string]any{"minor": true}}, 200, true)
	e.rejected(call{method: "POST", path: U + "/tags/region:bj/correct", key: e.app(), body: map[string]any{"replacement": "region:x"}}, 409, "consent-required", u)

	got := e.rightsKinds()[before:]
	wantKinds := []string{"correct 200", "access 200"} // the correction, the tags read; the pipeline's refused tag is no rights request
	for _, s := range []int{200, 422, 422, 422, 409, 422, 422, 422, 422, 400, 400, 422, 422, 415, 409} {
		wantKinds = append(wantKinds, "correct "+strconv.Itoa(s))
	}
	if !slices.Equal(got, wantKinds) {
		t.Errorf("rights log %q\nwant        %q", got, wantKinds)
	}
}

// TestExportIdentityAndCount: an export says how the applicant's identity
// was verified (400 without, nothing logged as fulfilled); exports and
// receipt lists are counted per user over 30 days, and past the threshold
// still served but flagged (header, metric).
func TestExportIdentityAndCount(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	clock := newFakeClock()
	e := newEnv(t, func(c *envConfig) {
		c.srv.ExcessiveCopies, c.srv.Logger, c.srv.Now = 3, logTo(&logs), clock.Now
		c.srv.KeyCacheTTL = 100 * 24 * time.Hour // the clock jumps a month
	})
	const u = "x1"
	U := "/v1/users/" + u
	e.change(call{method: "PUT", path: U + "/consent/channels/sms", body: map[string]any{"refused": true}}, 200, true)
	before := len(e.rightsKinds())

	// Without the verification, or with a malformed one: 400.
	for _, h := range []map[string]string{nil, {server.HeaderIdentityVerification: "SMS OTP"}, {server.HeaderIdentityVerification: strings.Repeat("a", 33)}} {
		p := e.rejected(call{method: "GET", path: U + "/export", key: e.app(), header: h, req: violates}, 400, "malformed-request", u)
		if p.Field != server.HeaderIdentityVerification {
			t.Errorf("header %v: field %q", h, p.Field)
		}
		if e.last.Header.Get(server.HeaderCopyRequests) != "" {
			t.Error("a refused export was counted")
		}
	}
	// A bad user ID is 422 first.
	e.rejected(call{method: "GET", path: "/v1/users/a%20b/export", key: e.app(), req: violates}, 422, "invalid-value", u)

	copies := func(path, method string, n int, excessive bool) {
		t.Helper()
		r := e.do(call{method: method, path: U + path, key: e.app(), header: map[string]string{server.HeaderIdentityVerification: "face"}})
		want(t, r, 200)
		if got := r.Header.Get(server.HeaderCopyRequests); got != strconv.Itoa(n) {
			t.Errorf("%s #%d: %s %q", path, n, server.HeaderCopyRequests, got)
		}
		if got := r.Header.Get(server.HeaderExcessiveRequests) == "true"; got != excessive {
			t.Errorf("%s #%d: flagged %v, want %v", path, n, got, excessive)
		}
	}
	copies("/export", "GET", 1, false)
	copies("/receipts", "GET", 2, false)
	clock.Advance(29 * 24 * time.Hour)
	copies("/export", "GET", 3, false)
	copies("/export", "GET", 4, true) // served, flagged
	copies("/receipts", "GET", 5, true)
	// Reads of the state are not copies.
	if r := e.do(call{method: "GET", path: U + "/consent", key: e.app()}); r.Header.Get(server.HeaderCopyRequests) != "" {
		t.Error("GET consent counted as a copy")
	}
	// Another user has a count of their own.
	r := e.do(call{method: "GET", path: "/v1/users/x2/export", key: e.app(), header: verified})
	if want(t, r, 200); r.Header.Get(server.HeaderCopyRequests) != "1" {
		t.Errorf("x2: %q", r.Header.Get(server.HeaderCopyRequests))
	}
	// 30 days after the first two, they no longer count.
	clock.Advance(2 * 24 * time.Hour)
	copies("/export", "GET", 4, true)
	clock.Advance(30 * 24 * time.Hour)
	copies("/export", "GET", 1, false)

	m := string(e.do(call{method: "GET", path: "/metrics"}).Body)
	for _, line := range []string{`recguard_copy_requests_excessive_total{kind="portability"} 2`, `recguard_copy_requests_excessive_total{kind="access"} 1`} {
		if !strings.Contains(m, "\n"+line+"\n") {
			t.Errorf("metrics lack %s", line)
		}
	}
	// The rights log: the refused exports, then the fulfilled ones.
	got := e.rightsKinds()[before:]
	wantKinds := []string{"portability 400", "portability 400", "portability 400", // not the bad user ID: no request about a user
		"portability 200", "access 200", "portability 200", "portability 200", "access 200", "access 200", "portability 200", "portability 200", "portability 200"}
	if !slices.Equal(got, wantKinds) {
		t.Errorf("rights log %q\nwant        %q", got, wantKinds)
	}
	// How the identity was verified is kept with each export in the
	// rights log (never who the applicant is).
	rs, err := e.mem.RightsRequests(e.ctx, time.Time{}, time.Now().Add(100*365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var how []string
	for _, r := range rs[before:] {
		if r.Status == 200 {
			how = append(how, r.Verification)
		}
	}
	if wantHow := []string{"face", "", "face", "face", "", "", "sms_otp", "face", "face"}; !slices.Equal(how, wantHow) {
		t.Errorf("verification methods in the rights log %q, want %q", how, wantHow)
	}
	if strings.Contains(logs.String(), u) {
		t.Error("a user ID is in the log")
	}
}

// TestCopiesNotCounted: a negative ExcessiveCopies turns the count off.
func TestCopiesNotCounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.srv.ExcessiveCopies = -1 })
	for i := 0; i < 12; i++ {
		r := e.do(call{method: "GET", path: "/v1/users/n1/export", key: e.app(), header: verified})
		want(t, r, 200)
		if r.Header.Get(server.HeaderCopyRequests) != "" || r.Header.Get(server.HeaderExcessiveRequests) != "" {
			t.Fatalf("counted: %v", r.Header)
		}
	}
}

// sharedCounter is a RequestCounter store ability (as a store keeping the
// counts for every instance would have it).
type sharedCounter struct {
	*memory.Store
	calls []string
}

func (s *sharedCounter) CountRequest(_ context.Context, userID, class string, _ time.Time, window time.Duration) (int, error) {
	s.calls = append(s.calls, userID+" "+class+" "+window.String())
	return 42, nil
}

// TestRequestCounterAbility: a store that counts requests is used instead
// of the instance's own memory.
func TestRequestCounterAbility(t *testing.T) {
	t.Parallel()
	var sc *sharedCounter
	e := newEnv(t, func(c *envConfig) {
		c.wrap = func(m *memory.Store) store.Store { sc = &sharedCounter{Store: m}; return sc }
	})
	r := e.do(call{method: "GET", path: "/v1/users/s1/export", key: e.app(), header: verified})
	want(t, r, 200)
	if r.Header.Get(server.HeaderCopyRequests) != "42" || r.Header.Get(server.HeaderExcessiveRequests) != "true" ||
		!slices.Equal(sc.calls, []string{"s1 copy 720h0m0s"}) {
		t.Errorf("headers %v, calls %q", r.Header, sc.calls)
	}
}

// TestErasedStorageOnly: after an erasure the user routes serve none of
// the receipts kept (storage only, Art. 24): the receipts route says
// erased with the certificate, the export is the tombstone and the
// certificate; an auditor reads and verifies the kept receipts, redacted.
func TestErasedStorageOnly(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	e := newEnv(t, func(c *envConfig) { c.srv.Logger = logTo(&logs) })
	const u = "e1"
	U := "/v1/users/" + u
	e.change(call{method: "PUT", path: U + "/consent/sensitive/religion", body: map[string]any{"granted": true, "purpose": "personalization"}}, 200, true)
	e.change(call{method: "POST", path: U + "/tags", body: map[string]any{"tag": "religion:zen", "source": "declared"}}, 201, true)
	e.change(call{method: "DELETE", path: U + "/tags/religion:zen"}, 200, true)
	er := e.change(call{method: "DELETE", path: U}, 200, true)
	n := int(er.Version)

	r := e.do(call{method: "GET", path: U + "/receipts", key: e.app()})
	want(t, r, 200)
	rr := decode[server.ReceiptsResponse](t, r)
	if len(rr.Receipts) != 0 || !rr.Erased || !rr.ChainValid || rr.Erasure == nil || rr.Erasure.ReceiptID != er.Receipt.ID ||
		len(rr.Erasure.Deleted) == 0 || len(rr.Erasure.Retained) != 2 || rr.Erasure.Retained[1].Until.IsZero() {
		t.Fatalf("receipts of an erased user: %s", r.Body)
	}
	r = e.do(call{method: "GET", path: U + "/export", key: e.app(), header: verified})
	want(t, r, 200)
	ex := decode[server.ExportResponse](t, r)
	if len(ex.Receipts) != 0 || !ex.Record.State.Erased || ex.Erasure == nil || ex.Erasure.ErasedAt.IsZero() || ex.Erasure.By != consent.ActorUser ||
		len(ex.Record.Tags.Entries) != 0 || len(ex.Record.Tags.Suppressed) != 0 {
		t.Fatalf("export of an erased user: %s", r.Body)
	}
	for _, marker := range []string{"zen", "religion:", "api key "} {
		for _, path := range []string{"/receipts", "/export", "/tags", "/consent"} {
			r := e.do(call{method: "GET", path: U + path, key: e.app(), header: verified})
			if strings.Contains(string(r.Body), marker) {
				t.Errorf("GET %s of an erased user holds %q: %s", path, marker, r.Body)
			}
		}
	}

	// The auditor sees every receipt kept, redacted, verified.
	r = e.do(call{method: "GET", path: "/v1/audit/users/" + u + "/receipts", key: e.auditor()})
	want(t, r, 200)
	ar := decode[server.AuditReceiptsResponse](t, r)
	if ar.UserID != u || !ar.Erased || ar.Erasure == nil || len(ar.Receipts) != n || !ar.ChainValid || ar.ChainReason != "" ||
		ar.Version != uint64(n) || ar.LastHash != er.Receipt.Hash {
		t.Fatalf("auditor's view: %s", r.Body)
	}
	for i, rc := range ar.Receipts {
		if !rc.Redacted || rc.Subject != "" || rc.Reason != "" || rc.Seq != uint64(i+1) || rc.Digest == "" {
			t.Errorf("auditor's receipt %d: %+v", i, rc)
		}
	}
	if strings.Contains(string(r.Body), "zen") {
		t.Errorf("the auditor's view holds personal content: %s", r.Body)
	}
	// Of a user not erased: redacted too, and verified.
	e.change(call{method: "PUT", path: "/v1/users/e2/consent/channels/sms", body: map[string]any{"refused": true}}, 200, true)
	r = e.do(call{method: "GET", path: "/v1/audit/users/e2/receipts", key: e.auditor()})
	want(t, r, 200)
	if ar := decode[server.AuditReceiptsResponse](t, r); ar.Erased || ar.Erasure != nil || len(ar.Receipts) != 1 || !ar.ChainValid ||
		!ar.Receipts[0].Redacted || ar.Receipts[0].Subject != "" {
		t.Fatalf("auditor's view of e2: %s", r.Body)
	}
	// Of a user never seen: nothing, valid.
	r = e.do(call{method: "GET", path: "/v1/audit/users/nobody/receipts", key: e.auditor()})
	want(t, r, 200)
	if ar := decode[server.AuditReceiptsResponse](t, r); ar.Version != 0 || len(ar.Receipts) != 0 || !ar.ChainValid || ar.Erased {
		t.Fatalf("auditor's view of nobody: %s", r.Body)
	}
	// Only auditors; a bad user ID is 422.
	for _, key := range []string{e.app(), e.admin()} {
		e.rejected(call{method: "GET", path: "/v1/audit/users/" + u + "/receipts", key: key}, 403, "forbidden", u)
	}
	wantProblem(t, e.do(call{method: "GET", path: "/v1/audit/users/" + u + "/receipts", req: violates}), 401, "unauthenticated")
	e.rejected(call{method: "GET", path: "/v1/audit/users/a%20b/receipts", key: e.auditor(), req: violates}, 422, "invalid-value", u)
	// Every read is logged, without the user ID.
	lines := logs.lines(t, "auditor access")
	if len(lines) != 7 || lines[0]["key_id"] != e.keyIDs[server.RoleAuditor] || lines[0]["route"] != "/v1/audit/users/:id/receipts" || lines[0]["status"] != float64(200) {
		t.Errorf("auditor access lines: %v", lines)
	}
	for _, l := range lines {
		if strings.Contains(l["route"].(string), u) {
			t.Errorf("user ID logged: %v", l)
		}
	}
}

// tamperedStore drops the user's newest receipt, as someone who can write
// the store could.
type tamperedStore struct {
	*memory.Store
}

func (s tamperedStore) Receipts(ctx context.Context, userID string) ([]consent.Receipt, error) {
	rs, err := s.Store.Receipts(ctx, userID)
	if len(rs) > 0 {
		rs = rs[:len(rs)-1]
	}
	return rs, err
}

// TestChainChecks: chain_valid is the check against the record's head
// under the configured key: a receipt removed from the newest end, or a
// server with another key, breaks it, on the user's and the auditor's
// routes.
func TestChainChecks(t *testing.T) {
	t.Parallel()
	for name, opt := range map[string]func(*envConfig){
		"newest receipt removed": func(c *envConfig) {
			c.wrap = func(m *memory.Store) store.Store { return tamperedStore{m} }
		},
		"another key": func(c *envConfig) { c.srv.ChainKey = []byte("not the key the store seals with") },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, opt)
			e.change(call{method: "PUT", path: "/v1/users/k1/consent/channels/sms", body: map[string]any{"refused": true}}, 200, true)
			e.change(call{method: "PUT", path: "/v1/users/k1/consent/channels/sms", body: map[string]any{"refused": false}}, 200, true)
			r := e.do(call{method: "GET", path: "/v1/users/k1/receipts", key: e.app()})
			want(t, r, 200)
			if rr := decode[server.ReceiptsResponse](t, r); rr.ChainValid {
				t.Errorf("user's route: chain_valid: %s", r.Body)
			}
			r = e.do(call{method: "GET", path: "/v1/audit/users/k1/receipts", key: e.auditor()})
			want(t, r, 200)
			if ar := decode[server.AuditReceiptsResponse](t, r); ar.ChainValid || ar.ChainReason == "" {
				t.Errorf("auditor's route: %s", r.Body)
			}
		})
	}
}

// TestExportSchema: the exports of a user as they go through their
// rights (normal, restricted, erased, back after the erasure) and of a
// user never seen all validate against docs/export.schema.json (every
// export a test sees is validated: env.do); the schema is versioned and
// closed.
func TestExportSchema(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const u = "s1"
	U := "/v1/users/" + u
	export := func(user string) []byte {
		t.Helper()
		r := e.do(call{method: "GET", path: "/v1/users/" + user + "/export", key: e.app(), header: verified})
		want(t, r, 200)
		return r.Body
	}
	export("never-seen")
	e.change(call{method: "PUT", path: U + "/minor", body: map[string]any{"minor": true}}, 200, true)
	e.change(call{method: "PUT", path: U + "/consent/guardian", body: map[string]any{"granted": true, "ref": "g-1"}}, 200, true)
	e.change(call{method: "PUT", path: U + "/consent/sensitive/religion", body: map[string]any{"granted": true, "purpose": "personalization", "by_guardian": true}}, 200, true)
	e.change(call{method: "POST", path: U + "/tags", body: map[string]any{"tag": "religion:zen", "source": "declared"}}, 201, true)
	e.change(call{method: "POST", path: U + "/tags", body: map[string]any{"tag": "interest:ski", "source": "inferred"}}, 201, true)
	e.change(call{method: "POST", path: U + "/tags/interest:ski/correct", body: map[string]any{"replacement": "interest:skating"}}, 200, true)
	e.change(call{method: "DELETE", path: U + "/tags/religion:zen"}, 200, true)
	e.change(call{method: "PUT", path: U + "/consent/channels/sms", body: map[string]any{"refused": true}}, 200, true)
	e.change(call{method: "PUT", path: U + "/consent/personalization", body: map[string]any{"enabled": false}}, 200, true)
	normal := export(u)
	e.change(call{method: "PUT", path: U + "/restriction", body: map[string]any{"restricted": true}}, 200, true)
	restricted := export(u)
	if !strings.Contains(string(restricted), `"restricted":true`) {
		t.Errorf("restricted export: %s", restricted)
	}
	e.change(call{method: "DELETE", path: U}, 200, true)
	erased := export(u)
	if !strings.Contains(string(erased), `"erasure":`) {
		t.Errorf("erased export: %s", erased)
	}
	e.change(call{method: "PUT", path: U + "/consent/personalization", body: map[string]any{"enabled": true}}, 200, true)
	export(u) // back after the erasure

	// The schema: versioned, and the exports name it.
	b, err := os.ReadFile("../docs/export.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var sch struct {
		Schema string `json:"$schema"`
		ID     string `json:"$id"`
	}
	if err := json.Unmarshal(b, &sch); err != nil {
		t.Fatal(err)
	}
	if sch.Schema != "https://json-schema.org/draft/2020-12/schema" || sch.ID != server.ExportSchema || !strings.HasSuffix(sch.ID, "/v3") {
		t.Errorf("schema header %+v", sch)
	}
	// Closed: an unknown member anywhere is refused.
	for _, tc := range []struct {
		doc  []byte
		path []string
	}{
		{normal, nil}, {normal, []string{"record"}}, {normal, []string{"record", "state"}}, {normal, []string{"record", "tags"}},
		{erased, []string{"erasure"}}, {restricted, []string{"record", "state", "sensitive", "0"}},
	} {
		var doc any
		if err := json.Unmarshal(tc.doc, &doc); err != nil {
			t.Fatal(err)
		}
		obj := doc
		for _, k := range tc.path {
			switch o := obj.(type) {
			case map[string]any:
				obj = o[k]
			case []any:
				i, _ := strconv.Atoi(k)
				obj = o[i]
			}
		}
		obj.(map[string]any)["surprise"] = 1
		if err := exportSchemaErrOf(t, doc); err == nil {
			t.Errorf("an unknown member in %v passed", tc.path)
		}
	}
	// And the receipts an export holds are never redacted; an erased
	// user's export has no receipt and has its certificate.
	var doc map[string]any
	json.Unmarshal(normal, &doc)
	doc["receipts"].([]any)[0].(map[string]any)["redacted"] = true
	if exportSchemaErrOf(t, doc) == nil {
		t.Error("a redacted receipt in an export passed")
	}
	json.Unmarshal(erased, &doc)
	delete(doc, "erasure")
	if exportSchemaErrOf(t, doc) == nil {
		t.Error("an erased user's export without its certificate passed")
	}
	if exportsValidated.Load() < 5 {
		t.Errorf("%d exports validated", exportsValidated.Load())
	}
}

// TestRestrictionAndCorrectionWaitForAll: a restriction and a correction
// (which removes the wrong tag) are acknowledged only once every live
// instance applied them; lifting a restriction takes nothing away and does
// not wait.
func TestRestrictionAndCorrectionWaitForAll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) {
		c.srv.WaitForAll = true
		c.sdk.PropagationTimeout = 150 * time.Millisecond
	})
	const U = "/v1/users/w1"
	e.change(call{method: "POST", path: U + "/tags", body: map[string]any{"tag": "interest:ski", "source": "declared"}}, 201, true)
	// A live instance that stalled: it announced itself but applies nothing.
	if err := e.mem.Announce(e.ctx, "stalled", make([]store.Position, e.mem.Shards()+1), time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, c := range []call{
		{method: "PUT", path: U + "/restriction", body: map[string]any{"restricted": true}},
		{method: "POST", path: U + "/tags/interest:ski/correct", body: map[string]any{"replacement": "interest:skating"}},
	} {
		if cr := e.pendingChange(c, "not-propagated"); cr.Receipt == nil || cr.UserID != "w1" {
			t.Errorf("%s %s: 202 without the state and receipt: %+v", c.method, c.path, cr)
		}
	}
	if cr := e.change(call{method: "PUT", path: U + "/restriction", body: map[string]any{"restricted": false}}, 200, true); cr.State.Restricted {
		t.Fatalf("lift: %+v", cr)
	}
}
