package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
)

// The verification route is exercised with plain requests: e.do validates
// against openapi.json, which documents the route once its entry is added.

// postVerification sends POST /v1/audits/verification with key and query.
func postVerification(e *env, key, query string) result {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, "POST", e.ts.URL+"/v1/audits/verification"+query, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return result{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// verifyUsers gives n users three receipts each.
func verifyUsers(t *testing.T, s store.Store, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		u := "ver" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		for _, ch := range []consent.Change{consent.SetPersonalization(u, false), consent.RefuseChannel(u, "sms"), consent.DeclareTag(u, "interest:chess")} {
			if _, err := s.Apply(context.Background(), ch); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, u)
	}
	return ids
}

// hiding is a store that hides the newest receipt of some users and can
// hold Receipts calls until released.
type hiding struct {
	*memory.Store
	mu      sync.Mutex
	hide    map[string]bool
	block   chan struct{} // non-nil: Receipts waits for it to close
	entered chan struct{} // receives once per blocked call
}

func (h *hiding) Receipts(ctx context.Context, id string) ([]consent.Receipt, error) {
	h.mu.Lock()
	block, hide := h.block, h.hide[id]
	h.mu.Unlock()
	if block != nil {
		select {
		case h.entered <- struct{}{}:
		default:
		}
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	rs, err := h.Store.Receipts(ctx, id)
	if err == nil && hide && len(rs) > 0 {
		rs = rs[:len(rs)-1]
	}
	return rs, err
}

func decodeReport(t *testing.T, r result) store.VerifyReport {
	t.Helper()
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("verification: %s", r)
	}
	var rep store.VerifyReport
	if err := json.Unmarshal(r.Body, &rep); err != nil {
		t.Fatalf("verification report: %v: %s", err, r.Body)
	}
	return rep
}

func TestVerificationClean(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	verifyUsers(t, e.mem, 30)
	rep := decodeReport(t, postVerification(e, e.auditor(), ""))
	if !rep.Verified || !rep.Complete || rep.Users != 30 || rep.ChainsVerified != 30 || rep.Receipts != 90 || rep.FindingsTotal != 0 {
		t.Errorf("clean store: %+v", rep)
	}
}

func TestVerificationFindings(t *testing.T) {
	t.Parallel()
	h := &hiding{hide: map[string]bool{}}
	e := newEnv(t, func(c *envConfig) {
		c.wrap = func(m *memory.Store) store.Store { h.Store = m; return h }
	})
	ids := verifyUsers(t, e.mem, 10)
	h.mu.Lock()
	h.hide[ids[3]], h.hide[ids[7]] = true, true
	h.mu.Unlock()
	rep := decodeReport(t, postVerification(e, e.auditor(), ""))
	if rep.Verified || rep.ChainsBroken != 2 || rep.BrokenByKind[store.FindingTruncatedNewest] != 2 || rep.FindingsTotal != 2 {
		t.Fatalf("report %+v", rep)
	}
	for _, f := range rep.Findings {
		if f.Kind != store.FindingTruncatedNewest || (f.UserID != ids[3] && f.UserID != ids[7]) || f.Detail == "" {
			t.Errorf("finding %+v", f)
		}
	}
	// max_findings bounds the list, not the count.
	rep = decodeReport(t, postVerification(e, e.auditor(), "?max_findings=1"))
	if len(rep.Findings) != 1 || rep.FindingsTotal != 2 {
		t.Errorf("max_findings=1: %d listed of %d", len(rep.Findings), rep.FindingsTotal)
	}
	rep = decodeReport(t, postVerification(e, e.auditor(), "?max_findings=0"))
	if len(rep.Findings) != 0 || rep.FindingsTotal != 2 {
		t.Errorf("max_findings=0: %d listed of %d", len(rep.Findings), rep.FindingsTotal)
	}
	for _, q := range []string{"?max_findings=x", "?max_findings=-1", "?max_findings=10001"} {
		p := wantProblem(t, postVerification(e, e.auditor(), q), 422, "invalid-value")
		if p.Field != "max_findings" {
			t.Errorf("%s: field %q", q, p.Field)
		}
	}
}

// TestVerificationWrongKey: a server whose chain key is not the store's
// finds every chain broken and says why.
func TestVerificationWrongKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.srv.ChainKey = []byte("not the key the store seals with") })
	verifyUsers(t, e.mem, 5)
	rep := decodeReport(t, postVerification(e, e.auditor(), ""))
	if rep.ChainsBroken != 5 || rep.ChainsVerified != 0 || len(rep.Hints) == 0 || !strings.Contains(rep.Hints[0], "chain key") {
		t.Errorf("wrong key: %+v", rep)
	}
}

// TestVerificationRoles: auditors only; others get problems.
func TestVerificationRoles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	wantProblem(t, postVerification(e, "", ""), 401, "unauthenticated")
	for _, r := range []server.Role{server.RoleApp, server.RoleAdmin} {
		wantProblem(t, postVerification(e, e.keys[r], ""), 403, "forbidden")
	}
}

// TestVerificationOneAtATime: a second verification while one runs is 503
// with Retry-After, and the first still answers.
func TestVerificationOneAtATime(t *testing.T) {
	t.Parallel()
	h := &hiding{hide: map[string]bool{}, entered: make(chan struct{}, 1)}
	e := newEnv(t, func(c *envConfig) {
		c.wrap = func(m *memory.Store) store.Store { h.Store = m; return h }
	})
	verifyUsers(t, e.mem, 3)
	release := make(chan struct{})
	h.mu.Lock()
	h.block = release
	h.mu.Unlock()
	first := make(chan result, 1)
	go func() { first <- postVerification(e, e.auditor(), "") }()
	select {
	case <-h.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first verification never read a receipt")
	}
	r := postVerification(e, e.auditor(), "")
	wantProblem(t, r, 503, "unavailable")
	if r.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	close(release)
	rep := decodeReport(t, <-first)
	if !rep.Verified || rep.Users != 3 {
		t.Errorf("first verification: %+v", rep)
	}
}
