package redis

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

// One-round-trip writes.
//
// Apply must know the user's record, its version and the user's data key
// before it can compute the change (consent.Record.ApplyKeyed, the one rule
// engine) and seal its changelog entry. Reading them costs a round trip. The
// store keeps what its own writes left (the record, its version, the data
// key) in a bounded cache: a restrictive change (an opt-out, a refusal, a
// withdrawn consent, a tag deletion: consent.Change.Restrictive) to a user
// this store wrote recently is computed from it and sent straight to the
// compare-and-set script,
// pipelined with a read of the settings version, so it is one round trip.
// The script writes only if the record is still at the cached version and
// the key unchanged; otherwise nothing is written, the entry is dropped,
// and Apply reads and tries again as before. Correctness never rests on the
// cache: the compare-and-set is the same script, on the same slot.
//
// Only restrictive changes: the settings are read in the same round trip,
// not before, and on a cluster they live on another node, so the write
// cannot wait on them. A restrictive change is valid under any settings
// that know its channel (stores accept one even when the settings cannot
// be read); a widening one (a tag, a grant, personalization back on) must
// be checked against settings known current, and reads first: two round
// trips. Bulk writers (an inference pipeline) use store.BatchApplier.
//
// The settings the change is validated against are the store's copy, used
// only while confirmed current within settingsFresh (every write confirms
// them: the pipelined read); older, Apply reads them first. No-ops,
// validation failures and erasures always take the read path, so what they
// answer is the record as stored now.

// settingsFresh is how long a confirmation of the settings version lets a
// write validate against the store's copy without reading it first.
const settingsFresh = time.Second

// cacheMaxAge bounds how long a cached record is used: a record a purge or
// another process changed meanwhile costs a failed compare-and-set, and a
// data key is not kept in memory long after its user was erased elsewhere.
const cacheMaxAge = 30 * time.Second

// DefaultWriteCache is the number of users whose last write a store keeps
// for one-round-trip writes when Options.WriteCache is zero.
const DefaultWriteCache = 65536

type cacheEntry struct {
	rec  consent.Record
	key  string // the user's data key
	json string // the record JSON as written
	at   time.Time
}

const cacheShards = 16

type writeCache struct {
	max int // per shard
	sh  [cacheShards]struct {
		mu sync.Mutex
		m  map[string]*cacheEntry
	}
}

func newWriteCache(n int) *writeCache {
	if n <= 0 {
		return nil
	}
	c := &writeCache{max: max(1, n/cacheShards)}
	for i := range c.sh {
		c.sh[i].m = make(map[string]*cacheEntry)
	}
	return c
}

func (s *Store) cacheGet(userID string) *cacheEntry {
	if s.wc == nil {
		return nil
	}
	sh := &s.wc.sh[store.ShardOf(userID, cacheShards)]
	sh.mu.Lock()
	e := sh.m[userID]
	sh.mu.Unlock()
	if e == nil || time.Since(e.at) > cacheMaxAge {
		return nil
	}
	return e
}

// cachePut keeps rec, its JSON as written (a []byte) and the user's data
// key (a string).
func (s *Store) cachePut(rec consent.Record, key, recJSON any) {
	if s.wc == nil {
		return
	}
	k, _ := key.(string)
	j, _ := recJSON.([]byte)
	if len(j) == 0 {
		s.cacheDrop(rec.UserID)
		return
	}
	if len(k) != dataKeyLen || rec.State.Erased || rec.Number == 0 {
		s.cacheDrop(rec.UserID)
		return
	}
	e := &cacheEntry{rec: cloneRecord(rec), key: k, json: string(j), at: time.Now()}
	sh := &s.wc.sh[store.ShardOf(rec.UserID, cacheShards)]
	sh.mu.Lock()
	if len(sh.m) >= s.wc.max {
		if _, ok := sh.m[rec.UserID]; !ok {
			for id := range sh.m { // evict one at random
				delete(sh.m, id)
				break
			}
		}
	}
	sh.m[rec.UserID] = e
	sh.mu.Unlock()
}

func (s *Store) cacheDrop(userID string) {
	if s.wc == nil {
		return
	}
	sh := &s.wc.sh[store.ShardOf(userID, cacheShards)]
	sh.mu.Lock()
	delete(sh.m, userID)
	sh.mu.Unlock()
}

// cloneRecord copies r's slices: the cached record shares nothing with the
// one handed to the caller.
func cloneRecord(r consent.Record) consent.Record {
	r.Tags.Entries = slices.Clone(r.Tags.Entries)
	r.Tags.Suppressed = slices.Clone(r.Tags.Suppressed)
	r.State.RefusedChannels = slices.Clone(r.State.RefusedChannels)
	r.State.Sensitive = slices.Clone(r.State.Sensitive)
	r.State.Refusals = slices.Clone(r.State.Refusals)
	if g := r.State.Guardian; g != nil {
		c := *g
		r.State.Guardian = &c
	}
	return r
}

// settingsConfirmed records that the settings were at version v just now:
// the store's copy is fresh if it is that version, stale otherwise (the
// next write reads them first).
func (s *Store) settingsConfirmed(v uint64) {
	s.mu.Lock()
	if s.set != nil && s.set.Version == v {
		s.setSeen = time.Now()
	} else {
		s.setSeen = time.Time{}
	}
	s.mu.Unlock()
}

// freshSettings returns the store's copy of the settings when it was
// confirmed current within settingsFresh, else nil.
func (s *Store) freshSettings() *consent.Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil || time.Since(s.setSeen) > settingsFresh {
		return nil
	}
	return s.set
}

// applyFast tries ch in one round trip from the cached record e. done is
// false when it wrote nothing and Apply must take the read path.
func (s *Store) applyFast(ctx context.Context, shard int, keys []string, ch consent.Change, e *cacheEntry) (a store.Applied, done bool, err error) {
	set := s.freshSettings()
	if set == nil {
		return store.Applied{}, false, nil
	}
	if ch.Validate(set) != nil {
		return store.Applied{}, false, nil // answered from the record as stored
	}
	next, rc, err := e.rec.ApplyKeyed(ch, set, s.key)
	if err != nil || rc == nil || next.State.Erased {
		return store.Applied{}, false, nil
	}
	ver := strconv.FormatUint(e.rec.Version, 10)
	args, err := s.applyArgs(e.rec, next, rc, ver, e.key, e.json, nil, shard)
	if err != nil {
		return store.Applied{}, false, nil
	}
	var sv *goredis.StringCmd
	var ev *goredis.Cmd
	_, perr := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		sv = p.HGet(ctx, s.k.settings(), "v")
		ev = applyScript.EvalSha(ctx, p, keys, args...)
		return nil
	})
	if ev.Err() != nil {
		if isNoScript(ev.Err()) {
			return store.Applied{}, false, nil // the read path loads it
		}
		if perr == nil {
			perr = ev.Err()
		}
		s.cacheDrop(ch.UserID)
		return store.Applied{}, true, unavailable(perr)
	}
	if v, verr := sv.Uint64(); verr == nil {
		s.settingsConfirmed(v)
	}
	res, err := ev.Slice()
	if err != nil || len(res) == 0 {
		s.cacheDrop(ch.UserID)
		return store.Applied{}, true, unavailable(errors.Join(err, errors.New("empty reply")))
	}
	switch ok, _ := res[0].(int64); ok {
	case 1, 2: // 2: a resend found this write made already (see applyScript)
		id, _ := res[1].(string)
		num, _ := res[2].(string)
		n, _ := strconv.ParseUint(num, 10, 32)
		next.Number = uint32(n)
		s.cachePut(next, e.key, args[2])
		return store.Applied{Record: next, Receipt: rc, Shard: shard, Pos: store.Position(id)}, true, nil
	case -1:
		s.cacheDrop(ch.UserID)
		return store.Applied{}, true, &store.DataLossError{Logs: []int{shard}, Detail: "write refused: the shard's identity marker is gone or replaced"}
	}
	// Moved since cached (another writer, a purge): read and try again.
	s.cacheDrop(ch.UserID)
	return store.Applied{}, false, nil
}
