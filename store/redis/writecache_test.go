package redis_test

import (
	"context"
	"sync/atomic"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	rs "github.com/recguard/recguard/store/redis"
)

// trips counts round trips: each command or pipeline sent is one.
type trips struct{ n atomic.Int64 }

func (h *trips) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (h *trips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h *trips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

// A restrictive change to a user this store wrote recently is one round
// trip; a change made meanwhile by another store is noticed (compare-and-set) and
// the write is made on the current record.
func TestApplyOneRoundTrip(t *testing.T) {
	c := redistest.Client(t).(*goredis.Client)
	h := &trips{}
	hc := goredis.NewClient(c.Options())
	defer hc.Close()
	hc.AddHook(h)
	p := redistest.Prefix(t, c)
	s := mustNew(t, hc, rs.Options{Prefix: p, Init: true, Logger: quiet})
	other := mustNew(t, c, rs.Options{Prefix: p, Logger: quiet})
	u := "rt-user"
	mustApply(t, s, consent.DeclareTag(u, "interest:ski"))
	// Warm the script cache of the connection path.
	mustApply(t, s, consent.SetPersonalization(u, false))
	// A restrictive change (an opt-out, a refusal, a deletion) to a user
	// this store wrote: one round trip. A widening one (personalization
	// back on) reads the settings first: two.
	for i, ch := range []struct {
		c    consent.Change
		want int64
	}{
		{consent.SetPersonalization(u, true), 2}, {consent.SetPersonalization(u, false), 1},
		{consent.RefuseChannel(u, "push"), 1}, {consent.DeleteTag(u, "interest:ski"), 1},
		{consent.SetPersonalization(u, true), 2},
	} {
		h.n.Store(0)
		a := mustApply(t, s, ch.c)
		if got := h.n.Load(); got != ch.want {
			t.Fatalf("change %d (%s): %d round trips, want %d", i, ch.c.Op, got, ch.want)
		}
		if a.Receipt == nil {
			t.Fatalf("change %d: %+v", i, a)
		}
	}
	// Another store writes the user: the cached record is stale.
	b := mustApply(t, other, consent.RefuseChannel(u, "sms"))
	a := mustApply(t, s, consent.SetPersonalization(u, false))
	if a.Record.Version != b.Record.Version+1 || len(a.Record.State.RefusedChannels) != 2 || a.Receipt.PrevHash != b.Record.LastHash {
		t.Fatalf("after another store's write: version %d (want %d), refused %v, chained to %q (want %q)",
			a.Record.Version, b.Record.Version+1, a.Record.State.RefusedChannels, a.Receipt.PrevHash, b.Record.LastHash)
	}
	// Without the cache every change reads first: two round trips.
	s2 := mustNew(t, hc, rs.Options{Prefix: p, WriteCache: -1, Logger: quiet})
	mustApply(t, s2, consent.SetPersonalization(u, true))
	h.n.Store(0)
	mustApply(t, s2, consent.SetPersonalization(u, false))
	if got := h.n.Load(); got != 2 {
		t.Fatalf("without the cache: %d round trips, want 2", got)
	}
}
