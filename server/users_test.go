package server_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/tags"
)

func (e *env) decision(user string) server.DecisionResponse {
	e.t.Helper()
	r := e.do(call{method: "GET", path: "/v1/users/" + user + "/decision", key: e.app()})
	want(e.t, r, 200)
	return decode[server.DecisionResponse](e.t, r)
}

func (e *env) canPush(user, channel string, targeted bool) server.CanPushResponse {
	e.t.Helper()
	q := "?channel=" + channel
	if targeted {
		q += "&targeted=true"
	}
	r := e.do(call{method: "GET", path: "/v1/users/" + user + "/can-push" + q, key: e.app()})
	want(e.t, r, 200)
	return decode[server.CanPushResponse](e.t, r)
}

// change sends a change and checks its status and whether it left a receipt.
func (e *env) change(c call, status int, wantReceipt bool) server.ConsentResponse {
	e.t.Helper()
	if c.key == "" {
		c.key = e.app()
	}
	r := e.do(c)
	want(e.t, r, status)
	cr := decode[server.ConsentResponse](e.t, r)
	if (cr.Receipt != nil) != wantReceipt {
		e.t.Fatalf("%s %s: receipt %+v, want one: %v", c.method, c.path, cr.Receipt, wantReceipt)
	}
	return cr
}

func (e *env) tagsOf(user string) server.TagsResponse {
	e.t.Helper()
	r := e.do(call{method: "GET", path: "/v1/users/" + user + "/tags", key: e.app()})
	want(e.t, r, 200)
	return decode[server.TagsResponse](e.t, r)
}

// TestUserRoutes walks every /v1/users route through its happy paths and
// checks what each answer says.
func TestUserRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const u = "a.b+c=d@e_f-1" // every punctuation a user ID may have
	U := "/v1/users/" + u

	// A user never seen: personalized, every channel, nothing refused.
	d := e.decision(u)
	if d.UserID != u || !d.Personalized || d.Reason != consent.ReasonPersonalized || len(d.Tags) != 0 ||
		!slices.Equal(d.Channels, []string{"email", "in_app", "push", "sms"}) || len(d.Refused) != 0 || d.PushBlock != 0 {
		t.Fatalf("new user decision %+v", d)
	}
	if d.Tags == nil || d.Refused == nil {
		t.Error("lists must be [] not null")
	}
	r := e.do(call{method: "GET", path: U + "/consent", key: e.app()})
	want(t, r, 200)
	if cr := decode[server.ConsentResponse](t, r); cr.UserID != u || cr.Version != 0 || cr.Receipt != nil ||
		!strings.Contains(string(r.Body), `"state":{}`) || strings.Contains(string(r.Body), "receipt") {
		t.Fatalf("new user consent %s", r.Body)
	}

	// Personalization off: the decision says so; again is a no-op.
	cr := e.change(call{method: "PUT", path: U + "/consent/personalization", body: map[string]any{"enabled": false}}, 200, true)
	if cr.Version != 1 || !cr.State.PersonalizationOff || cr.Receipt.Op != consent.OpSetPersonalization ||
		cr.Receipt.Old != "on" || cr.Receipt.New != "off" || cr.Receipt.Actor != consent.ActorUser ||
		cr.Receipt.Surface != consent.SurfaceAPI || cr.Receipt.Seq != 1 || !strings.HasPrefix(cr.Receipt.Reason, "api key ") {
		t.Fatalf("personalization off: %+v receipt %+v", cr, cr.Receipt)
	}
	if d := e.decision(u); d.Personalized || d.Reason != consent.ReasonOptedOut || len(d.Tags) != 0 {
		t.Fatalf("after opt-out: %+v", d)
	}
	if p := e.canPush(u, "push", true); p.Allowed || p.Reason != consent.ReasonOptedOut {
		t.Errorf("targeted push while opted out: %+v", p)
	}
	if p := e.canPush(u, "push", false); !p.Allowed || p.Reason != consent.ReasonAllowed || p.Targeted {
		t.Errorf("untargeted push while opted out: %+v", p)
	}
	r = e.do(call{method: "PUT", path: U + "/consent/personalization", key: e.app(), body: `{"enabled":false}`})
	want(t, r, 200)
	if strings.Contains(string(r.Body), `"receipt"`) {
		t.Errorf("no-op answered a receipt: %s", r.Body)
	}
	cr = e.change(call{method: "PUT", path: U + "/consent/personalization", body: map[string]any{"enabled": true, "surface": "web"}}, 200, true)
	if cr.Version != 2 || cr.State.PersonalizationOff || cr.Receipt.Surface != "web" || len(cr.State.Refusals) != 1 {
		t.Fatalf("personalization on: %+v", cr)
	}
	if d := e.decision(u); !d.Personalized || d.Reason != consent.ReasonPersonalized {
		t.Fatalf("after opt-in: %+v", d)
	}

	// Channels.
	cr = e.change(call{method: "PUT", path: U + "/consent/channels/sms", body: map[string]any{"refused": true}}, 200, true)
	if !slices.Equal(cr.State.RefusedChannels, []string{"sms"}) || cr.Receipt.Subject != "sms" || cr.Receipt.New != "refused" {
		t.Fatalf("refuse sms: %+v", cr)
	}
	if d := e.decision(u); !slices.Equal(d.Refused, []string{"sms"}) || !slices.Equal(d.Channels, []string{"email", "in_app", "push"}) {
		t.Fatalf("decision after refusing sms: %+v", d)
	}
	if p := e.canPush(u, "sms", false); p.Allowed || p.Reason != consent.ReasonChannelRefused || p.Channel != "sms" || p.UserID != u {
		t.Errorf("push on refused sms: %+v", p)
	}
	if p := e.canPush(u, "push", true); !p.Allowed || p.Reason != consent.ReasonAllowed || !p.Targeted {
		t.Errorf("targeted push: %+v", p)
	}
	if p := e.canPush(u, "fax", false); p.Allowed || p.Reason != consent.ReasonUnknownChannel {
		t.Errorf("push on an unconfigured channel: %+v", p)
	}
	e.change(call{method: "PUT", path: U + "/consent/channels/sms", body: map[string]any{"refused": true}}, 200, false)
	cr = e.change(call{method: "PUT", path: U + "/consent/channels/sms", body: map[string]any{"refused": false, "surface": "app_settings"}}, 200, true)
	if len(cr.State.RefusedChannels) != 0 {
		t.Fatalf("allow sms: %+v", cr)
	}
	if p := e.canPush(u, "sms", false); !p.Allowed {
		t.Errorf("push on sms allowed again: %+v", p)
	}

	// Tags: declared, inferred, deleted (suppressed), inferred again (409),
	// declared again (lifts the suppression).
	cr = e.change(call{method: "POST", path: U + "/tags", body: map[string]any{"tag": "interest:ski", "source": "declared"}}, 201, true)
	if cr.Receipt.Op != consent.OpDeclareTag || cr.Receipt.Subject != "interest:ski" || cr.Receipt.New != "declared" {
		t.Fatalf("declare: %+v", cr.Receipt)
	}
	e.change(call{method: "POST", path: U + "/tags", body: map[string]any{"tag": "interest:ski", "source": "declared"}}, 201, false)
	cr = e.change(call{method: "POST", path: U + "/tags", body: map[string]any{"tag": "region:sh", "source": "inferred"}}, 201, true)
	if cr.Receipt.Op != consent.OpInferTag || cr.Receipt.Actor != consent.ActorSystem || cr.Receipt.Surface != consent.SurfacePipeline {
		t.Fatalf("infer: %+v", cr.Receipt)
	}
	tv := e.tagsOf(u)
	if tv.UserID != u || len(tv.Tags) != 2 || tv.Tags[0].Tag != "interest:ski" || tv.Tags[0].Source != tags.Declared ||
		!tv.Tags[0].Usable || tv.Tags[1].Tag != "region:sh" || tv.Tags[1].Source != tags.Inferred || len(tv.Suppressed) != 0 {
		t.Fatalf("tags: %+v", tv)
	}
	if d := e.decision(u); !slices.Equal(d.Tags, []tags.Tag{"interest:ski", "region:sh"}) {
		t.Fatalf("decision tags: %+v", d)
	}
	cr = e.change(call{method: "DELETE", path: U + "/tags/interest:ski"}, 200, true)
	if cr.Receipt.Op != consent.OpDeleteTag || cr.Receipt.New != "deleted, suppressed" {
		t.Fatalf("delete: %+v", cr.Receipt)
	}
	e.change(call{method: "DELETE", path: U + "/tags/interest:ski"}, 200, false)
	tv = e.tagsOf(u)
	if len(tv.Tags) != 1 || len(tv.Suppressed) != 1 || tv.Suppressed[0].Tag != "interest:ski" {
		t.Fatalf("tags after delete: %+v", tv)
	}
	p := e.rejected(call{method: "POST", path: U + "/tags", key: e.app(), body: map[string]any{"tag": "interest:ski", "source": "inferred"}},
		409, "tag-suppressed", u)
	if p.Field != "tag" {
		t.Errorf("suppressed: field %q", p.Field)
	}
	// Tag deletion sticks (issue 11, item 1): not against a variant of the
	// tag, not against a plain declaration, not against an inference that
	// asks to lift the suppression; only the user's explicit re-declaration
	// brings it back, and its receipt says so.
	for _, body := range []map[string]any{
		{"tag": "Interest : SKI", "source": "inferred"},
		{"tag": "interest:ski", "source": "declared"},
		{"tag": " INTEREST:ski", "source": "declared", "surface": "web"},
	} {
		if p := e.rejected(call{method: "POST", path: U + "/tags", key: e.app(), body: body}, 409, "tag-suppressed", u); p.Field != "tag" {
			t.Errorf("%v: field %q", body, p.Field)
		}
	}
	if p := e.rejected(call{method: "POST", path: U + "/tags", key: e.app(), body: map[string]any{"tag": "interest:ski", "source": "inferred", "lift_suppression": true}},
		422, "invalid-value", u); p.Field != "lift_suppression" {
		t.Errorf("an inference lifting a suppression: field %q", p.Field)
	}
	cr = e.change(call{method: "POST", path: U + "/tags", body: map[string]any{"tag": "Interest:Ski", "source": "declared", "lift_suppression": true, "surface": "web"}}, 201, true)
	if cr.Receipt.Old != "suppressed" || !strings.HasPrefix(cr.Receipt.New, "declared") || !strings.Contains(cr.Receipt.New, "suppression lifted") ||
		cr.Receipt.Actor != consent.ActorUser || cr.Receipt.Surface != "web" || cr.Receipt.Subject != "interest:ski" {
		t.Fatalf("re-declaration after delete: %+v", cr.Receipt)
	}

	// A sensitive category: its tags need the separate consent.
	e.rejected(call{method: "POST", path: U + "/tags", key: e.app(), body: map[string]any{"tag": "religion:x", "source": "declared"}}, 409, "consent-required", u)
	cr = e.change(call{method: "PUT", path: U + "/consent/sensitive/religion",
		body: map[string]any{"granted": true, "purpose": "personalization"}}, 200, true)
	if len(cr.State.Sensitive) != 1 || cr.State.Sensitive[0].Category != tags.Religion || !cr.State.Sensitive[0].Granted ||
		cr.State.Sensitive[0].PolicyVersion != 1 || cr.Receipt.Op != consent.OpSetSensitive {
		t.Fatalf("grant: %+v", cr)
	}
	e.change(call{method: "PUT", path: U + "/consent/sensitive/religion",
		body: map[string]any{"granted": true, "purpose": "personalization"}}, 200, false)
	e.change(call{method: "POST", path: U + "/tags", body: map[string]any{"tag": "religion:x", "source": "declared"}}, 201, true)
	if tv := e.tagsOf(u); len(tv.Tags) != 3 || !tv.Tags[2].Usable {
		t.Fatalf("sensitive tag: %+v", tv)
	}
	cr = e.change(call{method: "PUT", path: U + "/consent/sensitive/religion", body: map[string]any{"granted": false}}, 200, true)
	if cr.Receipt.New != "withdrawn (1 tags removed)" || cr.State.Sensitive[0].Granted {
		t.Fatalf("withdraw: %+v", cr.Receipt)
	}
	if tv := e.tagsOf(u); len(tv.Tags) != 2 {
		t.Fatalf("tags after withdrawal: %+v", tv)
	}
	// A guardian acts only for a minor.
	e.rejected(call{method: "PUT", path: U + "/consent/sensitive/religion", key: e.app(),
		body: map[string]any{"granted": true, "purpose": "personalization", "by_guardian": true}}, 409, "not-allowed", u)

	// Receipts and export.
	r = e.do(call{method: "GET", path: U + "/receipts", key: e.app()})
	want(t, r, 200)
	rr := decode[server.ReceiptsResponse](t, r)
	if rr.UserID != u || !rr.ChainValid || len(rr.Receipts) == 0 {
		t.Fatalf("receipts: %+v", rr)
	}
	for i, rc := range rr.Receipts {
		if rc.Seq != uint64(i+1) || rc.UserID != u {
			t.Fatalf("receipt %d: %+v", i, rc)
		}
	}
	n := len(rr.Receipts)
	r = e.do(call{method: "GET", path: U + "/export", key: e.app(), header: verified})
	want(t, r, 200)
	if cd := r.Header.Get("Content-Disposition"); cd != `attachment; filename="recguard-export-`+u+`.json"` {
		t.Errorf("Content-Disposition %q", cd)
	}
	ex := decode[server.ExportResponse](t, r)
	if ex.Schema != server.ExportSchema || ex.ExportedAt.IsZero() || ex.Record.UserID != u ||
		ex.Record.Version != uint64(n) || len(ex.Receipts) != n || len(ex.Record.Tags.Entries) != 2 || len(ex.Record.Tags.Suppressed) != 0 {
		t.Fatalf("export: %s", clip(r.Body))
	}
	// A user never seen exports empty.
	r = e.do(call{method: "GET", path: "/v1/users/nobody/export", key: e.app(), header: verified})
	want(t, r, 200)
	if ex := decode[server.ExportResponse](t, r); ex.Record.Version != 0 || len(ex.Receipts) != 0 || ex.Record.UserID != "nobody" {
		t.Fatalf("empty export: %s", r.Body)
	}

	// Erasure: decision erased, push blocked, the pipeline cannot tag the
	// user; erasing again is a no-op; the user's own change brings them back.
	cr = e.change(call{method: "DELETE", path: U}, 200, true)
	if !cr.State.Erased || cr.Receipt.Op != consent.OpErase || cr.Receipt.New != "erased" {
		t.Fatalf("erase: %+v", cr)
	}
	if d := e.decision(u); d.Personalized || d.Reason != consent.ReasonErased || d.PushBlock != consent.ReasonErased {
		t.Fatalf("decision after erasure: %+v", d)
	}
	if p := e.canPush(u, "push", false); p.Allowed || p.Reason != consent.ReasonErased {
		t.Errorf("push after erasure: %+v", p)
	}
	e.change(call{method: "DELETE", path: U}, 200, false)
	p = e.rejected(call{method: "POST", path: U + "/tags", key: e.app(), body: map[string]any{"tag": "region:be", "source": "inferred"}},
		409, "not-allowed", u)
	if p.Field != "user_id" {
		t.Errorf("erased: field %q", p.Field)
	}
	// The tombstone: no tags, no suppressions (the pipeline is refused
	// anyway), and no receipt served (storage only, Art. 24): the erasure
	// certificate instead.
	if tv := e.tagsOf(u); len(tv.Tags) != 0 || len(tv.Suppressed) != 0 {
		t.Fatalf("tags after erasure: %+v", tv)
	}
	r = e.do(call{method: "GET", path: U + "/receipts", key: e.app()})
	want(t, r, 200)
	if rr := decode[server.ReceiptsResponse](t, r); len(rr.Receipts) != 0 || !rr.ChainValid || !rr.Erased || rr.Erasure == nil ||
		rr.Erasure.By != consent.ActorUser || rr.Erasure.ReceiptID != cr.Receipt.ID || rr.Withheld != 0 {
		t.Fatalf("receipts after erasure: %s", r.Body)
	}
	cr = e.change(call{method: "PUT", path: U + "/consent/personalization", body: map[string]any{"enabled": true}}, 200, true)
	if cr.State.Erased {
		t.Fatalf("the user's own change did not bring them back: %+v", cr)
	}
	if d := e.decision(u); !d.Personalized {
		t.Fatalf("decision after coming back: %+v", d)
	}
	// Back, the user sees the receipts made since; those kept from before
	// the erasure stay in storage only.
	r = e.do(call{method: "GET", path: U + "/receipts", key: e.app()})
	want(t, r, 200)
	if rr := decode[server.ReceiptsResponse](t, r); len(rr.Receipts) != 1 || rr.Receipts[0].Seq != uint64(n+2) ||
		rr.Withheld != n+1 || rr.Erased || rr.Erasure != nil || !rr.ChainValid {
		t.Fatalf("receipts after coming back: %s", r.Body)
	}
}

// verified is the header an app sends with an export: how it verified
// the applicant's identity.
var verified = map[string]string{server.HeaderIdentityVerification: "sms_otp"}
