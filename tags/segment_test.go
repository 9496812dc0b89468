package tags_test

import (
	"errors"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/recguard/recguard/tags"
)

// Tree builders for expected values.

func tagAtom(s string) tags.Atom { return tags.Atom{Kind: tags.AtomTag, Tag: tags.MustParse(s)} }

func leaf(a tags.Atom) *tags.Segment { return &tags.Segment{Op: tags.OpAtom, Atom: a} }

func tg(s string) *tags.Segment { return leaf(tagAtom(s)) }

func all() *tags.Segment { return &tags.Segment{Op: tags.OpAll} }

func not(x *tags.Segment) *tags.Segment { return &tags.Segment{Op: tags.OpNot, X: x} }

func and(x, y *tags.Segment) *tags.Segment { return &tags.Segment{Op: tags.OpAnd, X: x, Y: y} }

func or(x, y *tags.Segment) *tags.Segment { return &tags.Segment{Op: tags.OpOr, X: x, Y: y} }

var (
	atomPersOff  = tags.Atom{Kind: tags.AtomPersonalizationOff}
	atomGuardian = tags.Atom{Kind: tags.AtomGuardian}
	atomMinor    = tags.Atom{Kind: tags.AtomMinor}
	atomErased   = tags.Atom{Kind: tags.AtomErased}
)

func refused(ch string) tags.Atom { return tags.Atom{Kind: tags.AtomRefused, Channel: ch} }

func sensitive(c tags.Category) tags.Atom { return tags.Atom{Kind: tags.AtomSensitive, Category: c} }

// checkRoundTrip asserts the printer/parser contract for seg.
func checkRoundTrip(t *testing.T, seg *tags.Segment) {
	t.Helper()
	printed := seg.String()
	again, err := tags.ParseSegment(printed)
	if err != nil {
		t.Fatalf("ParseSegment(%q) (the canonical form) error = %v", printed, err)
	}
	if !again.Equal(seg) {
		t.Fatalf("ParseSegment(%q) = %s, not Equal to the printed tree", printed, again)
	}
	if p2 := again.String(); p2 != printed {
		t.Fatalf("String is not a fixed point: %q then %q", printed, p2)
	}
}

func TestParseSegmentValid(t *testing.T) {
	maxTag := "a" + strings.Repeat("z", tags.MaxNamespaceLen-1) + ":" + strings.Repeat("9", tags.MaxValueLen)
	maxChan := "a" + strings.Repeat("b", 31)
	cases := []struct {
		in, want string
	}{
		{"interest:ski", "interest:ski"},
		{"*", "*"},
		{"minor", "minor"},
		{"erased", "erased"},
		{"consent:personalization_off", "consent:personalization_off"},
		{"consent:guardian", "consent:guardian"},
		{"refused:sms", "refused:sms"},
		{"refused:in_app2", "refused:in_app2"},
		{"refused:" + maxChan, "refused:" + maxChan},
		{"sensitive:medical_health", "sensitive:medical_health"},
		{"sensitive:biometrics", "sensitive:biometrics"},
		{maxTag, maxTag},
		{"brand:coca-cola.zero_sugar", "brand:coca-cola.zero_sugar"},
		// Names that only look like flags are ordinary tags and words.
		{"consents:x", "consents:x"},
		{"refused_x:y", "refused_x:y"},
		{"minor:yes", "minor:yes"},
		{"erased:x", "erased:x"},
		// Whitespace is insignificant.
		{"  a:x  ", "a:x"},
		{"a:x&b:y", "a:x & b:y"},
		{"a:x\t|\nb:y\r\n", "a:x | b:y"},
		{"!a:x", "!a:x"},
		{"! a:x", "!a:x"},
		{"!\n\t a:x", "!a:x"},
		{"!!a:x", "!!a:x"},
		{"! ! !a:x", "!!!a:x"},
		{"!*", "!*"},
		{"*&!erased", "* & !erased"},
		// Precedence and associativity.
		{"a:x | b:y & !c:z", "a:x | b:y & !c:z"},
		{"a:x & b:y | c:z", "a:x & b:y | c:z"},
		{"a:x & b:y & c:z", "a:x & b:y & c:z"},
		{"a:x | b:y | c:z", "a:x | b:y | c:z"},
		// Redundant parentheses go away, needed ones stay.
		{"(a:x)", "a:x"},
		{"((((a:x))))", "a:x"},
		{"(a:x & b:y) & c:z", "a:x & b:y & c:z"},
		{"a:x & (b:y & c:z)", "a:x & (b:y & c:z)"},
		{"(a:x | b:y) | c:z", "a:x | b:y | c:z"},
		{"a:x | (b:y | c:z)", "a:x | (b:y | c:z)"},
		{"a:x | (b:y & c:z)", "a:x | b:y & c:z"},
		{"(a:x & b:y) | c:z", "a:x & b:y | c:z"},
		{"(a:x | b:y) & c:z", "(a:x | b:y) & c:z"},
		{"a:x & (b:y | c:z)", "a:x & (b:y | c:z)"},
		{"!(a:x)", "!a:x"},
		{"!(a:x & b:y)", "!(a:x & b:y)"},
		{"!(a:x | b:y)", "!(a:x | b:y)"},
		{"!(!a:x)", "!!a:x"},
		{"(!a:x) & (!b:y)", "!a:x & !b:y"},
		{"(*)", "*"},
		{
			"(interest:ski|interest:snowboard)&!refused:push&!consent:personalization_off",
			"(interest:ski | interest:snowboard) & !refused:push & !consent:personalization_off",
		},
		{
			"sensitive:medical_health & medical:diabetes | (minor & consent:guardian & region:sh)",
			"sensitive:medical_health & medical:diabetes | minor & consent:guardian & region:sh",
		},
		{
			"((a:x | b:y) & (c:z | d:w)) | !(e:v & (f:u | g:t))",
			"(a:x | b:y) & (c:z | d:w) | !(e:v & (f:u | g:t))",
		},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			seg, err := tags.ParseSegment(c.in)
			if err != nil {
				t.Fatalf("ParseSegment(%q) error = %v", c.in, err)
			}
			if got := seg.String(); got != c.want {
				t.Errorf("ParseSegment(%q).String() = %q, want %q", c.in, got, c.want)
			}
			checkRoundTrip(t, seg)
			if m := tags.MustParseSegment(c.in); !m.Equal(seg) {
				t.Errorf("MustParseSegment(%q) = %s, want %s", c.in, m, seg)
			}
		})
	}
}

func TestParseSegmentTree(t *testing.T) {
	a, b, c := tg("a:x"), tg("b:y"), tg("c:z")
	cases := []struct {
		in   string
		want *tags.Segment
	}{
		{"a:x | b:y & !c:z", or(a, and(b, not(c)))},
		{"!a:x & b:y | c:z", or(and(not(a), b), c)},
		{"a:x & b:y & c:z", and(and(a, b), c)},
		{"a:x | b:y | c:z", or(or(a, b), c)},
		{"a:x & (b:y & c:z)", and(a, and(b, c))},
		{"a:x | (b:y | c:z)", or(a, or(b, c))},
		{"(a:x | b:y) & c:z", and(or(a, b), c)},
		{"!(a:x | b:y)", not(or(a, b))},
		{"!!a:x", not(not(a))},
		{"* & !erased & !minor", and(and(all(), not(leaf(atomErased))), not(leaf(atomMinor)))},
		{"consent:personalization_off | consent:guardian", or(leaf(atomPersOff), leaf(atomGuardian))},
		{"refused:sms & sensitive:religion", and(leaf(refused("sms")), leaf(sensitive(tags.Religion)))},
	}
	for _, c := range cases {
		got, err := tags.ParseSegment(c.in)
		if err != nil {
			t.Errorf("ParseSegment(%q) error = %v", c.in, err)
			continue
		}
		if !got.Equal(c.want) {
			t.Errorf("ParseSegment(%q) = %s (%s), want %s", c.in, dump(got), got, dump(c.want))
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseSegment(%q) is Equal but not DeepEqual to %s", c.in, dump(c.want))
		}
	}
}

// dump writes a tree in prefix form, for failure messages.
func dump(s *tags.Segment) string {
	if s == nil {
		return "nil"
	}
	switch s.Op {
	case tags.OpAll:
		return "all"
	case tags.OpAtom:
		return s.Atom.String()
	case tags.OpNot:
		return "not(" + dump(s.X) + ")"
	}
	return s.Op.String() + "(" + dump(s.X) + ", " + dump(s.Y) + ")"
}

func TestParseSegmentErrors(t *testing.T) {
	const operand = `tag, flag, "*", "!" or "("`
	const afterTop = `"&", "|" or end of input`
	const cats = `sensitive category (one of biometrics, religion, specific_identity, medical_health, financial_account or whereabouts)`
	long := strings.Repeat("a:b & ", 700) + "a:b"   // 4203 bytes
	compact := strings.Repeat("a:b&", 1023) + "a:b" // 4095 bytes, canonical form 6141
	cases := []struct {
		name, in       string
		pos            int
		expected       string
		found          string
		wantInputEqual bool
	}{
		{"empty", "", 0, operand, "end of input", true},
		{"blank", " \t\n", 3, operand, "end of input", true},
		{"lone close", ")", 0, operand, `")"`, true},
		{"close after and", "interest:ski & )", 15, operand, `")"`, true},
		{"close in the spec example", "(a:x | b:y) & ()", 15, operand, `")"`, true},
		{"stray close", "a:x & b:y)", 9, afterTop, `")"`, true},
		{"two atoms", "a:x b:y", 4, afterTop, `"b:y"`, true},
		{"atom then paren", "a:x (b:y)", 4, afterTop, `"("`, true},
		{"atom then star", "a:x*", 3, afterTop, `"*"`, true},
		{"atom then bang", "a:x !b:y", 4, afterTop, `"!"`, true},
		{"leading and", "& a:x", 0, operand, `"&"`, true},
		{"leading or", "| a:x", 0, operand, `"|"`, true},
		{"double and", "a:x && b:y", 5, operand, `"&"`, true},
		{"and then or", "a:x & | b:y", 6, operand, `"|"`, true},
		{"trailing and", "a:x &", 5, operand, "end of input", true},
		{"trailing or", "a:x |  ", 7, operand, "end of input", true},
		{"trailing not", "a:x & !", 7, operand, "end of input", true},
		{"not then and", "!& a:x", 1, operand, `"&"`, true},
		{"unclosed", "(a:x", 4, `"&", "|" or ")" (to close "(" at 0)`, "end of input", true},
		{"unclosed inner", "(a:x & (b:y | c:z)", 18, `"&", "|" or ")" (to close "(" at 0)`, "end of input", true},
		{"unclosed innermost", "((a:x) & (b:y", 13, `"&", "|" or ")" (to close "(" at 9)`, "end of input", true},
		{"junk in parens", "(a:x b:y)", 5, `"&", "|" or ")" (to close "(" at 0)`, `"b:y"`, true},
		{"empty parens", "()", 1, operand, `")"`, true},
		{"open only", "((a:x | ", 8, operand, "end of input", true},
		{"bare word", "interest", 0, operand, `"interest"`, true},
		{"bare reserved", "consent", 0, operand, `"consent"`, true},
		{"bare upper", "Minor", 0, operand, `"Minor"`, true},
		{"junk byte", "#", 0, operand, `"#"`, true},
		{"junk after op", "a:x & #x", 6, operand, `"#x"`, true},
		{"namespace upper", "Interest:ski", 0, "namespace starting with a lowercase letter", `"I"`, true},
		{"namespace digit", "a:x | 1a:b", 6, "namespace starting with a lowercase letter", `"1"`, true},
		{"namespace empty", ":ski", 0, "namespace starting with a lowercase letter", `":"`, true},
		{"namespace byte", "inTerest:ski", 2, "namespace byte in [a-z0-9_]", `"T"`, true},
		{"namespace dash", "my-ns:v", 2, "namespace byte in [a-z0-9_]", `"-"`, true},
		{"namespace unicode", "in北:v", 2, "namespace byte in [a-z0-9_]", `"北"`, true},
		{"namespace too long", "a" + strings.Repeat("b", 32) + ":v", 32, "namespace of at most 32 bytes", "33 bytes", true},
		{"reserved upper", "Consent:guardian", 0, "namespace starting with a lowercase letter", `"C"`, true},
		{"value empty", "a:", 2, "tag value", "end of input", true},
		{"value empty space", "a: b", 2, "tag value", `" "`, true},
		{"value empty paren", "(a:)", 3, "tag value", `")"`, true},
		{"value upper", "interest:Ski", 9, "tag value byte in [a-z0-9_.-]", `"S"`, true},
		{"value colon", "a:b:c", 3, "tag value byte in [a-z0-9_.-]", `":"`, true},
		{"value unicode", "city:北京", 5, "tag value byte in [a-z0-9_.-]", `"北"`, true},
		{"value invalid utf8", "a:x\xff", 3, "tag value byte in [a-z0-9_.-]", `"\xff"`, true},
		{"value too long", "a:" + strings.Repeat("v", 65), 66, "tag value of at most 64 bytes", "65 bytes", true},
		{"consent unknown", "consent:foo", 8, `"personalization_off" or "guardian" after "consent:"`, `"foo"`, true},
		{"consent empty", "consent: & a:x", 8, `"personalization_off" or "guardian" after "consent:"`, `" "`, true},
		{"consent upper", "consent:Guardian", 8, `"personalization_off" or "guardian" after "consent:"`, `"Guardian"`, true},
		{"consent bare personalization", "consent:personalization", 8, `"personalization_off" or "guardian" after "consent:"`, `"personalization"`, true},
		{"refused empty", "refused:", 8, "channel name starting with a lowercase letter", "end of input", true},
		{"refused upper", "refused:Push", 8, "channel name starting with a lowercase letter", `"P"`, true},
		{"refused digit", "refused:2sms", 8, "channel name starting with a lowercase letter", `"2"`, true},
		{"refused underscore", "refused:_x", 8, "channel name starting with a lowercase letter", `"_"`, true},
		{"refused dash", "!refused:in-app", 11, "channel name byte in [a-z0-9_]", `"-"`, true},
		{"refused dot", "refused:a.b", 9, "channel name byte in [a-z0-9_]", `"."`, true},
		{"refused colon", "refused:a:b", 9, "channel name byte in [a-z0-9_]", `":"`, true},
		{"refused too long", "refused:a" + strings.Repeat("b", 32), 40, "channel name of at most 32 bytes", "33 bytes", true},
		{"sensitive unknown", "sensitive:x", 10, cats, `"x"`, true},
		{"sensitive empty", "sensitive:)", 10, cats, `")"`, true},
		{"sensitive upper", "sensitive:Religion", 10, cats, `"Religion"`, true},
		{"too long", long, tags.MaxSegmentLen, "expression of at most 4096 bytes", "4203 bytes", false},
		{"too deep", strings.Repeat("(", 65) + "a:x" + strings.Repeat(")", 65), 64, "at most 64 nested parentheses", "nesting depth 65", true},
		{"too deep under not", strings.Repeat("!(", 65) + "a:x" + strings.Repeat(")", 65), 129, "at most 64 nested parentheses", "nesting depth 65", true},
		{"canonical form too long", compact, 0, "expression whose canonical form is at most 4096 bytes", "canonical form of 6141 bytes", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seg, err := tags.ParseSegment(c.in)
			if err == nil {
				t.Fatalf("ParseSegment(%q) = %s, want an error", c.in, seg)
			}
			if seg != nil {
				t.Errorf("ParseSegment(%q) returned %s with an error", c.in, seg)
			}
			if !errors.Is(err, tags.ErrInvalidSegment) {
				t.Errorf("error %v does not wrap ErrInvalidSegment", err)
			}
			if errors.Is(err, tags.ErrInvalidTag) {
				t.Errorf("error %v wraps ErrInvalidTag; a segment error only wraps ErrInvalidSegment", err)
			}
			var se *tags.SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T) is not a *SyntaxError", err, err)
			}
			if se.Pos != c.pos || se.Expected != c.expected || se.Found != c.found {
				t.Errorf("ParseSegment(%q) error at %d, expected %q, found %q; want at %d, expected %q, found %q",
					c.in, se.Pos, se.Expected, se.Found, c.pos, c.expected, c.found)
			}
			if c.wantInputEqual && se.Input != c.in {
				t.Errorf("SyntaxError.Input = %q, want the input", se.Input)
			}
			want := "tags: invalid segment expression at " + itoa(c.pos) + ": expected " + c.expected + ", found " + c.found
			if err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
			if se.Pos < 0 || se.Pos > len(c.in) {
				t.Errorf("Pos %d outside the input of %d bytes", se.Pos, len(c.in))
			}
		})
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestSyntaxErrorMessage(t *testing.T) {
	_, err := tags.ParseSegment("(a:x | b:y) & ()")
	want := `tags: invalid segment expression at 15: expected tag, flag, "*", "!" or "(", found ")"`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
	var se *tags.SyntaxError
	if !errors.As(err, &se) || se.Unwrap() != tags.ErrInvalidSegment {
		t.Fatalf("Unwrap() is not ErrInvalidSegment")
	}
}

func TestSyntaxErrorLongInputIsCut(t *testing.T) {
	in := strings.Repeat(" ", 1<<20) + "a:x"
	_, err := tags.ParseSegment(in)
	var se *tags.SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("ParseSegment(1 MiB) error = %v, want a *SyntaxError", err)
	}
	if len(se.Input) != tags.MaxSegmentLen || se.Pos != tags.MaxSegmentLen {
		t.Errorf("Input has %d bytes and Pos is %d, want %d and %d", len(se.Input), se.Pos, tags.MaxSegmentLen, tags.MaxSegmentLen)
	}
	if len(err.Error()) > 200 {
		t.Errorf("Error() is %d bytes long", len(err.Error()))
	}
}

func TestSyntaxErrorFoundIsClipped(t *testing.T) {
	word := strings.Repeat("x", 300)
	_, err := tags.ParseSegment("a:x " + word)
	var se *tags.SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("error = %v", err)
	}
	if se.Found != `"`+strings.Repeat("x", 40)+`"...` {
		t.Errorf("Found = %q, want the word clipped to 40 bytes", se.Found)
	}
	// Cut at a rune boundary, and invalid bytes stay escaped.
	_, err = tags.ParseSegment("a" + strings.Repeat("北", 20))
	if !errors.As(err, &se) || se.Found != `"a`+strings.Repeat("北", 13)+`"...` {
		t.Errorf("Found = %q, want 13 whole runes", se.Found)
	}
	_, err = tags.ParseSegment("ab" + strings.Repeat("北", 20))
	if !errors.As(err, &se) || se.Found != `"ab`+strings.Repeat("北", 12)+`"...` {
		t.Errorf("Found = %q, want 12 whole runes", se.Found)
	}
	_, err = tags.ParseSegment("0" + strings.Repeat("\xf0", 100))
	if !errors.As(err, &se) || se.Found != `"0`+strings.Repeat(`\xf0`, 39)+`"...` || len(err.Error()) > 250 {
		t.Errorf("Found = %q, error %d bytes", se.Found, len(err.Error()))
	}
}

func TestParseSegmentLimits(t *testing.T) {
	t.Run("length", func(t *testing.T) {
		// Exactly MaxSegmentLen bytes, with a canonical form no longer.
		in := strings.Repeat("a:b & ", 682) + "a:bc"
		if len(in) != tags.MaxSegmentLen {
			t.Fatalf("test input has %d bytes", len(in))
		}
		seg, err := tags.ParseSegment(in)
		if err != nil {
			t.Fatalf("ParseSegment(%d bytes) error = %v", len(in), err)
		}
		checkRoundTrip(t, seg)
		if _, err := tags.ParseSegment(in + " "); err == nil {
			t.Errorf("ParseSegment(%d bytes) = nil error, want too long", len(in)+1)
		}
	})
	t.Run("whitespace counts", func(t *testing.T) {
		in := "a:x" + strings.Repeat(" ", tags.MaxSegmentLen-3)
		if _, err := tags.ParseSegment(in); err != nil {
			t.Errorf("ParseSegment(%d bytes) error = %v", len(in), err)
		}
		if _, err := tags.ParseSegment(in + "\n"); err == nil {
			t.Errorf("ParseSegment(%d bytes) = nil error, want too long", len(in)+1)
		}
	})
	t.Run("canonical form at the limit", func(t *testing.T) {
		// 1023 "a:b" joined by "&": canonical form 1023*3 + 1022*3 = 6135.
		// 683 atoms print to 683*3 + 682*3 = 4095 bytes, 684 to 4101.
		ok := strings.Repeat("a:b&", 682) + "a:b"
		if _, err := tags.ParseSegment(ok); err != nil {
			t.Errorf("ParseSegment(683 atoms) error = %v", err)
		}
		bad := strings.Repeat("a:b&", 683) + "a:b"
		_, err := tags.ParseSegment(bad)
		var se *tags.SyntaxError
		if !errors.As(err, &se) || se.Found != "canonical form of 4101 bytes" {
			t.Errorf("ParseSegment(684 atoms) error = %v, want canonical form of 4101 bytes", err)
		}
	})
	t.Run("depth", func(t *testing.T) {
		in := strings.Repeat("(", tags.MaxSegmentDepth) + "a:x" + strings.Repeat(")", tags.MaxSegmentDepth)
		seg, err := tags.ParseSegment(in)
		if err != nil {
			t.Fatalf("ParseSegment(depth %d) error = %v", tags.MaxSegmentDepth, err)
		}
		if seg.String() != "a:x" {
			t.Errorf("String() = %q", seg.String())
		}
		// Depth 64 that the canonical form keeps: a & (a & (a & ...)).
		in = strings.Repeat("a:x & (", tags.MaxSegmentDepth) + "a:x & a:x" + strings.Repeat(")", tags.MaxSegmentDepth)
		seg, err = tags.ParseSegment(in)
		if err != nil {
			t.Fatalf("ParseSegment(right-nested depth %d) error = %v", tags.MaxSegmentDepth, err)
		}
		if seg.String() != in {
			t.Errorf("String() = %q, want the input", seg.String())
		}
		checkRoundTrip(t, seg)
		// Many parentheses side by side are not deep.
		in = strings.Repeat("(a:x) & ", 200) + "(a:x)"
		if _, err := tags.ParseSegment(in); err != nil {
			t.Errorf("ParseSegment(200 sibling groups) error = %v", err)
		}
	})
	t.Run("long chains", func(t *testing.T) {
		nots := strings.Repeat("!", tags.MaxSegmentLen-3) + "a:x"
		seg, err := tags.ParseSegment(nots)
		if err != nil {
			t.Fatalf("ParseSegment(%d nots) error = %v", tags.MaxSegmentLen-3, err)
		}
		if seg.String() != nots {
			t.Errorf("String() of the not chain differs from the input")
		}
		// An odd number of nots negates.
		if !seg.Eval(func(tags.Atom) bool { return false }) {
			t.Errorf("%d nots of false = false, want true", tags.MaxSegmentLen-3)
		}
		checkRoundTrip(t, seg)
		ors := strings.Repeat("a:x | ", 682) + "b:y"
		seg, err = tags.ParseSegment(ors)
		if err != nil {
			t.Fatalf("ParseSegment(long or chain) error = %v", err)
		}
		if got := seg.Atoms(); len(got) != 2 {
			t.Errorf("Atoms() = %v, want 2 atoms", got)
		}
		checkRoundTrip(t, seg)
	})
}

func TestMustParseSegmentPanics(t *testing.T) {
	defer func() {
		r := recover()
		err, ok := r.(error)
		if !ok || !errors.Is(err, tags.ErrInvalidSegment) {
			t.Errorf("recover() = %v, want an error wrapping ErrInvalidSegment", r)
		}
	}()
	tags.MustParseSegment("a:x &")
}

// oracle answers has() from a set of atoms that hold.
func oracle(holds ...tags.Atom) func(tags.Atom) bool {
	m := map[tags.Atom]bool{}
	for _, a := range holds {
		m[a] = true
	}
	return func(a tags.Atom) bool { return m[a] }
}

func TestSegmentEvalTruthTables(t *testing.T) {
	a, b, c := tagAtom("a:x"), tagAtom("b:y"), tagAtom("c:z")
	atoms := []tags.Atom{a, b, c}
	// Columns: a b c = 000, 001, 010, 011, 100, 101, 110, 111 (a is the
	// high bit), worked out by hand.
	cases := []struct {
		expr string
		want [8]bool
	}{
		{"*", [8]bool{true, true, true, true, true, true, true, true}},
		{"!*", [8]bool{}},
		{"a:x", [8]bool{false, false, false, false, true, true, true, true}},
		{"!a:x", [8]bool{true, true, true, true, false, false, false, false}},
		{"!!a:x", [8]bool{false, false, false, false, true, true, true, true}},
		{"a:x & b:y", [8]bool{false, false, false, false, false, false, true, true}},
		{"a:x | b:y", [8]bool{false, false, true, true, true, true, true, true}},
		// or(a, and(b, not c)): a, or b without c.
		{"a:x | b:y & !c:z", [8]bool{false, false, true, false, true, true, true, true}},
		// and(or(a, b), not c)
		{"(a:x | b:y) & !c:z", [8]bool{false, false, true, false, true, false, true, false}},
		// or(and(not a, b), c)
		{"!a:x & b:y | c:z", [8]bool{false, true, true, true, false, true, false, true}},
		// not(and(a, b)) = !a | !b
		{"!(a:x & b:y)", [8]bool{true, true, true, true, true, true, false, false}},
		// not(or(a, b))
		{"!(a:x | b:y)", [8]bool{true, true, false, false, false, false, false, false}},
		// and(a, or(b, c))
		{"a:x & (b:y | c:z)", [8]bool{false, false, false, false, false, true, true, true}},
		// or(or(a, b), c)
		{"a:x | b:y | c:z", [8]bool{false, true, true, true, true, true, true, true}},
		// and(and(a, b), c)
		{"a:x & b:y & c:z", [8]bool{false, false, false, false, false, false, false, true}},
		// exactly one of a, b (xor)
		{"a:x & !b:y | !a:x & b:y", [8]bool{false, false, true, true, true, true, false, false}},
		{"* & !c:z", [8]bool{true, false, true, false, true, false, true, false}},
	}
	for _, tc := range cases {
		seg := tags.MustParseSegment(tc.expr)
		for row := 0; row < 8; row++ {
			var holds []tags.Atom
			for i, at := range atoms {
				if row&(4>>i) != 0 {
					holds = append(holds, at)
				}
			}
			if got := seg.Eval(oracle(holds...)); got != tc.want[row] {
				t.Errorf("%q with a,b,c=%03b: Eval = %t, want %t", tc.expr, row, got, tc.want[row])
			}
		}
	}
}

func TestSegmentEvalPushTargeting(t *testing.T) {
	// A targeted push with the Art. 42 exclusions.
	seg := tags.MustParseSegment("interest:ski & !refused:push & !consent:personalization_off & !erased & (!minor | consent:guardian)")
	ski := tagAtom("interest:ski")
	cases := []struct {
		name  string
		holds []tags.Atom
		want  bool
	}{
		{"adult skier", []tags.Atom{ski}, true},
		{"not a skier", nil, false},
		{"refused push", []tags.Atom{ski, refused("push")}, false},
		{"refused sms only", []tags.Atom{ski, refused("sms")}, true},
		{"personalization off", []tags.Atom{ski, atomPersOff}, false},
		{"erased", []tags.Atom{ski, atomErased}, false},
		{"minor without guardian", []tags.Atom{ski, atomMinor}, false},
		{"minor with guardian", []tags.Atom{ski, atomMinor, atomGuardian}, true},
	}
	for _, c := range cases {
		if got := seg.Eval(oracle(c.holds...)); got != c.want {
			t.Errorf("%s: Eval = %t, want %t", c.name, got, c.want)
		}
	}
}

func TestSegmentEvalShortCircuit(t *testing.T) {
	var asked []tags.Atom
	has := func(a tags.Atom) bool {
		asked = append(asked, a)
		return a.Tag == "b:y"
	}
	seg := tags.MustParseSegment("a:x & c:z | b:y | d:w")
	if !seg.Eval(has) {
		t.Fatal("Eval = false, want true")
	}
	want := []tags.Atom{tagAtom("a:x"), tagAtom("b:y")}
	if !reflect.DeepEqual(asked, want) {
		t.Errorf("asked %v, want %v", asked, want)
	}
}

func TestSegmentMalformed(t *testing.T) {
	good := tg("a:x")
	cases := []struct {
		name  string
		seg   *tags.Segment
		print string
	}{
		{"nil", nil, "<nil>"},
		{"zero", &tags.Segment{}, "<invalid Op(0)>"},
		{"unknown op", &tags.Segment{Op: 99}, "<invalid Op(99)>"},
		{"atom of zero kind", &tags.Segment{Op: tags.OpAtom}, "<invalid atom>"},
		{"not nil", &tags.Segment{Op: tags.OpNot}, "!<nil>"},
		{"not of zero", not(&tags.Segment{}), "!<invalid Op(0)>"},
		{"and with nil", &tags.Segment{Op: tags.OpAnd, X: good}, "a:x & <nil>"},
		{"or with nil", &tags.Segment{Op: tags.OpOr, Y: good}, "<nil> | a:x"},
		{"deep", or(good, not(and(good, &tags.Segment{Op: tags.OpAtom, Atom: tags.Atom{Kind: 200}}))), "a:x | !(a:x & <invalid atom>)"},
	}
	yes := func(tags.Atom) bool { return true }
	no := func(tags.Atom) bool { return false }
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.seg.Eval(yes) || c.seg.Eval(no) {
				t.Errorf("Eval of a malformed segment = true, want false")
			}
			if !c.seg.UsesPersonalData() {
				t.Errorf("UsesPersonalData of a malformed segment = false, want true")
			}
			if got := c.seg.String(); got != c.print {
				t.Errorf("String() = %q, want %q", got, c.print)
			}
			if _, err := tags.ParseSegment(c.seg.String()); err == nil {
				t.Errorf("the print %q of a malformed segment parses", c.seg.String())
			}
			for _, a := range c.seg.Atoms() {
				if a != tagAtom("a:x") {
					t.Errorf("Atoms() has %v", a)
				}
			}
		})
	}
	// Negating a malformed part does not make it hold.
	if not(&tags.Segment{}).Eval(yes) {
		t.Errorf("!<zero>.Eval = true, want false")
	}
}

func TestSegmentPrintHandBuilt(t *testing.T) {
	a, b, c := tg("a:x"), tg("b:y"), tg("c:z")
	cases := []struct {
		seg  *tags.Segment
		want string
	}{
		{and(a, and(b, c)), "a:x & (b:y & c:z)"},
		{and(and(a, b), c), "a:x & b:y & c:z"},
		{or(a, or(b, c)), "a:x | (b:y | c:z)"},
		{or(or(a, b), c), "a:x | b:y | c:z"},
		{or(and(a, b), c), "a:x & b:y | c:z"},
		{or(a, and(b, c)), "a:x | b:y & c:z"},
		{and(or(a, b), c), "(a:x | b:y) & c:z"},
		{and(a, or(b, c)), "a:x & (b:y | c:z)"},
		{not(and(a, b)), "!(a:x & b:y)"},
		{not(or(a, b)), "!(a:x | b:y)"},
		{not(not(a)), "!!a:x"},
		{not(all()), "!*"},
		{and(not(a), not(b)), "!a:x & !b:y"},
		{or(not(or(a, b)), and(not(and(b, c)), or(c, a))), "!(a:x | b:y) | !(b:y & c:z) & (c:z | a:x)"},
		{and(or(a, b), or(b, and(c, a))), "(a:x | b:y) & (b:y | c:z & a:x)"},
		{leaf(atomPersOff), "consent:personalization_off"},
		{leaf(atomGuardian), "consent:guardian"},
		{leaf(refused("in_app")), "refused:in_app"},
		{leaf(sensitive(tags.Whereabouts)), "sensitive:whereabouts"},
		{leaf(atomMinor), "minor"},
		{leaf(atomErased), "erased"},
	}
	for _, c := range cases {
		if got := c.seg.String(); got != c.want {
			t.Errorf("String() of %s = %q, want %q", dump(c.seg), got, c.want)
		}
		checkRoundTrip(t, c.seg)
	}
}

func TestSegmentEqual(t *testing.T) {
	a, b := tg("a:x"), tg("b:y")
	cases := []struct {
		x, y *tags.Segment
		want bool
	}{
		{nil, nil, true},
		{a, nil, false},
		{nil, a, false},
		{a, tg("a:x"), true},
		{a, b, false},
		{all(), all(), true},
		{all(), &tags.Segment{Op: tags.OpAll, X: a}, true}, // unused fields are ignored
		{a, &tags.Segment{Op: tags.OpAtom, Atom: tagAtom("a:x"), Y: b}, true},
		{and(a, b), and(a, b), true},
		{and(a, b), and(b, a), false},
		{and(a, b), or(a, b), false},
		{not(a), not(a), true},
		{not(a), not(b), false},
		{not(a), a, false},
		{leaf(refused("sms")), leaf(refused("push")), false},
		{leaf(sensitive(tags.Religion)), leaf(sensitive(tags.Religion)), true},
		{leaf(atomMinor), leaf(atomErased), false},
		{&tags.Segment{Op: 77, X: a}, &tags.Segment{Op: 77, X: a}, true},
		{&tags.Segment{Op: 77, X: a}, &tags.Segment{Op: 77, X: b}, false},
		{&tags.Segment{}, &tags.Segment{}, true},
	}
	for _, c := range cases {
		if got := c.x.Equal(c.y); got != c.want {
			t.Errorf("%s.Equal(%s) = %t, want %t", dump(c.x), dump(c.y), got, c.want)
		}
		if got := c.y.Equal(c.x); got != c.want {
			t.Errorf("%s.Equal(%s) = %t, want %t (symmetry)", dump(c.y), dump(c.x), got, c.want)
		}
	}
}

func TestSegmentAtoms(t *testing.T) {
	cases := []struct {
		expr string
		want []tags.Atom
	}{
		{"*", nil},
		{"!*", nil},
		{"a:x", []tags.Atom{tagAtom("a:x")}},
		{"a:x & a:x | !a:x", []tags.Atom{tagAtom("a:x")}},
		{"c:z | b:y & !a:x", []tags.Atom{tagAtom("c:z"), tagAtom("b:y"), tagAtom("a:x")}},
		{"(b:y | a:x) & (a:x | c:z) & b:y", []tags.Atom{tagAtom("b:y"), tagAtom("a:x"), tagAtom("c:z")}},
		{"a:x & (b:y & (c:z & a:x))", []tags.Atom{tagAtom("a:x"), tagAtom("b:y"), tagAtom("c:z")}},
		{
			"!refused:sms & sensitive:religion & minor & erased & consent:guardian & consent:personalization_off & refused:push & refused:sms & * & erased",
			[]tags.Atom{refused("sms"), sensitive(tags.Religion), atomMinor, atomErased, atomGuardian, atomPersOff, refused("push")},
		},
	}
	for _, c := range cases {
		got := tags.MustParseSegment(c.expr).Atoms()
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Atoms(%q) = %v, want %v", c.expr, got, c.want)
		}
	}
}

func TestSegmentUsesPersonalData(t *testing.T) {
	cases := []struct {
		expr string
		want bool
	}{
		{"*", false},
		{"!*", false},
		{"minor", false},
		{"erased", false},
		{"consent:personalization_off", false},
		{"consent:guardian", false},
		{"refused:sms", false},
		{"* & !refused:sms & !consent:personalization_off & !erased & (!minor | consent:guardian)", false},
		{"interest:ski", true},
		{"!interest:ski", true},
		{"sensitive:medical_health", true},
		{"* & !sensitive:religion", true},
		{"minor | erased | region:sh", true},
		{"!(refused:push & !(consent:guardian | a:x))", true},
	}
	for _, c := range cases {
		if got := tags.MustParseSegment(c.expr).UsesPersonalData(); got != c.want {
			t.Errorf("UsesPersonalData(%q) = %t, want %t", c.expr, got, c.want)
		}
	}
}

func TestKindAndOpString(t *testing.T) {
	kinds := map[tags.AtomKind]string{
		tags.AtomTag: "tag", tags.AtomPersonalizationOff: "personalization_off", tags.AtomGuardian: "guardian",
		tags.AtomRefused: "refused", tags.AtomSensitive: "sensitive", tags.AtomMinor: "minor", tags.AtomErased: "erased",
		0: "AtomKind(0)", 8: "AtomKind(8)",
	}
	for k, want := range kinds {
		if got := k.String(); got != want {
			t.Errorf("AtomKind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
	ops := map[tags.Op]string{
		tags.OpAll: "all", tags.OpAtom: "atom", tags.OpNot: "not", tags.OpAnd: "and", tags.OpOr: "or",
		0: "Op(0)", 6: "Op(6)",
	}
	for o, want := range ops {
		if got := o.String(); got != want {
			t.Errorf("Op(%d).String() = %q, want %q", uint8(o), got, want)
		}
	}
}

func TestReservedNamespaces(t *testing.T) {
	want := []string{"consent", "refused", "sensitive"}
	got := tags.ReservedNamespaces()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ReservedNamespaces() = %v, want %v", got, want)
	}
	got[0] = "changed"
	if tags.ReservedNamespaces()[0] != "consent" {
		t.Fatalf("ReservedNamespaces returns a shared slice")
	}
	for _, ns := range want {
		for _, v := range []string{"x", "guardian", "personalization_off", "sms", "religion"} {
			in := ns + ":" + v
			pt, err := tags.Parse(in)
			if err == nil {
				t.Errorf("Parse(%q) = %q, want an error", in, pt)
				continue
			}
			if !errors.Is(err, tags.ErrInvalidTag) {
				t.Errorf("Parse(%q) error = %v, want it to wrap ErrInvalidTag", in, err)
			}
			msg := `tags: invalid tag "` + in + `": namespace "` + ns + `" is reserved for segment flags`
			if err.Error() != msg {
				t.Errorf("Parse(%q) error = %q, want %q", in, err.Error(), msg)
			}
		}
		// The namespace itself is valid syntax; only tags in it are refused.
		if err := tags.ValidNamespace(ns); err != nil {
			t.Errorf("ValidNamespace(%q) = %v, want nil", ns, err)
		}
	}
	for _, in := range []string{"consents:x", "xconsent:x", "refused_:x", "sensitives:x", "minor:x", "erased:x"} {
		if _, err := tags.Parse(in); err != nil {
			t.Errorf("Parse(%q) error = %v, want nil (not reserved)", in, err)
		}
	}
}

// randSegment builds a random well-formed tree of at most depth levels of
// binary operators.
func randSegment(r *rand.Rand, depth int) *tags.Segment {
	if depth == 0 || r.Intn(4) == 0 {
		var s *tags.Segment
		switch r.Intn(10) {
		case 0:
			s = all()
		default:
			s = leaf(randAtom(r))
		}
		for r.Intn(3) == 0 {
			s = not(s)
		}
		return s
	}
	var s *tags.Segment
	switch r.Intn(5) {
	case 0:
		s = not(randSegment(r, depth-1))
	case 1, 2:
		s = and(randSegment(r, depth-1), randSegment(r, depth-1))
	default:
		s = or(randSegment(r, depth-1), randSegment(r, depth-1))
	}
	return s
}

func randAtom(r *rand.Rand) tags.Atom {
	names := []string{"a", "b", "interest", "region", "n_1", "minor", "erased", "consents", "x9"}
	vals := []string{"x", "y", "ski", "sh", "1.0-beta_2", "z"}
	cats := tags.Categories()
	switch r.Intn(12) {
	case 0:
		return atomPersOff
	case 1:
		return atomGuardian
	case 2:
		return refused([]string{"sms", "push", "in_app", "e2"}[r.Intn(4)])
	case 3:
		return sensitive(cats[r.Intn(len(cats))])
	case 4:
		return atomMinor
	case 5:
		return atomErased
	}
	return tagAtom(names[r.Intn(len(names))] + ":" + vals[r.Intn(len(vals))])
}

// reference evaluates s by its definition, without short-circuits.
func reference(s *tags.Segment, has func(tags.Atom) bool) bool {
	switch s.Op {
	case tags.OpAll:
		return true
	case tags.OpAtom:
		return has(s.Atom)
	case tags.OpNot:
		return !reference(s.X, has)
	case tags.OpAnd:
		x, y := reference(s.X, has), reference(s.Y, has)
		return x && y
	}
	x, y := reference(s.X, has), reference(s.Y, has)
	return x || y
}

func TestSegmentRandomRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(42))
	n := 5000
	if testing.Short() {
		n = 500
	}
	for i := 0; i < n; i++ {
		seg := randSegment(r, 1+r.Intn(6))
		printed := seg.String()
		again, err := tags.ParseSegment(printed)
		if err != nil {
			t.Fatalf("#%d: ParseSegment(%q) error = %v (tree %s)", i, printed, err, dump(seg))
		}
		if !again.Equal(seg) {
			t.Fatalf("#%d: print -> parse changed the tree:\n  %s\n  %s\n  printed %q", i, dump(seg), dump(again), printed)
		}
		if p2 := again.String(); p2 != printed {
			t.Fatalf("#%d: String not a fixed point: %q then %q", i, printed, p2)
		}
		// Whitespace-free and over-parenthesized forms mean the same tree.
		compact := strings.ReplaceAll(printed, " ", "")
		if c, err := tags.ParseSegment(compact); err != nil || !c.Equal(seg) {
			t.Fatalf("#%d: ParseSegment(%q) = %v, %v; want the tree of %q", i, compact, c, err, printed)
		}
		if c, err := tags.ParseSegment("(" + printed + ")"); err != nil || !c.Equal(seg) {
			t.Fatalf("#%d: parenthesized form differs: %v, %v", i, c, err)
		}
		// Eval agrees with the reference on random users.
		atoms := seg.Atoms()
		for k := 0; k < 8; k++ {
			holds := map[tags.Atom]bool{}
			for _, a := range atoms {
				holds[a] = r.Intn(2) == 0
			}
			has := func(a tags.Atom) bool { return holds[a] }
			if got, want := again.Eval(has), reference(seg, has); got != want {
				t.Fatalf("#%d: Eval(%q) = %t, reference %t with %v", i, printed, got, want, holds)
			}
		}
		// Atoms are distinct and in first-appearance order of the text.
		last := -1
		for _, a := range atoms {
			at := firstIndexOfAtom(printed, a.String())
			if at <= last {
				t.Fatalf("#%d: Atoms(%q) = %v, not in first-appearance order", i, printed, atoms)
			}
			last = at
		}
	}
}

// firstIndexOfAtom finds word as a whole atom in s.
func firstIndexOfAtom(s, word string) int {
	for i := 0; i+len(word) <= len(s); i++ {
		if s[i:i+len(word)] != word {
			continue
		}
		before := i == 0 || strings.IndexByte(" !&|()*", s[i-1]) >= 0
		after := i+len(word) == len(s) || strings.IndexByte(" !&|()*", s[i+len(word)]) >= 0
		if before && after {
			return i
		}
	}
	return -1
}
