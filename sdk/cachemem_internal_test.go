package sdk

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

// Cache memory: the heap one cached user costs (the view, its record and
// decision, everything they point to, the cache's slot), measured with
// runtime.MemStats after GC over many users whose records are realistic:
// a handful of tags (a loyalty tier, a region, interests, a device; one
// declared), a refused channel for every third user, personalization off
// for every eighth. Each record is decoded from JSON, as the store hands
// records to the cache (its strings are the user's own, as after a read
// from Redis).

// memUserTemplates is how many distinct records the users' records are
// copied from (with their own user ID and strings).
const memUserTemplates = 1000

// memChanges are the changes that make template user i's record.
func memChanges(id string, i int) []consent.Change {
	t := func(f string, a ...any) tags.Tag { return tags.Tag(fmt.Sprintf(f, a...)) }
	chs := []consent.Change{
		consent.InferTag(id, t("loyalty:%s", []string{"new", "silver", "gold"}[i%3])),
		consent.InferTag(id, t("region:r%02d", i%31)),
		consent.InferTag(id, t("interest:i%02d", i%47)),
		consent.DeclareTag(id, t("interest:i%02d", (i*7+3)%47)).By(consent.ActorUser, consent.SurfaceAPI),
	}
	if i%2 == 0 {
		chs = append(chs, consent.InferTag(id, t("device:d%d", i%5)))
	}
	if i%3 == 0 {
		chs = append(chs, consent.RefuseChannel(id, []string{"sms", "email", "push"}[i%9/3]).By(consent.ActorUser, consent.SurfaceAPI))
	}
	if i%8 == 0 {
		chs = append(chs, consent.SetPersonalization(id, false).By(consent.ActorUser, consent.SurfaceAPI))
	}
	return chs
}

// memPlaceholder is the user ID of the templates: as long as every
// user's ID (u0000000...), so a user's record is the template with its
// ID written over.
const memPlaceholder = "u#######"

// memTemplates returns the JSON of the template records under set.
func memTemplates(tb testing.TB, set *consent.Settings) [][]byte {
	tb.Helper()
	key := consent.ChainKey("cache memory test chain key!!!!!")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	out := make([][]byte, memUserTemplates)
	for i := range out {
		rec := consent.NewRecord(memPlaceholder)
		for j, ch := range memChanges(memPlaceholder, i) {
			ch.At = at.Add(time.Duration(i*10+j) * time.Second)
			var err error
			if rec, _, err = rec.ApplyKeyed(ch, set, key); err != nil {
				tb.Fatalf("template %d change %d: %v", i, j, err)
			}
		}
		rec.Number = uint32(i + 1)
		b, err := json.Marshal(rec)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// cacheBytesPerUser fills a cache of capacity n with n users through
// makeView and install (what a read or a changelog event does) and returns
// the heap it holds per cached user after GC, the cache itself (its slots)
// included.
//
// With raw, views are stored as makeView builds them, without install's
// compaction (interner): what the cache held before it.
func cacheBytesPerUser(tb testing.TB, n int, raw bool) float64 {
	tb.Helper()
	set := consent.DefaultSettings()
	set.Version = 1
	templates := memTemplates(tb, &set)
	sv := newSettingsView(set, 1)
	var c *Client // makeView reads nothing of the client
	buf := make([]byte, 0, 4096)

	runtime.GC()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cache := newCache(n)
	for i := range n {
		id := fmt.Sprintf("u%07d", i)
		buf = append(buf[:0], templates[i%len(templates)]...)
		j := indexOf(buf, memPlaceholder)
		copy(buf[j:], id)
		var rec consent.Record
		if err := json.Unmarshal(buf, &rec); err != nil {
			tb.Fatal(err)
		}
		v := c.makeView(xxhash.Sum64String(rec.UserID), rec, sv)
		if !raw {
			cache.install(v, false)
			continue
		}
		set := &cache.sets[(v.hash>>32^v.hash)&cache.mask]
		for j := range set.slots {
			if set.slots[j].v.Load() == nil {
				set.slots[j].v.Store(v)
				cache.size.Add(1)
				break
			}
		}
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	// A set-associative cache filled to its capacity evicts a few users
	// from its fullest sets: count those it holds.
	held := int(cache.size.Load())
	if held < n*8/10 {
		tb.Fatalf("cache holds %d users of %d (evictions %d)", held, n, cache.evictions.Load())
	}
	if v := cache.lookup(xxhash.Sum64String("u0000003"), "u0000003"); v != nil && len(v.dec.Refused) != 1 {
		tb.Fatalf("u0000003's view: %+v", v)
	}
	runtime.KeepAlive(cache)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(held)
}

func indexOf(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return i
		}
	}
	panic("placeholder not found")
}

// maxCacheBytesPerUser is the loose CI bound on what one cached user
// costs (the goal, checked by BenchmarkCacheBytesPerUser over 1M users, is
// 300 B; see docs/results.md).
const maxCacheBytesPerUser = 2000

func TestCacheBytesPerUser(t *testing.T) {
	n := 20_000 // the figure over 1M users is BenchmarkCacheBytesPerUser's
	got := cacheBytesPerUser(t, n, false)
	raw := cacheBytesPerUser(t, n, true)
	t.Logf("%.0f bytes of heap per cached user (%d users; %.0f as decoded, without install's compaction)", got, n, raw)
	if got > maxCacheBytesPerUser {
		t.Errorf("%.0f bytes per cached user, want <= %d", got, maxCacheBytesPerUser)
	}
	if got > raw*0.9 {
		t.Errorf("install's compaction saves %.0f of %.0f bytes per user, want at least 10%%", raw-got, raw)
	}
}

// BenchmarkCacheBytesPerUser reports the heap per cached user over 1M
// users (one fill per run), as install keeps them and as decoded.
func BenchmarkCacheBytesPerUser(b *testing.B) {
	const n = 1_000_000
	for _, raw := range []bool{true, false} {
		name := "installed"
		if raw {
			name = "as_decoded"
		}
		b.Run(name, func(b *testing.B) {
			var per float64
			for b.Loop() {
				per = cacheBytesPerUser(b, n, raw)
			}
			b.ReportMetric(per, "B/user")
			b.ReportMetric(0, "ns/op")
		})
	}
}
