package audit

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// feRegression is the check, written independently of stratify.go: the
// least-squares regression y = beta d + sum_s alpha_s [stratum s] with a
// dummy per stratum, solved as a linear system, and the cluster-robust
// (by user) sandwich variance of beta with the factor G/(G-1).
func feRegression(t *testing.T, ys, ds []float64, strata, users []int) (beta, se float64) {
	t.Helper()
	nS := 0
	for _, s := range strata {
		nS = max(nS, s+1)
	}
	n, k := len(ys), 1+nS
	X := mat.NewDense(n, k, nil)
	for i := range n {
		X.Set(i, 0, ds[i])
		X.Set(i, 1+strata[i], 1)
	}
	y := mat.NewVecDense(n, ys)
	var xtx mat.Dense
	xtx.Mul(X.T(), X)
	var inv mat.Dense
	if err := inv.Inverse(&xtx); err != nil {
		t.Fatalf("X'X: %v", err)
	}
	var xty mat.VecDense
	xty.MulVec(X.T(), y)
	var b mat.VecDense
	b.MulVec(&inv, &xty)
	var fit, res mat.VecDense
	fit.MulVec(X, &b)
	res.SubVec(y, &fit)
	// Meat: sum over users of (X_u' e_u)(X_u' e_u)'.
	score := map[int][]float64{}
	for i := range n {
		s := score[users[i]]
		if s == nil {
			s = make([]float64, k)
			score[users[i]] = s
		}
		for j := range k {
			s[j] += X.At(i, j) * res.AtVec(i)
		}
	}
	meat := mat.NewDense(k, k, nil)
	for _, s := range score {
		v := mat.NewVecDense(k, s)
		var o mat.Dense
		o.Outer(1, v, v)
		meat.Add(meat, &o)
	}
	var v1, v mat.Dense
	v1.Mul(&inv, meat)
	v.Mul(&v1, &inv)
	g := float64(len(score))
	return b.AtVec(0), math.Sqrt(g / (g - 1) * v.At(0, 0))
}

// The stratified estimate and its standard error are those of a
// regression with a fixed effect per stratum and errors clustered by user,
// computed independently.
func TestStratifiedMatchesFixedEffectsRegression(t *testing.T) {
	for seed := range uint64(5) {
		rng := rand.New(rand.NewPCG(seed, 42))
		facts := mapFacts{}
		var evs []Event
		var ys, ds []float64
		var strata, users []int
		items := []string{"p1", "p2", "p3", "p4"}
		for u := range 60 {
			id := fmt.Sprintf("u%d", u)
			d := u % 2
			facts[id] = []string{[]string{"loyalty:new", "loyalty:gold"}[d]}
			own := rng.NormFloat64() * 3 // the user's own level
			for range 1 + rng.IntN(6) {
				it := rng.IntN(len(items))
				if d == 1 && rng.Float64() < 0.6 {
					it = 3 // gold browses the dear item more
				}
				day := rng.IntN(2)
				price := 10 + 5*float64(it) + own + rng.NormFloat64()
				e := ev(id, items[it], 24*day, ModePersonalized, withPrice(price))
				evs = append(evs, e)
				ys = append(ys, price)
				ds = append(ds, float64(d))
				strata = append(strata, it*2+day)
				users = append(users, u)
			}
		}
		// Strata without both sides do not identify beta; the regression
		// keeps them (their dummies absorb them), as the pooled estimate
		// gives them no weight.
		spec := Spec{Groups: []GroupSpec{{Name: "new", Segment: "loyalty:new"}, {Name: "gold", Segment: "loyalty:gold"}},
			Reference: "new", MinGroupSize: 10, Metrics: []MetricSpec{{Name: "price_mean", Kind: Mean, Field: "price"}}}
		r := run(t, spec, evs, facts, Options{})
		tr, ok := test(r, "gold", "price_mean")
		if !ok {
			t.Fatal("no price_mean test")
		}
		beta, se := feRegression(t, ys, ds, strata, users)
		if tr.Adjustment != AdjustMantelHaenszel || tr.Crude == nil {
			t.Fatalf("seed %d: adjustment %q crude %v", seed, tr.Adjustment, tr.Crude)
		}
		// Values are kept as float32 for the strata (7 significant
		// digits): prices of about 30 agree to 1e-6 absolute.
		if math.Abs(tr.Difference-beta) > 1e-6 {
			t.Errorf("seed %d: difference %.12g, regression %.12g", seed, tr.Difference, beta)
		}
		if math.Abs(tr.SE-se) > 1e-6*math.Max(1, se) {
			t.Errorf("seed %d: se %.12g, regression %.12g", seed, tr.SE, se)
		}
		if tr.Strata == 0 || tr.Strata > 8 {
			t.Errorf("seed %d: %d shared strata", seed, tr.Strata)
		}
		// The crude figure is the plain difference of the means, which
		// the dear item inflates.
		if !(tr.Crude.Difference > tr.Difference+1) {
			t.Errorf("seed %d: crude %.3f not above adjusted %.3f", seed, tr.Crude.Difference, tr.Difference)
		}
	}
}

// simpsonConfig is the confounded data of the simulation study.
func simpsonConfig(seed uint64, gap float64) SynthConfig {
	c := simBase()
	c.Seed = seed
	c.PremiumItems, c.PremiumDiscount, c.LoyalPremium, c.DiscountGap = 0.25, 0.02, 0.9, gap
	return c
}

// Simpson's paradox: gold browses premium items, which carry fewer
// discounts. Without a gap within items nothing is found; with gold
// favoured within every item, the finding says so (the crude figure, shown
// beside, points the other way).
func TestStratifiedSimpson(t *testing.T) {
	for seed := range uint64(3) {
		r, err := simAudit(simpsonConfig(seed+100, 0))
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range r.Tests {
			if tr.Significant && (tr.Metric == "discount_rate" || tr.Metric == "price_mean") {
				t.Errorf("null, seed %d: %s %s is a finding: %+v", seed, tr.Group, tr.Metric, tr)
			}
		}
		r, err = simAudit(simpsonConfig(seed+100, 0.07))
		if err != nil {
			t.Fatal(err)
		}
		tr, ok := test(r, "loyalty:gold", "discount_rate")
		if !ok || tr.Crude == nil {
			t.Fatalf("seed %d: gold discount_rate %+v", seed, tr)
		}
		if !tr.Significant || tr.Difference <= 0 {
			t.Errorf("seed %d: adjusted %+.3f significant %v, want a finding above the reference", seed, tr.Difference, tr.Significant)
		}
		if tr.Crude.Difference >= 0 {
			t.Errorf("seed %d: crude %+.3f, want below (the paradox)", seed, tr.Crude.Difference)
		}
	}
}

// Strata named in the spec: events' attributes and users' facts.
func TestStratifiedByAttributeAndFact(t *testing.T) {
	// Region north is dearer for everyone; gold lives mostly in the north.
	// Within a region gold pays what new pays.
	mk := func(strata []string, fromFacts bool) *Report {
		rng := rand.New(rand.NewPCG(7, 7))
		facts := mapFacts{}
		var evs []Event
		for u := range 400 {
			id := fmt.Sprintf("u%d", u)
			gold := u%2 == 1
			north := rng.Float64() < map[bool]float64{true: 0.9, false: 0.1}[gold]
			region := map[bool]string{true: "north", false: "south"}[north]
			fs := []string{map[bool]string{true: "loyalty:gold", false: "loyalty:new"}[gold]}
			if fromFacts {
				fs = append(fs, "region:"+region)
			}
			facts[id] = fs
			for k := range 4 {
				p := 100.0
				if north {
					p = 120
				}
				opts := []func(*Event){withPrice(p * (1 + 0.02*rng.NormFloat64()))}
				if !fromFacts {
					opts = append(opts, withAttrs("region:"+region))
				}
				evs = append(evs, ev(id, "x", k, ModePersonalized, opts...))
			}
		}
		spec := Spec{Groups: []GroupSpec{{Name: "new", Segment: "loyalty:new"}, {Name: "gold", Segment: "loyalty:gold"}},
			Reference: "new", Metrics: []MetricSpec{{Name: "price_mean", Kind: Mean, Field: "price"}}, Strata: strata}
		return run(t, spec, evs, facts, Options{})
	}
	for _, fromFacts := range []bool{false, true} {
		crude := mk(nil, fromFacts)
		tc, _ := test(crude, "gold", "price_mean")
		if !tc.Significant {
			t.Errorf("facts %v: by item and day only, the region's price gap should be a finding: %+v", fromFacts, tc)
		}
		adj := mk([]string{"item", "region"}, fromFacts)
		ta, _ := test(adj, "gold", "price_mean")
		if ta.Significant || ta.Adjustment != AdjustMantelHaenszel || ta.Strata != 2 {
			t.Errorf("facts %v: within regions there is no gap: %+v", fromFacts, ta)
		}
		if math.Abs(ta.Difference) > 2 || ta.Crude == nil || ta.Crude.Difference < 10 {
			t.Errorf("facts %v: adjusted %.2f crude %+v", fromFacts, ta.Difference, ta.Crude)
		}
	}
}

// Groups that never browse the same item are not compared, and say so.
func TestStratifiedNotComparable(t *testing.T) {
	facts := mapFacts{}
	var evs []Event
	for u := range 40 {
		id := fmt.Sprintf("u%d", u)
		item, f := "cheap", "loyalty:new"
		if u%2 == 1 {
			item, f = "dear", "loyalty:gold"
		}
		facts[id] = []string{f}
		for k := range 3 {
			evs = append(evs, ev(id, item, k, ModePersonalized, withPrice(float64(10+90*(u%2)+k)), withClicked(k == 0)))
		}
	}
	spec := Spec{Groups: []GroupSpec{{Name: "new", Segment: "loyalty:new"}, {Name: "gold", Segment: "loyalty:gold"}},
		Reference: "new", MinGroupSize: 10, Metrics: []MetricSpec{{Name: "price_mean", Kind: Mean, Field: "price"}, {Name: "click_rate", Kind: Rate, Field: "clicked"}}}
	r := run(t, spec, evs, facts, Options{})
	for _, m := range []string{"price_mean", "click_rate"} {
		tr, ok := test(r, "gold", m)
		if !ok || tr.Adjustment != AdjustNotComparable || !math.IsNaN(tr.P) || tr.Significant || tr.Crude == nil {
			t.Errorf("%s: %+v", m, tr)
		}
	}
	found := false
	for _, f := range r.Findings {
		if f.Severity == "significant" {
			t.Errorf("finding on incomparable groups: %s", f.Text)
		}
		if strings.Contains(f.Text, "not compared on price_mean") {
			found = true
		}
	}
	if !found {
		t.Errorf("no note says the groups are not compared: %+v", r.Findings)
	}
	// ["none"] compares the plain figures: the price gap is a finding.
	spec.Strata = []string{StratumNone}
	r = run(t, spec, evs, facts, Options{})
	tr, _ := test(r, "gold", "price_mean")
	if tr.Adjustment != AdjustNone || tr.Crude != nil || !tr.Significant {
		t.Errorf("strata none: %+v", tr)
	}
}

// Parity: users who turned personalization off click less as people; the
// non-personalized path is not degraded. The click rate is not judged
// across different people; with users seen in both modes it is compared
// within them.
func TestParityClickWithinUser(t *testing.T) {
	cfg := simBase()
	cfg.Seed = 3
	cfg.PersonalizationOff, cfg.OffActivity, cfg.OffClick = 0.2, 3, 0.6
	r, err := simAudit(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var click *TestResult
	for i := range r.Parity {
		if r.Parity[i].Metric == "click_rate" {
			click = &r.Parity[i]
		}
		if r.Parity[i].Significant {
			t.Errorf("parity %s is a finding: %+v", r.Parity[i].Metric, r.Parity[i])
		}
	}
	if click == nil || click.Adjustment != AdjustNotComparable || click.Crude == nil || click.Crude.Difference >= 0 || click.Users < 50 || click.ReferenceUsers < 50 {
		t.Fatalf("click parity: %+v", click)
	}
	// Users who switch: each sees both modes; the non-personalized path
	// lowers every user's clicks by 10 points.
	rng := rand.New(rand.NewPCG(9, 9))
	var evs []Event
	for u := range 300 {
		id := fmt.Sprintf("u%d", u)
		own := 0.1 + 0.5*rng.Float64()
		for k := range 20 {
			mode, p := ModePersonalized, own
			if k%2 == 1 {
				mode, p = ModeNonPersonalized, own-0.1
			}
			evs = append(evs, ev(id, "x", k, mode, withClicked(rng.Float64() < p), withRank(1)))
		}
	}
	spec := Spec{Groups: []GroupSpec{{Name: "all", Segment: "*"}}, Reference: "all"}
	r = run(t, spec, evs, nil, Options{})
	for _, tr := range r.Parity {
		if tr.Metric != "click_rate" {
			continue
		}
		if tr.Adjustment != AdjustWithinUser || tr.Strata != 300 || !tr.Significant || math.Abs(tr.Difference+0.1) > 0.03 {
			t.Errorf("within-user click parity: %+v", tr)
		}
		return
	}
	t.Error("no click parity")
}

func TestSpecStrata(t *testing.T) {
	base := `{"groups":[{"name":"a","segment":"*"}],"reference":"a"`
	for _, c := range []struct{ doc, field string }{
		{base + `,"strata":["none","item"]}`, "strata[0]"},
		{base + `,"strata":["item","item"]}`, "strata[1]"},
		{base + `,"strata":["region:north"]}`, "strata[0]"},
		{base + `,"strata":[""]}`, "strata[0]"},
		{base + `,"strata":["a","b","c","d","e","f","g"]}`, "strata"},
		{base + `,"strata_bucket":"10ms"}`, "strata_bucket"},
	} {
		_, err := LoadSpec([]byte(c.doc))
		var se *SpecError
		if !errors.As(err, &se) || se.Field != c.field || !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%s: %v", c.doc, err)
		}
	}
	s, err := LoadSpec([]byte(base + `,"strata":[" region ","item"],"strata_bucket":"1h"}`))
	if err != nil || strings.Join(s.Strata, ",") != "region,item" || s.StrataBucket != Duration(3600e9) {
		t.Errorf("%+v %v", s, err)
	}
}

// With few users a side the stratified p-value comes from relabelling
// users; checked against the exact permutation distribution, enumerated.
func TestStratifiedPermutationExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	facts := mapFacts{}
	var evs []Event
	type us struct {
		gold bool
		// sums per item
		y, n [2]float64
	}
	var users []us
	for u := range 10 {
		id := fmt.Sprintf("u%d", u)
		gold := u < 5
		facts[id] = []string{map[bool]string{true: "loyalty:gold", false: "loyalty:new"}[gold]}
		x := us{gold: gold}
		for k := range 2 + u%3 {
			it := k % 2
			p := 10 + 5*float64(it) + rng.NormFloat64()
			if gold {
				p += 1.5
			}
			evs = append(evs, ev(id, []string{"a", "b"}[it], 0, ModePersonalized, withPrice(p)))
			x.y[it] += float64(float32(p))
			x.n[it]++
		}
		users = append(users, x)
	}
	pooled := func(lab []bool) float64 {
		var w, d float64
		for it := range 2 {
			var na, ya, nb, yb float64
			for i, x := range users {
				if lab[i] {
					na, ya = na+x.n[it], ya+x.y[it]
				} else {
					nb, yb = nb+x.n[it], yb+x.y[it]
				}
			}
			ws := na * nb / (na + nb)
			w += ws
			d += ws * (ya/na - yb/nb)
		}
		return d / w
	}
	lab := make([]bool, 10)
	for i := range 5 {
		lab[i] = true
	}
	obs := pooled(lab)
	extreme, all := 0, 0
	for m := range 1 << 10 {
		if popcount(m) != 5 {
			continue
		}
		for i := range 10 {
			lab[i] = m&(1<<i) != 0
		}
		all++
		if math.Abs(pooled(lab)) >= math.Abs(obs)-1e-9 {
			extreme++
		}
	}
	exact := float64(extreme) / float64(all)
	spec := Spec{Groups: []GroupSpec{{Name: "new", Segment: "loyalty:new"}, {Name: "gold", Segment: "loyalty:gold"}},
		Reference: "new", MinGroupSize: 5, Metrics: []MetricSpec{{Name: "price_mean", Kind: Mean, Field: "price"}}}
	r := run(t, spec, evs, facts, Options{})
	tr, _ := test(r, "gold", "price_mean")
	if tr.Test != "cluster_permutation" || tr.Adjustment != AdjustMantelHaenszel {
		t.Fatalf("test %+v", tr)
	}
	if math.Abs(tr.Difference-obs) > 1e-9 {
		t.Errorf("difference %.12g, by hand %.12g", tr.Difference, obs)
	}
	t.Logf("p %.4f, exact %.4f (%d of %d)", tr.P, exact, extreme, all)
	// 1,999 relabellings: the Monte Carlo p is within 0.03 of the exact.
	if math.Abs(tr.P-exact) > 0.03 {
		t.Errorf("p %.4f, exact %.4f", tr.P, exact)
	}
}

func popcount(m int) int {
	n := 0
	for ; m != 0; m &= m - 1 {
		n++
	}
	return n
}

// Groups by the events' own attributes too (a new user's promotion event
// counts in gold as well as in new): the kept events carry their groups
// through the sort by user, and the estimate is still the regression's
// over the events of each side (an event of both sides on each).
func TestStratifiedEventAttributes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	facts := mapFacts{}
	var evs []Event
	var ys, ds []float64
	var strata, users []int
	add := func(price float64, d float64, it, u int) {
		ys = append(ys, float64(float32(price)))
		ds = append(ds, d)
		strata = append(strata, it)
		users = append(users, u)
	}
	for u := range 200 {
		facts[fmt.Sprintf("u%d", u)] = []string{map[bool]string{true: "loyalty:gold", false: "loyalty:new"}[u%2 == 1]}
	}
	for k := range 3000 {
		u := rng.IntN(200)
		id := fmt.Sprintf("u%d", u)
		gold := u%2 == 1
		x := rng.Float64()
		promo := !gold && x < 0.2
		silver := !gold && x >= 0.2 && x < 0.4 // in new and silver: not in this comparison
		it := rng.IntN(3)
		if gold && rng.Float64() < 0.5 {
			it = 2
		}
		price := 20 + 10*float64(it) + float64(u%7) + rng.NormFloat64()
		if gold {
			price += 0.8
		}
		var opts []func(*Event)
		if promo {
			opts = append(opts, withAttrs("promo:yes"))
		}
		if silver {
			opts = append(opts, withAttrs("promo:silver"))
		}
		evs = append(evs, ev(id, fmt.Sprintf("i%d", it), k%3, ModePersonalized, append(opts, withPrice(price))...))
		switch {
		case gold:
			add(price, 1, it, u)
		case promo:
			add(price, 1, it, u)
			add(price, 0, it, u)
		default:
			add(price, 0, it, u)
		}
	}
	spec := Spec{Groups: []GroupSpec{{Name: "new", Segment: "loyalty:new"}, {Name: "gold", Segment: "loyalty:gold | promo:yes"},
		{Name: "silver", Segment: "promo:silver"}},
		Reference: "new", MinGroupSize: 10, Metrics: []MetricSpec{{Name: "price_mean", Kind: Mean, Field: "price"}},
		Strata: []string{"item"}}
	r := run(t, spec, evs, facts, Options{})
	tr, ok := test(r, "gold", "price_mean")
	if !ok || tr.Adjustment != AdjustMantelHaenszel || tr.Test != "cluster_robust_t" {
		t.Fatalf("test %+v; groups %+v; findings %+v", tr, r.Groups, r.Findings)
	}
	beta, se := feRegression(t, ys, ds, strata, users)
	if math.Abs(tr.Difference-beta) > 1e-9 || math.Abs(tr.SE-se) > 1e-9 {
		t.Errorf("difference %.12g se %.12g, regression %.12g %.12g", tr.Difference, tr.SE, beta, se)
	}
}

// Random small data sets under random specs: the stratified comparisons
// never panic, every p-value is a probability or NaN, a finding is always
// rejected and material, an adjusted or incomparable result carries the
// crude one, and a result not compared is never a finding.
func TestStratifiedRandomRobust(t *testing.T) {
	rng := rand.New(rand.NewPCG(77, 77))
	strataChoices := [][]string{nil, {"none"}, {"item"}, {"time"}, {"region"}, {"item", "region"}, {"device", "time"}}
	for trial := range 60 {
		facts := mapFacts{}
		nu := 5 + rng.IntN(80)
		for u := range nu {
			fs := []string{[]string{"loyalty:new", "loyalty:gold", "loyalty:vip"}[rng.IntN(3)]}
			if rng.IntN(2) == 0 {
				fs = append(fs, fmt.Sprintf("region:r%d", rng.IntN(3)))
			}
			facts[fmt.Sprintf("u%d", u)] = fs
		}
		var evs []Event
		for range rng.IntN(600) {
			u := fmt.Sprintf("u%d", rng.IntN(nu))
			mode := ModePersonalized
			if rng.IntN(4) == 0 {
				mode = ModeNonPersonalized
			}
			var opts []func(*Event)
			if rng.IntN(5) > 0 {
				opts = append(opts, withPrice([]float64{0, 1, 9.99, 1e6, -3, 10 + rng.NormFloat64()}[rng.IntN(6)]))
			}
			if rng.IntN(3) > 0 {
				opts = append(opts, withClicked(rng.IntN(2) == 0))
			}
			if rng.IntN(3) > 0 {
				opts = append(opts, withRank(float64(1+rng.IntN(3))))
			}
			if rng.IntN(4) == 0 {
				opts = append(opts, withDiscount(float64(rng.IntN(2))))
			}
			if rng.IntN(4) == 0 {
				opts = append(opts, withLatency(20+rng.Float64()))
			}
			if rng.IntN(3) == 0 {
				opts = append(opts, withAttrs(fmt.Sprintf("device:d%d", rng.IntN(2))))
			}
			if rng.IntN(5) == 0 {
				opts = append(opts, withField("basket", rng.Float64()*100))
			}
			evs = append(evs, ev(u, fmt.Sprintf("i%d", rng.IntN(1+rng.IntN(6))), rng.IntN(72), mode, opts...))
		}
		spec := Spec{Groups: []GroupSpec{{Name: "new", Segment: "loyalty:new"}, {Name: "gold", Segment: "loyalty:gold | device:d1"}, {Name: "vip", Segment: "loyalty:vip"}},
			Reference: "new", MinGroupSize: 1 + rng.IntN(6), Strata: strataChoices[rng.IntN(len(strataChoices))]}
		if rng.IntN(2) == 0 {
			spec.Metrics = append(DefaultMetrics(), MetricSpec{Name: "basket_mean", Kind: Mean, Field: "basket"}, MetricSpec{Name: "basket_dist", Kind: Distribution, Field: "basket"})
		}
		r := run(t, spec, evs, facts, Options{})
		check := func(where string, tr TestResult) {
			if !(math.IsNaN(tr.P) || tr.P >= 0 && tr.P <= 1) {
				t.Errorf("trial %d %s: p %v", trial, where, tr.P)
			}
			if tr.Significant && (!tr.Material || !(tr.Q <= r.Spec.Alpha)) {
				t.Errorf("trial %d %s: a finding not rejected or not material: %+v", trial, where, tr)
			}
			switch tr.Adjustment {
			case AdjustMantelHaenszel, AdjustWithinUser, AdjustNotComparable:
				if tr.Crude == nil {
					t.Errorf("trial %d %s: adjusted without the crude figure: %+v", trial, where, tr)
				}
			case AdjustNone:
			default:
				t.Errorf("trial %d %s: adjustment %q", trial, where, tr.Adjustment)
			}
			if tr.Adjustment == AdjustNotComparable && (tr.Significant || !math.IsNaN(tr.P)) {
				t.Errorf("trial %d %s: not compared, yet %+v", trial, where, tr)
			}
		}
		for _, tr := range r.Tests {
			check("test "+tr.Group+"/"+tr.Metric, tr)
		}
		for _, tr := range r.Parity {
			check("parity "+tr.Metric, tr)
		}
		for _, p := range r.Prices {
			if !(math.IsNaN(p.P) || p.P >= 0 && p.P <= 1) || (p.Significant && !p.Material) {
				t.Errorf("trial %d price %+v", trial, p)
			}
		}
	}
}
