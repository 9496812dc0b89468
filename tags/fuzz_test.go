package tags_test

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recguard/recguard/tags"
)

// tagRE is an independent statement of the tag syntax.
var tagRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}:[a-z0-9_.\-]{1,64}$`)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"interest:ski", "a:b", "", ":", "a:", ":b", "a:b:c", "A:b", "a:B", " A : b\t", "a:b\n", "1a:b",
		"medical_health:diabetes", "ns_1:v-1.2_3", "a b:c", "city:北京", "a:b\x00",
		strings.Repeat("a", 32) + ":" + strings.Repeat("v", 64),
		strings.Repeat("a", 33) + ":v",
		"a:" + strings.Repeat("v", 65),
		"consent:x", "refused:sms", "sensitive:religion",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := tags.Parse(s)
		// The canonical form, stated independently: trimmed around the
		// tag and its colon, ASCII letters lowercased.
		canon := strings.Trim(s, " \t")
		if a, b, ok := strings.Cut(canon, ":"); ok {
			canon = strings.Trim(a, " \t") + ":" + strings.Trim(b, " \t")
		}
		canon = asciiLower(canon)
		ns, _, _ := strings.Cut(canon, ":")
		valid := tagRE.MatchString(canon) && !slices.Contains(tags.ReservedNamespaces(), ns)
		if valid != (err == nil) {
			t.Fatalf("Parse(%q) error = %v, but the syntax says valid=%t", s, err, valid)
		}
		if err != nil {
			if !errors.Is(err, tags.ErrInvalidTag) {
				t.Fatalf("Parse(%q) error = %v, does not wrap ErrInvalidTag", s, err)
			}
			if tg != "" {
				t.Fatalf("Parse(%q) returned %q with an error", s, tg)
			}
			return
		}
		if string(tg) != canon {
			t.Fatalf("Parse(%q) = %q, want the canonical form %q", s, tg, canon)
		}
		again, err := tags.Parse(string(tg))
		if err != nil || again != tg {
			t.Fatalf("Parse(Parse(%q)) = %q, %v; want %q, nil", s, again, err, tg)
		}
		ns, v := tg.Namespace(), tg.Value()
		if ns+":"+v != canon {
			t.Fatalf("Namespace()+\":\"+Value() = %q, want %q", ns+":"+v, canon)
		}
		if len(ns) < 1 || len(ns) > tags.MaxNamespaceLen || len(v) < 1 || len(v) > tags.MaxValueLen {
			t.Fatalf("Parse(%q) accepted namespace of %d bytes and value of %d bytes", s, len(ns), len(v))
		}
		if ns[0] < 'a' || ns[0] > 'z' {
			t.Fatalf("Parse(%q) accepted namespace starting with %q", s, ns[0])
		}
		if strings.Trim(ns, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			t.Fatalf("Parse(%q) accepted namespace %q outside [a-z0-9_]", s, ns)
		}
		if strings.Trim(v, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != "" {
			t.Fatalf("Parse(%q) accepted value %q outside [a-z0-9_.-]", s, v)
		}
		if err := tags.ValidNamespace(ns); err != nil {
			t.Fatalf("ValidNamespace(%q) = %v for the namespace of an accepted tag", ns, err)
		}
	})
}

// FuzzSetOps applies a fuzzed sequence of operations to a Set and checks the
// invariants after each: sorted without duplicates, the receiver unchanged,
// a deleted tag stays deleted except for the user's declaration.
func FuzzSetOps(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{0x10, 0x21, 0x12, 0x33, 0x14, 0x05, 0x46})
	f.Add([]byte{0x31, 0x01, 0x11, 0x21, 0x41, 0x31})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 200 {
			ops = ops[:200]
		}
		var s tags.Set
		at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		for i, b := range ops {
			tg := tags.Tag("t:" + string(rune('a'+b%8)))
			op := b >> 4 % 5
			at = at.Add(time.Second)
			snap := takeSnapshot(s)
			before := s
			var next tags.Set
			var err error
			switch op {
			case 0:
				next, err = s.Add(tg, tags.Inferred, false, at)
			case 1:
				next, err = s.Add(tg, tags.Declared, true, at)
			case 2:
				next, err = s.Add(tg, tags.Declared, false, at)
			case 3:
				next = s.Delete(tg, at)
			case 4:
				next = s.DeleteAll(at)
			}
			snap.check(t, "operation")
			checkSorted(t, next)
			wasSuppressed := before.IsSuppressed(tg)
			switch op {
			case 0, 2:
				if wasSuppressed != errors.Is(err, tags.ErrSuppressed) {
					t.Fatalf("op %d: Add(%q) on suppressed=%t gave error %v", i, tg, wasSuppressed, err)
				}
				if err != nil && !next.Equal(before) {
					t.Fatalf("op %d: failed Add changed the set", i)
				}
				if err == nil {
					if _, ok := next.Has(tg); !ok {
						t.Fatalf("op %d: Add(%q) succeeded but Has is false", i, tg)
					}
				}
			case 1:
				if err != nil {
					t.Fatalf("op %d: the user's declaration of %q failed: %v", i, tg, err)
				}
				if e, ok := next.Has(tg); !ok || e.Source != tags.Declared || next.IsSuppressed(tg) {
					t.Fatalf("op %d: after declaring %q: entry %+v ok=%t suppressed=%t", i, tg, e, ok, next.IsSuppressed(tg))
				}
			case 3:
				if _, ok := next.Has(tg); ok || !next.IsSuppressed(tg) {
					t.Fatalf("op %d: after Delete(%q) Has=%t IsSuppressed=%t", i, tg, ok, next.IsSuppressed(tg))
				}
			case 4:
				if len(next.Entries) != 0 {
					t.Fatalf("op %d: DeleteAll left %v", i, next.Entries)
				}
				for _, e := range before.Entries {
					if !next.IsSuppressed(e.Tag) {
						t.Fatalf("op %d: DeleteAll did not suppress %q", i, e.Tag)
					}
				}
			}
			// No tag is ever both present and suppressed.
			for _, e := range next.Entries {
				if next.IsSuppressed(e.Tag) {
					t.Fatalf("op %d: %q is both present and suppressed", i, e.Tag)
				}
			}
			s = next
		}
	})
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}
