package consent_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

var atT0 = time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)

// atomSettings are the default settings plus a prohibited namespace
// "banned" and a purpose "ads" (policy version 1).
func atomSettings() consent.Settings {
	s := consent.DefaultSettings()
	s.Taxonomy["banned"] = tags.Namespace{Prohibited: true}
	s.Policies["ads"] = 1
	return s
}

func atomGrant(c tags.Category, purpose string, v int, byGuardian bool) consent.SensitiveConsent {
	return consent.SensitiveConsent{Category: c, Grant: consent.Grant{Granted: true, Purpose: purpose, PolicyVersion: v, ByGuardian: byGuardian, At: atT0}}
}

func atomRecord(st consent.State, ts ...tags.Tag) *consent.Record {
	rec := &consent.Record{UserID: "u1", Number: 1, Version: 3, State: st}
	for _, t := range ts {
		rec.Tags.Entries = append(rec.Tags.Entries, tags.Entry{Tag: t, Source: tags.Declared, At: atT0})
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

var (
	atomDiabetes = tags.Atom{Kind: tags.AtomTag, Tag: "medical_health:diabetes"}
	atomSki      = tags.Atom{Kind: tags.AtomTag, Tag: "interest:ski"}
	atomBanned   = tags.Atom{Kind: tags.AtomTag, Tag: "banned:x"}
	atomMedical  = tags.Atom{Kind: tags.AtomSensitive, Category: tags.MedicalHealth}
	atomGuardian = tags.Atom{Kind: tags.AtomGuardian}
)

// Each atom means one thing per record, settings and purpose; the cases
// name the rule they hold to.
func TestAtomHolds(t *testing.T) {
	base := atomSettings()
	bump := func(purpose string, keep bool) consent.Settings {
		s := base.Clone()
		s.Policies[purpose]++
		if keep {
			s.KeepOnBump = []string{purpose}
		}
		return s
	}
	guardianOK := &consent.Grant{Granted: true, Purpose: consent.PurposeGuardian, PolicyVersion: 1, ByGuardian: true, At: atT0}
	push := consent.PurposePush
	pers := consent.PurposePersonalization
	withPush := consent.State{Sensitive: []consent.SensitiveConsent{atomGrant(tags.MedicalHealth, push, 1, false)}}
	withPers := consent.State{Sensitive: []consent.SensitiveConsent{atomGrant(tags.MedicalHealth, pers, 1, false)}}
	withAds := consent.State{Sensitive: []consent.SensitiveConsent{atomGrant(tags.MedicalHealth, "ads", 1, false)}}
	withdrawn := consent.State{Sensitive: []consent.SensitiveConsent{{Category: tags.MedicalHealth, Grant: consent.Grant{Purpose: push, PolicyVersion: 1, At: atT0}}}}
	minorByUser := consent.State{Minor: true, Guardian: guardianOK, Sensitive: []consent.SensitiveConsent{atomGrant(tags.MedicalHealth, push, 1, false)}}
	minorByGuardian := consent.State{Minor: true, Guardian: guardianOK, Sensitive: []consent.SensitiveConsent{atomGrant(tags.MedicalHealth, push, 1, true)}}
	suppressed := atomRecord(consent.State{}, "interest:ski")
	suppressed.Tags.Suppressed = []tags.Suppression{{Tag: "interest:ski", At: atT0}}

	cases := []struct {
		name    string
		rec     *consent.Record
		set     consent.Settings
		atom    tags.Atom
		purpose string
		want    bool
	}{
		{"tag held", atomRecord(consent.State{}, "interest:ski"), base, atomSki, push, true},
		{"tag not held", atomRecord(consent.State{}, "interest:golf"), base, atomSki, push, false},
		{"tag held and suppressed (damaged record)", suppressed, base, atomSki, push, false},
		{"tag in a prohibited namespace", atomRecord(consent.State{}, "banned:x"), base, atomBanned, push, false},
		{"tag of an erased user", atomRecord(consent.State{Erased: true}, "interest:ski"), base, atomSki, push, false},
		{"tag of a minor without guardian consent", atomRecord(consent.State{Minor: true}, "interest:ski"), base, atomSki, push, false},
		{"tag of a minor with guardian consent", atomRecord(consent.State{Minor: true, Guardian: guardianOK}, "interest:ski"), base, atomSki, push, true},
		{"tag of a minor, guardian policy bumped", atomRecord(consent.State{Minor: true, Guardian: guardianOK}, "interest:ski"), bump(consent.PurposeGuardian, false), atomSki, push, false},
		{"tag of a minor, guardian policy bumped, kept", atomRecord(consent.State{Minor: true, Guardian: guardianOK}, "interest:ski"), bump(consent.PurposeGuardian, true), atomSki, push, true},

		{"sensitive tag, consent for push, push", atomRecord(withPush, "medical_health:diabetes"), base, atomDiabetes, push, true},
		{"sensitive tag, consent for push, personalization", atomRecord(withPush, "medical_health:diabetes"), base, atomDiabetes, pers, false},
		{"sensitive tag, consent for personalization, push", atomRecord(withPers, "medical_health:diabetes"), base, atomDiabetes, push, false},
		{"sensitive tag, consent for personalization, personalization", atomRecord(withPers, "medical_health:diabetes"), base, atomDiabetes, pers, true},
		{"sensitive tag, consent for ads, push", atomRecord(withAds, "medical_health:diabetes"), base, atomDiabetes, push, false},
		{"sensitive tag, consent for ads, personalization", atomRecord(withAds, "medical_health:diabetes"), base, atomDiabetes, pers, false},
		{"sensitive tag, no consent", atomRecord(consent.State{}, "medical_health:diabetes"), base, atomDiabetes, push, false},
		{"sensitive tag, consent withdrawn", atomRecord(withdrawn, "medical_health:diabetes"), base, atomDiabetes, push, false},
		{"sensitive tag, push policy bumped", atomRecord(withPush, "medical_health:diabetes"), bump(push, false), atomDiabetes, push, false},
		{"sensitive tag, push policy bumped, kept", atomRecord(withPush, "medical_health:diabetes"), bump(push, true), atomDiabetes, push, true},
		{"sensitive tag, another policy kept on bump", atomRecord(withPush, "medical_health:diabetes"), func() consent.Settings {
			s := bump(push, false)
			s.KeepOnBump = []string{pers}
			return s
		}(), atomDiabetes, push, false},
		{"sensitive tag, personalization policy bumped, push", atomRecord(withPush, "medical_health:diabetes"), bump(pers, false), atomDiabetes, push, true},
		{"sensitive tag, minor's own consent", atomRecord(minorByUser, "medical_health:diabetes"), base, atomDiabetes, push, false},
		{"sensitive tag, minor's guardian's consent", atomRecord(minorByGuardian, "medical_health:diabetes"), base, atomDiabetes, push, true},
		{"sensitive tag, namespace no longer sensitive", atomRecord(consent.State{}, "medical_health:diabetes"), func() consent.Settings {
			s := base.Clone()
			delete(s.Taxonomy, "medical_health")
			return s
		}(), atomDiabetes, push, true},

		{"sensitive atom, consent for push, push", atomRecord(withPush), base, atomMedical, push, true},
		{"sensitive atom, consent for push, personalization", atomRecord(withPush), base, atomMedical, pers, false},
		{"sensitive atom, consent for personalization, push", atomRecord(withPers), base, atomMedical, push, false},
		{"sensitive atom, consent for ads, push", atomRecord(withAds), base, atomMedical, push, false},
		{"sensitive atom, consent for ads, ads", atomRecord(withAds), base, atomMedical, "ads", true},
		{"sensitive atom, another category", atomRecord(withPush), base, tags.Atom{Kind: tags.AtomSensitive, Category: tags.Religion}, push, false},
		{"sensitive atom, withdrawn", atomRecord(withdrawn), base, atomMedical, push, false},
		{"sensitive atom, push policy bumped", atomRecord(withPush), bump(push, false), atomMedical, push, false},
		{"sensitive atom, push policy bumped, kept", atomRecord(withPush), bump(push, true), atomMedical, push, true},
		{"sensitive atom, minor's own consent", atomRecord(minorByUser), base, atomMedical, push, false},
		{"sensitive atom, minor's guardian's consent", atomRecord(minorByGuardian), base, atomMedical, push, true},
		{"sensitive atom, without tags of the category", atomRecord(withPush, "interest:ski"), base, atomMedical, push, true},

		{"guardian, adult with a grant", atomRecord(consent.State{Guardian: guardianOK}), base, atomGuardian, push, false},
		{"guardian, minor with current consent", atomRecord(consent.State{Minor: true, Guardian: guardianOK}), base, atomGuardian, push, true},
		{"guardian, minor without", atomRecord(consent.State{Minor: true}), base, atomGuardian, push, false},
		{"guardian, minor, withdrawn", atomRecord(consent.State{Minor: true, Guardian: &consent.Grant{Purpose: consent.PurposeGuardian, PolicyVersion: 1, At: atT0}}), base, atomGuardian, push, false},
		{"guardian, minor, policy bumped", atomRecord(consent.State{Minor: true, Guardian: guardianOK}), bump(consent.PurposeGuardian, false), atomGuardian, push, false},
		{"guardian, minor, policy bumped, kept", atomRecord(consent.State{Minor: true, Guardian: guardianOK}), bump(consent.PurposeGuardian, true), atomGuardian, push, true},

		{"refused channel", atomRecord(consent.State{RefusedChannels: []string{"email", "sms"}}), base, tags.Atom{Kind: tags.AtomRefused, Channel: "sms"}, push, true},
		{"other channel refused", atomRecord(consent.State{RefusedChannels: []string{"email"}}), base, tags.Atom{Kind: tags.AtomRefused, Channel: "sms"}, push, false},
		{"refused channel no longer configured", atomRecord(consent.State{RefusedChannels: []string{"fax"}}), base, tags.Atom{Kind: tags.AtomRefused, Channel: "fax"}, push, true},
		{"personalization off", atomRecord(consent.State{PersonalizationOff: true}), base, tags.Atom{Kind: tags.AtomPersonalizationOff}, push, true},
		{"personalization on", atomRecord(consent.State{}), base, tags.Atom{Kind: tags.AtomPersonalizationOff}, push, false},
		{"minor", atomRecord(consent.State{Minor: true}), base, tags.Atom{Kind: tags.AtomMinor}, push, true},
		{"adult", atomRecord(consent.State{}), base, tags.Atom{Kind: tags.AtomMinor}, push, false},
		{"erased", atomRecord(consent.State{Erased: true}), base, tags.Atom{Kind: tags.AtomErased}, push, true},
		{"not erased", atomRecord(consent.State{}), base, tags.Atom{Kind: tags.AtomErased}, push, false},
		{"suspension changes no atom", atomRecord(consent.State{}, "interest:ski"), func() consent.Settings {
			s := base.Clone()
			s.Suspended = true
			return s
		}(), atomSki, push, true},

		{"atom of unknown kind", atomRecord(consent.State{PersonalizationOff: true}), base, tags.Atom{Kind: 99}, push, false},
		{"zero atom", atomRecord(consent.State{PersonalizationOff: true}), base, tags.Atom{}, push, false},
		{"nil record", nil, base, tags.Atom{Kind: tags.AtomErased}, push, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set := c.set
			if got := consent.AtomHolds(c.atom, c.rec, &set, c.purpose); got != c.want {
				t.Errorf("AtomHolds(%s, purpose %s) = %t, want %t", c.atom, c.purpose, got, c.want)
			}
			seg := &tags.Segment{Op: tags.OpAtom, Atom: c.atom}
			if got := consent.SegmentHolds(seg, c.rec, &set, c.purpose); got != c.want {
				t.Errorf("SegmentHolds(%s, purpose %s) = %t, want %t", c.atom, c.purpose, got, c.want)
			}
		})
	}
}

func TestSegmentHolds(t *testing.T) {
	set := atomSettings()
	rec := atomRecord(consent.State{RefusedChannels: []string{"sms"}}, "interest:ski")
	for _, c := range []struct {
		seg  *tags.Segment
		want bool
	}{
		{tags.MustParseSegment("*"), true},
		{tags.MustParseSegment("interest:ski & refused:sms"), true},
		{tags.MustParseSegment("interest:ski & !refused:sms"), false},
		{tags.MustParseSegment("interest:golf | !erased"), true},
		{tags.MustParseSegment("!*"), false},
		{nil, false},
		{&tags.Segment{}, false},
		{&tags.Segment{Op: tags.OpNot}, false},
	} {
		if got := consent.SegmentHolds(c.seg, rec, &set, consent.PurposePush); got != c.want {
			t.Errorf("SegmentHolds(%s) = %t, want %t", c.seg, got, c.want)
		}
	}
}

// Art. 22(4) over a push audience: a sensitive consent given for ads or for
// personalization never puts a user in a sensitive push segment; one given
// for push does, until the push policy is bumped (unless push keeps
// consents on bumps).
func TestInPushAudiencePurposeBinding(t *testing.T) {
	set := atomSettings()
	seg := tags.MustParseSegment("medical_health:diabetes")
	segFlag := tags.MustParseSegment("sensitive:medical_health")
	for _, c := range []struct {
		purpose string
		want    bool
	}{{"ads", false}, {consent.PurposePersonalization, false}, {consent.PurposePush, true}} {
		rec := atomRecord(consent.State{Sensitive: []consent.SensitiveConsent{atomGrant(tags.MedicalHealth, c.purpose, 1, false)}}, "medical_health:diabetes")
		for _, s := range []*tags.Segment{seg, segFlag} {
			if got := consent.InPushAudience(s, rec, &set, "push", false); got != c.want {
				t.Errorf("consent for %s: InPushAudience(%s) = %t, want %t", c.purpose, s, got, c.want)
			}
		}
	}
	rec := atomRecord(consent.State{Sensitive: []consent.SensitiveConsent{atomGrant(tags.MedicalHealth, consent.PurposePush, 1, false)}}, "medical_health:diabetes")
	bumped := set.Clone()
	bumped.Policies[consent.PurposePush] = 2
	if consent.InPushAudience(seg, rec, &bumped, "push", false) {
		t.Error("a consent for push under policy v1 still targets after the push policy moved to v2")
	}
	bumped.KeepOnBump = []string{consent.PurposePush}
	if !consent.InPushAudience(seg, rec, &bumped, "push", false) {
		t.Error("a consent for push under policy v1 lapsed on a bump although push keeps consents on bumps")
	}
}

// Random records, settings and purposes for the equivalence tests. The
// records include states Record.Apply never builds (a grant for a purpose
// without a policy, an adult with a guardian grant, tags out of order or
// suppressed), so the definitions agree beyond what the rules produce.
var (
	atomTags     = []tags.Tag{"interest:ski", "interest:golf", "region:sh", "medical_health:diabetes", "religion:x", "banned:x"}
	atomChannels = []string{"push", "sms", "email", "fax"}
	atomPurposes = []string{consent.PurposePersonalization, consent.PurposePush, "ads", consent.PurposeGuardian}
	atomCats     = []tags.Category{tags.MedicalHealth, tags.Religion}
)

func randomAtomSettings(r *rand.Rand) consent.Settings {
	s := atomSettings()
	for _, p := range []string{consent.PurposePersonalization, consent.PurposePush, consent.PurposeGuardian, "ads"} {
		s.Policies[p] = 1 + r.IntN(2)
		if r.IntN(4) == 0 {
			s.KeepOnBump = append(s.KeepOnBump, p)
		}
	}
	if r.IntN(3) == 0 {
		s.Taxonomy["banned"] = tags.Namespace{}
	}
	if r.IntN(5) == 0 {
		s.Suspended = true
	}
	return s
}

func randomAtomRecord(r *rand.Rand) *consent.Record {
	rec := &consent.Record{UserID: "u", Number: 1, Version: uint64(r.IntN(8))}
	st := &rec.State
	st.PersonalizationOff = r.IntN(3) == 0
	st.Minor = r.IntN(3) == 0
	st.Erased = r.IntN(8) == 0
	if r.IntN(2) == 0 {
		st.Guardian = &consent.Grant{Granted: r.IntN(4) > 0, Purpose: consent.PurposeGuardian, PolicyVersion: r.IntN(3), ByGuardian: true, At: atT0}
	}
	for _, ch := range atomChannels {
		if r.IntN(3) == 0 {
			st.RefusedChannels = append(st.RefusedChannels, ch)
		}
	}
	slices.Sort(st.RefusedChannels)
	for _, c := range atomCats {
		if r.IntN(3) > 0 {
			g := atomGrant(c, atomPurposes[r.IntN(len(atomPurposes))], r.IntN(3), r.IntN(2) == 0)
			g.Granted = r.IntN(5) > 0
			st.Sensitive = append(st.Sensitive, g)
		}
	}
	for _, t := range atomTags {
		if r.IntN(2) == 0 {
			rec.Tags.Entries = append(rec.Tags.Entries, tags.Entry{Tag: t, Source: tags.Inferred, At: atT0})
		}
		if r.IntN(6) == 0 {
			rec.Tags.Suppressed = append(rec.Tags.Suppressed, tags.Suppression{Tag: t, At: atT0})
		}
	}
	slices.SortFunc(rec.Tags.Entries, func(a, b tags.Entry) int { return cmpTag(a.Tag, b.Tag) })
	slices.SortFunc(rec.Tags.Suppressed, func(a, b tags.Suppression) int { return cmpTag(a.Tag, b.Tag) })
	if r.IntN(10) == 0 && len(rec.Tags.Entries) > 1 {
		// Damaged: out of order, and a tag twice.
		es := rec.Tags.Entries
		es[0], es[len(es)-1] = es[len(es)-1], es[0]
		rec.Tags.Entries = append(es, es[0])
	}
	return rec
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

// atomUniverse is every atom the random records could make hold, and some
// that none can.
func atomUniverse() []tags.Atom {
	out := []tags.Atom{
		{Kind: tags.AtomPersonalizationOff}, {Kind: tags.AtomGuardian}, {Kind: tags.AtomMinor}, {Kind: tags.AtomErased},
		{Kind: tags.AtomTag, Tag: "interest:never"},
	}
	for _, ch := range append(slices.Clone(atomChannels), "in_app") {
		out = append(out, tags.Atom{Kind: tags.AtomRefused, Channel: ch})
	}
	for _, c := range tags.Categories() {
		out = append(out, tags.Atom{Kind: tags.AtomSensitive, Category: c})
	}
	for _, t := range atomTags {
		out = append(out, tags.Atom{Kind: tags.AtomTag, Tag: t})
	}
	return out
}

// HeldAtoms lists exactly the atoms AtomHolds says hold, each once.
func TestHeldAtomsAreTheAtomsThatHold(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	universe := atomUniverse()
	for i := 0; i < 5000; i++ {
		set := randomAtomSettings(r)
		rec := randomAtomRecord(r)
		purpose := atomPurposes[r.IntN(len(atomPurposes))]
		held := consent.HeldAtoms(rec, &set, purpose)
		for j, a := range held {
			if slices.Contains(held[:j], a) {
				t.Fatalf("HeldAtoms(%+v) lists %s twice: %v", rec, a, held)
			}
		}
		for _, a := range universe {
			if got, want := slices.Contains(held, a), consent.AtomHolds(a, rec, &set, purpose); got != want {
				t.Fatalf("record %+v, settings %+v, purpose %s: %s in HeldAtoms = %t, AtomHolds = %t (held %v)",
					rec, set, purpose, a, got, want, held)
			}
		}
	}
	if got := consent.HeldAtoms(nil, &consent.Settings{}, consent.PurposePush); got != nil {
		t.Errorf("HeldAtoms(nil) = %v", got)
	}
}

func randomAtomSegment(r *rand.Rand, universe []tags.Atom, depth int) *tags.Segment {
	if depth == 0 || r.IntN(3) == 0 {
		if r.IntN(10) == 0 {
			return &tags.Segment{Op: tags.OpAll}
		}
		return &tags.Segment{Op: tags.OpAtom, Atom: universe[r.IntN(len(universe))]}
	}
	switch r.IntN(3) {
	case 0:
		return &tags.Segment{Op: tags.OpNot, X: randomAtomSegment(r, universe, depth-1)}
	case 1:
		return &tags.Segment{Op: tags.OpAnd, X: randomAtomSegment(r, universe, depth-1), Y: randomAtomSegment(r, universe, depth-1)}
	}
	return &tags.Segment{Op: tags.OpOr, X: randomAtomSegment(r, universe, depth-1), Y: randomAtomSegment(r, universe, depth-1)}
}

// A push audience is the push rule of the decision path (Evaluate, then
// Decision.CanPush, targeted when the segment uses personal data) on top of
// the segment's meaning for the push purpose.
func TestInPushAudienceIsCanPushAndSegment(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	universe := atomUniverse()
	in := 0
	for i := 0; i < 5000; i++ {
		set := randomAtomSettings(r)
		rec := randomAtomRecord(r)
		seg := randomAtomSegment(r, universe, 3)
		ch := atomChannels[r.IntN(len(atomChannels))]
		targeted := r.IntN(2) == 0
		d := consent.Evaluate(rec.State, rec.Tags, &set)
		ok, _ := d.CanPush(ch, targeted || seg.UsesPersonalData())
		want := rec.Version > 0 && ok && consent.SegmentHolds(seg, rec, &set, consent.PurposePush)
		got := consent.InPushAudience(seg, rec, &set, ch, targeted)
		if got != want {
			t.Fatalf("InPushAudience(%s, %s, targeted=%t) = %t, want %t\nrecord %+v\nsettings %+v", seg, ch, targeted, got, want, rec, set)
		}
		if got {
			in++
		}
	}
	if in < 200 {
		t.Fatalf("only %d of 5000 random cases in the audience: the test proves little", in)
	}
	if consent.InPushAudience(tags.MustParseSegment("*"), nil, &consent.Settings{Channels: []string{"push"}}, "push", false) {
		t.Error("a nil record is in an audience")
	}
}

// A restricted user is in no push audience, targeted or not.
func TestInPushAudienceRestricted(t *testing.T) {
	set := consent.DefaultSettings()
	seg, err := tags.ParseSegment("*")
	if err != nil {
		t.Fatal(err)
	}
	rec := consent.Record{UserID: "u", Version: 1}
	if !consent.InPushAudience(seg, &rec, &set, "push", false) {
		t.Fatalf("an ordinary user is not in the untargeted audience")
	}
	rec.State.Restricted = true
	for _, targeted := range []bool{false, true} {
		if consent.InPushAudience(seg, &rec, &set, "push", targeted) {
			t.Errorf("restricted user in the audience (targeted=%t)", targeted)
		}
	}
	if consent.ShouldAsk(rec.State, consent.SensitiveKind(tags.MedicalHealth), &set, time.Now()) {
		t.Errorf("ShouldAsk says yes for a restricted user")
	}
}
