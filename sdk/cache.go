package sdk

import (
	"sync"
	"sync/atomic"
)

// ways is the associativity of the cache: a user can live in one of the
// ways slots of the set its hash picks.
const ways = 8

type slot struct {
	v   atomic.Pointer[view]
	ref atomic.Uint32 // CLOCK reference bit, set on hit
}

// cacheSet is one set of the set-associative cache. Readers go lock-free
// through the slots' atomic pointers; writers serialize on mu.
type cacheSet struct {
	mu    sync.Mutex
	hand  uint32
	slots [ways]slot
}

// cache is a bounded, set-associative map from user to view. Lookups take
// no lock and allocate nothing; inserts evict with CLOCK inside the set.
type cache struct {
	sets []cacheSet
	mask uint64
	// in holds what the cache's views share (see interner).
	in interner

	hits, misses, evictions atomic.Uint64
	size                    atomic.Int64
}

func newCache(capacity int) *cache {
	n := 1
	for n*ways < capacity {
		n <<= 1
	}
	return &cache{sets: make([]cacheSet, n), mask: uint64(n - 1), in: newInterner()}
}

func (c *cache) capacity() int { return len(c.sets) * ways }

// lookup returns the user's view, or nil. It is lock-free and allocation
// free.
func (c *cache) lookup(h uint64, userID string) *view {
	s := &c.sets[(h>>32^h)&c.mask]
	for i := range s.slots {
		sl := &s.slots[i]
		v := sl.v.Load()
		if v != nil && v.hash == h && v.userID() == userID {
			if sl.ref.Load() == 0 {
				sl.ref.Store(1)
			}
			return v
		}
	}
	return nil
}

// install stores v for its user. When the user is cached it replaces the
// cached view only if v is newer (a higher record version, or the same
// version under a newer settings generation, or the cached one is a
// placeholder); onlyIfPresent refuses to add a user who is not cached. It
// returns the view in force afterwards (nil when nothing is cached).
func (c *cache) install(v *view, onlyIfPresent bool) *view {
	s := &c.sets[(v.hash>>32^v.hash)&c.mask]
	s.mu.Lock()
	defer s.mu.Unlock()
	empty := -1
	for i := range s.slots {
		sl := &s.slots[i]
		cur := sl.v.Load()
		if cur == nil {
			if empty < 0 {
				empty = i
			}
			continue
		}
		if cur.hash != v.hash || cur.userID() != v.userID() {
			continue
		}
		if newer(v, cur) {
			sl.v.Store(v)
			return v
		}
		return cur
	}
	if onlyIfPresent {
		return nil
	}
	if empty < 0 {
		empty = s.victim()
		c.evictions.Add(1)
	} else {
		c.size.Add(1)
	}
	s.slots[empty].ref.Store(0)
	s.slots[empty].v.Store(v)
	return v
}

// newer reports whether v should replace cur.
func newer(v, cur *view) bool {
	if v.loading {
		return false // a placeholder never replaces anything
	}
	if cur.loading {
		return true
	}
	if v.version != cur.version {
		return v.version > cur.version
	}
	return v.gen > cur.gen
}

// victim picks the way to evict with CLOCK: the first way whose reference
// bit is clear, clearing bits as the hand passes. Placeholders are skipped
// while others exist so a loading user is not dropped mid-load.
func (s *cacheSet) victim() int {
	for pass := 0; pass < 3*ways; pass++ {
		i := int(s.hand % ways)
		s.hand++
		sl := &s.slots[i]
		if v := sl.v.Load(); v != nil && v.loading && pass < 2*ways {
			continue
		}
		if sl.ref.Load() != 0 {
			sl.ref.Store(0)
			continue
		}
		return i
	}
	return int(s.hand % ways)
}

// remove drops the user's view if it is the one given (used to drop a
// placeholder whose load failed).
func (c *cache) remove(v *view) {
	s := &c.sets[(v.hash>>32^v.hash)&c.mask]
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.slots {
		if s.slots[i].v.Load() == v {
			s.slots[i].v.Store(nil)
			c.size.Add(-1)
			return
		}
	}
}

// clear drops every view (used when the changelog was trimmed past the
// follower and the cache can no longer be trusted).
func (c *cache) clear() {
	for i := range c.sets {
		s := &c.sets[i]
		s.mu.Lock()
		for j := range s.slots {
			if s.slots[j].v.Swap(nil) != nil {
				c.size.Add(-1)
			}
		}
		s.mu.Unlock()
	}
}

// each calls fn for every cached non-placeholder view.
func (c *cache) each(fn func(*view)) {
	for i := range c.sets {
		s := &c.sets[i]
		for j := range s.slots {
			if v := s.slots[j].v.Load(); v != nil && !v.loading {
				fn(v)
			}
		}
	}
}

// dropUser removes the user's view (or placeholder) unless keep says to
// keep it. It locks only the user's set.
func (c *cache) dropUser(h uint64, userID string, keep func(*view) bool) {
	s := &c.sets[(h>>32^h)&c.mask]
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.slots {
		if v := s.slots[i].v.Load(); v != nil && v.hash == h && v.userID() == userID && !keep(v) {
			s.slots[i].v.Store(nil)
			c.size.Add(-1)
		}
	}
}

// drop removes every view (placeholders included) for which match is true.
func (c *cache) drop(match func(*view) bool) {
	for i := range c.sets {
		s := &c.sets[i]
		s.mu.Lock()
		for j := range s.slots {
			if v := s.slots[j].v.Load(); v != nil && match(v) {
				s.slots[j].v.Store(nil)
				c.size.Add(-1)
			}
		}
		s.mu.Unlock()
	}
}
