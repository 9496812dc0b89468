package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/server"
	rs "github.com/recguard/recguard/store/redis"
)

// leakWords matches what a body must never show: an address, or the text
// of a Redis or network error.
var leakWords = regexp.MustCompile(`(?i)\d+\.\d+\.\d+\.\d+|localhost|redis|dial|tcp|i/o|deadline|refused|timeout|\bEOF\b|broken pipe|connection`)

// leaks reports whether body shows internals: leakWords, or addr's port.
func leaks(body []byte, addr string) bool {
	_, port, _ := strings.Cut(addr, ":")
	return leakWords.Match(body) || (port != "" && strings.Contains(string(body), ":"+port))
}

// TestRedisHangs points the server at a real Redis that stops answering
// (SIGSTOP: connections are accepted by the kernel, nothing is answered)
// and checks the fast-failure promises: decisions and push answers are 200
// fail closed within the decision budget (never a 5 s wait or a 503), a key
// verified before the outage keeps working, every other route that uses the
// store answers 503 within StoreTimeout, an unknown key is a fast 503,
// /readyz is a fast 503, and no answer shows an address or Redis error
// text. Then Redis resumes and everything recovers.
func TestRedisHangs(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	ctx := context.Background()
	rc := rs.NewClient(rs.ClientOptions{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { rc.Close() })
	st, err := rs.New(ctx, rc, rs.Options{Init: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	client, err := sdk.New(ctx, st, sdk.Config{Lease: 500 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if err := client.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	const budget = 250 * time.Millisecond
	const storeTimeout = 600 * time.Millisecond
	s, err := server.New(server.Config{
		Client: client, Store: st, DecisionBudget: budget, StoreTimeout: storeTimeout,
		KeyCacheTTL:  100 * time.Millisecond, // so the outage forces key reads
		AuthFailRate: -1, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	app, _, err := server.NewKey(ctx, st, server.RoleApp, "app", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	unused, _, err := server.NewKey(ctx, st, server.RoleApp, "never used before the outage", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	admin, _, err := server.NewKey(ctx, st, server.RoleAdmin, "admin", time.Now())
	if err != nil {
		t.Fatal(err)
	}

	hc := &http.Client{Timeout: 30 * time.Second}
	do := func(method, path, key, body string) (int, []byte, time.Duration) {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		if strings.HasSuffix(path, "/export") {
			req.Header.Set(server.HeaderIdentityVerification, "sms_otp")
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, time.Since(start)
	}
	get := func(path, key string) (int, []byte, time.Duration) {
		t.Helper()
		return do("GET", path, key, "")
	}

	// Before: alice opts out; ready; decisions are personalized.
	if _, err := client.Apply(ctx, consent.SetPersonalization("alice", false)); err != nil {
		t.Fatal(err)
	}
	if code, b, _ := get("/readyz", ""); code != 200 {
		t.Fatalf("readyz before the outage: %d %s", code, b)
	}
	if code, b, _ := get("/v1/users/bob/decision", app); code != 200 || !strings.Contains(string(b), `"personalized":true`) {
		t.Fatalf("decision before the outage: %d %s", code, b)
	}
	settings, _, _ := get("/v1/admin/settings", admin)
	if settings != 200 {
		t.Fatalf("settings before the outage: %d", settings)
	}
	_, setBody, _ := get("/v1/admin/settings", admin)

	// The outage: Redis stops answering.
	pid := redisPID(t, srv)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	time.Sleep(150 * time.Millisecond) // past the key cache TTL: keys must be read (and cannot be)

	// The bound: the budget plus slack for a loaded CI machine under -race;
	// far from go-redis's seconds.
	bound := budget + 750*time.Millisecond
	var worst time.Duration
	for i := 0; i < 3; i++ {
		for _, u := range []string{"carol", "dave-" + strconv.Itoa(i), "alice", "bob"} {
			code, b, took := get("/v1/users/"+u+"/decision", app)
			var d server.DecisionResponse
			if code != 200 || json.Unmarshal(b, &d) != nil {
				t.Fatalf("decision for %s during the outage: %d %s", u, code, b)
			}
			worst = max(worst, took)
			if took > bound {
				t.Errorf("decision for %s took %v during the outage, want <= %v", u, took, bound)
			}
			switch u {
			case "carol", "dave-" + strconv.Itoa(i): // never read: fail closed
				if d.Personalized || (d.Reason != consent.ReasonUnavailable && d.Reason != consent.ReasonUnverified) {
					t.Errorf("decision for %s during the outage: %+v, want fail closed (unavailable or unverified)", u, d)
				}
			case "alice": // opted out: never personalized
				if d.Personalized {
					t.Errorf("alice personalized during the outage: %+v", d)
				}
			}
			code, b, took = get("/v1/users/"+u+"/can-push?channel=push", app)
			var p server.CanPushResponse
			if code != 200 || json.Unmarshal(b, &p) != nil {
				t.Fatalf("can-push for %s during the outage: %d %s", u, code, b)
			}
			worst = max(worst, took)
			if took > bound {
				t.Errorf("can-push for %s took %v during the outage, want <= %v", u, took, bound)
			}
			if u != "bob" && p.Allowed {
				t.Errorf("push allowed for %s during the outage: %+v", u, p)
			}
		}
	}
	// Past the lease every answer fails closed, cached or not.
	time.Sleep(600 * time.Millisecond)
	for _, u := range []string{"bob", "alice", "erin"} {
		code, b, took := get("/v1/users/"+u+"/decision", app)
		var d server.DecisionResponse
		if code != 200 || json.Unmarshal(b, &d) != nil || d.Personalized || took > bound {
			t.Errorf("decision for %s past the lease: %d in %v: %s", u, code, took, b)
		}
		code, b, took = get("/v1/users/"+u+"/can-push?channel=push", app)
		if code != 200 || !strings.Contains(string(b), `"allowed":false`) || took > bound {
			t.Errorf("can-push for %s past the lease: %d in %v: %s", u, code, took, b)
		}
	}

	t.Logf("slowest decision or push answer during the outage: %v (budget %v)", worst, budget)

	// Every other route that uses the store answers within StoreTimeout
	// (the key check included): 503 unavailable, no leak. (Audits have
	// their own, longer bound; audiences are answered from the index in
	// memory.)
	storeBound := storeTimeout + 750*time.Millisecond
	year := strconv.Itoa(time.Now().UTC().Year())
	var slowest time.Duration
	for _, r := range []struct{ method, path, key, body string }{
		{"GET", "/v1/users/alice/consent", app, ""},
		{"PUT", "/v1/users/alice/consent/personalization", app, `{"enabled":true}`},
		{"PUT", "/v1/users/alice/consent/channels/sms", app, `{"refused":true}`},
		{"PUT", "/v1/users/alice/consent/sensitive/religion", app, `{"granted":false}`},
		{"GET", "/v1/users/alice/tags", app, ""},
		{"POST", "/v1/users/alice/tags", app, `{"tag":"interest:ski","source":"declared"}`},
		{"DELETE", "/v1/users/alice/tags/interest:ski", app, ""},
		{"GET", "/v1/users/alice/receipts", app, ""},
		{"GET", "/v1/users/alice/export", app, ""},
		{"DELETE", "/v1/users/alice", app, ""},
		{"POST", "/v1/events", app, `{"events":[{"user":"alice","item":"i1","time":"2026-01-02T03:04:05Z","mode":"personalized"}]}`},
		{"GET", "/v1/admin/settings", admin, ""},
		{"PUT", "/v1/admin/settings", admin, string(setBody)},
		{"PUT", "/v1/admin/suspension", admin, `{"suspended":true,"reason":"order 9"}`},
		{"GET", "/v1/admin/reports/rights?year=" + year, admin, ""},
	} {
		code, b, took := do(r.method, r.path, r.key, r.body)
		slowest = max(slowest, took)
		t.Logf("%s %s during the outage: %d in %v", r.method, r.path, code, took.Round(time.Millisecond))
		if code != 503 || !strings.Contains(string(b), "/unavailable") || took > storeBound {
			t.Errorf("%s %s during the outage: %d in %v, want 503 unavailable within %v: %s", r.method, r.path, code, took, storeBound, b)
		}
		if leaks(b, srv.Addr) {
			t.Errorf("%s %s: 503 body leaks internals: %s", r.method, r.path, b)
		}
	}
	t.Logf("slowest store route during the outage: %v (store timeout %v)", slowest, storeTimeout)

	// A key never verified cannot be checked: a fast 503, no leak.
	code, b, took := get("/v1/users/bob/decision", unused)
	if code != 503 || took > bound {
		t.Errorf("unverified key during the outage: %d in %v, want a 503 within %v: %s", code, took, bound, b)
	}
	if leaks(b, srv.Addr) {
		t.Errorf("503 body leaks internals: %s", b)
	}
	// Readiness: a fast 503 without the address or Redis text.
	t.Logf("unverified key answered %d in %v", code, took)
	code, b, took = get("/readyz", "")
	t.Logf("readyz answered %d in %v: %s", code, took, b)
	if code != 503 || took > bound {
		t.Errorf("readyz during the outage: %d in %v, want 503 within %v: %s", code, took, bound, b)
	}
	if leaks(b, srv.Addr) {
		t.Errorf("readyz body leaks internals: %s", b)
	}

	// Redis resumes: ready again, and decisions are personalized again.
	resume()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, b, _ := get("/readyz", "")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz did not recover within 10 s: %d %s", code, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, b, _ := get("/v1/users/carol/decision", app); code != 200 || !strings.Contains(string(b), `"personalized":true`) {
		t.Errorf("decision after recovery: %d %s", code, b)
	}
	if code, b, _ := get("/v1/users/alice/decision", app); code != 200 || !strings.Contains(string(b), `"reason":"personalization_off"`) {
		t.Errorf("alice after recovery: %d %s", code, b)
	}
	if code, b, _ := get("/v1/users/bob/decision", unused); code != 200 {
		t.Errorf("the other key after recovery: %d %s", code, b)
	}
}

// redisPID returns the process ID of a test's redis-server.
func redisPID(t *testing.T, s *redistest.Server) int {
	t.Helper()
	info, err := s.Client(nil).Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^process_id:(\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("no process_id in INFO server:\n%s", info)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// TestRedisLosesData: a Redis restarted without persistence under a running
// server comes back empty. Readiness says data-loss (fast, no leak),
// decisions answer 200 failing closed with reason data_loss (the app key
// verified before keeps working), and changes are refused with a
// data-loss problem rather than written into a keyspace that forgot its
// opt-outs.
func TestRedisLosesData(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	rc := rs.NewClient(rs.ClientOptions{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { rc.Close() })
	st, err := rs.New(ctx, rc, rs.Options{Init: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const lease = 400 * time.Millisecond
	client, err := sdk.New(ctx, st, sdk.Config{Lease: lease, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if err := client.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := server.New(server.Config{Client: client, Store: st, AuthFailRate: -1, Logger: quiet, WaitForAll: true})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	app, _, err := server.NewKey(ctx, st, server.RoleApp, "app", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	do := func(method, path, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+app)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := do("PUT", "/v1/users/cy/consent/personalization", `{"enabled":false}`); code != 200 {
		t.Fatalf("opt-out: %d %s", code, b)
	}
	if code, b := do("GET", "/v1/users/dot/decision", ""); code != 200 || !strings.Contains(string(b), `"personalized":true`) {
		t.Fatalf("decision before: %d %s", code, b)
	}

	srv.Stop()
	srv.Start() // no persistence: empty
	lost := time.Now()
	deadline := lost.Add(lease + 2*time.Second)
	for {
		code, b := do("GET", "/readyz", "")
		if code == 503 && strings.Contains(string(b), "/data-loss") {
			if leaks(b, srv.Addr) {
				t.Errorf("readyz leaks: %s", b)
			}
			t.Logf("readyz data-loss %v after the restart: %s", time.Since(lost).Round(time.Millisecond), b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz after the data loss: %d %s", code, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Cached answers are trusted for at most the lease: then every answer
	// fails closed with data_loss.
	for _, u := range []string{"cy", "dot", "never-seen"} {
		for {
			code, b := do("GET", "/v1/users/"+u+"/decision", "")
			if code != 200 {
				t.Fatalf("decision for %s after the data loss: %d %s", u, code, b)
			}
			if strings.Contains(string(b), `"reason":"data_loss"`) && strings.Contains(string(b), `"personalized":false`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("decision for %s %v after the data loss: %s", u, time.Since(lost).Round(time.Millisecond), b)
			}
			time.Sleep(20 * time.Millisecond)
		}
		code, b := do("GET", "/v1/users/"+u+"/can-push?channel=sms", "")
		if code != 200 || !strings.Contains(string(b), `"allowed":false`) || !strings.Contains(string(b), `"reason":"data_loss"`) {
			t.Errorf("can-push for %s after the data loss: %d %s", u, code, b)
		}
	}
	t.Logf("every answer data_loss %v after the restart (lease %v)", time.Since(lost).Round(time.Millisecond), lease)
	code, b := do("PUT", "/v1/users/cy/consent/personalization", `{"enabled":true}`)
	if code != 503 || !strings.Contains(string(b), "/data-loss") || leaks(b, srv.Addr) {
		t.Errorf("a change after the data loss: %d %s, want 503 data-loss", code, b)
	}
}
