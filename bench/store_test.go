package bench

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	rs "github.com/recguard/recguard/store/redis"
)

const benchUsers = 10_000

func userIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "user" + strconv.Itoa(i)
	}
	return ids
}

// BenchmarkApply measures one consent change written through a Store (record,
// hash-chained receipt and changelog entry, atomically) against the least a
// hand-written backend would do: one HSET of a flag per request, with no
// receipt, no history and no validation.
func BenchmarkApply(b *testing.B) {
	ctx := context.Background()
	ids := userIDs(benchUsers)
	c := redistest.Client(b)
	b.Run("baseline_hset", func(b *testing.B) {
		measure(b, "apply", "baseline_hset", true)
		p := redistest.Prefix(b, c)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := c.HSet(ctx, p+":u:"+ids[i%benchUsers], "personalization_off", i%2).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("redis", func(b *testing.B) {
		measure(b, "apply", "redis", false)
		s, err := rs.New(ctx, c, rs.Options{Prefix: redistest.Prefix(b, c), Init: true})
		if err != nil {
			b.Fatal(err)
		}
		benchApply(b, s, ids)
	})
	b.Run("memory_nofile", func(b *testing.B) {
		measure(b, "apply", "memory_nofile", false)
		s, err := memory.Open(ctx, memory.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchApply(b, s, ids)
	})
}

func benchApply(b *testing.B, s store.Store, ids []string) {
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate per user so every change is effective (never a no-op).
		on := (i/benchUsers)%2 == 1
		if _, err := s.Apply(ctx, consent.SetPersonalization(ids[i%benchUsers], on)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet measures reading a user's record through the Store against a
// plain per-request HGETALL of a hand-written hash.
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	ids := userIDs(1000)
	c := redistest.Client(b)
	b.Run("baseline_hgetall", func(b *testing.B) {
		measure(b, "get", "baseline_hgetall", true)
		p := redistest.Prefix(b, c)
		for _, id := range ids {
			c.HSet(ctx, p+":u:"+id, "personalization_off", 1, "refused", "sms", "tags", "interest:ski")
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := c.HGetAll(ctx, p+":u:"+ids[i%len(ids)]).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("redis", func(b *testing.B) {
		measure(b, "get", "redis", false)
		s, err := rs.New(ctx, c, rs.Options{Prefix: redistest.Prefix(b, c), Init: true})
		if err != nil {
			b.Fatal(err)
		}
		for _, id := range ids {
			if _, err := s.Apply(ctx, consent.SetPersonalization(id, false)); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Apply(ctx, consent.RefuseChannel(id, "sms")); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.Get(ctx, ids[i%len(ids)]); err != nil {
				b.Fatal(fmt.Errorf("get: %w", err))
			}
		}
	})
}
