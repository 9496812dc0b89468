package index

// Regression tests for two data races found by the 10M-user benchmark work
// (they fail under go test -race without the fixes).

import (
	"strconv"
	"sync"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// MarshalBinary calls RunOptimize (a write) under the read lock while
// Audience clones the same bitmaps under the read lock.
func TestRaceMarshalVsAudience(t *testing.T) {
	x := New(4, consent.DefaultSettings())
	var count [4]int
	for i := 1; i <= 200000; i++ {
		id := "u" + strconv.Itoa(i)
		sh := store.ShardOf(id, 4)
		count[sh]++
		x.Load(&consent.Record{UserID: id, Number: store.UserNumber(sh, count[sh], 4), Version: 1,
			Tags: tags.Set{Entries: []tags.Entry{{Tag: "interest:a"}}}})
	}
	if n, _ := x.Count(tags.MustParseSegment("interest:a"), "sms", true); n != 200000 || x.Unknown() != 0 {
		t.Fatalf("loaded %d users, %d unknown; want 200000, 0", n, x.Unknown())
	}
	seg := tags.MustParseSegment("interest:a")
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range 20 {
			x.MarshalBinary()
		}
	}()
	go func() {
		defer wg.Done()
		for range 20 {
			x.Count(seg, "sms", true)
		}
	}()
	wg.Wait()
}

// setUser writes ids[shard][local-1] in place while a frozen Audience
// (which shares the per-shard slices) reads it in Page without the lock.
func TestRacePageVsApply(t *testing.T) {
	x := New(1, consent.DefaultSettings())
	rec := func(v uint64) *consent.Record {
		return &consent.Record{UserID: "u1", Number: 1, Version: v, Tags: tags.Set{Entries: []tags.Entry{{Tag: "interest:a"}}}}
	}
	x.Load(rec(1))
	a, _ := x.Audience(tags.MustParseSegment("interest:a"), "sms", true)
	done := make(chan bool)
	go func() {
		for i := 2; i < 1000; i++ {
			x.Apply(store.Event{Log: 0, Pos: store.Position("1-" + strconv.Itoa(i)), Record: rec(uint64(i)), Prev: rec(uint64(i - 1))})
		}
		close(done)
	}()
	for range 1000 {
		a.Page(0, 10)
	}
	<-done
}
