package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
)

// ---- a fake clock ----

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// ---- a log to read ----

// logBuffer collects JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the logged records with message msg.
func (b *logBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func logTo(b *logBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestConfigDefaultsAndValidate: DefaultConfig spells out every default;
// Validate refuses what would misbehave with a *ConfigError naming the
// field and wrapping ErrInvalidConfig; New refuses the same, and a config
// without a Client or Store.
func TestConfigDefaultsAndValidate(t *testing.T) {
	t.Parallel()
	d := server.DefaultConfig()
	if d.MaxBody != 1<<20 || d.RateLimit != 200 || d.RateBurst != 400 || d.KeyCacheTTL != 5*time.Second ||
		d.ReadTimeout != 10*time.Second || d.WriteTimeout != 90*time.Second || d.DecisionBudget != 250*time.Millisecond ||
		d.KeyGrace != 10*time.Minute || d.AuthFailRate != 1 || d.AuthFailBurst != 30 || d.StoreTimeout != 2*time.Second ||
		d.Now == nil || d.Logger == nil || d.LogRequests || d.WaitForAll {
		t.Errorf("DefaultConfig %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("DefaultConfig does not validate: %v", err)
	}
	if err := (server.Config{}).Validate(); err != nil {
		t.Errorf("the zero Config (defaults) does not validate: %v", err)
	}
	for _, tc := range []struct {
		field string
		cfg   server.Config
	}{
		{"MaxBody", server.Config{MaxBody: -1}},
		{"RateBurst", server.Config{RateBurst: -1}},
		{"KeyCacheTTL", server.Config{KeyCacheTTL: -time.Second}},
		{"ReadTimeout", server.Config{ReadTimeout: -time.Second}},
		{"DecisionBudget", server.Config{DecisionBudget: -time.Millisecond}},
		{"StoreTimeout", server.Config{StoreTimeout: -time.Second}},
		{"StoreTimeout", server.Config{StoreTimeout: 100 * time.Millisecond, DecisionBudget: 200 * time.Millisecond}},
		{"WriteTimeout", server.Config{WriteTimeout: 3 * time.Second}},
		{"AuthFailBurst", server.Config{AuthFailBurst: -2}},
		{"TrustedProxies", server.Config{TrustedProxies: []string{"10.0.0.0/8", "proxy.example"}}},
	} {
		err := tc.cfg.Validate()
		var ce *server.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field || !errors.Is(err, server.ErrInvalidConfig) {
			t.Errorf("%+v: %v, want a ConfigError for %s", tc.cfg, err, tc.field)
		}
	}
	// Negative rates mean no limit, a negative grace none: valid.
	if err := (server.Config{RateLimit: -1, AuthFailRate: -1, KeyGrace: -1, TrustedProxies: []string{"::1", "10.0.0.0/8"}}).Validate(); err != nil {
		t.Errorf("no limits: %v", err)
	}
	// New checks the same, and needs a client and a store.
	if _, err := server.New(server.Config{}); !errors.Is(err, server.ErrInvalidConfig) {
		t.Errorf("New without a client: %v", err)
	}
	e := newEnv(t)
	if _, err := server.New(server.Config{Client: e.client, Store: e.st, StoreTimeout: -1}); !errors.Is(err, server.ErrInvalidConfig) {
		t.Errorf("New with a negative StoreTimeout: %v", err)
	}
}

// TestRequestID: every answer carries X-Request-ID, the client's when it
// is short and safe, else a new one; a 5xx problem holds it as request_id
// and the log line about its error carries it (with the route and key ID,
// never the raw path); 4xx problems do not hold it.
func TestRequestID(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	var fs *flakyStore
	e := newEnv(t, func(c *envConfig) {
		c.srv.Logger = logTo(&logs)
		c.srv.KeyCacheTTL = time.Minute
		c.wrap = func(m *memory.Store) store.Store { fs = &flakyStore{Store: m}; return fs }
	})
	const u = "rid-user-7"
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		r := e.do(call{method: "GET", path: "/healthz"})
		id := r.Header.Get("X-Request-ID")
		if len(id) != 32 || seen[id] {
			t.Fatalf("request ID %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
	}
	for _, tc := range []struct{ sent, want string }{
		{"req-2026.03:abc_DEF", "req-2026.03:abc_DEF"},
		{"short", ""},
		{strings.Repeat("a", 65), ""},
		{"has space in it", ""},
		{"semi;colon;id", ""},
		{"üñïçødé-id", ""},
	} {
		r := e.do(call{method: "GET", path: "/v1/users/" + u + "/decision", key: e.app(), header: map[string]string{"X-Request-ID": tc.sent}})
		want(t, r, 200)
		got := r.Header.Get("X-Request-ID")
		if tc.want != "" && got != tc.want || tc.want == "" && (got == tc.sent || len(got) != 32) {
			t.Errorf("sent X-Request-ID %q: answered %q", tc.sent, got)
		}
	}
	// A 4xx problem has no request_id.
	r := e.do(call{method: "GET", path: "/v1/users/" + u + "/can-push", key: e.app(), req: violates})
	if p := wantProblem(t, r, 422, "invalid-value"); p.RequestID != "" {
		t.Errorf("422 with request_id %q", p.RequestID)
	}
	// A 500 and a 503: request_id in the body and the header, and in the log.
	boom := errors.New("secret disk path /var/lib/x is on fire")
	fs.getErr.Store(&boom)
	r = e.do(call{method: "GET", path: "/v1/users/" + u + "/consent", key: e.app(), header: map[string]string{"X-Request-ID": "trace-500-abcdef"}})
	p500 := wantProblem(t, r, 500, "internal")
	down := fmt.Errorf("%w: test: connection refused", store.ErrUnavailable)
	fs.getErr.Store(&down)
	r = e.do(call{method: "GET", path: "/v1/users/" + u + "/export", key: e.app(), header: verified})
	p503 := wantProblem(t, r, 503, "unavailable")
	fs.getErr.Store(nil)
	if p500.RequestID != "trace-500-abcdef" || p503.RequestID == "" || p503.RequestID != r.Header.Get("X-Request-ID") {
		t.Errorf("request IDs: 500 %q, 503 %q (header %q)", p500.RequestID, p503.RequestID, r.Header.Get("X-Request-ID"))
	}
	found := map[string]map[string]any{}
	for _, l := range logs.lines(t, "request failed") {
		if id, _ := l["request_id"].(string); id != "" {
			found[id] = l
		}
	}
	for id, wantErr := range map[string]string{p500.RequestID: "on fire", p503.RequestID: "connection refused"} {
		l := found[id]
		if l == nil {
			t.Errorf("no log line with request_id %s:\n%s", id, logs.String())
			continue
		}
		if !strings.Contains(fmt.Sprint(l["err"]), wantErr) || l["level"] != "ERROR" || l["key_id"] != e.keyIDs[server.RoleApp] ||
			!strings.HasPrefix(fmt.Sprint(l["route"]), "/v1/users/:id/") {
			t.Errorf("log line %v", l)
		}
	}
	if strings.Contains(logs.String(), u) {
		t.Errorf("the log holds the user ID (a raw path):\n%s", logs.String())
	}
	// A 5xx without an error value (a closed store makes /readyz 503) is
	// logged with its request ID too.
	e.mem.Close()
	r = e.do(call{method: "GET", path: "/readyz"})
	p := wantProblem(t, r, 503, "unavailable")
	ok := false
	for _, l := range logs.lines(t, "request failed") {
		ok = ok || l["request_id"] == p.RequestID && l["route"] == "/readyz"
	}
	if p.RequestID == "" || !ok {
		t.Errorf("readyz 503 (request_id %q) not logged:\n%s", p.RequestID, logs.String())
	}
}

// TestAdminActionsLogged: settings changes and suspensions are logged with
// the key that made them, the route, the outcome and what changed; refused
// attempts (another role's key, no key, a bad body) too, at Warn; reads
// are not actions; no secret is logged.
func TestAdminActionsLogged(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	e := newEnv(t, func(c *envConfig) { c.srv.Logger = logTo(&logs) })
	want(t, e.do(call{method: "GET", path: "/v1/admin/settings", key: e.admin()}), 200)
	r := e.do(call{method: "PUT", path: "/v1/admin/suspension", key: e.admin(), body: `{"suspended":true,"reason":"order 2026-9"}`})
	want(t, r, 200)
	reqID := r.Header.Get("X-Request-ID")
	want(t, e.do(call{method: "PUT", path: "/v1/admin/suspension", key: e.admin(), body: `{"suspended":false}`}), 200)
	wantProblem(t, e.do(call{method: "PUT", path: "/v1/admin/suspension", key: e.app(), body: `{"suspended":false}`}), 403, "forbidden")
	wantProblem(t, e.do(call{method: "PUT", path: "/v1/admin/suspension", body: `{"suspended":false}`, req: violates}), 401, "unauthenticated")
	wantProblem(t, e.do(call{method: "PUT", path: "/v1/admin/suspension", key: e.admin(), body: `{"suspended":true}`, req: violates}), 422, "invalid-value")

	lines := logs.lines(t, "admin action")
	if len(lines) != 5 {
		t.Fatalf("%d admin action lines, want 5 (reads are not actions):\n%s", len(lines), logs.String())
	}
	type want struct{ key, outcome, level string }
	for i, w := range []want{
		{e.keyIDs[server.RoleAdmin], "applied", "INFO"},
		{e.keyIDs[server.RoleAdmin], "applied", "INFO"},
		{e.keyIDs[server.RoleApp], "refused", "WARN"},
		{"", "refused", "WARN"},
		{e.keyIDs[server.RoleAdmin], "refused", "WARN"},
	} {
		l := lines[i]
		if l["key_id"] != w.key || l["outcome"] != w.outcome || l["level"] != w.level || l["route"] != "/v1/admin/suspension" || l["method"] != "PUT" {
			t.Errorf("line %d: %v, want key %q outcome %s level %s", i, l, w.key, w.outcome, w.level)
		}
	}
	if l := lines[0]; l["request_id"] != reqID || l["suspended"] != true || l["settings_version"] != float64(2) ||
		!strings.Contains(fmt.Sprint(l["diff"]), "order 2026-9") || l["receipt"] == "" {
		t.Errorf("suspension line %v", l)
	}
	for _, key := range []string{e.admin(), e.app()} {
		_, secret, _ := strings.Cut(strings.TrimPrefix(key, "rg_"), "_")
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a key's secret is in the log")
		}
	}
}

// TestLogRequests: with LogRequests every request is logged once answered
// (route template, never the raw path; status; request ID; key ID);
// without it, none is.
func TestLogRequests(t *testing.T) {
	t.Parallel()
	var on, off logBuffer
	e := newEnv(t, func(c *envConfig) { c.srv.Logger, c.srv.LogRequests = logTo(&on), true })
	e2 := newEnv(t, func(c *envConfig) { c.srv.Logger = logTo(&off) })
	for _, x := range []*env{e, e2} {
		want(t, x.do(call{method: "GET", path: "/v1/users/secret-user-42/decision", key: x.app()}), 200)
		want(t, x.do(call{method: "GET", path: "/healthz"}), 200)
		wantProblem(t, x.do(call{method: "GET", path: "/nope", noRoute: true}), 404, "not-found")
	}
	lines := on.lines(t, "request")
	if len(lines) != 3 {
		t.Fatalf("%d request lines, want 3:\n%s", len(lines), on.String())
	}
	if l := lines[0]; l["route"] != "/v1/users/:id/decision" || l["status"] != float64(200) || l["key_id"] != e.keyIDs[server.RoleApp] ||
		l["request_id"] == "" || l["method"] != "GET" || l["level"] != "INFO" {
		t.Errorf("decision line %v", l)
	}
	if l := lines[2]; l["route"] != "unmatched" || l["status"] != float64(404) {
		t.Errorf("404 line %v", l)
	}
	if strings.Contains(on.String(), "secret-user-42") || strings.Contains(on.String(), "/nope") {
		t.Errorf("the request log holds a raw path:\n%s", on.String())
	}
	if n := len(off.lines(t, "request")); n != 0 {
		t.Errorf("%d request lines without LogRequests", n)
	}
}
