package index

// Clears collected within one write (clear.go) against the rules: a batch
// of changelog events must leave the index exactly as the same events
// applied one at a time, whatever the batch mixes for one user (erase then
// redeclare, a reset then a diff, shredded then erased, unknown then
// known again), and no reader may ever observe a number still to be
// cleared: an erased user is in no bitmap but "all" and "erased", counted
// in no audience, paged in none, at every point a reader can see.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

// checkNoLeftovers fails t unless, as a reader sees it, x holds no pending
// clear, every erased number is in no bitmap but "all" and "erased" and
// has no ID, and every unknown number is in no fact's bitmap.
func checkNoLeftovers(t testing.TB, x *Index, what string) {
	t.Helper()
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.clr.n != 0 || len(x.clr.adds) != 0 {
		t.Errorf("after %s: %d clears and %d adds pending outside a write", what, x.clr.n, len(x.clr.adds))
		return
	}
	erased := x.get(factErased)
	for k, b := range x.bm {
		switch k {
		case factAll, factErased:
			continue
		case factUnknown:
			if b.Intersects(erased) {
				t.Errorf("after %s: erased numbers among the unknown users", what)
			}
			continue
		}
		if b.Intersects(erased) {
			t.Errorf("after %s: erased numbers %v still hold fact %q", what, roaringAnd(b, erased), k)
			return
		}
		if b.Intersects(x.unk) {
			t.Errorf("after %s: unknown numbers %v still hold fact %q", what, roaringAnd(b, x.unk), k)
			return
		}
	}
	it := erased.Iterator()
	for it.HasNext() {
		if n := it.Next(); x.userID(n) != "" {
			t.Errorf("after %s: erased number %d keeps ID %q", what, n, x.userID(n))
			return
		}
	}
}

func roaringAnd(a, b interface{ ToArray() []uint32 }) []uint32 {
	bs := map[uint32]bool{}
	for _, n := range b.ToArray() {
		bs[n] = true
	}
	var out []uint32
	for _, n := range a.ToArray() {
		if bs[n] {
			out = append(out, n)
		}
	}
	return out
}

// batchGen produces changelog events for a dvModel, updating the model
// (not the index) as each is produced.
type batchGen struct {
	m         *dvModel
	wrongPrev bool // also events whose "before" is not what the index holds
}

// event returns one random event about num (or, rarely, a settings
// change) and what it is.
func (g batchGen) event(num uint32) (store.Event, string) {
	m := g.m
	r := m.r
	cur := m.recs[num]
	s, local := store.NumberShard(num, testShards)
	next := func() *consent.Record { return m.random(s, local, cur.Version+1) }
	known := func(rec *consent.Record) { m.recs[num], m.unknown[num] = rec, false }
	switch x := r.IntN(100); {
	case x < 30: // a change with its "before" (diffed, or reset when either is withheld)
		rec := next()
		known(rec)
		return store.Event{Log: s, Pos: m.pos(s), Record: rec, Prev: cur}, "change"
	case x < 38: // personalization off flipped: a diff of one fact
		rec := *cur
		rec.Version++
		rec.State.PersonalizationOff = !rec.State.PersonalizationOff
		known(&rec)
		return store.Event{Log: s, Pos: m.pos(s), Record: &rec, Prev: cur}, "flip off"
	case x < 55: // erasure: the tombstone, no "before"
		rec := tombstone(cur, cur.Version+1)
		known(rec)
		return store.Event{Log: s, Pos: m.pos(s), Record: rec}, "erase"
	case x < 68: // the user's own change after an erasure, or a redeclaration
		rec := next()
		rec.State.Erased = false
		if len(rec.Tags.Entries) == 0 {
			rec.Tags.Entries = []tags.Entry{{Tag: dvTags[r.IntN(len(dvTags))], Source: tags.Declared}}
		}
		known(rec)
		return store.Event{Log: s, Pos: m.pos(s), Record: rec, Prev: cur}, "redeclare"
	case x < 74: // a shredded change: unknown until a whole record comes
		m.unknown[num] = true
		return store.Event{Log: s, Pos: m.pos(s), Record: shred(cur, cur.Version+1), Shredded: true}, "shredded"
	case x < 78: // an unreadable entry
		m.unknown[num] = true
		return store.Event{Log: s, Pos: m.pos(s), Prev: cur}, "unreadable"
	case x < 90: // a change without its "before": a reset
		rec := next()
		known(rec)
		return store.Event{Log: s, Pos: m.pos(s), Record: rec}, "change without prev"
	case x < 93 && g.wrongPrev: // a record with a "before" the index does not hold
		rec := next()
		prev := m.random(s, local, cur.Version)
		known(rec)
		return store.Event{Log: s, Pos: m.pos(s), Record: rec, Prev: prev}, "change with a wrong prev"
	}
	set := m.set.Clone()
	set.Version++
	set.Policies[consent.PurposeGuardian]++
	m.set = set
	return store.Event{Log: store.SettingsLog, Pos: m.pos(store.SettingsLog), Settings: &set}, "guardian policy bump"
}

// Batches of random events, few users each so one user gets several events
// in one batch, applied in one Apply to one index and one by one to
// another: the two are Equal after every batch, both match the model, and
// no reader-visible point holds a pending clear.
func TestClearBatchesEqualOneByOne(t *testing.T) {
	rounds := 150
	if testing.Short() {
		rounds = 40
	}
	defer func(n int) { intersectMin = n }(intersectMin)
	for seed := uint64(1); seed <= 4; seed++ {
		// Seeds 2 and 4 find the numbers to clear by intersection.
		intersectMin = 256
		if seed%2 == 0 {
			intersectMin = 1
		}
		m := newDVModel(t, seed, 60)
		y := New(testShards, m.set)
		for _, rec := range m.recs {
			y.Load(rec)
		}
		if !m.x.Equal(y) {
			t.Fatal("the two indexes differ after loading the same records")
		}
		m.check(t, "load") // derived bitmaps warm from here on
		// Seeds 3 and 4 also send changes whose "before" is not what the
		// index holds: the index diffs against it (it trusts the
		// changelog), so the model cannot be checked after one; the batch
		// must still equal the events one by one, and an erased user
		// still keep no other fact (a user the index holds erased or
		// restricted is never diffed).
		g := batchGen{m: m, wrongPrev: seed > 2}
		nums := make([]uint32, 0, len(m.recs))
		for n := range m.recs {
			nums = append(nums, n)
		}
		slices.Sort(nums)
		modelOK := true
		for round := range rounds {
			few := nums[m.r.IntN(len(nums)-4):][:4] // the batch's users
			var evs []store.Event
			var kinds []string
			for range 1 + m.r.IntN(24) {
				ev, kind := g.event(few[m.r.IntN(len(few))])
				evs, kinds = append(evs, ev), append(kinds, kind)
				modelOK = modelOK && kind != "change with a wrong prev"
			}
			for _, ev := range evs {
				y.Apply(ev)
			}
			m.x.Apply(evs...)
			what := fmt.Sprintf("seed %d round %d: %v", seed, round, kinds)
			if !m.x.Equal(y) {
				t.Fatalf("%s: the batch left another index than the same events one by one", what)
			}
			if m.x.Unknown() != y.Unknown() {
				t.Fatalf("%s: %d unknown users, one by one %d", what, m.x.Unknown(), y.Unknown())
			}
			checkNoLeftovers(t, m.x, what)
			if modelOK {
				m.check(t, what)
			} else {
				checkDerived(t, m.x, what)
			}
			if m.r.IntN(8) == 0 { // a reader finds a record corrupt, between batches
				id := m.recs[few[0]].UserID
				if !m.recs[few[0]].State.Erased {
					m.x.MarkUnknown(id)
					y.MarkUnknown(id)
					m.unknown[few[0]] = true
				}
			}
		}
		// A checkpoint of the batched index is the one-by-one index's.
		a, err := m.x.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		b, err := y.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("seed %d: checkpoints differ", seed)
		}
	}
}

// One batch: a user erased then redeclared, one redeclared then erased, one
// reset then diffed (a fact removed by the diff must not come back with
// the reset's facts), one shredded then erased, one made unknown then known
// again, one restricted then lifted, and one erased twice: each ends with
// exactly the facts of their last event, as one by one.
func TestClearEraseThenRedeclareInOneBatch(t *testing.T) {
	set := consent.DefaultSettings()
	x, y := New(testShards, set), New(testShards, set)
	var recs []*consent.Record
	for i := range 8 {
		r := richUser(i%testShards, i/testShards+1, 1, i%2 == 0)
		r.Tags.Entries = append(r.Tags.Entries, tags.Entry{Tag: "interest:golf", Source: tags.Declared})
		slices.SortFunc(r.Tags.Entries, func(a, b tags.Entry) int { return cmpTag(a.Tag, b.Tag) })
		recs = append(recs, r)
		x.Load(r)
		y.Load(r)
	}
	// Warm derived bitmaps, so unlock updates them from the facts.
	if _, err := x.Count(tags.MustParseSegment("interest:ski & interest:golf"), "push", true); err != nil {
		t.Fatal(err)
	}
	seq := map[int]int{}
	ev := func(rec, prev *consent.Record, shredded bool) store.Event {
		src := rec
		if src == nil {
			src = prev
		}
		num := src.Number
		s, _ := store.NumberShard(num, testShards)
		seq[s]++
		return store.Event{Log: s, Pos: store.Position("1-" + strconv.Itoa(seq[s])), Record: rec, Prev: prev, Shredded: shredded}
	}
	only := func(r *consent.Record, ver uint64, tg ...tags.Tag) *consent.Record {
		c := &consent.Record{UserID: r.UserID, Number: r.Number, Version: ver}
		for _, t := range tg {
			c.Tags.Entries = append(c.Tags.Entries, tags.Entry{Tag: t, Source: tags.Declared})
		}
		return c
	}
	u0, u1, u2, u3, u4, u5, u6 := recs[0], recs[1], recs[2], recs[3], recs[4], recs[5], recs[6]
	t0 := tombstone(u0, 2)
	back0 := only(u0, 3, "interest:chess")
	re1 := only(u1, 2, "interest:chess", "interest:ski")
	t1 := tombstone(u1, 3)
	reset2 := only(u2, 2, "interest:chess", "interest:ski") // no "before": a reset
	diff2 := only(u2, 3, "interest:ski")                    // chess removed by a diff
	t3 := tombstone(u3, 3)
	t5 := tombstone(u5, 2)
	back5 := only(u5, 3, "interest:golf")
	lift6 := restricted(u6, 3, false)
	evs := []store.Event{
		ev(t0, nil, false), ev(back0, t0, false),
		ev(re1, u1, false), ev(t1, nil, false),
		ev(reset2, nil, false), ev(diff2, reset2, false),
		ev(shred(u3, 2), nil, true), ev(t3, nil, false),
		ev(nil, u4, false), ev(only(u4, 3, "interest:ski"), nil, false),
		ev(t5, nil, false), ev(t5, nil, false), ev(back5, t5, false),
		ev(restricted(u6, 2, true), u6, false), ev(lift6, restricted(u6, 2, true), false),
	}
	for _, e := range evs {
		y.Apply(e)
	}
	x.Apply(evs...)
	if !x.Equal(y) {
		t.Fatal("the batch left another index than the same events one by one")
	}
	checkNoLeftovers(t, x, "the batch")
	checkDerived(t, x, "the batch")
	want := map[*consent.Record]*consent.Record{u0: back0, u1: t1, u2: diff2, u3: t3, u4: only(u4, 3, "interest:ski"), u5: back5, u6: lift6, recs[7]: recs[7]}
	for r, last := range want {
		got := factsOf(x, r.Number)
		if exp := Facts(last); !slices.Equal(got, exp) {
			t.Errorf("%s: facts %v, want those of their last event %v", r.UserID, got, exp)
		}
		wantID := r.UserID
		if last.State.Erased {
			wantID = ""
		}
		if id := x.UserID(r.Number); id != wantID {
			t.Errorf("%s: ID %q, want %q", r.UserID, id, wantID)
		}
	}
	if n, _ := x.Count(tags.MustParseSegment("consent:personalization_off & interest:golf"), "sms", false); n != 0 {
		t.Errorf("personalization off & golf: %d, want 0 (a personal audience)", n)
	}
	if x.Unknown() != 0 {
		t.Errorf("%d unknown users, want 0", x.Unknown())
	}
	// Through the API: golf is u5 (back) and u7; ski u2, u4, u7; chess
	// u0 (u6, lifted, has personalization off: a tag audience is personal).
	for seg, wantIDs := range map[string][]string{
		"interest:golf":  {u5.UserID, recs[7].UserID},
		"interest:ski":   {u2.UserID, u4.UserID, recs[7].UserID},
		"interest:chess": {u0.UserID},
	} {
		a, err := x.Audience(tags.MustParseSegment(seg), "sms", false)
		if err != nil {
			t.Fatal(err)
		}
		ids, _ := a.Page(0, 100)
		sort.Strings(ids)
		sort.Strings(wantIDs)
		n, _ := x.Count(tags.MustParseSegment(seg), "sms", false)
		if !slices.Equal(ids, wantIDs) || n != uint64(len(wantIDs)) {
			t.Errorf("%s: audience %v (count %d), want %v", seg, ids, n, wantIDs)
		}
	}
}

func cmpTag(a, b tags.Tag) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// manyTags returns n tags, sorted.
func manyTags(n int) []tags.Tag {
	out := make([]tags.Tag, n)
	for i := range out {
		out[i] = tags.Tag(fmt.Sprintf("interest:t%04d", i))
	}
	return out
}

// Users in hundreds of bitmaps each, a third of them erased in one batch
// with changes of others: after it, through every API (counts and pages of
// every tag, UserID, Stats, a checkpoint and its reload), no fact of an
// erased user is left, and the index is the one the events build one by
// one.
func TestClearEraseFromManyBitmaps(t *testing.T) {
	for _, n := range []int{1, 256} {
		t.Run("intersectMin="+strconv.Itoa(n), func(t *testing.T) {
			defer func(n int) { intersectMin = n }(intersectMin)
			intersectMin = n
			testClearEraseFromManyBitmaps(t)
		})
	}
}

func testClearEraseFromManyBitmaps(t *testing.T) {
	const users, perUser = 90, 300
	all := manyTags(400)
	set := consent.DefaultSettings()
	x, y := New(testShards, set), New(testShards, set)
	r := rand.New(rand.NewPCG(3, 4))
	recs := make([]*consent.Record, users)
	for i := range recs {
		rec := richUser(i%testShards, i/testShards+1, 1, false)
		rec.State.Minor = i%3 == 0
		rec.State.Guardian = &consent.Grant{Granted: true, Purpose: consent.PurposeGuardian, PolicyVersion: 1, ByGuardian: true}
		for _, j := range r.Perm(len(all))[:perUser] {
			rec.Tags.Entries = append(rec.Tags.Entries, tags.Entry{Tag: all[j], Source: tags.Inferred})
		}
		slices.SortFunc(rec.Tags.Entries, func(a, b tags.Entry) int { return cmpTag(a.Tag, b.Tag) })
		recs[i] = rec
		x.Load(rec)
		y.Load(rec)
	}
	for _, tg := range all[:5] { // warm derived bitmaps
		if _, err := x.Count(tags.MustParseSegment(string(tg)), "push", true); err != nil {
			t.Fatal(err)
		}
	}
	var evs []store.Event
	erased := map[string]bool{}
	for i, rec := range recs {
		s, _ := store.NumberShard(rec.Number, testShards)
		pos := store.Position("1-" + strconv.Itoa(i+1))
		switch i % 3 {
		case 0:
			evs = append(evs, store.Event{Log: s, Pos: pos, Record: tombstone(rec, 2)})
			erased[rec.UserID] = true
		case 1:
			next := *rec
			next.Version = 2
			next.Tags.Entries = slices.Clone(rec.Tags.Entries[1:])
			evs = append(evs, store.Event{Log: s, Pos: pos, Record: &next, Prev: rec})
			recs[i] = &next
		}
	}
	for _, e := range evs {
		y.Apply(e)
	}
	x.Apply(evs...)
	if !x.Equal(y) {
		t.Fatal("the batch left another index than the same events one by one")
	}
	checkNoLeftovers(t, x, "erasing a third")
	checkDerived(t, x, "erasing a third")
	for _, rec := range recs {
		if erased[rec.UserID] {
			if got := factsOf(x, rec.Number); !slices.Equal(got, []string{factAll, factErased}) {
				t.Fatalf("%s erased: facts %v", rec.UserID, got)
			}
			if id := x.UserID(rec.Number); id != "" {
				t.Fatalf("%s erased: ID %q kept", rec.UserID, id)
			}
		}
	}
	for _, tg := range all {
		seg := tags.MustParseSegment(string(tg))
		var want []string
		for _, rec := range recs {
			if !erased[rec.UserID] && slices.ContainsFunc(rec.Tags.Entries, func(e tags.Entry) bool { return e.Tag == tg }) {
				want = append(want, rec.UserID)
			}
		}
		sort.Strings(want)
		for _, targeted := range []bool{false, true} {
			a, err := x.Audience(seg, "sms", targeted)
			if err != nil {
				t.Fatal(err)
			}
			ids, _ := a.Page(0, 1000)
			sort.Strings(ids)
			n, err := x.Count(seg, "sms", targeted)
			if err != nil {
				t.Fatal(err)
			}
			w := want
			if targeted { // minors' guardian consent is current: no one else is left out
				w = want
			}
			if !slices.Equal(ids, w) || n != uint64(len(w)) {
				t.Fatalf("%s targeted=%v: audience %d %v, count %d; want %d", tg, targeted, len(ids), ids, n, len(w))
			}
		}
	}
	if st := x.Stats(); st.Users != users {
		t.Fatalf("stats: %d users, want %d", st.Users, users)
	}
	data, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for id := range erased {
		if bytes.Contains(data, []byte(id)) {
			t.Fatalf("checkpoint holds erased user %s", id)
		}
	}
	z, err := Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	if !z.Equal(y) || z.Unknown() != 0 {
		t.Fatalf("checkpoint reloaded: equal %v, unknown %d", z.Equal(y), z.Unknown())
	}
}

// Readers racing a writer that replays batches full of erasures (of users
// in a hundred bitmaps each), redeclarations and resets: every count and
// every audience a reader takes is exactly the index's between two batches
// (never one of a batch half done: an erased user counted or paged, a
// reset user's old tags), they never go back, and no reader ever sees a
// pending clear or an erased user's fact.
func TestClearRaceReadersSeeWholeBatches(t *testing.T) {
	const users, batches, perBatch = 200, 60, 40
	all := manyTags(120)
	seg := tags.MustParseSegment(string(all[0]))
	set := consent.DefaultSettings()
	r := rand.New(rand.NewPCG(9, 9))
	base := make([]*consent.Record, users)
	for i := range base {
		rec := user(i%testShards, i/testShards+1, 1, false)
		rec.Tags.Entries = nil
		for _, tg := range all {
			if tg == all[0] || r.IntN(2) == 0 {
				rec.Tags.Entries = append(rec.Tags.Entries, tags.Entry{Tag: tg, Source: tags.Declared})
			}
		}
		base[i] = rec
	}
	// The batches, and the audience of seg after each, by a reference index
	// replayed one event at a time.
	ref := New(testShards, set)
	for _, rec := range base {
		ref.Load(rec)
	}
	audience := func(x *Index) (uint64, []string, error) {
		n, err := x.Count(seg, "push", false)
		if err != nil {
			return 0, nil, err
		}
		a, err := x.Audience(seg, "push", false)
		if err != nil {
			return 0, nil, err
		}
		ids, _ := a.Page(0, users)
		sort.Strings(ids)
		return n, ids, nil
	}
	n0, ids0, _ := audience(ref)
	counts, idsAt := []uint64{n0}, [][]string{ids0}
	cur := slices.Clone(base)
	seq := make([]int, testShards)
	var plan [][]store.Event
	for range batches {
		var evs []store.Event
		for range perBatch {
			i := r.IntN(users)
			rec := cur[i]
			s, local := store.NumberShard(rec.Number, testShards)
			seq[s]++
			pos := store.Position("1-" + strconv.Itoa(seq[s]))
			var next, prev *consent.Record
			switch {
			case rec.State.Erased: // comes back with the segment's tag
				next, prev = user(s, local, rec.Version+1, false), rec
				next.Tags.Entries = []tags.Entry{{Tag: all[0], Source: tags.Declared}}
			case r.IntN(2) == 0:
				next = tombstone(rec, rec.Version+1)
			default: // a reset: one tag, not the segment's
				next = user(s, local, rec.Version+1, false)
				next.Tags.Entries = []tags.Entry{{Tag: all[1+r.IntN(len(all)-1)], Source: tags.Declared}}
			}
			evs = append(evs, store.Event{Log: s, Pos: pos, Record: next, Prev: prev})
			cur[i] = next
			ref.Apply(evs[len(evs)-1])
		}
		plan = append(plan, evs)
		n, ids, _ := audience(ref)
		counts, idsAt = append(counts, n), append(idsAt, ids)
	}
	x := New(testShards, set)
	for _, rec := range base {
		x.Load(rec)
	}
	var applied atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k, evs := range plan {
			x.Apply(evs...)
			applied.Store(int64(k + 1))
		}
	}()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lastN, lastIDs := 0, 0 // the batch boundaries last observed
			for {
				before := int(applied.Load())
				n, ids, err := audience(x)
				if err != nil {
					t.Error(err)
					return
				}
				k := -1
				for j := max(lastN, before); j < len(counts); j++ {
					if counts[j] == n {
						k = j
						break
					}
				}
				if k < 0 {
					t.Errorf("count %d after %d batches: no batch boundary from %d on had it (%v)", n, before, max(lastN, before), counts)
					return
				}
				lastN = k
				k = -1
				for j := max(lastIDs, before); j < len(idsAt); j++ {
					if slices.Equal(idsAt[j], ids) {
						k = j
						break
					}
				}
				if k < 0 {
					t.Errorf("audience %v after %d batches: no batch boundary from %d on had it", ids, before, max(lastIDs, before))
					return
				}
				lastIDs = k
				checkNoLeftovers(t, x, "a batch, seen by a reader")
				if t.Failed() || before == len(plan) {
					return
				}
			}
		}()
	}
	wg.Wait()
	if !x.Equal(ref) {
		t.Fatal("after the race: not the index of the events one by one")
	}
	checkNoLeftovers(t, x, "the race")
}

// A batch that resets users, then holds an entry naming no user (their
// shard's users all become unknown): the facts the resets added must not
// come back after the shard was made unknown. No fact of an unknown user.
func TestClearThenDamagedShard(t *testing.T) {
	set := consent.DefaultSettings()
	x, y := New(testShards, set), New(testShards, set)
	var recs []*consent.Record
	for i := range 12 {
		r := richUser(i%testShards, i/testShards+1, 1, false)
		recs = append(recs, r)
		x.Load(r)
		y.Load(r)
	}
	var evs []store.Event
	for i, r := range recs {
		s, local := store.NumberShard(r.Number, testShards)
		next := user(s, local, 2, false) // no "before": a reset
		if i%2 == 0 {
			next = tombstone(r, 2)
		}
		evs = append(evs, store.Event{Log: s, Pos: store.Position("1-" + strconv.Itoa(i+1)), Record: next})
	}
	evs = append(evs, store.Event{Log: 1, Pos: "2-1"}) // names no user: shard 1 damaged
	for _, e := range evs {
		y.Apply(e)
	}
	x.Apply(evs...)
	if !x.Equal(y) || x.Unknown() != y.Unknown() {
		t.Fatalf("the batch left another index than the same events one by one (unknown %d, %d)", x.Unknown(), y.Unknown())
	}
	checkNoLeftovers(t, x, "a damaged shard")
	for _, r := range recs {
		if s, _ := store.NumberShard(r.Number, testShards); s == 1 {
			if got := factsOf(x, r.Number); !slices.Equal(got, []string{factUnknown}) {
				t.Errorf("%s of the damaged shard: facts %v, want only unknown", r.UserID, got)
			}
		}
	}
}

// CatchUp over many changelog pages, applied in batches across page
// boundaries, with erasures and redeclarations: the index equals a rebuild
// from the records and reflects every log's tail.
func TestCatchUpBatches(t *testing.T) {
	defer func(p, b int) { catchUpPage, catchUpBatch = p, b }(catchUpPage, catchUpBatch)
	catchUpPage, catchUpBatch = 70, 150
	ctx := context.Background()
	st, err := memory.Open(ctx, memory.Options{Shards: testShards})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	apply := func(ch consent.Change) {
		t.Helper()
		if _, err := st.Apply(ctx, ch); err != nil {
			t.Fatalf("%s %s: %v", ch.Op, ch.UserID, err)
		}
	}
	users := make([]string, 30)
	for i := range users {
		users[i] = "u" + strconv.Itoa(i)
		apply(consent.DeclareTag(users[i], "interest:ski"))
	}
	x, err := Build(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 1200 {
		u := users[r.IntN(len(users))]
		switch r.IntN(6) {
		case 0:
			apply(consent.Erase(u))
		case 1:
			apply(consent.RefuseChannel(u, "sms"))
		default:
			apply(consent.DeclareTag(u, tags.Tag("interest:t"+strconv.Itoa(r.IntN(12)))))
		}
	}
	y, rebuilt, err := CatchUp(ctx, st, x)
	if err != nil || rebuilt {
		t.Fatalf("CatchUp: rebuilt %t, %v", rebuilt, err)
	}
	checkNoLeftovers(t, y, "CatchUp")
	z, err := Build(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if !y.Equal(z) {
		t.Fatal("caught up in batches, the index differs from a rebuild")
	}
	if got, want := y.Positions(), z.Positions(); !slices.Equal(got, want) {
		t.Fatalf("positions %v, the logs' tails %v", got, want)
	}
}
