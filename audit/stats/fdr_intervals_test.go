package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The 15 p-values of Benjamini and Hochberg's (1995, JRSS B 57:289-300,
// section 4) example (Neuhaus et al. 1992): at q = 0.05 BH rejects the
// four smallest.
var bh1995 = []float64{0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278,
	0.0298, 0.0344, 0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.000}

func TestBenjaminiYekutieli(t *testing.T) {
	// R 4.2.2: p.adjust(p, "BY") on the BH 1995 p-values.
	want := []float64{0.00497734348984349, 0.00995468697968698,
		0.0315231754356754, 0.118211907883783, 0.200089208291708,
		0.211892622853337, 0.211892622853337, 0.21402577006327,
		0.253844517982018, 1, 1, 1, 1, 1, 1}
	got := BenjaminiYekutieli(bh1995)
	for i := range want {
		near(t, "BY", got[i], want[i], 1e-14)
	}
	// Under BH, four are selected at 0.05 (the paper's result); under BY,
	// three.
	bh := BenjaminiHochberg(bh1995)
	var nbh, nby int
	for i := range bh {
		if bh[i] <= 0.05 {
			nbh++
		}
		if got[i] <= 0.05 {
			nby++
		}
	}
	if nbh != 4 || nby != 3 {
		t.Errorf("selected BH %d (want 4), BY %d (want 3)", nbh, nby)
	}
	// NaN stays NaN and is not counted in m.
	q := BenjaminiYekutieli([]float64{0.01, math.NaN(), 0.04})
	near(t, "NaN", q[1], math.NaN(), 0)
	near(t, "m without NaN", q[0], min(1, 1.5*0.02), 1e-15) // c(2) = 1.5, BH 0.02
	if len(BenjaminiYekutieli(nil)) != 0 {
		t.Error("nil input")
	}
}

func TestFCRIntervalsByHand(t *testing.T) {
	// z = 3.5, 2.9, 0.5, -3.0 (SE 1). R 4.2.2: p = 2 pnorm(-|z|) =
	// 0.00046525815807105, 0.00373162660076808, 0.617075077451974,
	// 0.00269979606326019; p.adjust BH 0.0018610326322842,
	// 0.00497550213435744, 0.617075077451974, 0.00497550213435744; BY
	// times 25/12: 0.00387715131725875, 0.010365629446578, 1,
	// 0.010365629446578. At q = 0.05 three are selected either way.
	//   BH: selected at 1 - 3 (0.05)/4 = 0.9625, qnorm(0.98125) =
	//       2.08027845252527; the other at 1 - 4 (0.05)/4 = 0.95, 1.959964.
	//   BY: c(4) = 25/12: 1 - 0.15/(4 c) = 0.982, qnorm(0.991) =
	//       2.36561812686429; 1 - 0.2/(4 c) = 0.976, qnorm(0.988) =
	//       2.25712924448622.
	ests := []Estimate{{3.5, 1, 0}, {2.9, 1, 0}, {0.5, 1, 0}, {-3.0, 1, 0}}
	p := []float64{0.00046525815807105, 0.00373162660076808, 0.617075077451974, 0.00269979606326019}
	cases := []struct {
		proc        FDRProcedure
		q           []float64
		levS, levU  float64
		critS, crit float64
	}{
		{FDRBH, []float64{0.0018610326322842, 0.00497550213435744, 0.617075077451974, 0.00497550213435744}, 0.9625, 0.95, 2.08027845252527, 1.95996398454005},
		{FDRBY, []float64{0.00387715131725875, 0.010365629446578, 1, 0.010365629446578}, 0.982, 0.976, 2.36561812686429, 2.25712924448622},
	}
	for _, c := range cases {
		out := FCRIntervals(ests, 0.05, c.proc)
		for i, o := range out {
			near(t, "p", o.P, p[i], 1e-15)
			near(t, "q", o.Q, c.q[i], 1e-14)
			sel := i != 2
			if o.Selected != sel {
				t.Errorf("proc %d test %d: selected %v", c.proc, i, o.Selected)
			}
			lev, crit := c.levS, c.critS
			if !sel {
				lev, crit = c.levU, c.crit
			}
			near(t, "level", o.Level, lev, 1e-15)
			nearCI(t, "CI", o.CI, ests[i].Est-crit, ests[i].Est+crit, 1e-12)
		}
	}
}

func TestFCRIntervalsStudentT(t *testing.T) {
	// t = 4, 1, -3.2 on 5 df. R 4.2.2: p = 2 pt(-|t|, 5) =
	// 0.0103234154808315, 0.363217467649123, 0.0239951768033005; BH
	// 0.0309702464424944, 0.363217467649123, 0.0359927652049507. At
	// q = 0.1, R = 2: selected intervals at 1 - 2 (0.1)/3 with
	// qt(1 - 0.1/3, 5) = 2.33653770978572, the other at 0.9 with
	// qt(0.95, 5) = 2.01504837333302.
	ests := []Estimate{{4, 1, 5}, {1, 1, 5}, {-3.2, 1, 5}}
	out := FCRIntervals(ests, 0.1, FDRBH)
	wantP := []float64{0.0103234154808315, 0.363217467649123, 0.0239951768033005}
	wantCrit := []float64{2.33653770978572, 2.01504837333302, 2.33653770978572}
	for i, o := range out {
		near(t, "p", o.P, wantP[i], 1e-13)
		nearCI(t, "CI", o.CI, ests[i].Est-wantCrit[i], ests[i].Est+wantCrit[i], 1e-10)
		if o.Selected != (i != 1) {
			t.Errorf("test %d selected %v", i, o.Selected)
		}
	}
	near(t, "selected level", out[0].Level, 1-0.2/3, 1e-15)
	near(t, "unselected level", out[1].Level, 0.9, 1e-15)
}

func TestFCRIntervalsAgreeWithDecision(t *testing.T) {
	// Property: for any set of estimates, a comparison is selected exactly
	// when its interval excludes 0, under BH and BY, normal and t.
	rng := rand.New(rand.NewPCG(11, 12))
	for trial := range 400 {
		m := 1 + rng.IntN(60)
		ests := make([]Estimate, m)
		for i := range ests {
			se := 0.1 + rng.Float64()*3
			est := se * rng.NormFloat64()
			if rng.IntN(3) == 0 {
				est += se * (2 + 3*rng.Float64()) // some true effects
			}
			df := 0.0
			if trial%2 == 1 {
				df = float64(2 + rng.IntN(50))
			}
			ests[i] = Estimate{Est: est, SE: se, DF: df}
		}
		q := []float64{0.01, 0.05, 0.1, 0.2}[trial%4]
		for _, proc := range []FDRProcedure{FDRBH, FDRBY} {
			for i, o := range FCRIntervals(ests, q, proc) {
				excludes := o.CI.Lo > 0 || o.CI.Hi < 0
				if o.Selected != excludes {
					t.Fatalf("trial %d proc %d test %d: selected %v but CI %+v (p %v, q %v, level %v)",
						trial, proc, i, o.Selected, o.CI, o.P, o.Q, o.Level)
				}
				if !(o.Level > 0 && o.Level < 1) {
					t.Fatalf("level %v", o.Level)
				}
			}
		}
	}
}

func TestFCRIntervalsDegenerate(t *testing.T) {
	ests := []Estimate{{1, 0, 0}, {math.NaN(), 1, 0}, {5, 1, 0}, {1, math.Inf(1), 0}}
	out := FCRIntervals(ests, 0.05, FDRBH)
	for _, i := range []int{0, 1, 3} {
		near(t, "p", out[i].P, math.NaN(), 0)
		isNaNCI(t, "CI", out[i].CI)
		if out[i].Selected {
			t.Errorf("test %d selected", i)
		}
	}
	// m = 1: the single valid test is selected at level 1 - q.
	if !out[2].Selected {
		t.Error("z = 5 not selected")
	}
	near(t, "m = 1 level", out[2].Level, 0.95, 1e-15)
	for _, q := range []float64{0, 1, math.NaN()} {
		o := FCRIntervals(ests, q, FDRBH)
		if o[2].Selected || !math.IsNaN(o[2].Level) {
			t.Errorf("q = %v: %+v", q, o[2])
		}
	}
	if o := FCRIntervals(ests, 0.05, FDRProcedure(9)); o[2].Selected {
		t.Error("bad procedure selected")
	}
	if len(FCRIntervals(nil, 0.05, FDRBY)) != 0 {
		t.Error("nil input")
	}
}

func TestFCRSimulation(t *testing.T) {
	// Benjamini and Yekutieli (2005), Theorem 1 with BH selection: for
	// independent estimates the false coverage-statement rate of the
	// selected intervals, E[#selected intervals missing their parameter /
	// max(R, 1)], is at most q. 50 independent normal estimates, 10 with
	// true effect 3 (the rest 0), q = 0.1, 4000 replicates: the adjusted
	// intervals must keep FCR near or below 0.1, while the unadjusted 90%
	// intervals of the same selected parameters miss far more often.
	rng := rand.New(rand.NewPCG(2005, 71))
	const reps, m, q = 4000, 50, 0.1
	var fcrAdj, fcrNaive float64
	zNaive := zCrit(1 - q)
	ests := make([]Estimate, m)
	theta := make([]float64, m)
	for range reps {
		for i := range ests {
			theta[i] = 0
			if i < 10 {
				theta[i] = 3
			}
			ests[i] = Estimate{Est: theta[i] + rng.NormFloat64(), SE: 1}
		}
		var r, missAdj, missNaive int
		for i, o := range FCRIntervals(ests, q, FDRBH) {
			if !o.Selected {
				continue
			}
			r++
			if theta[i] < o.CI.Lo || theta[i] > o.CI.Hi {
				missAdj++
			}
			if math.Abs(ests[i].Est-theta[i]) > zNaive {
				missNaive++
			}
		}
		if r > 0 {
			fcrAdj += float64(missAdj) / float64(r)
			fcrNaive += float64(missNaive) / float64(r)
		}
	}
	fcrAdj /= reps
	fcrNaive /= reps
	t.Logf("FCR: adjusted %.4f, unadjusted %.4f (q = %.2f)", fcrAdj, fcrNaive, q)
	if fcrAdj > q+0.01 {
		t.Errorf("adjusted FCR %.4f above q = %v", fcrAdj, q)
	}
	if fcrNaive < fcrAdj+0.02 {
		t.Errorf("unadjusted FCR %.4f not clearly above adjusted %.4f", fcrNaive, fcrAdj)
	}
}
