package tags

import (
	"fmt"
	"sort"
	"time"
)

// Set is the tags of one user together with the suppressions left by the
// tags the user deleted. Entries and Suppressed are kept sorted by tag with
// no duplicates. Methods that change a Set return a new Set and never modify
// the receiver's slices, so a Set may be shared once built.
type Set struct {
	Entries    []Entry       `json:"entries,omitempty"`
	Suppressed []Suppression `json:"suppressed,omitempty"`
}

// Has reports whether the user has tag t, and its entry.
func (s Set) Has(t Tag) (Entry, bool) {
	i := sort.Search(len(s.Entries), func(i int) bool { return s.Entries[i].Tag >= t })
	if i < len(s.Entries) && s.Entries[i].Tag == t {
		return s.Entries[i], true
	}
	return Entry{}, false
}

// IsSuppressed reports whether t was deleted by the user and is suppressed.
func (s Set) IsSuppressed(t Tag) bool {
	i := sort.Search(len(s.Suppressed), func(i int) bool { return s.Suppressed[i].Tag >= t })
	return i < len(s.Suppressed) && s.Suppressed[i].Tag == t
}

// Add returns s with t added from source src at time at.
//
// A suppressed tag can only come back through the user's own declaration:
// byUser must be true and src Declared, which lifts the suppression; any other
// attempt fails with ErrSuppressed. Adding a tag already present replaces its
// entry (a declaration upgrades an inferred tag; an inference never downgrades
// a declared one). The error wraps ErrSuppressed.
func (s Set) Add(t Tag, src Source, byUser bool, at time.Time) (Set, error) {
	if s.IsSuppressed(t) {
		if src != Declared || !byUser {
			return s, fmt.Errorf("%w: %s", ErrSuppressed, t)
		}
		s = s.unsuppress(t)
	}
	if old, ok := s.Has(t); ok && old.Source == Declared && src == Inferred {
		return s, nil
	}
	out := Set{Suppressed: s.Suppressed}
	out.Entries = make([]Entry, 0, len(s.Entries)+1)
	added := false
	for _, e := range s.Entries {
		if !added && e.Tag >= t {
			out.Entries = append(out.Entries, Entry{Tag: t, Source: src, At: at})
			added = true
			if e.Tag == t {
				continue
			}
		}
		out.Entries = append(out.Entries, e)
	}
	if !added {
		out.Entries = append(out.Entries, Entry{Tag: t, Source: src, At: at})
	}
	return out, nil
}

// Delete returns s without tag t and with a suppression record for it, so the
// tag stays deleted. Deleting a tag the user does not have still records the
// suppression (a user may refuse a tag before it is ever inferred).
func (s Set) Delete(t Tag, at time.Time) Set {
	out := Set{}
	for _, e := range s.Entries {
		if e.Tag != t {
			out.Entries = append(out.Entries, e)
		}
	}
	if s.IsSuppressed(t) {
		out.Suppressed = s.Suppressed
		return out
	}
	out.Suppressed = make([]Suppression, 0, len(s.Suppressed)+1)
	added := false
	for _, p := range s.Suppressed {
		if !added && p.Tag > t {
			out.Suppressed = append(out.Suppressed, Suppression{Tag: t, At: at})
			added = true
		}
		out.Suppressed = append(out.Suppressed, p)
	}
	if !added {
		out.Suppressed = append(out.Suppressed, Suppression{Tag: t, At: at})
	}
	return out
}

// DeleteAll returns s with every tag deleted and suppressed (used when a user
// is erased).
func (s Set) DeleteAll(at time.Time) Set {
	out := s
	for _, e := range s.Entries {
		out = out.Delete(e.Tag, at)
	}
	out.Entries = nil
	return out
}

func (s Set) unsuppress(t Tag) Set {
	out := Set{Entries: s.Entries}
	for _, p := range s.Suppressed {
		if p.Tag != t {
			out.Suppressed = append(out.Suppressed, p)
		}
	}
	return out
}

// Equal reports whether s and o hold the same entries and suppressions.
func (s Set) Equal(o Set) bool {
	if len(s.Entries) != len(o.Entries) || len(s.Suppressed) != len(o.Suppressed) {
		return false
	}
	for i := range s.Entries {
		a, b := s.Entries[i], o.Entries[i]
		if a.Tag != b.Tag || a.Source != b.Source || !a.At.Equal(b.At) {
			return false
		}
	}
	for i := range s.Suppressed {
		if s.Suppressed[i].Tag != o.Suppressed[i].Tag || !s.Suppressed[i].At.Equal(o.Suppressed[i].At) {
			return false
		}
	}
	return true
}
