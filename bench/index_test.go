package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/index"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// Audience benchmarks on the roaring-bitmap index (package index) with a
// generated population, against the same data held as Redis sets.
//
// The population is generated in-process, deterministically (user i's record
// depends only on audSeed and i), and loaded straight into an index with
// index.New + Index.LoadMany, without a store. One record buffer is reused for
// every user: nothing of a record is kept after it is loaded except what the
// index itself keeps (the user ID in its number -> ID table).
//
// Distribution of user i ("user<i>", i = 0..n-1):
//
//   - shard store.ShardOf(id, 16); number store.UserNumber(shard, k, 16)
//     where k counts the shard's users in order of i (what a store assigns
//     when users arrive in that order);
//   - erased with probability 0.5%: then nothing else (erasure removes
//     tags and consents);
//   - otherwise, independently: personalization off 10%; refused sms 8%,
//     push 3%, email 5%; minor 1%, and half of the minors have their
//     guardian's consent (under the current guardian policy version 1);
//   - tags: audTags tags "interest:t0001".."interest:t1000" (ordinary
//     namespace), Zipf-like: tag of popularity rank r is held independently
//     with probability p(r) = 0.9 * r^-0.8, so rank 1 is held by 90% of the
//     users, rank 2 by 52%, rank 10 by 14%, rank 50 by 3.9%, rank 1000 by
//     0.36%; 13.9 tags per non-erased user on average. Tags are drawn by
//     thinning a geometric skip process, so a user costs O(its tags), not
//     O(1000).
const (
	audSeed   = 0x5eed_1dc5
	audShards = store.DefaultShards
	audTags   = 1000

	audPErased   = 0.005
	audPOff      = 0.10
	audPSMS      = 0.08
	audPPush     = 0.03
	audPEmail    = 0.05
	audPMinor    = 0.01
	audPGuardian = 0.5 // of minors

	aud10M     = 10_000_000
	audSmall   = 100_000
	audPage    = 10_000
	audChanges = 1_000_000 // changelog events replayed after a checkpoint
	audBatch   = 512       // events per Index.Apply
	// audCatchUpBatch is how many events index.CatchUp applies a call.
	audCatchUpBatch = 1 << 16
	audSADDSize     = 10_000 // members per SADD
	audSADDPipe     = 8      // SADDs per pipeline
)

func audTagP(r int) float64 { return 0.9 * math.Pow(float64(r), -0.8) }

func audTag(r int) tags.Tag { return tags.Tag(fmt.Sprintf("interest:t%04d", r)) }

var (
	audT0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	// audGuardian is the guardian consent every consenting minor holds;
	// shared, read-only.
	audGuardian = &consent.Grant{Granted: true, Purpose: consent.PurposeGuardian, PolicyVersion: 1, ByGuardian: true, At: audT0}
	// audChannels are the refusable channels the generator uses, sorted;
	// audRefused[mask] is the sorted slice of those whose bit is set in
	// mask (bit i = audChannels[i]); shared, read-only.
	audChannels = []string{"email", "push", "sms"}
	audRefused  = func() [][]string {
		out := make([][]string, 1<<len(audChannels))
		for m := range out {
			for i, c := range audChannels {
				if m&(1<<i) != 0 {
					out[m] = append(out[m], c)
				}
			}
		}
		return out
	}()
)

func audSettings() consent.Settings {
	s := consent.DefaultSettings()
	s.Version = 1
	return s
}

// audGen generates users. Not safe for concurrent use.
type audGen struct {
	tag []tags.Tag // by rank, 1-based
	p   []float64  // p(r)
	lq  []float64  // log(1 - p(r))
	pcg *rand.PCG
	rng *rand.Rand
}

func newAudGen() *audGen {
	g := &audGen{
		tag: make([]tags.Tag, audTags+1),
		p:   make([]float64, audTags+1),
		lq:  make([]float64, audTags+1),
		pcg: rand.NewPCG(0, 0),
	}
	g.rng = rand.New(g.pcg)
	for r := 1; r <= audTags; r++ {
		g.tag[r] = audTag(r)
		g.p[r] = audTagP(r)
		g.lq[r] = math.Log1p(-g.p[r])
	}
	return g
}

// user overwrites rec with user i's record (Version 1, Number left as is),
// reusing rec's tag entries' backing array.
func (g *audGen) user(i int, rec *consent.Record) {
	g.pcg.Seed(audSeed, uint64(i))
	r := g.rng
	rec.UserID = "user" + strconv.Itoa(i)
	rec.Version = 1
	rec.State = consent.State{}
	rec.Tags.Entries = rec.Tags.Entries[:0]
	rec.Tags.Suppressed = nil
	rec.LastHash = ""
	rec.UpdatedAt = audT0
	if r.Float64() < audPErased {
		rec.State.Erased = true
		return
	}
	st := &rec.State
	st.PersonalizationOff = r.Float64() < audPOff
	mask := 0
	if r.Float64() < audPEmail {
		mask |= 1
	}
	if r.Float64() < audPPush {
		mask |= 2
	}
	if r.Float64() < audPSMS {
		mask |= 4
	}
	st.RefusedChannels = audRefused[mask]
	if r.Float64() < audPMinor {
		st.Minor = true
		if r.Float64() < audPGuardian {
			st.Guardian = audGuardian
		}
	}
	// Thinning: walk the ranks with geometric skips at the rate of the
	// current rank's probability (an upper bound for every later rank, as
	// p decreases), and accept a candidate rank k with p(k)/bound. Ranks
	// are visited in increasing order, so the entries come out sorted
	// (zero-padded names sort like ranks).
	for k := 1; k <= audTags; {
		q := g.p[k]
		k += int(math.Log(1-r.Float64()) / g.lq[k])
		if k > audTags {
			break
		}
		if r.Float64()*q < g.p[k] {
			rec.Tags.Entries = append(rec.Tags.Entries, tags.Entry{Tag: g.tag[k], Source: tags.Inferred, At: audT0})
		}
		k++
	}
}

// audQuery is an audience of the shape the Redis-set baseline evaluates:
// tag A & tag B & !consent:personalization_off on a channel, targeted.
type audQuery struct {
	name    string
	a, b    int // tag ranks
	channel string
	seg     *tags.Segment
}

func newAudQuery(name string, a, b int, channel string) audQuery {
	expr := fmt.Sprintf("%s & %s & !consent:personalization_off", audTag(a), audTag(b))
	return audQuery{name: name, a: a, b: b, channel: channel, seg: tags.MustParseSegment(expr)}
}

// Redis set names (under the prefix) the baseline keeps: one per tag, per
// refused channel, personalization off, erased, and minors without their
// guardian's consent (which a hand-written backend would have to maintain
// too: the rule is "nothing of a minor without guardian consent").
func audTagSet(r int) string     { return "tag:" + strconv.Itoa(r) }
func audRefSet(ch string) string { return "refused:" + ch }

const audOffSet, audErasedSet, audMNGSet = "off", "erased", "minor_noguardian"

// audData is a generated population loaded into an index, with what the
// Redis baseline and the brute-force check need.
type audData struct {
	n       int
	set     consent.Settings
	x       *index.Index
	nums    []uint32            // user i -> number
	sets    map[string][]uint32 // Redis set name -> member numbers
	want    map[string]uint64   // query name -> brute-force count
	queries []audQuery

	build     time.Duration // wall time of the whole build (two goroutines)
	load      time.Duration // time spent in Index.LoadMany
	gen       time.Duration // time spent generating (concurrently)
	heapBytes uint64        // live heap the index added (after GC)
	stats     index.Stats
}

// audBrute reports whether rec is in q's audience by the consent model's
// own definition, user by user (consent.InPushAudience; every query is
// targeted).
func audBrute(rec *consent.Record, q *audQuery, set *consent.Settings) bool {
	return consent.InPushAudience(q.seg, rec, set, q.channel, true)
}

func audHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// audNumbers returns the number store.UserNumber gives each user i when
// users arrive in order of i (the k-th user of a shard gets local number k),
// and the inverse: byNum[num] is the user with number num, or -1 (numbers
// of a shard with fewer users than the largest).
func audNumbers(n int) (nums []uint32, byNum []int32) {
	nums = make([]uint32, n)
	count := make([]int, audShards)
	var buf []byte
	maxNum := uint32(0)
	for i := range n {
		buf = strconv.AppendInt(append(buf[:0], "user"...), int64(i), 10)
		sh := store.ShardOf(string(buf), audShards)
		count[sh]++
		nums[i] = store.UserNumber(sh, count[sh], audShards)
		maxNum = max(maxNum, nums[i])
	}
	byNum = make([]int32, maxNum+1)
	for i := range byNum {
		byNum[i] = -1
	}
	for i, num := range nums {
		byNum[num] = int32(i)
	}
	return nums, byNum
}

// buildAudData generates n users and loads them into a new index with
// Index.LoadMany, a batch of 65,536 records at a time, in number order, so
// that roaring appends. One goroutine generates batches of records (reused:
// nothing of a record outlives its load but the user ID the index keeps),
// collects the Redis sets of the queries' tags and the brute-force count of
// each query; another loads them (LoadMany uses every core, so the two
// share the CPU: BenchmarkIndexBuild10M times the load alone).
func buildAudData(n int, queries []audQuery) *audData {
	d := &audData{
		n:       n,
		set:     audSettings(),
		sets:    map[string][]uint32{},
		want:    map[string]uint64{},
		queries: queries,
	}
	wantTag := map[tags.Tag]int{}
	for _, q := range queries {
		wantTag[audTag(q.a)], wantTag[audTag(q.b)] = q.a, q.b
	}
	var byNum []int32
	d.nums, byNum = audNumbers(n)
	before := audHeap()
	start := time.Now()
	d.x = index.New(audShards, d.set)

	const batch, batches = 1 << 16, 3
	free, full := make(chan []consent.Record, batches), make(chan []consent.Record, batches)
	for range batches {
		free <- make([]consent.Record, batch)
	}
	var genTime time.Duration
	go func() {
		defer close(full)
		g := newAudGen()
		recs, k := <-free, 0
		t := time.Now()
		for num := 1; num < len(byNum); num++ {
			i := byNum[num]
			if i < 0 {
				continue
			}
			rec := &recs[k]
			g.user(int(i), rec)
			rec.Number = uint32(num)
			s := &rec.State
			for _, e := range rec.Tags.Entries {
				if r, ok := wantTag[e.Tag]; ok {
					d.sets[audTagSet(r)] = append(d.sets[audTagSet(r)], rec.Number)
				}
			}
			for _, ch := range s.RefusedChannels {
				d.sets[audRefSet(ch)] = append(d.sets[audRefSet(ch)], rec.Number)
			}
			if s.PersonalizationOff {
				d.sets[audOffSet] = append(d.sets[audOffSet], rec.Number)
			}
			if s.Erased {
				d.sets[audErasedSet] = append(d.sets[audErasedSet], rec.Number)
			}
			if !s.GuardianOK(&d.set) {
				d.sets[audMNGSet] = append(d.sets[audMNGSet], rec.Number)
			}
			for qi := range queries {
				if audBrute(rec, &queries[qi], &d.set) {
					d.want[queries[qi].name]++
				}
			}
			if k++; k == batch {
				genTime += time.Since(t)
				full <- recs
				recs, k = <-free, 0
				t = time.Now()
			}
		}
		genTime += time.Since(t)
		full <- recs[:k]
	}()
	for recs := range full {
		t := time.Now()
		d.x.LoadMany(recs)
		d.load += time.Since(t)
		free <- recs[:cap(recs)]
	}
	d.build = time.Since(start)
	d.gen = genTime
	close(free)
	for range free {
		// Drop the record batches before measuring.
	}
	var side uint64 // what the benchmark keeps beside the index
	for _, s := range d.sets {
		side += uint64(cap(s)) * 4
	}
	if after := audHeap(); after > before+side {
		d.heapBytes = after - before - side
	}
	runtime.KeepAlive(byNum) // counted in before: keep it for after
	d.stats = d.x.Stats()
	return d
}

var (
	aud10MOnce sync.Once
	aud10MData *audData
)

var aud10MQueries = []audQuery{
	// The two most popular tags: the heaviest case for both sides.
	newAudQuery("count_3term_10M", 1, 2, "sms"),
	// Mid-popularity tags (14% and 3.9% of users).
	newAudQuery("count_3term_10M_midtags", 10, 50, "sms"),
}

// audData10M builds the 10M-user population once per process.
func audData10M(b *testing.B) *audData {
	b.Helper()
	aud10MOnce.Do(func() {
		d := buildAudData(aud10M, aud10MQueries)
		fmt.Printf("index 10M: built in %.1fs wall (Index.LoadMany %.1fs = %.0f ns/user, sharing the cores with generation %.1fs "+
			"); %d users, %d bitmaps; live heap +%.0f MB (%.1f MB per million users, ID table included); "+
			"bitmaps serialized %.0f MB (%.1f MB per million users)\n",
			d.build.Seconds(), d.load.Seconds(), float64(d.load)/float64(d.n), d.gen.Seconds(),
			d.stats.Users, d.stats.Bitmaps, float64(d.heapBytes)/1e6, float64(d.heapBytes)/1e6/(float64(d.n)/1e6),
			float64(d.stats.Bytes)/1e6, float64(d.stats.Bytes)/1e6/(float64(d.n)/1e6))
		aud10MData = d
	})
	if aud10MData == nil {
		b.Fatal("10M population not built (an earlier build failed)")
	}
	return aud10MData
}

// audRedisClient is redistest.Client with long timeouts: at 10M users one
// SDIFFSTORE takes seconds, past go-redis's default 3 s read timeout.
func audRedisClient(tb testing.TB) goredis.UniversalClient {
	tb.Helper()
	redistest.Client(tb) // fails the test with the usual hint when Redis is down
	c := goredis.NewUniversalClient(&goredis.UniversalOptions{
		Addrs:        redistest.Addrs(),
		ReadTimeout:  2 * time.Minute,
		WriteTimeout: 2 * time.Minute,
	})
	tb.Cleanup(func() { c.Close() })
	return c
}

// audKey is the key of set name under prefix; the hash tag keeps every key
// of a prefix in one slot, so the multi-key commands work on a cluster.
func audKey(prefix, name string) string { return prefix + ":{aud}:" + name }

// loadAudSets loads the data's sets into Redis under prefix with SADD of
// audSADDSize members, audSADDPipe commands per pipeline. It returns how
// long that took and how much Redis memory grew.
func loadAudSets(ctx context.Context, tb testing.TB, c goredis.UniversalClient, prefix string, d *audData) (time.Duration, int64) {
	tb.Helper()
	mem0 := audRedisMem(ctx, tb, c)
	start := time.Now()
	names := make([]string, 0, len(d.sets))
	for k := range d.sets {
		names = append(names, k)
	}
	slices.Sort(names)
	pipe := c.Pipeline()
	queued := 0
	flush := func() {
		if queued == 0 {
			return
		}
		if _, err := pipe.Exec(ctx); err != nil {
			tb.Fatal(err)
		}
		queued = 0
	}
	args := make([]any, 0, audSADDSize)
	for _, name := range names {
		nums := d.sets[name]
		for len(nums) > 0 {
			k := min(len(nums), audSADDSize)
			args = args[:0]
			for _, v := range nums[:k] {
				args = append(args, strconv.FormatUint(uint64(v), 10))
			}
			pipe.SAdd(ctx, audKey(prefix, name), args...)
			nums = nums[k:]
			if queued++; queued == audSADDPipe {
				flush()
				pipe = c.Pipeline()
			}
		}
	}
	flush()
	took := time.Since(start)
	return took, audRedisMem(ctx, tb, c) - mem0
}

func audRedisMem(ctx context.Context, tb testing.TB, c goredis.UniversalClient) int64 {
	tb.Helper()
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// redisCount is the baseline: q's count from the Redis sets, as a
// hand-written backend would compute it. SDIFFSTORE the smaller tag set
// minus every exclusion set into a temporary key, SINTERCARD it with the
// larger tag set, UNLINK the temporary key (freed in the background), in
// one pipeline: one round trip. (SINTERSTORE A B then SDIFFSTORE would store
// the bigger intersection first; SINTERCARD cannot subtract.)
func redisCount(ctx context.Context, c goredis.UniversalClient, prefix string, d *audData, q *audQuery) (int64, error) {
	small, large := q.a, q.b
	if len(d.sets[audTagSet(small)]) > len(d.sets[audTagSet(large)]) {
		small, large = large, small
	}
	tmp := audKey(prefix, "tmp:"+q.name)
	k := func(s string) string { return audKey(prefix, s) }
	pipe := c.Pipeline()
	pipe.SDiffStore(ctx, tmp, k(audTagSet(small)), k(audOffSet), k(audRefSet(q.channel)), k(audErasedSet), k(audMNGSet))
	card := pipe.SInterCard(ctx, 0, tmp, k(audTagSet(large)))
	pipe.Unlink(ctx, tmp)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	return card.Val(), nil
}

// TestAudienceCountMatchesSets checks, on a 100k-user population, that the
// index's audience counts equal the Redis-set baseline's and a brute-force
// count over the generated records with the consent model's rules.
func TestAudienceCountMatchesSets(t *testing.T) {
	ctx := context.Background()
	queries := []audQuery{
		newAudQuery("top2_sms", 1, 2, "sms"),
		newAudQuery("mid_sms", 10, 50, "sms"),
		newAudQuery("mid_push", 7, 30, "push"),
		newAudQuery("rare_email", 3, 400, "email"),
	}
	d := buildAudData(audSmall, queries)
	c := audRedisClient(t)
	prefix := redistest.Prefix(t, c)
	took, mem := loadAudSets(ctx, t, c, prefix, d)
	t.Logf("%d users: index built in %v (Index.LoadMany %v); Redis sets loaded in %v (+%.1f MB)", d.n, d.build, d.load, took, float64(mem)/1e6)
	if d.stats.Users != uint64(d.n) {
		t.Fatalf("index has %d users, want %d", d.stats.Users, d.n)
	}
	// The generator follows the documented distribution.
	for r, want := range map[int]float64{1: audTagP(1), 2: audTagP(2), 10: audTagP(10)} {
		want *= 1 - audPErased
		if got := float64(len(d.sets[audTagSet(r)])) / float64(d.n); math.Abs(got-want) > 0.01 {
			t.Errorf("tag rank %d held by %.3f of the users, want %.3f", r, got, want)
		}
	}
	if got := float64(len(d.sets[audOffSet])) / float64(d.n); math.Abs(got-audPOff*(1-audPErased)) > 0.005 {
		t.Errorf("personalization off for %.3f of the users, want %.3f", got, audPOff*(1-audPErased))
	}
	g := newAudGen()
	for i := range queries {
		q := &queries[i]
		got, err := d.x.Count(q.seg, q.channel, true)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := redisCount(ctx, c, prefix, d, q)
		if err != nil {
			t.Fatal(err)
		}
		want := d.want[q.name]
		t.Logf("%s (%s on %s): index %d, redis %d, brute force %d", q.name, q.seg, q.channel, got, rc, want)
		if want == 0 {
			t.Errorf("%s: empty audience: the test proves nothing", q.name)
		}
		if got != want || uint64(rc) != want {
			t.Errorf("%s: index %d, redis sets %d, brute force %d", q.name, got, rc, want)
		}
		// Paging the audience gives Count distinct users, each of whom the
		// brute force puts in the audience (user "user<i>" is regenerated
		// from i).
		a, err := d.x.Audience(q.seg, q.channel, true)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		var rec consent.Record
		for cur := uint32(0); ; {
			ids, next := a.Page(cur, 7919)
			for _, id := range ids {
				i, err := strconv.Atoi(strings.TrimPrefix(id, "user"))
				if err != nil || seen[id] {
					t.Fatalf("%s: page has %q (duplicate or not a generated user)", q.name, id)
				}
				seen[id] = true
				g.user(i, &rec)
				rec.Number = d.nums[i]
				if !audBrute(&rec, q, &d.set) {
					t.Fatalf("%s: page has %s, not in the brute-force audience", q.name, id)
				}
			}
			if next == 0 {
				break
			}
			cur = next
		}
		if uint64(len(seen)) != got {
			t.Errorf("%s: paging gave %d users, Count %d", q.name, len(seen), got)
		}
	}
}

// BenchmarkAudienceCount10M counts a 3-term targeted audience on the 10M
// index (group count_3term_10M: the two most popular tags;
// count_3term_10M_midtags: tags of rank 10 and 50) against the same count
// from Redis sets holding the same users (baseline redis_sets).
func BenchmarkAudienceCount10M(b *testing.B) {
	ctx := context.Background()
	d := audData10M(b)
	c := audRedisClient(b)
	prefix := redistest.Prefix(b, c)
	took, mem := loadAudSets(ctx, b, c, prefix, d)
	var members int
	for _, s := range d.sets {
		members += len(s)
	}
	b.Logf("Redis sets: %d sets, %d members loaded in %.1fs (%.0f members/s), Redis memory +%.0f MB",
		len(d.sets), members, took.Seconds(), float64(members)/took.Seconds(), float64(mem)/1e6)
	for i := range d.queries {
		q := &d.queries[i]
		got, err := d.x.Count(q.seg, q.channel, true)
		if err != nil {
			b.Fatal(err)
		}
		rc, err := redisCount(ctx, c, prefix, d, q)
		if err != nil {
			b.Fatal(err)
		}
		if want := d.want[q.name]; got != want || uint64(rc) != want {
			b.Fatalf("%s: index %d, redis sets %d, brute force %d", q.name, got, rc, want)
		}
		b.Logf("%s: %s on %s, targeted: %d users (index = redis sets = brute force)", q.name, q.seg, q.channel, got)
		b.Run(q.name+"/roaring", func(b *testing.B) {
			measure(b, q.name, "roaring", false)
			for b.Loop() {
				if _, err := d.x.Count(q.seg, q.channel, true); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/op")
		})
		b.Run(q.name+"/redis_sets", func(b *testing.B) {
			measure(b, q.name, "redis_sets", true)
			for b.Loop() {
				if _, err := redisCount(ctx, c, prefix, d, q); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/op")
			b.ReportMetric(took.Seconds(), "load_s")
			b.ReportMetric(float64(mem)/1e6, "redis_MB")
		})
	}
}

// BenchmarkAudiencePage10M pages an audience of the 10M index 10,000 user IDs
// at a time: "page" walks the audience page after page (wrapping around),
// "audience+first_page" evaluates the audience and takes its first page.
func BenchmarkAudiencePage10M(b *testing.B) {
	d := audData10M(b)
	q := &d.queries[0]
	b.Run("page", func(b *testing.B) {
		measure(b, "page_10k_10M", "page", false)
		a, err := d.x.Audience(q.seg, q.channel, true)
		if err != nil {
			b.Fatal(err)
		}
		var cur uint32
		for b.Loop() {
			ids, next := a.Page(cur, audPage)
			if len(ids) != audPage && next != 0 {
				b.Fatalf("page of %d IDs", len(ids))
			}
			cur = next
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/op")
	})
	b.Run("audience+first_page", func(b *testing.B) {
		measure(b, "page_10k_10M", "audience+first_page", false)
		for b.Loop() {
			a, err := d.x.Audience(q.seg, q.channel, true)
			if err != nil {
				b.Fatal(err)
			}
			if ids, _ := a.Page(0, audPage); len(ids) != audPage {
				b.Fatalf("page of %d IDs", len(ids))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/op")
	})
}

// BenchmarkAudienceIndexMemory10M reports the 10M index's build time and
// size per million users; the op is Index.Stats (which sums the bitmaps'
// serialized sizes).
func BenchmarkAudienceIndexMemory10M(b *testing.B) {
	d := audData10M(b)
	musers := float64(d.n) / 1e6
	for b.Loop() {
		d.x.Stats()
	}
	b.ReportMetric(d.build.Seconds(), "build_s")
	b.ReportMetric(d.load.Seconds(), "load_s")
	b.ReportMetric(float64(d.load)/float64(d.n), "load_ns/user")
	b.ReportMetric(float64(d.heapBytes)/musers, "heap_B/Muser")
	b.ReportMetric(float64(d.stats.Bytes)/musers, "bitmap_B/Muser")
}

// audEvents returns m synthetic changelog events on distinct users of d
// (user k*7919 mod n for the k-th), each the user's generated record
// (Version 1) as Prev and a changed copy (Version 2) as Record, at
// positions "1-<seq>" increasing per log. Changes: 40% add a tag (rank
// uniform in 1..1000), 20% delete a tag, 15% toggle the sms refusal, 10%
// toggle personalization off, 10% toggle the push refusal, 5% erase; an
// erased user comes back with a declared tag.
func audEvents(d *audData, m int) []store.Event {
	g := newAudGen()
	rng := rand.New(rand.NewPCG(audSeed, 1))
	seq := make([]uint64, audShards)
	evs := make([]store.Event, m)
	var scratch consent.Record
	bit := map[string]int{}
	for i, ch := range audChannels {
		bit[ch] = 1 << i
	}
	withTag := func(es []tags.Entry, r int, src tags.Source) []tags.Entry {
		t := g.tag[r]
		at, found := slices.BinarySearchFunc(es, t, func(e tags.Entry, t tags.Tag) int { return strings.Compare(string(e.Tag), string(t)) })
		if found {
			return nil
		}
		out := make([]tags.Entry, 0, len(es)+1)
		out = append(out, es[:at]...)
		out = append(out, tags.Entry{Tag: t, Source: src, At: audT0})
		return append(out, es[at:]...)
	}
	for k := range m {
		i := int(uint64(k) * 7919 % uint64(d.n))
		g.user(i, &scratch)
		prev := new(consent.Record)
		*prev = scratch
		prev.Number = d.nums[i]
		prev.Tags.Entries = slices.Clone(scratch.Tags.Entries)
		cur := new(consent.Record)
		*cur = *prev
		cur.Version = 2
		st := &cur.State
		mask := 0
		for _, ch := range st.RefusedChannels {
			mask |= bit[ch]
		}
		switch x := rng.IntN(100); {
		case st.Erased:
			st.Erased = false
			cur.Tags.Entries = withTag(nil, 1+rng.IntN(audTags), tags.Declared)
		case x < 40, x < 60 && len(cur.Tags.Entries) == 0:
			for {
				if es := withTag(cur.Tags.Entries, 1+rng.IntN(audTags), tags.Inferred); es != nil {
					cur.Tags.Entries = es
					break
				}
			}
		case x < 60:
			j := rng.IntN(len(cur.Tags.Entries))
			cur.Tags.Entries = slices.Delete(slices.Clone(cur.Tags.Entries), j, j+1)
		case x < 75:
			st.RefusedChannels = audRefused[mask^bit["sms"]]
		case x < 85:
			st.PersonalizationOff = !st.PersonalizationOff
		case x < 95:
			st.RefusedChannels = audRefused[mask^bit["push"]]
		default:
			cur.State = consent.State{Erased: true}
			cur.Tags = tags.Set{}
		}
		log, _ := store.NumberShard(cur.Number, audShards)
		seq[log]++
		evs[k] = store.Event{Log: log, Pos: store.Position("1-" + strconv.FormatUint(seq[log], 10)), Record: cur, Prev: prev}
	}
	return evs
}

// BenchmarkCheckpointLoadReplay10M measures a restart of the 10M index: an
// op decodes its checkpoint (index.Unmarshal) and replays audChanges
// changelog events after it (Index.Apply), in batches of audBatch events a
// call and of audCatchUpBatch (as index.CatchUp applies them), one
// sub-benchmark each; the replayed indexes are checked Equal to each other.
// RECGUARD_REPLAY_USERS sets a smaller population (for profiling),
// RECGUARD_REPLAY_BATCH (comma-separated) other batch sizes.
func BenchmarkCheckpointLoadReplay10M(b *testing.B) {
	var d *audData
	if v, err := strconv.Atoi(os.Getenv("RECGUARD_REPLAY_USERS")); err == nil && v > 0 {
		d = buildAudData(v, nil) // a smaller population, for profiling
	} else {
		d = audData10M(b)
	}
	t := time.Now()
	data, err := d.x.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	marshal := time.Since(t)
	t = time.Now()
	evs := audEvents(d, audChanges)
	b.Logf("checkpoint: %.1f MB, marshalled in %v; %d events generated in %v",
		float64(len(data))/1e6, marshal.Round(time.Millisecond), len(evs), time.Since(t).Round(time.Millisecond))
	batches := []int{audBatch, audCatchUpBatch}
	if v := os.Getenv("RECGUARD_REPLAY_BATCH"); v != "" {
		batches = nil
		for _, f := range strings.Split(v, ",") {
			if n, err := strconv.Atoi(f); err == nil && n > 0 {
				batches = append(batches, n)
			}
		}
	}
	var first *index.Index
	for _, batch := range batches {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			var load, replay time.Duration
			var y *index.Index
			for b.Loop() {
				runtime.GC()
				t0 := time.Now()
				y, err = index.Unmarshal(data)
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				for j := 0; j < len(evs); j += batch {
					y.Apply(evs[j:min(j+batch, len(evs))]...)
				}
				t2 := time.Now()
				load += t1.Sub(t0)
				replay += t2.Sub(t1)
				if s := y.Stats(); s.Users != uint64(d.n) {
					b.Fatalf("after replay: %d users, want %d", s.Users, d.n)
				}
			}
			n := float64(b.N)
			b.ReportMetric(load.Seconds()*1e3/n, "load_ms")
			b.ReportMetric(replay.Seconds()*1e3/n, "replay_ms")
			b.ReportMetric(float64(len(evs))*n/replay.Seconds(), "changes/s")
			b.ReportMetric(float64(len(data))/1e6, "checkpoint_MB")
			b.ReportMetric(float64(marshal.Milliseconds()), "marshal_ms")
			if first == nil {
				first = y
			} else if !y.Equal(first) {
				b.Fatalf("the index replayed %d events a call differs from the one replayed %d a call", batch, batches[0])
			}
		})
	}
}

// TestCheckpointReplaySmall is BenchmarkCheckpointLoadReplay10M's small
// version: on 200k users (50k under -race), audChanges/20 changelog
// events replayed after a checkpoint in batches of audBatch and of
// audCatchUpBatch events a call leave the index the same events leave
// one at a time, and, without the race detector, the batches of
// audCatchUpBatch take no more than half the time of one event a call
// (where every erasure clears its number out of every bitmap alone).
func TestCheckpointReplaySmall(t *testing.T) {
	n := 200_000
	if raceEnabled {
		n = 50_000
	}
	d := buildAudData(n, nil)
	data, err := d.x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	evs := audEvents(d, audChanges/20)
	replay := func(batch int) (*index.Index, time.Duration) {
		y, err := index.Unmarshal(data)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		for j := 0; j < len(evs); j += batch {
			y.Apply(evs[j:min(j+batch, len(evs))]...)
		}
		return y, time.Since(t0)
	}
	one, tOne := replay(1)
	small, tSmall := replay(audBatch)
	big, tBig := replay(audCatchUpBatch)
	if !small.Equal(one) || !big.Equal(one) {
		t.Fatalf("replayed in batches, the index differs from the events one at a time (batch %d equal: %v, batch %d equal: %v)",
			audBatch, small.Equal(one), audCatchUpBatch, big.Equal(one))
	}
	if s := big.Stats(); s.Users != uint64(n) {
		t.Fatalf("after replay: %d users, want %d", s.Users, n)
	}
	t.Logf("%d users, %d events: one a call %v, %d a call %v (%.1fx as fast), %d a call %v (%.1fx as fast)", n, len(evs),
		tOne, audBatch, tSmall, tOne.Seconds()/tSmall.Seconds(), audCatchUpBatch, tBig, tOne.Seconds()/tBig.Seconds())
	if !raceEnabled && tBig > tOne/2 {
		t.Errorf("replay in batches of %d: %v, more than half of one event a call's %v", audCatchUpBatch, tBig, tOne)
	}
}
