package audit

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
)

// The stratified comparisons' computation (see stratify.go for the
// method). One pass compares several metrics at once over the same
// observations (each event visited once per pass, not once per metric),
// and keeps figures only for the (stratum, side) pairs that occur and can
// be compared: a stratum without the reference, or without a side compared
// with it, takes no memory. Memory: O(pairs x metrics + users x sides x
// metrics when the observations do not come grouped by user).

// stratObs yields a pass's observations: the user, the stratum, the sides
// the observation is on, and the values of the pass's metrics (vals[j]
// where have holds bit j).
type stratObs func(f func(user, stratum int32, sides uint64, vals []float64, have uint64))

// stratPass describes the comparisons of one pass: sides numbered 0 to
// n-1, side ref the reference, active the sides compared with it; metrics
// ms (their values from pctVals[j], else their fields; pct[j]: a
// distribution's within-stratum percentiles); member gives an event's
// sides, stratum its stratum (nStrata of them). With obs set, the
// observations are obs's instead of the kept events'.
type stratPass struct {
	ms []*metricDef
	// pctVals[j], when set, are metric j's values by kept event: its
	// percentiles within strata (NaN: no value).
	pctVals [][]float32
	pct     []bool
	// present, when set, gives the sides present in each stratum (else a
	// scan of the observations finds them).
	present []uint64
	obs     stratObs
	n, ref  int
	active  []bool
	member  func(ev *stratEvent, mask uint64) uint64
	stratum func(ev *stratEvent) int32
	nStrata int
}

func (p *stratPass) metrics() int {
	if p.obs != nil && len(p.ms) == 0 {
		return 1
	}
	return len(p.ms)
}

// observations are the pass's observations: p.obs, or the kept events'.
func (e *engine) observations(p *stratPass) stratObs {
	if p.obs != nil {
		return p.obs
	}
	J := len(p.ms)
	gs := make([]stratGetter, J)
	for j, m := range p.ms {
		var pct []float32
		if j < len(p.pctVals) {
			pct = p.pctVals[j]
		}
		gs[j] = e.getter(m, pct)
	}
	return func(f func(user, stratum int32, sides uint64, vals []float64, have uint64)) {
		vals := make([]float64, J)
		e.stratEach(func(k int, ev *stratEvent, mask uint64) {
			var have uint64
			for j := range gs {
				if v, ok := gs[j].get(k, ev); ok {
					vals[j] = v
					have |= 1 << j
				}
			}
			if have != 0 {
				f(ev.user, p.stratum(ev), p.member(ev, mask), vals, have)
			}
		})
	}
}

// stratRun computes the comparisons of one pass, by metric and side: ok
// false when the sides share no stratum or a side has fewer than two users
// in the shared strata.
func (e *engine) stratRun(p stratPass) [][]stratCmp {
	each := e.observations(&p)
	ns, S, J := p.n, p.nStrata, p.metrics()
	refBit := uint64(1) << p.ref
	var activeMask uint64
	for g := range ns {
		if p.active[g] && g != p.ref {
			activeMask |= 1 << g
		}
	}
	// The sides present in each stratum, and a slot for each (stratum,
	// side) that can be compared: the stratum has the reference and some
	// active side.
	var present []uint64
	if p.present != nil {
		present = slices.Clone(p.present)
	} else {
		present = make([]uint64, S)
		each(func(_, stratum int32, sides uint64, _ []float64, _ uint64) {
			present[stratum] |= sides
		})
	}
	off := make([]int32, S+1)
	for s := range S {
		m := present[s]
		if m&refBit == 0 || m&activeMask == 0 {
			present[s] = 0
		} else {
			present[s] = m & (activeMask | refBit)
		}
		off[s+1] = off[s] + int32(bits.OnesCount64(present[s]))
	}
	slot := func(s int32, g int) int {
		return int(off[s]) + bits.OnesCount64(present[s]&(1<<g-1))
	}
	slots := int(off[S])
	type ny struct{ n, y float64 }
	tot := make([]ny, slots*J) // per slot and metric: events, sum of values
	each(func(_, stratum int32, sides uint64, vals []float64, have uint64) {
		m := present[stratum]
		for b := sides & m; b != 0; b &= b - 1 {
			base := slot(stratum, bits.TrailingZeros64(b)) * J
			for h := have; h != 0; h &= h - 1 {
				j := bits.TrailingZeros64(h)
				x := &tot[base+j]
				x.n++
				x.y += vals[j]
			}
		}
	})
	type agg struct{ w, d, b float64 }
	aggs := make([]agg, J*ns)
	shared := make([]int64, J*ns)
	for s := range int32(S) {
		m := present[s]
		if m == 0 {
			continue
		}
		rs := slot(s, p.ref) * J
		for b := m &^ refBit; b != 0; b &= b - 1 {
			g := bits.TrailingZeros64(b)
			gs := slot(s, g) * J
			for j := range J {
				nr, ng := tot[rs+j].n, tot[gs+j].n
				if nr == 0 || ng == 0 {
					continue
				}
				mr := tot[rs+j].y / nr
				w := ng * nr / (ng + nr)
				a := &aggs[j*ns+g]
				a.w += w
				a.d += w * (tot[gs+j].y/ng - mr)
				a.b += w * mr
				shared[j*ns+g]++
			}
		}
	}
	D, B := make([]float64, J*ns), make([]float64, J*ns)
	for k := range J * ns {
		if aggs[k].w > 0 {
			D[k], B[k] = aggs[k].d/aggs[k].w, aggs[k].b/aggs[k].w
		}
	}
	// Per slot and metric, the coefficients of an observation's influence
	// on D and on B (no division per observation): on the group's side
	// kA (v - cA); on the reference's, kR (v - cR) on D and kB (v - mr) on
	// B, where mr, the reference's mean, is in the reference's own slot
	// (cA, with kA 1 marking a reference with values). kA and kB are 0
	// where the slot has no comparison.
	// The group's side and the reference's side in two arrays: an
	// observation on the group's side touches 16 bytes per metric.
	type coefA struct{ kA, cA float64 }
	type coefR struct{ kR, cR, kB float64 }
	coA := make([]coefA, slots*J)
	coR := make([]coefR, slots*J)
	for s := range int32(S) {
		m := present[s]
		if m == 0 {
			continue
		}
		rs := slot(s, p.ref) * J
		for j := range J {
			if nr := tot[rs+j].n; nr > 0 {
				coA[rs+j] = coefA{kA: 1, cA: tot[rs+j].y / nr}
			}
		}
		for b := m &^ refBit; b != 0; b &= b - 1 {
			g := bits.TrailingZeros64(b)
			gs := slot(s, g) * J
			for j := range J {
				nr, ng := tot[rs+j].n, tot[gs+j].n
				k := j*ns + g
				if nr == 0 || ng == 0 || aggs[k].w == 0 {
					continue
				}
				N, W := ng+nr, aggs[k].w
				dbar := ng / N
				ybar := (tot[gs+j].y + tot[rs+j].y) / N
				coA[gs+j] = coefA{kA: (1 - dbar) / W, cA: ybar + D[k]*(1-dbar)}
				coR[gs+j] = coefR{kR: -dbar / W, cR: ybar - D[k]*dbar, kB: dbar / W}
			}
		}
	}
	tot = nil
	// Each user's influence on D and on B, the sides they are on and their
	// observations there: summed over a run of the user's observations.
	// When the observations come grouped by user (the kept events, sorted)
	// a run is all of the user's and is folded into the totals at once;
	// else runs are added to the user's entry, folded at the end.
	type infl struct {
		d, b float64
		n    float32
		on   uint8
	}
	type totals struct {
		G, GA, GB, sdd, sbb, sdb float64
		kish                     [4][2]float64 // by side flags: sum n, sum n^2 (Kish)
	}
	tots := make([]totals, J*ns)
	fold := func(k int, x *infl) {
		t := &tots[k]
		f := x.on
		t.G++
		if f&1 != 0 {
			t.GA++
		}
		if f&2 != 0 {
			t.GB++
		}
		n := float64(x.n)
		t.kish[f][0] += n
		t.kish[f][1] += n * n
		t.sdd += x.d * x.d
		t.sbb += x.b * x.b
		t.sdb += x.d * x.b
	}
	users := len(e.ustate)
	var per []infl
	if grouped := p.obs == nil && e.strat != nil && e.strat.sorted; !grouped {
		per = make([]infl, users*J*ns)
	}
	run := make([]infl, J*ns)
	var touched []int // run entries in use
	cur := int32(-1)
	flush := func() {
		for _, k := range touched {
			r := &run[k]
			if per == nil {
				fold(k, r)
			} else {
				x := &per[int(cur)*J*ns+k]
				x.d += r.d
				x.b += r.b
				x.n += r.n
				x.on |= r.on
			}
			*r = infl{}
		}
		touched = touched[:0]
	}
	touch := func(k int) *infl {
		r := &run[k]
		if r.on == 0 {
			touched = append(touched, k)
		}
		return r
	}
	each(func(user, stratum int32, sides uint64, vals []float64, have uint64) {
		m := present[stratum]
		if m == 0 || sides&m == 0 {
			return
		}
		if user != cur {
			flush()
			cur = user
		}
		if sides&refBit != 0 {
			rs := slot(stratum, p.ref) * J
			for b := m &^ refBit; b != 0; b &= b - 1 {
				g := bits.TrailingZeros64(b)
				gs := slot(stratum, g) * J
				for h := have; h != 0; h &= h - 1 {
					j := bits.TrailingZeros64(h)
					c := &coR[gs+j]
					if c.kB == 0 {
						continue
					}
					v := vals[j]
					r := touch(j*ns + g)
					r.d += c.kR * (v - c.cR)
					r.b += c.kB * (v - coA[rs+j].cA)
					r.on |= 2
					r.n++
				}
			}
		}
		for b := sides & m &^ refBit; b != 0; b &= b - 1 {
			g := bits.TrailingZeros64(b)
			gs := slot(stratum, g) * J
			for h := have; h != 0; h &= h - 1 {
				j := bits.TrailingZeros64(h)
				c := &coA[gs+j]
				if c.kA == 0 {
					continue
				}
				r := touch(j*ns + g)
				r.d += c.kA * (vals[j] - c.cA)
				r.on |= 1
				r.n++
			}
		}
	})
	flush()
	if per != nil {
		for u := range users {
			for k := range J * ns {
				if x := &per[u*J*ns+k]; x.on != 0 {
					fold(k, x)
				}
			}
		}
	}
	out := make([][]stratCmp, J)
	for j := range J {
		out[j] = make([]stratCmp, ns)
		for g := range ns {
			if !p.active[g] || g == p.ref {
				continue
			}
			k := j*ns + g
			t := &tots[k]
			c := stratCmp{shared: shared[k]}
			c.usersA, c.usersRef = int64(t.GA), int64(t.GB)
			out[j][g] = c
			if aggs[k].w == 0 || t.GA < 2 || t.GB < 2 {
				continue
			}
			f := t.G / (t.G - 1)
			c.diff = D[k]
			A, Bg := B[k]+D[k], B[k]
			c.ratio = A / Bg
			c.se = math.Sqrt(f * t.sdd)
			if c.se < 1e-12*math.Max(1, math.Abs(c.diff)) {
				c.se = 0 // rounding left over from residuals that are all zero
			}
			c.df = math.Min(t.GA, t.GB) - 1
			if A > 0 && Bg > 0 {
				q := 1/A - 1/Bg
				c.seLog = math.Sqrt(math.Max(0, f*(t.sdd/(A*A)+q*q*t.sbb+2*q*t.sdb/A)))
			} else {
				c.seLog = math.NaN()
			}
			c.test()
			c.pct = j < len(p.pct) && p.pct[j]
			// The permutation fallback: no user on both sides, and few
			// effective users (Kish, over the observations in shared
			// strata) on one.
			few := func(k [2]float64) bool { return k[1] == 0 || k[0]*k[0]/k[1] < minEffectiveUsers }
			if t.kish[3][0] == 0 && (few(t.kish[1]) || few(t.kish[2])) {
				if pp, ok := e.stratPermutation(each, p.ref, j, g, c.diff); ok {
					c.p, c.perm = pp, true
				}
			}
			out[j][g] = c
		}
	}
	return out
}

// stratPermutation is the permutation fallback of a stratified
// comparison (metric j, side g against ref), as compareUsers has for the
// crude one: when the two sides share no user and either has fewer than
// minEffectiveUsers effective users, the p-value is the share of
// relabellings of the users (each keeping their observations and so
// their strata) whose pooled difference is as far from zero as obs.
// Users carry their per-stratum sums; a relabelling sums the smaller
// side's. ok is false when the fallback does not apply or would take more
// than maxPermutationWork.
func (e *engine) stratPermutation(each stratObs, ref, j, g int, obs float64) (float64, bool) {
	type pair struct {
		u       int32 // index among the users taking part
		stratum int32
		y, n    float64
	}
	idx := map[int32]int32{} // user number -> index
	var side []uint8         // by index: 1 the group's, 2 the reference's
	pos := map[uint64]int{}  // (index, stratum) -> pair
	var pairs []pair
	overlap := false
	each(func(user, stratum int32, sides uint64, vals []float64, have uint64) {
		if overlap || have&(1<<j) == 0 {
			return
		}
		var sd uint8
		if sides&(1<<g) != 0 {
			sd |= 1
		}
		if sides&(1<<ref) != 0 {
			sd |= 2
		}
		if sd == 0 {
			return
		}
		i, seen := idx[user]
		if !seen {
			i = int32(len(side))
			idx[user] = i
			side = append(side, 0)
		}
		side[i] |= sd
		if side[i] == 3 {
			overlap = true
			return
		}
		key := uint64(i)<<32 | uint64(uint32(stratum))
		k, ok := pos[key]
		if !ok {
			k = len(pairs)
			pos[key] = k
			pairs = append(pairs, pair{u: i, stratum: stratum})
		}
		pairs[k].y += vals[j]
		pairs[k].n++
	})
	if overlap || len(side) < 4 {
		return 0, false
	}
	// Strata renumbered densely over the pairs.
	sidx := map[int32]int32{}
	for i := range pairs {
		s, ok := sidx[pairs[i].stratum]
		if !ok {
			s = int32(len(sidx))
			sidx[pairs[i].stratum] = s
		}
		pairs[i].stratum = s
	}
	nS := len(sidx)
	// Each user's pairs together (CSR), and each stratum's totals.
	nu := len(side)
	start := make([]int32, nu+1)
	for _, pr := range pairs {
		start[pr.u+1]++
	}
	for i := range nu {
		start[i+1] += start[i]
	}
	byUser := make([]pair, len(pairs))
	fill := slices.Clone(start[:nu])
	totN, totY := make([]float64, nS), make([]float64, nS)
	for _, pr := range pairs {
		byUser[fill[pr.u]] = pr
		fill[pr.u]++
		totN[pr.stratum] += pr.n
		totY[pr.stratum] += pr.y
	}
	ka := 0
	for _, sd := range side {
		if sd == 1 {
			ka++
		}
	}
	k, drawnIsA := ka, true
	if nu-ka < ka {
		k, drawnIsA = nu-ka, false
	}
	cntD, sumD := make([]float64, nS), make([]float64, nS)
	pooled := func(drawn []int32) float64 {
		clear(cntD)
		clear(sumD)
		for _, u := range drawn {
			for _, pr := range byUser[start[u]:start[u+1]] {
				cntD[pr.stratum] += pr.n
				sumD[pr.stratum] += pr.y
			}
		}
		var w, d float64
		for s := range nS {
			na, nb := cntD[s], totN[s]-cntD[s]
			if na == 0 || nb == 0 {
				continue
			}
			ws := na * nb / (na + nb)
			w += ws
			d += ws * (sumD[s]/na - (totY[s]-sumD[s])/nb)
		}
		if w == 0 {
			return math.NaN()
		}
		if !drawnIsA {
			d = -d
		}
		return d / w
	}
	B := permutations
	work := len(pairs)*k/nu + nS
	if work*B > maxPermutationWork {
		B = maxPermutationWork / work
		if B < 199 {
			return 0, false // too large to permute: the t test stands
		}
	}
	rng := rand.New(rand.NewPCG(permutationSeed, uint64(g)))
	perm := make([]int32, nu)
	for i := range perm {
		perm[i] = int32(i)
	}
	tol := 1e-9 * math.Max(1, math.Abs(obs))
	extreme, done := 0, 0
	for range B {
		for i := range k {
			r := i + rng.IntN(nu-i)
			perm[i], perm[r] = perm[r], perm[i]
		}
		d := pooled(perm[:k])
		if math.IsNaN(d) {
			continue
		}
		done++
		if math.Abs(d) >= math.Abs(obs)-tol {
			extreme++
		}
	}
	if done == 0 {
		return 0, false
	}
	return float64(1+extreme) / float64(done+1), true
}

// maxPermutationWork bounds a stratified permutation test's work (pairs
// and strata visited over all relabellings); a test that would need more
// for 199 relabellings keeps its t test.
const maxPermutationWork = 50_000_000
