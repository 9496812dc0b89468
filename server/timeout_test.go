package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
)

// hangStore is a memory store whose record, receipt, settings, rights-log
// and outcome reads and writes can be made to hang until their context
// ends, and then fail with an error the server does not know (as a
// backing store cut off mid-command might): only the request's
// StoreTimeout can turn that into a 503. Key reads and changelog reads are
// never hung.
type hangStore struct {
	*memory.Store
	hang  atomic.Bool
	calls atomic.Int64 // hung calls
}

func (h *hangStore) wait(ctx context.Context) error {
	if !h.hang.Load() {
		return nil
	}
	h.calls.Add(1)
	if _, ok := ctx.Deadline(); !ok {
		// No bound at all: hang "forever" (long past any test's bound).
		t := time.NewTimer(30 * time.Second)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	} else {
		<-ctx.Done()
	}
	return errors.New("test: read tcp 10.9.8.7:6379: i/o timeout")
}

func (h *hangStore) Get(ctx context.Context, id string) (consent.Record, error) {
	if err := h.wait(ctx); err != nil {
		return consent.Record{}, err
	}
	return h.Store.Get(ctx, id)
}

func (h *hangStore) Receipts(ctx context.Context, id string) ([]consent.Receipt, error) {
	if err := h.wait(ctx); err != nil {
		return nil, err
	}
	return h.Store.Receipts(ctx, id)
}

func (h *hangStore) Apply(ctx context.Context, ch consent.Change) (store.Applied, error) {
	if err := h.wait(ctx); err != nil {
		return store.Applied{}, err
	}
	return h.Store.Apply(ctx, ch)
}

func (h *hangStore) Settings(ctx context.Context) (consent.Settings, error) {
	if err := h.wait(ctx); err != nil {
		return consent.Settings{}, err
	}
	return h.Store.Settings(ctx)
}

func (h *hangStore) SetSettings(ctx context.Context, s consent.Settings, a consent.Actor, sf consent.Surface) (consent.Settings, consent.Receipt, error) {
	if err := h.wait(ctx); err != nil {
		return consent.Settings{}, consent.Receipt{}, err
	}
	return h.Store.SetSettings(ctx, s, a, sf)
}

func (h *hangStore) RightsRequests(ctx context.Context, from, to time.Time) ([]store.RightsRequest, error) {
	if err := h.wait(ctx); err != nil {
		return nil, err
	}
	return h.Store.RightsRequests(ctx, from, to)
}

func (h *hangStore) LogRightsRequest(ctx context.Context, r store.RightsRequest) error {
	if err := h.wait(ctx); err != nil {
		return err
	}
	return h.Store.LogRightsRequest(ctx, r)
}

func (h *hangStore) AppendOutcomes(ctx context.Context, users []string, events [][]byte) error {
	if err := h.wait(ctx); err != nil {
		return err
	}
	return h.Store.AppendOutcomes(ctx, users, events)
}

// storeRoutes lists one valid request per route that reads or writes the
// store (all but the decision routes, the audience and the audits).
func storeRoutes(e *env, u string) []call {
	U := "/v1/users/" + u
	set, err := e.mem.Settings(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return []call{
		{method: "GET", path: U + "/consent", key: e.app()},
		{method: "PUT", path: U + "/consent/personalization", key: e.app(), body: map[string]any{"enabled": false}},
		{method: "PUT", path: U + "/consent/channels/sms", key: e.app(), body: map[string]any{"refused": true}},
		{method: "PUT", path: U + "/consent/sensitive/religion", key: e.app(), body: map[string]any{"granted": false}},
		{method: "GET", path: U + "/tags", key: e.app()},
		{method: "POST", path: U + "/tags", key: e.app(), body: map[string]any{"tag": "interest:ski", "source": "declared"}},
		{method: "DELETE", path: U + "/tags/interest:golf", key: e.app()},
		{method: "GET", path: U + "/receipts", key: e.app()},
		{method: "GET", path: U + "/export", key: e.app(), header: verified},
		{method: "DELETE", path: U, key: e.app()},
		{method: "POST", path: "/v1/events", key: e.app(), body: map[string]any{"events": []map[string]any{
			{"user": u, "item": "i1", "time": "2026-01-02T03:04:05Z", "mode": "personalized", "clicked": true}}}},
		{method: "GET", path: "/v1/admin/settings", key: e.admin()},
		{method: "PUT", path: "/v1/admin/settings", key: e.admin(), body: settingsDoc(e.t, set)},
		{method: "PUT", path: "/v1/admin/suspension", key: e.admin(), body: map[string]any{"suspended": true, "reason": "order 7"}},
		{method: "GET", path: fmt.Sprintf("/v1/admin/reports/rights?year=%d", time.Now().UTC().Year()), key: e.admin()},
	}
}

// TestStoreTimeout: with the store hanging (every read and write waits
// until its context ends, then fails with an error the server does not
// know), every route that uses the store answers 503 unavailable with the
// store-timeout detail within StoreTimeout (plus slack for -race on a
// loaded machine), never the unknown error's 500 or its text, and changes
// nothing. Decisions keep their own, shorter budget. Once the store
// answers again, so do the routes.
func TestStoreTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 150 * time.Millisecond
	var hs *hangStore
	e := newEnv(t, func(c *envConfig) {
		c.srv.StoreTimeout, c.srv.DecisionBudget = timeout, 100*time.Millisecond
		c.wrap = func(m *memory.Store) store.Store { hs = &hangStore{Store: m}; return hs }
	})
	const u = "u1"
	// Keys verified before the store hangs (key reads are not hung anyway).
	want(t, e.do(call{method: "GET", path: "/v1/users/u1/consent", key: e.app()}), 200)
	want(t, e.do(call{method: "GET", path: "/v1/admin/settings", key: e.admin()}), 200)

	hs.hang.Store(true)
	bound := timeout + 750*time.Millisecond
	for _, c := range storeRoutes(e, u) {
		start := time.Now()
		p := e.rejected(c, 503, "unavailable", u)
		took := time.Since(start)
		if took > bound+200*time.Millisecond { // rejected also snapshots the store
			t.Errorf("%s %s took %v with the store hanging, want about %v", c.method, c.path, took, timeout)
		}
		if !strings.Contains(p.Detail, "allows a request's store work") || strings.Contains(string(e.last.Body), "10.9.8.7") {
			t.Errorf("%s %s: detail %q, want the store-timeout detail", c.method, c.path, p.Detail)
		}
	}
	if hs.calls.Load() == 0 {
		t.Fatal("no store call hung: the test tests nothing")
	}
	// Decisions answer within their budget, failing closed or from the cache.
	start := time.Now()
	want(t, e.do(call{method: "GET", path: "/v1/users/u1/decision", key: e.app()}), 200)
	if took := time.Since(start); took > bound {
		t.Errorf("decision took %v", took)
	}

	hs.hang.Store(false)
	for _, c := range storeRoutes(e, u) {
		if r := e.do(c); r.Status >= 300 {
			t.Errorf("%s %s after the store answers again: %s", c.method, c.path, r)
		}
	}
}
