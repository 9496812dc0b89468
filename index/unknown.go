package index

import (
	"log/slog"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// Unknown users.
//
// A user whose record is missing or cannot be trusted (a shard's user list
// names them but the store holds no record, the record does not decode, its
// number is 0, out of range, of another shard or held by another user, a
// changelog entry about them is unreadable) is unknown: the index keeps none
// of their facts, so they are in no audience, until a changelog event brings
// their whole record again (or a rebuild finds it intact). Unknown users are
// counted (Index.Unknown) and logged once each, by shard and number: the
// logs name no user.
//
// A user whose changelog entries come back Shredded (they were erased
// after the change) is unknown too, quietly, until the erase entry
// arrives: see Index.Apply.

// factUnknown is the key of the bitmap of unknown users' numbers. It is kept
// with the facts so checkpoints carry it; it is never a fact of a record.
const factUnknown = "?unknown"

const (
	// maxGap bounds how far past the last number the index knows in a shard
	// a new user's number may land. Numbers are dense, so a new user comes
	// right after the last one; a larger jump is a corrupt number, and
	// trusting it would grow the number -> ID table without bound.
	maxGap = 1 << 16
	// maxUnplaced bounds the set of unknown users who have no usable
	// number (they are in no bitmap; the set only counts them and keeps
	// their log line to one).
	maxUnplaced = 1 << 16
	// bulkLogLines is how many users a bulk operation (a build, a checkpoint
	// load, a damaged shard) logs one by one before it only counts them.
	bulkLogLines = 20
)

// Unknown returns how many users the index treats as unknown: their record
// is missing or corrupt (or, for a moment, their changelog entries were
// shredded and the erase entry is still to come), so they are in no
// audience. It is 0 for a healthy store the index has caught up with.
func (x *Index) Unknown() uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.unknownCount()
}

func (x *Index) unknownCount() uint64 {
	return x.unk.GetCardinality() + uint64(len(x.unplaced))
}

// NeedsRebuild reports whether the index saw a changelog entry it could not
// attribute (a shard entry naming no user, a settings entry without
// settings): the users of that shard are unknown, or the settings may be
// stale (audiences are refused), until the index is built again. CatchUp
// rebuilds such an index.
func (x *Index) NeedsRebuild() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.needsRebuild
}

// MarkUnknown makes userID unknown: out of every audience until a changelog
// event brings their whole record again or the index is rebuilt. A reader
// that finds the user's record missing or corrupt (store.ErrCorrupt) calls
// it, so audiences fail closed for the user as decisions do. It is a no-op
// for an ID the index does not hold.
func (x *Index) MarkUnknown(userID string) {
	if consent.ValidUserID(userID) != nil {
		return
	}
	x.mu.Lock()
	defer x.unlock()
	x.markID(userID, 0, "a reader found the record missing or corrupt")
}

// markID makes every number the index holds for userID (a valid ID) other
// than skip unknown, and reports whether it holds any.
func (x *Index) markID(userID string, skip uint32, reason string) bool {
	shard := store.ShardOf(userID, x.shards)
	found := false
	x.ids[shard].find(userID, func(local int) { // setUnknown leaves the table as it is
		if n := x.number(shard, local); n != skip {
			x.setUnknown(n, reason)
		}
		found = true
	})
	return found
}

// logUnknown logs that the user with number num of shard became unknown.
func (x *Index) logUnknown(shard int, num uint32, reason string) {
	if x.bulk != nil {
		x.bulk.n++
		if x.bulk.n > bulkLogLines {
			return
		}
	}
	slog.Warn("index: user record missing or corrupt; the user is left out of every audience", "shard", shard, "number", num, "reason", reason)
}

// bulkLog counts the users a bulk operation made unknown, so it logs only
// the first few one by one and then a summary.
type bulkLog struct {
	op string
	n  int
}

func (x *Index) startBulk(op string) { x.bulk = &bulkLog{op: op} }

func (x *Index) endBulk() {
	b := x.bulk
	x.bulk = nil
	if b == nil || b.n == 0 {
		return
	}
	slog.Warn("index: users with a missing or corrupt record are left out of every audience",
		"op", b.op, "users", b.n, "logged_one_by_one", min(b.n, bulkLogLines), "unknown_total", x.unknownCount())
}

// setUnknown makes number num unknown: out of every fact bitmap, into the
// unknown one. It logs the change once.
func (x *Index) setUnknown(num uint32, reason string) {
	if num == 0 || x.unk.Contains(num) {
		return
	}
	x.touch(num)
	x.removeAll(num, false)
	x.unk.Add(num)
	shard, _ := store.NumberShard(num, x.shards)
	x.logUnknown(shard, num, reason)
}

// setUnknownMany is setUnknown for many numbers at once.
func (x *Index) setUnknownMany(nums *roaring.Bitmap, reason string) {
	nums = roaring.AndNot(nums, x.unk)
	nums.Remove(0)
	if nums.IsEmpty() {
		return
	}
	x.flushClears()
	x.dropDerived()
	for k, b := range x.bm {
		if k != factUnknown {
			b.AndNot(nums)
		}
	}
	x.unk.Or(nums)
	it := nums.Iterator()
	logged := 0
	for it.HasNext() && (x.bulk == nil || logged <= bulkLogLines) {
		num := it.Next()
		shard, _ := store.NumberShard(num, x.shards)
		x.logUnknown(shard, num, reason)
		logged++
	}
	if x.bulk != nil {
		// The rest are only counted.
		x.bulk.n += int(nums.GetCardinality()) - logged
	}
}

// number returns the number of the local-th user of shard.
func (x *Index) number(shard, local int) uint32 { return store.UserNumber(shard, local, x.shards) }

// inRange reports whether num is a number the index can hold: not 0, and
// within maxGap of the last number it knows in its shard.
func (x *Index) inRange(num uint32) bool {
	if num == 0 {
		return false
	}
	shard, local := store.NumberShard(num, x.shards)
	return local <= x.ids[shard].n+maxGap
}

// checkRecord returns why rec cannot be indexed under its number, or "".
// log is the shard log the record came from, or -1.
func (x *Index) checkRecord(rec *consent.Record, log int) string {
	switch {
	case rec.Version == 0:
		return "record without a version"
	case rec.Number == 0:
		return "record without a user number"
	case consent.ValidUserID(rec.UserID) != nil:
		return "record with an invalid user ID"
	}
	shard, local := store.NumberShard(rec.Number, x.shards)
	switch {
	case store.ShardOf(rec.UserID, x.shards) != shard:
		return "user number of another shard than the user's"
	case log >= 0 && log != shard:
		return "record in another shard's changelog"
	case local > x.ids[shard].n+maxGap:
		return "user number out of range"
	}
	if held := x.ids[shard].slot(local); held != nil && string(held) != rec.UserID {
		return "user number held by another user"
	}
	return ""
}

// unknownUser makes a user unknown after a record or event about them could
// not be trusted: the number the record claims (when it is one the index
// can hold, in log's shard when log >= 0), and every number the index holds
// for userID. A user it cannot place anywhere is only counted.
func (x *Index) unknownUser(userID string, num uint32, log int, reason string) {
	placed := false
	if x.inRange(num) {
		if shard, _ := store.NumberShard(num, x.shards); log < 0 || shard == log {
			x.setUnknown(num, reason)
			placed = true
		}
	}
	if consent.ValidUserID(userID) != nil {
		if !placed {
			x.logUnknown(log, 0, reason+" (and an invalid user ID)")
		}
		return
	}
	if x.markID(userID, num, reason) || placed {
		return
	}
	if _, ok := x.unplaced[userID]; ok || len(x.unplaced) >= maxUnplaced {
		return
	}
	x.unplaced[userID] = struct{}{}
	x.logUnknown(store.ShardOf(userID, x.shards), 0, reason+" (no usable user number)")
}

// resetUser indexes rec afresh: its number leaves every bitmap (and the
// unknown users) and joins those of rec's facts. Used when the facts the
// index holds for the number cannot be trusted as the "before" of rec.
func (x *Index) resetUser(rec *consent.Record) {
	num := rec.Number
	x.touch(num)
	x.removeAll(num, true)
	if len(x.unplaced) > 0 {
		delete(x.unplaced, rec.UserID)
	}
	x.loadFast(rec)
}

// damageShard makes every user of shard unknown: a changelog entry of the
// shard could not be attributed to a user, so any of them may have changed.
func (x *Index) damageShard(shard int, reason string) {
	x.needsRebuild = true
	if shard < 0 || shard >= x.shards {
		return
	}
	nums := roaring.New()
	for i := range x.ids[shard].n {
		nums.Add(x.number(shard, i+1))
	}
	x.startBulk("damaged shard log")
	x.setUnknownMany(nums, reason)
	x.endBulk()
}

// validate makes the users of a decoded checkpoint unknown where its
// bitmaps and number -> ID table disagree: numbers in a bitmap with no ID
// (beyond the table, or a hole that is not an erased user's), IDs that are
// invalid or of another shard (bad), numbers with facts but not in "all".
// A hole (holes) is an erased user's when its number is in no bitmap but
// "all" and "erased". Number 0 is dropped from every bitmap.
func (x *Index) validate(bad, holes *roaring.Bitmap) {
	all := x.get(factAll)
	var facts, personals []*roaring.Bitmap
	for k, b := range x.bm {
		b.Remove(0)
		if k != factUnknown {
			facts = append(facts, b)
		}
		if k != factUnknown && k != factAll && k != factErased {
			personals = append(personals, b)
		}
	}
	var union, personal *roaring.Bitmap // personal: numbers with a fact other than all and erased
	parallel(2, 2, func(w, _, _ int) {
		if w == 0 {
			union = roaring.FastOr(facts...)
		} else {
			personal = roaring.FastOr(personals...)
		}
	})
	// Holes with facts, but for erased users' (only all and erased).
	erasedOnly := roaring.AndNot(x.get(factErased), personal)
	bad.Or(roaring.AndNot(holes, erasedOnly))
	// Facts of numbers not in "all".
	bad.Or(roaring.AndNot(union, all))
	// Numbers beyond their shard's table.
	var maxNum uint32
	for s := range x.ids {
		if n := x.ids[s].n; n > 0 {
			maxNum = max(maxNum, x.number(s, n))
		}
	}
	if !union.IsEmpty() && union.Maximum() > maxNum {
		beyond := union.Clone()
		beyond.RemoveRange(0, uint64(maxNum)+1)
		bad.Or(beyond)
	}
	for s := range x.ids {
		for local := x.ids[s].n + 1; ; local++ {
			n := uint64(local-1)*uint64(x.shards) + uint64(s) + 1
			if n > uint64(maxNum) {
				break
			}
			if union.Contains(uint32(n)) {
				bad.Add(uint32(n))
			}
		}
	}
	bad.And(union)
	x.startBulk("checkpoint load")
	x.setUnknownMany(bad, "checkpoint holds facts for a number without a valid user")
	// Unknown numbers hold no facts, whatever the checkpoint says.
	for k, b := range x.bm {
		if k != factUnknown {
			b.AndNot(x.unk)
		}
	}
	x.endBulk()
}

// shredded handles a Shredded changelog entry: a change of a user who was
// erased after it, its content gone. The user is unknown (in no audience)
// until the erase entry, or any later entry with their whole record,
// arrives; meanwhile the index keeps no ID for them. This is the store
// working as it should, not damage: nothing is logged and the index does
// not need a rebuild. A record that cannot be trusted even so (see
// checkRecord) is handled as any other (unknownUser).
func (x *Index) shredded(rec *consent.Record, log int) {
	if why := x.checkRecord(rec, log); why != "" {
		x.unknownUser(rec.UserID, rec.Number, log, "shredded changelog entry: "+why)
		return
	}
	if len(x.unplaced) > 0 {
		delete(x.unplaced, rec.UserID)
	}
	num := rec.Number
	x.touch(num)
	if !x.unk.Contains(num) {
		x.removeAll(num, false)
		x.unk.Add(num)
	}
	x.clearID(num)
}
