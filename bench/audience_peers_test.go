package bench

import (
	"context"
	"fmt"
	"math/bits"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	"github.com/recguard/recguard/store"
)

// Audience counts against the peers issue 16 names (measurement only):
//
//   - recguard: index.Index.Count, the path BenchmarkAudienceCount10M times;
//   - redis_bitmaps: the same users held as plain Redis bitmaps (SETBIT
//     per user number), the count computed inside Redis with BITOP and
//     BITCOUNT in one pipeline, timed from the client (round trip
//     included); the Redis-side time (INFO commandstats) is reported too;
//   - raw_roaring: the same bitmaps as roaring.Bitmap, combined with
//     roaring's own calls (FastAnd, in-place AndNot, GetCardinality)
//     without any recguard logic: the limit the index could reach.
//
// The population is the one of BenchmarkAudienceCount10M (same generator,
// seed and numbering, buildAudData). Each query is that benchmark's shape,
// tag A & tag B & !consent:personalization_off on sms, targeted; the peers
// compute it from the bitmaps a hand-written backend would keep, the same
// ones the Redis-set baseline keeps (loadAudSets): tag A AND tag B, minus
// personalization off, minus the sms refusals, minus erased users, minus
// minors without their guardian's consent. (Erased users hold no tags, so
// that term never changes the count; it is kept so the peers do what the
// set baseline does.) Three classes of tags, chosen by popularity rank,
// whose cardinalities in the generated data are logged:
//
//   - popular: ranks 1 and 2 (about 90% and 52% of the users);
//   - mid: ranks 10 and 50 (about 14% and 3.9%);
//   - sparse: ranks 250 and 1000 (about 1.1% and 0.36%: array containers).
//
// The ratio groups peers_<n>_<class>_vs_redis, _vs_raw and
// _vs_redis_server (the baseline's Redis-side time only) print recguard's
// time over the peer's.

// peerClass is a query class of the peers benchmark.
type peerClass struct {
	class string
	a, b  int // tag ranks
}

var peerClasses = []peerClass{
	{"popular", 1, 2},
	{"mid", 10, 50},
	{"sparse", 250, 1000},
}

const (
	peerChannel  = "sms"
	peerSETBITs  = 10_000 // SETBITs per pipeline when loading
	peers10M     = aud10M
	peersSmall   = 200_000
	peersSmallRc = 50_000 // users of the small test under -race
)

func peerQueries(suffix string) []audQuery {
	qs := make([]audQuery, len(peerClasses))
	for i, pc := range peerClasses {
		qs[i] = newAudQuery("peers_"+suffix+"_"+pc.class, pc.a, pc.b, peerChannel)
	}
	return qs
}

// peerQuery is one query as the peers see it: the names (in audData.sets)
// of its two tags and of its exclusions, and the roaring bitmaps of those.
type peerQuery struct {
	q        *audQuery
	class    string
	and      [2]string // tag sets, in the query's order
	excl     []string  // excluded sets
	andBM    [2]*roaring.Bitmap
	exclBM   []*roaring.Bitmap
	redisKey map[string]string // set name -> Redis bitmap key
	tmpEx    string            // Redis scratch keys
	tmpDst   string
}

// peerSetup holds the peers of a population.
type peerSetup struct {
	d  *audData
	qs []*peerQuery
}

func newPeerSetup(d *audData) *peerSetup {
	bms := map[string]*roaring.Bitmap{}
	bm := func(name string) *roaring.Bitmap {
		if b, ok := bms[name]; ok {
			return b
		}
		nums := d.sets[name] // in increasing number order: roaring appends
		b := roaring.New()
		b.AddMany(nums)
		bms[name] = b
		return b
	}
	s := &peerSetup{d: d}
	for i := range d.queries {
		q := &d.queries[i]
		pq := &peerQuery{
			q:     q,
			class: q.name[strings.LastIndexByte(q.name, '_')+1:],
			and:   [2]string{audTagSet(q.a), audTagSet(q.b)},
			excl:  []string{audOffSet, audRefSet(q.channel), audErasedSet, audMNGSet},
		}
		for j, n := range pq.and {
			pq.andBM[j] = bm(n)
		}
		for _, n := range pq.excl {
			pq.exclBM = append(pq.exclBM, bm(n))
		}
		s.qs = append(s.qs, pq)
	}
	return s
}

// rawCount is the raw-roaring limit: q's count from the bitmaps with
// roaring's calls only. The AND first (its result is the smallest operand
// of what follows), then each exclusion removed in place.
func rawCount(pq *peerQuery) uint64 {
	r := roaring.FastAnd(pq.andBM[0], pq.andBM[1])
	for _, e := range pq.exclBM {
		r.AndNot(e)
	}
	return r.GetCardinality()
}

// peerLayout logs what a count of pq has to read: each tag's users and
// roaring containers, and the same for its eligible bitmap (the tag less
// the query's exclusions, as the index derives it), with the bytes a
// roaring count and a word-by-word count would touch.
func peerLayout(pq *peerQuery) {
	ex := roaring.FastOr(pq.exclBM...)
	desc := func(b *roaring.Bitmap) string {
		st := b.Stats()
		return fmt.Sprintf("%d users, %d containers (%d array %d B, %d bitmap %d B, %d run %d B)",
			st.Cardinality, st.Containers, st.ArrayContainers, st.ArrayContainerBytes,
			st.BitmapContainers, st.BitmapContainerBytes, st.RunContainers, st.RunContainerBytes)
	}
	for i, b := range pq.andBM {
		fmt.Printf("%s: tag %s: %s; eligible: %s\n", pq.q.name, pq.and[i], desc(b), desc(roaring.AndNot(b, ex)))
	}
	fmt.Printf("%s: exclusion: %s; a dense form of numbers 0..%d is %d B\n", pq.q.name, desc(ex), ex.Maximum(), 8*ex.DenseSize())
}

// peerRedisKey is the key of a set name's bitmap under prefix.
func peerRedisKey(prefix, name string) string { return audKey(prefix, "bm:"+name) }

// loadPeerBitmaps loads every set the queries use into Redis bitmaps under
// prefix, one SETBIT per member (offset = user number), peerSETBITs per
// pipeline, every bitmap as long as the largest user number. It returns the time taken, the bits set and Redis's memory
// growth.
func loadPeerBitmaps(ctx context.Context, tb testing.TB, c goredis.UniversalClient, prefix string, s *peerSetup) (time.Duration, int, int64) {
	tb.Helper()
	names := map[string]bool{}
	for _, pq := range s.qs {
		pq.redisKey = map[string]string{}
		for _, n := range append(pq.and[:], pq.excl...) {
			names[n] = true
			pq.redisKey[n] = peerRedisKey(prefix, n)
		}
		pq.tmpEx = audKey(prefix, "tmp:ex:"+pq.q.name)
		pq.tmpDst = audKey(prefix, "tmp:dst:"+pq.q.name)
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	slices.Sort(sorted)
	mem0 := audRedisMem(ctx, tb, c)
	start := time.Now()
	bits := 0
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
	maxNum := slices.Max(s.d.nums)
	for _, n := range sorted {
		key := peerRedisKey(prefix, n)
		// Every bitmap spans the whole number range (a clear bit at the
		// largest number), as a backend sizing its bitmaps to its users
		// would: BITOP NOT only complements the bytes a string has.
		pipe.SetBit(ctx, key, int64(maxNum), 0)
		queued++
		for _, num := range s.d.sets[n] {
			pipe.SetBit(ctx, key, int64(num), 1)
			bits++
			if queued++; queued == peerSETBITs {
				flush()
			}
		}
	}
	flush()
	took := time.Since(start)
	return took, bits, audRedisMem(ctx, tb, c) - mem0
}

// redisBitmapCount is the Redis-bitmap peer: q's count computed inside
// Redis in one pipeline (one round trip). Redis 7 has no BITOP ANDNOT
// (DIFF came in 8.2), so the exclusions are ORed into a scratch key,
// complemented with BITOP NOT, ANDed with the two tags, and the result
// counted. The scratch keys are overwritten by the next query and deleted
// with the prefix. (The alternative without NOT, BITCOUNT(A AND B) minus
// BITCOUNT(A AND B AND excluded), needs one more BITOP and BITCOUNT and was
// slower: see redisBitmapCountSub.)
func redisBitmapCount(ctx context.Context, c goredis.UniversalClient, pq *peerQuery) (int64, error) {
	ex := make([]string, len(pq.excl))
	for i, n := range pq.excl {
		ex[i] = pq.redisKey[n]
	}
	pipe := c.Pipeline()
	pipe.BitOpOr(ctx, pq.tmpEx, ex...)
	pipe.BitOpNot(ctx, pq.tmpEx, pq.tmpEx)
	pipe.BitOpAnd(ctx, pq.tmpDst, pq.redisKey[pq.and[0]], pq.redisKey[pq.and[1]], pq.tmpEx)
	cnt := pipe.BitCount(ctx, pq.tmpDst, nil)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	return cnt.Val(), nil
}

// redisBitmapCountSub is the other correct Redis 7 sequence, without a
// complement: |A & B| - |A & B & (excluded)|.
func redisBitmapCountSub(ctx context.Context, c goredis.UniversalClient, pq *peerQuery) (int64, error) {
	ex := make([]string, len(pq.excl))
	for i, n := range pq.excl {
		ex[i] = pq.redisKey[n]
	}
	pipe := c.Pipeline()
	pipe.BitOpAnd(ctx, pq.tmpDst, pq.redisKey[pq.and[0]], pq.redisKey[pq.and[1]])
	pipe.BitOpOr(ctx, pq.tmpEx, ex...)
	pipe.BitOpAnd(ctx, pq.tmpEx, pq.tmpEx, pq.tmpDst)
	all := pipe.BitCount(ctx, pq.tmpDst, nil)
	out := pipe.BitCount(ctx, pq.tmpEx, nil)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	return all.Val() - out.Val(), nil
}

// redisCmdUsec returns the total microseconds Redis spent in BITOP and
// BITCOUNT (INFO commandstats) and their calls.
func redisCmdUsec(ctx context.Context, c goredis.UniversalClient) (usec, calls int64, err error) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":")
		if !ok || (name != "cmdstat_bitop" && name != "cmdstat_bitcount") {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(f, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "usec":
				usec += n
			case "calls":
				calls += n
			}
		}
	}
	return usec, calls, nil
}

// peerCounts returns q's count by recguard, the Redis bitmaps and raw
// roaring, and fails tb unless they equal each other and the brute force.
func peerCounts(ctx context.Context, tb testing.TB, c goredis.UniversalClient, s *peerSetup, pq *peerQuery) uint64 {
	tb.Helper()
	q := pq.q
	got, err := s.d.x.Count(q.seg, q.channel, true)
	if err != nil {
		tb.Fatal(err)
	}
	rc, err := redisBitmapCount(ctx, c, pq)
	if err != nil {
		tb.Fatal(err)
	}
	rs, err := redisBitmapCountSub(ctx, c, pq)
	if err != nil {
		tb.Fatal(err)
	}
	raw := rawCount(pq)
	want := s.d.want[q.name]
	if want == 0 {
		tb.Errorf("%s: empty audience: the comparison proves nothing", q.name)
	}
	if got != want || uint64(rc) != want || uint64(rs) != want || raw != want {
		tb.Fatalf("%s: recguard %d, redis bitmaps %d (sub %d), raw roaring %d, brute force %d", q.name, got, rc, rs, raw, want)
	}
	tb.Logf("%s: %s on %s, targeted: tags of %d and %d users; audience %d (recguard = redis bitmaps = raw roaring = brute force)",
		q.name, q.seg, q.channel, len(s.d.sets[pq.and[0]]), len(s.d.sets[pq.and[1]]), got)
	return got
}

// peerPages fails tb unless the first page of q's audience is the same
// users for recguard (IDs, mapped to numbers), the Redis bitmaps and raw
// roaring.
func peerPages(ctx context.Context, tb testing.TB, c goredis.UniversalClient, s *peerSetup, pq *peerQuery) {
	tb.Helper()
	q := pq.q
	a, err := s.d.x.Audience(q.seg, q.channel, true)
	if err != nil {
		tb.Fatal(err)
	}
	ids, _ := a.Page(0, audPage)
	got := make([]uint32, len(ids))
	for k, id := range ids {
		i, err := strconv.Atoi(strings.TrimPrefix(id, "user"))
		if err != nil {
			tb.Fatalf("page has %q", id)
		}
		got[k] = s.d.nums[i]
	}
	rd, err := redisBitmapPage(ctx, c, pq, nil)
	if err != nil {
		tb.Fatal(err)
	}
	raw := make([]uint32, audPage)
	raw = raw[:rawPage(pq, raw)]
	if !slices.Equal(got, rd) || !slices.Equal(got, raw) || len(got) != min(audPage, int(s.d.want[q.name])) {
		tb.Fatalf("%s: first pages differ: recguard %d users, redis bitmaps %d, raw roaring %d (audience %d)", q.name, len(got), len(rd), len(raw), s.d.want[q.name])
	}
}

// recordResult stores a result measured outside testing.B (see measure).
func recordResult(group, name string, nsPerOp float64, baseline bool) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if results[group] == nil {
		results[group] = map[string]result{}
	}
	results[group][name] = result{nsPerOp: nsPerOp}
	if baseline {
		baselines[group] = name
	}
}

var (
	peers10MOnce sync.Once
	peers10MData *audData
)

// BenchmarkAudiencePeers10M times one audience count per query class on
// the 10M-user population: recguard against Redis bitmaps and the
// raw-roaring limit (see the top of this file). The population size can
// be lowered with RECGUARD_PEERS_USERS (for a machine that cannot build
// 10M users in time); the groups are then named after the size.
func BenchmarkAudiencePeers10M(b *testing.B) {
	ctx := context.Background()
	n := peers10M
	if v, err := strconv.Atoi(os.Getenv("RECGUARD_PEERS_USERS")); err == nil && v > 0 {
		n = v
	}
	size := peerSize(n)
	peers10MOnce.Do(func() {
		t := time.Now()
		peers10MData = buildAudData(n, peerQueries(size))
		fmt.Printf("peers %s: population built in %.1fs\n", size, time.Since(t).Seconds())
	})
	d := peers10MData
	if d == nil {
		b.Fatal("population not built (an earlier build failed)")
	}
	s := newPeerSetup(d)
	c := audRedisClient(b)
	prefix := redistest.Prefix(b, c)
	took, bits, mem := loadPeerBitmaps(ctx, b, c, prefix, s)
	b.Logf("Redis bitmaps: %d bits set with pipelined SETBIT in %.1fs (%.0f/s), Redis memory +%.1f MB",
		bits, took.Seconds(), float64(bits)/took.Seconds(), float64(mem)/1e6)
	for _, pq := range s.qs {
		peerLayout(pq)
		peerCounts(ctx, b, c, s, pq)
		peerPages(ctx, b, c, s, pq)
	}
	ds := d.x.DerivedStats()
	fmt.Printf("derived bitmaps after the checks: %+v (%.0f dense bytes per million users per dense form)\n",
		ds, float64(ds.DenseBytes)/float64(max(ds.Dense, 1))/(float64(n)/1e6))
	for _, pq := range s.qs {
		q := pq.q
		g := "peers_" + size + "_" + pq.class
		b.Run(pq.class+"/recguard", func(b *testing.B) {
			measure(b, g+"_vs_redis", "recguard", false)
			measure(b, g+"_vs_raw", "recguard", false)
			measure(b, g+"_vs_redis_server", "recguard", false)
			for b.Loop() {
				if _, err := d.x.Count(q.seg, q.channel, true); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(pq.class+"/redis_bitmaps", func(b *testing.B) {
			measure(b, g+"_vs_redis", "redis_bitmaps", true)
			u0, c0, err := redisCmdUsec(ctx, c)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := redisBitmapCount(ctx, c, pq); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			u1, c1, err := redisCmdUsec(ctx, c)
			if err != nil {
				b.Fatal(err)
			}
			// Four commands (3 BITOP, 1 BITCOUNT) per query; more calls
			// than that mean another client ran some meanwhile.
			if b.N > 0 {
				perOp := float64(u1-u0) * 1e3 / float64(b.N)
				b.ReportMetric(perOp, "redis_server_ns/op")
				b.ReportMetric(float64(c1-c0)/float64(b.N), "redis_cmds/op")
				recordResult(g+"_vs_redis_server", "redis_server", perOp, true)
			}
		})
		b.Run(pq.class+"/redis_bitmaps_sub", func(b *testing.B) {
			measure(b, g+"_redis_variants", "redis_bitmaps_sub", false)
			for b.Loop() {
				if _, err := redisBitmapCountSub(ctx, c, pq); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(pq.class+"/raw_roaring", func(b *testing.B) {
			measure(b, g+"_vs_raw", "raw_roaring", true)
			for b.Loop() {
				rawCount(pq)
			}
		})
		// The count right after a change was applied (one event per op:
		// a user's personalization off flipped, so the derived bitmaps
		// are updated between counts), and right after a settings change
		// (a new settings version: the derived bitmaps are built again).
		b.Run(pq.class+"/recguard_after_change", func(b *testing.B) {
			measure(b, g+"_vs_redis", "recguard_after_change", false)
			ch := newPeerChanger(d)
			for b.Loop() {
				ch.flip()
				if _, err := d.x.Count(q.seg, q.channel, true); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			ch.restore()
		})
		b.Run(pq.class+"/recguard_after_settings", func(b *testing.B) {
			measure(b, g+"_vs_redis", "recguard_after_settings", false)
			for b.Loop() {
				peerBumpSettings(d)
				if _, err := d.x.Count(q.seg, q.channel, true); err != nil {
					b.Fatal(err)
				}
			}
		})
		// A page of 10,000 from a fresh audience.
		pg := "page_" + size + "_" + pq.class
		b.Run(pq.class+"/page/recguard", func(b *testing.B) {
			measure(b, pg+"_vs_redis", "recguard", false)
			measure(b, pg+"_vs_raw", "recguard", false)
			for b.Loop() {
				a, err := d.x.Audience(q.seg, q.channel, true)
				if err != nil {
					b.Fatal(err)
				}
				a.Page(0, audPage)
			}
		})
		b.Run(pq.class+"/page/redis_bitmaps", func(b *testing.B) {
			measure(b, pg+"_vs_redis", "redis_bitmaps", true)
			buf := make([]uint32, 0, audPage)
			for b.Loop() {
				if _, err := redisBitmapPage(ctx, c, pq, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(pq.class+"/page/raw_roaring", func(b *testing.B) {
			measure(b, pg+"_vs_raw", "raw_roaring", true)
			buf := make([]uint32, audPage)
			for b.Loop() {
				rawPage(pq, buf)
			}
		})
	}
	for _, pq := range s.qs {
		peerCounts(ctx, b, c, s, pq) // the changes were undone
	}
}

// peerChanger flips personalization off of users of a population and
// undoes it.
type peerChanger struct {
	d    *audData
	g    *audGen
	recs map[int]*consent.Record // user -> current record
	k    int
	pos  uint64
}

var peerPos atomic.Uint64 // changelog positions of the benchmark's events

func newPeerChanger(d *audData) *peerChanger {
	return &peerChanger{d: d, g: newAudGen(), recs: map[int]*consent.Record{}}
}

func (p *peerChanger) current(i int) *consent.Record {
	if r := p.recs[i]; r != nil {
		return r
	}
	r := new(consent.Record)
	p.g.user(i, r)
	r.Number = p.d.nums[i]
	r.Tags.Entries = slices.Clone(r.Tags.Entries)
	p.recs[i] = r
	return r
}

func (p *peerChanger) apply(i int, edit func(*consent.Record)) {
	prev := p.current(i)
	next := *prev
	next.Version++
	edit(&next)
	log, _ := store.NumberShard(next.Number, audShards)
	pos := store.Position("9-" + strconv.FormatUint(peerPos.Add(1), 10))
	p.d.x.Apply(store.Event{Log: log, Pos: pos, Record: &next, Prev: prev})
	p.recs[i] = &next
}

// flip flips personalization off of the next of 1,000 users.
func (p *peerChanger) flip() {
	i := (p.k % 1000) * 7919 % p.d.n
	p.k++
	p.apply(i, func(r *consent.Record) { r.State.PersonalizationOff = !r.State.PersonalizationOff })
}

// restore gives every user flipped their generated state back.
func (p *peerChanger) restore() {
	var orig consent.Record
	for i, r := range p.recs {
		p.g.user(i, &orig)
		if r.State.PersonalizationOff != orig.State.PersonalizationOff {
			p.apply(i, func(r *consent.Record) { r.State.PersonalizationOff = orig.State.PersonalizationOff })
		}
	}
}

// peerBumpSettings applies the population's settings again under a new
// version (nothing changes but the version).
func peerBumpSettings(d *audData) {
	set := d.x.Settings()
	set.Version++
	d.x.Apply(store.Event{Log: store.SettingsLog, Pos: store.Position("9-" + strconv.FormatUint(peerPos.Add(1), 10)), Settings: &set})
}

// rawPage is the raw-roaring page: the audience as rawCount builds it, and
// its first audPage numbers (the peers hold no ID table; recguard's page
// returns user IDs).
func rawPage(pq *peerQuery, buf []uint32) int {
	r := roaring.FastAnd(pq.andBM[0], pq.andBM[1])
	for _, e := range pq.exclBM {
		r.AndNot(e)
	}
	return r.ManyIterator().NextMany(buf)
}

// redisBitmapPage is the Redis-bitmap page: the audience computed into a
// scratch key as redisBitmapCount does (one pipeline), then read back 256
// KB at a time with GETRANGE (a round trip each) until audPage numbers are
// found; the numbers are decoded into buf.
func redisBitmapPage(ctx context.Context, c goredis.UniversalClient, pq *peerQuery, buf []uint32) ([]uint32, error) {
	ex := make([]string, len(pq.excl))
	for i, n := range pq.excl {
		ex[i] = pq.redisKey[n]
	}
	const chunk = 256 << 10
	pipe := c.Pipeline()
	pipe.BitOpOr(ctx, pq.tmpEx, ex...)
	pipe.BitOpNot(ctx, pq.tmpEx, pq.tmpEx)
	pipe.BitOpAnd(ctx, pq.tmpDst, pq.redisKey[pq.and[0]], pq.redisKey[pq.and[1]], pq.tmpEx)
	first := pipe.GetRange(ctx, pq.tmpDst, 0, chunk-1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	buf = buf[:0]
	data, off := first.Val(), 0
	for {
		for i := 0; i < len(data) && len(buf) < audPage; i++ {
			// Redis bit 0 is a byte's highest.
			for by := data[i]; by != 0 && len(buf) < audPage; {
				lz := bits.LeadingZeros8(by)
				buf = append(buf, uint32((off+i)*8+lz))
				by &^= 0x80 >> lz
			}
		}
		if len(buf) >= audPage || len(data) < chunk {
			break
		}
		off += chunk
		var err error
		if data, err = c.GetRange(ctx, pq.tmpDst, int64(off), int64(off+chunk-1)).Result(); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// peerSize names a population size: 10M, 2M, 200k.
func peerSize(n int) string {
	switch {
	case n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n%1_000 == 0:
		return strconv.Itoa(n/1_000) + "k"
	}
	return strconv.Itoa(n)
}

// peerTime returns the median time of one call of f over rounds rounds of
// at least minDur each (f called repeatedly in a round).
func peerTime(f func(), rounds int, minDur time.Duration) time.Duration {
	per := make([]time.Duration, 0, rounds)
	for range rounds {
		start, k := time.Now(), 0
		for time.Since(start) < minDur {
			f()
			k++
		}
		per = append(per, time.Since(start)/time.Duration(k))
	}
	sort.Slice(per, func(i, j int) bool { return per[i] < per[j] })
	return per[len(per)/2]
}

// TestAudiencePeersSmall is BenchmarkAudiencePeers10M's small version: on
// 200k users (50k under -race) the three counts agree with each other and
// with the brute force, so do the first pages, a count allocates fewer than
// 50 times, the counts stay right through changes and a settings bump, and,
// without the race detector, the times stay in loose bounds: recguard no
// more than 3x raw roaring's time and no slower than the Redis bitmaps'
// (round trip included) per query (measured at 200k: 0.1-0.3x raw,
// 0.01-0.08x Redis).
func TestAudiencePeersSmall(t *testing.T) {
	ctx := context.Background()
	n := peersSmall
	if raceEnabled {
		n = peersSmallRc
	}
	d := buildAudData(n, peerQueries(peerSize(n)))
	s := newPeerSetup(d)
	c := audRedisClient(t)
	prefix := redistest.Prefix(t, c)
	took, bits, _ := loadPeerBitmaps(ctx, t, c, prefix, s)
	t.Logf("%d users: index built in %v; %d Redis bits set in %v", n, d.build.Round(time.Millisecond), bits, took.Round(time.Millisecond))
	for _, pq := range s.qs {
		peerCounts(ctx, t, c, s, pq)
		peerPages(ctx, t, c, s, pq)
		q := pq.q
		if allocs := testing.AllocsPerRun(20, func() { d.x.Count(q.seg, q.channel, true) }); allocs >= 50 {
			t.Errorf("%s: %.0f allocations per count, want < 50", pq.class, allocs)
		}
	}
	// Counts stay right through changes and settings bumps (the derived
	// bitmaps kept current, then rebuilt), and after the changes are
	// undone.
	ch := newPeerChanger(d)
	for range 50 {
		ch.flip()
	}
	peerBumpSettings(d)
	ch.restore()
	for _, pq := range s.qs {
		peerCounts(ctx, t, c, s, pq)
	}
	if raceEnabled {
		t.Log("race detector on: timings not checked")
		return
	}
	for _, pq := range s.qs {
		q := pq.q
		var err error
		rg := peerTime(func() {
			if _, e := d.x.Count(q.seg, q.channel, true); e != nil {
				err = e
			}
		}, 5, 20*time.Millisecond)
		rd := peerTime(func() {
			if _, e := redisBitmapCount(ctx, c, pq); e != nil {
				err = e
			}
		}, 5, 20*time.Millisecond)
		raw := peerTime(func() { rawCount(pq) }, 5, 20*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(20, func() { d.x.Count(q.seg, q.channel, true) })
		t.Logf("%s: recguard %v (%.0f allocs), redis bitmaps %v, raw roaring %v: recguard/redis %.2f, recguard/raw %.2f",
			pq.class, rg, allocs, rd, raw, float64(rg)/float64(rd), float64(rg)/float64(raw))
		if rg > 3*raw {
			t.Errorf("%s: recguard %v, more than 3x raw roaring's %v", pq.class, rg, raw)
		}
		if rg > rd {
			t.Errorf("%s: recguard %v, slower than the Redis bitmaps' %v", pq.class, rg, rd)
		}
	}
}
