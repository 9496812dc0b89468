package memory

import (
	"context"
	"fmt"
	"sync"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
)

var _ store.OutcomeLog = (*Store)(nil)

// OutcomesPerShard bounds each shard's outcome events in the embedded store.
const OutcomesPerShard = 200_000

// outcomes are the embedded store's outcome events: a bounded ring per
// shard, in memory only. They are audit input, not records of consent: a
// restart starts them afresh (Redis keeps them in streams).
type outcomes struct {
	mu    sync.Mutex
	rings [][][]byte
	next  []int // per shard: where the next event goes once the ring is full
}

// AppendOutcomes appends each event to its user's shard ring, dropping the
// oldest once a shard holds OutcomesPerShard.
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
	o := &s.outcomes
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.rings == nil {
		o.rings = make([][][]byte, len(s.shards))
		o.next = make([]int, len(s.shards))
	}
	for i, id := range userIDs {
		sh := store.ShardOf(id, len(s.shards))
		e := append([]byte(nil), events[i]...)
		if len(o.rings[sh]) < OutcomesPerShard {
			o.rings[sh] = append(o.rings[sh], e)
			continue
		}
		o.rings[sh][o.next[sh]] = e
		o.next[sh] = (o.next[sh] + 1) % OutcomesPerShard
	}
	return nil
}

// ReadOutcomes calls fn with every kept event, shard by shard, oldest first.
func (s *Store) ReadOutcomes(ctx context.Context, fn func(event []byte) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	o := &s.outcomes
	o.mu.Lock()
	var all [][]byte
	for sh, ring := range o.rings {
		n := o.next[sh]
		all = append(all, ring[n:]...)
		all = append(all, ring[:n]...)
	}
	o.mu.Unlock()
	for _, e := range all {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}
