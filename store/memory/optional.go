package memory

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

var (
	_ store.BatchGetter    = (*Store)(nil)
	_ store.MultiLogReader = (*Store)(nil)
	_ store.Presence       = (*Store)(nil)
)

// GetMany returns copies of the records of userIDs, in order; a user never
// seen gets consent.NewRecord(id) (Version 0). An invalid ID fails the
// whole call with the consent.ValidUserID error. Each record is read under
// its shard's lock, so each is a record the user had, but the batch is not
// one snapshot across users.
func (s *Store) GetMany(ctx context.Context, userIDs []string) ([]consent.Record, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	for _, id := range userIDs {
		if err := consent.ValidUserID(id); err != nil {
			return nil, err
		}
	}
	out := make([]consent.Record, len(userIDs))
	for i, id := range userIDs {
		sh := s.shards[store.ShardOf(id, len(s.shards))]
		sh.mu.RLock()
		u := sh.users[id]
		sh.mu.RUnlock()
		if u == nil {
			out[i] = consent.NewRecord(id)
			continue
		}
		out[i] = cloneRecord(*u.rec)
	}
	return out, nil
}

// ReadLogs is ReadChangelog over several logs at once: after[i] is the
// position in logs[i]. It returns the events of every log that has some
// after its position, log by log in the order of logs and oldest first
// within each, up to count per log (count <= 0 means DefaultReadCount).
// With block > 0 and nothing to return it waits up to block for an entry in
// any of the logs, and returns an empty slice on timeout; it returns
// ctx.Err() when ctx ends first and store.ErrClosed when the store is
// closed meanwhile. A log trimmed past its position fails the call with a
// *store.TrimmedError naming it. Logs and positions of different lengths,
// no logs, a log that does not exist or a malformed position return an
// error wrapping store.ErrInvalidPosition.
func (s *Store) ReadLogs(ctx context.Context, logs []int, after []store.Position, count int, block time.Duration) ([]store.Event, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if len(logs) != len(after) || len(logs) == 0 {
		return nil, fmt.Errorf("%w: %d logs with %d positions", store.ErrInvalidPosition, len(logs), len(after))
	}
	type src struct {
		log      int
		l        *changelog
		mu       *sync.RWMutex
		ms, seq  uint64
		after    store.Position
		notified <-chan struct{}
	}
	srcs := make([]src, len(logs))
	for i, log := range logs {
		l, mu, err := s.logOf(log)
		if err != nil {
			return nil, err
		}
		if _, err := store.ParsePosition(string(after[i])); err != nil {
			return nil, err
		}
		ms, seq := after[i].Parts()
		srcs[i] = src{log: log, l: l, mu: mu, ms: ms, seq: seq, after: after[i]}
	}
	if count <= 0 {
		count = DefaultReadCount
	}
	var (
		timer *time.Timer
		cases []reflect.SelectCase
	)
	for {
		out := []store.Event{}
		for i := range srcs {
			r := &srcs[i]
			r.mu.RLock()
			if r.l.isTrimmed(r.ms, r.seq) {
				err := r.l.trimmedError(r.after)
				r.mu.RUnlock()
				return nil, err
			}
			if err := r.l.regressedError(r.ms, r.seq, r.after); err != nil {
				r.mu.RUnlock()
				return nil, err
			}
			out = append(out, r.l.after(r.ms, r.seq, count)...)
			r.notified = r.l.notify
			r.mu.RUnlock()
		}
		if len(out) > 0 || block <= 0 {
			return out, nil
		}
		if timer == nil {
			timer = time.NewTimer(block)
			defer timer.Stop()
			// The fixed cases come first; the logs' channels follow and
			// are replaced on every round.
			cases = make([]reflect.SelectCase, 3, 3+len(srcs))
			cases[0] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)}
			cases[1] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(s.done)}
			if d := ctx.Done(); d != nil {
				cases[2] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(d)}
			} else {
				cases[2] = reflect.SelectCase{Dir: reflect.SelectRecv} // zero Chan: ignored
			}
		}
		cases = cases[:3]
		for i := range srcs {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(srcs[i].notified)})
		}
		switch chosen, _, _ := reflect.Select(cases); chosen {
		case 0:
			return []store.Event{}, nil
		case 1:
			return nil, store.ErrClosed
		case 2:
			return nil, ctx.Err()
		}
	}
}

// trimmedError reports that entries after `after` were trimmed from l. The
// caller holds the lock that guards l.
func (l *changelog) trimmedError(after store.Position) *store.TrimmedError {
	e := &store.TrimmedError{Log: l.id, After: after}
	if len(l.entries) > 0 {
		e.Next = l.entries[0].pos
	}
	return e
}

// presence holds the announced SDK instances. It lives in memory only:
// instances are ephemeral and are never written to the file.
type presence struct {
	mu        sync.Mutex
	instances map[string]presenceEntry
}

type presenceEntry struct {
	applied []store.Position
	expires time.Time // with the monotonic clock reading of time.Now
}

// Announce registers instance id as live until now+ttl (wall clock,
// time.Now, not Options.Now) with a copy of the positions it has applied,
// replacing its previous announcement. The ID must be valid like a user
// ID and each position well formed (store.ErrInvalidPosition otherwise).
// Announcements live in memory only and are not persisted.
func (s *Store) Announce(ctx context.Context, id string, applied []store.Position, ttl time.Duration) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := consent.ValidUserID(id); err != nil {
		return fmt.Errorf("instance id: %w", err)
	}
	for i, p := range applied {
		if _, err := store.ParsePosition(string(p)); err != nil {
			return fmt.Errorf("instance %q applied[%d]: %w", id, i, err)
		}
	}
	e := presenceEntry{applied: cloneSlice(applied), expires: time.Now().Add(ttl)}
	p := &s.presence
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.instances == nil {
		p.instances = make(map[string]presenceEntry)
	}
	p.instances[id] = e
	return nil
}

// Instances returns the instances live now, sorted by ID, with copies of
// their applied positions. It forgets the instances that have expired.
func (s *Store) Instances(ctx context.Context) ([]store.Instance, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	now := time.Now()
	p := &s.presence
	p.mu.Lock()
	var out []store.Instance
	for id, e := range p.instances {
		if e.expires.Before(now) {
			delete(p.instances, id)
			continue
		}
		out = append(out, store.Instance{ID: id, Applied: cloneSlice(e.applied), Expires: e.expires.Round(0)})
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b store.Instance) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Leave removes instance id at once; leaving an instance not announced is
// not an error.
func (s *Store) Leave(ctx context.Context, id string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	p := &s.presence
	p.mu.Lock()
	delete(p.instances, id)
	p.mu.Unlock()
	return nil
}

var (
	_ store.UserLister   = (*Store)(nil)
	_ store.Checkpointer = (*Store)(nil)
)

// ListUsers returns up to count user IDs of shard by local number, from
// `from` (1-based) on.
func (s *Store) ListUsers(ctx context.Context, shard, from, count int) ([]string, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if shard < 0 || shard >= len(s.shards) || from < 1 || count < 1 {
		return nil, fmt.Errorf("%w: shard %d from %d count %d", store.ErrInvalidPosition, shard, from, count)
	}
	sh := s.shards[shard]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if from > len(sh.ids) {
		return []string{}, nil
	}
	end := min(from-1+count, len(sh.ids))
	return append([]string(nil), sh.ids[from-1:end]...), nil
}

// SaveCheckpoint stores data under name: with a data directory as the file
// checkpoint-<name>.bin there (written to a temporary file, synced and
// renamed, so a crash leaves the old or the new one), else in memory.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, data []byte) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := consent.ValidChannelName(name); err != nil {
		return fmt.Errorf("checkpoint name: %w", err)
	}
	if s.opts.Dir == "" {
		s.ckptMu.Lock()
		defer s.ckptMu.Unlock()
		if s.ckpts == nil {
			s.ckpts = map[string][]byte{}
		}
		s.ckpts[name] = append([]byte(nil), data...)
		return nil
	}
	path := filepath.Join(s.opts.Dir, "checkpoint-"+name+".bin")
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	if d, err := os.Open(s.opts.Dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// LoadCheckpoint returns the data saved under name, or store.ErrNotFound.
func (s *Store) LoadCheckpoint(ctx context.Context, name string) ([]byte, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if err := consent.ValidChannelName(name); err != nil {
		return nil, fmt.Errorf("checkpoint name: %w", err)
	}
	if s.opts.Dir == "" {
		s.ckptMu.Lock()
		defer s.ckptMu.Unlock()
		d, ok := s.ckpts[name]
		if !ok {
			return nil, fmt.Errorf("%w: checkpoint %q", store.ErrNotFound, name)
		}
		return append([]byte(nil), d...), nil
	}
	d, err := os.ReadFile(filepath.Join(s.opts.Dir, "checkpoint-"+name+".bin"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: checkpoint %q", store.ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return d, nil
}

var _ store.BatchApplier = (*Store)(nil)

// ApplyBatch applies chs one after another through Apply (the embedded
// store has no round trips to save): see store.BatchApplier.
func (s *Store) ApplyBatch(ctx context.Context, chs []consent.Change) ([]store.Applied, []error) {
	out := make([]store.Applied, len(chs))
	errs := make([]error, len(chs))
	for i, ch := range chs {
		out[i], errs[i] = s.Apply(ctx, ch)
	}
	return out, errs
}
