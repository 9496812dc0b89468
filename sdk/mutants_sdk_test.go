package sdk_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
	"github.com/recguard/recguard/tags"
)

// countingStore counts the user records read from the store. Embedding the
// interface hides the optional ones (batch reads, one read over every log),
// so every record read goes through Get.
type countingStore struct {
	store.Store
	gets atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, userID string) (consent.Record, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, userID)
}

// Art. 51: the kill switch is checked before the cache and the store. While
// the service is suspended every answer is "suspended" and no user is read:
// not a cached one (whose view predates the switch), not one never seen
// (which would otherwise be a miss and a store read). Found by mutation
// testing (mutants/mutants.txt, sdk-view-kill-switch): with the check gone,
// Evaluate still says suspended, so only the reads show it.
func TestKillSwitchReadsNoUser(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := &countingStore{Store: b.open(t)}
			c := newClient(t, st, sdk.Config{Logger: quiet})
			ctx := context.Background()
			mustApply(t, c, consent.DeclareTag("lee", tags.MustParse("interest:ski")))
			if d := mustDecide(t, c, "lee"); !d.Personalized {
				t.Fatalf("before: %+v", d)
			}
			set := c.Settings()
			set.Suspended, set.SuspendReason = true, "regulator order"
			if _, _, err := c.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
				t.Fatal(err)
			}
			gets, misses := st.gets.Load(), c.Stats().Misses
			for _, u := range []string{"lee", "never-seen-1", "never-seen-2"} {
				if d := mustDecide(t, c, u); d.Personalized || d.Reason != consent.ReasonSuspended {
					t.Errorf("Decide(%s) while suspended: %+v, want suspended", u, d)
				}
				if ok, why, err := c.CanPush(ctx, u, "push", false); err != nil || ok || why != consent.ReasonSuspended {
					t.Errorf("CanPush(%s) while suspended: %t %s %v, want false suspended", u, ok, why, err)
				}
			}
			if n := st.gets.Load() - gets; n != 0 {
				t.Errorf("%d user records read while suspended; the kill switch answers before the store", n)
			}
			if n := c.Stats().Misses - misses; n != 0 {
				t.Errorf("%d cache misses while suspended; the kill switch answers before the cache", n)
			}
		})
	}
}

// stallable wraps a Redis store so that a test can stall the client's
// changelog follower: while shut, ReadLogs (the one read over every log)
// waits. shut returns once no read is in flight, so from then on the
// follower sees nothing until open.
type stallable struct {
	*rs.Store
	mu     sync.RWMutex
	isShut atomic.Bool
}

func (s *stallable) shut() { s.mu.Lock(); s.isShut.Store(true) }
func (s *stallable) open() { s.isShut.Store(false); s.mu.Unlock() }

// openAtEnd opens the gate when the test ends shut (a failure), before the
// client is closed: a follower stuck at the gate would keep Close waiting.
// Call it after newClient (cleanups run last-registered first).
func (s *stallable) openAtEnd(t *testing.T) {
	t.Cleanup(func() {
		if s.isShut.Load() {
			s.open()
		}
	})
}

func (s *stallable) ReadLogs(ctx context.Context, logs []int, after []store.Position, count int, block time.Duration) ([]store.Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.Store.ReadLogs(ctx, logs, after, count, block)
}

// The store goes back in time (a restore, a failover to a replica that
// missed changes) while the client's follower is stalled, so the changelog
// cannot tell the client; then the client itself writes the user's opt-out.
// The store's answer is the truth: right after Apply the user is not
// personalized (the shard fails closed until it is re-read), and once the
// follower runs again the opt-out is served. Found by mutation testing
// (mutants/mutants.txt): the record-level checks (same version with another
// history; a lower version than the cached one, verified at once) were
// otherwise only ever exercised after the changelog had already told.
func TestOwnWriteAfterRegressionIsNotHidden(t *testing.T) {
	for _, lost := range []int{1, 2} {
		name := map[int]string{1: "one change lost: same version, other history", 2: "two changes lost: lower version than the cached read"}[lost]
		t.Run(name, func(t *testing.T) {
			srv, rc := restartable(t)
			g := &stallable{Store: redisStore(t, rc, "rg", rs.Options{Shards: 1, Logger: quiet})}
			writer := redisStore(t, rc, "rg", rs.Options{Logger: quiet}) // another process
			c := newClient(t, g, sdk.Config{Lease: 10 * time.Second, PollBlock: 100 * time.Millisecond, Logger: quiet})
			g.openAtEnd(t)
			ctx := context.Background()
			var a store.Applied
			var err error
			for i, tag := range []string{"interest:ski", "interest:golf", "interest:chess"}[:lost+1] {
				if a, err = writer.Apply(ctx, consent.DeclareTag("ann", tags.MustParse(tag))); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					if err := rc.Save(ctx).Err(); err != nil {
						t.Fatal(err)
					}
				}
			}
			// The follower has passed every write; ann is then read (a
			// cached view read from the store, not followed).
			if err := c.WaitApplied(ctx, a.Shard, a.Pos); err != nil {
				t.Fatal(err)
			}
			if d := mustDecide(t, c, "ann"); !d.Personalized || len(d.Tags) != lost+1 {
				t.Fatalf("before: %+v, want personalized with %d tags", d, lost+1)
			}
			g.shut()
			restart(t, srv, rc) // ann back at version 1
			a = mustApply(t, c, consent.SetPersonalization("ann", false))
			if a.Record.Version != 2 {
				t.Fatalf("the opt-out got version %d, want 2", a.Record.Version)
			}
			d := mustDecide(t, c, "ann")
			if d.Personalized {
				t.Fatalf("right after the client's own opt-out on a store that went back in time: %+v, want not personalized", d)
			}
			g.open()
			eventually(t, 5*time.Second, "the opt-out is served", func() bool {
				d := mustDecide(t, c, "ann")
				if d.Personalized {
					t.Fatalf("personalized after the opt-out: %+v", d)
				}
				return d.Reason == consent.ReasonOptedOut
			})
			if c.Stats().Regressions == 0 {
				t.Error("Stats().Regressions = 0 after the store went back in time")
			}
		})
	}
}

// The store loses a write this client made and saw acknowledged, before the
// follower read it, and nothing is written after: the changelog then looks
// consistent (it ends where the follower stopped), so only the client's own
// record of its write shows the loss. The follower must not confirm the
// shard until it re-read the truth: the restored opt-out is served, never
// the lost opt-in. Found by mutation testing (mutants/mutants.txt,
// sdk-lost-write-ignored): TestQuietRegressionDropsViews passes as long as
// the follower happened to read the write before the restart.
func TestLostOwnWriteIsDetected(t *testing.T) {
	srv, rc := restartable(t)
	g := &stallable{Store: redisStore(t, rc, "rg", rs.Options{Shards: 1, Logger: quiet})}
	c := newClient(t, g, sdk.Config{Lease: 10 * time.Second, PollBlock: 100 * time.Millisecond, Logger: quiet})
	g.openAtEnd(t)
	ctx := context.Background()
	a := mustApply(t, c, consent.SetPersonalization("bea", false))
	if err := c.WaitApplied(ctx, a.Shard, a.Pos); err != nil {
		t.Fatal(err)
	}
	if err := rc.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	g.shut()
	mustApply(t, c, consent.SetPersonalization("bea", true)) // acknowledged, not yet followed
	if d := mustDecide(t, c, "bea"); !d.Personalized {
		t.Fatalf("read-your-writes: %+v", d)
	}
	restart(t, srv, rc) // the opt-in is lost; bea is opted out in the store
	g.open()
	eventually(t, 5*time.Second, "the store's opt-out is served", func() bool {
		return mustDecide(t, c, "bea").Reason == consent.ReasonOptedOut
	})
	if c.Stats().Regressions == 0 {
		t.Error("Stats().Regressions = 0 after a lost write")
	}
}
