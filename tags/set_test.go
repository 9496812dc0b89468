package tags_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/recguard/recguard/tags"
)

var (
	t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	t1 = t0.Add(time.Hour)
	t2 = t0.Add(2 * time.Hour)
)

// mustAdd adds t to s and fails the test on error.
func mustAdd(tb testing.TB, s tags.Set, tg string, src tags.Source, byUser bool, at time.Time) tags.Set {
	tb.Helper()
	out, err := s.Add(tags.MustParse(tg), src, byUser, at)
	if err != nil {
		tb.Fatalf("Add(%q, %s, byUser=%t) error = %v", tg, src, byUser, err)
	}
	return out
}

// build returns a set with the given tags added as inferred at t0.
func build(tb testing.TB, tgs ...string) tags.Set {
	tb.Helper()
	var s tags.Set
	for _, tg := range tgs {
		s = mustAdd(tb, s, tg, tags.Inferred, false, t0)
	}
	return s
}

// entryTags lists the tags of s.Entries.
func entryTags(s tags.Set) []tags.Tag {
	var out []tags.Tag
	for _, e := range s.Entries {
		out = append(out, e.Tag)
	}
	return out
}

// suppressedTags lists the tags of s.Suppressed.
func suppressedTags(s tags.Set) []tags.Tag {
	var out []tags.Tag
	for _, p := range s.Suppressed {
		out = append(out, p.Tag)
	}
	return out
}

// checkSorted fails the test unless Entries and Suppressed are sorted by tag
// without duplicates.
func checkSorted(tb testing.TB, s tags.Set) {
	tb.Helper()
	for i := 1; i < len(s.Entries); i++ {
		if s.Entries[i-1].Tag >= s.Entries[i].Tag {
			tb.Fatalf("Entries not strictly sorted at %d: %q >= %q (all: %v)", i, s.Entries[i-1].Tag, s.Entries[i].Tag, entryTags(s))
		}
	}
	for i := 1; i < len(s.Suppressed); i++ {
		if s.Suppressed[i-1].Tag >= s.Suppressed[i].Tag {
			tb.Fatalf("Suppressed not strictly sorted at %d: %q >= %q (all: %v)", i, s.Suppressed[i-1].Tag, s.Suppressed[i].Tag, suppressedTags(s))
		}
	}
}

func tagList(ss ...string) []tags.Tag {
	if len(ss) == 0 {
		return nil
	}
	out := make([]tags.Tag, len(ss))
	for i, s := range ss {
		out[i] = tags.Tag(s)
	}
	return out
}

func wantTags(tb testing.TB, what string, got []tags.Tag, want ...string) {
	tb.Helper()
	if !reflect.DeepEqual(got, tagList(want...)) {
		tb.Errorf("%s = %v, want %v", what, got, tagList(want...))
	}
}

// snapshot is a deep copy of a Set including the spare capacity of its
// slices, so a method that appends in place is caught too.
type snapshot struct {
	entries    []tags.Entry
	suppressed []tags.Suppression
	set        tags.Set
}

func takeSnapshot(s tags.Set) snapshot {
	return snapshot{
		entries:    append([]tags.Entry(nil), s.Entries[:cap(s.Entries)]...),
		suppressed: append([]tags.Suppression(nil), s.Suppressed[:cap(s.Suppressed)]...),
		set:        s,
	}
}

func (sn snapshot) check(tb testing.TB, op string) {
	tb.Helper()
	s := sn.set
	if got := s.Entries[:cap(s.Entries)]; !reflect.DeepEqual(append([]tags.Entry(nil), got...), sn.entries) {
		tb.Errorf("%s modified the receiver's Entries backing array:\n got %v\nwant %v", op, got, sn.entries)
	}
	if got := s.Suppressed[:cap(s.Suppressed)]; !reflect.DeepEqual(append([]tags.Suppression(nil), got...), sn.suppressed) {
		tb.Errorf("%s modified the receiver's Suppressed backing array:\n got %v\nwant %v", op, got, sn.suppressed)
	}
}

// withSpareCapacity returns s with slices that have room to grow in place.
func withSpareCapacity(s tags.Set) tags.Set {
	e := make([]tags.Entry, len(s.Entries), len(s.Entries)+8)
	copy(e, s.Entries)
	p := make([]tags.Suppression, len(s.Suppressed), len(s.Suppressed)+8)
	copy(p, s.Suppressed)
	return tags.Set{Entries: e, Suppressed: p}
}

func TestAddKeepsEntriesSorted(t *testing.T) {
	var s tags.Set
	order := []string{"m:m", "a:z", "z:a", "a:a", "m:b", "a:y", "b:b"}
	for _, tg := range order {
		s = mustAdd(t, s, tg, tags.Inferred, false, t0)
		checkSorted(t, s)
	}
	wantTags(t, "entries", entryTags(s), "a:a", "a:y", "a:z", "b:b", "m:b", "m:m", "z:a")
	if len(s.Suppressed) != 0 {
		t.Errorf("Suppressed = %v, want none", s.Suppressed)
	}
}

func TestAddSourceRules(t *testing.T) {
	tg := tags.MustParse("interest:ski")
	cases := []struct {
		name       string
		first      tags.Source
		second     tags.Source
		wantSource tags.Source
		wantAt     time.Time
	}{
		{"inferred then inferred refreshes time", tags.Inferred, tags.Inferred, tags.Inferred, t1},
		{"inferred then declared upgrades", tags.Inferred, tags.Declared, tags.Declared, t1},
		{"declared then inferred never downgrades", tags.Declared, tags.Inferred, tags.Declared, t0},
		{"declared then declared refreshes time", tags.Declared, tags.Declared, tags.Declared, t1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := build(t, "a:a", "z:z")
			s, err := s.Add(tg, c.first, c.first == tags.Declared, t0)
			if err != nil {
				t.Fatal(err)
			}
			s2, err := s.Add(tg, c.second, c.second == tags.Declared, t1)
			if err != nil {
				t.Fatalf("second Add error = %v", err)
			}
			checkSorted(t, s2)
			e, ok := s2.Has(tg)
			if !ok {
				t.Fatalf("Has(%q) = false after Add", tg)
			}
			if e.Source != c.wantSource || !e.At.Equal(c.wantAt) {
				t.Errorf("entry = {%s %v}, want {%s %v}", e.Source, e.At, c.wantSource, c.wantAt)
			}
			wantTags(t, "entries", entryTags(s2), "a:a", "interest:ski", "z:z")
		})
	}
}

func TestAddSuppressed(t *testing.T) {
	tg := tags.MustParse("interest:ski")
	base := build(t, "a:a", "interest:ski", "z:z").Delete(tg, t0).Delete(tags.MustParse("other:x"), t0)
	if !base.IsSuppressed(tg) {
		t.Fatalf("IsSuppressed(%q) = false after Delete", tg)
	}
	cases := []struct {
		name    string
		src     tags.Source
		byUser  bool
		wantErr bool
	}{
		{"inferred by pipeline", tags.Inferred, false, true},
		{"inferred on behalf of user", tags.Inferred, true, true},
		{"declared not by user", tags.Declared, false, true},
		{"declared by user lifts", tags.Declared, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			snap := takeSnapshot(base)
			got, err := base.Add(tg, c.src, c.byUser, t1)
			snap.check(t, "Add")
			if c.wantErr {
				if !errors.Is(err, tags.ErrSuppressed) {
					t.Fatalf("Add error = %v, want ErrSuppressed", err)
				}
				if !got.Equal(base) {
					t.Errorf("Add returned %+v on error, want the unchanged set %+v", got, base)
				}
				if _, ok := got.Has(tg); ok {
					t.Errorf("suppressed tag present after refused Add")
				}
				return
			}
			if err != nil {
				t.Fatalf("Add error = %v, want nil", err)
			}
			checkSorted(t, got)
			if got.IsSuppressed(tg) {
				t.Errorf("IsSuppressed(%q) = true after the user's declaration", tg)
			}
			e, ok := got.Has(tg)
			if !ok || e.Source != tags.Declared || !e.At.Equal(t1) {
				t.Errorf("Has(%q) = %+v, %t; want declared at %v", tg, e, ok, t1)
			}
			wantTags(t, "suppressed", suppressedTags(got), "other:x")
			wantTags(t, "entries", entryTags(got), "a:a", "interest:ski", "z:z")
			// Once lifted, inference works again.
			if _, err := got.Delete(tg, t2).Add(tg, tags.Inferred, false, t2); !errors.Is(err, tags.ErrSuppressed) {
				t.Errorf("after a second delete, inferred Add error = %v, want ErrSuppressed", err)
			}
		})
	}
}

func TestAddErrorMentionsTag(t *testing.T) {
	tg := tags.MustParse("religion:x")
	_, err := tags.Set{}.Delete(tg, t0).Add(tg, tags.Inferred, false, t1)
	if err == nil || err.Error() != tags.ErrSuppressed.Error()+": religion:x" {
		t.Errorf("error = %v, want %q", err, tags.ErrSuppressed.Error()+": religion:x")
	}
}

func TestDelete(t *testing.T) {
	cases := []struct {
		name           string
		start          func(testing.TB) tags.Set
		del            string
		wantEntries    []string
		wantSuppressed []string
		wantAt         time.Time // time of the suppression of del
	}{
		{
			name:           "present tag",
			start:          func(tb testing.TB) tags.Set { return build(tb, "a:a", "b:b", "c:c") },
			del:            "b:b",
			wantEntries:    []string{"a:a", "c:c"},
			wantSuppressed: []string{"b:b"},
			wantAt:         t1,
		},
		{
			name:           "absent tag is still suppressed",
			start:          func(tb testing.TB) tags.Set { return build(tb, "a:a") },
			del:            "x:x",
			wantEntries:    []string{"a:a"},
			wantSuppressed: []string{"x:x"},
			wantAt:         t1,
		},
		{
			name:           "empty set",
			start:          func(tb testing.TB) tags.Set { return tags.Set{} },
			del:            "x:x",
			wantSuppressed: []string{"x:x"},
			wantAt:         t1,
		},
		{
			name:           "last entry",
			start:          func(tb testing.TB) tags.Set { return build(tb, "a:a") },
			del:            "a:a",
			wantSuppressed: []string{"a:a"},
			wantAt:         t1,
		},
		{
			name: "suppression inserted in the middle",
			start: func(tb testing.TB) tags.Set {
				return build(tb, "b:b", "m:m").Delete(tags.MustParse("a:a"), t0).Delete(tags.MustParse("z:z"), t0)
			},
			del:            "m:m",
			wantEntries:    []string{"b:b"},
			wantSuppressed: []string{"a:a", "m:m", "z:z"},
			wantAt:         t1,
		},
		{
			name: "suppression inserted first",
			start: func(tb testing.TB) tags.Set {
				return build(tb, "a:a").Delete(tags.MustParse("m:m"), t0)
			},
			del:            "a:a",
			wantSuppressed: []string{"a:a", "m:m"},
			wantAt:         t1,
		},
		{
			name: "already suppressed keeps the first time",
			start: func(tb testing.TB) tags.Set {
				return build(tb, "a:a").Delete(tags.MustParse("x:x"), t0)
			},
			del:            "x:x",
			wantEntries:    []string{"a:a"},
			wantSuppressed: []string{"x:x"},
			wantAt:         t0,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := withSpareCapacity(c.start(t))
			before := takeSnapshot(s)
			got := s.Delete(tags.MustParse(c.del), t1)
			before.check(t, "Delete")
			checkSorted(t, got)
			wantTags(t, "entries", entryTags(got), c.wantEntries...)
			wantTags(t, "suppressed", suppressedTags(got), c.wantSuppressed...)
			if _, ok := got.Has(tags.Tag(c.del)); ok {
				t.Errorf("Has(%q) = true after Delete", c.del)
			}
			if !got.IsSuppressed(tags.Tag(c.del)) {
				t.Errorf("IsSuppressed(%q) = false after Delete", c.del)
			}
			for _, p := range got.Suppressed {
				if p.Tag == tags.Tag(c.del) && !p.At.Equal(c.wantAt) {
					t.Errorf("suppression of %q at %v, want %v", c.del, p.At, c.wantAt)
				}
			}
		})
	}
}

func TestDeleteAll(t *testing.T) {
	s := build(t, "b:b", "d:d").Delete(tags.MustParse("c:c"), t0).Delete(tags.MustParse("a:a"), t0)
	s = withSpareCapacity(s)
	snap := takeSnapshot(s)
	got := s.DeleteAll(t1)
	snap.check(t, "DeleteAll")
	checkSorted(t, got)
	if got.Entries != nil {
		t.Errorf("Entries = %v, want nil", got.Entries)
	}
	wantTags(t, "suppressed", suppressedTags(got), "a:a", "b:b", "c:c", "d:d")
	wantAt := map[tags.Tag]time.Time{"a:a": t0, "b:b": t1, "c:c": t0, "d:d": t1}
	for _, p := range got.Suppressed {
		if !p.At.Equal(wantAt[p.Tag]) {
			t.Errorf("suppression %q at %v, want %v", p.Tag, p.At, wantAt[p.Tag])
		}
	}
	// Nothing of the deleted set can be inferred back.
	for _, tg := range []string{"a:a", "b:b", "c:c", "d:d"} {
		if _, err := got.Add(tags.MustParse(tg), tags.Inferred, false, t2); !errors.Is(err, tags.ErrSuppressed) {
			t.Errorf("Add(%q) after DeleteAll error = %v, want ErrSuppressed", tg, err)
		}
	}
	// DeleteAll of an empty set is empty.
	if e := (tags.Set{}).DeleteAll(t1); len(e.Entries) != 0 || len(e.Suppressed) != 0 {
		t.Errorf("empty.DeleteAll = %+v, want empty", e)
	}
}

func TestAddNeverModifiesReceiver(t *testing.T) {
	cases := []struct {
		name   string
		tag    string
		src    tags.Source
		byUser bool
	}{
		{"insert first", "a:a", tags.Inferred, false},
		{"insert middle", "k:k", tags.Inferred, false},
		{"insert last", "z:z", tags.Declared, true},
		{"replace existing", "m:m", tags.Declared, true},
		{"lift suppression", "s:s", tags.Declared, true},
		{"refused suppressed", "s:s", tags.Inferred, false},
		{"no downgrade", "d:d", tags.Inferred, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := build(t, "c:c", "m:m", "x:x")
			s = mustAdd(t, s, "d:d", tags.Declared, true, t0)
			s = s.Delete(tags.MustParse("s:s"), t0).Delete(tags.MustParse("t:t"), t0)
			s = withSpareCapacity(s)
			snap := takeSnapshot(s)
			got, _ := s.Add(tags.MustParse(c.tag), c.src, c.byUser, t1)
			snap.check(t, "Add")
			checkSorted(t, got)
			if _, ok := got.Has(tags.Tag(c.tag)); !ok && c.src == tags.Declared {
				t.Errorf("Has(%q) = false after a declared Add", c.tag)
			}
		})
	}
}

func TestHas(t *testing.T) {
	s := mustAdd(t, build(t, "b:b", "d:d"), "c:c", tags.Declared, true, t1)
	cases := []struct {
		tag  string
		ok   bool
		src  tags.Source
		when time.Time
	}{
		{"a:a", false, "", time.Time{}},
		{"b:b", true, tags.Inferred, t0},
		{"c:c", true, tags.Declared, t1},
		{"d:d", true, tags.Inferred, t0},
		{"e:e", false, "", time.Time{}},
		{"b:bb", false, "", time.Time{}},
	}
	for _, c := range cases {
		e, ok := s.Has(tags.Tag(c.tag))
		if ok != c.ok {
			t.Errorf("Has(%q) ok = %t, want %t", c.tag, ok, c.ok)
			continue
		}
		if !ok {
			if e != (tags.Entry{}) {
				t.Errorf("Has(%q) entry = %+v, want zero", c.tag, e)
			}
			continue
		}
		if e.Tag != tags.Tag(c.tag) || e.Source != c.src || !e.At.Equal(c.when) {
			t.Errorf("Has(%q) = %+v, want {%s %s %v}", c.tag, e, c.tag, c.src, c.when)
		}
	}
	if _, ok := (tags.Set{}).Has("a:a"); ok {
		t.Error("empty Set Has(a:a) = true")
	}
}

func TestIsSuppressed(t *testing.T) {
	s := tags.Set{}.Delete("b:b", t0).Delete("d:d", t0)
	for tg, want := range map[string]bool{"a:a": false, "b:b": true, "c:c": false, "d:d": true, "e:e": false} {
		if got := s.IsSuppressed(tags.Tag(tg)); got != want {
			t.Errorf("IsSuppressed(%q) = %t, want %t", tg, got, want)
		}
	}
	if (tags.Set{}).IsSuppressed("a:a") {
		t.Error("empty Set IsSuppressed(a:a) = true")
	}
}

func TestEqual(t *testing.T) {
	base := mustAdd(t, build(t, "a:a", "b:b"), "c:c", tags.Declared, true, t0).Delete("x:x", t1)
	shanghai := time.FixedZone("CST", 8*3600)
	cases := []struct {
		name string
		o    func() tags.Set
		want bool
	}{
		{"same", func() tags.Set { return base }, true},
		{"deep copy", func() tags.Set { return withSpareCapacity(base) }, true},
		{"same instant other zone", func() tags.Set {
			c := withSpareCapacity(base)
			c.Entries[0].At = c.Entries[0].At.In(shanghai)
			c.Suppressed[0].At = c.Suppressed[0].At.In(shanghai)
			return c
		}, true},
		{"entry missing", func() tags.Set { return base.Delete("a:a", t1).Delete("a:a", t1) }, false},
		{"entry source differs", func() tags.Set {
			c := withSpareCapacity(base)
			c.Entries[0].Source = tags.Declared
			return c
		}, false},
		{"entry tag differs", func() tags.Set {
			c := withSpareCapacity(base)
			c.Entries[0].Tag = "a:b"
			return c
		}, false},
		{"entry time differs", func() tags.Set {
			c := withSpareCapacity(base)
			c.Entries[1].At = t2
			return c
		}, false},
		{"suppression missing", func() tags.Set { return tags.Set{Entries: base.Entries} }, false},
		{"suppression tag differs", func() tags.Set {
			c := withSpareCapacity(base)
			c.Suppressed[0].Tag = "y:y"
			return c
		}, false},
		{"suppression time differs", func() tags.Set {
			c := withSpareCapacity(base)
			c.Suppressed[0].At = t2
			return c
		}, false},
		{"empty", func() tags.Set { return tags.Set{} }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := c.o()
			if got := base.Equal(o); got != c.want {
				t.Errorf("base.Equal(o) = %t, want %t\nbase=%+v\no=%+v", got, c.want, base, o)
			}
			if got := o.Equal(base); got != c.want {
				t.Errorf("o.Equal(base) = %t, want %t (Equal must be symmetric)", got, c.want)
			}
		})
	}
	if !(tags.Set{}).Equal(tags.Set{Entries: []tags.Entry{}, Suppressed: []tags.Suppression{}}) {
		t.Error("nil and empty slices should be Equal")
	}
}
