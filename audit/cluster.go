package audit

import (
	"math"
	"math/bits"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/recguard/recguard/audit/stats"
)

// User-level inference (issue 13). The unit of an audit's comparisons of
// rates and means is the user, not the event: one heavy user's thousand
// clicks are one witness. Each user's events add up, per metric, to a sum
// of values y and a count n; a group's rate or mean is the ratio of sums
// sum(y) / sum(n) over its users, and its variance is the cluster-robust
// (linearization) variance with the small-sample factor G/(G-1):
//
//	V(mu) = G/(G-1) * sum_u (y_u - mu n_u)^2 / (sum_u n_u)^2
//
// A user in both groups of a comparison (overlapping segments) adds a
// covariance term of the same form. The comparison is a t test with
// min(G_group, G_reference) - 1 degrees of freedom on the difference, and
// the ratio's interval is the delta method on the log scale.

// ysum is one user's sum of values and count of one metric.
type ysum struct{ y, n float64 }

// moments are the sums over a group's users that the cluster-robust
// variance needs.
type moments struct {
	group             int     // the group (or parity mode) they are of; -1 for a mode
	g                 float64 // users with at least one value
	sy, sn            float64
	syy, snn, syn     float64
	cyy, cyn, cny, cn float64 // cross terms with the reference over users in both
	gc                float64 // users in both
}

// add counts one user's sums in the moments.
func (m *moments) add(s ysum) {
	m.g++
	m.sy += s.y
	m.sn += s.n
	m.syy += s.y * s.y
	m.snn += s.n * s.n
	m.syn += s.y * s.n
}

// cross counts the cross terms of one user in both sides: s on this side,
// r on the reference's.
func (m *moments) cross(s, r ysum) {
	m.gc++
	m.cyy += s.y * r.y
	m.cyn += s.y * r.n
	m.cny += s.n * r.y
	m.cn += s.n * r.n
}

// growSums extends per-user sums to length want at once (users arrive in
// number order: grown to the users known so far, not one at a time).
func growSums(s []ysum, want int) []ysum {
	if cap(s) >= want {
		return s[:want]
	}
	grown := zeroed[ysum](max(want, 2*cap(s)))
	copy(grown, s)
	return grown[:want]
}

// userSums records the values of one event of user ui, whose event counted
// in groups mask (plain: the user's usual groups).
func (e *engine) userSums(ui int32, mask, plain uint64, vals *[MaxMetrics]float64, have *[MaxMetrics]bool) {
	nm := len(e.metrics)
	if nm == 0 {
		return
	}
	if mask == plain {
		need := (int(ui) + 1) * nm
		if len(e.umet) < need {
			e.umet = growSums(e.umet, max(need, len(e.ustate)*nm))
		}
		s := e.umet[int(ui)*nm : need]
		for i := range nm {
			if have[i] {
				s[i].y += vals[i]
				s[i].n++
			}
		}
		return
	}
	// The event's attributes put it in other groups than the user's
	// usual ones: kept per (user, group).
	if e.uextra == nil {
		e.uextra = map[uint64][]ysum{}
	}
	for m := mask; m != 0; m &= m - 1 {
		k := uint64(ui)<<6 | uint64(bits.TrailingZeros64(m))
		s := e.uextra[k]
		if s == nil {
			s = make([]ysum, nm)
			e.uextra[k] = s
		}
		for i := range nm {
			if have[i] {
				s[i].y += vals[i]
				s[i].n++
			}
		}
	}
}

// clusterMoments sums, for every group and metric, the moments over the
// group's users, and the cross terms of each group with the reference.
func (e *engine) clusterMoments() [][]moments {
	nm, ng := len(e.metrics), len(e.groups)
	out := make([][]moments, ng)
	for g := range out {
		out[g] = make([]moments, nm)
		for j := range out[g] {
			out[g][j].group = g
		}
	}
	if nm == 0 {
		return out
	}
	refBit := uint64(1) << e.ref
	per := make([]ysum, ng*nm) // this user's totals per group
	for ui := range e.ustate {
		u := &e.ustate[ui]
		if u.seen == 0 {
			continue
		}
		var base []ysum
		if end := (ui + 1) * nm; end <= len(e.umet) {
			base = e.umet[ui*nm : end]
		}
		for m := u.seen; m != 0; m &= m - 1 {
			g := bits.TrailingZeros64(m)
			t := per[g*nm : (g+1)*nm]
			clear(t)
			if base != nil && u.plain&(1<<g) != 0 {
				copy(t, base)
			}
			if e.uextra != nil {
				if x := e.uextra[uint64(ui)<<6|uint64(g)]; x != nil {
					for i := range t {
						t[i].y += x[i].y
						t[i].n += x[i].n
					}
				}
			}
			for i, s := range t {
				if s.n == 0 {
					continue
				}
				out[g][i].add(s)
			}
		}
		if u.seen&refBit == 0 {
			continue
		}
		r := per[e.ref*nm : (e.ref+1)*nm]
		for m := u.seen &^ refBit; m != 0; m &= m - 1 {
			g := bits.TrailingZeros64(m)
			t := per[g*nm : (g+1)*nm]
			for i := range t {
				if t[i].n == 0 || r[i].n == 0 {
					continue
				}
				out[g][i].cross(t[i], r[i])
			}
		}
	}
	return out
}

// clusterCompare is the user-level comparison of a group (moments a, with
// the cross terms against the reference) with the reference (moments b).
// se is the standard error of the difference and df its degrees of
// freedom; ok is false when either group has fewer than two users with a
// value.
type clusterCmp struct {
	diff, ratio      float64
	se, seLog, df, t float64
	p                float64
	usersA, usersRef int64
	ok               bool
}

func clusterCompare(a, b moments) clusterCmp {
	c := clusterCmp{usersA: int64(a.g), usersRef: int64(b.g)}
	if a.g < 2 || b.g < 2 || a.sn == 0 || b.sn == 0 {
		return c
	}
	ma, mb := a.sy/a.sn, b.sy/b.sn
	va := a.g / (a.g - 1) * math.Max(0, a.syy-2*ma*a.syn+ma*ma*a.snn) / (a.sn * a.sn)
	vb := b.g / (b.g - 1) * math.Max(0, b.syy-2*mb*b.syn+mb*mb*b.snn) / (b.sn * b.sn)
	var cov float64
	if a.gc > 0 {
		f := 1.0
		if a.gc > 1 {
			f = a.gc / (a.gc - 1)
		}
		cov = f * (a.cyy - mb*a.cyn - ma*a.cny + ma*mb*a.cn) / (a.sn * b.sn)
	}
	v := math.Max(0, va+vb-2*cov)
	c.diff, c.ratio = ma-mb, ma/mb
	c.se = math.Sqrt(v)
	c.df = math.Min(a.g, b.g) - 1
	if ma > 0 && mb > 0 {
		c.seLog = math.Sqrt(math.Max(0, va/(ma*ma)+vb/(mb*mb)-2*cov/(ma*mb)))
	} else {
		c.seLog = math.NaN()
	}
	c.test()
	return c
}

// test sets the t statistic and its two-sided p-value from diff, se and
// df, and ok.
func (c *clusterCmp) test() {
	switch {
	case c.se > 0:
		c.t = c.diff / c.se
		c.p = 2 * distuv.StudentsT{Mu: 0, Sigma: 1, Nu: c.df}.Survival(math.Abs(c.t))
	case c.diff == 0:
		c.t, c.p = 0, 1
	default:
		// Every user's values agree exactly within each group: no
		// spread to test against; the difference is what it is.
		c.t, c.p = math.Inf(int(math.Copysign(1, c.diff))), 0
	}
	c.ok = true
}

// tCrit is the two-sided critical value of Student's t at level conf.
func tCritical(conf, df float64) float64 {
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile((1 + conf) / 2)
}

// compareUsers compares a group's metric with the reference's: rates and
// means at the user level (clusterCompare), distributions as compare does.
// When either side has fewer than two users with a value it falls back to
// the event-level test (compare), whose name says so.
func (e *engine) compareUsers(m *metricDef, a, b *metricAcc, ma, mb moments) (TestResult, bool) {
	if m.spec.Kind == Distribution {
		return e.compare(m, a, b)
	}
	c := clusterCompare(ma, mb)
	if !c.ok {
		return e.compare(m, a, b)
	}
	test := "cluster_robust_t"
	if j := e.metricIndex(m); j >= 0 && ma.gc == 0 && (effectiveUsers(ma) < minEffectiveUsers || effectiveUsers(mb) < minEffectiveUsers) {
		// Few users carry the data (a small group, or a few heavy users):
		// the t approximation is too lenient there, so the p-value comes
		// from permuting the group labels between users.
		if ua, ub := e.userSumsOf(ma.group, j), e.userSumsOf(mb.group, j); len(ua) >= 2 && len(ub) >= 2 {
			if _, p := stats.PermutationTest(ua, ub, permutations, permutationSeed); !math.IsNaN(p) {
				c.p, test = p, "cluster_permutation"
			}
		}
	}
	t := TestResult{Metric: m.spec.Name, Test: test, Statistic: c.t, P: c.p,
		Difference: c.diff, Ratio: c.ratio, Users: c.usersA, ReferenceUsers: c.usersRef, SE: c.se, DF: c.df}
	t.DifferenceCI, t.RatioCI = c.intervals(e.conf)
	return t, true
}

// intervals are the difference's and the ratio's intervals at level conf.
func (c clusterCmp) intervals(conf float64) (diff, ratio Interval) {
	q := tCritical(conf, c.df)
	diff = Interval{Lo: c.diff - q*c.se, Hi: c.diff + q*c.se}
	ratio = Interval{Lo: math.NaN(), Hi: math.NaN()}
	if !math.IsNaN(c.seLog) && c.ratio > 0 {
		ratio = Interval{Lo: c.ratio * math.Exp(-q*c.seLog), Hi: c.ratio * math.Exp(q*c.seLog)}
	}
	return diff, ratio
}

// parityMoments sums, per mode (0 personalized, 1 non-personalized) and
// parity metric, the moments over the users with events of that mode; the
// non-personalized side carries the cross terms with the personalized side
// over users with events of both.
func (e *engine) parityMoments() [2][]moments {
	np := len(parityMetrics)
	out := [2][]moments{make([]moments, np), make([]moments, np)}
	for k := range out {
		for j := range out[k] {
			out[k][j].group = -1
		}
	}
	for ui := range e.ustate {
		if e.ustate[ui].excluded {
			continue
		}
		base := ui * 2 * np
		if base+2*np > len(e.upar) {
			break
		}
		p, n := e.upar[base:base+np], e.upar[base+np:base+2*np]
		for j := range np {
			for k, s := range [2]ysum{p[j], n[j]} {
				if s.n == 0 {
					continue
				}
				out[k][j].add(s)
			}
			if p[j].n > 0 && n[j].n > 0 {
				out[1][j].cross(n[j], p[j])
			}
		}
	}
	return out
}

// Permutation fallback of compareUsers.
const (
	// minEffectiveUsers is the effective number of users (Kish: (sum n)^2
	// / sum n^2) under which a side is too concentrated for the t
	// approximation.
	minEffectiveUsers = 50
	// permutations and permutationSeed make the permutation p-value
	// (reproducible: the same data give the same report).
	permutations    = 1999
	permutationSeed = 0x5eed46
)

// effectiveUsers is the Kish effective number of users of a side.
func effectiveUsers(m moments) float64 {
	if m.snn == 0 {
		return 0
	}
	return m.sn * m.sn / m.snn
}

// metricIndex is m's index in the spec's metrics, or -1 (a parity metric).
func (e *engine) metricIndex(m *metricDef) int {
	for j := range e.metrics {
		if &e.metrics[j] == m {
			return j
		}
	}
	return -1
}

// userSumsOf returns the per-user sums of metric j of group g's users.
func (e *engine) userSumsOf(g, j int) []stats.UserSum {
	if g < 0 {
		return nil
	}
	nm := len(e.metrics)
	var out []stats.UserSum
	for ui := range e.ustate {
		u := &e.ustate[ui]
		if u.seen&(1<<g) == 0 {
			continue
		}
		var s ysum
		if u.plain&(1<<g) != 0 && (ui+1)*nm <= len(e.umet) {
			s = e.umet[ui*nm+j]
		}
		if e.uextra != nil {
			if x := e.uextra[uint64(ui)<<6|uint64(g)]; x != nil {
				s.y += x[j].y
				s.n += x[j].n
			}
		}
		if s.n > 0 {
			out = append(out, stats.UserSum{Y: s.y, N: s.n})
		}
	}
	return out
}
