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
	if !sortedEntries(prev.Tags.Entries) || !sortedEntries(next.Tags.Entries) || !sortedSupp(prev.Tags.Suppressed) || !sortedSupp(next.Tags.Suppressed) {
		return prevDelta{}, false
	}
	d.E, d.X = diffEntries(prev.Tags.Entries, next.Tags.Entries)
	d.P, d.Q = diffSupp(prev.Tags.Suppressed, next.Tags.Suppressed)
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
	p.Tags.Entries = undoEntries(next.Tags.Entries, d.E, d.X)
	p.Tags.Suppressed = undoSupp(next.Tags.Suppressed, d.P, d.Q)
	return p
}

func sortedEntries(es []tags.Entry) bool {
	for i := 1; i < len(es); i++ {
		if es[i-1].Tag >= es[i].Tag {
			return false
		}
	}
	return true
}

func sortedSupp(ss []tags.Suppression) bool {
	for i := 1; i < len(ss); i++ {
		if ss[i-1].Tag >= ss[i].Tag {
			return false
		}
	}
	return true
}

// diffEntries returns the entries of prev not in next as they are, and the
// tags of next not in prev (both sorted).
func diffEntries(prev, next []tags.Entry) (gone []tags.Entry, added []tags.Tag) {
	i, j := 0, 0
	for i < len(prev) || j < len(next) {
		switch {
		case j == len(next) || i < len(prev) && prev[i].Tag < next[j].Tag:
			gone = append(gone, prev[i])
			i++
		case i == len(prev) || next[j].Tag < prev[i].Tag:
			added = append(added, next[j].Tag)
			j++
		default:
			if !prev[i].At.Equal(next[j].At) || prev[i].Source != next[j].Source || !reflect.DeepEqual(prev[i], next[j]) {
				gone = append(gone, prev[i])
			}
			i++
			j++
		}
	}
	return gone, added
}

// undoEntries rebuilds prev from next, the entries gone and the tags added.
func undoEntries(next, gone []tags.Entry, added []tags.Tag) []tags.Entry {
	if len(gone) == 0 && len(added) == 0 {
		return slices.Clone(next)
	}
	out := make([]tags.Entry, 0, len(next)+len(gone))
	i, j, k := 0, 0, 0 // next, gone, added
	for i < len(next) || j < len(gone) {
		switch {
		case i < len(next) && k < len(added) && next[i].Tag == added[k]:
			i++
			k++
		case j == len(gone) || i < len(next) && next[i].Tag < gone[j].Tag:
			out = append(out, next[i])
			i++
		case i == len(next) || gone[j].Tag < next[i].Tag:
			out = append(out, gone[j])
			j++
		default: // changed: the entry before replaces the one after
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

func diffSupp(prev, next []tags.Suppression) (gone []tags.Suppression, added []tags.Tag) {
	i, j := 0, 0
	for i < len(prev) || j < len(next) {
		switch {
		case j == len(next) || i < len(prev) && prev[i].Tag < next[j].Tag:
			gone = append(gone, prev[i])
			i++
		case i == len(prev) || next[j].Tag < prev[i].Tag:
			added = append(added, next[j].Tag)
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

func undoSupp(next, gone []tags.Suppression, added []tags.Tag) []tags.Suppression {
	if len(gone) == 0 && len(added) == 0 {
		return slices.Clone(next)
	}
	out := make([]tags.Suppression, 0, len(next)+len(gone))
	i, j, k := 0, 0, 0
	for i < len(next) || j < len(gone) {
		switch {
		case i < len(next) && k < len(added) && next[i].Tag == added[k]:
			i++
			k++
		case j == len(gone) || i < len(next) && next[i].Tag < gone[j].Tag:
			out = append(out, next[i])
			i++
		case i == len(next) || gone[j].Tag < next[i].Tag:
			out = append(out, gone[j])
			j++
		default:
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
