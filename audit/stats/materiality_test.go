package stats

import (
	"math"
	"testing"
)

func TestJudge(t *testing.T) {
	nan := math.NaN()
	ratio := RatioTolerance(0.8, 1.25)
	diff := DiffTolerance(0.05)
	cases := []struct {
		name string
		tol  Tolerance
		est  float64
		ci   Interval
		sig  bool
		want Verdict
	}{
		{"ratio well below 0.8", ratio, 0.6, Interval{0.5, 0.7}, true, VerdictMaterial},
		{"ratio well above 1.25", ratio, 1.6, Interval{1.3, 2}, true, VerdictMaterial},
		{"not significant", ratio, 0.6, Interval{0.5, 0.7}, false, VerdictInconclusive},
		{"interval reaches the bound", ratio, 0.7, Interval{0.6, 0.8}, true, VerdictInconclusive},
		{"interval straddles the bound", ratio, 0.75, Interval{0.6, 0.9}, true, VerdictInconclusive},
		{"inside: immaterial", ratio, 1.02, Interval{0.9, 1.1}, false, VerdictImmaterial},
		{"inside and significant: still immaterial", ratio, 1.1, Interval{1.05, 1.15}, true, VerdictImmaterial},
		{"inside, touching the bounds", ratio, 1, Interval{0.8, 1.25}, false, VerdictImmaterial},
		{"wide interval", ratio, 1, Interval{0.3, 3}, false, VerdictInconclusive},
		{"difference above d", diff, 0.12, Interval{0.08, 0.16}, true, VerdictMaterial},
		{"difference below -d", diff, -0.12, Interval{-0.16, -0.08}, true, VerdictMaterial},
		{"|difference| < d", diff, 0.01, Interval{-0.02, 0.04}, false, VerdictImmaterial},
		// An estimate of exactly no difference is never material, even
		// with a zero tolerance and a (malformed) interval off zero.
		{"zero estimate, zero tolerance", DiffTolerance(0), 0, Interval{0, 0}, true, VerdictImmaterial},
		{"zero estimate, interval off zero", DiffTolerance(0), 0, Interval{0.1, 0.2}, true, VerdictInconclusive},
		{"ratio exactly 1", RatioTolerance(1, 1), 1, Interval{1.1, 1.2}, true, VerdictInconclusive},
		{"estimate outside its interval", diff, 0.5, Interval{0.1, 0.2}, true, VerdictInconclusive},
		{"zero tolerance, real difference", DiffTolerance(0), 0.01, Interval{0.005, 0.015}, true, VerdictMaterial},
		{"NaN estimate", diff, nan, Interval{0.1, 0.2}, true, VerdictInconclusive},
		{"NaN interval", diff, 0.15, Interval{nan, nan}, true, VerdictInconclusive},
		{"inverted interval", diff, 0.15, Interval{0.2, 0.1}, true, VerdictInconclusive},
		{"inverted tolerance", Tolerance{1, -1, 0}, 5, Interval{4, 6}, true, VerdictInconclusive},
		{"null outside tolerance", Tolerance{0.9, 1.1, 0}, 5, Interval{4, 6}, true, VerdictInconclusive},
		{"infinite upper bound", ratio, 3, Interval{2, math.Inf(1)}, true, VerdictMaterial},
	}
	for _, c := range cases {
		if got := c.tol.Judge(c.est, c.ci, c.sig); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if VerdictMaterial.String() != "material" || VerdictImmaterial.String() != "immaterial" || VerdictInconclusive.String() != "inconclusive" {
		t.Error("String")
	}
}

func TestJudgeWithFCRIntervals(t *testing.T) {
	// End to end: three log-ratio estimates, BH at q = 0.05, adjusted
	// intervals exponentiated and judged against the four-fifths region.
	// Only the first is both selected and entirely below 0.8; the second
	// is selected but its interval, about [0.81, 0.89], lies inside the
	// region; the third, with no difference and a wide interval (about
	// [0.68, 1.48] at 95%), proves nothing either way.
	ests := []Estimate{
		{Est: math.Log(0.6), SE: 0.05},  // strong, far below 0.8
		{Est: math.Log(0.85), SE: 0.02}, // significant, but small
		{Est: 0, SE: 0.2},               // no difference at all
	}
	tol := RatioTolerance(0.8, 1.25)
	var got []Verdict
	for i, o := range FCRIntervals(ests, 0.05, FDRBH) {
		ci := Interval{Lo: math.Exp(o.CI.Lo), Hi: math.Exp(o.CI.Hi)}
		got = append(got, tol.Judge(math.Exp(ests[i].Est), ci, o.Selected))
	}
	want := []Verdict{VerdictMaterial, VerdictImmaterial, VerdictInconclusive}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("estimate %d: %v, want %v", i, got[i], want[i])
		}
	}
}
