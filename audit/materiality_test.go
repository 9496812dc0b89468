package audit

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"
)

// A gap that is significant but immaterial is no finding; the spec's
// tolerance decides; an effect of zero is never material.
func TestMateriality(t *testing.T) {
	cfg := SynthConfig{Seed: 11, Users: 600, Events: 12000, Items: 20, Groups: 2, Span: 24 * time.Hour, PriceGap: 0.005}
	run := func(tol *Tolerance) *PriceResult {
		t.Helper()
		var evb, ub bytes.Buffer
		if err := Synthesize(cfg, &evb, &ub); err != nil {
			t.Fatal(err)
		}
		uf, _, err := UsersFile(&ub, "users")
		if err != nil {
			t.Fatal(err)
		}
		spec := SynthSpec(cfg)
		spec.Tolerance = tol
		r, err := Run(context.Background(), spec, ReadJSONL(&evb, "events"), uf, Options{Strict: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := range r.Prices {
			if r.Prices[i].Group == "loyalty:gold" {
				return &r.Prices[i]
			}
		}
		t.Fatal("no price comparison for loyalty:gold")
		return nil
	}
	p := run(nil)
	if p.Q > 0.05 || p.MeanExcessPct < 0.3 || p.MeanExcessPct > 0.7 {
		t.Fatalf("setup: a 0.5%% gap should be detectable: %+v", p)
	}
	if p.Material || p.Significant {
		t.Errorf("a 0.5%% price gap is a finding under the default 1%% tolerance: %+v", p)
	}
	if p := run(&Tolerance{PricePct: 0.25}); !p.Material || !p.Significant {
		t.Errorf("a 0.5%% price gap is no finding under a 0.25%% tolerance: %+v", p)
	}

	tol := DefaultTolerance
	for _, c := range []struct {
		kind MetricKind
		t    TestResult
		want bool
	}{
		{Rate, TestResult{Difference: 0, Ratio: 1}, false},
		{Mean, TestResult{Difference: 0, Ratio: 1}, false},
		{Distribution, TestResult{Difference: 0, Ratio: 1}, false},   // "median 3 against 3" is never a finding
		{Distribution, TestResult{Difference: 0, Ratio: 1.5}, false}, // no shift, whatever the medians say
		{Rate, TestResult{Difference: 0.01, Ratio: 1.2}, false},
		{Rate, TestResult{Difference: 0.03, Ratio: 1.3}, true},
		{Rate, TestResult{Difference: -0.03, Ratio: 0.7}, true},
		{Mean, TestResult{Difference: 0.29, Ratio: 1.003}, false}, // a 0.29 ms latency gap
		{Mean, TestResult{Difference: 10, Ratio: 1.1}, true},
		{Rate, TestResult{Difference: 0.02, Ratio: math.Inf(1)}, true}, // reference rate 0
		{Mean, TestResult{Difference: math.NaN(), Ratio: math.NaN()}, false},
	} {
		if got := tol.material(c.kind, &c.t); got != c.want {
			t.Errorf("material(%s, diff %v ratio %v) = %v, want %v", c.kind, c.t.Difference, c.t.Ratio, got, c.want)
		}
	}
}
