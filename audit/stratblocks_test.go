package audit

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The stratified passes read the kept events by block of users, moved on
// every core (stratSortByUser): with many blocks, several pages of kept
// events, events in other groups than their user's (event attributes put
// them in two others), a free field and a distribution's percentiles moving
// with the events, each comparison is still the fixed-effects regression
// clustered by user, computed independently.
func TestStratifiedManyBlocksMatchRegression(t *testing.T) {
	const users, events, items = 3 << userBlockShift, 2*stratPage + 9_000, 5
	rng := rand.New(rand.NewPCG(11, 3))
	facts := mapFacts{}
	for u := range users {
		facts[fmt.Sprintf("u%d", u)] = []string{map[bool]string{true: "loyalty:gold", false: "loyalty:new"}[u%2 == 1]}
	}
	type obs struct {
		price, basket float64
		d, stratum    int
		user          int
	}
	var all []obs // every event, once (the percentiles are over them)
	var cmp []obs // the comparison's observations (a promo event is on both sides)
	evs := make([]Event, 0, events)
	for k := range events {
		u := rng.IntN(users)
		gold := u%2 == 1
		x := rng.Float64()
		promo := !gold && x < 0.2
		silver := !gold && x >= 0.2 && x < 0.4 // in new and silver: the reference's side here
		it := rng.IntN(items)
		if gold && rng.Float64() < 0.5 {
			it = items - 1
		}
		price := float64(float32(20 + 10*float64(it) + float64(u%7) + rng.NormFloat64()))
		if gold {
			price = float64(float32(price + 0.5))
		}
		basket := float64(float32(rng.Float64()*100 + float64(it)))
		opts := []func(*Event){withPrice(price), withField("basket", basket)}
		if promo {
			opts = append(opts, withAttrs("promo:yes"))
		}
		if silver {
			opts = append(opts, withAttrs("promo:silver"))
		}
		evs = append(evs, ev(fmt.Sprintf("u%d", u), fmt.Sprintf("i%d", it), k%48, ModePersonalized, opts...))
		o := obs{price: price, basket: basket, stratum: it, user: u}
		all = append(all, o)
		switch {
		case gold:
			o.d = 1
			cmp = append(cmp, o)
		case promo:
			o.d = 1
			cmp = append(cmp, o)
			o.d = 0
			cmp = append(cmp, o)
		default:
			cmp = append(cmp, o)
		}
	}
	// Within-item percentiles of the price over every event: mid-ranks.
	pct := map[[2]float64]float64{} // (stratum, price) -> percentile
	for s := range items {
		var vs []float64
		for _, o := range all {
			if o.stratum == s {
				vs = append(vs, o.price)
			}
		}
		slices.Sort(vs)
		for i := 0; i < len(vs); {
			j := i + 1
			for j < len(vs) && vs[j] == vs[i] {
				j++
			}
			pct[[2]float64{float64(s), vs[i]}] = float64(float32(float64(i+j) / (2 * float64(len(vs)))))
			i = j
		}
	}
	spec := Spec{Groups: []GroupSpec{{Name: "new", Segment: "loyalty:new"}, {Name: "gold", Segment: "loyalty:gold | promo:yes"},
		{Name: "silver", Segment: "promo:silver"}},
		Reference: "new", MinGroupSize: 10, Strata: []string{"item"},
		Metrics: []MetricSpec{
			{Name: "price_mean", Kind: Mean, Field: "price"},
			{Name: "basket_mean", Kind: Mean, Field: "basket"},
			{Name: "price_dist", Kind: Distribution, Field: "price"},
			{Name: "basket_dist", Kind: Distribution, Field: "basket"},
		}}
	r := run(t, spec, evs, facts, Options{})
	for _, m := range []struct {
		name string
		y    func(o obs) float64
	}{
		{"price_mean", func(o obs) float64 { return o.price }},
		{"basket_mean", func(o obs) float64 { return o.basket }},
		{"price_dist", func(o obs) float64 { return pct[[2]float64{float64(o.stratum), o.price}] }},
	} {
		var ys, ds []float64
		var strata, us []int
		for _, o := range cmp {
			ys = append(ys, m.y(o))
			ds = append(ds, float64(o.d))
			strata = append(strata, o.stratum)
			us = append(us, o.user)
		}
		beta, se := feRegression(t, ys, ds, strata, us)
		tr, ok := test(r, "gold", m.name)
		if !ok || tr.Adjustment != AdjustMantelHaenszel {
			t.Fatalf("%s: %+v", m.name, tr)
		}
		tol := 1e-6 * math.Max(1, math.Abs(beta))
		if math.Abs(tr.Difference-beta) > tol || math.Abs(tr.SE-se) > 1e-6*math.Max(1, se) {
			t.Errorf("%s: difference %.10g se %.10g, regression %.10g %.10g", m.name, tr.Difference, tr.SE, beta, se)
		}
		if tr.Users < users/2 || tr.ReferenceUsers < users/3 {
			t.Errorf("%s: users %d and %d", m.name, tr.Users, tr.ReferenceUsers)
		}
	}
}
