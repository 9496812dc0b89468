package server_test

import (
	"testing"
	"time"

	"github.com/recguard/recguard/server"
	"github.com/recguard/recguard/store"
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
