package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

// summaryOfUsers builds a ClusterSummary from parallel slices of per-user
// sums y and event counts n.
func summaryOfUsers(y, n []float64) ClusterSummary {
	var s ClusterSummary
	for i := range y {
		s.Add(y[i], n[i])
	}
	return s
}

// The small example used by several tests: clicks (y) out of impressions
// (n) per user.
var (
	smallAY, smallAN = []float64{1, 0, 3}, []float64{2, 1, 4}
	smallBY, smallBN = []float64{2, 1, 0, 1}, []float64{2, 3, 2, 1}
)

func TestClusterSummaryByHand(t *testing.T) {
	// Group A: r = 4/7; residuals y - r n = -1/7, -4/7, 5/7 (they sum to
	// 0); sum of squares 42/49 = 6/7; var = 3/2 * 6/7 / 7^2 = 9/343,
	// SE = 3/sqrt(343) = 0.161984774146812.
	// Group B: r = 4/8; residuals 1, -1/2, -1, 1/2; sum of squares 5/2;
	// var = 4/3 * 5/2 / 8^2 = 5/96, SE = 0.228217732293819.
	// R 4.2.2 gives the same SEs both from
	//   survey::svyratio(~y, ~n, svydesign(ids = ~id, data = users))
	// and from the event-level regression
	//   sandwich::vcovCL(lm(y ~ 1, events), cluster = ~id, type = "HC0").
	a := summaryOfUsers(smallAY, smallAN)
	b := summaryOfUsers(smallBY, smallBN)
	near(t, "A mean", a.Mean(), 4.0/7, 1e-15)
	near(t, "A var", a.Variance(), 9.0/343, 1e-15)
	near(t, "A SE (R survey/sandwich)", a.SE(), 0.161984774146812, 1e-14)
	near(t, "B mean", b.Mean(), 0.5, 1e-15)
	near(t, "B var", b.Variance(), 5.0/96, 1e-15)
	near(t, "B SE (R survey/sandwich)", b.SE(), 0.228217732293819, 1e-14)
	if a.Clusters() != 3 || a.SumY() != 4 || a.SumN() != 7 {
		t.Errorf("A totals = %d, %v, %v", a.Clusters(), a.SumY(), a.SumN())
	}

	// One group: 4/7 ± qt(0.975, 2) * 3/sqrt(343), by R:
	// [-0.125535659232058, 1.2683928020892].
	m, ci := ClusterMeanCI(a, 0.95)
	near(t, "mean", m, 4.0/7, 1e-15)
	nearCI(t, "ClusterMeanCI", ci, -0.125535659232058, 1.2683928020892, 1e-12)

	// Two groups. Computed in R from the SEs above with qt/pt:
	//   df = (va+vb)^2 / (va^2/2 + vb^2/3) = 4.91353738479658
	//   diff = 1/14, se = 0.279861394959589, p = 0.808884940411963,
	//   95% CI [-0.651802392522322, 0.794659535379465];
	//   log scale: se = 0.53729924268556, df = 4.70960206890798,
	//   p = 0.814199683117629, ratio 8/7 in [0.279807589931101,
	//   4.66793073519273].
	c := CompareClustered(a, b, 0.95)
	near(t, "Diff", c.Diff, 1.0/14, 1e-15)
	near(t, "DiffSE", c.DiffSE, 0.279861394959589, 1e-14)
	near(t, "DiffDF", c.DiffDF, 4.91353738479658, 1e-12)
	near(t, "DiffP", c.DiffP, 0.808884940411963, 1e-12)
	nearCI(t, "DiffCI", c.DiffCI, -0.651802392522322, 0.794659535379465, 1e-11)
	near(t, "Ratio", c.Ratio, 8.0/7, 1e-15)
	near(t, "LogRatioSE", c.LogRatioSE, 0.53729924268556, 1e-13)
	near(t, "RatioDF", c.RatioDF, 4.70960206890798, 1e-12)
	near(t, "RatioP", c.RatioP, 0.814199683117629, 1e-12)
	nearCI(t, "RatioCI", c.RatioCI, 0.279807589931101, 4.66793073519273, 1e-11)
	near(t, "SEA", c.SEA, a.SE(), 0)
	near(t, "SEB", c.SEB, b.SE(), 0)
}

func TestClusterSummaryMetric(t *testing.T) {
	// A non-binary metric (seconds of dwell per user over n views).
	// R 4.2.2, survey::svyratio(~y, ~n, svydesign(ids = ~id, ...)):
	// A: 4.58333333333333, SE 0.711651890110897 (sandwich::vcovCL on the
	// event-level lm gives the same); B: 4.27941176470588,
	// SE 0.638523634334727.
	a := summaryOfUsers(metricAY, metricAN)
	b := summaryOfUsers(metricBY, metricBN)
	near(t, "A mean", a.Mean(), 4.58333333333333, 1e-13)
	near(t, "A SE", a.SE(), 0.711651890110897, 1e-13)
	near(t, "B mean", b.Mean(), 4.27941176470588, 1e-13)
	near(t, "B SE", b.SE(), 0.638523634334727, 1e-13)
}

var (
	metricAY = []float64{12.5, 3.0, 40.25, 7.5, 0.0, 22.0, 15.75, 9.0}
	metricAN = []float64{3, 1, 6, 2, 1, 4, 5, 2}
	metricBY = []float64{5.5, 30.0, 2.25, 18.0, 11.0, 6.0}
	metricBN = []float64{2, 5, 1, 4, 3, 2}
)

func TestClusterSingletonsAreWelch(t *testing.T) {
	// With one event per user the ratio-of-sums mean is the plain mean and
	// the cluster-robust variance is s^2/G, so CompareClustered is Welch's
	// test. R's t.test(extra ~ group, data = sleep) prints t = -1.8608,
	// df = 17.776, p-value = 0.07939, 95% CI -3.3654832 0.2054832 (to more
	// digits: df 17.7764735161785, p 0.0793941401873582, CI
	// -3.36548323071171 0.20548323071171).
	var a, b ClusterSummary
	for i := range sleep1 {
		a.Add(sleep1[i], 1)
		b.Add(sleep2[i], 1)
	}
	c := CompareClustered(a, b, 0.95)
	near(t, "t", c.Diff/c.DiffSE, -1.8608135, 1e-7)
	near(t, "df", c.DiffDF, 17.7764735161785, 1e-10)
	near(t, "p", c.DiffP, 0.0793941401873582, 1e-12)
	nearCI(t, "CI", c.DiffCI, -3.36548323071171, 0.20548323071171, 1e-11)
	// And the same as this package's Welch functions.
	wt, wdf, wp := Welch(summaryOf(sleep1...), summaryOf(sleep2...))
	near(t, "t vs Welch", c.Diff/c.DiffSE, wt, 1e-12)
	near(t, "df vs Welch", c.DiffDF, wdf, 1e-9)
	near(t, "p vs Welch", c.DiffP, wp, 1e-12)

	// One group: R's t.test(sleep$extra[1:10]) interval
	// [-0.529780413526232, 2.029780413526232], and MeanCI.
	_, ci := ClusterMeanCI(a, 0.95)
	nearCI(t, "one group", ci, -0.529780413526232, 2.029780413526232, 1e-12)
	mci := MeanCI(summaryOf(sleep1...), 0.95)
	nearCI(t, "vs MeanCI", ci, mci.Lo, mci.Hi, 1e-12)

	// Property on random data: the SE of singletons is the iid SE s/sqrt(G).
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		var cs ClusterSummary
		var s Summary
		for range 2 + rng.IntN(40) {
			x := rng.NormFloat64()*3 + 10
			cs.Add(x, 1)
			s.Add(x)
		}
		near(t, "singleton SE", cs.SE(), s.SD()/math.Sqrt(float64(s.N())), 1e-12)
		near(t, "singleton mean", cs.Mean(), s.Mean(), 1e-12)
	}
}

func TestClusterSummaryMerge(t *testing.T) {
	// Merging summaries of disjoint users equals adding them one by one.
	rng := rand.New(rand.NewPCG(3, 4))
	var all ClusterSummary
	parts := make([]ClusterSummary, 4)
	for i := range 500 {
		n := float64(1 + rng.IntN(30))
		y := math.Floor(n * rng.Float64())
		all.Add(y, n)
		parts[i%4].Add(y, n)
	}
	var m ClusterSummary
	m.Merge(ClusterSummary{}) // empty merges are no-ops
	for _, p := range parts {
		m.Merge(p)
	}
	if m.Clusters() != all.Clusters() {
		t.Fatalf("clusters %d vs %d", m.Clusters(), all.Clusters())
	}
	near(t, "merged mean", m.Mean(), all.Mean(), 1e-14)
	near(t, "merged var", m.Variance(), all.Variance(), 1e-12*all.Variance())

	// Users with no events are ignored.
	before := all
	all.Add(5, 0)
	all.Add(5, -1)
	all.Add(5, math.NaN())
	if all != before {
		t.Error("a user with n <= 0 or NaN changed the summary")
	}
}

func TestClusterDegenerate(t *testing.T) {
	var empty, one ClusterSummary
	one.Add(1, 2)
	near(t, "empty mean", empty.Mean(), math.NaN(), 0)
	near(t, "one user variance", one.Variance(), math.NaN(), 0)
	_, ci := ClusterMeanCI(one, 0.95)
	isNaNCI(t, "one user CI", ci)
	_, ci = ClusterMeanCI(summaryOfUsers(smallAY, smallAN), 1)
	isNaNCI(t, "bad conf", ci)

	// Every user at the same rate: zero variance, zero-width interval for
	// one group, and no test for two (as Welch's test).
	same := summaryOfUsers([]float64{1, 2, 3}, []float64{2, 4, 6})
	near(t, "same-rate variance", same.Variance(), 0, 0)
	m, ci := ClusterMeanCI(same, 0.95)
	nearCI(t, "same-rate CI", ci, m, m, 0)
	// Rates of 1/3 are not exact in binary: the residuals are rounding
	// noise and must still give exactly 0.
	third := summaryOfUsers([]float64{1, 2, 3, 7}, []float64{3, 6, 9, 21})
	near(t, "1/3 variance", third.Variance(), 0, 0)
	same2 := summaryOfUsers([]float64{0, 0}, []float64{5, 1})
	c := CompareClustered(same, same2, 0.95)
	near(t, "diff", c.Diff, 0.5, 0)
	near(t, "DiffSE", c.DiffSE, 0, 0)
	near(t, "DiffP", c.DiffP, math.NaN(), 0)
	isNaNCI(t, "DiffCI", c.DiffCI)
	// Mean 0 in B: no log ratio.
	c = CompareClustered(summaryOfUsers(smallAY, smallAN), summaryOfUsers([]float64{0, 0, 0}, []float64{1, 2, 3}), 0.95)
	near(t, "ratio with B = 0", c.Ratio, math.Inf(1), 0)
	isNaNCI(t, "RatioCI with B = 0", c.RatioCI)
	near(t, "RatioP with B = 0", c.RatioP, math.NaN(), 0)
	if math.IsNaN(c.DiffP) {
		t.Error("difference should still be tested when B's mean is 0")
	}
	// One user in a group: nothing but the means.
	c = CompareClustered(one, summaryOfUsers(smallBY, smallBN), 0.95)
	near(t, "Diff with one user", c.Diff, 0, 0)
	near(t, "DiffP with one user", c.DiffP, math.NaN(), 0)
	// Non-finite input.
	var inf ClusterSummary
	inf.Add(math.Inf(1), 1)
	inf.Add(1, 1)
	near(t, "inf variance", inf.Variance(), math.NaN(), 0)
	CompareClustered(inf, inf, 0.95)
	CompareClustered(empty, empty, math.NaN())
}

// clusteredRates simulates one group of users with heterogeneous click
// propensities (uniform on [0.05, 0.55], mean 0.3) and 1 to 40 impressions
// each: strongly clustered events.
func clusteredRates(rng *rand.Rand, users int) []UserSum {
	out := make([]UserSum, users)
	for i := range out {
		p := 0.05 + 0.5*rng.Float64()
		n := 1 + rng.IntN(40)
		y := 0
		for range n {
			if rng.Float64() < p {
				y++
			}
		}
		out[i] = UserSum{Y: float64(y), N: float64(n)}
	}
	return out
}

func TestClusterCoverageSimulation(t *testing.T) {
	// Two groups of 60 users with the same true rate 0.3: the 95%
	// cluster-robust intervals of the difference and of the ratio must
	// cover 0 (resp. 1) about 95% of the time. Binomial SE over 1000
	// replicates is 0.007, so [0.93, 0.97] is a 3-SE band. The event-level
	// iid interval (Newcombe's, treating every impression as independent)
	// must undercover badly: that is the bug this package fixes.
	rng := rand.New(rand.NewPCG(20240601, 7))
	const reps = 1000
	var covDiff, covRatio, covIID int
	for range reps {
		a := SummarizeUsers(clusteredRates(rng, 60))
		b := SummarizeUsers(clusteredRates(rng, 60))
		c := CompareClustered(a, b, 0.95)
		if c.DiffCI.Lo <= 0 && 0 <= c.DiffCI.Hi {
			covDiff++
		}
		if c.RatioCI.Lo <= 1 && 1 <= c.RatioCI.Hi {
			covRatio++
		}
		_, iid := NewcombeDiff(int64(a.SumY()), int64(a.SumN()), int64(b.SumY()), int64(b.SumN()), 0.95)
		if iid.Lo <= 0 && 0 <= iid.Hi {
			covIID++
		}
	}
	fd, fr, fi := float64(covDiff)/reps, float64(covRatio)/reps, float64(covIID)/reps
	t.Logf("coverage: cluster diff %.3f, cluster ratio %.3f, event-level iid %.3f", fd, fr, fi)
	if fd < 0.93 || fd > 0.97 {
		t.Errorf("cluster-robust difference coverage %.3f, want about 0.95", fd)
	}
	if fr < 0.93 || fr > 0.97 {
		t.Errorf("cluster-robust ratio coverage %.3f, want about 0.95", fr)
	}
	if fi > 0.85 {
		t.Errorf("event-level iid coverage %.3f: the simulation is not clustered enough to show the problem", fi)
	}
}

func TestClusterFewUsersCoverage(t *testing.T) {
	// With few users the t reference matters: 6 users per group. The
	// t(Satterthwaite) interval should stay near nominal (HC0 with G/(G-1)
	// is still slightly liberal, so the band is [0.91, 0.97]); the normal
	// quantile on the same SE covers visibly less.
	rng := rand.New(rand.NewPCG(99, 100))
	const reps = 2000
	var covT, covZ int
	z := zCrit(0.95)
	for range reps {
		a := SummarizeUsers(clusteredRates(rng, 6))
		b := SummarizeUsers(clusteredRates(rng, 6))
		c := CompareClustered(a, b, 0.95)
		if c.DiffCI.Lo <= 0 && 0 <= c.DiffCI.Hi {
			covT++
		}
		if math.Abs(c.Diff) <= z*c.DiffSE {
			covZ++
		}
	}
	ft, fz := float64(covT)/reps, float64(covZ)/reps
	t.Logf("coverage with 6 users per group: t %.3f, normal %.3f", ft, fz)
	if ft < 0.91 || ft > 0.97 {
		t.Errorf("t coverage %.3f, want about 0.95", ft)
	}
	if fz >= ft {
		t.Errorf("normal coverage %.3f not below t coverage %.3f", fz, ft)
	}
}
