package consent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

func TestKinds(t *testing.T) {
	cases := []struct {
		got, want consent.Kind
	}{
		{consent.KindPersonalization, "personalization"},
		{consent.KindGuardian, "guardian"},
		{consent.ChannelKind("sms"), "channel:sms"},
		{consent.SensitiveKind(tags.MedicalHealth), "sensitive:medical_health"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("kind = %q, want %q", c.got, c.want)
		}
	}
}

func TestChannelRefused(t *testing.T) {
	st := consent.State{RefusedChannels: []string{"email", "push", "sms"}}
	for ch, want := range map[string]bool{"email": true, "push": true, "sms": true, "in_app": false, "": false, "a": false, "zzz": false, "pus": false} {
		if got := st.ChannelRefused(ch); got != want {
			t.Errorf("ChannelRefused(%q) = %t, want %t", ch, got, want)
		}
	}
	if (consent.State{}).ChannelRefused("push") {
		t.Error("zero State refuses push")
	}
}

func TestSensitiveGrantAndLastRefusal(t *testing.T) {
	g := grant("personalization", 2)
	st := consent.State{
		Sensitive: []consent.SensitiveConsent{{Category: tags.Religion, Grant: g}},
		Refusals:  []consent.Refusal{{Kind: "channel:sms", At: t0}, {Kind: "personalization", At: t0.Add(time.Hour)}},
	}
	if got, ok := st.SensitiveGrant(tags.Religion); !ok || got != g {
		t.Errorf("SensitiveGrant(religion) = %+v, %t; want %+v, true", got, ok, g)
	}
	if got, ok := st.SensitiveGrant(tags.Biometrics); ok || got != (consent.Grant{}) {
		t.Errorf("SensitiveGrant(biometrics) = %+v, %t; want zero, false", got, ok)
	}
	if at, ok := st.LastRefusal(consent.KindPersonalization); !ok || !at.Equal(t0.Add(time.Hour)) {
		t.Errorf("LastRefusal(personalization) = %v, %t; want %v, true", at, ok, t0.Add(time.Hour))
	}
	if at, ok := st.LastRefusal(consent.ChannelKind("sms")); !ok || !at.Equal(t0) {
		t.Errorf("LastRefusal(channel:sms) = %v, %t; want %v, true", at, ok, t0)
	}
	if at, ok := st.LastRefusal(consent.KindGuardian); ok || !at.IsZero() {
		t.Errorf("LastRefusal(guardian) = %v, %t; want zero, false", at, ok)
	}
}

func TestGuardianOK(t *testing.T) {
	cases := []struct {
		name string
		st   consent.State
		gVer int
		want bool
	}{
		{"adult", consent.State{}, 1, true},
		{"adult with withdrawn guardian", consent.State{Guardian: &consent.Grant{}}, 1, true},
		{"minor, never", consent.State{Minor: true}, 1, false},
		{"minor, withdrawn", consent.State{Minor: true, Guardian: &consent.Grant{PolicyVersion: 1}}, 1, false},
		{"minor, current", consent.State{Minor: true, Guardian: guardianGrant(1)}, 1, true},
		{"minor, newer", consent.State{Minor: true, Guardian: guardianGrant(2)}, 1, true},
		{"minor, older", consent.State{Minor: true, Guardian: guardianGrant(1)}, 2, false},
		{"minor, no policy listed", consent.State{Minor: true, Guardian: guardianGrant(0)}, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set := withPolicy(testSettings(), consent.PurposeGuardian, c.gVer)
			if got := c.st.GuardianOK(set); got != c.want {
				t.Errorf("GuardianOK = %t, want %t", got, c.want)
			}
		})
	}
}

func byGuardian(purpose string, v int) consent.Grant {
	g := grant(purpose, v)
	g.ByGuardian = true
	return g
}

func TestSensitiveOK(t *testing.T) {
	cases := []struct {
		name string
		sc   []consent.SensitiveConsent
		want bool
	}{
		{"never", nil, false},
		{"other category", []consent.SensitiveConsent{{Category: tags.Biometrics, Grant: grant("personalization", 1)}}, false},
		{"current", []consent.SensitiveConsent{{Category: tags.Religion, Grant: grant("personalization", 1)}}, true},
		{"newer than policy", []consent.SensitiveConsent{{Category: tags.Religion, Grant: grant("personalization", 5)}}, true},
		{"older than policy", []consent.SensitiveConsent{{Category: tags.Religion, Grant: grant("personalization", 0)}}, false},
		{"withdrawn", []consent.SensitiveConsent{{Category: tags.Religion, Grant: consent.Grant{Purpose: "personalization", PolicyVersion: 1}}}, false},
		{"purpose with a newer policy", []consent.SensitiveConsent{{Category: tags.Religion, Grant: grant("ads", 1)}}, false},
		{"purpose at policy version 0, not personalization", []consent.SensitiveConsent{{Category: tags.Religion, Grant: grant("research", 0)}}, false},
		{"current for ads, not personalization", []consent.SensitiveConsent{{Category: tags.Religion, Grant: grant("ads", 2)}}, false},
		{"minor, granted by the minor", []consent.SensitiveConsent{{Category: tags.Religion, Grant: grant("personalization", 1)}}, false},
		{"minor, granted by the guardian", []consent.SensitiveConsent{{Category: tags.Religion, Grant: byGuardian("personalization", 1)}}, true},
	}
	set := withPolicy(testSettings(), "ads", 2)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := consent.State{Sensitive: c.sc, Minor: strings.HasPrefix(c.name, "minor")}
			if got := st.SensitiveOK(tags.Religion, set); got != c.want {
				t.Errorf("SensitiveOK(religion) = %t, want %t", got, c.want)
			}
		})
	}
}

// Art. 22(4): a consent counts only for the purpose it was given for, and a
// policy bump voids older consents for its purpose unless the purpose keeps
// them (Settings.KeepOnBump).
func TestSensitiveOKFor(t *testing.T) {
	set := withPolicy(testSettings(), "ads", 2)
	st := consent.State{Sensitive: []consent.SensitiveConsent{{Category: tags.Religion, Grant: grant("ads", 2)}}}
	for _, c := range []struct {
		purpose string
		want    bool
	}{{"ads", true}, {consent.PurposePersonalization, false}, {consent.PurposePush, false}} {
		if got := st.SensitiveOKFor(tags.Religion, c.purpose, set); got != c.want {
			t.Errorf("ads consent: SensitiveOKFor(religion, %s) = %t, want %t", c.purpose, got, c.want)
		}
	}
	if !st.SensitiveHeld(tags.Religion, set) {
		t.Error("SensitiveHeld(religion) = false for a current ads consent")
	}
	bumped := withPolicy(set, "ads", 3)
	if st.SensitiveOKFor(tags.Religion, "ads", bumped) || st.SensitiveHeld(tags.Religion, bumped) {
		t.Error("an ads consent under v2 still counts after ads moved to v3")
	}
	bumped.KeepOnBump = []string{"ads"}
	if !st.SensitiveOKFor(tags.Religion, "ads", bumped) {
		t.Error("an ads consent under v2 does not count after a bump to v3 although ads keeps consents on bumps")
	}
}

func TestShouldAsk(t *testing.T) {
	cooldown := consent.DefaultReaskCooldown
	refusedAt := t0
	inside := refusedAt.Add(cooldown - time.Nanosecond)
	boundary := refusedAt.Add(cooldown)
	after := refusedAt.Add(cooldown + time.Hour)
	refusal := func(k consent.Kind) []consent.Refusal { return []consent.Refusal{{Kind: k, At: refusedAt}} }
	withdrawnGuardian := &consent.Grant{Purpose: "guardian", PolicyVersion: 1, ByGuardian: true, At: refusedAt}
	withdrawnReligion := []consent.SensitiveConsent{{Category: tags.Religion, Grant: consent.Grant{Purpose: "personalization", PolicyVersion: 1, At: refusedAt}}}
	currentReligion := []consent.SensitiveConsent{{Category: tags.Religion, Grant: grant("personalization", 1)}}

	cases := []struct {
		name string
		st   consent.State
		kind consent.Kind
		now  time.Time
		mod  func(*consent.Settings)
		want bool
	}{
		// Personalization.
		{"personalization on: nothing to ask", consent.State{}, consent.KindPersonalization, after, nil, false},
		{"personalization off, no refusal on record", consent.State{PersonalizationOff: true}, consent.KindPersonalization, t0, nil, true},
		{"personalization off inside cooldown", consent.State{PersonalizationOff: true, Refusals: refusal(consent.KindPersonalization)}, consent.KindPersonalization, inside, nil, false},
		{"personalization off at the end of the cooldown", consent.State{PersonalizationOff: true, Refusals: refusal(consent.KindPersonalization)}, consent.KindPersonalization, boundary, nil, true},
		{"personalization off after cooldown", consent.State{PersonalizationOff: true, Refusals: refusal(consent.KindPersonalization)}, consent.KindPersonalization, after, nil, true},
		{"personalization off, zero cooldown", consent.State{PersonalizationOff: true, Refusals: refusal(consent.KindPersonalization)}, consent.KindPersonalization, refusedAt, func(s *consent.Settings) { s.ReaskCooldown = 0 }, true},
		{"personalization off, other kind refused recently", consent.State{PersonalizationOff: true, Refusals: refusal(consent.ChannelKind("sms"))}, consent.KindPersonalization, inside, nil, true},
		{"personalization off, clock before refusal", consent.State{PersonalizationOff: true, Refusals: refusal(consent.KindPersonalization)}, consent.KindPersonalization, refusedAt.Add(-time.Hour), nil, false},
		// Guardian.
		{"guardian for an adult", consent.State{}, consent.KindGuardian, after, nil, false},
		{"guardian in force", consent.State{Minor: true, Guardian: guardianGrant(1)}, consent.KindGuardian, after, nil, false},
		{"guardian never asked", consent.State{Minor: true}, consent.KindGuardian, t0, nil, true},
		{"guardian withdrawn inside cooldown", consent.State{Minor: true, Guardian: withdrawnGuardian, Refusals: refusal(consent.KindGuardian)}, consent.KindGuardian, inside, nil, false},
		{"guardian withdrawn after cooldown", consent.State{Minor: true, Guardian: withdrawnGuardian, Refusals: refusal(consent.KindGuardian)}, consent.KindGuardian, after, nil, true},
		{"guardian under an old policy", consent.State{Minor: true, Guardian: guardianGrant(1)}, consent.KindGuardian, t0, func(s *consent.Settings) { s.Policies["guardian"] = 2 }, true},
		// Channels.
		{"channel not refused", consent.State{}, consent.ChannelKind("sms"), after, nil, false},
		{"channel refused inside cooldown", consent.State{RefusedChannels: []string{"sms"}, Refusals: refusal(consent.ChannelKind("sms"))}, consent.ChannelKind("sms"), inside, nil, false},
		{"channel refused after cooldown", consent.State{RefusedChannels: []string{"sms"}, Refusals: refusal(consent.ChannelKind("sms"))}, consent.ChannelKind("sms"), after, nil, true},
		{"channel refused, other channel's refusal recent", consent.State{RefusedChannels: []string{"sms"}, Refusals: refusal(consent.ChannelKind("push"))}, consent.ChannelKind("sms"), inside, nil, true},
		{"channel kind without a name", consent.State{RefusedChannels: []string{"sms"}}, "channel:", after, nil, false},
		// Sensitive.
		{"sensitive in force", consent.State{Sensitive: currentReligion}, consent.SensitiveKind(tags.Religion), after, nil, false},
		{"sensitive never asked", consent.State{}, consent.SensitiveKind(tags.Religion), t0, nil, true},
		{"sensitive withdrawn inside cooldown", consent.State{Sensitive: withdrawnReligion, Refusals: refusal(consent.SensitiveKind(tags.Religion))}, consent.SensitiveKind(tags.Religion), inside, nil, false},
		{"sensitive withdrawn after cooldown", consent.State{Sensitive: withdrawnReligion, Refusals: refusal(consent.SensitiveKind(tags.Religion))}, consent.SensitiveKind(tags.Religion), after, nil, true},
		{"sensitive under an old policy", consent.State{Sensitive: currentReligion}, consent.SensitiveKind(tags.Religion), t0, func(s *consent.Settings) { s.Policies["personalization"] = 2 }, true},
		{"sensitive kind without a category", consent.State{}, "sensitive:", after, nil, false},
		// Unknown kinds are never asked for.
		{"empty kind", consent.State{PersonalizationOff: true}, "", after, nil, false},
		{"unknown kind", consent.State{PersonalizationOff: true}, "marketing", after, nil, false},
		{"kind with wrong case", consent.State{PersonalizationOff: true}, "Personalization", after, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set := testSettings()
			if c.mod != nil {
				c.mod(set)
			}
			if got := consent.ShouldAsk(c.st, c.kind, set, c.now); got != c.want {
				t.Errorf("ShouldAsk(%q, now=%v) = %t, want %t", c.kind, c.now, got, c.want)
			}
		})
	}
}

// TestShouldAskAfterApply checks that the refusals Apply records drive the
// cooldown.
func TestShouldAskAfterApply(t *testing.T) {
	set := testSettings()
	r, _ := replay(t, set,
		consent.GrantSensitive(user, tags.Biometrics, "personalization"),
		consent.SetPersonalization(user, false),
		consent.RefuseChannel(user, "push"),
		consent.WithdrawSensitive(user, tags.Biometrics),
	)
	last := t0.Add(3 * time.Minute)
	for _, k := range []consent.Kind{consent.KindPersonalization, consent.ChannelKind("push"), consent.SensitiveKind(tags.Biometrics)} {
		if consent.ShouldAsk(r.State, k, set, last.Add(24*time.Hour)) {
			t.Errorf("ShouldAsk(%q) a day after the refusal = true, want false", k)
		}
		if !consent.ShouldAsk(r.State, k, set, last.Add(set.ReaskCooldown)) {
			t.Errorf("ShouldAsk(%q) after the cooldown = false, want true", k)
		}
	}
	if consent.ShouldAsk(r.State, consent.ChannelKind("sms"), set, last) {
		t.Error("ShouldAsk(channel:sms) = true for a channel never refused")
	}
}
