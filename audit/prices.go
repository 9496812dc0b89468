package audit

import (
	"math"
)

// Same-item prices at the user level (issue 13). The cell-level sign test
// counts item-time cells where a group paid more as independent witnesses;
// when users differ in their own price level (a discount tier, a region,
// the same distribution in every group), the cells of one user are not
// independent and the test finds gaps that are not there. So the decision
// compares users within cells (userPrices): the log prices of the group
// and of the reference in the same item-time cell, pooled over cells, with
// user-clustered errors. A user-level price factor shared by every group
// then moves both sides alike, and its spread among users widens the
// interval as it should.

// userCellPrice is one price event: its user, its cell, the log of its
// price (NaN for a price not above 0: not compared). The events are kept
// in pages of a fixed size (no pointers, no regrowth copies), 12 bytes
// each.
type userCellPrice struct {
	user, cell int32
	logPrice   float32
}

const pricePage = 1 << 16

// userPriceX is a price event of a user whose attributes put it in other
// groups than the user's usual ones (rare: kept apart with its groups).
type userPriceX struct {
	userCellPrice
	mask uint64
}

// userPrice records a price event of user ui in cell c, counted in groups
// mask (x: other groups than the user's usual ones).
func (e *engine) userPrice(ui int32, mask uint64, x bool, c int32, p float64) {
	lp := float32(math.NaN())
	if p > 0 {
		lp = float32(math.Log(p))
	}
	ev := userCellPrice{ui, c, lp}
	if x {
		e.upriceX = append(e.upriceX, userPriceX{ev, mask})
		return
	}
	if n := len(e.uprice); n == 0 || len(e.uprice[n-1]) == pricePage {
		e.uprice = append(e.uprice, make([]userCellPrice, 0, pricePage))
	}
	last := &e.uprice[len(e.uprice)-1]
	*last = append(*last, ev)
}

// userPrices replaces the decision of each price comparison in out by the
// user-level one, when both sides have at least two users with a price in
// a cell the reference was offered.
//
// The comparison is stratified by cell (see stratify.go): within each
// item-time cell the difference of the sides' mean log prices, pooled over
// the cells with Mantel-Haenszel weights, with standard errors clustered by
// user (or the permutation fallback when few users carry a side). A
// user's own price level, shared by every group, spreads both sides alike
// and widens the interval; a group that browses other items than the
// reference is compared on the cells they share only, and a cell's
// reference price is never divided into (no bias from a cell where the
// reference saw one price). MeanExcessPct is 100 (exp(D) - 1): how much
// more, in percent, the group paid for the same item at the same time.
func (e *engine) userPrices(out []PriceResult) {
	if len(out) == 0 {
		return
	}
	ng := len(e.groups)
	index := make(map[string]int, ng)
	for i, g := range e.spec.Groups {
		index[g.Name] = i
	}
	active := make([]bool, ng)
	for _, pr := range out {
		active[index[pr.Group]] = true
	}
	obs := func(f func(b *obsBatch)) {
		b := newObsBatch(1)
		add := func(ev userCellPrice, mask uint64) {
			if lp := ev.logPrice; lp == lp {
				b.vals[len(b.user)] = float64(lp)
				b.push(ev.user, ev.cell, mask, 1)
				if len(b.user) == obsBatchLen {
					f(b)
					b.reset()
				}
			}
		}
		plain := e.usersPlain()
		for _, page := range e.uprice {
			for _, ev := range page {
				add(ev, plain[ev.user])
			}
		}
		for _, ev := range e.upriceX {
			add(ev.userCellPrice, ev.mask)
		}
		if len(b.user) > 0 {
			f(b)
		}
	}
	// The sides present in each cell, as the tail recorded them.
	present := make([]uint64, e.nCells)
	for c := range present {
		present[c] = e.cellInfo(int32(c)).priced
	}
	cmps := e.stratRun(stratPass{n: ng, ref: e.ref, active: active, nStrata: int(e.nCells), obs: obs, present: present})[0]
	for i := range out {
		pr := &out[i]
		c := cmps[index[pr.Group]]
		if !c.ok {
			continue // fewer than two users on a side: the sign test stands
		}
		if e.priceCmps == nil {
			e.priceCmps = map[string]stratCmp{}
		}
		e.priceCmps[pr.Group] = c
		pr.Test, pr.Users, pr.ReferenceUsers = "cluster_robust_t", c.usersA, c.usersRef
		if c.perm {
			pr.Test = "cluster_permutation"
		}
		pr.MeanExcessPct = 100 * math.Expm1(c.diff)
		pr.MeanExcessPctCI = pctInterval(c, e.conf)
		pr.P = c.p
	}
}

// pctInterval is a stratified log-price comparison's interval at level
// conf, as a percent excess.
func pctInterval(c stratCmp, conf float64) Interval {
	d, _ := c.intervals(conf)
	return Interval{Lo: 100 * math.Expm1(d.Lo), Hi: 100 * math.Expm1(d.Hi)}
}
