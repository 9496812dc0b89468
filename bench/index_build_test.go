package bench

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/index"
)

// Index build from records (issue 16 part 2) and the index's heap per user
// (part 5): the population of bench/index_test.go (same generator, seed and
// numbering), generated a batch of 65,536 records at a time in number
// order, with the clock stopped, and loaded into two indexes in the same
// run: one by one with Index.Load (the way before LoadMany, one goroutine)
// and with Index.LoadMany (every core). The two indexes must be equal. The
// heap of each is measured after GC by dropping it (runtime.MemStats
// HeapAlloc before and after); the user ID strings belong to the second
// one dropped (LoadMany's), so its figure includes them, as an index built
// from the store holds them.

const buildBatch = 1 << 16

// buildPass generates n users and loads each batch into one (Index.Load,
// one by one) and many (Index.LoadMany), returning the time each spent.
func buildPass(n int, withOne bool) (one, many *index.Index, tOne, tMany, tGen time.Duration) {
	set := audSettings()
	one, many = index.New(audShards, set), index.New(audShards, set)
	if !withOne {
		one = nil
	}
	_, byNum := audNumbers(n)
	g := newAudGen()
	recs := make([]consent.Record, buildBatch)
	k := 0
	flush := func() {
		t := time.Now()
		for j := range recs[:k] {
			if one != nil {
				one.Load(&recs[j])
			}
		}
		t1 := time.Now()
		many.LoadMany(recs[:k])
		tMany += time.Since(t1)
		tOne += t1.Sub(t)
		k = 0
	}
	t := time.Now()
	for num := 1; num < len(byNum); num++ {
		i := byNum[num]
		if i < 0 {
			continue
		}
		g.user(int(i), &recs[k])
		recs[k].Number = uint32(num)
		// A fresh ID string per user, as records read from a store have.
		recs[k].UserID = "user" + strconv.Itoa(int(i))
		if k++; k == buildBatch {
			tGen += time.Since(t)
			flush()
			t = time.Now()
		}
	}
	tGen += time.Since(t)
	flush()
	runtime.KeepAlive(byNum)
	return one, many, tOne, tMany, tGen
}

// BenchmarkIndexBuild10M loads 10M generated users (RECGUARD_BUILD_USERS
// lowers it) with Index.Load one by one and with Index.LoadMany, and
// reports each one's time, their ratio (group index_build_<n>), and the
// heap of the LoadMany index per user and per million users.
func BenchmarkIndexBuild10M(b *testing.B) {
	n := aud10M
	if v, err := strconv.Atoi(os.Getenv("RECGUARD_BUILD_USERS")); err == nil && v > 0 {
		n = v
	}
	g := "index_build_" + peerSize(n)
	for b.Loop() {
		one, many, tOne, tMany, tGen := buildPass(n, true)
		if !one.Equal(many) {
			b.Fatal("LoadMany and Load one by one built different indexes")
		}
		one, many = nil, nil
		// The heap: a second pass building the LoadMany index alone.
		heap0 := audHeap()
		_, x, _, _, _ := buildPass(n, false)
		heapLoose := audHeap()
		x.Compact()
		heap1 := audHeap()
		st := x.Stats()
		runtime.KeepAlive(x)
		perUser := float64(heap1-heap0) / float64(n)
		recordResult(g, "load_one_by_one", float64(tOne.Nanoseconds()), true)
		recordResult(g, "load_many", float64(tMany.Nanoseconds()), false)
		b.ReportMetric(tOne.Seconds(), "load_one_by_one_s")
		b.ReportMetric(tMany.Seconds(), "load_many_s")
		b.ReportMetric(float64(tMany.Nanoseconds())/float64(n), "load_many_ns/user")
		b.ReportMetric(perUser, "heap_B/user")
		b.ReportMetric(float64(st.Bytes)/float64(n), "bitmaps_serialized_B/user")
		fmt.Printf("index build %s on %d cores: Load one by one %.2fs, LoadMany %.2fs (%.2fx as fast); generation %.1fs (not timed); "+
			"heap of the LoadMany index after Compact %.1f B/user (= MB per million users; ID strings included; before Compact %.1f B/user); bitmaps serialized %.1f B/user\n",
			peerSize(n), runtime.GOMAXPROCS(0), tOne.Seconds(), tMany.Seconds(), tOne.Seconds()/tMany.Seconds(), tGen.Seconds(),
			perUser, float64(heapLoose-heap0)/float64(n), float64(st.Bytes)/float64(n))
	}
}

// TestIndexBuildSmall is BenchmarkIndexBuild10M's small version: on 200k
// users (50k under -race) LoadMany builds the index Load builds one by
// one, and, without the race detector, it takes no more than 1.5x Load's
// time (it is 1.3-1.6x as fast on the shared 2-core machine; the bound is
// loose for a noisy one).
func TestIndexBuildSmall(t *testing.T) {
	n := 200_000
	if raceEnabled {
		n = 50_000
	}
	one, many, tOne, tMany, _ := buildPass(n, true)
	if !one.Equal(many) {
		t.Fatal("LoadMany and Load one by one built different indexes")
	}
	if s := many.Stats(); s.Users != uint64(n) || s.Unknown != 0 {
		t.Fatalf("%d users, %d unknown; want %d, 0", s.Users, s.Unknown, n)
	}
	t.Logf("%d users: Load one by one %v, LoadMany %v (%.2fx as fast)", n, tOne, tMany, tOne.Seconds()/tMany.Seconds())
	if !raceEnabled && tMany > tOne*3/2 {
		t.Errorf("LoadMany %v, more than 1.5x Load one by one's %v", tMany, tOne)
	}
}
