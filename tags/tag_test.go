package tags_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/recguard/recguard/tags"
)

func TestParseValid(t *testing.T) {
	maxNS := "a" + strings.Repeat("z", tags.MaxNamespaceLen-1)
	maxVal := strings.Repeat("9", tags.MaxValueLen)
	cases := []struct {
		in        string
		namespace string
		value     string
	}{
		{"interest:ski", "interest", "ski"},
		{"a:b", "a", "b"},
		{"a:0", "a", "0"},
		{"region:sh", "region", "sh"},
		{"ns_1:v", "ns_1", "v"},
		{"z9_:x", "z9_", "x"},
		{"a:._-", "a", "._-"},
		{"brand:coca-cola.zero_sugar", "brand", "coca-cola.zero_sugar"},
		{"age:18-24", "age", "18-24"},
		{"medical_health:diabetes", "medical_health", "diabetes"},
		{maxNS + ":v", maxNS, "v"},
		{"a:" + maxVal, "a", maxVal},
		{maxNS + ":" + maxVal, maxNS, maxVal},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := tags.Parse(c.in)
			if err != nil {
				t.Fatalf("Parse(%q) error = %v, want nil", c.in, err)
			}
			if string(got) != c.in {
				t.Errorf("Parse(%q) = %q, want %q", c.in, got, c.in)
			}
			if ns := got.Namespace(); ns != c.namespace {
				t.Errorf("Namespace() = %q, want %q", ns, c.namespace)
			}
			if v := got.Value(); v != c.value {
				t.Errorf("Value() = %q, want %q", v, c.value)
			}
			if err := tags.ValidNamespace(got.Namespace()); err != nil {
				t.Errorf("ValidNamespace(%q) = %v, want nil", got.Namespace(), err)
			}
			if m := tags.MustParse(c.in); m != got {
				t.Errorf("MustParse(%q) = %q, want %q", c.in, m, got)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	longNS := "a" + strings.Repeat("b", tags.MaxNamespaceLen) // MaxNamespaceLen+1 bytes
	longVal := strings.Repeat("v", tags.MaxValueLen+1)
	cases := []struct {
		name, in, wantInMsg string
	}{
		{"empty", "", "want namespace:value"},
		{"no colon", "interest", "want namespace:value"},
		{"only colon", ":", "namespace must be 1 to 32 bytes"},
		{"empty namespace", ":ski", "namespace must be 1 to 32 bytes"},
		{"empty value", "interest:", "value must be 1 to 64 bytes"},
		{"namespace too long", longNS + ":v", "namespace must be 1 to 32 bytes"},
		{"value too long", "a:" + longVal, "value must be 1 to 64 bytes"},
		{"namespace starts with digit", "1a:v", "must start with a lowercase letter"},
		{"namespace starts with underscore", "_a:v", "must start with a lowercase letter"},
		{"namespace has dash", "my-ns:v", "namespace byte 2"},
		{"namespace has dot", "my.ns:v", "namespace byte 2"},
		{"namespace has space", "a b:v", "namespace byte 1"},
		{"value second colon", "a:b:c", "value byte 1"},
		{"value space", "interest:ski jumping", "value byte 3"},
		{"value slash", "a:b/c", "value byte 1"},
		{"value unicode", "city:北京", "value byte 0"},
		{"value newline", "a:b\n", "value byte 1"},
		{"value NUL", "a:b\x00", "value byte 1"},
		{"space inside the value", "a:b c", "value byte 1"},
		{"tab inside the namespace", "a\tb:c", "namespace byte 1"},
		{"value plus", "a:c++", "value byte 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := tags.Parse(c.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, nil; want error", c.in, got)
			}
			if got != "" {
				t.Errorf("Parse(%q) returned tag %q with error, want empty tag", c.in, got)
			}
			if !errors.Is(err, tags.ErrInvalidTag) {
				t.Errorf("Parse(%q) error = %v, want it to wrap ErrInvalidTag", c.in, err)
			}
			if !strings.Contains(err.Error(), c.wantInMsg) {
				t.Errorf("Parse(%q) error = %q, want it to contain %q", c.in, err, c.wantInMsg)
			}
		})
	}
}

func TestParseClipsLongInputInError(t *testing.T) {
	in := strings.Repeat("x", 500) // no colon
	_, err := tags.Parse(in)
	if err == nil {
		t.Fatal("Parse of 500 bytes without colon succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, in) {
		t.Errorf("error message contains the whole 500-byte input; want it clipped: %q", msg)
	}
	if !strings.Contains(msg, strings.Repeat("x", 80)+"...") {
		t.Errorf("error message = %q, want the first 80 bytes followed by ...", msg)
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("MustParse(\"Bad Tag\") did not panic")
		}
		err, ok := r.(error)
		if !ok || !errors.Is(err, tags.ErrInvalidTag) {
			t.Errorf("MustParse panicked with %v, want an error wrapping ErrInvalidTag", r)
		}
	}()
	tags.MustParse("Bad Tag")
}

func TestNamespaceValueWithoutColon(t *testing.T) {
	// A Tag built by conversion rather than Parse may lack a colon; the
	// accessors must not panic and return "".
	for _, tg := range []tags.Tag{"", "nocolon"} {
		if ns := tg.Namespace(); ns != "" {
			t.Errorf("Tag(%q).Namespace() = %q, want \"\"", tg, ns)
		}
		if v := tg.Value(); v != "" {
			t.Errorf("Tag(%q).Value() = %q, want \"\"", tg, v)
		}
	}
	tg := tags.Tag(":")
	if ns, v := tg.Namespace(), tg.Value(); ns != "" || v != "" {
		t.Errorf("Tag(\":\") = (%q, %q), want (\"\", \"\")", ns, v)
	}
}

func TestValidNamespace(t *testing.T) {
	cases := []struct {
		ns string
		ok bool
	}{
		{"a", true},
		{"interest", true},
		{"medical_health", true},
		{"x1_2", true},
		{"a" + strings.Repeat("b", tags.MaxNamespaceLen-1), true},
		{"a" + strings.Repeat("b", tags.MaxNamespaceLen), false},
		{"", false},
		{"1abc", false},
		{"_abc", false},
		{"Abc", false},
		{"ab-c", false},
		{"ab:c", false},
		{"ab c", false},
	}
	for _, c := range cases {
		err := tags.ValidNamespace(c.ns)
		if c.ok && err != nil {
			t.Errorf("ValidNamespace(%q) = %v, want nil", c.ns, err)
		}
		if !c.ok {
			if err == nil {
				t.Errorf("ValidNamespace(%q) = nil, want error", c.ns)
			} else if !errors.Is(err, tags.ErrInvalidTag) {
				t.Errorf("ValidNamespace(%q) = %v, want it to wrap ErrInvalidTag", c.ns, err)
			}
		}
	}
}

func TestSourceValid(t *testing.T) {
	cases := []struct {
		s    tags.Source
		want bool
	}{
		{tags.Declared, true},
		{tags.Inferred, true},
		{"declared", true},
		{"inferred", true},
		{"", false},
		{"Declared", false},
		{"imported", false},
	}
	for _, c := range cases {
		if got := c.s.Valid(); got != c.want {
			t.Errorf("Source(%q).Valid() = %t, want %t", c.s, got, c.want)
		}
	}
}

// Case and spacing variants parse to the one canonical tag, so a deleted
// tag's suppression catches every way of writing it.
func TestParseCanonicalizes(t *testing.T) {
	for _, in := range []string{"interest:ski", "Interest:Ski", "INTEREST:SKI", " interest:ski", "interest:ski\t", "interest : ski", "  Interest\t:\tSKI  "} {
		got, err := tags.Parse(in)
		if err != nil || got != "interest:ski" {
			t.Errorf("Parse(%q) = %q, %v; want interest:ski, nil", in, got, err)
		}
	}
}
