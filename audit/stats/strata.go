package stats

import "math"

// Stratum holds the per-user sums of the two groups compared within one
// stratum (a region, an age band, a device type...). A user belongs to one
// stratum and one group.
type Stratum struct{ A, B ClusterSummary }

// StratumWeight chooses how StratifiedDiff weighs the strata.
type StratumWeight int

const (
	// WeightMH weighs stratum k by nA nB / (nA + nB), with nA and nB the
	// two groups' numbers of events (SumN): the Mantel-Haenszel weight of
	// a risk difference (Greenland and Robins 1985). With one event per
	// user and a 0/1 metric the pooled estimate is exactly the
	// Mantel-Haenszel risk difference of MantelHaenszelRD. Efficient when
	// the difference is common to the strata; robust to sparse strata.
	WeightMH StratumWeight = iota
	// WeightSize weighs stratum k by nA + nB, its number of events: direct
	// standardization of both groups to the combined stratum composition,
	// the estimand "the difference if both groups had the same mix of
	// strata as the data as a whole".
	WeightSize
	// WeightInverseVariance weighs stratum k by 1 / (SEA^2 + SEB^2), the
	// most efficient fixed-effect pooling when the difference is common to
	// the strata. Strata whose variance is zero (for a rate: every user of
	// both groups at the same rate, e.g. no successes at all) would get an
	// infinite weight and are left out; prefer WeightMH for rare events.
	WeightInverseVariance
)

// StratifiedComparison is the result of StratifiedDiff: the crude
// comparison, which ignores the strata, and the adjusted (pooled) difference
// of means across strata.
type StratifiedComparison struct {
	// Crude compares the groups with all strata merged (the users of every
	// stratum in one summary per group): confounded by the strata when
	// the groups' mix of strata differs.
	Crude GroupComparison

	Diff float64  // adjusted difference: sum w_k d_k / sum w_k
	SE   float64  // its cluster-robust standard error
	DF   float64  // Welch-Satterthwaite degrees of freedom of SE
	CI   Interval // Diff ± t(DF) SE
	P    float64  // two-sided p-value of Diff = 0

	// Weights holds each stratum's normalized weight w_k / sum w, in the
	// order given; 0 for a stratum left out.
	Weights []float64
	// Used is the number of strata that entered the adjusted estimate.
	Used int
}

// StratifiedDiff pools the within-stratum differences of the ratio-of-sums
// means, d_k = MeanA_k - MeanB_k, into
//
//	Diff = sum_k w_k d_k / sum_k w_k
//
// with the weights w chosen by weight (see StratumWeight), and reports it
// with the crude difference (strata merged) beside it. Strata are
// independent and the weights are treated as fixed, so
//
//	var(Diff) = sum_k w_k^2 (SEA_k^2 + SEB_k^2) / (sum_k w_k)^2
//
// with the cluster-robust variances of ClusterSummary: the user remains the
// unit of inference inside every stratum. Intervals and the p-value use
// Student's t with Welch-Satterthwaite degrees of freedom over the 2K
// variance components, each on G-1 degrees of freedom, as CompareClustered
// does for one stratum (and with one stratum StratifiedDiff reproduces its
// difference, SE, DF, interval and p-value).
//
// A stratum enters the adjusted estimate only when both groups have at
// least two users there (a group with one user has no cluster-robust
// variance) and, for WeightInverseVariance, a positive variance; the others
// get weight 0 and are counted out of Used. They still count in Crude.
// When no stratum is usable, or the pooled variance is zero, the adjusted
// SE, DF, CI and P are NaN (Diff too when no stratum is usable). An invalid
// conf gives NaN intervals.
func StratifiedDiff(strata []Stratum, weight StratumWeight, conf float64) StratifiedComparison {
	var ma, mb ClusterSummary
	for _, s := range strata {
		ma.Merge(s.A)
		mb.Merge(s.B)
	}
	out := StratifiedComparison{
		Crude:   CompareClustered(ma, mb, conf),
		Diff:    nan,
		SE:      nan,
		DF:      nan,
		CI:      nanInterval,
		P:       nan,
		Weights: make([]float64, len(strata)),
	}
	w := make([]float64, len(strata))
	var sw float64
	for k, s := range strata {
		va, vb := s.A.Variance(), s.B.Variance()
		if math.IsNaN(va) || math.IsNaN(vb) {
			continue
		}
		switch weight {
		case WeightMH:
			w[k] = s.A.sn * s.B.sn / (s.A.sn + s.B.sn)
		case WeightSize:
			w[k] = s.A.sn + s.B.sn
		case WeightInverseVariance:
			if va+vb > 0 {
				w[k] = 1 / (va + vb)
			}
		default:
			return out
		}
		if w[k] > 0 && !math.IsInf(w[k], 0) {
			sw += w[k]
			out.Used++
		} else {
			w[k] = 0
		}
	}
	if out.Used == 0 {
		return out
	}
	var diff float64
	v := make([]float64, 0, 2*out.Used)
	df := make([]float64, 0, 2*out.Used)
	for k, s := range strata {
		if w[k] == 0 {
			continue
		}
		f := w[k] / sw
		out.Weights[k] = f
		diff += f * (s.A.Mean() - s.B.Mean())
		v = append(v, f*f*s.A.Variance(), f*f*s.B.Variance())
		df = append(df, float64(s.A.g-1), float64(s.B.g-1))
	}
	out.Diff = diff
	var tv float64
	for _, x := range v {
		tv += x
	}
	if !(tv > 0) {
		out.SE = math.Sqrt(tv)
		return out
	}
	out.SE = math.Sqrt(tv)
	out.DF = satterthwaite(v, df)
	out.P = tTwoSided(diff/out.SE, out.DF)
	if validConf(conf) {
		h := tCrit(conf, out.DF) * out.SE
		out.CI = Interval{Lo: diff - h, Hi: diff + h}
	}
	return out
}

// RateStratum is one stratum's 2x2 table: XA successes out of NA trials in
// group A, XB out of NB in group B.
type RateStratum struct{ XA, NA, XB, NB int64 }

// MHRiskDifference is the result of MantelHaenszelRD.
type MHRiskDifference struct {
	RD   float64  // Mantel-Haenszel risk difference, pA - pB adjusted
	SE   float64  // its standard error, Sato's (1989) variance
	SEGR float64  // its standard error, Greenland and Robins' (1985) variance
	CI   Interval // RD ± z SE (Sato)
	P    float64  // two-sided p-value of RD / SE against the normal

	CrudeRD float64  // pooled-table difference XA/NA - XB/NB, strata ignored
	CrudeCI Interval // its Newcombe hybrid score interval (NewcombeDiff)
}

// MantelHaenszelRD returns the Mantel-Haenszel estimate of a risk
// difference common to the strata (Greenland and Robins 1985, "Estimation
// of a common effect parameter from sparse follow-up data", Biometrics
// 41:55-68),
//
//	RD = sum_k (XA_k NB_k - XB_k NA_k) / N_k  /  sum_k NA_k NB_k / N_k
//
// (N_k = NA_k + NB_k), with two standard errors:
//
//   - SE, from the variance of Sato (1989, "On the variance estimator for
//     the Mantel-Haenszel risk difference", Biometrics 45:1323-1324), which
//     is consistent both for many sparse strata and for few large ones;
//     it is the one metafor's rma.mh(measure = "RD") uses, and the one CI
//     and P are built from:
//     var = (RD P + Q) / W^2, W = sum NA NB / N,
//     P = sum (NA^2 XB - NB^2 XA + NA NB (NB - NA)/2) / N^2,
//     Q = sum (XA (NB - XB) + XB (NA - XA)) / (2 N);
//   - SEGR, from Greenland and Robins' (1985) variance,
//     sum (XA (NA-XA) NB^3 + XB (NB-XB) NA^3) / (NA NB N^2) / W^2,
//     consistent for few large strata only; Stata's metan reports it (on
//     the BCG vaccine trials, z = -11.56 against Sato's -11.47).
//
// The interval and p-value are large-sample normal ones, as in those tools.
// The crude difference of the pooled table is reported beside them.
//
// The trials must be independent: use this with users as trials (a 0/1
// outcome per user, e.g. "was shown at least one item of category c"). For
// a rate over events, several per user, use StratifiedDiff with WeightMH,
// which gives the same point estimate weighted by event counts with a
// cluster-robust variance.
//
// Strata with an empty group carry no weight. If no stratum has both groups
// non-empty, or any count is invalid (negative, X > N), everything is NaN.
// A variance of zero (every trial a success, or every one a failure) gives
// SE 0 and a NaN interval and p-value. An invalid conf gives a NaN CI.
func MantelHaenszelRD(strata []RateStratum, conf float64) MHRiskDifference {
	out := MHRiskDifference{
		RD: nan, SE: nan, SEGR: nan, CI: nanInterval, P: nan,
		CrudeRD: nan, CrudeCI: nanInterval,
	}
	var num, w, p, q, gr float64
	var xa, na, xb, nb int64
	for _, s := range strata {
		if !validCounts(s.XA, s.NA) || !validCounts(s.XB, s.NB) {
			return out
		}
		xa += s.XA
		na += s.NA
		xb += s.XB
		nb += s.NB
		if s.NA == 0 || s.NB == 0 {
			continue
		}
		a, n1 := float64(s.XA), float64(s.NA)
		c, n0 := float64(s.XB), float64(s.NB)
		n := n1 + n0
		num += (a*n0 - c*n1) / n
		w += n1 * n0 / n
		p += (n1*n1*c - n0*n0*a + n1*n0*(n0-n1)/2) / (n * n)
		q += (a*(n0-c) + c*(n1-a)) / (2 * n)
		gr += (a*(n1-a)*n0*n0*n0 + c*(n0-c)*n1*n1*n1) / (n1 * n0 * n * n)
	}
	if validConf(conf) {
		out.CrudeRD, out.CrudeCI = NewcombeDiff(xa, na, xb, nb, conf)
	} else if na > 0 && nb > 0 {
		out.CrudeRD = float64(xa)/float64(na) - float64(xb)/float64(nb)
	}
	if !(w > 0) {
		return out
	}
	out.RD = num / w
	v := (out.RD*p + q) / (w * w)
	out.SE = math.Sqrt(max(v, 0))
	out.SEGR = math.Sqrt(gr / (w * w))
	if !(out.SE > 0) {
		return out
	}
	out.P = normTwoSided(out.RD / out.SE)
	if validConf(conf) {
		h := zCrit(conf) * out.SE
		out.CI = Interval{Lo: out.RD - h, Hi: out.RD + h}
	}
	return out
}
