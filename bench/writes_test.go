package bench

import (
	"context"
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
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
	"github.com/recguard/recguard/tags"
)

// writeScript is the least a compare-and-set write is: one EVALSHA that
// checks a version and sets two fields. BenchmarkWrites' raw limit for one
// round trip.
var writeScript = goredis.NewScript(`
if (redis.call('HGET', KEYS[1], 'v') or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
return 1
`)

// BenchmarkWrites measures one opt-out through the Redis store with the
// write cache (a restrictive change to a user this store wrote recently:
// one round trip) and without it (read, then compare-and-set: two round trips),
// against one plain EVALSHA round trip of a minimal compare-and-set script
// (the raw limit of a one-round-trip write) and a plain HSET, in one run.
// The ratios are printed against the EVALSHA (goal: apply within 1.3x).
func BenchmarkWrites(b *testing.B) {
	ctx := context.Background()
	ids := userIDs(1000)
	c := redistest.Client(b)
	b.Run("evalsha", func(b *testing.B) {
		measure(b, "writes", "evalsha", true)
		p := redistest.Prefix(b, c)
		if err := writeScript.Load(ctx, c).Err(); err != nil {
			b.Fatal(err)
		}
		vers := make([]int, len(ids))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			u := i % len(ids)
			n, err := writeScript.EvalSha(ctx, c, []string{p + ":{1}:u:" + ids[u]}, vers[u], vers[u]+1, `{"personalization_off":true}`).Int()
			if err != nil || n != 1 {
				b.Fatal(n, err)
			}
			vers[u]++
		}
	})
	b.Run("hset", func(b *testing.B) {
		measure(b, "writes", "hset", false)
		p := redistest.Prefix(b, c)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := c.HSet(ctx, p+":u:"+ids[i%len(ids)], "personalization_off", i%2).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, v := range []struct {
		name  string
		cache int
	}{{"apply_cached", 0}, {"apply_read_first", -1}} {
		b.Run(v.name, func(b *testing.B) {
			measure(b, "writes", v.name, false)
			s, err := rs.New(ctx, c, rs.Options{Prefix: redistest.Prefix(b, c), Init: true, WriteCache: v.cache})
			if err != nil {
				b.Fatal(err)
			}
			for _, id := range ids { // every user written once: known to the store
				if _, err := s.Apply(ctx, consent.DeclareTag(id, "interest:ski")); err != nil {
					b.Fatal(err)
				}
			}
			// Timed: an opt-out (restrictive: the one-round-trip path
			// takes those only). Untimed: the opt-in that makes the next
			// opt-out a change (a widening change reads first).
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				id := ids[i%len(ids)]
				if _, err := s.Apply(ctx, consent.SetPersonalization(id, false)); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if _, err := s.Apply(ctx, consent.SetPersonalization(id, true)); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// redisCPU returns the Redis server's CPU time so far (user + system).
func redisCPU(tb testing.TB, c goredis.UniversalClient) time.Duration {
	tb.Helper()
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// BenchmarkWriteThroughput measures acknowledged changes per second with
// many concurrent writers on one Redis, each sending batches of changes to
// different users (store.BatchApplier: one round trip to read, one to
// write, per batch), and the Redis CPU each change costs. Every user holds
// 20 tags, so the entries are of a realistic size.
func BenchmarkWriteThroughput(b *testing.B) {
	for _, w := range []struct{ writers, batch int }{{8, 64}, {16, 128}} {
		b.Run(fmt.Sprintf("writers=%d/batch=%d", w.writers, w.batch), func(b *testing.B) {
			runThroughput(b, w.writers, w.batch, b.N)
		})
	}
}

// runThroughput writes n changes with writers goroutines in batches and
// reports changes/s and Redis CPU per change.
func runThroughput(b *testing.B, writers, batch, n int) (perSec float64, cpuPer time.Duration) {
	ctx := context.Background()
	c := redistest.Client(b)
	s, err := rs.New(ctx, c, rs.Options{Prefix: redistest.Prefix(b, c), Init: true})
	if err != nil {
		b.Fatal(err)
	}
	const users = 20_000
	ids := userIDs(users)
	// Every user gets 20 tags first (not measured).
	var pre []consent.Change
	for _, id := range ids[:min(users, max(n, batch*writers))] {
		for t := range 20 {
			pre = append(pre, consent.InferTag(id, tags.Tag("interest:t"+strconv.Itoa(t))))
		}
	}
	for len(pre) > 0 {
		k := min(len(pre), 4000)
		if _, errs := s.ApplyBatch(ctx, pre[:k]); errs != nil {
			if i, err := store.FirstError(errs); err != nil {
				b.Fatalf("change %d: %v", i, err)
			}
		}
		pre = pre[k:]
	}
	known := min(users, max(n, batch*writers))
	var next atomic.Int64
	var done atomic.Int64
	var wg sync.WaitGroup
	cpu0 := redisCPU(b, c)
	b.ResetTimer()
	start := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chs := make([]consent.Change, 0, batch)
			for {
				from := int(next.Add(int64(batch))) - batch
				if from >= n {
					return
				}
				chs = chs[:0]
				for i := from; i < min(from+batch, n); i++ {
					// Different users in a batch; each change effective.
					u := ids[i%known]
					on := (i/known)%2 == 1
					chs = append(chs, consent.SetPersonalization(u, on))
				}
				_, errs := s.ApplyBatch(ctx, chs)
				if i, err := store.FirstError(errs); err != nil {
					b.Errorf("change %d: %v", i, err)
					return
				}
				done.Add(int64(len(chs)))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	cpu := redisCPU(b, c) - cpu0
	k := done.Load()
	perSec = float64(k) / el.Seconds()
	cpuPer = cpu / time.Duration(max(k, 1))
	b.ReportMetric(perSec, "changes/s")
	b.ReportMetric(float64(cpuPer.Nanoseconds())/1000, "redis-cpu-us/change")
	return perSec, cpuPer
}
