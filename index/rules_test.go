package index_test

import (
	"context"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/index"
	"github.com/recguard/recguard/store"
	rs "github.com/recguard/recguard/store/redis"
	"github.com/recguard/recguard/tags"
)

// Each test here holds one rule of Index.Audience on its own, on a small
// population in a real Redis, so that breaking that rule alone fails a test
// that names it.

// ruleStore is a Redis store with the default settings plus a purpose
// "ads" (policy version 1).
func ruleStore(t *testing.T) *rs.Store {
	t.Helper()
	ctx := context.Background()
	st := redisStore(t, rs.Options{Shards: 2})
	set, err := st.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	set.Policies["ads"] = 1
	if _, _, err := st.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
		t.Fatal(err)
	}
	return st
}

func mustApply(t *testing.T, st *rs.Store, chs ...consent.Change) {
	t.Helper()
	for _, ch := range chs {
		if _, err := st.Apply(context.Background(), ch); err != nil {
			t.Fatalf("%s %s: %v", ch.UserID, ch.Op, err)
		}
	}
}

func editSettings(t *testing.T, st *rs.Store, edit func(*consent.Settings)) {
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

// wantAudiences checks the audience of each segment (on push, untargeted
// and targeted) against want and against consent.InPushAudience over the
// users.
func wantAudiences(t *testing.T, st *rs.Store, x *index.Index, users []string, want map[string][]string) {
	t.Helper()
	follow(t, st, x)
	sn := readSnapshot(t, st, users)
	for expr, w := range want {
		seg := tags.MustParseSegment(expr)
		for _, targeted := range []bool{false, true} {
			got := audienceIDs(t, x, seg, "push", targeted)
			if !equalIDs(got, w) {
				t.Errorf("Audience(%s, push, targeted=%t) = %v, want %v", expr, targeted, got, w)
			}
			if o := sn.oracle(seg, "push", targeted); !equalIDs(o, w) {
				t.Errorf("consent.InPushAudience(%s, push, targeted=%t) gives %v, the test wants %v", expr, targeted, o, w)
			}
		}
	}
}

// Art. 22(4): a push audience counts a sensitive consent only when it was
// given for push. The same category consented for personalization or for ads
// targets no one: neither through sensitive:<category> nor through a tag of
// the category, alone, in a conjunction or beside a negation.
func TestAudienceSensitiveConsentOnlyForPush(t *testing.T) {
	st := ruleStore(t)
	users := []string{"forpush", "forpers", "forads", "none"}
	mustApply(t, st,
		consent.GrantSensitive("forpush", tags.MedicalHealth, consent.PurposePush),
		consent.GrantSensitive("forpers", tags.MedicalHealth, consent.PurposePersonalization),
		consent.GrantSensitive("forads", tags.MedicalHealth, "ads"),
		consent.DeclareTag("none", "interest:ski"),
	)
	for _, u := range users[:3] {
		mustApply(t, st, consent.DeclareTag(u, "medical_health:diabetes"), consent.DeclareTag(u, "interest:ski"))
	}
	x, err := index.Build(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	wantAudiences(t, st, x, users, map[string][]string{
		"sensitive:medical_health":                   {"forpush"},
		"medical_health:diabetes":                    {"forpush"},
		"medical_health:diabetes & interest:ski":     {"forpush"},
		"interest:ski & medical_health:diabetes":     {"forpush"},
		"interest:ski & !medical_health:diabetes":    {"forads", "forpers", "none"},
		"interest:ski & !sensitive:medical_health":   {"forads", "forpers", "none"},
		"medical_health:diabetes | region:sh":        {"forpush"},
		"!(medical_health:diabetes | interest:golf)": {"forads", "forpers", "none"},
	})
}

// A policy-version bump of push voids the push consents given before it
// (Art. 22: a changed purpose needs consent again): the users leave every
// sensitive audience, whether the segment names the category or a tag of
// it. A bump of another purpose changes nothing; KeepOnBump listing push
// keeps them; a consent given again under the new version counts.
func TestAudienceSensitiveConsentLapsesOnPushPolicyBump(t *testing.T) {
	st := ruleStore(t)
	users := []string{"a", "b"}
	for _, u := range users {
		mustApply(t, st,
			consent.GrantSensitive(u, tags.MedicalHealth, consent.PurposePush),
			consent.DeclareTag(u, "medical_health:diabetes"),
			consent.DeclareTag(u, "interest:ski"))
	}
	x, err := index.Build(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	both := []string{"a", "b"}
	segs := func(w []string) map[string][]string {
		return map[string][]string{
			"sensitive:medical_health":               w,
			"medical_health:diabetes":                w,
			"medical_health:diabetes & interest:ski": w,
		}
	}
	wantAudiences(t, st, x, users, segs(both))

	editSettings(t, st, func(s *consent.Settings) { s.Policies[consent.PurposePersonalization]++; s.Policies["ads"]++ })
	wantAudiences(t, st, x, users, segs(both))

	editSettings(t, st, func(s *consent.Settings) { s.Policies[consent.PurposePush]++ })
	wantAudiences(t, st, x, users, segs(nil))

	editSettings(t, st, func(s *consent.Settings) { s.KeepOnBump = []string{consent.PurposePush} })
	wantAudiences(t, st, x, users, segs(both))

	editSettings(t, st, func(s *consent.Settings) { s.KeepOnBump = []string{consent.PurposePersonalization} })
	wantAudiences(t, st, x, users, segs(nil))

	mustApply(t, st, consent.GrantSensitive("b", tags.MedicalHealth, consent.PurposePush))
	wantAudiences(t, st, x, users, segs([]string{"b"}))
}

// A guardian policy bump voids guardian consents unless KeepOnBump lists
// the guardian purpose: the minor leaves targeted audiences and
// consent:guardian, and comes back when the purpose keeps consents.
func TestAudienceGuardianConsentOnBump(t *testing.T) {
	st := ruleStore(t)
	users := []string{"kid", "adult"}
	mustApply(t, st,
		consent.SetMinor("kid", true),
		consent.GuardianConsent("kid", "guardian-ref-1"),
		consent.DeclareTag("kid", "interest:ski"),
		consent.DeclareTag("adult", "interest:ski"),
	)
	x, err := index.Build(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	wantAudiences(t, st, x, users, map[string][]string{"interest:ski": {"adult", "kid"}, "consent:guardian": {"kid"}})
	editSettings(t, st, func(s *consent.Settings) { s.Policies[consent.PurposeGuardian]++ })
	wantAudiences(t, st, x, users, map[string][]string{"interest:ski": {"adult"}, "consent:guardian": nil})
	editSettings(t, st, func(s *consent.Settings) { s.KeepOnBump = []string{consent.PurposeGuardian} })
	wantAudiences(t, st, x, users, map[string][]string{"interest:ski": {"adult", "kid"}, "consent:guardian": {"kid"}})
}

// Art. 51 kill switch, on its own: with Settings.Suspended every audience
// is empty (Count 0, no page), for every segment and channel, targeted or
// not, although every user would otherwise be in it; lifting the switch
// brings the audiences back.
func TestAudienceKillSwitch(t *testing.T) {
	st := ruleStore(t)
	users := []string{"a", "b", "c"}
	for _, u := range users {
		mustApply(t, st, consent.DeclareTag(u, "interest:ski"))
	}
	x, err := index.Build(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	segs := []string{"*", "interest:ski", "!erased", "!consent:personalization_off"}
	check := func(want []string) {
		t.Helper()
		follow(t, st, x)
		for _, expr := range segs {
			for _, ch := range []string{"push", "sms", "email", "in_app"} {
				for _, targeted := range []bool{false, true} {
					seg := tags.MustParseSegment(expr)
					if got := audienceIDs(t, x, seg, ch, targeted); !equalIDs(got, want) {
						t.Errorf("suspended=%t: Audience(%s, %s, targeted=%t) = %v, want %v", want == nil, expr, ch, targeted, got, want)
					}
					n, err := x.Count(seg, ch, targeted)
					if err != nil || n != uint64(len(want)) {
						t.Errorf("suspended=%t: Count(%s, %s, targeted=%t) = %d, %v; want %d", want == nil, expr, ch, targeted, n, err, len(want))
					}
				}
			}
		}
	}
	check(users)
	editSettings(t, st, func(s *consent.Settings) { s.Suspended, s.SuspendReason = true, "regulator order" })
	check(nil)
	a, err := x.Audience(tags.MustParseSegment("*"), "push", false)
	if err != nil {
		t.Fatal(err)
	}
	if ids, next := a.Page(0, 10); len(ids) != 0 || next != 0 || !a.Numbers().IsEmpty() {
		t.Errorf("suspended: first page %v (next %d), numbers %v; want nothing", ids, next, a.Numbers())
	}
	editSettings(t, st, func(s *consent.Settings) { s.Suspended, s.SuspendReason = false, "" })
	check(users)
}

// A minor's sensitive consent counts only when the guardian gave it: a
// consent the user gave before being marked a minor targets no one, the
// guardian's does (with the guardian's consent in force).
func TestAudienceMinorSensitiveConsentByGuardian(t *testing.T) {
	st := ruleStore(t)
	users := []string{"own", "byguardian"}
	// "own" consented as an adult, then was found to be a minor.
	mustApply(t, st,
		consent.GrantSensitive("own", tags.MedicalHealth, consent.PurposePush),
		consent.DeclareTag("own", "medical_health:diabetes"))
	for _, u := range users {
		mustApply(t, st,
			consent.SetMinor(u, true),
			consent.GuardianConsent(u, "ref-"+u))
	}
	mustApply(t, st,
		consent.GrantSensitive("byguardian", tags.MedicalHealth, consent.PurposePush).By(consent.ActorGuardian, consent.SurfaceAppSettings),
		consent.DeclareTag("byguardian", "medical_health:diabetes"))
	rec, err := st.Get(context.Background(), "own")
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := rec.State.SensitiveGrant(tags.MedicalHealth); !ok || !g.Granted || g.ByGuardian || !rec.State.Minor {
		t.Fatalf("setup: the minor's own grant is %+v, %t", g, ok)
	}
	if _, ok := rec.Tags.Has("medical_health:diabetes"); !ok {
		t.Fatal("setup: the minor's tag is gone")
	}
	x, err := index.Build(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	wantAudiences(t, st, x, users, map[string][]string{
		"sensitive:medical_health": {"byguardian"},
		"medical_health:diabetes":  {"byguardian"},
	})
}

// A tag that is both held and suppressed (a record no rule makes: damaged
// data) is not the user's (consent.AtomHolds): the index keeps no fact of
// it, whether the record is loaded or arrives in a changelog event, and the
// user is in no audience of the tag.
func TestAudienceSuppressedEntryIsNotAFact(t *testing.T) {
	set := consent.DefaultSettings()
	num := store.UserNumber(0, 1, 1)
	clean := &consent.Record{UserID: "u", Number: num, Version: 1,
		Tags: tags.Set{Entries: []tags.Entry{{Tag: "interest:golf", Source: tags.Declared}, {Tag: "interest:ski", Source: tags.Declared}}}}
	damaged := &consent.Record{UserID: "u", Number: num, Version: 2,
		Tags: tags.Set{Entries: clean.Tags.Entries, Suppressed: []tags.Suppression{{Tag: "interest:ski"}}}}
	for _, f := range index.Facts(damaged) {
		if f == "t:interest:ski" {
			t.Errorf("Facts of a record holding a suppressed tag = %v", index.Facts(damaged))
		}
	}
	ski, golf := tags.MustParseSegment("interest:ski"), tags.MustParseSegment("interest:golf")
	check := func(how string, x *index.Index, rec *consent.Record) {
		t.Helper()
		for _, seg := range []*tags.Segment{ski, golf} {
			n, err := x.Count(seg, "push", false)
			if err != nil {
				t.Fatal(err)
			}
			want := uint64(0)
			if consent.InPushAudience(seg, rec, &set, "push", false) {
				want = 1
			}
			if n != want {
				t.Errorf("%s: Count(%s) = %d, want %d", how, seg, n, want)
			}
		}
	}
	x := index.New(1, set)
	x.Load(damaged)
	check("loaded", x, damaged)

	x = index.New(1, set)
	x.Load(clean)
	x.Apply(store.Event{Log: 0, Pos: "1-1", Prev: clean, Record: damaged})
	check("clean -> damaged", x, damaged)

	healed := &consent.Record{UserID: "u", Number: num, Version: 3, Tags: clean.Tags}
	x.Apply(store.Event{Log: 0, Pos: "1-2", Prev: damaged, Record: healed})
	check("damaged -> clean", x, healed)

	// An index holding the fact although the "before" of the event says it
	// was suppressed (as a checkpoint written before suppressed entries
	// were left out may): the event leaves no stale fact.
	x = index.New(1, set)
	x.Load(clean)
	still := &consent.Record{UserID: "u", Number: num, Version: 3, Tags: damaged.Tags}
	x.Apply(store.Event{Log: 0, Pos: "1-1", Prev: damaged, Record: still})
	check("stale fact, damaged -> damaged", x, still)
}
