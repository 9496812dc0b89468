package sdk

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// ways is the associativity of the cache: a user can live in one of the
// ways slots of the set its hash picks.
const ways = 8

// view is the immutable cached answer for one user. A new view replaces the
// old one with an atomic pointer store; readers never see a view change.
type view struct {
	hash   uint64
	userID string
	rec    consent.Record
	// gen is the settings generation dec was computed under.
	gen uint64
	// pos is the changelog position rec was written at, when known (a
	// changelog event, this client's write); empty for a record read.
	pos store.Position
	dec consent.Decision
	// loading marks a placeholder inserted when a miss starts loading, so
	// changelog events for the user that arrive during the load are kept.
	loading bool
}

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
	// in shares the strings and lists many users hold alike (see compact).
	in interner

	hits, misses, evictions atomic.Uint64
	size                    atomic.Int64
}

func newCache(capacity int) *cache {
	n := 1
	for n*ways < capacity {
		n <<= 1
	}
	return &cache{sets: make([]cacheSet, n), mask: uint64(n - 1),
		in: interner{strs: map[string]string{}, lists: map[string][]string{}}}
}

// Interning bounds: at most maxInterned strings of at most maxInternLen
// bytes, and as many lists, are shared; past them values stay the user's
// own (correct, only larger), so a vocabulary that never repeats cannot
// grow the tables without bound.
const (
	maxInterned  = 1 << 16
	maxInternLen = 128
)

// interner shares equal strings (tags, tag sources, channel names, consent
// kinds) and equal string lists (a decision's channels and refused
// channels) among the views of a cache: a decoded record holds its own copy
// of every string, which across millions of users is most of their size.
// Shared values are never modified.
type interner struct {
	mu    sync.Mutex
	strs  map[string]string
	lists map[string][]string // key: the list's strings joined by NUL
}

// str returns the shared copy of s, or s when the table is full.
func (in *interner) str(s string) string {
	if s == "" || len(s) > maxInternLen {
		return s
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.strLocked(s)
}

func (in *interner) strLocked(s string) string {
	if t, ok := in.strs[s]; ok {
		return t
	}
	if len(in.strs) >= maxInterned {
		return s
	}
	s = strings.Clone(s)
	in.strs[s] = s
	return s
}

// list returns the shared copy of ss (nil for nil, an empty list for an
// empty one), or a copy of its own when the table is full.
func (in *interner) list(ss []string) []string {
	if len(ss) == 0 {
		return ss
	}
	n := len(ss) - 1
	for _, s := range ss {
		n += len(s)
	}
	var key []byte
	if n <= maxInternLen {
		var buf [maxInternLen]byte
		key = buf[:0]
		for i, s := range ss {
			if i > 0 {
				key = append(key, 0)
			}
			key = append(key, s...)
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if key != nil {
		if l, ok := in.lists[string(key)]; ok {
			return l
		}
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = in.strLocked(s)
	}
	if key != nil && len(in.lists) < maxInterned {
		in.lists[string(key)] = out
	}
	return out
}

// compact makes v, a view not yet published, share what other users hold
// alike (interner) and hold its own lists at their exact length. Values
// are unchanged: only where they live. The record's and decision's slices
// may be shared with the caller, so they are copied, never written.
func (in *interner) compact(v *view) {
	if v.loading {
		return
	}
	r := &v.rec
	if es := r.Tags.Entries; len(es) > 0 {
		out := make([]tags.Entry, len(es))
		for i, e := range es {
			out[i] = tags.Entry{Tag: tags.Tag(in.str(string(e.Tag))), Source: tags.Source(in.str(string(e.Source))), At: e.At}
		}
		r.Tags.Entries = out
	}
	if ss := r.Tags.Suppressed; len(ss) > 0 {
		out := make([]tags.Suppression, len(ss))
		for i, e := range ss {
			out[i] = tags.Suppression{Tag: tags.Tag(in.str(string(e.Tag))), At: e.At}
		}
		r.Tags.Suppressed = out
	}
	r.State.RefusedChannels = in.list(r.State.RefusedChannels)
	if rs := r.State.Refusals; len(rs) > 0 {
		out := make([]consent.Refusal, len(rs))
		for i, x := range rs {
			out[i] = consent.Refusal{Kind: consent.Kind(in.str(string(x.Kind))), At: x.At}
		}
		r.State.Refusals = out
	}
	if sc := r.State.Sensitive; len(sc) > 0 {
		out := make([]consent.SensitiveConsent, len(sc))
		for i, x := range sc {
			x.Category = tags.Category(in.str(string(x.Category)))
			x.Purpose = in.str(x.Purpose)
			out[i] = x
		}
		r.State.Sensitive = out
	}
	d := &v.dec
	if ts := d.Tags; len(ts) > 0 {
		out := make([]tags.Tag, len(ts))
		for i, t := range ts {
			out[i] = tags.Tag(in.str(string(t)))
		}
		d.Tags = out
	}
	d.Channels = in.list(d.Channels)
	d.Refused = in.list(d.Refused)
}

func (c *cache) capacity() int { return len(c.sets) * ways }

// lookup returns the user's view, or nil. It is lock-free and allocation
// free.
func (c *cache) lookup(h uint64, userID string) *view {
	s := &c.sets[(h>>32^h)&c.mask]
	for i := range s.slots {
		sl := &s.slots[i]
		v := sl.v.Load()
		if v != nil && v.hash == h && v.userID == userID {
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
	c.in.compact(v)
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
		if cur.hash != v.hash || cur.userID != v.userID {
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
	if v.rec.Version != cur.rec.Version {
		return v.rec.Version > cur.rec.Version
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
		if v := s.slots[i].v.Load(); v != nil && v.hash == h && v.userID == userID && !keep(v) {
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
