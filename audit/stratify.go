package audit

import (
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// Stratification (issue 13). A group that browses premium items, which
// carry fewer discounts, gets fewer discounts overall even when it gets
// more on every item (Simpson's paradox): comparing the plain rates judges
// the group for what it chose to look at. So rates and means are compared
// within strata (Spec.Strata: by default the item and the day) and pooled.
//
// The estimate is the Mantel-Haenszel-weighted difference
//
//	D = sum_s w_s (m_gs - m_rs) / W,  w_s = n_gs n_rs / (n_gs + n_rs),  W = sum_s w_s
//
// over the strata s where both the group g and the reference r have
// events with a value (m the stratum's mean, n its events). It is exactly
// the least-squares estimate of a regression of the value on the group
// with one fixed effect per stratum, so its standard error is that
// regression's cluster-robust one by user: each event's residual
// e = y - ybar_s - D (d - dbar_s) (d is 1 on the group's side, 0 on the
// reference's; dbar_s = n_gs / (n_gs + n_rs)) times (d - dbar_s) / W,
// summed per user, squared, summed, times G/(G-1) (G the users with an
// event in a shared stratum). Residuals of the common-effect model, not of
// each stratum's own means, so that sparse strata (one event a side) do
// not hide the spread. The test is Student's t with min(users) - 1
// degrees of freedom, as the unstratified one. The ratio is the group's
// standardized level A = B + D over the reference's B = sum_s w_s m_rs / W
// with a delta-method log interval. An event in both sides (overlapping
// segments) counts on each, its user's terms adding up.
//
// The crude (unstratified, user-level) comparison is kept beside the
// adjusted one (TestResult.Crude); the decision is the adjusted one.
//
// Parity: the platform's own outputs (rank, discount, latency) are
// stratified the same way. The click rate is a behaviour: users who turn
// personalization off may click less as people, whatever they are shown,
// and no stratum of items tells that apart. So it is compared within the
// users seen in both modes (each user a stratum); with fewer such users
// than MinGroupSize it is not compared ("not_comparable").
//
// Memory: stratifying keeps every event's numbers (28 bytes an event, plus
// 4 per free-field metric) until the report: O(events), like the
// same-item prices. Spec.Strata ["none"] keeps nothing.

// Adjustment values of TestResult.
const (
	AdjustMantelHaenszel = "mantel_haenszel"
	AdjustWithinUser     = "within_user"
	AdjustNone           = "none"
	AdjustNotComparable  = "not_comparable"
)

// stratEvent is one event as the stratified comparisons need it.
type stratEvent struct {
	num     [4]float32 // discount, price, rank, latency (readItem.num)
	user    int32
	stratum int32
	flags   uint16 // readItem.flags, and fNonPers, fXMask
	// class numbers the user's plain groups (stratState.classes), so that
	// a pass finds them without a random access by user; classNone: read
	// them by user.
	class uint16
}

// classNone is stratEvent.class past the most classes.
const classNone = 1<<16 - 1

// Flags of a stratEvent beyond readItem's.
const (
	fNonPers uint16 = 1 << 14 // mode non_personalized
	fXMask   uint16 = 1 << 15 // groups other than the user's usual ones: the next of stratState.xmask
)

const stratPage = 1 << 16

// stratKey is what tells strata apart.
type stratKey struct {
	item   int32
	bucket int64
	attrs  [MaxStrata]int32
}

// stratState is what the engine keeps for stratification.
type stratState struct {
	item, time  bool
	bucketSecs  float64
	bucketWhole int64
	attrs       []string           // attribute keys with their colon ("region:")
	dict        []map[string]int32 // per attribute key: value -> id (from 1)
	ufact       []int32            // user x attribute: the value id of the user's fact, 0 none
	ids         map[stratKey]int32
	pages       [][]stratEvent
	xmask       []uint64
	free        []int // metric indexes of free-field rate and mean metrics
	freeVals    [][]float32
	n           int
	sorted      bool              // by block of users (stratSortByUser)
	groups      []uint64          // by stratum: the groups of its events
	last        []lastStratum     // by item: its last stratum (stratumID)
	modes       []uint64          // by stratum: its events' modes (1 personalized, 2 non-personalized)
	classes     []uint64          // the distinct userState.plain of kept events, by stratEvent.class
	classIdx    map[uint64]uint16 // class by plain groups
}

func newStratState(spec *Spec, metrics []metricDef) *stratState {
	st := &stratState{ids: map[stratKey]int32{}}
	for _, k := range spec.Strata {
		switch k {
		case StratumItem:
			st.item = true
		case StratumTime:
			st.time = true
		default:
			st.attrs = append(st.attrs, k+":")
			st.dict = append(st.dict, map[string]int32{})
		}
	}
	b := spec.StrataBucket
	st.bucketSecs = b.seconds()
	if d := int64(b); d%1e9 == 0 {
		st.bucketWhole = d / 1e9
	}
	for j, m := range metrics {
		if m.field == mfFree && m.spec.Kind != Distribution {
			st.free = append(st.free, j)
		}
	}
	return st
}

func (d Duration) seconds() float64 { return float64(d) / 1e9 }

// value returns the id of value v of attribute a, numbering a new one.
func (st *stratState) value(a int, v string) int32 {
	id, ok := st.dict[a][v]
	if !ok {
		id = int32(len(st.dict[a]) + 1)
		st.dict[a][strings.Clone(v)] = id
	}
	return id
}

// userFacts records the attribute values of user ui's facts.
func (st *stratState) userFacts(ui int32, facts []string) {
	na := len(st.attrs)
	if na == 0 {
		return
	}
	need := (int(ui) + 1) * na
	if len(st.ufact) < need {
		st.ufact = append(st.ufact, make([]int32, need-len(st.ufact))...)
	}
	row := st.ufact[int(ui)*na : need]
	clear(row)
	for a, p := range st.attrs {
		for _, f := range facts {
			if v, ok := strings.CutPrefix(f, p); ok {
				row[a] = st.value(a, v)
				break
			}
		}
	}
}

// stratumID returns the number of stratum k, numbering a new one. Without
// attribute strata, the last stratum of each item is remembered (events
// come roughly in time order, so most find their item's day again) and
// the map is asked only when the bucket changes.
func (st *stratState) stratumID(k stratKey, cache bool) int32 {
	cache = cache && k.item >= 0
	if cache {
		if int(k.item) < len(st.last) {
			if l := st.last[k.item]; l.id > 0 && l.bucket == k.bucket {
				return l.id - 1
			}
		} else {
			st.last = append(st.last, make([]lastStratum, int(k.item)+1-len(st.last))...)
		}
	}
	id, ok := st.ids[k]
	if !ok {
		id = int32(len(st.ids))
		st.ids[k] = id
		st.groups = append(st.groups, 0)
		st.modes = append(st.modes, 0)
	}
	if cache {
		st.last[k.item] = lastStratum{bucket: k.bucket, id: id + 1}
	}
	return id
}

// lastStratum is an item's last stratum: its bucket and number + 1 (0:
// none yet).
type lastStratum struct {
	bucket int64
	id     int32
}

// stratKeyOf returns the stratum key of event it of user ui. It runs in
// the aggregating goroutine, which owns the attributes' dictionaries and
// the users' attribute values.
func (e *engine) stratKeyOf(it *readItem, ui int32) stratKey {
	st := e.strat
	k := stratKey{item: -1}
	if st.item {
		k.item = it.sitem
	}
	if st.time {
		k.bucket = bucketOf(it.ev.Time, st.bucketWhole, st.bucketSecs)
	}
	if na := len(st.attrs); na > 0 {
		if base := int(ui) * na; base+na <= len(st.ufact) {
			copy(k.attrs[:na], st.ufact[base:base+na])
		}
		for _, at := range it.ev.Attrs {
			for a, p := range st.attrs {
				if v, ok := strings.CutPrefix(at, p); ok {
					k.attrs[a] = st.value(a, v)
				}
			}
		}
	}
	return k
}

// stratFree hands the values of the free-field metrics of event it (NaN:
// none) to the tail goroutine, beside the event's tailItem.
func (e *engine) stratFree(it *readItem) {
	st := e.strat
	if len(st.free) == 0 {
		return
	}
	b := e.tailCur
	for _, j := range st.free {
		x := float32(math.NaN())
		if v, ok := it.ev.Fields[e.metrics[j].spec.Field]; ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
			x = float32(v)
		}
		b.free = append(b.free, x)
	}
}

// stratKeep keeps one processed event (see tailItem; free: its free-field
// values). It runs in the tail goroutine, which owns the kept events and
// the strata's numbering.
func (e *engine) stratKeep(ti *tailItem, free []float32) {
	st := e.strat
	id := st.stratumID(ti.key, len(st.attrs) == 0)
	st.groups[id] |= ti.mask
	st.modes[id] |= 1 << ti.mode
	ev := stratEvent{user: ti.user, stratum: id, flags: ti.flags, class: st.classOf(ti.plain)}
	for i, v := range ti.num {
		ev.num[i] = float32(v)
	}
	if ti.mode == 1 {
		ev.flags |= fNonPers
	}
	if ti.xmask {
		ev.flags |= fXMask
		st.xmask = append(st.xmask, ti.mask)
	}
	if n := len(st.pages); n == 0 || len(st.pages[n-1]) == stratPage {
		st.pages = append(st.pages, make([]stratEvent, 0, stratPage))
	}
	last := &st.pages[len(st.pages)-1]
	*last = append(*last, ev)
	if nf := len(st.free); nf > 0 {
		p := st.n / stratPage
		if p == len(st.freeVals) {
			st.freeVals = append(st.freeVals, make([]float32, stratPage*nf))
		}
		copy(st.freeVals[p][(st.n%stratPage)*nf:(st.n%stratPage+1)*nf], free)
	}
	st.n++
}

func bucketOf(t time.Time, whole int64, secs float64) int64 {
	if whole > 0 {
		s := t.Unix()
		q := s / whole
		if s%whole < 0 {
			q--
		}
		return q
	}
	return int64(math.Floor((float64(t.Unix()) + float64(t.Nanosecond())/1e9) / secs))
}

// stratGetter reads one metric's value from a kept event, as
// metricDef.value reads it from an event being read (for a rate, 1 or 0),
// or a distribution's within-stratum percentile when pct is set.
type stratGetter struct {
	pct  []float32 // percentiles by event
	flag uint16    // a yes/no field's flag
	num  int       // a number's index in stratEvent.num, or -1
	free int       // a free field's index in the free values, or -1
	rate bool
	st   *stratState
}

// getter returns the stratGetter of metric m (pct: its percentiles, or
// nil for its own values).
func (e *engine) getter(m *metricDef, pct []float32) stratGetter {
	g := stratGetter{num: -1, free: -1, rate: m.spec.Kind == Rate, st: e.strat}
	switch {
	case pct != nil:
		g.pct, g.rate = pct, false
	case m.field == mfClicked:
		g.flag = fClicked
	case m.field == mfConverted:
		g.flag = fConverted
	case m.field == mfShown:
		g.flag = fShown
	case m.field >= mfDiscount && m.field <= mfLatency:
		g.num = int(m.field - mfDiscount)
	default:
		if mj := e.metricIndex(m); mj >= 0 && e.strat != nil {
			g.free = slices.Index(e.strat.free, mj)
		}
	}
	return g
}

// get returns the value in kept event k (ev); false without one. Small
// enough to be inlined in the passes' loop: the common fields here, the
// rest in slow.
func (g *stratGetter) get(k int, ev *stratEvent) (float64, bool) {
	switch {
	case g.num >= 0:
		if ev.flags&(fDiscount<<g.num) == 0 {
			return 0, false
		}
		v := float64(ev.num[g.num])
		if g.rate {
			v = float64(b2i(v > 0))
		}
		return v, true
	case g.flag != 0:
		return float64(b2i(ev.flags&(g.flag<<1) != 0)), ev.flags&g.flag != 0
	}
	return g.slow(k)
}

// slow reads a percentile or a free field.
func (g *stratGetter) slow(k int) (float64, bool) {
	var x float32
	switch {
	case g.pct != nil:
		x = g.pct[k]
	case g.free >= 0:
		nf := len(g.st.free)
		x = g.st.freeVals[k/stratPage][(k%stratPage)*nf+g.free]
	default:
		return 0, false
	}
	if x != x {
		return 0, false
	}
	if g.rate {
		return float64(b2i(x > 0)), true
	}
	return float64(x), true
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// stratCmp is one stratified comparison: a clusterCmp and the strata
// both sides share.
type stratCmp struct {
	clusterCmp
	shared int64
	perm   bool // p from permuting the labels between users
	pct    bool // a distribution: the difference is in within-stratum percentiles
}

// userBlockShift: stratSortByUser groups the kept events by blocks of
// 1<<userBlockShift consecutive user numbers.
const userBlockShift = 10

// stratSortByUser reorders the kept events by block of users (user >>
// userBlockShift; within a block, in the order read), so that a pass
// meets each user's events within one block: it sums a block's users in
// a small array that stays in cache, and, the block's events being in
// time order, meets the strata of about one day at a time. The masks of
// events in other groups, the free values and the values by event of
// extra (in place) move with them. It is a one-pass stable partition on
// every core: each core counts then moves a contiguous part of the
// events, into the places its part has in each block.
func (e *engine) stratSortByUser(extra ...[]float32) {
	st := e.strat
	if st.sorted || st.n == 0 {
		return
	}
	st.sorted = true
	nb := len(e.ustate)>>userBlockShift + 1
	parts := max(1, min(runtime.GOMAXPROCS(0), len(st.pages)))
	// Part t moves the pages [first[t], first[t+1]).
	first := make([]int, parts+1)
	for t := range parts + 1 {
		first[t] = t * len(st.pages) / parts
	}
	var wg sync.WaitGroup
	each := func(f func(t int)) {
		for t := range parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f(t)
			}()
		}
		wg.Wait()
	}
	counts := make([][]int, parts) // per part, per block: events
	xcount := make([]int, parts)   // per part: events in other groups
	each(func(t int) {
		c := make([]int, nb)
		for _, page := range st.pages[first[t]:first[t+1]] {
			for i := range page {
				c[page[i].user>>userBlockShift]++
				if page[i].flags&fXMask != 0 {
					xcount[t]++
				}
			}
		}
		counts[t] = c
	})
	// Each part's place in each block: the block's start, then the
	// earlier parts' events of the block.
	at := 0
	for b := range nb {
		for t := range parts {
			c := counts[t][b]
			counts[t][b] = at
			at += c
		}
	}
	pages := make([][]stratEvent, (st.n+stratPage-1)/stratPage)
	for i := range pages {
		pages[i] = make([]stratEvent, min(stratPage, st.n-i*stratPage))
	}
	nf := len(st.free)
	var free [][]float32
	if nf > 0 {
		free = make([][]float32, len(pages))
		for i := range free {
			free[i] = make([]float32, stratPage*nf)
		}
	}
	type xm struct {
		at   int
		mask uint64
	}
	xs := make([][]xm, parts)
	moved := make([][]float32, len(extra))
	for i := range moved {
		moved[i] = make([]float32, st.n)
	}
	each(func(t int) {
		next := counts[t]
		k := first[t] * stratPage // the part's first event (every page but the last is full)
		x := 0
		for u := range t {
			x += xcount[u]
		}
		xt := make([]xm, 0, xcount[t])
		for pi := first[t]; pi < first[t+1]; pi++ {
			page := st.pages[pi]
			for i := range page {
				ev := &page[i]
				b := ev.user >> userBlockShift
				to := next[b]
				next[b]++
				pages[to/stratPage][to%stratPage] = *ev
				if ev.flags&fXMask != 0 {
					xt = append(xt, xm{to, st.xmask[x]})
					x++
				}
				if nf > 0 {
					copy(free[to/stratPage][(to%stratPage)*nf:(to%stratPage+1)*nf], st.freeVals[pi][i*nf:(i+1)*nf])
				}
				for j, v := range extra {
					moved[j][to] = v[k]
				}
				k++
			}
			st.pages[pi] = nil // free the old page as it is copied
		}
		xs[t] = xt
	})
	all := slices.Concat(xs...)
	slices.SortFunc(all, func(a, b xm) int { return a.at - b.at })
	st.xmask = st.xmask[:0]
	for _, v := range all {
		st.xmask = append(st.xmask, v.mask)
	}
	st.pages, st.freeVals = pages, free
	for j, v := range extra {
		copy(v, moved[j])
	}
}

// stratEach calls f with every kept event and its index, in their order.
func (e *engine) stratEach(f func(k int, ev *stratEvent)) {
	k := 0
	for _, page := range e.strat.pages {
		for i := range page {
			f(k, &page[i])
			k++
		}
	}
}

// usersPlain returns the groups of each user's events without attributes
// (userState.plain) by user: a dense copy, read for each kept or price
// event. Built once, after reading.
func (e *engine) usersPlain() []uint64 {
	e.plainOnce.Do(func() {
		e.plain = make([]uint64, len(e.ustate))
		for u := range e.ustate {
			e.plain[u] = e.ustate[u].plain
		}
	})
	return e.plain
}

// classOf returns the class of the plain groups of a kept event's user
// (stratEvent.class), numbering a new one; classNone past the most.
func (st *stratState) classOf(plain uint64) uint16 {
	if c, ok := st.classIdx[plain]; ok {
		return c
	}
	if len(st.classes) >= classNone {
		return classNone
	}
	if st.classIdx == nil {
		st.classIdx = map[uint64]uint16{}
	}
	c := uint16(len(st.classes))
	st.classes = append(st.classes, plain)
	st.classIdx[plain] = c
	return c
}

// stratified applies c, the adjusted comparison, to the crude test t.
func (e *engine) applyStrat(t *TestResult, c stratCmp, adj string) {
	crude := &CrudeResult{Difference: t.Difference, DifferenceCI: t.DifferenceCI, Ratio: t.Ratio, RatioCI: t.RatioCI, Test: t.Test, P: t.P}
	users, refUsers := t.Users, t.ReferenceUsers
	*t = TestResult{Metric: t.Metric, Group: t.Group, Reference: t.Reference, Crude: crude, Adjustment: adj, Strata: c.shared,
		Users: c.usersA, ReferenceUsers: c.usersRef}
	if !c.ok {
		// Not compared: the sizes are the sides' own.
		t.Users, t.ReferenceUsers = users, refUsers
		t.Adjustment = AdjustNotComparable
		t.Test = "none"
		t.Difference, t.Ratio, t.Statistic, t.P = math.NaN(), math.NaN(), math.NaN(), math.NaN()
		t.DifferenceCI, t.RatioCI = nanIv, nanIv
		return
	}
	t.Test = "cluster_robust_t"
	if c.perm {
		t.Test = "cluster_permutation"
	}
	t.Difference, t.Ratio, t.Statistic, t.P = c.diff, c.ratio, c.t, c.p
	t.SE, t.DF = c.se, c.df
	t.DifferenceCI, t.RatioCI = c.intervalsAt(e.conf)
	if c.pct {
		t.Ratio = math.NaN()
	}
}

// intervalsAt are the difference's and ratio's intervals at level conf
// (a distribution's percentile shift has no ratio).
func (c stratCmp) intervalsAt(conf float64) (diff, ratio Interval) {
	diff, ratio = c.intervals(conf)
	if c.pct {
		ratio = nanIv
	}
	return diff, ratio
}

// stratPercentiles gives each kept event with a value of metric m (a
// distribution) its percentile within its stratum: (i + j) / 2n for a
// value whose ties take the places i to j-1 (from 0) of the stratum's n
// sorted values, so ties share their mid-rank; NaN without a value.
// Comparing mean percentiles within strata is van Elteren's stratified
// Wilcoxon test (ranks scaled by the stratum's size), here pooled with the
// Mantel-Haenszel weights and tested at the user level.
func (e *engine) stratPercentiles(m *metricDef) []float32 {
	st := e.strat
	S := len(st.ids)
	off := make([]int, S+1)
	g := e.getter(m, nil)
	e.stratEach(func(k int, ev *stratEvent) {
		if _, ok := g.get(k, ev); ok {
			off[ev.stratum+1]++
		}
	})
	for s := range S {
		off[s+1] += off[s]
	}
	// Each value with its event as one integer whose order is the
	// value's (then the event's), so that a stratum sorts without a
	// comparison function.
	arr := make([]uint64, off[S])
	fill := slices.Clone(off[:S])
	e.stratEach(func(k int, ev *stratEvent) {
		if v, ok := g.get(k, ev); ok {
			arr[fill[ev.stratum]] = uint64(orderedBits(float32(v)))<<32 | uint64(uint32(k))
			fill[ev.stratum]++
		}
	})
	pct := make([]float32, st.n)
	for i := range pct {
		pct[i] = float32(math.NaN())
	}
	for s := range S {
		seg := arr[off[s]:off[s+1]]
		slices.Sort(seg)
		n := float64(len(seg))
		for i := 0; i < len(seg); {
			j := i + 1
			for j < len(seg) && seg[j]>>32 == seg[i]>>32 {
				j++
			}
			p := float32(float64(i+j) / (2 * n))
			for _, x := range seg[i:j] {
				pct[uint32(x)] = p
			}
			i = j
		}
	}
	return pct
}

// orderedBits maps a float32 (not NaN) to an integer of the same order,
// -0 and +0 alike.
func orderedBits(v float32) uint32 {
	b := math.Float32bits(v)
	if b == 1<<31 { // -0
		b = 0
	}
	if b&(1<<31) != 0 {
		return ^b
	}
	return b | 1<<31
}

// stratifyTests adjusts the rate and mean tests of r (groups and parity)
// for the strata, keeping the crude figures beside; it returns the
// adjusted comparisons by test (nil: not adjusted) to redo the intervals.
func (e *engine) stratifyTests(r *Report, suppressed []bool) (tests, parity []*stratCmp) {
	tests = make([]*stratCmp, len(r.Tests))
	parity = make([]*stratCmp, len(r.Parity))
	if e.strat == nil {
		for i := range r.Tests {
			r.Tests[i].Adjustment = AdjustNone
		}
		for i := range r.Parity {
			r.Parity[i].Adjustment = AdjustNone
		}
		return tests, parity
	}
	ng := len(e.groups)
	active := make([]bool, ng)
	index := map[string]int{}
	for i, g := range e.spec.Groups {
		active[i] = i != e.ref && !suppressed[i]
		index[g.Name] = i
	}
	nS := len(e.strat.ids)
	// Distributions: each event's value as its percentile within its
	// stratum, computed once per field, the fields in parallel.
	pcts := map[string][]float32{}
	var pctDefs []*metricDef
	for j := range e.metrics {
		if m := &e.metrics[j]; m.spec.Kind == Distribution {
			pctDefs = append(pctDefs, m)
		}
	}
	for i := range r.Parity {
		if m := parityDef(r.Parity[i].Metric); m != nil && m.spec.Kind == Distribution {
			pctDefs = append(pctDefs, m)
		}
	}
	{
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
		seen := map[string]bool{}
		for _, m := range pctDefs {
			if seen[m.spec.Field] {
				continue
			}
			seen[m.spec.Field] = true
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				pct := e.stratPercentiles(m)
				mu.Lock()
				pcts[m.spec.Field] = pct
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	pctOf := func(m *metricDef) []float32 {
		if m.spec.Kind != Distribution {
			return nil
		}
		return pcts[m.spec.Field]
	}
	// Three passes: the groups' metrics, the parity check's (platform
	// outputs, within strata) and its behaviours (within users).
	// The groups' metrics are split in two passes on two cores or more
	// (each reads every event for half the metrics): the passes then take
	// about as long as each other.
	var passes [4]stratPass
	passes[0] = stratPass{n: ng, ref: e.ref, active: active, member: sidesGroups, stratum: strataKept, nStrata: nS, present: e.strat.groups}
	passes[3] = passes[0]
	half := len(e.metrics)
	if runtime.GOMAXPROCS(0) >= 2 && len(e.metrics) >= 4 {
		half = (len(e.metrics) + 1) / 2
	}
	for j := range e.metrics {
		m := &e.metrics[j]
		k := 0
		if j >= half {
			k = 3
		}
		passes[k].ms = append(passes[k].ms, m)
		passes[k].pctVals = append(passes[k].pctVals, pctOf(m))
		passes[k].pct = append(passes[k].pct, m.spec.Kind == Distribution)
	}
	userModes := make([]uint64, len(e.ustate))
	for u := range e.ustate {
		userModes[u] = uint64(e.ustate[u].modes)
	}
	passes[1] = stratPass{n: 2, ref: 0, active: []bool{false, true}, member: sidesModes, stratum: strataKept, nStrata: nS, present: e.strat.modes}
	passes[2] = stratPass{n: 2, ref: 0, active: []bool{false, true}, member: sidesModes, stratum: strataUser, nStrata: len(e.ustate), present: userModes}
	type at struct{ pass, j int }
	parityAt := map[string]at{}
	for i := range r.Parity {
		m := parityDef(r.Parity[i].Metric)
		if m == nil {
			continue
		}
		k := 1
		if behaviour(m) {
			k = 2
		}
		parityAt[m.spec.Name] = at{k, len(passes[k].ms)}
		passes[k].ms = append(passes[k].ms, m)
		passes[k].pctVals = append(passes[k].pctVals, pctOf(m))
		passes[k].pct = append(passes[k].pct, m.spec.Kind == Distribution)
	}
	// The passes are independent: run them on every core, each in two
	// halves. The first (the strata's totals) reads the kept events in the
	// order read, when each day's strata are together and stay in cache;
	// then the events are grouped by block of users (the percentiles
	// moving with them), and the second half (each user's influence)
	// reads them so. The within-user pass, whose strata are the users,
	// runs whole after the grouping.
	//
	// The two halves of the groups' metrics (0 and 3), the longest, start
	// first, so that on two cores they run beside each other and the
	// parity's two shorter passes (1, 2) beside each other after them,
	// rather than one long pass alone at the end.
	order := [4]int{0, 3, 1, 2}
	var outs [4][][]stratCmp
	var finish [4]func() [][]stratCmp
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
	for _, k := range order {
		if len(passes[k].ms) == 0 || passes[k].stratum == strataUser {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			finish[k] = e.stratPrepare(passes[k])
		}()
	}
	wg.Wait()
	var moved [][]float32
	for _, v := range pcts {
		moved = append(moved, v)
	}
	e.stratSortByUser(moved...)
	for _, k := range order {
		if len(passes[k].ms) == 0 {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if finish[k] != nil {
				outs[k] = finish[k]()
			} else {
				outs[k] = e.stratRun(passes[k])
			}
		}()
	}
	wg.Wait()
	for i := range r.Tests {
		t := &r.Tests[i]
		j := -1
		for k := range e.metrics {
			if e.metrics[k].spec.Name == t.Metric {
				j = k
			}
		}
		pass := 0
		if j >= half {
			pass, j = 3, j-half
		}
		if j < 0 || outs[pass] == nil {
			t.Adjustment = AdjustNone
			continue
		}
		c := outs[pass][j][index[t.Group]]
		e.applyStrat(t, c, AdjustMantelHaenszel)
		if c.ok {
			tests[i] = &c
		}
	}
	for i := range r.Parity {
		t := &r.Parity[i]
		pa, ok := parityAt[t.Metric]
		if !ok {
			t.Adjustment = AdjustNone
			continue
		}
		c := outs[pa.pass][pa.j][1]
		adj := AdjustMantelHaenszel
		if pa.pass == 2 {
			adj = AdjustWithinUser
			if c.shared < int64(e.spec.MinGroupSize) {
				c.ok = false
			}
		}
		e.applyStrat(t, c, adj)
		if c.ok {
			parity[i] = &c
		}
	}
	return tests, parity
}

// behaviour says whether a parity metric measures what users do (clicks)
// rather than what the platform gives them.
func behaviour(m *metricDef) bool {
	return m.field == mfClicked || m.field == mfConverted
}

// parityDef is the parity metric named name, or nil.
func parityDef(name string) *metricDef {
	for j := range parityMetrics {
		if parityMetrics[j].spec.Name == name {
			return &parityMetrics[j]
		}
	}
	return nil
}
