package tags_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/recguard/recguard/tags"
)

// channelRE is an independent statement of the channel syntax.
var channelRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

func FuzzParseSegment(f *testing.F) {
	for _, s := range []string{
		"", "*", "!*", "a:x", "minor", "erased", "interest",
		"a:x | b:y & !c:z", "(a:x | b:y) & !c:z", "a:x & (b:y & c:z)", "a:x | (b:y | c:z)",
		"!(a:x & b:y) | !!c:z", "((((a:x))))", "(a:x", "a:x)", "a:x b:y", "a:x &", "& a:x",
		"consent:personalization_off & consent:guardian", "consent:foo", "consent:",
		"refused:sms | refused:in_app", "refused:Push", "refused:" + strings.Repeat("a", 33),
		"sensitive:medical_health", "sensitive:x", "sensitive:",
		"Interest:ski", ":x", "a:", "a:b:c", "city:北京", "a:x\xff", "a\t:\nx",
		"(interest:ski|interest:snowboard)&!refused:push&!consent:personalization_off",
		strings.Repeat("(", 64) + "a:x" + strings.Repeat(")", 64),
		strings.Repeat("(", 65) + "a:x" + strings.Repeat(")", 65),
		strings.Repeat("a:b&", 682) + "a:b",
		strings.Repeat("a:b&", 683) + "a:b",
		strings.Repeat("!", 100) + "*",
		"0" + strings.Repeat("\xf0", 80),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		seg, err := tags.ParseSegment(in)
		// A lone namespace:value word outside the flag namespaces is a tag
		// exactly when Parse says so.
		if strings.IndexByte(in, ':') >= 0 && !strings.ContainsAny(in, " \t\r\n!&|()*") && !isReserved(in) {
			tag, perr := tags.Parse(in)
			if perr == nil && string(tag) != in {
				// Parse takes case variants (it canonicalizes); segments
				// are written in the canonical form only.
				perr = tags.ErrInvalidTag
			}
			if (perr == nil) != (err == nil) {
				t.Fatalf("Parse(%q) error = %v, but ParseSegment error = %v", in, perr, err)
			}
			if err == nil && (seg.Op != tags.OpAtom || seg.Atom != (tags.Atom{Kind: tags.AtomTag, Tag: tag})) {
				t.Fatalf("ParseSegment(%q) = %s, want the tag atom", in, dump(seg))
			}
		}
		if err != nil {
			checkSyntaxError(t, in, seg, err)
			return
		}
		if seg == nil {
			t.Fatalf("ParseSegment(%q) = nil, nil", in)
		}
		if len(in) > tags.MaxSegmentLen {
			t.Fatalf("ParseSegment accepted %d bytes", len(in))
		}
		printed := seg.String()
		if len(printed) > tags.MaxSegmentLen {
			t.Fatalf("ParseSegment(%q) accepted a tree whose canonical form has %d bytes", in, len(printed))
		}
		again, err := tags.ParseSegment(printed)
		if err != nil {
			t.Fatalf("ParseSegment(%q) ok, but its canonical form %q does not parse: %v", in, printed, err)
		}
		if !again.Equal(seg) {
			t.Fatalf("ParseSegment(%q) and ParseSegment(%q) differ:\n%s\n%s", in, printed, dump(seg), dump(again))
		}
		if p2 := again.String(); p2 != printed {
			t.Fatalf("String not a fixed point for %q: %q then %q", in, printed, p2)
		}
		if strings.Contains(printed, "  ") || strings.HasPrefix(printed, " ") || strings.HasSuffix(printed, " ") || strings.Contains(printed, "! ") {
			t.Fatalf("canonical form %q has stray spaces", printed)
		}
		// Every atom is valid on its own and distinct.
		seen := map[tags.Atom]bool{}
		for _, a := range seg.Atoms() {
			if seen[a] {
				t.Fatalf("Atoms(%q) repeats %v", in, a)
			}
			seen[a] = true
			switch a.Kind {
			case tags.AtomTag:
				if _, err := tags.Parse(string(a.Tag)); err != nil {
					t.Fatalf("ParseSegment(%q) accepted tag %q that Parse rejects: %v", in, a.Tag, err)
				}
			case tags.AtomSensitive:
				if !a.Category.Valid() {
					t.Fatalf("ParseSegment(%q) accepted category %q", in, a.Category)
				}
			case tags.AtomRefused:
				if !channelRE.MatchString(a.Channel) {
					t.Fatalf("ParseSegment(%q) accepted channel %q", in, a.Channel)
				}
			}
			single, err := tags.ParseSegment(a.String())
			if err != nil || single.Op != tags.OpAtom || single.Atom != a {
				t.Fatalf("atom %v does not parse back: %v, %v", a, single, err)
			}
		}
		// Evaluation is total on a parsed tree.
		_ = seg.Eval(func(a tags.Atom) bool { return len(a.String())%2 == 0 })
		_ = seg.UsesPersonalData()
	})
}

// checkSyntaxError checks the shape of every error ParseSegment returns.
func checkSyntaxError(t *testing.T, in string, seg *tags.Segment, err error) {
	t.Helper()
	if seg != nil {
		t.Fatalf("ParseSegment(%q) returned a segment with error %v", in, err)
	}
	if !errors.Is(err, tags.ErrInvalidSegment) {
		t.Fatalf("ParseSegment(%q) error %v does not wrap ErrInvalidSegment", in, err)
	}
	var se *tags.SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("ParseSegment(%q) error %T is not a *SyntaxError", in, err)
	}
	if se.Pos < 0 || se.Pos > len(in) || se.Expected == "" || se.Found == "" {
		t.Fatalf("ParseSegment(%q) error has Pos %d, Expected %q, Found %q", in, se.Pos, se.Expected, se.Found)
	}
	if !strings.HasPrefix(err.Error(), "tags: invalid segment expression at ") || len(err.Error()) > 400 {
		t.Fatalf("ParseSegment(%q) error message %q", in, err.Error())
	}
	if len(in) <= tags.MaxSegmentLen && se.Input != in {
		t.Fatalf("SyntaxError.Input = %q, want %q", se.Input, in)
	}
}

func isReserved(s string) bool {
	ns, _, _ := strings.Cut(s, ":")
	for _, r := range tags.ReservedNamespaces() {
		if ns == r {
			return true
		}
	}
	return false
}
