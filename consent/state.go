package consent

import (
	"sort"
	"time"

	"github.com/recguard/recguard/tags"
)

// State is what one user has agreed to and refused. The zero State is a user
// we know nothing about: personalization on (the switch is off-by-choice,
// Art. 42), no channel refused, no sensitive consent, not a minor.
//
// A State is a value: methods never modify the receiver, and Record.Apply
// builds a new State for every change, so a State may be shared once built.
type State struct {
	// PersonalizationOff is the Art. 42 switch: true when the user turned
	// personalized recommendation off.
	PersonalizationOff bool `json:"personalization_off,omitempty"`
	// RefusedChannels are the push channels the user refused, sorted.
	RefusedChannels []string `json:"refused_channels,omitempty"`
	// Sensitive holds the separate consent per sensitive category (Art. 22),
	// sorted by category. A category not listed has never been granted.
	Sensitive []SensitiveConsent `json:"sensitive,omitempty"`
	// Minor is true for a user under 14.
	Minor bool `json:"minor,omitempty"`
	// Guardian is the guardian's consent for a minor; nil if never given.
	Guardian *Grant `json:"guardian,omitempty"`
	// Refusals is the time of the last refusal per consent kind (see
	// Kind), sorted by kind; ShouldAsk uses it for the re-ask cooldown.
	Refusals []Refusal `json:"refusals,omitempty"`
	// Restricted is the Art. 23 restriction of processing: the user's data
	// is stored and nothing else (no personalization, no pushes, no
	// inference, no audience, no audit) until the user lifts it.
	Restricted bool `json:"restricted,omitempty"`
	// Erased is set when the user's personal data was erased. An erased user
	// is never personalized and receives no pushes until the user's own next
	// change brings them back.
	Erased bool `json:"erased,omitempty"`
}

// Grant is a consent given under a policy version for a purpose.
type Grant struct {
	Granted       bool      `json:"granted"`
	Purpose       string    `json:"purpose,omitempty"`
	PolicyVersion int       `json:"policy_version"`
	ByGuardian    bool      `json:"by_guardian,omitempty"`
	At            time.Time `json:"at"`
}

// SensitiveConsent is the separate consent for one sensitive category.
type SensitiveConsent struct {
	Category tags.Category `json:"category"`
	Grant
}

// Refusal records when a consent kind was last refused or withdrawn.
type Refusal struct {
	Kind Kind      `json:"kind"`
	At   time.Time `json:"at"`
}

// Kind names one thing a user can be asked for: "personalization",
// "guardian", "channel:<name>" or "sensitive:<category>".
type Kind string

// Kinds of consent.
const (
	KindPersonalization Kind = "personalization"
	KindGuardian        Kind = "guardian"
)

// ChannelKind is the Kind of a push channel's consent.
func ChannelKind(channel string) Kind { return Kind("channel:" + channel) }

// SensitiveKind is the Kind of a sensitive category's consent.
func SensitiveKind(c tags.Category) Kind { return Kind("sensitive:" + string(c)) }

// ChannelRefused reports whether the user refused channel.
func (s State) ChannelRefused(channel string) bool {
	i := sort.SearchStrings(s.RefusedChannels, channel)
	return i < len(s.RefusedChannels) && s.RefusedChannels[i] == channel
}

// SensitiveGrant returns the consent recorded for category c, if any.
func (s State) SensitiveGrant(c tags.Category) (Grant, bool) {
	for _, sc := range s.Sensitive {
		if sc.Category == c {
			return sc.Grant, true
		}
	}
	return Grant{}, false
}

// LastRefusal returns when kind k was last refused, if ever.
func (s State) LastRefusal(k Kind) (time.Time, bool) {
	for _, r := range s.Refusals {
		if r.Kind == k {
			return r.At, true
		}
	}
	return time.Time{}, false
}

// GuardianOK reports whether a minor's data may be used: always for an adult,
// for a minor only with a guardian consent under the current policy version
// (or an earlier one, when the guardian purpose keeps consents on bumps).
func (s State) GuardianOK(set *Settings) bool {
	if !s.Minor {
		return true
	}
	return s.Guardian != nil && s.Guardian.Granted && set.GrantCurrent(PurposeGuardian, s.Guardian.PolicyVersion)
}

// SensitiveOK reports whether category c may be used for personalized
// recommendation: SensitiveOKFor with PurposePersonalization.
func (s State) SensitiveOK(c tags.Category, set *Settings) bool {
	return s.SensitiveOKFor(c, PurposePersonalization, set)
}

// SensitiveOKFor reports whether category c has a separate consent that
// counts now for purpose (Art. 22(4): a consent counts only for the purpose
// it was given for): granted for that purpose, under its current policy
// version (Art. 22: a changed purpose needs consent again; see
// Settings.KeepOnBump), and for a minor given by the guardian.
func (s State) SensitiveOKFor(c tags.Category, purpose string, set *Settings) bool {
	g, ok := s.SensitiveGrant(c)
	if !ok || !g.Granted || g.Purpose != purpose || !set.GrantCurrent(g.Purpose, g.PolicyVersion) {
		return false
	}
	return !s.Minor || g.ByGuardian
}

// SensitiveHeld reports whether category c has a separate consent that
// counts now for some purpose: tags of the category may be stored (and used
// only for that purpose).
func (s State) SensitiveHeld(c tags.Category, set *Settings) bool {
	g, ok := s.SensitiveGrant(c)
	return ok && g.Granted && s.SensitiveOKFor(c, g.Purpose, set)
}

func (s State) withChannel(channel string, refused bool) State {
	out := make([]string, 0, len(s.RefusedChannels)+1)
	for _, c := range s.RefusedChannels {
		if c != channel {
			out = append(out, c)
		}
	}
	if refused {
		out = append(out, channel)
		sort.Strings(out)
	}
	if len(out) == 0 {
		out = nil
	}
	s.RefusedChannels = out
	return s
}

func (s State) withSensitive(sc SensitiveConsent) State {
	out := make([]SensitiveConsent, 0, len(s.Sensitive)+1)
	for _, x := range s.Sensitive {
		if x.Category != sc.Category {
			out = append(out, x)
		}
	}
	out = append(out, sc)
	sort.Slice(out, func(i, j int) bool { return out[i].Category < out[j].Category })
	s.Sensitive = out
	return s
}

func (s State) withRefusal(k Kind, at time.Time) State {
	out := make([]Refusal, 0, len(s.Refusals)+1)
	for _, r := range s.Refusals {
		if r.Kind != k {
			out = append(out, r)
		}
	}
	out = append(out, Refusal{Kind: k, At: at})
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	s.Refusals = out
	return s
}

// ShouldAsk reports whether the app may ask the user for consent kind k now.
// It says no when the consent is already in force, no for an erased user
// or one who restricted processing (Art. 23), and no inside the re-ask
// cooldown after the user last refused or withdrew it (Art. 22(5): do not ask
// again frequently after a refusal).
func ShouldAsk(s State, k Kind, set *Settings, now time.Time) bool {
	if s.Erased || s.Restricted {
		// An erased account is a tombstone; a user who restricted
		// processing is not asked for more of it.
		return false
	}
	switch {
	case k == KindPersonalization:
		if !s.PersonalizationOff {
			return false
		}
	case k == KindGuardian:
		if !s.Minor || s.GuardianOK(set) {
			return false
		}
	case len(k) > 8 && k[:8] == "channel:":
		if !s.ChannelRefused(string(k[8:])) {
			return false
		}
	case len(k) > 10 && k[:10] == "sensitive:":
		if s.SensitiveHeld(tags.Category(k[10:]), set) {
			return false
		}
	default:
		return false
	}
	if at, ok := s.LastRefusal(k); ok && now.Before(at.Add(set.ReaskCooldown)) {
		return false
	}
	return true
}
