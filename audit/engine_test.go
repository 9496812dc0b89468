package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recguard/recguard/audit/stats"
)

var t0 = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

type sliceSrc struct {
	evs []Event
	i   int
}

func sliceSource(evs []Event) Source { return &sliceSrc{evs: evs} }

func (s *sliceSrc) Next() (Event, error) {
	if s.i >= len(s.evs) {
		return Event{}, io.EOF
	}
	s.i++
	return s.evs[s.i-1], nil
}

type mapFacts map[string][]string

func (m mapFacts) Facts(_ context.Context, ids []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, id := range ids {
		if fs, ok := m[id]; ok {
			out[id] = fs
		}
	}
	return out, nil
}

func withClicked(v bool) func(*Event)     { return func(e *Event) { e.Clicked = bp(v) } }
func withPrice(v float64) func(*Event)    { return func(e *Event) { e.Price = fp(v) } }
func withRank(v float64) func(*Event)     { return func(e *Event) { e.Rank = fp(v) } }
func withAttrs(a ...string) func(*Event)  { return func(e *Event) { e.Attrs = a } }
func withDiscount(v float64) func(*Event) { return func(e *Event) { e.Discount = fp(v) } }
func withLatency(v float64) func(*Event)  { return func(e *Event) { e.LatencyMS = fp(v) } }
func withTime(tm time.Time) func(*Event)  { return func(e *Event) { e.Time = tm } }
func withField(k string, v float64) func(*Event) {
	return func(e *Event) {
		if e.Fields == nil {
			e.Fields = map[string]float64{}
		}
		e.Fields[k] = v
	}
}

// ev is an event of user on item at t0 + hour hours (+ 1 minute).
func ev(user, item string, hour int, mode string, opts ...func(*Event)) Event {
	e := Event{UserID: user, Item: item, Time: t0.Add(time.Duration(hour)*time.Hour + time.Minute), Mode: mode}
	for _, o := range opts {
		o(&e)
	}
	return e
}

func run(t *testing.T, spec Spec, evs []Event, facts UserFacts, opts Options) *Report {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0 }
	}
	r, err := Run(context.Background(), spec, sliceSource(evs), facts, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Every report writes as JSON.
	if _, err := json.Marshal(r); err != nil {
		t.Fatalf("report does not marshal: %v", err)
	}
	return r
}

func group(r *Report, name string) GroupResult {
	for _, g := range r.Groups {
		if g.Name == name {
			return g
		}
	}
	return GroupResult{}
}

func metric(g GroupResult, name string) (MetricResult, bool) {
	for _, m := range g.Metrics {
		if m.Metric == name {
			return m, true
		}
	}
	return MetricResult{}, false
}

func test(r *Report, grp, name string) (TestResult, bool) {
	for _, t := range r.Tests {
		if t.Group == grp && t.Metric == name {
			return t, true
		}
	}
	return TestResult{}, false
}

func near(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b))
}

// Closed forms recomputed here, independently of package stats.
const z975 = 1.959963984540054 // qnorm(0.975)

func wilson(x, n float64) (lo, hi float64) {
	p, z := x/n, z975
	c := (p + z*z/(2*n)) / (1 + z*z/n)
	h := z / (1 + z*z/n) * math.Sqrt(p*(1-p)/n+z*z/(4*n*n))
	return c - h, c + h
}

func choose(n, k int) float64 {
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	return r
}

// fisher is the two-sided Fisher p of [[a, b], [c, d]].
func fisher(a, b, c, d int) float64 {
	r1, r2, c1 := a+b, c+d, a+c
	pr := func(k int) float64 { return choose(r1, k) * choose(r2, c1-k) / choose(r1+r2, c1) }
	obs := pr(a)
	p := 0.0
	for k := max(0, c1-r2); k <= min(r1, c1); k++ {
		if q := pr(k); q <= obs*(1+1e-7) {
			p += q
		}
	}
	return p
}

// bh is Benjamini-Hochberg, recomputed.
func bh(ps []float64) []float64 {
	idx := make([]int, len(ps))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmpF(ps[a], ps[b]) })
	out := make([]float64, len(ps))
	run := 1.0
	for r := len(idx) - 1; r >= 0; r-- {
		run = math.Min(run, ps[idx[r]]*float64(len(ps))/float64(r+1))
		out[idx[r]] = run
	}
	return out
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestHandComputed is a small audit where every number is known.
//
// Group a (reference, users a1..a5) and group b (users b1..b5), 10 events
// each, all personalized. Clicks: a 3/10, b 6/10. Prices, two events per
// (item, hour) cell in five cells:
//
//	cell     a        b        b - a
//	x@h0     10, 10   11, 11   +1
//	x@h1     20, 22   21, 21    0
//	y@h0     30, 30   33, 33   +3
//	y@h1     40, 40   38, 38   -2
//	z@h5     50, 50   55, 55   +5
//
// so 5 pairs, 3 higher, 1 lower, mean excess 1.4 (sd sqrt(7.3)), reference
// mean over the pairs 30.2, sign test p = 2 (1 + 4) / 16 = 0.625. Ranks: a
// 1..10 (median 5.5), b 1,1,2,2,...,5,5 (median 3).
func TestHandComputed(t *testing.T) {
	cells := []struct {
		item string
		hour int
		a    [2]float64
		b    [2]float64
	}{
		{"x", 0, [2]float64{10, 10}, [2]float64{11, 11}},
		{"x", 1, [2]float64{20, 22}, [2]float64{21, 21}},
		{"y", 0, [2]float64{30, 30}, [2]float64{33, 33}},
		{"y", 1, [2]float64{40, 40}, [2]float64{38, 38}},
		{"z", 5, [2]float64{50, 50}, [2]float64{55, 55}},
	}
	facts := mapFacts{}
	var evs []Event
	for i, c := range cells {
		for j := range 2 {
			k := 2*i + j
			ua, ub := fmt.Sprintf("a%d", i+1), fmt.Sprintf("b%d", i+1)
			facts[ua], facts[ub] = []string{"loyalty:a"}, []string{"loyalty:b"}
			evs = append(evs,
				ev(ua, c.item, c.hour, ModePersonalized, withPrice(c.a[j]), withClicked(k < 3), withRank(float64(k+1))),
				ev(ub, c.item, c.hour, ModePersonalized, withPrice(c.b[j]), withClicked(k < 6), withRank(float64(k/2+1))))
		}
	}
	spec := Spec{
		Name:         "hand",
		Groups:       []GroupSpec{{Name: "a", Segment: "loyalty:a"}, {Name: "b", Segment: "loyalty:b"}},
		Reference:    "a",
		MinGroupSize: 5,
		Strata:       []string{StratumNone}, // the crude figures, by hand; stratify_test.go checks the strata
		Metrics: []MetricSpec{
			{Name: "clicks", Kind: Rate, Field: "clicked"},
			{Name: "price", Kind: Mean, Field: "price"},
			{Name: "rank", Kind: Distribution, Field: "rank", Quantiles: []float64{0.5}},
		},
	}
	r := run(t, spec, evs, facts, Options{})
	if r.Events != 20 || r.Used != 20 || r.Skipped != 0 || !r.Generated.Equal(t0) {
		t.Fatalf("counts: events %d used %d skipped %d generated %v", r.Events, r.Used, r.Skipped, r.Generated)
	}
	if r.Spec.Alpha != 0.05 || r.Spec.PriceBucket != Duration(time.Hour) {
		t.Errorf("report spec not normalized: %+v", r.Spec)
	}
	ga, gb := group(r, "a"), group(r, "b")
	if ga.Users != 5 || ga.Events != 10 || gb.Users != 5 || gb.Events != 10 || ga.Suppressed || gb.Suppressed {
		t.Fatalf("groups %+v %+v", ga, gb)
	}
	// Rates with Wilson intervals.
	for _, c := range []struct {
		g    GroupResult
		x, n float64
	}{{ga, 3, 10}, {gb, 6, 10}} {
		m, _ := metric(c.g, "clicks")
		lo, hi := wilson(c.x, c.n)
		if m.N != 10 || m.Value != c.x/c.n || !near(m.CI.Lo, lo, 1e-12) || !near(m.CI.Hi, hi, 1e-12) || m.Kind != Rate {
			t.Errorf("%s clicks = %+v, want %v [%v, %v]", c.g.Name, m, c.x/c.n, lo, hi)
		}
	}
	// Means.
	pa, _ := metric(ga, "price")
	pb, _ := metric(gb, "price")
	if !near(pa.Value, 30.2, 1e-12) || !near(pb.Value, 31.6, 1e-12) || pa.N != 10 {
		t.Errorf("price means %v %v", pa.Value, pb.Value)
	}
	// sd of a: values 10,10,20,22,30,30,40,40,50,50.
	var ss float64
	for _, v := range []float64{10, 10, 20, 22, 30, 30, 40, 40, 50, 50} {
		ss += (v - 30.2) * (v - 30.2)
	}
	if !near(pa.SD, math.Sqrt(ss/9), 1e-12) {
		t.Errorf("sd %v, want %v", pa.SD, math.Sqrt(ss/9))
	}
	// Distribution: median and its order-statistic interval (type 7).
	ra, _ := metric(ga, "rank")
	half := z975 * 0.5 / math.Sqrt(10)
	q7 := func(q float64) float64 { h := 9 * q; return 1 + h } // ranks 1..10
	if ra.Value != 5.5 || !near(ra.CI.Lo, q7(0.5-half), 1e-12) || !near(ra.CI.Hi, q7(0.5+half), 1e-12) ||
		len(ra.Quantiles) != 1 || ra.Quantiles[0] != (Quantile{Q: 0.5, Value: 5.5}) {
		t.Errorf("rank a = %+v", ra)
	}
	// Tests, at the user level. Each user has two events: the sums per
	// user are the clicks and prices above, two at a time.
	clusterSE := func(ys []float64, n float64) (mean, v float64) {
		var sy float64
		for _, y := range ys {
			sy += y
		}
		g := float64(len(ys))
		mean = sy / (g * n)
		var ss float64
		for _, y := range ys {
			ss += (y - mean*n) * (y - mean*n)
		}
		return mean, g / (g - 1) * ss / (g * n * g * n)
	}
	tc, ok := test(r, "b", "clicks")
	if !ok {
		t.Fatal("no clicks test")
	}
	// a's users clicked 2,1,0,0,0 (events 0-2 clicked); b's 2,2,2,0,0.
	mA, vA := clusterSE([]float64{2, 1, 0, 0, 0}, 2)
	mB, vB := clusterSE([]float64{2, 2, 2, 0, 0}, 2)
	se := math.Sqrt(vA + vB)
	// Intervals are false coverage-rate adjusted: 4 tests, none selected,
	// so at 1 - 1 * 0.05 / 4.
	if !near(r.IntervalConfidence, 1-0.05/4, 1e-12) {
		t.Errorf("interval confidence %v, want %v", r.IntervalConfidence, 1-0.05/4)
	}
	tq := tCritical(r.IntervalConfidence, 4)
	// Five users a side: too few for the t approximation, so the p-value
	// comes from permuting the labels between the users (the estimate, SE
	// and interval are the cluster-robust ones).
	if tc.Reference != "a" || tc.Test != "cluster_permutation" || !near(tc.Difference, mB-mA, 1e-12) || !near(tc.Difference, 0.3, 1e-12) ||
		!near(tc.SE, se, 1e-12) || tc.DF != 4 || tc.Users != 5 || tc.ReferenceUsers != 5 ||
		!near(tc.Statistic, 0.3/se, 1e-12) || !near(tc.DifferenceCI.Lo, 0.3-tq*se, 1e-12) || !near(tc.DifferenceCI.Hi, 0.3+tq*se, 1e-12) ||
		!near(tc.Ratio, 2, 1e-12) || !(tc.P > 0.3 && tc.P < 0.7) {
		t.Errorf("clicks test %+v (want se %v)", tc, se)
	}
	// Log-ratio interval by the delta method.
	sl := math.Sqrt(vA/(mA*mA) + vB/(mB*mB))
	if !near(tc.RatioCI.Lo, 2*math.Exp(-tq*sl), 1e-12) || !near(tc.RatioCI.Hi, 2*math.Exp(tq*sl), 1e-12) {
		t.Errorf("ratio CI %+v", tc.RatioCI)
	}
	tp, _ := test(r, "b", "price")
	mA, vA = clusterSE([]float64{20, 42, 60, 80, 100}, 2)
	mB, vB = clusterSE([]float64{22, 42, 66, 76, 110}, 2)
	if tp.Test != "cluster_permutation" || !near(tp.Difference, 1.4, 1e-9) || !near(mB-mA, 1.4, 1e-9) || !near(tp.Ratio, 31.6/30.2, 1e-12) ||
		!near(tp.SE, math.Sqrt(vA+vB), 1e-9) || !(tp.DifferenceCI.Lo < 1.4 && tp.DifferenceCI.Hi > 1.4) {
		t.Errorf("price test %+v", tp)
	}
	tr, _ := test(r, "b", "rank")
	// The effect of a distribution is the Hodges-Lehmann shift with its
	// interval (b's ranks 1,1,2,2,...,5,5 against a's 1..10: the median of
	// the 100 differences is -2.5).
	if tr.Test != "mann_whitney" || tr.Difference != -2.5 || !near(tr.Ratio, 3/5.5, 1e-12) ||
		!(tr.DifferenceCI.Lo < -2.5 && tr.DifferenceCI.Hi > -2.5) || !math.IsNaN(tr.RatioCI.Hi) {
		t.Errorf("rank test %+v", tr)
	}
	if len(r.Tests) != 3 {
		t.Errorf("%d tests, want 3", len(r.Tests))
	}
	// Same item, same time.
	if len(r.Prices) != 1 {
		t.Fatalf("prices %+v", r.Prices)
	}
	p := r.Prices[0]
	sd := math.Sqrt(7.3)
	t4 := tCritical(r.IntervalConfidence, 4) // qt(1 - 0.0125/2, 4) = 4.3147: the adjusted level
	if p.Group != "b" || p.Reference != "a" || p.Pairs != 5 || p.ShareHigher != 0.6 || p.ShareLower != 0.2 ||
		!near(p.MeanExcess, 1.4, 1e-12) || !near(p.MeanExcessCI.Lo, 1.4-t4*sd/math.Sqrt(5), 1e-9) || !near(p.MeanExcessCI.Hi, 1.4+t4*sd/math.Sqrt(5), 1e-9) {
		t.Errorf("price comparison %+v", p)
	}
	// The decision compares users within cells: the regression of the
	// log price on the group with a fixed effect per cell, errors
	// clustered by user (feRegression, written independently), as a
	// percent excess; with 5 users a side the p-value comes from
	// relabelling users.
	var ys, ds []float64
	var strata, users []int
	for i, c := range cells {
		for j := range 2 {
			ys = append(ys, float64(float32(math.Log(c.a[j]))), float64(float32(math.Log(c.b[j]))))
			ds = append(ds, 0, 1)
			strata = append(strata, i, i)
			users = append(users, i, 100+i)
		}
	}
	beta, se := feRegression(t, ys, ds, strata, users)
	lo, hi := 100*math.Expm1(beta-t4*se), 100*math.Expm1(beta+t4*se)
	if p.Test != "cluster_permutation" || p.Users != 5 || p.ReferenceUsers != 5 || !near(p.MeanExcessPct, 100*math.Expm1(beta), 1e-6) ||
		!near(p.MeanExcessPctCI.Lo, lo, 1e-6) || !near(p.MeanExcessPctCI.Hi, hi, 1e-6) || !(p.P > 0.2 && p.P < 0.7) {
		t.Errorf("user-level price comparison %+v (regression %v %v: %v to %v)", p, beta, se, lo, hi)
	}
	// Benjamini-Hochberg over all four p-values, in report order.
	ps := []float64{r.Tests[0].P, r.Tests[1].P, r.Tests[2].P, p.P}
	qs := bh(ps)
	gotQ := []float64{r.Tests[0].Q, r.Tests[1].Q, r.Tests[2].Q, p.Q}
	for i := range qs {
		if !near(gotQ[i], qs[i], 1e-12) {
			t.Errorf("q[%d] = %v, want %v", i, gotQ[i], qs[i])
		}
	}
	// All personalized: no parity, with a note.
	if len(r.Parity) != 0 || !hasFinding(r, "note", "non_personalized") {
		t.Errorf("parity %+v findings %+v", r.Parity, r.Findings)
	}
}

func hasFinding(r *Report, severity, frag string) bool {
	for _, f := range r.Findings {
		if f.Severity == severity && strings.Contains(f.Text, frag) {
			return true
		}
	}
	return false
}

func TestSuppression(t *testing.T) {
	facts := mapFacts{}
	var evs []Event
	for i := range 6 {
		u := fmt.Sprintf("r%d", i)
		facts[u] = []string{"loyalty:new"}
		evs = append(evs, ev(u, "x", 0, ModePersonalized, withClicked(i%2 == 0), withPrice(10)))
	}
	for i := range 3 {
		u := fmt.Sprintf("s%d", i)
		facts[u] = []string{"loyalty:gold"}
		for range 5 {
			evs = append(evs, ev(u, "x", 0, ModePersonalized, withClicked(true), withPrice(12)))
		}
	}
	spec := Spec{
		Groups:       []GroupSpec{{Name: "ref", Segment: "loyalty:new"}, {Name: "small", Segment: "loyalty:gold"}, {Name: "all", Segment: "*"}},
		Reference:    "ref",
		MinGroupSize: 5,
	}
	r := run(t, spec, evs, facts, Options{})
	s := group(r, "small")
	if !reflect.DeepEqual(s, GroupResult{Name: "small", Segment: "loyalty:gold", Suppressed: true}) {
		t.Errorf("suppressed group shows %+v", s)
	}
	for _, tr := range r.Tests {
		if tr.Group == "small" {
			t.Errorf("suppressed group tested: %+v", tr)
		}
	}
	for _, p := range r.Prices {
		if p.Group == "small" {
			t.Errorf("suppressed group priced: %+v", p)
		}
	}
	// "all" is "ref" and "small" together: "all" minus "ref" would give
	// the suppressed small group back, so "all" goes too (differencing).
	if len(r.Prices) != 0 {
		t.Errorf("prices %+v", r.Prices)
	}
	if a := group(r, "all"); !a.Suppressed || a.Users != 0 || !hasFinding(r, "note", "Group all is suppressed so that no figure can be told apart by differencing") {
		t.Errorf("all = %+v, findings %+v", a, r.Findings)
	}
	if !hasFinding(r, "note", "Group small has fewer than 5 users") {
		t.Errorf("findings %+v", r.Findings)
	}
	// The JSON of a suppressed group holds no figures.
	b, _ := json.Marshal(s)
	if string(b) != `{"name":"small","segment":"loyalty:gold","suppressed":true}` {
		t.Errorf("JSON %s", b)
	}

	// A suppressed reference: nothing is compared.
	spec.Reference = "small"
	r = run(t, spec, evs, facts, Options{})
	if len(r.Tests) != 0 || len(r.Prices) != 0 || !hasFinding(r, "note", "reference group small") {
		t.Errorf("tests %d prices %d findings %+v", len(r.Tests), len(r.Prices), r.Findings)
	}
	if g, a := group(r, "ref"), group(r, "all"); g.Suppressed == a.Suppressed {
		t.Errorf("ref = %+v, all = %+v: want exactly one suppressed for differencing", g, a)
	}
}

func TestWindow(t *testing.T) {
	from, to := t0.Add(time.Hour), t0.Add(3*time.Hour)
	evs := []Event{
		ev("u1", "x", 0, ModePersonalized, withTime(from.Add(-time.Nanosecond))),
		ev("u1", "x", 0, ModePersonalized, withTime(from)),
		ev("u2", "x", 0, ModePersonalized, withTime(to.Add(-time.Nanosecond))),
		ev("u3", "x", 0, ModePersonalized, withTime(to)),
		ev("u4", "x", 0, ModePersonalized, withTime(to.Add(time.Hour))),
	}
	spec := Spec{Groups: []GroupSpec{{Name: "all", Segment: "*"}}, Reference: "all", MinGroupSize: 1, From: from, To: to}
	r := run(t, spec, evs, nil, Options{})
	if r.Events != 5 || r.Used != 2 {
		t.Fatalf("events %d used %d", r.Events, r.Used)
	}
	if g := group(r, "all"); g.Users != 2 || g.Events != 2 {
		t.Errorf("group %+v", g)
	}
	if !hasFinding(r, "note", "3 events fell outside the audit window") {
		t.Errorf("findings %+v", r.Findings)
	}
	// Open bounds.
	spec.From = time.Time{}
	r = run(t, spec, evs, nil, Options{})
	if r.Used != 3 {
		t.Errorf("used %d with no From", r.Used)
	}
}

func TestAttrsMatch(t *testing.T) {
	facts := mapFacts{"u1": {"loyalty:gold"}, "u2": {"loyalty:gold"}, "u3": {"device:ios"}}
	evs := []Event{
		ev("u1", "x", 0, ModePersonalized, withAttrs("device:ios")),
		ev("u1", "x", 0, ModePersonalized, withAttrs("device:android")),
		ev("u2", "x", 0, ModePersonalized),
		ev("u3", "x", 0, ModePersonalized, withAttrs("device:android")),
		ev("u4", "x", 0, ModePersonalized, withAttrs("device:ios", "minor")),
		ev("u5", "x", 0, ModePersonalized, withAttrs("unrelated:x")),
	}
	spec := Spec{
		Groups: []GroupSpec{
			{Name: "ios", Segment: "device:ios"},
			{Name: "gold_ios", Segment: "loyalty:gold & device:ios"},
			{Name: "gold_not_ios", Segment: "loyalty:gold & !device:ios"},
			{Name: "minor_flag", Segment: "minor"},
			{Name: "all", Segment: "*"},
		},
		Reference:    "all",
		MinGroupSize: 1,
	}
	r := run(t, spec, evs, facts, Options{})
	want := map[string][2]int64{
		"ios":          {3, 3}, // u1's ios event, u3 (tag), u4
		"gold_ios":     {1, 1},
		"gold_not_ios": {2, 2}, // u1's android event, u2
		"minor_flag":   {1, 1},
		"all":          {5, 6},
	}
	for name, w := range want {
		if g := group(r, name); g.Users != w[0] || g.Events != w[1] {
			t.Errorf("%s: users %d events %d, want %v", name, g.Users, g.Events, w)
		}
	}
}

func TestLineProblemsAndStrict(t *testing.T) {
	var b strings.Builder
	good := `{"user":"u1","item":"x","time":"2025-03-01T00:00:00Z","mode":"personalized","clicked":true}`
	for i := range 150 {
		b.WriteString(good + "\n")
		fmt.Fprintf(&b, "bad line %d\n", i)
	}
	spec := Spec{Groups: []GroupSpec{{Name: "all", Segment: "*"}}, Reference: "all", MinGroupSize: 1}
	r, err := Run(context.Background(), spec, ReadJSONL(strings.NewReader(b.String()), "e.jsonl"), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Events != 150 || r.Skipped != 150 || len(r.Problems) != MaxProblems || r.Problems[0].Line != 2 || r.Problems[99].Line != 200 {
		t.Fatalf("events %d skipped %d problems %d first %+v", r.Events, r.Skipped, len(r.Problems), r.Problems[0])
	}
	if !hasFinding(r, "note", "150 malformed input lines were skipped (the first 100 are listed)") {
		t.Errorf("findings %+v", r.Findings)
	}
	_, err = Run(context.Background(), spec, ReadJSONL(strings.NewReader(b.String()), "e.jsonl"), nil, Options{Strict: true})
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 || le.File != "e.jsonl" {
		t.Fatalf("strict: err = %v", err)
	}
}

type failSrc struct {
	n   int
	err error
}

func (s *failSrc) Next() (Event, error) {
	if s.n == 0 {
		return Event{}, s.err
	}
	s.n--
	return ev("u", "x", 0, ModePersonalized), nil
}

type failFacts struct{ err error }

func (f failFacts) Facts(context.Context, []string) (map[string][]string, error) { return nil, f.err }

func TestRunErrors(t *testing.T) {
	spec := Spec{Groups: []GroupSpec{{Name: "all", Segment: "*"}}, Reference: "all"}
	boom := errors.New("boom")
	if _, err := Run(context.Background(), spec, &failSrc{n: 1000, err: boom}, nil, Options{}); !errors.Is(err, boom) {
		t.Errorf("source error: %v", err)
	}
	if _, err := Run(context.Background(), spec, &failSrc{n: 10, err: io.EOF}, failFacts{boom}, Options{}); !errors.Is(err, boom) {
		t.Errorf("facts error: %v", err)
	}
	if _, err := Run(context.Background(), Spec{}, &failSrc{}, nil, Options{}); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("invalid spec: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, spec, &failSrc{n: 1 << 30, err: io.EOF}, nil, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	// Cancelled midway, by the progress callback.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	_, err := Run(ctx, spec, &failSrc{n: 1 << 30, err: io.EOF}, nil, Options{Progress: func(n int64) {
		calls++
		if n != int64(calls)*ProgressEvery {
			t.Errorf("progress %d at call %d", n, calls)
		}
		if calls == 2 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || calls != 2 {
		t.Errorf("err %v after %d progress calls", err, calls)
	}
}

func TestPriceCellLimit(t *testing.T) {
	facts := mapFacts{"a": {"g:a"}, "b": {"g:b"}}
	var evs []Event
	for h := range 4 {
		evs = append(evs, ev("a", "x", h, ModePersonalized, withPrice(10)), ev("b", "x", h, ModePersonalized, withPrice(11)))
	}
	spec := Spec{Groups: []GroupSpec{{Name: "a", Segment: "g:a"}, {Name: "b", Segment: "g:b"}}, Reference: "a", MinGroupSize: 1}
	r := run(t, spec, evs, facts, Options{MaxPriceCells: 3})
	if len(r.Prices) != 1 || r.Prices[0].Pairs != 3 || r.Prices[0].ShareHigher != 1 {
		t.Fatalf("prices %+v", r.Prices)
	}
	if !hasFinding(r, "note", "at most 3 item-time cells; 2 events with a price") {
		t.Errorf("findings %+v", r.Findings)
	}
	// 30-minute buckets split each hour's events: no pairs at all.
	spec.PriceBucket = Duration(30 * time.Minute)
	evs[1].Time = evs[1].Time.Add(30 * time.Minute)
	r = run(t, spec, evs[:2], facts, Options{})
	if len(r.Prices) != 0 || !hasFinding(r, "note", "never offered the same item in the same 30m0s period") {
		t.Errorf("prices %+v findings %+v", r.Prices, r.Findings)
	}
}

func TestParityAndFreeFields(t *testing.T) {
	var evs []Event
	for i := range 40 {
		u := fmt.Sprintf("u%d", i)
		mode := ModePersonalized
		if i%2 == 1 {
			mode = ModeNonPersonalized
		}
		for k := range 5 {
			rank := float64(1 + k)
			if mode == ModeNonPersonalized {
				rank += 3
			}
			evs = append(evs, ev(u, "x", k, mode, withRank(rank), withClicked(k == 0), withDiscount(float64(k%2)), withLatency(20+float64(k)), withField("basket", float64(k))))
		}
	}
	spec := Spec{
		Groups:       []GroupSpec{{Name: "all", Segment: "*"}},
		Reference:    "all",
		MinGroupSize: 10,
		Metrics: []MetricSpec{
			{Name: "basket_mean", Kind: Mean, Field: "basket"},
			{Name: "basket_any", Kind: Rate, Field: "basket"},
			{Name: "latency_mean", Kind: Mean, Field: "latency_ms"},
			{Name: "conv", Kind: Rate, Field: "converted"},
		},
	}
	r := run(t, spec, evs, nil, Options{})
	var names []string
	for _, p := range r.Parity {
		names = append(names, p.Metric)
		if p.Group != ModeNonPersonalized || p.Reference != ModePersonalized {
			t.Errorf("parity %+v", p)
		}
	}
	if got := strings.Join(names, ","); got != "rank_mean,rank_distribution,discount_rate,latency_mean,click_rate" {
		t.Fatalf("parity metrics %s", got)
	}
	// Rank distribution: within strata a shift of percentiles (every
	// non-personalized rank is above every personalized one in the
	// stratum); the crude Hodges-Lehmann shift beside it.
	if !near(r.Parity[0].Difference, 3, 1e-12) || !r.Parity[0].Significant || r.Parity[1].Crude == nil || r.Parity[1].Crude.Difference != 3 ||
		!(r.Parity[1].Difference > 0.3) || !r.Parity[1].Significant || !math.IsNaN(r.Parity[1].RatioCI.Lo) {
		t.Errorf("rank parity %+v %+v", r.Parity[0], r.Parity[1])
	}
	if r.Parity[2].Significant || r.Parity[4].Significant || r.Parity[2].Difference != 0 {
		t.Errorf("discount/click parity %+v %+v", r.Parity[2], r.Parity[4])
	}
	if !hasFinding(r, "significant", "Non-personalized results differ from personalized ones in mean rank: 6.000 against 3.000") {
		t.Errorf("findings %+v", r.Findings)
	}
	g := group(r, "all")
	if m, _ := metric(g, "basket_mean"); m.Value != 2 || m.N != 200 {
		t.Errorf("basket mean %+v", m)
	}
	if m, _ := metric(g, "basket_any"); m.Value != 0.8 || m.N != 200 {
		t.Errorf("basket rate %+v", m)
	}
	if _, ok := metric(g, "conv"); ok || !hasFinding(r, "note", "No event in the groups records converted, so metric conv has no data") {
		t.Errorf("conv should have no data: findings %+v", r.Findings)
	}
}

func TestDist(t *testing.T) {
	// Exact counts against a plain map, across many buffer flushes.
	var d dist
	want := stats.Counts{}
	for i := range 3*distBufLen + 17 {
		v := float64((i*7919)%5000) / 100
		d.add(v)
		want[round6(v)]++
	}
	d.add(1.0000004)
	want[1]++
	if got := d.sample().Counts(); !reflect.DeepEqual(got, want) {
		t.Fatalf("counts differ: %d vs %d distinct", len(got), len(want))
	}
	if !slices.IsSorted(d.vals) {
		t.Error("values not sorted")
	}
}

func TestRebin(t *testing.T) {
	var a metricAcc
	for i := range MaxDistinctValues + distBufLen {
		a.add(Distribution, 1+float64(i)*1e-5)
	}
	a.add(Distribution, 1.23456)
	c := a.dist.sample().Counts()
	if !a.dist.coarse || len(c) > 1000 {
		t.Fatalf("coarse %v, %d distinct", a.dist.coarse, len(c))
	}
	if c[1.23] == 0 || a.sum.N() != MaxDistinctValues+distBufLen+1 {
		t.Errorf("after rebin: %v", c[1.23])
	}
	var n int64
	for _, k := range c {
		n += k
	}
	if n != MaxDistinctValues+distBufLen+1 {
		t.Errorf("counts hold %d observations", n)
	}
	if med := a.median(); med < 1.5 || med > 1.6 {
		t.Errorf("median %v, want ~1.52", med)
	}
	for _, c := range []struct{ in, want float64 }{{123456, 123000}, {0.0012345, 0.00123}, {-98.76, -98.8}, {0, 0}} {
		if got := round3(c.in); !near(got, c.want, 1e-12) {
			t.Errorf("round3(%v) = %v", c.in, got)
		}
	}
	if round6(0.1234567) != 0.123457 {
		t.Errorf("round6 = %v", round6(0.1234567))
	}
}

func TestReportJSON(t *testing.T) {
	facts := mapFacts{"a": {"g:a"}, "b": {"g:b"}}
	evs := []Event{
		ev("a", "x", 0, ModePersonalized, withRank(1), withPrice(0)),
		ev("b", "x", 0, ModePersonalized, withRank(1), withPrice(1)),
	}
	spec := Spec{Groups: []GroupSpec{{Name: "a", Segment: "g:a"}, {Name: "b", Segment: "g:b"}}, Reference: "a", MinGroupSize: 1,
		Metrics: []MetricSpec{{Name: "r", Kind: Distribution, Field: "rank"}, {Name: "p", Kind: Mean, Field: "price"}}}
	r := run(t, spec, evs, facts, Options{})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"ratio_ci":{"lo":null,"hi":null}`)) {
		t.Errorf("NaN not written as null: %s", b)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(back.Tests[0].RatioCI.Lo) || !math.IsNaN(back.Prices[0].MeanExcessPct) || back.Prices[0].MeanExcess != 1 {
		t.Errorf("round trip: %+v %+v", back.Tests, back.Prices)
	}
	b2, _ := json.Marshal(&back)
	if !bytes.Equal(b, b2) {
		t.Errorf("JSON round trip differs:\n%s\n%s", b, b2)
	}
}

// The JSON mirrors must list every field of the result types, with the
// same JSON names.
func TestJSONMirrors(t *testing.T) {
	for _, c := range []struct{ typ, mirror any }{
		{Interval{}, jsonInterval{}},
		{Quantile{}, jsonQuantile{}},
		{MetricResult{}, jsonMetricResult{}},
		{TestResult{}, jsonTestResult{}},
		{PriceResult{}, jsonPriceResult{}},
		{CrudeResult{}, jsonCrudeResult{}},
	} {
		a, b := reflect.TypeOf(c.typ), reflect.TypeOf(c.mirror)
		if a.NumField() != b.NumField() {
			t.Errorf("%s has %d fields, its mirror %d", a, a.NumField(), b.NumField())
			continue
		}
		for i := range a.NumField() {
			fa, fb := a.Field(i), b.Field(i)
			if fa.Name != fb.Name || fa.Tag.Get("json") != fb.Tag.Get("json") {
				t.Errorf("%s field %d: %s %q vs mirror %s %q", a, i, fa.Name, fa.Tag.Get("json"), fb.Name, fb.Tag.Get("json"))
			}
		}
	}
}

// ---------------------------------------------------------------- acceptance

func synthRun(t *testing.T, cfg SynthConfig) *Report {
	t.Helper()
	r, err := synthReport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func synthReport(cfg SynthConfig) (*Report, error) {
	var evb, ub bytes.Buffer
	if err := Synthesize(cfg, &evb, &ub); err != nil {
		return nil, err
	}
	uf, probs, err := UsersFile(&ub, "users")
	if err != nil || len(probs) > 0 {
		return nil, fmt.Errorf("users: %v %+v", err, probs)
	}
	return Run(context.Background(), SynthSpec(cfg), ReadJSONL(&evb, "events"), uf, Options{Strict: true})
}

// A planted price gap and click gap for loyalty:gold must be flagged.
func TestPlantedGapsFlagged(t *testing.T) {
	cfg := SynthConfig{Seed: 7, Users: 600, Events: 12000, Items: 20, Groups: 3, Span: 24 * time.Hour, PriceGap: 0.05, ClickGap: 0.04}
	r := synthRun(t, cfg)
	var price *PriceResult
	for i := range r.Prices {
		if r.Prices[i].Group == "loyalty:gold" {
			price = &r.Prices[i]
		}
	}
	if price == nil || !price.Significant || price.MeanExcessPct < 4 || price.MeanExcessPct > 6 || price.ShareHigher < 0.9 {
		t.Fatalf("price gap not flagged: %+v", price)
	}
	click, _ := test(r, "loyalty:gold", "click_rate")
	if !click.Significant || click.Difference < 0.02 || click.Difference > 0.06 {
		t.Fatalf("click gap not flagged: %+v", click)
	}
	priceText := regexp.MustCompile(`^Group loyalty:gold paid [45]\.\d% more than loyalty:new for the same item at the same time \(higher in [\d,]+ of [\d,]+ item-hours, mean difference \+[\d.]+, q < 0\.0001\)\.$`)
	clickText := regexp.MustCompile(`^Group loyalty:gold had a click rate of [\d.]+% against [\d.]+% for loyalty:new \(within item and day, difference \+[\d.]+ points, [\d.]+% CI \+[\d.]+ to \+[\d.]+; crude difference \+[\d.]+ points; user-level t-test, q < 0\.0001\)\.$`)
	var sawPrice, sawClick bool
	// The interval a finding quotes is labelled with its level: the
	// report's false coverage-rate level, not 1 - alpha.
	level := strconv.FormatFloat(math.Round(r.IntervalConfidence*1e4)/1e2, 'f', -1, 64) + "% CI"
	for _, f := range r.Findings {
		sawPrice = sawPrice || f.Severity == "significant" && priceText.MatchString(f.Text)
		sawClick = sawClick || f.Severity == "significant" && clickText.MatchString(f.Text) && strings.Contains(f.Text, level)
	}
	if !sawPrice || !sawClick {
		t.Errorf("findings %+v", r.Findings)
	}
	// Nothing about the other tier.
	for _, f := range r.Findings {
		if f.Severity == "significant" && strings.Contains(f.Text, "silver") {
			t.Errorf("null group flagged: %s", f.Text)
		}
	}
	for _, tr := range r.Tests {
		if tr.Group == "loyalty:silver" && tr.Significant {
			t.Errorf("null group flagged: %+v", tr)
		}
	}
}

// Under the complete null, Benjamini-Hochberg controls the family-wise
// error at alpha: the share of reports with any significant result must
// stay near 0.05 (allowed up to 0.25 over 20 seeds).
func TestNullNotFlagged(t *testing.T) {
	const seeds = 20
	reports := make([]*Report, seeds)
	errs := make([]error, seeds)
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))
	for seed := range seeds {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cfg := SynthConfig{Seed: uint64(1000 + seed), Users: 400, Events: 5000, Items: 15, Groups: 3, Span: 24 * time.Hour, PersonalizationOff: 0.3}
			reports[seed], errs[seed] = synthReport(cfg)
		})
	}
	wg.Wait()
	flagged := 0
	var ps []float64
	for seed, r := range reports {
		if errs[seed] != nil {
			t.Fatal(errs[seed])
		}
		any := false
		for _, f := range r.Findings {
			if f.Severity == "significant" {
				any = true
				t.Logf("seed %d: %s", seed, f.Text)
			}
		}
		for _, tr := range r.Tests {
			ps = append(ps, tr.P)
		}
		for _, p := range r.Prices {
			ps = append(ps, p.P)
		}
		for _, p := range r.Parity {
			ps = append(ps, p.P)
		}
		if len(r.Tests) != 16 || len(r.Prices) != 2 || len(r.Parity) != 5 {
			t.Fatalf("seed %d: %d tests %d prices %d parity", seed, len(r.Tests), len(r.Prices), len(r.Parity))
		}
		if any {
			flagged++
		}
	}
	if share := float64(flagged) / seeds; share > 0.25 {
		t.Errorf("%d of %d null reports flagged", flagged, seeds)
	}
	// The raw p-values are roughly uniform: about 5% below 0.05.
	low := 0
	for _, p := range ps {
		if p < 0.05 {
			low++
		}
	}
	if share := float64(low) / float64(len(ps)); share > 0.12 {
		t.Errorf("%.1f%% of %d null p-values below 0.05", 100*share, len(ps))
	}
	t.Logf("%d of %d null reports flagged; %d of %d p-values < 0.05", flagged, seeds, low, len(ps))
}

func TestSynthesizeDeterministic(t *testing.T) {
	cfg := SynthConfig{Seed: 42, Users: 20, Events: 200}
	var a, b, ua, ub bytes.Buffer
	if err := Synthesize(cfg, &a, &ua); err != nil {
		t.Fatal(err)
	}
	if err := Synthesize(cfg, &b, &ub); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) || !bytes.Equal(ua.Bytes(), ub.Bytes()) {
		t.Fatal("same seed, different data")
	}
	cfg.Seed = 43
	var c bytes.Buffer
	if err := Synthesize(cfg, &c, nil); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("different seeds, same data")
	}
	if n := bytes.Count(a.Bytes(), []byte("\n")); n != 200 {
		t.Errorf("%d event lines", n)
	}
	if err := Synthesize(SynthConfig{Groups: MaxGroups + 1}, io.Discard, nil); err == nil {
		t.Error("too many groups accepted")
	}
}

func TestUserTable(t *testing.T) {
	var tb userTable
	for i := range 3000 {
		// Equal first hashes in pairs: the second hash tells them apart.
		n, isNew := tb.number(uint64(i/2), uint32(i))
		if n != int32(i) || !isNew {
			t.Fatalf("user %d numbered %d (new %v)", i, n, isNew)
		}
	}
	for i := range 3000 {
		if n, isNew := tb.number(uint64(i/2), uint32(i)); n != int32(i) || isNew {
			t.Fatalf("user %d found as %d (new %v)", i, n, isNew)
		}
	}
	if len(tb.slots) < 2*tb.n {
		t.Errorf("load %d/%d", tb.n, len(tb.slots))
	}
	e, err := newEngine(context.Background(), Spec{Groups: []GroupSpec{{Name: "all", Segment: "*"}}, Reference: "all"}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := e.userNum("a")
	b, bNew := e.userNum("b")
	a2, aNew := e.userNum("a")
	if a != 0 || b != 1 || !bNew || a2 != 0 || aNew {
		t.Fatalf("a %d b %d a %d", a, b, a2)
	}
}

func TestFindingFormats(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{findingCount(0), "0"}, {findingCount(1204), "1,204"}, {findingCount(1530000), "1,530,000"}, {findingCount(-12345), "-12,345"},
		{findingQ(0.00005), "q < 0.0001"}, {findingQ(0.031), "q = 0.031"}, {findingQ(0.0001), "q = 0.0001"},
		{findingPct(0.123), "12.3%"}, {findingPts(0.021), "+2.1"}, {findingPts(-0.021), "-2.1"},
		{findingNum(105.2), "105.2"}, {findingNum(3), "3.000"}, {findingNum(1e7), "1e+07"}, {findingNum(math.NaN()), "n/a"},
		{findingPctNum(4.8), "4.8"}, {findingPctNum(0.0111), "0.011"},
		{cellWord(Duration(time.Hour)), "item-hours"}, {cellWord(Duration(90 * time.Minute)), "item-1h30m0s cells"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
