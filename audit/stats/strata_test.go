package stats

import (
	"math"
	"testing"
)

// twoStrata is stratum 1 = the small click example of cluster_test.go and
// stratum 2 = the dwell-time example, as two strata of one comparison.
func twoStrata() []Stratum {
	return []Stratum{
		{A: summaryOfUsers(smallAY, smallAN), B: summaryOfUsers(smallBY, smallBN)},
		{A: summaryOfUsers(metricAY, metricAN), B: summaryOfUsers(metricBY, metricBN)},
	}
}

func TestStratifiedDiffReference(t *testing.T) {
	// Computed in R 4.2.2 from the survey::svyratio SEs of each group
	// (see TestClusterSummaryByHand and TestClusterSummaryMetric): stratum
	// differences d1 = 1/14 and d2 = 4.58333333 - 4.27941176, weights
	// w = nA nB/(nA+nB) (7*8/15, 24*17/41), nA+nB (15, 41) or
	// 1/(vA+vB); var = sum f^2 (vA + vB), f = w/sum w, Satterthwaite df
	// over the four components with G-1 = 2, 3, 7, 5; 90% intervals by qt.
	cases := []struct {
		w                   StratumWeight
		f1, diff, se, df, p float64
		lo, hi              float64
	}{
		{WeightMH, 0.272813688212928, 0.240494296577947, 0.699455157822632, 12.2434755865714, 0.7368062498311, -1.00407359811009, 1.48506219126598},
		{WeightSize, 0.267857142857143, 0.241646658663465, 0.704017017926818, 12.2295927481255, 0.737246439800298, -1.01115429796194, 1.49444761528887},
		{WeightInverseVariance, 0.921084410434457, 0.0897758933723812, 0.268591775722679, 5.77414135516502, 0.749998158411823, -0.435825389692525, 0.615377176437288},
	}
	for _, c := range cases {
		r := StratifiedDiff(twoStrata(), c.w, 0.90)
		near(t, "weight 1", r.Weights[0], c.f1, 1e-13)
		near(t, "weight 2", r.Weights[1], 1-c.f1, 1e-13)
		near(t, "Diff", r.Diff, c.diff, 1e-13)
		near(t, "SE", r.SE, c.se, 1e-13)
		near(t, "DF", r.DF, c.df, 1e-10)
		near(t, "P", r.P, c.p, 1e-11)
		nearCI(t, "CI", r.CI, c.lo, c.hi, 1e-11)
		if r.Used != 2 {
			t.Errorf("Used = %d", r.Used)
		}
	}
}

func TestStratifiedDiffOneStratum(t *testing.T) {
	// One stratum: every weighting gives CompareClustered's difference.
	a, b := summaryOfUsers(metricAY, metricAN), summaryOfUsers(metricBY, metricBN)
	c := CompareClustered(a, b, 0.95)
	for _, w := range []StratumWeight{WeightMH, WeightSize, WeightInverseVariance} {
		r := StratifiedDiff([]Stratum{{A: a, B: b}}, w, 0.95)
		near(t, "Diff", r.Diff, c.Diff, 1e-14)
		near(t, "SE", r.SE, c.DiffSE, 1e-14)
		near(t, "DF", r.DF, c.DiffDF, 1e-10)
		near(t, "P", r.P, c.DiffP, 1e-12)
		nearCI(t, "CI", r.CI, c.DiffCI.Lo, c.DiffCI.Hi, 1e-12)
		near(t, "Crude", r.Crude.Diff, c.Diff, 0)
	}
}

func TestStratifiedDiffConfounding(t *testing.T) {
	// Simpson's paradox by construction: within each stratum both groups
	// have the same rate (1/2 in stratum 1, 1/8 in stratum 2), but group A
	// is mostly in the high-rate stratum. Crude, by hand:
	//   A: stratum 1 has 8 users with 2 impressions, 8 clicks in all;
	//      stratum 2 has 2 users with 4 impressions, 1 click; 9/24 = 0.375
	//   B: stratum 1 has 2 users, 2 clicks of 4; stratum 2 has 8 users
	//      with 4 impressions, 4 clicks of 32; 6/36 = 0.1667
	//   crude difference 0.375 - 0.1667 = 0.2083; adjusted exactly 0.
	var s1a, s1b, s2a, s2b ClusterSummary
	for i, y := range []float64{0, 2, 1, 1, 0, 2, 1, 1} { // 8 clicks of 16
		s1a.Add(y, 2)
		s2b.Add(float64(i%2), 4) // 0,1,0,1,...: 4 clicks of 32
	}
	s1b.Add(0, 2)
	s1b.Add(2, 2)
	s2a.Add(0, 4)
	s2a.Add(1, 4)
	strata := []Stratum{{A: s1a, B: s1b}, {A: s2a, B: s2b}}
	for _, w := range []StratumWeight{WeightMH, WeightSize, WeightInverseVariance} {
		r := StratifiedDiff(strata, w, 0.95)
		near(t, "crude", r.Crude.Diff, 9.0/24-6.0/36, 1e-15)
		near(t, "adjusted", r.Diff, 0, 1e-15)
		// The adjusted estimate of no difference is never material.
		if v := DiffTolerance(0.01).Judge(r.Diff, r.CI, r.P < 0.05); v == VerdictMaterial {
			t.Error("adjusted 0 judged material")
		}
	}
}

func TestStratifiedDiffMatchesMantelHaenszel(t *testing.T) {
	// With one event per user and a 0/1 metric, WeightMH pools the
	// stratum differences with the Mantel-Haenszel weights, so its point
	// estimate is MantelHaenszelRD's, and its variance is the large-strata
	// (Greenland-Robins) form with each p(1-p)/n replaced by the
	// cluster-robust p(1-p)/(n-1).
	tables := []RateStratum{{4, 123, 11, 139}, {6, 306, 29, 303}, {3, 231, 11, 220}}
	var strata []Stratum
	var w, v float64
	for _, tb := range tables {
		var s Stratum
		for i := range tb.NA {
			s.A.Add(b2f(i < tb.XA), 1)
		}
		for i := range tb.NB {
			s.B.Add(b2f(i < tb.XB), 1)
		}
		strata = append(strata, s)
		na, nb := float64(tb.NA), float64(tb.NB)
		pa, pb := float64(tb.XA)/na, float64(tb.XB)/nb
		wk := na * nb / (na + nb)
		w += wk
		v += wk * wk * (pa*(1-pa)/(na-1) + pb*(1-pb)/(nb-1))
	}
	r := StratifiedDiff(strata, WeightMH, 0.95)
	mh := MantelHaenszelRD(tables, 0.95)
	near(t, "MH estimate", r.Diff, mh.RD, 1e-15)
	near(t, "cluster-robust SE", r.SE, math.Sqrt(v)/w, 1e-15)
	near(t, "crude", r.Crude.Diff, mh.CrudeRD, 1e-15)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func TestStratifiedDiffSkipsStrata(t *testing.T) {
	var one ClusterSummary
	one.Add(1, 3)
	zero := summaryOfUsers([]float64{0, 0}, []float64{1, 2})
	strata := append(twoStrata(),
		Stratum{A: one, B: summaryOfUsers(smallBY, smallBN)}, // one user in A
		Stratum{A: zero, B: zero},                            // no variance
	)
	r := StratifiedDiff(strata, WeightMH, 0.95)
	if r.Used != 3 || r.Weights[2] != 0 || r.Weights[3] == 0 {
		t.Errorf("MH: Used = %d, weights %v", r.Used, r.Weights)
	}
	r = StratifiedDiff(strata, WeightInverseVariance, 0.95)
	if r.Used != 2 || r.Weights[2] != 0 || r.Weights[3] != 0 {
		t.Errorf("IV: Used = %d, weights %v", r.Used, r.Weights)
	}
	// The crude comparison still has every user.
	if r.Crude.MeanA != (4+40.25+12.5+3+7.5+0+22+15.75+9+1+0)/(7+24+3+3) {
		t.Errorf("crude mean A = %v", r.Crude.MeanA)
	}
	// Nothing usable, or a bad weighting: NaN, no panic.
	r = StratifiedDiff([]Stratum{{A: zero, B: zero}}, WeightMH, 0.95)
	near(t, "zero variance Diff", r.Diff, 0, 0)
	near(t, "zero variance P", r.P, math.NaN(), 0)
	isNaNCI(t, "zero variance CI", r.CI)
	r = StratifiedDiff(nil, WeightMH, 0.95)
	near(t, "no strata", r.Diff, math.NaN(), 0)
	r = StratifiedDiff(twoStrata(), StratumWeight(42), 0.95)
	near(t, "bad weighting", r.Diff, math.NaN(), 0)
}

// BCG vaccine trials (Colditz et al. 1994, JAMA 271:698-702; R's
// metafor::dat.bcg): tuberculosis cases and non-cases, vaccinated (A) and
// not (B), in 13 trials.
var bcg = [][4]int64{ // tpos, tneg, cpos, cneg
	{4, 119, 11, 128}, {6, 300, 29, 274}, {3, 228, 11, 209},
	{62, 13536, 248, 12619}, {33, 5036, 47, 5761}, {180, 1361, 372, 1079},
	{8, 2537, 10, 619}, {505, 87886, 499, 87892}, {29, 7470, 45, 7232},
	{17, 1699, 65, 1600}, {186, 50448, 141, 27197}, {5, 2493, 3, 2338},
	{27, 16886, 29, 17825},
}

func TestMantelHaenszelRDBCG(t *testing.T) {
	// metafor 3.8-1 (R 4.2.2), rma.mh(measure = "RD", ai = tpos, bi = tneg,
	// ci = cpos, di = cneg, data = dat.bcg), Sato's variance:
	//   estimate -0.003288181832613, se 0.000286656748527374,
	//   zval -11.4707986102026, ci.lb -0.00385001873565201,
	//   ci.ub -0.00272634492957399, pval 1.84944534582781e-30.
	// metafor's test suite (its comparison of rma.mh with Stata's metan,
	// "EE model, measure='RD'") expects -0.0033 [-0.0039, -0.0027], z
	// -11.47, and notes that metan, with Greenland and Robins' variance,
	// prints z = -11.56: by that formula in R, SE 0.000284515921896941,
	// z -11.5571100931359.
	strata := make([]RateStratum, len(bcg))
	for i, r := range bcg {
		strata[i] = RateStratum{XA: r[0], NA: r[0] + r[1], XB: r[2], NB: r[2] + r[3]}
	}
	r := MantelHaenszelRD(strata, 0.95)
	near(t, "RD", r.RD, -0.003288181832613, 1e-15)
	near(t, "SE (Sato)", r.SE, 0.000286656748527374, 1e-16)
	near(t, "z (Sato)", r.RD/r.SE, -11.4707986102026, 1e-10)
	nearCI(t, "CI", r.CI, -0.00385001873565201, -0.00272634492957399, 1e-15)
	near(t, "P", r.P/1.84944534582781e-30, 1, 1e-8)
	near(t, "SE (Greenland-Robins)", r.SEGR, 0.000284515921896941, 1e-16)
	near(t, "z (Greenland-Robins), Stata metan -11.56", r.RD/r.SEGR, -11.56, 0.005)
	// Crude: pooled 2x2 table, by R: -0.00350685575519302.
	near(t, "crude", r.CrudeRD, -0.00350685575519302, 1e-15)
	if !(r.CrudeCI.Lo < r.CrudeRD && r.CrudeRD < r.CrudeCI.Hi) {
		t.Errorf("crude CI %+v does not contain %v", r.CrudeCI, r.CrudeRD)
	}
}

func TestMantelHaenszelRDByHand(t *testing.T) {
	// One stratum: the MH estimate is the plain difference and the
	// Greenland-Robins variance the Wald variance pA(1-pA)/nA +
	// pB(1-pB)/nB. 3/10 vs 1/10: RD 0.2, var 0.021 + 0.009 = 0.03.
	// Sato: N = 20, W = 5, P = (100*1 - 100*3 + 0)/400 = -0.5,
	// Q = (3*9 + 1*7)/40 = 0.85, var = (0.2*(-0.5) + 0.85)/25 = 0.03:
	// with equal group sizes the two agree.
	r := MantelHaenszelRD([]RateStratum{{3, 10, 1, 10}}, 0.95)
	near(t, "RD", r.RD, 0.2, 1e-15)
	near(t, "SE GR", r.SEGR, math.Sqrt(0.03), 1e-15)
	near(t, "SE Sato", r.SE, math.Sqrt(0.03), 1e-15)
	// Empty groups carry no weight; invalid counts give NaN.
	r2 := MantelHaenszelRD([]RateStratum{{3, 10, 1, 10}, {0, 0, 5, 9}, {2, 4, 0, 0}}, 0.95)
	near(t, "RD with empty strata", r2.RD, 0.2, 1e-15)
	near(t, "SE with empty strata", r2.SE, r.SE, 1e-15)
	r = MantelHaenszelRD([]RateStratum{{3, 2, 1, 10}}, 0.95)
	near(t, "invalid", r.RD, math.NaN(), 0)
	r = MantelHaenszelRD([]RateStratum{{0, 5, 0, 7}}, 0.95)
	near(t, "no events: RD", r.RD, 0, 0)
	near(t, "no events: P", r.P, math.NaN(), 0)
	r = MantelHaenszelRD(nil, 0.95)
	near(t, "no strata", r.RD, math.NaN(), 0)
	r = MantelHaenszelRD([]RateStratum{{3, 10, 1, 10}}, 2)
	isNaNCI(t, "bad conf", r.CI)
	near(t, "bad conf crude", r.CrudeRD, 0.2, 1e-15)
}
