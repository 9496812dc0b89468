package consent

import (
	"fmt"
	"sort"
	"time"

	"github.com/recguard/recguard/tags"
)

// Purposes with a fixed meaning in Settings.Policies.
const (
	// PurposePersonalization is the policy under which personalized
	// recommendation and tags are processed.
	PurposePersonalization = "personalization"
	// PurposePush is the policy under which pushes are sent.
	PurposePush = "push"
	// PurposeGuardian is the policy a guardian consents to for a minor.
	PurposeGuardian = "guardian"
)

// Defaults used by DefaultSettings and for zero fields.
const (
	// DefaultRetention is how long receipts are kept: three years (Art. 12).
	DefaultRetention = 3 * 365 * 24 * time.Hour
	// DefaultReaskCooldown is how long to wait before asking again after a
	// refusal.
	DefaultReaskCooldown = 30 * 24 * time.Hour
	// MinReaskCooldown is the shortest re-ask cooldown settings may hold:
	// asking again within a day of a "no" is asking frequently (Art. 22(5)).
	MinReaskCooldown = 24 * time.Hour
)

// Settings are the platform-wide rules that product teams change through the
// admin API. Every change to them goes through the store's settings
// changelog and leaves a receipt.
//
// A Settings value is read-only once published: build a new one to change it.
type Settings struct {
	// Version counts settings changes; the store sets it. Zero before the
	// first save.
	Version uint64 `json:"version"`
	// Channels are the push channels users can refuse, e.g. push, sms,
	// email, in_app. A change naming a channel not listed is rejected with
	// ErrUnknownChannel.
	Channels []string `json:"channels"`
	// Taxonomy says which tag namespaces are sensitive or prohibited. Nil
	// means every namespace is ordinary.
	Taxonomy tags.Taxonomy `json:"taxonomy,omitempty"`
	// Policies is the current policy version per purpose. A consent given
	// under an older version counts as not given (Art. 22: re-consent when
	// the purpose changes), unless the purpose is listed in KeepOnBump. A
	// purpose not listed has version 0.
	Policies map[string]int `json:"policies,omitempty"`
	// KeepOnBump lists purposes whose policy-version bumps keep the
	// consents given under earlier versions (a bump that only clarifies
	// wording without changing the purpose). By default (empty) every bump
	// voids earlier consents for its purpose.
	KeepOnBump []string `json:"keep_on_bump,omitempty"`
	// ReaskCooldown is how long after a refusal ShouldAsk says no; at least
	// MinReaskCooldown. In JSON a Go duration string ("720h").
	ReaskCooldown time.Duration `json:"reask_cooldown"`
	// AllowInferenceWhileOff lets the platform store inferred tags for a
	// user who turned personalization off, and while the service is
	// suspended. The default (false) refuses them with ErrInferenceRefused:
	// no profile is built behind a "no".
	AllowInferenceWhileOff bool `json:"allow_inference_while_off,omitempty"`
	// Retention is how long receipts are kept, at least three years
	// (Art. 12). Zero means DefaultRetention. In JSON a Go duration string.
	Retention time.Duration `json:"retention"`
	// Suspended is the Art. 51 kill switch: when true nothing is
	// personalized and no push is sent, for every user.
	Suspended bool `json:"suspended,omitempty"`
	// SuspendReason says why, for people and receipts.
	SuspendReason string `json:"suspend_reason,omitempty"`
}

// DefaultSettings returns the settings a new installation starts with: the
// channels push, sms, email and in_app; a taxonomy that marks the namespaces
// named after the sensitive categories as sensitive; policy version 1 for the
// fixed purposes; a 30-day re-ask cooldown; 3-year retention; not suspended.
func DefaultSettings() Settings {
	tx := tags.Taxonomy{}
	for _, c := range tags.Categories() {
		tx[string(c)] = tags.Namespace{Category: "sensitive", Sensitive: c}
	}
	return Settings{
		Channels:      []string{"email", "in_app", "push", "sms"},
		Taxonomy:      tx,
		Policies:      map[string]int{PurposePersonalization: 1, PurposePush: 1, PurposeGuardian: 1},
		ReaskCooldown: DefaultReaskCooldown,
		Retention:     DefaultRetention,
	}
}

// Validate checks the settings. The error is a *FieldError wrapping
// ErrInvalidSettings (or ErrInvalidChannel for a bad channel name).
func (s *Settings) Validate() error {
	if len(s.Channels) > 64 {
		return fieldErr("channels", ErrInvalidSettings, "at most 64 channels, got %d", len(s.Channels))
	}
	seen := make(map[string]bool, len(s.Channels))
	for _, c := range s.Channels {
		if err := ValidChannelName(c); err != nil {
			return err
		}
		if seen[c] {
			return fieldErr("channels", ErrInvalidSettings, "channel %q listed twice", c)
		}
		seen[c] = true
	}
	if err := s.Taxonomy.Validate(); err != nil {
		return wrapField("taxonomy", ErrInvalidSettings, err)
	}
	for p, v := range s.Policies {
		if err := ident(p, MaxPurposeLen); err != nil {
			return fieldErr("policies", ErrInvalidSettings, "purpose %q: %v", clip(p), err)
		}
		if v < 0 {
			return fieldErr("policies", ErrInvalidSettings, "purpose %q: negative version %d", p, v)
		}
	}
	if s.ReaskCooldown < MinReaskCooldown {
		return fieldErr("reask_cooldown", ErrInvalidSettings, "%v is under the minimum %v: asking again sooner after a refusal is asking frequently (Art. 22)", s.ReaskCooldown, MinReaskCooldown)
	}
	for _, p := range s.KeepOnBump {
		if _, ok := s.Policies[p]; !ok {
			return fieldErr("keep_on_bump", ErrInvalidSettings, "purpose %q has no policy version", clip(p))
		}
	}
	if s.Retention != 0 && s.Retention < DefaultRetention {
		return fieldErr("retention", ErrInvalidSettings, "%v is shorter than the 3 years Art. 12 requires", s.Retention)
	}
	if len(s.SuspendReason) > MaxReasonLen {
		return fieldErr("suspend_reason", ErrInvalidSettings, "longer than %d bytes", MaxReasonLen)
	}
	return nil
}

// Normalize returns a copy of s with channels and KeepOnBump sorted and a
// zero Retention replaced by DefaultRetention; stores save normalized
// settings.
func (s Settings) Normalize() Settings {
	out := s.Clone()
	sort.Strings(out.Channels)
	sort.Strings(out.KeepOnBump)
	if out.Retention == 0 {
		out.Retention = DefaultRetention
	}
	return out
}

// Clone returns a deep copy of s.
func (s Settings) Clone() Settings {
	out := s
	out.Channels = append([]string(nil), s.Channels...)
	if s.KeepOnBump != nil {
		out.KeepOnBump = append([]string(nil), s.KeepOnBump...)
	}
	out.Taxonomy = s.Taxonomy.Clone()
	if s.Policies != nil {
		out.Policies = make(map[string]int, len(s.Policies))
		for k, v := range s.Policies {
			out.Policies[k] = v
		}
	}
	return out
}

// HasChannel reports whether channel is one of the configured channels.
func (s *Settings) HasChannel(channel string) bool {
	for _, c := range s.Channels {
		if c == channel {
			return true
		}
	}
	return false
}

// PolicyVersion returns the current policy version of purpose (0 if unset).
func (s *Settings) PolicyVersion(purpose string) int { return s.Policies[purpose] }

// GrantCurrent reports whether a grant given under version v for purpose
// still counts: v is the current version, or purpose keeps consents on
// policy bumps (KeepOnBump).
func (s *Settings) GrantCurrent(purpose string, v int) bool {
	cur := s.Policies[purpose]
	if v >= cur {
		return true
	}
	for _, p := range s.KeepOnBump {
		if p == purpose {
			return true
		}
	}
	return false
}

// RetentionOrDefault returns Retention, or DefaultRetention when zero.
//
// It never answers less than the three years Art. 12 requires, whatever
// the settings say: settings written around Validate (straight into the
// store) cannot shorten how long receipts are kept, nor make a purge of
// recent receipts pass verification.
func (s *Settings) RetentionOrDefault() time.Duration {
	if s.Retention < DefaultRetention {
		return DefaultRetention
	}
	return s.Retention
}

// Summary is a short description of s used as the old/new value in settings
// receipts.
func (s *Settings) Summary() string {
	return fmt.Sprintf("v%d channels=%v policies=%v suspended=%t", s.Version, s.Channels, sortedPolicies(s.Policies), s.Suspended)
}

func sortedPolicies(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s@%d", k, v))
	}
	sort.Strings(out)
	return out
}
