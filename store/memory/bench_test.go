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
