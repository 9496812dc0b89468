package index

import (
	"strconv"
	"sync"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/recguard/recguard/consent"
)

// Derived bitmaps.
//
// An audience is its segment's users minus the users no push on its channel
// may reach: unknown users, erased users, users who restricted processing,
// those who refused the channel and, for a personal push, those with
// personalization off and minors without guardian consent in force. That
// exclusion is the same for every audience of a (channel, personal) pair,
// so the index keeps it as one derived bitmap per pair (excluded), and,
// for the facts audiences start from (the smallest positive operand of a
// conjunction, usually a tag), the fact's users minus that exclusion
// (eligible), so a two-tag count is one intersection count of two
// eligible bitmaps, with no bitmap built (countPair). An eligible bitmap
// dense enough also keeps a dense form (dense.go) for that count.
//
// Derived bitmaps are built the first time an audience needs them and kept
// current as the index changes: every write that changes the facts of a
// number records the number (touch), and, before the write lock is
// released (unlock), the number's bit in every derived bitmap is computed
// afresh from its facts and the settings. Readers hold the read lock, so
// none ever sees a derived bitmap behind the facts. A change of the
// settings, and a bulk change (many users made unknown at once, a bulk
// load), drops them all; they are built again at the next audience.
//
// Readers build derived bitmaps under the read lock, so building is
// serialised by derived.mu; writers, which hold the write lock, need no
// other.

// variant is what the exclusion of an audience depends on besides the
// facts and the settings: its channel and whether it is personal (targeted,
// or its segment uses personal data).
type variant struct {
	channel  string
	personal bool
}

// derivedKey names an eligible bitmap: the users of fact, less the
// exclusion of v.
type derivedKey struct {
	fact string
	v    variant
}

type eligibleEntry struct {
	bm *roaring.Bitmap
	// dense is bm's dense form (dense.go), or nil.
	dense []uint64
	used  uint64 // derived.clock at the last use
}

// maxEligible bounds the eligible bitmaps kept (least recently used goes
// first): each costs at most its fact's bitmap (and its dense form, if it
// has one: see maxDense) and costs every change (touch) a lookup.
const maxEligible = 32

// maxTouched is how many numbers one write may touch before the derived
// bitmaps are dropped (and rebuilt at the next audience) instead of
// updated number by number.
const maxTouched = 1 << 16

type derived struct {
	mu       sync.Mutex
	excluded map[variant]*roaring.Bitmap
	eligible map[derivedKey]*eligibleEntry
	clock    uint64
	// Writer state (under the index's write lock).
	touched []uint32
	dirty   bool // drop everything at unlock
}

// derivedCounters count what the derived bitmaps did (tests read them).
type derivedCounters struct {
	builds, drops, updates uint64
	denseBuilds            uint64
	pairs                  [3]uint64 // two-fact counts by how (countPair)
}

// touch records that the facts of number num changed in this write.
func (x *Index) touch(num uint32) {
	d := &x.dv
	if len(d.excluded) == 0 || d.dirty {
		return
	}
	if n := len(d.touched); n > 0 && d.touched[n-1] == num {
		return
	}
	if len(d.touched) >= maxTouched {
		d.dirty = true
		d.touched = d.touched[:0]
		return
	}
	d.touched = append(d.touched, num)
}

// dropDerived drops every derived bitmap at the end of this write.
func (x *Index) dropDerived() {
	if len(x.dv.excluded) > 0 {
		x.dv.dirty = true
	}
}

// unlock clears the numbers this write collected (clear.go), brings the
// derived bitmaps up to date with this write and releases the write lock.
func (x *Index) unlock() {
	x.syncDerived()
	x.mu.Unlock()
}

// syncDerived clears the numbers this write collected (their facts are
// read below), then brings the derived bitmaps up to date with the numbers
// touched (or drops them). Call it under the write lock.
func (x *Index) syncDerived() {
	x.flushClears()
	d := &x.dv
	if d.dirty {
		d.excluded, d.eligible = nil, nil
		d.touched = d.touched[:0]
		d.dirty = false
		x.dcount.drops++
		return
	}
	if len(d.touched) == 0 {
		return
	}
	guard := x.guardianBitmaps()
	for _, num := range d.touched {
		always, personal := x.excludedBits(num, guard)
		for v, b := range d.excluded {
			if always || (v.personal && personal) || x.get(factRefused(v.channel)).Contains(num) {
				b.Add(num)
			} else {
				b.Remove(num)
			}
		}
		for k, e := range d.eligible {
			if x.get(k.fact).Contains(num) && !d.excluded[k.v].Contains(num) {
				e.bm.Add(num)
				if e.dense != nil {
					e.dense = denseSet(e.dense, num)
				}
			} else {
				e.bm.Remove(num)
				denseClear(e.dense, num)
			}
		}
	}
	x.dcount.updates += uint64(len(d.touched))
	d.touched = d.touched[:0]
}

// excludedBits returns whether num is out of every audience (number 0,
// unknown, erased, restricted) and whether it is out of every personal one
// (personalization off, a minor without guardian consent in force; guard
// are the guardian grant bitmaps that count now).
func (x *Index) excludedBits(num uint32, guard []*roaring.Bitmap) (always, personal bool) {
	if num == 0 || x.unk.Contains(num) || x.get(factErased).Contains(num) || x.get(factRestricted).Contains(num) {
		return true, true
	}
	if x.get(factOff).Contains(num) {
		return false, true
	}
	if x.get(factMinor).Contains(num) {
		for _, g := range guard {
			if g.Contains(num) {
				return false, false
			}
		}
		return false, true
	}
	return false, false
}

// guardianBitmaps returns the guardian grant bitmaps that count under the
// settings (see guardianGranted).
func (x *Index) guardianBitmaps() []*roaring.Bitmap {
	var out []*roaring.Bitmap
	for k, b := range x.grants {
		if k[0] != 'g' {
			continue
		}
		if v, err := strconv.Atoi(k[2:]); err == nil && x.settings.GrantCurrent(consent.PurposeGuardian, v) {
			out = append(out, b)
		}
	}
	return out
}

// excludedFor returns the exclusion of v, building it if needed. Call it
// under the read lock (or the write lock) and do not modify the result.
func (x *Index) excludedFor(v variant) *roaring.Bitmap {
	d := &x.dv
	d.mu.Lock()
	defer d.mu.Unlock()
	return x.excludedLocked(v)
}

func (x *Index) excludedLocked(v variant) *roaring.Bitmap {
	d := &x.dv
	if b := d.excluded[v]; b != nil {
		return b
	}
	ops := []*roaring.Bitmap{x.unk, x.get(factErased), x.get(factRestricted), x.get(factRefused(v.channel))}
	if v.personal {
		ops = append(ops, x.get(factOff), x.minorsWithoutGuardian())
	}
	b := roaring.FastOr(ops...)
	b.Add(0)
	if d.excluded == nil {
		d.excluded = map[variant]*roaring.Bitmap{}
	}
	d.excluded[v] = b
	x.dcount.builds++
	return b
}

// eligibleFor returns the users of fact less the exclusion of v, building
// it if needed. Call it under the read lock and do not modify the result.
func (x *Index) eligibleFor(fact string, v variant) *roaring.Bitmap {
	d := &x.dv
	d.mu.Lock()
	defer d.mu.Unlock()
	return x.eligibleLocked(fact, v).bm
}

// eligibleLocked returns the eligible entry of fact and v, building it if
// needed. Call it under d.mu.
func (x *Index) eligibleLocked(fact string, v variant) *eligibleEntry {
	d := &x.dv
	d.clock++
	k := derivedKey{fact, v}
	if e := d.eligible[k]; e != nil {
		e.used = d.clock
		return e
	}
	ex := x.excludedLocked(v)
	if d.eligible == nil {
		d.eligible = map[derivedKey]*eligibleEntry{}
	}
	if len(d.eligible) >= maxEligible {
		var oldest derivedKey
		first := true
		for k, e := range d.eligible {
			if first || e.used < d.eligible[oldest].used {
				oldest, first = k, false
			}
		}
		delete(d.eligible, oldest)
	}
	e := &eligibleEntry{bm: roaring.AndNot(x.get(fact), ex), used: d.clock}
	d.eligible[k] = e
	x.dcount.builds++
	return e
}

// denseLocked returns e's dense form, building it if e is dense enough
// (wantDense) and has none, or nil. At most maxDense entries keep one: the
// least recently used other entry's goes first. Call it under d.mu.
func (x *Index) denseLocked(e *eligibleEntry) []uint64 {
	if e.dense != nil || !wantDense(e.bm) {
		return e.dense
	}
	d := &x.dv
	n := 0
	var oldest *eligibleEntry
	for _, o := range d.eligible {
		if o.dense == nil {
			continue
		}
		n++
		if oldest == nil || o.used < oldest.used {
			oldest = o
		}
	}
	if n >= maxDense {
		oldest.dense = nil
	}
	e.dense = newDense(e.bm)
	x.dcount.denseBuilds++
	return e.dense
}

// DerivedStats describes the derived bitmaps an index keeps (derived.go,
// dense.go): they are built by audiences and counts, kept current by
// writes and dropped by settings changes and bulk changes.
type DerivedStats struct {
	Exclusions int // exclusion bitmaps, one per (channel, personal) pair
	Eligible   int // eligible bitmaps, at most maxEligible (32)
	Dense      int // dense forms of eligible bitmaps, at most maxDense (16)
	// RoaringBytes is the roaring bitmaps' size (GetSizeInBytes), and
	// DenseBytes the dense forms' (8 bytes a word allocated).
	RoaringBytes, DenseBytes uint64
}

// DerivedStats returns what derived bitmaps the index keeps now.
func (x *Index) DerivedStats() DerivedStats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	d := &x.dv
	d.mu.Lock()
	defer d.mu.Unlock()
	var s DerivedStats
	s.Exclusions = len(d.excluded)
	for _, b := range d.excluded {
		s.RoaringBytes += b.GetSizeInBytes()
	}
	s.Eligible = len(d.eligible)
	for _, e := range d.eligible {
		s.RoaringBytes += e.bm.GetSizeInBytes()
		if e.dense != nil {
			s.Dense++
			s.DenseBytes += 8 * uint64(cap(e.dense))
		}
	}
	return s
}
