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
type Store struct {
	opts   Options
	shards []*shard
	set    *settingsPart
	aof    *aof     // nil without a data directory
	lock   *os.File // the directory lock; nil without a data directory

	// snapLines is the line count of the snapshot being replayed at open:
	// no user number of a snapshot can exceed it.
	snapLines int

	// compactMu serializes Compact and Close.
	compactMu sync.Mutex
	closed    atomic.Bool
	done      chan struct{} // closed by Close, waking blocked reads

	presence presence // announced SDK instances (memory only)

	ckptMu sync.Mutex
	ckpts  map[string][]byte // checkpoints without a data directory

	outcomes outcomes // outcome events for audits (memory only)

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
// record with consent.Record.Apply, and records the new record, the receipt
// and the changelog entry atomically: one line of the file, made durable
// before the change becomes visible. A zero ch.At is set from Options.Now.
// A no-op writes nothing and returns the current record with a nil Receipt
// and a zero Pos. When the file cannot be written it returns an error
// wrapping store.ErrUnavailable and changes nothing in memory.
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
	next, rc, err := cur.Apply(ch, set)
	if err != nil {
		return store.Applied{}, err
	}
	if rc == nil {
		if u == nil {
			cur.Number = 0 // not assigned: nothing was written
		}
		return store.Applied{Record: cloneRecord(cur), Shard: n}, nil
	}
	ms, seq, pos := sh.log.next(time.Now())
	if err := s.persist(&line{Op: opApply, Log: n, Pos: pos, Record: &next, Receipt: rc}); err != nil {
		return store.Applied{}, err
	}
	nu := &user{rec: &next, receipts: []consent.Receipt{*rc}}
	if u != nil {
		nu.receipts = append(u.receipts, *rc)
	}
	prev := cur
	sh.mu.Lock()
	sh.users[ch.UserID] = nu
	if u == nil {
		sh.ids = append(sh.ids, ch.UserID)
	}
	sh.log.append(logEntry{ms: ms, seq: seq, pos: pos, rec: &next, prev: &prev, rc: *rc})
	sh.mu.Unlock()
	out := *rc
	return store.Applied{Record: cloneRecord(next), Receipt: &out, Shard: n, Pos: pos}, nil
}

// Receipts returns copies of the user's receipts, oldest first. A user never
// seen has none (an empty slice, no error).
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
	rc := consent.NewSettingsReceipt(old, &next, p.seq+1, p.head, actor, surface, s.opts.Now())
	ms, seq, pos := p.log.next(time.Now())
	if err := s.persist(&line{Op: opSetSettings, Log: store.SettingsLog, Pos: pos, Settings: &next, Receipt: &rc}); err != nil {
		return consent.Settings{}, consent.Receipt{}, err
	}
	p.mu.Lock()
	p.cur.Store(&next)
	p.receipts = append(p.receipts, rc)
	p.seq, p.head = rc.Seq, rc.Hash
	p.log.append(logEntry{ms: ms, seq: seq, pos: pos, set: &next, rc: rc})
	p.mu.Unlock()
	return next.Clone(), rc, nil
}

// SettingsReceipts returns copies of the settings receipts, oldest first.
func (s *Store) SettingsReceipts(ctx context.Context) ([]consent.Receipt, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	s.set.mu.RLock()
	defer s.set.mu.RUnlock()
	return append([]consent.Receipt{}, s.set.receipts...), nil
}

// PurgeExpired deletes the receipts (users' and settings') older than the
// settings' retention as of now, compared in milliseconds, and returns how
// many it deleted. It deletes from the oldest end of each chain and stops at
// the first receipt still within the retention, so what stays is a
// contiguous, verifiable chain. Each
// shard's purge is one durable line; when a write fails it returns the count
// so far with an error wrapping store.ErrUnavailable.
func (s *Store) PurgeExpired(ctx context.Context, now time.Time) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	cutoff := now.Add(-s.set.cur.Load().RetentionOrDefault())
	total := 0
	for i, sh := range s.shards {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := s.purgeShard(i, sh, cutoff)
		total += n
		if err != nil {
			return total, err
		}
	}
	n, err := s.purgeSettings(cutoff)
	return total + n, err
}

func (s *Store) purgeShard(i int, sh *shard, cutoff time.Time) (int, error) {
	sh.wmu.Lock()
	defer sh.wmu.Unlock()
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	drop := map[string]int{}
	total := 0
	for id, u := range sh.users {
		if k := expired(u.receipts, cutoff); k > 0 {
			drop[id] = k
			total += k
		}
	}
	if total == 0 {
		return 0, nil
	}
	if err := s.persist(&line{Op: opPurge, Log: i, Drop: drop}); err != nil {
		return 0, err
	}
	sh.mu.Lock()
	sh.dropReceipts(drop)
	sh.mu.Unlock()
	return total, nil
}

// dropReceipts removes the given number of oldest receipts per user.
func (sh *shard) dropReceipts(drop map[string]int) {
	for id, k := range drop {
		u := sh.users[id]
		sh.users[id] = &user{rec: u.rec, receipts: cloneSlice(u.receipts[k:])}
	}
}

func (s *Store) purgeSettings(cutoff time.Time) (int, error) {
	p := s.set
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	k := expired(p.receipts, cutoff)
	if k == 0 {
		return 0, nil
	}
	if err := s.persist(&line{Op: opPurge, Log: store.SettingsLog, Count: k}); err != nil {
		return 0, err
	}
	p.mu.Lock()
	p.receipts = cloneSlice(p.receipts[k:])
	p.mu.Unlock()
	return k, nil
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
// reads, waits for writes in flight, syncs and closes the file and releases
// the data directory. Closing a closed store returns nil.
func (s *Store) Close() error {
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
