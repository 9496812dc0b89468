package index

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// Errors of the index.
var (
	// ErrUnverified reports an audience asked of an index that cannot
	// confirm it is current. Audiences fail closed: no audience at all.
	ErrUnverified = errors.New("index: not verified current; audience refused")
	// ErrUnknownChannel reports an audience for a channel the settings do
	// not list.
	ErrUnknownChannel = errors.New("index: unknown channel")
	// ErrCorruptCheckpoint reports a checkpoint that cannot be decoded.
	ErrCorruptCheckpoint = errors.New("index: corrupt checkpoint")
)

// Fact names: the keys of the index's bitmaps.
const (
	factAll    = "all"    // every user with a number
	factOff    = "off"    // personalization off
	factMinor  = "minor"  // under 14
	factErased = "erased" // erased
)

func factTag(t tags.Tag) string    { return "t:" + string(t) }
func factRefused(ch string) string { return "r:" + ch }

// Facts returns the facts the index keeps about rec, sorted: the bitmaps
// its number belongs to. A record without a number, or of a user never
// changed (Version 0, the "before" of a first change), has none.
func Facts(rec *consent.Record) []string {
	if rec == nil || rec.Number == 0 || rec.Version == 0 {
		return nil
	}
	st := &rec.State
	out := make([]string, 0, 4+len(st.RefusedChannels)+len(st.Sensitive)+len(rec.Tags.Entries))
	out = append(out, factAll)
	if st.PersonalizationOff {
		out = append(out, factOff)
	}
	if st.Minor {
		out = append(out, factMinor)
	}
	if st.Erased {
		out = append(out, factErased)
	}
	for _, ch := range st.RefusedChannels {
		out = append(out, factRefused(ch))
	}
	for _, sc := range st.Sensitive {
		if sc.Granted {
			by := "u"
			if sc.ByGuardian {
				by = "g"
			}
			out = append(out, "s:"+string(sc.Category)+":"+sc.Purpose+":"+strconv.Itoa(sc.PolicyVersion)+":"+by)
		}
	}
	if g := st.Guardian; g != nil && g.Granted {
		out = append(out, "g:"+strconv.Itoa(g.PolicyVersion))
	}
	for _, e := range rec.Tags.Entries {
		out = append(out, factTag(e.Tag))
	}
	sort.Strings(out)
	return out
}

// Index is a set of roaring bitmaps over user numbers, one per fact, plus
// the map from numbers back to user IDs and the changelog positions it
// reflects. It is safe for concurrent use: Apply takes a write lock,
// audiences a read lock.
type Index struct {
	mu       sync.RWMutex
	shards   int
	bm       map[string]*roaring.Bitmap
	grants   map[string]*roaring.Bitmap // the "g:" and "s:" facts of bm, scanned at query time
	ids      [][]string                 // per shard: local number - 1 -> user ID
	pos      []store.Position           // per log index: shards..., then settings
	settings consent.Settings
}

// New returns an empty index for a store with the given shard count and
// settings, positioned at the start of every log.
func New(shards int, set consent.Settings) *Index {
	return &Index{
		shards:   shards,
		bm:       map[string]*roaring.Bitmap{},
		grants:   map[string]*roaring.Bitmap{},
		ids:      make([][]string, shards),
		pos:      make([]store.Position, shards+1),
		settings: set.Clone(),
	}
}

func (x *Index) logIndex(log int) int {
	if log == store.SettingsLog {
		return x.shards
	}
	return log
}

// Positions returns the changelog position the index reflects for each
// log: element i for shard i, the last for the settings log.
func (x *Index) Positions() []store.Position {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return append([]store.Position(nil), x.pos...)
}

// Settings returns the settings the index applies at query time.
func (x *Index) Settings() consent.Settings {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.settings.Clone()
}

// Apply brings the index up to date with changelog events. Events at or
// before the position the index already reflects for their log are skipped,
// so replaying an overlap is harmless.
func (x *Index) Apply(evs ...store.Event) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := range evs {
		x.apply(&evs[i])
	}
}

func (x *Index) apply(ev *store.Event) {
	li := x.logIndex(ev.Log)
	if li < 0 || li >= len(x.pos) || ev.Pos.Compare(x.pos[li]) <= 0 {
		return
	}
	x.pos[li] = ev.Pos
	if ev.Settings != nil {
		if ev.Settings.Version > x.settings.Version {
			x.settings = ev.Settings.Clone()
		}
		return
	}
	if ev.Record == nil || ev.Record.Number == 0 {
		return
	}
	x.setUser(ev.Record, Facts(ev.Prev), Facts(ev.Record))
}

// setUser records rec's ID under its number and moves it from the bitmaps
// of old facts to those of new facts (both sorted).
func (x *Index) setUser(rec *consent.Record, old, cur []string) {
	num := rec.Number
	shard, local := store.NumberShard(num, x.shards)
	if shard < len(x.ids) {
		ids := x.ids[shard]
		for len(ids) < local {
			ids = append(ids, "")
		}
		ids[local-1] = rec.UserID
		x.ids[shard] = ids
	}
	i, j := 0, 0
	for i < len(old) || j < len(cur) {
		switch {
		case j == len(cur) || i < len(old) && old[i] < cur[j]:
			if b := x.bm[old[i]]; b != nil {
				b.Remove(num)
			}
			i++
		case i == len(old) || cur[j] < old[i]:
			b := x.bm[cur[j]]
			if b == nil {
				b = x.newBitmap(cur[j])
			}
			b.Add(num)
			j++
		default:
			i++
			j++
		}
	}
}

// Load adds a record read from the store (rebuilding from scratch).
func (x *Index) Load(rec *consent.Record) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.setUser(rec, nil, Facts(rec))
}

// SetPositions sets the positions the index reflects (after Build or Load).
func (x *Index) SetPositions(pos []store.Position) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(pos) != len(x.pos) {
		return fmt.Errorf("index: %d positions for %d logs", len(pos), len(x.pos))
	}
	copy(x.pos, pos)
	return nil
}

// UserID returns the user with number num, or "" if the index has none.
func (x *Index) UserID(num uint32) string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.userID(num)
}

func (x *Index) userID(num uint32) string {
	if num == 0 {
		return ""
	}
	shard, local := store.NumberShard(num, x.shards)
	if ids := x.ids[shard]; local <= len(ids) {
		return ids[local-1]
	}
	return ""
}

// Stats describes the index's size.
type Stats struct {
	Users   uint64 // users with a number
	Bitmaps int    // facts with a bitmap
	Bytes   uint64 // serialized size of all bitmaps
}

// Stats returns the index's size.
func (x *Index) Stats() Stats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	s := Stats{Bitmaps: len(x.bm)}
	if b := x.bm[factAll]; b != nil {
		s.Users = b.GetCardinality()
	}
	for _, b := range x.bm {
		s.Bytes += b.GetSerializedSizeInBytes()
	}
	return s
}

// newBitmap creates the bitmap of a fact, registering grant facts so queries
// scan only those.
func (x *Index) newBitmap(fact string) *roaring.Bitmap {
	b := roaring.New()
	x.bm[fact] = b
	if isGrant(fact) {
		x.grants[fact] = b
	}
	return b
}

func isGrant(fact string) bool {
	return len(fact) > 2 && (fact[:2] == "g:" || fact[:2] == "s:")
}
