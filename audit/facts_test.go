package audit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/internal/redistest"
	rs "github.com/recguard/recguard/store/redis"
	"github.com/recguard/recguard/tags"
)

// The store's facts under the purpose binding of Art. 22(4): an audit of
// recommendations counts a sensitive consent only when it was given for
// personalization, under the personalization policy's current version
// (or an earlier one when KeepOnBump lists personalization).
func TestStoreFactsPurposeBinding(t *testing.T) {
	ctx := context.Background()
	st := factsRedis(t)
	for _, p := range []string{consent.PurposePersonalization, consent.PurposePush, "ads"} {
		u := "for_" + p
		mustApplyAll(t, st,
			consent.GrantSensitive(u, tags.MedicalHealth, p),
			consent.DeclareTag(u, "medical_health:diabetes"),
			consent.DeclareTag(u, "interest:ski"))
	}
	ids := []string{"for_personalization", "for_push", "for_ads"}
	facts := func() map[string][]string {
		t.Helper()
		got, err := StoreFacts(st).Facts(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		for _, fs := range got {
			slices.Sort(fs)
		}
		return got
	}
	counted := map[string][]string{
		"for_personalization": {"interest:ski", "medical_health:diabetes", "sensitive:medical_health"},
		"for_push":            {"interest:ski"},
		"for_ads":             {"interest:ski"},
	}
	lapsed := map[string][]string{"for_personalization": {"interest:ski"}, "for_push": {"interest:ski"}, "for_ads": {"interest:ski"}}
	check := func(when string, want map[string][]string) {
		t.Helper()
		if got := facts(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: facts %v, want %v", when, got, want)
		}
	}
	check("current policies", counted)
	editFactsSettings(t, st, func(s *consent.Settings) { s.Policies[consent.PurposePush]++; s.Policies["ads"]++ })
	check("push and ads policies bumped", counted)
	editFactsSettings(t, st, func(s *consent.Settings) { s.Policies[consent.PurposePersonalization]++ })
	check("personalization policy bumped", lapsed)
	editFactsSettings(t, st, func(s *consent.Settings) { s.KeepOnBump = []string{consent.PurposePersonalization} })
	check("personalization keeps consents on bumps", counted)
}

// The audit's groups over a store's records are the users for whom the
// group's segment holds by the consent model's definition
// (consent.SegmentHolds for personalization), for random records, random
// segments and settings whose every policy moves; users who restricted
// processing or were erased are in no group.
func TestStoreFactsGroupsMatchSegmentHolds(t *testing.T) {
	ctx := context.Background()
	st := factsRedis(t)
	r := rand.New(rand.NewPCG(21, 22))
	users := make([]string, 90)
	for i := range users {
		users[i] = fmt.Sprintf("a%02d", i)
	}
	steps := []func(*consent.Settings){
		func(*consent.Settings) {},
		func(s *consent.Settings) { s.Policies[consent.PurposePersonalization]++ },
		func(s *consent.Settings) {
			s.KeepOnBump = []string{consent.PurposePersonalization, consent.PurposeGuardian}
			s.Policies[consent.PurposePersonalization]++
			s.Policies[consent.PurposeGuardian]++
			s.Taxonomy["banned"] = tags.Namespace{Prohibited: true}
		},
		func(s *consent.Settings) {
			s.KeepOnBump = nil
			s.Policies[consent.PurposeGuardian]++
			s.Policies[consent.PurposePush]++
		},
	}
	inSensitive := 0
	var excludedSeen int64
	for round, step := range steps {
		for i := 0; i < 500; i++ {
			st.Apply(ctx, randomFactsChange(r, users[r.IntN(len(users))])) // refusals are fine
		}
		editFactsSettings(t, st, step)
		set, err := st.Settings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		recs := map[string]consent.Record{}
		for _, u := range users {
			rec, err := st.Get(ctx, u)
			if err == nil {
				recs[u] = rec
			}
		}
		spec := Spec{Reference: "all", MinGroupSize: 1, Metrics: []MetricSpec{{Name: "clicks", Kind: Rate, Field: "clicked"}}}
		spec.Groups = append(spec.Groups, GroupSpec{Name: "all", Segment: "*"})
		segs := []*tags.Segment{
			tags.MustParseSegment("sensitive:medical_health"),
			tags.MustParseSegment("medical_health:diabetes"),
			tags.MustParseSegment("!medical_health:diabetes & !sensitive:religion"),
		}
		for len(segs) < MaxGroups-1 {
			segs = append(segs, randomFactsSegment(r, 3))
		}
		for i, seg := range segs {
			spec.Groups = append(spec.Groups, GroupSpec{Name: fmt.Sprintf("g%02d", i), Segment: seg.String()})
		}
		var evs []Event
		for _, u := range append(slices.Clone(users), "never_seen") {
			evs = append(evs, ev(u, "i1", 0, ModePersonalized, withClicked(true)))
		}
		rep, err := Run(ctx, spec, sliceSource(evs), StoreFacts(st), Options{})
		if err != nil {
			t.Fatal(err)
		}
		var wantExcluded int64
		for _, rec := range recs {
			if Excluded(&rec) {
				wantExcluded++
			}
		}
		if rep.Excluded != wantExcluded {
			t.Fatalf("round %d: %d events excluded, want %d (one per restricted or erased user)", round, rep.Excluded, wantExcluded)
		}
		excludedSeen += rep.Excluded
		for i, seg := range segs {
			var want int64
			for _, u := range append(slices.Clone(users), "never_seen") {
				rec, ok := recs[u]
				if !ok {
					rec = consent.NewRecord(u)
				}
				if !Excluded(&rec) && consent.SegmentHolds(seg, &rec, &set, consent.PurposePersonalization) {
					want++
				}
			}
			got := group(rep, fmt.Sprintf("g%02d", i)).Users
			if got != want {
				t.Fatalf("round %d: group %s has %d users, consent.SegmentHolds gives %d", round, seg, got, want)
			}
			if i < 2 {
				inSensitive += int(got)
			}
		}
	}
	if inSensitive == 0 {
		t.Fatal("no user ever had a sensitive fact: the test proves little")
	}
	if excludedSeen == 0 {
		t.Fatal("no user was ever restricted or erased: the test proves little")
	}
}

func factsRedis(t *testing.T) *rs.Store {
	t.Helper()
	ctx := context.Background()
	c := redistest.Client(t)
	st, err := rs.New(ctx, c, rs.Options{Prefix: redistest.Prefix(t, c), Shards: 2, Init: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	editFactsSettings(t, st, func(s *consent.Settings) {
		s.Policies["ads"] = 1
		s.Taxonomy["banned"] = tags.Namespace{}
	})
	return st
}

func editFactsSettings(t *testing.T, st *rs.Store, edit func(*consent.Settings)) {
	t.Helper()
	ctx := context.Background()
	set, err := st.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	edit(&set)
	if _, _, err := st.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
		t.Fatal(err)
	}
}

func mustApplyAll(t *testing.T, st *rs.Store, chs ...consent.Change) {
	t.Helper()
	for _, ch := range chs {
		if _, err := st.Apply(context.Background(), ch); err != nil {
			t.Fatalf("%s %s: %v", ch.UserID, ch.Op, err)
		}
	}
}

var (
	factsTags     = []tags.Tag{"interest:ski", "interest:golf", "region:sh", "medical_health:diabetes", "religion:buddhism", "banned:x"}
	factsChannels = []string{"push", "sms", "email"}
	factsCats     = []tags.Category{tags.MedicalHealth, tags.Religion}
	factsPurposes = []string{consent.PurposePersonalization, consent.PurposePush, "ads"}
)

func randomFactsChange(r *rand.Rand, u string) consent.Change {
	t := factsTags[r.IntN(len(factsTags))]
	switch r.IntN(12) {
	case 0:
		return consent.SetPersonalization(u, r.IntN(2) == 0)
	case 1:
		return consent.RefuseChannel(u, factsChannels[r.IntN(len(factsChannels))])
	case 2:
		return consent.SetMinor(u, r.IntN(4) == 0)
	case 3:
		return consent.SetGuardian(u, r.IntN(2) == 0)
	case 4, 5:
		ch := consent.GrantSensitive(u, factsCats[r.IntN(len(factsCats))], factsPurposes[r.IntN(len(factsPurposes))])
		if r.IntN(4) == 0 {
			ch = ch.By(consent.ActorGuardian, consent.SurfaceAppSettings)
		}
		return ch
	case 6:
		return consent.WithdrawSensitive(u, factsCats[r.IntN(len(factsCats))])
	case 7:
		return consent.DeleteTag(u, t)
	case 8:
		if r.IntN(10) == 0 {
			return consent.Erase(u)
		}
		if r.IntN(10) == 0 {
			return consent.Restrict(u)
		}
		if r.IntN(5) == 0 {
			return consent.Unrestrict(u)
		}
		return consent.RedeclareTag(u, t)
	default:
		return consent.DeclareTag(u, t)
	}
}

func randomFactsSegment(r *rand.Rand, depth int) *tags.Segment {
	if depth == 0 || r.IntN(3) == 0 {
		var a tags.Atom
		switch r.IntN(9) {
		case 0:
			return &tags.Segment{Op: tags.OpAll}
		case 1:
			a = tags.Atom{Kind: tags.AtomPersonalizationOff}
		case 2:
			a = tags.Atom{Kind: tags.AtomRefused, Channel: factsChannels[r.IntN(len(factsChannels))]}
		case 3:
			a = tags.Atom{Kind: tags.AtomMinor}
		case 4:
			a = tags.Atom{Kind: tags.AtomSensitive, Category: factsCats[r.IntN(len(factsCats))]}
		case 5:
			a = tags.Atom{Kind: tags.AtomGuardian}
		case 6:
			a = tags.Atom{Kind: tags.AtomErased}
		default:
			a = tags.Atom{Kind: tags.AtomTag, Tag: factsTags[r.IntN(len(factsTags))]}
		}
		return &tags.Segment{Op: tags.OpAtom, Atom: a}
	}
	switch r.IntN(3) {
	case 0:
		return &tags.Segment{Op: tags.OpNot, X: randomFactsSegment(r, depth-1)}
	case 1:
		return &tags.Segment{Op: tags.OpAnd, X: randomFactsSegment(r, depth-1), Y: randomFactsSegment(r, depth-1)}
	}
	return &tags.Segment{Op: tags.OpOr, X: randomFactsSegment(r, depth-1), Y: randomFactsSegment(r, depth-1)}
}
