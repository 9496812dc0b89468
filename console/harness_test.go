package console_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

// realServer is recguard's server as `recguard serve` runs it on the
// embedded store (audiences, ledger, chain key), with one key per role.
type realServer struct {
	URL    string
	client *sdk.Client
	keys   map[server.Role]string

	mu   sync.Mutex
	seen []seenRequest // every request the server got
}

// seenRequest is what the server saw of a request besides its
// Authorization header: where a key must never appear.
type seenRequest struct {
	Method, URL, Referer, Cookie string
	Auth                         bool
}

var chainKey = []byte("console tests' receipt chain key")

func startServer(t testing.TB) *realServer {
	t.Helper()
	ctx := context.Background()
	mem, err := memory.Open(ctx, memory.Options{Dir: t.TempDir(), NoSync: true, ChainKey: chainKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	ccfg := sdk.Config{Audiences: true, Ledger: mem}
	client, err := sdk.New(ctx, mem, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if err := client.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Client: client, Store: mem, ChainKey: chainKey, RateLimit: -1, AuthFailRate: -1,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rs := &realServer{client: client, keys: map[server.Role]string{}}
	h := srv.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.mu.Lock()
		rs.seen = append(rs.seen, seenRequest{Method: r.Method, URL: r.URL.String(), Referer: r.Referer(),
			Cookie: r.Header.Get("Cookie"), Auth: r.Header.Get("Authorization") != ""})
		rs.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	rs.URL = ts.URL
	for _, r := range []server.Role{server.RoleApp, server.RoleAdmin, server.RoleAuditor} {
		key, _, err := server.NewKey(ctx, mem, r, "console test "+string(r), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		rs.keys[r] = key
	}
	return rs
}

// seed gives a few users tags and consent choices, through the library.
func (rs *realServer) seed(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	apply := func(ch consent.Change) {
		if _, err := rs.client.Apply(ctx, ch); err != nil {
			t.Fatalf("seeding %v: %v", ch, err)
		}
	}
	for i, u := range []string{"alice", "bob", "carol", "dave", "erin", "frank"} {
		apply(consent.InferTag(u, tags.MustParse("interest:ski")))
		if i%2 == 0 {
			apply(consent.DeclareTag(u, tags.MustParse("region:sh")))
		}
	}
	apply(consent.InferTag("grace", tags.MustParse("interest:chess")))
	apply(consent.RefuseChannel("bob", "sms"))
	apply(consent.SetPersonalization("carol", false))
	apply(consent.DeleteTag("dave", tags.MustParse("region:sh")))
}

// requests returns what the server saw so far.
func (rs *realServer) requests() []seenRequest {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]seenRequest(nil), rs.seen...)
}

// api calls the server with key and decodes a JSON answer into out (when
// not nil); it returns the status.
func (rs *realServer) api(t testing.TB, key, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, rs.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if strings.HasSuffix(path, "/export") {
		req.Header.Set("X-Identity-Verification", "sms_otp")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return res.StatusCode
}
