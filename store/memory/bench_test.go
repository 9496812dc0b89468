package memory_test

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store/memory"
)

// BenchmarkApply measures effective changes (personalization toggled), each
// goroutine on its own user, without a file, with a file and NoSync, and
// with the default fsync per write (shared by concurrent writers).
func BenchmarkApply(b *testing.B) {
	for _, c := range []struct {
		name string
		opts func(b *testing.B) memory.Options
	}{
		{"InMemory", func(*testing.B) memory.Options { return memory.Options{} }},
		{"NoSync", func(b *testing.B) memory.Options { return memory.Options{Dir: b.TempDir(), NoSync: true} }},
		{"Sync", func(b *testing.B) memory.Options { return memory.Options{Dir: b.TempDir()} }},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := mustOpen(b, c.opts(b))
			var next atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				u := "bench-" + strconv.FormatInt(next.Add(1), 10)
				on := false
				for pb.Next() {
					if _, err := s.Apply(b.Context(), consent.SetPersonalization(u, on)); err != nil {
						b.Error(err)
						return
					}
					on = !on
				}
			})
		})
	}
}

// BenchmarkErase measures an erasure in a shard whose changelog is full
// (DefaultChangelogMaxLen entries): the entries are copied to shred the
// user's (copy-on-write), in memory, without a file.
func BenchmarkErase(b *testing.B) {
	s := mustOpen(b, memory.Options{Shards: 1})
	for i := range memory.DefaultChangelogMaxLen {
		u := "filler-" + strconv.Itoa(i%1000)
		if _, err := s.Apply(b.Context(), consent.SetPersonalization(u, i%2000 >= 1000)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		u := "erased-" + strconv.Itoa(i)
		if _, err := s.Apply(b.Context(), consent.DeclareTag(u, "interest:ski")); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Apply(b.Context(), consent.Erase(u)); err != nil {
			b.Fatal(err)
		}
	}
}
