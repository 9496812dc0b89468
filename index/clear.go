package index

import (
	"runtime"

	"github.com/RoaringBitmap/roaring/v2"
)

// Clearing a number out of every bitmap, once per write.
//
// An erasure, a record that cannot be diffed and a user made unknown take
// the user's number out of every fact's bitmap (a thousand or more: one
// per tag). Done number by number, that is a random probe of every bitmap
// per number, the costly part of a replay. So, within one write (one
// holding of the write lock: an Apply of a batch of changelog events, a
// Load, a LoadMany...), the numbers to clear are collected (clearAll) and
// cleared all at once (flushClears): each bitmap once, its numbers in
// order, the bitmaps shared out among the cores.
//
// Readers hold the read lock and every write releases the write lock
// through unlock, which flushes first: no reader ever sees a number that
// is still to be cleared, so what the index keeps of an erased user ("all"
// and "erased", no other fact) holds at every point a reader, a
// checkpoint, Stats or Equal can observe.
//
// Within the write, the facts of a number still to be cleared are not
// read from the bitmaps by anyone, and every write to them either waits
// for the clear or is one the clear cannot undo:
//
//   - a fact added to it (the facts of its new record, addFact) is kept
//     aside and added after the clear, in order;
//   - anything else that reads or changes its bits (removeFact, setUser,
//     diffUser, heldWithheld, a second clear of it, making it unknown)
//     flushes first (settle);
//   - a write that reads or changes whole bitmaps (many users made
//     unknown at once, a bulk load, Compact, the derived bitmaps' update
//     at unlock) flushes first.
//
// The unknown users' bitmap and the number -> ID table are changed at
// once, never deferred: what the checks of the next events of the write
// read (checkRecord, markID, unk) is always current.

// clearAdd is a fact added to a number still to be cleared: added after
// the clear.
type clearAdd struct {
	b   *roaring.Bitmap
	num uint32
}

// clearing is the state of the clears of one write (under the write lock).
type clearing struct {
	nums *roaring.Bitmap // numbers to clear out of every bitmap but the unknown users'
	n    int             // nums's cardinality (0: nothing pending, the fast path)
	adds []clearAdd      // facts added to numbers of nums since they joined it, in order
}

// pendingClear reports whether num is to be cleared at the end of this
// write.
func (x *Index) pendingClear(num uint32) bool {
	return x.clr.n > 0 && x.clr.nums.Contains(num)
}

// settle flushes the clears if num is still to be cleared: call it before
// reading or removing a fact of num.
func (x *Index) settle(num uint32) {
	if x.pendingClear(num) {
		x.flushClears()
	}
}

// removeAll takes number num out of every fact's bitmap (when the write
// ends, see flushClears), and out of the unknown users when unknownToo (at
// once).
func (x *Index) removeAll(num uint32, unknownToo bool) {
	x.touch(num)
	if unknownToo {
		x.unk.Remove(num)
	}
	// A second clear of num in the same write: the facts added since the
	// first are cleared too, so the first is flushed (facts kept aside
	// are not dropped one by one).
	x.settle(num)
	if x.clr.nums == nil {
		x.clr.nums = roaring.New()
	}
	x.clr.nums.Add(num)
	x.clr.n++
}

// addPending adds num to b, after the clear when num is still to be
// cleared.
func (x *Index) addPending(b *roaring.Bitmap, num uint32) {
	if x.pendingClear(num) {
		x.clr.adds = append(x.clr.adds, clearAdd{b, num})
		return
	}
	b.Add(num)
}

// flushClears clears the numbers collected by removeAll out of every
// bitmap but the unknown users', then adds the facts kept aside. Call it
// under the write lock.
func (x *Index) flushClears() {
	c := &x.clr
	if c.n == 0 {
		return
	}
	nums := c.nums.ToArray()
	if x.bmList == nil {
		x.bmList = make([]*roaring.Bitmap, 0, len(x.bm))
		for _, b := range x.bm {
			x.bmList = append(x.bmList, b)
		}
	}
	bms := x.bmList
	workers := 1
	if len(bms)*len(nums) >= flushParallel {
		workers = runtime.GOMAXPROCS(0)
	}
	unk, all := x.unk, c.nums
	parallel(len(bms), workers, func(_, lo, hi int) {
		for _, b := range bms[lo:hi] {
			if b != unk {
				removeSorted(b, all, nums)
			}
		}
	})
	for _, a := range c.adds {
		a.b.Add(a.num)
	}
	clear(c.adds)
	c.adds = c.adds[:0]
	c.nums.Clear()
	c.n = 0
}

// removeSorted removes nums (sorted; the elements of p) from b. Most
// bitmaps hold few of them, so only those held are removed: found one
// lookup each (read only) when they are few, by intersecting b with p
// (galloping through each container) when they are many.
func removeSorted(b, p *roaring.Bitmap, nums []uint32) {
	if b.IsEmpty() {
		return
	}
	if len(nums) >= intersectMin {
		held := roaring.And(b, p)
		it := held.Iterator()
		for it.HasNext() {
			b.Remove(it.Next())
		}
		return
	}
	lo, hi := b.Minimum(), b.Maximum()
	for _, n := range nums {
		if n < lo {
			continue
		}
		if n > hi {
			break
		}
		if b.Contains(n) {
			b.Remove(n)
		}
	}
}

// intersectMin is the fewest numbers a flush finds in each bitmap by
// intersection rather than one lookup each (a variable for the tests).
var intersectMin = 256

// flushParallel is the fewest (bitmap, number) pairs a flush shares out
// among the cores.
const flushParallel = 256
