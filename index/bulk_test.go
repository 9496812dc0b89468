package index

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// LoadMany gives the index that loading the same records one by one gives,
// on several goroutines, whatever the records hold: records out of number
// order, repeated, of another shard, with an invalid ID, without a version
// or a number, a number held by another user or far out of range, users
// unknown before the load and records erased or restricted.
func TestLoadManyEqualsLoad(t *testing.T) {
	old := bulkMin
	bulkMin = 8
	defer func() { bulkMin = old }()
	for seed := uint64(1); seed <= 6; seed++ {
		m := newDVModel(t, seed, 0)
		r := m.r
		var recs []consent.Record
		for i := 0; i < 600; i++ {
			s, local := i%testShards, i/testShards+1
			rec := *m.random(s, local, 1)
			switch x := r.IntN(100); {
			case x < 3:
				rec.Number = store.UserNumber((s+1)%testShards, local, testShards) // another shard's number
			case x < 5:
				rec.UserID = "bad id!"
			case x < 7:
				rec.Version = 0
			case x < 8:
				rec.Version, rec.Number = 0, 0
			case x < 10:
				rec.Number = store.UserNumber(s, local+maxGap+10, testShards) // out of range
			case x < 12 && len(recs) > 0:
				rec = recs[r.IntN(len(recs))] // again
			case x < 14 && len(recs) > 0:
				rec.Number = recs[r.IntN(len(recs))].Number // held by another user
			}
			recs = append(recs, rec)
		}
		if seed%2 == 0 {
			r.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		}
		one, many := New(testShards, consent.DefaultSettings()), New(testShards, consent.DefaultSettings())
		// Some users are unknown before the load.
		for _, x := range []*Index{one, many} {
			x.Load(&consent.Record{UserID: idOf(1, 3), Number: 0, Version: 1})
			x.Load(&consent.Record{UserID: idOf(2, 2), Number: store.UserNumber(1, 2, testShards), Version: 1})
		}
		for i := range recs {
			one.Load(&recs[i])
		}
		many.mu.Lock()
		many.loadMany(slices.Clone(recs), 3)
		many.unlock()
		if !one.Equal(many) || one.Unknown() != many.Unknown() {
			t.Fatalf("seed %d: LoadMany differs from Load one by one (unknown %d and %d)", seed, many.Unknown(), one.Unknown())
		}
		if one.Unknown() == 0 || one.Stats().Users < 300 {
			t.Fatalf("seed %d: %d unknown, %d users: the test proves nothing", seed, one.Unknown(), one.Stats().Users)
		}
	}
}

// LoadMany on a big, ordered population: the same index as Load, through
// the public call (every core).
func TestLoadManyPublic(t *testing.T) {
	m := newDVModel(t, 9, 0)
	recs := make([]consent.Record, 0, 20000)
	for i := 0; i < 20000; i++ {
		recs = append(recs, *m.random(i%testShards, i/testShards+1, 1))
	}
	slices.SortFunc(recs, func(a, b consent.Record) int { return int(a.Number) - int(b.Number) })
	one, many := New(testShards, consent.DefaultSettings()), New(testShards, consent.DefaultSettings())
	for i := range recs {
		one.Load(&recs[i])
	}
	many.LoadMany(recs[:7000])
	many.LoadMany(recs[7000:])
	if !one.Equal(many) {
		t.Fatal("LoadMany differs from Load")
	}
	if n := many.Stats().Users; n != 20000 {
		t.Fatalf("%d users, want 20000", n)
	}
}

// BenchmarkLoadMany loads 300k users (16 shards, about 14 tags each out of
// 1,000, every string of a record its own, as records decoded from a store
// have) a batch of 65,536 at a time, in number order.
func BenchmarkLoadMany(b *testing.B) {
	const n, shards, batch = 300_000, 16, 1 << 16
	r := rand.New(rand.NewPCG(7, 7))
	names := make([]string, 1000)
	prob := make([]float64, len(names))
	for i := range names {
		names[i] = fmt.Sprintf("interest:t%04d", i)
		prob[i] = 0.9 * math.Pow(float64(i+1), -0.8)
	}
	recs := make([]consent.Record, 0, n)
	count := make([]int, shards)
	for i := range n {
		id := "user" + strconv.Itoa(i)
		s := store.ShardOf(id, shards)
		count[s]++
		rec := consent.Record{UserID: id, Number: store.UserNumber(s, count[s], shards), Version: 1}
		for k := range names {
			if r.Float64() < prob[k] {
				rec.Tags.Entries = append(rec.Tags.Entries, tags.Entry{Tag: tags.Tag(strings.Clone(names[k])), Source: tags.Inferred})
			}
		}
		rec.State.PersonalizationOff = r.IntN(10) == 0
		recs = append(recs, rec)
	}
	slices.SortFunc(recs, func(a, b consent.Record) int { return int(a.Number) - int(b.Number) })
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		x := New(shards, consent.DefaultSettings())
		for i := 0; i < n; i += batch {
			x.LoadMany(recs[i:min(i+batch, n)])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/user")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/n, "cpu_ns/user")
}

// cpuTime returns the CPU time (user and system) of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
