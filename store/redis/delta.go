package redis

import (
	"reflect"
	"slices"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

// A changelog entry carries the user's whole record after the change and,
// instead of the whole record before it (what readers get as Event.Prev),
// prevDelta: what the record before differed in. For a user with many tags
// that halves the entry: a change touches one flag or one tag, the record
// before shares everything else with the record after. ReadChangelog
// rebuilds the record before exactly (undo), so store.Event keeps its shape
// and the index diffs as before.

// prevDelta is how the record before a change differs from the record
// after it. The user ID and number are the same; what is not listed is
// equal.
type prevDelta struct {
	// Z: the record before is the empty record of a user never seen
	// (consent.NewRecord: version 0); nothing else is set.
	Z bool `json:"z,omitempty"`
	// V, H, T, M are the version, last hash, update time and head MAC
	// before.
	V uint64    `json:"v,omitempty"`
	H string    `json:"h,omitempty"`
	T time.Time `json:"t,omitzero"`
	M string    `json:"m,omitempty"`
	// A is the purge anchor before, when it differs.
	A *consent.Anchor `json:"a,omitempty"`
	// S is the state before, when it differs.
	S *consent.State `json:"s,omitempty"`
	// E are the tag entries before that the record after does not hold as
	// they were (removed or changed); X the tags of the record after that
	// the record before did not hold.
	E []tags.Entry `json:"e,omitempty"`
	X []tags.Tag   `json:"x,omitempty"`
	// P and Q are the same for suppressions.
	P []tags.Suppression `json:"p,omitempty"`
	Q []tags.Tag         `json:"q,omitempty"`
}

// makeDelta returns the delta that undoes next into prev, and false when
// none rebuilds prev exactly (unsorted or duplicate tags in a damaged
// record): the entry then carries prev whole.
func makeDelta(prev, next *consent.Record) (prevDelta, bool) {
	if prev.UserID != next.UserID {
		return prevDelta{}, false
	}
	if prev.Version == 0 && reflect.DeepEqual(normal(*prev), consent.Record{UserID: prev.UserID, Number: prev.Number}) {
		return prevDelta{Z: true}, true
	}
	d := prevDelta{V: prev.Version, H: prev.LastHash, T: prev.UpdatedAt, M: prev.HeadMAC}
	if prev.Purged != next.Purged {
		a := prev.Purged
		d.A = &a
	}
	if !reflect.DeepEqual(normal(*prev).State, normal(*next).State) {
		st := prev.State
		d.S = &st
	}
	if !sortedByTag(prev.Tags.Entries, entryTag) || !sortedByTag(next.Tags.Entries, entryTag) ||
		!sortedByTag(prev.Tags.Suppressed, suppTag) || !sortedByTag(next.Tags.Suppressed, suppTag) {
		return prevDelta{}, false
	}
	d.E, d.X = diffByTag(prev.Tags.Entries, next.Tags.Entries, entryTag)
	d.P, d.Q = diffByTag(prev.Tags.Suppressed, next.Tags.Suppressed, suppTag)
	got := undo(next, &d)
	if !reflect.DeepEqual(normal(got), normal(*prev)) {
		return prevDelta{}, false
	}
	return d, true
}

// normal returns r with empty slices made nil: the two encode alike (every
// slice of a record is omitempty), so they are the same record.
func normal(r consent.Record) consent.Record {
	if len(r.Tags.Entries) == 0 {
		r.Tags.Entries = nil
	}
	if len(r.Tags.Suppressed) == 0 {
		r.Tags.Suppressed = nil
	}
	if len(r.State.RefusedChannels) == 0 {
		r.State.RefusedChannels = nil
	}
	if len(r.State.Sensitive) == 0 {
		r.State.Sensitive = nil
	}
	if len(r.State.Refusals) == 0 {
		r.State.Refusals = nil
	}
	return r
}

// undo rebuilds the record before the change from the record after it.
func undo(next *consent.Record, d *prevDelta) consent.Record {
	if d.Z {
		return consent.Record{UserID: next.UserID, Number: next.Number}
	}
	p := consent.Record{UserID: next.UserID, Number: next.Number, Version: d.V, State: next.State, LastHash: d.H, UpdatedAt: d.T, Purged: next.Purged, HeadMAC: d.M}
	if d.A != nil {
		p.Purged = *d.A
	}
	if d.S != nil {
		p.State = *d.S
	} else {
		// Its own copy: the two records of an event share nothing.
		p.State.RefusedChannels = slices.Clone(p.State.RefusedChannels)
		p.State.Sensitive = slices.Clone(p.State.Sensitive)
		p.State.Refusals = slices.Clone(p.State.Refusals)
		if g := p.State.Guardian; g != nil {
			c := *g
			p.State.Guardian = &c
		}
	}
	p.Tags.Entries = undoByTag(next.Tags.Entries, d.E, d.X, entryTag)
	p.Tags.Suppressed = undoByTag(next.Tags.Suppressed, d.P, d.Q, suppTag)
	return p
}

func entryTag(e tags.Entry) tags.Tag      { return e.Tag }
func suppTag(x tags.Suppression) tags.Tag { return x.Tag }

// sortedByTag reports whether xs is sorted by tag without duplicates.
func sortedByTag[T any](xs []T, tag func(T) tags.Tag) bool {
	for i := 1; i < len(xs); i++ {
		if tag(xs[i-1]) >= tag(xs[i]) {
			return false
		}
	}
	return true
}

// diffByTag returns the items of prev not in next as they are (absent, or
// different in any way), and the tags of next not in prev (both sorted).
func diffByTag[T any](prev, next []T, tag func(T) tags.Tag) (gone []T, added []tags.Tag) {
	i, j := 0, 0
	for i < len(prev) || j < len(next) {
		switch {
		case j == len(next) || i < len(prev) && tag(prev[i]) < tag(next[j]):
			gone = append(gone, prev[i])
			i++
		case i == len(prev) || tag(next[j]) < tag(prev[i]):
			added = append(added, tag(next[j]))
			j++
		default:
			if !reflect.DeepEqual(prev[i], next[j]) {
				gone = append(gone, prev[i])
			}
			i++
			j++
		}
	}
	return gone, added
}

// undoByTag rebuilds prev from next, the items gone and the tags added.
func undoByTag[T any](next, gone []T, added []tags.Tag, tag func(T) tags.Tag) []T {
	if len(gone) == 0 && len(added) == 0 {
		return slices.Clone(next)
	}
	out := make([]T, 0, len(next)+len(gone))
	i, j, k := 0, 0, 0 // next, gone, added
	for i < len(next) || j < len(gone) {
		switch {
		case i < len(next) && k < len(added) && tag(next[i]) == added[k]:
			i++
			k++
		case j == len(gone) || i < len(next) && tag(next[i]) < tag(gone[j]):
			out = append(out, next[i])
			i++
		case i == len(next) || tag(gone[j]) < tag(next[i]):
			out = append(out, gone[j])
			j++
		default: // changed: the item before replaces the one after
			out = append(out, gone[j])
			i++
			j++
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
