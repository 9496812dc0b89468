package server_test

import (
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store"
)

// TestWaitForAll: with the server's WaitForAll, restrictive changes (opt-out,
// channel refusal, sensitive withdrawal, tag deletion, erasure, suspension,
// a minor marked, the guardian's withdrawal)
// are acknowledged only once every live instance applied them: 200 when a
// second real SDK instance on the same store applied them, 202 with a
// not-propagated problem (carrying the state) while a live instance is
// stalled, and 200 for the same request once it caught up. Other changes
// never wait.
func TestWaitForAll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) {
		c.srv.WaitForAll = true
		c.sdk.PropagationTimeout = 150 * time.Millisecond
	})
	// A second instance on the same store, as a second `serve` would be.
	other, err := sdk.New(e.ctx, e.st, sdk.Config{InstanceID: "other", Heartbeat: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	if err := other.Ready(e.ctx); err != nil {
		t.Fatal(err)
	}
	waitInstances(t, e, 2)

	// Every instance live and following: acknowledged, and the other
	// instance honours the opt-out the moment the answer comes.
	cr := e.change(call{method: "PUT", path: "/v1/users/u1/consent/personalization", body: `{"enabled":false}`}, 200, true)
	if !cr.State.PersonalizationOff {
		t.Fatalf("opt-out answer %+v", cr)
	}
	if d, err := other.Decide(e.ctx, "u1"); err != nil || d.Personalized || d.Reason != consent.ReasonOptedOut {
		t.Fatalf("the other instance right after the acknowledged opt-out: %+v %v", d, err)
	}
	e.change(call{method: "PUT", path: "/v1/users/u1/consent/channels/sms", body: `{"refused":true}`}, 200, true)
	if ok, why, _ := other.CanPush(e.ctx, "u1", "sms", false); ok {
		t.Fatalf("the other instance allows sms right after the acknowledged refusal: %v", why)
	}
	want(t, e.do(call{method: "PUT", path: "/v1/admin/suspension", key: e.admin(), body: `{"suspended":true,"reason":"order 1"}`}), 200)
	if d, _ := other.Decide(e.ctx, "u2"); d.Reason != consent.ReasonSuspended {
		t.Fatalf("the other instance right after the acknowledged suspension: %+v", d)
	}
	want(t, e.do(call{method: "PUT", path: "/v1/admin/suspension", key: e.admin(), body: `{"suspended":false}`}), 200)
	// Marking a minor waits too: the other instance stops personalizing at once.
	e.change(call{method: "PUT", path: "/v1/users/u4/minor", body: `{"minor":true}`}, 200, true)
	if d, _ := other.Decide(e.ctx, "u4"); d.Personalized || d.Reason != consent.ReasonMinorNoGuardian {
		t.Fatalf("the other instance right after the acknowledged minor: %+v", d)
	}
	e.change(call{method: "PUT", path: "/v1/users/u4/consent/guardian", body: `{"granted":true,"ref":"guardian-1"}`}, 200, true)

	// A live instance that stalled: it announced itself but applies nothing.
	stale := make([]store.Position, e.mem.Shards()+1)
	if err := e.mem.Announce(e.ctx, "stalled", stale, time.Minute); err != nil {
		t.Fatal(err)
	}
	U := "/v1/users/u2"
	restrictive := []call{
		{method: "PUT", path: U + "/consent/personalization", body: `{"enabled":false}`},
		{method: "PUT", path: U + "/consent/channels/email", body: `{"refused":true}`},
		{method: "PUT", path: U + "/consent/sensitive/religion", body: `{"granted":false}`},
		{method: "DELETE", path: U + "/tags/interest:ski"},
		{method: "DELETE", path: U},
	}
	// u2 needs a tag to delete and a grant to withdraw first; those changes
	// take nothing away, so they do not wait (if they did, the stalled
	// instance would make them 202).
	e.change(call{method: "POST", path: U + "/tags", body: `{"tag":"interest:ski","source":"declared"}`}, 201, true)
	e.change(call{method: "PUT", path: U + "/consent/sensitive/religion", body: `{"granted":true,"purpose":"personalization"}`}, 200, true)
	for _, c := range restrictive {
		cr := e.pendingChange(c, "not-propagated")
		if cr.UserID != "u2" || cr.Receipt == nil {
			t.Errorf("%s %s: 202 without the state and receipt: %+v", c.method, c.path, cr)
		}
	}
	// The guardian's withdrawal and marking a minor are restrictive too;
	// the guardian's consent is not (no wait).
	for _, c := range []call{
		{method: "PUT", path: "/v1/users/u4/consent/guardian", body: `{"granted":false,"ref":"guardian-1"}`},
		{method: "PUT", path: "/v1/users/u5/minor", body: `{"minor":true}`},
	} {
		if cr := e.pendingChange(c, "not-propagated"); cr.Receipt == nil {
			t.Errorf("%s %s: 202 without the receipt: %+v", c.method, c.path, cr)
		}
	}
	e.change(call{method: "PUT", path: "/v1/users/u5/consent/guardian", body: `{"granted":true,"ref":"guardian-2"}`}, 200, true)
	// The changes stand.
	if d := e.decision("u2"); d.Personalized || d.Reason != consent.ReasonErased {
		t.Fatalf("u2 after the unconfirmed erasure: %+v", d)
	}
	r := e.do(call{method: "PUT", path: "/v1/admin/suspension", key: e.admin(), body: `{"suspended":true,"reason":"order 2"}`})
	p := wantProblem(t, r, 202, "not-propagated")
	if p.Detail == "" {
		t.Errorf("202 without detail: %s", r.Body)
	}
	if sr := decode[server.SettingsResponse](t, r); !sr.Settings.Suspended || sr.Receipt.Op != consent.OpSetSettings {
		t.Errorf("suspension 202 does not carry the settings and receipt: %s", r.Body)
	}
	// Lifting the suspension takes nothing away: no wait.
	want(t, e.do(call{method: "PUT", path: "/v1/admin/suspension", key: e.admin(), body: `{"suspended":false}`}), 200)

	// A retry of an unconfirmed change is a no-op (the change stands, so
	// no receipt and no position of its own): it waits for everything in
	// the user's log so far, so while the instance is still stalled it is
	// still 202, never a 200 that would claim what did not happen.
	e.pendingChange(call{method: "DELETE", path: U}, "not-propagated")
	e.pendingChange(call{method: "PUT", path: "/v1/users/u4/consent/guardian", body: `{"granted":false,"ref":"guardian-1"}`}, "not-propagated")

	// The stalled instance catches up: the same requests (now no-ops) are
	// acknowledged, because everything in the user's log was applied.
	var tails []store.Position
	for log := 0; log < e.mem.Shards(); log++ {
		p, err := e.mem.Tail(e.ctx, log)
		if err != nil {
			t.Fatal(err)
		}
		tails = append(tails, p)
	}
	p2, err := e.mem.Tail(e.ctx, store.SettingsLog)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.mem.Announce(e.ctx, "stalled", append(tails, p2), time.Minute); err != nil {
		t.Fatal(err)
	}
	e.change(call{method: "DELETE", path: U}, 200, false)
	// A new restrictive change waits for it again (it announced nothing
	// newer). (Not one to u2: narrowing a tombstone changes nothing.)
	e.pendingChange(call{method: "PUT", path: "/v1/users/u4/consent/personalization", body: `{"enabled":false}`}, "not-propagated")
	// It stops announcing (gone): nothing waits for it.
	if err := e.mem.Leave(e.ctx, "stalled"); err != nil {
		t.Fatal(err)
	}
	e.change(call{method: "PUT", path: "/v1/users/u3/consent/personalization", body: `{"enabled":false}`}, 200, true)
}

// TestWaitForAllNeedsPresence: WaitForAll on a store that cannot track
// instances is refused at New, not discovered on the first opt-out.
func TestWaitForAllNeedsPresence(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := server.New(server.Config{Client: e.client, Store: bareStore{Store: e.mem, KeyStore: e.mem}, WaitForAll: true})
	if err == nil {
		t.Fatal("server.New accepted WaitForAll on a store without presence")
	}
}

// waitInstances waits (at most 5 s) until n instances are live.
func waitInstances(t *testing.T, e *env, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ins, err := e.mem.Instances(e.ctx)
		if err == nil && len(ins) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d instances live after 5 s, want %d (%v)", len(ins), n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
