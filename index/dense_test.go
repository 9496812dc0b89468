package index

// Two-fact counts (countPair) by every path: roaring's count, the
// word-by-word count of two dense forms and the dense probe, on a
// population large enough for roaring to hold tags as arrays and as
// bitmap containers, through writes (new users past the dense forms' end,
// a user numbered far beyond them, erasures, opt-outs), a settings change
// and a checkpoint replay: every count equals the consent model's.

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

// dpTags are the tags of the population and the share of users holding
// each: big and mid are bitmap containers, small and sparse arrays dense
// enough for dense forms (denseRatio), tiny and tiny2 arrays too sparse
// for one.
var dpTags = []struct {
	tag tags.Tag
	p   float64
}{
	{"interest:big", 0.5}, {"interest:mid", 0.12}, {"interest:small", 0.03},
	{"interest:sparse", 0.008}, {"interest:tiny", 0.001}, {"interest:tiny2", 0.0015},
}

// dpPairs are the counted pairs and the path countPair takes for each on
// the loaded population (targeted, on sms).
var dpPairs = []struct {
	a, b string
	how  int
}{
	{"interest:big", "interest:mid", pairRoaring},    // bitmap containers both
	{"interest:small", "interest:mid", pairWords},    // arrays against bitmaps, many values
	{"interest:tiny", "interest:mid", pairRoaring},   // arrays against bitmaps, few values
	{"interest:sparse", "interest:tiny", pairProbe},  // arrays both, one dense form
	{"interest:tiny2", "interest:tiny", pairRoaring}, // arrays both, no dense form
	{"interest:sparse", "interest:small", pairProbe}, // arrays both
}

type dpModel struct {
	x    *Index
	set  consent.Settings
	recs map[uint32]*consent.Record
	r    *rand.Rand
	pos  int
}

func (m *dpModel) random(s, local int, ver uint64) *consent.Record {
	r := m.r
	rec := &consent.Record{UserID: idOf(s, local), Number: store.UserNumber(s, local, testShards), Version: ver}
	if r.IntN(100) == 0 {
		rec.State.Erased = true
		return rec
	}
	st := &rec.State
	st.PersonalizationOff = r.IntN(10) == 0
	if r.IntN(20) == 0 {
		st.RefusedChannels = []string{"sms"}
	}
	if r.IntN(50) == 0 {
		st.Minor = true
		if r.IntN(2) == 0 {
			st.Guardian = &consent.Grant{Granted: true, Purpose: consent.PurposeGuardian, PolicyVersion: 1, ByGuardian: true}
		}
	}
	for _, t := range dpTags {
		if r.Float64() < t.p {
			rec.Tags.Entries = append(rec.Tags.Entries, tags.Entry{Tag: t.tag, Source: tags.Declared})
		}
	}
	slices.SortFunc(rec.Tags.Entries, func(a, b tags.Entry) int {
		if a.Tag < b.Tag {
			return -1
		}
		if a.Tag > b.Tag {
			return 1
		}
		return 0
	})
	return rec
}

// change applies a new random record to the user numbered num (a new user
// when there is none).
func (m *dpModel) change(num uint32, rec *consent.Record) {
	m.pos++
	s, _ := store.NumberShard(num, testShards)
	m.x.Apply(store.Event{Log: s, Pos: store.Position("1-" + strconv.Itoa(m.pos)), Record: rec, Prev: m.recs[num]})
	m.recs[num] = rec
}

// check fails t unless every pair's count (targeted on sms, untargeted on
// email) equals the model's and Audience's, and the derived bitmaps their
// fresh builds. It returns the paths the targeted sms counts took.
func (m *dpModel) check(t *testing.T, what string) []int {
	t.Helper()
	var hows []int
	for _, p := range dpPairs {
		for _, q := range []struct {
			expr, ch string
			targeted bool
		}{
			{p.a + " & " + p.b + " & !consent:personalization_off", "sms", true},
			{p.b + " & " + p.a, "email", false},
		} {
			seg := tags.MustParseSegment(q.expr)
			var want uint64
			for _, rec := range m.recs {
				if consent.InPushAudience(seg, rec, &m.set, q.ch, q.targeted) {
					want++
				}
			}
			before := m.x.dcount.pairs
			n, err := m.x.Count(seg, q.ch, q.targeted)
			if err != nil {
				t.Fatal(err)
			}
			a, err := m.x.Audience(seg, q.ch, q.targeted)
			if err != nil {
				t.Fatal(err)
			}
			if n != want || a.Count() != want {
				t.Fatalf("after %s: %s on %s: count %d, audience %d; the model says %d", what, q.expr, q.ch, n, a.Count(), want)
			}
			if q.targeted {
				how := -1
				for i := range before {
					if m.x.dcount.pairs[i] == before[i]+1 {
						how = i
					}
				}
				hows = append(hows, how)
			}
		}
	}
	checkDerived(t, m.x, what)
	return hows
}

func TestCountPairPaths(t *testing.T) {
	const users = 140_000 // numbers 1..140,000: three roaring chunks
	set := consent.DefaultSettings()
	set.Version = 1
	m := &dpModel{x: New(testShards, set), set: set, recs: map[uint32]*consent.Record{}, r: rand.New(rand.NewPCG(16, 1))}
	for i := range users {
		rec := m.random(i%testShards, i/testShards+1, 1)
		m.x.Load(rec)
		m.recs[rec.Number] = rec
	}
	hows := m.check(t, "load")
	for i, p := range dpPairs {
		if hows[i] != p.how {
			t.Errorf("%s & %s counted by path %d, want %d", p.a, p.b, hows[i], p.how)
		}
	}
	if st := m.x.DerivedStats(); st.Dense == 0 || st.DenseBytes < uint64(users/8) {
		t.Fatalf("no dense forms after the counts: %+v", st)
	}

	// Changes to known users (tags, opt-outs, erasures), and new users
	// past the largest number (the dense forms grow into their slack).
	nums := make([]uint32, 0, len(m.recs))
	for n := range m.recs {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	for range 3000 {
		num := nums[m.r.IntN(len(nums))]
		s, local := store.NumberShard(num, testShards)
		m.change(num, m.random(s, local, m.recs[num].Version+1))
	}
	for i := range 400 {
		k := users + i
		rec := m.random(k%testShards, k/testShards+1, 1)
		rec.Tags.Entries = append(rec.Tags.Entries[:0], tags.Entry{Tag: "interest:small"}, tags.Entry{Tag: "interest:sparse"})
		rec.State = consent.State{}
		m.change(rec.Number, rec)
	}
	m.check(t, "changes and new users")

	// A user numbered far past the dense forms (the index takes numbers up
	// to maxGap past a shard's last): they are dropped and built again.
	builds := m.x.dcount.denseBuilds
	far := m.random(1, users/testShards+maxGap-1000, 1)
	far.Tags.Entries = []tags.Entry{{Tag: "interest:mid"}, {Tag: "interest:small"}, {Tag: "interest:sparse"}} // sorted
	far.State = consent.State{}
	m.change(far.Number, far)
	m.check(t, "a user numbered far away")
	if m.x.dcount.denseBuilds == builds {
		t.Fatal("no dense form was dropped and built again for the user numbered far away")
	}

	// Opt out every user of sparse & small, one by one, counting between.
	seg := tags.MustParseSegment("interest:sparse & interest:small & !consent:personalization_off")
	for _, num := range nums {
		rec := m.recs[num]
		_, sparse := rec.Tags.Has("interest:sparse")
		_, small := rec.Tags.Has("interest:small")
		if !sparse || !small || rec.State.PersonalizationOff {
			continue
		}
		before, _ := m.x.Count(seg, "sms", true)
		next := *rec
		next.Version++
		next.State.PersonalizationOff = true
		m.change(num, &next)
		after, _ := m.x.Count(seg, "sms", true)
		inBefore := consent.InPushAudience(seg, rec, &m.set, "sms", true)
		if inBefore && after != before-1 || !inBefore && after != before {
			t.Fatalf("user %d opted out: count %d -> %d", num, before, after)
		}
	}
	m.check(t, "opt-outs")

	// A settings change drops the derived bitmaps; a checkpoint replayed
	// builds them afresh.
	set = set.Clone()
	set.Version++
	set.Policies[consent.PurposeGuardian]++
	m.pos++
	m.x.Apply(store.Event{Log: store.SettingsLog, Pos: store.Position("1-" + strconv.Itoa(m.pos)), Settings: &set})
	m.set = set
	m.check(t, "settings change")
	data, err := m.x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if m.x, err = Unmarshal(data); err != nil {
		t.Fatal(err)
	}
	m.check(t, "checkpoint replayed")
}

// The dense form's operations against roaring's, on random bitmaps.
func TestDenseOps(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 50 {
		n := 1 + r.IntN(300_000)
		a, b := roaring.New(), roaring.New()
		pa, pb := r.Float64()*0.2, r.Float64()
		for i := range n {
			if r.Float64() < pa {
				a.Add(uint32(i))
			}
			if r.Float64() < pb {
				b.Add(uint32(i))
			}
		}
		if a.IsEmpty() || b.IsEmpty() {
			continue
		}
		da, db := newDense(a), newDense(b)
		want := a.AndCardinality(b)
		if got := andCount(da, db); got != want {
			t.Fatalf("round %d: andCount %d, roaring %d", round, got, want)
		}
		if got := probeCount(db, a); got != want {
			t.Fatalf("round %d: probeCount %d, roaring %d", round, got, want)
		}
		// Sets and clears, past the end too.
		for range 200 {
			v := uint32(r.IntN(n + 70_000))
			if r.IntN(2) == 0 {
				a.Add(v)
				if da = denseSet(da, v); da == nil {
					t.Fatalf("round %d: set %d dropped the form (len %d)", round, v, len(da))
				}
			} else {
				a.Remove(v)
				denseClear(da, v)
			}
		}
		if !roaring.FromDense(da, true).Equals(a) {
			t.Fatalf("round %d: dense form differs after sets and clears", round)
		}
		for v := range uint32(n + 70_000) {
			if denseHas(da, v) != a.Contains(v) {
				t.Fatalf("round %d: denseHas(%d) = %v", round, v, !a.Contains(v))
			}
		}
		if denseSet(da, uint32(2*len(da)+denseSlack)*64) != nil {
			t.Fatalf("round %d: a number far past the end did not drop the form", round)
		}
	}
}

// More dense facts than maxDense: at most maxDense dense forms are kept,
// the least recently used dropped, and every count stays right through
// writes.
func TestDenseBounded(t *testing.T) {
	const users, ntags = 2000, maxDense + 6
	set := consent.DefaultSettings()
	set.Version = 1
	m := &dpModel{x: New(testShards, set), set: set, recs: map[uint32]*consent.Record{}, r: rand.New(rand.NewPCG(5, 6))}
	tag := func(i int) tags.Tag { return tags.Tag("interest:t" + strconv.Itoa(100+i)) }
	random := func(s, local int, ver uint64) *consent.Record {
		rec := &consent.Record{UserID: idOf(s, local), Number: store.UserNumber(s, local, testShards), Version: ver}
		rec.State.PersonalizationOff = m.r.IntN(5) == 0
		for i := range ntags {
			if m.r.IntN(2) == 0 {
				rec.Tags.Entries = append(rec.Tags.Entries, tags.Entry{Tag: tag(i), Source: tags.Declared})
			}
		}
		return rec
	}
	for i := range users {
		rec := random(i%testShards, i/testShards+1, 1)
		m.x.Load(rec)
		m.recs[rec.Number] = rec
	}
	check := func(what string) {
		t.Helper()
		for i := range ntags {
			seg := tags.MustParseSegment(string(tag(i)) + " & " + string(tag((i+1)%ntags)))
			var want uint64
			for _, rec := range m.recs {
				if consent.InPushAudience(seg, rec, &m.set, "push", true) {
					want++
				}
			}
			if n, err := m.x.Count(seg, "push", true); err != nil || n != want {
				t.Fatalf("after %s: %s: count %d (%v), the model says %d", what, seg, n, err, want)
			}
			if st := m.x.DerivedStats(); st.Dense > maxDense {
				t.Fatalf("after %s: %d dense forms, more than %d", what, st.Dense, maxDense)
			}
		}
		checkDerived(t, m.x, what)
	}
	check("load")
	if st := m.x.DerivedStats(); st.Dense != maxDense || m.x.dcount.denseBuilds <= maxDense {
		t.Fatalf("%+v after %d dense builds: want %d dense forms kept and some dropped", st, m.x.dcount.denseBuilds, maxDense)
	}
	for round := range 5 {
		for range 200 {
			num := uint32(1 + m.r.IntN(users))
			s, local := store.NumberShard(num, testShards)
			m.change(num, random(s, local, m.recs[num].Version+1))
		}
		check("round " + strconv.Itoa(round))
	}
}
