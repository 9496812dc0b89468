package audit

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"

	"github.com/recguard/recguard/internal/prefetch"
)

// The stratified comparisons' computation (see stratify.go for the
// method). One pass compares several metrics at once over the same
// observations (each event visited once per pass, not once per metric),
// and keeps figures only for the (stratum, side) pairs that occur and can
// be compared: a stratum without the reference, or without a side compared
// with it, takes no memory. Memory: O(pairs x metrics + users x sides x
// metrics when the observations do not come by block of users).

// stratObs yields a pass's observations in batches (see obsBatch).
type stratObs func(f func(b *obsBatch))

// obsBatch is a run of observations: observation i is of user user[i], in
// stratum stratum[i], on the sides sides[i], with the values of the pass's
// metrics vals[i*J+j] where have[i] holds bit j. Passes handle a batch at
// a time: they first list the cache lines each observation will need (a
// prefetch.Batch), then do the work, requesting the lines a few
// observations ahead, so that the cache misses overlap.
type obsBatch struct {
	user, stratum []int32
	sides, have   []uint64
	vals          []float64
}

// obsBatchLen is the most observations of a batch.
const obsBatchLen = 256

func newObsBatch(J int) *obsBatch {
	return &obsBatch{
		user: make([]int32, 0, obsBatchLen), stratum: make([]int32, 0, obsBatchLen),
		sides: make([]uint64, 0, obsBatchLen), have: make([]uint64, 0, obsBatchLen),
		vals: make([]float64, obsBatchLen*max(J, 1)),
	}
}

func (b *obsBatch) reset() {
	b.user, b.stratum, b.sides, b.have = b.user[:0], b.stratum[:0], b.sides[:0], b.have[:0]
}

func (b *obsBatch) push(user, stratum int32, sides, have uint64) {
	b.user = append(b.user, user)
	b.stratum = append(b.stratum, stratum)
	b.sides = append(b.sides, sides)
	b.have = append(b.have, have)
}

// Sides and strata of a pass over the kept events.
const (
	sidesGroups = iota // the event's groups
	sidesModes         // its mode: bit 0 personalized, bit 1 non-personalized
)

const (
	strataKept = iota // the event's stratum
	strataUser        // its user
)

// stratPass describes the comparisons of one pass: sides numbered 0 to
// n-1, side ref the reference, active the sides compared with it; metrics
// ms (their values from pctVals[j], else their fields; pct[j]: a
// distribution's within-stratum percentiles); member says what an event's
// sides are (sidesGroups, sidesModes), stratum what its stratum is
// (strataKept, strataUser; nStrata of them). With obs set, the
// observations are obs's instead of the kept events'.
type stratPass struct {
	ms []*metricDef
	// pctVals[j], when set, are metric j's values by kept event: its
	// percentiles within strata (NaN: no value).
	pctVals [][]float32
	pct     []bool
	// present gives the sides present in each stratum (nStrata of them),
	// as whoever kept the observations recorded them.
	present []uint64
	obs     stratObs
	n, ref  int
	active  []bool
	member  int
	stratum int
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
	byUser, byMode := p.stratum == strataUser, p.member == sidesModes
	return func(f func(b *obsBatch)) {
		st := e.strat
		plain := e.usersPlain()
		b := newObsBatch(J)
		x, k := 0, 0
		for _, page := range st.pages {
			for i := range page {
				ev := &page[i]
				var mask uint64
				if ev.flags&fXMask != 0 {
					mask = st.xmask[x]
					x++
				} else if !byMode {
					if ev.class != classNone {
						mask = st.classes[ev.class]
					} else {
						mask = plain[ev.user]
					}
				}
				n := len(b.user)
				vals := b.vals[n*J : (n+1)*J]
				var have uint64
				for j := range gs {
					if v, ok := gs[j].get(k, ev); ok {
						vals[j] = v
						have |= 1 << j
					}
				}
				k++
				if have == 0 {
					continue
				}
				s := ev.stratum
				if byUser {
					s = ev.user
				}
				if byMode {
					mask = 1
					if ev.flags&fNonPers != 0 {
						mask = 2
					}
				}
				b.push(ev.user, s, mask, have)
				if len(b.user) == obsBatchLen {
					f(b)
					b.reset()
				}
			}
		}
		if len(b.user) > 0 {
			f(b)
		}
	}
}

// stratRun computes the comparisons of one pass, by metric and side: ok
// false when the sides share no stratum or a side has fewer than two users
// in the shared strata.
func (e *engine) stratRun(p stratPass) [][]stratCmp {
	return e.stratPrepare(p)()
}

// stratPrepare runs the first half of a pass: the strata's totals, the
// pooled estimates and each slot's coefficients. The returned function
// runs the second half: each user's influence (over the observations as
// they are then: the kept events may have been grouped by block of users
// in between (stratSortByUser),
// the percentiles of pctVals moving with them) and the tests.
func (e *engine) stratPrepare(p stratPass) func() [][]stratCmp {
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
	present := slices.Clone(p.present)
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
	tot := zeroed[ny](slots * J) // per slot and metric: events, sum of values
	var pf prefetch.Batch        // the lines each observation will touch
	each(func(bt *obsBatch) {
		pf.Reset()
		for i, s := range bt.stratum {
			if m := present[s] & bt.sides[i]; m != 0 {
				base := slot(s, bits.TrailingZeros64(m)) * J
				pf.Add(prefetch.Addr(&tot[base]))
				pf.Add(prefetch.Addr(&tot[base+J-1]))
			}
			pf.End()
		}
		for i, stratum := range bt.stratum {
			pf.Ahead(i)
			m := present[stratum]
			vals := bt.vals[i*J : (i+1)*J]
			have := bt.have[i]
			for b := bt.sides[i] & m; b != 0; b &= b - 1 {
				base := slot(stratum, bits.TrailingZeros64(b)) * J
				for h := have; h != 0; h &= h - 1 {
					j := bits.TrailingZeros64(h)
					x := &tot[base+j]
					x.n++
					x.y += vals[j]
				}
			}
		}
	})
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
	// B, where kB = -kR and mr, the reference's mean, is in the
	// reference's own slot (cA, with kA 1 marking a reference with
	// values). kA and kR are 0 where the slot has no comparison.
	// The group's side and the reference's side in two arrays: an
	// observation touches 16 bytes per metric and side.
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
				coR[gs+j] = coefR{kR: -dbar / W, cR: ybar - D[k]*dbar}
			}
		}
	}
	tot = nil
	return func() [][]stratCmp {
		return e.stratFinish(&p, ns, J, refBit, present, off, aggs, shared, D, B, coA, coR)
	}
}

// coefA and coefR are the coefficients of an observation's influence (see
// stratPrepare).
type (
	coefA struct{ kA, cA float64 }
	coefR struct{ kR, cR float64 }
	agg   struct{ w, d, b float64 }
)

// stratFinish is the second half of a pass (see stratPrepare).
func (e *engine) stratFinish(p *stratPass, ns, J int, refBit uint64, present []uint64, off []int32, aggs []agg, shared []int64, D, B []float64, coA []coefA, coR []coefR) [][]stratCmp {
	each := e.observations(p)
	slot := func(s int32, g int) int {
		return int(off[s]) + bits.OnesCount64(present[s]&(1<<g-1))
	}
	// Each user's influence on D and on B, the sides they are on and their
	// observations there, summed in the user's entry of per (by side, then
	// metric: an observation's metrics are next to each other) and folded
	// into the totals once complete. When the observations come by block
	// of users (the kept events, sorted: see stratSortByUser) per holds
	// one block, folded when the next begins; else every user.
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
	K := J * ns
	window := len(e.ustate) // users in per
	blocks := p.obs == nil && e.strat != nil && e.strat.sorted
	if blocks {
		window = 1 << userBlockShift
	}
	per := zeroed[infl](window * K)
	seen := make([]bool, window) // users of the window with an entry
	base := int32(0)             // the window's first user
	// foldWindow folds the window's users' entries, in user order, and
	// clears them.
	foldWindow := func() {
		for w, ok := range seen {
			if !ok {
				continue
			}
			seen[w] = false
			for q := range K {
				if x := &per[w*K+q]; x.on != 0 {
					fold(q%J*ns+q/J, x)
					*x = infl{}
				}
			}
		}
	}
	var pf prefetch.Batch
	each(func(bt *obsBatch) {
		// The lines each observation will touch, requested a few
		// observations ahead of their use.
		pf.Reset()
		for i, s := range bt.stratum {
			sides := bt.sides[i] & present[s]
			if sides == 0 {
				pf.End()
				continue
			}
			if sides&refBit != 0 {
				// The reference's side reads every compared side's
				// coefficients in the stratum: one run of slots.
				lo, hi := int(off[s])*J, int(off[s+1])*J
				for q := lo; q < hi; q += 4 {
					pf.Add(prefetch.Addr(&coR[q]))
				}
				rs := slot(s, p.ref) * J
				pf.Add(prefetch.Addr(&coR[hi-1]))
				pf.Add(prefetch.Addr(&coA[rs]))
				pf.Add(prefetch.Addr(&coA[rs+J-1]))
			}
			for b := sides &^ refBit; b != 0; b &= b - 1 {
				gs := slot(s, bits.TrailingZeros64(b)) * J
				pf.Add(prefetch.Addr(&coA[gs]))
				pf.Add(prefetch.Addr(&coA[gs+J-1]))
			}
			if !blocks {
				// The user's entry, at a random place.
				u := int(bt.user[i]) * K
				pf.Add(prefetch.Addr(&per[u]))
				pf.Add(prefetch.Addr(&per[u+K-1]))
			}
			pf.End()
		}
		for i, stratum := range bt.stratum {
			pf.Ahead(i)
			m := present[stratum]
			sides := bt.sides[i]
			if m == 0 || sides&m == 0 {
				continue
			}
			user := bt.user[i]
			if blocks && user>>userBlockShift != base>>userBlockShift {
				foldWindow()
				base = user >> userBlockShift << userBlockShift
			}
			w := int(user - base)
			seen[w] = true
			entry := per[w*K : (w+1)*K]
			vals := bt.vals[i*J : (i+1)*J]
			have := bt.have[i]
			if sides&refBit != 0 {
				rs := slot(stratum, p.ref) * J
				for b := m &^ refBit; b != 0; b &= b - 1 {
					g := bits.TrailingZeros64(b)
					gs := slot(stratum, g) * J
					for h := have; h != 0; h &= h - 1 {
						j := bits.TrailingZeros64(h)
						c := &coR[gs+j]
						if c.kR == 0 {
							continue
						}
						v := vals[j]
						r := &entry[g*J+j]
						r.d += c.kR * (v - c.cR)
						r.b += -c.kR * (v - coA[rs+j].cA)
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
					r := &entry[g*J+j]
					r.d += c.kA * (vals[j] - c.cA)
					r.on |= 1
					r.n++
				}
			}
		}
	})
	foldWindow()
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
				if pp, ok := e.stratPermutation(each, J, p.ref, j, g, c.diff); ok {
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
// their strata) whose pooled difference is as far from zero as obs (J
// values per observation).
// Users carry their per-stratum sums; a relabelling sums the smaller
// side's. ok is false when the fallback does not apply or would take more
// than maxPermutationWork.
func (e *engine) stratPermutation(each stratObs, J, ref, j, g int, obs float64) (float64, bool) {
	type pair struct {
		u       int32 // index among the users taking part
		stratum int32
		y, n    float64
	}
	idx := map[int32]int32{} // user number -> index
	var side []uint8         // by index: 1 the group's, 2 the reference's
	var numOf []int32        // by index: the user number
	pos := map[uint64]int{}  // (index, stratum) -> pair
	var pairs []pair
	overlap := false
	each(func(bt *obsBatch) {
		for n, user := range bt.user {
			if overlap {
				return
			}
			if bt.have[n]&(1<<j) == 0 {
				continue
			}
			sides := bt.sides[n]
			var sd uint8
			if sides&(1<<g) != 0 {
				sd |= 1
			}
			if sides&(1<<ref) != 0 {
				sd |= 2
			}
			if sd == 0 {
				continue
			}
			i, seen := idx[user]
			if !seen {
				i = int32(len(side))
				idx[user] = i
				side = append(side, 0)
				numOf = append(numOf, user)
			}
			side[i] |= sd
			if side[i] == 3 {
				overlap = true
				return
			}
			stratum := bt.stratum[n]
			key := uint64(i)<<32 | uint64(uint32(stratum))
			k, ok := pos[key]
			if !ok {
				k = len(pairs)
				pos[key] = k
				pairs = append(pairs, pair{u: i, stratum: stratum})
			}
			pairs[k].y += bt.vals[n*J+j]
			pairs[k].n++
		}
	})
	if overlap || len(side) < 4 {
		return 0, false
	}
	// Users indexed in the order of their numbers, each one's pairs in the
	// order met (the observations' order across users does not matter).
	order := make([]int32, len(side))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return int(numOf[a]) - int(numOf[b]) })
	rank := make([]int32, len(side))
	sides := make([]uint8, len(side))
	for r, i := range order {
		rank[i] = int32(r)
		sides[r] = side[i]
	}
	side = sides
	for i := range pairs {
		pairs[i].u = rank[pairs[i].u]
	}
	slices.SortStableFunc(pairs, func(a, b pair) int { return int(a.u) - int(b.u) })
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
