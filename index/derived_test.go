package index

// The derived bitmaps (derived.go) against the rules, the way an operator
// or an attacker would break them: changes, erasures, shredded and
// unreadable entries, readers marking users unknown and settings flips
// (suspension, a guardian-policy bump, a prohibited namespace) interleaved
// with counts and audiences, warm caches carried across them, checkpoints
// replayed, and writers racing readers. After every write, every count and
// every audience must equal the consent model's, user by user, and every
// derived bitmap must equal one built afresh.

import (
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/tags"
)

var dvTags = []tags.Tag{"interest:a", "interest:b", "interest:c", "sport:d", "sport:e", "medical_health:x"}

// dvModel is the consent model's view of an index under test: every user's
// current record and which users the index must treat as unknown.
type dvModel struct {
	x       *Index
	set     consent.Settings
	recs    map[uint32]*consent.Record
	unknown map[uint32]bool
	seq     []uint64 // per log
	r       *rand.Rand
	last    func(*Index) // the last write, to replay into another index
}

// do performs a write on the index under test and keeps it as m.last.
func (m *dvModel) do(w func(*Index)) {
	m.last = w
	w(m.x)
}

func (m *dvModel) apply(ev store.Event) { m.do(func(x *Index) { x.Apply(ev) }) }

func newDVModel(t *testing.T, seed uint64, users int) *dvModel {
	t.Helper()
	m := &dvModel{set: consent.DefaultSettings(), recs: map[uint32]*consent.Record{}, unknown: map[uint32]bool{},
		seq: make([]uint64, testShards+1), r: rand.New(rand.NewPCG(seed, 7))}
	m.set.Version = 1
	m.x = New(testShards, m.set)
	for i := 0; i < users; i++ {
		s, local := i%testShards, i/testShards+1
		rec := m.random(s, local, 1)
		m.x.Load(rec)
		m.recs[rec.Number] = rec
	}
	return m
}

// random returns a random record of the local-th user of shard s.
func (m *dvModel) random(s, local int, ver uint64) *consent.Record {
	r := m.r
	rec := &consent.Record{UserID: idOf(s, local), Number: store.UserNumber(s, local, testShards), Version: ver}
	st := &rec.State
	switch x := r.IntN(100); {
	case x < 4:
		st.Erased = true
		return rec
	case x < 8:
		st.Restricted = true
	}
	st.PersonalizationOff = r.IntN(5) == 0
	for _, ch := range []string{"email", "push", "sms"} {
		if r.IntN(4) == 0 {
			st.RefusedChannels = append(st.RefusedChannels, ch)
		}
	}
	if r.IntN(6) == 0 {
		st.Minor = true
		if r.IntN(2) == 0 {
			st.Guardian = &consent.Grant{Granted: true, Purpose: consent.PurposeGuardian, PolicyVersion: 1 + r.IntN(m.set.Policies[consent.PurposeGuardian]), ByGuardian: true}
		}
	}
	if r.IntN(3) == 0 {
		st.Sensitive = []consent.SensitiveConsent{{Category: tags.MedicalHealth, Grant: consent.Grant{Granted: true, Purpose: consent.PurposePush, PolicyVersion: 1, ByGuardian: st.Minor}}}
	}
	for _, tg := range dvTags {
		if r.IntN(2) == 0 {
			rec.Tags.Entries = append(rec.Tags.Entries, tags.Entry{Tag: tg, Source: tags.Declared})
		}
	}
	slices.SortFunc(rec.Tags.Entries, func(a, b tags.Entry) int { return strings.Compare(string(a.Tag), string(b.Tag)) })
	return rec
}

func (m *dvModel) pos(log int) store.Position {
	i := log
	if log == store.SettingsLog {
		i = testShards
	}
	m.seq[i]++
	return store.Position("1-" + strconv.FormatUint(m.seq[i], 10))
}

// step applies one random write to the index and to the model.
func (m *dvModel) step(t *testing.T) string {
	t.Helper()
	r := m.r
	nums := make([]uint32, 0, len(m.recs))
	for n := range m.recs {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	num := nums[r.IntN(len(nums))]
	cur := m.recs[num]
	s, local := store.NumberShard(num, testShards)
	next := func() *consent.Record {
		rec := m.random(s, local, cur.Version+1)
		return rec
	}
	switch x := r.IntN(100); {
	case x < 55: // a change with its "before"
		rec := next()
		m.apply(store.Event{Log: s, Pos: m.pos(s), Record: rec, Prev: cur})
		m.recs[num], m.unknown[num] = rec, false
		return "change"
	case x < 62: // only personalization off flipped (a diff of one fact)
		rec := *cur
		rec.Version++
		rec.State.PersonalizationOff = !rec.State.PersonalizationOff
		m.apply(store.Event{Log: s, Pos: m.pos(s), Record: &rec, Prev: cur})
		m.recs[num], m.unknown[num] = &rec, false
		return "flip off"
	case x < 68: // erasure: the tombstone, no "before"
		rec := tombstone(cur, cur.Version+1)
		m.apply(store.Event{Log: s, Pos: m.pos(s), Record: rec})
		m.recs[num], m.unknown[num] = rec, false
		return "erase"
	case x < 72: // a shredded change: unknown until a whole record comes
		m.apply(store.Event{Log: s, Pos: m.pos(s), Record: shred(cur, cur.Version+1), Shredded: true})
		m.unknown[num] = true
		return "shredded"
	case x < 75: // an unreadable entry
		m.apply(store.Event{Log: s, Pos: m.pos(s), Prev: cur})
		m.unknown[num] = true
		return "unreadable"
	case x < 78: // a reader found the record corrupt
		id := cur.UserID
		m.do(func(x *Index) { x.MarkUnknown(id) })
		m.unknown[num] = true
		return "mark unknown"
	case x < 82: // a change without its "before" (replaced, not diffed)
		rec := next()
		m.apply(store.Event{Log: s, Pos: m.pos(s), Record: rec})
		m.recs[num], m.unknown[num] = rec, false
		return "change without prev"
	}
	// Settings: the kill switch, a guardian-policy bump (kept or not), a
	// prohibited namespace, all with a new version.
	set := m.set.Clone()
	set.Version++
	what := ""
	switch r.IntN(5) {
	case 0:
		set.Suspended = !set.Suspended
		what = "suspended=" + strconv.FormatBool(set.Suspended)
	case 1:
		set.Policies[consent.PurposeGuardian]++
		what = "guardian policy bump"
	case 2:
		if slices.Contains(set.KeepOnBump, consent.PurposeGuardian) {
			set.KeepOnBump = nil
		} else {
			set.KeepOnBump = []string{consent.PurposeGuardian}
		}
		what = "keep on bump flipped"
	case 3:
		ns := set.Taxonomy["sport"]
		ns.Prohibited = !ns.Prohibited
		set.Taxonomy["sport"] = ns
		what = "sport prohibited=" + strconv.FormatBool(ns.Prohibited)
	case 4:
		set.Policies[consent.PurposePush]++
		what = "push policy bump"
	}
	m.apply(store.Event{Log: store.SettingsLog, Pos: m.pos(store.SettingsLog), Settings: &set})
	m.set = set
	return what
}

var dvSegments = []string{
	"interest:a",
	"interest:a & interest:b",
	"interest:b & interest:a & !consent:personalization_off",
	"interest:a & sport:d",
	"sport:d & sport:e & interest:c",
	"interest:c & !minor",
	"interest:a & !refused:email",
	"interest:b & !erased",
	"!consent:personalization_off",
	"consent:personalization_off",
	"minor & interest:a",
	"!minor",
	"interest:a | sport:e",
	"medical_health:x & interest:a",
	"sensitive:medical_health",
	"consent:guardian & interest:b",
	"!(interest:a & interest:b)",
	"erased",
	"refused:sms & interest:a",
}

// want is the audience by the consent model, user by user.
func (m *dvModel) want(seg *tags.Segment, ch string, targeted bool) []string {
	var out []string
	for num, rec := range m.recs {
		if !m.unknown[num] && consent.InPushAudience(seg, rec, &m.set, ch, targeted) {
			out = append(out, rec.UserID)
		}
	}
	sort.Strings(out)
	return out
}

// check compares every count and audience with the model and the derived
// bitmaps with fresh ones.
func (m *dvModel) check(t *testing.T, what string) {
	t.Helper()
	for _, expr := range dvSegments {
		seg := tags.MustParseSegment(expr)
		for _, ch := range []string{"sms", "email"} {
			for _, targeted := range []bool{false, true} {
				want := m.want(seg, ch, targeted)
				n, err := m.x.Count(seg, ch, targeted)
				if err != nil {
					t.Fatal(err)
				}
				a, err := m.x.Audience(seg, ch, targeted)
				if err != nil {
					t.Fatal(err)
				}
				ids, _ := a.Page(0, 1<<20)
				sort.Strings(ids)
				if n != uint64(len(want)) || a.Count() != n || !slices.Equal(ids, want) {
					t.Fatalf("after %s: %q on %s targeted=%v: count %d, audience %d %v; the model says %d %v",
						what, expr, ch, targeted, n, a.Count(), ids, len(want), want)
				}
			}
		}
	}
	checkDerived(t, m.x, what)
}

// checkDerived fails t unless every derived bitmap of x equals one built
// afresh from x's facts and settings.
func checkDerived(t *testing.T, x *Index, what string) {
	t.Helper()
	x.mu.RLock()
	defer x.mu.RUnlock()
	x.dv.mu.Lock()
	defer x.dv.mu.Unlock()
	for v, b := range x.dv.excluded {
		ops := []*roaring.Bitmap{x.unk, x.get(factErased), x.get(factRestricted), x.get(factRefused(v.channel))}
		if v.personal {
			ops = append(ops, x.get(factOff), x.minorsWithoutGuardian())
		}
		fresh := roaring.FastOr(ops...)
		fresh.Add(0)
		if !b.Equals(fresh) {
			t.Fatalf("after %s: the exclusion of %+v lags: %v, afresh %v", what, v, b, fresh)
		}
	}
	for k, e := range x.dv.eligible {
		ex := x.dv.excluded[k.v]
		if ex == nil {
			t.Fatalf("after %s: eligible %+v without its exclusion", what, k)
		}
		if fresh := roaring.AndNot(x.get(k.fact), ex); !e.bm.Equals(fresh) {
			t.Fatalf("after %s: eligible %+v lags: %v, afresh %v", what, k, e.bm, fresh)
		}
		if e.dense != nil {
			if got := roaring.FromDense(e.dense, true); !got.Equals(e.bm) {
				t.Fatalf("after %s: the dense form of eligible %+v lags: %v, eligible %v", what, k, got, e.bm)
			}
		}
	}
}

// Random writes of every kind, each followed by every count and audience
// (so the derived bitmaps are warm across the writes): never one user more
// or less than the model says.
func TestDerivedFollowEveryWrite(t *testing.T) {
	steps := 400
	if testing.Short() {
		steps = 100
	}
	for seed := uint64(1); seed <= 3; seed++ {
		m := newDVModel(t, seed, 60)
		m.check(t, "load")
		for i := 0; i < steps; i++ {
			what := m.step(t)
			m.check(t, strconv.Itoa(i)+": "+what)
		}
		if m.x.dcount.updates == 0 || m.x.dcount.drops == 0 || m.x.dcount.denseBuilds == 0 || m.x.dcount.pairs[pairWords] == 0 {
			t.Fatalf("derived bitmaps never updated (%d) or dropped (%d), or no dense form built (%d) or counted (%d): the test proves nothing",
				m.x.dcount.updates, m.x.dcount.drops, m.x.dcount.denseBuilds, m.x.dcount.pairs[pairWords])
		}
	}
}

// An opt-out is out of the very next count and audience, whichever
// derived bitmap was warm: personalization off, a refusal of the channel,
// an erasure, a restriction, a guardian consent withdrawn.
func TestDerivedOptOutAtOnce(t *testing.T) {
	x := New(testShards, consent.DefaultSettings())
	u := user(0, 1, 1, false)
	u.State.Minor = true
	u.State.Guardian = &consent.Grant{Granted: true, Purpose: consent.PurposeGuardian, PolicyVersion: 1, ByGuardian: true}
	u.Tags.Entries = append(u.Tags.Entries, tags.Entry{Tag: "interest:zz", Source: tags.Declared})
	x.Load(u)
	x.Load(user(1, 1, 1, false))
	seg := tags.MustParseSegment("interest:ski & interest:zz")
	optOuts := map[string]func(r *consent.Record){
		"personalization off": func(r *consent.Record) { r.State.PersonalizationOff = true },
		"refused sms":         func(r *consent.Record) { r.State.RefusedChannels = []string{"sms"} },
		"erased":              func(r *consent.Record) { *r = *tombstone(r, r.Version) },
		"restricted":          func(r *consent.Record) { r.State.Restricted = true },
		"guardian withdrawn": func(r *consent.Record) {
			r.State.Guardian = &consent.Grant{Purpose: consent.PurposeGuardian, PolicyVersion: 1, ByGuardian: true}
		},
	}
	pos := 1
	for name, opt := range optOuts {
		for _, q := range []func() uint64{
			func() uint64 { n, _ := x.Count(seg, "sms", true); return n },
			func() uint64 { a, _ := x.Audience(seg, "sms", true); return a.Count() },
		} {
			if n := q(); n != 1 {
				t.Fatalf("%s: before the opt-out, %d users, want 1", name, n)
			}
			prev := u
			next := *u
			next.Tags.Entries = slices.Clone(u.Tags.Entries)
			next.Version++
			opt(&next)
			pos++
			x.Apply(store.Event{Log: 0, Pos: store.Position("1-" + strconv.Itoa(pos)), Record: &next, Prev: prev})
			if n := q(); n != 0 {
				t.Fatalf("%s: %d users right after the opt-out was applied, want 0", name, n)
			}
			// Opt back in for the next round.
			back := *u
			back.Version = next.Version + 1
			pos++
			x.Apply(store.Event{Log: 0, Pos: store.Position("1-" + strconv.Itoa(pos)), Record: &back, Prev: &next})
			u = &back
		}
	}
	checkDerived(t, x, "opt-outs")
}

// Settings flips with warm derived bitmaps: the kill switch empties every
// audience at once and a guardian-policy bump takes minors whose guardian
// consent no longer counts out of personal audiences at once.
func TestDerivedSettingsFlips(t *testing.T) {
	set := consent.DefaultSettings()
	set.Version = 1
	x := New(1, set)
	minor := &consent.Record{UserID: "m", Number: 1, Version: 1, State: consent.State{Minor: true,
		Guardian: &consent.Grant{Granted: true, Purpose: consent.PurposeGuardian, PolicyVersion: 1, ByGuardian: true}},
		Tags: tags.Set{Entries: []tags.Entry{{Tag: "interest:a"}}}}
	adult := &consent.Record{UserID: "a", Number: 2, Version: 1, Tags: tags.Set{Entries: []tags.Entry{{Tag: "interest:a"}}}}
	x.Load(minor)
	x.Load(adult)
	seg := tags.MustParseSegment("interest:a")
	count := func() uint64 {
		n, err := x.Count(seg, "push", true)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 2 {
		t.Fatalf("%d users, want 2", n)
	}
	apply := func(pos string, edit func(*consent.Settings)) {
		set = set.Clone()
		set.Version++
		edit(&set)
		x.Apply(store.Event{Log: store.SettingsLog, Pos: store.Position(pos), Settings: &set})
	}
	apply("1-1", func(s *consent.Settings) { s.Suspended = true })
	if n := count(); n != 0 {
		t.Fatalf("suspended: %d users, want 0", n)
	}
	apply("1-2", func(s *consent.Settings) { s.Suspended = false })
	if n := count(); n != 2 {
		t.Fatalf("resumed: %d users, want 2", n)
	}
	apply("1-3", func(s *consent.Settings) { s.Policies[consent.PurposeGuardian] = 2 })
	if n := count(); n != 1 {
		t.Fatalf("after a guardian-policy bump: %d users, want 1 (the minor's consent was for version 1)", n)
	}
	if a, _ := x.Audience(seg, "push", true); a.Count() != 1 {
		t.Fatalf("after a guardian-policy bump: audience of %d", a.Count())
	}
	apply("1-4", func(s *consent.Settings) { s.KeepOnBump = []string{consent.PurposeGuardian} })
	if n := count(); n != 2 {
		t.Fatalf("guardian kept on bump: %d users, want 2", n)
	}
	apply("1-5", func(s *consent.Settings) { s.Taxonomy["interest"] = tags.Namespace{Prohibited: true} })
	if n := count(); n != 0 {
		t.Fatalf("namespace prohibited: %d users, want 0", n)
	}
	checkDerived(t, x, "settings flips")
}

// A checkpoint of an index with warm derived bitmaps, replayed: the
// restored index (derived bitmaps built afresh) and the original (kept
// current) give the model's audiences through the same writes.
func TestDerivedCheckpointReplay(t *testing.T) {
	m := newDVModel(t, 42, 80)
	for i := 0; i < 50; i++ {
		m.step(t)
	}
	m.check(t, "before the checkpoint")
	data, err := m.x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	y, err := Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	// y follows the same writes as x from here.
	orig := m.x
	for i := 0; i < 100; i++ {
		m.x = orig
		what := m.step(t)
		m.last(y)
		m.check(t, "original, "+what)
		m.x = y
		m.check(t, "restored, "+what)
	}
	m.x = orig
}

// Writers racing readers (run it with -race): a writer turns
// personalization off for the users one by one; readers count and page
// the audience meanwhile. A count or audience taken after an opt-out was
// applied never holds that user (nor counts more users than remain).
func TestDerivedRaceOptOuts(t *testing.T) {
	const n = 400
	x := New(testShards, consent.DefaultSettings())
	recs := make([]*consent.Record, n)
	for i := range recs {
		recs[i] = user(i%testShards, i/testShards+1, 1, false)
		x.Load(recs[i])
	}
	seg := tags.MustParseSegment("interest:ski")
	var done atomic.Int64 // users opted out and applied
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, r := range recs {
			next := *r
			next.Version = 2
			next.State.PersonalizationOff = true
			s, _ := store.NumberShard(r.Number, testShards)
			x.Apply(store.Event{Log: s, Pos: store.Position("1-" + strconv.Itoa(i+1)), Record: &next, Prev: r})
			done.Store(int64(i + 1))
		}
	}()
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				before := done.Load()
				cnt, err := x.Count(seg, "push", true)
				if err != nil {
					t.Error(err)
					return
				}
				a, err := x.Audience(seg, "push", true)
				if err != nil {
					t.Error(err)
					return
				}
				after := done.Load()
				if cnt > uint64(n-before) || a.Count() > uint64(n-before) {
					t.Errorf("count %d, audience %d after %d opt-outs were applied: more than %d", cnt, a.Count(), before, n-before)
					return
				}
				ids, _ := a.Page(0, n)
				got := map[string]bool{}
				for _, id := range ids {
					got[id] = true
				}
				for _, r := range recs[:before] {
					if got[r.UserID] {
						t.Errorf("%s opted out before the audience was taken, and is in it", r.UserID)
						return
					}
				}
				if after == n {
					return
				}
			}
		}()
	}
	wg.Wait()
	if c, _ := x.Count(seg, "push", true); c != 0 {
		t.Fatalf("after every opt-out: %d", c)
	}
	checkDerived(t, x, "race")
}
