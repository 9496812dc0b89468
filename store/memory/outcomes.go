package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

var _ store.OutcomeLog = (*Store)(nil)

// OutcomesPerShard bounds each shard's outcome events in the embedded store.
const OutcomesPerShard = 200_000

// outcomes are the embedded store's outcome events: a bounded queue per
// shard, oldest first, in memory only. They are audit input, not records of
// consent: a restart starts them afresh (Redis keeps them in streams).
//
// Lock order: mu is taken before a shard's state lock (AppendOutcomes
// checks its users under mu), never while one is held; an erasure drops
// its user's events after publishing the tombstone, holding only the
// shard's writer lock.
type outcomes struct {
	mu     sync.Mutex
	shards [][]outcome // per shard, oldest first; nil until the first append
}

// outcome is one kept event, with its user and its append time (wall
// clock, Unix milliseconds) for PurgeExpired.
type outcome struct {
	user  string
	ms    int64
	event []byte
}

// AppendOutcomes appends each event to its user's shard queue, dropping the
// oldest once a shard holds OutcomesPerShard. The events of users who are
// erased or restrict processing (consent.State.Restricted) are dropped
// without error. Each event is stamped with the wall-clock time (time.Now,
// not Options.Now), which PurgeExpired compares with Options.OutcomeRetention.
func (s *Store) AppendOutcomes(ctx context.Context, userIDs []string, events [][]byte) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if len(userIDs) != len(events) {
		return fmt.Errorf("%w: %d users for %d events", consent.ErrInvalidChange, len(userIDs), len(events))
	}
	for _, id := range userIDs {
		if err := consent.ValidUserID(id); err != nil {
			return err
		}
	}
	ms := time.Now().UnixMilli()
	o := &s.outcomes
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.shards == nil {
		o.shards = make([][]outcome, len(s.shards))
	}
	// The users' states are read under o.mu: an erasure publishes its
	// tombstone and then drops its user's events under o.mu, so an event
	// is either refused here or dropped there.
	for i, id := range userIDs {
		n := store.ShardOf(id, len(s.shards))
		if s.shards[n].storageOnly(id) {
			continue
		}
		q := append(o.shards[n], outcome{user: id, ms: ms, event: append([]byte(nil), events[i]...)})
		if len(q) > OutcomesPerShard {
			q[0] = outcome{} // release the dropped event now
			q = q[1:]
		}
		o.shards[n] = q
	}
	return nil
}

// ReadOutcomes calls fn with every kept event, shard by shard, oldest first.
// It skips the events of users who are erased or restrict processing now.
func (s *Store) ReadOutcomes(ctx context.Context, fn func(event []byte) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	o := &s.outcomes
	o.mu.Lock()
	all := make([][]outcome, len(o.shards))
	for n, q := range o.shards {
		all[n] = slices.Clone(q)
	}
	o.mu.Unlock()
	for n, q := range all {
		skip := map[string]bool{}
		for _, e := range q {
			sk, ok := skip[e.user]
			if !ok {
				sk = s.shards[n].storageOnly(e.user)
				skip[e.user] = sk
			}
			if sk {
				continue
			}
			if err := fn(e.event); err != nil {
				return err
			}
		}
	}
	return nil
}

// storageOnly reports whether the user's data may only be stored, not used:
// the user is erased or restricts processing.
func (sh *shard) storageOnly(userID string) bool {
	sh.mu.RLock()
	u := sh.users[userID]
	sh.mu.RUnlock()
	return u != nil && (u.rec.State.Erased || u.rec.State.Restricted)
}

// dropUser removes every event of userID, in shard n, from memory.
func (o *outcomes) dropUser(n int, userID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.shards == nil {
		return
	}
	o.shards[n] = slices.DeleteFunc(o.shards[n], func(e outcome) bool { return e.user == userID })
}

// expire removes the events appended before cutoffMs (Unix milliseconds)
// from the oldest end of each shard's queue, and returns how many.
func (o *outcomes) expire(cutoffMs int64) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	total := 0
	for n, q := range o.shards {
		k := 0
		for k < len(q) && q[k].ms < cutoffMs {
			k++
		}
		if k > 0 {
			o.shards[n] = slices.Clone(q[k:]) // release the expired events now
			total += k
		}
	}
	return total
}
