package index

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

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
	factAll        = "all"        // every user with a number
	factOff        = "off"        // personalization off
	factMinor      = "minor"      // under 14
	factErased     = "erased"     // erased (Art. 24)
	factRestricted = "restricted" // restricted processing (Art. 23)
)

func factTag(t tags.Tag) string    { return "t:" + string(t) }
func factRefused(ch string) string { return "r:" + ch }

// Facts returns the facts the index keeps about rec, sorted: the bitmaps
// its number belongs to. A record without a number, or of a user never
// changed (Version 0, the "before" of a first change), has none. A tag that
// is both held and suppressed (a damaged record) is not a fact.
//
// An erased user (Art. 24) has only "all" and "erased", and a user who
// restricted processing (Art. 23) only "all" and "restricted": the index
// keeps nothing else of theirs, and they are in no audience.
func Facts(rec *consent.Record) []string {
	if rec == nil || rec.Number == 0 || rec.Version == 0 {
		return nil
	}
	st := &rec.State
	switch {
	case st.Erased:
		return []string{factAll, factErased}
	case st.Restricted:
		return []string{factAll, factRestricted}
	}
	out := make([]string, 0, 4+len(st.RefusedChannels)+len(st.Sensitive)+len(rec.Tags.Entries))
	out = append(out, factAll)
	if st.PersonalizationOff {
		out = append(out, factOff)
	}
	if st.Minor {
		out = append(out, factMinor)
	}
	for _, ch := range st.RefusedChannels {
		out = append(out, factRefused(ch))
	}
	out = appendGrantFacts(out, st)
	for _, e := range rec.Tags.Entries {
		if tagFact(&rec.Tags, e.Tag) {
			out = append(out, factTag(e.Tag))
		}
	}
	sort.Strings(out)
	return out
}

// withheld reports whether the index keeps only a marker fact of rec's
// user (erased, restricted): such a record is never diffed field by field.
func withheld(rec *consent.Record) bool {
	return rec.State.Erased || rec.State.Restricted
}

// heldWithheld reports whether the index holds num as erased or
// restricted: a change of such a user is never diffed against its
// "before" (a "before" that is not what the index holds would leave the
// marker with other facts).
func (x *Index) heldWithheld(num uint32) bool {
	x.settle(num) // it reads num's facts (see clear.go)
	return x.get(factErased).Contains(num) || x.get(factRestricted).Contains(num)
}

// tagFact reports whether the index keeps tag t of ts as a fact: every
// entry but one that is also suppressed (only a damaged record has one; a
// suppressed tag is not the user's, consent.AtomHolds).
func tagFact(ts *tags.Set, t tags.Tag) bool {
	return len(ts.Suppressed) == 0 || !ts.IsSuppressed(t)
}

// noSuppressedEntry reports whether every entry of ts is a fact (tagFact).
func noSuppressedEntry(ts *tags.Set) bool {
	if len(ts.Suppressed) == 0 {
		return true
	}
	for _, e := range ts.Entries {
		if ts.IsSuppressed(e.Tag) {
			return false
		}
	}
	return true
}

// Index is a set of roaring bitmaps over user numbers, one per fact, plus
// the map from numbers back to user IDs and the changelog positions it
// reflects. It is safe for concurrent use: Apply takes a write lock,
// audiences a read lock.
//
// The number -> ID table holds no erased user's ID: their number keeps a
// hole ("") in it.
type Index struct {
	mu       sync.RWMutex
	shards   int
	bm       map[string]*roaring.Bitmap
	grants   map[string]*roaring.Bitmap // the "g:" and "s:" facts of bm, scanned at query time
	ids      []idTable                  // per shard: local number -> user ID (ids.go)
	pos      []store.Position           // per log index: shards..., then settings
	settings consent.Settings

	// Frozen audiences share the shards' ID tables (Audience copies only
	// the outer slice) and read them without the lock. shared counts the
	// audiences taken; owned[s] is its value when shard s's blocks slice
	// was last copied, and each block's gen its value when the block was
	// made. A block is written only if made since the last audience, and
	// a shard's blocks slice only if copied since (setSlot, ids.go), so no
	// audience sees a slot change under it.
	shared atomic.Uint64
	owned  []uint64

	// unk is bm[factUnknown]: the numbers of unknown users (see unknown.go).
	unk *roaring.Bitmap
	// unplaced are unknown users with no usable number (in no bitmap).
	unplaced map[string]struct{}
	// needsRebuild is set by a changelog entry the index could not
	// attribute; staleSettings by an unreadable settings entry (audiences
	// are refused until a rebuild).
	needsRebuild, staleSettings bool
	bulk                        *bulkLog // non-nil during a bulk operation

	// erasures counts the erase and shredded events applied: a checkpoint
	// saved before one still holds the user (see Erasures).
	erasures atomic.Uint64

	// dv holds the derived bitmaps (see derived.go); dcount counts their
	// work.
	dv     derived
	dcount derivedCounters

	// bmList is bm's bitmaps (nil when bm changed since it was made).
	bmList []*roaring.Bitmap

	// clr holds the numbers this write clears out of every bitmap, all at
	// once before the write lock is released (see clear.go).
	clr clearing
}

// Erasures returns how many erase (and shredded) changelog events the index
// has applied. A checkpoint saved before the latest still holds what the
// index knew of those users, so an owner that checkpoints compares it with
// the value at its last save and saves again soon (sdk does, within
// seconds).
func (x *Index) Erasures() uint64 { return x.erasures.Load() }

// New returns an empty index for a store with the given shard count and
// settings, positioned at the start of every log.
// It panics if shards < 1.
func New(shards int, set consent.Settings) *Index {
	if shards < 1 {
		panic(fmt.Sprintf("index: %d shards", shards))
	}
	unk := roaring.New()
	return &Index{
		shards:   shards,
		bm:       map[string]*roaring.Bitmap{factUnknown: unk},
		grants:   map[string]*roaring.Bitmap{},
		ids:      make([]idTable, shards),
		owned:    make([]uint64, shards),
		pos:      make([]store.Position, shards+1),
		settings: set.Clone(),
		unk:      unk,
		unplaced: map[string]struct{}{},
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
//
// An event whose record cannot be trusted (none, no version, a number of 0,
// out of range, of another shard or held by another user) makes its user
// unknown (see Unknown) instead of being indexed; one that names no user at
// all makes every user of its shard unknown and the index NeedsRebuild; a
// settings entry without settings makes audiences fail (ErrUnverified)
// until a rebuild. The next event that carries the user's whole record
// makes them known again.
//
// Erasure (Art. 24): an erase event (its record erased; its Prev is nil)
// takes the user's number out of every fact but "all" and "erased" and
// their ID out of the number -> ID table, whatever the index held before; a
// later event with a record not erased (the user's own change) brings them
// back with that record's facts. A Shredded event (a change made before the
// user was erased, its content gone) makes the user unknown, without a
// warning and without keeping their ID, until the erase entry (or any
// later event with the whole record) arrives. A user who restricted
// processing (Art. 23) keeps only "all" and "restricted", so is in no
// audience, until a change lifts it.
//
// The events of one call are one write: readers see the index before them
// or after them all. Numbers to clear out of every bitmap (erasures, users
// reset or made unknown) are cleared once per call, so a replay applies
// many events a call (CatchUp: up to 65,536).
func (x *Index) Apply(evs ...store.Event) {
	x.mu.Lock()
	defer x.unlock()
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
	if ev.Log == store.SettingsLog {
		if ev.Settings == nil {
			if !x.staleSettings {
				slog.Warn("index: settings changelog entry without settings; audiences are refused until the index is rebuilt", "pos", string(ev.Pos))
			}
			x.needsRebuild, x.staleSettings = true, true
			return
		}
		if ev.Settings.Version > x.settings.Version {
			x.settings = ev.Settings.Clone()
			x.dropDerived()
		}
		return
	}
	rec, pr := ev.Record, ev.Prev
	if ev.Shredded && rec != nil {
		x.erasures.Add(1)
		x.shredded(rec, ev.Log)
		return
	}
	if rec != nil && rec.State.Erased {
		x.erasures.Add(1)
	}
	if rec == nil {
		var num uint32
		id := ev.Receipt.UserID
		if pr != nil {
			id, num = pr.UserID, pr.Number
		}
		if id == "" {
			x.damageShard(ev.Log, "changelog entry that names no user")
			return
		}
		x.unknownUser(id, num, ev.Log, "changelog entry without a readable record")
		return
	}
	if why := x.checkRecord(rec, ev.Log); why != "" {
		x.unknownUser(rec.UserID, rec.Number, ev.Log, why)
		return
	}
	if len(x.unplaced) > 0 {
		delete(x.unplaced, rec.UserID)
	}
	num := rec.Number
	switch {
	case x.unk.Contains(num):
		x.resetUser(rec)
		if !rec.State.Erased { // an erasure after its shredded entries is routine
			shard, _ := store.NumberShard(num, x.shards)
			slog.Info("index: user known again from a changelog entry with their whole record", "shard", shard, "number", num)
		}
	case withheld(rec) || pr != nil && withheld(pr) || x.heldWithheld(num):
		// Erased or restricted, before or after (by the event, or by what
		// the index holds, whatever the event's "before" says): the facts
		// the index holds for the number are replaced, not diffed (an
		// erase event has no "before" at all).
		x.resetUser(rec)
	case pr != nil && pr.Version != 0 && pr.Number == num && pr.UserID == rec.UserID:
		x.diffUser(pr, rec)
	case pr != nil && pr.Version == 0:
		x.setUser(rec, nil, Facts(rec))
	default:
		// No usable "before": the facts the index holds for the number
		// cannot be diffed against, so they are replaced.
		x.resetUser(rec)
	}
}

// setUser records rec's ID under its number and moves it from the bitmaps
// of old facts to those of new facts (both sorted).
func (x *Index) setUser(rec *consent.Record, old, cur []string) {
	num := rec.Number
	x.settle(num)
	x.setID(rec)
	x.touch(num)
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

// Load adds a record read from the store (rebuilding from scratch). A
// user never seen (Version 0 and no number) adds nothing; a record that
// cannot be trusted (no version, a number of 0, out of range, of another
// shard than the user's or held by another user) makes its user unknown.
func (x *Index) Load(rec *consent.Record) {
	if rec == nil {
		return
	}
	x.mu.Lock()
	defer x.unlock()
	x.loadOne(rec)
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
	return x.ids[shard].id(local)
}

// Stats describes the index's size.
type Stats struct {
	Users   uint64 // users with a number
	Bitmaps int    // facts with a bitmap
	Bytes   uint64 // serialized size of all bitmaps
	Unknown uint64 // users whose record is missing or corrupt (see Unknown)
}

// Stats returns the index's size.
func (x *Index) Stats() Stats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	s := Stats{Bitmaps: len(x.bm) - 1, Unknown: x.unknownCount()}
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
	x.bmList = nil
	if isGrant(fact) {
		x.grants[fact] = b
	}
	return b
}

func isGrant(fact string) bool {
	return len(fact) > 2 && (fact[:2] == "g:" || fact[:2] == "s:")
}

// Allocation-free paths for loading and applying: diffUser touches only the
// facts that changed between two records.

// setID records rec's ID under its number (checked by the caller: not 0,
// within range).
func (x *Index) setID(rec *consent.Record) {
	if rec.Number == 0 {
		return
	}
	shard, local := store.NumberShard(rec.Number, x.shards)
	x.setSlot(shard, local, rec.UserID)
}

// clearID leaves a hole under number num in the number -> ID table (the
// table still covers num, so the number stays one the index knows).
func (x *Index) clearID(num uint32) {
	if num == 0 {
		return
	}
	shard, local := store.NumberShard(num, x.shards)
	x.setSlot(shard, local, "")
}

// addFact adds num to the bitmap of fact prefix+name (after the clear of
// num when it is still to be cleared in this write, see clear.go).
func (x *Index) addFact(prefix, name string, num uint32) {
	x.touch(num)
	b := x.bm[prefix+name]
	if b == nil {
		b = x.newBitmap(prefix + name)
	}
	x.addPending(b, num)
}

// removeFact removes num from the bitmap of fact prefix+name.
func (x *Index) removeFact(prefix, name string, num uint32) {
	x.touch(num)
	x.settle(num)
	if b := x.bm[prefix+name]; b != nil {
		b.Remove(num)
	}
}

// extraFacts are the sensitive and guardian facts (rare): built as Facts
// builds them.
func extraFacts(st *consent.State) []string {
	if len(st.Sensitive) == 0 && st.Guardian == nil {
		return nil
	}
	out := appendGrantFacts(nil, st)
	sort.Strings(out)
	return out
}

// appendGrantFacts appends the facts of st's sensitive and guardian grants:
// "s:<category>:<purpose>:<policy version>:<u|g>" (given by the user or the
// guardian) and "g:<policy version>".
func appendGrantFacts(out []string, st *consent.State) []string {
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
	return out
}

func sortedStrings(xs []string) bool { return sort.StringsAreSorted(xs) }

func sortedEntries(es []tags.Entry) bool {
	for i := 1; i < len(es); i++ {
		if es[i-1].Tag >= es[i].Tag {
			return false
		}
	}
	return true
}

// loadFast is Load without building fact strings and without checks: rec
// has a version and a number the index can hold. An erased user's number
// joins "all" and "erased" and leaves a hole in the number -> ID table; a
// restricted user's joins "all" and "restricted".
func (x *Index) loadFast(rec *consent.Record) {
	if rec.Number == 0 || rec.Version == 0 {
		return
	}
	num := rec.Number
	x.touch(num)
	st := &rec.State
	if st.Erased {
		x.clearID(num)
		x.addFact("", factAll, num)
		x.addFact("", factErased, num)
		return
	}
	x.setID(rec)
	x.addFact("", factAll, num)
	if st.Restricted {
		x.addFact("", factRestricted, num)
		return
	}
	if st.PersonalizationOff {
		x.addFact("", factOff, num)
	}
	if st.Minor {
		x.addFact("", factMinor, num)
	}
	for _, ch := range st.RefusedChannels {
		x.addFact("r:", ch, num)
	}
	for _, f := range extraFacts(st) {
		x.addFact("", f, num)
	}
	for _, e := range rec.Tags.Entries {
		if tagFact(&rec.Tags, e.Tag) {
			x.addFact("t:", string(e.Tag), num)
		}
	}
}

// diffUser moves rec from prev's facts to its own, touching only the facts
// that differ. Falls back to setUser when an input is not sorted, and to
// resetUser when one holds a suppressed entry (a damaged record: the index
// may hold a fact of it from before suppressed entries were left out) or
// is erased or restricted (see withheld).
func (x *Index) diffUser(prev, rec *consent.Record) {
	p, c := &prev.State, &rec.State
	if withheld(prev) || withheld(rec) || !noSuppressedEntry(&prev.Tags) || !noSuppressedEntry(&rec.Tags) {
		x.resetUser(rec)
		return
	}
	if !sortedStrings(p.RefusedChannels) || !sortedStrings(c.RefusedChannels) || !sortedEntries(prev.Tags.Entries) || !sortedEntries(rec.Tags.Entries) {
		x.setUser(rec, Facts(prev), Facts(rec))
		return
	}
	num := rec.Number
	x.settle(num)
	x.setID(rec)
	x.touch(num)
	flag := func(f string, was, is bool) {
		switch {
		case is && !was:
			x.addFact("", f, num)
		case was && !is:
			x.removeFact("", f, num)
		}
	}
	flag(factOff, p.PersonalizationOff, c.PersonalizationOff)
	flag(factMinor, p.Minor, c.Minor)
	a, b := p.RefusedChannels, c.RefusedChannels
	for i, j := 0, 0; i < len(a) || j < len(b); {
		switch {
		case j == len(b) || i < len(a) && a[i] < b[j]:
			x.removeFact("r:", a[i], num)
			i++
		case i == len(a) || b[j] < a[i]:
			x.addFact("r:", b[j], num)
			j++
		default:
			i++
			j++
		}
	}
	if ea, eb := extraFacts(p), extraFacts(c); ea != nil || eb != nil {
		for i, j := 0, 0; i < len(ea) || j < len(eb); {
			switch {
			case j == len(eb) || i < len(ea) && ea[i] < eb[j]:
				x.removeFact("", ea[i], num)
				i++
			case i == len(ea) || eb[j] < ea[i]:
				x.addFact("", eb[j], num)
				j++
			default:
				i++
				j++
			}
		}
	}
	ta, tb := prev.Tags.Entries, rec.Tags.Entries
	for i, j := 0, 0; i < len(ta) || j < len(tb); {
		switch {
		case j == len(tb) || i < len(ta) && ta[i].Tag < tb[j].Tag:
			x.removeFact("t:", string(ta[i].Tag), num)
			i++
		case i == len(ta) || tb[j].Tag < ta[i].Tag:
			x.addFact("t:", string(tb[j].Tag), num)
			j++
		default:
			i++
			j++
		}
	}
}
