package stats

import "math"

// Tolerance is the closed region [Lo, Hi] of parameter values too close to
// "no difference" to matter (the equivalence region), with Null the value
// meaning no difference at all, inside it: 0 for a difference, 1 for a
// ratio. See DiffTolerance and RatioTolerance.
type Tolerance struct{ Lo, Hi, Null float64 }

// DiffTolerance is the region |difference| <= d around a difference of 0.
func DiffTolerance(d float64) Tolerance { return Tolerance{Lo: -d, Hi: d, Null: 0} }

// RatioTolerance is the region lo <= ratio <= hi around a ratio of 1, e.g.
// RatioTolerance(0.8, 1.25) for the four-fifths rule and its reciprocal.
func RatioTolerance(lo, hi float64) Tolerance { return Tolerance{Lo: lo, Hi: hi, Null: 1} }

// Verdict is the decision Judge makes about one comparison.
type Verdict int

const (
	// VerdictInconclusive: the interval reaches into the tolerance region
	// and out of it, the difference is not significant, or the input is
	// invalid. Neither a finding nor a clearance.
	VerdictInconclusive Verdict = iota
	// VerdictMaterial: significant, and the whole interval lies outside
	// the tolerance region: the difference is real and larger than the
	// tolerance allows, whatever value in the interval is the true one.
	VerdictMaterial
	// VerdictImmaterial: the whole interval lies inside the tolerance
	// region: any difference is too small to matter (equivalence shown).
	VerdictImmaterial
)

// String returns "inconclusive", "material" or "immaterial".
func (v Verdict) String() string {
	switch v {
	case VerdictMaterial:
		return "material"
	case VerdictImmaterial:
		return "immaterial"
	}
	return "inconclusive"
}

// Judge decides whether the comparison with estimate est and interval ci
// (the adjusted interval shown in the report, e.g. an FCRInterval's CI, on
// the same scale as t) is material. It is an equivalence-style decision
// with the burden of proof on the finding:
//
//   - VerdictMaterial only when all hold: significant is true (the caller's
//     multiplicity-adjusted decision, e.g. FCRInterval.Selected); est is
//     not t.Null; est and the whole of ci lie strictly outside [t.Lo, t.Hi]
//     (ci.Hi < t.Lo or ci.Lo > t.Hi, and ci contains est). So an estimate of
//     exactly no difference can never be material, whatever its interval,
//     and an interval touching the tolerance bound is not enough.
//   - VerdictImmaterial when the whole of ci lies inside [t.Lo, t.Hi]
//     (t.Lo <= ci.Lo and ci.Hi <= t.Hi), significant or not: the interval
//     rules out every material difference. With a 1-2a interval this is
//     Schuirmann's (1987) two one-sided tests at level a; with a 1-a
//     interval it is the same test at level a/2, more demanding.
//   - VerdictInconclusive otherwise.
//
// Invalid input gives VerdictInconclusive: a NaN anywhere, t.Lo > t.Hi,
// t.Null outside [t.Lo, t.Hi], or ci.Lo > ci.Hi.
func (t Tolerance) Judge(est float64, ci Interval, significant bool) Verdict {
	for _, v := range [...]float64{t.Lo, t.Hi, t.Null, est, ci.Lo, ci.Hi} {
		if math.IsNaN(v) {
			return VerdictInconclusive
		}
	}
	if t.Lo > t.Hi || t.Null < t.Lo || t.Null > t.Hi || ci.Lo > ci.Hi {
		return VerdictInconclusive
	}
	if t.Lo <= ci.Lo && ci.Hi <= t.Hi {
		return VerdictImmaterial
	}
	outside := ci.Hi < t.Lo || ci.Lo > t.Hi
	if significant && outside && est != t.Null && ci.Lo <= est && est <= ci.Hi {
		return VerdictMaterial
	}
	return VerdictInconclusive
}
