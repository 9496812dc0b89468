package stats

import "math"

// UserSum is one user's contribution to a group: Y the sum of the metric
// over the user's events (successes, for a rate) and N the number of
// events (> 0).
type UserSum struct{ Y, N float64 }

// ClusterSummary accumulates, in one pass, the per-user (per-cluster) sums
// of a metric for one group, so that the user, not the event, is the unit
// of inference. Each user contributes Add(y, n): y the sum of the metric
// over the user's events (the number of successes, for a rate) and n the
// number of events (or any positive size, such as an exposure time).
//
// The estimate is the ratio-of-sums mean
//
//	r = sum over users of y / sum over users of n
//
// (for a rate, the pooled event-level rate), and its variance is the
// cluster-robust linearization (delta-method, "sandwich") variance with the
// small-sample factor G/(G-1), G the number of users:
//
//	var(r) = G/(G-1) * sum over users of (y_g - r n_g)^2 / (sum of n)^2
//
// This is the usual variance estimate of a ratio estimator with the users
// as the sampled units (Cochran 1977, "Sampling Techniques", 3rd ed.,
// chapter 6: sum (y - r n)^2 / (G (G-1) mean(n)^2), no finite-population
// correction), the variance R's survey::svyratio(~y, ~n, svydesign(ids = ~user, ...))
// reports and, for the event-level regression of the metric on a constant,
// the one of sandwich::vcovCL(lm(y ~ 1), cluster = ~user, type = "HC0")
// (whose default cadjust applies G/(G-1)); Stata's "vce(cluster user)" uses
// the same factor. When every user has exactly one event (n = 1), r is the
// ordinary mean and var(r) is exactly s^2/G, the iid variance of a mean.
//
// Sums are kept with centered (co)moments updated by Welford's method, so
// summaries of disjoint sets of users merge exactly (Chan, Golub and
// LeVeque's pairwise update) and the residual sum of squares,
// sum (y_g - r n_g)^2 = Syy - 2 r Syn + r^2 Snn in centered moments (the
// centered terms vanish because r = mean(y)/mean(n)), needs no second pass.
// The zero value is an empty summary, ready to use.
//
// A user with n <= 0 (or NaN n) has no events in the group and is ignored.
// Each user must be added once per group: adding the same user twice
// counts two users.
type ClusterSummary struct {
	g          int64
	sy, sn     float64 // raw sums of y and n
	my, mn     float64 // means of y and n over users
	syy, snn   float64 // centered sums of squares
	syn        float64 // centered sum of cross-products
	nonFiniteY bool    // some y was NaN or infinite
}

// Add adds one user whose events sum to y over n events.
func (s *ClusterSummary) Add(y, n float64) {
	if !(n > 0) {
		return
	}
	if math.IsNaN(y) || math.IsInf(y, 0) || math.IsInf(n, 0) {
		s.nonFiniteY = true
	}
	s.g++
	s.sy += y
	s.sn += n
	g := float64(s.g)
	dy, dn := y-s.my, n-s.mn
	s.my += dy / g
	s.mn += dn / g
	s.syy += dy * (y - s.my)
	s.snn += dn * (n - s.mn)
	s.syn += dy * (n - s.mn)
}

// Merge adds every user summarized by o, as if each had been added to s one
// by one. The users of s and o must be distinct.
func (s *ClusterSummary) Merge(o ClusterSummary) {
	if o.g <= 0 {
		return
	}
	if s.g <= 0 {
		*s = o
		return
	}
	na, nb := float64(s.g), float64(o.g)
	nt := na + nb
	dy, dn := o.my-s.my, o.mn-s.mn
	f := na * nb / nt
	s.syy += o.syy + dy*dy*f
	s.snn += o.snn + dn*dn*f
	s.syn += o.syn + dy*dn*f
	s.my += dy * (nb / nt)
	s.mn += dn * (nb / nt)
	s.sy += o.sy
	s.sn += o.sn
	s.g += o.g
	s.nonFiniteY = s.nonFiniteY || o.nonFiniteY
}

// SummarizeUsers returns the ClusterSummary of users, each added once.
func SummarizeUsers(users []UserSum) ClusterSummary {
	var s ClusterSummary
	for _, u := range users {
		s.Add(u.Y, u.N)
	}
	return s
}

// Clusters returns the number of users, G.
func (s ClusterSummary) Clusters() int64 { return s.g }

// SumY returns the sum of y over all users.
func (s ClusterSummary) SumY() float64 { return s.sy }

// SumN returns the sum of n over all users (the number of events).
func (s ClusterSummary) SumN() float64 { return s.sn }

// Mean returns the ratio-of-sums mean SumY/SumN, or NaN for an empty
// summary.
func (s ClusterSummary) Mean() float64 {
	if s.g <= 0 {
		return nan
	}
	return s.sy / s.sn
}

// Variance returns the cluster-robust variance of Mean (see the type's
// comment), or NaN with fewer than two users or a non-finite input.
func (s ClusterSummary) Variance() float64 {
	if s.g < 2 || s.nonFiniteY {
		return nan
	}
	r := s.sy / s.sn
	q := s.syy - 2*r*s.syn + r*r*s.snn
	// q is a difference of terms of size up to syy + r^2 snn; anything below
	// their rounding noise (e.g. every user with the same rate) is zero.
	if q <= 8*epsilon*(s.syy+math.Abs(2*r*s.syn)+r*r*s.snn) {
		q = 0
	}
	g := float64(s.g)
	return g / (g - 1) * q / (s.sn * s.sn)
}

// SE returns the cluster-robust standard error of Mean, the square root of
// Variance.
func (s ClusterSummary) SE() float64 { return math.Sqrt(s.Variance()) }

// epsilon is the spacing of float64 at 1.
const epsilon = 0x1p-52

// ClusterMeanCI returns the ratio-of-sums mean of s and its cluster-robust
// confidence interval, mean ± t(G-1) * SE with Student's t on G-1 degrees
// of freedom, G the number of users.
//
// Why t on G-1 degrees of freedom: the variance is estimated from G user
// residuals that sum to zero, so it has G-1 degrees of freedom; with few
// users the normal quantile gives intervals that are too short (Cameron
// and Miller 2015, "A practitioner's guide to cluster-robust inference",
// J. Human Resources 50:317-372, section VI; Stata's default). With one
// event per user the interval is exactly the one-sample t interval of
// MeanCI (R's t.test), and with many users t(G-1) is the normal.
//
// With fewer than two users, a non-finite input or an invalid conf the
// interval is NaN. Users that all have the same rate y/n give the
// zero-width interval [mean, mean].
func ClusterMeanCI(s ClusterSummary, conf float64) (mean float64, ci Interval) {
	mean = s.Mean()
	v := s.Variance()
	if !validConf(conf) || math.IsNaN(v) {
		return mean, nanInterval
	}
	if v == 0 {
		return mean, Interval{Lo: mean, Hi: mean}
	}
	w := tCrit(conf, float64(s.g-1)) * math.Sqrt(v)
	return mean, Interval{Lo: mean - w, Hi: mean + w}
}

// GroupComparison compares the ratio-of-sums means of two groups of users,
// A and B, with cluster-robust variances (see ClusterSummary). Every
// interval and p-value uses Student's t with Welch-Satterthwaite degrees of
// freedom (see CompareClustered for why).
type GroupComparison struct {
	MeanA, MeanB float64 // ratio-of-sums means of A and B
	SEA, SEB     float64 // their cluster-robust standard errors

	Diff   float64  // MeanA - MeanB
	DiffSE float64  // sqrt(SEA^2 + SEB^2)
	DiffDF float64  // Welch-Satterthwaite degrees of freedom of DiffSE
	DiffCI Interval // Diff ± t(DiffDF) DiffSE
	DiffP  float64  // two-sided p-value of MeanA = MeanB on this scale

	Ratio      float64  // MeanA / MeanB
	LogRatioSE float64  // delta-method SE of log(Ratio)
	RatioDF    float64  // Welch-Satterthwaite degrees of freedom of LogRatioSE
	RatioCI    Interval // exp(log(Ratio) ± t(RatioDF) LogRatioSE)
	RatioP     float64  // two-sided p-value of log(Ratio) = 0
}

// satterthwaite returns the Welch-Satterthwaite degrees of freedom of a sum
// of independent variance estimates v[i], each on df[i] degrees of freedom:
// (sum v)^2 / sum(v^2/df). Components with v == 0 carry no weight; if all
// are zero the result is NaN.
func satterthwaite(v, df []float64) float64 {
	var s, d float64
	for i := range v {
		if v[i] == 0 {
			continue
		}
		s += v[i]
		d += v[i] * v[i] / df[i]
	}
	if !(d > 0) {
		return nan
	}
	return s * s / d
}

// CompareClustered compares the ratio-of-sums means of the users in a and b
// (independent groups: no user in both) and returns the difference and the
// ratio with conf-level intervals and two-sided p-values; see
// GroupComparison.
//
// The difference has variance SEA^2 + SEB^2. The ratio is handled on the
// log scale by the delta method, var(log ratio) = SEA^2/MeanA^2 +
// SEB^2/MeanB^2, and its interval is exponentiated, so it is asymmetric and
// stays positive. The two p-values test the same hypothesis on different
// scales and can differ slightly; report the one matching the interval
// shown.
//
// Reference distribution: Student's t with Welch-Satterthwaite degrees of
// freedom, computed from the two groups' cluster-robust variance components,
// each on G-1 degrees of freedom (G its number of users): the two-group
// analogue of the G-1 of ClusterMeanCI. It lies between min(G_A, G_B) - 1
// and G_A + G_B - 2, tends to the normal when both groups have many users,
// and keeps intervals honest when one group has few. With one event per
// user every number equals Welch's two-sample t test (R's t.test(a, b)):
// the cluster-robust variance of each mean is then s^2/G. With very few
// users the linearization variance is still somewhat small (in this
// package's simulation, 6 heterogeneous users per group give 92% coverage
// for a 95% interval, against 88% with the normal quantile); PermutationTest
// needs no variance and is the check to run then.
//
// Degenerate cases: with fewer than two users in either group (or a
// non-finite input) the variances, intervals and p-values are NaN; the
// means, Diff and Ratio are still reported when defined. When both
// variances are zero (every user of both groups has the same rate within
// its group) there is nothing to test against, as in Welch's test: the SEs
// are 0 and the degrees of freedom, intervals and p-values are NaN. The
// ratio's interval and p-value are also NaN when either mean is <= 0 (the
// log is undefined: use the difference, or RatioCI on user-level counts).
// An invalid conf gives NaN intervals; the p-values do not depend on conf.
func CompareClustered(a, b ClusterSummary, conf float64) GroupComparison {
	c := GroupComparison{
		MeanA: a.Mean(), MeanB: b.Mean(),
		SEA: a.SE(), SEB: b.SE(),
		DiffCI: nanInterval, RatioCI: nanInterval,
		DiffDF: nan, DiffP: nan, RatioDF: nan, RatioP: nan,
	}
	c.Diff = c.MeanA - c.MeanB
	c.Ratio = c.MeanA / c.MeanB
	va, vb := a.Variance(), b.Variance()
	c.DiffSE = math.Sqrt(va + vb)
	c.LogRatioSE = nan
	if math.IsNaN(va) || math.IsNaN(vb) {
		return c
	}
	dfs := []float64{float64(a.g - 1), float64(b.g - 1)}

	if va+vb > 0 {
		c.DiffDF = satterthwaite([]float64{va, vb}, dfs)
		c.DiffP = tTwoSided(c.Diff/c.DiffSE, c.DiffDF)
		if validConf(conf) {
			w := tCrit(conf, c.DiffDF) * c.DiffSE
			c.DiffCI = Interval{Lo: c.Diff - w, Hi: c.Diff + w}
		}
	}

	if c.MeanA > 0 && c.MeanB > 0 {
		la := va / (c.MeanA * c.MeanA)
		lb := vb / (c.MeanB * c.MeanB)
		c.LogRatioSE = math.Sqrt(la + lb)
		if la+lb > 0 {
			c.RatioDF = satterthwaite([]float64{la, lb}, dfs)
			lr := math.Log(c.Ratio)
			c.RatioP = tTwoSided(lr/c.LogRatioSE, c.RatioDF)
			if validConf(conf) {
				w := tCrit(conf, c.RatioDF) * c.LogRatioSE
				c.RatioCI = Interval{Lo: math.Exp(lr - w), Hi: math.Exp(lr + w)}
			}
		}
	}
	return c
}
