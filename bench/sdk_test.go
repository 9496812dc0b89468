package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
)

// Package-level sinks keep the compiler from dropping benchmarked calls.
var (
	decisionSink consent.Decision
	pushSink     bool
	reasonSink   consent.Reason
	hashSink     map[string]string
	countSink    atomic.Int64
)

// hitUsers is how many users the cache-hit benchmarks cycle through, so the
// loop is not one hot key.
const hitUsers = 10_000

// missWorkers is the number of concurrent callers in BenchmarkMiss.
const missWorkers = 256

// hitFixture is a Redis store seeded with users, a hand-written hash per
// user for the baselines, and an SDK client whose cache holds every user.
type hitFixture struct {
	redis  goredis.UniversalClient
	prefix string
	ids    []string
	client *sdk.Client
}

// newHitFixture seeds n users (even ones refused sms, odd ones turned
// personalization off), writes the baseline's
// hand-written hashes, and warms a client's cache with all of them through
// Decide (cache misses, read in batches).
func newHitFixture(tb testing.TB, n int) *hitFixture {
	tb.Helper()
	ctx := context.Background()
	c := redistest.Client(tb)
	p := redistest.Prefix(tb, c)
	st, err := rs.New(ctx, c, rs.Options{Prefix: p, Init: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	f := &hitFixture{redis: c, prefix: p, ids: userIDs(n)}

	// One change per user keeps seeding quick (a store write is a script
	// with a receipt and a changelog entry).
	if err := fanOut(16, n, func(i int) error {
		ch := consent.RefuseChannel(f.ids[i], "sms")
		if i%2 == 1 {
			ch = consent.SetPersonalization(f.ids[i], false)
		}
		if _, err := st.Apply(ctx, ch); err != nil {
			return fmt.Errorf("seed %s: %w", f.ids[i], err)
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Pipelined(ctx, func(pl goredis.Pipeliner) error {
		for _, id := range f.ids {
			pl.HSet(ctx, f.baselineKey(id), "personalization_off", 1, "refused", "sms", "tags", "interest:ski")
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}

	f.client = newSDK(tb, st, sdk.Config{})
	if err := fanOut(64, n, func(i int) error {
		d, err := f.client.Decide(ctx, f.ids[i])
		// Under load a warm read may fail closed while a lease is renewed
		// (or a miss times out): wait it out, it is not what is measured.
		for tries := 0; err == nil && tries < 50 && (d.Reason == consent.ReasonUnverified || d.Reason == consent.ReasonUnavailable); tries++ {
			_ = f.client.Ready(ctx)
			d, err = f.client.Decide(ctx, f.ids[i])
		}
		if err != nil {
			return err
		}
		if want := wantReason(i); d.Reason != want {
			return fmt.Errorf("warm Decide(%s): reason %v, want %v", f.ids[i], d.Reason, want)
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	if s := f.client.Stats(); s.CacheSize != n || s.Misses < uint64(n) {
		tb.Fatalf("after warming: cache size %d, misses %d; want %d and %d", s.CacheSize, s.Misses, n, n)
	}
	return f
}

// wantReason is the decision reason of seeded user i.
func wantReason(i int) consent.Reason {
	if i%2 == 1 {
		return consent.ReasonOptedOut
	}
	return consent.ReasonPersonalized
}

func (f *hitFixture) baselineKey(id string) string { return f.prefix + ":bu:" + id }

// newSDK starts a client on st and waits until it is verified.
func newSDK(tb testing.TB, st store.Store, cfg sdk.Config) *sdk.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sdk.New(ctx, st, cfg)
	if err != nil {
		tb.Fatalf("sdk.New: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	if err := c.Ready(ctx); err != nil {
		tb.Fatalf("sdk client not ready: %v", err)
	}
	return c
}

// fanOut calls fn(i) for every i in [0, n) from workers goroutines, each
// taking the next index in turn, and returns the first error.
func fanOut(workers, n int, fn func(i int) error) error {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n)) // stop the others early
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// requireNoAlloc fails tb when fn allocates.
func requireNoAlloc(tb testing.TB, what string, fn func()) {
	tb.Helper()
	if n := testing.AllocsPerRun(1000, fn); n != 0 {
		tb.Fatalf("%s allocates %.2f times per call on a cache hit; want 0", what, n)
	}
}

// decideCycle returns a function that calls Decide on the next user of ids
// each time (wrapping around) and returns an error when the answer is not
// the user's seeded one: a fail-closed answer (an expired lease,
// ReasonUnverified) would make the hit path look fast while it answers
// nothing.
func decideCycle(c *sdk.Client, ids []string, start int) (next func() error) {
	ctx := context.Background()
	j := start % len(ids)
	return func() error {
		d, err := c.Decide(ctx, ids[j])
		if err != nil || d.Reason != wantReason(j) {
			return fmt.Errorf("Decide(%s) = %v, %v; want reason %v", ids[j], d.Reason, err, wantReason(j))
		}
		decisionSink = d
		if j++; j == len(ids) {
			j = 0
		}
		return nil
	}
}

// BenchmarkDecide measures sdk.Client.Decide on a cached user against a
// per-request HGETALL of a hand-written user hash on the same Redis, one
// caller at a time (group decide_hit) and with b.RunParallel
// (decide_hit_parallel). The SDK sub-benchmarks must not allocate: they
// check it before measuring and fail if they do (see TestDecideHitNoAlloc).
func BenchmarkDecide(b *testing.B) {
	f := newHitFixture(b, hitUsers)
	ctx := context.Background()
	ids, c := f.ids, f.client

	b.Run("baseline_hgetall", func(b *testing.B) {
		measure(b, "decide_hit", "baseline_hgetall", true)
		j := 0
		for i := 0; i < b.N; i++ {
			h, err := f.redis.HGetAll(ctx, f.baselineKey(ids[j])).Result()
			if err != nil {
				b.Fatal(err)
			}
			hashSink = h
			if j++; j == len(ids) {
				j = 0
			}
		}
	})
	b.Run("sdk_hit_NoAlloc", func(b *testing.B) {
		measure(b, "decide_hit", "sdk_hit_NoAlloc", false)
		check := decideCycle(c, ids, 0)
		requireNoAlloc(b, "Decide", func() { _ = check() })
		misses := c.Stats().Misses
		b.ResetTimer()
		j := 0
		var d consent.Decision
		var err error
		bad := 0
		for i := 0; i < b.N; i++ {
			d, err = c.Decide(ctx, ids[j])
			if err != nil || d.Reason == consent.ReasonUnverified {
				bad++
			}
			if j++; j == len(ids) {
				j = 0
			}
		}
		b.StopTimer()
		decisionSink = d
		checkHits(b, c, misses, bad)
	})
	b.Run("baseline_hgetall_parallel", func(b *testing.B) {
		measure(b, "decide_hit_parallel", "baseline_hgetall_parallel", true)
		var seed atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			j := int(seed.Add(1)*7919) % len(ids)
			var n int64
			for pb.Next() {
				h, err := f.redis.HGetAll(ctx, f.baselineKey(ids[j])).Result()
				if err != nil {
					b.Error(err)
					return
				}
				n += int64(len(h))
				if j++; j == len(ids) {
					j = 0
				}
			}
			countSink.Add(n)
		})
	})
	b.Run("sdk_hit_parallel_NoAlloc", func(b *testing.B) {
		measure(b, "decide_hit_parallel", "sdk_hit_parallel_NoAlloc", false)
		check := decideCycle(c, ids, 0)
		requireNoAlloc(b, "Decide", func() { _ = check() })
		misses := c.Stats().Misses
		var seed, bad atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			// Each goroutine walks the users from its own starting point.
			j := int(seed.Add(1)*7919) % len(ids)
			var n, nbad int64
			for pb.Next() {
				d, err := c.Decide(ctx, ids[j])
				if err != nil || d.Reason == consent.ReasonUnverified {
					nbad++
				}
				if d.Personalized {
					n++
				}
				if j++; j == len(ids) {
					j = 0
				}
			}
			countSink.Add(n)
			bad.Add(nbad)
		})
		b.StopTimer()
		checkHits(b, c, misses, int(bad.Load()))
	})
}

// BenchmarkCanPush measures sdk.Client.CanPush (a targeted push on a
// channel the user allows) on a cached user against a per-request HGETALL
// plus the check a hand-written backend would make on it.
func BenchmarkCanPush(b *testing.B) {
	f := newHitFixture(b, hitUsers)
	ctx := context.Background()
	ids, c := f.ids, f.client

	baseline := func(id string) (bool, error) {
		h, err := f.redis.HGetAll(ctx, f.baselineKey(id)).Result()
		if err != nil {
			return false, err
		}
		return h["personalization_off"] != "1" && !strings.Contains(h["refused"], "push"), nil
	}
	b.Run("baseline_hgetall", func(b *testing.B) {
		measure(b, "canpush_hit", "baseline_hgetall", true)
		j := 0
		for i := 0; i < b.N; i++ {
			ok, err := baseline(ids[j])
			if err != nil {
				b.Fatal(err)
			}
			pushSink = ok
			if j++; j == len(ids) {
				j = 0
			}
		}
	})
	b.Run("sdk_hit_NoAlloc", func(b *testing.B) {
		measure(b, "canpush_hit", "sdk_hit_NoAlloc", false)
		requireNoAlloc(b, "CanPush", func() { pushSink, reasonSink, _ = c.CanPush(ctx, ids[1], "push", true) })
		misses := c.Stats().Misses
		b.ResetTimer()
		j, bad := 0, 0
		var ok bool
		var why consent.Reason
		var err error
		for i := 0; i < b.N; i++ {
			ok, why, err = c.CanPush(ctx, ids[j], "push", true)
			if err != nil || why == consent.ReasonUnverified {
				bad++
			}
			if j++; j == len(ids) {
				j = 0
			}
		}
		b.StopTimer()
		pushSink, reasonSink = ok, why
		checkHits(b, c, misses, bad)
	})
	b.Run("baseline_hgetall_parallel", func(b *testing.B) {
		measure(b, "canpush_hit_parallel", "baseline_hgetall_parallel", true)
		var seed atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			j := int(seed.Add(1)*7919) % len(ids)
			var n int64
			for pb.Next() {
				ok, err := baseline(ids[j])
				if err != nil {
					b.Error(err)
					return
				}
				if ok {
					n++
				}
				if j++; j == len(ids) {
					j = 0
				}
			}
			countSink.Add(n)
		})
	})
	b.Run("sdk_hit_parallel_NoAlloc", func(b *testing.B) {
		measure(b, "canpush_hit_parallel", "sdk_hit_parallel_NoAlloc", false)
		requireNoAlloc(b, "CanPush", func() { pushSink, reasonSink, _ = c.CanPush(ctx, ids[1], "push", true) })
		misses := c.Stats().Misses
		var seed, bad atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			j := int(seed.Add(1)*7919) % len(ids)
			var n, nbad int64
			for pb.Next() {
				ok, why, err := c.CanPush(ctx, ids[j], "push", true)
				if err != nil || why == consent.ReasonUnverified {
					nbad++
				}
				if ok {
					n++
				}
				if j++; j == len(ids) {
					j = 0
				}
			}
			countSink.Add(n)
			bad.Add(nbad)
		})
		b.StopTimer()
		checkHits(b, c, misses, int(bad.Load()))
	})
}

// checkHits fails b when a measured call missed the cache or answered
// fail-closed (so the figure would not be the hit path's).
func checkHits(b *testing.B, c *sdk.Client, missesBefore uint64, bad int) {
	b.Helper()
	if m := c.Stats().Misses - missesBefore; m != 0 {
		b.Fatalf("%d cache misses while measuring hits", m)
	}
	if bad != 0 {
		b.Fatalf("%d of %d answers were errors or fail-closed (unverified)", bad, b.N)
	}
}

// TestDecideHitNoAlloc fails when Decide, CanPush or DecidePush allocates
// on a cache hit: the hit path must cost no garbage at any request rate.
func TestDecideHitNoAlloc(t *testing.T) {
	f := newHitFixture(t, 1000)
	ctx := context.Background()
	c := f.client
	misses := c.Stats().Misses
	t.Run("Decide", func(t *testing.T) {
		next := decideCycle(c, f.ids, 0)
		var err error
		requireNoAlloc(t, "Decide", func() {
			if e := next(); e != nil && err == nil {
				err = e
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("CanPush", func(t *testing.T) {
		j := 0
		bad := 0
		requireNoAlloc(t, "CanPush", func() {
			ok, why, err := c.CanPush(ctx, f.ids[j], "push", true)
			// Even users are personalized and allow push; odd ones opted out.
			if err != nil || ok != (j%2 == 0) || why == consent.ReasonUnverified {
				bad++
			}
			if j++; j == len(f.ids) {
				j = 0
			}
		})
		if bad != 0 {
			t.Fatalf("%d CanPush answers were wrong or fail-closed", bad)
		}
	})
	t.Run("DecidePush", func(t *testing.T) {
		j := 0
		bad := 0
		var last consent.DecisionID
		requireNoAlloc(t, "DecidePush", func() {
			p, err := c.DecidePush(ctx, f.ids[j], "push", true)
			// The same answers as CanPush, each with a basis and a new ID.
			if err != nil || p.Allowed != (j%2 == 0) || p.Reason == consent.ReasonUnverified || p.RecordVersion == 0 || p.ID == last {
				bad++
			}
			last = p.ID
			if j++; j == len(f.ids) {
				j = 0
			}
		})
		if bad != 0 {
			t.Fatalf("%d DecidePush answers were wrong, fail-closed or without a basis", bad)
		}
	})
	if m := c.Stats().Misses - misses; m != 0 {
		t.Fatalf("%d cache misses: the calls measured were not all hits", m)
	}
}

// countingStore is a Redis store that counts the batched reads the SDK
// makes on cache misses (store.BatchGetter). Every other ability is the
// embedded store's, so the SDK sees the same optional interfaces.
type countingStore struct {
	*rs.Store
	batches, users atomic.Int64
}

func (s *countingStore) GetMany(ctx context.Context, ids []string) ([]consent.Record, error) {
	s.batches.Add(1)
	s.users.Add(int64(len(ids)))
	return s.Store.GetMany(ctx, ids)
}

var _ store.BatchGetter = (*countingStore)(nil)

// missIDs returns n user IDs never used before in this process (run makes
// them unique across the calls of one benchmark).
func missIDs(run int64, n int) []string {
	ids := make([]string, n)
	p := "miss" + strconv.FormatInt(run, 10) + "-"
	for i := range ids {
		ids[i] = p + strconv.Itoa(i)
	}
	return ids
}

// BenchmarkMiss measures cache misses under concurrency: 256 callers each
// resolving users the client has never seen (every call misses). The
// baseline reads each user with its own round trip (store Get: one HMGET);
// the SDK queues concurrent misses and reads them in pipelined batches
// (store.BatchGetter), reported as reads/op and users/read.
func BenchmarkMiss(b *testing.B) {
	ctx := context.Background()
	c := redistest.Client(b)
	st, err := rs.New(ctx, c, rs.Options{Prefix: redistest.Prefix(b, c), Init: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	cst := &countingStore{Store: st}
	// A cache far smaller than the users read keeps memory bounded; every
	// call misses anyway because every ID is new.
	client := newSDK(b, cst, sdk.Config{CacheSize: 1 << 16})
	var run atomic.Int64

	b.Run("one_round_trip_per_call", func(b *testing.B) {
		measure(b, "miss_256", "one_round_trip_per_call", true)
		ids := missIDs(run.Add(1), b.N)
		b.ResetTimer()
		err := fanOut(missWorkers, b.N, func(i int) error {
			rec, err := st.Get(ctx, ids[i])
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if rec.UserID != ids[i] {
				return fmt.Errorf("Get(%s) returned %q", ids[i], rec.UserID)
			}
			return nil
		})
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
	})
	b.Run("sdk_batched", func(b *testing.B) {
		measure(b, "miss_256", "sdk_batched", false)
		ids := missIDs(run.Add(1), b.N)
		misses, batches, users := client.Stats().Misses, cst.batches.Load(), cst.users.Load()
		b.ResetTimer()
		err := fanOut(missWorkers, b.N, func(i int) error {
			d, err := client.Decide(ctx, ids[i])
			if err != nil {
				return err
			}
			if d.Reason != consent.ReasonPersonalized {
				return fmt.Errorf("Decide(%s): reason %v, want personalized (a new user)", ids[i], d.Reason)
			}
			return nil
		})
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		m := client.Stats().Misses - misses
		nb, nu := cst.batches.Load()-batches, cst.users.Load()-users
		if m != uint64(b.N) || nu != int64(b.N) {
			b.Fatalf("%d calls: %d misses and %d users read; want every call to miss and be read once", b.N, m, nu)
		}
		b.ReportMetric(float64(nb)/float64(b.N), "reads/op")
		if nb > 0 {
			b.ReportMetric(float64(nu)/float64(nb), "users/read")
		}
	})
}
