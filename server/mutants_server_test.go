package server_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
)

// Art. 44: the yearly rights report's handling times are the nearest-rank
// median and 95th percentile of each kind's requests, from the rights log
// (requests of other years left out). Found by mutation testing
// (mutants/mutants.txt, server-rights-p95-is-median): TestRightsReport only
// checks p95 >= median, which the median itself passes.
func TestRightsReportQuantiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rl := store.RightsLog(e.mem)
	day := time.Date(2020, 3, 1, 9, 0, 0, 0, time.UTC)
	logReq := func(kind string, at time.Time, took time.Duration) {
		t.Helper()
		r := store.RightsRequest{Kind: kind, Received: at, Handled: at.Add(took), Outcome: "fulfilled", Status: 200}
		if err := rl.LogRightsRequest(e.ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// access: 1, 2, ..., 20 ms, logged out of order.
	for i := 20; i >= 1; i-- {
		logReq("access", day.Add(time.Duration(i)*time.Minute), time.Duration(i)*time.Millisecond)
	}
	// erase: 5, 100, 7 ms.
	for i, ms := range []int{5, 100, 7} {
		logReq("erase", day.Add(time.Duration(i)*time.Hour), time.Duration(ms)*time.Millisecond)
	}
	// Other years are not in the 2020 report.
	logReq("access", time.Date(2019, 12, 31, 23, 0, 0, 0, time.UTC), time.Hour)
	logReq("access", time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC), time.Hour)

	r := e.do(call{method: "GET", path: "/v1/admin/reports/rights?year=2020", key: e.admin()})
	want(t, r, 200)
	rep := decode[server.RightsReport](t, r)
	if rep.Year != 2020 || rep.Total != 23 || len(rep.Kinds) != 2 {
		t.Fatalf("report %+v, want 2020, 23 requests, 2 kinds", rep)
	}
	wantMS := map[string][2]float64{ // median, p95 (nearest rank)
		"access": {10, 19},
		"erase":  {7, 100},
	}
	for _, k := range rep.Kinds {
		w, ok := wantMS[k.Kind]
		if !ok {
			t.Errorf("unexpected kind %+v", k)
			continue
		}
		if k.MedianMS != w[0] || k.P95MS != w[1] {
			t.Errorf("%s: median %v ms, p95 %v ms; want %v and %v", k.Kind, k.MedianMS, k.P95MS, w[0], w[1])
		}
	}
}

// slowReads is a memory store whose record reads (Get, GetMany) wait while
// slow is on, until their context ends or the test releases them; keys and
// changelogs answer as usual, so the client stays verified.
type slowReads struct {
	*memory.Store
	mu      sync.Mutex
	slow    bool
	release chan struct{}
}

func (s *slowReads) wait(ctx context.Context) error {
	s.mu.Lock()
	slow := s.slow
	s.mu.Unlock()
	if !slow {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.release:
		return nil
	}
}

func (s *slowReads) Get(ctx context.Context, id string) (consent.Record, error) {
	if err := s.wait(ctx); err != nil {
		return consent.Record{}, err
	}
	return s.Store.Get(ctx, id)
}

func (s *slowReads) GetMany(ctx context.Context, ids []string) ([]consent.Record, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.Store.GetMany(ctx, ids)
}

// Fail closed, fast: when the decision budget runs out while a user's
// record is still being read (the client itself verified and current), the
// answer is the SDK's fail-closed one, 200 not personalized / not allowed
// with reason unavailable, within the budget: never a 503. Found by
// mutation testing (mutants/mutants.txt, server-decision-budget-is-error):
// the outage tests reach the budget only through reads that fail on their
// own first.
func TestDecisionBudgetSpentIsFailClosed(t *testing.T) {
	t.Parallel()
	const budget = 100 * time.Millisecond
	sr := &slowReads{release: make(chan struct{})}
	e := newEnv(t, func(c *envConfig) {
		c.srv.DecisionBudget = budget
		c.wrap = func(m *memory.Store) store.Store { sr.Store = m; return sr }
	})
	t.Cleanup(func() { close(sr.release) }) // before the client closes
	want(t, e.do(call{method: "GET", path: "/v1/users/known/decision", key: e.app()}), 200)

	sr.mu.Lock()
	sr.slow = true
	sr.mu.Unlock()
	bound := budget + 750*time.Millisecond
	for i, u := range []string{"newbie-1", "newbie-2"} {
		start := time.Now()
		var r result
		if i == 0 {
			r = e.do(call{method: "GET", path: "/v1/users/" + u + "/decision", key: e.app()})
		} else {
			r = e.do(call{method: "GET", path: "/v1/users/" + u + "/can-push?channel=push&targeted=false", key: e.app()})
		}
		took := time.Since(start)
		want(t, r, 200)
		if took > bound {
			t.Errorf("%s: answered in %v, want within the %v budget (+ slack)", u, took, budget)
		}
		if i == 0 {
			d := decode[server.DecisionResponse](t, r)
			if d.Personalized || d.Reason != consent.ReasonUnavailable {
				t.Errorf("decision for %s with its read outlasting the budget: %+v, want not personalized, unavailable", u, d)
			}
		} else {
			p := decode[server.CanPushResponse](t, r)
			if p.Allowed || p.Reason != consent.ReasonUnavailable {
				t.Errorf("can-push for %s with its read outlasting the budget: %+v, want not allowed, unavailable", u, p)
			}
		}
	}
}
