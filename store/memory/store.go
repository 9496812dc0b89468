package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

var _ store.Store = (*Store)(nil)

// Store is the embedded store. Open it with Open; all methods are safe for
// concurrent use.
//
// Erasure (Art. 24) takes effect in memory when Apply returns: what the
// store gives back about the user carries no personal content from then
// on. With a data directory the file's older lines still hold it until the
// compaction the erasure schedules: while the store is open, at most about
// twice Options.CompactDelay plus twice a compaction's duration (about two
// minutes with the default delay, plus the rewrites); a store closed
// earlier compacts that long after its next Open. Receipts and changelog
// entries removed by PurgeExpired leave the file the same way. See the
// package documentation.
type Store struct {
	opts   Options
	shards []*shard
	set    *settingsPart
	aof    *aof     // nil without a data directory
	lock   *os.File // the directory lock; nil without a data directory

	// snapLines is the line count of the snapshot being replayed at open:
	// no user number of a snapshot can exceed it.
	snapLines int
	// replayedErasures is set when Open replayed an erasure or a purge
	// after the file's snapshot: the file holds what they removed.
	replayedErasures bool

	// compactMu serializes Compact and Close.
	compactMu sync.Mutex
	closed    atomic.Bool
	done      chan struct{} // closed by Close, waking blocked reads

	// The background compactor (compact.go); nil without a data directory
	// or with a negative Options.CompactDelay.
	compactReq chan struct{}      // buffered 1: a compaction is wanted
	bgCancel   context.CancelFunc // stops the compactor
	bgDone     chan struct{}      // closed when the compactor has stopped

	presence presence // announced SDK instances (memory only)

	ckptMu sync.Mutex
	ckpts  map[string][]byte // checkpoints without a data directory

	outcomes outcomes // outcome events for audits (memory only)

	ledger ledger // exposures, pushes and provisions (ledger.go)

	requests requests // per-user request counts (memory only)

	ab *abilities // API keys and rights requests (abilities.go)
}

// shard holds the users of one shard and its changelog.
//
// wmu serializes the shard's writers: it is held while a change is computed,
// written to the file and applied. mu guards the state against readers; it
// is taken (exclusively) by a writer only to publish a change, after the
// write succeeded, so reads never wait for a sync. A writer holding wmu may
// read the state without mu.
type shard struct {
	wmu   sync.Mutex
	mu    sync.RWMutex
	users map[string]*user
	ids   []string // users by local number - 1 (see store.UserNumber)
	log   *changelog
}

// user is one user's state. It is replaced, never modified, on a change:
// receipts is only appended to or resliced from the front.
type user struct {
	rec      *consent.Record
	receipts []consent.Receipt
}

// settingsPart holds the settings, their receipts and the settings log, with
// the same locking as a shard. The current settings are also published in
// cur, read without locks by Apply.
type settingsPart struct {
	wmu      sync.Mutex
	mu       sync.RWMutex
	cur      atomic.Pointer[consent.Settings]
	receipts []consent.Receipt
	seq      uint64 // Seq of the newest settings receipt ever made
	head     string // its Hash
	log      *changelog
}

// newStore returns an empty store with n shards.
func newStore(opts Options, n int) *Store {
	s := &Store{opts: opts, shards: make([]*shard, n), done: make(chan struct{}), ab: newAbilities("", opts.NoSync)}
	for i := range s.shards {
		s.shards[i] = &shard{users: make(map[string]*user), log: newChangelog(i, opts.ChangelogMaxLen)}
	}
	s.set = &settingsPart{log: newChangelog(store.SettingsLog, opts.ChangelogMaxLen)}
	def := consent.DefaultSettings().Normalize()
	def.Version = 1
	s.set.cur.Store(&def)
	return s
}

// Shards returns the number of changelog shards.
func (s *Store) Shards() int { return len(s.shards) }

// Get returns the user's current record, or consent.NewRecord(userID) and
// store.ErrNotFound for a user never seen. An invalid ID returns the
// consent.ValidUserID error.
func (s *Store) Get(ctx context.Context, userID string) (consent.Record, error) {
	if err := s.check(ctx); err != nil {
		return consent.Record{}, err
	}
	if err := consent.ValidUserID(userID); err != nil {
		return consent.Record{}, err
	}
	sh := s.shards[store.ShardOf(userID, len(s.shards))]
	sh.mu.RLock()
	u := sh.users[userID]
	sh.mu.RUnlock()
	if u == nil {
		return consent.NewRecord(userID), store.ErrNotFound
	}
	return cloneRecord(*u.rec), nil
}

// Apply validates ch against the current settings, applies it to the user's
// record with consent.Record.ApplyKeyed under Options.ChainKey, and records
// the new record, the receipt and the changelog entry atomically: one line
// of the file, made durable before the change becomes visible. A zero ch.At
// is set from Options.Now. A no-op writes nothing and returns the current
// record with a nil Receipt and a zero Pos. When the file cannot be written
// it returns an error wrapping store.ErrUnavailable and changes nothing in
// memory.
//
// An erasure (consent.OpErase) also, in the same step as it becomes
// visible, replaces the user's receipts by their redacted forms (its own
// too: the file line and the changelog hold only that; Applied.Receipt is
// the whole receipt, for the caller), replaces the user's earlier
// changelog entries by shredded ones (store.Event.Shredded), gives its own
// entry no Prev, and drops the user's outcome events. The earlier lines of
// the data file keep the user's content until the next compaction, which
// the erasure schedules (see Options.CompactDelay and the package
// documentation).
func (s *Store) Apply(ctx context.Context, ch consent.Change) (store.Applied, error) {
	if err := s.check(ctx); err != nil {
		return store.Applied{}, err
	}
	set := s.set.cur.Load()
	if err := ch.Validate(set); err != nil {
		return store.Applied{}, err
	}
	if ch.At.IsZero() {
		ch.At = s.opts.Now()
	}
	n := store.ShardOf(ch.UserID, len(s.shards))
	sh := s.shards[n]
	sh.wmu.Lock()
	defer sh.wmu.Unlock()
	if err := s.check(ctx); err != nil {
		return store.Applied{}, err
	}
	u := sh.users[ch.UserID]
	cur := consent.NewRecord(ch.UserID)
	if u != nil {
		cur = *u.rec
	} else {
		cur.Number = store.UserNumber(n, len(sh.ids)+1, len(s.shards))
	}
	next, rc, err := cur.ApplyKeyed(ch, set, s.opts.ChainKey)
	if err != nil {
		return store.Applied{}, err
	}
	if rc == nil {
		if u == nil {
			cur.Number = 0 // not assigned: nothing was written
		}
		return store.Applied{Record: cloneRecord(cur), Shard: n}, nil
	}
	// An erasure keeps only the redacted form of its own receipt: what
	// the caller gets back (Applied.Receipt) is never stored whole.
	stored := rc
	erase := next.State.Erased
	if erase {
		r := rc.Redact()
		stored = &r
	}
	ms, seq, pos := sh.log.next(time.Now())
	if err := s.persist(&line{Op: opApply, Log: n, Pos: pos, Record: &next, Receipt: stored}); err != nil {
		return store.Applied{}, err
	}
	var entries []logEntry
	nu := &user{rec: &next}
	if u != nil {
		nu.receipts = u.receipts
	}
	if erase {
		// Built before the state lock: only this writer changes the
		// shard, and readers keep the old slices until the swap.
		nu.receipts = redactAll(nu.receipts, len(nu.receipts)+1)
		entries = shredEntries(sh.log.entries, ch.UserID)
	}
	nu.receipts = append(nu.receipts, *stored)
	var prev *consent.Record
	if !erase {
		p := cur
		prev = &p
	}
	sh.mu.Lock()
	sh.users[ch.UserID] = nu
	if u == nil {
		sh.ids = append(sh.ids, ch.UserID)
	}
	if erase {
		sh.log.entries = entries
	}
	sh.log.append(logEntry{ms: ms, seq: seq, pos: pos, rec: &next, prev: prev, rc: stored})
	sh.mu.Unlock()
	if erase {
		s.outcomes.dropUser(n, ch.UserID)
		s.ledger.forgetUser(n, ch.UserID)
		s.requests.forget(ch.UserID)
		s.compactSoon()
	}
	out := *rc
	return store.Applied{Record: cloneRecord(next), Receipt: &out, Shard: n, Pos: pos}, nil
}

// redactAll returns the redacted forms of rs in a new slice of capacity c.
func redactAll(rs []consent.Receipt, c int) []consent.Receipt {
	out := make([]consent.Receipt, len(rs), max(c, len(rs)))
	for i := range rs {
		out[i] = rs[i].Redact()
	}
	return out
}

// Receipts returns copies of the user's receipts, oldest first. A user never
// seen has none (an empty slice, no error). An erased user's receipts are
// redacted (consent.Receipt.Redact): kept for auditors to verify.
func (s *Store) Receipts(ctx context.Context, userID string) ([]consent.Receipt, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if err := consent.ValidUserID(userID); err != nil {
		return nil, err
	}
	sh := s.shards[store.ShardOf(userID, len(s.shards))]
	sh.mu.RLock()
	u := sh.users[userID]
	sh.mu.RUnlock()
	if u == nil {
		return []consent.Receipt{}, nil
	}
	return append([]consent.Receipt{}, u.receipts...), nil
}

// ReadChangelog returns up to count events of log (a shard number or
// store.SettingsLog) after position after, oldest first; count <= 0 means
// DefaultReadCount. With block > 0 it waits up to block for the first event
// when there is none yet and returns an empty slice on timeout; it returns
// ctx.Err() when ctx ends first and store.ErrClosed when the store is
// closed meanwhile. It returns a *store.TrimmedError (wrapping
// store.ErrTrimmed) when entries after `after` were trimmed away, and
// store.ErrInvalidPosition for a malformed position or a log that does not
// exist.
func (s *Store) ReadChangelog(ctx context.Context, log int, after store.Position, count int, block time.Duration) ([]store.Event, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	l, mu, err := s.logOf(log)
	if err != nil {
		return nil, err
	}
	if _, err := store.ParsePosition(string(after)); err != nil {
		return nil, err
	}
	if count <= 0 {
		count = DefaultReadCount
	}
	ams, aseq := after.Parts()
	var timer *time.Timer
	for {
		mu.RLock()
		if l.isTrimmed(ams, aseq) {
			err := l.trimmedError(after)
			mu.RUnlock()
			return nil, err
		}
		if err := l.regressedError(ams, aseq, after); err != nil {
			mu.RUnlock()
			return nil, err
		}
		evs := l.after(ams, aseq, count)
		wait := l.notify
		mu.RUnlock()
		if len(evs) > 0 || block <= 0 {
			return evs, nil
		}
		if timer == nil {
			timer = time.NewTimer(block)
			defer timer.Stop()
		}
		select {
		case <-wait:
		case <-timer.C:
			return evs, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.done:
			return nil, store.ErrClosed
		}
	}
}

// Tail returns the position of the newest event in log, or the zero
// Position for a log that never had one.
func (s *Store) Tail(ctx context.Context, log int) (store.Position, error) {
	if err := s.check(ctx); err != nil {
		return "", err
	}
	l, mu, err := s.logOf(log)
	if err != nil {
		return "", err
	}
	mu.RLock()
	defer mu.RUnlock()
	return l.last, nil
}

// Settings returns a copy of the current settings. A new store holds
// consent.DefaultSettings(), normalized, with Version 1.
func (s *Store) Settings(ctx context.Context) (consent.Settings, error) {
	if err := s.check(ctx); err != nil {
		return consent.Settings{}, err
	}
	return s.set.cur.Load().Clone(), nil
}

// SetSettings validates s and saves it, normalized and with Version
// incremented, if the stored version still equals set.Version (store.ErrConflict
// otherwise). It records a receipt (Op "set_settings", UserID empty, chained
// by hash to the previous settings receipt, Old and New the settings'
// summaries) made by actor through surface, and appends the new settings to
// the settings changelog, all in one durable line. An unknown actor or a
// malformed surface is an error wrapping consent.ErrInvalidChange.
func (s *Store) SetSettings(ctx context.Context, set consent.Settings, actor consent.Actor, surface consent.Surface) (consent.Settings, consent.Receipt, error) {
	if err := s.check(ctx); err != nil {
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
	p := s.set
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if err := s.check(ctx); err != nil {
		return consent.Settings{}, consent.Receipt{}, err
	}
	old := p.cur.Load()
	if set.Version != old.Version {
		return consent.Settings{}, consent.Receipt{}, fmt.Errorf("%w: settings are at version %d, not %d", store.ErrConflict, old.Version, set.Version)
	}
	next := set.Normalize()
	next.Version = old.Version + 1
	rc := consent.NewSettingsReceipt(old, &next, p.seq+1, p.head, actor, surface, s.opts.Now(), s.opts.ChainKey)
	ms, seq, pos := p.log.next(time.Now())
	if err := s.persist(&line{Op: opSetSettings, Log: store.SettingsLog, Pos: pos, Settings: &next, Receipt: &rc}); err != nil {
		return consent.Settings{}, consent.Receipt{}, err
	}
	stored := cloneReceipt(rc) // the caller may change what it gets back
	p.mu.Lock()
	p.cur.Store(&next)
	p.receipts = append(p.receipts, stored)
	p.seq, p.head = rc.Seq, rc.Hash
	p.log.append(logEntry{ms: ms, seq: seq, pos: pos, set: &next, rc: &stored})
	p.mu.Unlock()
	return next.Clone(), rc, nil
}

// SettingsReceipts returns copies of the settings receipts, oldest first.
func (s *Store) SettingsReceipts(ctx context.Context) ([]consent.Receipt, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	s.set.mu.RLock()
	rs := s.set.receipts
	s.set.mu.RUnlock()
	out := make([]consent.Receipt, len(rs))
	for i := range rs {
		out[i] = cloneReceipt(rs[i])
	}
	return out, nil
}

// PurgeExpired deletes the receipts (users' and settings') older than the
// settings' retention as of now, compared in milliseconds, and returns how
// many it deleted. It deletes from the oldest end of each chain and stops at
// the first receipt still within the retention, so what stays is a
// contiguous, verifiable chain; each user's record keeps the anchor of the
// last receipt deleted (consent.Record.Purged, sealed under
// Options.ChainKey), set in the same step. It also trims the changelog
// entries whose positions (wall-clock milliseconds) are older than
// Options.ChangelogRetention before now, in every shard log (the settings
// log holds nothing personal and is bounded by length only, as on Redis; a reader behind them
// then gets a *store.TrimmedError, as with ChangelogMaxLen), and drops the
// outcome events appended more than Options.OutcomeRetention before now.
//
// Each shard's purge (receipts, anchors and expired entries) is one durable
// line, and so is the settings'; when a write fails it returns the count so
// far with an error wrapping store.ErrUnavailable. When it deleted anything
// from the file's state, a compaction follows (see Options.CompactDelay).
func (s *Store) PurgeExpired(ctx context.Context, now time.Time) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	cutoff := now.Add(-s.set.cur.Load().RetentionOrDefault())
	logCut := now.Add(-s.opts.ChangelogRetention).UnixMilli()
	total := 0
	changed := false
	defer func() {
		if changed {
			s.compactSoon()
		}
	}()
	for i, sh := range s.shards {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, did, err := s.purgeShard(i, sh, cutoff, logCut)
		total += n
		changed = changed || did
		if err != nil {
			return total, err
		}
	}
	n, did, err := s.purgeSettings(cutoff, 0)
	total += n
	changed = changed || did
	if err != nil {
		return total, err
	}
	s.outcomes.expire(now.Add(-s.opts.OutcomeRetention).UnixMilli())
	if s.ledger.expire(now.Add(-s.opts.LedgerRetention).UnixMilli(), now.Add(-store.ProvisionRetentionFor(s.opts.LedgerRetention)).UnixMilli()) {
		s.compactSoon()
	}
	return total, nil
}

// purgeShard purges shard i: it returns the number of receipts deleted and
// whether it wrote anything.
func (s *Store) purgeShard(i int, sh *shard, cutoff time.Time, logCut int64) (int, bool, error) {
	sh.wmu.Lock()
	defer sh.wmu.Unlock()
	if s.closed.Load() {
		return 0, false, store.ErrClosed
	}
	drop := map[string]int{}
	anchors := map[string]consent.Anchor{}
	total := 0
	for id, u := range sh.users {
		if k := expired(u.receipts, cutoff); k > 0 {
			drop[id] = k
			anchors[id] = consent.NewAnchor(u.receipts[k-1], s.opts.ChainKey)
			total += k
		}
	}
	trim := sh.log.expiredPrefix(logCut)
	if total == 0 && trim == 0 {
		return 0, false, nil
	}
	l := &line{Op: opPurge, Log: i}
	if total > 0 {
		l.Drop, l.Anchors = drop, anchors
	}
	if trim > 0 {
		l.Pos = sh.log.entries[trim-1].pos
	}
	if err := s.persist(l); err != nil {
		return 0, false, err
	}
	sh.mu.Lock()
	sh.dropReceipts(drop, anchors)
	sh.log.expire(trim)
	sh.mu.Unlock()
	return total, true, nil
}

// dropReceipts removes the given number of oldest receipts per user and
// records each user's purge anchor in the user's record.
func (sh *shard) dropReceipts(drop map[string]int, anchors map[string]consent.Anchor) {
	for id, k := range drop {
		u := sh.users[id]
		rec := *u.rec // shares the immutable slices
		rec.Purged = anchors[id]
		sh.users[id] = &user{rec: &rec, receipts: cloneSlice(u.receipts[k:])}
	}
}

// purgeSettings purges the settings receipts and the settings log: it
// returns the number of receipts deleted and whether it wrote anything.
func (s *Store) purgeSettings(cutoff time.Time, logCut int64) (int, bool, error) {
	p := s.set
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if s.closed.Load() {
		return 0, false, store.ErrClosed
	}
	k := expired(p.receipts, cutoff)
	trim := p.log.expiredPrefix(logCut)
	if k == 0 && trim == 0 {
		return 0, false, nil
	}
	l := &line{Op: opPurge, Log: store.SettingsLog, Count: k}
	if trim > 0 {
		l.Pos = p.log.entries[trim-1].pos
	}
	if err := s.persist(l); err != nil {
		return 0, false, err
	}
	p.mu.Lock()
	p.receipts = cloneSlice(p.receipts[k:])
	p.log.expire(trim)
	p.mu.Unlock()
	return k, true, nil
}

// expired returns how many receipts at the start of rs are older than
// cutoff, compared in milliseconds like store/redis does.
func expired(rs []consent.Receipt, cutoff time.Time) int {
	ms := cutoff.UnixMilli()
	k := 0
	for k < len(rs) && rs[k].At.UnixMilli() < ms {
		k++
	}
	return k
}

// Close makes every further call return store.ErrClosed, wakes blocked
// reads, waits for writes in flight, stops the background compactor (a
// compaction in progress is abandoned, leaving the old file in use), syncs
// and closes the file and releases the data directory. Closing a closed
// store returns nil.
func (s *Store) Close() error {
	if s.bgCancel != nil {
		// First, so that a background compaction in progress stops
		// rather than holding compactMu until it is done.
		s.bgCancel()
	}
	err := s.close()
	if s.bgDone != nil {
		<-s.bgDone
	}
	return err
}

func (s *Store) close() error {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	unlock := s.lockWriters()
	if s.closed.Swap(true) {
		unlock()
		return nil
	}
	close(s.done)
	unlock()
	var err error
	if e := s.ab.close(); e != nil {
		err = unavailable(e)
	}
	if e := s.ledger.close(); e != nil && err == nil {
		err = e
	}
	if s.aof != nil {
		if e := s.aof.close(); e != nil && err == nil {
			err = unavailable(e)
		}
	}
	if s.lock != nil {
		if e := s.lock.Close(); e != nil && err == nil {
			err = unavailable(e)
		}
	}
	return err
}

// lockWriters takes every writer lock, in order, and returns a func that
// releases them.
func (s *Store) lockWriters() (unlock func()) {
	s.set.wmu.Lock()
	for _, sh := range s.shards {
		sh.wmu.Lock()
	}
	return func() {
		for i := len(s.shards) - 1; i >= 0; i-- {
			s.shards[i].wmu.Unlock()
		}
		s.set.wmu.Unlock()
	}
}

// check returns store.ErrClosed for a closed store and ctx's error for a
// done context.
func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// logOf returns the changelog of log and the lock that guards it.
func (s *Store) logOf(log int) (*changelog, *sync.RWMutex, error) {
	if log == store.SettingsLog {
		return s.set.log, &s.set.mu, nil
	}
	if log < 0 || log >= len(s.shards) {
		return nil, nil, fmt.Errorf("%w: log %d: want 0 to %d or store.SettingsLog", store.ErrInvalidPosition, log, len(s.shards)-1)
	}
	sh := s.shards[log]
	return sh.log, &sh.mu, nil
}

// persist writes l to the file and waits until it is durable. Without a
// data directory it does nothing.
func (s *Store) persist(l *line) error {
	if s.aof == nil {
		return nil
	}
	payload, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("memory: encode %s: %w", l.Op, err)
	}
	n, err := s.aof.append(payload)
	if err != nil {
		return unavailable(err)
	}
	if err := s.aof.wait(n); err != nil {
		return unavailable(err)
	}
	return nil
}
