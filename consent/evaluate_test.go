package consent_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

// tagSet builds a tags.Set directly (bypassing Add) so tests can also build
// the inconsistent sets a corrupted store might hold.
func tagSet(entries []string, suppressed ...string) tags.Set {
	var s tags.Set
	for _, e := range entries {
		s.Entries = append(s.Entries, tags.Entry{Tag: tags.Tag(e), Source: tags.Inferred, At: t0})
	}
	for _, p := range suppressed {
		s.Suppressed = append(s.Suppressed, tags.Suppression{Tag: tags.Tag(p), At: t0})
	}
	return s
}

func grant(purpose string, version int) consent.Grant {
	return consent.Grant{Granted: true, Purpose: purpose, PolicyVersion: version, At: t0}
}

func guardianGrant(version int) *consent.Grant {
	return &consent.Grant{Granted: true, Purpose: consent.PurposeGuardian, PolicyVersion: version, ByGuardian: true, At: t0}
}

func TestEvaluate(t *testing.T) {
	allTags := tagSet([]string{"ethnic:han", "interest:ski", "medical_health:diabetes", "region:sh"})
	allChannels := []string{"email", "in_app", "push", "sms"}
	cases := []struct {
		name     string
		st       consent.State
		ts       tags.Set
		mod      func(*consent.Settings)
		want     consent.Decision
		wantNote string
	}{
		{
			name: "unknown user is personalized",
			ts:   allTags,
			want: consent.Decision{Personalized: true, Reason: consent.ReasonPersonalized,
				Tags: tagSlice("interest:ski", "region:sh"), Channels: allChannels},
		},
		{
			name: "no tags",
			want: consent.Decision{Personalized: true, Reason: consent.ReasonPersonalized, Channels: allChannels},
		},
		{
			name: "sensitive tags with consent",
			st:   consent.State{Sensitive: []consent.SensitiveConsent{{Category: tags.MedicalHealth, Grant: grant("personalization", 1)}}},
			ts:   allTags,
			want: consent.Decision{Personalized: true, Reason: consent.ReasonPersonalized,
				Tags: tagSlice("interest:ski", "medical_health:diabetes", "region:sh"), Channels: allChannels},
		},
		{
			name: "refused channels",
			st:   consent.State{RefusedChannels: []string{"fax", "push", "sms"}},
			want: consent.Decision{Personalized: true, Reason: consent.ReasonPersonalized,
				Channels: []string{"email", "in_app"}, Refused: []string{"push", "sms"}},
		},
		{
			name: "opted out",
			st:   consent.State{PersonalizationOff: true, RefusedChannels: []string{"email"}},
			ts:   allTags,
			want: consent.Decision{Reason: consent.ReasonOptedOut, Channels: []string{"in_app", "push", "sms"}, Refused: []string{"email"}},
		},
		{
			name: "minor without guardian",
			st:   consent.State{Minor: true},
			ts:   allTags,
			want: consent.Decision{Reason: consent.ReasonMinorNoGuardian, Channels: allChannels},
		},
		{
			name: "minor without guardian beats opted out",
			st:   consent.State{Minor: true, PersonalizationOff: true},
			want: consent.Decision{Reason: consent.ReasonMinorNoGuardian, Channels: allChannels},
		},
		{
			name: "minor with withdrawn guardian consent",
			st:   consent.State{Minor: true, Guardian: &consent.Grant{Purpose: "guardian", PolicyVersion: 1, ByGuardian: true}},
			want: consent.Decision{Reason: consent.ReasonMinorNoGuardian, Channels: allChannels},
		},
		{
			name: "minor with guardian consent under an old policy",
			st:   consent.State{Minor: true, Guardian: guardianGrant(1)},
			mod:  func(s *consent.Settings) { s.Policies["guardian"] = 2 },
			want: consent.Decision{Reason: consent.ReasonMinorNoGuardian, Channels: allChannels},
		},
		{
			name: "minor with current guardian consent",
			st:   consent.State{Minor: true, Guardian: guardianGrant(1)},
			ts:   allTags,
			want: consent.Decision{Personalized: true, Reason: consent.ReasonPersonalized,
				Tags: tagSlice("interest:ski", "region:sh"), Channels: allChannels},
		},
		{
			name: "minor with guardian consent newer than the policy",
			st:   consent.State{Minor: true, Guardian: guardianGrant(3)},
			want: consent.Decision{Personalized: true, Reason: consent.ReasonPersonalized, Channels: allChannels},
		},
		{
			name: "minor with guardian opted out",
			st:   consent.State{Minor: true, Guardian: guardianGrant(1), PersonalizationOff: true},
			want: consent.Decision{Reason: consent.ReasonOptedOut, Channels: allChannels},
		},
		{
			name: "erased",
			st:   consent.State{Erased: true},
			ts:   allTags,
			want: consent.Decision{Reason: consent.ReasonErased, PushBlock: consent.ReasonErased, Channels: allChannels},
		},
		{
			name: "erased beats minor and opted out",
			st:   consent.State{Erased: true, Minor: true, PersonalizationOff: true},
			want: consent.Decision{Reason: consent.ReasonErased, PushBlock: consent.ReasonErased, Channels: allChannels},
		},
		{
			name: "suspended",
			ts:   allTags,
			mod:  func(s *consent.Settings) { s.Suspended = true },
			want: consent.Decision{Reason: consent.ReasonSuspended, PushBlock: consent.ReasonSuspended, Channels: allChannels},
		},
		{
			name: "suspended beats erased",
			st:   consent.State{Erased: true, RefusedChannels: []string{"sms"}},
			mod:  func(s *consent.Settings) { s.Suspended = true },
			want: consent.Decision{Reason: consent.ReasonSuspended, PushBlock: consent.ReasonSuspended,
				Channels: []string{"email", "in_app", "push"}, Refused: []string{"sms"}},
		},
		{
			name: "no channels configured",
			mod:  func(s *consent.Settings) { s.Channels = nil },
			st:   consent.State{RefusedChannels: []string{"sms"}},
			want: consent.Decision{Personalized: true, Reason: consent.ReasonPersonalized},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set := testSettings()
			if c.mod != nil {
				c.mod(set)
			}
			stSnap, tsSnap := mustJSON(t, c.st), mustJSON(t, c.ts)
			got := consent.Evaluate(c.st, c.ts, set)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("Evaluate =\n%+v\nwant\n%+v", got, c.want)
			}
			if mustJSON(t, c.st) != stSnap || mustJSON(t, c.ts) != tsSnap {
				t.Error("Evaluate modified its arguments")
			}
			if !got.Personalized && got.Tags != nil {
				t.Errorf("not personalized but Tags = %v", got.Tags)
			}
		})
	}
}

func TestUsableTags(t *testing.T) {
	ts := tagSet([]string{
		"biometrics:face", "ethnic:han", "interest:ski", "medical_health:diabetes", "region:sh", "religion:buddhism", "whereabouts:home",
	})
	cases := []struct {
		name string
		st   consent.State
		ts   tags.Set
		mod  func(*consent.Settings)
		want []tags.Tag
	}{
		{"no consent: ordinary only", consent.State{}, ts, nil, tagSlice("interest:ski", "region:sh")},
		{"empty set", consent.State{}, tags.Set{}, nil, nil},
		{
			"current consents",
			consent.State{Sensitive: []consent.SensitiveConsent{
				{Category: tags.Biometrics, Grant: grant("personalization", 1)},
				{Category: tags.Religion, Grant: grant("personalization", 1)},
			}},
			ts, nil,
			tagSlice("biometrics:face", "interest:ski", "region:sh", "religion:buddhism"),
		},
		{
			"withdrawn consent",
			consent.State{Sensitive: []consent.SensitiveConsent{{Category: tags.Religion, Grant: consent.Grant{Purpose: "personalization", PolicyVersion: 1}}}},
			ts, nil,
			tagSlice("interest:ski", "region:sh"),
		},
		{
			"consent under an old policy",
			consent.State{Sensitive: []consent.SensitiveConsent{{Category: tags.Religion, Grant: grant("personalization", 1)}}},
			ts, func(s *consent.Settings) { s.Policies["personalization"] = 2 },
			tagSlice("interest:ski", "region:sh"),
		},
		{
			"consent for another purpose does not count for personalization (Art. 22(4))",
			consent.State{Sensitive: []consent.SensitiveConsent{{Category: tags.Whereabouts, Grant: grant("ads", 4)}}},
			ts, func(s *consent.Settings) { s.Policies["ads"] = 4; s.Policies["personalization"] = 9 },
			tagSlice("interest:ski", "region:sh"),
		},
		{
			"consent for personalization judged by that purpose's policy",
			consent.State{Sensitive: []consent.SensitiveConsent{{Category: tags.Whereabouts, Grant: grant("personalization", 9)}}},
			ts, func(s *consent.Settings) { s.Policies["ads"] = 4; s.Policies["personalization"] = 9 },
			tagSlice("interest:ski", "region:sh", "whereabouts:home"),
		},
		{
			"suppressed entry is never used",
			consent.State{},
			tagSet([]string{"interest:golf", "interest:ski"}, "interest:ski"),
			nil,
			tagSlice("interest:golf"),
		},
		{
			"prohibited even when marked sensitive with consent",
			consent.State{Sensitive: []consent.SensitiveConsent{{Category: tags.SpecificIdentity, Grant: grant("personalization", 1)}}},
			tagSet([]string{"ethnic:han"}),
			func(s *consent.Settings) {
				s.Taxonomy["ethnic"] = tags.Namespace{Sensitive: tags.SpecificIdentity, Prohibited: true}
			},
			nil,
		},
		{"nil taxonomy: everything ordinary", consent.State{}, ts, func(s *consent.Settings) { s.Taxonomy = nil },
			tagSlice("biometrics:face", "ethnic:han", "interest:ski", "medical_health:diabetes", "region:sh", "religion:buddhism", "whereabouts:home")},
		{"minor without guardian", consent.State{Minor: true}, ts, nil, nil},
		{"minor with guardian", consent.State{Minor: true, Guardian: guardianGrant(1)}, ts, nil, tagSlice("interest:ski", "region:sh")},
		{"erased", consent.State{Erased: true}, ts, nil, nil},
		// UsableTags ignores the opt-out switch: Evaluate decides that.
		{"opted out", consent.State{PersonalizationOff: true}, ts, nil, tagSlice("interest:ski", "region:sh")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set := testSettings()
			if c.mod != nil {
				c.mod(set)
			}
			if got := consent.UsableTags(c.st, c.ts, set); !reflect.DeepEqual(got, c.want) {
				t.Errorf("UsableTags = %v, want %v", got, c.want)
			}
		})
	}
}

func TestCanPush(t *testing.T) {
	open := consent.Decision{Personalized: true, Reason: consent.ReasonPersonalized, Channels: []string{"email", "push"}, Refused: []string{"sms"}}
	optedOut := consent.Decision{Reason: consent.ReasonOptedOut, Channels: []string{"email", "push"}, Refused: []string{"sms"}}
	minor := consent.Decision{Reason: consent.ReasonMinorNoGuardian, Channels: []string{"push"}}
	suspended := consent.Decision{Reason: consent.ReasonSuspended, PushBlock: consent.ReasonSuspended, Channels: []string{"push"}}
	erased := consent.Decision{Reason: consent.ReasonErased, PushBlock: consent.ReasonErased, Channels: []string{"push"}}
	cases := []struct {
		name       string
		d          consent.Decision
		channel    string
		targeted   bool
		wantOK     bool
		wantReason consent.Reason
	}{
		{"allowed untargeted", open, "push", false, true, consent.ReasonAllowed},
		{"allowed targeted", open, "email", true, true, consent.ReasonAllowed},
		{"refused channel", open, "sms", false, false, consent.ReasonChannelRefused},
		{"refused channel targeted", open, "sms", true, false, consent.ReasonChannelRefused},
		{"unknown channel", open, "fax", false, false, consent.ReasonUnknownChannel},
		{"opted out untargeted", optedOut, "push", false, true, consent.ReasonAllowed},
		{"opted out targeted", optedOut, "push", true, false, consent.ReasonOptedOut},
		{"opted out refused", optedOut, "sms", true, false, consent.ReasonChannelRefused},
		{"minor targeted", minor, "push", true, false, consent.ReasonMinorNoGuardian},
		{"minor untargeted", minor, "push", false, true, consent.ReasonAllowed},
		{"suspended", suspended, "push", false, false, consent.ReasonSuspended},
		{"suspended targeted", suspended, "push", true, false, consent.ReasonSuspended},
		{"suspended unknown channel", suspended, "fax", false, false, consent.ReasonSuspended},
		{"erased", erased, "push", false, false, consent.ReasonErased},
		{"zero decision", consent.Decision{}, "push", false, false, consent.ReasonUnknownChannel},
		{"zero decision targeted", consent.Decision{}, "push", true, false, consent.ReasonUnknownChannel},
		{"not personalized, unknown reason, targeted", consent.Decision{Channels: []string{"push"}}, "push", true, false, consent.ReasonUnknown},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ok, reason := c.d.CanPush(c.channel, c.targeted)
			if ok != c.wantOK || reason != c.wantReason {
				t.Errorf("CanPush(%q, targeted=%t) = %t, %s; want %t, %s", c.channel, c.targeted, ok, reason, c.wantOK, c.wantReason)
			}
		})
	}
}

func TestCanPushFromEvaluate(t *testing.T) {
	set := testSettings()
	st := consent.State{PersonalizationOff: true, RefusedChannels: []string{"sms"}}
	d := consent.Evaluate(st, tags.Set{}, set)
	for _, c := range []struct {
		ch       string
		targeted bool
		ok       bool
		reason   consent.Reason
	}{
		{"push", false, true, consent.ReasonAllowed},
		{"push", true, false, consent.ReasonOptedOut},
		{"sms", false, false, consent.ReasonChannelRefused},
		{"fax", false, false, consent.ReasonUnknownChannel},
	} {
		if ok, r := d.CanPush(c.ch, c.targeted); ok != c.ok || r != c.reason {
			t.Errorf("CanPush(%q, %t) = %t, %s; want %t, %s", c.ch, c.targeted, ok, r, c.ok, c.reason)
		}
	}
}

func TestCanPushDoesNotAllocate(t *testing.T) {
	d := consent.Evaluate(consent.State{RefusedChannels: []string{"sms"}}, tags.Set{}, testSettings())
	allocs := testing.AllocsPerRun(100, func() {
		d.CanPush("push", true)
		d.CanPush("sms", false)
		d.CanPush("fax", false)
	})
	if allocs != 0 {
		t.Errorf("CanPush allocates %.1f times per run, want 0", allocs)
	}
}

func TestReasonNames(t *testing.T) {
	want := map[consent.Reason]string{
		consent.ReasonUnknown:         "unknown",
		consent.ReasonPersonalized:    "personalized",
		consent.ReasonAllowed:         "allowed",
		consent.ReasonOptedOut:        "personalization_off",
		consent.ReasonMinorNoGuardian: "minor_without_guardian_consent",
		consent.ReasonErased:          "erased",
		consent.ReasonSuspended:       "suspended",
		consent.ReasonChannelRefused:  "channel_refused",
		consent.ReasonUnknownChannel:  "unknown_channel",
		consent.ReasonUnverified:      "unverified",
		consent.ReasonUnavailable:     "unavailable",
		consent.ReasonDataLoss:        "data_loss",
	}
	seen := map[string]bool{}
	for r := consent.Reason(0); r <= consent.ReasonDataLoss; r++ {
		name := r.String()
		if name != want[r] {
			t.Errorf("Reason(%d).String() = %q, want %q", r, name, want[r])
		}
		if seen[name] {
			t.Errorf("name %q used twice", name)
		}
		seen[name] = true
		b, err := r.MarshalText()
		if err != nil || string(b) != name {
			t.Errorf("Reason(%d).MarshalText() = %q, %v; want %q, nil", r, b, err, name)
		}
		var back consent.Reason = 99
		if err := back.UnmarshalText(b); err != nil || back != r {
			t.Errorf("UnmarshalText(%q) = %d, %v; want %d, nil", b, back, err, r)
		}
	}
	if len(want) != int(consent.ReasonDataLoss)+1 {
		t.Errorf("test table has %d reasons, want %d", len(want), consent.ReasonDataLoss+1)
	}
}

func TestReasonOutOfRange(t *testing.T) {
	for _, c := range []struct {
		r    consent.Reason
		want string
	}{
		{consent.ReasonRestricted + 1, "reason(13)"},
		{200, "reason(200)"},
		{255, "reason(255)"},
	} {
		if got := c.r.String(); got != c.want {
			t.Errorf("Reason(%d).String() = %q, want %q", uint8(c.r), got, c.want)
		}
		// An out-of-range name does not decode back to a reason.
		var r consent.Reason
		if err := r.UnmarshalText([]byte(c.want)); err == nil {
			t.Errorf("UnmarshalText(%q) = nil error, want one", c.want)
		}
	}
}

func TestReasonUnmarshalUnknown(t *testing.T) {
	for _, s := range []string{"", "Personalized", "personalized ", "opted_out", strings.Repeat("x", 300)} {
		r := consent.ReasonAllowed
		err := r.UnmarshalText([]byte(s))
		if err == nil {
			t.Errorf("UnmarshalText(%q) = nil, want an error", s)
			continue
		}
		if r != consent.ReasonAllowed {
			t.Errorf("UnmarshalText(%q) changed the reason to %s on error", s, r)
		}
		if !strings.HasPrefix(err.Error(), "consent: unknown reason") || len(err.Error()) > 200 {
			t.Errorf("UnmarshalText(%q) error = %q, want a short 'consent: unknown reason' message", s, err)
		}
	}
}

func TestDecisionJSON(t *testing.T) {
	d := consent.Decision{Reason: consent.ReasonOptedOut, Channels: []string{"push"}, Refused: []string{"sms"}, PushBlock: consent.ReasonUnknown,
		Basis: consent.Basis{RecordVersion: 7, SettingsVersion: 3, ID: consent.DecisionID{1, 2, 3}}}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	// The basis's versions are in the JSON; its ID is not (the server
	// answers with a signed one).
	want := `{"personalized":false,"reason":"personalization_off","tags":null,"channels":["push"],"refused_channels":["sms"],"record_version":7,"settings_version":3}`
	if string(b) != want {
		t.Errorf("json = %s\nwant   %s", b, want)
	}
	var back consent.Decision
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	d.ID = consent.DecisionID{}
	if !reflect.DeepEqual(back, d) {
		t.Errorf("round trip = %+v, want %+v", back, d)
	}
	blocked := consent.Decision{Reason: consent.ReasonSuspended, PushBlock: consent.ReasonSuspended}
	b, _ = json.Marshal(blocked)
	if !strings.Contains(string(b), `"push_block":"suspended"`) {
		t.Errorf("json = %s, want push_block by name", b)
	}
	if err := json.Unmarshal([]byte(`{"reason":"nonsense"}`), &back); err == nil {
		t.Error("decoding an unknown reason name succeeded")
	}
}
