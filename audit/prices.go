package audit

import (
	"math"
	"math/bits"
)

// Same-item prices at the user level (issue 13). The cell-level sign test
// counts item-time cells where a group paid more as independent witnesses;
// when users differ in their own price level (a discount tier, a region,
// the same distribution in every group), the cells of one user are not
// independent and the test finds gaps that are not there. So the decision
// compares users: each price event is set against its cell's reference
// price (the reference group's mean price for that item at that time),
// x = price / reference - 1; each user's x are summed over their events in
// cells the reference was offered, and the group's users are compared with
// the reference's users by the cluster-robust t test of cluster.go on the
// ratio-of-sums mean of x. A user-level price factor shared by every group
// then moves both sides alike, and its spread among users widens the
// interval as it should.

// userCellPrice is one price event: its user, its cell, its price. The
// events are kept in pages of a fixed size (no pointers, no regrowth
// copies), 12 bytes each.
type userCellPrice struct {
	user, cell int32
	price      float32
}

const pricePage = 1 << 16

// userPriceX is a price event of a user whose attributes put it in other
// groups than the user's usual ones (rare: kept apart with its groups).
type userPriceX struct {
	userCellPrice
	mask uint64
}

// userPrice records a price event of user ui in cell c.
func (e *engine) userPrice(ui int32, mask uint64, c int32, p float64) {
	ev := userCellPrice{ui, c, float32(p)}
	if mask != e.ustate[ui].plain {
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
func (e *engine) userPrices(out []PriceResult, suppressed []bool) {
	if len(out) == 0 {
		return
	}
	refBit := uint64(1) << e.ref
	refMean := make([]float32, e.nCells)
	for c := range e.nCells {
		refMean[c] = float32(math.NaN())
		ci := e.cellInfo(c)
		if ci.mask&refBit == 0 {
			continue
		}
		blk := e.block(ci.off, int32(bits.OnesCount64(ci.mask)))
		r := blk[bits.OnesCount64(ci.mask&(refBit-1))]
		if m := r.sum / float64(r.n); m > 0 {
			refMean[c] = float32(m)
		}
	}
	// Each user's sum of x and count, per group (user x group).
	ng := len(e.groups)
	per := make([]ysum, len(e.ustate)*ng)
	add := func(ev userCellPrice, mask uint64) {
		m := refMean[ev.cell]
		if m != m { // NaN: the reference was not offered the item then
			return
		}
		x := float64(ev.price)/float64(m) - 1
		base := int(ev.user) * ng
		for g := mask; g != 0; g &= g - 1 {
			s := &per[base+bits.TrailingZeros64(g)]
			s.y += x
			s.n++
		}
	}
	for _, page := range e.uprice {
		for _, ev := range page {
			add(ev, e.ustate[ev.user].plain)
		}
	}
	for _, ev := range e.upriceX {
		add(ev.userCellPrice, ev.mask)
	}
	mo := make([]moments, ng)
	for ui := range e.ustate {
		for g, s := range per[ui*ng : (ui+1)*ng] {
			if s.n == 0 || suppressed[g] {
				continue
			}
			mo[g].add(s)
		}
	}
	index := make(map[string]int, ng)
	for i, g := range e.spec.Groups {
		index[g.Name] = i
	}
	for i := range out {
		pr := &out[i]
		g := index[pr.Group]
		c := clusterCompare(mo[g], mo[e.ref])
		if !c.ok {
			continue // fewer than two users on a side: the sign test stands
		}
		if e.priceCmps == nil {
			e.priceCmps = map[string]clusterCmp{}
		}
		e.priceCmps[pr.Group] = c
		diff, _ := c.intervals(e.conf)
		pr.Test, pr.Users, pr.ReferenceUsers = "cluster_robust_t", c.usersA, c.usersRef
		pr.MeanExcessPct = 100 * c.diff
		pr.MeanExcessPctCI = Interval{Lo: 100 * diff.Lo, Hi: 100 * diff.Hi}
		pr.P = c.p
	}
}
