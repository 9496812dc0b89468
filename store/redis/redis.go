package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// Options configure a Store. The zero value is usable.
type Options struct {
	// Prefix starts every key. Empty means "rg". Two stores with different
	// prefixes on one Redis do not see each other.
	Prefix string
	// Shards is the number of changelog shards used when the keyspace is
	// first created; later opens use the stored number. Zero means the stored
	// number, or store.DefaultShards for a new keyspace. A non-zero value
	// that differs from the stored one is an error.
	Shards int
	// ChangelogMaxLen bounds each changelog stream (XADD MAXLEN ~). Zero
	// means 1,000,000.
	ChangelogMaxLen int64
	// MaxRetries bounds the compare-and-set retries of one write under
	// contention on the same user; then the write fails with
	// store.ErrConflict. Zero means 1000.
	MaxRetries int
	// Now is the clock for changes without a time. Nil means time.Now.
	Now func() time.Time

	// Init creates the keyspace when it is empty. Without it New refuses an
	// empty keyspace with store.ErrNotInitialized: initialising is an
	// explicit act, so a Redis that lost its data (restarted without
	// persistence, flushed, replaced) is never silently re-created. Init is
	// ignored when the keyspace already holds a recguard store.
	Init bool
	// AcceptDataLoss lets New open a keyspace that lost shards (their
	// identity marker is gone) by marking them anew: the operator accepts
	// that the users on those shards start from empty records. Without it
	// New fails with store.ErrDataLoss naming the shards. Running SDK
	// instances keep failing closed on those shards until restarted.
	AcceptDataLoss bool
	// AllowEvicting lets New open a Redis whose maxmemory-policy may evict
	// keys that have no expiry (allkeys-*). Without it New fails with
	// store.ErrUnsafeConfig: an evicted record is a forgotten opt-out.
	AllowEvicting bool
	// Durability says when a write is acknowledged. The zero value
	// acknowledges once the primary executed it.
	Durability Durability
	// ChainKey keys the receipt chains (consent.ChainKey): a deployment
	// secret kept outside Redis, so whoever can write Redis cannot rebuild
	// a chain. Empty means an unkeyed chain.
	ChainKey []byte
	// ChangelogRetention is how long changelog entries are kept:
	// PurgeExpired trims older ones (XTRIM MINID). Zero means
	// DefaultChangelogRetention.
	ChangelogRetention time.Duration
	// OutcomeRetention is how long outcome events are kept: PurgeExpired
	// trims older ones (XTRIM MINID). Zero means DefaultOutcomeRetention.
	OutcomeRetention time.Duration
	// LedgerRetention is how long ledger exposures and pushes are kept:
	// PurgeExpired trims older ones (XTRIM MINID). Provisions are kept
	// store.ProvisionRetentionFor(LedgerRetention), at least three years.
	// Zero means store.DefaultLedgerRetention.
	LedgerRetention time.Duration
	// LedgerMaxLen bounds each shard's ledger stream (XADD MAXLEN ~). Zero
	// means store.DefaultLedgerMaxLen.
	LedgerMaxLen int64
	// Logger receives warnings (no persistence configured, data loss
	// accepted). Nil means slog.Default().
	Logger *slog.Logger
	// WriteCache is how many users' last writes the store keeps so that
	// their next change is one round trip (see writecache.go): the record,
	// its version and the user's data key, each for at most 30 s. Zero
	// means DefaultWriteCache; negative turns it off (every Apply reads
	// first: two round trips).
	WriteCache int
}

// Durability says when a write (Apply, SetSettings, PutKey) is acknowledged.
//
//   - Replicas == 0: after the primary executed it. It survives a primary
//     crash and restart only with appendonly yes and appendfsync always, and
//     a failover only if the promoted replica had already received it.
//   - Replicas > 0: after WAIT confirmed that at least Replicas replicas
//     received it (within Timeout). It survives a failover to any of those
//     replicas. When fewer confirm in time the write stands on the primary
//     but the call returns an error wrapping store.ErrNotReplicated.
type Durability struct {
	// Replicas is how many replicas must confirm each write.
	Replicas int
	// Timeout bounds the wait for replicas. Zero means 500 ms. It must be
	// under the client's read timeout.
	Timeout time.Duration
}

// DefaultChangelogMaxLen is the changelog bound when Options leave it zero.
const DefaultChangelogMaxLen = 1_000_000

// Default retentions when Options leave them zero.
const (
	// DefaultChangelogRetention is how long changelog entries are kept.
	DefaultChangelogRetention = 7 * 24 * time.Hour
	// DefaultOutcomeRetention is how long outcome events are kept.
	DefaultOutcomeRetention = 180 * 24 * time.Hour
)

// Store is the Redis Store. It is safe for concurrent use.
type Store struct {
	c      goredis.UniversalClient
	k      keys
	shards int
	maxLen int64
	tries  int
	now    func() time.Time
	closed atomic.Bool
	log    *slog.Logger
	dur    Durability
	// epoch is the keyspace's identity (see identity.go).
	epoch string
	// key is the receipt chain key; logAge and outAge the changelog and
	// outcome retentions.
	key            consent.ChainKey
	logAge, outAge time.Duration
	// ledAge and ledMax are the ledger's retention and per-shard bound.
	ledAge time.Duration
	ledMax int64

	mu  sync.Mutex // guards set and setSeen
	set *consent.Settings
	// setSeen is when set was last confirmed current (see freshSettings).
	setSeen time.Time
	// wc keeps the users' last writes (nil: off).
	wc *writeCache
}

var _ store.Store = (*Store)(nil)

// New opens the recguard keyspace on c. An empty keyspace is created (shard
// count, identity, default settings) only with Options.Init; otherwise New
// returns an error wrapping store.ErrNotInitialized. A keyspace that lost
// data (its identity is gone from some slots) fails with store.ErrDataLoss
// unless Options.AcceptDataLoss; a Redis that may evict keys fails with
// store.ErrUnsafeConfig unless Options.AllowEvicting. The caller keeps
// ownership of c: Close does not close it.
func New(ctx context.Context, c goredis.UniversalClient, opts Options) (*Store, error) {
	s := &Store{c: c, k: keys{prefix: opts.Prefix}, maxLen: opts.ChangelogMaxLen, tries: opts.MaxRetries, now: opts.Now}
	if s.k.prefix == "" {
		s.k.prefix = "rg"
	}
	if strings.ContainsAny(s.k.prefix, "{}: ") {
		return nil, fmt.Errorf("redis store: prefix %q must not contain braces, colons or spaces", s.k.prefix)
	}
	if s.maxLen <= 0 {
		s.maxLen = DefaultChangelogMaxLen
	}
	if s.tries <= 0 {
		s.tries = 1000
	}
	s.key = append(consent.ChainKey(nil), opts.ChainKey...)
	s.logAge, s.outAge = opts.ChangelogRetention, opts.OutcomeRetention
	if s.logAge <= 0 {
		s.logAge = DefaultChangelogRetention
	}
	if s.outAge <= 0 {
		s.outAge = DefaultOutcomeRetention
	}
	s.ledAge, s.ledMax = store.LedgerRetentionOrDefault(opts.LedgerRetention), opts.LedgerMaxLen
	if s.ledMax <= 0 {
		s.ledMax = store.DefaultLedgerMaxLen
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.log = opts.Logger
	if s.log == nil {
		s.log = slog.Default()
	}
	switch {
	case opts.WriteCache == 0:
		s.wc = newWriteCache(DefaultWriteCache)
	case opts.WriteCache > 0:
		s.wc = newWriteCache(opts.WriteCache)
	}
	s.dur = opts.Durability
	if s.dur.Replicas < 0 {
		return nil, fmt.Errorf("redis store: Durability.Replicas %d < 0", s.dur.Replicas)
	}
	if s.dur.Timeout == 0 {
		s.dur.Timeout = 500 * time.Millisecond
	}
	if s.dur.Replicas > 0 {
		// WAIT blocks up to the timeout: the client must wait longer.
		rt := time.Duration(0)
		switch cc := c.(type) {
		case *goredis.Client:
			rt = cc.Options().ReadTimeout
		case *goredis.ClusterClient:
			rt = cc.Options().ReadTimeout
		}
		if rt > 0 && rt <= s.dur.Timeout {
			return nil, fmt.Errorf("redis store: Durability.Timeout %v must be under the client's read timeout %v", s.dur.Timeout, rt)
		}
	}
	if opts.Shards < 0 || opts.Shards > 16384 {
		return nil, fmt.Errorf("redis store: shards %d out of range 1..16384", opts.Shards)
	}
	if err := s.open(ctx, opts); err != nil {
		return nil, err
	}
	if err := s.checkConfig(ctx, opts); err != nil {
		return nil, err
	}
	return s, nil
}

// Shards returns the number of changelog shards.
func (s *Store) Shards() int { return s.shards }

// Close marks the store closed; it does not close the client.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

func (s *Store) check() error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return nil
}

func unavailable(err error) error {
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}

// Get returns the user's record, or the empty record and store.ErrNotFound.
func (s *Store) Get(ctx context.Context, userID string) (consent.Record, error) {
	if err := s.check(); err != nil {
		return consent.Record{}, err
	}
	if err := consent.ValidUserID(userID); err != nil {
		return consent.Record{}, err
	}
	recs, err := s.getUsers(ctx, []string{userID})
	if err != nil {
		return consent.NewRecord(userID), err
	}
	rec := recs[0]
	if rec.Version == 0 {
		return rec, fmt.Errorf("%w: user %q", store.ErrNotFound, userID)
	}
	return rec, nil
}

func decodeRecord(userID string, vals []any) (consent.Record, string, error) {
	v, _ := vals[0].(string)
	d, _ := vals[1].(string)
	if v == "" {
		if d != "" || len(vals) > 2 && vals[2] != nil {
			// Fields of a record without its version: a damaged hash,
			// not a user never seen.
			return consent.Record{}, "", &store.CorruptError{UserIDs: []string{userID}, Detail: "record without a version"}
		}
		return consent.NewRecord(userID), "0", nil
	}
	var rec consent.Record
	if err := json.Unmarshal([]byte(d), &rec); err != nil {
		return consent.Record{}, "", &store.CorruptError{UserIDs: []string{userID}, Detail: "record not decodable"}
	}
	ver, err := strconv.ParseUint(v, 10, 64)
	if err != nil || ver != rec.Version || rec.UserID != userID || ver == 0 {
		return consent.Record{}, "", &store.CorruptError{UserIDs: []string{userID}, Detail: "record version or ID does not match its key"}
	}
	if len(vals) > 2 {
		ns, _ := vals[2].(string)
		n, err := strconv.ParseUint(ns, 10, 32)
		if err != nil || n == 0 {
			return consent.Record{}, "", &store.CorruptError{UserIDs: []string{userID}, Detail: "record has no valid user number"}
		}
		rec.Number = uint32(n)
	}
	// A tombstone keeps no tags (one written by a release before sealing
	// kept suppressions: they are not served).
	if rec.State.Erased {
		rec.Tags = tags.Set{}
	}
	// The purge anchor lives in its own field (PurgeExpired writes it
	// without a new version); it overrides the copy in the record JSON.
	if len(vals) > 3 {
		if as, _ := vals[3].(string); as != "" {
			var a consent.Anchor
			if err := json.Unmarshal([]byte(as), &a); err != nil {
				return consent.Record{}, "", &store.CorruptError{UserIDs: []string{userID}, Detail: "purge anchor not decodable"}
			}
			rec.Purged = a
		}
	}
	return rec, v, nil
}

// readForWrite reads the user's record and the settings version in one
// round trip (a pipeline), and the settings themselves only when their
// version moved since last read. For a restrictive change (an opt-out, a
// refusal, a deletion) the settings last read are used when the settings'
// node cannot be reached (a Redis Cluster losing the {cfg} primary): the
// user can always say no.
func (s *Store) readForWrite(ctx context.Context, shard int, userID string, restrictive bool) (consent.Record, string, string, *consent.Settings, error) {
	var hm *goredis.SliceCmd
	var rx *goredis.IntCmd
	var sv *goredis.StringCmd
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		hm = p.HMGet(ctx, s.k.user(shard, userID), "v", "d", "n", "a", "k")
		rx = p.Exists(ctx, s.k.receipts(shard, userID))
		sv = p.HGet(ctx, s.k.settings(), "v")
		return nil
	})
	if errors.Is(err, goredis.Nil) && errors.Is(sv.Err(), goredis.Nil) {
		return consent.Record{}, "", "", nil, &store.DataLossError{Logs: []int{store.SettingsLog}, Detail: "the settings are gone"}
	}
	stale := false
	if err != nil {
		s.mu.Lock()
		cached := s.set != nil
		s.mu.Unlock()
		if !restrictive || !cached || hm.Err() != nil || rx.Err() != nil {
			return consent.Record{}, "", "", nil, unavailable(err)
		}
		stale = true // only the settings' node failed
	}
	vals := hm.Val()
	if len(vals) != 5 {
		return consent.Record{}, "", "", nil, unavailable(fmt.Errorf("HMGET returned %d values", len(vals)))
	}
	rec, ver, err := decodeRecord(userID, vals[:4])
	if err != nil {
		return consent.Record{}, "", "", nil, err
	}
	if rec.Version == 0 && rx.Val() == 1 {
		return consent.Record{}, "", "", nil, &store.CorruptError{UserIDs: []string{userID}, Detail: "the record is gone while the user's receipts remain"}
	}
	v, _ := strconv.ParseUint(sv.Val(), 10, 64)
	s.mu.Lock()
	set := s.set
	s.mu.Unlock()
	if !stale && (set == nil || set.Version != v) {
		if set, _, _, err = s.readSettings(ctx); err != nil {
			return consent.Record{}, "", "", nil, err
		}
	}
	if !stale {
		s.settingsConfirmed(v)
	}
	rawKey, present := vals[4].(string)
	if present && rawKey == "" {
		rawKey = emptyKey
	}
	return rec, ver, rawKey, set, nil
}

// Settings returns the current settings.
func (s *Store) Settings(ctx context.Context) (consent.Settings, error) {
	if err := s.check(); err != nil {
		return consent.Settings{}, err
	}
	set, _, _, err := s.readSettings(ctx)
	if err != nil {
		return consent.Settings{}, err
	}
	return set.Clone(), nil
}

// currentSettings returns the settings, re-reading the JSON only when the
// stored version moved.
func (s *Store) currentSettings(ctx context.Context) (*consent.Settings, error) {
	v, err := s.c.HGet(ctx, s.k.settings(), "v").Uint64()
	if err != nil {
		return nil, unavailable(err)
	}
	s.mu.Lock()
	cached := s.set
	s.mu.Unlock()
	if cached != nil && cached.Version == v {
		return cached, nil
	}
	set, _, _, err := s.readSettings(ctx)
	return set, err
}

func (s *Store) readSettings(ctx context.Context) (*consent.Settings, string, uint64, error) {
	vals, err := s.c.HMGet(ctx, s.k.settings(), "d", "h", "n").Result()
	if err != nil {
		return nil, "", 0, unavailable(err)
	}
	d, _ := vals[0].(string)
	h, _ := vals[1].(string)
	ns, _ := vals[2].(string)
	n, _ := strconv.ParseUint(ns, 10, 64)
	if d == "" {
		return nil, "", 0, &store.DataLossError{Logs: []int{store.SettingsLog}, Detail: "the settings are gone"}
	}
	set := new(consent.Settings)
	if err := json.Unmarshal([]byte(d), set); err != nil {
		return nil, "", 0, unavailable(fmt.Errorf("settings: %w", err))
	}
	s.mu.Lock()
	if s.set == nil || s.set.Version < set.Version {
		s.set = set
	}
	s.mu.Unlock()
	return set, h, n, nil
}

// Apply validates ch and applies it atomically with its receipt and its
// changelog entry.
func (s *Store) Apply(ctx context.Context, ch consent.Change) (store.Applied, error) {
	if err := s.check(); err != nil {
		return store.Applied{}, err
	}
	if err := consent.ValidUserID(ch.UserID); err != nil {
		return store.Applied{}, err
	}
	if ch.At.IsZero() {
		ch.At = s.now()
	}
	shard := store.ShardOf(ch.UserID, s.shards)
	keys := []string{s.k.user(shard, ch.UserID), s.k.receipts(shard, ch.UserID), s.k.log(shard), s.k.receiptIndex(shard), s.k.seq(shard), s.k.users(shard), s.k.requests(shard, ch.UserID), s.k.ledgerUsers(shard)}
	if ch.Op == consent.OpErase {
		s.cacheDrop(ch.UserID)
	} else if e := s.cacheGet(ch.UserID); e != nil && s.dur.Replicas <= 0 && ch.Restrictive() {
		if a, done, err := s.applyFast(ctx, shard, keys, ch, e); done {
			return a, err
		}
	}
	for attempt := 0; attempt < s.tries; attempt++ {
		rec, ver, dk, set, err := s.readForWrite(ctx, shard, ch.UserID, ch.Restrictive())
		if err != nil {
			return store.Applied{}, err
		}
		if err := ch.Validate(set); err != nil {
			return store.Applied{}, err
		}
		next, rc, err := rec.ApplyKeyed(ch, set, s.key)
		if err != nil {
			return store.Applied{}, err
		}
		if rc == nil {
			// Nothing to write (often the retry of a change whose first
			// answer said it was not replicated): with Durability, confirm
			// the slot's earlier writes reached the replicas all the same.
			a := store.Applied{Record: rec, Shard: shard}
			if ch.Op == consent.OpErase && rec.State.Erased && dk == "" {
				// Erased before sealing existed: erasing again scrubs
				// what that release kept in clear.
				if err := s.scrubLegacy(ctx, shard, ch.UserID); err != nil {
					return store.Applied{}, err
				}
			}
			if s.dur.Replicas > 0 {
				res, err := s.evalWrite(ctx, touchScript, []string{s.k.seq(shard)}, s.epoch, s.now().UnixMilli())
				if res == nil {
					return store.Applied{}, err
				}
				return a, err
			}
			return a, nil
		}
		var items []string
		if next.State.Erased {
			// The erasure rewrites every receipt item redacted: read them.
			if items, err = s.c.LRange(ctx, keys[1], 0, -1).Result(); err != nil {
				return store.Applied{}, unavailable(err)
			}
		}
		args, err := s.applyArgs(rec, next, rc, ver, dk, "", items, shard)
		if err != nil {
			return store.Applied{}, err
		}
		res, err := s.evalWrite(ctx, applyScript, keys, args...)
		if res == nil {
			return store.Applied{}, err
		}
		switch ok, _ := res[0].(int64); ok {
		case 1, 2:
			id, _ := res[1].(string)
			if ok == 2 {
				// go-redis sends a command again when its reply timed
				// out; the script found this write made already.
				s.log.Info("redis store: a write was sent again after its reply was lost; it had been made once", "shard", shard, "position", id)
			}
			num, _ := res[2].(string)
			n, _ := strconv.ParseUint(num, 10, 32)
			next.Number = uint32(n)
			if err == nil {
				s.cachePut(next, args[10], args[2])
			} else {
				s.cacheDrop(ch.UserID)
			}
			if next.State.Erased && hasWholeItems(items) {
				// A user whose history predates sealing: their old
				// changelog entries and outcome events are in clear.
				if serr := s.scrubLegacy(ctx, shard, ch.UserID); serr != nil {
					s.log.Warn("redis store: erased, but scrubbing the user's entries written before sealing failed; erase again to retry", "shard", shard, "err", serr)
				}
			}
			return store.Applied{Record: next, Receipt: rc, Shard: shard, Pos: store.Position(id)}, err
		case -1:
			return store.Applied{}, &store.DataLossError{Logs: []int{shard}, Detail: "write refused: the shard's identity marker is gone or replaced"}
		case -2:
			return store.Applied{}, &store.CorruptError{UserIDs: []string{ch.UserID}, Detail: "write refused: the record is gone while the user's receipts remain"}
		}
		backoff(attempt)
	}
	return store.Applied{}, fmt.Errorf("%w: user %q changed concurrently %d times in a row", store.ErrConflict, ch.UserID, s.tries)
}

// backoff sleeps a little after a lost compare-and-set, more after each
// loss, with jitter so racing writers spread out.
func backoff(attempt int) {
	if attempt < 2 {
		return
	}
	d := time.Duration(1+min(attempt, 20)) * 50 * time.Microsecond
	time.Sleep(d/2 + rand.N(d))
}

// Receipts returns the user's receipts, oldest first.
func (s *Store) Receipts(ctx context.Context, userID string) ([]consent.Receipt, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := consent.ValidUserID(userID); err != nil {
		return nil, err
	}
	shard := store.ShardOf(userID, s.shards)
	var lr *goredis.StringSliceCmd
	var hm *goredis.SliceCmd
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		lr = p.LRange(ctx, s.k.receipts(shard, userID), 0, -1)
		hm = p.HMGet(ctx, s.k.user(shard, userID), "k", "st", "d")
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, unavailable(err)
	}
	var dk []byte
	erased := false
	if v := hm.Val(); len(v) == 3 {
		k, _ := v[0].(string)
		dk = []byte(k)
		st, _ := v[1].(string)
		d, _ := v[2].(string)
		erased = statusOfHash(st, d) == "e"
	}
	items := lr.Val()
	out := make([]consent.Receipt, 0, len(items))
	for _, it := range items {
		rc, blob, err := decodeReceiptItem(it)
		if err != nil {
			return nil, unavailable(err)
		}
		openReceipt(&rc, blob, dk, erased)
		out = append(out, rc)
	}
	return out, nil
}

// SettingsReceipts returns the receipts of settings changes, oldest first.
func (s *Store) SettingsReceipts(ctx context.Context) ([]consent.Receipt, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return s.readReceipts(ctx, s.k.settingsReceipts())
}

func (s *Store) readReceipts(ctx context.Context, key string) ([]consent.Receipt, error) {
	items, err := s.c.LRange(ctx, key, 0, -1).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]consent.Receipt, 0, len(items))
	for _, it := range items {
		rc, _, err := decodeReceiptItem(it)
		if err != nil {
			return nil, unavailable(err)
		}
		out = append(out, rc)
	}
	return out, nil
}

// SetSettings validates and saves s if the stored version is still
// set.Version.
func (s *Store) SetSettings(ctx context.Context, set consent.Settings, actor consent.Actor, surface consent.Surface) (consent.Settings, consent.Receipt, error) {
	if err := s.check(); err != nil {
		return consent.Settings{}, consent.Receipt{}, err
	}
	if err := set.Validate(); err != nil {
		return consent.Settings{}, consent.Receipt{}, err
	}
	if !actor.Valid() {
		return consent.Settings{}, consent.Receipt{}, &consent.FieldError{Field: "actor", Detail: fmt.Sprintf("unknown actor %q", actor), Err: consent.ErrInvalidChange}
	}
	if err := consent.ValidChannelName(string(surface)); err != nil {
		return consent.Settings{}, consent.Receipt{}, &consent.FieldError{Field: "surface", Detail: fmt.Sprintf("invalid surface %q", surface), Err: consent.ErrInvalidChange}
	}
	old, head, n, err := s.readSettings(ctx)
	if err != nil {
		return consent.Settings{}, consent.Receipt{}, err
	}
	if old.Version != set.Version {
		return consent.Settings{}, consent.Receipt{}, fmt.Errorf("%w: settings are at version %d, change was made against %d", store.ErrConflict, old.Version, set.Version)
	}
	next := set.Normalize()
	next.Version = old.Version + 1
	rc := consent.NewSettingsReceipt(old, &next, n+1, head, actor, surface, s.now(), s.key)
	setJSON, _ := json.Marshal(next)
	rcJSON, _ := json.Marshal(rc)
	item := strconv.FormatInt(rc.At.UnixMilli(), 10) + " " + string(rcJSON)
	keys := []string{s.k.settings(), s.k.settingsReceipts(), s.k.settingsLog(), s.k.settingsSeq()}
	res, err := s.evalWrite(ctx, settingsScript, keys, old.Version, next.Version, setJSON, item, rcJSON, rc.Hash, rc.Seq, s.maxLen, s.epoch)
	if res == nil {
		return consent.Settings{}, consent.Receipt{}, err
	}
	switch ok, _ := res[0].(int64); ok {
	case -1:
		return consent.Settings{}, consent.Receipt{}, &store.DataLossError{Logs: []int{store.SettingsLog}, Detail: "write refused: the settings slot's identity marker is gone or replaced"}
	case 1:
	default:
		return consent.Settings{}, consent.Receipt{}, fmt.Errorf("%w: settings changed concurrently", store.ErrConflict)
	}
	s.mu.Lock()
	if s.set == nil || s.set.Version < next.Version {
		c := next.Clone()
		s.set = &c
		s.setSeen = time.Now()
	}
	s.mu.Unlock()
	return next.Clone(), rc, err
}

// ReadChangelog returns up to count events of log after position after.
// It is one XREAD (with BLOCK when block > 0). Because the sequence part of
// every entry ID counts the log's entries without gaps, the first entry
// returned tells whether entries after `after` were trimmed away.
func (s *Store) ReadChangelog(ctx context.Context, log int, after store.Position, count int, block time.Duration) ([]store.Event, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	key, err := s.logKey(log)
	if err != nil {
		return nil, err
	}
	if _, err := store.ParsePosition(string(after)); err != nil {
		return nil, err
	}
	if count <= 0 {
		count = 100
	}
	streams, err := s.xread(ctx, []string{key, after.String()}, count, block)
	if errors.Is(err, goredis.Nil) {
		if block > 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// Nothing after `after`. MAXLEN ~ only drops the oldest entries and
		// always keeps the newest, so an empty answer never hides a gap;
		// but the log may be behind `after` (or gone): check its counter.
		return nil, s.checkLogs(ctx, []int{log}, []store.Position{after})
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, unavailable(err)
	}
	var msgs []goredis.XMessage
	if len(streams) > 0 {
		msgs = streams[0].Messages
	}
	if len(msgs) == 0 {
		return nil, s.checkLogs(ctx, []int{log}, []store.Position{after})
	}
	evs, blobs, err := decodeMessages(nil, nil, log, after, msgs)
	if err != nil {
		return nil, err
	}
	if err := s.openEvents(ctx, evs, blobs); err != nil {
		return nil, err
	}
	return evs, nil
}

// checkLogs checks, for logs a read found nothing new in, that each log's
// counter is not behind the reader's position (a failover to a replica that
// missed entries, a restore from an older snapshot: *store.RegressedError)
// and that its slot still carries the keyspace's identity (*DataLossError).
// The counter (n, ms) of a log that did not regress is at or after the
// reader's position in both parts, because entry IDs only grow.
func (s *Store) checkLogs(ctx context.Context, logs []int, after []store.Position) error {
	cmds := make([]*goredis.SliceCmd, len(logs))
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, l := range logs {
			cmds[i] = p.HMGet(ctx, s.seqKey(l), "n", "ms", "e")
		}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return unavailable(err)
	}
	var lost []int
	for i, l := range logs {
		vals := cmds[i].Val()
		ns, _ := vals[0].(string)
		mss, _ := vals[1].(string)
		e, _ := vals[2].(string)
		if e != s.epoch {
			lost = append(lost, l)
			continue
		}
		n, _ := strconv.ParseUint(ns, 10, 64)
		ms, _ := strconv.ParseUint(mss, 10, 64)
		ams, an := after[i].Parts()
		if n < an || (an > 0 && ms < ams) {
			tail := store.Position("")
			if n > 0 {
				tail = store.Position(strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(n, 10))
			}
			return &store.RegressedError{Log: l, After: after[i], Tail: tail}
		}
		if n > an {
			// The counter says entries follow the reader's position but the
			// read found none: trimmed by age (XTRIM MINID can empty a log),
			// unless one was appended since the read.
			if err := s.checkTrimmed(ctx, l, after[i]); err != nil {
				return err
			}
		}
	}
	if len(lost) > 0 {
		return &store.DataLossError{Logs: lost, Detail: "the changelog's slot lost its identity marker"}
	}
	return nil
}

// checkTrimmed returns a *store.TrimmedError when log holds no entry after
// `after` although its counter is past it.
func (s *Store) checkTrimmed(ctx context.Context, log int, after store.Position) error {
	key, err := s.logKey(log)
	if err != nil {
		return err
	}
	start := "-"
	if !after.IsZero() {
		start = "(" + after.String()
	}
	msgs, err := s.c.XRangeN(ctx, key, start, "+", 1).Result()
	if err != nil {
		return unavailable(err)
	}
	if len(msgs) == 0 {
		return &store.TrimmedError{Log: log, After: after}
	}
	return nil
}

// blockSlice bounds one blocking XREAD: go-redis cannot interrupt a
// blocking command when its context ends, so a long block is cut into
// slices and the context is checked between them.
const blockSlice = 200 * time.Millisecond

// xread runs XREAD over streams (keys then IDs), blocking up to block (none
// when block <= 0) in slices of at most blockSlice, and returns as soon as
// there is data or ctx ends. No data at all is goredis.Nil.
func (s *Store) xread(ctx context.Context, streams []string, count int, block time.Duration) ([]goredis.XStream, error) {
	args := &goredis.XReadArgs{Streams: streams, Count: int64(count), Block: -1}
	if block <= 0 {
		return s.c.XRead(ctx, args).Result()
	}
	deadline := time.Now().Add(block)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		left := time.Until(deadline)
		if left < time.Millisecond {
			return nil, goredis.Nil
		}
		args.Block = min(left, blockSlice)
		// A deadline of its own: go-redis gives a blocking read block +
		// 10 s on the socket, which would hold a follower long after a
		// blackholed link healed (clients that honour context deadlines,
		// such as NewClient's, end the read at this deadline instead).
		bctx, cancel := context.WithTimeout(ctx, args.Block+time.Second)
		res, err := s.c.XRead(bctx, args).Result()
		cancel()
		if err != nil && ctx.Err() == nil && bctx.Err() != nil {
			err = unavailable(fmt.Errorf("blocking read past its deadline: %w", err))
		}
		if !errors.Is(err, goredis.Nil) {
			return res, err
		}
	}
}

// decodeMessages appends the events of msgs, read from log after `after`,
// to out. Entry numbers run without gaps: a gap before the first entry means
// entries were trimmed away, a gap further on that entries were deleted
// (XDEL, a partial restore), both *store.TrimmedError (the reader rebuilds);
// a number at or before `after` means the log was rewound
// (*store.RegressedError). An entry that cannot be decoded is as good as
// gone: a *store.TrimmedError at it, so the reader rebuilds past it.
func decodeMessages(out []store.Event, blobs []string, log int, after store.Position, msgs []goredis.XMessage) ([]store.Event, []string, error) {
	if len(msgs) == 0 {
		return out, blobs, nil
	}
	_, a := after.Parts()
	_, f := store.Position(msgs[0].ID).Parts()
	if f > a+1 {
		return nil, nil, &store.TrimmedError{Log: log, After: after, Next: store.Position(msgs[0].ID)}
	}
	if a > 0 && f < a+1 {
		// The entry after ours carries a number we already read: the log
		// was rewound (failover, restore) and written again since.
		return nil, nil, &store.RegressedError{Log: log, After: after, Tail: store.Position(msgs[len(msgs)-1].ID)}
	}
	prev := f - 1
	for _, m := range msgs {
		if _, n := store.Position(m.ID).Parts(); n != prev+1 {
			return nil, nil, &store.TrimmedError{Log: log, After: after, Next: store.Position(m.ID)}
		}
		prev++
		ev, blob, err := decodeMessage(log, m)
		if err != nil {
			return nil, nil, &store.TrimmedError{Log: log, After: after, Next: store.Position(m.ID)}
		}
		out = append(out, ev)
		blobs = append(blobs, blob)
	}
	return out, blobs, nil
}

// decodeMessage turns one stream message into an Event. An entry whose
// content is sealed (field x) comes back with Record holding only the
// user's ID, version and chain head, and the blob to open (see openEvents).
func decodeMessage(log int, m goredis.XMessage) (store.Event, string, error) {
	ev := store.Event{Log: log, Pos: store.Position(m.ID)}
	var num, ver uint64
	var user, blob string
	for f, v := range m.Values {
		str, _ := v.(string)
		var err error
		switch f {
		case "r":
			ev.Record = new(consent.Record)
			err = json.Unmarshal([]byte(str), ev.Record)
		case "p":
			ev.Prev = new(consent.Record)
			err = json.Unmarshal([]byte(str), ev.Prev)
		case "n":
			num, err = strconv.ParseUint(str, 10, 32)
		case "v":
			ver, err = strconv.ParseUint(str, 10, 64)
		case "u":
			user = str
		case "x":
			blob = str
			if blob == "" {
				err = errors.New("empty sealed content")
			}
		case "s":
			ev.Settings = new(consent.Settings)
			err = json.Unmarshal([]byte(str), ev.Settings)
		case "c":
			err = json.Unmarshal([]byte(str), &ev.Receipt)
		}
		if err != nil {
			return store.Event{}, "", fmt.Errorf("changelog entry %s field %s: %w", m.ID, f, err)
		}
	}
	if blob != "" {
		if user == "" || ver == 0 || ev.Record != nil {
			return store.Event{}, "", fmt.Errorf("changelog entry %s: sealed entry without user and version", m.ID)
		}
		ev.Record = &consent.Record{UserID: user, Version: ver, LastHash: ev.Receipt.Hash}
	}
	if ev.Record != nil {
		ev.Record.Number = uint32(num)
	}
	if ev.Prev != nil {
		ev.Prev.Number = uint32(num)
	}
	return ev, blob, nil
}

// Tail returns the position of the newest event in log.
func (s *Store) Tail(ctx context.Context, log int) (store.Position, error) {
	if err := s.check(); err != nil {
		return "", err
	}
	key, err := s.logKey(log)
	if err != nil {
		return "", err
	}
	msgs, err := s.c.XRevRangeN(ctx, key, "+", "-", 1).Result()
	if err != nil {
		return "", unavailable(err)
	}
	if len(msgs) == 0 {
		return "", nil
	}
	return store.Position(msgs[0].ID), nil
}

func (s *Store) logKey(log int) (string, error) {
	switch {
	case log == store.SettingsLog:
		return s.k.settingsLog(), nil
	case log >= 0 && log < s.shards:
		return s.k.log(log), nil
	}
	return "", fmt.Errorf("%w: log %d (shards 0..%d or SettingsLog)", store.ErrInvalidPosition, log, s.shards-1)
}

// PurgeExpired deletes receipts older than the retention as of now, leaving
// each user's anchor, and trims changelog and outcome entries older than
// their retentions (XTRIM MINID ~: whole stream nodes go, so up to one node
// of older entries, at most 100 by default, may stay until the next purge).
func (s *Store) PurgeExpired(ctx context.Context, now time.Time) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	set, err := s.currentSettings(ctx)
	if err != nil {
		return 0, err
	}
	cutoff := now.Add(-set.RetentionOrDefault()).UnixMilli()
	total := 0
	n, err := purgeScript.Run(ctx, s.c, []string{s.k.settingsReceipts(), s.k.settingsReceipts()}, cutoff, "").Int()
	if err != nil {
		return total, unavailable(err)
	}
	total += n
	for shard := 0; shard < s.shards; shard++ {
		idx := s.k.receiptIndex(shard)
		for {
			users, err := s.c.ZRangeArgs(ctx, goredis.ZRangeArgs{Key: idx, Start: "-inf", Stop: "(" + strconv.FormatInt(cutoff, 10), ByScore: true, Count: 500}).Result()
			if err != nil {
				return total, unavailable(err)
			}
			for _, u := range users {
				n, err := s.purgeUser(ctx, shard, u, cutoff)
				if err != nil {
					return total, err
				}
				total += n
			}
			if len(users) < 500 {
				break
			}
		}
		logMin := strconv.FormatInt(now.Add(-s.logAge).UnixMilli(), 10)
		outMin := strconv.FormatInt(now.Add(-s.outAge).UnixMilli(), 10)
		ledMin := strconv.FormatInt(now.Add(-s.ledAge).UnixMilli(), 10)
		_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			p.XTrimMinIDApprox(ctx, s.k.log(shard), logMin, 0)
			p.XTrimMinIDApprox(ctx, s.k.outcomes(shard), outMin, 0)
			p.XTrimMinIDApprox(ctx, s.k.ledger(shard), ledMin, 0)
			return nil
		})
		if err != nil {
			return total, unavailable(err)
		}
	}
	if err := s.purgeProvisions(ctx, now); err != nil {
		return total, err
	}
	return total, nil
}

// purgeProvisions trims provisions older than ProvisionRetentionFor the
// ledger retention (XTRIM MINID ~: never one younger).
func (s *Store) purgeProvisions(ctx context.Context, now time.Time) error {
	min := strconv.FormatInt(now.Add(-store.ProvisionRetentionFor(s.ledAge)).UnixMilli(), 10)
	if err := s.c.XTrimMinIDApprox(ctx, s.k.provisions(), min, 0).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// purgeUser removes the user's receipts older than cutoff (unix ms) from
// the oldest end and records the anchor of the last one removed.
func (s *Store) purgeUser(ctx context.Context, shard int, user string, cutoff int64) (int, error) {
	total := 0
	for {
		n, err := s.purgeUserPage(ctx, shard, user, cutoff)
		total += n
		if err != nil || n < purgePage {
			return total, err
		}
	}
}

// purgePage is how many receipts purgeUserPage reads at a time.
const purgePage = 1000

func (s *Store) purgeUserPage(ctx context.Context, shard int, user string, cutoff int64) (int, error) {
	key, idx := s.k.receipts(shard, user), s.k.receiptIndex(shard)
	for attempt := 0; attempt < s.tries; attempt++ {
		items, err := s.c.LRange(ctx, key, 0, purgePage-1).Result()
		if err != nil {
			return 0, unavailable(err)
		}
		k := 0
		for _, it := range items {
			ms, _, _ := strings.Cut(it, " ")
			at, err := strconv.ParseInt(ms, 10, 64)
			if err != nil || at >= cutoff {
				break
			}
			k++
		}
		if k == 0 {
			if len(items) == 0 {
				s.c.ZRem(ctx, idx, user)
			} else if ms, _, ok := strings.Cut(items[0], " "); ok {
				if at, err := strconv.ParseInt(ms, 10, 64); err == nil {
					s.c.ZAdd(ctx, idx, goredis.Z{Score: float64(at), Member: user})
				}
			}
			return 0, nil
		}
		last, _, err := decodeReceiptItem(items[k-1])
		if err != nil {
			return 0, unavailable(err)
		}
		aJSON, err := json.Marshal(consent.NewAnchor(last, s.key))
		if err != nil {
			return 0, err
		}
		n, err := purgeUserScript.Run(ctx, s.c, []string{key, idx, s.k.user(shard, user)}, k, items[k-1], aJSON, user).Int()
		if err != nil {
			return 0, unavailable(err)
		}
		if n >= 0 {
			return n, nil
		}
		backoff(attempt)
	}
	return 0, fmt.Errorf("%w: receipts of %q changed concurrently during the purge", store.ErrConflict, user)
}

func defaultSettingsJSON() []byte {
	def := consent.DefaultSettings().Normalize()
	def.Version = 1
	b, _ := json.Marshal(def)
	return b
}
