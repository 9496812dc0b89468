package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

var _ store.BatchApplier = (*Store)(nil)

// Batch writes (store.BatchApplier).
//
// ApplyBatch reads the records of every user of the batch (with their data
// keys) in one pipelined round trip, computes every change in Go with
// consent.Record.ApplyKeyed (the one rule engine), and writes them with one
// batchApplyScript call per shard and chunk of users, all pipelined in a
// second round trip (one per node on a cluster). Each script touches one
// shard's slot only, and for each user it checks the record is still at
// the version and data key read, then writes the user's record, receipts
// and changelog entries; a user whose record moved is skipped (nothing of
// theirs written) and read and computed again. A script runs atomically,
// so each user's changes are written together with their receipts and
// entries, or not at all.

// batchUsers bounds the users of one script call, batchArgs its arguments:
// a script holds its shard (and the whole Redis) while it runs.
const (
	batchUsers = 256
	batchArgs  = 8192
)

// readKeysScript reads users' records of one shard with their data keys,
// checking the shard's identity marker in the same atomic step.
//
// KEYS: 1 the shard's log counter, then for each user its hash and its
// receipts list. ARGV: 1 epoch.
// Returns {-1} when the shard lost its identity, else {1, then per user: v,
// d, n, a, k, receipts-exist (0/1)}; missing fields are nil.
var readKeysScript = goredis.NewScript(`
if redis.call('HGET', KEYS[1], 'e') ~= ARGV[1] then return {-1} end
local out = {1}
local j = 2
for i = 2, #KEYS, 2 do
  local r = redis.call('HMGET', KEYS[i], 'v', 'd', 'n', 'a', 'k')
  out[j] = r[1]; out[j+1] = r[2]; out[j+2] = r[3]; out[j+3] = r[4]; out[j+4] = r[5]
  if r[1] then out[j+5] = 0 else out[j+5] = redis.call('EXISTS', KEYS[i+1]) end
  j = j + 6
end
return out
`)

// batchApplyScript writes the changes of several users of one shard: per
// user, if the record is still at the version and data key read, the new
// record, the receipt items and one changelog entry per change.
//
// KEYS: 1 shard log, 2 receipt index, 3 log counter, 4 shard user list,
// then per user its hash and its receipts list.
// ARGV: 1 epoch, 2 changelog MAXLEN, 3 shard count, 4 shard, then per user:
// expected version, new version, record JSON, data key, key mode (new,
// have, replace: as applyScript), key as read, status (st), user ID, first
// receipt time (unix ms), number of changes c, then per change: receipt
// item, number of entry fields f, the f entry fields and values.
// Returns {-1} (slot lost its identity) or {1, then per user: 1, user
// number, c stream IDs | 0, current version | 3, user number (the record
// is already the one this call writes: the same call ran before, resent by
// a client retry after a lost reply) | -2 (record lost)}.
var batchApplyScript = goredis.NewScript(`
if redis.call('HGET', KEYS[3], 'e') ~= ARGV[1] then return {-1} end
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = redis.call('HMGET', KEYS[3], 'n', 'ms')
local n = tonumber(last[1] or '0')
local lms = tonumber(last[2] or '0')
if ms < lms then ms = lms end
local maxlen, shards, shard = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {1}
local a = 5
local k = 5
local wrote = false
while a <= #ARGV do
  local ukey, rkey = KEYS[k], KEYS[k+1]
  k = k + 2
  local ver, nver, rec, dk, mode, raw, st, uid, first = ARGV[a], ARGV[a+1], ARGV[a+2], ARGV[a+3], ARGV[a+4], ARGV[a+5], ARGV[a+6], ARGV[a+7], ARGV[a+8]
  local c = tonumber(ARGV[a+9])
  a = a + 10
  local status = 1
  local cur = redis.call('HGET', ukey, 'v') or '0'
  if cur == '0' and redis.call('EXISTS', rkey) == 1 then
    status = -2
  elseif cur == nver and redis.call('HGET', ukey, 'd') == rec then
    status = 3 -- written by this very call sent before (a client retry)
  elseif cur ~= ver then
    status = 0
  else
    local kf = redis.call('HGET', ukey, 'k')
    local ok
    if mode == 'new' then ok = not kf
    elseif mode == 'have' then ok = (kf == dk)
    else ok = (kf == raw) end
    if not ok then status = 0 end
  end
  if status ~= 1 then
    if status == 0 then
      out[#out+1] = 0
      out[#out+1] = cur
    elseif status == 3 then
      out[#out+1] = 3
      out[#out+1] = redis.call('HGET', ukey, 'n')
    else
      out[#out+1] = -2
    end
    for i = 1, c do a = a + 2 + tonumber(ARGV[a+1]) end
  else
    if mode ~= 'have' then redis.call('HSET', ukey, 'k', dk) end
    local num = redis.call('HGET', ukey, 'n')
    if not num then
      local cnt = redis.call('RPUSH', KEYS[4], uid)
      num = string.format('%d', (cnt - 1) * shards + shard + 1)
    end
    redis.call('HSET', ukey, 'v', nver, 'd', rec, 'n', num)
    if st == '' then redis.call('HDEL', ukey, 'st') else redis.call('HSET', ukey, 'st', st) end
    redis.call('ZADD', KEYS[2], 'NX', first, uid)
    out[#out+1] = 1
    out[#out+1] = num
    for i = 1, c do
      redis.call('RPUSH', rkey, ARGV[a])
      local f = tonumber(ARGV[a+1])
      local fields = {}
      for j = a + 2, a + 1 + f do fields[#fields+1] = ARGV[j] end
      fields[#fields+1] = 'n'
      fields[#fields+1] = num
      a = a + 2 + f
      n = n + 1
      out[#out+1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, string.format('%d-%d', ms, n), unpack(fields))
      wrote = true
    end
  end
end
if wrote then redis.call('HSET', KEYS[3], 'n', n, 'ms', ms) end
return out
`)

// batchUser is one user's part of a batch.
type batchUser struct {
	id    string
	shard int
	idx   []int // the user's changes, indices into the batch, in order
	erase bool  // holds an erasure: written change by change through Apply
	// Filled by a round: the record and key as read, the args to write.
	rec     consent.Record
	ver     string
	rawKey  string
	args    []any
	written []int // the indices of the changes the args write
	nexts   []consent.Record
	rcs     []*consent.Receipt
	done    bool
}

// ApplyBatch applies chs in order (see store.BatchApplier): two round trips
// for the whole batch in the common case. Users with an erasure in the
// batch, and every change when Options.Durability asks for replicas, go
// through Apply one change at a time.
func (s *Store) ApplyBatch(ctx context.Context, chs []consent.Change) ([]store.Applied, []error) {
	out := make([]store.Applied, len(chs))
	errs := make([]error, len(chs))
	if err := s.check(); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return out, errs
	}
	users := map[string]*batchUser{}
	var order []*batchUser
	now := s.now()
	for i := range chs {
		ch := &chs[i]
		if err := consent.ValidUserID(ch.UserID); err != nil {
			errs[i] = err
			continue
		}
		u := users[ch.UserID]
		if u == nil {
			u = &batchUser{id: ch.UserID, shard: store.ShardOf(ch.UserID, s.shards)}
			users[ch.UserID] = u
			order = append(order, u)
		}
		u.idx = append(u.idx, i)
		if ch.Op == consent.OpErase {
			u.erase = true
		}
	}
	var pending, single []*batchUser
	for _, u := range order {
		if u.erase || s.dur.Replicas > 0 {
			single = append(single, u)
		} else {
			pending = append(pending, u)
		}
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt >= s.tries {
			for _, u := range pending {
				for _, i := range u.idx {
					errs[i] = fmt.Errorf("%w: user %q changed concurrently %d times in a row", store.ErrConflict, u.id, s.tries)
				}
			}
			break
		}
		if attempt > 0 {
			backoff(attempt)
		}
		var err error
		pending, err = s.batchRound(ctx, chs, now, pending, out, errs)
		if err != nil {
			for _, u := range pending {
				for _, i := range u.idx {
					if errs[i] == nil {
						errs[i] = err
					}
				}
			}
			break
		}
	}
	for _, u := range single {
		for _, i := range u.idx {
			out[i], errs[i] = s.Apply(ctx, chs[i])
		}
	}
	return out, errs
}

// batchRound reads, computes and writes the users' changes once. It returns
// the users to try again (their record moved), or an error that fails them
// all. Results and per-change errors go to out and errs.
func (s *Store) batchRound(ctx context.Context, chs []consent.Change, now time.Time, users []*batchUser, out []store.Applied, errs []error) ([]*batchUser, error) {
	restrictive := true
	for _, u := range users {
		for _, i := range u.idx {
			restrictive = restrictive && chs[i].Restrictive()
		}
	}
	set, err := s.readUsersForWrite(ctx, users, restrictive, errs)
	if err != nil {
		return users, err
	}
	// Compute every user's changes with the rule engine.
	byShard := map[int][]*batchUser{}
	var shards []int
	for _, u := range users {
		if u.done {
			continue
		}
		if err := s.computeUser(chs, now, set, u, out, errs); err != nil {
			for _, i := range u.idx {
				errs[i] = err
			}
			continue
		}
		if len(u.written) == 0 {
			continue
		}
		if byShard[u.shard] == nil {
			shards = append(shards, u.shard)
		}
		byShard[u.shard] = append(byShard[u.shard], u)
	}
	// One script call per shard and chunk, all pipelined.
	type call struct {
		shard int
		users []*batchUser
		keys  []string
		args  []any
		cmd   *goredis.Cmd
	}
	var calls []*call
	for _, sh := range shards {
		var c *call
		for _, u := range byShard[sh] {
			if c == nil || len(c.users) >= batchUsers || len(c.args)+len(u.args) > batchArgs {
				c = &call{shard: sh, keys: []string{s.k.log(sh), s.k.receiptIndex(sh), s.k.seq(sh), s.k.users(sh)}, args: []any{s.epoch, s.maxLen, s.shards, sh}}
				calls = append(calls, c)
			}
			c.users = append(c.users, u)
			c.keys = append(c.keys, s.k.user(sh, u.id), s.k.receipts(sh, u.id))
			c.args = append(c.args, u.args...)
		}
	}
	if len(calls) == 0 {
		return nil, nil
	}
	run := func() error {
		_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, c := range calls {
				c.cmd = batchApplyScript.EvalSha(ctx, p, c.keys, c.args...)
			}
			return nil
		})
		return err
	}
	err = run()
	if err != nil && calls[0].cmd != nil && isNoScript(calls[0].cmd.Err()) {
		if lerr := batchApplyScript.Load(ctx, s.c).Err(); lerr != nil {
			return users, unavailable(lerr)
		}
		err = run()
	}
	var again []*batchUser
	for _, c := range calls {
		res, cerr := c.cmd.Slice()
		if cerr != nil || len(res) == 0 {
			if cerr == nil {
				cerr = errors.New("empty reply")
			}
			for _, u := range c.users {
				for _, i := range u.written {
					errs[i] = unavailable(cerr)
				}
			}
			continue
		}
		if ok, _ := res[0].(int64); ok != 1 {
			for _, u := range c.users {
				for _, i := range u.written {
					errs[i] = &store.DataLossError{Logs: []int{c.shard}, Detail: "write refused: the shard's identity marker is gone or replaced"}
				}
			}
			continue
		}
		j := 1
		for _, u := range c.users {
			if j >= len(res) {
				for _, i := range u.written {
					errs[i] = unavailable(errors.New("short reply"))
				}
				continue
			}
			st, _ := res[j].(int64)
			switch st {
			case 1:
				ns, _ := res[j+1].(string)
				num, _ := strconv.ParseUint(ns, 10, 32)
				j += 2
				for w, i := range u.written {
					id, _ := res[j].(string)
					j++
					next := u.nexts[w]
					next.Number = uint32(num)
					out[i] = store.Applied{Record: next, Receipt: u.rcs[w], Shard: u.shard, Pos: store.Position(id)}
				}
				// No-ops after a written change answer the record they
				// left as it was, now with its number.
				for _, i := range u.idx {
					if out[i].Receipt == nil && errs[i] == nil && out[i].Record.Version > 0 && out[i].Record.Number == 0 {
						out[i].Record.Number = uint32(num)
					}
				}
				last := u.nexts[len(u.nexts)-1]
				last.Number = uint32(num)
				s.cachePut(last, u.args[3], u.args[2])
				u.done = true
			case 3:
				// Written by the same call, resent after its reply was lost
				// (the record holds this very JSON, whose receipt hash is
				// salted at random): done; the positions are not known.
				ns, _ := res[j+1].(string)
				num, _ := strconv.ParseUint(ns, 10, 32)
				j += 2
				for w, i := range u.written {
					next := u.nexts[w]
					next.Number = uint32(num)
					out[i] = store.Applied{Record: next, Receipt: u.rcs[w], Shard: u.shard}
				}
				u.done = true
			case 0:
				j += 2
				for _, i := range u.idx {
					out[i], errs[i] = store.Applied{}, nil
				}
				again = append(again, u)
			default: // -2
				j++
				for _, i := range u.idx {
					out[i] = store.Applied{}
					errs[i] = &store.CorruptError{UserIDs: []string{u.id}, Detail: "write refused: the record is gone while the user's receipts remain"}
				}
				u.done = true
			}
		}
	}
	if err != nil && len(again) == 0 {
		// Some call failed (its changes carry the error); the others ran.
		return nil, nil
	}
	return again, nil
}

// readUsersForWrite reads the users' records and data keys, shard by shard,
// and the settings, in one pipelined round trip. A user whose record is
// corrupt gets the error on each of their changes and is done.
func (s *Store) readUsersForWrite(ctx context.Context, users []*batchUser, restrictive bool, errs []error) (*consent.Settings, error) {
	byShard := map[int][]*batchUser{}
	for _, u := range users {
		byShard[u.shard] = append(byShard[u.shard], u)
	}
	type call struct {
		users []*batchUser
		cmd   *goredis.Cmd
	}
	var calls []*call
	for _, us := range byShard {
		for len(us) > 0 {
			n := min(len(us), 1000)
			calls = append(calls, &call{users: us[:n]})
			us = us[n:]
		}
	}
	var sv *goredis.StringCmd
	run := func() error {
		_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			sv = p.HGet(ctx, s.k.settings(), "v")
			for _, c := range calls {
				sh := c.users[0].shard
				keys := make([]string, 1, 1+2*len(c.users))
				keys[0] = s.k.seq(sh)
				for _, u := range c.users {
					keys = append(keys, s.k.user(sh, u.id), s.k.receipts(sh, u.id))
				}
				c.cmd = readKeysScript.EvalSha(ctx, p, keys, s.epoch)
			}
			return nil
		})
		return err
	}
	err := run()
	if err != nil && len(calls) > 0 && isNoScript(calls[0].cmd.Err()) {
		if lerr := readKeysScript.Load(ctx, s.c).Err(); lerr != nil {
			return nil, unavailable(lerr)
		}
		err = run()
	}
	if errors.Is(sv.Err(), goredis.Nil) {
		return nil, &store.DataLossError{Logs: []int{store.SettingsLog}, Detail: "the settings are gone"}
	}
	stale := false
	if sv.Err() != nil {
		s.mu.Lock()
		cached := s.set != nil
		s.mu.Unlock()
		if !restrictive || !cached {
			return nil, unavailable(sv.Err())
		}
		stale = true // the user can always say no
	}
	for _, c := range calls {
		reply, cerr := c.cmd.Slice()
		if cerr != nil {
			return nil, unavailable(cerr)
		}
		if ok, _ := reply[0].(int64); ok != 1 {
			return nil, &store.DataLossError{Logs: []int{c.users[0].shard}, Detail: "the shard's identity marker is gone or replaced"}
		}
		if len(reply) < 1+6*len(c.users) {
			return nil, unavailable(fmt.Errorf("short reply: %d values for %d users", len(reply), len(c.users)))
		}
		for i, u := range c.users {
			vals := reply[1+6*i : 1+6*i+6]
			rec, ver, derr := decodeRecord(u.id, vals[:4])
			if derr == nil && rec.Version == 0 {
				if rx, _ := vals[5].(int64); rx == 1 {
					derr = &store.CorruptError{UserIDs: []string{u.id}, Detail: "the record is gone while the user's receipts remain"}
				}
			}
			if derr != nil {
				for _, j := range u.idx {
					errs[j] = derr
				}
				u.done = true
				continue
			}
			rawKey, present := vals[4].(string)
			if present && rawKey == "" {
				rawKey = emptyKey
			}
			u.rec, u.ver, u.rawKey = rec, ver, rawKey
		}
	}
	if err != nil && !stale {
		return nil, unavailable(err)
	}
	v, _ := strconv.ParseUint(sv.Val(), 10, 64)
	s.mu.Lock()
	set := s.set
	s.mu.Unlock()
	if !stale && (set == nil || set.Version != v) {
		var rerr error
		if set, _, _, rerr = s.readSettings(ctx); rerr != nil {
			return nil, rerr
		}
	}
	return set, nil
}

// computeUser applies u's changes to the record read, with the rule engine,
// and builds the script arguments that write the effective ones.
// Validation errors and no-ops go to errs and out at once.
func (s *Store) computeUser(chs []consent.Change, now time.Time, set *consent.Settings, u *batchUser, out []store.Applied, errs []error) error {
	u.args, u.written, u.nexts, u.rcs = nil, nil, nil, nil
	rec := u.rec
	var mode string
	var dk []byte
	rawKey := u.rawKey
	switch {
	case rawKey == "":
		mode, dk = "new", newDataKey()
	case rawKey == emptyKey:
		mode, dk, rawKey = "replace", newDataKey(), ""
	case len(rawKey) != dataKeyLen:
		mode, dk = "replace", newDataKey()
		s.log.Warn("redis store: a user's data key was damaged and is replaced; content sealed under it is unreadable", "shard", u.shard)
	default:
		mode, dk = "have", []byte(rawKey)
	}
	var steps []any
	var first int64
	for _, i := range u.idx {
		ch := chs[i]
		if ch.At.IsZero() {
			ch.At = now
		}
		errs[i] = nil
		if err := ch.Validate(set); err != nil {
			errs[i] = err
			continue
		}
		next, rc, err := rec.ApplyKeyed(ch, set, s.key)
		if err != nil {
			errs[i] = err
			continue
		}
		if rc == nil {
			out[i] = store.Applied{Record: rec, Shard: u.shard}
			continue
		}
		red := rc.Redact()
		redJSON, err := json.Marshal(red)
		if err != nil {
			return err
		}
		sec, err := json.Marshal(newEntrySecret(&rec, &next, rc))
		if err != nil {
			return err
		}
		rsec, err := json.Marshal(secretOf(rc))
		if err != nil {
			return err
		}
		atMS := rc.At.UnixMilli()
		if len(u.written) == 0 {
			first = atMS
		}
		item := strconv.FormatInt(atMS, 10) + " " + sealBlob(dk, rsec, receiptAD(next.UserID, rc.Seq)) + " " + string(redJSON)
		steps = append(steps, item, 8, "u", next.UserID, "v", next.Version, "c", redJSON, "x", sealRaw(dk, sec, entryAD(next.UserID, next.Version)))
		u.written = append(u.written, i)
		u.nexts = append(u.nexts, next)
		u.rcs = append(u.rcs, rc)
		rec = next
	}
	if len(u.written) == 0 {
		return nil
	}
	recJSON, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	u.args = append([]any{u.ver, rec.Version, recJSON, string(dk), mode, rawKey, statusOf(rec), u.id, first, len(u.written)}, steps...)
	return nil
}
