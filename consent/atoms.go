package consent

import (
	"slices"

	"github.com/recguard/recguard/tags"
)

// This file is the one definition of what a segment expression (see
// tags.Segment) means for one user's record. The push-audience index
// (package index) computes the same sets over bitmaps, the Art. 46 audit
// (package audit) evaluates its groups on the atoms HeldAtoms returns, and
// both are tested against the functions here.

// AtomHolds reports whether segment atom a holds for rec under set, when the
// result is used for purpose (PurposePush for a push audience,
// PurposePersonalization for recommendation and the Art. 46 audit of
// recommendations). For one record:
//
//	namespace:value              the user has the tag and it may be used for
//	                             purpose now: the user is not erased and is
//	                             not a minor without the guardian's current
//	                             consent (State.GuardianOK), the tag is not
//	                             suppressed, its namespace is not prohibited,
//	                             and when the namespace is sensitive the
//	                             category's separate consent counts for
//	                             purpose (State.SensitiveOKFor)
//	consent:personalization_off  the user turned personalization off (Art. 42)
//	consent:guardian             the user is a minor and the guardian's consent
//	                             counts under the guardian policy (GuardianOK)
//	refused:<channel>            the user refused the channel, configured or not
//	sensitive:<category>         the category's separate consent counts for
//	                             purpose: given for that purpose, under its
//	                             current policy version (or an earlier one when
//	                             Settings.KeepOnBump lists the purpose), and for
//	                             a minor given by the guardian
//	                             (State.SensitiveOKFor)
//	minor                        the user is a minor
//	erased                       the user's personal data was erased
//
// A consent given for another purpose never makes a sensitive atom hold
// (Art. 22(4)). An atom of unknown kind and a nil rec hold nothing. Only
// rec's State and Tags are read (not its Version or Number).
func AtomHolds(a tags.Atom, rec *Record, set *Settings, purpose string) bool {
	if rec == nil {
		return false
	}
	st := &rec.State
	switch a.Kind {
	case tags.AtomTag:
		return tagHolds(a.Tag, rec, set, purpose)
	case tags.AtomPersonalizationOff:
		return st.PersonalizationOff
	case tags.AtomGuardian:
		return st.Minor && st.GuardianOK(set)
	case tags.AtomRefused:
		return st.ChannelRefused(a.Channel)
	case tags.AtomSensitive:
		return st.SensitiveOKFor(a.Category, purpose, set)
	case tags.AtomMinor:
		return st.Minor
	case tags.AtomErased:
		return st.Erased
	}
	return false
}

// tagHolds is AtomHolds for a tag atom.
func tagHolds(t tags.Tag, rec *Record, set *Settings, purpose string) bool {
	st := &rec.State
	if st.Erased || !st.GuardianOK(set) {
		return false
	}
	if _, ok := rec.Tags.Has(t); !ok || rec.Tags.IsSuppressed(t) {
		return false
	}
	ns := set.Taxonomy.Lookup(t)
	if ns.Prohibited {
		return false
	}
	return ns.Sensitive == "" || st.SensitiveOKFor(ns.Sensitive, purpose, set)
}

// SegmentHolds reports whether rec is in seg when every atom means what
// AtomHolds says for purpose under set; "*" holds for every record and a
// malformed seg (see tags.Segment) for none.
func SegmentHolds(seg *tags.Segment, rec *Record, set *Settings, purpose string) bool {
	return seg.Eval(func(a tags.Atom) bool { return AtomHolds(a, rec, set, purpose) })
}

// HeldAtoms returns every atom that holds for rec under set for purpose
// (AtomHolds is true for exactly these atoms): the flags
// consent:personalization_off, minor, consent:guardian and erased that
// hold, then refused:<channel> per refused channel, sensitive:<category> per
// category whose consent counts, then the tags that hold, in the record's
// order. A nil rec has none.
func HeldAtoms(rec *Record, set *Settings, purpose string) []tags.Atom {
	if rec == nil {
		return nil
	}
	st := &rec.State
	out := make([]tags.Atom, 0, 4+len(st.RefusedChannels)+len(st.Sensitive)+len(rec.Tags.Entries))
	for _, k := range [...]tags.AtomKind{tags.AtomPersonalizationOff, tags.AtomMinor, tags.AtomGuardian, tags.AtomErased} {
		if a := (tags.Atom{Kind: k}); AtomHolds(a, rec, set, purpose) {
			out = append(out, a)
		}
	}
	// Each candidate atom is asked of AtomHolds, so a record whose lists
	// are out of order or repeat an element (damaged) still gives exactly
	// the atoms that hold, each once.
	seen := func(a tags.Atom) bool {
		for _, b := range out {
			if a == b {
				return true
			}
		}
		return false
	}
	for _, ch := range st.RefusedChannels {
		if a := (tags.Atom{Kind: tags.AtomRefused, Channel: ch}); AtomHolds(a, rec, set, purpose) && !seen(a) {
			out = append(out, a)
		}
	}
	for _, sc := range st.Sensitive {
		if a := (tags.Atom{Kind: tags.AtomSensitive, Category: sc.Category}); AtomHolds(a, rec, set, purpose) && !seen(a) {
			out = append(out, a)
		}
	}
	first := len(out)
	sorted := true
	for i, e := range rec.Tags.Entries {
		if i > 0 && e.Tag <= rec.Tags.Entries[i-1].Tag {
			sorted = false
			break
		}
	}
	for _, e := range rec.Tags.Entries {
		a := tags.Atom{Kind: tags.AtomTag, Tag: e.Tag}
		if !AtomHolds(a, rec, set, purpose) {
			continue
		}
		if !sorted && slices.Contains(out[first:], a) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// InPushAudience reports whether a push on channel may reach rec's user as
// one of the audience of seg: the answer package index gives over every
// user at once. The user must be one the store holds (rec not nil, Version
// not 0) and the push allowed as Evaluate and Decision.CanPush allow it,
// targeted when targeted is true or seg uses personal data
// (tags.Segment.UsesPersonalData): the service not suspended, the user not
// erased, channel configured and not refused, and for a targeted push the
// user neither opted out of personalization nor a minor without the
// guardian's current consent. Then seg must hold with the atoms meaning
// what they mean for PurposePush (SegmentHolds): a sensitive atom or tag
// counts only with a consent given for push.
func InPushAudience(seg *tags.Segment, rec *Record, set *Settings, channel string, targeted bool) bool {
	if rec == nil || rec.Version == 0 || set.Suspended || !set.HasChannel(channel) {
		return false
	}
	st := &rec.State
	if st.Erased || st.Restricted || st.ChannelRefused(channel) {
		return false
	}
	if (targeted || seg.UsesPersonalData()) && (st.PersonalizationOff || !st.GuardianOK(set)) {
		return false
	}
	return SegmentHolds(seg, rec, set, PurposePush)
}
