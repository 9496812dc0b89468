package server_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
)

// TestMetricsCardinality: made-up methods and unmatched paths do not
// create metric series: methods are counted as one of a fixed set (OTHER
// for the rest), paths as their route template or "unmatched".
func TestMetricsCardinality(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := 0; i < 20; i++ {
		m := fmt.Sprintf("FOO%d", i)
		wantProblem(t, e.do(call{method: m, path: "/v1/users/u1/decision", key: e.app(), noRoute: true}), 405, "not-allowed")
		wantProblem(t, e.do(call{method: m, path: fmt.Sprintf("/nope/%d", i), noRoute: true}), 404, "not-found")
		wantProblem(t, e.do(call{method: "GET", path: fmt.Sprintf("/v1/users/u1/nope%d", i), key: e.app(), noRoute: true}), 404, "not-found")
	}
	r := e.do(call{method: "GET", path: "/metrics"})
	want(t, r, 200)
	body := string(r.Body)
	methods := map[string]bool{}
	routes := map[string]bool{}
	for _, m := range regexp.MustCompile(`recguard_http_requests_total\{method="([^"]*)",route="([^"]*)"`).FindAllStringSubmatch(body, -1) {
		methods[m[1]] = true
		routes[m[2]] = true
	}
	for m := range methods {
		switch m {
		case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER":
		default:
			t.Errorf("metric series for method %q", m)
		}
	}
	for r := range routes {
		if strings.Contains(r, "nope") {
			t.Errorf("metric series for route %q", r)
		}
	}
	for _, line := range []string{
		`recguard_http_requests_total{method="OTHER",route="unmatched",status="405"} 20`,
		`recguard_http_requests_total{method="OTHER",route="unmatched",status="404"} 20`,
		`recguard_http_requests_total{method="GET",route="unmatched",status="404"} 20`,
	} {
		if !strings.Contains(body, "\n"+line+"\n") {
			t.Errorf("metrics lack %s", line)
		}
	}
}

// TestAuthFailLimit: failed authentications are limited per client
// address; over the limit the answer is 429 with Retry-After and the store
// is not read. Keys verified within the key cache TTL keep working, other
// addresses have their own bucket, and X-Forwarded-For counts only from a
// trusted proxy.
func TestAuthFailLimit(t *testing.T) {
	t.Parallel()
	var fs *flakyStore
	e := newEnv(t, func(c *envConfig) {
		c.srv.AuthFailRate, c.srv.AuthFailBurst = 0.001, 3 // no token comes back during the test
		c.srv.KeyCacheTTL = time.Minute
		c.wrap = func(m *memory.Store) store.Store { fs = &flakyStore{Store: m}; return fs }
	})
	const u = "u1"
	// The app key is verified (and cached) before anything fails.
	want(t, e.do(call{method: "GET", path: "/v1/users/u1/decision", key: e.app()}), 200)

	unknown := func(i int) string { return fmt.Sprintf("rg_%012x_secret", i) }
	for i := 0; i < 3; i++ {
		e.rejected(call{method: "GET", path: "/v1/users/u1/decision", key: unknown(i)}, 401, "unauthenticated", u)
	}
	reads := fs.keyReads.Load()
	for i, c := range []call{
		{method: "GET", path: "/v1/users/u1/decision", key: unknown(10)},
		{method: "GET", path: "/v1/users/u1/decision", req: violates}, // no key at all
		{method: "PUT", path: "/v1/users/u1/consent/personalization", key: unknown(11), body: `{"enabled":false}`},
		{method: "GET", path: "/v1/admin/settings", key: e.admin()}, // a good key never verified: it would need a read
	} {
		p := e.rejected(c, 429, "rate-limited", u)
		if ra := e.last.Header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Errorf("%d: 429 without Retry-After", i)
		}
		if !strings.Contains(p.Detail, "failed authentications") {
			t.Errorf("%d: 429 detail %q", i, p.Detail)
		}
	}
	if n := fs.keyReads.Load() - reads; n != 0 {
		t.Errorf("%d key reads for requests over the failed-authentication limit, want 0", n)
	}
	// The verified key still works from the same address.
	want(t, e.do(call{method: "GET", path: "/v1/users/u1/decision", key: e.app()}), 200)

	// Without a trusted proxy X-Forwarded-For changes nothing.
	e.rejected(call{method: "GET", path: "/v1/users/u1/decision", key: unknown(20), header: map[string]string{"X-Forwarded-For": "10.9.9.9"}}, 429, "rate-limited", u)

	// Behind a trusted proxy each forwarded client has its own bucket.
	e2 := newEnv(t, func(c *envConfig) {
		c.srv.AuthFailRate, c.srv.AuthFailBurst = 0.001, 1
		c.srv.TrustedProxies = []string{"127.0.0.1", "::1"}
	})
	fwd := func(addr string) map[string]string { return map[string]string{"X-Forwarded-For": addr} }
	e2.rejected(call{method: "GET", path: "/v1/users/u1/decision", key: unknown(1), header: fwd("10.0.0.1")}, 401, "unauthenticated", u)
	e2.rejected(call{method: "GET", path: "/v1/users/u1/decision", key: unknown(2), header: fwd("10.0.0.1")}, 429, "rate-limited", u)
	e2.rejected(call{method: "GET", path: "/v1/users/u1/decision", key: unknown(3), header: fwd("10.0.0.2")}, 401, "unauthenticated", u)
	// IPv6 clients are counted by their /64: rotating the host part does not help.
	e2.rejected(call{method: "GET", path: "/v1/users/u1/decision", key: unknown(4), header: fwd("2001:db8:1:2::1")}, 401, "unauthenticated", u)
	e2.rejected(call{method: "GET", path: "/v1/users/u1/decision", key: unknown(5), header: fwd("2001:db8:1:2:ffff::9")}, 429, "rate-limited", u)
	e2.rejected(call{method: "GET", path: "/v1/users/u1/decision", key: unknown(6), header: fwd("2001:db8:1:3::1")}, 401, "unauthenticated", u)
	want(t, e2.do(call{method: "GET", path: "/v1/users/u1/decision", key: e2.app(), header: fwd("10.0.0.3")}), 200)
}

// TestKeyGrace: while the key store is unavailable, a key the store
// confirmed within the grace keeps working; a key never confirmed is 503;
// past the grace the confirmed key is 503 too; a key store error that is
// not unavailability gets no grace. When the store answers again a revoked
// key stops within the TTL.
func TestKeyGrace(t *testing.T) {
	t.Parallel()
	var fs *flakyStore
	clock := newFakeClock()
	e := newEnv(t, func(c *envConfig) {
		c.srv.KeyCacheTTL = 20 * time.Second
		c.srv.KeyGrace = 10 * time.Minute
		c.srv.Now = clock.Now
		c.wrap = func(m *memory.Store) store.Store { fs = &flakyStore{Store: m}; return fs }
	})
	const u = "u1"
	want(t, e.do(call{method: "GET", path: "/v1/users/u1/decision", key: e.app()}), 200)
	confirmed := clock.Now()
	down := fmt.Errorf("%w: dial tcp 10.1.2.3:6379: connect: connection refused", store.ErrUnavailable)
	fs.keyErr.Store(&down)
	clock.Advance(30 * time.Second) // past the TTL
	for i := 0; i < 5; i++ {
		want(t, e.do(call{method: "GET", path: "/v1/users/u1/decision", key: e.app()}), 200)
		want(t, e.do(call{method: "PUT", path: "/v1/users/u1/consent/channels/sms", key: e.app(), body: `{"refused":true}`}), 200)
		clock.Advance(time.Minute)
	}
	p := e.rejected(call{method: "GET", path: "/v1/admin/settings", key: e.admin()}, 503, "unavailable", u)
	if strings.Contains(string(e.last.Body), "10.1.2.3") || strings.Contains(p.Detail, "dial") {
		t.Errorf("503 shows the store error: %s", e.last.Body)
	}
	// Just within the grace the key works; past it, it is refused too.
	clock.Advance(confirmed.Add(10*time.Minute - time.Second).Sub(clock.Now()))
	want(t, e.do(call{method: "GET", path: "/v1/users/u1/decision", key: e.app()}), 200)
	clock.Advance(2 * time.Second)
	e.rejected(call{method: "GET", path: "/v1/users/u1/decision", key: e.app()}, 503, "unavailable", u)

	// The store answers again: the key works; revoked, it stops within the TTL.
	fs.keyErr.Store(nil)
	want(t, e.do(call{method: "GET", path: "/v1/users/u1/decision", key: e.app()}), 200)
	if err := server.RevokeKey(e.ctx, e.mem, e.keyIDs[server.RoleApp], time.Now()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(20 * time.Second)
	e.rejected(call{method: "GET", path: "/v1/users/u1/decision", key: e.app()}, 401, "unauthenticated", u)

	// A key store error that is not unavailability: no grace, 500.
	want(t, e.do(call{method: "GET", path: "/v1/admin/settings", key: e.admin()}), 200)
	boom := errors.New("secret disk path /var/lib/x is on fire")
	fs.keyErr.Store(&boom)
	clock.Advance(20 * time.Second)
	e.rejected(call{method: "GET", path: "/v1/admin/settings", key: e.admin()}, 500, "internal", u)
}

// TestNoLeaks: 5xx and 202 answers and /readyz never show the error behind
// them (addresses, backing-store text); the store's lost data and corrupt
// records have their own problem types; 4xx details keep their text.
func TestNoLeaks(t *testing.T) {
	t.Parallel()
	var fs *flakyStore
	e := newEnv(t, func(c *envConfig) {
		c.srv.KeyCacheTTL = time.Minute
		c.wrap = func(m *memory.Store) store.Store { fs = &flakyStore{Store: m}; return fs }
	})
	const u = "u1"
	secret := "10.1.2.3:6379"
	leaked := func(r result) bool {
		return strings.Contains(string(r.Body), secret) || strings.Contains(string(r.Body), "READONLY")
	}
	// Keys verified first, so that the store errors below hit the handlers.
	for _, k := range []string{e.app(), e.admin()} {
		if r := e.do(call{method: "GET", path: "/v1/users/u1/decision", key: k}); r.Status != 200 && r.Status != 403 {
			t.Fatal(r)
		}
	}
	for _, tc := range []struct {
		err  error
		code string
	}{
		{fmt.Errorf("%w: dial tcp %s: connect: connection refused", store.ErrUnavailable, secret), "unavailable"},
		{fmt.Errorf("%w: epoch marker of %s gone (READONLY replica)", store.ErrDataLoss, secret), "data-loss"},
		{&store.CorruptError{UserIDs: []string{u}, Detail: "field d of rg:{3}:u:u1 on " + secret + " is not JSON"}, "record-corrupt"},
	} {
		fs.getErr.Store(&tc.err)
		for _, path := range []string{"/v1/users/u1/consent", "/v1/users/u1/export"} {
			p := e.rejected(call{method: "GET", path: path, key: e.app(), header: verified}, 503, tc.code, u)
			if leaked(e.last) || p.Detail == "" {
				t.Errorf("%s with %v: %s", path, tc.err, e.last.Body)
			}
		}
		fs.getErr.Store(nil)
		fs.settingsErr.Store(&tc.err)
		r := e.do(call{method: "GET", path: "/readyz"})
		code := tc.code
		if code == "record-corrupt" {
			code = "unavailable"
		}
		if p := wantProblem(t, r, 503, code); leaked(r) || !strings.Contains(p.Detail, "store") {
			t.Errorf("readyz with %v: %s", tc.err, r.Body)
		}
		p := e.rejected(call{method: "GET", path: "/v1/admin/settings", key: e.admin()}, 503, tc.code, u)
		if leaked(e.last) || p.Detail == "" {
			t.Errorf("settings with %v: %s", tc.err, e.last.Body)
		}
		fs.settingsErr.Store(nil)
	}

	// A write the primary took but the replicas did not confirm: 202
	// not-replicated, carrying the state, without the store's text.
	notRepl := fmt.Errorf("%w: WAIT 1 on %s: 0 replicas in 1s", store.ErrNotReplicated, secret)
	fs.applyErr.Store(&notRepl)
	cr := e.pendingChange(call{method: "PUT", path: "/v1/users/u1/consent/personalization", body: `{"enabled":false}`}, "not-replicated")
	if leaked(e.last) || !cr.State.PersonalizationOff || cr.Receipt == nil {
		t.Errorf("not-replicated answer: %+v", cr)
	}
	if d := e.decision(u); d.Reason != consent.ReasonOptedOut {
		t.Errorf("the unreplicated change does not stand: %+v", d)
	}
	r := e.do(call{method: "PUT", path: "/v1/admin/suspension", key: e.admin(), body: `{"suspended":true,"reason":"order 9"}`})
	wantProblem(t, r, 202, "not-replicated")
	if leaked(r) {
		t.Errorf("suspension 202 leaks: %s", r.Body)
	}
	fs.applyErr.Store(nil)
	if r := e.do(call{method: "GET", path: "/v1/admin/settings", key: e.admin()}); !strings.Contains(string(r.Body), "order 9") {
		t.Errorf("the unreplicated suspension does not stand: %s", r.Body)
	}

	// 4xx keep their detail.
	p := e.rejected(call{method: "PUT", path: "/v1/users/u1/consent/channels/nosuch", key: e.app(), body: `{"refused":true}`}, 422, "invalid-value", u)
	if !strings.Contains(p.Detail, "nosuch") {
		t.Errorf("422 detail %q", p.Detail)
	}
}

// notReplicatedKeys is a key store whose writes land but are not confirmed
// by replicas.
type notReplicatedKeys struct{ *memory.Store }

func (n notReplicatedKeys) PutKey(ctx context.Context, k store.APIKey) error {
	if err := n.Store.PutKey(ctx, k); err != nil {
		return err
	}
	return fmt.Errorf("%w: WAIT 1: 0 replicas", store.ErrNotReplicated)
}

// TestNewKeyNotReplicated: a key the store recorded without its replicas'
// confirmation is still handed out (with the error), since it works; its
// secret is not lost.
func TestNewKeyNotReplicated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key, k, err := server.NewKey(e.ctx, notReplicatedKeys{e.mem}, server.RoleApp, "n", time.Now())
	if !errors.Is(err, store.ErrNotReplicated) || key == "" || k.ID == "" {
		t.Fatalf("NewKey: %q %+v %v", key, k, err)
	}
	want(t, e.do(call{method: "GET", path: "/v1/users/u1/decision", key: key}), 200)
}
