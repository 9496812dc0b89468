package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

var _ store.Ledger = (*Store)(nil)

// The ledger's keys (see doc.go):
//
//	rg:{<s>}:ledger   stream: shard s's exposures and pushes, fields p (the user's pseudonym; absent for none) and e (the entry's JSON without its user)
//	rg:{<s>}:lp       hash: pseudonym -> user ID, for the shard's users; an erasure deletes the user's field
//	rg:{ledger}:prov  stream: provisions, field e; trimmed by time only, never younger than store.ProvisionRetention
//	rg:{ledger}:drops hash: kind -> entries that never reached the ledger
//
// and field lp of a user's hash is the user's pseudonym (12 random bytes,
// hex), made with the user's first ledger entry.
func (k keys) ledger(shard int) string      { return k.tag(shard) + "ledger" }
func (k keys) ledgerUsers(shard int) string { return k.tag(shard) + "lp" }
func (k keys) provisions() string           { return k.prefix + ":{ledger}:prov" }
func (k keys) ledgerDrops() string          { return k.prefix + ":{ledger}:drops" }

// pseudonymScript returns, for each user of one shard, the user's ledger
// pseudonym, making it (from the one offered) for a user who has none; an
// erased user gets none (false) and no link.
//
// KEYS: the users' hashes, then the shard's pseudonym hash. ARGV: one
// offered pseudonym per user.
var pseudonymScript = goredis.NewScript(`
local out = {}
local lp = KEYS[#KEYS]
for i = 1, #KEYS - 1 do
  local r = redis.call('HMGET', KEYS[i], 'lp', 'st', 'd')
  local st = r[2]
  if not st and r[3] and string.find(r[3], '"erased":true', 1, true) then st = 'e' end
  if st == 'e' then
    out[i] = false
  else
    if not r[1] then
      redis.call('HSET', KEYS[i], 'lp', ARGV[i])
      redis.call('HSET', lp, ARGV[i], string.sub(KEYS[i], string.find(KEYS[i], ':u:', 1, true) + 3))
      r[1] = ARGV[i]
    end
    out[i] = r[1]
  end
end
return out
`)

func newPseudonym() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// AppendLedger validates every entry, gives each user a pseudonym (one
// script per shard), then XADDs the entries in one pipeline: exposures and
// pushes to their user's shard stream (MAXLEN ~ Options.LedgerMaxLen) with
// the pseudonym and without the user ID, provisions to the provisions
// stream (no length bound). Entries of erased users are kept without a
// pseudonym.
func (s *Store) AppendLedger(ctx context.Context, entries []store.LedgerEntry) error {
	if err := s.check(); err != nil {
		return err
	}
	for i := range entries {
		if err := entries[i].Validate(); err != nil {
			return err
		}
	}
	if len(entries) == 0 {
		return nil
	}
	byShard := map[int][]string{}
	seen := map[string]bool{}
	for _, e := range entries {
		if e.UserID != "" && !seen[e.UserID] {
			seen[e.UserID] = true
			sh := store.ShardOf(e.UserID, s.shards)
			byShard[sh] = append(byShard[sh], e.UserID)
		}
	}
	cmds := map[int]*goredis.Cmd{}
	if len(byShard) > 0 {
		_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for sh, ids := range byShard {
				keys := make([]string, 0, len(ids)+1)
				offer := make([]any, len(ids))
				for i, id := range ids {
					keys = append(keys, s.k.user(sh, id))
					offer[i] = newPseudonym()
				}
				cmds[sh] = pseudonymScript.Eval(ctx, p, append(keys, s.k.ledgerUsers(sh)), offer...)
			}
			return nil
		})
		if err != nil {
			return unavailable(err)
		}
	}
	pseud := map[string]string{}
	for sh, ids := range byShard {
		res, err := cmds[sh].Slice()
		if err != nil || len(res) != len(ids) {
			return unavailable(fmt.Errorf("ledger pseudonyms: %v", err))
		}
		for i, id := range ids {
			if p, ok := res[i].(string); ok {
				pseud[id] = p
			}
		}
	}
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, e := range entries {
			user := e.UserID
			e.UserID, e.Logged = "", time.Time{}
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if user == "" {
				p.XAdd(ctx, &goredis.XAddArgs{Stream: s.k.provisions(), Values: []any{"e", b}})
				continue
			}
			vals := []any{"e", b}
			if ps := pseud[user]; ps != "" {
				vals = append(vals, "p", ps)
			}
			p.XAdd(ctx, &goredis.XAddArgs{Stream: s.k.ledger(store.ShardOf(user, s.shards)), MaxLen: s.ledMax, Approx: true, Values: vals})
		}
		return nil
	})
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// ledgerCursor pages through one ledger stream.
type ledgerCursor struct {
	key   string
	shard int // -1 for provisions
	buf   []goredis.XMessage
	next  string // the next XRANGE start
	end   string
	done  bool
	names map[string]string // pseudonym -> user for the page
}

// streamID parses a stream ID into (ms, seq) for ordering.
func streamID(id string) (uint64, uint64) {
	a, b, _ := strings.Cut(id, "-")
	ms, _ := strconv.ParseUint(a, 10, 64)
	sq, _ := strconv.ParseUint(b, 10, 64)
	return ms, sq
}

const ledgerPage = 1000

func (s *Store) fill(ctx context.Context, c *ledgerCursor) error {
	if c.done || len(c.buf) > 0 {
		return nil
	}
	msgs, err := s.c.XRangeN(ctx, c.key, c.next, c.end, ledgerPage).Result()
	if err != nil {
		return unavailable(err)
	}
	if len(msgs) < ledgerPage {
		c.done = true
	}
	if len(msgs) > 0 {
		c.next = "(" + msgs[len(msgs)-1].ID
	}
	c.buf = msgs
	c.names = map[string]string{}
	if c.shard < 0 {
		return nil
	}
	var ps []string
	for _, m := range msgs {
		if p, _ := m.Values["p"].(string); p != "" {
			if _, ok := c.names[p]; !ok {
				c.names[p] = ""
				ps = append(ps, p)
			}
		}
	}
	if len(ps) > 0 {
		vals, err := s.c.HMGet(ctx, s.k.ledgerUsers(c.shard), ps...).Result()
		if err != nil {
			return unavailable(err)
		}
		for i, v := range vals {
			if u, ok := v.(string); ok && consent.ValidUserID(u) == nil {
				c.names[ps[i]] = u
			}
		}
	}
	return nil
}

// decodeLedger decodes one stream entry; user is the pseudonym's user
// ("" when the link is gone: erased).
func decodeLedger(m goredis.XMessage, user string) (store.LedgerEntry, error) {
	var e store.LedgerEntry
	raw, _ := m.Values["e"].(string)
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return e, &store.CorruptError{Detail: fmt.Sprintf("ledger entry %s does not decode", m.ID)}
	}
	ms, _ := streamID(m.ID)
	e.UserID, e.Logged = user, time.UnixMilli(int64(ms)).UTC()
	return e, nil
}

// ScanLedger merges every shard's ledger stream and the provisions stream
// by stream ID (the time Redis received each entry), paging each with
// XRANGE, and resolves pseudonyms page by page (HMGET).
func (s *Store) ScanLedger(ctx context.Context, from, to time.Time, fn func(store.LedgerEntry) error) error {
	if err := s.check(); err != nil {
		return err
	}
	start := strconv.FormatInt(max(from.UnixMilli(), 0), 10)
	end := "+"
	if !to.IsZero() {
		end = "(" + strconv.FormatInt(to.UnixMilli(), 10)
		if to.UnixMilli() <= max(from.UnixMilli(), 0) {
			return nil
		}
	}
	cs := make([]*ledgerCursor, 0, s.shards+1)
	for sh := 0; sh < s.shards; sh++ {
		cs = append(cs, &ledgerCursor{key: s.k.ledger(sh), shard: sh, next: start, end: end})
	}
	cs = append(cs, &ledgerCursor{key: s.k.provisions(), shard: -1, next: start, end: end})
	for {
		var best *ledgerCursor
		var bms, bsq uint64
		for _, c := range cs {
			if err := s.fill(ctx, c); err != nil {
				return err
			}
			if len(c.buf) == 0 {
				continue
			}
			ms, sq := streamID(c.buf[0].ID)
			if best == nil || ms < bms || ms == bms && sq < bsq {
				best, bms, bsq = c, ms, sq
			}
		}
		if best == nil {
			return nil
		}
		m := best.buf[0]
		best.buf = best.buf[1:]
		p, _ := m.Values["p"].(string)
		e, err := decodeLedger(m, best.names[p])
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// UserLedger reads the user's pseudonym and scans the user's shard stream
// for it.
func (s *Store) UserLedger(ctx context.Context, userID string) ([]store.LedgerEntry, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := consent.ValidUserID(userID); err != nil {
		return nil, err
	}
	sh := store.ShardOf(userID, s.shards)
	out := []store.LedgerEntry{}
	p, err := s.c.HGet(ctx, s.k.user(sh, userID), "lp").Result()
	if err == goredis.Nil || p == "" {
		return out, nil
	}
	if err != nil {
		return nil, unavailable(err)
	}
	c := &ledgerCursor{key: s.k.ledger(sh), shard: -1, next: "-", end: "+"}
	for {
		if err := s.fill(ctx, c); err != nil {
			return nil, err
		}
		if len(c.buf) == 0 {
			return out, nil
		}
		for _, m := range c.buf {
			if mp, _ := m.Values["p"].(string); mp == p {
				e, err := decodeLedger(m, userID)
				if err != nil {
					return nil, err
				}
				out = append(out, e)
			}
		}
		c.buf = nil
	}
}

// AddLedgerDrops adds n to the drop count of kind (HINCRBY).
func (s *Store) AddLedgerDrops(ctx context.Context, kind store.LedgerKind, n uint64) error {
	if err := s.check(); err != nil {
		return err
	}
	if kind < store.LedgerExposure || kind > store.LedgerProvision {
		return &consent.FieldError{Field: "kind", Detail: "unknown ledger kind", Err: consent.ErrInvalidChange}
	}
	if n == 0 {
		return nil
	}
	if err := s.c.HIncrBy(ctx, s.k.ledgerDrops(), kind.String(), int64(n)).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// LedgerDrops returns the drop counts by kind.
func (s *Store) LedgerDrops(ctx context.Context) (map[store.LedgerKind]uint64, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	m, err := s.c.HGetAll(ctx, s.k.ledgerDrops()).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	out := map[store.LedgerKind]uint64{}
	for k, v := range m {
		var kind store.LedgerKind
		if kind.UnmarshalText([]byte(k)) != nil {
			continue
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		out[kind] = n
	}
	return out, nil
}
