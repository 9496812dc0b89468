package audit

import (
	"math"
	"math/bits"
	"slices"
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

// cellPrice is one price event of a user: its cell and its price.
type cellPrice struct {
	cell  int32
	price float32
}

// cellPriceX is a price event of a user whose attributes put it in other
// groups than the user's usual ones.
type cellPriceX struct {
	user int32
	cellPrice
	mask uint64
}

// userPrice records a price event of user ui in cell c.
func (e *engine) userPrice(ui int32, mask uint64, c int32, p float64) {
	if mask == e.ustate[ui].plain {
		for int(ui) >= len(e.uprice) {
			e.uprice = append(e.uprice, nil)
		}
		e.uprice[ui] = append(e.uprice[ui], cellPrice{c, float32(p)})
		return
	}
	e.upriceX = append(e.upriceX, cellPriceX{ui, cellPrice{c, float32(p)}, mask})
}

// userPrices replaces the decision of each price comparison in out by the
// user-level one, when both sides have at least two users with a price in
// a cell the reference was offered.
func (e *engine) userPrices(out []PriceResult, suppressed []bool) {
	if len(out) == 0 {
		return
	}
	refBit := uint64(1) << e.ref
	refMean := make([]float64, e.nCells)
	for c := range e.nCells {
		refMean[c] = math.NaN()
		ci := e.cellInfo(c)
		if ci.mask&refBit == 0 {
			continue
		}
		blk := e.block(ci.off, int32(bits.OnesCount64(ci.mask)))
		r := blk[bits.OnesCount64(ci.mask&(refBit-1))]
		if m := r.sum / float64(r.n); m > 0 {
			refMean[c] = m
		}
	}
	ng := len(e.groups)
	mo := make([]moments, ng)
	per := make([]ysum, ng)
	slices.SortFunc(e.upriceX, func(a, b cellPriceX) int { return int(a.user) - int(b.user) })
	xi := 0
	for ui := range e.ustate {
		u := &e.ustate[ui]
		clear(per)
		var events []cellPrice
		if ui < len(e.uprice) {
			events = e.uprice[ui]
		}
		for _, cp := range events {
			if m := refMean[cp.cell]; !math.IsNaN(m) {
				x := float64(cp.price)/m - 1
				for g := u.plain; g != 0; g &= g - 1 {
					s := &per[bits.TrailingZeros64(g)]
					s.y += x
					s.n++
				}
			}
		}
		for ; xi < len(e.upriceX) && int(e.upriceX[xi].user) == ui; xi++ {
			cp := e.upriceX[xi]
			if m := refMean[cp.cell]; !math.IsNaN(m) {
				x := float64(cp.price)/m - 1
				for g := cp.mask; g != 0; g &= g - 1 {
					s := &per[bits.TrailingZeros64(g)]
					s.y += x
					s.n++
				}
			}
		}
		for g, s := range per {
			if s.n == 0 || suppressed[g] {
				continue
			}
			m := &mo[g]
			m.g++
			m.sy += s.y
			m.sn += s.n
			m.syy += s.y * s.y
			m.snn += s.n * s.n
			m.syn += s.y * s.n
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
		diff, _ := c.intervals(e.conf)
		pr.Test, pr.Users, pr.ReferenceUsers = "cluster_robust_t", c.usersA, c.usersRef
		pr.MeanExcessPct = 100 * c.diff
		pr.MeanExcessPctCI = Interval{Lo: 100 * diff.Lo, Hi: 100 * diff.Hi}
		pr.P = c.p
	}
}
