package index

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// LoadMany is Load for many records at once, with the same result as
// loading them one by one in order, on every core: the records' checks
// that need no index state and the sorting of their facts into one list of
// numbers per fact run in parallel, the checks against the index's state
// (a number held by another user, out of range, unknown) and the number ->
// ID table in order, and each fact's numbers are added to its bitmap with
// one sorted bulk add (facts spread over the cores). Records in increasing
// number order (as Build reads them, shard page by shard page, and as a
// generator hands them out) make every bulk add an append.
//
// A record that cannot be trusted makes its user unknown, as Load does.
func (x *Index) LoadMany(recs []consent.Record) {
	if len(recs) == 0 {
		return
	}
	x.mu.Lock()
	defer x.unlock()
	x.dropDerived()
	x.loadMany(recs, runtime.GOMAXPROCS(0))
}

// bulkMin is the fewest records worth a goroutine of LoadMany (a variable
// for the tests).
var bulkMin = 4096

func (x *Index) loadMany(recs []consent.Record, workers int) {
	workers = max(1, min(workers, len(recs)/bulkMin))
	// The checks without state, in parallel: pure[i] says record i has a
	// version, a number, a valid ID and the number is of the ID's shard.
	pure := make([]bool, len(recs))
	parallel(len(recs), workers, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			rec := &recs[i]
			if rec.Version == 0 || rec.Number == 0 || consent.ValidUserID(rec.UserID) != nil {
				continue
			}
			shard, _ := store.NumberShard(rec.Number, x.shards)
			pure[i] = store.ShardOf(rec.UserID, x.shards) == shard
		}
	})
	// In order: the checks against the index's state and the ID table.
	// A record that fails goes the way of Load, after the records before
	// it are in.
	pending := make([]int32, 0, len(recs))
	for i := range recs {
		rec := &recs[i]
		if rec.Version == 0 && rec.Number == 0 {
			continue
		}
		if pure[i] {
			shard, local := store.NumberShard(rec.Number, x.shards)
			t := &x.ids[shard]
			if held := t.slot(local); local <= t.n+maxGap && (held == nil || string(held) == rec.UserID) && !x.unk.Contains(rec.Number) {
				if len(x.unplaced) > 0 {
					delete(x.unplaced, rec.UserID)
				}
				if rec.State.Erased {
					x.clearID(rec.Number)
				} else {
					x.setID(rec)
				}
				pending = append(pending, int32(i))
				continue
			}
		}
		x.addBulk(recs, pending, workers)
		pending = pending[:0]
		x.loadOne(rec)
	}
	x.addBulk(recs, pending, workers)
}

// loadOne is Load's body (under the write lock).
func (x *Index) loadOne(rec *consent.Record) {
	if rec.Version == 0 && rec.Number == 0 {
		return
	}
	if why := x.checkRecord(rec, -1); why != "" {
		x.unknownUser(rec.UserID, rec.Number, -1, why)
		return
	}
	if len(x.unplaced) > 0 {
		delete(x.unplaced, rec.UserID)
	}
	if x.unk.Contains(rec.Number) {
		x.resetUser(rec)
		return
	}
	x.loadFast(rec)
}

// parallel runs f over [0, n) cut into one contiguous range per worker
// (w is the worker's number).
func parallel(n, workers int, f func(w, lo, hi int)) {
	if workers <= 1 {
		f(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(w, lo, hi)
		}()
	}
	wg.Wait()
}

// eachJob runs f(i) for every i in [0, n) on workers goroutines, each
// taking the next i when done with one.
func eachJob(n, workers int, f func(i int)) {
	var next atomic.Int64
	parallel(workers, workers, func(int, int, int) {
		for {
			i := int(next.Add(1)) - 1
			if i >= n {
				return
			}
			f(i)
		}
	})
}

// factPairs are one worker's numbers per fact (lists, indexed like names),
// in the order of its records; facts are numbered as they are first met.
type factPairs struct {
	lists [][]uint32
	names []string
	byTag map[tags.Tag]uint32
	byStr map[string]uint32
	fixed [5]uint32 // all, off, minor, erased, restricted: 1 + their index in names (0: not yet)
	hint  int       // records of the worker: the capacity of a new list of a fixed fact
}

var fixedFacts = [5]string{factAll, factOff, factMinor, factErased, factRestricted}

func (p *factPairs) push(id, num uint32) {
	p.lists[id] = append(p.lists[id], num)
}

func (p *factPairs) newFact(name string, capacity int) uint32 {
	p.names = append(p.names, name)
	p.lists = append(p.lists, make([]uint32, 0, capacity))
	return uint32(len(p.names) - 1)
}

func (p *factPairs) fixedID(i int) uint32 {
	if p.fixed[i] == 0 {
		capacity := 64
		if i == 0 {
			capacity = p.hint
		}
		p.fixed[i] = p.newFact(fixedFacts[i], capacity) + 1
	}
	return p.fixed[i] - 1
}

func (p *factPairs) strID(fact string) uint32 {
	id, ok := p.byStr[fact]
	if !ok {
		id = p.newFact(fact, 64)
		p.byStr[fact] = id
	}
	return id
}

func (p *factPairs) tagID(t tags.Tag) uint32 {
	id, ok := p.byTag[t]
	if !ok {
		id = p.newFact(factTag(t), 64)
		p.byTag[t] = id
	}
	return id
}

func (p *factPairs) add(rec *consent.Record) {
	num := rec.Number
	st := &rec.State
	p.push(p.fixedID(0), num)
	switch {
	case st.Erased:
		p.push(p.fixedID(3), num)
		return
	case st.Restricted:
		p.push(p.fixedID(4), num)
		return
	}
	if st.PersonalizationOff {
		p.push(p.fixedID(1), num)
	}
	if st.Minor {
		p.push(p.fixedID(2), num)
	}
	for _, ch := range st.RefusedChannels {
		p.push(p.strID(factRefused(ch)), num)
	}
	if len(st.Sensitive) > 0 || st.Guardian != nil {
		for _, f := range extraFacts(st) {
			p.push(p.strID(f), num)
		}
	}
	suppressed := len(rec.Tags.Suppressed) > 0
	for i := range rec.Tags.Entries {
		t := rec.Tags.Entries[i].Tag
		if !suppressed || tagFact(&rec.Tags, t) {
			p.push(p.tagID(t), num)
		}
	}
}

// addBulk adds the facts of recs[pending...] (checked, their IDs recorded)
// to the bitmaps.
func (x *Index) addBulk(recs []consent.Record, pending []int32, workers int) {
	if len(pending) == 0 {
		return
	}
	// A number of recs may be one a record before cleared (see clear.go).
	x.flushClears()
	workers = max(1, min(workers, len(pending)/bulkMin))
	pairs := make([]factPairs, workers)
	parallel(len(pending), workers, func(w, lo, hi int) {
		p := &pairs[w]
		p.byTag, p.byStr, p.hint = map[tags.Tag]uint32{}, map[string]uint32{}, hi-lo
		for _, i := range pending[lo:hi] {
			p.add(&recs[i])
		}
	})
	// One job per fact: its bitmap and its lists, in worker order.
	type job struct {
		b     *roaring.Bitmap
		lists [][]uint32
		n     int
	}
	jobs := map[string]*job{}
	for w := range pairs {
		for f, name := range pairs[w].names {
			nums := pairs[w].lists[f]
			if len(nums) == 0 {
				continue
			}
			j := jobs[name]
			if j == nil {
				b := x.bm[name]
				if b == nil {
					b = x.newBitmap(name)
				}
				j = &job{b: b}
				jobs[name] = j
			}
			j.lists = append(j.lists, nums)
			j.n += len(nums)
		}
	}
	all := make([]*job, 0, len(jobs))
	for _, j := range jobs {
		all = append(all, j)
	}
	// The largest first, so the cores finish together.
	slices.SortFunc(all, func(a, b *job) int { return b.n - a.n })
	eachJob(len(all), min(workers, len(all)), func(i int) {
		for _, nums := range all[i].lists {
			all[i].b.AddMany(nums)
		}
	})
}

// Compact gives back the spare capacity the bitmaps and the number -> ID
// tables grew while users were added (their containers and blocks grow by
// appending): each fact's bitmap is replaced by an exact copy, and so is
// each block of IDs with room to spare. Build calls it; an owner that loads with
// LoadMany calls it when done. Audiences taken before keep the bitmaps
// they hold.
func (x *Index) Compact() {
	x.mu.Lock()
	defer x.unlock()
	x.compact()
}

func (x *Index) compact() {
	x.flushClears()
	x.compactIDs()
	x.bmList = nil
	for k, b := range x.bm {
		c := b.Clone()
		x.bm[k] = c
		if isGrant(k) {
			x.grants[k] = c
		}
		if k == factUnknown {
			x.unk = c
		}
	}
	x.dropDerived()
}
