package consent

import (
	"fmt"

	"github.com/recguard/recguard/tags"
)

// Reason is the typed reason behind a Decision or a push answer. The zero
// Reason, ReasonUnknown, never allows anything.
type Reason uint8

// The reasons. Personalized answers carry ReasonPersonalized; allowed pushes
// ReasonAllowed; everything else says why the answer is restrictive.
const (
	ReasonUnknown         Reason = iota // nothing is known: fail closed
	ReasonPersonalized                  // personalized recommendation allowed
	ReasonAllowed                       // the push may be sent
	ReasonOptedOut                      // the user turned personalization off (Art. 42)
	ReasonMinorNoGuardian               // a minor without current guardian consent (Art. 22)
	ReasonErased                        // the user's data was erased
	ReasonSuspended                     // the service is suspended (Art. 51 kill switch)
	ReasonChannelRefused                // the user refused this push channel (Art. 42)
	ReasonUnknownChannel                // the channel is not configured
	ReasonUnverified                    // the SDK cannot confirm its view is current (lease expired)
	ReasonUnavailable                   // the store could not be reached
	ReasonDataLoss                      // the store lost data this answer depends on (keyspace lost or replaced, record missing or corrupt)
	ReasonRestricted                    // the user restricted processing of their data (Art. 23)
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonUnknown:         "unknown",
	ReasonPersonalized:    "personalized",
	ReasonAllowed:         "allowed",
	ReasonOptedOut:        "personalization_off",
	ReasonMinorNoGuardian: "minor_without_guardian_consent",
	ReasonErased:          "erased",
	ReasonSuspended:       "suspended",
	ReasonChannelRefused:  "channel_refused",
	ReasonUnknownChannel:  "unknown_channel",
	ReasonUnverified:      "unverified",
	ReasonUnavailable:     "unavailable",
	ReasonDataLoss:        "data_loss",
	ReasonRestricted:      "restricted",
}

// String returns the reason's stable snake_case name.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// MarshalText encodes the reason as its name.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText decodes a reason name.
func (r *Reason) UnmarshalText(b []byte) error {
	for i, n := range reasonNames {
		if n == string(b) {
			*r = Reason(i)
			return nil
		}
	}
	return fmt.Errorf("consent: unknown reason %q", clip(string(b)))
}

// Decision is the answer for one user under one set of settings: whether a
// recommendation may be personalized and why, which tags the personalized
// ranker may use, and which channels may receive pushes.
//
// The zero Decision is not personalized, uses no tag and allows no push.
// A Decision's slices are shared and must not be modified.
type Decision struct {
	Personalized bool   `json:"personalized"`
	Reason       Reason `json:"reason"`
	// Tags are the tags a personalized ranker may use now: not suppressed,
	// not in a prohibited namespace, sensitive only with the category's
	// current consent. Empty unless Personalized.
	Tags []tags.Tag `json:"tags"`
	// Channels are the configured channels the user has not refused, in
	// settings order (sorted, for settings a store saved).
	Channels []string `json:"channels"`
	// Refused are the configured channels the user refused, in settings
	// order.
	Refused []string `json:"refused_channels"`
	// PushBlock, when not ReasonUnknown, refuses every push with that
	// reason (suspended, erased).
	PushBlock Reason `json:"push_block,omitempty"`
	// Basis is what the decision was computed from (record and settings
	// versions) and its ID. Evaluate leaves it zero: the SDK, which knows
	// the record and settings it evaluated, fills it in.
	Basis
}

// CanPush answers whether a push on channel may be sent, and why. A push
// targeted by tags or other personal characteristics needs a personalized
// decision; an untargeted one only needs the channel not to be refused.
// It does not allocate.
func (d *Decision) CanPush(channel string, targeted bool) (bool, Reason) {
	if d.PushBlock != ReasonUnknown {
		return false, d.PushBlock
	}
	if !contains(d.Channels, channel) {
		if contains(d.Refused, channel) {
			return false, ReasonChannelRefused
		}
		return false, ReasonUnknownChannel
	}
	if targeted && !d.Personalized {
		return false, d.Reason
	}
	return true, ReasonAllowed
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}

// Evaluate applies the rules to one user's state and tags under settings.
// In order: a suspended service is never personalized and sends nothing
// (Art. 51); an erased user likewise, and a user who restricted processing
// (Art. 23); a minor without current guardian
// consent is not personalized (Art. 22); a user who turned personalization
// off is not (Art. 42); everyone else is, with the tags they may use.
func Evaluate(st State, ts tags.Set, set *Settings) Decision {
	var d Decision
	for _, c := range set.Channels {
		if st.ChannelRefused(c) {
			d.Refused = append(d.Refused, c)
		} else {
			d.Channels = append(d.Channels, c)
		}
	}
	switch {
	case set.Suspended:
		d.Reason, d.PushBlock = ReasonSuspended, ReasonSuspended
	case st.Erased:
		d.Reason, d.PushBlock = ReasonErased, ReasonErased
	case st.Restricted:
		d.Reason, d.PushBlock = ReasonRestricted, ReasonRestricted
	case !st.GuardianOK(set):
		d.Reason = ReasonMinorNoGuardian
	case st.PersonalizationOff:
		d.Reason = ReasonOptedOut
	default:
		d.Personalized, d.Reason = true, ReasonPersonalized
		d.Tags = UsableTags(st, ts, set)
	}
	return d
}

// UsableTags returns the tags of ts a personalized ranker may use under st
// and set: not suppressed, not prohibited, sensitive only with the category's
// current separate consent, nothing of a minor without guardian consent.
func UsableTags(st State, ts tags.Set, set *Settings) []tags.Tag {
	if !st.GuardianOK(set) || st.Erased || st.Restricted {
		return nil
	}
	var out []tags.Tag
	for _, e := range ts.Entries {
		if ts.IsSuppressed(e.Tag) {
			continue
		}
		ns := set.Taxonomy.Lookup(e.Tag)
		if ns.Prohibited {
			continue
		}
		if ns.Sensitive != "" && !st.SensitiveOK(ns.Sensitive, set) {
			continue
		}
		out = append(out, e.Tag)
	}
	return out
}
